//! Generates the AdminService messages, client and server trait (the one
//! definition of the admin contract in Rust: wa-gateway implements the trait
//! and re-exports these types), and the descriptor set whose google.api.http
//! annotations declare the REST mapping this crate serves.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure().file_descriptor_set_path(out_dir.join("admin_descriptor.bin")).compile_protos(
        &[PathBuf::from("../proto/wa/gateway/admin/v1/admin.proto")],
        &[PathBuf::from("../proto"), well_known],
    )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
