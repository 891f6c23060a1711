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

pub const ADMIN_SERVICE_PREFIX: &str = "/wa.gateway.admin.v1.AdminService/";

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
            let creds =
                Credentials { authorization: header(&req, "authorization"), x_api_key: header(&req, "x-api-key") };
            match auth.admin_gate(creds).await {
                Ok(admin) => {
                    req.extensions_mut().insert(admin);
                    inner.call(req).await
                }
                Err(error) => {
                    tracing::info!(
                        path = req.uri().path(),
                        reason = crate::error::ServiceError::reason(&error),
                        "credential refused"
                    );
                    Ok(to_status(&error).into_http())
                }
            }
        })
    }
}
