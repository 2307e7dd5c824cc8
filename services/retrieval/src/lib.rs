//! rudder-retrieval: turns a support question into the handful of policy passages that answer it,
//! for the requested region only. Region and brand isolation is part of the store query; what this
//! crate adds on top is validation, the query embedding, the per-document cap and the wire adapter.
//! [`Retriever`] is also the in-process [`PassageSource`] generation uses in the all-in-one server.

mod grpc;
mod mmr;
pub mod quality;
mod remote;

use std::{sync::Arc, time::Instant};

use rudder_core::{
    EmbedError, Embedder, Passage, PassageQuery, PassageSource, ServiceError, StoreError, VectorStore,
    passage::BoxFuture,
    store::{SearchFilter, SearchHit, SearchMode, SearchRequest},
};

pub use grpc::RetrievalServiceImpl;
pub use remote::RemoteRetrieval;

pub const DEFAULT_TOP_K: u32 = 5;
pub const MAX_TOP_K: u32 = 100;
pub const DEFAULT_MAX_PER_DOCUMENT: u32 = 2;

/// A retrieval request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRetrieve {
    pub query: String,
    pub region: String,
    pub brand: Option<String>,
    pub top_k: u32,
    pub mode: SearchMode,
    pub tags: Vec<String>,
    pub doc_ids: Vec<String>,
    pub min_score: Option<f32>,
    pub max_per_document: u32,
    /// Maximal-marginal-relevance diversity (0 most diverse .. 1 pure relevance); None: relevance order.
    pub mmr_lambda: Option<f32>,
}

/// Candidates MMR chooses from, per passage asked for.
const MMR_CANDIDATES_PER_PASSAGE: u32 = 3;

/// Passages found, best first, with what it cost.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub passages: Vec<Passage>,
    pub query_truncated: bool,
    pub embed_us: u64,
    pub search_us: u64,
}

#[derive(Debug, Clone)]
pub struct Retriever {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    regions: Vec<String>,
}

impl Retriever {
    /// `regions`: the regions this deployment serves (unknown ones are NOT_FOUND).
    pub fn new(store: Arc<dyn VectorStore>, embedder: Arc<dyn Embedder>, regions: Vec<String>) -> Self {
        Self { store, embedder, regions }
    }

    /// Blocking: embeds the query and searches the store.
    pub fn retrieve(&self, request: &ValidRetrieve) -> Result<Retrieved, ServiceError> {
        if !self.regions.iter().any(|r| r == &request.region) {
            return Err(ServiceError::NotFound {
                what: "region",
                name: request.region.clone(),
                known: self.regions.clone(),
            });
        }
        let started = Instant::now();
        let (dense, query_truncated) = match request.mode {
            SearchMode::Sparse => (Vec::new(), false),
            _ => {
                let embedding = self.embedder.embed_query(&request.query).map_err(embed_error)?;
                (embedding.vector, embedding.truncated)
            }
        };
        let embed_us = started.elapsed().as_micros() as u64;
        let started = Instant::now();
        // Over-fetch so the per-document cap can still fill top_k with other documents.
        let limit = (request.top_k * 3).min(300) as usize;
        let hits = self
            .store
            .search(&SearchRequest {
                dense,
                text: request.query.clone(),
                filter: SearchFilter {
                    region: request.region.clone(),
                    brand: request.brand.clone(),
                    tags: request.tags.clone(),
                    doc_ids: request.doc_ids.clone(),
                    current_only: true,
                },
                mode: request.mode,
                limit,
                prefetch_limit: limit.max(20),
            })
            .map_err(store_error)?;
        let search_us = started.elapsed().as_micros() as u64;
        let passages = match request.mmr_lambda {
            None => {
                cap_per_document(hits, request.max_per_document, request.top_k as usize, request.min_score)
            }
            Some(lambda) => {
                let pool = (request.top_k * MMR_CANDIDATES_PER_PASSAGE) as usize;
                let candidates = cap_per_document(hits, request.max_per_document, pool, request.min_score);
                self.diversify(candidates, request.top_k as usize, lambda)?
            }
        };
        Ok(Retrieved { passages, query_truncated, embed_us, search_us })
    }

