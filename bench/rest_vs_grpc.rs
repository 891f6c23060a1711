//! GetBackfill through REST (HTTP/1.1 + JSON, in-process gRPC client) versus
//! a direct gRPC call, 64 requests in flight, on loopback against the real
//! server: throughput and latency percentiles.
//!
//!     cargo bench --bench rest_vs_grpc        # 20,000 requests per transport
//!     cargo test --bench rest_vs_grpc         # 640 requests (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use wa_gateway::proto::admin::{GetBackfillRequest, StartBackfillRequest};

const CONCURRENCY: usize = 64;

fn report(name: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn run<F, Fut>(total: usize, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(total / CONCURRENCY);
                for _ in 0..total / CONCURRENCY {
                    let t = Instant::now();
                    call().await;
                    out.push(t.elapsed());
                }
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let total = if full { 20_000 } else { CONCURRENCY * 10 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sim = HostSimProcess::start(&["--contacts", "10", "--groups", "1", "--members-per-group", "2"]).await;
        let jwks = JwksServer::start().await;
        let gw = Gateway::start(&jwks.url(), &["--host", &format!("gw-1={}", sim.url)]).await;
        assert!(import(&gw.db, &session_line("bench", "org_bench", "working", "gw-1")).status.success());
        let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
        let client = gw.client().await;
        client
            .clone()
            .start_backfill(authed(StartBackfillRequest { session_id: "bench".into() }, &token))
            .await
            .unwrap();

        let grpc = {
            let (client, token) = (client.clone(), token.clone());
            run(total, move || {
                let (mut client, token) = (client.clone(), token.clone());
                async move {
                    client
                        .get_backfill(authed(GetBackfillRequest { session_id: "bench".into() }, &token))
                        .await
                        .unwrap();
                }
            })
            .await
        };
        let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
        let url = gw.http("/api/v1/admin/sessions/bench/backfill");
        let rest = run(total, move || {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                let resp = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            }
        })
        .await;

        println!("| transport | requests | req/s | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        report("gRPC (tonic, 1 HTTP/2 connection)", grpc.0, grpc.1);
        report("REST (reqwest, HTTP/1.1 pool)", rest.0, rest.1);
        drop(sim);
    });
}
