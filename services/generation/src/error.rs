//! Generation's errors, and the service-error kind each one answers with.

use rudder_core::ServiceError;
use rudder_llm::LlmError;

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("the question and prompt need {tokens} tokens, more than the {budget} the context leaves")]
    QuestionTooLong { tokens: usize, budget: usize },
    #[error("artifact {artifact} {reason}")]
    ArtifactMisfit { artifact: String, reason: String },
    #[error("the model queue is full ({capacity} requests waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("the model worker has stopped")]
    WorkerGone,
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("tensor computation: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<GenerationError> for ServiceError {
    fn from(err: GenerationError) -> Self {
        Self::from(&err)
    }
}

/// By reference too: a failure the model worker reports is shared (`Arc`) with the request's stream.
impl From<&GenerationError> for ServiceError {
    fn from(err: &GenerationError) -> Self {
        match err {
            GenerationError::QuestionTooLong { .. } => ServiceError::invalid("question", err.to_string()),
            GenerationError::ArtifactMisfit { .. } => ServiceError::FailedPrecondition(err.to_string()),
            GenerationError::QueueFull { .. } => ServiceError::ResourceExhausted(err.to_string()),
            GenerationError::WorkerGone => ServiceError::Unavailable(err.to_string()),
            GenerationError::Llm(LlmError::ContextOverflow { .. }) => {
                ServiceError::invalid("sampling.max_tokens", err.to_string())
            }
            GenerationError::Llm(_) | GenerationError::Tensor(_) | GenerationError::Internal(_) => {
                ServiceError::Internal(err.to_string())
            }
        }
    }
}
