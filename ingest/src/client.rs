//! The uploading side of ingestion, for `rudder ingest` and tests: finding files (files or directories,
//! recursive, include/exclude globs, sidecar `NAME.meta.toml` files never uploaded as documents),
//! reading each with its metadata merged in the proto's order (flags, then front matter, then sidecar),
//! streaming them to `IngestService` as start/data/end messages, and a plain-text summary table.

use crate::{
    loaders::{self, MediaType},
    metadata::PartialMetadata,
    pipeline::SourceDocument,
};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rudder_proto::v1::{
    self as pb, DocumentData, DocumentEnd, DocumentStart, IngestOutcome, IngestRequest, IngestResponse,
    ingest_request::Message, ingest_service_client::IngestServiceClient,
};
use sha2::{Digest, Sha256};
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Suffix of sidecar metadata files: `returns.pdf` is described by `returns.pdf.meta.toml` or
/// `returns.meta.toml`.
pub const SIDECAR_SUFFIX: &str = ".meta.toml";
/// Bytes per `DocumentData` message: well under the server's 4 MiB message limit.
pub const DATA_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid glob {glob:?}: {reason}")]
    Glob { glob: String, reason: String },
    #[error("upload failed: {0}")]
    Upload(#[from] tonic::Status),
}

/// Which files under a directory are documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Globs (matched against the path relative to the directory given) a file must match; empty:
    /// every file with a supported extension.
    pub include: Vec<String>,
    /// Globs that exclude a file even if included.
    pub exclude: Vec<String>,
}

/// The documents among `paths`: files as given, directories walked recursively (sorted, so uploads
/// are reproducible), filtered by the globs. Sidecars and unsupported extensions are skipped inside
/// directories; a file named explicitly is always taken (the server then says what is wrong with it).
pub fn collect_files(paths: &[PathBuf], options: &WalkOptions) -> Result<Vec<PathBuf>, ClientError> {
    let include = glob_set(&options.include)?;
    let exclude = glob_set(&options.exclude)?;
    let mut files = Vec::new();
    for root in paths {
        if root.is_file() {
            files.push(root.clone());
            continue;
        }
        if !root.is_dir() {
            return Err(ClientError::File { path: root.clone(), reason: "no such file or directory".into() });
        }
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry =
                entry.map_err(|err| ClientError::File { path: root.clone(), reason: err.to_string() })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(path);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(SIDECAR_SUFFIX) || name.starts_with('.') {
                continue;
            }
            let supported = MediaType::detect(name, None).is_ok();
            let included = match &include {
                Some(set) => set.is_match(relative),
                None => supported,
            };
            if included && !exclude.as_ref().is_some_and(|set| set.is_match(relative)) {
                files.push(path.to_owned());
            }
        }
    }
    Ok(files)
}

fn glob_set(globs: &[String]) -> Result<Option<GlobSet>, ClientError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let parsed = Glob::new(glob)
            .map_err(|err| ClientError::Glob { glob: glob.clone(), reason: err.to_string() })?;
        builder.add(parsed);
    }
    builder
        .build()
        .map(Some)
        .map_err(|err| ClientError::Glob { glob: globs.join(" "), reason: err.to_string() })
}

/// Reads a document and its sidecar, with `flags` winning over front matter, and front matter over
/// the sidecar. A front matter the client cannot parse is left for the server to report.
pub fn read_document(path: &Path, flags: &PartialMetadata) -> Result<SourceDocument, ClientError> {
    let file_error = |reason: String| ClientError::File { path: path.to_owned(), reason };
    let content = std::fs::read(path).map_err(|err| file_error(err.to_string()))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let sidecar = match sidecar_path(path) {
        Some(sidecar) => {
            let text = std::fs::read_to_string(&sidecar).map_err(|err| file_error(err.to_string()))?;
            let origin = sidecar.display().to_string();
            Some(PartialMetadata::from_toml(&text, &origin).map_err(|err| file_error(err.to_string()))?)
        }
        None => None,
    };
    let front_matter = MediaType::detect(&file_name, None)
        .ok()
        .and_then(|media| loaders::embedded_metadata(media, &content).ok().flatten())
        .unwrap_or_default();
    let metadata = flags.clone().or(front_matter).or(sidecar.unwrap_or_default());
    Ok(SourceDocument {
        file_name,
        media_type: None,
        metadata,
        sidecar: None,
        expected_sha256: Some(hex::encode(Sha256::digest(&content))),
        content,
    })
}

