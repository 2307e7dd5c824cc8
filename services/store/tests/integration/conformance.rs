//! What every [`VectorStore`] backend must do, written once against `&dyn VectorStore`: search in
//! each mode, region isolation, brand, tag, document and version filters, document operations, the
//! two legs of hybrid search, refusing bad requests, health. Each test takes a [`Fixture`] holding a
//! store loaded with the whole corpus; [`conformance_tests!`] declares them all as `#[test]`s for
//! one backend (see `edge.rs`, `qdrant.rs`).

use crate::{CORPUS, Fixture, chunks, doc_ids, embedder, request};
use rudder_core::{
    Embedder, StoreError,
    store::{SearchFilter, SearchMode},
};

const MODES: [SearchMode; 3] = [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Sparse];

/// Declares every conformance test as a `#[test]` of the calling module, on the fixture
/// `$fixture()` gives; a `None` fixture (a backend not configured here) makes the test pass as skipped.
macro_rules! conformance_tests {
    (@each $fixture:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if let Some(fixture) = $fixture() {
                    $crate::conformance::$test(&fixture);
                }
            }
        )*
    };
    ($fixture:path) => {
        $crate::conformance::conformance_tests!(@each $fixture;
            a_search_returns_the_chunk_that_answers,
            a_uk_search_never_sees_a_us_only_chunk_and_shared_documents_appear_in_both,
            a_brand_filter_keeps_that_brand_and_brandless_documents,
            tag_and_document_filters_narrow_the_search,
            the_sparse_leg_finds_an_exact_rare_keyword,
            hybrid_hits_say_which_legs_found_them,
            deleting_a_document_removes_all_its_chunks,
            a_documents_chunks_come_back_in_order_for_one_version_only,
            an_ingestion_time_round_trips_and_chunks_without_one_read_as_none,
            listing_documents_gives_versions_chunk_counts_and_regions,
            one_documents_summary_matches_its_listing_entry,
            a_new_version_is_invisible_until_it_is_made_current_then_the_old_one_goes,
            bad_requests_are_refused_with_a_reason,
            health_reports_the_backend_and_point_count,
        );
    };
}
pub(crate) use conformance_tests;

pub fn a_search_returns_the_chunk_that_answers(fixture: &Fixture) {
    let store = fixture.store();
    for mode in MODES {
        let hits = store
            .search(&request("how many days do I have to return an item for a refund", "us", mode, 3))
            .unwrap();
        assert_eq!(
            hits.first().map(|h| h.payload.doc_id.as_str()),
            Some("returns-us"),
            "{mode:?}: {:?}",
            doc_ids(&hits)
        );
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "{mode:?}: best first");
    }
    let hits = store
        .search(&request("how many days do I have to return an item", "us", SearchMode::Dense, 1))
        .unwrap();
    assert_eq!(hits[0].payload.chunk_index, 0);
    assert_eq!(hits[0].payload.heading_path, ["returns-us", "Section 0"]);
    assert!(hits[0].payload.text.contains("30 days"));
}

pub fn a_uk_search_never_sees_a_us_only_chunk_and_shared_documents_appear_in_both(fixture: &Fixture) {
    let store = fixture.store();
    let queries = [
        "refund in dollars within 30 days in the United States",
        "Voltline two-year warranty",
        "returns",
        "delivery carrier Zephyrex",
    ];
    for mode in MODES {
        for query in queries {
            // A limit far above the corpus size: isolation must not depend on ranking.
            let uk = store.search(&request(query, "uk", mode, 100)).unwrap();
            for hit in &uk {
                assert!(
                    hit.payload.regions.iter().any(|r| r == "uk"),
                    "{mode:?} {query:?} leaked {}",
                    hit.payload.doc_id
                );
            }
            let us = store.search(&request(query, "us", mode, 100)).unwrap();
            assert!(us.iter().all(|h| h.payload.regions.iter().any(|r| r == "us")));
        }
        let shipping = "when will my parcel arrive with Zephyrex";
        for region in ["us", "uk"] {
            let hits = store.search(&request(shipping, region, mode, 3)).unwrap();
            assert_eq!(
                hits.first().map(|h| h.payload.doc_id.as_str()),
                Some("shipping-shared"),
                "{mode:?} {region}"
            );
        }
        let eu = store.search(&request(shipping, "eu", mode, 100)).unwrap();
        assert!(eu.iter().all(|h| h.payload.doc_id == "privacy-eu"), "{mode:?}: {:?}", doc_ids(&eu));
    }
}

