//! The pipeline over the whole sample corpus into a real qdrant-edge store: counts per region,
//! re-ingestion (unchanged, replaced), failures that touch nothing, one document named again and
//! again in one overlapped batch, and the ingestion time each version carries.

use super::{
    CORPUS_DOCUMENTS, CORPUS_PER_REGION, corpus_documents, corpus_file, embedder, pipeline, regions, store,
};
use rudder_core::{
    Embedder, ServiceError, VectorStore,
    store::{SearchFilter, SearchMode, SearchRequest},
};
use rudder_ingest::{
    DocumentReport, IngestOptions, Outcome, SourceDocument, catalog, client, metadata::PartialMetadata,
};

fn outcome_of(report: &rudder_ingest::DocumentReport) -> &Outcome {
    &report.result.as_ref().unwrap_or_else(|err| panic!("{} failed: {err}", report.file_name)).outcome
}

fn markdown(doc_id: &str, version: &str, regions: &str, body: &str) -> SourceDocument {
    let content = format!(
        "+++\ndoc_id = \"{doc_id}\"\nregions = {regions}\nversion = \"{version}\"\n+++\n\n# Test policy\n\n{body}\n"
    );
    SourceDocument { file_name: format!("{doc_id}.md"), content: content.into_bytes(), ..Default::default() }
}

fn search(store: &dyn VectorStore, question: &str, region: &str) -> Vec<rudder_core::store::SearchHit> {
    let dense = embedder().embed_query(question).unwrap().vector;
    let request = SearchRequest {
        dense,
        text: question.to_owned(),
        filter: SearchFilter { region: region.to_owned(), current_only: true, ..Default::default() },
        mode: SearchMode::Hybrid,
        limit: 3,
        prefetch_limit: 20,
    };
    store.search(&request).unwrap()
}

#[test]
fn whole_corpus_ingests_then_reingests_unchanged() {
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let reports = pipeline.ingest_all(corpus_documents());
    assert_eq!(reports.len(), CORPUS_DOCUMENTS);
    for report in &reports {
        assert_eq!(outcome_of(report), &Outcome::Ingested, "{report:?}");
    }
    let documents = store.list_documents().unwrap();
    assert_eq!(documents.len(), CORPUS_DOCUMENTS);
    for (region, expected) in CORPUS_PER_REGION {
        let count = documents.iter().filter(|d| d.regions.contains(region)).count();
        assert_eq!(count, expected, "documents of {region}");
    }
    // The HTML and PDF documents took their metadata from their sidecars.
    let pdf = documents.iter().find(|d| d.doc_id == "warranty-eu").unwrap();
    assert_eq!(pdf.versions[0].version, "2025-11-01");
    assert!(pdf.versions[0].current && pdf.versions[0].chunks >= 3, "{pdf:?}");
    let chunks = store.document_chunks("price-adjustment-us", "2026-02-01").unwrap();
    assert!(
        chunks.iter().any(|c| c.heading_path == ["Price Adjustment Policy", "Eligibility"]),
        "{chunks:?}"
    );
    assert!(chunks.iter().all(|c| c.tags == ["refunds", "pricing"] && c.language == "en-US"));
    let points = store.health().unwrap().points;

    // Region-specific facts come back from their region only.
    let uk = search(store.as_ref(), "How many days do I have to return an item?", "uk");
    assert!(uk.iter().all(|hit| hit.payload.regions.contains(&"uk".to_owned())));
    assert!(uk.iter().any(|hit| hit.payload.text.contains("28 days")), "{uk:?}");

    let again = pipeline.ingest_all(corpus_documents());
    for report in &again {
        assert_eq!(outcome_of(report), &Outcome::Unchanged, "{report:?}");
    }
    let written: u32 = reports.iter().map(|r| r.result.as_ref().unwrap().chunk_count).sum();
    let unchanged: u32 = again.iter().map(|r| r.result.as_ref().unwrap().chunk_count).sum();
    assert_eq!(written, unchanged);
    assert_eq!(store.health().unwrap().points, points);
}

#[test]
fn a_new_version_replaces_the_old_one_completely() {
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let path = corpus_file("uk/returns-uk.md");
    let original = client::read_document(&path, &PartialMetadata::default()).unwrap();
    let first = pipeline.ingest(original.clone());
    assert_eq!(outcome_of(&first), &Outcome::Ingested);
    let old_chunks = store.document_chunks("returns-uk", "2026-03-01").unwrap().len();
    assert!(old_chunks >= 3);

    let text = String::from_utf8(original.content.clone()).unwrap();
    let updated = text.replace("within **28 days** of delivery", "within **35 days** of delivery");
    assert_ne!(text, updated);
    let flags = PartialMetadata { version: Some("2026-04-01".into()), ..Default::default() };
    let new =
        SourceDocument { content: updated.into_bytes(), metadata: flags, expected_sha256: None, ..original };
    let report = pipeline.ingest(new);
    assert_eq!(outcome_of(&report), &Outcome::Replaced { previous_version: "2026-03-01".into() });
    assert_eq!(report.result.as_ref().unwrap().version, "2026-04-01");

    assert!(store.document_chunks("returns-uk", "2026-03-01").unwrap().is_empty());
    let documents = store.list_documents().unwrap();
    let summary = documents.iter().find(|d| d.doc_id == "returns-uk").unwrap();
    assert_eq!(summary.versions.len(), 1);
    assert!(summary.versions[0].current);
    let hits = search(store.as_ref(), "How many days do I have to return an item?", "uk");
    assert!(hits.iter().any(|h| h.payload.text.contains("35 days")), "{hits:?}");
    assert!(hits.iter().all(|h| !h.payload.text.contains("28 days") && h.payload.version == "2026-04-01"));
}

