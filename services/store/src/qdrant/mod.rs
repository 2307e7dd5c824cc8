//! The server backend: one collection on a Qdrant server or cluster, through qdrant-client (gRPC).
//! It owns connecting, creating the collection with rudder's layout (or checking an existing one
//! fits: named vectors `dense`, cosine, and `bm25`, sparse with the `Idf` modifier; payload indexes,
//! `regions` as the tenant key), and the hybrid query in the client's types. Vector names, the
//! payload, BM25 encoding and request checks are [`crate::common`]'s, shared with the embedded
//! backend, so both store and rank alike.
//!
//! [`VectorStore`] is blocking and qdrant-client is async: the store owns a small tokio runtime (one
//! worker thread, for the connections' I/O) and every method blocks the calling thread on it. Call
//! the store from plain threads or `spawn_blocking`, never from inside an async task (tokio panics
//! when a runtime is blocked on from within another's task). Every write waits until the server has
//! applied it (`wait = true`), so a write that returned is visible to searches and `flush` has
//! nothing left to do. Writes from one store go through one mutex, like the embedded backend's, so
//! the two steps of switching a version or deleting a document never interleave with another write.

mod errors;
mod filters;
mod points;

use crate::common::{
    self, DENSE_VECTOR, KEYWORD_INDEXES, LISTED_FIELDS, RRF_K, SCROLL_PAGE, SPARSE_VECTOR, SearchLegs, fields,
};
use errors::{Endpoint, QDRANT};
use qdrant_client::{
    Qdrant, QdrantError,
    qdrant::{
        CollectionInfo, CollectionStatus, CountPointsBuilder, CreateCollectionBuilder,
        CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
        KeywordIndexParamsBuilder, Modifier, PayloadIncludeSelector, PointId, PointStruct,
        PointsOperationResponse, PrefetchQueryBuilder, Query, QueryPointsBuilder, RrfBuilder, ScoredPoint,
        ScrollPointsBuilder, SetPayloadPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
        UpsertPointsBuilder, Value, VectorInput, VectorParamsBuilder, VectorsConfigBuilder, vectors_config,
    },
};
use qdrant_edge::{SparseVector, bm25_embed::EdgeBm25};
use rudder_core::{
    StoreError, VectorStore,
    store::{
        ChunkId, ChunkPayload, ChunkPoint, DocumentSummary, FoundBy, SearchHit, SearchMode, SearchRequest,
        StoreHealth,
    },
};
use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};
use tokio::runtime::Runtime;

/// Where and how to connect, and how to create the collection when it is missing.
#[derive(Clone)]
pub struct QdrantOptions {
    /// The server's gRPC URL, e.g. `http://127.0.0.1:6334`; `https` enables TLS.
    pub url: String,
    /// Sent as the `api-key` header. Never shown: not by `Debug`, not in errors.
    pub api_key: Option<String>,
    pub collection: String,
    /// Shards of a collection created here; 0 leaves it to the server. An existing collection keeps its own.
    pub shard_number: u32,
    /// Copies of each shard in a cluster for a collection created here; 0 leaves it to the server.
    pub replication_factor: u32,
    /// Limit on connecting and on each request.
    pub timeout: Duration,
}

