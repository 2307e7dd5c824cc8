//! Loaders on the corpus's Markdown, HTML and PDF, and on broken input.

use super::corpus_file;
use rudder_core::ServiceError;
use rudder_ingest::{
    IngestError,
    loaders::{self, Block, MediaType},
    metadata::{self, PartialMetadata, ResolveContext},
};

fn load_file(relative: &str) -> loaders::LoadedDocument {
    let path = corpus_file(relative);
    let media = MediaType::detect(relative, None).unwrap();
    loaders::load(media, &std::fs::read(path).unwrap()).unwrap()
}

fn headings(document: &loaders::LoadedDocument) -> Vec<(u8, String)> {
    document
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading { level, text } => Some((*level, text.clone())),
            _ => None,
        })
        .collect()
}

fn invalid_field(err: IngestError) -> (&'static str, String) {
    match err {
        IngestError::Invalid { field, reason } => (field, reason),
        other => panic!("expected an invalid-argument error, got {other:?}"),
    }
}

#[test]
fn markdown_front_matter_headings_and_lists() {
    let document = load_file("uk/returns-uk.md");
    let front = document.front_matter.clone().unwrap();
    assert_eq!(front.doc_id.as_deref(), Some("returns-uk"));
    assert_eq!(front.regions, vec!["uk"]);
    assert_eq!(front.version.as_deref(), Some("2026-03-01"));
    let headings = headings(&document);
    assert_eq!(headings[0], (1, "Returns Policy".to_owned()));
    assert!(headings.contains(&(3, "Faulty goods".to_owned())), "{headings:?}");
    let text = document.normalised_text();
    assert!(text.contains("1. Start a return in your Northwind account or call 0800 555 0142."), "{text}");
    assert!(text.contains("within 28 days of delivery"), "{text}");
    assert!(!text.contains("+++") && !text.contains("**") && !text.contains("doc_id"), "{text}");
    assert_eq!(document.title_hint.as_deref(), Some("Returns Policy"));
}

#[test]
fn html_keeps_content_and_drops_page_furniture() {
    let document = load_file("us/price-adjustment-us.html");
    let text = document.normalised_text();
    for kept in ["within 14 days of your purchase", "- Clearance items", "$200 per order"] {
        assert!(text.contains(kept), "missing {kept:?} in {text}");
    }
    for dropped in
        ["tracking loaded", "Store Locator", "All rights reserved", "limited time banner", "font-family"]
    {
        assert!(!text.contains(dropped), "kept {dropped:?} in {text}");
    }
    let headings = headings(&document);
    assert_eq!(headings[0], (1, "Price Adjustment Policy".to_owned()));
    assert!(headings.contains(&(3, "Items that are not eligible".to_owned())), "{headings:?}");
}

#[test]
fn pdf_text_layer_with_recovered_headings() {
    let document = load_file("eu/warranty-eu.pdf");
    let text = document.normalised_text();
    assert!(text.contains("legal guarantee of conformity of 2 years from delivery"), "{text}");
    assert!(text.contains("EUR 15"), "{text}");
    let headings = headings(&document);
    assert_eq!(headings.first(), Some(&(1, "Legal Guarantee and Warranty".to_owned())), "{headings:?}");
    assert!(headings.contains(&(2, "How to make a claim".to_owned())), "{headings:?}");
}

#[test]
fn corrupt_truncated_and_fake_pdfs_are_clear_errors() {
    let real = std::fs::read(corpus_file("eu/warranty-eu.pdf")).unwrap();
    let truncated = real[..real.len() / 2].to_vec();
    let mut scrambled = real.clone();
    for byte in scrambled.iter_mut().skip(200).step_by(7) {
        *byte = byte.wrapping_add(91);
    }
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage", b"%PDF-1.7\n this is not really a pdf \n%%EOF".to_vec()),
        ("truncated", truncated),
        ("scrambled", scrambled),
        ("not a pdf", b"PK\x03\x04 a zip file".to_vec()),
    ];
    for (name, bytes) in cases {
        let err = loaders::load(MediaType::Pdf, &bytes).expect_err(name);
        let (field, reason) = invalid_field(err);
        assert_eq!(field, "content", "{name}: {reason}");
        assert!(reason.contains("PDF"), "{name}: {reason}");
    }
}

#[test]
fn empty_unknown_and_non_utf8_documents_are_refused() {
    let (field, reason) = invalid_field(loaders::load(MediaType::Markdown, b" \n\n\t").unwrap_err());
    assert_eq!((field, reason.contains("empty")), ("content", true), "{reason}");
    let (field, reason) =
        invalid_field(loaders::load(MediaType::PlainText, b"ok \xff\xfe broken").unwrap_err());
    assert_eq!(field, "content");
    assert!(reason.contains("UTF-8") && reason.contains("offset 3"), "{reason}");
    let (field, reason) = invalid_field(MediaType::detect("policy.docx", None).unwrap_err());
    assert_eq!(field, "file_name");
    assert!(reason.contains(".docx"), "{reason}");
    let (field, _) = invalid_field(MediaType::detect("policy.md", Some("application/msword")).unwrap_err());
    assert_eq!(field, "media_type");
    let (field, _) = invalid_field(loaders::load(MediaType::Markdown, b"# Only a heading\n").unwrap_err());
    assert_eq!(field, "content");
}

