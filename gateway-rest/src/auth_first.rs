//! Authentication comes first. When the REST layer itself would refuse a
//! request under `/api/v1/admin` (an unknown path or method, a malformed
//! query, an oversized body), it first asks the AdminService who is calling
//! (`WhoAmI`): a missing, invalid or refused credential answers 401, 403 or
//! 429 as any RPC would, and only an authorized caller sees the 400, 404, 405
//! or 413. Credentials are still checked in one place only, the auth layer in
//! front of the RPCs; this layer decides nothing about them.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{LocalRefusal, from_status};
use crate::proto as pb;
use crate::routes::{Forwarded, RestState};

pub const ADMIN_PREFIX: &str = "/api/v1/admin";

pub async fn auth_first(State(state): State<RestState>, request: Request, next: Next) -> Response {
    let guarded = request.uri().path().starts_with(ADMIN_PREFIX);
    let forwarded = guarded.then(|| Forwarded::of(request.headers()));
    let response = next.run(request).await;
    let Some(forwarded) = forwarded else { return response };
    if response.extensions().get::<LocalRefusal>().is_none() {
        return response;
    }
    let who = state.backend.who_am_i(forwarded.request(pb::WhoAmIRequest {}));
    match tokio::time::timeout(state.rpc_timeout, who).await {
        Ok(Ok(_)) => response,
        Ok(Err(status)) => from_status(&status).into_response(),
        Err(_) => crate::error::ApiError::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            "the admin service did not answer in time",
        )
        .into_response(),
    }
}
