//! Rows -> domain values, once for both backends. A backend's row type
//! implements [`Columns`] (every sqlx row does, below; the SQLite reader
//! connections wrap theirs); the decoders read through it, so a column added
//! to one table is decoded the same way everywhere.

use sqlx::{ColumnIndex, Decode, Row, Type};

use wa_gateway_core::directory::{Contact, GroupInfo, GroupSummary, Participant};
use wa_gateway_core::sessions::model::{Session, SessionId, SessionStatus};
use wa_gateway_core::sessions::writes::StoredVersion;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::ApiKeyRow;

/// Typed access to a row's columns, by name, or by position for the hot
/// listings (a lookup by name hashes the column name, for every column of
/// every row).
pub trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn text_at(&self, index: usize) -> Result<String, StoreError>;
    fn opt_text_at(&self, index: usize) -> Result<Option<String>, StoreError>;
    fn flag_at(&self, index: usize) -> Result<bool, StoreError>;
    fn int_at(&self, index: usize) -> Result<i64, StoreError>;
    fn opt_int_at(&self, index: usize) -> Result<Option<i64>, StoreError>;
    fn opt_i32_at(&self, index: usize) -> Result<Option<i32>, StoreError>;
    /// A text column read in place, without an owned copy.
    fn str_at<R>(&self, index: usize, read: impl FnOnce(&str) -> R) -> Result<R, StoreError>;
}

/// A column that could not be read as its type (never a database's answer).
fn column_error(error: sqlx::Error) -> StoreError {
    crate::errors::from_sqlx(error, |_, message| StoreError::Other(message))
}

