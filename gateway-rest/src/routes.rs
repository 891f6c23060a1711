//! Paths -> RPCs: the router, and the handlers that call the backend.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::body::{check_empty_body, read_body};
use crate::dto::{self, PageOf};
use crate::error::ApiError;
use crate::forwarded::{Forwarded, rpc_request};
use crate::json_body::{JsonBody, WrittenJson};
use crate::proto as pb;
use crate::query::{cursor, limit, query_of, text};
use crate::session_path::{Resource, SESSIONS, parse, percent_decode, session_tail};
use crate::state::RestState;

pub(crate) fn routes(state: RestState) -> Router {
    Router::new()
        .route("/api/v1/admin/whoami", get(who_am_i).fallback(|| async { ApiError::method_not_allowed("GET") }))
        .route(SESSIONS, get(crate::listing::list_sessions).fallback(|| async { ApiError::method_not_allowed("GET") }))
        .route(
            crate::gateways::GATEWAYS,
            get(crate::gateways::list).fallback(|| async { ApiError::method_not_allowed("GET") }),
        )
        .route("/api/v1/admin/gateways/{gateway}", axum::routing::any(crate::gateways::accept))
        .route(
            crate::events::SESSION_EVENTS,
            get(crate::events::of_fleet).fallback(|| async { ApiError::method_not_allowed("GET") }),
        )
        .route(
            crate::events::WATCH,
            get(crate::events::watch).fallback(|| async { ApiError::method_not_allowed("GET") }),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async { JsonBody(crate::openapi::document()) })
                .fallback(|| async { ApiError::method_not_allowed("GET") }),
        )
        // Session resources are parsed by hand (`parse`), so they are routed
        // from the fallback: a router wildcard would also decode and store
        // the tail as a URL parameter on every call, for nobody.
        .fallback(|state: State<RestState>, request: Request| async move {
            match session_tail(request.uri().path()) {
                Some(_) => session_resource(state, request).await,
                None => ApiError::not_found("no such path").into_response(),
            }
        })
        .with_state(state)
}

async fn who_am_i(State(state): State<RestState>, forwarded: Forwarded) -> Result<JsonBody<dto::Caller>, ApiError> {
    let who = state.call(state.backend.who_am_i(forwarded.request(pb::WhoAmIRequest {}))).await?;
    Ok(JsonBody(who.into()))
}

async fn session_resource(State(state): State<RestState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let tail = session_tail(parts.uri.path()).unwrap_or("");
    let (raw_id, resource) = match parse(tail) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let template = resource.template();
    let expected = resource.method();
    if parts.method.as_str() != expected && !(expected == "GET" && parts.method == Method::HEAD) {
        return ApiError::method_not_allowed(expected).into_response();
    }
    let session_id = match percent_decode(raw_id, "session") {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let query = match query_of(&parts.uri) {
        Ok(query) => query,
        Err(e) => return e.into_response(),
    };
    let (state, headers) = (&state, &parts.headers);
    let result = match resource {
        Resource::Session => {
            let message = pb::GetSessionRequest { session_id };
            let found = state.call(state.backend.get_session(rpc_request(headers, message))).await;
            found.map(|r| WrittenJson(r.session.map(dto::Session::from)).into_response())
        }
        Resource::StartBackfill => start_backfill(state, headers, body, raw_id, session_id).await,
        Resource::CancelBackfill => cancel_backfill(state, headers, body, session_id).await,
        Resource::GetBackfill => {
            let message = pb::GetBackfillRequest { session_id };
            let job = state.call(state.backend.get_backfill(rpc_request(headers, message))).await;
            job.map(|r| WrittenJson(r.job.map(dto::BackfillJob::from)).into_response())
        }
        Resource::WatchBackfill => watch_backfill(state, headers, session_id, text(&query, "jobId")).await,
        Resource::Contacts => {
            list_stored(&query, move |limit, cursor| async move {
                let message = pb::ListSessionContactsRequest { session_id, limit, cursor };
                let page = state.call(state.backend.list_session_contacts(rpc_request(headers, message))).await?;
                Ok(page_of::<dto::Contact, _>(page.data, page.next_cursor))
            })
            .await
        }
        Resource::Events => crate::events::of_session(state, headers, &query, session_id).await,
        Resource::Groups => {
            list_stored(&query, move |limit, cursor| async move {
                let message = pb::ListSessionGroupsRequest { session_id, limit, cursor };
                let page = state.call(state.backend.list_session_groups(rpc_request(headers, message))).await?;
                Ok(page_of::<dto::Group, _>(page.data, page.next_cursor))
            })
            .await
        }
        Resource::Participants { raw_group } => match percent_decode(raw_group, "groupJid") {
            Err(e) => Err(e),
            Ok(group_jid) => {
                list_stored(&query, move |limit, cursor| async move {
                    let message = pb::ListSessionGroupParticipantsRequest { session_id, group_jid, limit, cursor };
                    let rpc = state.backend.list_session_group_participants(rpc_request(headers, message));
                    let page = state.call(rpc).await?;
                    Ok(page_of::<dto::Participant, _>(page.data, page.next_cursor))
                })
                .await
            }
        },
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(template);
    response
}

fn page_of<D: From<P> + serde::Serialize, P>(data: Vec<P>, next_cursor: Option<String>) -> Response {
    JsonBody(PageOf::<D> { data: data.into_iter().map(Into::into).collect(), next_cursor }).into_response()
}

/// A stored-data listing: `limit` and `cursor` from the query, then the RPC.
async fn list_stored<F, Fut>(query: &HashMap<String, String>, rpc: F) -> Result<Response, ApiError>
where
    F: FnOnce(Option<i32>, String) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    rpc(limit(query)?, cursor(query)?).await
}

async fn start_backfill(
    state: &RestState,
    headers: &HeaderMap,
    body: Body,
    raw_id: &str,
    session_id: String,
) -> Result<Response, ApiError> {
    let body = read_body(body).await?;
    check_empty_body(&body)?;
    let message = pb::StartBackfillRequest { session_id };
    let started = state.call(state.backend.start_backfill(rpc_request(headers, message))).await?;
    let location = format!("{SESSIONS}/{raw_id}/backfill");
    let mut response = (StatusCode::ACCEPTED, WrittenJson(started.job.map(dto::BackfillJob::from))).into_response();
    if let Ok(value) = http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

async fn cancel_backfill(
    state: &RestState,
    headers: &HeaderMap,
    body: Body,
    session_id: String,
) -> Result<Response, ApiError> {
    check_empty_body(&read_body(body).await?)?;
    let message = pb::CancelBackfillRequest { session_id };
    let cancelled = state.call(state.backend.cancel_backfill(rpc_request(headers, message))).await?;
    Ok(WrittenJson(cancelled.job.map(dto::BackfillJob::from)).into_response())
}

/// Newline-delimited JSON: one BackfillJob per line, the current state
/// first, ending after the terminal state. `jobId` pins the job to follow.
async fn watch_backfill(
    state: &RestState,
    headers: &HeaderMap,
    session_id: String,
    job_id: String,
) -> Result<Response, ApiError> {
    let message = pb::WatchBackfillRequest { session_id, job_id };
    let stream = state.call(state.backend.watch_backfill(rpc_request(headers, message))).await?;
    Ok(crate::events::ndjson(stream, |update: pb::WatchBackfillResponse| update.job.map(dto::BackfillJob::from)))
}
