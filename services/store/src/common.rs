//! What every backend shares, so that they store and find chunks the same way: the collection's
//! layout (vector names, payload keys, payload indexes, the RRF constant), the chunk payload as JSON
//! (with the store's `current` flag), BM25 encoding, the checks a request passes before it reaches
//! an engine, and folding scrolled payloads into [`DocumentSummary`]s. Nothing here talks to an
//! engine; the backends translate these into their own types.

use qdrant_edge::{
    SparseVector,
    bm25_embed::{EdgeBm25, EdgeBm25Config},
};
use rudder_core::{
    StoreError,
    store::{ChunkPayload, ChunkPoint, DocumentSummary, SearchMode, SearchRequest, VersionSummary},
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Named vector of the chunk embedding (cosine).
pub const DENSE_VECTOR: &str = "dense";
/// Named sparse vector of the chunk text's BM25 term weights.
pub const SPARSE_VECTOR: &str = "bm25";
/// Points per engine update: bounds the size of one write (a WAL record, a gRPC message).
pub(crate) const UPSERT_BATCH: usize = 256;

/// Hands `points` to `write` [`UPSERT_BATCH`] at a time, stopping at the first failure.
pub(crate) fn in_batches<T>(
    points: Vec<T>,
    mut write: impl FnMut(Vec<T>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut points = points.into_iter().peekable();
    while points.peek().is_some() {
        write(points.by_ref().take(UPSERT_BATCH).collect())?;
    }
    Ok(())
}
/// Points per scroll page when listing documents or reading a document's chunks.
pub(crate) const SCROLL_PAGE: usize = 1024;
/// Qdrant's default RRF constant; every backend passes it explicitly so all of them rank alike.
pub(crate) const RRF_K: usize = 2;

/// Payload keys rudder writes and filters on.
pub(crate) mod fields {
    pub const DOC_ID: &str = "doc_id";
    pub const VERSION: &str = "version";
    pub const TITLE: &str = "title";
    pub const REGIONS: &str = "regions";
    pub const BRAND: &str = "brand";
    pub const TAGS: &str = "tags";
    pub const CONTENT_SHA256: &str = "content_sha256";
    /// Set by the store, not part of `ChunkPayload`: whether the chunk's version is the current one.
    pub const CURRENT: &str = "current";
}

/// Keyword payload indexes: every field a search or a document operation filters on. `current` has
/// a bool index besides these.
pub(crate) const KEYWORD_INDEXES: [&str; 5] =
    [fields::REGIONS, fields::BRAND, fields::DOC_ID, fields::VERSION, fields::TAGS];

/// The payload fields [`DocumentList`] reads: what listing documents asks the engine for.
pub(crate) const LISTED_FIELDS: [&str; 7] = [
    fields::DOC_ID,
    fields::VERSION,
    fields::TITLE,
    fields::REGIONS,
    fields::BRAND,
    fields::CONTENT_SHA256,
    fields::CURRENT,
];

/// English BM25 with the engine's defaults (k 1.2, b 0.75, avg_len 256): the same parameters a
/// Qdrant server's built-in BM25 uses. Every backend encodes documents (at upsert) and queries (at
/// search) with it, and IDF is applied by the engine through the sparse vector's `Idf` modifier, so
/// the sparse leg scores alike everywhere.
pub(crate) fn bm25(backend: &'static str) -> Result<EdgeBm25, StoreError> {
    EdgeBm25::new(EdgeBm25Config { language: Some("english".into()), ..Default::default() })
        .map_err(|err| StoreError::Backend { backend, operation: "build BM25", reason: err.to_string() })
}

/// A dense vector has the collection's size and only finite values (a NaN would break ranking).
pub(crate) fn check_dense(vector: &[f32], dim: usize, what: &str) -> Result<(), StoreError> {
    if vector.len() != dim {
        return Err(StoreError::InvalidRequest {
            reason: format!("{what}: dense vector has {} dimensions, the collection has {dim}", vector.len()),
        });
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(StoreError::InvalidRequest {
            reason: format!("{what}: dense vector has a non-finite value"),
        });
    }
    Ok(())
}

/// Refuses an empty region: a search without one would cross regions.
pub(crate) fn check_region(region: &str) -> Result<(), StoreError> {
    if region.trim().is_empty() {
        return Err(StoreError::InvalidRequest { reason: "a search needs a region".into() });
    }
    Ok(())
}

/// The legs a search runs, checked: what is left for a backend is to express them in its engine.
#[derive(Debug)]
pub(crate) struct SearchLegs {
    /// The query's dense vector; `None` in `Sparse` mode.
    pub dense: Option<Vec<f32>>,
    /// The query's BM25 vector; `None` in `Dense` mode, and when the query has no BM25 terms (only
    /// stopwords): the sparse leg then finds nothing.
    pub sparse: Option<SparseVector>,
    /// How many hits to return (at least 1).
    pub limit: usize,
    /// How many candidates each leg contributes before fusion (at least `limit`).
    pub prefetch_limit: usize,
}

/// Checks a search request (limit, region, dense vector) and encodes its legs. The filter itself
/// is the backend's to build (it checks the region again, as its own guard).
pub(crate) fn search_legs(
    request: &SearchRequest,
    dim: usize,
    bm25: &EdgeBm25,
) -> Result<SearchLegs, StoreError> {
    let SearchRequest { dense, text, filter, mode, limit, prefetch_limit } = request;
    if *limit == 0 {
        return Err(StoreError::InvalidRequest { reason: "a search needs a limit of at least 1".into() });
    }
    check_region(&filter.region)?;
    let dense = match mode {
        SearchMode::Sparse => None,
        SearchMode::Dense | SearchMode::Hybrid => {
            check_dense(dense, dim, "query")?;
            Some(dense.clone())
        }
    };
    let sparse = match mode {
        SearchMode::Dense => None,
        SearchMode::Sparse | SearchMode::Hybrid => {
            Some(bm25.embed_query(text)).filter(|sparse| !sparse.indices.is_empty())
        }
    };
    Ok(SearchLegs { dense, sparse, limit: *limit, prefetch_limit: (*prefetch_limit).max(*limit) })
}

/// The JSON payload stored with a chunk: its [`ChunkPayload`] plus the `current` flag.
pub(crate) fn payload_json(chunk: &ChunkPoint) -> Result<Map<String, Value>, StoreError> {
    let ChunkPoint { id, payload, current, .. } = chunk;
    let mut map = match serde_json::to_value(payload) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(StoreError::InvalidRequest {
                reason: format!("chunk {id}: payload is not an object but {other}"),
            });
        }
        Err(err) => return Err(StoreError::InvalidRequest { reason: format!("chunk {id}: {err}") }),
    };
    map.insert(fields::CURRENT.to_owned(), Value::Bool(*current));
    Ok(map)
}

