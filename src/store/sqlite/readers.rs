//! Connections for the hot single-statement reads (ListSessions, GetSession,
//! the directory pages), checked out without sqlx's pool. The pool tests a
//! connection on every release with a round trip to the connection's thread,
//! in a task it spawns: for a query answered from SQLite's page cache that
//! was a third of the cost of a ListSessions call. A connection to a local
//! file does not go stale, and a single-statement read leaves no transaction
//! open, so these are checked out and back with no test; a connection whose
//! read failed is closed rather than kept.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Semaphore;

use crate::store::StoreError;

/// How long a read waits for a free connection, as the pool's checkout.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Readers {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
}

impl Readers {
    /// At most `size` connections, opened when first needed.
    pub(super) fn new(options: SqliteConnectOptions, size: usize) -> Self {
        Self { options, idle: Mutex::new(Vec::with_capacity(size)), permits: Semaphore::new(size) }
    }

    /// Runs `query` on a reader connection.
    pub(super) async fn read<T>(
        &self,
        query: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let _permit = match tokio::time::timeout(CHECKOUT_TIMEOUT, self.permits.acquire()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut.into()),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed.into()),
            Ok(Ok(permit)) => permit,
        };
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        // Dropped mid-query (a cancelled request), the connection is dropped
        // too: its thread finishes the statement and closes it.
        let result = query(&mut conn).await;
        if result.is_ok() {
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        } else {
            let _ = conn.close().await;
        }
        Ok(result?)
    }

    /// Refuses further reads and closes the idle connections.
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers(dir: &tempfile::TempDir, size: usize) -> Readers {
        let options = SqliteConnectOptions::new().filename(dir.path().join("r.db")).create_if_missing(true);
        Readers::new(options, size)
    }

    fn idle(readers: &Readers) -> usize {
        readers.idle.lock().unwrap().len()
    }

    #[tokio::test]
    async fn connections_are_reused_a_failed_one_is_closed_and_close_refuses_reads() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 2);
        for _ in 0..3 {
            let one: i64 = readers.read(async |c| sqlx::query_scalar("SELECT 1").fetch_one(c).await).await.unwrap();
            assert_eq!(one, 1);
        }
        assert_eq!(idle(&readers), 1, "sequential reads share one connection");
        let failed = readers.read(async |c| sqlx::query("SELECT * FROM no_such_table").execute(c).await).await;
        assert!(matches!(failed, Err(StoreError::Database(_))), "{failed:?}");
        assert_eq!(idle(&readers), 0, "the failed read's connection is not kept");
        readers.close().await;
        let refused = readers.read(async |c| sqlx::query("SELECT 1").execute(c).await).await;
        assert!(matches!(refused, Err(StoreError::Database(sqlx::Error::PoolClosed))), "{refused:?}");
    }

    #[tokio::test]
    async fn at_most_size_connections_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let readers = std::sync::Arc::new(readers(&dir, 2));
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reads = (0..8).map(|_| {
            let (readers, busy, most) = (readers.clone(), busy.clone(), most.clone());
            tokio::spawn(async move {
                readers
                    .read(async |c| {
                        let now = busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        let result = sqlx::query("SELECT 1").execute(c).await;
                        busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        result
                    })
                    .await
            })
        });
        for read in reads.collect::<Vec<_>>() {
            read.await.unwrap().unwrap();
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        assert!(idle(&readers) <= 2);
    }
}
