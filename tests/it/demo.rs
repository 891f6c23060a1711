//! First contact and operations: `serve --demo` as a newcomer would use it,
//! the README quickstart lines run verbatim against it, metrics, the audit
//! trail, and the operator CLI.

use crate::common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{BIN, eventually};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Demo {
    _child: Child,
    grpc: String,
    http: String,
    banner: Vec<String>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    async fn start() -> Self {
        let mut child = Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "serve",
                "--demo",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !banner.iter().any(|l: &String| l.contains("demo-initech-02 --follow")) {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .expect("demo banner")
                .unwrap()
                .expect("demo exited");
            banner.push(line);
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let first = &banner[0];
        let field = |key: &str| first.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap().to_owned();
        Self { grpc: field("grpc="), http: field("http="), banner, logs, _child: child }
    }

    fn token(&self) -> String {
        let line = self.banner.iter().find(|l| l.starts_with("export WA_GATEWAY_TOKEN=")).unwrap();
        line.trim_start_matches("export WA_GATEWAY_TOKEN=").trim_matches('\'').to_owned()
    }

    fn exported(&self, name: &str) -> String {
        let line = self.banner.iter().find(|l| l.starts_with(&format!("export {name}="))).unwrap();
        line.split_once('=').unwrap().1.trim_matches('\'').to_owned()
    }

    fn shell(&self, line: &str) -> std::process::Output {
        let bin_dir = std::path::Path::new(BIN).parent().unwrap();
        let tools = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/venv/bin");
        std::process::Command::new("sh")
            .args(["-c", line])
            .env("PATH", format!("{}:{tools}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("WA_GATEWAY_TOKEN", self.token())
            .output()
            .unwrap()
    }

    /// The `/metrics` page, as text.
    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http)).await.unwrap().text().await.unwrap()
    }

    fn metric(&self, body: &str, name: &str, labels: &[&str]) -> f64 {
        body.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The folder of the throwaway database the banner names.
    fn folder(&self) -> std::path::PathBuf {
        let line = self.banner.iter().find_map(|l| l.split_once("Throwaway database: ")).expect("database line").1;
        std::path::Path::new(line.trim()).parent().unwrap().to_owned()
    }

    /// SIGTERM, then the exit status. Every test ends with it, so the demo
    /// removes its throwaway folder (`kill_on_drop`'s SIGKILL, left for a
    /// test that fails before, would leave the folder behind). Async, so
    /// the tasks draining the demo's output go on while it stops.
    async fn stop(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self._child.id().expect("running")).unwrap();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(30), self._child.wait())
            .await
            .expect("the demo stops within 30 s of SIGTERM")
            .unwrap()
    }
}

#[tokio::test]
async fn a_stopped_demo_removes_its_throwaway_database() {
    let demo = Demo::start().await;
    let folder = demo.folder();
    assert!(folder.join("demo.db").exists(), "{}", folder.display());
    assert_eq!(demo.stop().await.code(), Some(0));
    assert!(!folder.exists(), "{} is left behind", folder.display());
}

#[tokio::test]
async fn the_printed_curl_line_lists_sessions_of_several_organizations() {
    let demo = Demo::start().await;
    let text = demo.banner.join("\n");
    assert!(text.contains("DEMO MODE"), "the demo says it is one");
    let curl =
        demo.banner.iter().find(|l| l.starts_with("curl -s -H") && l.ends_with("/api/v1/admin/sessions")).unwrap();
    let out = demo.shell(curl);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let orgs: std::collections::HashSet<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["organizationId"].as_str().unwrap()).collect();
    assert!(orgs.len() >= 3, "{orgs:?}");
    let gateways: std::collections::HashSet<&str> =
        page["data"].as_array().unwrap().iter().filter_map(|s| s["gatewayId"].as_str()).collect();
    assert_eq!(gateways.len(), 2);

    // The printed owner token and api-key are refused with 403.
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/admin/sessions", demo.http);
    let owner = http.get(&url).bearer_auth(demo.exported("OWNER_TOKEN")).send().await.unwrap();
    assert_eq!(owner.status(), 403);
    let key = http.get(&url).header("x-api-key", demo.exported("API_KEY")).send().await.unwrap();
    assert_eq!(key.status(), 403);
    // The printed grpcurl line works too.
    let grpcurl = demo.banner.iter().find(|l| l.starts_with("grpcurl ")).unwrap();
    let out = demo.shell(grpcurl);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}

