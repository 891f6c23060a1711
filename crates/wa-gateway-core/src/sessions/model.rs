use std::fmt;
use std::str::FromStr;

use crate::time::UnixMillis;

/// Longest id we accept for sessions, organizations, users and gateways.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} is longer than {MAX_ID_LEN} characters")]
    TooLong(&'static str),
    #[error("{0} may contain only letters, digits and . _ : -")]
    BadCharacter(&'static str),
}

/// Checks an opaque identifier: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn check_id(what: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty(what));
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(what));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        return Err(IdError::BadCharacter(what));
    }
    Ok(())
}

/// The opaque session identifier (not the phone number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        check_id("session id", raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// [`SessionId::parse`] keeping `raw`'s allocation; a refused `raw`
    /// comes back with the reason.
    pub fn parse_owned(raw: String) -> Result<Self, (String, IdError)> {
        match check_id("session id", &raw) {
            Ok(()) => Ok(Self(raw)),
            Err(e) => Err((raw, e)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    Stopped,
    Starting,
    ScanQrCode,
    Working,
    Failed,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 5] = [Self::Stopped, Self::Starting, Self::ScanQrCode, Self::Working, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::ScanQrCode => "scan_qr_code",
            Self::Working => "working",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            format!("unknown status {s:?} (expected one of stopped, starting, scan_qr_code, working, failed)")
        })
    }
}

/// One attached WhatsApp number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub organization_id: String,
    pub created_by_user_id: Option<String>,
    pub gateway_id: Option<String>,
    pub label: Option<String>,
    pub phone_number: Option<String>,
    pub wa_jid: Option<String>,
    pub wa_lid: Option<String>,
    pub status: SessionStatus,
    pub auto_read: bool,
    pub presence_typing: bool,
    pub is_admin_session: bool,
    pub rate_per_min: Option<i32>,
    pub rate_per_hour: Option<i32>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub last_connected_at: Option<UnixMillis>,
}

/// Filters of the cross-organization listing; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub organization_id: Option<String>,
    pub status: Option<SessionStatus>,
    pub gateway_id: Option<String>,
}

impl SessionFilter {
    /// Identifies the query a cursor belongs to, so a cursor cannot be replayed
    /// against other filters.
    pub fn scope(&self) -> String {
        format!(
            "sessions|org={}|status={}|gateway={}",
            self.organization_id.as_deref().unwrap_or(""),
            self.status.map(SessionStatus::as_str).unwrap_or(""),
            self.gateway_id.as_deref().unwrap_or(""),
        )
    }
}

#[cfg(test)]
impl Session {
    /// A session of `organization` on `gateway`, `status` since `updated_at`.
    pub(crate) fn for_tests(
        id: &str,
        organization: &str,
        gateway: &str,
        status: SessionStatus,
        updated_at: i64,
    ) -> Self {
        Self {
            id: SessionId::parse(id).expect("a valid test id"),
            organization_id: organization.into(),
            created_by_user_id: None,
            gateway_id: Some(gateway.into()),
            label: None,
            phone_number: None,
            wa_jid: None,
            wa_lid: None,
            status,
            auto_read: false,
            presence_typing: false,
            is_admin_session: false,
            rate_per_min: None,
            rate_per_hour: None,
            created_at: 1,
            updated_at,
            last_connected_at: None,
        }
    }
}
