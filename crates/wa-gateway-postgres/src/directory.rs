//! Generations of backfilled data on PostgreSQL. Batches are written with
//! `COPY … FROM STDIN` (binary format), never row by row; a batch that repeats
//! rows the generation already holds first deletes those rows, so the new
//! version replaces the old one whole.
//!
//! A server backend runs on one core, so a job keeps two of its writes going
//! at once, each on its own connection, in writes large enough that their
//! round trips and commits are a small share of the time, with the host's
//! next rows received meanwhile.

use crate::errors::from_sqlx;
use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row};

use crate::PgDatabase;
use wa_gateway_core::directory::{Contact, Group, GroupSummary, Participant};
use wa_gateway_core::sessions::model::SessionId;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{DirectoryStore, Replaced, Slice, Staging, StagingWrites};
use wa_gateway_core::time::now_millis;
use wa_gateway_sql::rows::{self, DATA_TABLES};

/// Rows in COPY's binary format: a header, then per row its field count and
/// each field as a length (-1 for NULL) and its bytes; a trailer ends it.
/// The server reads the values as they are, with no text to parse.
struct CopyRows(Vec<u8>);

const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyRows {
    fn new() -> Self {
        let mut data = COPY_SIGNATURE.to_vec();
        data.extend_from_slice(&0i32.to_be_bytes()); // flags
        data.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self(data)
    }

    fn row(&mut self, fields: i16) -> &mut Self {
        self.0.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            None => self.0.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                // Fields are capped far below 2 GiB by the host message limits.
                self.0.extend_from_slice(&(v.len() as i32).to_be_bytes());
                self.0.extend_from_slice(v);
            }
        }
        self
    }

    fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.field(value.map(str::as_bytes))
    }

    fn int(&mut self, value: Option<i64>) -> &mut Self {
        self.field(value.map(i64::to_be_bytes).as_ref().map(|b| &b[..]))
    }

    fn flag(&mut self, value: bool) -> &mut Self {
        self.field(Some(&[u8::from(value)]))
    }

    fn is_empty(&self) -> bool {
        self.0.len() == COPY_SIGNATURE.len() + 8
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

async fn copy(conn: &mut PgConnection, statement: &str, data: CopyRows) -> Result<(), StoreError> {
    if data.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await.map_err(from_sqlx)?;
    if let Err(error) = copy.send(data.finish()).await {
        copy.abort("sending rows failed").await.map_err(from_sqlx)?;
        return Err(from_sqlx(error));
    }
    copy.finish().await.map_err(from_sqlx)?;
    Ok(())
}

/// Which of `jids` the generation holds in `table`, with `extra` columns.
async fn staged_among(
    conn: &mut PgConnection,
    to: Staging<'_>,
    table: &str,
    extra: &str,
    jids: &[&str],
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    if jids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT jid{extra} FROM {table} WHERE session_id = $1 AND generation = $2 AND jid = ANY($3)"
    ))
    .bind(to.session.as_str())
    .bind(to.generation)
    .bind(jids)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(rows)
}

