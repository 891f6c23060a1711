use crate::errors::from_sqlx;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder, Transaction};

use wa_gateway_core::paging::PageRequest;
use wa_gateway_core::sessions::model::{Session, SessionFilter, SessionId};
use wa_gateway_core::sessions::writes::{self, FeedWriter, Inspection, SessionWrite, StoredVersion, Upsert};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{GatewayRemoval, SessionImport, SessionStore, StatusCount};
use wa_gateway_sql::rows::{self, BUMP_REVISION, READ_REVISION, SESSION_COLUMNS, SESSION_UPSERT_UPDATES};

/// Upserts in statements of at most 1,000 rows (17 parameters each, well
/// under PostgreSQL's 65,535).
/// One row of `INSERT INTO sessions ({SESSION_COLUMNS}) VALUES …`.
fn push_session<'q>(row: &mut sqlx::query_builder::Separated<'_, 'q, Postgres, &'static str>, s: &'q Session) {
    row.push_bind(s.id.as_str())
        .push_bind(&s.organization_id)
        .push_bind(&s.created_by_user_id)
        .push_bind(&s.gateway_id)
        .push_bind(&s.label)
        .push_bind(&s.phone_number)
        .push_bind(&s.wa_jid)
        .push_bind(&s.wa_lid)
        .push_bind(s.status.as_str())
        .push_bind(s.auto_read)
        .push_bind(s.presence_typing)
        .push_bind(s.is_admin_session)
        .push_bind(s.rate_per_min)
        .push_bind(s.rate_per_hour)
        .push_bind(s.created_at)
        .push_bind(s.updated_at)
        .push_bind(s.last_connected_at);
}

async fn write(conn: &mut PgConnection, sessions: &[&Session], keep_created_at: bool) -> Result<(), StoreError> {
    for chunk in sessions.chunks(1000) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("INSERT INTO sessions ({SESSION_COLUMNS}) "));
        q.push_values(chunk, |mut row, s| push_session(&mut row, s));
        q.push(format!(" ON CONFLICT (id) DO UPDATE SET {SESSION_UPSERT_UPDATES}"));
        if !keep_created_at {
            q.push(", created_at = excluded.created_at");
        }
        q.build().execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    if !sessions.is_empty() {
        // In the writing transaction: see `sessions_revision` (migrations).
        sqlx::query(BUMP_REVISION).execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    Ok(())
}

/// Whole-record upserts from a feed, each applied only over an older row of
/// the same organization (the rule of [`writes::decide`], held again by the
/// statement itself against a row a concurrent import inserted after the
/// read). Answers the ids written.
async fn write_newer(conn: &mut PgConnection, sessions: &[&Session]) -> Result<HashSet<String>, StoreError> {
    let mut landed = HashSet::with_capacity(sessions.len());
    for chunk in sessions.chunks(1000) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("INSERT INTO sessions ({SESSION_COLUMNS}) "));
        q.push_values(chunk, |mut row, s| push_session(&mut row, s));
        q.push(format!(
            " ON CONFLICT (id) DO UPDATE SET {SESSION_UPSERT_UPDATES}, created_at = excluded.created_at \
             WHERE sessions.updated_at < excluded.updated_at \
               AND sessions.organization_id = excluded.organization_id \
             RETURNING id"
        ));
        for id in q.build_query_scalar::<String>().fetch_all(&mut *conn).await.map_err(from_sqlx)? {
            landed.insert(id);
        }
    }
    if !landed.is_empty() {
        sqlx::query(BUMP_REVISION).execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    Ok(landed)
}

/// The stored version of each of `ids` that exists, read with `lock`.
async fn stored_versions(
    conn: &mut PgConnection,
    ids: &[&str],
    lock: &str,
) -> Result<HashMap<String, StoredVersion>, StoreError> {
    let mut stored = HashMap::with_capacity(ids.len());
    let select = format!("SELECT id, organization_id, updated_at FROM sessions WHERE id = ANY($1){lock}");
    for row in sqlx::query(&select).bind(ids).fetch_all(&mut *conn).await.map_err(from_sqlx)? {
        let (id, version) = rows::stored_version(&row)?;
        stored.insert(id, version);
    }
    Ok(stored)
}

/// One import transaction. Ids already seen are kept in a temporary table
/// that disappears with the transaction.
struct PgImport {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl SessionImport for PgImport {
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError> {
        let raw: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        let fresh: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO import_seen (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(&raw)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .collect();
        let mut stored: HashMap<String, StoredVersion> = HashMap::new();
        for row in sqlx::query("SELECT id, organization_id, updated_at FROM sessions WHERE id = ANY($1)")
            .bind(&raw)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(from_sqlx)?
        {
            let (id, version) = rows::stored_version(&row)?;
            stored.insert(id, version);
        }
        Ok(ids
            .iter()
            .map(|id| Inspection { repeated: !fresh.contains(id.as_str()), stored: stored.remove(id.as_str()) })
            .collect())
    }

    async fn write(&mut self, sessions: &[SessionWrite]) -> Result<(), StoreError> {
        for keep in [false, true] {
            let group: Vec<&Session> =
                sessions.iter().filter(|w| w.keep_stored_created_at == keep).map(|w| &w.session).collect();
            write(&mut self.tx, &group, keep).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        // Fresh statistics keep the planner choosing the filter indexes.
        sqlx::query("ANALYZE sessions").execute(&mut *self.tx).await.map_err(from_sqlx)?;
        self.tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }
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
        }
    }
}

#[async_trait]
impl SessionStore for crate::PgDatabase {
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        write(&mut tx, &sessions.iter().collect::<Vec<_>>(), false).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }

    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        sqlx::query("CREATE TEMP TABLE import_seen (id TEXT COLLATE \"C\" NOT NULL PRIMARY KEY) ON COMMIT DROP")
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        Ok(Box::new(PgImport { tx }))
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
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        self.gateway_sessions().check_tenure(&mut tx, writer).await?;
        let raw: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        // FOR UPDATE: a concurrent writer of the same rows waits, so the
        // decision holds when the row is written.
        let mut stored = stored_versions(&mut tx, &raw, " FOR UPDATE").await?;
        let mut outcomes: Vec<Upsert> = sessions.iter().map(|s| writes::decide(stored.get(s.id.as_str()), s)).collect();
        let written: Vec<&Session> =
            sessions.iter().zip(&outcomes).filter(|(_, o)| **o == Upsert::Written).map(|(s, _)| s).collect();
        let landed = write_newer(&mut tx, &written).await?;
        // A row absent when read, and inserted since by a concurrent import,
        // was left alone by the guarded write: decide again against it.
        let raced: Vec<&str> = written.iter().map(|s| s.id.as_str()).filter(|id| !landed.contains(*id)).collect();
        if !raced.is_empty() {
            stored = stored_versions(&mut tx, &raced, "").await?;
            for (session, outcome) in sessions.iter().zip(outcomes.iter_mut()) {
                if *outcome == Upsert::Written && !landed.contains(session.id.as_str()) {
                    *outcome = match writes::decide(stored.get(session.id.as_str()), session) {
                        Upsert::Written => Upsert::NotNewer,
                        decided => decided,
                    };
                }
            }
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
