//! `GET /api/v1/admin/sessions`, with conditional requests.
//!
//! Every answer carries the listing's etag (the revision of the sessions it
//! was read at). A client that sends it back in `If-None-Match` gets `304`
//! while nothing changed. This layer also keeps the pages it rendered
//! recently, by query; with a kept page it asks the RPC `if_none_match`,
//! and when the service answers not_modified it sends the kept bytes, the
//! same bytes rendering the page again would give.
//!
//! The RPC is made for every request either way: the service checks the
//! credential and decides the answer, so a kept page is never served to a
//! caller the service did not accept, nor after any session changed.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::dto::{self, PageOf};
use crate::error::ApiError;
use crate::forwarded::Forwarded;
use crate::json_body::{json_response, written_bytes};
use crate::proto as pb;
use crate::query::{cursor, limit, query_of, text};
use crate::state::RestState;

/// The longest client etag passed on to the service.
const MAX_ASKED_ETAG: usize = 64;
/// Responses name an authorized caller's view: no shared cache may keep
/// them, and a browser revalidates (with `If-None-Match`) before reuse.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");

/// `If-None-Match`, as sent (one hashed lookup instead of a copy of the
/// whole header map).
pub(crate) struct IfNoneMatch(Option<HeaderValue>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(header::IF_NONE_MATCH).cloned()))
    }
}

impl IfNoneMatch {
    /// The opaque etags listed (`W/"x", "y"` gives `x`, `y`). A value that
    /// is not a list of etags matches nothing, as if it were absent.
    fn etags(&self) -> impl Iterator<Item = &str> {
        let listed = self.0.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
        listed.split(',').filter_map(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix('"')?.strip_suffix('"')
        })
    }

    fn is_any(&self) -> bool {
        self.0.as_ref().is_some_and(|v| v.as_bytes().trim_ascii() == b"*")
    }

    /// Weak comparison (RFC 9110 §13.1.2): the client holds `etag`.
    fn holds(&self, etag: &str) -> bool {
        !etag.is_empty() && (self.is_any() || self.etags().any(|tag| tag == etag))
    }
}

pub(crate) async fn list_sessions(
    State(state): State<RestState>,
    forwarded: Forwarded,
    client: IfNoneMatch,
    uri: http::Uri,
) -> Result<Response, ApiError> {
    let query = query_of(&uri)?;
    let status = match query.get("status").map(String::as_str) {
        None => pb::SessionStatus::Unspecified,
        Some(raw) => dto::parse_session_status(raw).ok_or_else(|| {
            ApiError::invalid_argument(
                "status",
                "status must be one of stopped, starting, scan_qr_code, working, failed",
            )
        })?,
    };
    let request = pb::ListSessionsRequest {
        limit: limit(&query)?,
        cursor: cursor(&query)?,
        organization_id: text(&query, "organizationId"),
        status: status.into(),
        gateway_id: text(&query, "gatewayId"),
        if_none_match: String::new(),
    };
    let kept = state.pages.get(&request);
    let ask = match &kept {
        Some((etag, _)) => etag.clone(),
        // Ours are ~40 bytes; a longer one cannot match and need not travel.
        None => client.etags().find(|tag| tag.len() <= MAX_ASKED_ETAG).unwrap_or_default().to_owned(),
    };
    let mut answer = list(&state, &forwarded, &request, ask).await?;
    if client.holds(&answer.etag) {
        return Ok(not_modified(&answer.etag));
    }
    if answer.not_modified {
        match kept.filter(|(etag, _)| *etag == answer.etag) {
            Some((etag, body)) => return Ok(page(&etag, body)),
            // A service answering not_modified for a page we did not ask
            // about breaks the protocol; ask for the page itself.
            None => answer = list(&state, &forwarded, &request, String::new()).await?,
        }
    }
    let body = written_bytes(&PageOf {
        data: answer.data.into_iter().map(dto::Session::from).collect(),
        next_cursor: answer.next_cursor,
    });
    let response = page(&answer.etag, body.clone());
    state.pages.keep(request, answer.etag, body);
    Ok(response)
}

async fn list(
    state: &RestState,
    forwarded: &Forwarded,
    request: &pb::ListSessionsRequest,
    if_none_match: String,
) -> Result<pb::ListSessionsResponse, ApiError> {
    let message = pb::ListSessionsRequest { if_none_match, ..request.clone() };
    state.call(state.backend.list_sessions(forwarded.clone().request(message))).await
}

/// `W/"etag"`; `None` for an etag that cannot be a header (a remote server
/// that sends none, or one this layer would not echo).
fn etag_header(etag: &str) -> Option<HeaderValue> {
    let printable = !etag.is_empty() && etag.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    printable.then(|| HeaderValue::try_from(format!("W/\"{etag}\"")).ok()).flatten()
}

fn page(etag: &str, body: Bytes) -> Response {
    let mut response = json_response(body);
    cache_headers(&mut response, etag);
    response
}

fn not_modified(etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    cache_headers(&mut response, etag);
    response
}

fn cache_headers(response: &mut Response, etag: &str) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
    if let Some(etag) = etag_header(etag) {
        headers.insert(header::ETAG, etag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(header: &str) -> IfNoneMatch {
        IfNoneMatch(Some(HeaderValue::from_str(header).unwrap()))
    }

    #[test]
    fn if_none_match_lists_weak_and_strong_etags_and_star() {
        let listed = client(r#"W/"a1.2", "b3.4" ,W/"c""#);
        assert_eq!(listed.etags().collect::<Vec<_>>(), ["a1.2", "b3.4", "c"]);
        assert!(listed.holds("b3.4") && listed.holds("a1.2"));
        assert!(!listed.holds("a1") && !listed.holds(""), "exact matches only; an empty etag never matches");
        assert!(client(" * ").holds("anything"));
        assert!(!client("*").holds(""), "no etag, nothing to match");
        assert!(!IfNoneMatch(None).holds("a1.2"));
        assert_eq!(client("a1.2, \"unterminated").etags().count(), 0, "unquoted tags are not etags");
    }

    #[test]
    fn only_printable_etags_become_headers() {
        assert_eq!(etag_header("3fa9.42").unwrap(), r#"W/"3fa9.42""#);
        for bad in ["", "a\"b", "a b", "é"] {
            assert!(etag_header(bad).is_none(), "{bad:?}");
        }
    }
}
