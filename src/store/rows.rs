//! Rows -> domain values, once for both backends. Each backend's row type
//! implements [`Columns`]; the decoders below read through it, so a column
//! added to one table is decoded the same way everywhere.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{ApiKeyRow, StoreError};
use crate::directory::{Contact, GroupInfo, GroupSummary, Participant};
use crate::sessions::{Session, SessionId, SessionStatus};

/// Typed access to a row's columns by name.
pub trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn opt_i32(&self, column: &str) -> Result<Option<i32>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_i32(&self, column: &str) -> Result<Option<i32>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

columns_for!(SqliteRow);
columns_for!(PgRow);

/// Every column of `sessions`, in table order.
pub const SESSION_COLUMNS: &str = "id, organization_id, created_by_user_id, gateway_id, label, phone_number, \
     wa_jid, wa_lid, status, auto_read, presence_typing, is_admin_session, rate_per_min, \
     rate_per_hour, created_at, updated_at, last_connected_at";

pub fn session(row: &impl Columns) -> Result<Session, StoreError> {
    let id = row.text("id")?;
    Ok(Session {
        id: SessionId::parse(&id).map_err(|e| StoreError::Corrupt(format!("session {id:?}: {e}")))?,
        organization_id: row.text("organization_id")?,
        created_by_user_id: row.opt_text("created_by_user_id")?,
        gateway_id: row.opt_text("gateway_id")?,
        label: row.opt_text("label")?,
        phone_number: row.opt_text("phone_number")?,
        wa_jid: row.opt_text("wa_jid")?,
        wa_lid: row.opt_text("wa_lid")?,
        status: row.text("status")?.parse::<SessionStatus>().map_err(StoreError::Corrupt)?,
        auto_read: row.flag("auto_read")?,
        presence_typing: row.flag("presence_typing")?,
        is_admin_session: row.flag("is_admin_session")?,
        rate_per_min: row.opt_i32("rate_per_min")?,
        rate_per_hour: row.opt_i32("rate_per_hour")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        last_connected_at: row.opt_int("last_connected_at")?,
    })
}

pub fn api_key(row: &impl Columns) -> Result<ApiKeyRow, StoreError> {
    let permissions = row.text("permissions")?;
    Ok(ApiKeyRow {
        id: row.text("id")?,
        organization_id: row.text("organization_id")?,
        name: row.opt_text("name")?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| StoreError::Corrupt(format!("api-key permissions: {e}")))?,
        secret_hash: row.bytes("secret_hash")?,
        created_at: row.int("created_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub fn contact(row: &impl Columns) -> Result<Contact, StoreError> {
    Ok(Contact {
        jid: row.text("jid")?,
        lid: row.opt_text("lid")?,
        phone_number: row.opt_text("phone_number")?,
        push_name: row.opt_text("push_name")?,
        full_name: row.opt_text("full_name")?,
        first_name: row.opt_text("first_name")?,
        business_name: row.opt_text("business_name")?,
    })
}

pub fn group_summary(row: &impl Columns) -> Result<GroupSummary, StoreError> {
    Ok(GroupSummary {
        info: GroupInfo {
            jid: row.text("jid")?,
            name: row.opt_text("name")?,
            topic: row.opt_text("topic")?,
            owner_jid: row.opt_text("owner_jid")?,
            created_at: row.opt_int("created_at")?,
            is_announce: row.flag("is_announce")?,
            is_locked: row.flag("is_locked")?,
            addressing_mode: row.opt_text("addressing_mode")?,
        },
        participant_count: u64::try_from(row.int("participant_count")?).unwrap_or(0),
    })
}

pub fn participant(row: &impl Columns) -> Result<Participant, StoreError> {
    Ok(Participant {
        jid: row.text("jid")?,
        lid: row.opt_text("lid")?,
        phone_number: row.opt_text("phone_number")?,
        is_admin: row.flag("is_admin")?,
        is_super_admin: row.flag("is_super_admin")?,
        display_name: row.opt_text("display_name")?,
    })
}

/// Rows of one listing page with the generation they were read from.
pub fn slice<R: Columns, T>(
    rows: &[R],
    convert: fn(&R) -> Result<T, StoreError>,
) -> Result<super::Slice<T>, StoreError> {
    let generation = rows.first().map(|r| r.text("generation")).transpose()?;
    Ok(super::Slice { generation, rows: rows.iter().map(convert).collect::<Result<_, _>>()? })
}
