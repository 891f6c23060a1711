//! Generated protobuf and gRPC code. Only `grpc`, `hosts` and `cli` touch it;
//! the domain modules never see these types.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

pub mod admin {
    tonic::include_proto!("wa.gateway.admin.v1");
}

pub mod host {
    tonic::include_proto!("wa.gateway.host.v1");
}

/// The encoded descriptor set of every proto file, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wa_gateway_descriptor.bin"));
