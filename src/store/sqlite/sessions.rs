use sqlx::{QueryBuilder, Row, Sqlite, sqlite::SqliteRow};

use crate::store::StoreError;
use crate::paging::PageRequest;
use crate::sessions::{Session, SessionFilter, SessionId, SessionStatus};

const COLUMNS: &str = "id, organization_id, created_by_user_id, gateway_id, label, phone_number, \
     wa_jid, wa_lid, status, auto_read, presence_typing, is_admin_session, rate_per_min, \
     rate_per_hour, created_at, updated_at, last_connected_at";

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    Ok(Session {
        id: SessionId::parse(&id).map_err(|e| StoreError::Corrupt(format!("session {id:?}: {e}")))?,
        organization_id: row.try_get("organization_id")?,
        created_by_user_id: row.try_get("created_by_user_id")?,
        gateway_id: row.try_get("gateway_id")?,
        label: row.try_get("label")?,
        phone_number: row.try_get("phone_number")?,
        wa_jid: row.try_get("wa_jid")?,
        wa_lid: row.try_get("wa_lid")?,
        status: status.parse::<SessionStatus>().map_err(StoreError::Corrupt)?,
        auto_read: row.try_get("auto_read")?,
        presence_typing: row.try_get("presence_typing")?,
        is_admin_session: row.try_get("is_admin_session")?,
        rate_per_min: row.try_get("rate_per_min")?,
        rate_per_hour: row.try_get("rate_per_hour")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_connected_at: row.try_get("last_connected_at")?,
    })
}

impl super::SqliteDatabase {
    /// Inserts or replaces every session in one transaction: all or nothing.
    pub(super) async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for s in sessions {
            sqlx::query(&format!(
                "INSERT INTO sessions ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) \
                 ON CONFLICT (id) DO UPDATE SET organization_id = excluded.organization_id, \
                 created_by_user_id = excluded.created_by_user_id, gateway_id = excluded.gateway_id, \
                 label = excluded.label, phone_number = excluded.phone_number, wa_jid = excluded.wa_jid, \
                 wa_lid = excluded.wa_lid, status = excluded.status, auto_read = excluded.auto_read, \
                 presence_typing = excluded.presence_typing, is_admin_session = excluded.is_admin_session, \
                 rate_per_min = excluded.rate_per_min, rate_per_hour = excluded.rate_per_hour, \
                 created_at = excluded.created_at, updated_at = excluded.updated_at, \
                 last_connected_at = excluded.last_connected_at"
            ))
            .bind(s.id.as_str())
            .bind(&s.organization_id)
            .bind(&s.created_by_user_id)
            .bind(&s.gateway_id)
            .bind(&s.label)
            .bind(&s.phone_number)
            .bind(&s.wa_jid)
            .bind(&s.wa_lid)
            .bind(s.status.as_str())
            .bind(s.auto_read)
            .bind(s.presence_typing)
            .bind(s.is_admin_session)
            .bind(s.rate_per_min)
            .bind(s.rate_per_hour)
            .bind(s.created_at)
            .bind(s.updated_at)
            .bind(s.last_connected_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit + 1` sessions after the page's key, ordered by id, so the
    /// caller can tell whether another page exists.
    pub(super) async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM sessions WHERE 1 = 1"));
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
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(session_from_row).collect()
    }

    pub(super) async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }
}
