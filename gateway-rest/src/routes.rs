//! Paths -> RPCs. The session segment is parsed from the raw path by hand:
//! a literal `:` separates a custom method (`{session}:backfill`), while a
//! percent-encoded `%3A` belongs to the id.

use std::collections::HashMap;
use std::time::Duration;

use crate::json_body::{JsonBody, WrittenJson};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde_json::Value;

use crate::dto::{self, PageOf};
use crate::error::{ApiError, from_status};
use crate::{AdminBackend, proto as pb};

const SESSIONS: &str = "/api/v1/admin/sessions";
/// The StartBackfill body is empty or `{}`; anything near this size is a mistake.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_BYTES: usize = 1024 * 1024;
const FORWARDED_COUNT: usize = 6;
/// Headers the RPC carries: credentials, the request id, the client address
/// (set by `request_context`) and W3C trace context (a REST layer in front
/// of a remote server passes the caller's trace on as it is).
const FORWARDED: [http::HeaderName; FORWARDED_COUNT] = [
    http::header::AUTHORIZATION,
    http::HeaderName::from_static("x-api-key"),
    crate::request_context::REQUEST_ID,
    http::HeaderName::from_static("x-forwarded-for"),
    http::HeaderName::from_static("traceparent"),
    http::HeaderName::from_static("tracestate"),
];

/// What every REST handler shares, behind one `Arc`: axum and the
/// auth-first layer clone the state on every request, and each clone is a
/// reference count both runtime threads write.
#[derive(Clone)]
pub(crate) struct RestState(std::sync::Arc<Shared>);

pub(crate) struct Shared {
    pub backend: AdminBackend,
    pub rpc_timeout: Duration,
    pub pages: crate::listing::PageCache,
}

impl RestState {
    pub(crate) fn new(backend: AdminBackend, rpc_timeout: Duration) -> Self {
        Self(std::sync::Arc::new(Shared { backend, rpc_timeout, pages: Default::default() }))
    }
}

impl std::ops::Deref for RestState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub(crate) fn routes(state: RestState) -> Router {
    Router::new()
        .route("/api/v1/admin/whoami", get(who_am_i).fallback(|| async { ApiError::method_not_allowed("GET") }))
        .route(SESSIONS, get(crate::listing::list_sessions).fallback(|| async { ApiError::method_not_allowed("GET") }))
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

/// Copies the credential and request-id headers into gRPC metadata.
pub(crate) fn rpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    Forwarded::of(headers).request(message)
}

/// The headers an RPC carries, kept (cheaply: header values share the
/// request's buffer) for a call made after the request is gone.
///
/// A backend finds them as a typed extension of the `tonic::Request`, not
/// as its metadata: the service in this process reads them there without a
/// lookup per name, and [`crate::backend::remote`] sends them as metadata.
#[derive(Clone)]
pub struct Forwarded([Option<http::HeaderValue>; FORWARDED_COUNT]);

impl Forwarded {
    /// The first value of each, found in one pass over the request's few
    /// headers (a hashed lookup per name costs more than the whole pass).
    pub fn of(headers: &HeaderMap) -> Self {
        let mut found: [Option<http::HeaderValue>; FORWARDED_COUNT] = Default::default();
        for (name, value) in headers {
            if let Some(slot) = FORWARDED.iter().position(|f| f == name).map(|i| &mut found[i]) {
                slot.get_or_insert_with(|| value.clone());
            }
        }
        Self(found)
    }

    /// The RPC request carrying `message`, with these headers attached.
    pub(crate) fn request<T>(self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(self);
        request
    }

    /// The headers as gRPC metadata, for a backend across the network. The
    /// values are shared, not copied. Each is already a valid metadata
    /// value: a `HeaderValue` holds no control character but tab, whichever
    /// parser (hyper's, h2's) or constructor made it.
    pub(crate) fn into_metadata(self) -> tonic::metadata::MetadataMap {
        let mut metadata = HeaderMap::with_capacity(FORWARDED.len());
        for (name, value) in FORWARDED.iter().zip(self.0) {
            if let Some(value) = value {
                metadata.insert(name.clone(), value);
            }
        }
        tonic::metadata::MetadataMap::from_headers(metadata)
    }

    fn text(&self, slot: usize) -> Option<&str> {
        self.0[slot].as_ref().and_then(|v| v.to_str().ok())
    }

    /// `Authorization`, as sent.
    pub fn authorization(&self) -> Option<&str> {
        self.text(0)
    }

    /// `X-Api-Key`, as sent.
    pub fn x_api_key(&self) -> Option<&str> {
        self.text(1)
    }

    /// `X-Request-Id`: the caller's if acceptable, else the one the REST
    /// layer generated.
    pub fn request_id(&self) -> Option<&http::HeaderValue> {
        self.0[2].as_ref()
    }

    /// `X-Forwarded-For`: the client address the REST layer resolved.
    pub fn client(&self) -> Option<&str> {
        self.text(3)
    }
}

/// Handlers take only the forwarded headers, not a copy of the whole map.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Forwarded {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers))
    }
}

