//! The gRPC port: AdminService, health and reflection behind the auth layer,
//! served over plain TCP or TLS with limits on what one client can hold.
//!
//! Limits: at most `max_streams` concurrent streams per connection,
//! advertised in SETTINGS and enforced by h2 (excess streams are refused, and
//! h2's reset-flood protection stays on); keepalive pings; a maximum
//! connection age with an equal grace period; a deadline on every request
//! handler. There is no queue in front of the handlers for a request to wait
//! in untimed: a connection's concurrency is its stream limit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tower::Layer;

use super::tls::{HANDSHAKE_TIMEOUT, Port, ServerTls};
use crate::grpc::{AdminApi, AuthLayer, AuthService, Gate};
use crate::proto::admin::admin_service_server::AdminServiceServer;

/// Largest gRPC request message accepted; admin requests are tiny.
const MAX_REQUEST_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest gRPC response message sent (a page of 500 groups).
const MAX_RESPONSE_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest gRPC header block accepted. Well above the 8 KiB token cap, so an
/// oversized token gets a precise UNAUTHENTICATED rather than a bare HTTP 431.
const MAX_HEADER_LIST_BYTES: u32 = 96 * 1024;

#[derive(Debug, Clone)]
pub struct GrpcLimits {
    pub max_streams: u32,
    pub request_timeout: Duration,
    pub max_connection_age: Duration,
}

pub type GrpcService = AuthService<tonic::service::Routes>;

/// Reflection advertises exactly the services this port serves (the
/// descriptor set also holds SessionHostService, which it does not).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("wa.gateway.admin.v1.AdminService")
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

/// Every gRPC service of the port, behind the auth layer.
pub async fn services(api: AdminApi, gate: Gate) -> anyhow::Result<GrpcService> {
    let admin = AdminServiceServer::new(api)
        .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_MESSAGE_BYTES);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection_v1 = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = tonic::service::Routes::new(admin)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();
    Ok(AuthLayer::new(gate).layer(routes))
}

/// TLS connections, handshaken off the accept loop (a slow handshake never
/// holds up the next client) within [`HANDSHAKE_TIMEOUT`].
fn tls_incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => return,
            };
            let Ok((tcp, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (acceptor, tx) = (tls.acceptor(Port::Grpc), tx.clone());
            tokio::spawn(async move {
                if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

pub async fn serve(
    listener: TcpListener,
    service: GrpcService,
    tls: Option<Arc<ServerTls>>,
    limits: GrpcLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let builder = tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .max_concurrent_streams(limits.max_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .max_connection_age(limits.max_connection_age)
        .max_connection_age_grace(limits.max_connection_age)
        .tcp_nodelay(true);
    let service = crate::telemetry::GrpcMetricsLayer.layer(service);
    let stopped = shutdown.clone().cancelled_owned();
    match tls {
        None => builder.serve_with_incoming_shutdown(service, TcpListenerStream::new(listener), stopped).await,
        Some(tls) => {
            let incoming = tls_incoming(listener, tls, shutdown);
            builder.serve_with_incoming_shutdown(service, incoming, stopped).await
        }
    }
    .context("gRPC server failed")
}
