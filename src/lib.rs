//! wa-gateway: the admin control plane of a multi-tenant WhatsApp gateway.
//!
//! Capabilities live in their own modules (`auth`, `sessions`, `backfill`,
//! `hosts`, `store`); protocol glue stays at the edges (`grpc`, the
//! `gateway-rest` crate, `cli`). See ARCHITECTURE.md for the codemap and the
//! invariants.

#[cfg(not(feature = "sqlite"))]
compile_error!("wa-gateway needs the `sqlite` feature: the demo and the default database are SQLite files");

pub mod cli;
pub mod console;

pub use wa_gateway_core::{auth, backfill, directory, error, paging, sessions, time};

#[cfg(fuzzing)]
pub mod fuzzing;
pub mod grpc;
pub mod headers;
pub mod hosts;
pub mod proto;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
