//! Conditional listing, black-box over REST and gRPC against the real
//! binary: every page carries an etag, `If-None-Match` gets 304 while no
//! session changed, and neither the client's etag nor the REST layer's kept
//! pages ever hide a change, including one written by another process.

use crate::common::*;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use serde_json::Value;
use wa_gateway::proto::admin::ListSessionsRequest;

struct Listing {
    _jwks: JwksServer,
    gw: Gateway,
    http: reqwest::Client,
    admin: String,
}

async fn listing() -> Listing {
    let Platform { jwks, gw, admin } = Platform::start(&[]).await;
    let lines: Vec<String> = (0..4).map(|i| session_line(&format!("s{i}"), "org_a", "working", "gw-1")).collect();
    assert!(import(&gw.db, &lines.join("\n")).status.success());
    let admin = admin;
    Listing { _jwks: jwks, gw, http: reqwest::Client::new(), admin }
}

/// Session `id` relabelled, with a newer `updatedAt` so the import keeps it.
fn relabelled(id: &str, label: &str) -> String {
    serde_json::json!({
        "id": id, "organizationId": "org_a", "gatewayId": "gw-1", "status": "working",
        "label": label, "createdAt": 1719662400000i64, "updatedAt": 1719662500000i64,
    })
    .to_string()
}

impl Listing {
    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        if_none_match: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self.http.get(self.gw.http(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = if_none_match {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    async fn page(&self, path: &str) -> (String, Value) {
        let (status, headers, body) = self.get(path, Some(&self.admin), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers[CACHE_CONTROL], "private, no-cache");
        let etag = headers[ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() > 4, "{etag}");
        (etag, serde_json::from_str(&body).unwrap())
    }
}

fn labels(page: &Value) -> Vec<&str> {
    page["data"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect()
}

const PAGE: &str = "/api/v1/admin/sessions?limit=2";

crate::both_backends!(rest_pages_carry_an_etag_and_answer_304_until_a_session_changes);
async fn rest_pages_carry_an_etag_and_answer_304_until_a_session_changes() {
    let l = listing().await;
    let (etag, first) = l.page(PAGE).await;
    assert_eq!(labels(&first), ["line s0", "line s1"]);
    let (again, second) = l.page(PAGE).await;
    assert_eq!((&again, &second), (&etag, &first), "nothing changed: the same page and etag");

    let (status, headers, body) = l.get(PAGE, Some(&l.admin), Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!((headers[ETAG].to_str().unwrap(), body.as_str()), (etag.as_str(), ""));
    let listed = format!("W/\"other\", {etag}");
    assert_eq!(l.get(PAGE, Some(&l.admin), Some(&listed)).await.0, StatusCode::NOT_MODIFIED);
    assert_eq!(l.get(PAGE, Some(&l.admin), Some("*")).await.0, StatusCode::NOT_MODIFIED);
    assert_eq!(l.get(PAGE, Some(&l.admin), Some("W/\"other\"")).await.0, 200, "an etag we never gave");
    assert_eq!(l.get(PAGE, Some(&l.admin), Some("not an etag")).await.0, 200, "ignored, not refused");
    let huge = format!("W/\"{}\"", "x".repeat(20_000));
    assert_eq!(l.get(PAGE, Some(&l.admin), Some(&huge)).await.0, 200, "a huge etag cannot match");

    // The service still decides: no credential is 401, a bad cursor 400.
    let (status, headers, _) = l.get(PAGE, None, Some(&etag)).await;
    assert_eq!((status, headers["www-authenticate"].to_str().unwrap()), (StatusCode::UNAUTHORIZED, "Bearer"));
    let bad_cursor = format!("{PAGE}&cursor=forged");
    assert_eq!(l.get(&bad_cursor, Some(&l.admin), Some(&etag)).await.0, StatusCode::BAD_REQUEST);

    // Another process changes a listed session: the kept page is not served,
    // the client's etag no longer matches, and the new page has a new etag.
    assert!(import(&l.gw.db, &relabelled("s1", "renamed")).status.success());
    let (status, headers, body) = l.get(PAGE, Some(&l.admin), Some(&etag)).await;
    assert_eq!(status, 200, "{body}");
    let changed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(labels(&changed), ["line s0", "renamed"]);
    let fresh = headers[ETAG].to_str().unwrap();
    assert_ne!(fresh, etag);
    assert_eq!(l.page(PAGE).await, (fresh.to_owned(), changed), "the new page, kept under the new etag");

    // A change off the page moves the etag too (sessions are one revision).
    assert!(import(&l.gw.db, &relabelled("s3", "far away")).status.success());
    assert_ne!(l.page(PAGE).await.0, fresh);
    // An import that changes nothing (an older version) keeps it.
    let (kept, _) = l.page(PAGE).await;
    assert!(import(&l.gw.db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
    assert_eq!(l.page(PAGE).await.0, kept);
}

crate::both_backends!(grpc_if_none_match_answers_not_modified_without_data);
async fn grpc_if_none_match_answers_not_modified_without_data() {
    let l = listing().await;
    let mut client = l.gw.client().await;
    let request = |if_none_match: &str| ListSessionsRequest {
        limit: Some(2),
        if_none_match: if_none_match.to_owned(),
        ..Default::default()
    };
    let page = client.list_sessions(authed(request(""), &l.admin)).await.unwrap().into_inner();
    assert_eq!((page.data.len(), page.not_modified), (2, false));
    assert!(!page.etag.is_empty());

    let same = client.list_sessions(authed(request(&page.etag), &l.admin)).await.unwrap().into_inner();
    assert!(same.not_modified && same.data.is_empty() && same.next_cursor.is_none(), "{same:?}");
    assert_eq!(same.etag, page.etag);
    let stale = client.list_sessions(authed(request("stale.1"), &l.admin)).await.unwrap().into_inner();
    assert_eq!((stale.data, stale.etag, stale.not_modified), (page.data.clone(), page.etag.clone(), false));

    assert!(import(&l.gw.db, &relabelled("s0", "renamed")).status.success());
    let changed = client.list_sessions(authed(request(&page.etag), &l.admin)).await.unwrap().into_inner();
    assert!(!changed.not_modified && changed.etag != page.etag, "{changed:?}");
    assert_eq!(changed.data[0].label.as_deref(), Some("renamed"));
}

/// Two databases never share an etag, even with the same sessions: a
/// client's etag from before a database was replaced cannot match after.
#[tokio::test]
async fn fresh_databases_have_different_etags() {
    let (one, two) = (listing().await, listing().await);
    assert_ne!(one.page(PAGE).await.0, two.page(PAGE).await.0);
}
