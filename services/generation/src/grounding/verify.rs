//! Verification of a model's answer before it leaves the server, sentence by sentence:
//! - every figure (amount, number with its unit, phone, e-mail, URL) appears in the evidence the
//!   sentence cites (or, uncited, in any of the evidence);
//! - every `[n]` names a passage that was given;
//! - the sentence says what the evidence says: most of its content words are in the evidence;
//! - nothing of the prompt is recited (passage headers, "Question:", the system text).
//!
//! Sentences that fail are dropped; the answer survives only if what is left still states the
//! deciding figure of the best evidence sentence (when that sentence has one).

use std::collections::HashSet;

use super::{
    evidence::terms,
    figures::{Figure, figures, supported},
    sentences::sentences,
};

/// Share of a sentence's content words that must be in the evidence it rests on.
const MIN_SUPPORT: f32 = 0.6;
/// A run of this many system-text words in a row is a recital.
const RECITAL_WORDS: usize = 6;

/// Text the model saw that an answer must not repeat.
#[derive(Debug, Clone, Copy)]
pub struct PromptEcho<'a> {
    pub system_text: &'a str,
    pub headers: &'a [String],
}

/// Why a sentence was dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A figure the evidence does not state (its text as written).
    UnsupportedFigure(String),
    /// A marker naming no given passage.
    UnknownMarker(u32),
    /// Prompt text repeated back.
    Recital,
    /// Too few of its words are in the evidence.
    Unsupported,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedFigure(figure) => write!(f, "\"{figure}\" is in no evidence"),
            Self::UnknownMarker(marker) => write!(f, "[{marker}] names no passage"),
            Self::Recital => f.write_str("repeats the prompt"),
            Self::Unsupported => f.write_str("is not what the evidence says"),
        }
    }
}

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The sentences that passed, each with the (1-based) evidence passages it cites, in order.
    pub kept: Vec<(String, Vec<u32>)>,
    /// The sentences dropped, and why.
    pub dropped: Vec<(String, Problem)>,
    /// Whether what is kept states a figure of the best evidence sentence (true when it has none).
    pub states_deciding_figure: bool,
}

impl Verdict {
    pub fn passed_whole(&self) -> bool {
        self.dropped.is_empty() && !self.kept.is_empty() && self.states_deciding_figure
    }

    pub fn usable(&self) -> bool {
        !self.kept.is_empty() && self.states_deciding_figure
    }
}

/// Checks `answer` against `evidence` (the texts given to the model as passages `[1]..`).
/// `deciding` is the best evidence sentence.
pub fn verify(answer: &str, evidence: &[String], deciding: &str, echo: PromptEcho<'_>) -> Verdict {
    let evidence_figures: Vec<Vec<Figure>> = evidence.iter().map(|e| figures(e)).collect();
    let evidence_terms: Vec<HashSet<String>> =
        evidence.iter().map(|e| terms(e).into_iter().collect()).collect();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for span in sentences(answer) {
        let sentence = span.of(answer).trim();
        let markers = markers(sentence);
        let problem = check(sentence, &markers, evidence.len(), &evidence_figures, &evidence_terms, echo);
        match problem {
            Some(problem) => dropped.push((sentence.to_owned(), problem)),
            None => {
                let cites =
                    if markers.is_empty() { best_support(sentence, &evidence_terms) } else { markers };
                kept.push((strip_markers(sentence), cites));
            }
        }
    }
    let deciding_figures = figures(deciding);
    let states_deciding_figure = deciding_figures.is_empty()
        || kept.iter().any(|(sentence, _)| figures(sentence).iter().any(|f| supported(f, &deciding_figures)));
    Verdict { kept, dropped, states_deciding_figure }
}

fn check(
    sentence: &str,
    markers: &[u32],
    given: usize,
    evidence_figures: &[Vec<Figure>],
    evidence_terms: &[HashSet<String>],
    echo: PromptEcho<'_>,
) -> Option<Problem> {
    if let Some(&marker) = markers.iter().find(|&&m| m == 0 || m as usize > given) {
        return Some(Problem::UnknownMarker(marker));
    }
    if recites(sentence, echo) {
        return Some(Problem::Recital);
    }
    let cited: Vec<usize> = if markers.is_empty() {
        (0..given).collect()
    } else {
        markers.iter().map(|m| *m as usize - 1).collect()
    };
    let allowed: Vec<Figure> = cited.iter().flat_map(|&i| evidence_figures[i].iter().cloned()).collect();
    if let Some(figure) = figures(sentence).into_iter().find(|f| !supported(f, &allowed)) {
        return Some(Problem::UnsupportedFigure(sentence[figure.start..figure.end].to_owned()));
    }
    let cited_terms: Vec<&HashSet<String>> = cited.iter().map(|&i| &evidence_terms[i]).collect();
    (!words_supported(sentence, &cited_terms)).then_some(Problem::Unsupported)
}

