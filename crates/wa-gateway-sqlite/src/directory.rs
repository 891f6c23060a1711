//! Generations of backfilled data (see migrations/sqlite/0003_backfill_data.sql).

use crate::errors::from_rusqlite;
// Backfill data transactions begin deferred: the runner retries each one
// whole while the database is busy (`store_retrying`), so a failed upgrade of
// a read costs a retry, not an error.
use crate::errors::from_sqlx;
use async_trait::async_trait;
use rusqlite::OptionalExtension;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::SqliteDatabase;
use crate::readers::{ReaderRow, Value};
use wa_gateway_core::directory::{Contact, Group, GroupSummary, Participant};
use wa_gateway_core::sessions::model::SessionId;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{DirectoryStore, Replaced, Slice, Staging};
use wa_gateway_core::time::now_millis;
use wa_gateway_sql::rows::{self, DATA_TABLES};

/// Rows per INSERT: SQLite allows 32,766 bound variables per statement, and
/// 11 columns x 500 rows stays far below it.
const ROWS_PER_STATEMENT: usize = 500;

/// Which of `jids` the staging generation already holds, in `table`'s key column.
async fn staged_among(
    conn: &mut SqliteConnection,
    to: Staging<'_>,
    table: &str,
    extra: &str,
    jids: &[&str],
) -> Result<Vec<SqliteRow>, StoreError> {
    let mut found = Vec::new();
    for chunk in jids.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT jid{extra} FROM {table} WHERE session_id = "));
        q.push_bind(to.session.as_str()).push(" AND generation = ").push_bind(to.generation).push(" AND jid IN (");
        let mut list = q.separated(", ");
        for jid in chunk {
            list.push_bind(*jid);
        }
        q.push(")");
        found.extend(q.build().fetch_all(&mut *conn).await.map_err(from_sqlx)?);
    }
    Ok(found)
}

async fn delete_keys(
    conn: &mut SqliteConnection,
    to: Staging<'_>,
    table: &str,
    column: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!("DELETE FROM {table} WHERE session_id = "));
        q.push_bind(to.session.as_str()).push(" AND generation = ").push_bind(to.generation);
        q.push(format!(" AND {column} IN ("));
        let mut list = q.separated(", ");
        for key in chunk {
            list.push_bind(key.as_str());
        }
        q.push(")");
        q.build().execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    Ok(())
}

const VISIBLE: &str = "FROM session_data_generations g JOIN {table} t \
     ON t.session_id = g.session_id AND t.generation = g.generation WHERE g.session_id = ?";

fn visible(table: &str) -> String {
    VISIBLE.replace("{table}", table)
}

