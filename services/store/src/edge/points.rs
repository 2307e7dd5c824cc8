//! Converting between rudder's chunks and qdrant-edge points: the named vectors (dense + BM25 sparse)
//! and the JSON payload, and reading payloads back into [`ChunkPayload`]s.

use super::{DENSE_VECTOR, EDGE, SPARSE_VECTOR, fields};
use qdrant_edge::{
    Payload, PointId, PointStructPersisted, Vector, VectorStructPersisted, Vectors, bm25_embed::EdgeBm25,
};
use rudder_core::{
    StoreError,
    store::{ChunkId, ChunkPayload, ChunkPoint},
};
use serde_json::{Map, Value};

/// The engine point of a chunk: its dense vector, the BM25 vector of its text, its payload plus the
/// `current` flag. Refuses a vector of the wrong size or with non-finite values.
pub(super) fn to_point(
    chunk: &ChunkPoint,
    dim: usize,
    bm25: &EdgeBm25,
) -> Result<PointStructPersisted, StoreError> {
    let ChunkPoint { id, dense, payload, current } = chunk;
    check_dense(dense, dim, &format!("chunk {id}"))?;
    let vectors = Vectors::new_named([
        (DENSE_VECTOR, Vector::new_dense(dense.clone())),
        (SPARSE_VECTOR, Vector::from(bm25.embed_document(&payload.text))),
    ]);
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
    Ok(PointStructPersisted {
        id: PointId::Uuid(id.0),
        vector: VectorStructPersisted::from(vectors.0),
        payload: Some(Payload(map)),
    })
}

/// A dense vector has the collection's size and only finite values (a NaN would break ranking).
pub(super) fn check_dense(vector: &[f32], dim: usize, what: &str) -> Result<(), StoreError> {
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

pub(super) fn chunk_id(id: PointId) -> Result<ChunkId, StoreError> {
    match id {
        PointId::Uuid(uuid) => Ok(ChunkId(uuid)),
        PointId::NumId(num) => Err(StoreError::Corrupt {
            id: num.to_string(),
            reason: "rudder stores only UUID point ids".into(),
        }),
    }
}

/// The chunk payload stored with a point (the `current` flag is ignored here; see [`is_current`]).
pub(super) fn chunk_payload(id: PointId, payload: Option<Payload>) -> Result<ChunkPayload, StoreError> {
    let map = payload.map(|p| p.0).unwrap_or_default();
    serde_json::from_value(Value::Object(map))
        .map_err(|err| StoreError::Corrupt { id: point_id_text(id), reason: err.to_string() })
}

pub(super) fn is_current(payload: &Map<String, Value>) -> bool {
    payload.get(fields::CURRENT).and_then(Value::as_bool).unwrap_or(false)
}

pub(super) fn string_field<'a>(payload: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    payload.get(field).and_then(Value::as_str)
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
