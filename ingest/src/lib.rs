//! rudder-ingest: policy documents into the vector store. Loaders read Markdown, plain text, HTML and
//! PDF into headings and paragraphs ([`loaders`]); metadata comes from the request, front matter or a
//! sidecar file ([`metadata`]); the chunker cuts heading-aware passages bounded in the embedding
//! model's tokens ([`chunker`]); the pipeline embeds them and switches versions over safely
//! ([`pipeline`]); [`catalog`] reads back what is stored; [`service`] is the gRPC `IngestService`;
//! [`client`] is the uploading side that `rudder ingest` uses, and [`local`] runs the same files
//! through this process's pipeline (`rudder ingest --local`).

pub mod catalog;
pub mod chunker;
mod claims;
pub mod client;
pub mod error;
pub mod front_matter;
pub mod loaders;
pub mod local;
pub mod metadata;
pub mod pipeline;
pub mod preview;
pub mod service;
mod upload;

pub use chunker::ChunkerOptions;
pub use error::IngestError;
pub use pipeline::{
    DocumentReport, IngestLimits, IngestOptions, Ingested, Outcome, Pipeline, SourceDocument,
};
pub use service::IngestServiceImpl;
