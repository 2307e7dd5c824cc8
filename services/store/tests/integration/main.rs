//! rudder-store's integration tests, one binary: the real qdrant-edge engine in a temporary
//! directory, fed with chunks embedded by the real all-MiniLM-L6-v2 model (`RUDDER_MODELS_DIR`,
//! default `~/.cache/rudder/models`, filled by `make models`).
// Fixtures panic with the error: in a test binary that is the failing test's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod edge;

use rudder_core::{
    Embedder, ModelFiles, VectorStore,
    store::{ChunkId, ChunkPayload, ChunkPoint, SearchFilter, SearchHit, SearchMode, SearchRequest},
};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use std::{path::PathBuf, sync::OnceLock};

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

/// A store in a fresh temporary directory with the whole corpus ingested and current.
pub fn loaded_store() -> (tempfile::TempDir, rudder_store::EdgeStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = rudder_store::EdgeStore::open(&dir.path().join("shard"), 384).unwrap();
    store.ensure_collection().unwrap();
    for doc in CORPUS {
        store.upsert(&chunks(doc, true)).unwrap();
    }
    store.flush().unwrap();
    (dir, store)
}
