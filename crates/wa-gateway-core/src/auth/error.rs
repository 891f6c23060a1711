use crate::error::{ErrorCode, ServiceError};
use crate::store::error::StoreError;

/// Why a credential was refused. Messages never contain the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credential: send Authorization: Bearer <token>")]
    MissingCredential,
    #[error("unsupported authorization scheme: use Bearer")]
    UnsupportedScheme,
    #[error("empty credential")]
    EmptyToken,
    #[error("send either Authorization or x-api-key, not both")]
    ConflictingCredentials,
    #[error("token is larger than {0} bytes")]
    TokenTooLarge(usize),
    #[error("malformed token")]
    MalformedToken,
    #[error("token algorithm {0} is not accepted (RS256, ES256 or EdDSA)")]
    AlgorithmNotAllowed(String),
    #[error("token header has no kid, and not exactly one published key fits its algorithm")]
    MissingKid,
    #[error("token is signed by an unknown key")]
    UnknownKey,
    #[error("token algorithm does not match its key")]
    KeyAlgorithmMismatch,
    #[error("invalid token signature")]
    InvalidSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token has no valid {0} claim")]
    MissingClaim(String),
    #[error("malformed api-key")]
    MalformedApiKey,
    #[error("unknown or revoked api-key")]
    UnknownApiKey,
    #[error("signing keys are not loaded yet; try again shortly")]
    KeysUnavailable,
    #[error("too many failed credentials from this address; try again in {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    #[error("admin API requires the platform super_admin role")]
    NotSuperAdmin,
    #[error("api-keys cannot call the admin API; use a super_admin login token")]
    ApiKeyNotAllowed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError for AuthError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::NotSuperAdmin | Self::ApiKeyNotAllowed => ErrorCode::PermissionDenied,
            Self::KeysUnavailable => ErrorCode::Unavailable,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Store(e) => e.error_code(),
            _ => ErrorCode::Unauthenticated,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::MissingCredential => "MISSING_CREDENTIAL",
            Self::UnsupportedScheme => "UNSUPPORTED_SCHEME",
            Self::EmptyToken => "EMPTY_CREDENTIAL",
            Self::ConflictingCredentials => "CONFLICTING_CREDENTIALS",
            Self::TokenTooLarge(_) => "TOKEN_TOO_LARGE",
            Self::MalformedToken => "MALFORMED_TOKEN",
            Self::AlgorithmNotAllowed(_) => "ALGORITHM_NOT_ALLOWED",
            Self::MissingKid => "MISSING_KID",
            Self::UnknownKey => "UNKNOWN_KEY",
            Self::KeyAlgorithmMismatch => "KEY_ALGORITHM_MISMATCH",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::IssuedInFuture => "TOKEN_ISSUED_IN_FUTURE",
            Self::WrongIssuer => "WRONG_ISSUER",
            Self::WrongAudience => "WRONG_AUDIENCE",
            Self::MissingClaim(_) => "MISSING_CLAIM",
            Self::MalformedApiKey => "MALFORMED_API_KEY",
            Self::UnknownApiKey => "UNKNOWN_API_KEY",
            Self::KeysUnavailable => "KEYS_UNAVAILABLE",
            Self::RateLimited(_) => "TOO_MANY_FAILED_CREDENTIALS",
            Self::NotSuperAdmin => "NOT_SUPER_ADMIN",
            Self::ApiKeyNotAllowed => "API_KEY_NOT_ALLOWED",
            Self::Store(e) => e.reason(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited(wait) => Some(*wait),
            _ => None,
        }
    }
}
