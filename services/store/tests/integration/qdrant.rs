//! The server store (qdrant-client) against a real Qdrant server, when `RUDDER_TEST_QDRANT_URL`
//! names one (else these print that they are skipped): every conformance test, each in a fresh
//! collection dropped at its end, plus what only a server store has: a second connection to the
//! same collection, a collection made for another vector size. Connecting to a server that is not
//! there needs no server and always runs.

use crate::{DIM, TestCollection, conformance::conformance_tests, doc_ids, load, request};
use rudder_core::{StoreError, VectorStore, store::SearchMode};
use rudder_store::{QdrantOptions, QdrantStore};
use std::time::Duration;

conformance_tests!(crate::qdrant_fixture);

#[test]
fn an_unreachable_server_is_unavailable_and_named_without_the_api_key() {
    let key = "not-a-real-key-5f2c9e";
    let mut options = QdrantOptions::new("http://127.0.0.1:1", "rudder_test_unreachable");
    options.api_key = Some(key.into());
    options.timeout = Duration::from_secs(5);
    assert!(!format!("{options:?}").contains(key), "{options:?}");
    let err = QdrantStore::connect(&options, DIM).err();
    match &err {
        Some(StoreError::Unavailable { backend: "qdrant", reason }) => {
            assert!(reason.contains("http://127.0.0.1:1"), "{reason}");
        }
        other => panic!("expected the server to be unavailable, got {other:?}"),
    }
    let shown = format!("{err:?} {}", err.as_ref().map(ToString::to_string).unwrap_or_default());
    assert!(!shown.contains(key), "{shown}");
}

#[test]
fn a_second_connection_sees_the_same_collection() {
    let Some(collection) = TestCollection::connect() else { return };
    load(&collection.store);
    // `ensure_collection` on an existing, fitting collection changes nothing.
    collection.store.ensure_collection().unwrap();
    let before = collection.store.list_documents().unwrap();
    let query = request("Zephyrex", "uk", SearchMode::Hybrid, 3);
    let hits_before = doc_ids(&collection.store.search(&query).unwrap()).join(",");

    let other = QdrantStore::connect(&collection.options, DIM).unwrap();
    other.ensure_collection().unwrap();
    assert_eq!(other.list_documents().unwrap(), before);
    assert_eq!(doc_ids(&other.search(&query).unwrap()).join(","), hits_before);
    assert_eq!(other.health().unwrap().points, 8);
    // A write through one connection is seen by the other at once: writes wait to be applied.
    other.delete_document("privacy-eu", None).unwrap();
    assert_eq!(collection.store.list_documents().unwrap().len(), 4);
    if let Some(key) = &collection.options.api_key {
        assert!(!format!("{:?}", collection.store).contains(key.as_str()));
    }
}

#[test]
fn a_collection_made_for_another_vector_size_is_incompatible() {
    let Some(collection) = TestCollection::connect() else { return };
    collection.store.ensure_collection().unwrap();
    let other = QdrantStore::connect(&collection.options, 768).unwrap();
    let err = other.ensure_collection().err();
    assert!(matches!(err, Some(StoreError::Incompatible { backend: "qdrant", .. })), "{err:?}");
    let reason = err.map(|err| err.to_string()).unwrap_or_default();
    assert!(reason.contains("384") && reason.contains("768"), "{reason}");
}
