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
