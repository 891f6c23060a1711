//! The two listeners under abuse, tried as an attacker or a careless client
//! would: made-up paths and methods (metrics stay bounded), an HTTP/2 client
//! ignoring the stream limit, slow and idle clients, too many connections,
//! floods of forged credentials, malformed requests without credentials,
//! request ids, tokens that expire mid-stream, and streams held open across
//! a stop. The real binary, real sockets.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost, contact};
use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;
use wa_gateway::proto::admin::*;

async fn gateway(extra: &[&str]) -> (JwksServer, Gateway, String) {
    let Platform { jwks, gw, admin } = Platform::start(extra).await;
    assert!(import(&gw.db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
    (jwks, gw, admin)
}

fn forged() -> String {
    // Signed by a key the JWKS never published, under a published kid: a
    // full RS256 signature check that fails.
    let mut claims = super_admin_claims();
    claims["jti"] = serde_json::json!(ulid::Ulid::new().to_string());
    mint(KeyKind::Rogue, "rsa-1", &claims)
}

#[tokio::test]
async fn made_up_paths_and_methods_create_no_metric_series() {
    let (_jwks, gw, _) = gateway(&[]).await;
    let http = reqwest::Client::new();
    let size = || async { http.get(gw.http("/metrics")).send().await.unwrap().text().await.unwrap().len() };
    // Warm up the series a real client creates.
    http.get(gw.http("/healthz")).send().await.unwrap();
    common::h2raw::flood(&gw.grpc_addr, "/warm.up/Call", 1).await;
    http.request(reqwest::Method::from_bytes(b"BREW").unwrap(), gw.http("/x")).send().await.unwrap();
    let before = size().await;
    for i in 0..100 {
        common::h2raw::flood(&gw.grpc_addr, &format!("/made.up.Service{i}/Method{i}"), 1).await;
        let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
        let response = http.request(method, gw.http(&format!("/random/{i}"))).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let after = size().await;
    assert!(after < before + 2048, "/metrics grew from {before} to {after} bytes");
    let body = http.get(gw.http("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(body.contains(r#"method="other""#), "unknown gRPC methods share one label");
    assert!(!body.contains("made.up") && !body.contains("M42"), "no client-chosen label value");
}

#[tokio::test]
async fn an_http2_client_cannot_hold_more_streams_than_advertised() {
    let (_jwks, gw, _) = gateway(&["--grpc-max-streams", "8"]).await;
    let outcome = common::h2raw::flood(&gw.grpc_addr, "/wa.gateway.admin.v1.AdminService/ListSessions", 40).await;
    assert_eq!(outcome.advertised, Some(8), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert!(outcome.refused.len() >= 32 || outcome.goaway.is_some(), "excess streams are refused: {outcome:?}");
    // The server is fine for everyone else.
    let mut client = gw.client().await;
    let err = client.list_sessions(ListSessionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// Sends a request head one header line every 300 ms; how long until the
/// server closes the connection.
async fn trickle_head(addr: &str) -> Duration {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    loop {
        if tcp.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => panic!("the server answered a head that never ended"),
            Err(_) => assert!(started.elapsed() < Duration::from_secs(20), "slow client never dropped"),
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_dropped_and_connections_are_capped() {
    let (_jwks, gw, _) = gateway(&["--http-header-timeout-secs", "2", "--http-max-connections", "2"]).await;
    let took = trickle_head(&gw.http_addr).await;
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(6), "dropped after {took:?}");

    // An idle keep-alive connection is closed by the same timer.
    let mut idle = TcpStream::connect(&gw.http_addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let waited = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(closed, 0, "closed, not answered");
    assert!(waited.elapsed() < Duration::from_secs(6), "idle for {:?}", waited.elapsed());

    // Two connections are open: a third waits until one of them closes.
    let holders = [TcpStream::connect(&gw.http_addr).await.unwrap(), TcpStream::connect(&gw.http_addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(15)).build().unwrap();
    let started = Instant::now();
    let third = http.get(gw.http("/healthz")).send().await.unwrap();
    assert_eq!(third.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(1000), "served only after a held connection timed out");
    drop(holders);
}

#[tokio::test]
async fn failed_credentials_are_rate_limited_but_a_verified_token_never_is() {
    let (_jwks, gw, admin) = gateway(&["--auth-failures-per-minute", "20"]).await;
    let http = reqwest::Client::new();
    let list = gw.http("/api/v1/admin/sessions");
    assert_eq!(http.get(&list).bearer_auth(&admin).send().await.unwrap().status(), 200, "verified and cached");
    let metrics = || async { http.get(gw.http("/metrics")).send().await.unwrap().text().await.unwrap() };
    let signature_checks = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("wa_gateway_auth_rejections_total") && l.contains("INVALID_SIGNATURE"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let checks_before = signature_checks(&metrics().await);

    let attempts = (0..60).map(|_| http.get(&list).bearer_auth(forged()).send());
    let (mut unauthorized, mut limited) = (0, 0);
    for response in futures_util::future::join_all(attempts).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limited");
                assert_eq!(body["error"]["details"]["reason"], "TOO_MANY_FAILED_CREDENTIALS");
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The budget (20) plus the few checks already in flight when it ran out.
    assert!(unauthorized <= 26 && limited >= 34, "{unauthorized} refused, {limited} limited");
    let checks = signature_checks(&metrics().await) - checks_before;
    assert!(checks <= 26.0, "{checks} signature checks: the budget is checked before verifying");

    // Meanwhile the cached token keeps working from the same address.
    assert_eq!(http.get(&list).bearer_auth(&admin).send().await.unwrap().status(), 200);
    // gRPC says it too, with RetryInfo.
    let err = gw.client().await.list_sessions(authed(ListSessionsRequest::default(), &forged())).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.get_details_retry_info().and_then(|r| r.retry_delay).is_some(), "{err:?}");
}

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    let (_jwks, gw, _) = gateway(&["--auth-failures-per-minute", "3", "--trusted-proxy", "127.0.0.0/8"]).await;
    let http = reqwest::Client::new();
    let list = gw.http("/api/v1/admin/sessions");
    let as_client = |ip: &'static str| http.get(&list).bearer_auth(forged()).header("x-forwarded-for", ip).send();
    for _ in 0..4 {
        as_client("203.0.113.1").await.unwrap();
    }
    assert_eq!(as_client("203.0.113.1").await.unwrap().status(), 429, "this client spent its budget");
    assert_eq!(as_client("203.0.113.2").await.unwrap().status(), 401, "another client has its own");

    let (_jwks, untrusting, _) = gateway(&["--auth-failures-per-minute", "3"]).await;
    let list = untrusting.http("/api/v1/admin/sessions");
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"] {
        http.get(&list).bearer_auth(forged()).header("x-forwarded-for", ip).send().await.unwrap();
    }
    let spoofed = http.get(&list).bearer_auth(forged()).header("x-forwarded-for", "198.51.100.9").send();
    assert_eq!(spoofed.await.unwrap().status(), 429, "an untrusted X-Forwarded-For picks no new budget");
}

#[tokio::test]
async fn authentication_comes_before_every_other_check() {
    let (_jwks, gw, admin) = gateway(&[]).await;
    let key = String::from_utf8(cli(&gw.db, &["api-keys", "create", "--org", "org_a"]).stdout).unwrap();
    let http = reqwest::Client::new();
    let big = vec![b'x'; 64 * 1024];
    let cases: Vec<(&str, reqwest::Method, &str, Option<Vec<u8>>, u16)> = vec![
        ("bad limit", reqwest::Method::GET, "/api/v1/admin/sessions?limit=abc", None, 400),
        ("empty cursor", reqwest::Method::GET, "/api/v1/admin/sessions/s1/contacts?cursor=", None, 400),
        ("large body", reqwest::Method::POST, "/api/v1/admin/sessions/s1:backfill", Some(big), 413),
        ("unknown path", reqwest::Method::GET, "/api/v1/admin/nowhere", None, 404),
        ("wrong method", reqwest::Method::DELETE, "/api/v1/admin/sessions", None, 405),
    ];
    for (case, method, path, body, authorized) in cases {
        let send = |credential: Option<(&str, &str)>| {
            let mut request = http.request(method.clone(), gw.http(path));
            if let Some((name, value)) = credential {
                request = request.header(name, value);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            request.send()
        };
        let anonymous = send(None).await.unwrap();
        assert_eq!(anonymous.status(), 401, "{case} without a credential");
        assert!(anonymous.headers().contains_key("www-authenticate"));
        let garbage = send(Some(("authorization", "Bearer not.a.token"))).await.unwrap();
        assert_eq!(garbage.status(), 401, "{case} with a bad credential");
        let api_key = send(Some(("x-api-key", key.trim()))).await.unwrap();
        assert_eq!(api_key.status(), 403, "{case} with an api-key");
        let bearer = format!("Bearer {admin}");
        let allowed = send(Some(("authorization", &bearer))).await.unwrap();
        assert_eq!(allowed.status().as_u16(), authorized, "{case} as super_admin");
        let body: Value = allowed.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{case}: {body}");
    }
}

#[tokio::test]
async fn every_error_of_the_http_port_is_an_envelope() {
    let jwks = JwksServer::start().await;
    jwks.set_down(true);
    let gw = Gateway::start(&jwks.url(), &[]).await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let response = http.post(gw.http(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], "GET");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{path}");
    }
    let response = http.get(gw.http("/no/such/thing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let response = http.get(gw.http("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503, "no signing keys yet");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(body["error"]["details"]["jwks"], "not loaded");
    assert_eq!(body["error"]["details"]["store"], "ok");
}

#[tokio::test]
async fn grpc_request_ids_are_checked_like_rest_ones() {
    let (_jwks, gw, admin) = gateway(&[]).await;
    let mut client = gw.client().await;
    let call = |id: &str| {
        let mut request = authed(ListSessionsRequest::default(), &admin);
        request.metadata_mut().insert("x-request-id", id.parse().unwrap());
        request
    };
    let echoed = client.list_sessions(call("trace-42")).await.unwrap();
    assert_eq!(echoed.metadata().get("x-request-id").unwrap(), "trace-42");
    let long = "x".repeat(200);
    for bad in ["has spaces in it", long.as_str()] {
        let replaced = client.list_sessions(call(bad)).await.unwrap();
        let id = replaced.metadata().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        assert!(id != bad && id.len() == 26, "{bad:?} became {id:?}");
    }
}

#[tokio::test]
async fn a_watch_ends_when_the_callers_token_expires() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..50).map(|i| contact(i, "c")).collect(),
        batch: 10,
        gated: true,
        ..Default::default()
    })
    .await;
    let (_jwks, gw, admin) = gateway(&["--jwt-leeway-secs", "0", "--host", &format!("gw-1={url}")]).await;
    let mut client = gw.client().await;
    client.start_backfill(authed(StartBackfillRequest { session_id: "s1".into() }, &admin)).await.unwrap();
    let mut short = super_admin_claims();
    short["exp"] = serde_json::json!(jwks_now() + 3);
    let short = mint(KeyKind::Rsa, "rsa-1", &short);

    let request = WatchBackfillRequest { session_id: "s1".into(), ..Default::default() };
    let mut watch = client.watch_backfill(authed(request, &short)).await.unwrap().into_inner();
    let started = Instant::now();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(15), watch.next()).await.expect("the stream went quiet") {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated);
    assert_eq!(ended.get_details_error_info().unwrap().reason, "TOKEN_EXPIRED");
    assert!(started.elapsed() < Duration::from_secs(8), "ended {:?} after the start", started.elapsed());

    // The NDJSON stream ends the same way, in the envelope.
    let mut short = super_admin_claims();
    short["exp"] = serde_json::json!(jwks_now() + 2);
    let short = mint(KeyKind::Rsa, "rsa-1", &short);
    let body = reqwest::Client::new()
        .get(gw.http("/api/v1/admin/sessions/s1/backfill:watch"))
        .bearer_auth(short)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "unauthorized", "{body}");
    host.open_gate();
}

#[tokio::test]
async fn open_streams_do_not_keep_a_stopping_server_alive() {
    let (_jwks, mut gw, _) = gateway(&["--shutdown-timeout-secs", "2"]).await;
    // A reflection stream that never sends a message, held open.
    let _held = common::h2raw::hold(&gw.grpc_addr, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").await;
    let stopping = Instant::now();
    let status = gw.stop().await;
    assert_eq!(status.code(), Some(0));
    assert!(stopping.elapsed() < Duration::from_secs(6), "stopped after {:?}", stopping.elapsed());
}
