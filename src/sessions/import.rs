//! `sessions import`: JSON Lines in the documented Session shape. Parsing is
//! all-or-nothing: the first bad line is reported by number and nothing is
//! returned, so nothing is written.

use serde::Deserialize;

use super::model::{Session, SessionId, SessionStatus, check_id};
use crate::time::{UnixMillis, now_millis};

/// Longest line accepted; a session record is well under 4 KiB.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest free-text field (label, phone number, jids).
const MAX_TEXT_LEN: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
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
    fn into_session(self, now: UnixMillis) -> Result<Session, String> {
        let id = SessionId::parse(&self.id).map_err(|e| e.to_string())?;
        check_id("organizationId", &self.organization_id).map_err(|e| e.to_string())?;
        let status = self.status.parse::<SessionStatus>()?;
        let created_at = time("createdAt", self.created_at)?.unwrap_or(now);
        let updated_at = time("updatedAt", self.updated_at)?.unwrap_or(created_at);
        Ok(Session {
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
            updated_at,
            last_connected_at: time("lastConnectedAt", self.last_connected_at)?,
        })
    }
}

/// Parses every non-blank line; the first bad one fails the whole input.
/// A session id repeated within one input is an error too: which of the two
/// records should win would be a guess.
pub fn parse_json_lines(input: &str) -> Result<Vec<Session>, ImportError> {
    let now = now_millis();
    let mut seen = std::collections::HashSet::new();
    let mut sessions = Vec::new();
    for (index, raw) in input.lines().enumerate() {
        let line = index + 1;
        let fail = |message: String| ImportError { line, message };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        if raw.len() > MAX_LINE_BYTES {
            return Err(fail(format!("line is longer than {MAX_LINE_BYTES} bytes")));
        }
        let record: SessionRecord = serde_json::from_str(raw).map_err(|e| fail(e.to_string()))?;
        let session = record.into_session(now).map_err(fail)?;
        if !seen.insert(session.id.clone()) {
            return Err(fail(format!("session id {} appears twice in this input", session.id)));
        }
        sessions.push(session);
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let line = r#"{"id":"01J9ZX8K2QHV0M3T6R7P4N5W8C","organizationId":"org_01J9ABC","createdByUserId":"user_01J9DEF","gatewayId":"gw-sg-1","label":"Support line","phoneNumber":"6281234567890","waJid":"6281234567890@s.whatsapp.net","waLid":"205227043110953@lid","status":"working","autoRead":false,"presenceTyping":true,"isAdminSession":false,"ratePerMin":20,"ratePerHour":600,"createdAt":1719662400000,"updatedAt":1719662400000,"lastConnectedAt":1719662400000}"#;
        let sessions = parse_json_lines(line).unwrap();
        assert_eq!(sessions[0].status, SessionStatus::Working);
        assert_eq!(sessions[0].rate_per_hour, Some(600));
    }

    #[test]
    fn bad_lines_are_named() {
        let ok = r#"{"id":"a","organizationId":"o","status":"working"}"#;
        let cases = [
            (r#"{"id":"b","organizationId":"o","status":"sleeping"}"#, "unknown status"),
            (r#"{"id":"","organizationId":"o","status":"working"}"#, "must not be empty"),
            (r#"{"id":"a b","organizationId":"o","status":"working"}"#, "may contain only"),
            (r#"{"organizationId":"o","status":"working"}"#, "missing field `id`"),
            (r#"{"id":"c","organizationId":"o","status":"working","colour":1}"#, "unknown field"),
            (r#"{"id":"d","organizationId":"o","status":"working","createdAt":-1}"#, "createdAt"),
            (r#"not json"#, "expected"),
            (ok, "appears twice"),
        ];
        for (bad, expected) in cases {
            let err = parse_json_lines(&format!("{ok}\n\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 3, "{bad}");
            assert!(err.message.contains(expected), "{bad}: {}", err.message);
        }
    }
}
