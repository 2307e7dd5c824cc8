//! The ingest pipeline: uploaded documents into the store, safely, with the embedding model kept
//! busy. It owns the limits, the decision between INGESTED, REPLACED, UNCHANGED and FAILED, and the
//! versioned switch-over: the new version is written not current, flushed, made current, and only
//! then are older versions deleted, so a reader filtering on the current version always sees exactly
//! one version. A document that fails leaves the store as it was (a half-written new version is
//! removed).
//!
//! A document goes through three stages: *plan* (checks, loading, metadata, reading its stored
//! versions, the decision, chunking), *embed* (the model: most of the time) and *write* (the
//! switch-over: store I/O, indexing, flushes). [`Pipeline::ingest_each`] runs them on three threads
//! joined by bounded queues, so the store work of one document overlaps the embedding of another; a
//! claim on the doc_id (see `claims`) keeps one document's decide-then-write from interleaving
//! with another ingest of it. Blocking: call it from `spawn_blocking` or a dedicated thread.

use crate::{
    chunker::{self, ChunkerOptions},
    claims::{Claim, DocClaims},
    error::IngestError,
    loaders::{self, LoadedDocument, MediaType},
    metadata::{self, DocumentMetadata, PartialMetadata, ResolveContext},
};
use rudder_core::{
    Embedder, ServiceError, VectorStore,
    store::{ChunkId, ChunkPayload, ChunkPoint, VersionSummary},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, mpsc},
};

/// Per-document and per-stream limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest document accepted, in bytes (20 MiB by default).
    pub max_document_bytes: u64,
    /// Most documents one upload stream may carry.
    pub max_documents_per_stream: u32,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self { max_document_bytes: 20 * 1024 * 1024, max_documents_per_stream: 10_000 }
    }
}

/// Everything the pipeline is configured with besides its store and embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Regions documents may name (lower-case); any other fails the document with FAILED_PRECONDITION.
    pub known_regions: Vec<String>,
    pub limits: IngestLimits,
    pub chunking: ChunkerOptions,
    /// Chunks per call into the embedding model.
    pub embed_batch_size: usize,
}

impl IngestOptions {
    /// Default limits and chunking for these regions.
    pub fn new(known_regions: Vec<String>) -> Self {
        Self {
            known_regions: known_regions.iter().map(|r| rudder_core::names::region(r)).collect(),
            limits: IngestLimits::default(),
            chunking: ChunkerOptions::default(),
            embed_batch_size: 32,
        }
    }
}

/// One document as uploaded.
#[derive(Debug, Clone, Default)]
pub struct SourceDocument {
    /// Picks the loader by extension; the default `source` and doc_id (its stem).
    pub file_name: String,
    /// Overrides the extension: "text/markdown", "text/plain", "text/html" or "application/pdf".
    pub media_type: Option<String>,
    /// From the request or command-line flags: wins over everything else.
    pub metadata: PartialMetadata,
    /// From a sidecar `NAME.meta.toml`: fills what the request and front matter leave empty.
    pub sidecar: Option<PartialMetadata>,
    pub content: Vec<u8>,
    /// Lower-case hex sha256 the content must have, when the client sent one.
    pub expected_sha256: Option<String>,
    /// What the uploader may write (its API key's scope).
    pub scope: WriteScope,
}

/// The regions and brands an uploader's key may write; None: any. A brand-scoped key may not write
/// a document without a brand: such a document serves every brand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteScope {
    pub regions: Option<Vec<String>>,
    pub brands: Option<Vec<String>>,
}

impl WriteScope {
    /// The scope of `who`'s key (a key with no regions or brands: any).
    pub fn of(who: &rudder_core::access::Principal) -> Self {
        let some = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
        Self { regions: some(&who.regions), brands: some(&who.brands) }
    }

    /// Whether a document of `regions` and `brand` is within the scope.
    pub fn check<'a>(
        &self,
        mut regions: impl Iterator<Item = &'a String>,
        brand: Option<&str>,
    ) -> Result<(), IngestError> {
        if let Some(allowed) = &self.regions
            && let Some(region) = regions.find(|region| !allowed.contains(region))
        {
            return Err(IngestError::OutOfScope { region: region.clone(), allowed: allowed.clone() });
        }
        if let Some(allowed) = &self.brands
            && !brand.is_some_and(|brand| allowed.iter().any(|a| a == brand))
        {
            return Err(IngestError::BrandOutOfScope {
                brand: brand.map_or_else(|| "none (every brand)".to_owned(), |b| format!("{b:?}")),
                allowed: allowed.clone(),
            });
        }
        Ok(())
    }
}

