//! A write transaction on a pooled connection that goes back to its pool
//! only once the transaction has ended cleanly.
//!
//! Invariant: no connection whose protocol state is unknown is handed to
//! another caller. A transaction dropped before its end (its future
//! cancelled mid-statement, inside a `COPY`, or after an error) closes its
//! connection instead: the server rolls the transaction back when the
//! connection goes, and the pool opens a fresh one. sqlx's own
//! `Transaction` would queue a `ROLLBACK` and return the connection,
//! trusting it to be in step.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool};

use wa_gateway_core::store::error::StoreError;

pub struct Tx<DB: Database> {
    /// `Some` until the transaction ends: by `commit` or `rollback` (back
    /// to the pool) or by a drop (closed).
    conn: Option<PoolConnection<DB>>,
    error: fn(sqlx::Error) -> StoreError,
}

const HELD: &str = "a Tx holds its connection until commit or rollback consumes it";

impl<DB: Database> Tx<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Takes a connection from `pool` and runs `begin` (`BEGIN`, or a
    /// backend's variant of it) on it.
    pub async fn begin(pool: &Pool<DB>, begin: &str, error: fn(sqlx::Error) -> StoreError) -> Result<Self, StoreError> {
        let conn = pool.acquire().await.map_err(error)?;
        let mut tx = Self { conn: Some(conn), error };
        tx.run(begin).await?;
        Ok(tx)
    }

    async fn run(&mut self, statement: &str) -> Result<(), StoreError> {
        let conn: &mut DB::Connection = self;
        conn.execute(statement).await.map_err(self.error)?;
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.run("COMMIT").await?;
        // In step: back to the pool.
        self.conn.take();
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        self.run("ROLLBACK").await?;
        self.conn.take();
        Ok(())
    }
}

impl<DB: Database> Deref for Tx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_deref().expect(HELD)
    }
}

impl<DB: Database> DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_deref_mut().expect(HELD)
    }
}

impl<DB: Database> Drop for Tx<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool and dropped: the socket closes.
            drop(conn.detach());
        }
    }
}
