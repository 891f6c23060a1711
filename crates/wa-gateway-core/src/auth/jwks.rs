//! The JWKS cache: the frontend's public signing keys, by `kid`.
//!
//! Fetched at start-up, refreshed in the background every `max-age` (default
//! 5 minutes). A token with an unknown `kid` triggers a refetch, shared by
//! every concurrent caller (single flight under one mutex) and spaced by the
//! cooldown (about a second): a caller arriving within the cooldown waits for
//! the next refetch instead of failing, so a newly published key is usable
//! within about a second however many unknown ids came before. A failed
//! fetch, an answer with no usable key, a duplicate `kid` or a body that is
//! not a JWKS never replaces the last good keys. Redirects never go from
//! https to http.

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
    /// A CA bundle (PEM) trusted for the JWKS endpoint, besides the WebPKI roots.
    pub ca: Option<Vec<u8>>,
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
/// A set without one usable key, or with a `kid` twice, is refused whole.
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
        if keys.insert(kid.clone(), Arc::new(VerifyingKey { decoding, algorithm })).is_some() {
            return Err(format!("kid {:?} appears twice", kid.chars().take(64).collect::<String>()));
        }
    }
    if keys.is_empty() {
        return Err("no usable key (RS256, ES256 or EdDSA with a kid)".into());
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

/// When the key set was last replaced by a good one, for the staleness alert.
fn keys_loaded_now() {
    let now = crate::time::now_millis() as f64 / 1000.0;
    metrics::gauge!("wa_gateway_jwks_last_success_timestamp_seconds").set(now);
}

impl JwksCache {
    pub fn new(config: JwksConfig) -> Result<Self, reqwest::Error> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade =
                attempt.previous().iter().any(|u| u.scheme() == "https") && attempt.url().scheme() != "https";
            if downgrade {
                attempt.error("refused a redirect from https to http")
            } else if attempt.previous().len() > 3 {
                attempt.error("more than 3 redirects")
            } else {
                attempt.follow()
            }
        });
        let mut client = reqwest::Client::builder()
            .connect_timeout(config.fetch_timeout.min(Duration::from_secs(5)))
            .timeout(config.fetch_timeout)
            .redirect(redirects);
        if let Some(pem) = &config.ca {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client.build()?;
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
        keys_loaded_now();
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
                keys_loaded_now();
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

    /// The key for `kid`, refetching the JWKS when it is unknown. Concurrent
    /// callers share one refetch; refetches are at least a cooldown apart,
    /// and a caller within the cooldown waits for the next one.
    pub async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        // A caller needs one fetch that started after it arrived (the key
        // may have been published just before). Callers queued behind such
        // a fetch share it, so refetches stay a cooldown apart and each
        // caller waits at most about one cooldown and one fetch.
        let arrived = Instant::now();
        let mut last_start = self.last_unknown_kid_fetch.lock().await;
        if last_start.is_some_and(|started| started >= arrived) {
            return self.lookup(kid);
        }
        if let Some(started) = *last_start {
            tokio::time::sleep_until((started + self.config.unknown_kid_cooldown).into()).await;
        }
        *last_start = Some(Instant::now());
        self.refresh().await;
        self.lookup(kid)
    }

    /// The one published key that verifies `algorithm`, for a token without
    /// a `kid`; `None` when there is none or more than one.
    pub fn only_key_for(&self, algorithm: Algorithm) -> Option<Arc<VerifyingKey>> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut fitting = keys.values().filter(|k| k.algorithm == algorithm);
        match (fitting.next(), fitting.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        }
    }
}
