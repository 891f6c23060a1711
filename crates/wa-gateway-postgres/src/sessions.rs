use crate::errors::from_sqlx;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use wa_gateway_core::paging::PageRequest;
use wa_gateway_core::sessions::model::{Session, SessionFilter, SessionId};
use wa_gateway_core::sessions::writes::{self, FeedWriter, StoredVersion, Upsert};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{GatewayRemoval, SessionImport, SessionStore, StatusCount};
use wa_gateway_sql::import::{Import, ImportShape};
use wa_gateway_sql::rows::{self, BUMP_REVISION, READ_REVISION, SESSION_COLUMNS};
use wa_gateway_sql::sessions::{Over, Placeholders, SessionWrites};

/// Upserts in statements of at most 1,000 rows (17 parameters each, well
/// under PostgreSQL's 65,535).
const WRITES: SessionWrites =
    SessionWrites { rows_per_statement: 1000, placeholders: Placeholders::Numbered, error: from_sqlx };

async fn bump_revision(conn: &mut PgConnection) -> Result<(), StoreError> {
    // In the writing transaction: see `sessions_revision` (migrations).
    sqlx::query(BUMP_REVISION).execute(&mut *conn).await.map_err(from_sqlx)?;
    Ok(())
}

/// The stored version of each of `ids` that exists, read with `lock`.
async fn stored_versions(
    conn: &mut PgConnection,
    ids: &[&str],
    lock: &str,
) -> Result<HashMap<String, StoredVersion>, StoreError> {
    let mut stored = HashMap::with_capacity(ids.len());
    let select =
        format!("SELECT id, organization_id, updated_at, status, gateway_id FROM sessions WHERE id = ANY($1){lock}");
    for row in sqlx::query(&select).bind(ids).fetch_all(&mut *conn).await.map_err(from_sqlx)? {
        let (id, version) = rows::stored_version(&row)?;
        stored.insert(id, version);
    }
    Ok(stored)
}

/// An import: the ids it has seen in a temporary table that goes with the
/// transaction, and fresh statistics for the planner at the end (the
/// filters' indexes stay chosen after a large import).
const IMPORT: ImportShape = ImportShape {
    writes: WRITES,
    begin: "BEGIN",
    start: &["CREATE TEMP TABLE import_seen (id TEXT COLLATE \"C\" NOT NULL PRIMARY KEY) ON COMMIT DROP"],
    finish: &["ANALYZE sessions"],
};

/// The counters plus the changes not yet folded into them (migration 0009).
const READ_COUNTS: &str = "SELECT gateway_id, status, SUM(n)::BIGINT AS sessions FROM ( \
         SELECT gateway_id, status, sessions AS n FROM session_status_counts \
         UNION ALL SELECT gateway_id, status, delta FROM session_status_deltas) AS c \
     GROUP BY gateway_id, status HAVING SUM(n) > 0 ORDER BY gateway_id, status";

/// Folds the committed status changes into the counters. Changes of a
/// transaction still open are not seen, so not waited for; two replicas
/// folding at once take each change once (the second finds it deleted).
pub(crate) async fn fold_status_changes(pool: &sqlx::PgPool) -> Result<u64, StoreError> {
    let folded = sqlx::query(
        "WITH moved AS (DELETE FROM session_status_deltas RETURNING gateway_id, status, delta), \
              net AS (SELECT gateway_id, status, SUM(delta)::BIGINT AS n FROM moved GROUP BY 1, 2) \
         INSERT INTO session_status_counts AS c (gateway_id, status, sessions) \
             SELECT gateway_id, status, n FROM net ORDER BY 1, 2 \
         ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = c.sessions + excluded.sessions",
    )
    .execute(pool)
    .await
    .map_err(from_sqlx)?;
    Ok(folded.rows_affected())
}

impl crate::PgDatabase {
    /// The per-gateway statements both backends share.
    fn gateway_sessions(&self) -> wa_gateway_sql::gateways::GatewaySessions<'_, sqlx::Postgres> {
        wa_gateway_sql::gateways::GatewaySessions {
            pool: &self.pool,
            error: from_sqlx,
            begin: "BEGIN",
            holds_tenure: Some(crate::followers::HOLDS_TENURE),
            unbounded: Some(crate::UNBOUNDED),
            counts: READ_COUNTS,
        }
    }
}

#[async_trait]
impl SessionStore for crate::PgDatabase {
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        WRITES.upsert::<Postgres>(&mut tx, &sessions.iter().collect::<Vec<_>>(), false, Over::Any).await?;
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        Ok(Box::new(Import::<Postgres>::begin(&self.pool, IMPORT).await?))
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE true"));
        if let Some(org) = &filter.organization_id {
            q.push(" AND organization_id = ").push_bind(org);
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(gateway) = &filter.gateway_id {
            q.push(" AND gateway_id = ").push_bind(gateway);
        }
        if let Some(after) = &page.after {
            q.push(" AND id > ").push_bind(after);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(page.limit.get()) + 1);
        let rows = q.build().fetch_all(&self.pool).await.map_err(from_sqlx)?;
        rows.iter().map(rows::session).collect()
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn sessions_revision(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar(READ_REVISION).fetch_one(&self.pool).await.map_err(from_sqlx)?)
    }

    async fn upsert_newer(&self, writer: FeedWriter<'_>, sessions: &[Session]) -> Result<Vec<Upsert>, StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        self.gateway_sessions().check_tenure(&mut tx, writer).await?;
        let raw: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        // FOR UPDATE: a concurrent writer of the same rows waits, so the
        // decision holds when the row is written.
        let mut stored = stored_versions(&mut tx, &raw, " FOR UPDATE").await?;
        let mut outcomes: Vec<Upsert> = sessions.iter().map(|s| writes::decide(stored.get(s.id.as_str()), s)).collect();
        let written: Vec<&Session> = sessions
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Upsert::Written { .. }))
            .map(|(s, _)| s)
            .collect();
        let landed: HashSet<String> = WRITES
            .upsert::<Postgres>(&mut tx, &written, false, Over::OlderSameOrganization)
            .await?
            .into_iter()
            .collect();
        if !landed.is_empty() {
            bump_revision(&mut tx).await?;
        }
        // A row absent when read, and inserted since by a concurrent import,
        // was left alone by the guarded write: decide again against it.
        let raced: Vec<&str> = written.iter().map(|s| s.id.as_str()).filter(|id| !landed.contains(*id)).collect();
        if !raced.is_empty() {
            stored = stored_versions(&mut tx, &raced, "").await?;
            for (session, outcome) in sessions.iter().zip(outcomes.iter_mut()) {
                if matches!(outcome, Upsert::Written { .. }) && !landed.contains(session.id.as_str()) {
                    *outcome = match writes::decide(stored.get(session.id.as_str()), session) {
                        Upsert::Written { .. } => Upsert::NotNewer,
                        decided => decided,
                    };
                }
            }
        }
        tx.commit().await?;
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
