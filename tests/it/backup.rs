//! `wa-gateway backup --to FILE`: a consistent copy of a running SQLite
//! store, taken while imports go on, that opens and serves the same
//! sessions, api-keys and stored data; it never overwrites a file, and on
//! PostgreSQL it points to pg_dump.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wa_gateway::proto::admin::ListSessionsRequest;

use crate::common::env::Env;
use crate::common::*;

/// Sessions per import of the concurrent writer: each import is one
/// transaction, so a consistent copy holds a multiple of this many.
const BATCH: usize = 200;

async fn every_session(env: &Env) -> Vec<wa_gateway::proto::admin::Session> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let req = ListSessionsRequest { cursor: cursor.clone(), limit: Some(500), ..Default::default() };
        let page = env.client.clone().list_sessions(authed(req, &env.token)).await.unwrap().into_inner();
        out.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return out,
        }
    }
}

fn api_keys(db: &str) -> String {
    let out = cli(db, &["api-keys", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn serve_on(db: &str, host: &str) -> Env {
    let jwks = JwksServer::start().await;
    let gw = Gateway::start_with_db(db, &jwks.url(), &["--host", &format!("gw-1={host}")]).await;
    let client = gw.client().await;
    Env { _jwks: jwks, gw, client, token: mint(KeyKind::Rsa, "rsa-1", &super_admin_claims()) }
}

#[tokio::test]
async fn a_running_store_is_copied_while_imports_go_on_and_the_copy_serves_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db").to_str().unwrap().to_owned();
    let sim = HostSimProcess::start(&["--session", "sess-1", "--contacts", "500", "--groups", "20"]).await;
    let live = serve_on(&db, &sim.url).await;
    assert!(import(&db, &session_line("sess-1", "org_a", "working", "gw-1")).status.success());
    assert!(cli(&db, &["api-keys", "create", "--org", "org_a", "--name", "ops"]).status.success());
    live.start("sess-1").await.unwrap();
    assert_eq!(live.finished("sess-1").await.contacts, 500);

    // A writer imports batches of sessions, one transaction each, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let imports = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, stop, imports) = (db.clone(), stop.clone(), imports.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = imports.load(Ordering::SeqCst);
                let lines: Vec<String> =
                    (0..BATCH).map(|i| session_line(&format!("w{n:04}-{i:04}"), "org_w", "working", "gw-2")).collect();
                let out = import(&db, &lines.join("\n"));
                assert!(out.status.success(), "an import beside the backup: {}", String::from_utf8_lossy(&out.stderr));
                imports.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let patience = Duration::from_secs(60);
    eventually("the writer has imported", patience, || async { (imports.load(Ordering::SeqCst) >= 1).then_some(()) })
        .await;
    let copy = dir.path().join("copy.db");
    let copy_path = copy.to_str().unwrap().to_owned();
    let before = imports.load(Ordering::SeqCst);
    let out = cli(&db, &["backup", "--to", &copy_path]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity_check ok"));
    let at_least = before;
    eventually("the writer imported after the backup", patience, || async {
        (imports.load(Ordering::SeqCst) > before + 1).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    // Nothing is left under a temporary name, and the copy is never overwritten.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".partial-")), "{names:?}");
    let size = std::fs::metadata(&copy).unwrap().len();
    let again = cli(&db, &["backup", "--to", &copy_path]);
    assert_eq!(again.status.code(), Some(1), "refused, and not as a usage error");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"), "{again:?}");
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);

    // The copy opens and serves what the store held when it was taken.
    let restored = serve_on(&copy_path, &sim.url).await;
    let (now, then) = (every_session(&live).await, every_session(&restored).await);
    let written =
        |all: &[wa_gateway::proto::admin::Session]| all.iter().filter(|s| s.organization_id == "org_w").count();
    let others = |all: &[wa_gateway::proto::admin::Session]| {
        all.iter().filter(|s| s.organization_id != "org_w").cloned().collect::<Vec<_>>()
    };
    assert_eq!(others(&then), others(&now), "the sessions nobody wrote during the backup");
    assert_eq!(written(&then) % BATCH, 0, "a copy with part of an import: {}", written(&then));
    assert!(written(&then) >= at_least * BATCH, "{} < {}", written(&then), at_least * BATCH);
    assert!(written(&then) < written(&now), "the writes after the backup are not in it");
    assert_eq!(api_keys(&copy_path), api_keys(&db));
    assert_eq!(restored.contacts("sess-1").await, live.contacts("sess-1").await);
    assert_eq!(restored.groups_with_members("sess-1").await, live.groups_with_members("sess-1").await);
}

#[tokio::test]
async fn backup_names_what_is_wrong_and_points_postgres_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy.db");
    let to = to.to_str().unwrap();

    let pg = cli("postgres://wa@127.0.0.1:9/wa", &["backup", "--to", to]);
    assert_eq!(pg.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"), "{pg:?}");

    let missing = dir.path().join("missing.db");
    let out = cli(missing.to_str().unwrap(), &["backup", "--to", to]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite database"), "{out:?}");
    assert!(!missing.exists(), "a backup must not create the database it copies");

    let db = dir.path().join("live.db");
    assert!(cli(db.to_str().unwrap(), &["migrate"]).status.success());
    let nowhere = dir.path().join("no-such-folder").join("copy.db");
    let out = cli(db.to_str().unwrap(), &["backup", "--to", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"), "{out:?}");

    let usage = cli(db.to_str().unwrap(), &["backup"]);
    assert_eq!(usage.status.code(), Some(2), "--to is required");
    assert!(!std::path::Path::new(to).exists());
}