/// `NAME.EXT.meta.toml` or `NAME.meta.toml` beside the document, whichever exists.
pub fn sidecar_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    [format!("{name}{SIDECAR_SUFFIX}"), format!("{stem}{SIDECAR_SUFFIX}")]
        .into_iter()
        .map(|candidate| path.with_file_name(candidate))
        .find(|candidate| candidate.is_file())
}

/// The upload messages of one document: start (with metadata), data in [`DATA_MESSAGE_BYTES`]
/// pieces, end (with the content's sha256).
pub fn document_messages(document: SourceDocument) -> Vec<IngestRequest> {
    let SourceDocument { file_name, media_type, metadata, sidecar, content, expected_sha256 } = document;
    let metadata = metadata.or(sidecar.unwrap_or_default());
    let PartialMetadata { doc_id, title, source, regions, brand, language, version, tags } = metadata;
    let start = DocumentStart {
        metadata: Some(pb::DocumentMetadata {
            doc_id: doc_id.unwrap_or_default(),
            title: title.unwrap_or_default(),
            source: source.unwrap_or_default(),
            regions,
            brand: brand.unwrap_or_default(),
            language: language.unwrap_or_default(),
            version: version.unwrap_or_default(),
            tags,
        }),
        file_name,
        media_type: media_type.unwrap_or_default(),
        size_bytes: content.len() as u64,
    };
    let mut messages = vec![IngestRequest { message: Some(Message::Start(start)) }];
    messages.extend(content.chunks(DATA_MESSAGE_BYTES).map(|piece| IngestRequest {
        message: Some(Message::Data(DocumentData { content: piece.to_vec() })),
    }));
    messages.push(IngestRequest {
        message: Some(Message::End(DocumentEnd { sha256: expected_sha256.unwrap_or_default() })),
    });
    messages
}

/// Reads and uploads `files` in one stream; files are read one at a time as the stream is consumed,
/// so memory stays at about one document. `on_sent(index, path, bytes)` is called as each document
/// has been handed to the stream (a progress bar's hook). A file that cannot be read locally ends
/// the upload with its error before anything more is sent.
pub async fn upload_files(
    client: &mut IngestServiceClient<Channel>,
    files: Vec<PathBuf>,
    flags: PartialMetadata,
    mut on_sent: impl FnMut(usize, &Path, u64) + Send + 'static,
) -> Result<IngestResponse, ClientError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<IngestRequest>(4);
    let reader = tokio::spawn(async move {
        for (index, path) in files.iter().enumerate() {
            let document = {
                let (owned, flags) = (path.clone(), flags.clone());
                tokio::task::spawn_blocking(move || read_document(&owned, &flags))
                    .await
                    .map_err(|err| ClientError::File { path: path.clone(), reason: err.to_string() })??
            };
            let bytes = document.content.len() as u64;
            for message in document_messages(document) {
                if sender.send(message).await.is_err() {
                    // The server closed the stream; its status is what the caller sees.
                    return Ok(());
                }
            }
            on_sent(index, path, bytes);
        }
        Ok::<(), ClientError>(())
    });
    let response = client.ingest(ReceiverStream::new(receiver)).await;
    let read =
        reader.await.map_err(|err| ClientError::File { path: PathBuf::new(), reason: err.to_string() })?;
    read?;
    Ok(response?.into_inner())
}

/// A fixed-width table of an upload's results and its summary line.
pub fn summary_table(response: &IngestResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<28} {:<10} {:<14} {:>6}  DETAIL", "DOCUMENT", "OUTCOME", "VERSION", "CHUNKS");
    for result in &response.results {
        let outcome = match IngestOutcome::try_from(result.outcome) {
            Ok(IngestOutcome::Ingested) => "ingested",
            Ok(IngestOutcome::Replaced) => "replaced",
            Ok(IngestOutcome::Unchanged) => "unchanged",
            Ok(IngestOutcome::Failed) => "FAILED",
            Ok(IngestOutcome::Unspecified) | Err(_) => "?",
        };
        let name = if result.doc_id.is_empty() { &result.file_name } else { &result.doc_id };
        let detail = if !result.error_message.is_empty() {
            format!("{} (code {})", result.error_message, result.error_code)
        } else if !result.replaced_version.is_empty() {
            format!("was {}", result.replaced_version)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{name:<28} {outcome:<10} {:<14} {:>6}  {detail}",
            result.version, result.chunk_count
        );
    }
    if let Some(s) = &response.summary {
        let _ = writeln!(
            out,
            "{} ingested, {} replaced, {} unchanged, {} failed; {} chunks written, {} bytes in {} ms",
            s.ingested, s.replaced, s.unchanged, s.failed, s.chunks_written, s.bytes_received, s.elapsed_ms
        );
    }
    out
}
