//! `deploy/` against the binary: every metric the alert rules and the
//! dashboard read exists in a real scrape, and the Kubernetes manifests and
//! the systemd unit use flags, variables, ports and probe paths that
//! `wa-gateway serve` has and serves. (`promtool check rules` and
//! `promtool test rules` run in ./scripts/test.)

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::otlp::OtlpReceiver;
use crate::common::*;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use wa_gateway::proto::admin::*;

fn deploy(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// Every `wa_gateway_…` name a text mentions.
fn metric_names(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("wa_gateway_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_alert_rules_and_the_dashboard_read_is_exported() {
    let receiver = OtlpReceiver::start().await;
    let script =
        Script { contacts: vec![contact(1, "m")], groups: vec![group(1, 2, "m")], batch: 10, ..Default::default() };
    let (_host, host_url) = ScriptedHost::start(script).await;
    let host = format!("gw-1={host_url}");
    let Platform { jwks: _jwks, gw, admin: token } =
        Platform::start(&["--host", &host, "--otlp-endpoint", &receiver.url]).await;
    assert!(import(&gw.db, &session_line("sess-1", "org_a", "working", "gw-1")).status.success());
    let http = reqwest::Client::new();

    // One call of each kind: REST and gRPC, accepted and refused, and a backfill.
    let whoami = gw.http("/api/v1/admin/whoami");
    assert_eq!(http.get(&whoami).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(http.get(&whoami).bearer_auth("not-a-token").send().await.unwrap().status(), 401);
    let mut client = gw.client().await;
    client.list_sessions(authed(ListSessionsRequest::default(), &token)).await.unwrap();
    let started = http.post(gw.http("/api/v1/admin/sessions/sess-1:backfill")).bearer_auth(&token).send().await;
    assert_eq!(started.unwrap().status(), 202);
    eventually("the backfill to succeed", Duration::from_secs(30), || async {
        let url = gw.http("/api/v1/admin/sessions/sess-1/backfill");
        let job: Json = http.get(url).bearer_auth(&token).send().await.ok()?.json().await.ok()?;
        (job["status"] == "succeeded").then_some(())
    })
    .await;

    let scrape = http.get(gw.http("/metrics")).send().await.unwrap().text().await.unwrap();
    let exported: HashSet<&str> =
        scrape.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    for route in ["POST /api/v1/admin/sessions/{session}:backfill", "GET /api/v1/admin/sessions/{session}/backfill"] {
        assert!(scrape.contains(&format!(r#"method="{route}""#)), "REST series are labelled by documented route");
    }
    let rules = deploy("prometheus/alerts.yaml");
    let dashboard = deploy("grafana/wa-gateway.json");
    let dashboard_json: Json = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = dashboard_json["panels"].as_array().expect("panels");
    assert!(panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
    for (file, text) in [("prometheus/alerts.yaml", &rules), ("grafana/wa-gateway.json", &dashboard)] {
        let used = metric_names(text);
        assert!(used.len() >= 10, "deploy/{file} reads {} metrics", used.len());
        let missing: Vec<_> = used.iter().filter(|name| !exported.contains(name.as_str())).collect();
        assert!(missing.is_empty(), "deploy/{file} reads metrics /metrics does not export: {missing:?}");
    }
}

/// Flags and environment variables `wa-gateway serve --help` lists.
fn serve_help() -> (HashSet<String>, String) {
    let out = std::process::Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let flags = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| format!("--{f}"))
        .collect();
    // Wrapped lines may split `[env: NAME=]`.
    (flags, help.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether `--help` names the variable (`[env: NAME=…]`, or `[env: NAME]`
/// for one whose value it hides).
fn reads_env(help: &str, name: &str) -> bool {
    help.contains(&format!("[env: {name}=")) || help.contains(&format!("[env: {name}]"))
}

fn flag_name(arg: &str) -> &str {
    arg.split('=').next().unwrap()
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().find_map(|a| a.strip_prefix(flag)?.strip_prefix('='))
}

fn strings(value: &Yaml) -> Vec<String> {
    value.as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_kubernetes_manifests_and_the_systemd_unit_match_the_binary() {
    let (flags, help) = serve_help();
    let deployment = yaml("kubernetes/deployment.yaml");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(2));
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    assert_eq!(args[0], "serve");
    for arg in &args[1..] {
        assert!(flags.contains(flag_name(arg)), "{arg} is not a flag of `wa-gateway serve`");
    }
    for env in container["env"].as_sequence().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(reads_env(&help, name), "{name} is not read by `wa-gateway serve`");
    }
    let database = container["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "WA_GATEWAY_DATABASE_URL");
    let secret = &database.expect("the database URL is set")["valueFrom"]["secretKeyRef"];
    assert!(secret["name"].is_string() && secret["key"].is_string(), "the database URL comes from a Secret");

    // Ports: what the flags bind, named for the probes and the Service.
    let port_of = |flag: &str| flag_value(&args, flag).and_then(|a| a.rsplit(':').next()?.parse::<u64>().ok());
    let ports: Vec<(String, u64)> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["containerPort"].as_u64().unwrap()))
        .collect();
    let named = |name: &str| ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
    assert_eq!(named("http"), port_of("--http-addr"), "the http port is the one --http-addr binds");
    assert_eq!(named("grpc"), port_of("--grpc-addr"), "the grpc port is the one --grpc-addr binds");
    let mut probe_paths = Vec::new();
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("http"), "{probe} asks the HTTP port");
        probe_paths.push(path);
    }

    // Shutdown fits the grace period, preStop pause included.
    let shutdown: u64 = flag_value(&args, "--shutdown-timeout-secs").unwrap().parse().unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > shutdown + pause, "terminationGracePeriodSeconds {grace} <= {shutdown} + {pause}");

    let labels = &spec["selector"]["matchLabels"];
    assert_eq!(&spec["template"]["metadata"]["labels"], labels);
    let service = yaml("kubernetes/service.yaml");
    assert_eq!(&service["spec"]["selector"], labels);
    let mut served: Vec<&str> =
        service["spec"]["ports"].as_sequence().unwrap().iter().map(|p| p["targetPort"].as_str().unwrap()).collect();
    served.sort();
    assert_eq!(served, ["grpc", "http"], "the Service exposes both ports");
    let pdb = yaml("kubernetes/pdb.yaml");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < 2, "a drain can proceed");
    let kustomization = strings(&yaml("kubernetes/kustomization.yaml")["resources"]);
    assert_eq!(kustomization, ["deployment.yaml", "service.yaml", "pdb.yaml"]);

    // The systemd unit: flags, variables and stop timeout.
    let unit = deploy("systemd/wa-gateway.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    for arg in exec.split_whitespace().filter(|a| a.starts_with("--")) {
        assert!(flags.contains(flag_name(arg)), "the unit's {arg} is not a flag of `wa-gateway serve`");
    }
    for line in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let name = line.split('=').next().unwrap();
        assert!(reads_env(&help, name), "the unit's {name} is not read");
    }
    let stop: u64 = unit.lines().find_map(|l| l.strip_prefix("TimeoutStopSec=")).unwrap().parse().unwrap();
    assert!(stop > shutdown, "TimeoutStopSec {stop} <= --shutdown-timeout-secs {shutdown}");

    // The server takes the manifest's flags and serves the probe paths.
    let keep: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !["--grpc-addr", "--http-addr", "--log-format"].contains(&flag_name(a)))
        .collect();
    let Platform { jwks: _jwks, gw, .. } = Platform::start(&keep).await;
    let http = reqwest::Client::new();
    for path in probe_paths {
        let ready = eventually(path, Duration::from_secs(30), || async {
            let status = http.get(gw.http(path)).send().await.ok()?.status();
            status.is_success().then_some(status)
        })
        .await;
        assert_eq!(ready, 200, "{path}");
    }
}
