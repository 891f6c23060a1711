//! api-keys for scripts and services: `wa_` followed by base62 characters
//! from the OS RNG. Only the SHA-256 of a key is stored; lookups go by that
//! hash and the stored hash is compared in constant time.
//!
//! Verified keys (and refusals) are cached for [`API_KEY_CACHE_TTL`], so a
//! revocation takes effect within that bound.

use std::time::{Duration, Instant};

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cache::TtlCache;
use super::error::AuthError;
use super::principal::ApiKeyPrincipal;
use crate::store::port::{ApiKeyRow, Store};
use crate::time::now_millis;

pub const API_KEY_PREFIX: &str = "wa_";
const MIN_SECRET_CHARS: usize = 32;
const MAX_SECRET_CHARS: usize = 128;
const GENERATED_SECRET_CHARS: usize = 40;
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_CAPACITY: usize = 10_000;

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn well_formed(key: &str) -> bool {
    key.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A freshly minted key: the secret is shown once and never stored.
pub struct NewApiKey {
    pub secret: String,
    pub row: ApiKeyRow,
}

pub fn generate_api_key(organization_id: &str, name: Option<String>, permissions: Vec<String>) -> NewApiKey {
    let random: String =
        rand::rngs::OsRng.sample_iter(&Alphanumeric).take(GENERATED_SECRET_CHARS).map(char::from).collect();
    let secret = format!("{API_KEY_PREFIX}{random}");
    let row = ApiKeyRow {
        id: format!("ak_{}", ulid::Ulid::new()),
        organization_id: organization_id.to_owned(),
        name,
        permissions,
        secret_hash: hash_secret(&secret).to_vec(),
        created_at: now_millis(),
        last_used_at: None,
        revoked_at: None,
    };
    NewApiKey { secret, row }
}

pub struct ApiKeyVerifier {
    store: Store,
    /// `None` caches a refusal, so unknown keys do not reach the database on
    /// every attempt either.
    cache: TtlCache<Option<ApiKeyPrincipal>>,
}

impl ApiKeyVerifier {
    pub fn new(store: Store) -> Self {
        Self { store, cache: TtlCache::new(CACHE_CAPACITY) }
    }

    /// The principal of `key` if it was found valid within the cache TTL.
    pub fn cached(&self, key: &str) -> Option<ApiKeyPrincipal> {
        if !well_formed(key) {
            return None;
        }
        self.cache.get(&hash_secret(key)).flatten()
    }

    pub async fn verify(&self, key: &str) -> Result<ApiKeyPrincipal, AuthError> {
        if !well_formed(key) {
            return Err(AuthError::MalformedApiKey);
        }
        let hash = hash_secret(key);
        if let Some(cached) = self.cache.get(&hash) {
            return cached.ok_or(AuthError::UnknownApiKey);
        }
        let row = self.store.find_api_key_by_hash(&hash).await?;
        let principal = row
            .filter(|row| bool::from(row.secret_hash.as_slice().ct_eq(&hash)) && row.revoked_at.is_none())
            .map(|row| {
                let store = self.store.clone();
                let id = row.id.clone();
                tokio::spawn(async move {
                    if let Err(error) = store.touch_api_key(&id, now_millis()).await {
                        tracing::debug!(%error, "could not record api-key use");
                    }
                });
                ApiKeyPrincipal { key_id: row.id, organization_id: row.organization_id, permissions: row.permissions }
            });
        self.cache.insert(hash, principal.clone(), Instant::now() + API_KEY_CACHE_TTL);
        principal.ok_or(AuthError::UnknownApiKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate_api_key("org", None, vec![]);
        let b = generate_api_key("org", None, vec![]);
        assert!(well_formed(&a.secret));
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.row.secret_hash, hash_secret(&a.secret).to_vec());
        assert!(!well_formed("wa_short"));
        assert!(!well_formed(&format!("wa_{}!", "a".repeat(40))));
        assert!(!well_formed(&format!("xx_{}", "a".repeat(40))));
    }
}
