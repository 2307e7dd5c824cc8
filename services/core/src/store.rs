//! The `VectorStore` seam: where policy chunks live and how they are found. It owns the stored chunk
//! (its deterministic id, dense vector and payload), the search request with its isolation filter,
//! the scored hit, the per-document summary and the store's error type. Backends (the embedded
//! Qdrant engine, a Qdrant server) implement [`VectorStore`]; nothing here names either.
//!
//! The sparse leg is BM25 over the chunk's `text`, computed by the backend (documents at upsert,
//! the query at search), so callers hand over text, never sparse vectors, and every backend scores
//! the sparse leg the same way.

use serde::{Deserialize, Serialize};
use std::{collections::BTreeSet, fmt};
use uuid::Uuid;

/// Namespace of rudder's UUID v5 chunk ids (a fixed random UUID: changing it re-keys every store).
const CHUNK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d4e_8a3b_4c5d_9e7f_0a1b_2c3d_4e5f);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or opened (server down, directory unusable); retrying later may work.
    #[error("vector store ({backend}) is unavailable: {reason}")]
    Unavailable { backend: &'static str, reason: String },
    /// The existing collection does not fit what rudder needs (another vector size, missing vectors).
    #[error("vector store ({backend}) has an incompatible collection: {reason}")]
    Incompatible { backend: &'static str, reason: String },
    /// The request itself is wrong (vector of the wrong size, empty region, zero limit).
    #[error("invalid vector store request: {reason}")]
    InvalidRequest { reason: String },
    /// A stored point could not be read back as a chunk.
    #[error("stored point {id} is not a valid chunk: {reason}")]
    Corrupt { id: String, reason: String },
    /// Any other failure of the engine during `operation`.
    #[error("vector store ({backend}) failed to {operation}: {reason}")]
    Backend { backend: &'static str, operation: &'static str, reason: String },
}

/// A chunk's point id: UUID v5 of (doc_id, version, chunk index), so re-ingesting the same version
/// overwrites the same points and a new version never collides with the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub Uuid);

impl ChunkId {
    pub fn for_chunk(doc_id: &str, version: &str, chunk_index: u32) -> Self {
        // Length-prefixed fields: ("a|b", "c") and ("a", "b|c") must not give the same name.
        let name = format!("{}:{doc_id}{}:{version}{chunk_index}", doc_id.len(), version.len());
        Self(Uuid::new_v5(&CHUNK_ID_NAMESPACE, name.as_bytes()))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything stored with a chunk besides its vectors: what retrieval filters on and what answers cite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPayload {
    pub doc_id: String,
    /// The document's version (or effective date) as the ingester was given it.
    pub version: String,
    pub title: String,
    /// Where the document came from (file name or URL), for citations.
    pub source: String,
    /// Regions the document applies to; a search for any one of them sees the chunk.
    pub regions: Vec<String>,
    /// The brand the document is specific to; `None` applies to every brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    pub language: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Headings above the chunk, outermost first (`["Returns", "Refund timing"]`).
    #[serde(default)]
    pub heading_path: Vec<String>,
    pub text: String,
    /// Span of the chunk in the document's extracted text, in characters.
    pub char_start: u64,
    pub char_end: u64,
    pub chunk_index: u32,
    /// Lower-case hex sha256 of the source document's content, so re-ingesting the same content can be
    /// recognised and skipped.
    pub content_sha256: String,
    /// When this version was ingested, RFC 3339 UTC ([`crate::time::rfc3339`]); the same on every
    /// chunk of a version. `None` for chunks stored before rudder recorded it (the key is absent
    /// then, and is left out when writing `None`, so old and new points read alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_at: Option<String>,
}

/// A chunk ready to store: id, dense vector (unit length, the embedder's dimension) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPoint {
    pub id: ChunkId,
    pub dense: Vec<f32>,
    pub payload: ChunkPayload,
    /// Whether searches restricted to current versions see it. Ingestion writes a new version with
    /// `false`, flushes, then [`VectorStore::set_current_version`] switches readers over.
    pub current: bool,
}

/// Which legs a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Dense and BM25 prefetches fused with reciprocal rank fusion inside the store.
    #[default]
    Hybrid,
    Dense,
    Sparse,
}

/// Isolation and narrowing conditions, applied inside the store's query (never after it), so a
/// chunk outside them can never be returned however many results are asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchFilter {
    /// Only chunks whose `regions` contain this region. Required: an empty region is refused.
    pub region: String,
    /// Only chunks of this brand or of no brand; `None` does not filter on brand.
    pub brand: Option<String>,
    /// Only chunks carrying at least one of these tags; empty does not filter.
    pub tags: Vec<String>,
    /// Only chunks of these documents; empty does not filter.
    pub doc_ids: Vec<String>,
    /// Only chunks of each document's current version.
    pub current_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The query's dense vector (used by the dense leg; ignored in `Sparse` mode).
    pub dense: Vec<f32>,
    /// The query text (BM25 for the sparse leg; ignored in `Dense` mode).
    pub text: String,
    pub filter: SearchFilter,
    pub mode: SearchMode,
    /// How many hits to return.
    pub limit: usize,
    /// How many candidates each leg contributes before fusion (at least `limit`).
    pub prefetch_limit: usize,
}

