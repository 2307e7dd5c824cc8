//! The gRPC adapter: `rudder.v1.IngestService` over the [`Pipeline`] and the [`catalog`]. It owns the
//! upload stream's protocol (start, data, end; order and count limits; per-document state in
//! [`upload`]), the proto <-> domain
//! conversions (proto messages destructured completely, so a new field breaks the build here), moving
//! blocking work onto `spawn_blocking` (a document's store write runs behind the stream while the
//! next document is received and embedded), and the one mapping from [`ServiceError`] to
//! `tonic::Status`.

use crate::{
    catalog::{self, ListQuery, StoredDocument},
    error::IngestError,
    pipeline::{DocumentReport, IngestOptions, Outcome, Pipeline, Run, Staged, WriteScope},
    upload::{self, Finished, OpenDocument, Sidecars},
};
use rudder_core::{Embedder, ServiceError, VectorStore, store::ChunkPayload};
use rudder_proto::{
    status, timestamp,
    v1::{
        self as pb, DeleteDocumentRequest, DeleteDocumentResponse, DocumentData, DocumentInfo, DocumentRef,
        DocumentResult, GetDocumentRequest, GetDocumentResponse, IngestOutcome, IngestRequest,
        IngestResponse, IngestSummary, ListDocumentsRequest, ListDocumentsResponse, Passage,
        ingest_request::Message,
        ingest_service_server::{IngestService, IngestServiceServer},
    },
};
use std::{sync::Arc, time::Instant};
use tonic::{Request, Response, Status, Streaming};

/// Page size of `ListDocuments` when the request gives 0, and the most it may ask for.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

/// `IngestService` on a store and an embedder.
#[derive(Debug, Clone)]
pub struct IngestServiceImpl {
    pipeline: Arc<Pipeline>,
}

impl IngestServiceImpl {
    pub fn new(store: Arc<dyn VectorStore>, embedder: Arc<dyn Embedder>, options: IngestOptions) -> Self {
        Self::from_pipeline(Arc::new(Pipeline::new(store, embedder, options)))
    }

    /// Shares a pipeline with other users of it (a local `rudder ingest --local`, a benchmark).
    pub fn from_pipeline(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline }
    }

    /// The tonic service to add to a server's router.
    pub fn into_server(self) -> IngestServiceServer<Self> {
        IngestServiceServer::new(self)
    }

    /// Runs blocking work with the pipeline on the blocking pool, in the caller's span.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Pipeline) -> Result<T, IngestError> + Send + 'static,
    ) -> Result<T, Status> {
        let pipeline = Arc::clone(&self.pipeline);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&pipeline)))
            .await
            .map_err(|err| IngestError::Task(err.to_string()))
            .and_then(|result| result)
            .map_err(|err| status(err.into()))
    }
}

/// The wire response for documents ingested outside an upload stream (`rudder ingest --local`), so
/// both paths print the same table. `bytes_received` counts the documents' content as read, as an
/// upload stream counts the bytes of its data messages.
pub fn response_for(
    reports: Vec<DocumentReport>,
    bytes_received: u64,
    elapsed: std::time::Duration,
) -> IngestResponse {
    let mut summary = IngestSummary { bytes_received, ..IngestSummary::default() };
    let results = reports.into_iter().map(|report| document_result(report, &mut summary)).collect();
    summary.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    IngestResponse { results, summary: Some(summary) }
}

/// The store write of the last staged document, on the blocking pool while the stream goes on to
/// receive and embed the next one (the embedding model then does not wait on store I/O). At most one
/// runs at a time, so memory stays at about two documents, and its report is taken before any later
/// one is made, so results keep the stream's order. When the stream fails, the running write is
/// awaited and named in the error with the documents stored before it.
#[derive(Debug, Default)]
struct WriteBehind {
    running: Option<(String, tokio::task::JoinHandle<DocumentReport>)>,
}

impl WriteBehind {
    /// Waits for the running write, if any, and gives its report.
    async fn settle(&mut self) -> Option<DocumentReport> {
        let (file_name, task) = self.running.take()?;
        Some(
            task.await.unwrap_or_else(|err| unfinished(file_name, IngestError::Task(err.to_string()).into())),
        )
    }

