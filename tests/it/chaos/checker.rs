//! What must hold at the end of a run, read from the history, the
//! database and the replicas' own answers. Each finding is a sentence an
//! operator could act on; an empty list means the run held.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::cluster::{Cluster, GATEWAYS};
use super::workload::{Truth, status_name};
use crate::common::Backend;

/// Rows of `sql`, each as text columns, from the cluster's database.
pub async fn rows(cluster: &Cluster, sql: &str) -> Vec<Vec<String>> {
    use sqlx::{Connection, Row};
    fn text<R: Row>(row: &R, i: usize) -> String
    where
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        match row.try_get::<i64, _>(i) {
            Ok(n) => n.to_string(),
            Err(_) => row.try_get::<String, _>(i).unwrap_or_default(),
        }
    }
    match cluster.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&cluster.db).await.unwrap();
            let found = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            found.iter().map(|r| (0..r.columns().len()).map(|i| text(r, i)).collect()).collect()
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", cluster.db)).await.unwrap();
            let found = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            found.iter().map(|r| (0..r.columns().len()).map(|i| text(r, i)).collect()).collect()
        }
    }
}

async fn get(cluster: &Cluster, replica: usize, path: &str) -> Option<Value> {
    let base = cluster.http(replica).await?;
    let response = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(&cluster.token).send().await.ok()?;
    (response.status() == 200).then_some(())?;
    response.json().await.ok()
}

/// Every session ends with its newest acknowledged record, and a session
/// no host holds is gone, with its data.
pub async fn sessions(cluster: &Cluster, truth: &Truth, found: &mut Vec<String>) {
    let mut answered = None;
    for replica in 0..cluster.replicas.len() {
        answered = get(cluster, replica, "/api/v1/admin/sessions?limit=500").await;
        if answered.is_some() {
            break;
        }
    }
    let Some(listed) = answered else {
        found.push("no replica answers the sessions listing".into());
        return;
    };
    let listed: BTreeMap<String, &Value> =
        listed["data"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap().to_owned(), s)).collect();
    let mut expected = BTreeSet::new();
    for (gateway, held) in &truth.held {
        for (id, record) in held {
            expected.insert(id.clone());
            let want = (gateway.as_str(), status_name(record.status), record.updated_at_ms);
            match listed.get(id) {
                None => found.push(format!("{id}: held by {gateway}'s host, but not listed")),
                Some(s) => {
                    let got = (
                        s["gatewayId"].as_str().unwrap_or(""),
                        s["status"].as_str().unwrap_or(""),
                        s["updatedAt"].as_i64().unwrap_or(0),
                    );
                    if got != want {
                        found.push(format!("{id}: listed as {got:?}, its newest record is {want:?}"));
                    }
                }
            }
        }
    }
    for id in listed.keys().filter(|id| !expected.contains(*id)) {
        found.push(format!("{id}: no host holds it, but it is listed"));
    }
    for table in ["wa_contacts", "wa_groups", "wa_group_participants", "session_data_generations"] {
        let orphans = rows(
            cluster,
            &format!("SELECT DISTINCT session_id FROM {table} WHERE session_id NOT IN (SELECT id FROM sessions)"),
        )
        .await;
        for row in orphans {
            found.push(format!("{}: removed, but rows of it remain in {table}", row[0]));
        }
    }
}