async fn delete_keys(
    conn: &mut PgConnection,
    to: Staging<'_>,
    table: &str,
    column: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1 AND generation = $2 AND {column} = ANY($3)"))
        .bind(to.session.as_str())
        .bind(to.generation)
        .bind(keys)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

pub(super) async fn delete_generation(
    conn: &mut PgConnection,
    session: &str,
    generation: &str,
) -> Result<u64, StoreError> {
    crate::unbounded(conn).await?;
    let mut deleted = 0;
    for table in DATA_TABLES {
        deleted += sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1 AND generation = $2"))
            .bind(session)
            .bind(generation)
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
    }
    Ok(deleted)
}

/// Points the session at `generation` and drops the generation it replaces,
/// inside the caller's transaction.
pub(super) async fn publish(conn: &mut PgConnection, session: &SessionId, generation: &str) -> Result<(), StoreError> {
    crate::unbounded(conn).await?;
    // The session must still be stored, and stays so until the commit (a
    // removal's DELETE waits for this lock), so a removed session never
    // gets data back.
    let stored: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = $1 FOR KEY SHARE")
        .bind(session.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if stored.is_none() {
        return Err(StoreError::SessionRemoved(session.to_string()));
    }
    let previous: Option<String> =
        sqlx::query_scalar("SELECT generation FROM session_data_generations WHERE session_id = $1 FOR UPDATE")
            .bind(session.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    sqlx::query(
        "INSERT INTO session_data_generations (session_id, generation, completed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (session_id) DO UPDATE SET generation = excluded.generation, completed_at = excluded.completed_at",
    )
    .bind(session.as_str())
    .bind(generation)
    .bind(now_millis())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if let Some(previous) = previous.filter(|p| p != generation) {
        delete_generation(conn, session.as_str(), &previous).await?;
    }
    Ok(())
}

const VISIBLE: &str = "FROM session_data_generations g JOIN {table} t \
     ON t.session_id = g.session_id AND t.generation = g.generation WHERE g.session_id = $1";

fn visible(table: &str) -> String {
    VISIBLE.replace("{table}", table)
}

/// Deletes the staged rows of failed jobs (never a visible generation), and
/// returns how many rows went.
pub(super) async fn sweep_failed_jobs(pool: &PgPool) -> Result<u64, StoreError> {
    let mut swept = 0;
    let failed =
        sqlx::query("SELECT id, session_id FROM backfill_jobs WHERE status = 'failed' AND NOT swept LIMIT 100")
            .fetch_all(pool)
            .await
            .map_err(from_sqlx)?;
    for row in failed {
        let (id, session): (String, String) =
            (row.try_get("id").map_err(from_sqlx)?, row.try_get("session_id").map_err(from_sqlx)?);
        let mut tx = crate::begin(pool).await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT generation FROM session_data_generations WHERE session_id = $1 FOR UPDATE")
                .bind(&session)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        if current.as_deref() != Some(id.as_str()) {
            swept += delete_generation(&mut tx, &session, &id).await?;
        }
        sqlx::query("UPDATE backfill_jobs SET swept = true WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await?;
    }
    Ok(swept)
}

#[async_trait]
impl DirectoryStore for PgDatabase {
    fn staging_writes(&self) -> StagingWrites {
        StagingWrites { rows: 8_192, ahead: 16_384, concurrent: 2 }
    }

    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        publish(&mut tx, session, generation).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        sweep_failed_jobs(&self.pool).await
    }

    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        let staged: Vec<String> = staged_among(&mut tx, to, "wa_contacts", "", maybe_staged)
            .await?
            .iter()
            .map(|r| r.try_get("jid"))
            .collect::<Result<_, _>>()
            .map_err(from_sqlx)?;
        delete_keys(&mut tx, to, "wa_contacts", "jid", &staged).await?;
        let mut data = CopyRows::new();
        for c in contacts {
            data.row(9)
                .text(Some(to.session.as_str()))
                .text(Some(to.generation))
                .text(Some(&c.jid))
                .text(c.lid.as_deref())
                .text(c.phone_number.as_deref())
                .text(c.push_name.as_deref())
                .text(c.full_name.as_deref())
                .text(c.first_name.as_deref())
                .text(c.business_name.as_deref());
        }
        copy(
            &mut tx,
            "COPY wa_contacts (session_id, generation, jid, lid, phone_number, push_name, full_name, first_name, \
             business_name) FROM STDIN (FORMAT binary)",
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(staged.len() as u64)
    }

    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
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
        let (mut group_rows, mut member_rows) = (CopyRows::new(), CopyRows::new());
        for g in groups {
            let i = &g.info;
            group_rows
                .row(11)
                .text(Some(to.session.as_str()))
                .text(Some(to.generation))
                .text(Some(&i.jid))
                .text(i.name.as_deref())
                .text(i.topic.as_deref())
                .text(i.owner_jid.as_deref())
                .int(i.created_at)
                .flag(i.is_announce)
                .flag(i.is_locked)
                .text(i.addressing_mode.as_deref())
                .int(Some(g.participants.len() as i64));
            for p in &g.participants {
                member_rows
                    .row(9)
                    .text(Some(to.session.as_str()))
                    .text(Some(to.generation))
                    .text(Some(&i.jid))
                    .text(Some(&p.jid))
                    .text(p.lid.as_deref())
                    .text(p.phone_number.as_deref())
                    .flag(p.is_admin)
                    .flag(p.is_super_admin)
                    .text(p.display_name.as_deref());
            }
        }
        copy(
            &mut tx,
            "COPY wa_groups (session_id, generation, jid, name, topic, owner_jid, created_at, is_announce, \
             is_locked, addressing_mode, participant_count) FROM STDIN (FORMAT binary)",
            group_rows,
        )
        .await?;
        copy(
            &mut tx,
            "COPY wa_group_participants (session_id, generation, group_jid, jid, lid, phone_number, is_admin, \
             is_super_admin, display_name) FROM STDIN (FORMAT binary)",
            member_rows,
        )
        .await?;
        tx.commit().await?;
        Ok(replaced)
    }

    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        // Never the visible generation, whatever the caller believes.
        let current: Option<String> =
            sqlx::query_scalar("SELECT generation FROM session_data_generations WHERE session_id = $1")
                .bind(session.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        if current.as_deref() != Some(generation) {
            delete_generation(&mut tx, session.as_str(), generation).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT generation FROM session_data_generations WHERE session_id = $1")
            .bind(session.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?)
    }

    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.generation, t.jid, t.lid, t.phone_number, t.push_name, t.full_name, t.first_name, \
             t.business_name {} AND t.jid > $2 ORDER BY t.jid LIMIT $3",
            visible("wa_contacts")
        ))
        .bind(session.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows::slice(&rows, rows::contact)
    }

    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.generation, t.jid, t.name, t.topic, t.owner_jid, t.created_at, t.is_announce, t.is_locked, \
             t.addressing_mode, t.participant_count {} AND t.jid > $2 ORDER BY t.jid LIMIT $3",
            visible("wa_groups")
        ))
        .bind(session.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows::slice(&rows, rows::group_summary)
    }

    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.generation, t.jid, t.lid, t.phone_number, t.is_admin, t.is_super_admin, t.display_name \
             {} AND t.group_jid = $2 AND t.jid > $3 ORDER BY t.jid LIMIT $4",
            visible("wa_group_participants")
        ))
        .bind(session.as_str())
        .bind(group)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows::slice(&rows, rows::participant)
    }

    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM wa_groups WHERE session_id = $1 AND generation = $2 AND jid = $3")
                .bind(session.as_str())
                .bind(generation)
                .bind(group)
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok(found.is_some())
    }
}
