//! Writers racing over one session, each interleaving forced with a lock
//! the test holds: an import never stores an older record over one the
//! feed committed after the import read the row, and a backfill never
//! publishes data for a session removed before its publish.

use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;

use crate::both_backends;
use crate::common::host::{Script, ScriptedHost, contact};
use crate::common::{Platform, backend, eventually, import, import_with, pg, session_line};

const PATIENCE: Duration = Duration::from_secs(60);

fn line(id: &str, status: &str, updated_at: i64) -> String {
    serde_json::json!({
        "id": id, "organizationId": "org_a", "gatewayId": "gw-1", "status": status,
        "createdAt": 1_700_000_000_000i64, "updatedAt": updated_at,
    })
    .to_string()
}

#[tokio::test]
async fn an_import_never_stores_an_older_record_over_one_committed_after_it_read_the_row() {
    let db = pg::database().await;
    assert!(import(&db, &line("x", "working", 1_000)).status.success());

    // A newer record (as the feed writes it) holds the row, uncommitted.
    let mut feed = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut feed).await.unwrap();
    sqlx::query("UPDATE sessions SET status = 'failed', updated_at = 3000 WHERE id = 'x'")
        .execute(&mut feed)
        .await
        .unwrap();

    // The import reads the committed row (1,000): its line (2,000) is newer,
    // so it writes, and waits for the row.
    let importing = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || import_with(&db, line("x", "stopped", 2_000).as_bytes(), &[]))
    };
    pg::until_waiting_on_a_lock(&db, "INSERT INTO sessions").await;
    sqlx::query("COMMIT").execute(&mut feed).await.unwrap();

    let imported = importing.await.unwrap();
    let said = String::from_utf8_lossy(&imported.stdout);
    assert!(imported.status.success(), "{said} {}", String::from_utf8_lossy(&imported.stderr));
    assert!(said.contains("0 updated") && said.contains("skipped 1"), "{said}");
    let (status, updated_at): (String, i64) =
        sqlx::query_as("SELECT status, updated_at FROM sessions WHERE id = 'x'").fetch_one(&mut feed).await.unwrap();
    assert_eq!((status.as_str(), updated_at), ("failed", 3000), "the older import line overwrote the newer record");
}

both_backends!(a_backfill_never_publishes_for_a_session_removed_before_its_publish);

/// The session's row goes, as the directory removes it, while its job is
/// held half-way; the job is not told (another replica removed it, or the
/// word has not arrived yet). Its publish must find the session gone.
async fn a_backfill_never_publishes_for_a_session_removed_before_its_publish() {
    let script =
        Script { contacts: (0..100).map(|i| contact(i, "c")).collect(), batch: 10, gated: true, ..Default::default() };
    let (host, url) = ScriptedHost::start(script).await;
    let platform = Platform::start(&["--host", &format!("gw-1={url}")]).await;
    let db = platform.gw.db.clone();
    assert!(import(&db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
    let http = reqwest::Client::new();
    let get = |path: String| {
        let request = http.get(platform.gw.http(&path)).bearer_auth(&platform.admin);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let started = http
        .post(platform.gw.http("/api/v1/admin/sessions/s1:backfill"))
        .bearer_auth(&platform.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    eventually("the job holds its first batch", PATIENCE, || async {
        let (_, job) = get("/api/v1/admin/sessions/s1/backfill".into()).await;
        (job["contacts"] == 10).then_some(())
    })
    .await;

    let removed = match backend() {
        crate::common::Backend::Postgres => {
            let mut sql = sqlx::PgConnection::connect(&db).await.unwrap();
            sqlx::query("DELETE FROM sessions WHERE id = 's1'").execute(&mut sql).await.unwrap().rows_affected()
        }
        crate::common::Backend::Sqlite => {
            let mut sql = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
            sqlx::query("DELETE FROM sessions WHERE id = 's1'").execute(&mut sql).await.unwrap().rows_affected()
        }
    };
    assert_eq!(removed, 1);
    host.open_gate();

    let ended = eventually("the job ends", PATIENCE, || async {
        let (_, job) = get("/api/v1/admin/sessions/s1/backfill".into()).await;
        (job["status"] == "failed" || job["status"] == "succeeded").then_some(job)
    })
    .await;
    assert_eq!(ended["status"], "failed", "a removed session's backfill succeeded: {ended}");
    assert_eq!(ended["error"], "session removed", "{ended}");
    let (status, body) = get("/api/v1/admin/sessions/s1/contacts".into()).await;
    assert_eq!(status, 404, "{body}");
    let stored: i64 = match backend() {
        crate::common::Backend::Postgres => {
            let mut sql = sqlx::PgConnection::connect(&db).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM wa_contacts WHERE session_id = 's1'")
                .fetch_one(&mut sql)
                .await
                .unwrap()
        }
        crate::common::Backend::Sqlite => {
            let mut sql = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM wa_contacts WHERE session_id = 's1'")
                .fetch_one(&mut sql)
                .await
                .unwrap()
        }
    };
    assert_eq!(stored, 0, "the removed session's pulled rows stayed");
}
