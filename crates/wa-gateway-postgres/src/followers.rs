//! Cluster mode's feed leases (`wa_gateway_core::feed::leases`): a row per
//! gateway in `feed_followers`, judged by the database's clock so replicas'
//! clocks never matter.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::errors::from_sqlx;
use wa_gateway_core::feed::gateways::{FeedState, GatewayReport, HoldId};
use wa_gateway_core::feed::leases::{FeedLeases, Following, Hold};
use wa_gateway_core::store::error::StoreError;

const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Whether `$1`'s current lease is tenure `$2`: a row when it is,
/// key-share-locked until the asking transaction ends. A takeover locks the
/// row for update first, so it waits for that transaction's commit; the
/// holder's own renewal (an update of no key) never waits for it.
pub(crate) const HOLDS_TENURE: &str = "SELECT 1 FROM feed_followers WHERE gateway_id = $1 AND tenure = $2 \
     AND lease_expires_at >= (extract(epoch from clock_timestamp()) * 1000)::bigint FOR KEY SHARE";

/// Cluster mode's feed leases, on a pool of their own: renewing never
/// waits for a connection that feed writes, backfills or requests hold.
pub struct PgFeedLeases {
    pub(crate) pool: PgPool,
    pub(crate) replica: String,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn state(raw: &str) -> FeedState {
    FeedState::ALL.into_iter().find(|s| s.as_str() == raw).unwrap_or(FeedState::Connecting)
}

impl PgFeedLeases {
    /// Opens a transaction whose statements the server cancels after a
    /// third of `lease`: a renewal stuck longer is worth less than a retry.
    async fn begin(&self, lease: Duration) -> Result<crate::Tx, StoreError> {
        let mut tx = crate::begin(&self.pool).await?;
        let limit = (lease / 3).as_millis().max(1);
        sqlx::query(&format!("SET LOCAL statement_timeout = {limit}")).execute(&mut *tx).await.map_err(from_sqlx)?;
        Ok(tx)
    }

    /// Renews this replica's lease of `gateway` (also one that ran out
    /// while no other replica took it): an update of no key, which waits
    /// for no feed write. `None` when another replica holds it.
    async fn renew(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Option<Hold>, StoreError> {
        let mut tx = self.begin(lease).await?;
        let row = sqlx::query(&format!(
            "UPDATE feed_followers SET lease_expires_at = {NOW} + $3, feed = $4, host_url = $5, \
                 last_snapshot_at = $6, last_event_at = $7, last_error = $8 \
             WHERE gateway_id = $1 AND follower = $2 RETURNING tenure, accept_hold"
        ))
        .bind(gateway)
        .bind(&self.replica)
        .bind(millis(lease))
        .bind(report.feed.as_str())
        .bind(&report.host_url)
        .bind(report.last_snapshot_at)
        .bind(report.last_event_at)
        .bind(&report.last_error)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Hold {
            held: true,
            accepted: row.try_get("accept_hold").map_err(from_sqlx)?,
            tenure: row.try_get("tenure").map_err(from_sqlx)?,
        }))
    }

    /// Takes `gateway` when it is free or its lease ran out, with a new
    /// tenure and no hold. Locking the row for update waits for the
    /// writes the last follower began under its lease.
    async fn take(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Hold, StoreError> {
        // A current lease of another replica is left alone without a lock.
        let current: Option<bool> =
            sqlx::query_scalar(&format!("SELECT lease_expires_at >= {NOW} FROM feed_followers WHERE gateway_id = $1"))
                .bind(gateway)
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        if current == Some(true) {
            return Ok(Hold::default());
        }
        let mut tx = self.begin(lease).await?;
        let expired: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT lease_expires_at < {NOW} FROM feed_followers WHERE gateway_id = $1 FOR UPDATE"
        ))
        .bind(gateway)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let statement = match expired {
            Some(false) => return Ok(Hold::default()),
            Some(true) => format!(
                "UPDATE feed_followers SET follower = $2, lease_expires_at = {NOW} + $3, feed = $4, host_url = $5, \
                     last_snapshot_at = $6, last_event_at = $7, last_error = $8, held_removals = 0, \
                     hold_id = NULL, accept_hold = NULL, accept_requested = false, tenure = nextval('feed_tenures') \
                 WHERE gateway_id = $1 RETURNING tenure"
            ),
            None => format!(
                "INSERT INTO feed_followers (gateway_id, follower, lease_expires_at, feed, host_url, \
                     last_snapshot_at, last_event_at, last_error) \
                 VALUES ($1, $2, {NOW} + $3, $4, $5, $6, $7, $8) ON CONFLICT (gateway_id) DO NOTHING RETURNING tenure"
            ),
        };
        let tenure: Option<i64> = sqlx::query_scalar(&statement)
            .bind(gateway)
            .bind(&self.replica)
            .bind(millis(lease))
            .bind(report.feed.as_str())
            .bind(&report.host_url)
            .bind(report.last_snapshot_at)
            .bind(report.last_event_at)
            .bind(&report.last_error)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await?;
        Ok(tenure.map_or_else(Hold::default, |tenure| Hold { held: true, accepted: None, tenure }))
    }
}

