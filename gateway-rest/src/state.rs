//! What every REST handler shares, and the one way a handler calls an RPC:
//! under the REST layer's own deadline, with the RPC's status turned into
//! the envelope.

use std::time::Duration;

use http::StatusCode;

use crate::backend::AdminBackend;
use crate::error::{ApiError, from_status};
use crate::page_cache::PageCache;

/// What every REST handler shares, behind one `Arc`: axum and the
/// auth-first layer clone the state on every request, and each clone is a
/// reference count both runtime threads write.
#[derive(Clone)]
pub(crate) struct RestState(std::sync::Arc<Shared>);

pub(crate) struct Shared {
    pub backend: AdminBackend,
    pub rpc_timeout: Duration,
    pub pages: PageCache,
}

impl RestState {
    pub(crate) fn new(backend: AdminBackend, rpc_timeout: Duration) -> Self {
        Self(std::sync::Arc::new(Shared { backend, rpc_timeout, pages: Default::default() }))
    }
}

impl std::ops::Deref for RestState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl RestState {
    pub(crate) async fn call<T>(
        &self,
        rpc: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.rpc_timeout, rpc).await {
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                "the admin service did not answer in time",
            )),
            Ok(Err(status)) => Err(from_status(&status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}
