//! The system under test: replicas of the real binary (three on a
//! PostgreSQL server of the test's own, each through a fault proxy; or one
//! on a SQLite file), three session hosts speaking the real protocol, and
//! a JWKS server. Replicas are killed, paused and started again by index.

use std::time::Duration;

use tokio::sync::RwLock;

use crate::common::host::{OUT_OF_STEP, Script, ScriptedHost, contact, group};
use crate::common::proxy::{FaultProxy, port_of};
use crate::common::{Backend, Gateway, JwksServer, KeyKind, fresh_database, mint, pg, super_admin_claims};

pub const LEASE_SECS: u64 = 3;
pub const GATEWAYS: [&str; 3] = ["gw-1", "gw-2", "gw-3"];

pub struct Cluster {
    pub backend: Backend,
    /// The database as the test (and an import) reaches it directly.
    pub db: String,
    /// What each replica is started with: the database through its proxy.
    replica_db: Vec<String>,
    pub replicas: Vec<RwLock<Option<Gateway>>>,
    pub proxies: Vec<FaultProxy>,
    pub postgres: Option<pg::Dedicated>,
    pub hosts: Vec<(String, ScriptedHost)>,
    args: Vec<String>,
    pub token: String,
    /// Protocol errors found in the logs of replicas since killed.
    killed_out_of_step: std::sync::Mutex<Vec<String>>,
    jwks: JwksServer,
    _dir: Option<tempfile::TempDir>,
}

/// What each host sends for any session's backfill.
fn backfill_data() -> Script {
    Script {
        contacts: (0..300).map(|i| contact(i, "c")).collect(),
        groups: (0..5).map(|i| group(i, 10, "g")).collect(),
        batch: 50,
        feed: true,
        snapshot: Some(Vec::new()),
        ..Default::default()
    }
}

impl Cluster {
    /// The system for a run of `secs` seconds (its token outlives the run).
    pub async fn start(backend: Backend, secs: u64) -> Self {
        let jwks = JwksServer::start().await;
        let mut claims = super_admin_claims();
        claims["exp"] = serde_json::json!(crate::common::jwks_now() + secs as i64 + 3600);
        let token = mint(KeyKind::Rsa, "rsa-1", &claims);
        let mut hosts = Vec::new();
        let mut args: Vec<String> = vec![
            "--backfill-lease-secs".into(),
            LEASE_SECS.to_string(),
            "--feed-backoff-max-secs".into(),
            "1".into(),
            "--db-pool-size".into(),
            "4".into(),
            "--db-acquire-timeout-secs".into(),
            "5".into(),
            "--db-statement-timeout-secs".into(),
            "10".into(),
        ];
        for gateway in GATEWAYS {
            let (host, url) = ScriptedHost::start(backfill_data()).await;
            args.extend(["--host".into(), format!("{gateway}={url}")]);
            hosts.push((gateway.to_owned(), host));
        }
        let (db, dir, postgres, proxies, replicas) = match backend {
            Backend::Postgres => {
                let server = tokio::task::spawn_blocking(pg::Dedicated::start).await.unwrap();
                let db = server.database().await;
                let mut proxies = Vec::new();
                for _ in 0..3 {
                    proxies.push(FaultProxy::start(port_of(&db)).await);
                }
                (db, None, Some(server), proxies, 3)
            }
            Backend::Sqlite => {
                let (db, dir) = fresh_database().await;
                (db, dir, None, Vec::new(), 1)
            }
        };
        let replica_db = (0..replicas).map(|i| proxies.get(i).map_or(db.clone(), |p| p.url(&db))).collect();
        let mut cluster = Self {
            backend,
            db,
            replica_db,
            replicas: Vec::new(),
            proxies,
            postgres,
            hosts,
            args,
            token,
            killed_out_of_step: Default::default(),
            jwks,
            _dir: dir,
        };
        for i in 0..replicas {
            let gw = cluster.spawn(i).await;
            cluster.replicas.push(RwLock::new(Some(gw)));
        }
        cluster
    }

    async fn spawn(&self, i: usize) -> Gateway {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Gateway::start_with_db_logged(&self.replica_db[i], &self.jwks.url(), &args).await
    }

    /// The base URL of replica `i`'s HTTP port, while it runs.
    pub async fn http(&self, i: usize) -> Option<String> {
        self.replicas[i].read().await.as_ref().map(|gw| gw.http(""))
    }

    pub async fn pid(&self, i: usize) -> Option<u32> {
        self.replicas[i].read().await.as_ref().and_then(|gw| gw.child.id())
    }

    /// kill -9: the replica is gone until [`Self::restart`].
    pub async fn kill(&self, i: usize) {
        if let Some(mut gw) = self.replicas[i].write().await.take() {
            scan_logs(&gw, i, &mut self.killed_out_of_step.lock().unwrap());
            gw.kill().await;
        }
    }

    pub async fn restart(&self, i: usize) {
        let gw = self.spawn(i).await;
        *self.replicas[i].write().await = Some(gw);
    }

    /// SIGSTOP or SIGCONT to replica `i`.
    pub async fn signal(&self, i: usize, signal: &str) {
        if let Some(pid) = self.pid(i).await {
            let _ = std::process::Command::new("kill").args([signal, &pid.to_string()]).status();
        }
    }

    pub fn lease() -> Duration {
        Duration::from_secs(LEASE_SECS)
    }

    /// Whether replica `i`'s process is still running (not exited or killed).
    pub async fn running(&self, i: usize) -> Result<(), String> {
        match self.replicas[i].write().await.as_mut() {
            None => Err("down".into()),
            Some(gw) => match gw.child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!("exited: {status}")),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Writes each running replica's log to `target/tmp/chaos/<name>-replica-<i>.log`.
    pub async fn save_logs(&self, name: &str) -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos");
        let mut saved = Vec::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            if let Some(gw) = replica.read().await.as_ref() {
                let path = dir.join(format!("{name}-replica-{i}.log"));
                std::fs::write(&path, gw.logs.lock().unwrap().join("\n")).unwrap();
                saved.push(path);
            }
        }
        saved
    }

    /// Protocol errors in the logs of every replica running now.
    pub async fn out_of_step(&self) -> Vec<String> {
        let mut found = self.killed_out_of_step.lock().unwrap().clone();
        for (i, replica) in self.replicas.iter().enumerate() {
            if let Some(gw) = replica.read().await.as_ref() {
                scan_logs(gw, i, &mut found);
            }
        }
        found
    }
}

fn scan_logs(gw: &Gateway, i: usize, found: &mut Vec<String>) {
    for line in gw.logs.lock().unwrap().iter() {
        if OUT_OF_STEP.iter().any(|sign| line.contains(sign)) {
            found.push(format!("replica {i}: {line}"));
        }
    }
}
