//! The gRPC edge: the AdminService implementation (thin: convert, call the
//! domain, convert back), the auth layer in front of it, the proto<->domain
//! conversions, and the one table from domain errors to `tonic::Status`.

mod admin;
mod auth_layer;
mod convert;
pub mod status;

pub use admin::AdminApi;
pub use auth_layer::{ADMIN_SERVICE_PREFIX, AuthLayer, AuthService};