    /// The MMR pick of `top_k` among `candidates` (best first). The candidates' texts are embedded
    /// again for their similarities: one batch of a few dozen passages, paid only when asked for.
    fn diversify(
        &self,
        candidates: Vec<Passage>,
        top_k: usize,
        lambda: f32,
    ) -> Result<Vec<Passage>, ServiceError> {
        if candidates.len() <= 1 {
            return Ok(candidates);
        }
        let texts: Vec<String> = candidates.iter().map(|p| p.text.clone()).collect();
        let vectors = self.embedder.embed_documents(&texts).map_err(embed_error)?;
        let scores: Vec<f32> = candidates.iter().map(|p| p.score).collect();
        let order = mmr::select(&scores, &vectors, top_k, lambda);
        let mut slots: Vec<Option<Passage>> = candidates.into_iter().map(Some).collect();
        Ok(order.into_iter().filter_map(|i| slots.get_mut(i).and_then(Option::take)).collect())
    }
}

/// Best first, at most `per_document` passages of any one document, `top_k` in all.
fn cap_per_document(
    hits: Vec<SearchHit>,
    per_document: u32,
    top_k: usize,
    min_score: Option<f32>,
) -> Vec<Passage> {
    let mut taken: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    hits.into_iter()
        .filter(|hit| min_score.is_none_or(|min| hit.score >= min))
        .filter(|hit| {
            let count = taken.entry(hit.payload.doc_id.clone()).or_default();
            *count += 1;
            *count <= per_document
        })
        .take(top_k)
        .map(passage)
        .collect()
}

fn passage(hit: SearchHit) -> Passage {
    let p = hit.payload;
    Passage {
        doc_id: p.doc_id,
        version: p.version,
        title: p.title,
        heading_path: p.heading_path,
        text: p.text,
        source: p.source,
        regions: p.regions,
        brand: p.brand,
        char_start: p.char_start,
        char_end: p.char_end,
        chunk_index: p.chunk_index,
        score: hit.score,
        found_by_dense: hit.found_by.dense,
        found_by_sparse: hit.found_by.sparse,
    }
}

fn store_error(err: StoreError) -> ServiceError {
    match err {
        StoreError::Unavailable { .. } => ServiceError::Unavailable(err.to_string()),
        StoreError::InvalidRequest { .. } => ServiceError::invalid("query", err.to_string()),
        _ => ServiceError::Internal(err.to_string()),
    }
}

fn embed_error(err: EmbedError) -> ServiceError {
    match err {
        EmbedError::Unavailable { .. } => ServiceError::Unavailable(err.to_string()),
        EmbedError::InvalidInput { .. } => ServiceError::invalid("query", err.to_string()),
        EmbedError::Inference { .. } => ServiceError::Internal(err.to_string()),
    }
}

impl PassageSource for Retriever {
    fn retrieve(&self, query: PassageQuery) -> BoxFuture<Result<Vec<Passage>, ServiceError>> {
        let retriever = self.clone();
        Box::pin(async move {
            let request = ValidRetrieve {
                query: query.question,
                region: query.region,
                brand: query.brand,
                top_k: query.top_k.clamp(1, MAX_TOP_K),
                mode: query.mode,
                tags: query.tags,
                doc_ids: Vec::new(),
                min_score: query.min_score,
                max_per_document: DEFAULT_MAX_PER_DOCUMENT,
                mmr_lambda: None,
            };
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(|| retriever.retrieve(&request)))
                .await
                .map_err(|err| ServiceError::Internal(format!("retrieval task failed: {err}")))?
                .map(|retrieved| retrieved.passages)
        })
    }
}