impl QdrantOptions {
    /// Options for `collection` at `url`: no API key, one shard, one copy, 10 s timeout.
    pub fn new(url: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            collection: collection.into(),
            shard_number: 1,
            replication_factor: 1,
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for QdrantOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantOptions")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| rudder_core::Secret::REDACTED))
            .field("collection", &self.collection)
            .field("shard_number", &self.shard_number)
            .field("replication_factor", &self.replication_factor)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`VectorStore`] on one collection of a Qdrant server or cluster.
pub struct QdrantStore {
    client: Qdrant,
    /// Always `Some` until `drop` takes it out to shut it down without blocking.
    runtime: Option<Runtime>,
    endpoint: Endpoint,
    collection: String,
    shard_number: u32,
    replication_factor: u32,
    dim: usize,
    bm25: EdgeBm25,
    writes: Mutex<()>,
}

impl fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantStore")
            .field("endpoint", &self.endpoint)
            .field("collection", &self.collection)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

/// One leg of a search: a nearest-neighbour query on one named vector.
#[derive(Debug, Clone)]
struct Leg {
    using: &'static str,
    query: Query,
}

impl QdrantStore {
    /// Connects to the server and checks that it answers (gRPC connects lazily, so without this a
    /// wrong URL would only show on the first call). Creates nothing: [`VectorStore::ensure_collection`]
    /// creates or checks the collection for `dim`-d dense vectors. Blocks; see the module docs.
    pub fn connect(options: &QdrantOptions, dim: usize) -> Result<Self, StoreError> {
        if dim == 0 {
            return Err(StoreError::InvalidRequest { reason: "dense vector size must be positive".into() });
        }
        if options.collection.trim().is_empty() {
            return Err(StoreError::InvalidRequest {
                reason: "a Qdrant store needs a collection name".into(),
            });
        }
        let endpoint = Endpoint::new(&options.url, options.api_key.as_deref());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rudder-qdrant")
            .enable_all()
            .build()
            .map_err(|err| StoreError::Unavailable {
                backend: QDRANT,
                reason: format!("cannot start the Qdrant client's runtime: {err}"),
            })?;
        let client = {
            let _context = runtime.enter();
            Qdrant::from_url(&options.url)
                .api_key(options.api_key.clone())
                .timeout(options.timeout)
                .connect_timeout(options.timeout)
                // The check prints to stdout and runs its own runtime on another thread.
                .skip_compatibility_check()
                .build()
        }
        .map_err(|err| endpoint.error("connect", err))?;
        let store = Self {
            client,
            runtime: Some(runtime),
            endpoint,
            collection: options.collection.clone(),
            shard_number: options.shard_number,
            replication_factor: options.replication_factor,
            dim,
            bm25: common::bm25(QDRANT)?,
            writes: Mutex::new(()),
        };
        let reply = store.block_on("connect", store.client.health_check())?;
        tracing::debug!(
            url = store.endpoint.url(),
            collection = %store.collection,
            server_version = %reply.version,
            "qdrant store connected"
        );
        Ok(store)
    }

    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Deletes the whole collection with every point in it (tests, operations). Irreversible;
    /// [`VectorStore::ensure_collection`] creates it again, empty.
    pub fn drop_collection(&self) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        self.block_on("delete the collection", self.client.delete_collection(self.collection.as_str()))?;
        Ok(())
    }

