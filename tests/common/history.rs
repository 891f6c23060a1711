//! Session history for benches: switching the event triggers off (the same
//! binary without events, the baseline of "events on"), and filling the
//! events table at scale.

use sqlx::Connection;

/// Drops the triggers that write session events, on a migrated database.
pub async fn events_off(db: &str) {
    if db.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
        for trigger in ["sessions_events_on_insert", "sessions_events_on_update", "sessions_events_on_delete"] {
            sqlx::query(&format!("DROP TRIGGER {trigger} ON sessions")).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
        for trigger in ["sessions_event_on_insert", "sessions_event_on_update", "sessions_event_on_delete"] {
            sqlx::query(&format!("DROP TRIGGER {trigger}")).execute(&mut conn).await.unwrap();
        }
    }
}

/// A migrated SQLite database at `path`, with or without events.
pub async fn sqlite_database(path: &std::path::Path, events: bool) -> String {
    let db = path.display().to_string();
    let out = super::cli(&db, &["--log", "warn", "migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if !events {
        events_off(&db).await;
    }
    db
}
