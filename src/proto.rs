//! Generated protobuf and gRPC code. Only `grpc`, `hosts` and `cli` touch it;
//! the domain modules never see these types.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The admin contract, generated once in gateway-rest: the REST layer calls
/// the same `AdminService` trait this crate implements.
pub mod admin {
    pub use gateway_rest::proto::*;
}

pub mod host {
    tonic::include_proto!("wa.gateway.host.v1");
}

/// The encoded descriptor set of the admin contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = gateway_rest::proto::FILE_DESCRIPTOR_SET;