/// Which legs of a search returned a hit among their candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FoundBy {
    pub dense: bool,
    pub sparse: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: ChunkId,
    /// Cosine similarity (dense), BM25 score (sparse) or RRF score (hybrid): comparable within one
    /// response only.
    pub score: f32,
    pub found_by: FoundBy,
    pub payload: ChunkPayload,
}

/// One stored version of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    pub version: String,
    pub chunks: u64,
    pub current: bool,
    pub content_sha256: String,
}

/// What the store holds of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSummary {
    pub doc_id: String,
    pub title: String,
    /// Every region any stored version names.
    pub regions: BTreeSet<String>,
    /// Every brand any stored version names; empty: brand-neutral (serves every brand).
    pub brands: BTreeSet<String>,
    /// Sorted by version string.
    pub versions: Vec<VersionSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    pub backend: &'static str,
    /// Points stored (approximate on some backends).
    pub points: u64,
    /// Backend-specific detail for status pages (path or URL, segment count).
    pub detail: String,
}

/// A store of policy chunks with hybrid search. Blocking: async callers use `spawn_blocking`.
pub trait VectorStore: Send + Sync + fmt::Debug {
    /// Creates the collection, vectors and payload indexes if missing; checks an existing one fits.
    fn ensure_collection(&self) -> Result<(), StoreError>;

    /// Inserts or replaces points by id. Visible to searches at once, durable after [`Self::flush`].
    fn upsert(&self, points: &[ChunkPoint]) -> Result<(), StoreError>;

    /// Marks `version` of `doc_id` current and every other version of it not current.
    fn set_current_version(&self, doc_id: &str, version: &str) -> Result<(), StoreError>;

    /// Makes every accepted write durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Deletes the document's chunks, all of them or every version but `keep_version`. Returns how
    /// many points were deleted.
    fn delete_document(&self, doc_id: &str, keep_version: Option<&str>) -> Result<u64, StoreError>;

    /// Every stored document with its versions, sorted by doc_id.
    fn list_documents(&self) -> Result<Vec<DocumentSummary>, StoreError>;

    /// One document's versions, read through a doc_id filter (ingestion asks this for every
    /// document it writes: it must not cost a scan of the whole store); None if it is not stored.
    fn document_summary(&self, doc_id: &str) -> Result<Option<DocumentSummary>, StoreError>;

    /// The payloads of one version of a document, in chunk order; empty if that version is not
    /// stored. What `GetDocument` shows and where a document's full metadata is read back from.
    fn document_chunks(&self, doc_id: &str, version: &str) -> Result<Vec<ChunkPayload>, StoreError>;

    /// Best `limit` chunks for the query inside the filter, best first.
    fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, StoreError>;

    fn health(&self) -> Result<StoreHealth, StoreError>;

    /// Builds the search indexes for what was written so far; called after bulk writes (an ingest).
    /// The embedded engine indexes only when asked, and searches scan the unindexed points; a Qdrant
    /// server's optimizer runs on its own, hence the default that does nothing.
    fn optimize(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids_are_deterministic_and_distinct() {
        let a = ChunkId::for_chunk("returns-us", "2024-01", 0);
        assert_eq!(a, ChunkId::for_chunk("returns-us", "2024-01", 0));
        assert_ne!(a, ChunkId::for_chunk("returns-us", "2024-01", 1));
        assert_ne!(a, ChunkId::for_chunk("returns-us", "2024-02", 0));
        assert_ne!(ChunkId::for_chunk("a:b", "c", 0), ChunkId::for_chunk("a", "b:c", 0));
    }
}