    /// Settles the running write (giving its report), then starts `staged`'s.
    async fn start(
        &mut self,
        pipeline: &Arc<Pipeline>,
        staged: Staged,
        file_name: String,
    ) -> Option<DocumentReport> {
        let previous = self.settle().await;
        let pipeline = Arc::clone(pipeline);
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || span.in_scope(|| pipeline.commit(staged)));
        self.running = Some((file_name, task));
        previous
    }
}

/// One upload stream's state: the document being received, sidecars waiting for their document, what
/// was reported so far, the doc_ids of the run (two files with one doc_id fail), and the write running
/// behind the stream.
#[derive(Debug, Default)]
struct Upload {
    /// What the uploader's key may write.
    scope: WriteScope,
    run: Arc<Run>,
    open: Option<OpenDocument>,
    sidecars: Sidecars,
    results: Vec<DocumentResult>,
    summary: IngestSummary,
    documents: u32,
    writes: WriteBehind,
}

impl Upload {
    fn report(&mut self, report: DocumentReport) {
        self.results.push(document_result(report, &mut self.summary));
    }

    /// The results of a stream that ended normally: the last write's, then a document the stream
    /// left open (it fails alone), then sidecars no document used.
    async fn finish(mut self) -> (Vec<DocumentResult>, IngestSummary) {
        if let Some(previous) = self.writes.settle().await {
            self.report(previous);
        }
        if let Some(document) = self.open.take() {
            self.report(DocumentReport::failed(
                document.start.metadata.map(|m| m.doc_id).unwrap_or_default(),
                document.start.file_name,
                ServiceError::invalid("end", "the stream ended before this document's DocumentEnd"),
            ));
        }
        for report in std::mem::take(&mut self.sidecars).unused() {
            self.report(report);
        }
        (self.results, self.summary)
    }
}

/// `failure`, telling the client which documents of the failed stream were stored before it: the
/// stream's response is lost with the failure, the stored documents are not.
fn with_stored(failure: Status, results: &[DocumentResult]) -> Status {
    let stored: Vec<String> = results
        .iter()
        .filter(|r| r.outcome != i32::from(IngestOutcome::Failed))
        .map(|r| format!("{}@{}", r.doc_id, r.version))
        .collect();
    if stored.is_empty() {
        return failure;
    }
    Status::new(
        failure.code(),
        format!("{}; stored before the failure, and kept: {}", failure.message(), stored.join(", ")),
    )
}

/// The report of a document whose blocking task died before it answered.
fn unfinished(file_name: String, err: ServiceError) -> DocumentReport {
    DocumentReport::failed(String::new(), file_name, err)
}

fn document_result(report: DocumentReport, summary: &mut IngestSummary) -> DocumentResult {
    let DocumentReport { doc_id, file_name, result } = report;
    let mut out = DocumentResult { doc_id, file_name, ..Default::default() };
    match result {
        Ok(ingested) => {
            out.version = ingested.version;
            out.chunk_count = ingested.chunk_count;
            out.notes = ingested.notes;
            match ingested.outcome {
                Outcome::Ingested => {
                    summary.ingested += 1;
                    summary.chunks_written += ingested.chunk_count;
                    out.outcome = IngestOutcome::Ingested.into();
                }
                Outcome::Replaced { previous_version } => {
                    summary.replaced += 1;
                    summary.chunks_written += ingested.chunk_count;
                    out.outcome = IngestOutcome::Replaced.into();
                    out.replaced_version = previous_version;
                }
                Outcome::Unchanged => {
                    summary.unchanged += 1;
                    out.outcome = IngestOutcome::Unchanged.into();
                }
            }
        }
        Err(err) => {
            summary.failed += 1;
            let status = status(err);
            out.outcome = IngestOutcome::Failed.into();
            out.error_code = status.code().into();
            out.error_message = status.message().to_owned();
        }
    }
    out
}

fn document_info(document: StoredDocument) -> DocumentInfo {
    let StoredDocument {
        doc_id,
        title,
        source,
        regions,
        brand,
        language,
        tags,
        current_version,
        versions,
        chunk_count,
        content_sha256,
        ingested_at,
    } = document;
    DocumentInfo {
        metadata: Some(pb::DocumentMetadata {
            doc_id,
            title,
            source,
            regions,
            brand: brand.unwrap_or_default(),
            language,
            version: current_version.clone(),
            tags,
        }),
        current_version,
        versions,
        chunk_count,
        content_sha256,
        // None for versions stored before ingestion times were recorded.
        ingested_at: ingested_at.as_deref().and_then(timestamp),
    }
}

