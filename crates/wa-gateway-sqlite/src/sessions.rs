use crate::BEGIN_WRITE;
use crate::errors::from_rusqlite;
use crate::errors::from_sqlx;
use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::readers::{ReaderRow, Value, conditional};
use wa_gateway_core::paging::PageRequest;
use wa_gateway_core::sessions::model::{Session, SessionFilter, SessionId};
use wa_gateway_core::sessions::writes::{self, FeedWriter, StoredVersion, Upsert};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{GatewayRemoval, SessionImport, SessionStore, StatusCount};
use wa_gateway_sql::import::{Import, ImportShape};
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

/// An import: the ids it has seen in a temporary table, which SQLite holds
/// in its temp database (paged like any table), dropped at the end.
const IMPORT: ImportShape = ImportShape {
    writes: WRITES,
    begin: BEGIN_WRITE,
    start: &[
        "CREATE TEMP TABLE IF NOT EXISTS import_seen (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID",
        "DELETE FROM temp.import_seen",
    ],
    finish: &["DROP TABLE temp.import_seen"],
};

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
        Ok(Box::new(Import::<Sqlite>::begin(&self.pool, IMPORT).await?))
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
        let (sql, values) = conditional(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"), &conditions);
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
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT id, organization_id, updated_at, status, gateway_id FROM sessions WHERE id IN (",
            );
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
        let written: Vec<&Session> = sessions
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Upsert::Written { .. }))
            .map(|(s, _)| s)
            .collect();
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