/// The gateways' status counts equal a count of the stored sessions, on
/// every replica; every gateway has one follower, the same on every replica.
pub async fn gateways(cluster: &Cluster, found: &mut Vec<String>) {
    let recount = rows(cluster, "SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2").await;
    let mut followers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for replica in 0..cluster.replicas.len() {
        let Some(view) = get(cluster, replica, "/api/v1/admin/gateways").await else {
            found.push(format!("replica {replica} does not answer the gateways view"));
            continue;
        };
        for g in view["data"].as_array().unwrap() {
            let gateway = g["id"].as_str().unwrap();
            for (status, n) in g["statusCounts"].as_object().unwrap() {
                let counted = recount
                    .iter()
                    .find(|r| r[0] == gateway && r[1] == *status)
                    .map_or(0, |r| r[2].parse::<u64>().unwrap());
                if n.as_u64() != Some(counted) {
                    found.push(format!("replica {replica}: {gateway} counts {n} {status}, the sessions {counted}"));
                }
            }
            if cluster.backend == Backend::Postgres {
                followers
                    .entry(gateway.to_owned())
                    .or_default()
                    .insert(g["follower"].as_str().unwrap_or("none").to_owned());
            }
        }
    }
    if cluster.backend == Backend::Postgres {
        let mut alive = BTreeSet::new();
        for replica in 0..cluster.replicas.len() {
            alive.extend(cluster.pid(replica).await);
        }
        for gateway in GATEWAYS {
            let named = followers.get(gateway).cloned().unwrap_or_default();
            let one_live = named.len() == 1
                && named.iter().all(|f| {
                    f.split('-').next().and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| alive.contains(&p))
                });
            if !one_live {
                found.push(format!("{gateway}: followed by {named:?} as the replicas say, not by one live replica"));
            }
        }
    }
}

/// No job publishes after it was reaped, and no visible generation is a
/// job's that did not succeed; answers never went back from failed to
/// succeeded.
pub async fn jobs(cluster: &Cluster, events: &[Value], found: &mut Vec<String>) {
    if cluster.backend == Backend::Postgres {
        let visible = rows(
            cluster,
            "SELECT g.session_id, g.generation, COALESCE(j.status, 'none'), COALESCE(j.error, '') \
             FROM session_data_generations g LEFT JOIN backfill_jobs j ON j.id = g.generation \
             WHERE j.status IS DISTINCT FROM 'succeeded'",
        )
        .await;
        for row in visible {
            found.push(format!("{}: shows the data of job {}, which is {} {}", row[0], row[1], row[2], row[3]));
        }
    }
    // A job seen failed is never seen succeeded by a later call.
    let mut failed_at: BTreeMap<String, u64> = BTreeMap::new();
    for event in events.iter().filter(|e| e["op"] == "job" || e["op"] == "start" || e["op"] == "cancel") {
        let answer = &event["detail"]["answer"];
        let (Some(id), Some(status)) = (answer["id"].as_str(), answer["status"].as_str()) else { continue };
        if status == "failed" {
            let end = event["end"].as_u64().unwrap_or(0);
            failed_at.entry(id.to_owned()).and_modify(|t| *t = (*t).min(end)).or_insert(end);
        }
    }
    for event in events.iter().filter(|e| e["op"] == "job") {
        let answer = &event["detail"]["answer"];
        if answer["status"] == "succeeded"
            && let Some(failed) = answer["id"].as_str().and_then(|id| failed_at.get(id))
            && event["at"].as_u64().unwrap_or(0) > *failed
        {
            found.push(format!("job {} was seen failed, then succeeded", answer["id"]));
        }
    }
}

/// No answer was a 500, and the run's own credential was never refused
/// (a 401 or 429 would mean the operators stopped testing anything).
pub fn answers(events: &[Value], found: &mut Vec<String>) {
    for event in events.iter().filter(|e| e["status"] == 500) {
        found.push(format!("a 500: {event}"));
    }
    let refused = events.iter().filter(|e| e["status"] == 401 || e["status"] == 429).count();
    if refused > 0 {
        found.push(format!("{refused} calls had the run's credential refused (401 or 429)"));
    }
}

/// Every replica runs and answers ready.
pub async fn ready(cluster: &Cluster, found: &mut Vec<String>) {
    for replica in 0..cluster.replicas.len() {
        if let Err(why) = cluster.running(replica).await {
            found.push(format!("replica {replica} is not running: {why}"));
            continue;
        }
        let ready = match cluster.http(replica).await {
            Some(base) => reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200),
            None => false,
        };
        if !ready {
            found.push(format!("replica {replica} is not ready at the end"));
        }
    }
}
