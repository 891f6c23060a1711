//! The integration tests, as one test binary: the real `wa-gateway` binary on
//! 127.0.0.1:0, a real JWKS server, session hosts speaking the real protocol,
//! SQLite files and a throwaway PostgreSQL, grpcurl and schemathesis. One
//! binary links the crate and its dependencies once, and the tests share
//! one PostgreSQL server.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod backfill;
mod backfill_hostile;
mod backup;
mod chaos;
mod cluster;
mod cluster_events;
mod cluster_feed;
mod cluster_holds;
mod console;
mod console_changes;
mod contract;
mod crates;
mod demo;
mod deploy;
mod directory;
mod directory_load;
mod disk_full;
mod docs;
mod edges;
mod events;
mod file_cycles;
mod grpcurl;
mod host_check;
mod host_tls;
mod listing_etag;
mod migrations;
mod observability;
mod races;
mod rest;
mod sessions;
mod stopping;
mod store_faults;
mod tls;
mod upgrade;
