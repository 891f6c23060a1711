//! The headers the gate, the gRPC service and the metrics read, named once.
//! Looking a header up by `&str` parses the name on every call; these are parsed at compile
//! time (or once, for tonic's metadata keys).

use std::sync::LazyLock;

use http::HeaderName;
use tonic::metadata::{Ascii, MetadataKey};

pub const AUTHORIZATION: HeaderName = http::header::AUTHORIZATION;
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The same names as keys of a [`tonic::metadata::MetadataMap`].
pub struct MetadataKeys {
    pub request_id: MetadataKey<Ascii>,
}

pub static METADATA: LazyLock<MetadataKeys> =
    LazyLock::new(|| MetadataKeys { request_id: MetadataKey::from_static("x-request-id") });