impl RestState {
    pub(crate) async fn call<T>(
        &self,
        rpc: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.rpc_timeout, rpc).await {
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                "the admin service did not answer in time",
            )),
            Ok(Err(status)) => Err(from_status(&status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}

pub(crate) fn limit(query: &HashMap<String, String>) -> Result<Option<i32>, ApiError> {
    let Some(raw) = query.get("limit") else { return Ok(None) };
    // Out-of-range integers saturate: the service clamps large limits and
    // rejects negative ones, so the outcome stays the service's.
    match raw.trim().parse::<i32>() {
        Ok(n) => Ok(Some(n)),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Ok(Some(i32::MAX)),
        Err(e) if *e.kind() == std::num::IntErrorKind::NegOverflow => Ok(Some(i32::MIN)),
        Err(_) => Err(ApiError::invalid_argument("limit", format!("limit must be an integer, got {raw:?}"))),
    }
}

pub(crate) fn text(query: &HashMap<String, String>, name: &str) -> String {
    query.get(name).cloned().unwrap_or_default()
}

/// `cursor` from the query: absent is the first page; present but empty is a
/// mistake (a client that lost its cursor), not the first page.
pub(crate) fn cursor(query: &HashMap<String, String>) -> Result<String, ApiError> {
    match query.get("cursor") {
        Some(c) if c.is_empty() => {
            Err(ApiError::invalid_argument("cursor", "cursor must not be empty; omit it for the first page"))
        }
        other => Ok(other.cloned().unwrap_or_default()),
    }
}

async fn who_am_i(State(state): State<RestState>, forwarded: Forwarded) -> Result<JsonBody<dto::Caller>, ApiError> {
    let who = state.call(state.backend.who_am_i(forwarded.request(pb::WhoAmIRequest {}))).await?;
    Ok(JsonBody(who.into()))
}

/// The query string as a map; a parameter given twice is ambiguous and refused.
pub(crate) fn query_of(uri: &http::Uri) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::invalid_argument("query", e.body_text()))?;
    let mut query = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if query.contains_key(&name) {
            return Err(ApiError::invalid_argument(&name, format!("{name} is given more than once")));
        }
        query.insert(name, value);
    }
    Ok(query)
}

/// Decodes `%XX` escapes; anything else passes through.
fn percent_decode(raw: &str, field: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_argument(field, format!("{field} is not valid percent-encoded UTF-8"));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

enum Resource<'a> {
    StartBackfill,
    GetBackfill,
    WatchBackfill,
    CancelBackfill,
    Contacts,
    Groups,
    Participants { raw_group: &'a str },
}

/// The metric label of a path the router did not match: every session
/// resource's until its handler names the documented route
/// ([`RouteTemplate`]), `other` for anything else.
pub fn unmatched_route(path: &str) -> &'static str {
    match session_tail(path) {
        Some(_) => SESSION_RESOURCES,
        None => "other",
    }
}

/// The label of session resource paths the handler did not resolve.
const SESSION_RESOURCES: &str = "/api/v1/admin/sessions/{*rest}";

/// What follows `/api/v1/admin/sessions/`, if anything does.
fn session_tail(path: &str) -> Option<&str> {
    path.strip_prefix(SESSIONS)?.strip_prefix('/').filter(|tail| !tail.is_empty())
}

/// The route a session resource answered, as documented (not the router's
/// catch-all): a response extension, for metric labels and span names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTemplate(pub &'static str);

impl Resource<'_> {
    fn template(&self) -> RouteTemplate {
        RouteTemplate(match self {
            Self::StartBackfill => "/api/v1/admin/sessions/{session}:backfill",
            Self::GetBackfill => "/api/v1/admin/sessions/{session}/backfill",
            Self::WatchBackfill => "/api/v1/admin/sessions/{session}/backfill:watch",
            Self::CancelBackfill => "/api/v1/admin/sessions/{session}/backfill:cancel",
            Self::Contacts => "/api/v1/admin/sessions/{session}/contacts",
            Self::Groups => "/api/v1/admin/sessions/{session}/groups",
            Self::Participants { .. } => "/api/v1/admin/sessions/{session}/groups/{groupJid}/participants",
        })
    }

    fn method(&self) -> &'static str {
        match self {
            Self::StartBackfill | Self::CancelBackfill => "POST",
            _ => "GET",
        }
    }
}

