//! The JWKS cache: the frontend's public signing keys, by `kid`.
//!
//! Fetched at start-up, refreshed in the background every `max-age` (default
//! 5 minutes). A token with an unknown `kid` may trigger one refetch per
//! cooldown, shared by every concurrent caller (single flight under one
//! mutex). A failed fetch keeps the last good keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, OctetKeyPairType};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MIN_REFRESH: Duration = Duration::from_secs(10);
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub url: String,
    /// Refresh interval when the response carries no `Cache-Control: max-age`.
    pub default_refresh: Duration,
    /// Minimum time between refetches triggered by unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    pub fetch_timeout: Duration,
}

/// A verified public key and the one algorithm it may verify.
pub struct VerifyingKey {
    pub decoding: DecodingKey,
    pub algorithm: Algorithm,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
    #[error("document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("document is not a JWKS: {0}")]
    Parse(String),
}

pub struct JwksCache {
    config: JwksConfig,
    client: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, Arc<VerifyingKey>>>>,
    loaded: AtomicBool,
    last_unknown_kid_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// The algorithm a JWK may verify: its `alg` if given, else implied by its
/// key type. Only RS256, ES256 and EdDSA keys are usable.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(okp)
            if okp.key_type == OctetKeyPairType::OctetKeyPair && okp.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(KeyAlgorithm::RS256) if implied == Algorithm::RS256 => Some(implied),
        Some(KeyAlgorithm::ES256) if implied == Algorithm::ES256 => Some(implied),
        Some(KeyAlgorithm::EdDSA) if implied == Algorithm::EdDSA => Some(implied),
        Some(_) => None,
    }
}

/// Parses a JWKS, skipping (not failing on) keys we cannot or may not use.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut keys = HashMap::new();
    for value in raw.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let Some(algorithm) = key_algorithm(&jwk) else {
            continue;
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid, Arc::new(VerifyingKey { decoding, algorithm }));
    }
    Ok(keys)
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let secs = directive.trim().strip_prefix("max-age=")?;
        secs.trim().parse::<u64>().ok().map(Duration::from_secs)
    })
}

impl JwksCache {
    pub fn new(config: JwksConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.fetch_timeout.min(Duration::from_secs(5)))
            .timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            config,
            client,
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            last_unknown_kid_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// True once any fetch has succeeded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn lookup(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid).cloned()
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<VerifyingKey>>, Option<Duration>), FetchError> {
        let mut response = self.client.get(&self.config.url).send().await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let ttl = max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse_jwks(&body).map_err(FetchError::Parse)?, ttl))
    }

    /// Installs a key set directly (a JWKS document), as a successful fetch
    /// would. For callers that hold the keys themselves: the demo, benchmarks.
    pub fn install(&self, jwks_json: &[u8]) -> Result<usize, String> {
        let keys = parse_jwks(jwks_json)?;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        self.loaded.store(true, Ordering::Release);
        Ok(count)
    }

    /// Fetches the JWKS once and, on success, replaces the key set. Returns
    /// when to refresh next.
    pub async fn refresh(&self) -> Duration {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok((keys, ttl)) => {
                metrics::counter!("wa_gateway_jwks_fetches_total", "outcome" => "ok").increment(1);
                tracing::info!(keys = keys.len(), "JWKS loaded");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                self.loaded.store(true, Ordering::Release);
                ttl.unwrap_or(self.config.default_refresh).clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(error) => {
                metrics::counter!("wa_gateway_jwks_fetches_total", "outcome" => "error").increment(1);
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "JWKS fetch failed; keeping the last good keys");
                RETRY_AFTER_FAILURE.min(self.config.default_refresh)
            }
        }
    }

    /// Fetches now, then keeps refreshing in the background until the
    /// returned handle is aborted.
    pub async fn start(self: &Arc<Self>) -> tokio::task::AbortHandle {
        let first = self.refresh().await;
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(wait).await;
                wait = cache.refresh().await;
            }
        })
        .abort_handle()
    }

    /// The key for `kid`, refetching the JWKS at most once per cooldown when
    /// it is unknown. Concurrent callers share one refetch.
    pub async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        let mut last = self.last_unknown_kid_fetch.lock().await;
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < self.config.unknown_kid_cooldown) {
            return None;
        }
        *last = Some(Instant::now());
        self.refresh().await;
        self.lookup(kid)
    }
}