pub fn a_brand_filter_keeps_that_brand_and_brandless_documents(fixture: &Fixture) {
    let store = fixture.store();
    let mut req = request("warranty on electronics", "us", SearchMode::Hybrid, 100);
    req.filter.brand = Some("voltline".into());
    let voltline = store.search(&req).unwrap();
    assert!(doc_ids(&voltline).contains(&"warranty-us"));
    assert!(doc_ids(&voltline).contains(&"returns-us"), "brandless documents apply to every brand");
    req.filter.brand = Some("otherbrand".into());
    let other = store.search(&req).unwrap();
    assert!(!doc_ids(&other).contains(&"warranty-us"));
    assert!(!other.is_empty());
}

pub fn tag_and_document_filters_narrow_the_search(fixture: &Fixture) {
    let store = fixture.store();
    let mut req = request("refund", "us", SearchMode::Hybrid, 100);
    req.filter.tags = vec!["shipping".into()];
    let hits = store.search(&req).unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h.payload.doc_id == "shipping-shared"));
    req.filter.tags.clear();
    req.filter.doc_ids = vec!["warranty-us".into(), "returns-uk".into()];
    let hits = store.search(&req).unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.payload.doc_id == "warranty-us"),
        "{:?}",
        doc_ids(&hits)
    );
}

pub fn the_sparse_leg_finds_an_exact_rare_keyword(fixture: &Fixture) {
    let store = fixture.store();
    let hits = store.search(&request("Zephyrex", "us", SearchMode::Sparse, 5)).unwrap();
    assert_eq!(hits.len(), 1, "only one chunk contains the word: {:?}", doc_ids(&hits));
    assert_eq!(hits[0].payload.doc_id, "shipping-shared");
    assert!(hits[0].payload.text.contains("Zephyrex"));
    assert!(hits[0].found_by.sparse && !hits[0].found_by.dense);
    // A query of stopwords only has no BM25 terms: nothing, not an error.
    assert!(store.search(&request("the of and", "us", SearchMode::Sparse, 5)).unwrap().is_empty());
}

pub fn hybrid_hits_say_which_legs_found_them(fixture: &Fixture) {
    let store = fixture.store();
    let hits =
        store.search(&request("Zephyrex delivery in working days", "us", SearchMode::Hybrid, 10)).unwrap();
    let top = hits.first().unwrap();
    assert_eq!(top.payload.doc_id, "shipping-shared");
    assert!(top.found_by.dense && top.found_by.sparse, "{:?}", top.found_by);
    // Every hit came from at least one leg; some only from the dense leg (no shared term).
    assert!(hits.iter().all(|h| h.found_by.dense || h.found_by.sparse));
    assert!(hits.iter().any(|h| h.found_by.dense && !h.found_by.sparse));
    // Hybrid scores are RRF scores (k = 2): at most 1/2 + 1/2.
    assert!(hits.iter().all(|h| h.score > 0.0 && h.score <= 1.0));
}

pub fn deleting_a_document_removes_all_its_chunks(fixture: &Fixture) {
    let store = fixture.store();
    assert_eq!(store.delete_document("returns-us", None).unwrap(), 2);
    assert_eq!(store.delete_document("returns-us", None).unwrap(), 0, "deleting twice is harmless");
    let hits = store.search(&request("return an item for a refund", "us", SearchMode::Hybrid, 100)).unwrap();
    assert!(!doc_ids(&hits).contains(&"returns-us"));
    assert!(store.list_documents().unwrap().iter().all(|d| d.doc_id != "returns-us"));
}

pub fn a_documents_chunks_come_back_in_order_for_one_version_only(fixture: &Fixture) {
    let store = fixture.store();
    let doc = CORPUS.iter().find(|d| d.doc_id == "returns-uk").unwrap();
    let stored = store.document_chunks(doc.doc_id, doc.version).unwrap();
    let expected: Vec<_> = chunks(doc, true).into_iter().map(|c| c.payload).collect();
    assert_eq!(stored, expected);
    assert!(store.document_chunks(doc.doc_id, "another-version").unwrap().is_empty());
    assert!(store.document_chunks("no-such-doc", doc.version).unwrap().is_empty());
}

pub fn an_ingestion_time_round_trips_and_chunks_without_one_read_as_none(fixture: &Fixture) {
    let store = fixture.store();
    // The corpus was written without ingestion times, like points stored before they were recorded.
    let old = &CORPUS[1];
    let stored_old = store.document_chunks(old.doc_id, old.version).unwrap();
    assert!(!stored_old.is_empty() && stored_old.iter().all(|c| c.ingested_at.is_none()), "{stored_old:?}");

    let new = old.clone_with_version("2024-09");
    let mut points = chunks(&new, false);
    for point in &mut points {
        point.payload.ingested_at = Some("2026-11-21T01:50:45Z".to_owned());
    }
    store.upsert(&points).unwrap();
    store.flush().unwrap();
    let stored = store.document_chunks(new.doc_id, new.version).unwrap();
    let expected: Vec<_> = points.into_iter().map(|p| p.payload).collect();
    assert_eq!(stored, expected);
    assert!(stored.iter().all(|c| c.ingested_at.as_deref() == Some("2026-11-21T01:50:45Z")));
}

