//! End-to-end tests over real gRPC on 127.0.0.1:0 with the real model files. One test binary with a
//! module per area keeps link time down.
// A test binary: a panic here is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bundles;
mod generation;
mod grounding;
mod journey;
mod model_files;
mod retrieval_quality;
mod server_contract;