/// Whether most of `sentence`'s content words are among `evidence`'s.
fn words_supported(sentence: &str, evidence: &[&HashSet<String>]) -> bool {
    let words = terms(&strip_markers(sentence));
    let held = words.iter().filter(|w| evidence.iter().any(|e| e.contains(*w))).count();
    !words.is_empty() && held as f32 / words.len() as f32 >= MIN_SUPPORT
}

/// Whether `passage` supports `sentence`: it states every figure of the sentence and most of its
/// content words (the rule verification applies to a sentence and the passages it cites).
pub fn supports(passage: &str, sentence: &str) -> bool {
    let stated = figures(passage);
    let passage_terms: HashSet<String> = terms(passage).into_iter().collect();
    figures(sentence).iter().all(|f| supported(f, &stated)) && words_supported(sentence, &[&passage_terms])
}

fn recites(sentence: &str, echo: PromptEcho<'_>) -> bool {
    let lower = sentence.to_lowercase();
    if ["policy passages", "question:", " § ", "(version "].iter().any(|cue| lower.contains(cue)) {
        return true;
    }
    if echo.headers.iter().any(|h| h.len() > 12 && lower.contains(&h.to_lowercase())) {
        return true;
    }
    let system: Vec<String> = echo.system_text.split_whitespace().map(str::to_lowercase).collect();
    let words: Vec<String> = sentence.split_whitespace().map(str::to_lowercase).collect();
    system.len() >= RECITAL_WORDS
        && words.windows(RECITAL_WORDS).any(|run| system.windows(RECITAL_WORDS).any(|s| s == run))
}

/// The distinct `[n]` markers of `text`, in order of first use.
pub fn markers(text: &str) -> Vec<u32> {
    rudder_core::markers::distinct(text)
}

/// `text` without its `[n]` markers, spaces tidied.
pub fn strip_markers(text: &str) -> String {
    let out = rudder_core::markers::replace(text, |_| Some(String::new()));
    let tidy = out.split_whitespace().collect::<Vec<_>>().join(" ");
    tidy.replace(" .", ".").replace(" ,", ",")
}

/// The evidence passage sharing most words with an uncited sentence (1-based).
fn best_support(sentence: &str, evidence_terms: &[HashSet<String>]) -> Vec<u32> {
    let words = terms(sentence);
    evidence_terms
        .iter()
        .enumerate()
        .map(|(i, e)| (i, words.iter().filter(|w| e.contains(*w)).count()))
        .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
        .map(|(i, _)| vec![i as u32 + 1])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str =
        "You are Northwind Outfitters' customer support assistant. Answer from the passages.";

    fn run(answer: &str) -> Verdict {
        let evidence = vec![
            "Unworn items can be returned within 30 days of delivery.".to_owned(),
            "Express delivery costs £6.95 and arrives the next working day.".to_owned(),
        ];
        verify(answer, &evidence, &evidence[0], PromptEcho { system_text: SYSTEM, headers: &[] })
    }

    #[test]
    fn a_faithful_cited_answer_passes_whole() {
        let verdict = run("You can return unworn items within 30 days of delivery [1].");
        assert!(verdict.passed_whole(), "{verdict:?}");
        assert_eq!(verdict.kept[0].1, [1]);
    }

    #[test]
    fn an_invented_figure_or_a_figure_from_another_passage_is_dropped() {
        let verdict = run("Unworn items can be returned within 60 days of delivery [1].");
        assert!(matches!(verdict.dropped[0].1, Problem::UnsupportedFigure(ref f) if f == "60 days"));
        assert!(!verdict.usable());
        let verdict =
            run("Unworn items can be returned within 30 days [1]. Express delivery costs £6.95 [1].");
        assert_eq!(verdict.kept.len(), 1, "£6.95 is in [2], not in the [1] it cites");
    }

    #[test]
    fn unknown_markers_recitals_and_unsupported_claims_are_dropped() {
        let verdict = run(
            "Items can be returned within 30 days [1]. See [7]. Policy passages: [1] Returns. We never delete personal data.",
        );
        let problems: Vec<&Problem> = verdict.dropped.iter().map(|(_, p)| p).collect();
        assert_eq!(problems, [&Problem::UnknownMarker(7), &Problem::Recital, &Problem::Unsupported]);
        assert!(verdict.usable() && !verdict.passed_whole());
    }

    #[test]
    fn an_answer_without_the_deciding_figure_is_not_usable() {
        let verdict = run("Express delivery arrives the next working day [2].");
        assert!(verdict.dropped.is_empty());
        assert!(!verdict.states_deciding_figure);
    }

    #[test]
    fn markers_are_read_and_stripped() {
        assert_eq!(markers("a [2] b [10] [2] [x]"), [2, 10]);
        assert_eq!(strip_markers("Returns are free [1]. Yes [2] ."), "Returns are free. Yes.");
    }
}
