//! rudder-server: the `rudder` binary's library — CLI, layered configuration, the all-in-one gRPC
//! server, and client-side commands. End-to-end tests start [`RunningServer`] in-process.

pub mod ask;
pub mod auth;
pub mod bench;
pub mod bench_child;
pub mod bench_retrieval;
pub mod bench_serve;
pub mod cli;
pub mod eval_answers;
pub mod eval_cmd;
pub mod grpc;
pub mod ingest_cmd;
pub mod keys_cmd;
pub mod layered_config;
pub mod logging;
pub mod metrics;
pub mod preflight;
pub mod progress;
pub mod prompts_cmd;
pub mod status;
pub mod tls;
pub mod wire_status;

pub use grpc::RunningServer;
pub use layered_config::ConfigFlags;