/// What happened to a document that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ingested,
    Replaced { previous_version: String },
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub outcome: Outcome,
    /// The version now current.
    pub version: String,
    /// Chunks of that version (written, or already stored for UNCHANGED).
    pub chunk_count: u32,
    /// What the user may want to know about the document (front matter keys that were ignored).
    pub notes: Vec<String>,
}

/// The result of one document; `doc_id` is empty if it could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentReport {
    pub doc_id: String,
    pub file_name: String,
    pub result: Result<Ingested, ServiceError>,
}

impl DocumentReport {
    /// The report of a document that failed.
    pub fn failed(doc_id: String, file_name: String, err: ServiceError) -> Self {
        Self { doc_id, file_name, result: Err(err) }
    }
}

/// One run (an `ingest_each` call, an upload stream): the doc_id each document resolved to and the
/// file it came from, so that two files of one run that resolve to the same doc_id (two pages whose
/// front matter both say `doc_id: faq`, say) fail instead of one silently replacing the other.
#[derive(Debug, Default)]
pub(crate) struct Run {
    doc_ids: Mutex<HashMap<String, String>>,
}

impl Run {
    /// Records `file_name` as `doc_id`'s; an error naming both files if another file of this run
    /// already has it.
    pub(crate) fn claim_doc_id(&self, doc_id: &str, file_name: &str) -> Result<(), IngestError> {
        let mut doc_ids = self.doc_ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match doc_ids.get(doc_id) {
            // The same file again is a later version of it, written after the first (as in an upload
            // of one file twice).
            Some(first) if first == file_name => Ok(()),
            Some(first) => Err(IngestError::invalid(
                "metadata.doc_id",
                format!(
                    "{file_name:?} and {first:?} (earlier in this run) both have doc_id {doc_id:?}; \
                     give one of them its own doc_id (front matter, sidecar or flags)"
                ),
            )),
            None => {
                doc_ids.insert(doc_id.to_owned(), file_name.to_owned());
                Ok(())
            }
        }
    }
}

/// How many documents may wait between two stages of [`Pipeline::ingest_each`]: one is enough to
/// keep the embedding model from waiting on planning or writing, and bounds memory to a handful of
/// documents in flight.
const STAGE_QUEUE: usize = 1;

/// Loads, chunks, embeds and stores documents.
#[derive(Debug)]
pub struct Pipeline {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    options: IngestOptions,
    /// Decide-then-write must not interleave for one document: its doc_id is claimed from reading
    /// its stored versions until its write is done. Other documents go on meanwhile.
    claims: Arc<DocClaims>,
}

/// A document between stages: finished (failed, nothing to write, or failed before the pipeline),
/// or with work left.
#[derive(Debug)]
enum Step<T> {
    Done(DocumentReport),
    Next(T),
}

/// A document that must be written, with its claim on the doc_id until the write is done.
#[derive(Debug)]
struct Job {
    claim: Claim,
    file_name: String,
    notes: Vec<String>,
    meta: DocumentMetadata,
    content_sha256: String,
    /// The version current before this ingest, if any: it stays if the write fails.
    previous: Option<VersionSummary>,
}

/// Planned: the chunks to embed.
#[derive(Debug)]
struct Chunked {
    job: Job,
    chunks: Vec<chunker::Chunk>,
}

/// Embedded: the points to write, not yet current.
#[derive(Debug)]
struct Embedded {
    job: Job,
    points: Vec<ChunkPoint>,
}

/// A document loaded and its metadata resolved: everything that needs no store.
pub(crate) struct Prepared {
    pub(crate) loaded: LoadedDocument,
    pub(crate) meta: DocumentMetadata,
    content_sha256: String,
}

/// What planning decided.
enum Plan {
    /// A current version already holds this content: reported without writing.
    AlreadyStored(Ingested),
    Write(Box<Chunked>),
}

/// A document planned and embedded whose store write is still to do ([`Pipeline::commit`]): how an
/// upload stream writes one document while it receives and embeds the next.
#[derive(Debug)]
pub(crate) struct Staged(Step<Box<Embedded>>);

