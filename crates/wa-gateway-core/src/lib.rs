//! wa-gateway's core: the domain and the ports it owns.
//!
//! Capabilities live in their own modules (`auth`, `sessions`, `backfill`,
//! `directory`, `paging`). What the domain needs from outside is a trait
//! here: the store ([`store::Database`], implemented by each backend crate)
//! and the session hosts ([`hosts::SessionHosts`], implemented over gRPC by
//! the binary). This crate names no database, no protocol and no web
//! framework; `tests/it/crates.rs` holds that rule.

pub mod auth;
pub mod backfill;
pub mod directory;
pub mod error;
pub mod events;
pub mod feed;
pub mod hosts;
pub mod paging;
pub mod sessions;
pub mod store;
pub mod time;
