//! Any [`Database`] with a `store.<operation>` span (DEBUG, with
//! `db.system`) around each operation that reads or writes rows on a
//! request's or a job's path. Every backend is traced the same way, and no
//! backend carries tracing attributes of its own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::error::StoreError;
use super::port::{
    ApiKeyRow, ApiKeyStore, Database, DirectoryStore, EventStore, GatewayRemoval, Replaced, SessionImport,
    SessionStore, Slice, Staging, StagingWrites, StatusCount,
};
use crate::backfill::board::JobBoard;
use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::events::model::{After, EventFilter, Position, Pruned, Retention, SessionEvent};
use crate::paging::PageRequest;
use crate::sessions::model::{Session, SessionFilter, SessionId};
use crate::sessions::writes::FeedWriter;
use crate::time::UnixMillis;

pub struct Instrumented<D> {
    inner: D,
    /// The span attribute `db.system`: `sqlite`, `postgresql`.
    system: &'static str,
}

impl<D: Database> Instrumented<D> {
    pub fn new(inner: D, system: &'static str) -> Self {
        Self { inner, system }
    }
}

#[async_trait]
impl<D: Database> Database for Instrumented<D> {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        self.inner.cursor_key().await
    }

    async fn ping(&self) -> bool {
        self.inner.ping().await
    }

    fn pool_use(&self) -> super::port::PoolUse {
        self.inner.pool_use()
    }

    async fn close(&self) {
        self.inner.close().await
    }

    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        self.inner.hold_serving_lock()
    }

    fn shared_job_board(&self, lease: Duration) -> Option<Arc<dyn JobBoard>> {
        self.inner.shared_job_board(lease)
    }

    fn feed_leases(&self) -> Option<Arc<dyn crate::feed::leases::FeedLeases>> {
        self.inner.feed_leases()
    }
}

#[async_trait]
impl<D: Database> SessionStore for Instrumented<D> {
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        self.inner.upsert_sessions(sessions).await
    }

    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        self.inner.begin_import().await
    }

    #[tracing::instrument(level = "debug", name = "store.list_sessions", skip_all, fields(db.system = self.system))]
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(filter, page).await
    }

    #[tracing::instrument(level = "debug", name = "store.get_session", skip_all, fields(db.system = self.system))]
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.inner.get_session(id).await
    }

    #[tracing::instrument(level = "debug", name = "store.sessions_revision", skip_all, fields(db.system = self.system))]
    async fn sessions_revision(&self) -> Result<String, StoreError> {
        self.inner.sessions_revision().await
    }

    #[tracing::instrument(level = "debug", name = "store.upsert_newer", skip_all, fields(db.system = self.system))]
    async fn upsert_newer(
        &self,
        writer: FeedWriter<'_>,
        sessions: &[Session],
    ) -> Result<Vec<crate::sessions::writes::Upsert>, StoreError> {
        self.inner.upsert_newer(writer, sessions).await
    }

    #[tracing::instrument(level = "debug", name = "store.gateway_session_ids", skip_all, fields(db.system = self.system))]
    async fn gateway_session_ids(&self, gateway: &str) -> Result<Vec<SessionId>, StoreError> {
        self.inner.gateway_session_ids(gateway).await
    }

    #[tracing::instrument(level = "debug", name = "store.remove_gateway_sessions", skip_all, fields(db.system = self.system))]
    async fn remove_gateway_sessions(
        &self,
        writer: FeedWriter<'_>,
        ids: &[SessionId],
    ) -> Result<GatewayRemoval, StoreError> {
        self.inner.remove_gateway_sessions(writer, ids).await
    }

    #[tracing::instrument(level = "debug", name = "store.status_counts", skip_all, fields(db.system = self.system))]
    async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.inner.status_counts().await
    }
}

#[async_trait]
impl<D: Database> ApiKeyStore for Instrumented<D> {
    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        self.inner.insert_api_key(key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.inner.list_api_keys().await
    }

    #[tracing::instrument(level = "debug", name = "store.find_api_key_by_hash", skip_all, fields(db.system = self.system))]
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        self.inner.find_api_key_by_hash(hash).await
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        self.inner.revoke_api_key(id, at).await
    }

    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        self.inner.touch_api_key(id, at).await
    }
}

#[async_trait]
impl<D: Database> DirectoryStore for Instrumented<D> {
    fn staging_writes(&self) -> StagingWrites {
        self.inner.staging_writes()
    }

    #[tracing::instrument(level = "debug", name = "store.stage_contacts", skip_all, fields(db.system = self.system, rows = contacts.len() as i64))]
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        self.inner.stage_contacts(to, contacts, maybe_staged).await
    }

    #[tracing::instrument(level = "debug", name = "store.stage_groups", skip_all, fields(db.system = self.system, rows = groups.len() as i64))]
    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        self.inner.stage_groups(to, groups, maybe_staged).await
    }

    #[tracing::instrument(level = "debug", name = "store.publish_generation", skip_all, fields(db.system = self.system))]
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        self.inner.publish_generation(session, generation).await
    }

    #[tracing::instrument(level = "debug", name = "store.discard_generation", skip_all, fields(db.system = self.system))]
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        self.inner.discard_generation(session, generation).await
    }

    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        self.inner.sweep_unpublished_generations().await
    }

    #[tracing::instrument(level = "debug", name = "store.current_generation", skip_all, fields(db.system = self.system))]
    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        self.inner.current_generation(session).await
    }

    #[tracing::instrument(level = "debug", name = "store.contacts_page", skip_all, fields(db.system = self.system))]
    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        self.inner.contacts_page(session, after, limit).await
    }

    #[tracing::instrument(level = "debug", name = "store.groups_page", skip_all, fields(db.system = self.system))]
    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        self.inner.groups_page(session, after, limit).await
    }

    #[tracing::instrument(level = "debug", name = "store.participants_page", skip_all, fields(db.system = self.system))]
    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        self.inner.participants_page(session, group, after, limit).await
    }

    #[tracing::instrument(level = "debug", name = "store.group_exists", skip_all, fields(db.system = self.system))]
    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        self.inner.group_exists(session, generation, group).await
    }
}

#[async_trait]
impl<D: Database> EventStore for Instrumented<D> {
    #[tracing::instrument(level = "debug", name = "store.list_session_events", skip_all, fields(db.system = self.system))]
    async fn list_session_events(
        &self,
        filter: &EventFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SessionEvent>, StoreError> {
        self.inner.list_session_events(filter, limit, before).await
    }

    #[tracing::instrument(level = "debug", name = "store.session_events_after", skip_all, fields(db.system = self.system))]
    async fn session_events_after(&self, after: Position, limit: u32) -> Result<After, StoreError> {
        self.inner.session_events_after(after, limit).await
    }

    async fn session_events_head(&self) -> Result<Position, StoreError> {
        self.inner.session_events_head().await
    }

    #[tracing::instrument(level = "debug", name = "store.prune_session_events", skip_all, fields(db.system = self.system))]
    async fn prune_session_events(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        self.inner.prune_session_events(retention).await
    }
}
