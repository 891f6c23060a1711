//! The faults, chosen by a seeded generator, one after another with short
//! gaps: kill -9 and restart, SIGSTOP past the lease then SIGCONT, a proxy
//! cut past the lease then healed, 200 ms of added latency, and a
//! PostgreSQL restart (the last three in cluster mode only).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::Cluster;
use super::history::History;
use crate::common::Backend;
use crate::common::proxy::Mode;

pub async fn run(cluster: &Cluster, history: &History, seed: u64, until: tokio::time::Instant) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let past_lease = Cluster::lease() + Duration::from_millis(1_500);
    let replicas = cluster.replicas.len();
    let kinds: &[&str] = match cluster.backend {
        Backend::Postgres => &["kill", "pause", "cut", "slow", "restart_postgres"],
        Backend::Sqlite => &["kill", "pause"],
    };
    let mut faults = 0;
    while tokio::time::Instant::now() + past_lease < until {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3_000))).await;
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let i = rng.gen_range(0..replicas);
        let replica = (kind != "restart_postgres").then_some(i);
        history.fault(kind, replica, "begin");
        match kind {
            "kill" => {
                cluster.kill(i).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2_000))).await;
                cluster.restart(i).await;
            }
            "pause" => {
                cluster.signal(i, "-STOP").await;
                tokio::time::sleep(past_lease).await;
                cluster.signal(i, "-CONT").await;
            }
            "cut" => {
                cluster.proxies[i].set(Mode::Cut);
                tokio::time::sleep(past_lease).await;
                cluster.proxies[i].set(Mode::Forward);
            }
            "slow" => {
                cluster.proxies[i].set(Mode::Slow(Duration::from_millis(200)));
                tokio::time::sleep(Duration::from_secs(5)).await;
                cluster.proxies[i].set(Mode::Forward);
            }
            _ => {
                let postgres = cluster.postgres.as_ref().expect("cluster mode");
                postgres.restart(Duration::from_millis(rng.gen_range(200..1_500))).await;
            }
        }
        history.fault(kind, replica, "end");
        faults += 1;
    }
    faults
}
