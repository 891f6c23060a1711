//! The store as the domain sees it: the [`Database`] and [`SessionImport`]
//! interfaces, the rows they trade in, and the [`Store`] handle. Nothing
//! here knows a backend; the types it names come from the files that
//! define them, so no domain file depends on this one through itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::error::StoreError;
use crate::backfill::board::JobBoard;
use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::events::model::{After, EventFilter, Position, Pruned, Retention, SessionEvent};
use crate::feed::leases::FeedLeases;
use crate::paging::PageRequest;
use crate::sessions::model::{Session, SessionFilter, SessionId, SessionStatus};
use crate::sessions::writes::{FeedWriter, Inspection, SessionWrite, Upsert};
use crate::time::UnixMillis;

/// An api-key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub organization_id: String,
    pub name: Option<String>,
    pub permissions: Vec<String>,
    pub secret_hash: Vec<u8>,
    pub created_at: UnixMillis,
    pub last_used_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
}

/// Where a job's rows go before they are published: the session and the
/// job's own generation, which readers do not see.
#[derive(Debug, Clone, Copy)]
pub struct Staging<'a> {
    pub session: &'a SessionId,
    pub generation: &'a str,
}

/// What staging a batch of groups replaced: groups the job had already
/// staged, and their member rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    pub groups: u64,
    pub members: u64,
}

/// How a backend takes a job's rows. Memory follows these numbers, never
/// the session's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingWrites {
    /// Most rows one staging write (one transaction) holds.
    pub rows: usize,
    /// Most rows received from the host ahead of the writes (at least `rows`).
    pub ahead: usize,
    /// How many staging writes of one job may run at once. A write that may
    /// replace rows the job staged before never overlaps another.
    pub concurrent: usize,
}

impl Default for StagingWrites {
    /// One writer at a time, in writes small enough that the rows received
    /// ahead of it stay a few MiB.
    fn default() -> Self {
        Self { rows: 2_048, ahead: 2_048, concurrent: 1 }
    }
}

/// Rows of one listing page and the generation they were read from (`None`
/// when there were no rows). Rows and generation come from one statement, so
/// a page never mixes two backfills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice<T> {
    pub generation: Option<String>,
    pub rows: Vec<T>,
}

/// What removing a gateway's sessions did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayRemoval {
    /// The ids removed (they were stored with that gateway).
    pub removed: Vec<SessionId>,
    /// How many of the ids are stored with another gateway (left alone).
    pub elsewhere: usize,
}

/// How a store's connection pool is used at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections handed out to callers now.
    pub busy: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// How many sessions of one gateway are in one status. Sessions without a
/// gateway count under `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub gateway_id: String,
    pub status: SessionStatus,
    pub sessions: u64,
}

/// Everything the service asks of a database: its four capabilities and
/// the care of the database itself.
#[async_trait]
pub trait Database: SessionStore + ApiKeyStore + DirectoryStore + EventStore + Send + Sync + 'static {
    /// Applies every pending migration of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The server's cursor-signing key, created on first use. It lives in the
    /// database so cursors stay valid across restarts and replicas.
    async fn cursor_key(&self) -> Result<[u8; 32], StoreError>;
    /// Whether the database answers; for readiness probes.
    async fn ping(&self) -> bool;
    /// The connection pool's use now, for the saturation gauge.
    fn pool_use(&self) -> PoolUse;
    async fn close(&self);
    /// Makes this process the database's only server, for backends that
    /// allow just one (SQLite); fails when another server holds it.
    fn hold_serving_lock(&self) -> Result<(), StoreError>;
    /// The job board every replica shares, for backends that several
    /// replicas share (PostgreSQL); `None` keeps jobs in memory.
    fn shared_job_board(&self, lease: Duration) -> Option<Arc<dyn JobBoard>>;
    /// Who follows which gateway's session feed, for backends that several
    /// replicas share; `None` when this process follows them all.
    fn feed_leases(&self) -> Option<Arc<dyn FeedLeases>>;
}

