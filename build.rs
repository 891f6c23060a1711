//! Generates the SessionHostService client (and server, for test hosts and
//! `host-sim`). The admin contract's types come from gateway-rest, which
//! generates them once for both crates. protoc comes from the
//! protoc-bin-vendored crate, so a build needs neither a system protoc nor
//! the network.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    tonic_prost_build::configure().compile_protos(
        &[PathBuf::from("proto/wa/gateway/host/v1/host.proto")],
        &[PathBuf::from("proto"), well_known],
    )?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
