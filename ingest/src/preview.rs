//! `rudder ingest --dry-run`: what an ingest would make of documents, without a store. Each document
//! is checked, loaded, its metadata resolved and its chunks cut exactly as the pipeline does (the
//! embedding model's tokenizer counts, nothing is embedded), with the same doc_id clash check of one
//! run; the result is its doc_id, title and chunk count, or the error that would fail it.

use crate::{
    chunker,
    error::IngestError,
    pipeline::{self, IngestOptions, Run, SourceDocument},
};
use rudder_core::{Embedder, ServiceError};
use std::fmt::Write as _;

/// What ingesting one document would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Empty if it could not be resolved.
    pub doc_id: String,
    pub file_name: String,
    pub result: Result<Previewed, ServiceError>,
}

/// A document that would be ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previewed {
    pub title: String,
    pub chunk_count: usize,
    /// What an ingest would note (front matter keys that would be ignored).
    pub notes: Vec<String>,
}

/// Previews `documents` as one run; an `Err` entry is a file that could not be read (its name and
/// why), reported in its place.
pub fn preview_all<I>(embedder: &dyn Embedder, options: &IngestOptions, documents: I) -> Vec<Preview>
where
    I: IntoIterator<Item = Result<SourceDocument, (String, ServiceError)>>,
{
    let run = Run::default();
    documents
        .into_iter()
        .map(|document| match document {
            Ok(document) => preview(embedder, options, &run, document),
            Err((file_name, err)) => Preview { doc_id: String::new(), file_name, result: Err(err) },
        })
        .collect()
}

fn preview(embedder: &dyn Embedder, options: &IngestOptions, run: &Run, document: SourceDocument) -> Preview {
    let file_name = document.file_name.clone();
    let mut doc_id = String::new();
    let result = (|| -> Result<Previewed, IngestError> {
        let prepared = pipeline::prepare(options, document, &mut doc_id)?;
        run.claim_doc_id(&prepared.meta.doc_id, &file_name)?;
        let chunked = chunker::chunk(&prepared.loaded, embedder, &options.chunking)?;
        Ok(Previewed {
            title: prepared.meta.title,
            chunk_count: chunked.chunks.len(),
            notes: prepared.loaded.notes,
        })
    })();
    Preview { doc_id, file_name, result: result.map_err(ServiceError::from) }
}

/// A fixed-width table of previews, the documents that would fail first, and a summary line.
pub fn preview_table(previews: &[Preview]) -> String {
    let rows =
        previews.iter().filter(|p| p.result.is_err()).chain(previews.iter().filter(|p| p.result.is_ok()));
    let mut out = String::new();
    let _ = writeln!(out, "{:<40} {:>6}  {:<40} FILE / DETAIL", "DOCUMENT", "CHUNKS", "TITLE");
    let (mut chunks, mut failed) = (0, 0);
    for preview in rows {
        let name = if preview.doc_id.is_empty() { &preview.file_name } else { &preview.doc_id };
        match &preview.result {
            Ok(previewed) => {
                chunks += previewed.chunk_count;
                let mut detail = vec![preview.file_name.clone()];
                detail.extend(previewed.notes.iter().cloned());
                let _ = writeln!(
                    out,
                    "{name:<40} {:>6}  {:<40} {}",
                    previewed.chunk_count,
                    previewed.title,
                    detail.join("; ")
                );
            }
            Err(err) => {
                failed += 1;
                let _ = writeln!(out, "{name:<40} {:>6}  {:<40} {}: {err}", "FAILED", "", preview.file_name);
            }
        }
    }
    let _ = writeln!(
        out,
        "dry run: {} documents would be ingested ({chunks} chunks), {failed} would fail; nothing was stored",
        previews.len() - failed
    );
    out
}
