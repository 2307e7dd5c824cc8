//! rudder-generation: answering with the frozen LLM.
//!
//! | module | owns |
//! | --- | --- |
//! | [`validation`] | the request rules: wire request -> [`ValidGenerate`] |
//! | [`service`] | the request flow, transport-neutral: bundle, passages, evidence, the plan |
//! | `stream` | a request's streaming half: the plan carried out as answer events, the ledger |
//! | [`grounding`] | evidence selection, verification, quoting and declining |
//! | [`engine`] | the engine seam ([`InferenceEngine`]) and the continuous-batching scheduler behind it |
//! | [`fusion`] | what the model reads: steering, system text, passages, question |
//! | [`answer_eval`] | the answer-correctness eval's cases and rules |
//! | [`grpc`] | the gRPC adapter: conversions and status mapping only |

pub mod answer;
pub mod answer_eval;
pub mod engine;
mod error;
pub mod feedback;
pub mod fusion;
pub mod grounding;
pub mod grpc;
pub mod head_cache;
mod ledger;
pub mod sampler;
pub mod service;
pub mod steering;
mod stream;
pub mod validation;

pub use answer::{AnswerEvent, AnswerStats, CollectedAnswer, DEFAULT_HANDOVER, FinishedAnswer};
pub use engine::{
    Engine, EngineConfig, EngineEvent, FinishReason, GenerationJob, InferenceEngine, ModelInfo,
};
pub use error::GenerationError;
pub use feedback::FeedbackBook;
pub use grounding::{Grounding, GroundingMode, GroundingPolicy};
pub use grpc::GenerationServiceImpl;
pub use sampler::{Sampler, SamplingParams};
pub use service::GenerationService;
pub use steering::Steering;
pub use validation::ValidGenerate;
