//! The LLM runtime's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("model format: {0}")]
    Format(String),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("{what} has shape {actual:?}, expected {expected:?}")]
    Shape { what: String, expected: Vec<usize>, actual: Vec<usize> },
    #[error("the sequence needs {needed} positions, the model's context is {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("tensor computation: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl LlmError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_owned(), source }
    }
}
