//! The embedded backend: one qdrant-edge shard (Qdrant's engine, in process) in a directory. It owns
//! creating and loading the shard with rudder's layout (named vectors `dense` and `bm25`, payload
//! indexes; the names, payload and BM25 encoder are [`crate::common`]'s, shared with the server
//! backend), the hybrid query in the engine's types, and serialising writes.
//!
//! qdrant-edge 0.7.2 is synchronous and `EdgeShard` is Send + Sync; its `flush` panics if another
//! write holds the WAL at that moment, so every write and flush here goes through one mutex (reads
//! never take it).

mod filters;
mod points;

use crate::common::{self, KEYWORD_INDEXES, LISTED_FIELDS, RRF_K, SCROLL_PAGE, SearchLegs, fields};
pub use crate::common::{DENSE_VECTOR, SPARSE_VECTOR};
use qdrant_edge::{
    CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParamsBuilder,
    FieldIndexOperations, Filter, Fusion, HnswIndexConfig, Modifier, NamedQuery, Payload, PayloadFieldSchema,
    PayloadOps, PayloadSchemaType, PointId, PointInsertOperations, PointOperations, Prefetch, QueryEnum,
    QueryRequest, ScoredPoint, ScoringQuery, ScrollRequest, SetPayloadOp, UpdateOperation, VectorInternal,
    WithPayloadInterface, WithVector, bm25_embed::EdgeBm25,
};
use rudder_core::{
    StoreError, VectorStore,
    store::{
        ChunkPayload, ChunkPoint, DocumentSummary, FoundBy, SearchHit, SearchMode, SearchRequest, StoreHealth,
    },
};
use serde_json::{Map, Value};
use std::{
    collections::HashSet,
    fs,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
};

pub(crate) const EDGE: &str = "edge";
/// The file qdrant-edge writes when it creates a shard; its presence means "load, don't create".
const EDGE_CONFIG_FILE: &str = "edge_config.json";

/// A [`VectorStore`] on one qdrant-edge shard under a directory.
#[derive(Debug)]
pub struct EdgeStore {
    /// Always `Some` until `drop` takes it out to close it under `guard`.
    shard: Option<EdgeShard>,
    dir: PathBuf,
    dim: usize,
    bm25: EdgeBm25,
    writes: Mutex<()>,
}

/// Below these (vectors' KB for the dense leg, points for the sparse one) a filtered search scans
/// instead of using the index. The engine's defaults (10 MB, 5,000 points) make every leg a scan
/// of a region's points up to tens of thousands of chunks.
const FULL_SCAN_KB: usize = 1_000;
const FULL_SCAN_POINTS: usize = 1_000;