    /// Runs one client call to completion on the store's runtime.
    fn block_on<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, QdrantError>>,
    ) -> Result<T, StoreError> {
        let runtime = self.runtime.as_ref().ok_or_else(|| StoreError::Unavailable {
            backend: QDRANT,
            reason: "the store is closed".into(),
        })?;
        runtime.block_on(call).map_err(|err| self.endpoint.error(operation, err))
    }

    /// Runs one write (sent with `wait = true`) and checks the server applied it.
    fn write(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<PointsOperationResponse, QdrantError>>,
    ) -> Result<(), StoreError> {
        let response = self.block_on(operation, call)?;
        self.endpoint.confirm(operation, &response)
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic elsewhere leaves nothing inconsistent behind the lock.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn collection_info(&self, operation: &'static str) -> Result<CollectionInfo, StoreError> {
        self.block_on(operation, self.client.collection_info(self.collection.as_str()))?
            .result
            .ok_or_else(|| self.endpoint.backend(operation, "the server sent no collection info".into()))
    }

    fn create_collection(&self) -> Result<(), StoreError> {
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            DENSE_VECTOR,
            VectorParamsBuilder::new(self.dim as u64, Distance::Cosine),
        );
        let mut sparse = SparseVectorsConfigBuilder::default();
        // BM25 document vectors carry term frequencies only; the server applies IDF at query time.
        sparse.add_named_vector_params(
            SPARSE_VECTOR,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
        );
        let mut request = CreateCollectionBuilder::new(self.collection.as_str())
            .vectors_config(vectors)
            .sparse_vectors_config(sparse);
        if self.shard_number > 0 {
            request = request.shard_number(self.shard_number);
        }
        if self.replication_factor > 0 {
            request = request.replication_factor(self.replication_factor);
        }
        self.block_on("create the collection", self.client.create_collection(request))?;
        tracing::info!(
            url = self.endpoint.url(),
            collection = %self.collection,
            dim = self.dim,
            "created the qdrant collection"
        );
        Ok(())
    }

    fn set_current(&self, filter: Filter, current: bool) -> Result<(), StoreError> {
        let payload = HashMap::from([(fields::CURRENT.to_owned(), Value::from(current))]);
        let request = SetPayloadPointsBuilder::new(self.collection.as_str(), payload)
            .points_selector(filter)
            .wait(true);
        self.write("set the current version", self.client.set_payload(request))
    }

    fn query(&self, request: QueryPointsBuilder) -> Result<Vec<ScoredPoint>, StoreError> {
        Ok(self.block_on("search", self.client.query(request))?.result)
    }

    /// The query of one leg alone, as its prefetch in a hybrid query runs it.
    fn leg_query(&self, leg: &Leg, filter: Filter, limit: usize, with_payload: bool) -> QueryPointsBuilder {
        QueryPointsBuilder::new(self.collection.as_str())
            .query(leg.query.clone())
            .using(leg.using)
            .filter(filter)
            .limit(limit as u64)
            .with_payload(with_payload)
    }

    /// Ids of one leg's candidates, as its prefetch in a hybrid query finds them.
    fn leg_ids(&self, leg: &Leg, filter: &Filter, limit: usize) -> Result<HashSet<ChunkId>, StoreError> {
        let found = self.query(self.leg_query(leg, filter.clone(), limit, false))?;
        Ok(found.iter().filter_map(|point| points::chunk_id(point.id.as_ref()).ok()).collect())
    }

    /// Documents (all, or those `filter` selects) with their versions, by doc_id.
    fn summaries(&self, filter: Option<&Filter>) -> Result<Vec<DocumentSummary>, StoreError> {
        let mut docs = common::DocumentList::default();
        self.scroll("list documents", filter, Some(&LISTED_FIELDS[..]), |id, payload| {
            docs.add(|| points::point_id_text(id), &points::json(payload))
        })?;
        Ok(docs.finish())
    }

    fn hits(
        &self,
        found: Vec<ScoredPoint>,
        found_by: impl Fn(ChunkId) -> FoundBy,
    ) -> Result<Vec<SearchHit>, StoreError> {
        found
            .into_iter()
            .map(|point| {
                let id = points::chunk_id(point.id.as_ref())?;
                Ok(SearchHit {
                    id,
                    score: point.score,
                    found_by: found_by(id),
                    payload: points::chunk_payload(point.id.as_ref(), point.payload)?,
                })
            })
            .collect()
    }

    /// Every point (of `filter`, if any), a page at a time, with the payload `fields` (or all of it).
    fn scroll(
        &self,
        operation: &'static str,
        filter: Option<&Filter>,
        fields: Option<&[&str]>,
        mut each: impl FnMut(Option<&PointId>, HashMap<String, Value>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut offset: Option<PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(self.collection.as_str())
                .limit(SCROLL_PAGE as u32)
                .with_vectors(false);
            request = match fields {
                Some(fields) => request.with_payload(PayloadIncludeSelector::new(
                    fields.iter().map(|field| (*field).to_owned()).collect::<Vec<_>>(),
                )),
                None => request.with_payload(true),
            };
            if let Some(filter) = filter {
                request = request.filter(filter.clone());
            }
            if let Some(offset) = offset.take() {
                request = request.offset(offset);
            }
            let response = self.block_on(operation, self.client.scroll(request))?;
            for point in response.result {
                each(point.id.as_ref(), point.payload)?;
            }
            match response.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }
}

