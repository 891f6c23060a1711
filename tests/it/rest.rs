//! The REST layer, black-box over HTTP against the real binary: every
//! endpoint, the exact JSON shapes, every row of the status table that a
//! client can provoke, the custom-verb parsing, CORS, and the standalone
//! `rest --upstream` mode.

use std::time::Duration;

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Rest {
    _jwks: JwksServer,
    gw: Gateway,
    host: ScriptedHost,
    http: reqwest::Client,
    admin: String,
}

async fn rest(extra: &[&str]) -> Rest {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..30).map(|i| contact(i, "c")).collect(),
        groups: (0..4).map(|i| group(i, 3, "g")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let mut args = vec!["--host".to_owned(), format!("gw-1={url}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Platform { jwks, gw, admin } = Platform::start(&args).await;
    let mut lines = vec![
        session_line("s1", "org_a", "working", "gw-1"),
        session_line("sess:colon", "org_b", "stopped", "gw-1"),
        session_line("s-nohost", "org_c", "failed", "gw-none"),
    ];
    lines.extend((0..5).map(|i| session_line(&format!("t{i}"), "org_c", "working", "gw-1")));
    assert!(import(&gw.db, &lines.join("\n")).status.success());
    Rest { _jwks: jwks, gw, host, http: reqwest::Client::new(), admin }
}

impl Rest {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, self.gw.http(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.send(Method::GET, path, Some(&self.admin)).await;
        (s, v)
    }

    async fn post(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(Method::POST, path, Some(&self.admin)).await
    }

    async fn wait_finished(&self, session: &str) -> Value {
        eventually("job to finish", Duration::from_secs(30), || async {
            let (s, job) = self.get(&format!("/api/v1/admin/sessions/{session}/backfill")).await;
            (s == 200 && matches!(job["status"].as_str(), Some("succeeded" | "failed"))).then_some(job)
        })
        .await
    }
}

fn assert_envelope(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].is_string(), "{body}");
    assert!(error["details"].is_object(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

const SESSION_FIELDS: [(&str, &str); 17] = [
    ("id", "string"),
    ("organizationId", "string"),
    ("createdByUserId", "null"),
    ("gatewayId", "string"),
    ("label", "string"),
    ("phoneNumber", "string"),
    ("waJid", "null"),
    ("waLid", "null"),
    ("status", "string"),
    ("autoRead", "bool"),
    ("presenceTyping", "bool"),
    ("isAdminSession", "bool"),
    ("ratePerMin", "null"),
    ("ratePerHour", "null"),
    ("createdAt", "number"),
    ("updatedAt", "number"),
    ("lastConnectedAt", "null"),
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "number",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

crate::both_backends!(documented_shapes_and_paging);
async fn documented_shapes_and_paging() {
    let r = rest(&[]).await;
    let (status, page) = r.get("/api/v1/admin/sessions?limit=3").await;
    assert_eq!(status, 200);
    assert_eq!(page.as_object().unwrap().len(), 2);
    let first = &page["data"][0];
    assert_eq!(first.as_object().unwrap().len(), 17, "{first}");
    for (field, expected) in SESSION_FIELDS {
        assert_eq!(kind(&first[field]), expected, "{field} in {first}");
    }
    assert_eq!(first["createdAt"], json!(1719662400000i64));
    assert_eq!(first["id"], "s-nohost", "ordered by id");
    assert_eq!(first["status"], "failed");
    let mut seen = page["data"].as_array().unwrap().len();
    let mut cursor = page["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let (s, p) = r.get(&format!("/api/v1/admin/sessions?limit=3&cursor={cursor}")).await;
        assert_eq!(s, 200);
        seen += p["data"].as_array().unwrap().len();
        match &p["nextCursor"] {
            Value::Null => break,
            Value::String(c) => cursor = c.clone(),
            other => panic!("nextCursor {other}"),
        }
    }
    assert_eq!(seen, 8);
    let (_, filtered) = r.get("/api/v1/admin/sessions?organizationId=org_c&status=working&gatewayId=gw-1").await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 5);
    assert_eq!(filtered["nextCursor"], Value::Null);
    let (_, clamped) = r.get("/api/v1/admin/sessions?limit=100000").await;
    assert_eq!(clamped["data"].as_array().unwrap().len(), 8);

    // Backfill: 202 + Location + BackfillJob; then status, watch, contacts, groups.
    let (status, headers, job) = r.post("/api/v1/admin/sessions/s1:backfill").await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(headers["location"], "/api/v1/admin/sessions/s1/backfill");
    assert_eq!(job.as_object().unwrap().len(), 10, "{job}");
    for field in ["id", "organizationId", "sessionId", "status"] {
        assert!(job[field].is_string(), "{field}");
    }
    assert!(job["startedAt"].is_i64() && job["finishedAt"].is_null() && job["error"].is_null());
    assert!(matches!(job["status"].as_str(), Some("queued" | "running")));
    let done = r.wait_finished("s1").await;
    assert_eq!(
        (done["status"].as_str(), done["contacts"].as_i64(), done["groups"].as_i64(), done["groupMembers"].as_i64()),
        (Some("succeeded"), Some(30), Some(4), Some(12))
    );
    assert!(done["finishedAt"].is_i64());

    let watch =
        r.http.get(r.gw.http("/api/v1/admin/sessions/s1/backfill:watch")).bearer_auth(&r.admin).send().await.unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(watch.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = watch.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.last().unwrap()["status"], "succeeded");

    let (s, contacts) = r.get("/api/v1/admin/sessions/s1/contacts?limit=20").await;
    assert_eq!(s, 200);
    assert_eq!(contacts["data"].as_array().unwrap().len(), 20);
    assert_eq!(contacts["data"][0].as_object().unwrap().len(), 7);
    assert_eq!(contacts["data"][0]["fullName"], Value::Null);
    let next = contacts["nextCursor"].as_str().unwrap();
    let (_, rest_page) = r.get(&format!("/api/v1/admin/sessions/s1/contacts?cursor={next}")).await;
    assert_eq!(rest_page["data"].as_array().unwrap().len(), 10);
    assert_eq!(rest_page["nextCursor"], Value::Null);
    let (s, groups) = r.get("/api/v1/admin/sessions/s1/groups").await;
    assert_eq!(s, 200);
    assert_eq!(groups["data"].as_array().unwrap().len(), 4);
    assert_eq!(groups["data"][0]["participantCount"], json!(3));
    assert_eq!(groups["data"][0]["createdAt"], json!(1_700_000_000_000i64));
    assert!(groups["data"][0].get("participants").is_none(), "members are paged separately");
    assert_eq!(groups["data"][0].as_object().unwrap().len(), 9);
    // Members of one group, with the jid's @ literal or percent-encoded.
    for group in ["g0000@g.us", "g0000%40g.us"] {
        let (s, members) = r.get(&format!("/api/v1/admin/sessions/s1/groups/{group}/participants?limit=2")).await;
        assert_eq!(s, 200, "{members}");
        assert_eq!(members["data"].as_array().unwrap().len(), 2);
        assert!(members["data"][0]["isAdmin"].as_bool().unwrap());
        assert_eq!(members["data"][0].as_object().unwrap().len(), 6);
        let next = members["nextCursor"].as_str().unwrap();
        let (_, last) = r.get(&format!("/api/v1/admin/sessions/s1/groups/{group}/participants?cursor={next}")).await;
        assert_eq!(last["data"].as_array().unwrap().len(), 1);
        assert_eq!(last["nextCursor"], Value::Null);
    }
    let (s, body) = r.get("/api/v1/admin/sessions/s1/groups/g9999@g.us/participants").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["details"]["reason"], "GROUP_NOT_FOUND");
    let (s, body) = r.get("/api/v1/admin/sessions/s1/groups/not-a-group/participants").await;
    assert_eq!(s, 400);
    assert_eq!(body["error"]["details"]["field"], "group_jid");

    // Cancel: nothing running is 409 in the envelope; unknown session 404.
    let (s, _, body) = r.post("/api/v1/admin/sessions/s1/backfill:cancel").await;
    assert_eq!(s, 409, "{body}");
    assert_envelope(&body, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "BACKFILL_NOT_RUNNING");
    let (s, _, body) = r.post("/api/v1/admin/sessions/nope/backfill:cancel").await;
    assert_eq!(s, 404, "{body}");
    let (s, _, body) = r.send(Method::GET, "/api/v1/admin/sessions/s1/backfill:cancel", Some(&r.admin)).await;
    assert_eq!(s, 405, "{body}");
}

crate::both_backends!(status_table);
async fn status_table() {
    let r = rest(&[]).await;
    for (path, field) in [
        ("/api/v1/admin/sessions?limit=abc", "limit"),
        ("/api/v1/admin/sessions?limit=-1", "limit"),
        ("/api/v1/admin/sessions?limit=0", "limit"),
        ("/api/v1/admin/sessions?cursor=forged", "cursor"),
        ("/api/v1/admin/sessions?status=sleeping", "status"),
        ("/api/v1/admin/sessions/s1/contacts?limit=x", "limit"),
        ("/api/v1/admin/sessions?limit=5&limit=500", "limit"),
        ("/api/v1/admin/sessions?cursor=", "cursor"),
        ("/api/v1/admin/sessions/s1/groups?cursor=", "cursor"),
    ] {
        let (s, body) = r.get(path).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_envelope(&body, "invalid_argument");
        assert_eq!(body["error"]["details"]["field"], field, "{path}: {body}");
    }

    let (s, headers, body) = r.send(Method::GET, "/api/v1/admin/sessions", None).await;
    assert_eq!(s, 401);
    assert_envelope(&body, "unauthorized");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (s, headers, body) = r.send(Method::GET, "/api/v1/admin/sessions", Some("not-a-jwt")).await;
    assert_eq!((s, headers["www-authenticate"].to_str().unwrap()), (StatusCode::UNAUTHORIZED, "Bearer"));
    assert!(!body.to_string().contains("not-a-jwt"));

    let key_out = cli(&r.gw.db, &["api-keys", "create", "--org", "org_a"]);
    let key = String::from_utf8(key_out.stdout).unwrap().trim().to_owned();
    let resp = r.http.get(r.gw.http("/api/v1/admin/sessions")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_envelope(&resp.json().await.unwrap(), "forbidden");
    let owner = mint(KeyKind::Ec, "ec-1", &claims("u1", "org_a", "owner", None));
    let (s, _, body) = r.send(Method::POST, "/api/v1/admin/sessions/s1:backfill", Some(&owner)).await;
    assert_eq!(s, 403);
    assert_envelope(&body, "forbidden");

    let (s, body) = r.get("/api/v1/admin/sessions/nope/backfill").await;
    assert_eq!(s, 404);
    assert_envelope(&body, "not_found");
    assert_eq!(body["error"]["message"], "session not found");
    let (s, _, body) = r.post("/api/v1/admin/sessions/nope:backfill").await;
    assert_eq!(s, 404);
    assert_envelope(&body, "not_found");
    let (s, body) = r.get("/api/v1/admin/sessions/t1/backfill").await;
    assert_eq!(s, 404, "no job since start-up");
    assert_eq!(body["error"]["details"]["reason"], "BACKFILL_NOT_FOUND");
    let (s, body) = r.get("/api/v1/admin/sessions/s1").await;
    assert_eq!((s, body["id"].as_str()), (StatusCode::OK, Some("s1")), "{body}");
    let (s, body) = r.get("/api/v1/admin/sessions/nope").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["details"]["reason"], "SESSION_NOT_FOUND");
    for path in ["/nope", "/api/v1/admin", "/api/v1/admin/sessions/s1/other", "/api/v1/admin/sessions/s1/backfill/x"] {
        let (s, body) = r.get(path).await;
        assert_eq!(s, 404, "{path}");
        assert_envelope(&body, "not_found");
    }

    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/admin/sessions", "GET"),
        (Method::GET, "/api/v1/admin/sessions/s1:backfill", "POST"),
        (Method::POST, "/api/v1/admin/sessions/s1/backfill", "GET"),
        (Method::PUT, "/api/v1/admin/sessions/s1/contacts", "GET"),
        (Method::POST, "/api/v1/openapi.json", "GET"),
    ] {
        let (s, headers, body) = r.send(method.clone(), path, Some(&r.admin)).await;
        assert_eq!(s, 405, "{method} {path}");
        assert_envelope(&body, "method_not_allowed");
        assert_eq!(headers["allow"], allow);
    }

    // 409 while running: hold the host stream.
    r.host.set(|s| s.gated = true);
    let (s, _, first) = r.post("/api/v1/admin/sessions/t2:backfill").await;
    assert_eq!(s, 202);
    let (s, _, body) = r.post("/api/v1/admin/sessions/t2:backfill").await;
    assert_eq!(s, 409);
    assert_envelope(&body, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "BACKFILL_RUNNING");
    assert_eq!(body["error"]["details"]["sessionId"], "t2");
    assert_eq!(body["error"]["details"]["jobId"], first["id"]);
    r.host.open_gate();

    let (s, _, body) = r.post("/api/v1/admin/sessions/s-nohost:backfill").await;
    assert_eq!(s, 501);
    assert_envelope(&body, "not_implemented");

    // Bodies: empty and {} are fine; anything else is 400; huge is 413.
    let post = |body: &'static str| {
        r.http.post(r.gw.http("/api/v1/admin/sessions/t3:backfill")).bearer_auth(&r.admin).body(body).send()
    };
    let resp = post("{\"x\":1}").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_envelope(&resp.json().await.unwrap(), "invalid_argument");
    let resp = post("{not json").await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post("\r").await.unwrap();
    assert_eq!(resp.status(), 400, "whitespace alone is not an empty body");
    assert_envelope(&resp.json().await.unwrap(), "invalid_argument");
    let big = r
        .http
        .post(r.gw.http("/api/v1/admin/sessions/t3:backfill"))
        .bearer_auth(&r.admin)
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_envelope(&big.json().await.unwrap(), "payload_too_large");
    let resp = post("{}").await.unwrap();
    assert_eq!(resp.status(), 202);
}