#[async_trait]
impl FeedLeases for PgFeedLeases {
    fn replica(&self) -> &str {
        &self.replica
    }

    async fn heartbeat(&self, ttl: Duration) -> Result<usize, StoreError> {
        let mut tx = self.begin(ttl).await?;
        sqlx::query(&format!(
            "INSERT INTO feed_replicas (replica, seen_until) VALUES ($1, {NOW} + $2) \
             ON CONFLICT (replica) DO UPDATE SET seen_until = excluded.seen_until"
        ))
        .bind(&self.replica)
        .bind(millis(ttl))
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        sqlx::query(&format!("DELETE FROM feed_replicas WHERE seen_until < {NOW}"))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM feed_replicas").fetch_one(&mut *tx).await.map_err(from_sqlx)?;
        tx.commit().await?;
        Ok(usize::try_from(alive).unwrap_or(1).max(1))
    }

    async fn hold(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Hold, StoreError> {
        match self.renew(gateway, lease, report).await? {
            Some(hold) => Ok(hold),
            None => self.take(gateway, lease, report).await,
        }
    }

    async fn release(&self, gateway: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM feed_followers WHERE gateway_id = $1 AND follower = $2")
            .bind(gateway)
            .bind(&self.replica)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn leave(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM feed_replicas WHERE replica = $1")
            .bind(&self.replica)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn publish_hold(
        &self,
        gateway: &str,
        tenure: i64,
        hold: Option<(HoldId, usize, &str)>,
    ) -> Result<(), StoreError> {
        let (id, removals, message) = hold.map_or((None, 0, None), |(id, n, m)| (Some(id), n, Some(m)));
        sqlx::query(
            "UPDATE feed_followers SET hold_id = $3, held_removals = $4, last_error = COALESCE($5, last_error), \
                 accept_hold = CASE WHEN hold_id IS NOT DISTINCT FROM $3 THEN accept_hold END \
             WHERE gateway_id = $1 AND tenure = $2",
        )
        .bind(gateway)
        .bind(tenure)
        .bind(id)
        .bind(i64::try_from(removals).unwrap_or(i64::MAX))
        .bind(message)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn request_accept(&self, gateway: &str) -> Result<bool, StoreError> {
        let marked = sqlx::query(&format!(
            "UPDATE feed_followers SET accept_hold = hold_id \
             WHERE gateway_id = $1 AND hold_id IS NOT NULL AND lease_expires_at >= {NOW}"
        ))
        .bind(gateway)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(marked.rows_affected() > 0)
    }
    async fn followers(&self) -> Result<Vec<Following>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT gateway_id, follower, feed, host_url, last_snapshot_at, last_event_at, last_error, held_removals \
             FROM feed_followers WHERE lease_expires_at >= {NOW} ORDER BY gateway_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| from_sqlx(e);
                let feed: String = row.try_get("feed").map_err(get)?;
                let held: i64 = row.try_get("held_removals").map_err(get)?;
                Ok(Following {
                    follower: row.try_get("follower").map_err(get)?,
                    report: GatewayReport {
                        id: row.try_get("gateway_id").map_err(get)?,
                        host_url: row.try_get("host_url").map_err(get)?,
                        feed: state(&feed),
                        last_snapshot_at: row.try_get("last_snapshot_at").map_err(get)?,
                        last_event_at: row.try_get("last_event_at").map_err(get)?,
                        last_error: row.try_get("last_error").map_err(get)?,
                        held_removals: usize::try_from(held).unwrap_or(0),
                    },
                })
            })
            .collect()
    }
}
