//! The store as the domain owns it: the [`Database`] port (`port.rs`), its
//! [`StoreError`] (`error.rs`), which names no backend, and the one
//! instrumentation wrapper every backend is opened through
//! (`instrumented.rs`). The backends are crates of their own that implement
//! the port; the binary picks one from the database URL.

pub mod error;
#[cfg(test)]
pub(crate) mod fake;
mod instrumented;
pub mod port;

pub use error::{STORE_BUSY, StoreError};
pub use instrumented::Instrumented;
pub use port::{
    ApiKeyRow, ApiKeyStore, Database, DirectoryStore, EventStore, GatewayRemoval, Replaced, SessionImport,
    SessionStore, Slice, Staging, StagingWrites, StatusCount, Store,
};