impl EdgeStore {
    /// Opens the shard in `dir`, creating it (and the directory) if it does not exist. An existing
    /// shard must have been made with the same vector layout (`dim`-d cosine `dense`, `bm25` sparse).
    pub fn open(dir: &Path, dim: usize) -> Result<Self, StoreError> {
        if dim == 0 {
            return Err(StoreError::InvalidRequest { reason: "dense vector size must be positive".into() });
        }
        fs::create_dir_all(dir).map_err(|err| StoreError::Unavailable {
            backend: EDGE,
            reason: format!("cannot create {}: {err}", dir.display()),
        })?;
        let config = EdgeConfig::builder()
            .vector(
                DENSE_VECTOR,
                EdgeVectorParamsBuilder::new(dim, Distance::Cosine)
                    .hnsw_config(HnswIndexConfig { full_scan_threshold: FULL_SCAN_KB, ..Default::default() })
                    .build(),
            )
            .sparse_vector(
                SPARSE_VECTOR,
                // BM25 document vectors carry term frequencies only; the engine applies IDF at query time.
                EdgeSparseVectorParams {
                    modifier: Some(Modifier::Idf),
                    full_scan_threshold: Some(FULL_SCAN_POINTS),
                    ..Default::default()
                },
            )
            .build();
        let existing = dir.join(EDGE_CONFIG_FILE).exists();
        let shard = guard("open the shard", || {
            if existing { EdgeShard::load(dir, Some(config)) } else { EdgeShard::new(dir, config) }
        })?
        .map_err(|err| {
            let reason = format!("{}: {err}", dir.display());
            if existing {
                StoreError::Incompatible { backend: EDGE, reason }
            } else {
                StoreError::Unavailable { backend: EDGE, reason }
            }
        })?;
        // The BM25 every backend uses (English, the engine's defaults), so they score the sparse leg alike.
        let bm25 = common::bm25(EDGE)?;
        tracing::debug!(dir = %dir.display(), existing, "edge store open");
        Ok(Self { shard: Some(shard), dir: dir.to_owned(), dim, bm25, writes: Mutex::new(()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn shard(&self) -> Result<&EdgeShard, StoreError> {
        self.shard
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable { backend: EDGE, reason: "the store is closed".into() })
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic elsewhere leaves nothing inconsistent behind the lock.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, operation: UpdateOperation, what: &'static str) -> Result<(), StoreError> {
        self.shard()?.update(operation).map_err(points::backend(what))
    }

    fn set_current(&self, filter: Filter, current: bool) -> Result<(), StoreError> {
        let mut payload = Map::new();
        payload.insert(fields::CURRENT.to_owned(), Value::Bool(current));
        self.update(
            UpdateOperation::PayloadOperation(PayloadOps::SetPayload(SetPayloadOp {
                payload: Payload(payload),
                points: None,
                filter: Some(filter),
                key: None,
            })),
            "set the current version",
        )
    }

    fn query(&self, request: QueryRequest) -> Result<Vec<ScoredPoint>, StoreError> {
        self.shard()?.query(request).map_err(points::backend("search"))
    }

    /// Ids of one leg's candidates, as its prefetch in a hybrid query finds them.
    fn leg_ids(
        &self,
        leg: &ScoringQuery,
        filter: &Filter,
        limit: usize,
    ) -> Result<HashSet<PointId>, StoreError> {
        let request = query_request(vec![], leg.clone(), filter.clone(), limit, false);
        Ok(self.query(request)?.into_iter().map(|p| p.id).collect())
    }

    /// Documents (all, or those `filter` selects) with their versions, by doc_id.
    fn summaries(&self, filter: Option<Filter>) -> Result<Vec<DocumentSummary>, StoreError> {
        let selected = LISTED_FIELDS.iter().map(|name| filters::key(name)).collect::<Result<Vec<_>, _>>()?;
        let mut docs = common::DocumentList::default();
        self.scroll("list documents", filter, WithPayloadInterface::Fields(selected), |id, payload| {
            docs.add(|| points::point_id_text(id), &payload.map(|p| p.0).unwrap_or_default())
        })?;
        Ok(docs.finish())
    }

    /// Every point `filter` selects (all without one), page by page, with the payload `with_payload` asks for.
    fn scroll(
        &self,
        operation: &'static str,
        filter: Option<Filter>,
        with_payload: WithPayloadInterface,
        mut each: impl FnMut(PointId, Option<Payload>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut offset = None;
        loop {
            let (records, next) = self
                .shard()?
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(SCROLL_PAGE),
                    filter: filter.clone(),
                    with_payload: Some(with_payload.clone()),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(points::backend(operation))?;
            for record in records {
                each(record.id, record.payload)?;
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn hits(
        &self,
        points: Vec<ScoredPoint>,
        found_by: impl Fn(PointId) -> FoundBy,
    ) -> Result<Vec<SearchHit>, StoreError> {
        points
            .into_iter()
            .map(|point| {
                Ok(SearchHit {
                    id: points::chunk_id(point.id)?,
                    score: point.score,
                    found_by: found_by(point.id),
                    payload: points::chunk_payload(point.id, point.payload)?,
                })
            })
            .collect()
    }
}

impl VectorStore for EdgeStore {
    /// Builds HNSW and sparse indexes for what was written so far and merges small segments.
    fn optimize(&self) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        let shard = self.shard()?;
        guard("optimize", || shard.optimize())?.map_err(points::backend("optimize")).map(drop)
    }

    fn ensure_collection(&self) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        let schema = self.shard()?.info().payload_schema;
        let wanted = KEYWORD_INDEXES
            .iter()
            .map(|name| (*name, PayloadSchemaType::Keyword))
            .chain([(fields::CURRENT, PayloadSchemaType::Bool)]);
        for (name, kind) in wanted {
            let field_name = filters::key(name)?;
            if schema.contains_key(&field_name) {
                continue;
            }
            self.update(
                UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name,
                    field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                })),
                "create a payload index",
            )?;
        }
        Ok(())
    }

    fn upsert(&self, chunks: &[ChunkPoint]) -> Result<(), StoreError> {
        // Convert (and validate) everything before writing anything: a bad chunk fails the whole call.
        let points = chunks
            .iter()
            .map(|chunk| points::to_point(chunk, self.dim, &self.bm25))
            .collect::<Result<Vec<_>, _>>()?;
        let _writes = self.lock_writes();
        common::in_batches(points, |batch| {
            self.update(
                UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                    PointInsertOperations::PointsList(batch),
                )),
                "upsert points",
            )
        })
    }

