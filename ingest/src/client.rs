//! The uploading side of ingestion, for `rudder ingest` and tests: finding files (files or directories,
//! recursive, include/exclude globs, a site's boilerplate such as LICENSE and README skipped, sidecar
//! `NAME.meta.toml` files never uploaded as documents) and the name each is uploaded under (its path
//! relative to the directory walked, which gives its default doc_id), reading each with its metadata
//! merged in the proto's order (flags, then front matter, then sidecar), streaming them to
//! `IngestService` as start/data/end messages, and a plain-text summary table, failures first.

use crate::{
    loaders::{self, MediaType},
    metadata::PartialMetadata,
    pipeline::{SourceDocument, WriteScope},
};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
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

/// File names a walked directory's files are skipped by unless told otherwise (matched without
/// regard to case): a repository's or site's licence, notices, change log and read-me are about the
/// site, not policy a customer is answered from.
pub const DEFAULT_IGNORE: [&str; 6] =
    ["LICENSE*", "LICENCE*", "COPYING*", "NOTICE*", "CHANGELOG*", "README*"];

/// Which files under a directory are documents, and what they are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkOptions {
    /// Globs (matched against the path relative to the directory given) a file must match; empty:
    /// every file with a supported extension.
    pub include: Vec<String>,
    /// Globs that exclude a file even if included.
    pub exclude: Vec<String>,
    /// File-name globs (case-insensitive, any depth) of boilerplate a walk skips: [`DEFAULT_IGNORE`]
    /// unless set. Files named explicitly are never skipped.
    pub ignore: Vec<String>,
    /// The directory names are relative to, for files and directories alike (each must be inside it).
    /// None: each directory given is its own root, and a file given alone is named by its file name.
    pub root: Option<PathBuf>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            ignore: DEFAULT_IGNORE.map(str::to_owned).to_vec(),
            root: None,
        }
    }
}

/// A document found on disk and the name it is uploaded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFile {
    pub path: PathBuf,
    /// The path relative to the root it was found under, `/`-separated (`refund/hey/index.md`), or
    /// the bare file name for a file given alone: the upload's `file_name`, so the default `source`
    /// and, without a doc_id in its metadata, the doc_id (`refund/hey`; see
    /// [`crate::metadata::default_doc_id`]).
    pub name: String,
}

impl From<PathBuf> for DocumentFile {
    /// A file named by its file name alone.
    fn from(path: PathBuf) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self { path, name }
    }
}

/// What a walk found: the documents, and the files the ignore list skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub files: Vec<DocumentFile>,
    pub ignored: Vec<PathBuf>,
}

/// The documents among `paths`, named by their path relative to the root: files as given,
/// directories walked recursively (sorted, so uploads are reproducible), filtered by the globs.
/// Sidecars, hidden files, unsupported extensions and the ignore list's boilerplate are skipped
/// inside directories; a file named explicitly is always taken (the server then says what is wrong
/// with it).
pub fn find_documents(paths: &[PathBuf], options: &WalkOptions) -> Result<Found, ClientError> {
    let include = glob_set(&options.include, false)?;
    let exclude = glob_set(&options.exclude, false)?;
    let ignore = glob_set(&options.ignore, true)?;
    let mut found = Found::default();
    for given in paths {
        let root = options.root.as_deref().unwrap_or(given);
        if given.is_file() {
            let name = if options.root.is_some() {
                relative_name(given, root)?
            } else {
                DocumentFile::from(given.clone()).name
            };
            found.files.push(DocumentFile { path: given.clone(), name });
            continue;
        }
        if !given.is_dir() {
            return Err(ClientError::File {
                path: given.clone(),
                reason: "no such file or directory".into(),
            });
        }
        for entry in walkdir::WalkDir::new(given).sort_by_file_name() {
            let entry =
                entry.map_err(|err| ClientError::File { path: given.clone(), reason: err.to_string() })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(given).unwrap_or(path);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(SIDECAR_SUFFIX) || name.starts_with('.') {
                continue;
            }
            let supported = MediaType::detect(name, None).is_ok();
            let included = match &include {
                Some(set) => set.is_match(relative),
                None => supported,
            };
            if !included || exclude.as_ref().is_some_and(|set| set.is_match(relative)) {
                continue;
            }
            if ignore.as_ref().is_some_and(|set| set.is_match(name)) {
                found.ignored.push(path.to_owned());
                continue;
            }
            found.files.push(DocumentFile { path: path.to_owned(), name: relative_name(path, root)? });
        }
    }
    Ok(found)
}

/// The documents among `paths` as [`find_documents`] finds them, without their names.
pub fn collect_files(paths: &[PathBuf], options: &WalkOptions) -> Result<Vec<PathBuf>, ClientError> {
    Ok(find_documents(paths, options)?.files.into_iter().map(|file| file.path).collect())
}

/// `path` relative to `root`, its parts joined with `/` whatever the platform.
fn relative_name(path: &Path, root: &Path) -> Result<String, ClientError> {
    let relative = path.strip_prefix(root).map_err(|_| ClientError::File {
        path: path.to_owned(),
        reason: format!("not inside the root {}", root.display()),
    })?;
    let parts: Vec<String> = relative
        .components()
        .filter_map(|part| match part {
            std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Ok(parts.join("/"))
}

fn glob_set(globs: &[String], ignore_case: bool) -> Result<Option<GlobSet>, ClientError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let parsed = GlobBuilder::new(glob)
            .case_insensitive(ignore_case)
            .build()
            .map_err(|err| ClientError::Glob { glob: glob.clone(), reason: err.to_string() })?;
        builder.add(parsed);
    }
    builder
        .build()
        .map(Some)
        .map_err(|err| ClientError::Glob { glob: globs.join(" "), reason: err.to_string() })
}

