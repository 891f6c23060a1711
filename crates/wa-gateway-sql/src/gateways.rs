//! What the session feed asks of the sessions table, per gateway, written
//! once for both backends: the ids stored with a gateway, their removal
//! with their stored backfill data, and the status counters. Statements
//! number their parameters (`$1`), which sqlx binds alike on both.

use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use wa_gateway_core::sessions::model::{SessionId, SessionStatus};
use wa_gateway_core::sessions::writes::FeedWriter;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{GatewayRemoval, StatusCount};

use crate::rows::{BUMP_REVISION, Columns, DATA_TABLES};

/// The per-gateway statements of one database, its errors read by `error`.
pub struct GatewaySessions<'p, DB: Database> {
    pub pool: &'p Pool<DB>,
    pub error: fn(sqlx::Error) -> StoreError,
    /// The statement a write transaction begins with.
    pub begin: &'static str,
    /// The statement that finds (and locks until the transaction ends) the
    /// lease row of gateway `$1` when its tenure is `$2` and it is current;
    /// `None` for a backend without feed leases (one process follows all).
    pub holds_tenure: Option<&'static str>,
    /// A statement run first in a removal's transaction, which deletes whole
    /// sessions' stored data: one that lifts a statement timeout.
    pub unbounded: Option<&'static str>,
    /// The statement that reads the counters: gateway, status and sessions
    /// of each pair with sessions, ordered by gateway and status.
    pub counts: &'static str,
}

/// [`GatewaySessions::counts`] where the counters are all there is.
pub const READ_COUNTERS: &str =
    "SELECT gateway_id, status, sessions FROM session_status_counts WHERE sessions > 0 ORDER BY gateway_id, status";

/// `$first, $first+1, …` for `n` parameters.
pub(crate) fn numbered(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl<DB> GatewaySessions<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Row: Columns,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    /// Inside the caller's write transaction: fails with
    /// [`StoreError::NotFollowing`] unless `writer`'s lease is current.
    pub async fn check_tenure(&self, conn: &mut DB::Connection, writer: FeedWriter<'_>) -> Result<(), StoreError> {
        let Some(tenure) = writer.tenure else { return Ok(()) };
        let held = match self.holds_tenure {
            Some(statement) => sqlx::query(statement)
                .bind(writer.gateway)
                .bind(tenure)
                .fetch_optional(&mut *conn)
                .await
                .map_err(self.error)?
                .is_some(),
            None => false,
        };
        if held { Ok(()) } else { Err(StoreError::NotFollowing(writer.gateway.to_owned())) }
    }

    pub async fn ids(&self, gateway: &str) -> Result<Vec<SessionId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM sessions WHERE gateway_id = $1")
            .bind(gateway)
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter()
            .map(|row| {
                let id = row.text_at(0)?;
                SessionId::parse_owned(id).map_err(|(id, e)| StoreError::Corrupt(format!("session id {id:?}: {e}")))
            })
            .collect()
    }

    /// One transaction: the sessions of `ids` stored with `writer`'s gateway go, with
    /// every row of theirs in the backfill data tables.
    pub async fn remove(&self, writer: FeedWriter<'_>, ids: &[SessionId]) -> Result<GatewayRemoval, StoreError> {
        let gateway = writer.gateway;
        let mut removal = GatewayRemoval::default();
        if ids.is_empty() {
            return Ok(removal);
        }
        let mut tx = crate::Tx::begin(self.pool, self.begin, self.error).await?;
        if let Some(statement) = self.unbounded {
            sqlx::query(statement).execute(&mut *tx).await.map_err(self.error)?;
        }
        self.check_tenure(&mut tx, writer).await?;
        let list = numbered(2, ids.len());
        let elsewhere =
            format!("SELECT id FROM sessions WHERE id IN ({list}) AND (gateway_id IS NULL OR gateway_id <> $1)");
        let mut query = sqlx::query(&elsewhere).bind(gateway);
        for id in ids {
            query = query.bind(id.as_str());
        }
        removal.elsewhere = query.fetch_all(&mut *tx).await.map_err(self.error)?.len();
        let delete = format!("DELETE FROM sessions WHERE gateway_id = $1 AND id IN ({list}) RETURNING id");
        let mut query = sqlx::query(&delete).bind(gateway);
        for id in ids {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&mut *tx).await.map_err(self.error)? {
            let id = row.text_at(0)?;
            removal.removed.push(
                SessionId::parse_owned(id).map_err(|(id, e)| StoreError::Corrupt(format!("session id {id:?}: {e}")))?,
            );
        }
        if !removal.removed.is_empty() {
            let gone = numbered(1, removal.removed.len());
            for table in DATA_TABLES.iter().chain(&["session_data_generations"]) {
                let delete = format!("DELETE FROM {table} WHERE session_id IN ({gone})");
                let mut query = sqlx::query(&delete);
                for id in &removal.removed {
                    query = query.bind(id.as_str());
                }
                query.execute(&mut *tx).await.map_err(self.error)?;
            }
            sqlx::query(BUMP_REVISION).execute(&mut *tx).await.map_err(self.error)?;
        }
        tx.commit().await?;
        Ok(removal)
    }

    pub async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        let rows = sqlx::query(self.counts).fetch_all(self.pool).await.map_err(self.error)?;
        rows.iter()
            .map(|row| {
                let status = row.text_at(1)?;
                let status = status
                    .parse::<SessionStatus>()
                    .map_err(|_| StoreError::Corrupt(format!("session status {status:?} in the status counters")))?;
                Ok(StatusCount {
                    gateway_id: row.text_at(0)?,
                    status,
                    sessions: u64::try_from(row.int_at(2)?).unwrap_or(0),
                })
            })
            .collect()
    }
}
