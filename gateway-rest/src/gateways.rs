//! The gateways view: `GET /api/v1/admin/gateways`, and accepting a held
//! snapshot at `POST /api/v1/admin/gateways/{gateway}:acceptSnapshot`.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::body::{check_empty_body, read_body};
use crate::dto::{self, ListOf};
use crate::error::ApiError;
use crate::forwarded::{Forwarded, rpc_request};
use crate::json_body::JsonBody;
use crate::proto as pb;
use crate::session_path::{RouteTemplate, percent_decode};
use crate::state::RestState;

pub(crate) const GATEWAYS: &str = "/api/v1/admin/gateways";
const ACCEPT: RouteTemplate = RouteTemplate("/api/v1/admin/gateways/{gateway}:acceptSnapshot");

pub(crate) async fn list(
    State(state): State<RestState>,
    forwarded: Forwarded,
) -> Result<JsonBody<ListOf<dto::Gateway>>, ApiError> {
    let listed = state.call(state.backend.list_gateways(forwarded.request(pb::ListGatewaysRequest {}))).await?;
    Ok(JsonBody(ListOf { data: listed.data.into_iter().map(dto::Gateway::from).collect() }))
}

/// `{gateway}:acceptSnapshot`, parsed from the raw path: a literal `:`
/// separates the custom method, a percent-encoded one belongs to the id.
pub(crate) async fn accept(State(state): State<RestState>, request: Request) -> Response {
    let mut response = match accept_call(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(ACCEPT);
    response
}

async fn accept_call(state: &RestState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let tail = parts.uri.path().strip_prefix(GATEWAYS).and_then(|t| t.strip_prefix('/')).unwrap_or("");
    let (raw_id, verb) = tail.split_once(':').ok_or_else(|| ApiError::not_found("no such path"))?;
    if verb != "acceptSnapshot" {
        return Err(ApiError::not_found(format!("unknown custom method :{verb}")));
    }
    if parts.method != http::Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let gateway_id = percent_decode(raw_id, "gateway")?;
    check_empty_body(&read_body(body).await?)?;
    let message = pb::AcceptGatewaySnapshotRequest { gateway_id };
    let accepted = state.call(state.backend.accept_gateway_snapshot(rpc_request(&parts.headers, message))).await?;
    Ok(JsonBody(accepted.gateway.map(dto::Gateway::from)).into_response())
}
