//! The gRPC edge: the AdminService implementation (thin: convert, call the
//! domain, convert back), the credential gate in front of it (as a tower
//! layer for the gRPC port, as [`InProcessAdmin`] for the REST layer), the proto<->domain
//! conversions, and the one table from domain errors to `tonic::Status`.

mod admin;
mod auth_layer;
mod convert;
mod events;
mod gateways;
mod in_process;
pub mod status;

pub use admin::AdminApi;
pub use auth_layer::{ADMIN_SERVICE_PREFIX, AuthLayer, AuthService, Gate};
pub use in_process::InProcessAdmin;
