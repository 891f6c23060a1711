//! Login JWT verification: RS256, ES256 and EdDSA against the JWKS, with a
//! bounded cache of verified tokens so a repeated token costs a hash and a
//! map lookup instead of a signature check. No network or database is touched
//! here except a JWKS refetch for an unknown `kid`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::cache::TtlCache;
use super::error::AuthError;
use super::jwks::JwksCache;
use super::principal::UserPrincipal;
use crate::time::now_secs;

/// Larger tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A cached verification is trusted at most this long, so a key removed
/// from the JWKS stops working within this bound even for cached tokens.
const MAX_CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    pub org_claim: String,
    pub role_claim: String,
    pub platform_role_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway_secs: 60,
            org_claim: "org_id".into(),
            role_claim: "role".into(),
            platform_role_claim: "platform_role".into(),
        }
    }
}

pub struct JwtVerifier {
    config: JwtConfig,
    jwks: Arc<JwksCache>,
    /// Shared, so a cache hit copies no claim.
    verified: TtlCache<Arc<UserPrincipal>>,
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

fn allowed_algorithm(alg: &str) -> Result<Algorithm, AuthError> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(AuthError::AlgorithmNotAllowed(other.chars().take(16).collect())),
    }
}

fn read_header(token: &str) -> Result<RawHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::MalformedToken);
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| AuthError::MalformedToken)?;
    serde_json::from_slice(&json).map_err(|_| AuthError::MalformedToken)
}

fn map_decode_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => AuthError::MissingClaim(c.clone()),
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::KeyAlgorithmMismatch,
        _ => AuthError::MalformedToken,
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A role claim may be one string or an array of strings.
fn roles_claim(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Everything read from a token before its signature is checked (the
/// header) and what a verified token's claims yield, for the fuzzer.
#[cfg(fuzzing)]
pub fn fuzz_untrusted(token: &str) {
    if let Ok(header) = read_header(token) {
        let _ = allowed_algorithm(&header.alg);
    }
    let Some(payload) = token.split('.').nth(1) else { return };
    let Ok(json) = URL_SAFE_NO_PAD.decode(payload) else { return };
    if let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(&json) {
        let _ = (string_claim(&claims, "sub"), roles_claim(&claims, "platform_role"));
        let _ = claims.get("exp").and_then(Value::as_u64);
    }
}

impl JwtVerifier {
    pub fn new(config: JwtConfig, jwks: Arc<JwksCache>) -> Self {
        Self { config, jwks, verified: TtlCache::new(CACHE_CAPACITY) }
    }

    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = self.config.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &self.config.issuer {
            v.set_issuer(&[iss]);
        }
        match &self.config.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    /// The principal of `token` if it was verified recently (no signature
    /// check, no network).
    pub fn cached(&self, token: &str) -> Option<Arc<UserPrincipal>> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        self.verified.get(&Sha256::digest(token.as_bytes()).into())
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<UserPrincipal>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge(MAX_TOKEN_BYTES));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.verified.get(&digest) {
            return Ok(principal);
        }

        let header = read_header(token)?;
        let algorithm = allowed_algorithm(&header.alg)?;
        let key = match header.kid {
            Some(kid) => self.jwks.key(&kid).await,
            // Without a kid, as jose does: the one published key for the algorithm.
            None => match self.jwks.only_key_for(algorithm) {
                Some(key) => Some(key),
                None if self.jwks.is_loaded() => return Err(AuthError::MissingKid),
                None => None,
            },
        };
        let key = match key {
            Some(key) => key,
            None if !self.jwks.is_loaded() => return Err(AuthError::KeysUnavailable),
            None => return Err(AuthError::UnknownKey),
        };
        if key.algorithm != algorithm {
            return Err(AuthError::KeyAlgorithmMismatch);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &self.validation(algorithm))
            .map_err(|e| map_decode_error(e.kind()))?;
        let claims = data.claims;

        let now = now_secs();
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_u64().ok_or_else(|| AuthError::MissingClaim("iat".into()))?;
            if iat > now + self.config.leeway_secs {
                return Err(AuthError::IssuedInFuture);
            }
        }
        let exp = claims.get("exp").and_then(Value::as_u64).ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let subject = string_claim(&claims, "sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        let principal = Arc::new(UserPrincipal {
            subject,
            organization_id: string_claim(&claims, &self.config.org_claim),
            role: string_claim(&claims, &self.config.role_claim),
            platform_roles: roles_claim(&claims, &self.config.platform_role_claim),
            valid_until: std::time::UNIX_EPOCH + Duration::from_secs(exp.saturating_add(self.config.leeway_secs)),
        });

        let valid_for = Duration::from_secs((exp + self.config.leeway_secs).saturating_sub(now));
        self.verified.insert(digest, principal.clone(), Instant::now() + valid_for.min(MAX_CACHE_TTL));
        Ok(principal)
    }
}
