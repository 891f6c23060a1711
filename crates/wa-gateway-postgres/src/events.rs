//! Session history on PostgreSQL (migration 0010): events are written by
//! triggers; an event's commit position is the revision its transaction
//! took (`session_event_commits`), which follows commit order across
//! replicas.

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use wa_gateway_core::events::model::{After, EventFilter, Position, Pruned, Retention, SessionEvent};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::EventStore;
use wa_gateway_sql::events::{EVENT_COLUMNS, PrunePlan, event, over_cap, push_listing};
use wa_gateway_sql::sessions::Placeholders;

use crate::errors::from_sqlx;

/// The newest position pruned; read after the events, so a prune that
/// committed before them is seen.
async fn pruned_through(conn: &mut PgConnection) -> Result<Position, StoreError> {
    let (commit, event): (i64, i64) =
        sqlx::query_as("SELECT commit_position, event_id FROM session_events_pruned WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    Ok(Position { commit, event })
}

#[async_trait]
impl EventStore for crate::PgDatabase {
    async fn list_session_events(
        &self,
        filter: &EventFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SessionEvent>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT COALESCE(c.n, 0), {EVENT_COLUMNS} FROM session_events e \
             LEFT JOIN session_event_commits c ON c.tx = e.tx WHERE true"
        ));
        push_listing(&mut q, filter, limit, before);
        let rows = q.build().fetch_all(&self.pool).await.map_err(from_sqlx)?;
        rows.iter().map(event).collect()
    }

    async fn session_events_after(&self, after: Position, limit: u32) -> Result<After, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        let rows = sqlx::query(&format!(
            "SELECT c.n, {EVENT_COLUMNS} FROM session_event_commits c \
             JOIN session_events e ON e.tx = c.tx \
             WHERE c.n >= $1 AND (c.n > $1 OR e.id > $2) ORDER BY c.n, e.id LIMIT $3"
        ))
        .bind(after.commit)
        .bind(after.event)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        if pruned_through(&mut conn).await? > after {
            return Ok(After::Gone);
        }
        Ok(After::Events(rows.iter().map(event).collect::<Result<_, _>>()?))
    }

    async fn session_events_head(&self) -> Result<Position, StoreError> {
        // Every transaction still to commit takes a later revision.
        let n: i64 =
            sqlx::query_scalar("SELECT n FROM sessions_revision").fetch_one(&self.pool).await.map_err(from_sqlx)?;
        Ok(Position { commit: n, event: i64::MAX })
    }

    async fn prune_session_events(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        let batch = i64::from(retention.batch);
        // Found by reads, which hold nobody up.
        let (checked, last): (i64, i64) = sqlx::query_as(
            "SELECT checked, (SELECT COALESCE(MAX(id), 0) FROM session_events) FROM session_events_pruned WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let upto = last.min(checked.saturating_add(batch)).max(checked);
        let over: Vec<(String, Option<i64>)> = sqlx::query_as(&over_cap(Placeholders::Numbered))
            .bind(i64::from(retention.per_session))
            .bind(checked)
            .bind(upto)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let aged: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM session_events WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2")
                .bind(retention.recorded_before)
                .bind(batch)
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
        let over_cap = over.into_iter().filter_map(|(session, cut)| Some((session, cut?))).collect();
        let plan = PrunePlan { aged, over_cap, checked, upto };
        let mut pruned = Pruned { more: plan.more(batch), ..Pruned::default() };
        if plan.is_empty() {
            return Ok(pruned);
        }
        let mut tx = crate::begin(&self.pool).await?;
        // One pruner at a time past this point; writers of sessions never
        // touch this row.
        let mut through = pruned_through_locked(&mut tx).await?;
        let (n, newest) = deleted(
            &mut tx,
            sqlx::query("DELETE FROM session_events WHERE id = ANY($1) RETURNING tx::text").bind(&plan.aged),
        )
        .await?;
        pruned.by_age = n;
        through = through.max(newest);
        for (session, cut) in &plan.over_cap {
            let query = sqlx::query("DELETE FROM session_events WHERE session_id = $1 AND id <= $2 RETURNING tx::text")
                .bind(session)
                .bind(cut);
            let (n, newest) = deleted(&mut tx, query).await?;
            pruned.by_count += n;
            through = through.max(newest);
        }
        sqlx::query(
            "DELETE FROM session_event_commits WHERE n IN (SELECT n FROM session_event_commits c \
             WHERE committed_at < $1 AND NOT EXISTS (SELECT 1 FROM session_events e WHERE e.tx = c.tx) \
             ORDER BY n LIMIT $2)",
        )
        .bind(retention.recorded_before)
        .bind(batch)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        sqlx::query(
            "UPDATE session_events_pruned SET commit_position = $1, event_id = $2, checked = GREATEST(checked, $3) \
             WHERE id = 1",
        )
        .bind(through.commit)
        .bind(through.event)
        .bind(plan.upto)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await?;
        pruned.checked = u64::try_from(plan.upto - plan.checked).unwrap_or(0);
        Ok(pruned)
    }
}

async fn pruned_through_locked(conn: &mut PgConnection) -> Result<Position, StoreError> {
    let (commit, event): (i64, i64) =
        sqlx::query_as("SELECT commit_position, event_id FROM session_events_pruned WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    Ok(Position { commit, event })
}

/// Runs a `DELETE … RETURNING tx`: how many events it deleted, and the
/// position after all of them (their newest commit, every event of it).
async fn deleted(
    conn: &mut PgConnection,
    delete: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
) -> Result<(u64, Position), StoreError> {
    use sqlx::Row;
    let rows = delete.fetch_all(&mut *conn).await.map_err(from_sqlx)?;
    if rows.is_empty() {
        return Ok((0, Position::START));
    }
    let txs: Vec<String> =
        rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>().map_err(from_sqlx)?;
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(n) FROM session_event_commits WHERE tx = ANY($1::text[]::xid8[])")
            .bind(&txs)
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    Ok((rows.len() as u64, newest.map_or(Position::START, |commit| Position { commit, event: i64::MAX })))
}
