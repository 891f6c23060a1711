//! Traces end to end: the real binary exporting over OTLP/gRPC to a test
//! collector (the real TraceService protocol), a scripted session host over
//! real gRPC, REST and gRPC calls carrying a W3C `traceparent`.

use std::time::Duration;

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::otlp::{OtlpReceiver, hex};
use crate::common::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use wa_gateway::proto::admin::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const GRPC_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

struct Traced {
    receiver: OtlpReceiver,
    host: ScriptedHost,
    _jwks: JwksServer,
    gw: Gateway,
    token: String,
    http: reqwest::Client,
}

async fn traced_gateway(extra: &[&str]) -> Traced {
    let receiver = OtlpReceiver::start().await;
    let script = Script {
        contacts: (0..10).map(|i| contact(i, "t")).collect(),
        groups: (0..3).map(|i| group(i, 4, "t")).collect(),
        batch: 4,
        ..Default::default()
    };
    let (host, host_url) = ScriptedHost::start(script).await;
    let jwks = JwksServer::start().await;
    let host_arg = format!("gw-1={host_url}");
    let mut args = vec!["--host", &host_arg, "--otlp-endpoint", &receiver.url];
    args.extend_from_slice(extra);
    let gw = Gateway::start_logged(&jwks.url(), &args).await;
    let sessions =
        [session_line("sess-1", "org_a", "working", "gw-1"), session_line("sess-2", "org_b", "working", "gw-1")];
    assert!(import(&gw.db, &sessions.join("\n")).status.success());
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    Traced { receiver, host, _jwks: jwks, gw, token, http: reqwest::Client::new() }
}

impl Traced {
    async fn finished(&self, session: &str) -> Value {
        eventually("the backfill to finish", Duration::from_secs(30), || async {
            let url = self.gw.http(&format!("/api/v1/admin/sessions/{session}/backfill"));
            let job: Value = self.http.get(url).bearer_auth(&self.token).send().await.ok()?.json().await.ok()?;
            matches!(job["status"].as_str(), Some("succeeded" | "failed")).then_some(job)
        })
        .await
    }

