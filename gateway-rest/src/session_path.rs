//! Session resource paths, parsed from the raw path by hand: a literal `:`
//! separates a custom method (`{session}:backfill`), while a
//! percent-encoded `%3A` belongs to the id.

use crate::error::ApiError;

pub(crate) const SESSIONS: &str = "/api/v1/admin/sessions";

/// Decodes `%XX` escapes; anything else passes through. A `%` not followed
/// by two hex digits, or bytes that are not UTF-8, are refused.
pub(crate) fn percent_decode(raw: &str, field: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_argument(field, format!("{field} is not valid percent-encoded UTF-8"));
    let bytes = raw.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'%')
        .all(|(at, _)| bytes.get(at + 1..at + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !well_formed {
        return Err(bad());
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| bad())?;
    Ok(decoded.into_owned())
}

pub(crate) enum Resource<'a> {
    Session,
    StartBackfill,
    GetBackfill,
    WatchBackfill,
    CancelBackfill,
    Contacts,
    Events,
    Groups,
    Participants { raw_group: &'a str },
}

/// The metric label of a path the router did not match: every session
/// resource's until its handler names the documented route
/// ([`RouteTemplate`]), `other` for anything else.
pub fn unmatched_route(path: &str) -> &'static str {
    match session_tail(path) {
        Some(_) => SESSION_RESOURCES,
        None => "other",
    }
}

/// The label of session resource paths the handler did not resolve.
const SESSION_RESOURCES: &str = "/api/v1/admin/sessions/{*rest}";

/// What follows `/api/v1/admin/sessions/`, if anything does.
pub(crate) fn session_tail(path: &str) -> Option<&str> {
    path.strip_prefix(SESSIONS)?.strip_prefix('/').filter(|tail| !tail.is_empty())
}

/// The route a session resource answered, as documented (not the router's
/// catch-all): a response extension, for metric labels and span names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTemplate(pub &'static str);

impl Resource<'_> {
    pub(crate) fn template(&self) -> RouteTemplate {
        RouteTemplate(match self {
            Self::Session => "/api/v1/admin/sessions/{session}",
            Self::StartBackfill => "/api/v1/admin/sessions/{session}:backfill",
            Self::GetBackfill => "/api/v1/admin/sessions/{session}/backfill",
            Self::WatchBackfill => "/api/v1/admin/sessions/{session}/backfill:watch",
            Self::CancelBackfill => "/api/v1/admin/sessions/{session}/backfill:cancel",
            Self::Contacts => "/api/v1/admin/sessions/{session}/contacts",
            Self::Events => "/api/v1/admin/sessions/{session}/events",
            Self::Groups => "/api/v1/admin/sessions/{session}/groups",
            Self::Participants { .. } => "/api/v1/admin/sessions/{session}/groups/{groupJid}/participants",
        })
    }

    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::StartBackfill | Self::CancelBackfill => "POST",
            _ => "GET",
        }
    }
}

/// `{session}:verb` or `{session}/sub[/…]`, from the raw path after
/// `/sessions/`. A literal `:` in the first segment is a custom method.
pub(crate) fn parse(tail: &str) -> Result<(&str, Resource<'_>), ApiError> {
    let unknown_verb = |verb: &str| ApiError::not_found(format!("unknown custom method :{verb}"));
    let no_path = || ApiError::not_found("no such path");
    let (id, sub) = match tail.split_once('/') {
        Some((id, sub)) => (id, Some(sub)),
        None => (tail, None),
    };
    if let Some((id, verb)) = id.split_once(':') {
        return match (verb, sub) {
            ("backfill", None) => Ok((id, Resource::StartBackfill)),
            (verb, None) => Err(unknown_verb(verb)),
            _ => Err(no_path()),
        };
    }
    let Some(sub) = sub else { return Ok((id, Resource::Session)) };
    let group = sub.strip_prefix("groups/").and_then(|g| g.strip_suffix("/participants"));
    let resource = match sub {
        "backfill" => Resource::GetBackfill,
        "backfill:watch" => Resource::WatchBackfill,
        "backfill:cancel" => Resource::CancelBackfill,
        "contacts" => Resource::Contacts,
        "events" => Resource::Events,
        "groups" => Resource::Groups,
        _ => match group {
            Some(group) if !group.is_empty() && !group.contains('/') => Resource::Participants { raw_group: group },
            _ if sub.contains('/') => return Err(no_path()),
            _ => match sub.split_once(':') {
                Some((_, verb)) => return Err(unknown_verb(verb)),
                None => return Err(no_path()),
            },
        },
    };
    Ok((id, resource))
}