/// The sessions table: the import's writes and the listing's reads.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts or replaces every session in one transaction: all or nothing.
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError>;
    /// Starts an import: one transaction that the caller commits or drops.
    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError>;
    /// Up to `limit + 1` sessions after the page's key, ordered by id, so the
    /// caller can tell whether another page exists.
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;
    /// The revision of the sessions table: it changes with every committed
    /// write to sessions and never repeats, so a listing read after the
    /// revision was R is still current while it reads R.
    async fn sessions_revision(&self) -> Result<String, StoreError>;
    /// In one transaction: reads each session's stored row, writes those
    /// [`crate::sessions::writes::decide`] lets through, and answers what it
    /// did with each, in order. Ids are distinct. Fails with
    /// [`StoreError::NotFollowing`], writing nothing, once `writer`'s lease
    /// is no longer current.
    async fn upsert_newer(&self, writer: FeedWriter<'_>, sessions: &[Session]) -> Result<Vec<Upsert>, StoreError>;
    /// Ids of every session stored with `gateway`.
    async fn gateway_session_ids(&self, gateway: &str) -> Result<Vec<SessionId>, StoreError>;
    /// Removes those of `ids` stored with `writer`'s gateway, with their
    /// stored backfill data, in one transaction that moves the revision on;
    /// fenced by `writer`'s lease like [`Self::upsert_newer`].
    async fn remove_gateway_sessions(
        &self,
        writer: FeedWriter<'_>,
        ids: &[SessionId],
    ) -> Result<GatewayRemoval, StoreError>;
    /// Sessions by gateway and status, from counters every writer of the
    /// sessions table keeps in its own transaction (no count over rows).
    async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError>;
}

/// Api-keys, stored by the hash of their secret.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError>;
    /// Marks a key revoked. Returns false when no such key exists; revoking a
    /// revoked key keeps its first revocation time.
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError>;
    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError>;
}

/// What backfills store: each job's rows under its own generation, the
/// generation a session shows, and the pages read from it.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// How this backend wants a backfill's rows written.
    fn staging_writes(&self) -> StagingWrites {
        StagingWrites::default()
    }
    /// Stages contacts (distinct jids) in one transaction. Those of
    /// `maybe_staged` that the generation already holds are replaced whole;
    /// returns how many were.
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError>;
    /// Stages groups (distinct jids) with their participants in one
    /// transaction. A group of `maybe_staged` already staged is replaced with
    /// its members: the new member set never merges with the old one.
    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError>;
    /// Makes `generation` the session's visible data and drops the one it
    /// replaces, atomically.
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Drops the rows of a generation that will never be published.
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Deletes rows of generations that are not current: leftovers of jobs
    /// that a crash interrupted. Run before any job starts.
    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError>;
    /// The session's visible generation, if a backfill ever succeeded.
    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError>;
    /// Up to `limit + 1` visible contacts after `after`, by jid.
    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError>;
    /// Up to `limit + 1` visible groups after `after`, by jid, with member counts.
    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError>;
    /// Up to `limit + 1` members of one visible group after `after`, by jid.
    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError>;
    /// Whether `generation` of the session holds the group.
    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError>;
}

/// One import transaction. Dropping it without [`SessionImport::commit`]
/// writes nothing.
#[async_trait]
pub trait SessionImport: Send {
    /// For each id (distinct within one call): whether this import saw it
    /// before, and the stored row's owner and version if there is one.
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError>;
    /// Inserts or updates these sessions, each only over a stored row no
    /// newer than it (another writer may have stored a newer one since
    /// [`Self::inspect`]); answers the ids left out for that.
    async fn write(&mut self, sessions: &[SessionWrite]) -> Result<Vec<String>, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Session history (contract §6). The events are written by the store
/// itself, in the transaction of every change of `sessions` (whoever writes
/// it), so this port only reads and prunes them.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Up to `limit` events under `filter`, newest first by id, with ids
    /// below `before` when given.
    async fn list_session_events(
        &self,
        filter: &EventFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SessionEvent>, StoreError>;
    /// Up to `limit` events after `after`, in commit order; `Gone` when some
    /// event after it has been pruned.
    async fn session_events_after(&self, after: Position, limit: u32) -> Result<After, StoreError>;
    /// The position after every event committed so far.
    async fn session_events_head(&self) -> Result<Position, StoreError>;
    /// One batch of pruning, in a short transaction of its own.
    async fn prune_session_events(&self, retention: &Retention) -> Result<Pruned, StoreError>;
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Database>);

impl Store {
    pub fn new(database: Arc<dyn Database>) -> Self {
        Self(database)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Database;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
