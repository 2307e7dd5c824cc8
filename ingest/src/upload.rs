//! The server side of one upload stream: the document being received (its bytes, the size limit,
//! known early from `size_bytes` or as data arrives, after which bytes are counted but not kept), and
//! sidecar `NAME.meta.toml` files sent in the stream ahead of their document, which fill the metadata
//! that the request and the front matter leave empty.

use crate::{
    client::SIDECAR_SUFFIX,
    metadata::PartialMetadata,
    pipeline::{DocumentReport, SourceDocument, WriteScope},
};
use rudder_core::ServiceError;
use rudder_proto::v1::{self as pb, DocumentEnd, DocumentStart};
use std::collections::BTreeMap;

/// A document between its `DocumentStart` and `DocumentEnd`.
#[derive(Debug)]
pub(crate) struct OpenDocument {
    pub(crate) start: DocumentStart,
    content: Vec<u8>,
    received: u64,
    /// Set once the announced or received size passes the limit; the content is then dropped.
    over_limit: bool,
}

impl OpenDocument {
    pub(crate) fn new(start: DocumentStart, limit: u64) -> Self {
        let over_limit = start.size_bytes > limit;
        Self { start, content: Vec::new(), received: 0, over_limit }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], limit: u64) {
        self.received += bytes.len() as u64;
        if self.over_limit {
            return;
        }
        if self.received > limit {
            self.over_limit = true;
            self.content = Vec::new();
        } else {
            self.content.extend_from_slice(bytes);
        }
    }

    fn is_sidecar(&self) -> bool {
        self.start.file_name.ends_with(SIDECAR_SUFFIX)
    }

    /// The document to ingest, or its failure if it can already be decided here.
    fn finish(
        self,
        end: DocumentEnd,
        limit: u64,
        sidecars: &mut Sidecars,
    ) -> Result<SourceDocument, Box<DocumentReport>> {
        let DocumentStart { metadata, file_name, media_type, size_bytes } = self.start;
        let DocumentEnd { sha256 } = end;
        let metadata = partial_metadata(metadata.unwrap_or_default());
        let fail = |metadata: &PartialMetadata, file_name: String, err: ServiceError| {
            Box::new(DocumentReport::failed(metadata.doc_id.clone().unwrap_or_default(), file_name, err))
        };
        // The sidecar is claimed first, even for a document that fails: it did describe this one, and
        // left unclaimed it would be reported as describing none.
        let claimed = sidecars.take_for(&file_name);
        if self.over_limit {
            let size = self.received.max(size_bytes);
            let reason = format!("{size} bytes is over the limit of {limit} bytes per document");
            return Err(fail(&metadata, file_name, ServiceError::invalid("content", reason)));
        }
        let sidecar = match claimed {
            Some(Ok(sidecar)) => Some(sidecar),
            Some(Err(err)) => return Err(fail(&metadata, file_name, err)),
            None => None,
        };
        Ok(SourceDocument {
            file_name,
            media_type: Some(media_type).filter(|m| !m.trim().is_empty()),
            metadata,
            sidecar,
            content: self.content,
            expected_sha256: Some(sha256).filter(|s| !s.trim().is_empty()),
            scope: WriteScope::default(),
        })
    }
}

/// What a finished upload entry is.
#[derive(Debug)]
pub(crate) enum Finished {
    /// A document to ingest (boxed: it is much larger than the other variants).
    Document(Box<SourceDocument>),
    /// A document that already failed.
    Failed(DocumentReport),
    /// A sidecar, kept for the document it describes.
    Sidecar,
}

/// Closes `open` with `end`: a sidecar is kept in `sidecars`, a document is handed back.
pub(crate) fn finish(open: OpenDocument, end: DocumentEnd, limit: u64, sidecars: &mut Sidecars) -> Finished {
    if open.is_sidecar() {
        sidecars.insert(open);
        return Finished::Sidecar;
    }
    match open.finish(end, limit, sidecars) {
        Ok(document) => Finished::Document(Box::new(document)),
        Err(report) => Finished::Failed(*report),
    }
}

/// Sidecars received so far, by the name they describe (`returns.pdf` or `returns`).
#[derive(Debug, Default)]
pub(crate) struct Sidecars {
    pending: BTreeMap<String, (String, Result<PartialMetadata, ServiceError>)>,
}

impl Sidecars {
    fn insert(&mut self, open: OpenDocument) {
        let file_name = open.start.file_name.clone();
        let described = file_name.trim_end_matches(SIDECAR_SUFFIX).to_owned();
        let parsed = if open.over_limit {
            Err(ServiceError::invalid("content", format!("sidecar {file_name} is over the size limit")))
        } else {
            std::str::from_utf8(&open.content)
                .map_err(|_| ServiceError::invalid("metadata", format!("sidecar {file_name} is not UTF-8")))
                .and_then(|text| PartialMetadata::from_toml(text, &file_name).map_err(ServiceError::from))
        };
        self.pending.insert(described, (file_name, parsed));
    }

    /// The sidecar for `file_name` (`NAME.EXT.meta.toml` first, then `NAME.meta.toml`), used up.
    fn take_for(&mut self, file_name: &str) -> Option<Result<PartialMetadata, ServiceError>> {
        let stem = file_name.rsplit_once('.').map_or(file_name, |(stem, _)| stem);
        let found = self.pending.remove(file_name).or_else(|| self.pending.remove(stem));
        found.map(|(_, parsed)| parsed)
    }

    /// Sidecars no document used: reported as failed so a misnamed or late sidecar is not silently lost.
    pub(crate) fn unused(self) -> Vec<DocumentReport> {
        self.pending
            .into_values()
            .map(|(file_name, _)| {
                let err = ServiceError::invalid(
                    "file_name",
                    format!("sidecar {file_name} describes no document sent after it in this upload"),
                );
                DocumentReport::failed(String::new(), file_name, err)
            })
            .collect()
    }
}

pub(crate) fn partial_metadata(metadata: pb::DocumentMetadata) -> PartialMetadata {
    let pb::DocumentMetadata { doc_id, title, source, regions, brand, language, version, tags } = metadata;
    let given = |value: String| Some(value).filter(|v| !v.trim().is_empty());
    PartialMetadata {
        doc_id: given(doc_id),
        title: given(title),
        source: given(source),
        regions,
        brand: given(brand),
        language: given(language),
        version: given(version),
        tags,
    }
}
