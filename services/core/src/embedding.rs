//! The `Embedder` seam: turning text into dense vectors for the store's dense leg, both at ingestion
//! (documents, in batches) and at query time (one query, possibly truncated). Implementations are
//! blocking (a model runs on the calling thread); async callers use `spawn_blocking`.

use std::fmt;

/// What can go wrong producing embeddings. Each variant maps to one gRPC status in the adapters.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model or its runtime cannot be used at all (missing files, old ONNX Runtime): nothing the
    /// caller sends can succeed until the deployment is fixed.
    #[error("embedding model is unavailable: {reason}")]
    Unavailable { reason: String },
    /// One input cannot be embedded (for example it cannot be tokenized).
    #[error("text {index} cannot be embedded: {reason}")]
    InvalidInput { index: usize, reason: String },
    /// The model ran and failed, or returned something of the wrong shape.
    #[error("embedding inference failed: {reason}")]
    Inference { reason: String },
}

/// A query's embedding, and whether the query was longer than the model reads (the rest is ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEmbedding {
    pub vector: Vec<f32>,
    /// True when the query had more tokens than [`Embedder::max_tokens`] and was cut.
    pub truncated: bool,
}

/// A text-embedding model: documents and queries into unit-length dense vectors of [`Embedder::dim`].
pub trait Embedder: Send + Sync + fmt::Debug {
    /// One vector per text, in order. An empty slice gives an empty result. Texts longer than
    /// [`Embedder::max_tokens`] are truncated (chunkers keep documents within the limit).
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// The vector of one query, saying whether it was truncated.
    fn embed_query(&self, text: &str) -> Result<QueryEmbedding, EmbedError>;

    /// Number of tokens the model's tokenizer makes of `text`, special tokens included: what the
    /// chunker bounds chunks by.
    fn count_tokens(&self, text: &str) -> Result<usize, EmbedError>;

    /// Dimension of every vector this embedder returns.
    fn dim(&self) -> usize;

    /// Longest input, in tokens, the model reads; the rest of a longer text is ignored.
    fn max_tokens(&self) -> usize;

    /// A stable name for the model, recorded with stored vectors so a model change is detectable.
    fn model_id(&self) -> &str;
}
