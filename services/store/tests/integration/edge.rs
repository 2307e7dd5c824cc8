//! The embedded store (qdrant-edge) against the real engine: every conformance test, plus what only
//! a store in a directory has: persistence across reopen, a vector size that does not fit the
//! directory's shard, the directory removed under an open store.

use crate::{CORPUS, DIM, chunks, conformance::conformance_tests, doc_ids, loaded_edge, request};
use rudder_core::{StoreError, VectorStore, store::SearchMode};
use rudder_store::EdgeStore;

conformance_tests!(crate::edge_fixture);

#[test]
fn data_survives_closing_and_reopening() {
    let (dir, store) = loaded_edge();
    let path = store.dir().to_owned();
    let before = store.list_documents().unwrap();
    let query = request("Zephyrex", "uk", SearchMode::Hybrid, 3);
    let hits_before = doc_ids(&store.search(&query).unwrap()).join(",");
    drop(store);

    let reopened = EdgeStore::open(&path, DIM).unwrap();
    reopened.ensure_collection().unwrap();
    assert_eq!(reopened.list_documents().unwrap(), before);
    assert_eq!(doc_ids(&reopened.search(&query).unwrap()).join(","), hits_before);
    assert_eq!(reopened.health().unwrap().points, 8);
    // Writes after reopening work and persist too.
    reopened.delete_document("privacy-eu", None).unwrap();
    reopened.flush().unwrap();
    drop(reopened);
    let again = EdgeStore::open(&path, DIM).unwrap();
    assert_eq!(again.list_documents().unwrap().len(), 4);
    drop(again);
    drop(dir);
}

#[test]
fn ingestion_times_survive_closing_and_reopening() {
    let (dir, store) = loaded_edge();
    let path = store.dir().to_owned();
    let doc = &CORPUS[0];
    let mut points = chunks(doc, true);
    for point in &mut points {
        point.payload.ingested_at = Some("2026-11-21T01:50:45Z".to_owned());
    }
    // The same ids as the loaded version: this rewrites it with an ingestion time.
    store.upsert(&points).unwrap();
    store.flush().unwrap();
    drop(store);

    let reopened = EdgeStore::open(&path, DIM).unwrap();
    let stored = reopened.document_chunks(doc.doc_id, doc.version).unwrap();
    assert_eq!(stored.len(), points.len());
    assert!(stored.iter().all(|c| c.ingested_at.as_deref() == Some("2026-11-21T01:50:45Z")), "{stored:?}");
    // A document written without one still reads, as None.
    let other = &CORPUS[1];
    let old = reopened.document_chunks(other.doc_id, other.version).unwrap();
    assert!(!old.is_empty() && old.iter().all(|c| c.ingested_at.is_none()), "{old:?}");
    drop(reopened);
    drop(dir);
}

#[test]
fn reopening_with_another_vector_size_is_refused() {
    let (_dir, store) = loaded_edge();
    let path = store.dir().to_owned();
    drop(store);
    let err = EdgeStore::open(&path, 768).err();
    assert!(matches!(err, Some(StoreError::Incompatible { .. })), "{err:?}");
}

#[test]
fn removing_the_directory_under_an_open_store_does_not_panic_on_close() {
    let (dir, store) = loaded_edge();
    std::fs::remove_dir_all(dir.path()).unwrap();
    // Flushing now fails; the error comes back as a value and dropping the store is quiet.
    store.upsert(&chunks(&CORPUS[4], true)).ok();
    assert!(store.flush().is_err());
    drop(store);
}
