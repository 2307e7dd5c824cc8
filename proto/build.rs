//! Compiles `rudder/v1/*.proto` with protox (pure Rust: no system protoc), writes the encoded
//! descriptor set to OUT_DIR for server reflection, and generates prost messages plus tonic clients and
//! servers. Servers get default method bodies that answer UNIMPLEMENTED, so a service whose issue has
//! not landed yet needs no hand-written stubs.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "rudder/v1/common.proto",
    "rudder/v1/ingest.proto",
    "rudder/v1/retrieval.proto",
    "rudder/v1/generation.proto",
    "rudder/v1/prompts.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("rudder_v1_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().generate_default_stubs(true).compile_fds(descriptors)?;
    Ok(())
}
