//! The client side of `rudder ingest` (rudder_ingest::client): walking directories with globs, sidecars,
//! the upload messages.

use super::{CORPUS_DOCUMENTS, corpus_dir, corpus_file};
use rudder_ingest::{
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_proto::v1::ingest_request::Message;

fn names(files: &[std::path::PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn walking_finds_documents_but_not_sidecars_or_scripts() {
    let files = client::collect_files(&[corpus_dir()], &WalkOptions::default()).unwrap();
    let names = names(&files);
    assert_eq!(names.len(), CORPUS_DOCUMENTS, "{names:?}");
    assert!(names.contains(&"warranty-eu.pdf".to_owned()) && names.contains(&"shipping-eu.html".to_owned()));
    assert!(names.iter().all(|n| !n.ends_with(".meta.toml") && !n.ends_with(".py")), "{names:?}");
    // Sorted walk: reproducible upload order.
    let again = client::collect_files(&[corpus_dir()], &WalkOptions::default()).unwrap();
    assert_eq!(files, again);
}

#[test]
fn include_and_exclude_globs_narrow_the_walk() {
    let options = WalkOptions {
        include: vec!["uk/**".into(), "shared/*.md".into()],
        exclude: vec!["**/loyalty-*".into()],
        ..WalkOptions::default()
    };
    let mut names = names(&client::collect_files(&[corpus_dir()], &options).unwrap());
    names.sort();
    assert_eq!(
        names,
        [
            "gift-cards.md",
            "privacy-uk-eu.md",
            "refunds-uk.md",
            "returns-uk.md",
            "shipping-uk.md",
            "warranty-uk.md"
        ]
    );
    let err = client::collect_files(
        &[corpus_dir()],
        &WalkOptions { include: vec!["[".into()], ..WalkOptions::default() },
    );
    assert!(matches!(err, Err(client::ClientError::Glob { .. })));
    let missing = client::collect_files(&[corpus_dir().join("nope")], &WalkOptions::default());
    assert!(matches!(missing, Err(client::ClientError::File { .. })));
    // A file named explicitly is taken whatever its extension: the server reports what is wrong.
    let script = corpus_dir().join("make_pdf.py");
    assert_eq!(
        client::collect_files(std::slice::from_ref(&script), &WalkOptions::default()).unwrap(),
        [script]
    );
}

#[test]
fn sidecars_fill_what_flags_and_front_matter_leave_empty() {
    let pdf = client::read_document(&corpus_file("eu/warranty-eu.pdf"), &PartialMetadata::default()).unwrap();
    assert_eq!(
        client::sidecar_path(&corpus_file("eu/warranty-eu.pdf")),
        Some(corpus_file("eu/warranty-eu.meta.toml"))
    );
    assert_eq!(pdf.metadata.doc_id.as_deref(), Some("warranty-eu"));
    assert_eq!(pdf.metadata.version.as_deref(), Some("2025-11-01"));
    assert_eq!(pdf.expected_sha256.as_ref().map(String::len), Some(64));

    let flags =
        PartialMetadata { version: Some("v9".into()), tags: vec!["flagged".into()], ..Default::default() };
    let md = client::read_document(&corpus_file("uk/returns-uk.md"), &flags).unwrap();
    assert_eq!(md.metadata.version.as_deref(), Some("v9"));
    assert_eq!(md.metadata.tags, ["flagged"]);
    assert_eq!(md.metadata.doc_id.as_deref(), Some("returns-uk"), "front matter fills the rest");

    let messages = client::document_messages(md);
    assert!(matches!(messages.first().and_then(|m| m.message.as_ref()), Some(Message::Start(start))
        if start.file_name == "returns-uk.md" && start.metadata.as_ref().is_some_and(|m| m.version == "v9")));
    assert!(
        matches!(messages.last().and_then(|m| m.message.as_ref()), Some(Message::End(end)) if end.sha256.len() == 64)
    );
    assert_eq!(messages.len(), 3, "a small file is one data message");
}