/// Reads a document named by its file name (see [`read_named`]).
pub fn read_document(path: &Path, flags: &PartialMetadata) -> Result<SourceDocument, ClientError> {
    read_named(&DocumentFile::from(path.to_owned()), flags)
}

/// Reads a document and its sidecar, with `flags` winning over front matter, and front matter over
/// the sidecar; its `file_name` is the file's name. A front matter the client cannot parse is left
/// for the server to report.
pub fn read_named(file: &DocumentFile, flags: &PartialMetadata) -> Result<SourceDocument, ClientError> {
    let path = file.path.as_path();
    let file_error = |reason: String| ClientError::File { path: path.to_owned(), reason };
    let content = std::fs::read(path).map_err(|err| file_error(err.to_string()))?;
    let file_name = file.name.clone();
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
        scope: WriteScope::default(),
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
    // The scope is the server's to apply, from the key the upload is sent with.
    let SourceDocument { file_name, media_type, metadata, sidecar, content, expected_sha256, scope: _ } =
        document;
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
pub async fn upload_files<F: Into<DocumentFile>>(
    client: &mut IngestServiceClient<Channel>,
    files: Vec<F>,
    flags: PartialMetadata,
    on_sent: impl FnMut(usize, &Path, u64) + Send + 'static,
) -> Result<IngestResponse, ClientError> {
    upload_files_with_key(client, files, flags, None, on_sent).await
}

/// [`upload_files`] to a server that checks API keys: `api_key` goes in the `authorization` header.
pub async fn upload_files_with_key<F: Into<DocumentFile>>(
    client: &mut IngestServiceClient<Channel>,
    files: Vec<F>,
    flags: PartialMetadata,
    api_key: Option<&str>,
    mut on_sent: impl FnMut(usize, &Path, u64) + Send + 'static,
) -> Result<IngestResponse, ClientError> {
    let authorization = api_key
        .map(|key| format!("Bearer {key}").parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>())
        .transpose()
        .map_err(|_| ClientError::File {
            path: PathBuf::new(),
            reason: "the API key is not a valid header value".into(),
        })?;
    let files: Vec<DocumentFile> = files.into_iter().map(Into::into).collect();
    let (sender, receiver) = tokio::sync::mpsc::channel::<IngestRequest>(4);
    let reader = tokio::spawn(async move {
        for (index, file) in files.iter().enumerate() {
            let path = &file.path;
            let document = {
                let (owned, flags) = (file.clone(), flags.clone());
                tokio::task::spawn_blocking(move || read_named(&owned, &flags))
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
    let mut request = tonic::Request::new(ReceiverStream::new(receiver));
    if let Some(authorization) = authorization {
        request.metadata_mut().insert("authorization", authorization);
    }
    let response = client.ingest(request).await;
    let read =
        reader.await.map_err(|err| ClientError::File { path: PathBuf::new(), reason: err.to_string() })?;
    read?;
    Ok(response?.into_inner())
}

/// A fixed-width table of an upload's results, failed documents first, and its summary line.
pub fn summary_table(response: &IngestResponse) -> String {
    let failed = i32::from(IngestOutcome::Failed);
    let rows = response.results.iter().filter(|r| r.outcome == failed);
    let rows = rows.chain(response.results.iter().filter(|r| r.outcome != failed));
    let mut out = String::new();
    let _ = writeln!(out, "{:<28} {:<10} {:<14} {:>6}  DETAIL", "DOCUMENT", "OUTCOME", "VERSION", "CHUNKS");
    for result in rows {
        let outcome = match IngestOutcome::try_from(result.outcome) {
            Ok(IngestOutcome::Ingested) => "ingested",
            Ok(IngestOutcome::Replaced) => "replaced",
            Ok(IngestOutcome::Unchanged) => "unchanged",
            Ok(IngestOutcome::Failed) => "FAILED",
            Ok(IngestOutcome::Unspecified) | Err(_) => "?",
        };
        let name = if result.doc_id.is_empty() { &result.file_name } else { &result.doc_id };
        let mut detail = Vec::new();
        if !result.error_message.is_empty() {
            // The file too: a doc_id alone may not say which file failed.
            detail
                .push(format!("{}: {} (code {})", result.file_name, result.error_message, result.error_code));
        }
        if !result.replaced_version.is_empty() {
            detail.push(format!("was {}", result.replaced_version));
        }
        detail.extend(result.notes.iter().cloned());
        let _ = writeln!(
            out,
            "{name:<28} {outcome:<10} {:<14} {:>6}  {}",
            result.version,
            result.chunk_count,
            detail.join("; ")
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

/// The files of the documents that failed, in upload order.
pub fn failed_files(response: &IngestResponse) -> Vec<&str> {
    let failed = i32::from(IngestOutcome::Failed);
    response.results.iter().filter(|r| r.outcome == failed).map(|r| r.file_name.as_str()).collect()
}
