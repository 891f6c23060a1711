//! The PostgreSQL backend (cluster mode): several `serve` replicas share one
//! database. Sessions, api-keys and stored data as on SQLite; backfill jobs
//! live here too ([`jobs`]), shared by every replica.

mod api_keys;
mod directory;
pub(super) mod errors;
mod job_state;
pub mod jobs;
mod sessions;
mod upkeep;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::store::port::{ApiKeyRow, Database, Replaced, SessionImport, Slice, Staging};

use crate::backfill::board::JobBoard;
use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::paging::PageRequest;
use crate::sessions::model::{Session, SessionFilter, SessionId};
use crate::store::error::StoreError;
use crate::time::UnixMillis;

pub(super) const MIGRATIONS: super::migrations::Embedded = super::migrations::embed!("postgres":
    "0001_sessions.sql",
    "0002_backfill_data.sql",
    "0003_backfill_jobs.sql",
    "0004_sessions_revision.sql",
);

pub struct PgDatabase {
    pool: PgPool,
}

impl PgDatabase {
    /// Connects to `url` (`postgres://…` or `postgresql://…`). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Connect(crate::store::redact::redact_password(url, &e.to_string()));
        // Every statement is planned with its own values and the tables' size
        // now: a generic plan cached while a table was small (a fresh import,
        // a first backfill) would scan it whole ever after, and one made
        // without the values cannot use what the statistics know about them
        // (a filter combination that matches nothing).
        let options = PgConnectOptions::from_str(url)
            .map_err(failed)?
            .application_name("wa-gateway")
            .options([("plan_cache_mode", "force_custom_plan")]);
        // One direct attempt first: a wrong URL fails at once and clearly,
        // instead of after the pool's retries.
        PgConnection::connect_with(&options).await.map_err(failed)?.close().await.map_err(failed)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(failed)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Database for PgDatabase {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATIONS.migrator().await?.run(&self.pool).await?;
        Ok(())
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('cursor_key', $1) ON CONFLICT DO NOTHING")
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'cursor_key'")
            .fetch_one(&self.pool)
            .await?;
        stored.try_into().map_err(|_| StoreError::Corrupt("cursor_key is not 32 bytes".into()))
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn shared_job_board(&self, lease: Duration) -> Option<Arc<dyn JobBoard>> {
        Some(jobs::PgJobBoard::start(self.pool.clone(), lease))
    }

    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        Self::upsert_sessions(self, sessions).await
    }
    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        Self::begin_import(self).await
    }
    #[tracing::instrument(level = "debug", name = "store.list_sessions", skip_all, fields(db.system = "postgresql"))]
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        Self::list_sessions(self, filter, page).await
    }
    #[tracing::instrument(level = "debug", name = "store.get_session", skip_all, fields(db.system = "postgresql"))]
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Self::get_session(self, id).await
    }
    #[tracing::instrument(level = "debug", name = "store.sessions_revision", skip_all, fields(db.system = "postgresql"))]
    async fn sessions_revision(&self) -> Result<String, StoreError> {
        Self::sessions_revision(self).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        Self::insert_api_key(self, key).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        Self::list_api_keys(self).await
    }
    #[tracing::instrument(level = "debug", name = "store.find_api_key_by_hash", skip_all, fields(db.system = "postgresql"))]
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        Self::find_api_key_by_hash(self, hash).await
    }
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        Self::revoke_api_key(self, id, at).await
    }
    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        Self::touch_api_key(self, id, at).await
    }

    #[tracing::instrument(level = "debug", name = "store.stage_contacts", skip_all, fields(db.system = "postgresql"))]
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        Self::stage_contacts(self, to, contacts, maybe_staged).await
    }
    #[tracing::instrument(level = "debug", name = "store.stage_groups", skip_all, fields(db.system = "postgresql"))]
    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        Self::stage_groups(self, to, groups, maybe_staged).await
    }
    #[tracing::instrument(level = "debug", name = "store.publish_generation", skip_all, fields(db.system = "postgresql"))]
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        directory::publish(&mut tx, session, generation).await?;
        tx.commit().await?;
        Ok(())
    }
    #[tracing::instrument(level = "debug", name = "store.discard_generation", skip_all, fields(db.system = "postgresql"))]
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        Self::discard_generation(self, session, generation).await
    }
    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        upkeep::sweep_failed_jobs(&self.pool).await
    }
    #[tracing::instrument(level = "debug", name = "store.current_generation", skip_all, fields(db.system = "postgresql"))]
    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        Self::current_generation(self, session).await
    }
    #[tracing::instrument(level = "debug", name = "store.contacts_page", skip_all, fields(db.system = "postgresql"))]
    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        Self::contacts_page(self, session, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.groups_page", skip_all, fields(db.system = "postgresql"))]
    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        Self::groups_page(self, session, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.participants_page", skip_all, fields(db.system = "postgresql"))]
    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        Self::participants_page(self, session, group, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.group_exists", skip_all, fields(db.system = "postgresql"))]
    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        Self::group_exists(self, session, generation, group).await
    }
}