#[async_trait]
impl DirectoryStore for SqliteDatabase {
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let staged: Vec<String> = staged_among(&mut tx, to, "wa_contacts", "", maybe_staged)
            .await?
            .iter()
            .map(|r| r.try_get("jid"))
            .collect::<Result<_, _>>()
            .map_err(from_sqlx)?;
        delete_keys(&mut tx, to, "wa_contacts", "jid", &staged).await?;
        for chunk in contacts.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO wa_contacts (session_id, generation, jid, lid, phone_number, push_name, \
                 full_name, first_name, business_name) ",
            );
            q.push_values(chunk, |mut row, c| {
                row.push_bind(to.session.as_str())
                    .push_bind(to.generation)
                    .push_bind(&c.jid)
                    .push_bind(&c.lid)
                    .push_bind(&c.phone_number)
                    .push_bind(&c.push_name)
                    .push_bind(&c.full_name)
                    .push_bind(&c.first_name)
                    .push_bind(&c.business_name);
            });
            q.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(staged.len() as u64)
    }

    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let mut replaced = Replaced::default();
        let mut staged = Vec::new();
        for row in staged_among(&mut tx, to, "wa_groups", ", participant_count", maybe_staged).await? {
            staged.push(row.try_get::<String, _>("jid").map_err(from_sqlx)?);
            replaced.groups += 1;
            replaced.members +=
                u64::try_from(row.try_get::<i64, _>("participant_count").map_err(from_sqlx)?).unwrap_or(0);
        }
        delete_keys(&mut tx, to, "wa_group_participants", "group_jid", &staged).await?;
        delete_keys(&mut tx, to, "wa_groups", "jid", &staged).await?;
        for chunk in groups.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO wa_groups (session_id, generation, jid, name, topic, owner_jid, \
                 created_at, is_announce, is_locked, addressing_mode, participant_count) ",
            );
            q.push_values(chunk, |mut row, g| {
                let i = &g.info;
                row.push_bind(to.session.as_str())
                    .push_bind(to.generation)
                    .push_bind(&i.jid)
                    .push_bind(&i.name)
                    .push_bind(&i.topic)
                    .push_bind(&i.owner_jid)
                    .push_bind(i.created_at)
                    .push_bind(i.is_announce)
                    .push_bind(i.is_locked)
                    .push_bind(&i.addressing_mode)
                    .push_bind(g.participants.len() as i64);
            });
            q.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        let members: Vec<(&str, &Participant)> =
            groups.iter().flat_map(|g| g.participants.iter().map(move |p| (g.info.jid.as_str(), p))).collect();
        for chunk in members.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO wa_group_participants (session_id, generation, group_jid, jid, lid, \
                 phone_number, is_admin, is_super_admin, display_name) ",
            );
            q.push_values(chunk, |mut row, (group_jid, p)| {
                row.push_bind(to.session.as_str())
                    .push_bind(to.generation)
                    .push_bind(*group_jid)
                    .push_bind(&p.jid)
                    .push_bind(&p.lid)
                    .push_bind(&p.phone_number)
                    .push_bind(p.is_admin)
                    .push_bind(p.is_super_admin)
                    .push_bind(&p.display_name);
            });
            q.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(replaced)
    }

    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT generation FROM session_data_generations WHERE session_id = ?")
                .bind(session.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        sqlx::query(
            "INSERT INTO session_data_generations (session_id, generation, completed_at) VALUES (?, ?, ?) \
             ON CONFLICT (session_id) DO UPDATE SET generation = excluded.generation, completed_at = excluded.completed_at",
        )
        .bind(session.as_str())
        .bind(generation)
        .bind(now_millis())
        .execute(&mut *tx)
        .await.map_err(from_sqlx)?;
        // Asked once this transaction holds the write lock: a removal either
        // committed before (nothing is published) or waits for this commit
        // and removes the published rows with the session.
        let stored: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ?")
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        if stored.is_none() {
            return Err(StoreError::SessionRemoved(session.to_string()));
        }
        if let Some(previous) = previous.filter(|p| p != generation) {
            delete_generation(&mut tx, session, &previous).await?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }

    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        delete_generation(&mut tx, session, generation).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(())
    }

    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        let mut swept = 0;
        for table in DATA_TABLES {
            swept += sqlx::query(&format!(
                "DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM session_data_generations g \
                 WHERE g.session_id = {table}.session_id AND g.generation = {table}.generation)"
            ))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        }
        Ok(swept)
    }

    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        self.readers
            .read(|conn| {
                let mut statement = conn
                    .prepare_cached("SELECT generation FROM session_data_generations WHERE session_id = ?")
                    .map_err(from_rusqlite)?;
                Ok(statement.query_row([session.as_str()], |row| row.get(0)).optional().map_err(from_rusqlite)?)
            })
            .await
    }

    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        let sql = format!(
            "SELECT t.generation, t.jid, t.lid, t.phone_number, t.push_name, t.full_name, t.first_name, \
             t.business_name {} AND t.jid > ? ORDER BY t.jid LIMIT ?",
            visible("wa_contacts")
        );
        let limit = i64::from(limit) + 1;
        self.page(&sql, &[&session.as_str(), &after.unwrap_or(""), &limit], |row| rows::contact(row)).await
    }

    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        let sql = format!(
            "SELECT t.generation, t.jid, t.name, t.topic, t.owner_jid, t.created_at, t.is_announce, t.is_locked, \
             t.addressing_mode, t.participant_count {} AND t.jid > ? ORDER BY t.jid LIMIT ?",
            visible("wa_groups")
        );
        let limit = i64::from(limit) + 1;
        self.page(&sql, &[&session.as_str(), &after.unwrap_or(""), &limit], |row| rows::group_summary(row)).await
    }

    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        let sql = format!(
            "SELECT t.generation, t.jid, t.lid, t.phone_number, t.is_admin, t.is_super_admin, t.display_name \
             {} AND t.group_jid = ? AND t.jid > ? ORDER BY t.jid LIMIT ?",
            visible("wa_group_participants")
        );
        let limit = i64::from(limit) + 1;
        self.page(&sql, &[&session.as_str(), &group, &after.unwrap_or(""), &limit], |row| rows::participant(row)).await
    }

    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        self.readers
            .read(|conn| {
                let mut statement = conn
                    .prepare_cached("SELECT 1 FROM wa_groups WHERE session_id = ? AND generation = ? AND jid = ?")
                    .map_err(from_rusqlite)?;
                Ok(statement.exists([session.as_str(), generation, group]).map_err(from_rusqlite)?)
            })
            .await
    }
}

impl SqliteDatabase {
    /// One page of stored data: its rows and the generation they belong to,
    /// read by one statement.
    async fn page<T>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        convert: impl Fn(&ReaderRow<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<Slice<T>, StoreError> {
        self.readers
            .read(|conn| {
                let mut statement = conn.prepare_cached(sql).map_err(from_rusqlite)?;
                let mut rows = statement.query(rusqlite::params_from_iter(values)).map_err(from_rusqlite)?;
                let mut slice = Slice { generation: None, rows: Vec::new() };
                while let Some(row) = rows.next().map_err(from_rusqlite)? {
                    rows::push_row(&mut slice, &ReaderRow(row), &convert)?;
                }
                Ok(slice)
            })
            .await
    }
}

async fn delete_generation(
    conn: &mut SqliteConnection,
    session: &SessionId,
    generation: &str,
) -> Result<(), StoreError> {
    for table in DATA_TABLES {
        sqlx::query(&format!("DELETE FROM {table} WHERE session_id = ? AND generation = ?"))
            .bind(session.as_str())
            .bind(generation)
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}
