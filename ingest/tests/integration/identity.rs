//! Document identity: a document without a doc_id is named by its path under the directory walked
//! (a site's `refund/index.md` is `refund`), metadata overrides that, the sample corpus keeps the ids
//! it always had, two files of one run with one doc_id fail naming both, and a walk skips a site's
//! boilerplate (LICENSE, NOTICE, README, ...) unless told otherwise.

use super::{corpus_dir, embedder, pipeline, regions, store};
use rudder_core::{ServiceError, VectorStore};
use rudder_ingest::{
    IngestOptions, SourceDocument,
    client::{self, DocumentFile, WalkOptions},
    metadata::{self, PartialMetadata, ResolveContext},
    preview,
};
use std::{collections::BTreeSet, path::Path};

#[test]
fn the_default_doc_id_is_the_relative_path_without_extension_or_index() {
    let cases = [
        ("refund/index.md", "refund"),
        ("refund/hey/index.md", "refund/hey"),
        ("privacy/regulations/ccpa/index.md", "privacy/regulations/ccpa"),
        ("index.md", "index"),
        ("security/37signals-security-overview.pdf", "security/37signals-security-overview"),
        ("returns-uk.md", "returns-uk"),
        ("policy.v2.md", "policy.v2"),
        ("./docs//a.html", "docs/a"),
        ("docs\\windows\\page.md", "docs/windows/page"),
        ("Data Processing (2024).pdf", "Data-Processing--2024-"),
        ("notes/index", "notes"),
    ];
    for (file_name, expected) in cases {
        assert_eq!(metadata::default_doc_id(file_name).as_deref(), Some(expected), "{file_name}");
    }
    assert_eq!(metadata::default_doc_id(""), None);
}

fn resolve(doc_id: Option<&str>, file_name: &str) -> Result<String, String> {
    let known = regions();
    let cx = ResolveContext {
        file_name,
        title_hint: None,
        content_sha256: "0123456789abcdef",
        known_regions: &known,
    };
    let meta = PartialMetadata {
        doc_id: doc_id.map(str::to_owned),
        regions: vec!["us".into()],
        ..Default::default()
    };
    metadata::resolve(meta, cx).map(|m| m.doc_id).map_err(|err| err.to_string())
}

#[test]
fn metadata_overrides_the_path_and_doc_ids_with_slashes_are_validated() {
    assert_eq!(resolve(None, "refund/hey/index.md").unwrap(), "refund/hey");
    assert_eq!(resolve(Some("hey-refunds"), "refund/hey/index.md").unwrap(), "hey-refunds");
    assert_eq!(resolve(Some("policies/refund/hey"), "x.md").unwrap(), "policies/refund/hey");
    for bad in ["/refund", "refund/", "a//b", "a/../b", "./a", "a b"] {
        let err = resolve(Some(bad), "x.md").unwrap_err();
        assert!(err.starts_with("metadata.doc_id"), "{bad:?}: {err}");
    }
    // A client naming a file outside the tree gets no id out of it.
    let err = resolve(None, "../../etc/secret.md").unwrap_err();
    assert!(err.contains("'..'"), "{err}");
}

/// A small static site: pages in folders, boilerplate at the top and below.
fn site(root: &Path) {
    let files = [
        ("index.md", "---\ntitle: Policies\ndescription: All of them\n---\n# Policies\n\nEvery policy.\n"),
        ("refund/index.md", "---\ntitle: Refunds\n---\n# Refunds\n\nWithin 30 days.\n"),
        ("refund/hey/index.md", "---\ntitle: HEY refunds\n---\n# HEY refunds\n\nWithin 14 days.\n"),
        ("security/overview.md", "# Security\n\nEncrypted at rest.\n"),
        ("LICENSE.md", "# License\n\nCC BY 4.0.\n"),
        ("NOTICE.md", "# Notice\n\nCopied.\n"),
        ("readme.txt", "Site read-me.\n"),
        ("refund/CHANGELOG.md", "# Changes\n\nNone.\n"),
    ];
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn names(files: &[DocumentFile]) -> Vec<&str> {
    files.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn a_walk_names_files_by_their_relative_path_and_skips_boilerplate() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let root = dir.path().to_owned();
    let found = client::find_documents(std::slice::from_ref(&root), &WalkOptions::default()).unwrap();
    assert_eq!(
        names(&found.files),
        ["index.md", "refund/hey/index.md", "refund/index.md", "security/overview.md"]
    );
    let ignored: BTreeSet<_> =
        found.ignored.iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        ignored,
        ["LICENSE.md", "NOTICE.md", "readme.txt", "refund/CHANGELOG.md"].map(str::to_owned).into()
    );

    // No ignore list: everything is a document.
    let all = client::find_documents(
        std::slice::from_ref(&root),
        &WalkOptions { ignore: Vec::new(), ..Default::default() },
    )
    .unwrap();
    assert_eq!(all.files.len(), 8);
    assert!(all.ignored.is_empty());

    // A subdirectory is its own root; a file given alone is named by its file name, and never skipped.
    let given = [root.join("refund"), root.join("LICENSE.md")];
    let found = client::find_documents(&given, &WalkOptions::default()).unwrap();
    assert_eq!(names(&found.files), ["hey/index.md", "index.md", "LICENSE.md"]);
    // With a root, every name is relative to it, files given alone too.
    let rooted = WalkOptions { root: Some(root.clone()), ..Default::default() };
    let found =
        client::find_documents(&[root.join("refund/hey/index.md"), root.join("security")], &rooted).unwrap();
    assert_eq!(names(&found.files), ["refund/hey/index.md", "security/overview.md"]);
    let outside = client::find_documents(&[corpus_dir()], &rooted);
    assert!(matches!(outside, Err(client::ClientError::File { .. })), "{outside:?}");
}

