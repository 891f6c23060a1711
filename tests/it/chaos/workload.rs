//! The workload: what the session hosts hold (the truth the directory must
//! end up showing) and the operators' calls, chosen by a seeded random
//! generator. Host changes update the truth first, then go out on the open
//! feed if it takes them; whatever a feed misses, its next snapshot brings.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use super::cluster::{Cluster, GATEWAYS};
use super::history::History;
use crate::common::import_with;

/// Session ids per gateway, of which a share is held at any time.
pub const IDS_PER_GATEWAY: usize = 40;
const STATUSES: [HostedSessionStatus; 5] = [
    HostedSessionStatus::Stopped,
    HostedSessionStatus::Starting,
    HostedSessionStatus::ScanQrCode,
    HostedSessionStatus::Working,
    HostedSessionStatus::Failed,
];

pub fn status_name(status: i32) -> &'static str {
    match HostedSessionStatus::try_from(status) {
        Ok(HostedSessionStatus::Stopped) => "stopped",
        Ok(HostedSessionStatus::Starting) => "starting",
        Ok(HostedSessionStatus::ScanQrCode) => "scan_qr_code",
        Ok(HostedSessionStatus::Working) => "working",
        _ => "failed",
    }
}

pub fn session_id(gateway: &str, i: usize) -> String {
    format!("{gateway}-s{i:02}")
}

/// What each host holds, by gateway then session id.
pub struct Truth {
    pub held: BTreeMap<String, BTreeMap<String, HostedSession>>,
    clock: i64,
}

impl Truth {
    fn new() -> Self {
        Self { held: GATEWAYS.iter().map(|g| (g.to_string(), BTreeMap::new())).collect(), clock: 1_750_000_000_000 }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1_000;
        self.clock
    }
}

pub struct Workload<'a> {
    pub cluster: &'a Cluster,
    pub history: &'a History,
    pub truth: Mutex<Truth>,
    http: reqwest::Client,
}

fn hosted(id: &str, status: HostedSessionStatus, updated_at_ms: i64) -> HostedSession {
    // Each id keeps one organization: a host never moves a session.
    let organization = if id.ends_with(['0', '2', '4', '6', '8']) { "org_a" } else { "org_b" };
    crate::common::host::hosted(id, organization, status, updated_at_ms)
}

