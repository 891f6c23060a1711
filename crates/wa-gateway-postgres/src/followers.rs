//! Cluster mode's feed leases (`wa_gateway_core::feed::leases`): a row per
//! gateway in `feed_followers`, judged by the database's clock so replicas'
//! clocks never matter.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::errors::from_sqlx;
use wa_gateway_core::feed::gateways::{FeedState, GatewayReport};
use wa_gateway_core::feed::leases::{FeedLeases, Following, Hold};
use wa_gateway_core::store::error::StoreError;

const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Whether `$1`'s current lease is tenure `$2`: a row when it is, share-locked
/// until the asking transaction ends, so a takeover (which updates the row)
/// waits for that transaction's commit.
pub(crate) const HOLDS_TENURE: &str = "SELECT 1 FROM feed_followers WHERE gateway_id = $1 AND tenure = $2 \
     AND lease_expires_at >= (extract(epoch from clock_timestamp()) * 1000)::bigint FOR SHARE";

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

#[async_trait]
impl FeedLeases for PgFeedLeases {
    fn replica(&self) -> &str {
        &self.replica
    }

    async fn heartbeat(&self, ttl: Duration) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
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
        tx.commit().await.map_err(from_sqlx)?;
        Ok(usize::try_from(alive).unwrap_or(1).max(1))
    }

    async fn hold(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Hold, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO feed_followers AS f (gateway_id, follower, lease_expires_at, feed, host_url, \
                 last_snapshot_at, last_event_at, last_error, held_removals) \
             VALUES ($1, $2, {NOW} + $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (gateway_id) DO UPDATE SET follower = excluded.follower, \
                 lease_expires_at = excluded.lease_expires_at, feed = excluded.feed, host_url = excluded.host_url, \
                 last_snapshot_at = excluded.last_snapshot_at, last_event_at = excluded.last_event_at, \
                 last_error = excluded.last_error, held_removals = excluded.held_removals, \
                 accept_requested = f.accept_requested AND f.follower = excluded.follower, \
                 tenure = CASE WHEN f.follower = excluded.follower THEN f.tenure ELSE excluded.tenure END \
             WHERE f.follower = excluded.follower OR f.lease_expires_at < {NOW} \
             RETURNING f.accept_requested AS accept, f.tenure"
        ))
        .bind(gateway)
        .bind(&self.replica)
        .bind(millis(lease))
        .bind(report.feed.as_str())
        .bind(&report.host_url)
        .bind(report.last_snapshot_at)
        .bind(report.last_event_at)
        .bind(&report.last_error)
        .bind(i64::try_from(report.held_removals).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = row else { return Ok(Hold::default()) };
        let accept_requested = row.try_get::<Option<bool>, _>("accept").map_err(from_sqlx)?.unwrap_or(false);
        let tenure: i64 = row.try_get("tenure").map_err(from_sqlx)?;
        if accept_requested {
            sqlx::query("UPDATE feed_followers SET accept_requested = false WHERE gateway_id = $1 AND follower = $2")
                .bind(gateway)
                .bind(&self.replica)
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?;
        }
        Ok(Hold { held: true, accept_requested, tenure })
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

    async fn request_accept(&self, gateway: &str) -> Result<bool, StoreError> {
        let marked = sqlx::query(&format!(
            "UPDATE feed_followers SET accept_requested = true \
             WHERE gateway_id = $1 AND held_removals > 0 AND lease_expires_at >= {NOW}"
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