/// The banner's first offer is the console link; the token appears there
/// and in the `export` line only, and the link signs a browser in.
#[tokio::test]
async fn the_printed_console_link_signs_in_and_leaves_no_token_in_the_address_bar() {
    let demo = Demo::start().await;
    let token = demo.token();
    let link = demo.banner.iter().find(|l| l.contains("/console/#token=")).expect("a console link").trim().to_owned();
    assert_eq!(link, format!("http://{}/console/#token={token}", demo.http));
    let offers: Vec<usize> = demo
        .banner
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with("http://")
                || l.starts_with("curl ")
                || l.starts_with("grpcurl ")
                || l.starts_with("wa-gateway admin")
        })
        .map(|(at, _)| at)
        .collect();
    assert!(demo.banner[offers[0]].contains("/console/"), "the console link comes first");
    assert_eq!(demo.banner.iter().filter(|l| l.contains(&token)).count(), 2, "the token is printed twice at most");

    let browser = common::webdriver::Browser::start(1280, 800).await;
    browser.goto(&link).await;
    let rows = "return document.querySelectorAll('tr[data-session]').length || null;";
    let shown = browser.wait("the demo's sessions", rows, serde_json::json!([])).await;
    assert!(shown.as_u64().unwrap() >= 6, "{shown}");
    let href = browser.run("return location.href;", serde_json::json!([])).await;
    assert_eq!(href, serde_json::json!(format!("http://{}/console/", demo.http)));
    let load = "const all = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]; \
                return {requests: all.length, bytes: all.reduce((n, e) => n + e.transferSize, 0), tableMs: performance.getEntriesByName('first-table')[0]?.startTime};";
    eprintln!("demo console first load: {}", browser.run(load, serde_json::json!([])).await);
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}

