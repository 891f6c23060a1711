//! Session history at the gRPC edge: requests to the domain's queries, its
//! events to proto messages.

use prost_types::Timestamp;

use super::convert::{ToProto, optional_id, session_id, session_status_from_pb, session_status_to_pb, timestamp};
use super::status::InvalidField;
use crate::proto::admin as pb;
use wa_gateway_core::events::model::{EventFilter, EventKind, EventSource};
use wa_gateway_core::events::{Cursored, ListEvents};

fn millis(field: &'static str, t: Timestamp) -> Result<i64, InvalidField> {
    if !(0..1_000_000_000).contains(&t.nanos) || t.seconds < 0 || t.seconds > 253_402_300_799 {
        return Err(InvalidField { field, message: "not a time between 1970 and 9999".into() });
    }
    Ok(t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

/// A `ListSessionEvents` request as the domain's query, its fields checked.
pub fn list_events_query(req: pb::ListSessionEventsRequest) -> Result<ListEvents, InvalidField> {
    let session_id = match req.session_id.as_str() {
        "" => None,
        raw => Some(session_id(raw)?),
    };
    Ok(ListEvents {
        limit: req.limit.map(i64::from),
        cursor: Some(req.cursor).filter(|c| !c.is_empty()),
        filter: EventFilter {
            session_id,
            organization_id: optional_id("organization_id", req.organization_id)?,
            gateway_id: optional_id("gateway_id", req.gateway_id)?,
            status: session_status_from_pb(req.status)?,
            since: req.since.map(|t| millis("since", t)).transpose()?,
        },
    })
}

fn kind(kind: EventKind) -> pb::SessionEventKind {
    match kind {
        EventKind::Appeared => pb::SessionEventKind::Appeared,
        EventKind::StatusChanged => pb::SessionEventKind::StatusChanged,
        EventKind::Moved => pb::SessionEventKind::Moved,
        EventKind::Removed => pb::SessionEventKind::Removed,
    }
}

fn source(source: EventSource) -> pb::SessionEventSource {
    match source {
        EventSource::Feed => pb::SessionEventSource::Feed,
        EventSource::Import => pb::SessionEventSource::Import,
    }
}

impl ToProto for Cursored {
    type Proto = pb::SessionEvent;
    fn to_proto(self) -> pb::SessionEvent {
        let Cursored { cursor, event: e } = self;
        let status = |s: Option<_>| s.map_or(pb::SessionStatus::Unspecified, session_status_to_pb).into();
        pb::SessionEvent {
            cursor,
            session_id: e.session_id,
            organization_id: e.organization_id,
            gateway_id: e.gateway_id,
            kind: kind(e.kind).into(),
            from_status: status(e.from_status),
            to_status: status(e.to_status),
            from_gateway_id: e.from_gateway_id,
            changed_at: Some(timestamp(e.changed_at)),
            recorded_at: Some(timestamp(e.recorded_at)),
            source: source(e.source).into(),
        }
    }
}
