//! rudder-store's integration tests, one binary: the same conformance tests (`conformance`) run
//! against every backend, fed with chunks embedded by the real all-MiniLM-L6-v2 model
//! (`RUDDER_MODELS_DIR`, default `~/.cache/rudder/models`, filled by `make models`):
//! - `edge::`: the real qdrant-edge engine in a temporary directory, always;
//! - `qdrant::`: a real Qdrant server when `RUDDER_TEST_QDRANT_URL` names one (its gRPC URL, e.g.
//!   `http://127.0.0.1:6334`; `RUDDER_TEST_QDRANT_API_KEY` if it wants a key), each test in a fresh
//!   collection dropped at its end; without it those tests print that they are skipped and pass.
//!
//! Each backend module also has the tests only that backend can run.
// Fixtures panic with the error: in a test binary that is the failing test's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod edge;
mod qdrant;

use rudder_core::{
    Embedder, ModelFiles, VectorStore,
    store::{ChunkId, ChunkPayload, ChunkPoint, SearchFilter, SearchHit, SearchMode, SearchRequest},
};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use rudder_store::{EdgeStore, QdrantOptions, QdrantStore};
use std::{
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The embedding size of all-MiniLM-L6-v2: every test store is made for it.
pub const DIM: usize = 384;
/// The Qdrant server the `qdrant::` tests run against; unset, they are skipped.
pub const QDRANT_URL_VAR: &str = "RUDDER_TEST_QDRANT_URL";
/// The API key that server wants, if any.
pub const QDRANT_API_KEY_VAR: &str = "RUDDER_TEST_QDRANT_API_KEY";

pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUDDER_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/rudder/models")
}

/// One embedder for the whole binary: loading the model costs more than most tests.
pub fn embedder() -> &'static FastembedEmbedder {
    static EMBEDDER: OnceLock<FastembedEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let files = ModelFiles::open(models_dir()).unwrap_or_else(|err| panic!("{err}"));
        FastembedEmbedder::load(&files, FastembedOptions::default()).unwrap_or_else(|err| panic!("{err}"))
    })
}

/// A test document: one chunk per paragraph.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    pub doc_id: &'static str,
    pub version: &'static str,
    pub regions: &'static [&'static str],
    pub brand: Option<&'static str>,
    pub tags: &'static [&'static str],
    pub paragraphs: &'static [&'static str],
}

/// A small policy corpus: region-specific documents, one shared by `us` and `uk`, one per brand.
pub const CORPUS: &[Doc] = &[
    Doc {
        doc_id: "returns-us",
        version: "2024-01",
        regions: &["us"],
        brand: None,
        tags: &["returns"],
        paragraphs: &[
            "Customers in the United States may return most items within 30 days of delivery for a full refund in dollars.",
            "Refunds go back to the original payment method within 5 to 7 business days after we receive the item.",
        ],
    },
    Doc {
        doc_id: "returns-uk",
        version: "2024-03",
        regions: &["uk"],
        brand: None,
        tags: &["returns"],
        paragraphs: &[
            "Customers in the United Kingdom may cancel an online order within 14 days under the Consumer Contracts Regulations.",
            "Faulty goods can be rejected for a full refund in pounds within 30 days under the Consumer Rights Act.",
        ],
    },
    Doc {
        doc_id: "shipping-shared",
        version: "v3",
        regions: &["us", "uk"],
        brand: None,
        tags: &["shipping"],
        paragraphs: &[
            "Parcels are carried by our partner Zephyrex Logistics and arrive within three to five working days.",
            "Tracking numbers are emailed as soon as the parcel leaves the warehouse.",
        ],
    },
    Doc {
        doc_id: "warranty-us",
        version: "1",
        regions: &["us"],
        brand: Some("voltline"),
        tags: &["warranty"],
        paragraphs: &[
            "Voltline electronics carry a two-year limited warranty covering manufacturing defects.",
        ],
    },
    Doc {
        doc_id: "privacy-eu",
        version: "2023-11",
        regions: &["eu"],
        brand: None,
        tags: &["privacy"],
        paragraphs: &[
            "We process personal data under the GDPR; you may ask for a copy of your data at any time.",
        ],
    },
];