impl<'a> Workload<'a> {
    pub fn new(cluster: &'a Cluster, history: &'a History) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Self { cluster, history, truth: Mutex::new(Truth::new()), http }
    }

    /// Each host starts holding three quarters of its ids.
    pub fn seed(&self, rng: &mut StdRng) {
        let mut truth = self.truth.lock().unwrap();
        for gateway in GATEWAYS {
            for i in 0..IDS_PER_GATEWAY * 3 / 4 {
                let id = session_id(gateway, i);
                let at = truth.tick();
                let record = hosted(&id, STATUSES[rng.gen_range(0..STATUSES.len())], at);
                truth.held.get_mut(gateway).unwrap().insert(id, record);
            }
        }
        for (gateway, host) in &self.cluster.hosts {
            let snapshot: Vec<HostedSession> = truth.held[gateway].values().cloned().collect();
            host.set(|s| s.snapshot = Some(snapshot));
        }
    }

    /// A host adds or changes a session (`removed`: drops it), truth first.
    fn host_change(&self, rng: &mut StdRng, remove: bool) -> (String, Value) {
        let mut truth = self.truth.lock().unwrap();
        let gateway = GATEWAYS[rng.gen_range(0..GATEWAYS.len())];
        let i = rng.gen_range(0..IDS_PER_GATEWAY);
        let id = session_id(gateway, i);
        let at = truth.tick();
        let held = truth.held.get_mut(gateway).unwrap();
        let message = if remove {
            if held.remove(&id).is_none() {
                return ("host_remove".into(), json!({"session": id, "noop": true}));
            }
            WatchSessionsResponse { upserted: vec![], removed: vec![id.clone()], snapshot_complete: false }
        } else {
            let record = hosted(&id, STATUSES[rng.gen_range(0..STATUSES.len())], at);
            held.insert(id.clone(), record.clone());
            WatchSessionsResponse { upserted: vec![record], removed: vec![], snapshot_complete: false }
        };
        let snapshot: Vec<HostedSession> = held.values().cloned().collect();
        let host = &self.cluster.hosts.iter().find(|(g, _)| g == gateway).unwrap().1;
        host.set(|s| s.snapshot = Some(snapshot));
        let sent = host.offer(message);
        let op = if remove { "host_remove" } else { "host_upsert" };
        (op.into(), json!({"session": id, "gateway": gateway, "updatedAt": at, "sent": sent}))
    }

    /// A held session, by chance.
    fn held_session(&self, rng: &mut StdRng) -> Option<HostedSession> {
        let truth = self.truth.lock().unwrap();
        let gateway = GATEWAYS[rng.gen_range(0..GATEWAYS.len())];
        let held = &truth.held[gateway];
        (!held.is_empty()).then(|| held.values().nth(rng.gen_range(0..held.len())).unwrap().clone())
    }

    async fn call(&self, replica: usize, method: Method, path: &str) -> (Option<u16>, Value) {
        let Some(base) = self.cluster.http(replica).await else { return (None, json!("replica down")) };
        let request = self.http.request(method, format!("{base}{path}")).bearer_auth(&self.cluster.token);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), response.json().await.unwrap_or(Value::Null))
            }
            Err(error) => (None, json!(error.to_string())),
        }
    }

    /// One operator's calls until `until`, with its own seeded generator.
    pub async fn operator(&self, name: String, seed: u64, until: tokio::time::Instant) {
        let mut rng = StdRng::seed_from_u64(seed);
        let replicas = self.cluster.replicas.len();
        while tokio::time::Instant::now() < until {
            let replica = rng.gen_range(0..replicas);
            let at = self.history.now_ms();
            let pick = rng.gen_range(0..100);
            let (op, replica, status, detail) = match pick {
                0..30 => {
                    let (op, detail) = self.host_change(&mut rng, false);
                    (op, None, None, detail)
                }
                30..38 => {
                    let (op, detail) = self.host_change(&mut rng, true);
                    (op, None, None, detail)
                }
                38..46 => match self.held_session(&mut rng) {
                    Some(session) => {
                        let (status, detail) = self.import_older(&mut rng, &session).await;
                        ("import_older".into(), None, status, detail)
                    }
                    None => continue,
                },
                46..62 | 62..70 => match self.held_session(&mut rng) {
                    Some(session) => {
                        let (op, verb) =
                            if pick < 62 { ("start", ":backfill") } else { ("cancel", "/backfill:cancel") };
                        let path = format!("/api/v1/admin/sessions/{}{verb}", session.id);
                        let (status, body) = self.call(replica, Method::POST, &path).await;
                        (op.into(), Some(replica), status, json!({"session": session.id, "answer": body}))
                    }
                    None => continue,
                },
                70..80 => match self.held_session(&mut rng) {
                    Some(session) => {
                        let path = format!("/api/v1/admin/sessions/{}/backfill", session.id);
                        let (status, body) = self.call(replica, Method::GET, &path).await;
                        ("job".into(), Some(replica), status, json!({"session": session.id, "answer": body}))
                    }
                    None => continue,
                },
                80..84 => {
                    let gateway = GATEWAYS[rng.gen_range(0..GATEWAYS.len())];
                    let path = format!("/api/v1/admin/gateways/{gateway}:acceptSnapshot");
                    let (status, body) = self.call(replica, Method::POST, &path).await;
                    ("accept".into(), Some(replica), status, json!({"gateway": gateway, "answer": body}))
                }
                84..94 => {
                    let (status, body) = self.call(replica, Method::GET, "/api/v1/admin/sessions?limit=100").await;
                    let listed = body["data"].as_array().map_or(0, Vec::len);
                    ("list".into(), Some(replica), status, json!({"listed": listed, "error": body["error"]}))
                }
                _ => {
                    let (status, body) = self.call(replica, Method::GET, "/api/v1/admin/gateways").await;
                    ("gateways".into(), Some(replica), status, json!({"error": body["error"]}))
                }
            };
            self.history.op(&name, replica, &op, at, status, detail);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..60))).await;
        }
    }

    /// An import of an older record of `session` (as a stale export would
    /// bring), straight into the database.
    async fn import_older(&self, rng: &mut StdRng, session: &HostedSession) -> (Option<u16>, Value) {
        let gateway =
            self.truth.lock().unwrap().held.iter().find(|(_, h)| h.contains_key(&session.id)).map(|(g, _)| g.clone());
        let Some(gateway) = gateway else { return (None, json!("gone")) };
        let older = session.updated_at_ms - rng.gen_range(1..5_000);
        let line = json!({
            "id": session.id, "organizationId": session.organization_id, "gatewayId": gateway,
            "status": status_name(STATUSES[rng.gen_range(0..STATUSES.len())].into()),
            "createdAt": session.created_at_ms, "updatedAt": older,
        });
        let db = self.cluster.db.clone();
        let out =
            tokio::task::spawn_blocking(move || import_with(&db, line.to_string().as_bytes(), &[])).await.unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let ok = out.status.success();
        (None, json!({"session": session.id, "updatedAt": older, "ok": ok, "said": said.trim()}))
    }
}
