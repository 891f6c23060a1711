//! Who a verified credential names: a user of a JWT, or an api-key.

use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person, from a login JWT (shared with the verified-token cache).
    User(Arc<UserPrincipal>),
    /// A script or service, from an api-key.
    ApiKey(ApiKeyPrincipal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    pub subject: String,
    pub organization_id: Option<String>,
    pub role: Option<String>,
    pub platform_roles: Vec<String>,
    /// When the token stops being accepted: its `exp` plus the leeway.
    pub valid_until: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    pub key_id: String,
    pub organization_id: String,
    pub permissions: Vec<String>,
}