/// The chunks of `doc`, embedded, marked current or not.
pub fn chunks(doc: &Doc, current: bool) -> Vec<ChunkPoint> {
    let texts: Vec<String> = doc.paragraphs.iter().map(|p| (*p).to_owned()).collect();
    let vectors = embedder().embed_documents(&texts).unwrap();
    let mut offset = 0u64;
    texts
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(index, (text, dense))| {
            let index = index as u32;
            let len = text.chars().count() as u64;
            let payload = ChunkPayload {
                doc_id: doc.doc_id.to_owned(),
                version: doc.version.to_owned(),
                title: format!("{} policy", doc.doc_id),
                source: format!("{}.md", doc.doc_id),
                regions: doc.regions.iter().map(|r| (*r).to_owned()).collect(),
                brand: doc.brand.map(str::to_owned),
                language: "en".to_owned(),
                tags: doc.tags.iter().map(|t| (*t).to_owned()).collect(),
                heading_path: vec![doc.doc_id.to_owned(), format!("Section {index}")],
                text,
                char_start: offset,
                char_end: offset + len,
                chunk_index: index,
                content_sha256: format!("{:064x}", doc.doc_id.len()),
                // As points written before ingestion times were recorded: the key is absent.
                ingested_at: None,
            };
            offset += len + 2;
            ChunkPoint { id: ChunkId::for_chunk(doc.doc_id, doc.version, index), dense, payload, current }
        })
        .collect()
}

/// A search of `query` in `region` with the given mode.
pub fn request(query: &str, region: &str, mode: SearchMode, limit: usize) -> SearchRequest {
    let dense = embedder().embed_query(query).unwrap().vector;
    SearchRequest {
        dense,
        text: query.to_owned(),
        filter: SearchFilter { region: region.to_owned(), ..SearchFilter::default() },
        mode,
        limit,
        prefetch_limit: 20,
    }
}

pub fn doc_ids(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.payload.doc_id.as_str()).collect()
}

impl Doc {
    pub fn clone_with_version(&self, version: &'static str) -> Doc {
        Doc { version, ..*self }
    }
}

/// Makes the collection, writes the whole corpus as current and flushes.
pub fn load(store: &dyn VectorStore) {
    store.ensure_collection().unwrap();
    for doc in CORPUS {
        store.upsert(&chunks(doc, true)).unwrap();
    }
    store.flush().unwrap();
}

/// An edge store in a fresh temporary directory with the whole corpus ingested and current.
pub fn loaded_edge() -> (tempfile::TempDir, EdgeStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(&dir.path().join("shard"), DIM).unwrap();
    load(&store);
    (dir, store)
}

/// Options for a fresh, uniquely named collection on the test server, or `None` (with a note)
/// when no server is configured.
pub fn qdrant_options() -> Option<QdrantOptions> {
    let Some(url) = std::env::var(QDRANT_URL_VAR).ok().filter(|url| !url.trim().is_empty()) else {
        println!("skipped: {QDRANT_URL_VAR} is not set");
        return None;
    };
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let collection =
        format!("rudder_test_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut options = QdrantOptions::new(url, collection);
    options.api_key = std::env::var(QDRANT_API_KEY_VAR).ok().filter(|key| !key.is_empty());
    options.timeout = Duration::from_secs(30);
    Some(options)
}

/// A store on a test collection that is dropped from the server when this goes out of scope, also
/// when the test fails.
#[derive(Debug)]
pub struct TestCollection {
    pub store: QdrantStore,
    pub options: QdrantOptions,
}

impl TestCollection {
    /// Connects to a fresh collection (not created yet), or `None` when no server is configured.
    pub fn connect() -> Option<Self> {
        let options = qdrant_options()?;
        let store = QdrantStore::connect(&options, DIM).unwrap_or_else(|err| panic!("{err}"));
        Some(Self { store, options })
    }
}

impl Drop for TestCollection {
    fn drop(&mut self) {
        if let Err(err) = self.store.drop_collection() {
            eprintln!("cannot drop the test collection {}: {err}", self.options.collection);
        }
    }
}

/// A loaded store of one backend, and what cleans up after it.
#[derive(Debug)]
pub enum Fixture {
    // Fields drop in order: the store closes before its directory goes.
    Edge { store: Box<EdgeStore>, _dir: tempfile::TempDir },
    Qdrant(Box<TestCollection>),
}

impl Fixture {
    pub fn store(&self) -> &dyn VectorStore {
        match self {
            Self::Edge { store, .. } => store.as_ref(),
            Self::Qdrant(collection) => &collection.store,
        }
    }

    /// What the store's health names its backend.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Edge { .. } => "edge",
            Self::Qdrant(_) => "qdrant",
        }
    }
}

/// The edge conformance fixture: always there.
pub fn edge_fixture() -> Option<Fixture> {
    let (dir, store) = loaded_edge();
    Some(Fixture::Edge { store: Box::new(store), _dir: dir })
}

/// The qdrant conformance fixture: a fresh collection with the corpus, when a server is configured.
pub fn qdrant_fixture() -> Option<Fixture> {
    // Wrapped before loading, so a failed load still drops the collection.
    let fixture = Fixture::Qdrant(Box::new(TestCollection::connect()?));
    load(fixture.store());
    Some(fixture)
}
