//! Converting between rudder's chunks and qdrant-edge points: the named vectors (dense + BM25 sparse)
//! and the JSON payload (built and read back by [`crate::common`]), and point ids.

use super::EDGE;
use crate::common::{self, DENSE_VECTOR, SPARSE_VECTOR, check_dense};
use qdrant_edge::{
    Payload, PointId, PointStructPersisted, Vector, VectorStructPersisted, Vectors, bm25_embed::EdgeBm25,
};
use rudder_core::{
    StoreError,
    store::{ChunkId, ChunkPayload, ChunkPoint},
};

/// The engine point of a chunk: its dense vector, the BM25 vector of its text, its payload plus the
/// `current` flag. Refuses a vector of the wrong size or with non-finite values.
pub(super) fn to_point(
    chunk: &ChunkPoint,
    dim: usize,
    bm25: &EdgeBm25,
) -> Result<PointStructPersisted, StoreError> {
    let ChunkPoint { id, dense, payload, .. } = chunk;
    check_dense(dense, dim, &format!("chunk {id}"))?;
    let vectors = Vectors::new_named([
        (DENSE_VECTOR, Vector::new_dense(dense.clone())),
        (SPARSE_VECTOR, Vector::from(bm25.embed_document(&payload.text))),
    ]);
    let map = common::payload_json(chunk)?;
    Ok(PointStructPersisted {
        id: PointId::Uuid(id.0),
        vector: VectorStructPersisted::from(vectors.0),
        payload: Some(Payload(map)),
    })
}

pub(super) fn chunk_id(id: PointId) -> Result<ChunkId, StoreError> {
    match id {
        PointId::Uuid(uuid) => Ok(ChunkId(uuid)),
        PointId::NumId(num) => Err(StoreError::Corrupt {
            id: num.to_string(),
            reason: "rudder stores only UUID point ids".into(),
        }),
    }
}

/// The chunk payload stored with a point (the `current` flag is ignored here).
pub(super) fn chunk_payload(id: PointId, payload: Option<Payload>) -> Result<ChunkPayload, StoreError> {
    common::chunk_payload(|| point_id_text(id), payload.map(|p| p.0).unwrap_or_default())
}

pub(super) fn point_id_text(id: PointId) -> String {
    match id {
        PointId::Uuid(uuid) => uuid.to_string(),
        PointId::NumId(num) => num.to_string(),
    }
}

/// Wraps an engine error with the operation that failed.
pub(super) fn backend(operation: &'static str) -> impl FnOnce(qdrant_edge::OperationError) -> StoreError {
    move |err| StoreError::Backend { backend: EDGE, operation, reason: err.to_string() }
}
