//! A database made by an earlier build opens under this one with its
//! sessions, api-keys and stored data intact. The fixtures in
//! `tests/fixtures/upgrade/` were made by the binary of 195b336, which
//! embedded its migrations with `sqlx::migrate!` (see the README there):
//! `_sqlx_migrations` holds that build's versions and checksums, and a
//! migration whose checksum changed would refuse to open.

use std::path::Path;

use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;
use wa_gateway::proto::admin::{GetBackfillRequest, ListSessionsRequest, WhoAmIRequest};

use crate::common::env::Env;
use crate::common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade/");

/// The fixture database of this test's backend, restored where the test can
/// write to it; its URL (or path), and the temporary folder that holds it.
async fn restore(name: &str) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend() {
        Backend::Sqlite => {
            let path = dir.path().join("upgraded.db");
            std::fs::copy(Path::new(FIXTURES).join("sqlite.db"), &path).unwrap();
            path.to_str().unwrap().to_owned()
        }
        Backend::Postgres => {
            let url = pg::database().await;
            let restored = std::process::Command::new("psql")
                .args(["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--dbname", &url, "--file"])
                .arg(Path::new(FIXTURES).join(format!("{name}.sql")))
                .output()
                .expect("psql must be installed (scripts/test installs postgresql)");
            assert!(restored.status.success(), "psql: {}", String::from_utf8_lossy(&restored.stderr));
            url
        }
    };
    (db, dir)
}

crate::both_backends!(a_database_made_by_the_previous_build_opens_with_its_data);
async fn a_database_made_by_the_previous_build_opens_with_its_data() {
    let name = match backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}{name}.json")).unwrap()).unwrap();
    let (db, _dir) = restore(name).await;

    // Every migration that build applied is known here by the same version
    // and checksum: `migrate` accepts the database and has nothing to do.
    let migrated = cli(&db, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", String::from_utf8_lossy(&migrated.stderr));

    let jwks = JwksServer::start().await;
    let gw = Gateway::start_with_db(&db, &jwks.url(), &["--host", "gw-1=http://127.0.0.1:9"]).await;
    let client = gw.client().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let env = Env { _jwks: jwks, gw, client, token };

    let listed = env
        .client
        .clone()
        .list_sessions(authed(ListSessionsRequest::default(), &env.token))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.data.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["sess-1", "sess-2", "sess-nohost", "sess-off"], "the sessions that build imported");

    let contacts: Vec<String> = env.contacts("sess-1").await.into_iter().map(|c| c.jid).collect();
    assert_eq!(serde_json::json!(contacts), expected["contacts"], "the stored contacts, in order");
    let groups: Vec<(String, i64)> =
        env.groups("sess-1").await.into_iter().map(|g| (g.jid, g.participant_count)).collect();
    assert_eq!(serde_json::json!(groups), expected["groups"], "the stored groups and their member counts");
    assert_eq!(env.participants("sess-1", "g0001@g.us", 3).await.len(), 4, "a group's members");

    // The api-key's stored hash still matches its secret: the key is known
    // (an unknown one is UNAUTHENTICATED) and refused only for what it is.
    let key = expected["api_key"].as_str().unwrap();
    let mut request = tonic::Request::new(WhoAmIRequest {});
    request.metadata_mut().insert("x-api-key", key.parse().unwrap());
    let refused = env.client.clone().who_am_i(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(refused.get_error_details().error_info().map(|i| i.reason.as_str()), Some("API_KEY_NOT_ALLOWED"));

    if backend() == Backend::Postgres {
        // Jobs live in the database in cluster mode: the finished job too.
        let job = env
            .client
            .clone()
            .get_backfill(authed(GetBackfillRequest { session_id: "sess-1".into() }, &env.token))
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!((job.id.as_str(), job.contacts), (expected["job"].as_str().unwrap(), 25));
    }
}
