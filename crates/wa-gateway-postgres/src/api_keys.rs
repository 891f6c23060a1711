use crate::errors::from_sqlx;
use async_trait::async_trait;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{ApiKeyRow, ApiKeyStore};
use wa_gateway_core::time::UnixMillis;
use wa_gateway_sql::rows;

#[async_trait]
impl ApiKeyStore for crate::PgDatabase {
    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        let permissions = serde_json::to_string(&key.permissions)
            .map_err(|e| StoreError::Corrupt(format!("api-key permissions: {e}")))?;
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, name, permissions, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.organization_id)
        .bind(&key.name)
        .bind(permissions)
        .bind(&key.secret_hash)
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.iter().map(rows::api_key).collect()
    }

    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    /// Marks a key revoked. Returns false when no such key exists; revoking a
    /// revoked key keeps its first revocation time.
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}
