//! Ingestion throughput over the sample corpus replicated to at least 2,000 chunks, into a fresh
//! embedded store, through `Pipeline::ingest_all` (planning, embedding and store writes overlapped, as
//! `rudder ingest --local` runs them): chunks/s, MB/s, and the share of wall time spent inside the
//! embedding model (`embed_documents`) and in its tokenizer (`count_tokens`, used by the chunker).
//!
//! A share is the wall time during which at least one such call was running, divided by the whole
//! run's wall time: calls that overlap count once, so a share can never pass 100% (embedding runs on
//! one thread anyway; the tokenizer runs on the planning thread, beside it).
//!
//! Time in store writes (upsert, flush, switch, delete) and in reading a document's stored versions is
//! shown the same way: it runs beside the model, so these shares add up to more than 100%.
//!
//! `cargo run --release -p rudder-ingest --example ingest_bench` (or without `--release`: dependencies
//! are optimized in dev builds too). Models from `RUDDER_MODELS_DIR` or `~/.cache/rudder/models`.

use anyhow::Context as _;
use rudder_core::{
    EmbedError, Embedder, ModelFiles, QueryEmbedding, StoreError, VectorStore,
    store::{ChunkPayload, ChunkPoint, DocumentSummary, SearchHit, SearchRequest, StoreHealth},
};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use rudder_ingest::{
    IngestOptions, Pipeline, SourceDocument, chunker,
    client::{self, WalkOptions},
    loaders::{self, MediaType},
    metadata::PartialMetadata,
};
use rudder_store::EdgeStore;
use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Wall time during which at least one timed call was running.
#[derive(Debug, Default)]
struct BusyClock {
    state: Mutex<Busy>,
}

#[derive(Debug, Default)]
struct Busy {
    running: usize,
    since: Option<Instant>,
    total: Duration,
}

impl BusyClock {
    fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        self.enter();
        let out = work();
        self.leave();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Busy> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self) {
        let mut busy = self.lock();
        if busy.running == 0 {
            busy.since = Some(Instant::now());
        }
        busy.running += 1;
    }

    fn leave(&self) {
        let mut busy = self.lock();
        busy.running = busy.running.saturating_sub(1);
        if busy.running == 0
            && let Some(since) = busy.since.take()
        {
            busy.total += since.elapsed();
        }
    }

    fn seconds(&self) -> f64 {
        self.lock().total.as_secs_f64()
    }
}

/// The real embedder, with the time spent in it counted.
#[derive(Debug)]
struct Timed {
    inner: FastembedEmbedder,
    embed: BusyClock,
    tokenize: BusyClock,
}

impl Embedder for Timed {
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed.time(|| self.inner.embed_documents(texts))
    }
    fn embed_query(&self, text: &str) -> Result<QueryEmbedding, EmbedError> {
        self.inner.embed_query(text)
    }
    fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        self.tokenize.time(|| self.inner.count_tokens(text))
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
}

/// The real store, with the time spent writing and reading a document's versions counted.
#[derive(Debug)]
struct TimedStore {
    inner: EdgeStore,
    writes: BusyClock,
    version_reads: BusyClock,
}

impl VectorStore for TimedStore {
    fn ensure_collection(&self) -> Result<(), StoreError> {
        self.inner.ensure_collection()
    }
    fn upsert(&self, points: &[ChunkPoint]) -> Result<(), StoreError> {
        self.writes.time(|| self.inner.upsert(points))
    }
    fn set_current_version(&self, doc_id: &str, version: &str) -> Result<(), StoreError> {
        self.writes.time(|| self.inner.set_current_version(doc_id, version))
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.writes.time(|| self.inner.flush())
    }
    fn delete_document(&self, doc_id: &str, keep_version: Option<&str>) -> Result<u64, StoreError> {
        self.writes.time(|| self.inner.delete_document(doc_id, keep_version))
    }
    fn list_documents(&self) -> Result<Vec<DocumentSummary>, StoreError> {
        self.inner.list_documents()
    }
    fn document_summary(&self, doc_id: &str) -> Result<Option<DocumentSummary>, StoreError> {
        self.version_reads.time(|| self.inner.document_summary(doc_id))
    }
    fn document_chunks(&self, doc_id: &str, version: &str) -> Result<Vec<ChunkPayload>, StoreError> {
        self.inner.document_chunks(doc_id, version)
    }
    fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, StoreError> {
        self.inner.search(request)
    }
    fn health(&self) -> Result<StoreHealth, StoreError> {
        self.inner.health()
    }
}

fn models_dir() -> PathBuf {
    std::env::var_os("RUDDER_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rudder/models")
    })
}

