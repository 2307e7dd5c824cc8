//! The ingestion error: why one document (or one request) could not be ingested, and the
//! [`ServiceError`] kind each reason answers with. Per-document failures become a FAILED result with
//! this kind's code; request-level failures become a gRPC status through the adapter's one mapping.

use rudder_core::{EmbedError, ServiceError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Something about the document or its metadata is wrong; `field` names it as the API spells it
    /// (`content`, `file_name`, `media_type`, `metadata.doc_id`, ...).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A region the server is not configured for.
    #[error("metadata.regions: unknown region {region:?}; known: {}", known.join(", "))]
    UnknownRegion { region: String, known: Vec<String> },
    /// The uploader's key may not write a region the document names.
    #[error("metadata.regions: this key may not write region {region:?}; it may write {}", allowed.join(", "))]
    OutOfScope { region: String, allowed: Vec<String> },
    /// The uploader's key may not write the document's brand (or a document without one).
    #[error("metadata.brand: this key may not write brand {brand}; it may write {}", allowed.join(", "))]
    BrandOutOfScope { brand: String, allowed: Vec<String> },
    /// The stored state forbids this write (a version label reused for different content).
    #[error("{0}")]
    Conflict(String),
    /// No such document in the store.
    #[error("unknown document {doc_id:?}")]
    NotFound { doc_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Another ingest or delete of the document held it for longer than a write can take (a store
    /// call hung): refused instead of waiting forever.
    #[error("document {doc_id:?} is held by another ingest or delete for over {waited_secs} s; try again")]
    Busy { doc_id: String, waited_secs: u64 },
    /// A blocking task died (panicked or was cancelled) before it answered.
    #[error("ingestion task failed: {0}")]
    Task(String),
}

impl IngestError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }
}

impl From<IngestError> for ServiceError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Invalid { field, reason } => ServiceError::invalid(field, reason),
            // NOT_FOUND listing the known ones, as generation and retrieval answer an unknown region.
            IngestError::UnknownRegion { region, known } => {
                ServiceError::NotFound { what: "region (metadata.regions)", name: region, known }
            }
            err @ (IngestError::OutOfScope { .. } | IngestError::BrandOutOfScope { .. }) => {
                ServiceError::PermissionDenied(err.to_string())
            }
            err @ IngestError::Conflict(_) => ServiceError::FailedPrecondition(err.to_string()),
            IngestError::NotFound { doc_id } => {
                ServiceError::NotFound { what: "document", name: doc_id, known: Vec::new() }
            }
            IngestError::Store(err) => match err {
                StoreError::Unavailable { .. } => ServiceError::Unavailable(err.to_string()),
                StoreError::Incompatible { .. } => ServiceError::FailedPrecondition(err.to_string()),
                StoreError::InvalidRequest { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Backend { .. } => ServiceError::Internal(err.to_string()),
            },
            IngestError::Embed(err) => match err {
                EmbedError::Unavailable { .. } => ServiceError::Unavailable(err.to_string()),
                EmbedError::InvalidInput { .. } => ServiceError::invalid("content", err.to_string()),
                EmbedError::Inference { .. } => ServiceError::Internal(err.to_string()),
            },
            err @ IngestError::Busy { .. } => ServiceError::Unavailable(err.to_string()),
            IngestError::Task(reason) => ServiceError::Internal(reason),
        }
    }
}