fn read_all(files: &[DocumentFile], flags: &PartialMetadata) -> Vec<SourceDocument> {
    files.iter().map(|file| client::read_named(file, flags).unwrap()).collect()
}

#[test]
fn a_site_ingests_under_path_ids_and_a_clash_in_one_run_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let found = client::find_documents(&[dir.path().to_owned()], &WalkOptions::default()).unwrap();
    let flags = PartialMetadata { regions: vec!["us".into()], ..Default::default() };
    let (_store_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let reports = pipeline.ingest_all(read_all(&found.files, &flags));
    let ids: Vec<_> = reports.iter().map(|r| (r.doc_id.as_str(), r.result.is_ok())).collect();
    assert_eq!(ids, [("index", true), ("refund/hey", true), ("refund", true), ("security/overview", true)]);
    // The site's description is noted, not refused; the file name with its folders is the source.
    assert_eq!(reports[0].result.as_ref().unwrap().notes, ["ignored front matter keys: description"]);
    let chunks = store.document_chunks("refund/hey", &reports[1].result.as_ref().unwrap().version).unwrap();
    assert_eq!(chunks[0].source, "refund/hey/index.md");

    // Two files that both claim doc_id "refund": the second fails naming both, the first is stored.
    let claimed = dir.path().join("refund-again.md");
    std::fs::write(&claimed, "---\ndoc_id: refund\n---\n# Refunds again\n\nWithin 60 days.\n").unwrap();
    let files = [found.files[2].clone(), DocumentFile::from(claimed)];
    let reports = pipeline.ingest_all(read_all(&files, &flags));
    assert!(reports[0].result.is_ok(), "{:?}", reports[0]);
    let err = reports[1].result.as_ref().unwrap_err();
    assert!(
        matches!(err, ServiceError::InvalidArgument { field, .. } if field == "metadata.doc_id"),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("refund-again.md") && message.contains("refund/index.md"), "{message}");
    let stored = store.document_chunks("refund", &reports[0].result.as_ref().unwrap().version).unwrap();
    assert!(stored.iter().all(|c| !c.text.contains("60 days")), "{stored:?}");
    // The same clash is what a dry run shows.
    let previews = preview::preview_all(
        embedder().as_ref(),
        &IngestOptions::new(regions()),
        read_all(&files, &flags).into_iter().map(Ok),
    );
    assert!(previews[0].result.is_ok() && previews[1].result.is_err(), "{previews:?}");
}

#[test]
fn the_sample_corpus_keeps_its_ids_and_the_labelled_questions_find_them() {
    let found = client::find_documents(&[corpus_dir()], &WalkOptions::default()).unwrap();
    assert!(found.ignored.is_empty(), "{:?}", found.ignored);
    // Every sample document names its doc_id (front matter or sidecar), so walking from the corpus
    // root (names like "us/refunds-us.md") changes none: the ids are the file stems they always were.
    let previews = preview::preview_all(
        embedder().as_ref(),
        &IngestOptions::new(regions()),
        read_all(&found.files, &PartialMetadata::default()).into_iter().map(Ok),
    );
    let mut ids = Vec::new();
    for (file, preview) in found.files.iter().zip(&previews) {
        assert!(preview.result.is_ok(), "{preview:?}");
        let stem = file.path.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(preview.doc_id, stem, "{}", file.name);
        assert!(preview.result.as_ref().unwrap().chunk_count > 0);
        ids.push(preview.doc_id.clone());
    }
    let ids: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(ids.len(), found.files.len(), "unique");
    let labelled = std::fs::read_to_string(corpus_dir().join("../eval/retrieval.jsonl")).unwrap();
    for line in labelled.lines().filter(|l| !l.trim().is_empty()) {
        let doc_id = line.split("\"doc_id\": \"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        assert!(ids.contains(doc_id), "{doc_id} of {line}");
    }
}