    /// The spans of `trace` once `complete` holds for them.
    async fn trace(&self, trace: &str, complete: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        eventually("the trace's spans at the collector", Duration::from_secs(30), || async {
            let spans: Vec<Span> = self.receiver.spans().into_iter().filter(|s| hex(&s.trace_id) == trace).collect();
            complete(&spans).then_some(spans)
        })
        .await
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let text = self.http.get(self.gw.http("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    }
}

/// The trace as the collector got it (shown with `--nocapture`).
fn print_trace(spans: &[Span]) {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start_time_unix_nano);
    let t0 = sorted.first().map_or(0, |s| s.start_time_unix_nano);
    for s in sorted {
        let ms = |ns: u64| (ns - t0) as f64 / 1e6;
        println!(
            "{:>8.2} ms {:>8.2} ms  span {}  parent {:<16}  {}",
            ms(s.start_time_unix_nano),
            ms(s.end_time_unix_nano),
            hex(&s.span_id),
            hex(&s.parent_span_id),
            s.name
        );
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn int_attribute(span: &Span, key: &str) -> i64 {
    let value = span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()?.value.as_ref());
    match value {
        Some(any_value::Value::IntValue(n)) => *n,
        other => panic!("{key} of {} is {other:?}, not an integer", span.name),
    }
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span in {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found[0]
}

const HOST_STREAMS: [&str; 2] = [
    "wa.gateway.host.v1.SessionHostService/StreamContacts",
    "wa.gateway.host.v1.SessionHostService/StreamJoinedGroups",
];

fn has_host_streams(spans: &[Span]) -> bool {
    HOST_STREAMS.iter().all(|name| !named(spans, name).is_empty()) && !named(spans, "backfill.run").is_empty()
}

#[tokio::test]
async fn a_rest_backfill_is_one_trace_from_the_caller_through_the_rpc_to_the_session_host() {
    let t = traced_gateway(&[]).await;
    let started = t
        .http
        .post(t.gw.http("/api/v1/admin/sessions/sess-1:backfill"))
        .bearer_auth(&t.token)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    assert_eq!(t.finished("sess-1").await["status"], "succeeded");

    let spans = t.trace(TRACE, has_host_streams).await;
    print_trace(&spans);
    let rest = one(&spans, "POST /api/v1/admin/sessions/{session}:backfill");
    assert_eq!(hex(&rest.parent_span_id), CALLER_SPAN, "the REST span continues the caller's");
    let rpc = one(&spans, "wa.gateway.admin.v1.AdminService/StartBackfill");
    assert_eq!(rpc.parent_span_id, rest.span_id, "the RPC is a child of the REST request");
    let run = one(&spans, "backfill.run");
    assert_eq!(run.parent_span_id, rpc.span_id, "the job is a child of the RPC that queued it");
    let mut sent = Vec::new();
    for name in HOST_STREAMS {
        let stream = one(&spans, name);
        assert_eq!(stream.parent_span_id, run.span_id, "{name} is a child of the job");
        sent.push(format!("00-{TRACE}-{}-01", hex(&stream.span_id)));
    }
    assert_eq!(*t.host.traceparents.lock().unwrap(), sent, "the host got each stream's own span as parent");

    // 10 contacts come in host batches of 4: one store span per write, never
    // one per row. Batches that arrived during a write join the next one.
    let staged = named(&spans, "store.stage_contacts");
    assert!((1..=3).contains(&staged.len()), "{} writes for 3 host batches", staged.len());
    assert_eq!(staged.iter().map(|s| int_attribute(s, "rows")).sum::<i64>(), 10, "the writes hold all 10 contacts");
    let contacts_stream = one(&spans, HOST_STREAMS[0]);
    assert!(staged.iter().all(|s| s.parent_span_id == contacts_stream.span_id));
    assert_eq!(one(&spans, "store.publish_generation").parent_span_id, run.span_id);

    // Log lines and audit events of the call carry its trace and span ids.
    let logs = t.gw.logs.lock().unwrap().clone();
    let audit = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["target"] == "audit" && l["action"] == "StartBackfill")
        .unwrap_or_else(|| panic!("an audit event for StartBackfill in {logs:#?}"));
    assert_eq!(audit["trace_id"], TRACE);
    assert_eq!(audit["span_id"], hex(&rpc.span_id));
}

#[tokio::test]
async fn a_grpc_call_continues_the_callers_trace_and_an_untraced_one_starts_its_own() {
    let t = traced_gateway(&[]).await;
    let mut client = t.gw.client().await;
    let mut request = authed(StartBackfillRequest { session_id: "sess-2".into() }, &t.token);
    let caller = "b7ad6b7169203331";
    request.metadata_mut().insert("traceparent", format!("00-{GRPC_TRACE}-{caller}-01").parse().unwrap());
    client.start_backfill(request).await.unwrap();
    assert_eq!(t.finished("sess-2").await["status"], "succeeded");
    let spans = t.trace(GRPC_TRACE, has_host_streams).await;
    let rpc = one(&spans, "wa.gateway.admin.v1.AdminService/StartBackfill");
    assert_eq!(hex(&rpc.parent_span_id), caller);
    assert_eq!(one(&spans, "backfill.run").parent_span_id, rpc.span_id);

    // Without a traceparent, a call is the root of a new trace.
    client.who_am_i(authed(WhoAmIRequest::default(), &t.token)).await.unwrap();
    let root = eventually("the untraced call's span", Duration::from_secs(30), || async {
        t.receiver.spans().into_iter().find(|s| s.name.ends_with("/WhoAmI"))
    })
    .await;
    assert!(root.parent_span_id.is_empty(), "a root span");
}

#[tokio::test]
async fn with_the_collector_down_calls_still_succeed_and_dropped_spans_are_counted() {
    let mut t = traced_gateway(&[]).await;
    let whoami = t.gw.http("/api/v1/admin/whoami");
    let call = || async { t.http.get(&whoami).bearer_auth(&t.token).send().await.unwrap().status() };
    assert_eq!(call().await, 200);
    eventually("a span exported", Duration::from_secs(30), || async {
        (t.metric("wa_gateway_trace_spans_exported_total").await > 0.0).then_some(())
    })
    .await;

    t.receiver.stop().await;
    let dropped = r#"wa_gateway_trace_spans_dropped_total{reason="export_failed"}"#;
    let before = t.metric(dropped).await;
    for _ in 0..20 {
        assert_eq!(call().await, 200, "calls go on with the collector down");
    }
    eventually("spans dropped and counted", Duration::from_secs(30), || async {
        (t.metric(dropped).await > before).then_some(())
    })
    .await;
    assert_eq!(call().await, 200);
}

#[tokio::test]
async fn a_rest_layer_in_front_of_a_remote_server_passes_the_callers_trace_on() {
    let t = traced_gateway(&[]).await;
    let rest = RestProcess::start(&["--upstream", &format!("http://{}", t.gw.grpc_addr)]).await;
    let trace = "5e2f0c8e4a6b4d9f8c7b6a5d4c3b2a19";
    let caller = "1122334455667788";
    let answer = t
        .http
        .get(format!("http://{}/api/v1/admin/whoami", rest.addr))
        .bearer_auth(&t.token)
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let spans = t.trace(trace, |spans| spans.iter().any(|s| s.name.ends_with("/WhoAmI"))).await;
    let rpc = one(&spans, "wa.gateway.admin.v1.AdminService/WhoAmI");
    assert_eq!(hex(&rpc.parent_span_id), caller, "the server's RPC continues the caller's trace");
}

#[test]
fn bad_trace_flags_are_refused_with_a_precise_error() {
    for (args, expected) in [
        (&["--otlp-endpoint", "ftp://collector:4317"][..], "expected http://HOST:PORT or https://HOST:PORT"),
        (&["--otlp-endpoint", "not a url"][..], "--otlp-endpoint"),
        (&["--otlp-endpoint", "http://c:4317", "--otlp-sample-ratio", "1.5"][..], "expected a number from 0.0 to 1.0"),
        (&["--otlp-sample-ratio", "0.5"][..], "--otlp-endpoint"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--jwks-url", "http://127.0.0.1:1/jwks"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_malformed_traceparent_is_ignored_and_the_call_starts_its_own_trace() {
    let t = traced_gateway(&[]).await;
    let bad = ["00-zzzz-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"];
    for value in bad {
        let answer = t
            .http
            .get(t.gw.http("/api/v1/admin/whoami"))
            .bearer_auth(&t.token)
            .header("traceparent", value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{value}");
    }
    let roots = eventually("the three REST spans", Duration::from_secs(30), || async {
        let spans: Vec<Span> =
            t.receiver.spans().into_iter().filter(|s| s.name == "GET /api/v1/admin/whoami").collect();
        (spans.len() == bad.len()).then_some(spans)
    })
    .await;
    assert!(roots.iter().all(|s| s.parent_span_id.is_empty()), "each is the root of a new trace");
}
