//! What a request produces: the events of its stream and the finished answer with its stats,
//! shared by the service that plans a request and the stream that runs it.

use std::{sync::Arc, time::Duration};

use rudder_core::{Bundle, Citation, Passage, ServiceError};

use crate::{
    FinishReason,
    grounding::{EvidenceSpan, Grounding},
};

/// Said when the evidence does not answer the question and the bundle sets no hand-over text.
pub const DEFAULT_HANDOVER: &str =
    "Our policies don't cover that question, so I'm passing you to a colleague who can help.";

/// What a request's stream carries, in order: `Started`, then `Delta`s, then `Finished` or `Failed`.
#[derive(Debug)]
pub enum AnswerEvent {
    Started { request_id: String, bundle: Arc<Bundle>, passages: Vec<Passage> },
    Delta(String),
    Finished(Box<FinishedAnswer>),
    Failed(ServiceError),
}

/// The end of an answer: what was said, on what, and how it was grounded.
#[derive(Debug, Clone)]
pub struct FinishedAnswer {
    pub request_id: String,
    pub bundle: Arc<Bundle>,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub evidence: Vec<EvidenceSpan>,
    pub grounding: Grounding,
    pub notes: Vec<String>,
    pub stats: AnswerStats,
}

#[derive(Debug, Clone, Default)]
pub struct AnswerStats {
    pub prompt_tokens: usize,
    pub cached_prompt_tokens: usize,
    pub output_tokens: usize,
    pub time_to_first_token: Duration,
    pub tokens_per_second: f32,
    pub retrieval_ms: u64,
    /// None when no model ran (a quoted or declined answer).
    pub finish_reason: Option<FinishReason>,
    pub retrieval_skipped: bool,
    pub passages_trimmed: usize,
}

/// A whole answer, collected from its stream.
#[derive(Debug, Clone)]
pub struct CollectedAnswer {
    pub passages: Vec<Passage>,
    /// The model's own answer before grounding changed it (empty when no model ran).
    pub finished: FinishedAnswer,
}