#[test]
fn media_type_overrides_the_extension() {
    assert_eq!(MediaType::detect("notes.txt", Some("text/html; charset=utf-8")).unwrap(), MediaType::Html);
    assert_eq!(MediaType::detect("dir/Policy.MD", None).unwrap(), MediaType::Markdown);
    assert_eq!(MediaType::detect("scan.pdf", Some("")).unwrap(), MediaType::Pdf);
}

#[test]
fn yaml_front_matter_and_plain_text() {
    let markdown = "---\ndoc_id: faq-us\ntitle: \"FAQ\"\nregions: [us, uk]\ntags:\n  - faq\n  - help\n---\n\
                    # FAQ\n\nShort answers.\n";
    let document = loaders::load(MediaType::Markdown, markdown.as_bytes()).unwrap();
    let front = document.front_matter.unwrap();
    assert_eq!(front.doc_id.as_deref(), Some("faq-us"));
    assert_eq!(front.title.as_deref(), Some("FAQ"));
    assert_eq!(front.regions, vec!["us", "uk"]);
    assert_eq!(front.tags, vec!["faq", "help"]);
    // A key rudder does not use is left out with a note, not an error.
    let unknown = "---\ncolour: blue\n---\nBody text here.\n";
    let document = loaders::load(MediaType::Markdown, unknown.as_bytes()).unwrap();
    assert_eq!(document.notes, ["ignored front matter keys: colour"]);
    let bad = "---\ntitle: \"FAQ\ncolour: blue\n---\nBody text here.\n";
    let (field, reason) = invalid_field(loaders::load(MediaType::Markdown, bad.as_bytes()).unwrap_err());
    assert_eq!(field, "metadata");
    assert!(reason.contains("front matter line 2"), "{reason}");
    let text = loaders::load(MediaType::PlainText, b"First  paragraph\nwraps.\n\n\nSecond one.").unwrap();
    assert_eq!(text.normalised_text(), "First paragraph wraps.\n\nSecond one.");
}

#[test]
fn metadata_merges_in_proto_order_and_validates() {
    let request = PartialMetadata { title: Some("From the request".into()), ..Default::default() };
    let front = PartialMetadata {
        title: Some("From front matter".into()),
        regions: vec!["UK".into()],
        version: Some("7".into()),
        ..Default::default()
    };
    let sidecar = PartialMetadata::from_toml(
        "doc_id = \"from-sidecar\"\nregions = [\"us\"]\nversion = 2026-01-31\nbrand = \"SummitPeak\"",
        "sidecar",
    )
    .unwrap();
    let known = super::regions();
    let cx = ResolveContext {
        file_name: "x/returns.md",
        title_hint: None,
        content_sha256: "abcdef0123456789",
        known_regions: &known,
    };
    let merged = request.clone().or(front).or(sidecar.clone());
    let meta = metadata::resolve(merged, cx).unwrap();
    assert_eq!(meta.title, "From the request");
    assert_eq!(meta.regions, vec!["uk"]);
    assert_eq!(meta.version, "7");
    assert_eq!(meta.doc_id, "from-sidecar");
    assert_eq!(meta.brand.as_deref(), Some("summitpeak"));
    assert_eq!(meta.source, "x/returns.md");
    assert_eq!(meta.language, "en");
    // Sidecar alone: its TOML date becomes the version label.
    assert_eq!(metadata::resolve(sidecar, cx).unwrap().version, "2026-01-31");
    // Defaults: doc_id from the file's path without its extension, version from the content hash.
    let minimal = PartialMetadata { regions: vec!["eu".into()], ..Default::default() };
    let meta = metadata::resolve(minimal, cx).unwrap();
    assert_eq!(
        (meta.doc_id.as_str(), meta.version.as_str(), meta.version_given),
        ("x/returns", "abcdef012345", false)
    );
    // An unknown region is NOT_FOUND listing the known ones, no region an invalid argument.
    let fr = PartialMetadata { regions: vec!["fr".into()], ..Default::default() };
    let err = ServiceError::from(metadata::resolve(fr, cx).unwrap_err());
    assert!(
        matches!(&err, ServiceError::NotFound { name, known, .. } if name == "fr" && known == &["us", "uk", "eu"]),
        "{err}"
    );
    let err = ServiceError::from(metadata::resolve(PartialMetadata::default(), cx).unwrap_err());
    assert!(
        matches!(&err, ServiceError::InvalidArgument { field, .. } if field == "metadata.regions"),
        "{err}"
    );
    let bad_id =
        PartialMetadata { doc_id: Some("returns policy".into()), regions: vec!["us".into()], ..request };
    let err = ServiceError::from(metadata::resolve(bad_id, cx).unwrap_err());
    assert!(
        matches!(&err, ServiceError::InvalidArgument { field, .. } if field == "metadata.doc_id"),
        "{err}"
    );
}
