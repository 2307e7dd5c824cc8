//! rudder-llm: the frozen LLM runtime on candle — model files (GGUF or a Hugging Face directory),
//! the tokenizer and chat template they carry, and a llama forward pass that takes input embeddings
//! and a per-layer prefix of keys/values, is differentiable end to end, and decodes with a KV cache.

mod bandwidth;
pub mod chat;
pub mod config;
mod decode;
mod elementwise;
mod error;
mod frozen;
mod fused;
mod fused_attention;
pub mod gguf;
mod kv_cache;
mod layers;
pub mod loader;
pub mod model;
mod prefill_attention;
mod q8;
mod q8_prefill;
pub mod tokenizer;
mod training_block;
pub mod weights;

pub use bandwidth::memory_read_bandwidth;
pub use chat::{ChatTemplate, Message, Role};
pub use config::{LlamaConfig, RopeStyle};
pub use error::LlmError;
pub use gguf::{GgufSummary, LlmFileError};
pub use kv_cache::KvCache;
pub use loader::LoadedModel;
pub use model::{ForwardOptions, Llama, LogitsAt, prepend_soft_prompt};
pub use tokenizer::ModelTokenizer;
pub use weights::ServingFormat;
