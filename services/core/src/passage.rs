//! What retrieval hands to generation and what answers cite: a policy passage with its provenance,
//! a citation resolving an answer's `[n]` marker to the passage it points at, and the seam through
//! which generation asks retrieval for passages (in process all-in-one, over gRPC in split mode).

use std::{future::Future, pin::Pin};

use crate::ServiceError;

/// A passage of a policy document, as given to the model (numbered `[1]..[k]` in order).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Passage {
    pub doc_id: String,
    pub version: String,
    pub title: String,
    /// Headings above the passage, outermost first.
    pub heading_path: Vec<String>,
    pub text: String,
    pub source: String,
    pub regions: Vec<String>,
    pub brand: Option<String>,
    pub char_start: u64,
    pub char_end: u64,
    pub chunk_index: u32,
    /// Retrieval score in its mode's scale (higher is better); 0 for client-supplied passages.
    pub score: f32,
    pub found_by_dense: bool,
    pub found_by_sparse: bool,
}

impl Passage {
    /// The heading path joined for display, e.g. "Returns > Refund timing".
    pub fn section(&self) -> String {
        self.heading_path.join(" > ")
    }

    /// The title and the heading path as one line, e.g. "Returns Policy > Refund timing".
    pub fn headings(&self) -> String {
        let section = self.section();
        if section.is_empty() { self.title.clone() } else { format!("{} > {section}", self.title) }
    }
}

/// An answer's `[marker]` resolved to its passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citation {
    /// 1-based, as written in the answer.
    pub marker: u32,
    pub doc_id: String,
    pub version: String,
    pub title: String,
    pub section: String,
    pub chunk_index: u32,
}

/// The distinct `[n]` markers in `answer`, in order of first use, that point at one of `passages`.
pub fn cited(answer: &str, passages: &[Passage]) -> Vec<Citation> {
    let seen: Vec<u32> = crate::markers::distinct(answer)
        .into_iter()
        .filter(|&marker| marker >= 1 && (marker as usize) <= passages.len())
        .collect();
    seen.into_iter()
        .map(|marker| {
            let passage = &passages[marker as usize - 1];
            Citation {
                marker,
                doc_id: passage.doc_id.clone(),
                version: passage.version.clone(),
                title: passage.title.clone(),
                section: passage.section(),
                chunk_index: passage.chunk_index,
            }
        })
        .collect()
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What generation asks retrieval for.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageQuery {
    pub question: String,
    /// The region whose documents may be used (the bundle's retrieval scope).
    pub region: String,
    pub brand: Option<String>,
    pub top_k: u32,
    pub mode: crate::store::SearchMode,
    pub tags: Vec<String>,
    pub min_score: Option<f32>,
}

pub trait PassageSource: Send + Sync + std::fmt::Debug {
    fn retrieve(&self, query: PassageQuery) -> BoxFuture<Result<Vec<Passage>, ServiceError>>;
}

/// Used when a server has no retrieval: every lookup is UNAVAILABLE, so requests either bring their
/// own passages or allow answering without.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetrieval;

impl PassageSource for NoRetrieval {
    fn retrieve(&self, _query: PassageQuery) -> BoxFuture<Result<Vec<Passage>, ServiceError>> {
        Box::pin(async { Err(ServiceError::Unavailable("retrieval is not available in this server".into())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(doc_id: &str) -> Passage {
        Passage {
            doc_id: doc_id.into(),
            heading_path: vec!["Returns".into(), "Timing".into()],
            ..Passage::default()
        }
    }

    #[test]
    fn markers_resolve_in_order_of_first_use_without_duplicates_or_strays() {
        let passages = [passage("a"), passage("b"), passage("c")];
        let citations = cited("Refunds take 5 days [2]. See [1] and [2]; not [9], [x] or [0].", &passages);
        let markers: Vec<u32> = citations.iter().map(|c| c.marker).collect();
        assert_eq!(markers, [2, 1]);
        assert_eq!(citations[0].doc_id, "b");
        assert_eq!(citations[0].section, "Returns > Timing");
    }

    #[test]
    fn no_passages_means_no_citations() {
        assert!(cited("see [1]", &[]).is_empty());
    }
}
