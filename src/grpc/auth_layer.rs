//! The one place credentials are checked: a tower layer in front of every
//! gRPC service (and so in front of the in-process REST client too). Calls
//! to AdminService continue only with a [`SuperAdmin`] in their extensions;
//! everything else (health, reflection) passes through untouched.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::status::to_status;
use crate::auth::{Authenticator, Credentials};
use crate::error::ServiceError;

pub const ADMIN_SERVICE_PREFIX: &str = "/wa.gateway.admin.v1.AdminService/";
const REQUEST_ID: &str = "x-request-id";

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

#[derive(Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, auth: self.auth.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Authenticator,
}

fn header<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
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
        let auth = self.auth.clone();
        Box::pin(async move {
            if !req.uri().path().starts_with(ADMIN_SERVICE_PREFIX) {
                return inner.call(req).await;
            }
            // Every admin call carries a request id, for logs and audit.
            if !req.headers().contains_key(REQUEST_ID) {
                if let Ok(id) = http::HeaderValue::from_str(&ulid::Ulid::new().to_string()) {
                    req.headers_mut().insert(REQUEST_ID, id);
                }
            }
            let creds =
                Credentials { authorization: header(&req, "authorization"), x_api_key: header(&req, "x-api-key") };
            match auth.admin_gate(creds).await {
                Ok(admin) => {
                    req.extensions_mut().insert(admin);
                    inner.call(req).await
                }
                Err(error) => {
                    let status = to_status(&error);
                    let credential = credential_kind(creds);
                    metrics::counter!("wa_gateway_auth_rejections_total", "credential" => credential, "reason" => error.reason())
                        .increment(1);
                    tracing::info!(
                        target: "audit",
                        principal = "-",
                        credential,
                        action = req.uri().path().trim_start_matches(ADMIN_SERVICE_PREFIX),
                        session = "",
                        outcome = ?status.code(),
                        reason = error.reason(),
                        request_id = header(&req, REQUEST_ID).unwrap_or(""),
                        "admin call refused"
                    );
                    Ok(status.into_http())
                }
            }
        })
    }
}
