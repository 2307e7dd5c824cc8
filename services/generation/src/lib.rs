//! rudder-generation: answering with the frozen LLM — fusion of steering, passages and question into a
//! prompt, the head cache, the model worker thread with its bounded queue, sampling, and streaming.

pub mod engine;
mod error;
pub mod feedback;
pub mod fusion;
pub mod grpc;
pub mod head_cache;
pub mod sampler;
pub mod steering;

pub use engine::{Engine, EngineConfig, EngineEvent, FinishReason, GenerationJob, ModelInfo};
pub use error::GenerationError;
pub use feedback::FeedbackBook;
pub use grpc::GenerationServiceImpl;
pub use sampler::{Sampler, SamplingParams};
pub use steering::Steering;
