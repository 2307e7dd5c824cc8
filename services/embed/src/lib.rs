//! rudder-embed: text embeddings. It owns the check that the ONNX Runtime shared library is present
//! and new enough, and the [`Embedder`](rudder_core::Embedder) on fastembed, which is only ever built
//! after that check passes (fastembed panics on a missing or old library instead of returning an error).

pub mod fastembed_embedder;
pub mod onnx_runtime;

pub use fastembed_embedder::{FastembedEmbedder, FastembedOptions, MINILM_DIM, MINILM_MAX_TOKENS};
pub use onnx_runtime::{OnnxRuntime, OnnxRuntimeError};
