//! Retrieval quality on a labelled question set (`ingest/eval/retrieval.jsonl`): recall@1, recall@5
//! and MRR@10 for each search mode, overall and per question style. A retrieved passage is relevant
//! when its document is the expected one and, when the label names a section, its heading path
//! contains that section (see ingest/eval/README.md). Retrieval runs as served: the region filter
//! and the default cap of passages per document apply.

use std::{collections::BTreeMap, path::Path};

use rudder_core::{Passage, ServiceError, store::SearchMode};
use serde::{Deserialize, Serialize};

use crate::{DEFAULT_MAX_PER_DOCUMENT, Retriever, ValidRetrieve};

/// Passages retrieved per question: MRR is taken over these.
pub const RANKED: u32 = 10;

/// One labelled question.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledQuestion {
    pub id: String,
    pub region: String,
    pub question: String,
    pub doc_id: String,
    /// The deepest heading the answer sits under; empty: the document alone decides.
    pub section: String,
    /// customer, agent, paraphrase, typo, regional.
    pub style: String,
}

impl LabelledQuestion {
    pub fn is_answered_by(&self, passage: &Passage) -> bool {
        passage.doc_id == self.doc_id
            && (self.section.is_empty() || passage.heading_path.iter().any(|h| h == &self.section))
    }
}

/// Reads a JSONL question file; a bad line is an error naming the file and line.
pub fn read_questions(path: &Path) -> Result<Vec<LabelledQuestion>, ServiceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ServiceError::invalid("questions", format!("{}: {err}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|err| {
                ServiceError::invalid("questions", format!("{}:{}: {err}", path.display(), i + 1))
            })
        })
        .collect()
}

/// Recall and MRR over a group of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
}

#[derive(Debug, Default)]
struct Tally {
    questions: usize,
    at_1: usize,
    at_5: usize,
    reciprocal_ranks: f64,
}

impl Tally {
    /// `rank`: 1-based position of the first relevant passage, if any.
    fn add(&mut self, rank: Option<usize>) {
        self.questions += 1;
        if let Some(rank) = rank {
            self.at_1 += usize::from(rank == 1);
            self.at_5 += usize::from(rank <= 5);
            self.reciprocal_ranks += 1.0 / rank as f64;
        }
    }

    fn scores(&self) -> Scores {
        let n = self.questions.max(1) as f64;
        Scores {
            questions: self.questions,
            recall_at_1: self.at_1 as f64 / n,
            recall_at_5: self.at_5 as f64 / n,
            mrr: self.reciprocal_ranks / n,
        }
    }
}

/// One mode's results.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: String,
    pub overall: Scores,
    pub by_style: BTreeMap<String, Scores>,
    /// Ids of the questions with no relevant passage in the top 5.
    pub missed_at_5: Vec<String>,
}

pub fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::Dense => "dense",
        SearchMode::Sparse => "sparse",
    }
}

/// Runs every question through `retriever` in `mode`. Blocking.
pub fn evaluate(
    retriever: &Retriever,
    questions: &[LabelledQuestion],
    mode: SearchMode,
) -> Result<ModeReport, ServiceError> {
    let mut overall = Tally::default();
    let mut by_style: BTreeMap<String, Tally> = BTreeMap::new();
    let mut missed_at_5 = Vec::new();
    for q in questions {
        let request = ValidRetrieve {
            query: q.question.clone(),
            region: q.region.clone(),
            brand: None,
            top_k: RANKED,
            mode,
            tags: Vec::new(),
            doc_ids: Vec::new(),
            min_score: None,
            max_per_document: DEFAULT_MAX_PER_DOCUMENT,
            mmr_lambda: None,
        };
        let passages = retriever.retrieve(&request)?.passages;
        let rank = passages.iter().position(|p| q.is_answered_by(p)).map(|i| i + 1);
        if rank.is_none_or(|r| r > 5) {
            missed_at_5.push(q.id.clone());
        }
        overall.add(rank);
        by_style.entry(q.style.clone()).or_default().add(rank);
    }
    Ok(ModeReport {
        mode: mode_name(mode).to_owned(),
        overall: overall.scores(),
        by_style: by_style.into_iter().map(|(style, t)| (style, t.scores())).collect(),
        missed_at_5,
    })
}

/// The reports as a Markdown table: one row per mode, then per style.
pub fn table(reports: &[ModeReport]) -> String {
    let mut out =
        String::from("| mode | questions | recall@1 | recall@5 | MRR@10 |\n|---|---:|---:|---:|---:|\n");
    let row = |name: &str, s: &Scores| {
        format!("| {name} | {} | {:.3} | {:.3} | {:.3} |\n", s.questions, s.recall_at_1, s.recall_at_5, s.mrr)
    };
    for r in reports {
        out.push_str(&row(&r.mode, &r.overall));
    }
    for r in reports {
        for (style, s) in &r.by_style {
            out.push_str(&row(&format!("{} · {style}", r.mode), s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(doc_id: &str, path: &[&str]) -> Passage {
        Passage {
            doc_id: doc_id.into(),
            heading_path: path.iter().map(|s| s.to_string()).collect(),
            ..Passage::default()
        }
    }

    fn question(doc_id: &str, section: &str) -> LabelledQuestion {
        LabelledQuestion {
            id: "q".into(),
            region: "uk".into(),
            question: "?".into(),
            doc_id: doc_id.into(),
            section: section.into(),
            style: "customer".into(),
        }
    }

    #[test]
    fn relevance_needs_the_document_and_the_section_when_labelled() {
        let q = question("returns-uk", "Faulty goods");
        assert!(
            q.is_answered_by(&passage("returns-uk", &["Returns Policy", "Return window", "Faulty goods"]))
        );
        assert!(!q.is_answered_by(&passage("returns-uk", &["Returns Policy", "Return window"])));
        assert!(!q.is_answered_by(&passage("warranty-uk", &["Faulty goods"])));
        assert!(question("warranty-eu", "").is_answered_by(&passage("warranty-eu", &[])));
    }

    #[test]
    fn recall_and_mrr_from_ranks() {
        let mut t = Tally::default();
        for rank in [Some(1), Some(2), Some(7), None] {
            t.add(rank);
        }
        let s = t.scores();
        assert_eq!((s.questions, s.recall_at_1, s.recall_at_5), (4, 0.25, 0.5));
        assert!((s.mrr - (1.0 + 0.5 + 1.0 / 7.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        std::fs::write(&path, "{\"id\":\"q1\",\"region\":\"uk\",\"question\":\"x\",\"doc_id\":\"d\",\"section\":\"\",\"style\":\"agent\"}\n{oops\n").unwrap();
        let err = read_questions(&path).unwrap_err().to_string();
        assert!(err.contains("q.jsonl:2"), "{err}");
    }
}
