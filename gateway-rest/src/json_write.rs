//! The JSON of the shapes every poll and listing returns, written by hand:
//! the same bytes `serde_json` writes for their `Serialize` derive (a test
//! holds the two equal), without its per-field and per-byte overhead: keys
//! are constants written whole, and strings are escaped a word at a time.

use wa_json::push_quoted;

use crate::dto::{BackfillJob, PageOf, Session};

/// A value that writes its own JSON into `out`.
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>);
}

fn integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn or_null<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        Some(value) => write(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_string(out: &mut Vec<u8>, value: Option<&str>) {
    or_null(out, value, |out, value| push_quoted(out, value));
}

impl WriteJson for Session {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        push_quoted(out, &self.id);
        out.extend_from_slice(b",\"organizationId\":");
        push_quoted(out, &self.organization_id);
        out.extend_from_slice(b",\"createdByUserId\":");
        opt_string(out, self.created_by_user_id.as_deref());
        out.extend_from_slice(b",\"gatewayId\":");
        opt_string(out, self.gateway_id.as_deref());
        out.extend_from_slice(b",\"label\":");
        opt_string(out, self.label.as_deref());
        out.extend_from_slice(b",\"phoneNumber\":");
        opt_string(out, self.phone_number.as_deref());
        out.extend_from_slice(b",\"waJid\":");
        opt_string(out, self.wa_jid.as_deref());
        out.extend_from_slice(b",\"waLid\":");
        opt_string(out, self.wa_lid.as_deref());
        out.extend_from_slice(b",\"status\":");
        opt_string(out, self.status);
        out.extend_from_slice(b",\"autoRead\":");
        boolean(out, self.auto_read);
        out.extend_from_slice(b",\"presenceTyping\":");
        boolean(out, self.presence_typing);
        out.extend_from_slice(b",\"isAdminSession\":");
        boolean(out, self.is_admin_session);
        out.extend_from_slice(b",\"ratePerMin\":");
        or_null(out, self.rate_per_min, integer);
        out.extend_from_slice(b",\"ratePerHour\":");
        or_null(out, self.rate_per_hour, integer);
        out.extend_from_slice(b",\"createdAt\":");
        or_null(out, self.created_at, integer);
        out.extend_from_slice(b",\"updatedAt\":");
        or_null(out, self.updated_at, integer);
        out.extend_from_slice(b",\"lastConnectedAt\":");
        or_null(out, self.last_connected_at, integer);
        out.push(b'}');
    }
}

impl WriteJson for BackfillJob {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        push_quoted(out, &self.id);
        out.extend_from_slice(b",\"organizationId\":");
        push_quoted(out, &self.organization_id);
        out.extend_from_slice(b",\"sessionId\":");
        push_quoted(out, &self.session_id);
        out.extend_from_slice(b",\"status\":");
        opt_string(out, self.status);
        out.extend_from_slice(b",\"startedAt\":");
        or_null(out, self.started_at, integer);
        out.extend_from_slice(b",\"finishedAt\":");
        or_null(out, self.finished_at, integer);
        out.extend_from_slice(b",\"contacts\":");
        integer(out, self.contacts);
        out.extend_from_slice(b",\"groups\":");
        integer(out, self.groups);
        out.extend_from_slice(b",\"groupMembers\":");
        integer(out, self.group_members);
        out.extend_from_slice(b",\"error\":");
        opt_string(out, self.error.as_deref());
        out.push(b'}');
    }
}

impl<T: WriteJson> WriteJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: WriteJson> WriteJson for PageOf<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"data\":[");
        for (i, item) in self.data.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(out);
        }
        out.extend_from_slice(b"],\"nextCursor\":");
        opt_string(out, self.next_cursor.as_deref());
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &impl WriteJson) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out);
        String::from_utf8(out).expect("valid UTF-8")
    }

    fn assert_same_as_serde<T: WriteJson + serde::Serialize>(value: &T) {
        assert_eq!(written(value), serde_json::to_string(value).unwrap());
    }

    /// Every ASCII byte (the control characters, `"`, `\` and DEL among
    /// them), then characters of two, three and four UTF-8 bytes.
    fn nasty() -> String {
        let mut text: String = (0u8..=0x7f).map(char::from).collect();
        text.push_str("é€🦀\u{2028}\u{feff}");
        text
    }

    fn session(text: &str, optional: bool) -> Session {
        let some = |s: &str| optional.then(|| s.to_owned());
        Session {
            id: text.to_owned(),
            organization_id: format!("org {text}"),
            created_by_user_id: some(text),
            gateway_id: some("gw-1"),
            label: some(text),
            phone_number: some("628990000000"),
            wa_jid: some("628990000000@s.whatsapp.net"),
            wa_lid: some(text),
            status: optional.then_some("scan_qr_code"),
            auto_read: optional,
            presence_typing: !optional,
            is_admin_session: optional,
            rate_per_min: optional.then_some(i32::MIN),
            rate_per_hour: optional.then_some(i32::MAX),
            created_at: optional.then_some(i64::MIN),
            updated_at: optional.then_some(0),
            last_connected_at: optional.then_some(i64::MAX),
        }
    }

    fn job(text: &str, optional: bool) -> BackfillJob {
        BackfillJob {
            id: "01JD8X3K4V0000000000000000".into(),
            organization_id: text.to_owned(),
            session_id: format!("{text}-s"),
            status: optional.then_some("failed"),
            started_at: optional.then_some(1_719_662_400_000),
            finished_at: optional.then_some(-1),
            contacts: i64::MAX,
            groups: 0,
            group_members: i64::MIN,
            error: optional.then(|| text.to_owned()),
        }
    }

    #[test]
    fn sessions_are_written_exactly_as_serde_writes_them() {
        let text = nasty();
        for value in [session(&text, true), session(&text, false), session("", true), session("plain", false)] {
            assert_same_as_serde(&value);
        }
    }

    #[test]
    fn jobs_are_written_exactly_as_serde_writes_them() {
        let text = nasty();
        for value in [job(&text, true), job(&text, false), job("", true)] {
            assert_same_as_serde(&value);
            assert_same_as_serde(&Some(value));
        }
        assert_same_as_serde(&None::<BackfillJob>);
    }

    #[test]
    fn pages_are_written_exactly_as_serde_writes_them() {
        let text = nasty();
        for count in [0, 1, 3] {
            for next_cursor in [None, Some(text.clone()), Some("c1.abc".to_owned())] {
                let data = (0..count).map(|i| session(&format!("s{i}{text}"), i % 2 == 0)).collect();
                assert_same_as_serde(&PageOf { data, next_cursor });
            }
        }
    }
}