pub fn one_documents_summary_matches_its_listing_entry(fixture: &Fixture) {
    let store = fixture.store();
    let listed = store.list_documents().unwrap();
    for doc in &listed {
        assert_eq!(store.document_summary(&doc.doc_id).unwrap().as_ref(), Some(doc));
    }
    assert_eq!(store.document_summary("no-such-doc").unwrap(), None);
}

pub fn listing_documents_gives_versions_chunk_counts_and_regions(fixture: &Fixture) {
    let store = fixture.store();
    let docs = store.list_documents().unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
    assert_eq!(ids, ["privacy-eu", "returns-uk", "returns-us", "shipping-shared", "warranty-us"]);
    let shared = docs.iter().find(|d| d.doc_id == "shipping-shared").unwrap();
    assert_eq!(shared.regions.iter().map(String::as_str).collect::<Vec<_>>(), ["uk", "us"]);
    assert_eq!(shared.versions.len(), 1);
    assert_eq!(shared.versions[0].version, "v3");
    assert_eq!(shared.versions[0].chunks, 2);
    assert!(shared.versions[0].current);
    assert_eq!(shared.title, "shipping-shared policy");
}

pub fn a_new_version_is_invisible_until_it_is_made_current_then_the_old_one_goes(fixture: &Fixture) {
    let store = fixture.store();
    let mut v2 = CORPUS[0].clone_with_version("2024-06");
    v2.paragraphs =
        &["Customers in the United States may now return items within 60 days for a full refund."];
    store.upsert(&chunks(&v2, false)).unwrap();
    store.flush().unwrap();
    let mut req = request("how many days to return an item", "us", SearchMode::Hybrid, 100);
    req.filter.current_only = true;
    let versions = || -> Vec<String> {
        store
            .search(&req)
            .unwrap()
            .into_iter()
            .filter(|h| h.payload.doc_id == "returns-us")
            .map(|h| h.payload.version)
            .collect()
    };
    assert!(versions().iter().all(|v| v == "2024-01"), "staged version is hidden");

    store.set_current_version("returns-us", "2024-06").unwrap();
    assert_eq!(versions(), ["2024-06"], "only the new version is current");

    assert_eq!(store.delete_document("returns-us", Some("2024-06")).unwrap(), 2);
    let docs = store.list_documents().unwrap();
    let returns = docs.iter().find(|d| d.doc_id == "returns-us").unwrap();
    assert_eq!(returns.versions.len(), 1);
    assert_eq!((returns.versions[0].version.as_str(), returns.versions[0].chunks), ("2024-06", 1));
}

pub fn bad_requests_are_refused_with_a_reason(fixture: &Fixture) {
    let store = fixture.store();
    let mut req = request("refund", "us", SearchMode::Dense, 5);
    req.dense.truncate(10);
    assert!(matches!(store.search(&req), Err(StoreError::InvalidRequest { .. })));
    let mut req = request("refund", "", SearchMode::Hybrid, 5);
    assert!(matches!(store.search(&req), Err(StoreError::InvalidRequest { .. })), "no region, no search");
    req.filter = SearchFilter { region: "us".into(), ..SearchFilter::default() };
    req.limit = 0;
    assert!(matches!(store.search(&req), Err(StoreError::InvalidRequest { .. })));
    let mut bad = chunks(&CORPUS[4], true);
    bad[0].dense[3] = f32::NAN;
    assert!(matches!(store.upsert(&bad), Err(StoreError::InvalidRequest { .. })));
    assert!(store.upsert(&[]).is_ok());
}

pub fn health_reports_the_backend_and_point_count(fixture: &Fixture) {
    let health = fixture.store().health().unwrap();
    assert_eq!(health.backend, fixture.backend());
    assert_eq!(health.points, 8);
    match fixture {
        Fixture::Edge { .. } => assert!(health.detail.contains("shard"), "{}", health.detail),
        Fixture::Qdrant(collection) => assert!(
            health.detail.contains(collection.store.url())
                && health.detail.contains(collection.store.collection()),
            "{}",
            health.detail
        ),
    }
    assert_eq!(embedder().dim(), 384);
}
