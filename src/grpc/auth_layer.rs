//! The one place credentials are checked: [`Gate::admit`]. The gRPC port
//! runs it in a tower layer in front of every service; the REST layer's
//! in-process calls run it in [`super::InProcessAdmin`]. Calls to
//! AdminService continue only with a [`SuperAdmin`] in their extensions;
//! everything else (health, reflection) passes through untouched.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::net::IpAddr;
use std::sync::Arc;

use gateway_rest::TrustedProxies;
use http::{HeaderName, Request, Response};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument;

use super::status::to_status;
use crate::auth::{Authenticator, Credentials, SuperAdmin};
use crate::error::ServiceError;
use crate::headers::{AUTHORIZATION, GRPC_STATUS, REQUEST_ID, X_API_KEY, X_FORWARDED_FOR};
use crate::telemetry::traces;

pub const ADMIN_SERVICE_PREFIX: &str = "/wa.gateway.admin.v1.AdminService/";

/// Which kind of credential was presented, for the rejection metric.
fn credential_kind(creds: Credentials<'_>) -> &'static str {
    match (creds.authorization, creds.x_api_key) {
        (_, Some(_)) => "api_key",
        (Some(a), None) if a.trim().split_once(' ').is_some_and(|(_, token)| token.trim_start().starts_with("wa_")) => {
            "api_key"
        }
        (Some(_), None) => "jwt",
        (None, None) => "none",
    }
}

/// The credential check, with its refusal metric and audit event.
#[derive(Clone)]
pub struct Gate {
    auth: Authenticator,
    trusted: Arc<TrustedProxies>,
}

/// What a call presents to the gate.
pub struct Presented<'a> {
    pub creds: Credentials<'a>,
    pub client: Option<IpAddr>,
    /// The RPC, as the audit event names it.
    pub action: &'a str,
    pub request_id: &'a str,
}

impl Gate {
    pub fn new(auth: Authenticator, trusted: TrustedProxies) -> Self {
        Self { auth, trusted: Arc::new(trusted) }
    }

    /// The caller's capability, or the status that refuses it (counted and
    /// audited here, once).
    pub async fn admit(&self, call: Presented<'_>) -> Result<SuperAdmin, tonic::Status> {
        let error = match self.auth.admin_gate(call.creds, call.client).await {
            Ok(admin) => return Ok(admin),
            Err(error) => error,
        };
        let status = to_status(&error);
        let credential = credential_kind(call.creds);
        metrics::counter!("wa_gateway_auth_rejections_total", "credential" => credential, "reason" => error.reason())
            .increment(1);
        tracing::info!(
            target: "audit",
            principal = "-",
            credential,
            action = call.action,
            session = "",
            outcome = ?status.code(),
            reason = error.reason(),
            request_id = call.request_id,
            "admin call refused"
        );
        Err(status)
    }
}

/// A new request id (a ULID) when the caller's is missing or not sane (as
/// REST checks it); `None` keeps the caller's.
pub fn request_id(given: Option<&str>) -> Option<http::HeaderValue> {
    match given {
        Some(v) if gateway_rest::acceptable_request_id(v.as_bytes()) => None,
        _ => {
            let mut text = [0; ulid::ULID_LEN];
            http::HeaderValue::from_str(ulid::Ulid::new().array_to_str(&mut text)).ok()
        }
    }
}

#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

impl AuthLayer {
    pub fn new(gate: Gate) -> Self {
        Self { gate: Arc::new(gate) }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, gate: self.gate.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    /// One reference count per call, not one per part of the gate.
    gate: Arc<Gate>,
}

fn header<'a, B>(req: &'a Request<B>, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The address budgets are kept for. A call over a connection: its peer (or,
/// behind a trusted proxy, the forwarded client). A call without one comes
/// from the REST layer in this process, which names the client it resolved
/// in `x-forwarded-for`.
fn client_addr<B>(req: &Request<B>, trusted: &TrustedProxies) -> Option<IpAddr> {
    let forwarded = header(req, &X_FORWARDED_FOR);
    let peer =
        req.extensions().get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr).or_else(|| {
            req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.get_ref().remote_addr())
        });
    match peer {
        Some(peer) => Some(trusted.client(peer.ip(), forwarded)),
        None => forwarded.and_then(|f| f.trim().parse().ok()),
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is not ready; the ready one is taken for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let Some(action) = req.uri().path().strip_prefix(ADMIN_SERVICE_PREFIX) else {
            return Box::pin(inner.call(req));
        };
        let span = traces::rpc_span(action);
        traces::continue_from(&span, req.headers());
        let call_span = span.clone();
        let call = async move {
            // Every admin call carries a sane request id, for logs and audit,
            // and answers with it.
            if let Some(id) = request_id(header(&req, &REQUEST_ID)) {
                req.headers_mut().insert(REQUEST_ID, id);
            }
            // A value unique to each response: never worth HPACK's dynamic
            // table (indexing them makes every lookup walk a chain of dead ids).
            let id = req.headers().get(REQUEST_ID).cloned().map(|mut id| {
                id.set_sensitive(true);
                id
            });
            let echo = move |mut response: Response<tonic::body::Body>| {
                if let Some(id) = id {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                response
            };
            let presented = Presented {
                creds: Credentials { authorization: header(&req, &AUTHORIZATION), x_api_key: header(&req, &X_API_KEY) },
                client: client_addr(&req, &gate.trusted),
                action: req.uri().path().strip_prefix(ADMIN_SERVICE_PREFIX).unwrap_or_default(),
                request_id: header(&req, &REQUEST_ID).unwrap_or(""),
            };
            let response = match gate.admit(presented).await {
                Ok(admin) => {
                    req.extensions_mut().insert(admin);
                    inner.call(req).await.map(echo)
                }
                Err(status) => Ok(echo(status.into_http())),
            };
            if let Ok(response) = &response {
                // Set on trailers-only answers (every error); a success
                // sends its status in the trailers.
                let code = response.headers().get(GRPC_STATUS).and_then(|v| v.to_str().ok()?.parse().ok());
                traces::record_grpc_status(&call_span, code.map_or(tonic::Code::Ok, tonic::Code::from_i32));
            }
            response
        };
        Box::pin(call.instrument(span))
    }
}