    fn set_current_version(&self, doc_id: &str, version: &str) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        // New version first: between the two updates a reader may see both versions, never neither.
        self.set_current(filters::document_version(doc_id, version)?, true)?;
        self.set_current(filters::document(doc_id, Some(version))?, false)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        let shard = self.shard()?;
        guard("flush", || shard.flush())
    }

    fn delete_document(&self, doc_id: &str, keep_version: Option<&str>) -> Result<u64, StoreError> {
        let filter = filters::document(doc_id, keep_version)?;
        let _writes = self.lock_writes();
        let count = self
            .shard()?
            .count(qdrant_edge::CountRequest { filter: Some(filter.clone()), exact: true })
            .map_err(points::backend("count a document's points"))?;
        if count > 0 {
            self.update(
                UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter)),
                "delete a document",
            )?;
        }
        Ok(count as u64)
    }

    fn list_documents(&self) -> Result<Vec<DocumentSummary>, StoreError> {
        self.summaries(None)
    }

    fn document_summary(&self, doc_id: &str) -> Result<Option<DocumentSummary>, StoreError> {
        Ok(self.summaries(Some(filters::document(doc_id, None)?))?.pop())
    }

    fn document_chunks(&self, doc_id: &str, version: &str) -> Result<Vec<ChunkPayload>, StoreError> {
        let filter = filters::document_version(doc_id, version)?;
        let mut chunks = Vec::new();
        self.scroll(
            "read a document's chunks",
            Some(filter),
            WithPayloadInterface::Bool(true),
            |id, payload| {
                chunks.push(points::chunk_payload(id, payload)?);
                Ok(())
            },
        )?;
        chunks.sort_by_key(|chunk| chunk.chunk_index);
        Ok(chunks)
    }

    fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, StoreError> {
        let SearchLegs { dense, sparse, limit, prefetch_limit } =
            common::search_legs(request, self.dim, &self.bm25)?;
        let filter = filters::search_filter(&request.filter)?;
        let dense_leg = dense.map(|dense| nearest(DENSE_VECTOR, VectorInternal::Dense(dense)));
        let sparse_leg = sparse.map(|sparse| nearest(SPARSE_VECTOR, VectorInternal::Sparse(sparse)));
        match (request.mode, dense_leg, sparse_leg) {
            (SearchMode::Hybrid, Some(dense_leg), sparse_leg) => {
                let dense_ids = self.leg_ids(&dense_leg, &filter, prefetch_limit)?;
                let sparse_ids = match &sparse_leg {
                    Some(leg) => self.leg_ids(leg, &filter, prefetch_limit)?,
                    None => HashSet::new(),
                };
                let prefetches = [Some(dense_leg), sparse_leg]
                    .into_iter()
                    .flatten()
                    .map(|leg| prefetch(leg, filter.clone(), prefetch_limit))
                    .collect();
                let fused = ScoringQuery::Fusion(Fusion::Rrf { k: RRF_K, weights: None });
                let points = self.query(query_request(prefetches, fused, filter, limit, true))?;
                self.hits(points, |id| FoundBy {
                    dense: dense_ids.contains(&id),
                    sparse: sparse_ids.contains(&id),
                })
            }
            (SearchMode::Dense, Some(leg), _) => {
                let points = self.query(query_request(vec![], leg, filter, limit, true))?;
                self.hits(points, |_| FoundBy { dense: true, sparse: false })
            }
            (SearchMode::Sparse, _, Some(leg)) => {
                let points = self.query(query_request(vec![], leg, filter, limit, true))?;
                self.hits(points, |_| FoundBy { dense: false, sparse: true })
            }
            _ => Ok(Vec::new()),
        }
    }

    fn health(&self) -> Result<StoreHealth, StoreError> {
        let info = self.shard()?.info();
        Ok(StoreHealth {
            backend: EDGE,
            points: info.points_count as u64,
            detail: format!(
                "{}: {} segments, {} indexed vectors",
                self.dir.display(),
                info.segments_count,
                info.indexed_vectors_count
            ),
        })
    }
}

impl Drop for EdgeStore {
    /// `EdgeShard`'s own drop flushes and panics if that fails (its directory removed, disk full);
    /// closing it under `guard` keeps such a failure from aborting a process that is already unwinding.
    fn drop(&mut self) {
        if let Some(shard) = self.shard.take()
            && let Err(err) = guard("close the shard", move || drop(shard))
        {
            tracing::warn!(dir = %self.dir.display(), "{err}");
        }
    }
}

fn nearest(vector: &str, query: VectorInternal) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery { query, using: Some(vector.to_owned()) }))
}

fn prefetch(query: ScoringQuery, filter: Filter, limit: usize) -> Prefetch {
    Prefetch {
        prefetches: vec![],
        query: Some(query),
        limit,
        params: None,
        filter: Some(filter),
        score_threshold: None,
    }
}

fn query_request(
    prefetches: Vec<Prefetch>,
    query: ScoringQuery,
    filter: Filter,
    limit: usize,
    with_payload: bool,
) -> QueryRequest {
    QueryRequest {
        prefetches,
        query: Some(query),
        filter: Some(filter),
        score_threshold: None,
        limit,
        offset: 0,
        params: None,
        with_vector: WithVector::Bool(false),
        with_payload: WithPayloadInterface::Bool(with_payload),
    }
}

/// Runs an engine call that may panic (qdrant-edge 0.7.2 `expect`s inside `flush` and may on
/// damaged files while loading) and turns a panic into an error instead of taking the process down.
fn guard<T>(operation: &'static str, call: impl FnOnce() -> T) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the engine panicked".to_owned());
        StoreError::Backend { backend: EDGE, operation, reason }
    })
}
