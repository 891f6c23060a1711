//! SQLite on a full disk: the database lives on a small tmpfs the test
//! mounts (it runs as root). A backfill that fills the disk fails with a
//! clear error and leaves the stored data as it was; an import fails whole;
//! the server keeps answering reads, the file passes `integrity_check`, and
//! once space returns the same backfill succeeds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::Connection;
use wa_gateway::proto::admin::{BackfillStatus, ListSessionContactsRequest, ListSessionsRequest};

use crate::common::env::Env;
use crate::common::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount(8)");
        assert!(out.status.success(), "mounting a tmpfs needs root: {}", String::from_utf8_lossy(&out.stderr));
        Self { path, _dir: dir }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("mount(8)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn integrity(db: &Path) -> Vec<String> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.unwrap()
}

/// The first page of sess-1's stored contacts.
async fn first_contacts(env: &Env) -> Vec<wa_gateway::proto::admin::Contact> {
    let req = ListSessionContactsRequest { session_id: "sess-1".into(), limit: Some(100), cursor: String::new() };
    env.client.clone().list_session_contacts(authed(req, &env.token)).await.unwrap().into_inner().data
}

#[tokio::test]
async fn a_full_disk_fails_the_write_and_keeps_the_store_whole_and_readable() {
    let disk = SmallDisk::mount("3m");
    let file = disk.path.join("full.db");
    let db = file.to_str().unwrap().to_owned();
    let sim = HostSimProcess::start(&["--session", "sess-1", "--contacts", "100000", "--groups", "0"]).await;
    let lines =
        [session_line("sess-1", "org_a", "working", "gw-1"), session_line("sess-2", "org_a", "working", "gw-1")];
    assert!(import(&db, &lines.join("\n")).status.success());
    let jwks = JwksServer::start().await;
    let gw = Gateway::start_with_db(&db, &jwks.url(), &["--host", &format!("gw-1={}", sim.url)]).await;
    let client = gw.client().await;
    let env = Env { _jwks: jwks, gw, client, token: mint(KeyKind::Rsa, "rsa-1", &super_admin_claims()) };

    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    eprintln!("the backfill on a full disk: {failed:?}");
    assert_eq!(failed.status(), BackfillStatus::Failed);
    assert!(failed.error.as_deref().unwrap_or("").contains("no space left"), "{:?}", failed.error);

    // An import fails whole, naming the cause.
    let many: Vec<String> =
        (0..20_000).map(|i| session_line(&format!("bulk-{i:05}"), "org_b", "working", "gw-1")).collect();
    let out = import(&db, &many.join("\n"));
    eprintln!("the import on a full disk: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("full"), "{out:?}");

    // Reads go on, and nothing half-written is visible.
    let listed = env.client.clone().list_sessions(authed(ListSessionsRequest::default(), &env.token)).await.unwrap();
    let ids: Vec<String> = listed.into_inner().data.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["sess-1", "sess-2"]);
    assert!(first_contacts(&env).await.is_empty(), "a failed backfill's rows are visible");
    assert_eq!(integrity(&file).await, ["ok"]);

    // Space returns: the same backfill now succeeds.
    disk.grow("256m");
    let again = tokio::time::timeout(Duration::from_secs(120), async {
        env.start("sess-1").await.unwrap();
        env.finished("sess-1").await
    })
    .await
    .unwrap();
    assert_eq!(again.status(), BackfillStatus::Succeeded, "{again:?}");
    assert_eq!(again.contacts, 100_000);
    assert_eq!(first_contacts(&env).await.len(), 100);
    assert_eq!(integrity(&file).await, ["ok"]);
}

/// `wa_gateway_store_full_total` as `/metrics` says it.
async fn full_counted(gw: &Gateway) -> f64 {
    let body = reqwest::get(gw.http("/metrics")).await.unwrap().text().await.unwrap();
    body.lines()
        .filter(|l| l.starts_with("wa_gateway_store_full_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// PostgreSQL out of disk (SQLSTATE 53100) reads as SQLite's full disk: the
/// job fails saying so, and the write counts where `WaGatewayStoreFull`
/// looks. The server answers every contacts write with that error, as it
/// does when it cannot extend a file.
#[tokio::test]
async fn postgres_out_of_disk_fails_the_write_as_a_full_disk_and_is_counted() {
    let script =
        host::Script { contacts: (0..50).map(|i| host::contact(i, "c")).collect(), batch: 10, ..Default::default() };
    let (_host, url) = host::ScriptedHost::start(script).await;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    assert!(import(&db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
    let gw = Gateway::start_with_db(&db, &jwks.url(), &["--host", &format!("gw-1={url}")]).await;
    let mut sql = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$; \
         CREATE TRIGGER no_space BEFORE INSERT ON wa_contacts FOR EACH STATEMENT EXECUTE FUNCTION no_space();",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    assert_eq!(full_counted(&gw).await, 0.0);

    let http = reqwest::Client::new();
    let started = http.post(gw.http("/api/v1/admin/sessions/s1:backfill")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let job: serde_json::Value = eventually("the job ends", Duration::from_secs(60), || async {
        let job: serde_json::Value = http
            .get(gw.http("/api/v1/admin/sessions/s1/backfill"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["status"] == "failed").then_some(job)
    })
    .await;
    assert!(job["error"].as_str().unwrap().starts_with("the database has no space left"), "{job}");
    assert!(full_counted(&gw).await >= 1.0, "PostgreSQL's full disk was not counted");
}