/// The chunk payload stored with a point (the `current` flag is ignored here; see [`is_current`]).
/// `id` names the point in the error when the payload is not a chunk's.
pub(crate) fn chunk_payload(
    id: impl FnOnce() -> String,
    payload: Map<String, Value>,
) -> Result<ChunkPayload, StoreError> {
    serde_json::from_value(Value::Object(payload))
        .map_err(|err| StoreError::Corrupt { id: id(), reason: err.to_string() })
}

pub(crate) fn is_current(payload: &Map<String, Value>) -> bool {
    payload.get(fields::CURRENT).and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn string_field<'a>(payload: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    payload.get(field).and_then(Value::as_str)
}

/// Folds the payloads of every stored point (at least [`LISTED_FIELDS`]) into one summary per
/// document, sorted by doc_id, with its versions sorted by version string.
#[derive(Debug, Default)]
pub(crate) struct DocumentList {
    docs: BTreeMap<String, Doc>,
}

#[derive(Debug, Default)]
struct Doc {
    title: String,
    regions: BTreeSet<String>,
    brands: BTreeSet<String>,
    versions: BTreeMap<String, VersionSummary>,
}

impl DocumentList {
    /// Counts one point. `id` names it in the error when it has no doc_id or version.
    pub(crate) fn add(
        &mut self,
        id: impl Fn() -> String,
        payload: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { id: id(), reason: reason.into() };
        let doc_id = string_field(payload, fields::DOC_ID).ok_or_else(|| corrupt("no doc_id"))?;
        let version = string_field(payload, fields::VERSION).ok_or_else(|| corrupt("no version"))?;
        let doc = self.docs.entry(doc_id.to_owned()).or_default();
        if let Some(title) = string_field(payload, fields::TITLE) {
            doc.title = title.to_owned();
        }
        if let Some(Value::Array(regions)) = payload.get(fields::REGIONS) {
            doc.regions.extend(regions.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if let Some(brand) = string_field(payload, fields::BRAND).filter(|b| !b.is_empty()) {
            doc.brands.insert(brand.to_owned());
        }
        let entry = doc.versions.entry(version.to_owned()).or_insert_with(|| VersionSummary {
            version: version.to_owned(),
            chunks: 0,
            current: false,
            content_sha256: string_field(payload, fields::CONTENT_SHA256).unwrap_or_default().to_owned(),
        });
        entry.chunks += 1;
        entry.current |= is_current(payload);
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<DocumentSummary> {
        self.docs
            .into_iter()
            .map(|(doc_id, doc)| DocumentSummary {
                doc_id,
                title: doc.title,
                regions: doc.regions,
                brands: doc.brands,
                versions: doc.versions.into_values().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_core::store::ChunkId;

    fn point(ingested_at: Option<&str>) -> ChunkPoint {
        ChunkPoint {
            id: ChunkId::for_chunk("faq", "1", 0),
            dense: vec![0.5; 4],
            payload: ChunkPayload {
                doc_id: "faq".into(),
                version: "1".into(),
                title: "FAQ".into(),
                source: "faq.md".into(),
                regions: vec!["us".into()],
                brand: None,
                language: "en".into(),
                tags: Vec::new(),
                heading_path: vec!["FAQ".into()],
                text: "Orders ship within two days.".into(),
                char_start: 0,
                char_end: 28,
                chunk_index: 0,
                content_sha256: "ab".repeat(32),
                ingested_at: ingested_at.map(str::to_owned),
            },
            current: true,
        }
    }

    #[test]
    fn the_ingestion_time_is_stored_when_known_and_absent_otherwise() {
        let at = "2026-11-21T01:50:45Z";
        let with = payload_json(&point(Some(at))).unwrap();
        assert_eq!(string_field(&with, "ingested_at"), Some(at));
        assert_eq!(chunk_payload(String::new, with).unwrap(), point(Some(at)).payload);

        // Written without one, the key is absent: exactly what points stored before it look like.
        let without = payload_json(&point(None)).unwrap();
        assert!(!without.contains_key("ingested_at"), "{without:?}");
        assert!(is_current(&without));
        assert_eq!(chunk_payload(String::new, without).unwrap(), point(None).payload);
    }
}
