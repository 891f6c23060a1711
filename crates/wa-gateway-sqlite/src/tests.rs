//! The SQLite store as the domain reads it: busy answers, values read back
//! as written, and rows the schema should never hold.

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use std::sync::Arc;

use wa_gateway_core::store::{Store, StoreError};

use crate::SqliteDatabase;
use wa_gateway_core::error::{ErrorCode, ServiceError};
use wa_gateway_core::paging::PageRequest;
use wa_gateway_core::sessions::model::{Session, SessionId};

async fn connect(path: &str) -> Result<Store, StoreError> {
    Ok(Store::new(Arc::new(SqliteDatabase::connect(path, std::time::Duration::from_secs(5)).await?)))
}

async fn open(path: &str) -> Result<Store, StoreError> {
    let store = connect(path).await?;
    store.migrate().await?;
    Ok(store)
}

#[tokio::test]
async fn a_locked_database_is_busy_and_unavailable_not_internal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    open(path.to_str().unwrap()).await.unwrap().close().await;
    let mut holder = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
    let impatient = SqliteConnectOptions::new().filename(&path).busy_timeout(std::time::Duration::ZERO);
    let mut writer = SqliteConnection::connect_with(&impatient).await.unwrap();
    let error = sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('x', x'00')")
        .execute(&mut writer)
        .await
        .map_err(crate::errors::from_sqlx)
        .unwrap_err();
    assert!(error.is_busy(), "{error:?}");
    assert_eq!((error.error_code(), error.reason()), (ErrorCode::Unavailable, "STORE_BUSY"));
    assert!(!error.public_message().contains("server_secrets"), "no SQL in what callers see");
    let corrupt = StoreError::Corrupt("x".into());
    assert_eq!((corrupt.error_code(), corrupt.public_message().as_str()), (ErrorCode::Internal, "internal error"));
}

#[tokio::test]
async fn a_listed_page_reads_every_value_back_as_stored() {
    use wa_gateway_core::sessions::model::{SessionFilter, SessionStatus};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path().join("page.db").to_str().unwrap()).await.unwrap();
    let session = |id: &str| Session {
        id: SessionId::parse(id).unwrap(),
        organization_id: "org \"quoted\" \\ back".into(),
        created_by_user_id: None,
        gateway_id: Some("gw\nnewline\ttab \u{1}".into()),
        label: Some("emoji 🦀 and ünïcode".into()),
        phone_number: None,
        wa_jid: Some("62812@s.whatsapp.net".into()),
        wa_lid: None,
        status: SessionStatus::ScanQrCode,
        auto_read: true,
        presence_typing: false,
        is_admin_session: true,
        rate_per_min: Some(i32::MAX),
        rate_per_hour: None,
        created_at: 1_719_662_400_000,
        updated_at: i64::MAX,
        last_connected_at: Some(-1),
    };
    let mut sessions: Vec<Session> = ["b-2", "a-1", "c-3"].iter().map(|id| session(id)).collect();
    sessions[1].rate_per_min = None;
    sessions[1].status = SessionStatus::Working;
    store.upsert_sessions(&sessions).await.unwrap();
    let page = PageRequest { limit: wa_gateway_core::paging::PageLimit::new(Some(2)).unwrap(), after: None };
    let listed = store.list_sessions(&SessionFilter::default(), &page).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a-1", "b-2", "c-3"], "limit + 1, id order");
    for s in &listed {
        assert_eq!(Some(s), store.get_session(&s.id).await.unwrap().as_ref(), "list and get agree");
        assert_eq!(Some(s), sessions.iter().find(|w| w.id == s.id), "as written");
    }
    store.close().await;
}

/// A row the schema should never hold (written around its CHECK) is an
/// internal error naming the session, never a panic or a wrong value.
#[tokio::test]
async fn a_corrupt_session_row_is_refused_with_what_is_wrong() {
    use wa_gateway_core::sessions::model::SessionFilter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    let page = PageRequest { limit: wa_gateway_core::paging::PageLimit::new(Some(10)).unwrap(), after: None };
    let rows = [
        ("'bad id!'", "'working'", "session \"bad id!\": session id may contain only"),
        ("'s-1'", "'asleep'", "session \"s-1\": unknown status \"asleep\""),
        ("'s-1'", "42", "session \"s-1\": unknown status \"42\""),
        ("'s-1'", "x'ff'", "Invalid column type Blob at index: 8, name: status"),
    ];
    for (id, status, expected) in rows {
        let _ = std::fs::remove_file(&path);
        open(path.to_str().unwrap()).await.unwrap().close().await;
        let mut writer = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await.unwrap();
        let insert = format!(
            "PRAGMA ignore_check_constraints = ON; INSERT INTO sessions \
             (id, organization_id, status, created_at, updated_at) VALUES ({id}, 'org', {status}, 1, 1)"
        );
        sqlx::raw_sql(&insert).execute(&mut writer).await.unwrap();
        writer.close().await.unwrap();
        let store = connect(path.to_str().unwrap()).await.unwrap();
        let error = store.list_sessions(&SessionFilter::default(), &page).await.unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::Internal, "{error:?}");
        assert!(format!("{error}").contains(expected), "{id} / {status}: {error}");
        store.close().await;
    }
}

/// The embedded list is the folder as sqlx reads it: a file added there and
/// not embedded (or the reverse) fails here.
#[tokio::test]
async fn embedded_migrations_are_the_folder_as_sqlx_reads_it() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let count = crate::MIGRATIONS.check_against(&folder).await.unwrap();
    assert!(count >= 6, "{count} migrations");
}