impl Pipeline {
    pub fn new(store: Arc<dyn VectorStore>, embedder: Arc<dyn Embedder>, options: IngestOptions) -> Self {
        Self { store, embedder, options, claims: Arc::default() }
    }

    pub fn options(&self) -> &IngestOptions {
        &self.options
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// Deletes every version of a document, waiting for an ingest of it under way: a delete landing
    /// between that ingest's decision and its write would be undone by the write, or would take the
    /// chunks it just reported as ingested.
    pub fn delete_document(&self, doc_id: &str) -> Result<u64, IngestError> {
        let _claim = self.claims.claim(doc_id)?;
        crate::catalog::delete(self.store.as_ref(), doc_id)
    }

    /// Ingests one document; never panics on its content, and failures are reported, not returned.
    pub fn ingest(&self, document: SourceDocument) -> DocumentReport {
        self.commit(self.stage(document, &Run::default()))
    }

    /// Ingests each document in turn, as [`Self::ingest_each`] does; a failure never stops the rest.
    /// The reports are in input order.
    pub fn ingest_all<I>(&self, documents: I) -> Vec<DocumentReport>
    where
        I: IntoIterator<Item = SourceDocument>,
        I::IntoIter: Send,
    {
        let mut reports = Vec::new();
        self.ingest_each(documents.into_iter().map(Ok::<SourceDocument, DocumentReport>), |report| {
            reports.push(report);
        });
        reports
    }

    /// Ingests documents with the embedding model kept busy: while one document is embedded (on the
    /// calling thread), the next is planned (loaded, checked against the store, chunked) on a
    /// second thread and the one before is written (the switch-over: store I/O, indexing, flushes)
    /// on a third. Each document's outcome is what [`Self::ingest`] would give it, one after the
    /// other, and a failure never stops the rest. `on_report` gets each report as that document is
    /// done, in input order (on the writing thread). An `Err` entry is a document that failed before
    /// it got here (an unreadable file): it is reported in its place. A document whose doc_id an
    /// earlier one of these documents has fails, naming both files.
    pub fn ingest_each<I>(&self, documents: I, mut on_report: impl FnMut(DocumentReport) + Send)
    where
        I: IntoIterator<Item = Result<SourceDocument, DocumentReport>>,
        I::IntoIter: Send,
    {
        let documents = documents.into_iter();
        let span = tracing::Span::current();
        std::thread::scope(|scope| {
            let (to_embed, planned) = mpsc::sync_channel::<Step<Box<Chunked>>>(STAGE_QUEUE);
            let (to_write, embedded) = mpsc::sync_channel::<Step<Box<Embedded>>>(STAGE_QUEUE);
            let plan_span = span.clone();
            let _planner = scope.spawn(move || {
                let run = Run::default();
                plan_span.in_scope(|| {
                    for document in documents {
                        let step = match document {
                            Ok(document) => self.plan(document, &run),
                            Err(report) => Step::Done(report),
                        };
                        // The queue closes only if the embedding stage stopped (it panicked).
                        if to_embed.send(step).is_err() {
                            break;
                        }
                    }
                });
            });
            let write_span = span.clone();
            let _writer = scope.spawn(move || {
                write_span.in_scope(|| {
                    for step in embedded {
                        on_report(self.write(step));
                    }
                });
            });
            // Dropping `to_write` after the last document ends the writer's loop; the scope then
            // waits for both threads (and passes on a panic of either).
            for step in planned {
                if to_write.send(self.embed(step)).is_err() {
                    break;
                }
            }
        });
    }

    /// Plans and embeds a document of `run`, leaving its store write for [`Self::commit`].
    pub(crate) fn stage(&self, document: SourceDocument, run: &Run) -> Staged {
        Staged(self.embed(self.plan(document, run)))
    }

    /// Writes a staged document (if it has anything to write) and reports it.
    pub(crate) fn commit(&self, staged: Staged) -> DocumentReport {
        self.write(staged.0)
    }

    /// Stage one: checks, loading, metadata, the stored versions and the decision, then chunking.
    fn plan(&self, document: SourceDocument, run: &Run) -> Step<Box<Chunked>> {
        let file_name = document.file_name.clone();
        let mut doc_id = provisional_doc_id(&document);
        match self.plan_document(document, run, &mut doc_id) {
            Ok(Plan::AlreadyStored(ingested)) => {
                Step::Done(DocumentReport { doc_id, file_name, result: Ok(ingested) })
            }
            Ok(Plan::Write(chunked)) => Step::Next(chunked),
            Err(err) => Step::Done(failed(doc_id, file_name, err)),
        }
    }

    /// Stage two: the chunks through the embedding model, into points that are not yet current.
    fn embed(&self, step: Step<Box<Chunked>>) -> Step<Box<Embedded>> {
        let Chunked { job, chunks } = match step {
            Step::Done(report) => return Step::Done(report),
            Step::Next(chunked) => *chunked,
        };
        match self.points(&job.meta, &job.content_sha256, chunks) {
            Ok(points) => Step::Next(Box::new(Embedded { job, points })),
            // Nothing was written; dropping the job releases its claim.
            Err(err) => Step::Done(failed(job.meta.doc_id, job.file_name, err)),
        }
    }

    /// Stage three: the versioned switch-over, and the document's report.
    fn write(&self, step: Step<Box<Embedded>>) -> DocumentReport {
        let Embedded { job, points } = match step {
            Step::Done(report) => return report,
            Step::Next(embedded) => *embedded,
        };
        // The claim is held to the end of this function: the next ingest of this doc_id must read
        // what this write leaves behind.
        let Job { claim: _claim, file_name, notes, meta, content_sha256: _, previous } = job;
        match self.write_version(&meta, &points, previous) {
            Ok(ingested) => {
                DocumentReport { doc_id: meta.doc_id, file_name, result: Ok(Ingested { notes, ..ingested }) }
            }
            Err(err) => failed(meta.doc_id, file_name, err),
        }
    }

    fn plan_document(
        &self,
        document: SourceDocument,
        run: &Run,
        doc_id_out: &mut String,
    ) -> Result<Plan, IngestError> {
        let file_name = document.file_name.clone();
        let Prepared { loaded, meta, content_sha256 } = prepare(&self.options, document, doc_id_out)?;
        run.claim_doc_id(&meta.doc_id, &file_name)?;
        let notes = loaded.notes.clone();
        // Held from reading the stored versions until the write is done (or the document fails).
        let claim = self.claims.claim(&meta.doc_id)?;
        self.store.ensure_collection()?;
        let stored = self.store.document_summary(&meta.doc_id)?;
        let versions = stored.map(|d| d.versions).unwrap_or_default();
        if let Some(ingested) = self.already_stored(&versions, &meta, &content_sha256)? {
            return Ok(Plan::AlreadyStored(Ingested { notes, ..ingested }));
        }
        check_version_free(&versions, &meta, &content_sha256)?;
        let previous = versions.iter().find(|v| v.current).cloned();
        let chunked = chunker::chunk(&loaded, self.embedder.as_ref(), &self.options.chunking)?;
        Ok(Plan::Write(Box::new(Chunked {
            job: Job { claim, file_name, notes, meta, content_sha256, previous },
            chunks: chunked.chunks,
        })))
    }

    /// The outcome without a write when a current version already holds this content (with the
    /// version asked for, if one was given); None when the document must be written.
    fn already_stored(
        &self,
        versions: &[VersionSummary],
        meta: &DocumentMetadata,
        content_sha256: &str,
    ) -> Result<Option<Ingested>, IngestError> {
        let currents: Vec<&VersionSummary> = versions.iter().filter(|v| v.current).collect();
        let same = currents.iter().find(|v| {
            v.content_sha256 == content_sha256 && (!meta.version_given || v.version == meta.version)
        });
        let Some(same) = same else {
            return Ok(None);
        };
        // More than one version stored means an earlier ingest was interrupted (killed between
        // its steps): finish its switch-over so readers see this version alone.
        if versions.len() > 1 {
            self.finish_switch_over(&meta.doc_id, &same.version)?;
        }
        let other_current = currents.iter().find(|v| v.version != same.version);
        Ok(Some(Ingested {
            outcome: match other_current {
                Some(other) => Outcome::Replaced { previous_version: other.version.clone() },
                None => Outcome::Unchanged,
            },
            version: same.version.clone(),
            chunk_count: u32::try_from(same.chunks).unwrap_or(u32::MAX),
            notes: Vec::new(),
        }))
    }

    /// Embeds the chunks (in batches) and builds their points, not yet current.
    fn points(
        &self,
        meta: &DocumentMetadata,
        content_sha256: &str,
        chunks: Vec<chunker::Chunk>,
    ) -> Result<Vec<ChunkPoint>, IngestError> {
        // One time for the whole version, shown by GetDocument and ListDocuments.
        let ingested_at = rudder_core::time::now_rfc3339();
        let mut points = Vec::with_capacity(chunks.len());
        let batch_size = self.options.embed_batch_size.max(1);
        let mut chunks = chunks.into_iter().peekable();
        while chunks.peek().is_some() {
            let batch: Vec<_> = chunks.by_ref().take(batch_size).collect();
            let inputs: Vec<String> = batch.iter().map(|chunk| chunk.embed_text.clone()).collect();
            let vectors = self.embedder.embed_documents(&inputs)?;
            if vectors.len() != batch.len() {
                return Err(IngestError::Task(format!(
                    "the embedder returned {} vectors for {} chunks",
                    vectors.len(),
                    batch.len()
                )));
            }
            for (chunk, dense) in batch.into_iter().zip(vectors) {
                let chunk_index = u32::try_from(points.len())
                    .map_err(|_| IngestError::invalid("content", "too many chunks in one document"))?;
                points.push(ChunkPoint {
                    id: ChunkId::for_chunk(&meta.doc_id, &meta.version, chunk_index),
                    dense,
                    payload: ChunkPayload {
                        doc_id: meta.doc_id.clone(),
                        version: meta.version.clone(),
                        title: meta.title.clone(),
                        source: meta.source.clone(),
                        regions: meta.regions.clone(),
                        brand: meta.brand.clone(),
                        language: meta.language.clone(),
                        tags: meta.tags.clone(),
                        heading_path: chunk.heading_path,
                        text: chunk.text,
                        char_start: chunk.char_start,
                        char_end: chunk.char_end,
                        chunk_index,
                        content_sha256: content_sha256.to_owned(),
                        ingested_at: Some(ingested_at.clone()),
                    },
                    current: false,
                });
            }
        }
        Ok(points)
    }

    /// Writes a new version over `previous` and says what that was.
    fn write_version(
        &self,
        meta: &DocumentMetadata,
        points: &[ChunkPoint],
        previous: Option<VersionSummary>,
    ) -> Result<Ingested, IngestError> {
        let chunk_count = u32::try_from(points.len()).map_err(|_| {
            IngestError::invalid("content", "the document makes more chunks than can be counted")
        })?;
        self.switch_over(meta, points, previous.as_ref())?;
        let outcome = match previous {
            Some(previous) if previous.version != meta.version => {
                Outcome::Replaced { previous_version: previous.version }
            }
            _ => Outcome::Ingested,
        };
        tracing::info!(doc_id = %meta.doc_id, version = %meta.version, chunks = chunk_count, ?outcome, "document ingested");
        Ok(Ingested { outcome, version: meta.version.clone(), chunk_count, notes: Vec::new() })
    }

    /// Makes `version` the only current version and removes every other one.
    fn finish_switch_over(&self, doc_id: &str, version: &str) -> Result<(), IngestError> {
        self.store.set_current_version(doc_id, version)?;
        self.store.delete_document(doc_id, Some(version))?;
        self.store.flush()?;
        tracing::info!(%doc_id, %version, "finished an interrupted switch-over");
        Ok(())
    }

    /// Writes the new version invisibly, makes it durable, switches readers to it, then removes the
    /// other versions. Until the switch a failure removes the partial new version and leaves the
    /// previous one untouched; after it, the new version stands and a failed clean-up only leaves
    /// invisible old chunks behind (the next ingest of the document removes them).
    fn switch_over(
        &self,
        meta: &DocumentMetadata,
        points: &[ChunkPoint],
        previous: Option<&VersionSummary>,
    ) -> Result<(), IngestError> {
        let written = self
            .store
            .upsert(points)
            .and_then(|()| self.store.flush())
            .and_then(|()| self.store.set_current_version(&meta.doc_id, &meta.version))
            // The switch is made durable before anything old is deleted. Without this flush a kill
            // during the final one was seen (1 in ~8 runs of tests/integration/crash.rs) to leave the
            // delete of the old version on disk but not the switch: the document had no current
            // version at all, which readers must never see.
            .and_then(|()| self.store.flush());
        if let Err(err) = written {
            // The switch may have happened before a flush failed: the previous version becomes current
            // again, so the failed document is left as it was.
            if let Some(previous) = previous {
                let _ = self.store.set_current_version(&meta.doc_id, &previous.version).map_err(
                    |restore| tracing::warn!(doc_id = %meta.doc_id, error = %restore, "could not make the previous version current again"),
                );
            }
            // Everything of the document except the previous current version is the partial write.
            let keep = previous.map(|v| v.version.as_str());
            let _ = self.store.delete_document(&meta.doc_id, keep).and_then(|_| self.store.flush()).map_err(
                |cleanup| tracing::warn!(doc_id = %meta.doc_id, error = %cleanup, "could not remove a partial version"),
            );
            return Err(err.into());
        }
        let cleaned =
            self.store.delete_document(&meta.doc_id, Some(&meta.version)).and_then(|_| self.store.flush());
        if let Err(err) = cleaned {
            tracing::warn!(doc_id = %meta.doc_id, error = %err, "new version is current; old versions remain");
        }
        Ok(())
    }
}

/// The checks that need no store (size, checksum), loading, and the resolved metadata.
/// `doc_id_out` follows the best doc_id known so far, for the report of a failure.
pub(crate) fn prepare(
    options: &IngestOptions,
    document: SourceDocument,
    doc_id_out: &mut String,
) -> Result<Prepared, IngestError> {
    let SourceDocument { file_name, media_type, metadata, sidecar, content, expected_sha256, scope } =
        document;
    let limit = options.limits.max_document_bytes;
    if content.len() as u64 > limit {
        return Err(IngestError::invalid(
            "content",
            format!("{} bytes is over the limit of {limit} bytes per document", content.len()),
        ));
    }
    if let Some(expected) = expected_sha256.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()) {
        let actual = hex::encode(Sha256::digest(&content));
        if actual != expected {
            return Err(IngestError::invalid(
                "end.sha256",
                format!("the content's sha256 is {actual}, not the {expected} that was sent"),
            ));
        }
    }
    let media = MediaType::detect(&file_name, media_type.as_deref())?;
    let loaded = loaders::load(media, &content)?;
    let text = loaded.normalised_text();
    let content_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    let merged = metadata.or(loaded.front_matter.clone().unwrap_or_default()).or(sidecar.unwrap_or_default());
    if let Some(doc_id) = merged.doc_id.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        doc_id_out.replace_range(.., doc_id);
    }
    let meta = metadata::resolve(
        merged,
        ResolveContext {
            file_name: &file_name,
            title_hint: loaded.title_hint.as_deref(),
            content_sha256: &content_sha256,
            known_regions: &options.known_regions,
        },
    )?;
    doc_id_out.clone_from(&meta.doc_id);
    scope.check(meta.regions.iter(), meta.brand.as_deref())?;
    Ok(Prepared { loaded, meta, content_sha256 })
}

