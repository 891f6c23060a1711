//! Session history on SQLite (migration 0008): events are written by
//! triggers; one writer holds the database at a time, so an event's id is
//! its commit position too.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use wa_gateway_core::events::model::{After, EventFilter, Position, Pruned, Retention, SessionEvent};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::EventStore;
use wa_gateway_sql::events::{EVENT_COLUMNS, PrunePlan, SINCE_BOUND, event, over_cap};
use wa_gateway_sql::sessions::Placeholders;

use crate::BEGIN_WRITE;
use crate::errors::{from_rusqlite, from_sqlx};
use crate::readers::{ReaderRow, Value, conditional};

async fn pruned_through(conn: &mut SqliteConnection) -> Result<(Position, i64), StoreError> {
    let (commit, event, checked): (i64, i64, i64) =
        sqlx::query_as("SELECT commit_position, event_id, checked FROM session_events_pruned WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    Ok((Position { commit, event }, checked))
}

#[async_trait]
impl EventStore for crate::SqliteDatabase {
    /// A hot read, on the reader connections (as the sessions listing).
    async fn list_session_events(
        &self,
        filter: &EventFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SessionEvent>, StoreError> {
        let status = filter.status.map(|s| s.as_str());
        let session = filter.session_id.as_ref().map(|s| s.as_str());
        let limit = i64::from(limit);
        let conditions: [(&str, Option<Value<'_>>); 8] = [
            (" AND e.session_id = ?", session.as_ref().map(|v| v as Value<'_>)),
            (" AND e.organization_id = ?", filter.organization_id.as_ref().map(|v| v as Value<'_>)),
            (" AND e.gateway_id = ?", filter.gateway_id.as_ref().map(|v| v as Value<'_>)),
            (" AND e.to_status = ?", status.as_ref().map(|v| v as Value<'_>)),
            (" AND e.recorded_at >= ?", filter.since.as_ref().map(|v| v as Value<'_>)),
            (SINCE_BOUND, filter.since.as_ref().map(|v| v as Value<'_>)),
            (" AND e.id < ?", before.as_ref().map(|v| v as Value<'_>)),
            (" ORDER BY e.id DESC LIMIT ?", Some(&limit)),
        ];
        let (sql, values) =
            conditional(format!("SELECT e.id, {EVENT_COLUMNS} FROM session_events e WHERE 1 = 1"), &conditions);
        self.readers
            .read(|conn| {
                let mut statement = conn.prepare_cached(&sql).map_err(from_rusqlite)?;
                let mut rows = statement.query(rusqlite::params_from_iter(&values)).map_err(from_rusqlite)?;
                let mut events = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
                while let Some(row) = rows.next().map_err(from_rusqlite)? {
                    events.push(event(&ReaderRow(row))?);
                }
                Ok(events)
            })
            .await
    }

    async fn session_events_after(&self, after: Position, limit: u32) -> Result<After, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        let rows = sqlx::query(&format!(
            "SELECT e.id, {EVENT_COLUMNS} FROM session_events e WHERE e.id > ? ORDER BY e.id LIMIT ?"
        ))
        .bind(after.event)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        if pruned_through(&mut conn).await?.0 > after {
            return Ok(After::Gone);
        }
        Ok(After::Events(rows.iter().map(event).collect::<Result<_, _>>()?))
    }

    async fn session_events_head(&self) -> Result<Position, StoreError> {
        let last: i64 =
            sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'session_events'), 0)")
                .fetch_one(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok(Position { commit: last, event: last })
    }

    async fn prune_session_events(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        let batch = i64::from(retention.batch);
        // Found by reads, outside the write lock.
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        let (_, checked) = pruned_through(&mut conn).await?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM session_events")
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        let upto = last.min(checked.saturating_add(batch)).max(checked);
        let over: Vec<(String, Option<i64>)> = sqlx::query_as(&over_cap(Placeholders::Anonymous))
            .bind(i64::from(retention.per_session))
            .bind(checked)
            .bind(upto)
            .fetch_all(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        let aged: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM session_events WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?")
                .bind(retention.recorded_before)
                .bind(batch)
                .fetch_all(&mut *conn)
                .await
                .map_err(from_sqlx)?;
        drop(conn);
        let over_cap = over.into_iter().filter_map(|(session, cut)| Some((session, cut?))).collect();
        let plan = PrunePlan { aged, over_cap, checked, upto };
        let mut pruned = Pruned { more: plan.more(batch), ..Pruned::default() };
        if plan.is_empty() {
            return Ok(pruned);
        }
        // One short write transaction.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)?;
        let (mut through, _) = pruned_through(&mut tx).await?;
        // A JSON array of integers, read back by json_each: one parameter.
        let ids = format!("[{}]", plan.aged.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
        let aged: Vec<i64> =
            sqlx::query_scalar("DELETE FROM session_events WHERE id IN (SELECT value FROM json_each(?)) RETURNING id")
                .bind(ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        pruned.by_age = aged.len() as u64;
        let mut newest = aged.iter().copied().max();
        for (session, cut) in &plan.over_cap {
            let over: Vec<i64> =
                sqlx::query_scalar("DELETE FROM session_events WHERE session_id = ? AND id <= ? RETURNING id")
                    .bind(session)
                    .bind(cut)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            pruned.by_count += over.len() as u64;
            newest = newest.max(over.iter().copied().max());
        }
        if let Some(id) = newest {
            through = through.max(Position { commit: id, event: id });
        }
        sqlx::query(
            "UPDATE session_events_pruned SET commit_position = ?, event_id = ?, checked = MAX(checked, ?) WHERE id = 1",
        )
        .bind(through.commit)
        .bind(through.event)
        .bind(plan.upto)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        pruned.checked = u64::try_from(plan.upto - plan.checked).unwrap_or(0);
        Ok(pruned)
    }
}
