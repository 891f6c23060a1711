//! What a backfill pulls: a session's cached contacts and joined groups with
//! their participants, as validated domain values.

use crate::time::UnixMillis;

/// Longest jid accepted from a host.
pub const MAX_JID_LEN: usize = 256;
/// Longest free-text field accepted from a host.
pub const MAX_TEXT_LEN: usize = 4096;
/// Most participants accepted in one group (WhatsApp's own cap is far lower).
pub const MAX_PARTICIPANTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub jid: String,
    pub lid: Option<String>,
    pub phone_number: Option<String>,
    pub push_name: Option<String>,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub business_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub jid: String,
    pub lid: Option<String>,
    pub phone_number: Option<String>,
    pub is_admin: bool,
    pub is_super_admin: bool,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub jid: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub owner_jid: Option<String>,
    pub created_at: Option<UnixMillis>,
    pub is_announce: bool,
    pub is_locked: bool,
    pub addressing_mode: Option<String>,
    pub participants: Vec<Participant>,
}

/// Checks a jid from a host: present and bounded.
pub fn check_jid(what: &str, jid: &str) -> Result<(), String> {
    if jid.is_empty() {
        return Err(format!("{what} without a jid"));
    }
    if jid.len() > MAX_JID_LEN {
        return Err(format!("{what} jid longer than {MAX_JID_LEN} bytes"));
    }
    Ok(())
}

/// An optional text field from a host: empty means absent; bounded.
pub fn optional_text(field: &str, value: String) -> Result<Option<String>, String> {
    if value.len() > MAX_TEXT_LEN {
        return Err(format!("{field} longer than {MAX_TEXT_LEN} bytes"));
    }
    Ok(Some(value).filter(|v| !v.is_empty()))
}
