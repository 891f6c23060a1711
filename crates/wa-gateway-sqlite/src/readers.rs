//! The hot single-statement reads (ListSessions, GetSession, the directory
//! pages), run through rusqlite on the calling thread.
//!
//! sqlx's SQLite driver gives each connection a thread of its own and hands
//! every statement, and every row, to and from it over channels: for a page
//! answered from SQLite's page cache those hand-offs cost more than the
//! query. A read here is a plain function call instead: a page is at most
//! 500 rows of an index range, microseconds from the page cache.
//!
//! Invariant: a reader never waits inside SQLite, so no runtime thread is
//! parked on a lock. Its busy timeout is zero; a BUSY answer (only possible
//! in WAL mode while another connection recovers or resets the log) is
//! retried here with async sleeps, up to the patience of the writers' pool,
//! and then answered as a busy store (503). Connections are `query_only`.

use crate::errors::from_rusqlite;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use wa_gateway_core::store::error::StoreError;
use wa_gateway_sql::rows::Columns;

/// How long a read keeps retrying a busy database (the pool's busy timeout).
const BUSY_PATIENCE: Duration = Duration::from_secs(5);
/// Connections kept for reuse: at most one is in use per thread that reads,
/// so this is the runtime's worker count with room to spare; a read beyond
/// it opens a connection and closes it afterwards.
const MAX_IDLE: usize = 16;
/// Prepared statements kept per connection (the session filters alone make
/// sixteen shapes of the listing).
const STATEMENT_CACHE: usize = 64;

/// A value bound to a reader's statement (reads are futures that may move
/// between threads, hence `Sync`).
pub(super) type Value<'a> = &'a (dyn rusqlite::ToSql + Sync);

/// `base` followed by each condition whose value is present, and those
/// values in order: a listing's statement for the filters it was given.
pub(super) fn conditional<'a>(mut base: String, conditions: &[(&str, Option<Value<'a>>)]) -> (String, Vec<Value<'a>>) {
    let mut values = Vec::with_capacity(conditions.len());
    for (condition, value) in conditions {
        if let Some(value) = value {
            base.push_str(condition);
            values.push(*value);
        }
    }
    (base, values)
}

pub(super) struct Readers {
    file: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Readers {
    /// Readers of the database file `file`, opened when first needed.
    pub(super) fn new(file: PathBuf) -> Self {
        Self { file, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    /// Runs `query` on a reader connection, retrying while the database is
    /// busy. `query` may run more than once, so it only reads.
    pub(super) async fn read<T>(&self, query: impl Fn(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let give_up = Instant::now() + BUSY_PATIENCE;
        let mut wait = Duration::from_millis(1);
        loop {
            match self.try_read(&query) {
                Err(error) if error.is_busy() && !self.is_closed() && Instant::now() + wait < give_up => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(50));
                }
                done => return done,
            }
        }
    }

    fn try_read<T>(&self, query: &impl Fn(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = query(&conn);
        // A connection is kept unless its read failed for a reason other
        // than a busy database (which leaves it as it was).
        if result.as_ref().is_ok() || result.as_ref().is_err_and(StoreError::is_busy) {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE && !self.is_closed() {
                idle.push(conn);
            }
        }
        result
    }

    fn open(&self) -> Result<Connection, StoreError> {
        // Never creates the file: the writers' pool did, and migrated it.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.file, flags).map_err(from_rusqlite)?;
        conn.busy_timeout(Duration::ZERO).map_err(from_rusqlite)?;
        conn.pragma_update(None, "query_only", true).map_err(from_rusqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses further reads and closes the idle connections.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// A reader's row, read by the decoders both backends share.
pub(crate) struct ReaderRow<'a, 'r>(pub &'a rusqlite::Row<'r>);

macro_rules! read_columns {
    ($($method:ident: $index:ty => $value:ty),* $(,)?) => {$(
        fn $method(&self, column: $index) -> Result<$value, StoreError> {
            self.0.get(column).map_err(from_rusqlite)
        }
    )*};
}

impl Columns for ReaderRow<'_, '_> {
    read_columns! {
        text: &str => String, opt_text: &str => Option<String>, flag: &str => bool, int: &str => i64,
        opt_int: &str => Option<i64>, bytes: &str => Vec<u8>, text_at: usize => String,
        opt_text_at: usize => Option<String>, flag_at: usize => bool, int_at: usize => i64,
        opt_int_at: usize => Option<i64>, opt_i32_at: usize => Option<i32>,
    }

    fn str_at<T>(&self, index: usize, read: impl FnOnce(&str) -> T) -> Result<T, StoreError> {
        match self.0.get_ref(index).map_err(from_rusqlite)?.as_str() {
            Ok(text) => Ok(read(text)),
            // Not text: the owned read names the column and its type.
            Err(_) => Ok(read(&self.0.get::<_, String>(index).map_err(from_rusqlite)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &tempfile::TempDir) -> PathBuf {
        let file = dir.path().join("r.db");
        let writer = Connection::open(&file).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        file
    }

    fn idle(readers: &Readers) -> usize {
        readers.idle.lock().unwrap().len()
    }

    fn seven(conn: &Connection) -> Result<i64, StoreError> {
        conn.query_row("SELECT v FROM t", [], |row| row.get(0)).map_err(from_rusqlite)
    }

    #[tokio::test]
    async fn connections_are_reused_a_failed_one_is_closed_and_close_refuses_reads() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(database(&dir));
        for _ in 0..3 {
            assert_eq!(readers.read(seven).await.unwrap(), 7);
        }
        assert_eq!(idle(&readers), 1, "sequential reads share one connection");
        let failed = readers.read(|c| c.execute("SELECT * FROM no_such_table", []).map_err(from_rusqlite)).await;
        assert!(matches!(failed, Err(StoreError::Other(_))), "{failed:?}");
        assert_eq!(idle(&readers), 0, "the failed read's connection is not kept");
        readers.close();
        let refused = readers.read(seven).await;
        assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
        assert!(refused.unwrap_err().is_busy(), "a closed store is unavailable, not an internal error");
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(database(&dir));
        let write = readers.read(|c| c.execute("INSERT INTO t VALUES (8)", []).map_err(from_rusqlite)).await;
        assert!(matches!(write, Err(StoreError::Other(_))), "{write:?}");
        assert_eq!(
            readers
                .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).map_err(from_rusqlite))
                .await
                .unwrap(),
            1
        );
    }

    /// An exclusive lock (as during a WAL reset by another process) makes
    /// SQLite answer BUSY at once; the read waits it out without blocking
    /// its thread, and reads the value once the lock is gone.
    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_database_is_waited_out_without_blocking_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let file = database(&dir);
        let locker = Connection::open(&file).unwrap();
        locker.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE t SET v = 8;").unwrap();
        let readers = Readers::new(file);
        let (released_tx, released_rx) = tokio::sync::oneshot::channel();
        // On a current-thread runtime this task runs only if the read yields.
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            locker.execute_batch("COMMIT").unwrap();
            drop(locker);
            released_tx.send(()).unwrap();
        });
        assert_eq!(readers.read(seven).await.unwrap(), 8, "the read saw the committed value");
        released_rx.await.unwrap();
        release.await.unwrap();
    }
}