/// The report of a failed document, logged.
fn failed(doc_id: String, file_name: String, err: IngestError) -> DocumentReport {
    tracing::info!(%doc_id, %file_name, error = %err, "document failed");
    DocumentReport::failed(doc_id, file_name, ServiceError::from(err))
}

/// A version label names one content: reusing it for other content would mix two documents' chunks.
fn check_version_free(
    versions: &[VersionSummary],
    meta: &DocumentMetadata,
    content_sha256: &str,
) -> Result<(), IngestError> {
    match versions.iter().find(|v| v.version == meta.version) {
        Some(stored) if stored.content_sha256 != content_sha256 => Err(IngestError::Conflict(format!(
            "metadata.version: version {:?} of {:?} is already stored with different content; \
             give the changed document a new version",
            meta.version, meta.doc_id
        ))),
        _ => Ok(()),
    }
}

/// The doc_id a failure is reported under before metadata is resolved: the request's, the
/// sidecar's, or the file name's stem.
fn provisional_doc_id(document: &SourceDocument) -> String {
    let given =
        [document.metadata.doc_id.as_ref(), document.sidecar.as_ref().and_then(|s| s.doc_id.as_ref())];
    given
        .into_iter()
        .flatten()
        .map(|d| d.trim())
        .find(|d| !d.is_empty())
        .map(str::to_owned)
        .unwrap_or_default()
}
