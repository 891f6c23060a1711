//! The AdminService as the REST layer in this process calls it: each call
//! passes the same [`Gate`] the gRPC port's auth layer runs, then goes
//! straight to [`AdminApi`]. Nothing is encoded or framed on the way; the
//! REST layer still only maps requests and statuses.

use gateway_rest::Forwarded;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::admin::AdminApi;
use super::auth_layer::{Gate, Presented, request_id};
use crate::auth::Credentials;
use crate::headers::REQUEST_ID;
use crate::proto::admin::{self as pb, admin_service_server::AdminService};
use crate::telemetry::traces;

pub struct InProcessAdmin {
    api: AdminApi,
    gate: Gate,
}

impl InProcessAdmin {
    pub fn new(api: AdminApi, gate: Gate) -> Self {
        Self { api, gate }
    }

    /// Admits the call (or refuses it) and hands it the caller's capability.
    /// The REST layer attaches what it forwards as a typed extension; a
    /// request without one is read from its metadata.
    async fn admit<T>(&self, mut request: Request<T>, action: &str) -> Result<Request<T>, Status> {
        let forwarded = match request.extensions_mut().remove::<Forwarded>() {
            Some(forwarded) => forwarded,
            None => Forwarded::of(request.metadata().as_ref()),
        };
        let given = forwarded.request_id().and_then(|id| id.to_str().ok());
        let request_id = request_id(given).or_else(|| forwarded.request_id().cloned());
        let presented = Presented {
            creds: Credentials { authorization: forwarded.authorization(), x_api_key: forwarded.x_api_key() },
            // The REST layer names the client it resolved (peer, or trusted
            // proxy's forward) in `x-forwarded-for`.
            client: forwarded.client().and_then(|f| f.trim().parse().ok()),
            action,
            request_id: request_id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or(""),
        };
        let admin = self.gate.admit(presented).await?;
        if let Some(id) = request_id {
            request.metadata_mut().as_mut().insert(REQUEST_ID, id);
        }
        request.extensions_mut().insert(admin);
        Ok(request)
    }
}

/// Runs one call in its `rpc` span (a child of the REST request's).
async fn traced<T>(action: &str, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let span = traces::rpc_span(action);
    let result = call.instrument(span.clone()).await;
    traces::record_grpc_status(&span, result.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok));
    result
}

/// Every RPC: admit, then call the API. `async_trait` must see the
/// methods, so the macro writes the whole impl.
macro_rules! admitted {
    ($($method:ident($request:ident) -> $response:ident as $action:literal;)*) => {
        #[tonic::async_trait]
        impl AdminService for InProcessAdmin {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    traced($action, async { self.api.$method(self.admit(request, $action).await?).await }).await
                }
            )*

            type WatchBackfillStream = gateway_rest::WatchStream;

            async fn watch_backfill(
                &self,
                request: Request<pb::WatchBackfillRequest>,
            ) -> Result<Response<Self::WatchBackfillStream>, Status> {
                traced("WatchBackfill", async { self.api.watch_backfill(self.admit(request, "WatchBackfill").await?).await })
                    .await
            }

            type WatchSessionEventsStream = gateway_rest::EventStream;

            async fn watch_session_events(
                &self,
                request: Request<pb::WatchSessionEventsRequest>,
            ) -> Result<Response<Self::WatchSessionEventsStream>, Status> {
                let action = "WatchSessionEvents";
                traced(action, async { self.api.watch_session_events(self.admit(request, action).await?).await }).await
            }
        }
    };
}

admitted! {
    who_am_i(WhoAmIRequest) -> WhoAmIResponse as "WhoAmI";
    list_sessions(ListSessionsRequest) -> ListSessionsResponse as "ListSessions";
    get_session(GetSessionRequest) -> GetSessionResponse as "GetSession";
    list_gateways(ListGatewaysRequest) -> ListGatewaysResponse as "ListGateways";
    accept_gateway_snapshot(AcceptGatewaySnapshotRequest) -> AcceptGatewaySnapshotResponse as "AcceptGatewaySnapshot";
    start_backfill(StartBackfillRequest) -> StartBackfillResponse as "StartBackfill";
    get_backfill(GetBackfillRequest) -> GetBackfillResponse as "GetBackfill";
    cancel_backfill(CancelBackfillRequest) -> CancelBackfillResponse as "CancelBackfill";
    list_session_contacts(ListSessionContactsRequest) -> ListSessionContactsResponse as "ListSessionContacts";
    list_session_groups(ListSessionGroupsRequest) -> ListSessionGroupsResponse as "ListSessionGroups";
    list_session_group_participants(ListSessionGroupParticipantsRequest)
        -> ListSessionGroupParticipantsResponse as "ListSessionGroupParticipants";
    list_session_events(ListSessionEventsRequest) -> ListSessionEventsResponse as "ListSessionEvents";
}