/// The session resource parser, percent-decoding and query parsing, fed a
/// raw path (everything after `/api/v1/admin/sessions/`) and query, for the fuzzer.
#[cfg(fuzzing)]
pub fn fuzz_request(tail: &str, query: &str) {
    use crate::query::{cursor, limit, query_of};
    if let Ok((id, resource)) = parse(tail) {
        let _ = percent_decode(id, "session");
        if let Resource::Participants { raw_group } = resource {
            let _ = percent_decode(raw_group, "groupJid");
        }
    }
    if let Ok(uri) = format!("/x?{query}").parse::<http::Uri>() {
        if let Ok(query) = query_of(&uri) {
            let _ = (limit(&query), cursor(&query));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_malformed_ones_are_refused() {
        let decoded = |raw| percent_decode(raw, "session").map_err(|e| e.message);
        assert_eq!(decoded("s-1").unwrap(), "s-1");
        assert_eq!(decoded("a%3Ab%2Fc%25").unwrap(), "a:b/c%");
        assert_eq!(decoded("%F0%9F%A6%80").unwrap(), "🦀");
        for raw in ["%ZZ", "a%4", "%", "a%+1", "%-1", "%FF", "%C3"] {
            assert_eq!(decoded(raw).unwrap_err(), "session is not valid percent-encoded UTF-8", "{raw}");
        }
    }

    fn parsed(tail: &str) -> Result<(String, String), String> {
        parse(tail).map(|(id, resource)| (id.to_owned(), resource.template().0.to_owned())).map_err(|e| e.message)
    }

    #[test]
    fn session_paths_parse_to_their_resource_or_a_precise_404() {
        let template = |r: &str| format!("/api/v1/admin/sessions/{{session}}{r}");
        for (tail, id, resource) in [
            ("s1", "s1", ""),
            ("s%3A1", "s%3A1", ""),
            ("s1:backfill", "s1", ":backfill"),
            ("s1/backfill", "s1", "/backfill"),
            ("s1/backfill:watch", "s1", "/backfill:watch"),
            ("s1/backfill:cancel", "s1", "/backfill:cancel"),
            ("s1/contacts", "s1", "/contacts"),
            ("s1/groups", "s1", "/groups"),
            ("s%3A1/groups/g%40x/participants", "s%3A1", "/groups/{groupJid}/participants"),
            ("s1/groups/participants/participants", "s1", "/groups/{groupJid}/participants"),
        ] {
            assert_eq!(parsed(tail), Ok((id.to_owned(), template(resource))), "{tail}");
        }
        for (tail, message) in [
            ("s1:nope", "unknown custom method :nope"),
            ("s1/backfill:nope", "unknown custom method :nope"),
            ("s1/", "no such path"),
            ("s1:backfill/x", "no such path"),
            ("s1/backfill/x", "no such path"),
            ("s1/groups//participants", "no such path"),
            ("s1/groups/participants", "no such path"),
            ("s1/groups/a/b/participants", "no such path"),
            ("s1/groups/g/participants/x", "no such path"),
            ("s1/nope", "no such path"),
        ] {
            assert_eq!(parsed(tail), Err(message.to_owned()), "{tail}");
        }
    }

    #[test]
    fn only_session_resources_share_the_session_label() {
        assert_eq!(unmatched_route("/api/v1/admin/sessions/s1:nope"), SESSION_RESOURCES);
        assert_eq!(unmatched_route("/api/v1/admin/sessions/"), "other");
        assert_eq!(unmatched_route("/api/v1/admin/sessionsx/s1"), "other");
        assert_eq!(unmatched_route("/nope"), "other");
    }
}