/// Any sqlx row whose driver decodes the column types the store uses.
impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.try_get(column).map_err(column_error)
    }
    fn text_at(&self, index: usize) -> Result<String, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn opt_text_at(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn flag_at(&self, index: usize) -> Result<bool, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn int_at(&self, index: usize) -> Result<i64, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn opt_int_at(&self, index: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn opt_i32_at(&self, index: usize) -> Result<Option<i32>, StoreError> {
        self.try_get(index).map_err(column_error)
    }
    fn str_at<T>(&self, index: usize, read: impl FnOnce(&str) -> T) -> Result<T, StoreError> {
        Ok(read(self.try_get::<&str, _>(index).map_err(column_error)?))
    }
}

/// Every column of `sessions`, in table order.
pub const SESSION_COLUMNS: &str = "id, organization_id, created_by_user_id, gateway_id, label, phone_number, \
     wa_jid, wa_lid, status, auto_read, presence_typing, is_admin_session, rate_per_min, \
     rate_per_hour, created_at, updated_at, last_connected_at";

/// Columns an upsert of `sessions` updates (`ON CONFLICT (id) DO UPDATE
/// SET …`); `created_at` only when the line gave one.
pub const SESSION_UPSERT_UPDATES: &str = "organization_id = excluded.organization_id, \
     created_by_user_id = excluded.created_by_user_id, gateway_id = excluded.gateway_id, \
     label = excluded.label, phone_number = excluded.phone_number, wa_jid = excluded.wa_jid, \
     wa_lid = excluded.wa_lid, status = excluded.status, auto_read = excluded.auto_read, \
     presence_typing = excluded.presence_typing, is_admin_session = excluded.is_admin_session, \
     rate_per_min = excluded.rate_per_min, rate_per_hour = excluded.rate_per_hour, \
     updated_at = excluded.updated_at, last_connected_at = excluded.last_connected_at";

/// The tables a backfill stores, each keyed by session and generation.
pub const DATA_TABLES: [&str; 3] = ["wa_contacts", "wa_groups", "wa_group_participants"];

/// Moves the revision of `sessions` on; run in every transaction that
/// writes sessions, after its writes.
pub const BUMP_REVISION: &str = "UPDATE sessions_revision SET n = n + 1";
/// The revision of `sessions` as one opaque token.
pub const READ_REVISION: &str = "SELECT epoch || '.' || n FROM sessions_revision";

/// The [`SESSION_COLUMNS`] of one row, in that order, read by position.
/// [`SessionColumns::into_session`] is the one mapping to a `Session`.
struct SessionColumns {
    id: String,
    organization_id: String,
    created_by_user_id: Option<String>,
    gateway_id: Option<String>,
    label: Option<String>,
    phone_number: Option<String>,
    wa_jid: Option<String>,
    wa_lid: Option<String>,
    status: Result<SessionStatus, String>,
    auto_read: bool,
    presence_typing: bool,
    is_admin_session: bool,
    rate_per_min: Option<i64>,
    rate_per_hour: Option<i64>,
    created_at: i64,
    updated_at: i64,
    last_connected_at: Option<i64>,
}

impl SessionColumns {
    fn read(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.text_at(0)?,
            organization_id: row.text_at(1)?,
            created_by_user_id: row.opt_text_at(2)?,
            gateway_id: row.opt_text_at(3)?,
            label: row.opt_text_at(4)?,
            phone_number: row.opt_text_at(5)?,
            wa_jid: row.opt_text_at(6)?,
            wa_lid: row.opt_text_at(7)?,
            status: row.str_at(8, str::parse)?,
            auto_read: row.flag_at(9)?,
            presence_typing: row.flag_at(10)?,
            is_admin_session: row.flag_at(11)?,
            // INTEGER columns: PostgreSQL decodes them only as i32.
            rate_per_min: row.opt_i32_at(12)?.map(i64::from),
            rate_per_hour: row.opt_i32_at(13)?.map(i64::from),
            created_at: row.int_at(14)?,
            updated_at: row.int_at(15)?,
            last_connected_at: row.opt_int_at(16)?,
        })
    }

    fn into_session(self) -> Result<Session, StoreError> {
        let id = &self.id;
        let corrupt = |what: String| StoreError::Corrupt(format!("session {id:?}: {what}"));
        let rate = |v: Option<i64>| v.map(i32::try_from).transpose().map_err(|e| corrupt(e.to_string()));
        let status = self.status.map_err(corrupt)?;
        let rate_per_min = rate(self.rate_per_min)?;
        let rate_per_hour = rate(self.rate_per_hour)?;
        Ok(Session {
            id: SessionId::parse_owned(self.id)
                .map_err(|(id, e)| StoreError::Corrupt(format!("session {id:?}: {e}")))?,
            status,
            rate_per_min,
            rate_per_hour,
            organization_id: self.organization_id,
            created_by_user_id: self.created_by_user_id,
            gateway_id: self.gateway_id,
            label: self.label,
            phone_number: self.phone_number,
            wa_jid: self.wa_jid,
            wa_lid: self.wa_lid,
            auto_read: self.auto_read,
            presence_typing: self.presence_typing,
            is_admin_session: self.is_admin_session,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_connected_at: self.last_connected_at,
        })
    }
}

/// A row selected as [`SESSION_COLUMNS`], read by position.
pub fn session(row: &impl Columns) -> Result<Session, StoreError> {
    SessionColumns::read(row)?.into_session()
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
) -> Result<wa_gateway_core::store::port::Slice<T>, StoreError> {
    let mut slice = wa_gateway_core::store::port::Slice { generation: None, rows: Vec::with_capacity(rows.len()) };
    for row in rows {
        push_row(&mut slice, row, convert)?;
    }
    Ok(slice)
}

/// Adds one row to a listing page; the first row names its generation.
pub fn push_row<R: Columns, T>(
    slice: &mut wa_gateway_core::store::port::Slice<T>,
    row: &R,
    convert: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<(), StoreError> {
    if slice.generation.is_none() {
        slice.generation = Some(row.text("generation")?);
    }
    slice.rows.push(convert(row)?);
    Ok(())
}

/// A row of `SELECT id, organization_id, updated_at, status, gateway_id FROM sessions`: the id
/// and what an import or a feed compares a record with.
pub fn stored_version(row: &impl Columns) -> Result<(String, StoredVersion), StoreError> {
    let status = row.text("status")?;
    let version = StoredVersion {
        organization_id: row.text("organization_id")?,
        updated_at: row.int("updated_at")?,
        status: status.parse().map_err(|e: String| StoreError::Corrupt(format!("session status: {e}")))?,
        gateway_id: row.opt_text("gateway_id")?,
    };
    Ok((row.text("id")?, version))
}