/// `{session}:verb` or `{session}/sub[/…]`, from the raw path after
/// `/sessions/`. A literal `:` in the first segment is a custom method.
fn parse(tail: &str) -> Result<(&str, Resource<'_>), ApiError> {
    let unknown_verb = |verb: &str| ApiError::not_found(format!("unknown custom method :{verb}"));
    let no_path = || ApiError::not_found("no such path");
    let (id, sub) = match tail.split_once('/') {
        Some((id, sub)) => (id, Some(sub)),
        None => (tail, None),
    };
    if let Some((id, verb)) = id.split_once(':') {
        return match (verb, sub) {
            ("backfill", None) => Ok((id, Resource::StartBackfill)),
            (verb, None) => Err(unknown_verb(verb)),
            _ => Err(no_path()),
        };
    }
    let Some(sub) = sub else { return Err(no_path()) };
    let group = sub.strip_prefix("groups/").and_then(|g| g.strip_suffix("/participants"));
    let resource = match sub {
        "backfill" => Resource::GetBackfill,
        "backfill:watch" => Resource::WatchBackfill,
        "backfill:cancel" => Resource::CancelBackfill,
        "contacts" => Resource::Contacts,
        "groups" => Resource::Groups,
        _ => match group {
            Some(group) if !group.is_empty() && !group.contains('/') => Resource::Participants { raw_group: group },
            _ if sub.contains('/') => return Err(no_path()),
            _ => match sub.split_once(':') {
                Some((_, verb)) => return Err(unknown_verb(verb)),
                None => return Err(no_path()),
            },
        },
    };
    Ok((id, resource))
}

/// The session resource parser, percent-decoding and query parsing, fed a
/// raw path (everything after `/api/v1/admin/sessions/`) and query, for the fuzzer.
#[cfg(fuzzing)]
pub fn fuzz_request(tail: &str, query: &str) {
    if let Ok((id, resource)) = parse(tail) {
        let _ = percent_decode(id, "session");
        if let Resource::Participants { raw_group } = resource {
            let _ = percent_decode(raw_group, "groupJid");
        }
    }
    if let Ok(uri) = format!("/x?{query}").parse::<http::Uri>() {
        if let Ok(query) = query_of(&uri) {
            let _ = (limit(&query), cursor(&query));
        }
    }
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

/// Reads at most [`MAX_BODY_BYTES`]. A larger body is still drained up to
/// [`DRAIN_BYTES`] so the client gets its 413 instead of a connection reset
/// mid-upload; beyond that the connection is dropped.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::invalid_argument("body", "the request body could not be read"));
        };
        seen += chunk.len();
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_BYTES {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(Bytes::from(kept))
}

/// The body must be empty or `{}`.
fn check_empty_body(body: &Bytes) -> Result<(), ApiError> {
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) if fields.is_empty() => Ok(()),
        Ok(Value::Object(fields)) => Err(ApiError::invalid_argument(
            "body",
            format!(
                "unexpected field {:?}: the body must be empty or {{}}",
                fields.keys().next().map(String::as_str).unwrap_or("")
            ),
        )),
        Ok(_) => Err(ApiError::invalid_argument("body", "the body must be empty or a JSON object {}")),
        Err(e) => Err(ApiError::invalid_argument("body", format!("malformed JSON: {e}"))),
    }
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
    let lines = stream.map(|item| {
        let value = match item {
            Ok(update) => serde_json::to_value(update.job.map(dto::BackfillJob::from)),
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
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(tail: &str) -> Result<(String, String), String> {
        parse(tail).map(|(id, resource)| (id.to_owned(), resource.template().0.to_owned())).map_err(|e| e.message)
    }

    #[test]
    fn session_paths_parse_to_their_resource_or_a_precise_404() {
        let template = |r: &str| format!("/api/v1/admin/sessions/{{session}}{r}");
        for (tail, id, resource) in [
            ("s1:backfill", "s1", ":backfill"),
            ("s1/backfill", "s1", "/backfill"),
            ("s1/backfill:watch", "s1", "/backfill:watch"),
            ("s1/backfill:cancel", "s1", "/backfill:cancel"),
            ("s1/contacts", "s1", "/contacts"),
            ("s1/groups", "s1", "/groups"),
            ("s%3A1/groups/g%40x/participants", "s%3A1", "/groups/{groupJid}/participants"),
            ("s1/groups/participants/participants", "s1", "/groups/{groupJid}/participants"),
        ] {
            assert_eq!(parsed(tail), Ok((id.to_owned(), template(resource))), "{tail}");
        }
        for (tail, message) in [
            ("s1:nope", "unknown custom method :nope"),
            ("s1/backfill:nope", "unknown custom method :nope"),
            ("s1", "no such path"),
            ("s1/", "no such path"),
            ("s1:backfill/x", "no such path"),
            ("s1/backfill/x", "no such path"),
            ("s1/groups//participants", "no such path"),
            ("s1/groups/participants", "no such path"),
            ("s1/groups/a/b/participants", "no such path"),
            ("s1/groups/g/participants/x", "no such path"),
            ("s1/nope", "no such path"),
        ] {
            assert_eq!(parsed(tail), Err(message.to_owned()), "{tail}");
        }
    }

    #[test]
    fn only_session_resources_share_the_session_label() {
        assert_eq!(unmatched_route("/api/v1/admin/sessions/s1:nope"), SESSION_RESOURCES);
        assert_eq!(unmatched_route("/api/v1/admin/sessions/"), "other");
        assert_eq!(unmatched_route("/api/v1/admin/sessionsx/s1"), "other");
        assert_eq!(unmatched_route("/nope"), "other");
    }
}
