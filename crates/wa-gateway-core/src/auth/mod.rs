//! Authentication and authorization, free of any protocol: callers hand in the
//! raw credential header values; out comes a [`Principal`], and for admin
//! operations a [`SuperAdmin`] capability.
//!
//! Invariant: [`SuperAdmin`] can be constructed only by [`Authenticator::admin_gate`],
//! and every admin operation takes one by reference. No handler can reach an
//! admin operation by forgetting an `if`.

mod api_keys;
mod cache;
mod error;
mod jwks;
mod jwt;
mod limiter;
mod principal;

pub use api_keys::{ApiKeyVerifier, NewApiKey, generate_api_key, hash_secret};
pub use error::AuthError;
pub use jwks::{JwksCache, JwksConfig};
pub use jwt::{JwtConfig, JwtVerifier};
pub use limiter::FailureLimiter;
pub use principal::{ApiKeyPrincipal, Principal, UserPrincipal};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::ServiceError;

/// Who is calling, once a credential has been verified.
pub const SUPER_ADMIN_ROLE: &str = "super_admin";

/// Proof that the caller is a platform super_admin. Only [`Authenticator`]
/// creates it; admin operations require it as an argument.
#[derive(Debug, Clone)]
pub struct SuperAdmin {
    user: Arc<UserPrincipal>,
}

impl SuperAdmin {
    /// A super_admin for the domain's unit tests; unit tests only.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let valid_until = SystemTime::now() + std::time::Duration::from_secs(3600);
        let user = UserPrincipal {
            subject: "test-admin".into(),
            organization_id: None,
            role: None,
            platform_roles: vec![SUPER_ADMIN_ROLE.into()],
            valid_until,
        };
        Self { user: Arc::new(user) }
    }

    /// The `sub` of the super_admin's login JWT, for audit.
    pub fn subject(&self) -> &str {
        &self.user.subject
    }

    /// When the credential stops being accepted; long-lived calls (watch
    /// streams) end then.
    pub fn valid_until(&self) -> SystemTime {
        self.user.valid_until
    }
}

/// The credential header values of one request, as received.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub x_api_key: Option<&'a str>,
}

enum Credential<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

fn classify<'a>(creds: Credentials<'a>) -> Result<Credential<'a>, AuthError> {
    let bearer = match creds.authorization {
        None => None,
        Some(value) => {
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::UnsupportedScheme);
            }
            let token = token.trim();
            if token.is_empty() {
                return Err(AuthError::EmptyToken);
            }
            Some(token)
        }
    };
    match (bearer, creds.x_api_key.map(str::trim)) {
        (Some(_), Some(_)) => Err(AuthError::ConflictingCredentials),
        (None, None) => Err(AuthError::MissingCredential),
        (None, Some("")) => Err(AuthError::EmptyToken),
        (None, Some(key)) => Ok(Credential::ApiKey(key)),
        (Some(token), None) if token.starts_with(api_keys::API_KEY_PREFIX) => Ok(Credential::ApiKey(token)),
        (Some(token), None) => Ok(Credential::Jwt(token)),
    }
}

/// The credential headers and the token inside them, as the auth layer
/// reads them before any check, for the fuzzer.
#[cfg(fuzzing)]
pub fn fuzz_credentials(authorization: &str, api_key: &str) {
    let creds = Credentials { authorization: Some(authorization), x_api_key: Some(api_key).filter(|k| !k.is_empty()) };
    if let Ok(Credential::Jwt(token)) = classify(creds) {
        jwt::fuzz_untrusted(token);
    }
}

/// Turns credentials into principals. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    jwt: Arc<JwtVerifier>,
    api_keys: Arc<ApiKeyVerifier>,
    failures: Option<Arc<FailureLimiter>>,
}

impl Authenticator {
    /// `failures` limits failed credentials per client address (`None`: no limit).
    pub fn new(jwt: JwtVerifier, api_keys: ApiKeyVerifier, failures: Option<FailureLimiter>) -> Self {
        Self { jwt: Arc::new(jwt), api_keys: Arc::new(api_keys), failures: failures.map(Arc::new) }
    }

    pub fn jwks(&self) -> &Arc<JwksCache> {
        self.jwt.jwks()
    }

    /// The principal behind `creds`. A credential verified recently is
    /// answered from the cache and never refused; any other is checked
    /// against the client's budget of failures first, and a failure spends it.
    pub async fn authenticate(&self, creds: Credentials<'_>, client: Option<IpAddr>) -> Result<Principal, AuthError> {
        let credential = classify(creds);
        if let Ok(credential) = &credential {
            let cached = match credential {
                Credential::Jwt(token) => self.jwt.cached(token).map(Principal::User),
                Credential::ApiKey(key) => self.api_keys.cached(key).map(Principal::ApiKey),
            };
            if let Some(principal) = cached {
                return Ok(principal);
            }
        }
        let limiter = self.failures.as_deref().zip(client);
        if let Some((limiter, client)) = limiter {
            limiter.check(client).map_err(AuthError::RateLimited)?;
        }
        let verified = match credential {
            Err(e) => Err(e),
            Ok(Credential::Jwt(token)) => self.jwt.verify(token).await.map(Principal::User),
            Ok(Credential::ApiKey(key)) => self.api_keys.verify(key).await.map(Principal::ApiKey),
        };
        if let (Err(e), Some((limiter, client))) = (&verified, limiter) {
            if e.error_code() == crate::error::ErrorCode::Unauthenticated {
                limiter.failed(client);
            }
        }
        verified
    }

    /// The only way to obtain a [`SuperAdmin`].
    pub async fn admin_gate(&self, creds: Credentials<'_>, client: Option<IpAddr>) -> Result<SuperAdmin, AuthError> {
        match self.authenticate(creds, client).await? {
            Principal::User(user) if user.platform_roles.iter().any(|r| r == SUPER_ADMIN_ROLE) => {
                Ok(SuperAdmin { user })
            }
            Principal::User(_) => Err(AuthError::NotSuperAdmin),
            Principal::ApiKey(_) => Err(AuthError::ApiKeyNotAllowed),
        }
    }
}
