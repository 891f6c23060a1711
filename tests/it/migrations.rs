//! Upgrading a PostgreSQL database while replicas of the earlier build
//! still write to it: the gateways' status counts equal a recount of the
//! sessions afterwards, even for a write that was in flight when the
//! counters were first made.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgPool;

use crate::common::{cli, pg};

/// `sessions` as each gateway's counters say, and as a count of its rows.
async fn counted_and_recounted(pool: &PgPool) -> (Vec<(String, String, i64)>, Vec<(String, String, i64)>) {
    // The changes not yet folded into the counters count too (0009 on).
    let deltas: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('session_status_deltas')::text").fetch_one(pool).await.unwrap();
    let pending = match deltas {
        Some(_) => "UNION ALL SELECT gateway_id, status, delta FROM session_status_deltas",
        None => "",
    };
    let counted = sqlx::query_as(&format!(
        "SELECT gateway_id, status, SUM(n)::BIGINT FROM ( \
             SELECT gateway_id, status, sessions AS n FROM session_status_counts {pending}) AS c \
         GROUP BY 1, 2 HAVING SUM(n) <> 0 ORDER BY 1, 2"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let recounted =
        sqlx::query_as("SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .unwrap();
    (counted, recounted)
}

async fn insert(conn: &mut sqlx::PgConnection, id: &str, gateway: &str, status: &str) {
    sqlx::query(
        "INSERT INTO sessions (id, organization_id, gateway_id, status, created_at, updated_at) \
         VALUES ($1, 'org_a', $2, $3, 1, 1)",
    )
    .bind(id)
    .bind(gateway)
    .bind(status)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn status_counts_equal_a_recount_after_an_upgrade_under_concurrent_writes() {
    let db = pg::database().await;
    let pool = PgPool::connect(&db).await.unwrap();
    // The database as the build before the counters left it (0001-0004).
    let mut earlier = wa_gateway_postgres::MIGRATIONS.migrator().await.unwrap();
    earlier.migrations = Cow::Owned(earlier.migrations[..4].to_vec());
    earlier.run(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..40 {
        insert(&mut conn, &format!("a{i:02}"), if i % 2 == 0 { "gw-1" } else { "gw-2" }, "working").await;
    }
    drop(conn);

    // A replica of the earlier build is inside a write when the upgrade starts.
    let mut in_flight = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut in_flight).await.unwrap();
    for i in 0..5 {
        insert(&mut in_flight, &format!("b{i}"), "gw-1", "scan_qr_code").await;
    }
    // Others keep writing, each write its own transaction, all along.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (pool, writing) = (pool.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) {
                let mut conn = pool.acquire().await.unwrap();
                insert(&mut conn, &format!("c{n:04}"), "gw-2", "starting").await;
                sqlx::query("UPDATE sessions SET status = 'failed' WHERE id = $1")
                    .bind(format!("a{:02}", n % 40))
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let migrating = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || cli(&db, &["migrate"]))
    };
    // The counters' migration waits for the write in flight; it commits.
    pg::until_waiting_on_a_lock(&db, "session_status_counts").await;
    sqlx::query("COMMIT").execute(&mut in_flight).await.unwrap();
    let migrated = migrating.await.unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    writing.store(false, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    eprintln!("{writes} concurrent writes during the upgrade");

    let (counted, recounted) = counted_and_recounted(&pool).await;
    assert_eq!(counted, recounted, "the status counts drifted from the sessions");
}
