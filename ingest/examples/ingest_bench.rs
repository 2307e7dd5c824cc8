//! Ingestion throughput over the sample corpus replicated to at least 2,000 chunks, into a fresh
//! embedded store: chunks/s, MB/s, and the share of wall time spent inside the embedding model
//! (`embed_documents`) and in its tokenizer (`count_tokens`, used by the chunker).
//!
//! `cargo run --release -p rudder-ingest --example ingest_bench` (or without `--release`: dependencies
//! are optimized in dev builds too). Models from `RUDDER_MODELS_DIR` or `~/.cache/rudder/models`.

use anyhow::Context as _;
use rudder_core::{EmbedError, Embedder, ModelFiles, QueryEmbedding, VectorStore};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use rudder_ingest::{
    IngestOptions, Pipeline,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_store::EdgeStore;
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// The real embedder, with the time spent in it counted.
#[derive(Debug)]
struct Timed {
    inner: FastembedEmbedder,
    embed_nanos: AtomicU64,
    tokenize_nanos: AtomicU64,
}

impl Timed {
    fn time<T>(counter: &AtomicU64, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        counter.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl Embedder for Timed {
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Self::time(&self.embed_nanos, || self.inner.embed_documents(texts))
    }
    fn embed_query(&self, text: &str) -> Result<QueryEmbedding, EmbedError> {
        self.inner.embed_query(text)
    }
    fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        Self::time(&self.tokenize_nanos, || self.inner.count_tokens(text))
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

fn models_dir() -> PathBuf {
    std::env::var_os("RUDDER_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rudder/models")
    })
}

fn main() -> anyhow::Result<()> {
    const MIN_CHUNKS: u64 = 2000;
    let files = ModelFiles::open(models_dir())?;
    let embedder = Arc::new(Timed {
        inner: FastembedEmbedder::load(&files, FastembedOptions::default())?,
        embed_nanos: AtomicU64::new(0),
        tokenize_nanos: AtomicU64::new(0),
    });
    let corpus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let paths = client::collect_files(&[corpus_dir], &WalkOptions::default())?;
    let corpus = paths
        .iter()
        .map(|path| client::read_document(path, &PartialMetadata::default()))
        .collect::<Result<Vec<_>, _>>()?;

    let dir = tempfile::tempdir()?;
    let store = Arc::new(EdgeStore::open(&dir.path().join("store"), embedder.dim())?);
    store.ensure_collection()?;
    let pipeline = Pipeline::new(
        store.clone(),
        embedder.clone(),
        IngestOptions::new(vec!["us".into(), "uk".into(), "eu".into()]),
    );

    let started = Instant::now();
    let (mut chunks, mut bytes, mut documents, mut copy) = (0u64, 0u64, 0u64, 0u32);
    while chunks < MIN_CHUNKS {
        for document in &corpus {
            let mut document = document.clone();
            let doc_id = document.metadata.doc_id.clone().context("corpus documents have doc_ids")?;
            document.metadata.doc_id = Some(format!("{doc_id}-copy{copy}"));
            bytes += document.content.len() as u64;
            let report = pipeline.ingest(document);
            let ingested = report.result.map_err(|err| anyhow::anyhow!("{}: {err}", report.file_name))?;
            chunks += u64::from(ingested.chunk_count);
            documents += 1;
        }
        copy += 1;
    }
    let wall = started.elapsed().as_secs_f64();
    let embed = embedder.embed_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let tokenize = embedder.tokenize_nanos.load(Ordering::Relaxed) as f64 / 1e9;
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
    Ok(())
}
