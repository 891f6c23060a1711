//! Authentication comes first. When the REST layer itself would refuse a
//! request under `/api/v1/admin` (an unknown path or method, a malformed
//! query, an oversized body), it first asks the AdminService who is calling
//! (`WhoAmI`): a missing, invalid or refused credential answers 401, 403 or
//! 429 as any RPC would, and only an authorized caller sees the 400, 404, 405
//! or 413. Credentials are still checked in one place only, the auth layer in
//! front of the RPCs; this layer decides nothing about them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::error::{LocalRefusal, from_status};
use crate::forwarded::Forwarded;
use crate::proto as pb;
use crate::state::RestState;

pub const ADMIN_PREFIX: &str = "/api/v1/admin";

#[derive(Clone)]
pub(crate) struct AuthFirstLayer(pub RestState);

impl<S> tower::Layer<S> for AuthFirstLayer {
    type Service = AuthFirst<S>;
    fn layer(&self, inner: S) -> AuthFirst<S> {
        AuthFirst { inner, state: self.0.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct AuthFirst<S> {
    inner: S,
    state: RestState,
}

impl<S: tower::Service<Request, Response = Response>> tower::Service<Request> for AuthFirst<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFirstFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let guarded = request.uri().path().starts_with(ADMIN_PREFIX);
        let ask = guarded.then(|| (Forwarded::of(request.headers()), self.state.clone()));
        AuthFirstFuture { stage: Stage::Routing { inner: self.inner.call(request) }, ask }
    }
}

type Asking = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Routing { #[pin] inner: F },
        // Only a local refusal gets here, so boxing costs the common path nothing.
        Asking { who: Asking },
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct AuthFirstFuture<F> {
        #[pin]
        stage: Stage<F>,
        ask: Option<(Forwarded, RestState)>,
    }
}

impl<F, E> Future for AuthFirstFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProj::Routing { inner } => {
                    let response = std::task::ready!(inner.poll(cx))?;
                    let Some((forwarded, state)) = this.ask.take() else { return Poll::Ready(Ok(response)) };
                    if response.extensions().get::<LocalRefusal>().is_none() {
                        return Poll::Ready(Ok(response));
                    }
                    this.stage.set(Stage::Asking { who: Box::pin(who_first(state, forwarded, response)) });
                }
                StageProj::Asking { who } => return who.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// The caller's credential decides before the local refusal is shown.
async fn who_first(state: RestState, forwarded: Forwarded, refusal: Response) -> Response {
    let who = state.backend.who_am_i(forwarded.request(pb::WhoAmIRequest {}));
    match tokio::time::timeout(state.rpc_timeout, who).await {
        Ok(Ok(_)) => refusal,
        Ok(Err(status)) => from_status(&status).into_response(),
        Err(_) => crate::error::ApiError::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            "the admin service did not answer in time",
        )
        .into_response(),
    }
}