crate::both_backends!(custom_verb_parsing);
async fn custom_verb_parsing() {
    let r = rest(&[]).await;
    // %3A is part of the id; the literal ':' separates the verb.
    let (s, headers, job) = r.post("/api/v1/admin/sessions/sess%3Acolon:backfill").await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["sessionId"], "sess:colon");
    assert_eq!(headers["location"], "/api/v1/admin/sessions/sess%3Acolon/backfill");
    let done = r.wait_finished("sess%3Acolon").await;
    assert_eq!(done["sessionId"], "sess:colon");
    // A literal ':' always splits: "sess:colon:backfill" is session "sess" with verb "colon:backfill".
    let (s, _, body) = r.post("/api/v1/admin/sessions/sess:colon:backfill").await;
    assert_eq!(s, 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown custom method"), "{body}");
    let (s, _, body) = r.post("/api/v1/admin/sessions/s1:restart").await;
    assert_eq!(s, 404);
    assert_envelope(&body, "not_found");
    let (s, body) = r.get("/api/v1/admin/sessions/sess:colon/backfill").await;
    assert_eq!(s, 404, "a literal ':' in a sub-resource path is no id: {body}");
    let (s, _, body) = r.post("/api/v1/admin/sessions/bad%ZZ:backfill").await;
    assert_eq!(s, 400);
    assert_envelope(&body, "invalid_argument");
    let (s, _, body) = r.post("/api/v1/admin/sessions/%20spaced:backfill").await;
    assert_eq!(s, 400, "{body}");
}

