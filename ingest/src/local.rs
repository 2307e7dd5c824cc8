//! `rudder ingest --local`: files read as the uploading client reads them ([`client::read_named`],
//! sidecars and front matter merged), run through a pipeline in this process, and answered with the
//! same `IngestResponse` an upload stream gets, so both paths print the same table, byte count
//! included. Blocking: call it from `spawn_blocking` or a dedicated thread.

use crate::{
    client::{self, DocumentFile},
    metadata::PartialMetadata,
    pipeline::{DocumentReport, Pipeline},
    service,
};
use rudder_core::ServiceError;
use rudder_proto::v1::IngestResponse;
use std::{
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

/// Ingests `files` in order with `flags` winning over each file's own metadata. A file that cannot
/// be read fails alone. `on_done(index, path)` is called as each file's result is known, in order
/// (a progress bar's hook; it runs on the pipeline's writing thread). `bytes_received` in the
/// summary counts the content of every file read, as the server counts an upload's data messages.
pub fn ingest_files(
    pipeline: &Pipeline,
    files: &[DocumentFile],
    flags: &PartialMetadata,
    mut on_done: impl FnMut(usize, &Path) + Send,
) -> IngestResponse {
    let started = Instant::now();
    // Counted where the files are read, on the pipeline's planning thread.
    let bytes_read = AtomicU64::new(0);
    // A file that cannot be read is its whole (failed) report, as `ingest_each` takes it.
    #[allow(clippy::result_large_err)]
    let documents = files.iter().map(|file| match client::read_named(file, flags) {
        Ok(document) => {
            bytes_read.fetch_add(document.content.len() as u64, Ordering::Relaxed);
            Ok(document)
        }
        Err(err) => Err(unreadable(file, &err)),
    });
    let mut reports = Vec::with_capacity(files.len());
    pipeline.ingest_each(documents, |report| {
        if let Some(file) = files.get(reports.len()) {
            on_done(reports.len(), file.path.as_path());
        }
        reports.push(report);
    });
    service::response_for(reports, bytes_read.load(Ordering::Relaxed), started.elapsed())
}

/// The report of a file that could not be read (or its sidecar could not).
fn unreadable(file: &DocumentFile, err: &client::ClientError) -> DocumentReport {
    DocumentReport::failed(String::new(), file.name.clone(), ServiceError::invalid("file", err.to_string()))
}
