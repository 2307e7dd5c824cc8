//! RetrievalService over gRPC: validation into [`ValidRetrieve`] at the edge, the search on a blocking
//! thread, passages and timings on the wire.

use rudder_core::ServiceError;
use rudder_proto::{status, v1};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::{DEFAULT_MAX_PER_DOCUMENT, DEFAULT_TOP_K, MAX_TOP_K, Retriever, ValidRetrieve};

#[derive(Debug, Clone)]
pub struct RetrievalServiceImpl {
    retriever: Retriever,
}

impl RetrievalServiceImpl {
    pub fn new(retriever: Retriever) -> Self {
        Self { retriever }
    }
}

impl ValidRetrieve {
    pub fn from_wire(request: v1::RetrieveRequest) -> Result<Self, ServiceError> {
        let v1::RetrieveRequest {
            query,
            region,
            brand,
            top_k,
            mode,
            tags,
            doc_ids,
            min_score,
            max_per_document,
            mmr_lambda,
        } = request;
        let query = query.trim().to_owned();
        if query.is_empty() {
            return Err(ServiceError::invalid("query", "must not be empty"));
        }
        let region = rudder_core::names::region(&region);
        if region.is_empty() {
            return Err(ServiceError::invalid("region", "must be set"));
        }
        if top_k > MAX_TOP_K {
            return Err(ServiceError::invalid(
                "top_k",
                format!("must be 1 to {MAX_TOP_K} (0 for the default {DEFAULT_TOP_K})"),
            ));
        }
        if min_score.is_some_and(|s| !s.is_finite()) {
            return Err(ServiceError::invalid("min_score", "must be a finite number"));
        }
        if mmr_lambda.is_some_and(|l| !(0.0..=1.0).contains(&l)) {
            return Err(ServiceError::invalid(
                "mmr_lambda",
                "must be between 0.0 (most diverse) and 1.0 (pure relevance)",
            ));
        }
        let mode = rudder_proto::convert::search_mode(mode)
            .ok_or_else(|| ServiceError::invalid("mode", format!("unknown retrieval mode {mode}")))?;
        Ok(Self {
            query,
            region,
            brand: rudder_core::names::brand(&brand),
            top_k: if top_k == 0 { DEFAULT_TOP_K } else { top_k },
            mode,
            tags,
            doc_ids,
            min_score,
            max_per_document: if max_per_document == 0 { DEFAULT_MAX_PER_DOCUMENT } else { max_per_document },
            mmr_lambda,
        })
    }
}

#[tonic::async_trait]
impl v1::retrieval_service_server::RetrievalService for RetrievalServiceImpl {
    #[instrument(skip_all, fields(region = %request.get_ref().region))]
    async fn retrieve(
        &self,
        request: Request<v1::RetrieveRequest>,
    ) -> Result<Response<v1::RetrieveResponse>, Status> {
        let started = std::time::Instant::now();
        let who = rudder_proto::convert::principal(&request);
        let mut valid = ValidRetrieve::from_wire(request.into_inner()).map_err(status)?;
        // The store filter is the region (and brand) asked for: within the caller's scope.
        valid.brand = who.brand_for(valid.brand.take()).map_err(status)?;
        who.check(&valid.region, valid.brand.as_deref()).map_err(status)?;
        let retriever = self.retriever.clone();
        let retrieved = tokio::task::spawn_blocking(move || retriever.retrieve(&valid))
            .await
            .map_err(|err| Status::internal(format!("retrieval task failed: {err}")))?
            .map_err(status)?;
        Ok(Response::new(v1::RetrieveResponse {
            passages: retrieved.passages.iter().map(Into::into).collect(),
            query_truncated: retrieved.query_truncated,
            timings: Some(v1::RetrievalTimings {
                embed_us: retrieved.embed_us,
                search_us: retrieved.search_us,
                total_us: started.elapsed().as_micros() as u64,
            }),
        }))
    }
}
