//! What the REST layer calls: the AdminService itself, as its generated
//! server trait. Inside `wa-gateway serve` that is the service in the same
//! process (typed calls, behind the same credential check as the gRPC port,
//! no encoding); in `wa-gateway rest` it is [`remote`], a gRPC client to a
//! server elsewhere. Either way the REST layer only maps paths and bodies
//! to requests and statuses to envelopes.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::proto::{self as pb, admin_service_client::AdminServiceClient, admin_service_server::AdminService};

/// The stream of job updates WatchBackfill answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchBackfillResponse, Status>> + Send>>;

/// The stream of session events WatchSessionEvents answers with.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchSessionEventsResponse, Status>> + Send>>;

/// An AdminService the REST layer can call.
pub type AdminBackend =
    Arc<dyn AdminService<WatchBackfillStream = WatchStream, WatchSessionEventsStream = EventStream>>;

/// Largest response message accepted from a remote AdminService.
const MAX_RESPONSE_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The AdminService at the other end of `channel`. Connection failures
/// answer as UNAVAILABLE statuses (REST 503), never as transport errors.
pub fn remote(channel: tonic::transport::Channel) -> AdminBackend {
    let transport = tower::util::BoxCloneSyncService::new(Unreachable(channel));
    Arc::new(Remote(AdminServiceClient::new(transport).max_decoding_message_size(MAX_RESPONSE_MESSAGE_BYTES)))
}

type Transport = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

struct Remote(AdminServiceClient<Transport>);

/// A channel whose connection failures are UNAVAILABLE answers.
#[derive(Clone)]
struct Unreachable(tonic::transport::Channel);

impl tower::Service<http::Request<tonic::body::Body>> for Unreachable {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Readiness is awaited per call (oneshot) so that a down upstream
        // becomes a status, not a transport error.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        let channel = self.0.clone();
        Box::pin(async move {
            Ok(channel
                .oneshot(request)
                .await
                .unwrap_or_else(|error| Status::unavailable(format!("admin service unreachable: {error}")).into_http()))
        })
    }
}

/// The request as it goes over the network: the forwarded headers the
/// REST layer attached become its metadata.
fn as_sent<T>(mut request: Request<T>) -> Request<T> {
    if let Some(forwarded) = request.extensions_mut().remove::<crate::Forwarded>() {
        *request.metadata_mut() = forwarded.into_metadata();
    }
    request
}

/// Forwards every unary RPC as it is; `async_trait` must see the methods,
/// so the macro writes the whole impl.
macro_rules! forward {
    ($($method:ident($request:ident) -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl AdminService for Remote {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    self.0.clone().$method(as_sent(request)).await
                }
            )*

            type WatchBackfillStream = WatchStream;

            async fn watch_backfill(
                &self,
                request: Request<pb::WatchBackfillRequest>,
            ) -> Result<Response<WatchStream>, Status> {
                let response = self.0.clone().watch_backfill(as_sent(request)).await?;
                Ok(response.map(|updates| Box::pin(updates) as WatchStream))
            }

            type WatchSessionEventsStream = EventStream;

            async fn watch_session_events(
                &self,
                request: Request<pb::WatchSessionEventsRequest>,
            ) -> Result<Response<EventStream>, Status> {
                let response = self.0.clone().watch_session_events(as_sent(request)).await?;
                Ok(response.map(|events| Box::pin(events) as EventStream))
            }
        }
    };
}

forward! {
    who_am_i(WhoAmIRequest) -> WhoAmIResponse;
    list_sessions(ListSessionsRequest) -> ListSessionsResponse;
    get_session(GetSessionRequest) -> GetSessionResponse;
    list_gateways(ListGatewaysRequest) -> ListGatewaysResponse;
    accept_gateway_snapshot(AcceptGatewaySnapshotRequest) -> AcceptGatewaySnapshotResponse;
    start_backfill(StartBackfillRequest) -> StartBackfillResponse;
    get_backfill(GetBackfillRequest) -> GetBackfillResponse;
    cancel_backfill(CancelBackfillRequest) -> CancelBackfillResponse;
    list_session_contacts(ListSessionContactsRequest) -> ListSessionContactsResponse;
    list_session_groups(ListSessionGroupsRequest) -> ListSessionGroupsResponse;
    list_session_group_participants(ListSessionGroupParticipantsRequest) -> ListSessionGroupParticipantsResponse;
    list_session_events(ListSessionEventsRequest) -> ListSessionEventsResponse;
}
