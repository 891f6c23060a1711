//! The joined-groups stream, decoded a few groups at a time.
//!
//! A host message may hold 5,000 groups and reach 16 MiB; decoded at once,
//! its participants take about three times that (every jid, lid, phone and
//! name its own allocation). So a message stays encoded: it is split into
//! one encoded slice per group (no copy), and groups are decoded, validated
//! and handed to the caller in chunks of at most [`MEMBERS_PER_CHUNK`]
//! members. Memory per stream is the encoded message plus one chunk.

use std::collections::VecDeque;
use std::time::Duration;

use prost::Message;
use prost::bytes::Bytes;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use super::convert::{self, Invalid};
use super::error::{HostError, MAX_HOST_MESSAGE_BYTES, from_status, invalid_data};
use crate::directory::{Group, MAX_ITEMS_PER_MESSAGE};
use crate::proto::host as pb;

/// Members per chunk handed to the caller (a chunk always holds at least
/// one group, whatever its size).
pub const MEMBERS_PER_CHUNK: usize = 5_000;

const PATH: &str = "/wa.gateway.host.v1.SessionHostService/StreamJoinedGroups";

/// `StreamJoinedGroupsResponse` with each group left encoded: an embedded
/// message and a `bytes` field are the same on the wire, and prost slices
/// `Bytes` out of the received buffer without copying.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct EncodedGroups {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub groups: Vec<Bytes>,
}

/// Opens the stream: the generated client's call, with the response type
/// swapped for [`EncodedGroups`].
pub(super) async fn open(
    channel: Channel,
    request: tonic::Request<pb::StreamJoinedGroupsRequest>,
) -> Result<tonic::Response<tonic::Streaming<EncodedGroups>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_HOST_MESSAGE_BYTES);
    // As the generated client answers a channel that is not ready.
    grpc.ready().await.map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
    let codec = tonic_prost::ProstCodec::<pb::StreamJoinedGroupsRequest, EncodedGroups>::default();
    grpc.server_streaming(request, PathAndQuery::from_static(PATH), codec).await
}

/// Groups from a host stream, validated, in chunks, with a stall timeout.
pub struct GroupBatches {
    stream: tonic::Streaming<EncodedGroups>,
    stall: Duration,
    /// Groups of the current message not handed out yet.
    pending: VecDeque<Bytes>,
    /// The pending group that did not fit the last chunk, decoded.
    carried: Option<Group>,
    /// Groups received on this stream before the next pending one, to name
    /// a bad one by position.
    position: usize,
}

impl GroupBatches {
    pub(super) fn new(stream: tonic::Streaming<EncodedGroups>, stall: Duration) -> Self {
        Self { stream, stall, pending: VecDeque::new(), carried: None, position: 0 }
    }

    /// The next chunk of groups; `None` when the host ended the stream
    /// cleanly. A message without groups is an empty chunk.
    pub async fn next(&mut self) -> Result<Option<Vec<Group>>, HostError> {
        if self.pending.is_empty() {
            let message = match tokio::time::timeout(self.stall, self.stream.message()).await {
                Err(_) => return Err(HostError::Stalled(self.stall)),
                Ok(Err(status)) => return Err(from_status(status)),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(message))) => message,
            };
            if message.groups.len() > MAX_ITEMS_PER_MESSAGE {
                let problem =
                    format!("{} items exceed the limit of {MAX_ITEMS_PER_MESSAGE} per message", message.groups.len());
                return Err(invalid_data(
                    "groups",
                    self.position,
                    Invalid { index: None, field: "message".into(), problem },
                ));
            }
            self.pending = message.groups.into();
            if self.pending.is_empty() {
                return Ok(Some(Vec::new()));
            }
        }
        let mut chunk = Vec::new();
        let mut members = 0;
        while let Some(encoded) = self.pending.front() {
            let group = match self.carried.take() {
                Some(group) => group,
                None => self.decode(encoded)?,
            };
            if !chunk.is_empty() && members + group.participants.len() > MEMBERS_PER_CHUNK {
                self.carried = Some(group);
                break;
            }
            members += group.participants.len();
            chunk.push(group);
            self.pending.pop_front();
            self.position += 1;
        }
        Ok(Some(chunk))
    }

    fn decode(&self, encoded: &Bytes) -> Result<Group, HostError> {
        let invalid = |field: &str, problem: String| {
            invalid_data("groups", self.position, Invalid { index: Some(0), field: field.into(), problem })
        };
        let group = pb::Group::decode(encoded.clone()).map_err(|e| invalid("message", e.to_string()))?;
        convert::group(group).map_err(|(field, problem)| invalid(&field, problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(jid: &str, members: usize) -> pb::Group {
        pb::Group {
            jid: jid.into(),
            name: "name".into(),
            participants: (0..members)
                .map(|m| pb::Participant { jid: format!("{m}@s.whatsapp.net"), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    /// The mirror reads exactly the groups the real message holds, whatever
    /// else the message carries.
    #[test]
    fn encoded_groups_split_the_real_message_into_its_groups() {
        let real = pb::StreamJoinedGroupsResponse { groups: vec![group("1@g.us", 3), group("2@g.us", 0)] };
        let mut bytes = real.encode_to_vec();
        // A field this version does not know, as a newer host might send.
        bytes.extend_from_slice(&[0x10, 0x01]);
        let split = EncodedGroups::decode(bytes.as_slice()).unwrap();
        let decoded: Vec<pb::Group> = split.groups.into_iter().map(|g| pb::Group::decode(g).unwrap()).collect();
        assert_eq!(decoded, real.groups);
    }
}

#[async_trait::async_trait]
impl wa_gateway_core::hosts::HostBatches<Group> for GroupBatches {
    async fn next(&mut self) -> Result<Option<Vec<Group>>, HostError> {
        GroupBatches::next(self).await
    }
}
