use crate::BEGIN_WRITE;
use crate::errors::from_rusqlite;
use crate::errors::from_sqlx;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};

use crate::readers::{ReaderRow, Value};
use wa_gateway_core::paging::PageRequest;
use wa_gateway_core::sessions::model::{Session, SessionFilter, SessionId};
use wa_gateway_core::sessions::writes::{self, FeedWriter, Inspection, SessionWrite, StoredVersion, Upsert};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{GatewayRemoval, SessionImport, SessionStore, StatusCount};
use wa_gateway_sql::rows::{self, BUMP_REVISION, READ_REVISION, SESSION_COLUMNS};
use wa_gateway_sql::sessions::{Over, Placeholders, SessionWrites};

/// Upserts in statements of at most 500 rows (17 variables each).
const WRITES: SessionWrites =
    SessionWrites { rows_per_statement: 500, placeholders: Placeholders::Anonymous, error: from_sqlx };

async fn bump_revision(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // In the writing transaction: see `sessions_revision` (migrations).
    sqlx::query(BUMP_REVISION).execute(&mut *conn).await.map_err(from_sqlx)?;
    Ok(())
}

/// One import transaction. Ids already seen by this import are kept in a
/// temporary table, which SQLite holds in its temp database (paged like any
/// table), so memory does not grow with the input.
pub(super) struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
    wrote: bool,
}

#[async_trait]
impl SessionImport for SqliteImport {
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError> {
        let mut fresh: HashSet<String> = HashSet::with_capacity(ids.len());
        let mut stored: HashMap<String, StoredVersion> = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT INTO temp.import_seen (id) ");
            q.push_values(chunk, |mut row, id| {
                row.push_bind(id.as_str());
            });
            q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            for row in q.build().fetch_all(&mut *self.tx).await.map_err(from_sqlx)? {
                fresh.insert(row.try_get("id").map_err(from_sqlx)?);
            }
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT id, organization_id, updated_at FROM sessions WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *self.tx).await.map_err(from_sqlx)? {
                let (id, version) = rows::stored_version(&row)?;
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
            let landed = WRITES.upsert::<Sqlite>(&mut self.tx, &group, keep, Over::NoNewer).await?;
            self.wrote |= !landed.is_empty();
            if landed.len() < group.len() {
                let landed: HashSet<String> = landed.into_iter().collect();
                left_out
                    .extend(group.iter().map(|s| s.id.as_str()).filter(|id| !landed.contains(*id)).map(str::to_owned));
            }
        }
        Ok(left_out)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.wrote {
            bump_revision(&mut self.tx).await?;
        }
        sqlx::query("DROP TABLE temp.import_seen").execute(&mut *self.tx).await.map_err(from_sqlx)?;
        self.tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }
}

impl crate::SqliteDatabase {
    /// The per-gateway statements both backends share.
    fn gateway_sessions(&self) -> wa_gateway_sql::gateways::GatewaySessions<'_, sqlx::Sqlite> {
        wa_gateway_sql::gateways::GatewaySessions {
            pool: &self.pool,
            error: from_sqlx,
            begin: BEGIN_WRITE,
            holds_tenure: None,
            unbounded: None,
            counts: wa_gateway_sql::gateways::READ_COUNTERS,
        }
    }
}

#[async_trait]
impl SessionStore for crate::SqliteDatabase {
    /// Inserts or replaces every session in one transaction: all or nothing.
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)?;
        WRITES.upsert::<Sqlite>(&mut tx, &sessions.iter().collect::<Vec<_>>(), false, Over::Any).await?;
        bump_revision(&mut tx).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }

    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)?;
        sqlx::query("CREATE TEMP TABLE IF NOT EXISTS import_seen (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID")
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query("DELETE FROM temp.import_seen").execute(&mut *tx).await.map_err(from_sqlx)?;
        Ok(Box::new(SqliteImport { tx, wrote: false }))
    }

    /// Up to `limit + 1` sessions after the page's key, ordered by id, so the
    /// caller can tell whether another page exists.
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        let status = filter.status.map(|s| s.as_str());
        let limit = i64::from(page.limit.get()) + 1;
        let conditions: [(&str, Option<Value<'_>>); 5] = [
            (" AND organization_id = ?", filter.organization_id.as_ref().map(|v| v as Value<'_>)),
            (" AND status = ?", status.as_ref().map(|v| v as Value<'_>)),
            (" AND gateway_id = ?", filter.gateway_id.as_ref().map(|v| v as Value<'_>)),
            (" AND id > ?", page.after.as_ref().map(|v| v as Value<'_>)),
            (" ORDER BY id LIMIT ?", Some(&limit)),
        ];
        let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1");
        let mut values: Vec<Value<'_>> = Vec::with_capacity(conditions.len());
        for (condition, value) in conditions {
            if let Some(value) = value {
                sql.push_str(condition);
                values.push(value);
            }
        }
        self.readers
            .read(|conn| {
                let mut statement = conn.prepare_cached(&sql).map_err(from_rusqlite)?;
                let mut rows = statement.query(rusqlite::params_from_iter(&values)).map_err(from_rusqlite)?;
                let mut sessions = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
                while let Some(row) = rows.next().map_err(from_rusqlite)? {
                    sessions.push(rows::session(&ReaderRow(row))?);
                }
                Ok(sessions)
            })
            .await
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?");
        self.readers
            .read(|conn| {
                let mut statement = conn.prepare_cached(&sql).map_err(from_rusqlite)?;
                let mut rows = statement.query([id.as_str()]).map_err(from_rusqlite)?;
                rows.next().map_err(from_rusqlite)?.map(|row| rows::session(&ReaderRow(row))).transpose()
            })
            .await
    }

    async fn sessions_revision(&self) -> Result<String, StoreError> {
        self.readers
            .read(|conn| {
                Ok(conn
                    .prepare_cached(READ_REVISION)
                    .map_err(from_rusqlite)?
                    .query_row([], |row| row.get(0))
                    .map_err(from_rusqlite)?)
            })
            .await
    }

    async fn upsert_newer(&self, writer: FeedWriter<'_>, sessions: &[Session]) -> Result<Vec<Upsert>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)?;
        self.gateway_sessions().check_tenure(&mut tx, writer).await?;
        let mut stored: HashMap<String, StoredVersion> = HashMap::new();
        for chunk in sessions.chunks(500) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT id, organization_id, updated_at FROM sessions WHERE id IN (");
            let mut list = q.separated(", ");
            for session in chunk {
                list.push_bind(session.id.as_str());
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await.map_err(from_sqlx)? {
                let (id, version) = rows::stored_version(&row)?;
                stored.insert(id, version);
            }
        }
        let outcomes: Vec<Upsert> = sessions.iter().map(|s| writes::decide(stored.get(s.id.as_str()), s)).collect();
        let written: Vec<&Session> =
            sessions.iter().zip(&outcomes).filter(|(_, o)| **o == Upsert::Written).map(|(s, _)| s).collect();
        let landed = WRITES.upsert::<Sqlite>(&mut tx, &written, false, Over::OlderSameOrganization).await?;
        if !landed.is_empty() {
            bump_revision(&mut tx).await?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(outcomes)
    }

    async fn gateway_session_ids(&self, gateway: &str) -> Result<Vec<SessionId>, StoreError> {
        self.gateway_sessions().ids(gateway).await
    }

    async fn remove_gateway_sessions(
        &self,
        writer: FeedWriter<'_>,
        ids: &[SessionId],
    ) -> Result<GatewayRemoval, StoreError> {
        self.gateway_sessions().remove(writer, ids).await
    }

    async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.gateway_sessions().status_counts().await
    }
}
