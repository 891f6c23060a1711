//! Valid calls in the middle of abuse, against the real (release) server:
//! for the duration, valid REST and gRPC GetBackfill calls run beside
//! garbage (random paths, methods and credentials, oversized headers, junk
//! bodies), slow clients that trickle request heads, and HTTP/2 clients that
//! open more streams than allowed. Every valid call must succeed. Reports
//! the p99 of the valid calls, and the server's RSS and /metrics size before
//! and after.
//!
//!     cargo bench --bench abuse        # 60 s
//!     cargo test --bench abuse         # 3 s (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::host::{Script, ScriptedHost, contact};
use common::*;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use wa_gateway::proto::admin::{GetBackfillRequest, StartBackfillRequest};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn junk(rng: &mut impl Rng, len: usize) -> String {
    (0..len).map(|_| rng.gen_range(b'!'..=b'~') as char).filter(|c| *c != '?' && *c != '#').collect()
}

async fn garbage(gw: String, grpc: String, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut rng = rand::rngs::StdRng::from_entropy();
    while !stop.load(Ordering::Relaxed) {
        let path = match rng.gen_range(0..4) {
            0 => format!("/api/v1/admin/{}", junk(&mut rng, 12)),
            1 => format!("/api/v1/admin/sessions/{}:{}", junk(&mut rng, 8), junk(&mut rng, 5)),
            2 => format!("/{}", junk(&mut rng, 20)),
            _ => format!("/api/v1/admin/sessions?limit={}&cursor={}", junk(&mut rng, 4), junk(&mut rng, 30)),
        };
        let method =
            reqwest::Method::from_bytes(junk(&mut rng, 6).to_uppercase().as_bytes()).unwrap_or(reqwest::Method::GET);
        let credential = match rng.gen_range(0..3) {
            0 => format!("Bearer {}.{}.{}", junk(&mut rng, 30), junk(&mut rng, 60), junk(&mut rng, 40)),
            1 => format!("Bearer {}", mint(KeyKind::Rogue, "rsa-1", &super_admin_claims())),
            _ => junk(&mut rng, 5000),
        };
        let size = rng.gen_range(0..20_000);
        let _ = http
            .request(method, format!("http://{gw}{}", path.replace(' ', "")))
            .header("authorization", credential)
            .body(junk(&mut rng, size))
            .send()
            .await;
        if rng.gen_range(0..20) == 0 {
            let made_up = format!("/{}/{}", junk(&mut rng, 10).replace('/', ""), junk(&mut rng, 6).replace('/', ""));
            common::h2raw::flood(&grpc, &made_up, 150).await;
        }
        sent.fetch_add(1, Ordering::Relaxed);
    }
}

async fn slow_client(gw: String, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(&gw).await else { continue };
        let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await;
        while !stop.load(Ordering::Relaxed) && tcp.write_all(b"X-Slow: 1\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = Duration::from_secs(if full { 60 } else { 3 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let (_host, url) = ScriptedHost::start(Script {
            contacts: (0..100).map(|i| contact(i, "c")).collect(),
            batch: 50,
            ..Default::default()
        })
        .await;
        let jwks = JwksServer::start().await;
        let gw = Gateway::start(&jwks.url(), &["--host", &format!("gw-1={url}"), "--http-header-timeout-secs", "5"]).await;
        assert!(import(&gw.db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
        let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
        let mut client = gw.client().await;
        client.start_backfill(authed(StartBackfillRequest { session_id: "s1".into() }, &token)).await.unwrap();
        let pid = gw.child.id().unwrap();
        let http = reqwest::Client::new();
        let metrics_size = || async { http.get(gw.http("/metrics")).send().await.unwrap().bytes().await.unwrap().len() };
        let (rss_before, metrics_before) = (rss_kib(pid), metrics_size().await);

        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let mut abusers = Vec::new();
        for _ in 0..4 {
            abusers.push(tokio::spawn(garbage(gw.http_addr.clone(), gw.grpc_addr.clone(), stop.clone(), sent.clone())));
        }
        for _ in 0..20 {
            abusers.push(tokio::spawn(slow_client(gw.http_addr.clone(), stop.clone())));
        }
        let (mut latencies, mut failures) = (Vec::new(), 0);
        let started = Instant::now();
        let rest = reqwest::Client::new();
        let path = gw.http("/api/v1/admin/sessions/s1/backfill");
        while started.elapsed() < duration {
            let t = Instant::now();
            let ok = rest.get(&path).bearer_auth(&token).send().await.is_ok_and(|r| r.status() == 200);
            latencies.push(t.elapsed());
            failures += usize::from(!ok);
            let t = Instant::now();
            let ok = client.get_backfill(authed(GetBackfillRequest { session_id: "s1".into() }, &token)).await.is_ok();
            latencies.push(t.elapsed());
            failures += usize::from(!ok);
        }
        stop.store(true, Ordering::Relaxed);
        for abuser in abusers {
            abuser.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss_after, metrics_after) = (rss_kib(pid), metrics_size().await);
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
        println!("| duration | garbage requests | valid calls | failed | valid p50 | valid p99 | RSS before → after | /metrics before → after |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {} s | {} | {} | {failures} | {:.2} ms | {:.2} ms | {:.1} → {:.1} MiB | {} → {} bytes |",
            duration.as_secs(),
            sent.load(Ordering::Relaxed),
            latencies.len(),
            p(0.5),
            p(0.99),
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            metrics_before,
            metrics_after
        );
        assert_eq!(failures, 0, "every valid call must succeed");
    });
}
