//! `rudder ingest --local` (rudder_ingest::local): files through a pipeline in this process, answered
//! like an upload stream: results in file order, an unreadable file failing alone, and the bytes read.

use super::{CORPUS_DOCUMENTS, corpus_dir, pipeline, regions, store};
use rudder_ingest::{
    IngestOptions,
    client::{self, DocumentFile, WalkOptions},
    local,
    metadata::PartialMetadata,
};
use rudder_proto::v1::IngestOutcome;
use std::path::PathBuf;
use tonic::Code;

#[test]
fn local_ingest_counts_the_bytes_it_read_and_reports_in_file_order() {
    let (_dir, store) = store();
    let pipeline = pipeline(&store, IngestOptions::new(regions()));
    let mut files = client::find_documents(&[corpus_dir()], &WalkOptions::default()).unwrap().files;
    files.insert(2, DocumentFile::from(corpus_dir().join("no-such-file.md")));
    // What an upload of the same files sends as data: the documents' bytes (sidecars are merged on
    // the client side, not sent).
    let expected_bytes: u64 =
        files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum();
    assert!(expected_bytes > 0);

    let mut progress: Vec<(usize, PathBuf)> = Vec::new();
    let response = local::ingest_files(&pipeline, &files, &PartialMetadata::default(), |index, path| {
        progress.push((index, path.to_owned()));
    });
    assert_eq!(progress, files.iter().map(|f| f.path.clone()).enumerate().collect::<Vec<_>>());
    assert_eq!(response.results.len(), CORPUS_DOCUMENTS + 1);
    let names: Vec<_> = response.results.iter().map(|r| r.file_name.clone()).collect();
    // Named by their path under the directory walked; the missing file by its file name.
    let expected_names: Vec<_> = files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, expected_names);
    assert_eq!(names[..3], ["eu/loyalty-eu.md", "eu/refunds-eu.md", "no-such-file.md"]);
    let missing = &response.results[2];
    assert_eq!(missing.outcome, i32::from(IngestOutcome::Failed), "{missing:?}");
    assert_eq!(missing.error_code, i32::from(Code::InvalidArgument));
    let summary = response.summary.unwrap();
    assert_eq!((summary.ingested, summary.failed), (CORPUS_DOCUMENTS as u32, 1));
    assert_eq!(summary.bytes_received, expected_bytes);
    let table = client::summary_table(&response);
    assert!(table.contains(&format!("{expected_bytes} bytes")), "{table}");

    // Again: every document unchanged, and the same bytes read.
    let again = local::ingest_files(&pipeline, &files, &PartialMetadata::default(), |_, _| {});
    let summary = again.summary.unwrap();
    assert_eq!((summary.unchanged, summary.failed), (CORPUS_DOCUMENTS as u32, 1));
    assert_eq!(summary.bytes_received, expected_bytes);
}
