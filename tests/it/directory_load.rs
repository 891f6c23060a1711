//! Every writer waits its turn on SQLite: a 50,000-session import, a
//! 200,000-row backfill and a churning session feed at once, and every one
//! of them succeeds, with no lock error anywhere.

use std::time::Duration;

use serde_json::Value;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::{Gateway, JwksServer, KeyKind, eventually, import, mint, session_line, super_admin_claims};

fn hosted(id: &str, status: HostedSessionStatus, updated: i64) -> HostedSession {
    HostedSession {
        id: id.into(),
        organization_id: "org_a".into(),
        status: status.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: updated,
        ..Default::default()
    }
}

#[tokio::test]
async fn an_import_a_large_backfill_and_a_churning_feed_all_succeed_together() {
    let feed: Vec<HostedSession> =
        (0..100).map(|i| hosted(&format!("f{i:03}"), HostedSessionStatus::Working, 1_750_000_000_000)).collect();
    let (host, url) = ScriptedHost::start(Script {
        feed: true,
        snapshot: Some(feed),
        contacts: (0..100_000).map(|i| contact(i, "c")).collect(),
        groups: (0..1_000).map(|i| group(i, 100, "g")).collect(),
        batch: 1_000,
        ..Default::default()
    })
    .await;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let gw = Gateway::start_logged(&jwks.url(), &["--host", &format!("gw-1={url}")]).await;
    let http = reqwest::Client::new();
    let patience = Duration::from_secs(120);
    eventually("the snapshot", patience, || async {
        let r = http.get(gw.http("/api/v1/admin/sessions/f099")).bearer_auth(&token).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    let started = http.post(gw.http("/api/v1/admin/sessions/f000:backfill")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let churn = {
        let host = host.clone();
        tokio::spawn(async move {
            for round in 0..300i64 {
                let status =
                    if round % 2 == 0 { HostedSessionStatus::ScanQrCode } else { HostedSessionStatus::Working };
                let record = hosted(&format!("f{:03}", round % 100), status, 1_750_000_001_000 + round);
                host.send(WatchSessionsResponse { upserted: vec![record], ..Default::default() }).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let db = gw.db.clone();
    let imported = tokio::task::spawn_blocking(move || {
        let lines: Vec<String> =
            (0..50_000).map(|i| session_line(&format!("imp{i:05}"), "org_b", "working", "gw-2")).collect();
        import(&db, &lines.join("\n"))
    });
    let out = imported.await.unwrap();
    assert!(out.status.success(), "the import failed: {}", String::from_utf8_lossy(&out.stderr));
    churn.await.unwrap();

    let job = eventually("the backfill to finish", patience, || async {
        let job: Value = http
            .get(gw.http("/api/v1/admin/sessions/f000/backfill"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        matches!(job["status"].as_str(), Some("succeeded" | "failed")).then_some(job)
    })
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((job["contacts"].as_i64(), job["groupMembers"].as_i64()), (Some(100_000), Some(100_000)), "{job}");
    // The feed's last change of every session is visible: round 299 left f099 working, 298 left f098 scan_qr_code.
    eventually("the feed's last changes", patience, || async {
        let get = |id: &'static str| {
            let request = http.get(gw.http(&format!("/api/v1/admin/sessions/{id}"))).bearer_auth(&token).send();
            async move { request.await.ok()?.json::<Value>().await.ok() }
        };
        let (a, b) = (get("f099").await?, get("f098").await?);
        (a["updatedAt"] == 1_750_000_001_299i64 && b["status"] == "scan_qr_code").then_some(())
    })
    .await;
    let logs = gw.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("database is locked"), "a writer met a lock error:\n{logs}");
    assert!(!logs.contains("session feed ended"), "the feed broke:\n{logs}");
}
