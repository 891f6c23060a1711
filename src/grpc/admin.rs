//! AdminService: each RPC takes the [`SuperAdmin`] the auth layer left in the
//! request, converts the request to domain values, calls the domain, and
//! converts the answer back. No rules live here.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::auth::SuperAdmin;
use crate::paging::CursorCodec;
use crate::proto::admin::{self as pb, admin_service_server::AdminService};
use crate::sessions;
use crate::store::Store;

/// The AdminService implementation; cheap to clone.
#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    codec: CursorCodec,
}

impl AdminApi {
    pub fn new(store: Store, codec: CursorCodec) -> Self {
        Self { store, codec }
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

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let admin = super_admin(&request)?;
        let query = sessions::ListSessions::try_from(request.into_inner())?;
        let page = sessions::list(&admin, &self.store, &self.codec, query)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListSessionsResponse {
            data: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    async fn start_backfill(
        &self,
        request: Request<pb::StartBackfillRequest>,
    ) -> Result<Response<pb::StartBackfillResponse>, Status> {
        super_admin(&request)?;
        Err(Status::unimplemented("backfill is not available yet"))
    }

    async fn get_backfill(
        &self,
        request: Request<pb::GetBackfillRequest>,
    ) -> Result<Response<pb::GetBackfillResponse>, Status> {
        super_admin(&request)?;
        Err(Status::unimplemented("backfill is not available yet"))
    }

    type WatchBackfillStream = JobStream;

    async fn watch_backfill(
        &self,
        request: Request<pb::WatchBackfillRequest>,
    ) -> Result<Response<Self::WatchBackfillStream>, Status> {
        super_admin(&request)?;
        Err(Status::unimplemented("backfill is not available yet"))
    }

    async fn list_session_contacts(
        &self,
        request: Request<pb::ListSessionContactsRequest>,
    ) -> Result<Response<pb::ListSessionContactsResponse>, Status> {
        super_admin(&request)?;
        Err(Status::unimplemented("backfill is not available yet"))
    }

    async fn list_session_groups(
        &self,
        request: Request<pb::ListSessionGroupsRequest>,
    ) -> Result<Response<pb::ListSessionGroupsResponse>, Status> {
        super_admin(&request)?;
        Err(Status::unimplemented("backfill is not available yet"))
    }
}
