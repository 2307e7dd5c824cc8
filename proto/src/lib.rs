//! The rudder v1 gRPC contract, generated from `proto/rudder/v1/*.proto`: messages, clients and
//! servers for IngestService, RetrievalService, GenerationService and PromptService, and the encoded
//! descriptor set that server reflection serves.

pub mod convert;

pub use convert::{status, timestamp};

/// `rudder.v1`: the generated messages, `*_client` and `*_server` modules.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("rudder.v1");
}

/// Encoded `FileDescriptorSet` of every rudder v1 file (plus the well-known types they import).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rudder_v1_descriptor.bin"));

/// Fully qualified names of the four rudder services, as reflection and health report them.
pub const SERVICE_NAMES: [&str; 4] = [
    "rudder.v1.IngestService",
    "rudder.v1.RetrievalService",
    "rudder.v1.GenerationService",
    "rudder.v1.PromptService",
];
