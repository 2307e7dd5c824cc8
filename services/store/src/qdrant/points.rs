//! Converting between rudder's chunks and Qdrant server points: the named vectors (dense + BM25
//! sparse, encoded client-side with the BM25 every backend shares), the payload (the JSON built and
//! read back by [`crate::common`], carried as qdrant-client `Value`s), and UUID point ids.

use crate::common::{self, DENSE_VECTOR, SPARSE_VECTOR, check_dense};
use qdrant_client::{
    Payload,
    qdrant::{NamedVectors, PointId, PointStruct, Value, Vector, point_id::PointIdOptions},
};
use qdrant_edge::{SparseVector, bm25_embed::EdgeBm25};
use rudder_core::{
    StoreError,
    store::{ChunkId, ChunkPayload, ChunkPoint},
};
use serde_json::Map;
use std::collections::HashMap;
use uuid::Uuid;

/// The server point of a chunk: its dense vector, the BM25 vector of its text, its payload plus the
/// `current` flag. Refuses a vector of the wrong size or with non-finite values.
pub(super) fn to_point(chunk: &ChunkPoint, dim: usize, bm25: &EdgeBm25) -> Result<PointStruct, StoreError> {
    let ChunkPoint { id, dense, payload, .. } = chunk;
    check_dense(dense, dim, &format!("chunk {id}"))?;
    let SparseVector { indices, values } = bm25.embed_document(&payload.text);
    let vectors = NamedVectors::default()
        .add_vector(DENSE_VECTOR, Vector::new_dense(dense.clone()))
        .add_vector(SPARSE_VECTOR, Vector::new_sparse(indices, values));
    let payload = Payload::from(common::payload_json(chunk)?);
    Ok(PointStruct::new(point_id(*id), vectors, payload))
}

/// A chunk id as the server's point id (UUIDs are sent as their hyphenated text).
pub(super) fn point_id(id: ChunkId) -> PointId {
    PointId::from(id.0.to_string())
}

pub(super) fn chunk_id(id: Option<&PointId>) -> Result<ChunkId, StoreError> {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Uuid(text)) => Uuid::parse_str(text)
            .map(ChunkId)
            .map_err(|err| StoreError::Corrupt { id: text.clone(), reason: err.to_string() }),
        Some(PointIdOptions::Num(num)) => Err(StoreError::Corrupt {
            id: num.to_string(),
            reason: "rudder stores only UUID point ids".into(),
        }),
        None => Err(StoreError::Corrupt {
            id: String::new(),
            reason: "the server sent a point without an id".into(),
        }),
    }
}

pub(super) fn point_id_text(id: Option<&PointId>) -> String {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Uuid(text)) => text.clone(),
        Some(PointIdOptions::Num(num)) => num.to_string(),
        None => String::new(),
    }
}

/// A point's payload as JSON, the form [`crate::common`] reads.
pub(super) fn json(payload: HashMap<String, Value>) -> Map<String, serde_json::Value> {
    Map::from(Payload::from(payload))
}

/// The chunk payload stored with a point (the `current` flag is ignored here).
pub(super) fn chunk_payload(
    id: Option<&PointId>,
    payload: HashMap<String, Value>,
) -> Result<ChunkPayload, StoreError> {
    common::chunk_payload(|| point_id_text(id), json(payload))
}
