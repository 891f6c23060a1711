//! The api-keys table, written once for both backends. Its statements
//! number their parameters (`$1`), which sqlx binds alike on SQLite and
//! PostgreSQL; nothing here differs between them.

use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::ApiKeyRow;
use wa_gateway_core::time::UnixMillis;

use crate::rows::{self, Columns};

/// The api-keys of one database, its errors read by `error`, its
/// backend's reading.
pub struct ApiKeys<'p, DB: Database> {
    pub pool: &'p Pool<DB>,
    pub error: fn(sqlx::Error) -> StoreError,
}

impl<DB> ApiKeys<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Row: Columns,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    pub async fn insert(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        let permissions = serde_json::to_string(&key.permissions)
            .map_err(|e| StoreError::Corrupt(format!("api-key permissions: {e}")))?;
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, name, permissions, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.as_str())
        .bind(key.organization_id.as_str())
        .bind(key.name.as_deref())
        .bind(permissions)
        .bind(key.secret_hash.as_slice())
        .bind(key.created_at)
        .execute(self.pool)
        .await
        .map_err(self.error)?;
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter().map(rows::api_key).collect()
    }

    pub async fn find_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = $1")
            .bind(hash)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    /// Marks a key revoked. Returns false when no such key exists; revoking a
    /// revoked key keeps its first revocation time.
    pub async fn revoke(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING id")
                .bind(at)
                .bind(id)
                .fetch_optional(self.pool)
                .await
                .map_err(self.error)?;
        Ok(revoked.is_some())
    }

    pub async fn touch(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool)
            .await
            .map_err(self.error)?;
        Ok(())
    }
}
