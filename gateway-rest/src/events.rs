//! Session history over REST: one session's events
//! (`/sessions/{session}/events`, reached through the session resources),
//! the fleet's (`/session-events`) and the change stream
//! (`/session-events:watch`, NDJSON).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;

use crate::dto::{self, PageOf};
use crate::error::{ApiError, from_status};
use crate::forwarded::{Forwarded, rpc_request};
use crate::json_body::JsonBody;
use crate::proto as pb;
use crate::query::{cursor, limit, query_of, text};
use crate::state::RestState;

pub(crate) const SESSION_EVENTS: &str = "/api/v1/admin/session-events";
pub(crate) const WATCH: &str = "/api/v1/admin/session-events:watch";

/// The documented SessionEvent (contract §6).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEvent {
    pub cursor: String,
    pub session_id: String,
    pub organization_id: String,
    pub gateway_id: Option<String>,
    pub kind: &'static str,
    pub from_status: Option<&'static str>,
    pub to_status: Option<&'static str>,
    pub from_gateway_id: Option<String>,
    pub changed_at: Option<i64>,
    pub recorded_at: Option<i64>,
    pub source: &'static str,
}

fn status(raw: i32) -> Option<&'static str> {
    pb::SessionStatus::try_from(raw).ok().and_then(dto::session_status)
}

impl From<pb::SessionEvent> for SessionEvent {
    fn from(e: pb::SessionEvent) -> Self {
        let kind = match pb::SessionEventKind::try_from(e.kind) {
            Ok(pb::SessionEventKind::Appeared) => "appeared",
            Ok(pb::SessionEventKind::StatusChanged) => "status_changed",
            Ok(pb::SessionEventKind::Moved) => "moved",
            Ok(pb::SessionEventKind::Removed) => "removed",
            _ => "unspecified",
        };
        let source = match pb::SessionEventSource::try_from(e.source) {
            Ok(pb::SessionEventSource::Feed) => "feed",
            Ok(pb::SessionEventSource::Import) => "import",
            _ => "unspecified",
        };
        Self {
            cursor: e.cursor,
            session_id: e.session_id,
            organization_id: e.organization_id,
            gateway_id: e.gateway_id,
            kind,
            from_status: status(e.from_status),
            to_status: status(e.to_status),
            from_gateway_id: e.from_gateway_id,
            changed_at: dto::millis(e.changed_at),
            recorded_at: dto::millis(e.recorded_at),
            source,
        }
    }
}

/// `since`: integer milliseconds since the epoch.
fn since(query: &HashMap<String, String>) -> Result<Option<prost_types::Timestamp>, ApiError> {
    let Some(raw) = query.get("since") else { return Ok(None) };
    let ms = raw.trim().parse::<i64>().ok().filter(|ms| (0..=253_402_300_799_999).contains(ms)).ok_or_else(|| {
        ApiError::invalid_argument("since", format!("since must be a time in milliseconds since 1970, got {raw:?}"))
    })?;
    Ok(Some(prost_types::Timestamp { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }))
}

fn status_filter(query: &HashMap<String, String>) -> Result<pb::SessionStatus, ApiError> {
    match query.get("status").map(String::as_str) {
        None => Ok(pb::SessionStatus::Unspecified),
        Some(raw) => dto::parse_session_status(raw).ok_or_else(|| {
            ApiError::invalid_argument(
                "status",
                "status must be one of stopped, starting, scan_qr_code, working, failed",
            )
        }),
    }
}

fn page(page: pb::ListSessionEventsResponse) -> Response {
    let data = page.data.into_iter().map(SessionEvent::from).collect();
    JsonBody(PageOf::<SessionEvent> { data, next_cursor: page.next_cursor }).into_response()
}

/// `GET /api/v1/admin/sessions/{session}/events?limit&cursor`.
pub(crate) async fn of_session(
    state: &RestState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    session_id: String,
) -> Result<Response, ApiError> {
    let message =
        pb::ListSessionEventsRequest { session_id, limit: limit(query)?, cursor: cursor(query)?, ..Default::default() };
    Ok(page(state.call(state.backend.list_session_events(rpc_request(headers, message))).await?))
}

/// `GET /api/v1/admin/session-events?organizationId&gatewayId&status&since&limit&cursor`.
pub(crate) async fn of_fleet(
    State(state): State<RestState>,
    forwarded: Forwarded,
    uri: http::Uri,
) -> Result<Response, ApiError> {
    let query = query_of(&uri)?;
    let message = pb::ListSessionEventsRequest {
        session_id: String::new(),
        organization_id: text(&query, "organizationId"),
        gateway_id: text(&query, "gatewayId"),
        status: status_filter(&query)?.into(),
        since: since(&query)?,
        limit: limit(&query)?,
        cursor: cursor(&query)?,
    };
    Ok(page(state.call(state.backend.list_session_events(forwarded.request(message))).await?))
}

/// `GET /api/v1/admin/session-events:watch?after=CURSOR`: one event per
/// line; an error ends the stream as `{"error":{…}}` on its own line.
pub(crate) async fn watch(
    State(state): State<RestState>,
    forwarded: Forwarded,
    uri: http::Uri,
) -> Result<Response, ApiError> {
    let query = query_of(&uri)?;
    let after = match query.get("after") {
        Some(a) if a.is_empty() => {
            return Err(ApiError::invalid_argument("after", "after must not be empty; omit it to watch from now on"));
        }
        other => other.cloned().unwrap_or_default(),
    };
    let message = pb::WatchSessionEventsRequest { after };
    let stream = state.call(state.backend.watch_session_events(forwarded.request(message))).await?;
    Ok(ndjson(stream, |update: pb::WatchSessionEventsResponse| update.event.map(SessionEvent::from)))
}

/// Newline-delimited JSON: one item per line; an error ends the stream as
/// `{"error":{…}}`, the envelope's body, on its own line.
pub(crate) fn ndjson<T: 'static, D: Serialize + 'static>(
    stream: impl futures_util::Stream<Item = Result<T, tonic::Status>> + Send + 'static,
    render: fn(T) -> D,
) -> Response {
    let lines = stream.map(move |item| {
        let value = match item {
            Ok(update) => serde_json::to_value(render(update)),
            Err(status) => {
                let e = from_status(&status);
                Ok(serde_json::json!({"error": {"code": e.code, "message": e.message, "details": e.details}}))
            }
        };
        let mut line = value.map(|v| v.to_string()).unwrap_or_else(|_| "null".into());
        line.push('\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let mut response = Body::from_stream(lines).into_response();
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-ndjson"));
    response
}