impl VectorStore for QdrantStore {
    fn ensure_collection(&self) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        let exists = self.block_on(
            "check that the collection exists",
            self.client.collection_exists(self.collection.as_str()),
        )?;
        if !exists && let Err(err) = self.create_collection() {
            // Another instance may have created it meanwhile: then it is checked like any other.
            let exists = self.block_on(
                "check that the collection exists",
                self.client.collection_exists(self.collection.as_str()),
            )?;
            if !exists {
                return Err(err);
            }
        }
        let info = self.collection_info("read the collection's configuration")?;
        check_layout(&info, &self.collection, self.dim)?;
        let wanted = KEYWORD_INDEXES
            .iter()
            .map(|name| (*name, FieldType::Keyword))
            .chain([(fields::CURRENT, FieldType::Bool)]);
        for (name, kind) in wanted {
            if info.payload_schema.contains_key(name) {
                continue;
            }
            let mut request =
                CreateFieldIndexCollectionBuilder::new(self.collection.as_str(), name, kind).wait(true);
            if name == fields::REGIONS {
                // Searches always filter on one region: the server keeps each region's points together.
                request = request.field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true));
            }
            self.write("create a payload index", self.client.create_field_index(request))?;
        }
        Ok(())
    }

    fn upsert(&self, chunks: &[ChunkPoint]) -> Result<(), StoreError> {
        // Convert (and validate) everything before writing anything: a bad chunk fails the whole call.
        let converted = chunks
            .iter()
            .map(|chunk| points::to_point(chunk, self.dim, &self.bm25))
            .collect::<Result<Vec<PointStruct>, _>>()?;
        let _writes = self.lock_writes();
        common::in_batches(converted, |batch| {
            let request = UpsertPointsBuilder::new(self.collection.as_str(), batch).wait(true);
            self.write("upsert points", self.client.upsert_points(request))
        })
    }

    fn set_current_version(&self, doc_id: &str, version: &str) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        // New version first: between the two updates a reader may see both versions, never neither.
        self.set_current(filters::document_version(doc_id, version), true)?;
        self.set_current(filters::document(doc_id, Some(version)), false)
    }

    /// Nothing to do: every write waited until the server applied it (`wait = true`); the server
    /// makes it durable through its own write-ahead log.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn delete_document(&self, doc_id: &str, keep_version: Option<&str>) -> Result<u64, StoreError> {
        let filter = filters::document(doc_id, keep_version);
        let _writes = self.lock_writes();
        let operation = "count a document's points";
        let request = CountPointsBuilder::new(self.collection.as_str()).filter(filter.clone()).exact(true);
        let count = self
            .block_on(operation, self.client.count(request))?
            .result
            .map(|result| result.count)
            .ok_or_else(|| self.endpoint.backend(operation, "the server sent no count".into()))?;
        if count > 0 {
            let request = DeletePointsBuilder::new(self.collection.as_str()).points(filter).wait(true);
            self.write("delete a document", self.client.delete_points(request))?;
        }
        Ok(count)
    }

    fn list_documents(&self) -> Result<Vec<DocumentSummary>, StoreError> {
        self.summaries(None)
    }

    fn document_summary(&self, doc_id: &str) -> Result<Option<DocumentSummary>, StoreError> {
        Ok(self.summaries(Some(&filters::document(doc_id, None)))?.pop())
    }

    fn document_chunks(&self, doc_id: &str, version: &str) -> Result<Vec<ChunkPayload>, StoreError> {
        let filter = filters::document_version(doc_id, version);
        let mut chunks = Vec::new();
        self.scroll("read a document's chunks", Some(&filter), None, |id, payload| {
            chunks.push(points::chunk_payload(id, payload)?);
            Ok(())
        })?;
        chunks.sort_by_key(|chunk| chunk.chunk_index);
        Ok(chunks)
    }

    fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, StoreError> {
        let SearchLegs { dense, sparse, limit, prefetch_limit } =
            common::search_legs(request, self.dim, &self.bm25)?;
        let filter = filters::search_filter(&request.filter)?;
        let dense_leg = dense.map(|dense| Leg {
            using: DENSE_VECTOR,
            query: Query::new_nearest(VectorInput::new_dense(dense)),
        });
        let sparse_leg = sparse.map(|SparseVector { indices, values }| Leg {
            using: SPARSE_VECTOR,
            query: Query::new_nearest(VectorInput::new_sparse(indices, values)),
        });
        match (request.mode, dense_leg, sparse_leg) {
            (SearchMode::Hybrid, Some(dense_leg), sparse_leg) => {
                let dense_ids = self.leg_ids(&dense_leg, &filter, prefetch_limit)?;
                let sparse_ids = match &sparse_leg {
                    Some(leg) => self.leg_ids(leg, &filter, prefetch_limit)?,
                    None => HashSet::new(),
                };
                let mut fused = QueryPointsBuilder::new(self.collection.as_str())
                    .query(Query::new_rrf(RrfBuilder::with_k(RRF_K as u32)))
                    .limit(limit as u64)
                    .with_payload(true);
                for leg in [Some(dense_leg), sparse_leg].into_iter().flatten() {
                    fused = fused.add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(leg.query)
                            .using(leg.using)
                            .filter(filter.clone())
                            .limit(prefetch_limit as u64),
                    );
                }
                let found = self.query(fused.filter(filter))?;
                self.hits(found, |id| FoundBy {
                    dense: dense_ids.contains(&id),
                    sparse: sparse_ids.contains(&id),
                })
            }
            (SearchMode::Dense, Some(leg), _) => {
                let found = self.query(self.leg_query(&leg, filter, limit, true))?;
                self.hits(found, |_| FoundBy { dense: true, sparse: false })
            }
            (SearchMode::Sparse, _, Some(leg)) => {
                let found = self.query(self.leg_query(&leg, filter, limit, true))?;
                self.hits(found, |_| FoundBy { dense: false, sparse: true })
            }
            _ => Ok(Vec::new()),
        }
    }

    fn health(&self) -> Result<StoreHealth, StoreError> {
        let info = self.collection_info("read the collection's health")?;
        let status = CollectionStatus::try_from(info.status).map_or("unknown", |status| status.as_str_name());
        Ok(StoreHealth {
            backend: QDRANT,
            points: info.points_count.unwrap_or(0),
            detail: format!(
                "{} collection {}: {status}, {} segments, {} indexed vectors",
                self.endpoint.url(),
                self.collection,
                info.segments_count,
                info.indexed_vectors_count.unwrap_or(0)
            ),
        })
    }
}