fn passage(chunk: ChunkPayload) -> Passage {
    let ChunkPayload {
        doc_id,
        version,
        title,
        source,
        regions,
        brand,
        language: _,
        tags: _,
        heading_path,
        text,
        char_start,
        char_end,
        chunk_index,
        content_sha256: _,
        ingested_at: _,
    } = chunk;
    Passage {
        document: Some(DocumentRef { doc_id, version }),
        title,
        heading_path,
        text,
        char_start: u32::try_from(char_start).unwrap_or(u32::MAX),
        char_end: u32::try_from(char_end).unwrap_or(u32::MAX),
        chunk_index,
        regions,
        brand: brand.unwrap_or_default(),
        // Not a search: no score and no retrieval leg.
        score: 0.0,
        found_by: Vec::new(),
        source,
    }
}

fn required_doc_id(doc_id: &str) -> Result<String, Status> {
    let doc_id = doc_id.trim();
    if doc_id.is_empty() {
        return Err(status(ServiceError::invalid("doc_id", "required")));
    }
    Ok(doc_id.to_owned())
}

impl IngestServiceImpl {
    /// Reads the upload stream to its end, staging and writing each document as its DocumentEnd
    /// arrives. An error ends the stream; what was reported so far is in `upload`.
    async fn receive(
        &self,
        stream: &mut Streaming<IngestRequest>,
        upload: &mut Upload,
    ) -> Result<(), Status> {
        let limits = self.pipeline.options().limits;
        let limit = limits.max_document_bytes;
        while let Some(IngestRequest { message }) = stream.message().await? {
            match message {
                Some(Message::Start(start)) => {
                    if let Some(open) = &upload.open {
                        return Err(status(ServiceError::invalid(
                            "start",
                            format!(
                                "DocumentStart for {:?} while {:?} is still open; close it with DocumentEnd first",
                                start.file_name, open.start.file_name
                            ),
                        )));
                    }
                    upload.documents += 1;
                    if upload.documents > limits.max_documents_per_stream {
                        return Err(status(ServiceError::ResourceExhausted(format!(
                            "the stream carries more than {} documents; split the upload",
                            limits.max_documents_per_stream
                        ))));
                    }
                    upload.open = Some(OpenDocument::new(start, limit));
                }
                Some(Message::Data(DocumentData { content })) => {
                    let document = upload.open.as_mut().ok_or_else(|| {
                        status(ServiceError::invalid("data", "DocumentData before any DocumentStart"))
                    })?;
                    upload.summary.bytes_received += content.len() as u64;
                    document.push(&content, limit);
                }
                Some(Message::End(end)) => {
                    let document = upload.open.take().ok_or_else(|| {
                        status(ServiceError::invalid("end", "DocumentEnd without an open document"))
                    })?;
                    let report = match upload::finish(document, end, limit, &mut upload.sidecars) {
                        Finished::Sidecar => continue,
                        Finished::Failed(report) => report,
                        Finished::Document(mut source) => {
                            source.scope.clone_from(&upload.scope);
                            let file_name = source.file_name.clone();
                            let run = Arc::clone(&upload.run);
                            match self.blocking(move |pipeline| Ok(pipeline.stage(*source, &run))).await {
                                Ok(staged) => {
                                    // Written while the stream goes on; the document before it is
                                    // reported now.
                                    let previous =
                                        upload.writes.start(&self.pipeline, staged, file_name).await;
                                    if let Some(previous) = previous {
                                        upload.report(previous);
                                    }
                                    continue;
                                }
                                Err(status) => {
                                    unfinished(file_name, ServiceError::Internal(status.message().to_owned()))
                                }
                            }
                        }
                    };
                    if let Some(previous) = upload.writes.settle().await {
                        upload.report(previous);
                    }
                    upload.report(report);
                }
                None => {
                    return Err(status(ServiceError::invalid(
                        "message",
                        "an IngestRequest must carry start, data or end",
                    )));
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl IngestService for IngestServiceImpl {
    #[tracing::instrument(skip_all, fields(documents))]
    async fn ingest(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<IngestResponse>, Status> {
        let started = Instant::now();
        let who = rudder_proto::convert::principal(&request);
        let mut stream = request.into_inner();
        let mut upload = Upload { scope: WriteScope::of(&who), ..Upload::default() };
        if let Err(failure) = self.receive(&mut stream, &mut upload).await {
            // Documents already stored stay stored: the client learns which, with the failure.
            if let Some(previous) = upload.writes.settle().await {
                upload.report(previous);
            }
            return Err(with_stored(failure, &upload.results));
        }
        let (results, mut summary) = upload.finish().await;
        summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::Span::current().record("documents", results.len());
        if summary.ingested + summary.replaced > 0 {
            // Index what was written, behind the response: until then searches scan the new points.
            let store = Arc::clone(self.pipeline.store());
            tokio::task::spawn_blocking(move || {
                if let Err(err) = store.optimize() {
                    tracing::warn!(error = %err, "could not index the ingested documents");
                }
            });
        }
        Ok(Response::new(IngestResponse { results, summary: Some(summary) }))
    }

    #[tracing::instrument(skip_all, fields(doc_id = %request.get_ref().doc_id))]
    async fn delete_document(
        &self,
        request: Request<DeleteDocumentRequest>,
    ) -> Result<Response<DeleteDocumentResponse>, Status> {
        let who = rudder_proto::convert::principal(&request);
        let DeleteDocumentRequest { doc_id } = request.into_inner();
        let doc_id = required_doc_id(&doc_id)?;
        let deleted = self
            .blocking(move |pipeline| {
                // A scoped key deletes only documents it may write.
                let scope = WriteScope::of(&who);
                if scope != WriteScope::default()
                    && let Some(stored) = pipeline.store().document_summary(&doc_id)?
                {
                    // Every brand it names, or none: a brand-neutral document serves every brand.
                    let mut brands: Vec<Option<&str>> =
                        stored.brands.iter().map(|b| Some(b.as_str())).collect();
                    if brands.is_empty() {
                        brands.push(None);
                    }
                    for brand in brands {
                        scope.check(stored.regions.iter(), brand)?;
                    }
                }
                pipeline.delete_document(&doc_id)
            })
            .await?;
        Ok(Response::new(DeleteDocumentResponse {
            chunks_deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_documents(
        &self,
        request: Request<ListDocumentsRequest>,
    ) -> Result<Response<ListDocumentsResponse>, Status> {
        let who = rudder_proto::convert::principal(&request);
        let ListDocumentsRequest { region, brand, page_size, page_token } = request.into_inner();
        let region = who.listing_region(&region).map_err(status)?.unwrap_or_default();
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = hex::decode(&page_token)
                .map_err(|_| status(ServiceError::invalid("page_token", "not a token this server issued")))?;
            Some(
                String::from_utf8(bytes).map_err(|_| {
                    status(ServiceError::invalid("page_token", "not a token this server issued"))
                })?,
            )
        };
        let page_size = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let query = ListQuery {
            region: Some(region).filter(|r| !r.trim().is_empty()),
            brand: Some(brand).filter(|b| !b.trim().is_empty()),
            after,
            page_size,
        };
        let page = self.blocking(move |pipeline| catalog::list(pipeline.store().as_ref(), &query)).await?;
        Ok(Response::new(ListDocumentsResponse {
            documents: page.documents.into_iter().map(document_info).collect(),
            next_page_token: page.next_after.map(hex::encode).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all, fields(doc_id = %request.get_ref().doc_id))]
    async fn get_document(
        &self,
        request: Request<GetDocumentRequest>,
    ) -> Result<Response<GetDocumentResponse>, Status> {
        let who = rudder_proto::convert::principal(&request);
        let GetDocumentRequest { doc_id, include_passages } = request.into_inner();
        let doc_id = required_doc_id(&doc_id)?;
        let (document, passages) = self
            .blocking(move |pipeline| catalog::get(pipeline.store().as_ref(), &doc_id, include_passages))
            .await?;
        if !who.reads_any(&document.regions) {
            // As if it did not exist: a scoped key learns nothing of other regions' documents.
            return Err(status(ServiceError::NotFound {
                what: "document",
                name: document.doc_id,
                known: Vec::new(),
            }));
        }
        Ok(Response::new(GetDocumentResponse {
            document: Some(document_info(document)),
            passages: passages.into_iter().map(passage).collect(),
        }))
    }
}
