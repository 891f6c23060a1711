//! Writing the sessions table, once for both backends: whole-record
//! upserts in multi-row statements, each guarded by the rule its writer
//! follows, so the rule holds in the statement itself against a writer
//! that committed after the caller read the stored rows.

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use wa_gateway_core::sessions::model::Session;
use wa_gateway_core::store::error::StoreError;

use crate::gateways::numbered;
use crate::rows::{Columns, SESSION_COLUMNS, SESSION_UPSERT_UPDATES};

/// Columns a session row binds, in [`SESSION_COLUMNS`] order.
const COLUMNS: usize = 17;

/// Which stored row an upsert may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Any: the caller holds every other writer off.
    Any,
    /// One no newer than the record (an import: a line as new as the
    /// stored row replaces it).
    NoNewer,
    /// An older one of the same organization (a session host's feed).
    OlderSameOrganization,
}

impl Over {
    /// Who writes under this rule, as the row's `written_by` names it (the
    /// session events' `source`, migrations 0008/0010).
    fn writer(self) -> &'static str {
        match self {
            Self::OlderSameOrganization => "'feed'",
            Self::Any | Self::NoNewer => "'import'",
        }
    }

    fn condition(self) -> &'static str {
        match self {
            Self::Any => "",
            Self::NoNewer => " WHERE sessions.updated_at <= excluded.updated_at",
            Self::OlderSameOrganization => {
                " WHERE sessions.updated_at < excluded.updated_at \
                 AND sessions.organization_id = excluded.organization_id"
            }
        }
    }
}

/// How a backend's statements name their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?` each (SQLite: finding a numbered parameter by its name scans
    /// the statement's list, so binding thousands of them is quadratic).
    Anonymous,
}

impl Placeholders {
    /// The parameters of `n` values, the first of which is the `first`th.
    pub(crate) fn list(self, first: usize, n: usize) -> String {
        match self {
            Self::Numbered => numbered(first, n),
            Self::Anonymous => vec!["?"; n].join(", "),
        }
    }
}

/// How one backend's statements are shaped.
#[derive(Debug, Clone, Copy)]
pub struct SessionWrites {
    /// Rows per statement, within the backend's limit of bound parameters
    /// (17 a row).
    pub rows_per_statement: usize,
    pub placeholders: Placeholders,
    pub error: fn(sqlx::Error) -> StoreError,
}

impl SessionWrites {
    /// Upserts `sessions` (distinct ids) over the rows `over` allows;
    /// `keep_created_at` keeps a replaced row's `created_at`. Answers the ids
    /// written. The caller moves the revision on in the same transaction.
    pub async fn upsert<DB>(
        &self,
        conn: &mut DB::Connection,
        sessions: &[&Session],
        keep_created_at: bool,
        over: Over,
    ) -> Result<Vec<String>, StoreError>
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        DB::Row: Columns,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> &'q String: Encode<'q, DB> + Type<DB>,
        for<'q> &'q Option<String>: Encode<'q, DB> + Type<DB>,
        for<'q> bool: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        let mut written = Vec::with_capacity(sessions.len());
        for chunk in sessions.chunks(self.rows_per_statement.max(1)) {
            let values = (0..chunk.len())
                .map(|row| format!("({}, {})", self.placeholders.list(row * COLUMNS + 1, COLUMNS), over.writer()))
                .collect::<Vec<_>>()
                .join(", ");
            let created_at = if keep_created_at { "" } else { ", created_at = excluded.created_at" };
            let statement = format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}, written_by) VALUES {values} \
                 ON CONFLICT (id) DO UPDATE SET {SESSION_UPSERT_UPDATES}, written_by = excluded.written_by\
                 {created_at}{} RETURNING id",
                over.condition()
            );
            let mut query = sqlx::query(&statement);
            for s in chunk {
                query = query
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
                    .bind(s.last_connected_at);
            }
            for row in query.fetch_all(&mut *conn).await.map_err(self.error)? {
                written.push(row.text_at(0)?);
            }
        }
        Ok(written)
    }
}
