//! A real company's policy repository, as published: the Basecamp policies (a Jekyll site's
//! Markdown pages, each an `index.md` in its own folder, with front matter rudder does not know,
//! Liquid placeholders and links, plus two PDFs; see its NOTICE.md). Read from the shared corpora
//! beside the workspace (`../shared/corpora/basecamp-policies`), never copied into the repository.
//! Walked and ingested as `rudder ingest` does it, through the pipeline with the real embedder and a
//! real embedded store.

use super::{pipeline, regions, store};
use rudder_core::VectorStore;
use rudder_ingest::{
    IngestOptions,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use std::{collections::BTreeSet, path::PathBuf};

fn basecamp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/basecamp-policies");
    assert!(
        dir.join("NOTICE.md").is_file(),
        "the Basecamp policies corpus is missing: expected it at {} (../shared/corpora/basecamp-policies \
         from the workspace root)",
        dir.display()
    );
    dir
}

/// Every page by its folder, the two PDFs by their path: what the site's URLs look like.
const EXPECTED_IDS: [&str; 28] = [
    "abuse",
    "abuse/how-we-handle",
    "cancellation",
    "copyright",
    "incapacitated",
    "index",
    "ownership-bc3",
    "ownership-hey",
    "privacy",
    "privacy/backpack-subprocessors",
    "privacy/basecamp-subprocessors",
    "privacy/campfire-subprocessors",
    "privacy/company-processors",
    "privacy/hey-subprocessors",
    "privacy/highrise-subprocessors",
    "privacy/recruitment",
    "privacy/regulations/ccpa",
    "privacy/regulations/dpa/Data_Processing_Addendum_current",
    "refund",
    "refund/hey",
    "security",
    "security/37signals-security-overview",
    "security/response",
    "sla",
    "taxes",
    "terms",
    "until-the-end-of-the-internet",
    "updates",
];

#[test]
fn the_basecamp_policies_ingest_whole_with_path_ids_and_clean_passages() {
    let root = basecamp_dir();
    let found = client::find_documents(std::slice::from_ref(&root), &WalkOptions::default()).unwrap();
    let ignored: Vec<_> = found.ignored.iter().map(|p| p.strip_prefix(&root).unwrap().to_owned()).collect();
    assert_eq!(ignored, [PathBuf::from("LICENSE.md"), PathBuf::from("NOTICE.md")]);

    let flags = PartialMetadata { regions: vec!["us".into()], ..Default::default() };
    let documents: Vec<_> =
        found.files.iter().map(|file| client::read_named(file, &flags).unwrap()).collect();
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let reports = pipeline.ingest_all(documents);

    let failures: Vec<_> = reports.iter().filter(|r| r.result.is_err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let ids: BTreeSet<&str> = reports.iter().map(|r| r.doc_id.as_str()).collect();
    assert_eq!(ids.len(), reports.len(), "unique ids");
    assert_eq!(ids, EXPECTED_IDS.into());

    let mut passages = 0;
    for report in &reports {
        let version = &report.result.as_ref().unwrap().version;
        let chunks = store.document_chunks(&report.doc_id, version).unwrap();
        assert!(!chunks.is_empty(), "{}", report.doc_id);
        for chunk in &chunks {
            passages += 1;
            for leftover in ["{{", "}}", "{%", "%}", "]("] {
                assert!(!chunk.text.contains(leftover), "{leftover:?} in {}: {}", report.doc_id, chunk.text);
            }
            assert!(chunk.heading_path.iter().all(|h| !h.contains("](") && !h.contains("{{")), "{chunk:?}");
        }
        // Each Markdown page's description is left out with a note, not refused.
        if report.file_name.ends_with(".md") {
            assert_eq!(report.result.as_ref().unwrap().notes, ["ignored front matter keys: description"]);
        }
    }
    assert!(passages > EXPECTED_IDS.len(), "{passages} passages");

    // Titles from the front matter; the link's text stays where its Liquid target went.
    let (refund, _) = rudder_ingest::catalog::get(store.as_ref(), "refund", false).unwrap();
    assert_eq!((refund.title.as_str(), refund.source.as_str()), ("Refund policy", "refund/index.md"));
    let (ccpa, _) = rudder_ingest::catalog::get(store.as_ref(), "privacy/regulations/ccpa", false).unwrap();
    assert_eq!(ccpa.title, "California Resident Notice at Collection");
    let (_, passages) = rudder_ingest::catalog::get(store.as_ref(), "refund/hey", true).unwrap();
    let text: String = passages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("Send us a note, tell us what’s up"), "{text}");
}
