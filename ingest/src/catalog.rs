//! The catalog: what the store holds, per document, as `ListDocuments` and `GetDocument` show it
//! (current version, every stored version, chunk count, the metadata read back from the current
//! version's chunks), with region/brand filtering and doc_id-ordered paging; and deleting a document.
//! Blocking, like the store it reads.

use crate::error::IngestError;
use rudder_core::{
    VectorStore,
    store::{ChunkPayload, DocumentSummary},
};

/// A stored document as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub doc_id: String,
    /// Metadata as the current (or, with none current, the newest) version's first chunk carries it.
    pub title: String,
    pub source: String,
    pub regions: Vec<String>,
    pub brand: Option<String>,
    pub language: String,
    pub tags: Vec<String>,
    /// Empty when no version is current (an ingest was interrupted before its switch-over).
    pub current_version: String,
    /// Every version with chunks in the store, sorted.
    pub versions: Vec<String>,
    /// Chunks of the current version.
    pub chunk_count: u32,
    pub content_sha256: String,
    /// When the current version was ingested (RFC 3339, as its chunks carry it); None when no version
    /// is current, or for a version stored before ingestion times were recorded.
    pub ingested_at: Option<String>,
}

/// Which documents to list, and where the page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub region: Option<String>,
    pub brand: Option<String>,
    /// Only documents whose doc_id sorts after this one (the previous page's last).
    pub after: Option<String>,
    pub page_size: usize,
}

/// One page of documents, and the doc_id to continue after if there are more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub documents: Vec<StoredDocument>,
    pub next_after: Option<String>,
}

pub fn list(store: &dyn VectorStore, query: &ListQuery) -> Result<Page, IngestError> {
    let page_size = query.page_size.max(1);
    let region = query.region.as_deref().map(str::to_lowercase);
    let brand = query.brand.as_deref().map(str::to_lowercase);
    let mut documents = Vec::new();
    let mut summaries = store
        .list_documents()?
        .into_iter()
        .filter(|d| query.after.as_deref().is_none_or(|after| d.doc_id.as_str() > after))
        .filter(|d| region.as_deref().is_none_or(|r| d.regions.contains(r)))
        .peekable();
    while let Some(summary) = summaries.next() {
        let document = describe(store, summary)?;
        if brand.is_some() && document.brand != brand {
            continue;
        }
        documents.push(document);
        if documents.len() == page_size {
            // More only if another document would pass the filters too; the brand is known only
            // after reading it, so a last empty page is possible and harmless.
            let next_after = summaries.peek().is_some().then(|| documents.last().map(|d| d.doc_id.clone()));
            return Ok(Page { documents, next_after: next_after.flatten() });
        }
    }
    Ok(Page { documents, next_after: None })
}

/// One document and, on request, the current version's chunks in order.
pub fn get(
    store: &dyn VectorStore,
    doc_id: &str,
    include_passages: bool,
) -> Result<(StoredDocument, Vec<ChunkPayload>), IngestError> {
    let summary = store
        .list_documents()?
        .into_iter()
        .find(|d| d.doc_id == doc_id)
        .ok_or_else(|| IngestError::NotFound { doc_id: doc_id.to_owned() })?;
    let document = describe(store, summary)?;
    let passages = if include_passages && !document.current_version.is_empty() {
        store.document_chunks(&document.doc_id, &document.current_version)?
    } else {
        Vec::new()
    };
    Ok((document, passages))
}

/// Deletes every version of a document; NOT_FOUND if it has no chunks.
pub fn delete(store: &dyn VectorStore, doc_id: &str) -> Result<u64, IngestError> {
    let deleted = store.delete_document(doc_id, None)?;
    if deleted == 0 {
        return Err(IngestError::NotFound { doc_id: doc_id.to_owned() });
    }
    store.flush()?;
    Ok(deleted)
}

fn describe(store: &dyn VectorStore, summary: DocumentSummary) -> Result<StoredDocument, IngestError> {
    let DocumentSummary { doc_id, title, regions, brands: _, versions } = summary;
    let shown = versions.iter().find(|v| v.current).or_else(|| versions.last());
    let first = match shown {
        Some(version) => store.document_chunks(&doc_id, &version.version)?.into_iter().next(),
        None => None,
    };
    let current = versions.iter().find(|v| v.current);
    // With a version current, `first` is one of its chunks.
    let ingested_at = current.and_then(|_| first.as_ref()?.ingested_at.clone());
    Ok(StoredDocument {
        title: first.as_ref().map_or(title, |c| c.title.clone()),
        source: first.as_ref().map(|c| c.source.clone()).unwrap_or_default(),
        regions: first.as_ref().map_or_else(|| regions.into_iter().collect(), |c| c.regions.clone()),
        brand: first.as_ref().and_then(|c| c.brand.clone()),
        language: first.as_ref().map(|c| c.language.clone()).unwrap_or_default(),
        tags: first.as_ref().map(|c| c.tags.clone()).unwrap_or_default(),
        current_version: current.map(|v| v.version.clone()).unwrap_or_default(),
        chunk_count: current.map_or(0, |v| u32::try_from(v.chunks).unwrap_or(u32::MAX)),
        content_sha256: current.map(|v| v.content_sha256.clone()).unwrap_or_default(),
        ingested_at,
        versions: versions.into_iter().map(|v| v.version).collect(),
        doc_id,
    })
}
