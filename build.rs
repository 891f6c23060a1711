//! Generates the gRPC code of both services and the descriptor set that
//! server reflection serves. protoc comes from the protoc-bin-vendored crate,
//! so a build needs neither a system protoc nor the network.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure().file_descriptor_set_path(out_dir.join("wa_gateway_descriptor.bin")).compile_protos(
        &[PathBuf::from("proto/wa/gateway/admin/v1/admin.proto"), PathBuf::from("proto/wa/gateway/host/v1/host.proto")],
        &[PathBuf::from("proto"), well_known],
    )?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