/// The chunks one copy of the corpus makes, with the chunker the pipeline runs (untimed: it tells how
/// many copies to ingest, so the timed run is one uninterrupted `ingest_all`).
fn corpus_chunks(
    corpus: &[SourceDocument],
    embedder: &dyn Embedder,
    options: &IngestOptions,
) -> anyhow::Result<usize> {
    let mut total = 0;
    for document in corpus {
        let media = MediaType::detect(&document.file_name, document.media_type.as_deref())?;
        let loaded = loaders::load(media, &document.content)?;
        total += chunker::chunk(&loaded, embedder, &options.chunking)?.chunks.len();
    }
    Ok(total)
}

/// `copies` copies of the corpus, each document under a doc_id of its own.
fn replicated(corpus: &[SourceDocument], copies: usize) -> anyhow::Result<Vec<SourceDocument>> {
    let mut documents = Vec::with_capacity(corpus.len() * copies);
    for copy in 0..copies {
        for document in corpus {
            let mut document = document.clone();
            let doc_id = document.metadata.doc_id.clone().context("corpus documents have doc_ids")?;
            document.metadata.doc_id = Some(format!("{doc_id}-copy{copy}"));
            documents.push(document);
        }
    }
    Ok(documents)
}

fn main() -> anyhow::Result<()> {
    const MIN_CHUNKS: usize = 2000;
    let files = ModelFiles::open(models_dir())?;
    let embedder = Arc::new(Timed {
        inner: FastembedEmbedder::load(&files, FastembedOptions::default())?,
        embed: BusyClock::default(),
        tokenize: BusyClock::default(),
    });
    let corpus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let paths = client::collect_files(&[corpus_dir], &WalkOptions::default())?;
    let corpus = paths
        .iter()
        .map(|path| client::read_document(path, &PartialMetadata::default()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = IngestOptions::new(vec!["us".into(), "uk".into(), "eu".into()]);
    // Counted with the inner model, not the timed wrapper: this is no part of the measured run.
    let per_copy = corpus_chunks(&corpus, &embedder.inner, &options)?;
    anyhow::ensure!(per_copy > 0, "the corpus makes no chunks");
    let documents = replicated(&corpus, MIN_CHUNKS.div_ceil(per_copy))?;
    let bytes: u64 = documents.iter().map(|d| d.content.len() as u64).sum();

    let dir = tempfile::tempdir()?;
    let store = Arc::new(TimedStore {
        inner: EdgeStore::open(&dir.path().join("store"), embedder.dim())?,
        writes: BusyClock::default(),
        version_reads: BusyClock::default(),
    });
    store.ensure_collection()?;
    let pipeline = Pipeline::new(store.clone(), embedder.clone(), options);

    let one_at_a_time = documents.clone();
    let started = Instant::now();
    let reports = pipeline.ingest_all(documents);
    let wall = started.elapsed().as_secs_f64();

    let mut chunks = 0u64;
    for report in &reports {
        let ingested =
            report.result.as_ref().map_err(|err| anyhow::anyhow!("{}: {err}", report.file_name))?;
        chunks += u64::from(ingested.chunk_count);
    }
    let documents = reports.len();
    let embed = embedder.embed.seconds();
    let tokenize = embedder.tokenize.seconds();
    println!("documents {documents}, chunks {chunks}, {:.2} MB, wall {wall:.2} s", bytes as f64 / 1e6);
    println!(
        "throughput: {:.1} chunks/s, {:.3} MB/s, {:.1} docs/s",
        chunks as f64 / wall,
        bytes as f64 / 1e6 / wall,
        documents as f64 / wall
    );
    println!(
        "inside the embedding model: {:.1}% of wall time ({embed:.2} s); its tokenizer (chunking): {:.1}% ({tokenize:.2} s); store points {}",
        100.0 * embed / wall,
        100.0 * tokenize / wall,
        store.health()?.points
    );
    let (writes, reads) = (store.writes.seconds(), store.version_reads.seconds());
    println!(
        "beside it: store writes {:.1}% ({writes:.2} s), reading stored versions {:.1}% ({reads:.2} s); the model idle {:.1}% ({:.2} s)",
        100.0 * writes / wall,
        100.0 * reads / wall,
        100.0 * (wall - embed) / wall,
        wall - embed
    );

    // The same documents one after another (plan, embed, write; no overlap) into a fresh store: the
    // gain of the overlap as a ratio measured in this run.
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EdgeStore::open(&dir.path().join("store"), embedder.dim())?);
    store.ensure_collection()?;
    let options = IngestOptions::new(vec!["us".into(), "uk".into(), "eu".into()]);
    let pipeline = Pipeline::new(store, embedder.clone(), options);
    let started = Instant::now();
    for document in one_at_a_time {
        pipeline.ingest(document).result.map_err(|err| anyhow::anyhow!("{err}"))?;
    }
    let sequential = started.elapsed().as_secs_f64();
    println!(
        "one document at a time: {:.1} chunks/s (wall {sequential:.2} s); overlapped: {:.2}x",
        chunks as f64 / sequential,
        sequential / wall
    );
    Ok(())
}
