//! `sessions import` as one transaction, once for both backends: the ids
//! this import has seen go into a temporary table (paged by the database,
//! so memory does not grow with the input), stored versions are read per
//! chunk, rows are written by [`SessionWrites`] over rows no newer than
//! them, and the sessions revision moves once, at the commit.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use wa_gateway_core::sessions::model::{Session, SessionId};
use wa_gateway_core::sessions::writes::{Inspection, SessionWrite, StoredVersion};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::SessionImport;

use crate::Tx;
use crate::rows::{BUMP_REVISION, Columns, stored_version};
use crate::sessions::{Over, SessionWrites};

/// How one backend runs an import.
#[derive(Debug, Clone, Copy)]
pub struct ImportShape {
    pub writes: SessionWrites,
    /// The statement the import's transaction begins with.
    pub begin: &'static str,
    /// Run first: they make an empty `import_seen (id)` table of this
    /// transaction's own.
    pub start: &'static [&'static str],
    /// Run before the commit.
    pub finish: &'static [&'static str],
}

pub struct Import<DB: Database> {
    tx: Tx<DB>,
    shape: ImportShape,
    wrote: bool,
}

impl<DB: Database> Import<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub async fn begin(pool: &Pool<DB>, shape: ImportShape) -> Result<Self, StoreError> {
        let mut tx = Tx::begin(pool, shape.begin, shape.writes.error).await?;
        for statement in shape.start {
            let conn: &mut DB::Connection = &mut tx;
            conn.execute(*statement).await.map_err(shape.writes.error)?;
        }
        Ok(Self { tx, shape, wrote: false })
    }
}

#[async_trait]
impl<DB> SessionImport for Import<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Row: Columns,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError> {
        let (error, placeholders) = (self.shape.writes.error, self.shape.writes.placeholders);
        let mut fresh: HashSet<String> = HashSet::with_capacity(ids.len());
        let mut stored: HashMap<String, StoredVersion> = HashMap::new();
        for chunk in ids.chunks(self.shape.writes.rows_per_statement.max(1)) {
            let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", placeholders.list(i + 1, 1))).collect();
            let seen = format!(
                "INSERT INTO import_seen (id) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
                values.join(", ")
            );
            let mut query = sqlx::query(&seen);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&mut *self.tx).await.map_err(error)? {
                fresh.insert(row.text_at(0)?);
            }
            let read = format!(
                "SELECT id, organization_id, updated_at, status, gateway_id FROM sessions WHERE id IN ({})",
                placeholders.list(1, chunk.len())
            );
            let mut query = sqlx::query(&read);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&mut *self.tx).await.map_err(error)? {
                let (id, version) = stored_version(&row)?;
                stored.insert(id, version);
            }
        }
        Ok(ids
            .iter()
            .map(|id| Inspection { repeated: !fresh.contains(id.as_str()), stored: stored.remove(id.as_str()) })
            .collect())
    }

    async fn write(&mut self, sessions: &[SessionWrite]) -> Result<Vec<String>, StoreError> {
        let mut left_out = Vec::new();
        for keep in [false, true] {
            let group: Vec<&Session> =
                sessions.iter().filter(|w| w.keep_stored_created_at == keep).map(|w| &w.session).collect();
            let landed = self.shape.writes.upsert::<DB>(&mut self.tx, &group, keep, Over::NoNewer).await?;
            self.wrote |= !landed.is_empty();
            if landed.len() < group.len() {
                let landed: HashSet<String> = landed.into_iter().collect();
                let missing = group.iter().map(|s| s.id.as_str()).filter(|id| !landed.contains(*id));
                left_out.extend(missing.map(str::to_owned));
            }
        }
        Ok(left_out)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let error = self.shape.writes.error;
        // The revision row is locked from here to the commit only, so other
        // writers wait for the end of a long import, never for all of it.
        let bump = self.wrote.then_some(BUMP_REVISION);
        for statement in bump.iter().chain(self.shape.finish) {
            let conn: &mut DB::Connection = &mut self.tx;
            conn.execute(*statement).await.map_err(error)?;
        }
        self.tx.commit().await
    }
}