impl Drop for QdrantStore {
    /// Shuts the runtime down without waiting for its tasks: dropping a runtime blocks, which tokio
    /// refuses (panics) when the last handle to the store goes away inside an async task.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Checks an existing collection has what rudder writes and queries: a named `dense` vector of
/// `dim` dimensions compared by cosine, and a `bm25` sparse vector with the IDF modifier.
fn check_layout(info: &CollectionInfo, collection: &str, dim: usize) -> Result<(), StoreError> {
    let incompatible = |reason: String| StoreError::Incompatible {
        backend: QDRANT,
        reason: format!("collection {collection:?}: {reason}"),
    };
    let params = info.config.as_ref().and_then(|config| config.params.as_ref());
    let dense = match params.and_then(|params| params.vectors_config.as_ref()).and_then(|v| v.config.as_ref())
    {
        Some(vectors_config::Config::ParamsMap(map)) => map.map.get(DENSE_VECTOR),
        Some(vectors_config::Config::Params(_)) | None => None,
    };
    let Some(dense) = dense else {
        return Err(incompatible(format!("it has no named vector {DENSE_VECTOR:?}")));
    };
    if dense.size != dim as u64 {
        return Err(incompatible(format!(
            "its {DENSE_VECTOR:?} vectors have {} dimensions, the embedder gives {dim}",
            dense.size
        )));
    }
    if dense.distance != Distance::Cosine as i32 {
        let distance =
            Distance::try_from(dense.distance).map_or("unknown", |distance| distance.as_str_name());
        return Err(incompatible(format!(
            "its {DENSE_VECTOR:?} vectors use {distance} distance, not Cosine"
        )));
    }
    let sparse = params
        .and_then(|params| params.sparse_vectors_config.as_ref())
        .and_then(|sparse| sparse.map.get(SPARSE_VECTOR));
    match sparse {
        None => Err(incompatible(format!("it has no sparse vector {SPARSE_VECTOR:?}"))),
        Some(sparse) if sparse.modifier != Some(Modifier::Idf as i32) => {
            Err(incompatible(format!("its sparse vector {SPARSE_VECTOR:?} has no IDF modifier")))
        }
        Some(_) => Ok(()),
    }
}
