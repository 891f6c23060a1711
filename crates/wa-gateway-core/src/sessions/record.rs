//! One line of a `sessions import`: the documented Session JSON, checked
//! field by field. Unknown fields are errors, so a typo is reported instead of
//! silently dropped.

use serde::Deserialize;

use super::model::{Session, SessionId, SessionStatus, check_id};
use crate::time::UnixMillis;

/// Longest free-text field (label, phone number, jids).
/// Longest label, phone number or jid a session record may carry.
pub const MAX_TEXT_LEN: usize = 512;

/// A parsed line, and which optional times it gave (the rules of an upsert
/// depend on them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub session: Session,
    pub created_at_given: bool,
    pub updated_at_given: bool,
}

/// Parses one line (without its newline). `now` fills an absent `createdAt`.
pub fn parse_line(raw: &[u8], now: UnixMillis) -> Result<ParsedLine, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8 (at byte {})", e.valid_up_to()))?;
    let record: SessionRecord = serde_json::from_str(text.trim()).map_err(|e| e.to_string())?;
    record.into_line(now)
}

/// The documented Session JSON. Unknown fields are rejected so that a typo is
/// reported instead of silently dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionRecord {
    id: String,
    organization_id: String,
    #[serde(default)]
    created_by_user_id: Option<String>,
    #[serde(default)]
    gateway_id: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    wa_jid: Option<String>,
    #[serde(default)]
    wa_lid: Option<String>,
    status: String,
    #[serde(default)]
    auto_read: Option<bool>,
    #[serde(default)]
    presence_typing: Option<bool>,
    #[serde(default)]
    is_admin_session: Option<bool>,
    #[serde(default)]
    rate_per_min: Option<i32>,
    #[serde(default)]
    rate_per_hour: Option<i32>,
    #[serde(default)]
    created_at: Option<UnixMillis>,
    #[serde(default)]
    updated_at: Option<UnixMillis>,
    #[serde(default)]
    last_connected_at: Option<UnixMillis>,
}

fn text(field: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.len() > MAX_TEXT_LEN => Err(format!("{field} is longer than {MAX_TEXT_LEN} bytes")),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn optional_id(what: &'static str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) => check_id(what, &v).map(|()| Some(v)).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

fn time(field: &str, value: Option<UnixMillis>) -> Result<Option<UnixMillis>, String> {
    match value {
        Some(ms) if ms < 0 => Err(format!("{field} must be milliseconds since the Unix epoch, got {ms}")),
        other => Ok(other),
    }
}

fn rate(field: &str, value: Option<i32>) -> Result<Option<i32>, String> {
    match value {
        Some(n) if n < 0 => Err(format!("{field} must not be negative, got {n}")),
        other => Ok(other),
    }
}

impl SessionRecord {
    fn into_line(self, now: UnixMillis) -> Result<ParsedLine, String> {
        let id = SessionId::parse(&self.id).map_err(|e| e.to_string())?;
        check_id("organizationId", &self.organization_id).map_err(|e| e.to_string())?;
        let status = self.status.parse::<SessionStatus>()?;
        let created_given = time("createdAt", self.created_at)?;
        let updated_given = time("updatedAt", self.updated_at)?;
        let created_at = created_given.unwrap_or(now);
        let session = Session {
            id,
            organization_id: self.organization_id,
            created_by_user_id: optional_id("createdByUserId", self.created_by_user_id)?,
            gateway_id: optional_id("gatewayId", self.gateway_id)?,
            label: text("label", self.label)?,
            phone_number: text("phoneNumber", self.phone_number)?,
            wa_jid: text("waJid", self.wa_jid)?,
            wa_lid: text("waLid", self.wa_lid)?,
            status,
            auto_read: self.auto_read.unwrap_or(false),
            presence_typing: self.presence_typing.unwrap_or(false),
            is_admin_session: self.is_admin_session.unwrap_or(false),
            rate_per_min: rate("ratePerMin", self.rate_per_min)?,
            rate_per_hour: rate("ratePerHour", self.rate_per_hour)?,
            created_at,
            updated_at: updated_given.unwrap_or(created_at),
            last_connected_at: time("lastConnectedAt", self.last_connected_at)?,
        };
        Ok(ParsedLine { session, created_at_given: created_given.is_some(), updated_at_given: updated_given.is_some() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let line = br#"{"id":"01J9ZX8K2QHV0M3T6R7P4N5W8C","organizationId":"org_01J9ABC","createdByUserId":"user_01J9DEF","gatewayId":"gw-sg-1","label":"Support line","phoneNumber":"6281234567890","waJid":"6281234567890@s.whatsapp.net","waLid":"205227043110953@lid","status":"working","autoRead":false,"presenceTyping":true,"isAdminSession":false,"ratePerMin":20,"ratePerHour":600,"createdAt":1719662400000,"updatedAt":1719662400000,"lastConnectedAt":1719662400000}"#;
        let parsed = parse_line(line, 5).unwrap();
        assert_eq!(parsed.session.status, SessionStatus::Working);
        assert_eq!(parsed.session.rate_per_hour, Some(600));
        assert!(parsed.created_at_given && parsed.updated_at_given);
        let minimal = parse_line(br#"{"id":"a","organizationId":"o","status":"stopped"}"#, 5).unwrap();
        assert_eq!((minimal.session.created_at, minimal.session.updated_at), (5, 5));
        assert!(!minimal.created_at_given && !minimal.updated_at_given);
    }

    #[test]
    fn bad_lines_say_why() {
        let cases: [(&[u8], &str); 8] = [
            (br#"{"id":"b","organizationId":"o","status":"sleeping"}"#, "unknown status"),
            (br#"{"id":"","organizationId":"o","status":"working"}"#, "must not be empty"),
            (br#"{"id":"a b","organizationId":"o","status":"working"}"#, "may contain only"),
            (br#"{"organizationId":"o","status":"working"}"#, "missing field `id`"),
            (br#"{"id":"c","organizationId":"o","status":"working","colour":1}"#, "unknown field"),
            (br#"{"id":"d","organizationId":"o","status":"working","createdAt":-1}"#, "createdAt"),
            (b"not json", "expected"),
            (b"{\"id\":\"\xff\"}", "not valid UTF-8 (at byte 7)"),
        ];
        for (bad, expected) in cases {
            let err = parse_line(bad, 0).unwrap_err();
            assert!(err.contains(expected), "{}: {err}", String::from_utf8_lossy(bad));
        }
    }
}
