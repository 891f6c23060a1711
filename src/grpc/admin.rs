//! AdminService: each RPC takes the [`SuperAdmin`] the auth layer left in the
//! request, converts the request to domain values, calls the domain, and
//! converts the answer back. No rules live here.

use std::pin::Pin;

use std::time::SystemTime;

use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{self, ToProto, group_jid, session_id, timestamp};
use super::status::to_status;
use crate::auth::{AuthError, SuperAdmin};
use crate::backfill::Backfills;
use crate::backfill::listing::PageArgs;
use crate::headers::METADATA;
use crate::paging::CursorCodec;
use crate::proto::admin::{self as pb, admin_service_server::AdminService};
use crate::sessions;
use crate::store::Store;
use wa_gateway_core::events;
use wa_gateway_core::feed::{self, Gateways};

/// The AdminService implementation; cheap to clone.
#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    codec: CursorCodec,
    backfills: Backfills,
    gateways: Gateways,
}

impl AdminApi {
    pub fn new(store: Store, codec: CursorCodec, backfills: Backfills, gateways: Gateways) -> Self {
        Self { store, codec, backfills, gateways }
    }
}

/// One admin call: the capability the auth layer attached, and what the
/// audit event needs. A missing capability means the layer was not in front
/// of this service, which is refused rather than trusted.
struct Call {
    admin: SuperAdmin,
    action: &'static str,
    /// Shared with the request's metadata, not copied.
    request_id: Option<tonic::metadata::AsciiMetadataValue>,
}

impl Call {
    /// Takes the capability out of the request (it is needed nowhere else).
    fn begin<T>(request: &mut Request<T>, action: &'static str) -> Result<Self, Status> {
        let admin = request
            .extensions_mut()
            .remove::<SuperAdmin>()
            .ok_or_else(|| Status::permission_denied("admin API requires the platform super_admin role"))?;
        let request_id = request.metadata().get(&METADATA.request_id).cloned();
        Ok(Self { admin, action, request_id })
    }

