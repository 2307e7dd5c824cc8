//! rudder-embed: text embeddings. For now it owns the check that the ONNX Runtime shared library is
//! present and new enough; fastembed (which loads that library dynamically and, on a missing or old
//! library, panics instead of returning an error) is only ever built after this check passes.

pub mod onnx_runtime;

pub use onnx_runtime::{OnnxRuntime, OnnxRuntimeError};
