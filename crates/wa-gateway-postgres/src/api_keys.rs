//! The api-keys, through the statements both backends share
//! (`wa_gateway_sql::api_keys`).

use async_trait::async_trait;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::store::port::{ApiKeyRow, ApiKeyStore};
use wa_gateway_core::time::UnixMillis;
use wa_gateway_sql::api_keys::ApiKeys;

use crate::errors::from_sqlx;

impl crate::PgDatabase {
    fn api_keys(&self) -> ApiKeys<'_, sqlx::Postgres> {
        ApiKeys { pool: &self.pool, error: from_sqlx }
    }
}

#[async_trait]
impl ApiKeyStore for crate::PgDatabase {
    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        self.api_keys().insert(key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.api_keys().list().await
    }

    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        self.api_keys().find_by_hash(hash).await
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        self.api_keys().revoke(id, at).await
    }

    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        self.api_keys().touch(id, at).await
    }
}
