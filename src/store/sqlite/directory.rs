//! Generations of backfilled data (see migrations/0003_backfill_data.sql).

use sqlx::{QueryBuilder, Row, Sqlite};

use crate::store::StoreError;
use crate::backfill::{Contact, Group, Participant};
use crate::paging::PageRequest;
use crate::sessions::SessionId;
use crate::time::now_millis;

/// SQLite allows 32,766 bound variables per statement; 9 columns x 500 rows
/// stays far below it.
const ROWS_PER_STATEMENT: usize = 500;

const CURRENT: &str = "(SELECT generation FROM session_data_generations WHERE session_id = ?)";

impl super::SqliteDatabase {
    /// Stores contacts under a not-yet-visible generation, in one transaction.
    pub(super) async fn stage_contacts(
        &self,
        session: &SessionId,
        generation: &str,
        contacts: &[Contact],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in contacts.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO wa_contacts (session_id, generation, jid, lid, phone_number, push_name, \
                 full_name, first_name, business_name) ",
            );
            q.push_values(chunk, |mut row, c| {
                row.push_bind(session.as_str())
                    .push_bind(generation)
                    .push_bind(&c.jid)
                    .push_bind(&c.lid)
                    .push_bind(&c.phone_number)
                    .push_bind(&c.push_name)
                    .push_bind(&c.full_name)
                    .push_bind(&c.first_name)
                    .push_bind(&c.business_name);
            });
            q.push(
                " ON CONFLICT (session_id, generation, jid) DO UPDATE SET lid = excluded.lid, \
                 phone_number = excluded.phone_number, push_name = excluded.push_name, \
                 full_name = excluded.full_name, first_name = excluded.first_name, \
                 business_name = excluded.business_name",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores groups and their participants under a not-yet-visible generation.
    pub(super) async fn stage_groups(
        &self,
        session: &SessionId,
        generation: &str,
        groups: &[Group],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in groups.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO wa_groups (session_id, generation, jid, name, topic, owner_jid, \
                 created_at, is_announce, is_locked, addressing_mode) ",
            );
            q.push_values(chunk, |mut row, g| {
                row.push_bind(session.as_str())
                    .push_bind(generation)
                    .push_bind(&g.jid)
                    .push_bind(&g.name)
                    .push_bind(&g.topic)
                    .push_bind(&g.owner_jid)
                    .push_bind(g.created_at)
                    .push_bind(g.is_announce)
                    .push_bind(g.is_locked)
                    .push_bind(&g.addressing_mode);
            });
            q.build().execute(&mut *tx).await?;
        }
        let members: Vec<(&str, &Participant)> =
            groups.iter().flat_map(|g| g.participants.iter().map(move |p| (g.jid.as_str(), p))).collect();
        for chunk in members.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO wa_group_participants (session_id, generation, group_jid, jid, lid, \
                 phone_number, is_admin, is_super_admin, display_name) ",
            );
            q.push_values(chunk, |mut row, (group_jid, p)| {
                row.push_bind(session.as_str())
                    .push_bind(generation)
                    .push_bind(*group_jid)
                    .push_bind(&p.jid)
                    .push_bind(&p.lid)
                    .push_bind(&p.phone_number)
                    .push_bind(p.is_admin)
                    .push_bind(p.is_super_admin)
                    .push_bind(&p.display_name);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes `generation` the session's visible data and drops the previous
    /// one, atomically.
    pub(super) async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["wa_contacts", "wa_groups", "wa_group_participants"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE session_id = ? AND generation <> ?"))
                .bind(session.as_str())
                .bind(generation)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO session_data_generations (session_id, generation, completed_at) VALUES (?, ?, ?) \
             ON CONFLICT (session_id) DO UPDATE SET generation = excluded.generation, completed_at = excluded.completed_at",
        )
        .bind(session.as_str())
        .bind(generation)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops the rows of a generation that will never be published.
    pub(super) async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["wa_contacts", "wa_groups", "wa_group_participants"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE session_id = ? AND generation = ?"))
                .bind(session.as_str())
                .bind(generation)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes rows of generations that are not current: leftovers of jobs
    /// that a crash interrupted. Run before any job starts.
    pub(super) async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        let mut swept = 0;
        for table in ["wa_contacts", "wa_groups", "wa_group_participants"] {
            swept += sqlx::query(&format!(
                "DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM session_data_generations g \
                 WHERE g.session_id = {table}.session_id AND g.generation = {table}.generation)"
            ))
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(swept)
    }

    /// Up to `limit + 1` visible contacts after the page's key, by jid.
    pub(super) async fn list_contacts(&self, session: &SessionId, page: &PageRequest) -> Result<Vec<Contact>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT jid, lid, phone_number, push_name, full_name, first_name, business_name FROM wa_contacts \
             WHERE session_id = ? AND generation = {CURRENT} AND jid > ? ORDER BY jid LIMIT ?"
        ))
        .bind(session.as_str())
        .bind(session.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Contact {
                    jid: r.try_get("jid")?,
                    lid: r.try_get("lid")?,
                    phone_number: r.try_get("phone_number")?,
                    push_name: r.try_get("push_name")?,
                    full_name: r.try_get("full_name")?,
                    first_name: r.try_get("first_name")?,
                    business_name: r.try_get("business_name")?,
                })
            })
            .collect()
    }

    /// Up to `limit + 1` visible groups after the page's key, by jid, each
    /// with its participants.
    pub(super) async fn list_groups(&self, session: &SessionId, page: &PageRequest) -> Result<Vec<Group>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT jid, name, topic, owner_jid, created_at, is_announce, is_locked, addressing_mode FROM wa_groups \
             WHERE session_id = ? AND generation = {CURRENT} AND jid > ? ORDER BY jid LIMIT ?"
        ))
        .bind(session.as_str())
        .bind(session.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut groups = rows
            .iter()
            .map(|r| {
                Ok(Group {
                    jid: r.try_get("jid")?,
                    name: r.try_get("name")?,
                    topic: r.try_get("topic")?,
                    owner_jid: r.try_get("owner_jid")?,
                    created_at: r.try_get("created_at")?,
                    is_announce: r.try_get("is_announce")?,
                    is_locked: r.try_get("is_locked")?,
                    addressing_mode: r.try_get("addressing_mode")?,
                    participants: Vec::new(),
                })
            })
            .collect::<Result<Vec<Group>, StoreError>>()?;
        let (Some(first), Some(last)) = (groups.first(), groups.last()) else {
            return Ok(groups);
        };
        let members = sqlx::query(&format!(
            "SELECT group_jid, jid, lid, phone_number, is_admin, is_super_admin, display_name \
             FROM wa_group_participants WHERE session_id = ? AND generation = {CURRENT} \
             AND group_jid >= ? AND group_jid <= ? ORDER BY group_jid, jid"
        ))
        .bind(session.as_str())
        .bind(session.as_str())
        .bind(&first.jid)
        .bind(&last.jid)
        .fetch_all(&self.pool)
        .await?;
        let mut index = 0;
        for r in &members {
            let group_jid: String = r.try_get("group_jid")?;
            while index < groups.len() && groups[index].jid < group_jid {
                index += 1;
            }
            if index == groups.len() {
                break;
            }
            if groups[index].jid == group_jid {
                groups[index].participants.push(Participant {
                    jid: r.try_get("jid")?,
                    lid: r.try_get("lid")?,
                    phone_number: r.try_get("phone_number")?,
                    is_admin: r.try_get("is_admin")?,
                    is_super_admin: r.try_get("is_super_admin")?,
                    display_name: r.try_get("display_name")?,
                });
            }
        }
        Ok(groups)
    }
}
