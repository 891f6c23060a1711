//! The PostgreSQL backend (cluster mode): several `serve` replicas share one
//! database. Sessions, api-keys and stored data as on SQLite; backfill jobs
//! live here too ([`jobs`]), shared by every replica.

mod api_keys;
mod directory;
mod errors;
mod events;
mod followers;
mod job_state;
pub mod jobs;
mod sessions;
mod upkeep;

use crate::errors::from_sqlx;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use wa_gateway_sql::from_migrate;

use async_trait::async_trait;
use rand::RngCore;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use wa_gateway_core::store::port::Database;

use wa_gateway_core::backfill::board::JobBoard;
use wa_gateway_core::store::error::StoreError;

/// This backend's migrations, in version order.
pub const MIGRATIONS: wa_gateway_sql::Embedded = wa_gateway_sql::embed!(
    "0001_sessions.sql",
    "0002_backfill_data.sql",
    "0003_backfill_jobs.sql",
    "0004_sessions_revision.sql",
    "0005_session_status_counts.sql",
    "0006_feed_followers.sql",
    "0007_feed_tenures.sql",
    "0008_feed_holds.sql",
    "0009_status_count_deltas.sql",
    "0010_session_events.sql",
);

pub struct PgDatabase {
    pool: PgPool,
    /// How migrations connect: as the pool, without its statement timeout
    /// (a migration may rewrite a large table).
    migrating: PgConnectOptions,
}

/// How the pool of one process talks to PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions {
    pub max_connections: u32,
    /// How long a caller waits for a free pooled connection before it gets
    /// a busy error (503).
    pub acquire_timeout: Duration,
    /// The server ends a session that stays idle inside a transaction this
    /// long, releasing its locks. A replica cut off from the database (its
    /// connections open but silent) would otherwise hold the locks of an
    /// open transaction for as long as TCP takes to notice, and every other
    /// replica's reaper and takeover would wait on them. `None` for
    /// commands that legitimately hold a transaction open while they read
    /// their input (an import streams its file inside one).
    pub idle_in_transaction: Option<Duration>,
    /// The longest one statement may run (a lock wait included) before the
    /// server cancels it; the caller then gets a busy error (503). The
    /// statements that touch a whole session's stored data (publishing,
    /// discarding, sweeping, removing) are exempt ([`UNBOUNDED`]), and so
    /// are migrations. `None`: no limit.
    pub statement_timeout: Option<Duration>,
}

/// A write transaction whose connection is closed, never pooled again, if
/// it is dropped before its end ([`wa_gateway_sql::tx`]).
pub(crate) type Tx = wa_gateway_sql::Tx<sqlx::Postgres>;

pub(crate) async fn begin(pool: &PgPool) -> Result<Tx, StoreError> {
    Tx::begin(pool, "BEGIN", from_sqlx).await
}

/// Lifts the statement timeout for the rest of the current transaction.
pub(crate) const UNBOUNDED: &str = "SET LOCAL statement_timeout = 0";

/// Inside a transaction: the statements that follow may take as long as
/// the rows they touch need.
pub(crate) async fn unbounded(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(UNBOUNDED).execute(&mut *conn).await.map_err(from_sqlx)?;
    Ok(())
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            idle_in_transaction: None,
            statement_timeout: None,
        }
    }
}

impl PgDatabase {
    /// Connects to `url` (`postgres://…` or `postgresql://…`). Does not migrate.
    pub async fn connect(url: &str, pg: PgOptions) -> Result<Self, StoreError> {
        // Down, unreachable or starting up: worth waiting for. Anything else
        // (a wrong password or database name) is a mistake to report now.
        let failed = |e: sqlx::Error| {
            let message = wa_gateway_sql::redact_password(url, &e.to_string());
            match &e {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
                    StoreError::Unavailable(format!("cannot connect: {message}"))
                }
                sqlx::Error::Database(db) if db.code().as_deref() == Some("57P03") => {
                    StoreError::Unavailable(format!("cannot connect: {message}"))
                }
                _ => StoreError::Connect(message),
            }
        };
        // Every statement is planned with its own values and the tables' size
        // now: a generic plan cached while a table was small (a fresh import,
        // a first backfill) would scan it whole ever after, and one made
        // without the values cannot use what the statistics know about them
        // (a filter combination that matches nothing).
        let mut options = PgConnectOptions::from_str(url)
            .map_err(failed)?
            .application_name("wa-gateway")
            .options([("plan_cache_mode", "force_custom_plan")]);
        if let Some(idle) = pg.idle_in_transaction {
            let millis = idle.as_millis().max(1).to_string();
            options = options.options([("idle_in_transaction_session_timeout", millis.as_str())]);
        }
        let migrating = options.clone();
        if let Some(limit) = pg.statement_timeout {
            let millis = limit.as_millis().max(1).to_string();
            options = options.options([("statement_timeout", millis.as_str())]);
        }
        // One direct attempt first: a wrong URL fails at once and clearly,
        // instead of after the pool's retries.
        PgConnection::connect_with(&options).await.map_err(failed)?.close().await.map_err(failed)?;
        let pool = PgPoolOptions::new()
            .max_connections(pg.max_connections)
            .acquire_timeout(pg.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(failed)?;
        Ok(Self { pool, migrating })
    }
}

#[async_trait]
impl Database for PgDatabase {
    async fn migrate(&self) -> Result<(), StoreError> {
        let pool =
            PgPoolOptions::new().max_connections(1).connect_with(self.migrating.clone()).await.map_err(from_sqlx)?;
        let migrated = MIGRATIONS.migrator().await?.run(&pool).await.map_err(from_migrate);
        pool.close().await;
        migrated
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('cursor_key', $1) ON CONFLICT DO NOTHING")
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'cursor_key'")
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        stored.try_into().map_err(|_| StoreError::Corrupt("cursor_key is not 32 bytes".into()))
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    fn pool_use(&self) -> wa_gateway_core::store::port::PoolUse {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        wa_gateway_core::store::port::PoolUse {
            busy: self.pool.size().saturating_sub(idle),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn shared_job_board(&self, lease: Duration) -> Option<Arc<dyn JobBoard>> {
        Some(jobs::PgJobBoard::start(self.pool.clone(), lease))
    }

    fn feed_leases(&self) -> Option<Arc<dyn wa_gateway_core::feed::leases::FeedLeases>> {
        let replica = format!("{}-{}", std::process::id(), ulid::Ulid::new());
        // A pool of their own, so that renewing a lease never waits for a
        // connection the rest of the replica holds.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(self.pool.options().get_acquire_timeout())
            .connect_lazy_with((*self.pool.connect_options()).clone());
        Some(Arc::new(followers::PgFeedLeases { pool, replica }))
    }

    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        // Replicas share a PostgreSQL database.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The embedded list is the folder as sqlx reads it: a file added there
    /// and not embedded (or the reverse) fails here.
    #[tokio::test]
    async fn embedded_migrations_are_the_folder_as_sqlx_reads_it() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let count = super::MIGRATIONS.check_against(&folder).await.unwrap();
        assert!(count >= 4, "{count} migrations");
    }
}
