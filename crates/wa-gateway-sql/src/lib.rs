//! What the SQL backends (`wa-gateway-sqlite`, `wa-gateway-postgres`)
//! share, and nothing that differs between them: each backend's migrations
//! embedded without sqlx's macros, the reading of an sqlx error (a
//! database's own answer is read by its backend's table of codes), the
//! decoders from rows to domain values, and database URLs without their
//! password. It names no driver: sqlx's backend features are the backends'.

pub mod api_keys;
pub mod errors;
pub mod events;
pub mod gateways;
pub mod import;
pub mod migrations;
pub mod redact;
pub mod rows;
pub mod sessions;
pub mod tx;

pub use errors::{from_migrate, from_sqlx};
pub use migrations::Embedded;
pub use redact::{redact_password, redact_url};
pub use tx::Tx;
