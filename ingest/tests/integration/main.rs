//! rudder-ingest's integration tests, one binary: the loaders on the sample corpus and on broken
//! input, front matter and document identity as real sites have them, the Basecamp policies corpus
//! ingested whole, the chunker against the real all-MiniLM-L6-v2 tokenizer, the pipeline into a real
//! qdrant-edge store in a temporary directory (also as `rudder ingest --local` runs it), and
//! IngestService over real tonic on 127.0.0.1:0.
//! Models come from `RUDDER_MODELS_DIR` (default `~/.cache/rudder/models`, filled by `make models`).
// Fixtures panic with the error: in a test binary that is the failing test's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basecamp;
mod chunker;
mod crash;
mod front_matter;
mod fuzz;
mod identity;
mod loaders;
mod local;
mod pipeline;
mod service;
mod uploads;

use rudder_core::{Embedder, ModelFiles, VectorStore};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use rudder_ingest::{
    IngestOptions, Pipeline, SourceDocument,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_store::EdgeStore;
use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUDDER_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/rudder/models")
}

/// One embedder for the whole binary: loading the model costs more than most tests.
pub fn embedder() -> Arc<FastembedEmbedder> {
    static EMBEDDER: OnceLock<Arc<FastembedEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let files = ModelFiles::open(models_dir()).unwrap_or_else(|err| panic!("{err}"));
            let embedder = FastembedEmbedder::load(&files, FastembedOptions::default())
                .unwrap_or_else(|err| panic!("{err}"));
            Arc::new(embedder)
        })
        .clone()
}

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

pub fn corpus_file(relative: &str) -> PathBuf {
    corpus_dir().join(relative)
}

pub fn regions() -> Vec<String> {
    ["us", "uk", "eu"].map(str::to_owned).to_vec()
}

/// Every corpus document as the CLI would read it (sidecars and front matter merged).
pub fn corpus_documents() -> Vec<SourceDocument> {
    let files = client::collect_files(&[corpus_dir()], &WalkOptions::default()).unwrap();
    files.iter().map(|path| client::read_document(path, &PartialMetadata::default()).unwrap()).collect()
}

/// Number of documents in the corpus, and per region (shared documents count in each of theirs).
pub const CORPUS_DOCUMENTS: usize = 20;
pub const CORPUS_PER_REGION: [(&str, usize); 3] = [("us", 9), ("uk", 7), ("eu", 7)];

/// A fresh store in its own temporary directory. Bind it as `let (_dir, store) = store();` so the
/// store is dropped (and closed) before its directory is removed.
pub fn store() -> (tempfile::TempDir, Arc<EdgeStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(&dir.path().join("store"), embedder().dim()).unwrap();
    store.ensure_collection().unwrap();
    (dir, Arc::new(store))
}

pub fn pipeline(store: &Arc<EdgeStore>, options: IngestOptions) -> Pipeline {
    Pipeline::new(store.clone(), embedder(), options)
}