crate::both_backends!(request_ids_and_cors);
async fn request_ids_and_cors() {
    let r = rest(&["--cors-origin", "https://dash.example.test"]).await;
    let resp = r
        .http
        .get(r.gw.http("/api/v1/admin/sessions"))
        .bearer_auth(&r.admin)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = r.http.get(r.gw.http("/api/v1/admin/sessions")).bearer_auth(&r.admin).send().await.unwrap();
    assert!(!resp.headers()["x-request-id"].is_empty(), "generated when absent");

    let preflight = |origin: &'static str| {
        r.http
            .request(Method::OPTIONS, r.gw.http("/api/v1/admin/sessions/s1:backfill"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://dash.example.test").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://dash.example.test");
    assert!(ok.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let denied = preflight("https://evil.example.test").await.unwrap();
    assert!(denied.headers().get("access-control-allow-origin").is_none());

    // Without --cors-origin there are no CORS headers at all.
    let plain = rest(&[]).await;
    let resp = plain
        .http
        .get(plain.gw.http("/api/v1/admin/sessions"))
        .header("origin", "https://dash.example.test")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

crate::both_backends!(standalone_rest_in_front_of_a_separate_server);
async fn standalone_rest_in_front_of_a_separate_server() {
    let r = rest(&[]).await;
    let mut child = tokio::process::Command::new(BIN)
        .args(["rest", "--upstream", &format!("http://{}", r.gw.grpc_addr), "--http-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let addr = line.split("http=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let base = format!("http://{addr}");

    let resp = r.http.get(format!("{base}/api/v1/admin/sessions?limit=2")).bearer_auth(&r.admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].clone();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let again = r.http.get(format!("{base}/api/v1/admin/sessions?limit=2")).bearer_auth(&r.admin);
    let resp = again.header("if-none-match", etag.clone()).send().await.unwrap();
    assert_eq!((resp.status(), &resp.headers()["etag"]), (StatusCode::NOT_MODIFIED, &etag), "etags pass through");
    let resp =
        r.http.post(format!("{base}/api/v1/admin/sessions/s1:backfill")).bearer_auth(&r.admin).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let resp = r.http.get(format!("{base}/api/v1/admin/sessions")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "auth is the upstream's, forwarded");
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");

    // Upstream down: 503 unavailable in the envelope.
    let mut down = tokio::process::Command::new(BIN)
        .args(["rest", "--upstream", "http://127.0.0.1:9", "--http-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(down.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let addr = line.split("http=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let resp = r.http.get(format!("http://{addr}/api/v1/admin/sessions")).bearer_auth(&r.admin).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_envelope(&resp.json().await.unwrap(), "unavailable");
}
