//! rudder-llm: the frozen LLM runtime on candle. For now it reads and checks model files; the forward
//! pass (input embeddings, per-layer prefix KV, KV cache) and the sampler land with generation.

pub mod gguf;

pub use gguf::{GgufSummary, LlmFileError};