#[test]
fn a_bad_document_fails_alone_and_changes_nothing() {
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let v1 = markdown("faq", "1", "[\"us\"]", "Orders ship within two days.");
    assert_eq!(outcome_of(&pipeline.ingest(v1)), &Outcome::Ingested);
    let stored_before = store.document_chunks("faq", "1").unwrap();

    let batch = vec![
        markdown("good", "1", "[\"uk\"]", "Parcels go by Royal Mail."),
        markdown("faq", "2", "[\"fr\"]", "Unknown region: must not replace version 1."),
        SourceDocument {
            file_name: "scan.pdf".into(),
            content: b"%PDF-1.4 broken".to_vec(),
            ..Default::default()
        },
        markdown("faq", "1", "[\"us\"]", "Same version label, different content."),
        SourceDocument {
            file_name: "notes.docx".into(),
            content: b"whatever".to_vec(),
            ..Default::default()
        },
        markdown("no-region", "1", "[]", "No region at all."),
        SourceDocument { file_name: "empty.md".into(), content: Vec::new(), ..Default::default() },
        markdown("also-good", "1", "[\"eu\", \"uk\"]", "Shared text."),
    ];
    let reports = pipeline.ingest_all(batch);
    let codes: Vec<_> = reports
        .iter()
        .map(|r| match &r.result {
            Ok(ingested) => format!("{:?}", ingested.outcome),
            Err(ServiceError::InvalidArgument { field, .. }) => format!("invalid {field}"),
            Err(ServiceError::FailedPrecondition(_)) => "precondition".to_owned(),
            Err(ServiceError::NotFound { what, .. }) => format!("unknown {what}"),
            Err(other) => format!("other {other}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "Ingested",
            "unknown region (metadata.regions)",
            "invalid content",
            "precondition",
            "invalid file_name",
            "invalid metadata.regions",
            "invalid content",
            "Ingested"
        ]
    );
    assert_eq!(reports[1].doc_id, "faq");
    assert_eq!(store.document_chunks("faq", "1").unwrap(), stored_before);
    assert!(store.document_chunks("faq", "2").unwrap().is_empty());
    let ids: Vec<_> = store.list_documents().unwrap().into_iter().map(|d| d.doc_id).collect();
    assert_eq!(ids, ["also-good", "faq", "good"]);
}

#[test]
fn the_size_limit_fails_only_the_large_document() {
    let (_dir, store) = store();
    let mut options = IngestOptions::new(regions());
    options.limits.max_document_bytes = 4096;
    let pipeline = pipeline(&store, options);
    let big = markdown("big", "1", "[\"us\"]", &"A long sentence about refunds. ".repeat(200));
    let small = markdown("small", "1", "[\"us\"]", "A short one.");
    let reports = pipeline.ingest_all([big, small]);
    let err = reports[0].result.as_ref().unwrap_err();
    assert!(
        matches!(err, ServiceError::InvalidArgument { field, reason } if field == "content" && reason.contains("4096")),
        "{err}"
    );
    assert_eq!(outcome_of(&reports[1]), &Outcome::Ingested);
}

#[test]
fn one_batch_naming_a_document_again_and_again_sees_each_earlier_write_in_turn() {
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let before = rudder_core::time::unix_now();
    let unreadable = DocumentReport::failed(
        String::new(),
        "gone.md".into(),
        ServiceError::invalid("file", "no such file"),
    );
    // Planned, embedded and written on different threads at once: each must still decide on what the
    // one before it left in the store.
    let entries = vec![
        Ok(markdown("faq", "1", "[\"us\"]", "Orders ship within two days.")),
        Ok(markdown("faq", "2", "[\"us\"]", "Orders ship within three days.")),
        Err(unreadable.clone()),
        Ok(markdown("faq", "2", "[\"us\"]", "Orders ship within three days.")),
        Ok(markdown("other", "1", "[\"uk\"]", "Parcels go by Royal Mail.")),
        Ok(markdown("faq", "1", "[\"us\"]", "Orders ship within four days.")),
    ];
    let mut reports = Vec::new();
    pipeline.ingest_each(entries, |report| reports.push(report));
    let after = rudder_core::time::unix_now();

    assert_eq!(reports.len(), 6);
    assert_eq!(reports[2], unreadable, "a failed entry is reported in its place");
    let outcomes: Vec<_> = [0, 1, 3, 4, 5].map(|i| outcome_of(&reports[i]).clone()).to_vec();
    assert_eq!(
        outcomes,
        [
            Outcome::Ingested,
            Outcome::Replaced { previous_version: "1".into() },
            Outcome::Unchanged,
            Outcome::Ingested,
            Outcome::Replaced { previous_version: "2".into() },
        ]
    );
    let faq = store.document_summary("faq").unwrap().unwrap();
    assert_eq!(faq.versions.len(), 1, "{faq:?}");
    assert!(faq.versions[0].current && faq.versions[0].version == "1");
    let chunks = store.document_chunks("faq", "1").unwrap();
    assert!(chunks.iter().any(|c| c.text.contains("four days")), "{chunks:?}");

    // Every chunk of the version carries one ingestion time, from this run; the catalog shows it.
    let times: Vec<_> = chunks.iter().map(|c| c.ingested_at.clone()).collect();
    assert!(times.windows(2).all(|w| w[0] == w[1]), "{times:?}");
    let at = times[0].as_deref().and_then(rudder_core::time::parse_rfc3339).unwrap();
    assert!((before..=after).contains(&at), "{before} <= {at} <= {after}");
    let (document, _) = catalog::get(store.as_ref(), "faq", false).unwrap();
    assert_eq!(document.ingested_at, times[0]);
}