#[tokio::test]
async fn readme_quickstart_lines_run_against_the_demo() {
    let demo = Demo::start().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block =
        readme.split("<!-- quickstart:begin -->").nth(1).unwrap().split("<!-- quickstart:end -->").next().unwrap();
    let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with("```") && !l.trim().is_empty()).collect();
    assert!(lines.len() >= 10);
    for line in lines {
        let line = line.replace("127.0.0.1:8080", &demo.http).replace("127.0.0.1:50051", &demo.grpc);
        let out = demo.shell(&line);
        assert!(
            out.status.success(),
            "README line failed: {line}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}

/// REST metrics count the answer the client got. For an unknown custom method
/// an unauthenticated caller gets 401 (authentication comes first) and an
/// authenticated one 404, and each is counted under that status.
#[tokio::test]
async fn rest_metrics_count_the_status_the_client_got() {
    let demo = Demo::start().await;
    let http = reqwest::Client::new();
    let unknown = format!("http://{}/api/v1/admin/sessions/demo-acme-01:nope", demo.http);
    let counted = |body: &str, code: &str| {
        let code = format!("code=\"{code}\"");
        demo.metric(body, "wa_gateway_requests_total", &["transport=\"rest\"", "/api/v1/admin/sessions/{*rest}", &code])
    };
    let body = demo.metrics().await;
    let (before_401, before_404) = (counted(&body, "401"), counted(&body, "404"));
    assert_eq!(http.get(&unknown).bearer_auth("garbage").send().await.unwrap().status(), 401);
    assert_eq!(http.get(&unknown).bearer_auth(demo.token()).send().await.unwrap().status(), 404);
    let body = demo.metrics().await;
    assert_eq!((counted(&body, "401"), counted(&body, "404")), (before_401 + 1.0, before_404 + 1.0), "{body}");
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}

#[tokio::test]
async fn metrics_and_audit_events() {
    let demo = Demo::start().await;
    let http = reqwest::Client::new();
    let list = format!("http://{}/api/v1/admin/sessions", demo.http);
    let labels = ["transport=\"rest\"", "GET /api/v1/admin/sessions", "code=\"200\""];
    let before = demo.metric(&demo.metrics().await, "wa_gateway_requests_total", &labels);
    let resp = http.get(&list).bearer_auth(demo.token()).header("x-request-id", "audit-check-1").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = demo.metrics().await;
    assert_eq!(demo.metric(&body, "wa_gateway_requests_total", &labels), before + 1.0);
    assert!(body.contains("wa_gateway_request_duration_seconds_bucket"), "latency histogram");

    let rejected = |b: &str| {
        demo.metric(b, "wa_gateway_auth_rejections_total", &["credential=\"jwt\"", "reason=\"MALFORMED_TOKEN\""])
    };
    let before = rejected(&body);
    assert_eq!(http.get(&list).bearer_auth("garbage").send().await.unwrap().status(), 401);
    assert_eq!(rejected(&demo.metrics().await), before + 1.0);

    // A backfill moves the job and row counters; gRPC calls are counted by transport.
    let mut client =
        wa_gateway::proto::admin::admin_service_client::AdminServiceClient::connect(format!("http://{}", demo.grpc))
            .await
            .unwrap();
    let req = wa_gateway::proto::admin::StartBackfillRequest { session_id: "demo-acme-03".into() };
    client.start_backfill(common::authed(req, &demo.token())).await.unwrap();
    let body = eventually("backfill to finish", Duration::from_secs(30), || async {
        let body = demo.metrics().await;
        (demo.metric(&body, "wa_gateway_backfill_jobs_total", &["status=\"succeeded\""]) >= 1.0).then_some(body)
    })
    .await;
    assert!(demo.metric(&body, "wa_gateway_backfill_rows_total", &["kind=\"contacts\""]) >= 1000.0);
    assert!(
        demo.metric(&body, "wa_gateway_requests_total", &["transport=\"grpc\"", "StartBackfill", "code=\"OK\""]) >= 1.0
    );

    // Audit: one event per admin call, with the documented fields.
    let audit: Vec<Value> = demo
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect();
    let listed = audit.iter().find(|e| e["request_id"] == "audit-check-1").expect("audit event for the REST call");
    assert_eq!(listed["principal"], "demo_super_admin");
    assert_eq!(listed["action"], "ListSessions");
    assert_eq!(listed["outcome"], "OK");
    let started = audit.iter().find(|e| e["action"] == "StartBackfill").expect("audit event for StartBackfill");
    assert_eq!(started["session"], "demo-acme-03");
    assert!(!started["request_id"].as_str().unwrap().is_empty(), "generated request id");
    let refused = audit.iter().find(|e| e["reason"] == "MALFORMED_TOKEN").expect("audit event for the refused call");
    assert_eq!(refused["outcome"], "Unauthenticated");
    let all_logs = demo.logs.lock().unwrap().join("\n");
    assert!(!all_logs.contains(&demo.token()), "tokens never reach the logs");
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}

#[tokio::test]
async fn operator_cli_follows_jobs_and_reports_failures() {
    let demo = Demo::start().await;
    let server = format!("http://{}", demo.grpc);
    let admin = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(["admin", "--server", &server])
            .args(args)
            .env("WA_GATEWAY_TOKEN", demo.token())
            .output()
            .unwrap()
    };
    let out = admin(&["backfill", "start", "demo-globex-02", "--follow"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    let out = admin(&["backfill", "start", "demo-initech-02", "--follow"]);
    assert!(!out.status.success(), "a failed job exits non-zero");
    assert!(String::from_utf8_lossy(&out.stderr).contains("session not connected"));

    let out = admin(&["--json", "backfill", "status", "demo-globex-02"]);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["contacts"], 2000);

    // The demo host is paced: following a job shows it grow, line by line.
    let out = admin(&["--json", "backfill", "start", "demo-acme-03", "--follow"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let states: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let growing = states.iter().filter(|j| j["status"] == "running" && j["contacts"].as_u64().unwrap() > 0).count();
    assert!(growing >= 5, "progress shown along the way: {states:?}");
    assert!(states.iter().all(|j| j["id"] == states[0]["id"]), "one job followed");

    // Cancel from the CLI: the job ends failed, saying why.
    let out = admin(&["backfill", "start", "demo-acme-04"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = admin(&["backfill", "cancel", "demo-acme-04"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("failed") && line.contains("cancelled"), "{line}");
    let out = admin(&["backfill", "cancel", "demo-acme-04"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backfill is queued or running"));

    let out = admin(&["--json", "sessions", "list", "--all", "--limit", "5"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 12);
    let out = admin(&["sessions", "list", "--org", "org_acme"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ID") && table.lines().count() == 5, "{table}");

    let out = admin(&["backfill", "status", "no-such-session"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    let bad = std::process::Command::new(BIN)
        .args(["admin", "--server", &server, "--token", "nope", "sessions", "list"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Unauthenticated"));
    assert_eq!(demo.stop().await.code(), Some(0), "a clean stop");
}
