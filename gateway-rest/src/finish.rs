//! Middleware that acts on the response with what it kept from the request,
//! as a plain tower future: no box, no cloned service per call (axum's
//! `from_fn` costs both on every request).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What a middleware does to the response, with what it kept from the
/// request.
pub trait Finish<R> {
    fn finish(self, response: R) -> R;
}

pin_project_lite::pin_project! {
    /// The inner service's future, then [`Finish::finish`] on its response.
    pub struct Finishing<F, T> {
        #[pin]
        inner: F,
        then: Option<T>,
    }
}

impl<F, T> Finishing<F, T> {
    pub fn new(inner: F, then: T) -> Self {
        Self { inner, then: Some(then) }
    }
}

impl<F, T, R, E> Future for Finishing<F, T>
where
    F: Future<Output = Result<R, E>>,
    T: Finish<R>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        Poll::Ready(match (result, this.then.take()) {
            (Ok(response), Some(then)) => Ok(then.finish(response)),
            (result, _) => result,
        })
    }
}
