//! AdminService: each RPC takes the [`SuperAdmin`] the auth layer left in the
//! request, converts the request to domain values, calls the domain, and
//! converts the answer back. No rules live here.

use std::pin::Pin;

use futures_util::stream::{self, Stream};
use tonic::{Request, Response, Status};

use super::convert::session_id;
use super::status::to_status;
use crate::auth::SuperAdmin;
use crate::backfill::{Backfills, Job};
use crate::paging::CursorCodec;
use crate::proto::admin::{self as pb, admin_service_server::AdminService};
use crate::sessions;
use crate::store::Store;

/// The AdminService implementation; cheap to clone.
#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    codec: CursorCodec,
    backfills: Backfills,
}

impl AdminApi {
    pub fn new(store: Store, codec: CursorCodec, backfills: Backfills) -> Self {
        Self { store, codec, backfills }
    }
}

/// The capability the auth layer attached. Its absence means the layer was
/// not in front of this service, which is refused rather than trusted.
fn super_admin<T>(request: &Request<T>) -> Result<SuperAdmin, Status> {
    request
        .extensions()
        .get::<SuperAdmin>()
        .cloned()
        .ok_or_else(|| Status::permission_denied("admin API requires the platform super_admin role"))
}

type JobStream = Pin<Box<dyn Stream<Item = Result<pb::WatchBackfillResponse, Status>> + Send>>;

fn cursor(raw: String) -> Option<String> {
    Some(raw).filter(|c| !c.is_empty())
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let admin = super_admin(&request)?;
        let query = sessions::ListSessions::try_from(request.into_inner())?;
        let page = sessions::list(&admin, &self.store, &self.codec, query).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListSessionsResponse {
            data: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    async fn start_backfill(
        &self,
        request: Request<pb::StartBackfillRequest>,
    ) -> Result<Response<pb::StartBackfillResponse>, Status> {
        let admin = super_admin(&request)?;
        let session = session_id(&request.get_ref().session_id)?;
        let job = self.backfills.start(&admin, &session).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::StartBackfillResponse { job: Some(job.into()) }))
    }

    async fn get_backfill(
        &self,
        request: Request<pb::GetBackfillRequest>,
    ) -> Result<Response<pb::GetBackfillResponse>, Status> {
        let admin = super_admin(&request)?;
        let session = session_id(&request.get_ref().session_id)?;
        let job = self.backfills.get(&admin, &session).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GetBackfillResponse { job: Some(job.into()) }))
    }

    type WatchBackfillStream = JobStream;

    async fn watch_backfill(
        &self,
        request: Request<pb::WatchBackfillRequest>,
    ) -> Result<Response<Self::WatchBackfillStream>, Status> {
        let admin = super_admin(&request)?;
        let session = session_id(&request.get_ref().session_id)?;
        let receiver = self.backfills.watch(&admin, &session).await.map_err(|e| to_status(&e))?;
        // The current state first, then each change; the stream ends after
        // the terminal state. Driven by the watch channel, no polling.
        let updates = stream::unfold((receiver, false, true), |(mut rx, done, first)| async move {
            if done {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let job: Job = rx.borrow_and_update().clone();
            let finished = !job.status.is_active();
            Some((Ok(pb::WatchBackfillResponse { job: Some(job.into()) }), (rx, finished, false)))
        });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn list_session_contacts(
        &self,
        request: Request<pb::ListSessionContactsRequest>,
    ) -> Result<Response<pb::ListSessionContactsResponse>, Status> {
        let admin = super_admin(&request)?;
        let req = request.into_inner();
        let session = session_id(&req.session_id)?;
        let cursor = cursor(req.cursor);
        let page = self
            .backfills
            .contacts(&admin, &self.codec, &session, req.limit.map(i64::from), cursor.as_deref())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListSessionContactsResponse {
            data: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    async fn list_session_groups(
        &self,
        request: Request<pb::ListSessionGroupsRequest>,
    ) -> Result<Response<pb::ListSessionGroupsResponse>, Status> {
        let admin = super_admin(&request)?;
        let req = request.into_inner();
        let session = session_id(&req.session_id)?;
        let cursor = cursor(req.cursor);
        let page = self
            .backfills
            .groups(&admin, &self.codec, &session, req.limit.map(i64::from), cursor.as_deref())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListSessionGroupsResponse {
            data: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
