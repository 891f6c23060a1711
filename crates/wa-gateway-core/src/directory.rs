//! A session's directory: the cached contacts and joined groups (with their
//! participants) that a backfill pulls from a session host, as validated
//! domain values. `hosts` produces them, `backfill` stores them, `grpc`
//! shows them; none of those owns them.
//!
//! The limits here bound what one host message can make the server hold, and
//! the jid rules keep junk out of the store. `host-check` applies the same
//! rules, so a host that passes it is a host the runner accepts.

use crate::time::UnixMillis;

/// Longest jid accepted (real ones are under 64 bytes).
pub const MAX_JID_LEN: usize = 128;
/// Longest free-text field accepted (WhatsApp caps a group topic at 2,048
/// characters, which is at most 8 KiB of UTF-8).
pub const MAX_TEXT_LEN: usize = 8 * 1024;
/// Most participants accepted in one group: WhatsApp groups hold up to
/// 1,024 members and community announcement groups up to 5,000.
pub const MAX_PARTICIPANTS: usize = 10_000;
/// Most contacts or groups accepted in one host message.
pub const MAX_ITEMS_PER_MESSAGE: usize = 5_000;

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

/// What describes a group, apart from its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub jid: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub owner_jid: Option<String>,
    pub created_at: Option<UnixMillis>,
    pub is_announce: bool,
    pub is_locked: bool,
    pub addressing_mode: Option<String>,
}

/// A joined group as a host sends it: with every participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub info: GroupInfo,
    pub participants: Vec<Participant>,
}

/// A stored group as a listing shows it: members are paged separately, so a
/// page of groups stays small whatever the group sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub info: GroupInfo,
    pub participant_count: u64,
}

/// Which servers a jid of each kind may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidKind {
    /// A person: a phone-number jid or a LID.
    User,
    /// A LID only (`…@lid`).
    Lid,
    /// A group (`…@g.us`).
    Group,
}

impl JidKind {
    fn servers(self) -> &'static [&'static str] {
        match self {
            Self::User => &["s.whatsapp.net", "lid", "c.us"],
            Self::Lid => &["lid"],
            Self::Group => &["g.us"],
        }
    }
}

/// Checks a jid's shape: `user@server`, the user part of letters, digits and
/// `. _ : -`, the server one that fits `kind`.
pub fn check_jid(kind: JidKind, jid: &str) -> Result<(), String> {
    if jid.is_empty() {
        return Err("must not be empty".into());
    }
    if jid.len() > MAX_JID_LEN {
        return Err(format!("longer than {MAX_JID_LEN} bytes"));
    }
    let Some((user, server)) = jid.split_once('@') else {
        return Err(format!("{:?} is not a jid (user@server)", shown(jid)));
    };
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        return Err(format!("{:?} has an invalid user part", shown(jid)));
    }
    if !kind.servers().contains(&server) {
        return Err(format!("{:?} is not on {}", shown(jid), kind.servers().join(" or ")));
    }
    Ok(())
}

/// At most 64 characters of host-provided text, for error messages.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

/// An optional text field from a host: empty means absent; bounded.
pub fn optional_text(value: String) -> Result<Option<String>, String> {
    if value.len() > MAX_TEXT_LEN {
        return Err(format!("longer than {MAX_TEXT_LEN} bytes"));
    }
    Ok(Some(value).filter(|v| !v.is_empty()))
}

/// An optional jid from a host: empty means absent.
pub fn optional_jid(kind: JidKind, value: String) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    check_jid(kind, &value)?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_shapes() {
        for ok in ["6281234567890@s.whatsapp.net", "6281:12@s.whatsapp.net", "205227043110953@lid"] {
            assert_eq!(check_jid(JidKind::User, ok), Ok(()), "{ok}");
        }
        assert_eq!(check_jid(JidKind::Group, "120363025246125486@g.us"), Ok(()));
        assert_eq!(check_jid(JidKind::Group, "6281-1600000000@g.us"), Ok(()));
        for (kind, bad) in [
            (JidKind::User, ""),
            (JidKind::User, "6281234567890"),
            (JidKind::User, "@s.whatsapp.net"),
            (JidKind::User, "62 81@s.whatsapp.net"),
            (JidKind::User, "1203@g.us"),
            (JidKind::Group, "6281@s.whatsapp.net"),
            (JidKind::Lid, "6281@s.whatsapp.net"),
        ] {
            assert!(check_jid(kind, bad).is_err(), "{kind:?} {bad:?}");
        }
        assert!(check_jid(JidKind::User, &format!("{}@lid", "1".repeat(200))).unwrap_err().contains("longer"));
    }
}