    /// Emits the call's audit event and passes the result through.
    fn finish<T>(&self, session: &str, result: Result<T, Status>) -> Result<T, Status> {
        let outcome = match &result {
            Ok(_) => std::borrow::Cow::Borrowed("OK"),
            Err(status) => std::borrow::Cow::Owned(format!("{:?}", status.code())),
        };
        tracing::info!(
            target: "audit",
            principal = self.admin.subject(),
            action = self.action,
            session,
            outcome = &*outcome,
            request_id = self.request_id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or(""),
            "admin call"
        );
        result
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn page_args(limit: Option<i32>, cursor: &str) -> PageArgs<'_> {
    PageArgs { limit: limit.map(i64::from), cursor: Some(cursor).filter(|c| !c.is_empty()) }
}

/// Ends `items` with UNAUTHENTICATED (TOKEN_EXPIRED) once the caller's
/// credential expires, if they have not ended by then.
fn until_expiry<T: Send + 'static>(
    items: BoxStream<'static, Result<T, Status>>,
    valid_until: SystemTime,
) -> Streamed<T> {
    let left = valid_until.duration_since(SystemTime::now()).unwrap_or_default();
    let expiry = Box::pin(tokio::time::sleep(left));
    Box::pin(stream::unfold((items, expiry, false), |(mut items, mut expiry, ended)| async move {
        if ended {
            return None;
        }
        tokio::select! {
            item = items.next() => Some((item?, (items, expiry, false))),
            () = &mut expiry => Some((Err(to_status(&AuthError::Expired)), (items, expiry, true))),
        }
    }))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn who_am_i(&self, mut request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let call = Call::begin(&mut request, "WhoAmI")?;
        let valid_until = call.admin.valid_until().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let answer = pb::WhoAmIResponse {
            subject: call.admin.subject().to_owned(),
            valid_until: Some(timestamp(i64::try_from(valid_until.as_millis()).unwrap_or(i64::MAX))),
        };
        call.finish("", Ok(Response::new(answer)))
    }

    async fn list_sessions(
        &self,
        mut request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let call = Call::begin(&mut request, "ListSessions")?;
        let result = async {
            let query = convert::list_sessions_query(request.into_inner())?;
            let listing =
                sessions::list(&call.admin, &self.store, &self.codec, query).await.map_err(|e| to_status(&e))?;
            let not_modified = listing.page.is_none();
            let (data, next_cursor) = match listing.page {
                Some(page) => (page.items.into_iter().map(ToProto::to_proto).collect(), page.next_cursor),
                None => (Vec::new(), None),
            };
            Ok(Response::new(pb::ListSessionsResponse { data, next_cursor, etag: listing.revision, not_modified }))
        }
        .await;
        call.finish("", result)
    }

    async fn list_gateways(
        &self,
        mut request: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        let call = Call::begin(&mut request, "ListGateways")?;
        let result = async {
            let views = feed::list(&call.admin, &self.store, &self.gateways).await.map_err(|e| to_status(&e))?;
            Ok(Response::new(pb::ListGatewaysResponse {
                data: views.into_iter().map(super::gateways::gateway).collect(),
            }))
        }
        .await;
        call.finish("", result)
    }

    async fn accept_gateway_snapshot(
        &self,
        mut request: Request<pb::AcceptGatewaySnapshotRequest>,
    ) -> Result<Response<pb::AcceptGatewaySnapshotResponse>, Status> {
        let call = Call::begin(&mut request, "AcceptGatewaySnapshot")?;
        let gateway = request.into_inner().gateway_id;
        let result = async {
            feed::accept(&call.admin, &self.gateways, &gateway).await.map_err(|e| to_status(&e))?;
            let views = feed::list(&call.admin, &self.store, &self.gateways).await.map_err(|e| to_status(&e))?;
            let view = views.into_iter().find(|v| v.report.id == gateway).map(super::gateways::gateway);
            Ok(Response::new(pb::AcceptGatewaySnapshotResponse { gateway: view }))
        }
        .await;
        call.finish("", result)
    }

    async fn get_session(
        &self,
        mut request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let call = Call::begin(&mut request, "GetSession")?;
        let raw = request.into_inner().session_id;
        let result = async {
            let id = session_id(&raw)?;
            let session = sessions::get(&call.admin, &self.store, &id).await.map_err(|e| to_status(&e))?;
            Ok(Response::new(pb::GetSessionResponse { session: Some(session.to_proto()) }))
        }
        .await;
        call.finish(&raw, result)
    }

    async fn start_backfill(
        &self,
        mut request: Request<pb::StartBackfillRequest>,
    ) -> Result<Response<pb::StartBackfillResponse>, Status> {
        let call = Call::begin(&mut request, "StartBackfill")?;
        let raw = request.into_inner().session_id;
        let result = async {
            let session = session_id(&raw)?;
            let job = self.backfills.start(&call.admin, &session).await.map_err(|e| to_status(&e))?;
            Ok(Response::new(pb::StartBackfillResponse { job: Some(job.to_proto()) }))
        }
        .await;
        call.finish(&raw, result)
    }

    async fn get_backfill(
        &self,
        mut request: Request<pb::GetBackfillRequest>,
    ) -> Result<Response<pb::GetBackfillResponse>, Status> {
        let call = Call::begin(&mut request, "GetBackfill")?;
        let raw = request.into_inner().session_id;
        let result = async {
            let session = session_id(&raw)?;
            let job = self.backfills.get(&call.admin, &session).await.map_err(|e| to_status(&e))?;
            Ok(Response::new(pb::GetBackfillResponse { job: Some(job.to_proto()) }))
        }
        .await;
        call.finish(&raw, result)
    }

    async fn cancel_backfill(
        &self,
        mut request: Request<pb::CancelBackfillRequest>,
    ) -> Result<Response<pb::CancelBackfillResponse>, Status> {
        let call = Call::begin(&mut request, "CancelBackfill")?;
        let raw = request.into_inner().session_id;
        let result = async {
            let session = session_id(&raw)?;
            let job = self.backfills.cancel(&call.admin, &session).await.map_err(|e| to_status(&e))?;
            Ok(Response::new(pb::CancelBackfillResponse { job: Some(job.to_proto()) }))
        }
        .await;
        call.finish(&raw, result)
    }

    type WatchBackfillStream = Streamed<pb::WatchBackfillResponse>;

    async fn watch_backfill(
        &self,
        mut request: Request<pb::WatchBackfillRequest>,
    ) -> Result<Response<Self::WatchBackfillStream>, Status> {
        let call = Call::begin(&mut request, "WatchBackfill")?;
        let pb::WatchBackfillRequest { session_id: raw, job_id } = request.into_inner();
        let job_id = Some(job_id).filter(|j| !j.is_empty());
        let jobs = call.finish(
            &raw,
            match session_id(&raw) {
                Ok(session) => {
                    self.backfills.watch(&call.admin, &session, job_id.as_deref()).await.map_err(|e| to_status(&e))
                }
                Err(e) => Err(e.into()),
            },
        )?;
        // The current state first, then each change; the stream ends after
        // the terminal state, or when the caller's token expires. Driven by
        // the board's notifications, no polling.
        let jobs = jobs.map(|job| Ok(pb::WatchBackfillResponse { job: Some(job.to_proto()) })).boxed();
        Ok(Response::new(until_expiry(jobs, call.admin.valid_until())))
    }

    async fn list_session_contacts(
        &self,
        mut request: Request<pb::ListSessionContactsRequest>,
    ) -> Result<Response<pb::ListSessionContactsResponse>, Status> {
        let call = Call::begin(&mut request, "ListSessionContacts")?;
        let req = request.into_inner();
        let result = async {
            let session = session_id(&req.session_id)?;
            let args = page_args(req.limit, &req.cursor);
            let page = self.backfills.contacts(&call.admin, &self.codec, &session, args).await;
            let page = page.map_err(|e| to_status(&e))?;
            let data = page.items.into_iter().map(ToProto::to_proto).collect();
            Ok(Response::new(pb::ListSessionContactsResponse { data, next_cursor: page.next_cursor }))
        }
        .await;
        call.finish(&req.session_id, result)
    }

    async fn list_session_groups(
        &self,
        mut request: Request<pb::ListSessionGroupsRequest>,
    ) -> Result<Response<pb::ListSessionGroupsResponse>, Status> {
        let call = Call::begin(&mut request, "ListSessionGroups")?;
        let req = request.into_inner();
        let result = async {
            let session = session_id(&req.session_id)?;
            let args = page_args(req.limit, &req.cursor);
            let page = self.backfills.groups(&call.admin, &self.codec, &session, args).await;
            let page = page.map_err(|e| to_status(&e))?;
            let data = page.items.into_iter().map(ToProto::to_proto).collect();
            Ok(Response::new(pb::ListSessionGroupsResponse { data, next_cursor: page.next_cursor }))
        }
        .await;
        call.finish(&req.session_id, result)
    }

    async fn list_session_group_participants(
        &self,
        mut request: Request<pb::ListSessionGroupParticipantsRequest>,
    ) -> Result<Response<pb::ListSessionGroupParticipantsResponse>, Status> {
        let call = Call::begin(&mut request, "ListSessionGroupParticipants")?;
        let req = request.into_inner();
        let result = async {
            let session = session_id(&req.session_id)?;
            let group = group_jid(&req.group_jid)?;
            let args = page_args(req.limit, &req.cursor);
            let page = self.backfills.participants(&call.admin, &self.codec, &session, group, args).await;
            let page = page.map_err(|e| to_status(&e))?;
            let data = page.items.into_iter().map(ToProto::to_proto).collect();
            Ok(Response::new(pb::ListSessionGroupParticipantsResponse { data, next_cursor: page.next_cursor }))
        }
        .await;
        call.finish(&req.session_id, result)
    }

    async fn list_session_events(
        &self,
        mut request: Request<pb::ListSessionEventsRequest>,
    ) -> Result<Response<pb::ListSessionEventsResponse>, Status> {
        let call = Call::begin(&mut request, "ListSessionEvents")?;
        let req = request.into_inner();
        let session = req.session_id.clone();
        let result = async {
            let query = super::events::list_events_query(req)?;
            let page = events::list(&call.admin, &self.store, &self.codec, query).await.map_err(|e| to_status(&e))?;
            let data = page.items.into_iter().map(ToProto::to_proto).collect();
            Ok(Response::new(pb::ListSessionEventsResponse { data, next_cursor: page.next_cursor }))
        }
        .await;
        call.finish(&session, result)
    }

    type WatchSessionEventsStream = Streamed<pb::WatchSessionEventsResponse>;

    async fn watch_session_events(
        &self,
        mut request: Request<pb::WatchSessionEventsRequest>,
    ) -> Result<Response<Self::WatchSessionEventsStream>, Status> {
        let call = Call::begin(&mut request, "WatchSessionEvents")?;
        let after = request.into_inner().after;
        let watched = events::watch(&call.admin, &self.store, &self.codec, Some(after.as_str())).await;
        let events = call.finish("", watched.map_err(|e| to_status(&e)))?;
        let events = events
            .map(|item| match item {
                Ok(event) => Ok(pb::WatchSessionEventsResponse { event: Some(event.to_proto()) }),
                Err(e) => Err(to_status(&e)),
            })
            .boxed();
        Ok(Response::new(until_expiry(events, call.admin.valid_until())))
    }
}
