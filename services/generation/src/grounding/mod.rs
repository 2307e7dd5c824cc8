//! Grounded answers: how an answer is made trustworthy around a small frozen model.
//!
//! retrieved passages -> [`evidence::select`] (the sentences that decide) -> when the best evidence
//! is too weak, decline and hand over -> the model answers from the evidence alone -> [`verify`]
//! (figures, markers, support, no recital) -> the answer as generated (verified), with failing
//! sentences dropped (repaired), or the deciding evidence quoted with its citation (extractive).
//! Never a figure the evidence does not state.
//!
//! [`GroundingMode`] picks how much of this runs, so each stage can be measured on its own.

pub mod asks;
pub mod evidence;
pub mod figures;
pub mod regions;
pub mod sentences;
pub mod verify;

use rudder_core::Passage;
pub use rudder_core::grounding::GroundingMode;

pub use evidence::{Evidence, EvidenceSentence};
pub use regions::{Audience, RegionNames};
pub use verify::{PromptEcho, Verdict};

/// How the answer that was served came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounding {
    /// The model's answer, not checked (grounding off or evidence only).
    Unchecked,
    /// The model's answer passed verification whole.
    Verified,
    /// The model's answer with the sentences that failed verification dropped.
    Repaired,
    /// The deciding evidence quoted with its citation.
    Extractive,
    /// The evidence does not answer the question: the hand-over text.
    Declined,
}

impl Grounding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Verified => "verified",
            Self::Repaired => "repaired",
            Self::Extractive => "extractive",
            Self::Declined => "declined",
        }
    }
}

/// What the grounding needs to know beyond the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundingPolicy {
    pub mode: GroundingMode,
    /// Decline when the best evidence sentence scores below this (calibrated on the answer eval).
    pub decline_below: f32,
}

impl Default for GroundingPolicy {
    fn default() -> Self {
        Self { mode: GroundingMode::default(), decline_below: DEFAULT_DECLINE_BELOW }
    }
}

/// Calibrated with `rudder eval answers` on both labelled sets (BENCHMARKS.md).
pub const DEFAULT_DECLINE_BELOW: f32 = 0.4;

/// A sentence of the evidence, located in a passage the response lists.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceSpan {
    /// 1-based, as the answer's markers count the response's passages.
    pub passage: u32,
    /// Character (not byte) offsets into that passage's text.
    pub char_start: u32,
    pub char_end: u32,
    pub text: String,
    /// The evidence score (cosine with the question + word score): how strongly it bears on it.
    pub score: f32,
}

/// The evidence as the model reads it: one passage per source passage that holds chosen
/// sentences (its chosen sentences in their order), best first; `sources[k]` is the index, among the
/// retrieved passages, of the model's passage `[k + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidencePrompt {
    pub passages: Vec<Passage>,
    pub sources: Vec<usize>,
}

impl EvidencePrompt {
    pub fn new(evidence: &Evidence, retrieved: &[Passage]) -> Self {
        let mut sources: Vec<usize> = Vec::new();
        for sentence in &evidence.sentences {
            if !sources.contains(&sentence.passage) {
                sources.push(sentence.passage);
            }
        }
        let passages = sources
            .iter()
            .map(|&source| {
                let mut chosen: Vec<&EvidenceSentence> =
                    evidence.sentences.iter().filter(|s| s.passage == source).collect();
                chosen.sort_by_key(|s| s.span.start);
                let text = chosen.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
                Passage { text, ..retrieved[source].clone() }
            })
            .collect();
        Self { passages, sources }
    }

    /// The retrieved passage's marker (1-based) for the model's marker `marker`.
    fn source_marker(&self, marker: u32) -> u32 {
        self.sources.get(marker as usize - 1).map_or(marker, |&s| s as u32 + 1)
    }
}

/// The evidence located in the retrieved passages, for highlighting: a list item's lead-in is a
/// span of its own, just before the item's.
pub fn spans(evidence: &Evidence, retrieved: &[Passage]) -> Vec<EvidenceSpan> {
    evidence
        .sentences
        .iter()
        .flat_map(|s| s.lead_in.into_iter().chain([s.span]).map(move |span| (s, span)))
        .map(|(s, span)| {
            let text = &retrieved[s.passage].text;
            EvidenceSpan {
                passage: s.passage as u32 + 1,
                char_start: text[..span.start].chars().count() as u32,
                char_end: text[..span.end].chars().count() as u32,
                text: span.of(text).to_owned(),
                score: s.score,
            }
        })
        .collect()
}

/// Whether the evidence is too weak to answer from.
pub fn should_decline(evidence: &Evidence, policy: &GroundingPolicy) -> bool {
    policy.mode.declines() && evidence.relevance().is_none_or(|relevance| relevance < policy.decline_below)
}

/// The deciding evidence quoted, each sentence with the marker of its retrieved passage: the best
/// sentence, the runner-up when it scores within [`QUOTE_WITHIN`] of it (questions often ask two
/// things, and the second sentence is often the other half), and the line after a sentence that
/// introduces a list.
pub fn extractive_answer(evidence: &Evidence) -> String {
    let Some(best) = evidence.best() else { return String::new() };
    let mut quoted: Vec<&EvidenceSentence> = vec![best];
    // Another item of the best sentence's list is an alternative to it, not its other half.
    let same_list =
        |s: &EvidenceSentence| s.lead_in.is_some() && (s.passage, s.lead_in) == (best.passage, best.lead_in);
    if let Some(second) =
        evidence.sentences.get(1).filter(|s| s.score >= best.score - QUOTE_WITHIN && !same_list(s))
    {
        quoted.push(second);
    }
    for sentence in quoted.clone() {
        if sentence.text.trim_end().ends_with(':')
            && let Some(next) = evidence
                .sentences
                .iter()
                .filter(|s| s.passage == sentence.passage && s.span.start > sentence.span.start)
                .min_by_key(|s| s.span.start)
            && !quoted.contains(&next)
        {
            quoted.push(next);
        }
    }
    quoted
        .iter()
        .map(|s| cite(&sentence_case(s.text.trim()), &[s.passage as u32 + 1]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sentence` with its markers before its closing punctuation ("Returns are free [2].").
fn cite(sentence: &str, markers: &[u32]) -> String {
    let markers: String = markers.iter().map(|m| format!(" [{m}]")).collect();
    match sentence.strip_suffix(['.', '!', '?', ':']) {
        Some(body) => format!("{body}{markers}{}", &sentence[body.len()..]),
        None => format!("{sentence}{markers}."),
    }
}

/// A runner-up evidence sentence within this of the best one is quoted too.
pub const QUOTE_WITHIN: f32 = 0.18;

/// The answer to serve from the model's `answer` to an [`EvidencePrompt`], and how it was grounded.
/// Markers in the result count the retrieved passages.
pub fn settle(answer: &str, prompt: &EvidencePrompt, evidence: &Evidence, echo: PromptEcho<'_>) -> Settled {
    let texts: Vec<String> = prompt.passages.iter().map(|p| p.text.clone()).collect();
    let deciding = evidence.best().map(|b| b.text.as_str()).unwrap_or_default();
    let verdict = verify::verify(answer, &texts, deciding, echo);
    let notes: Vec<String> =
        verdict.dropped.iter().map(|(s, problem)| format!("dropped \"{s}\": {problem}")).collect();
    if !verdict.usable() {
        let mut notes = notes;
        if !verdict.states_deciding_figure {
            notes.push("the answer did not state the deciding figure".into());
        }
        return Settled { answer: extractive_answer(evidence), grounding: Grounding::Extractive, notes };
    }
    let grounding = if verdict.passed_whole() { Grounding::Verified } else { Grounding::Repaired };
    let answer = verdict
        .kept
        .iter()
        .map(|(sentence, cites)| {
            let markers: Vec<u32> = cites.iter().map(|&m| prompt.source_marker(m)).collect();
            cite(sentence, &markers)
        })
        .collect::<Vec<_>>()
        .join(" ");
    Settled { answer, grounding, notes }
}

/// A served answer and how it was grounded; `notes` say what verification changed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub answer: String,
    pub grounding: Grounding,
    pub notes: Vec<String>,
}

/// The model's evidence passages' headers, which an answer must not recite.
pub fn passage_headers(passages: &[Passage]) -> Vec<String> {
    passages.iter().map(Passage::headings).collect()
}

fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrieved() -> Vec<Passage> {
        let passage = |doc: &str, text: &str| Passage {
            doc_id: doc.into(),
            title: doc.into(),
            heading_path: vec!["Section".into()],
            text: text.into(),
            ..Passage::default()
        };
        vec![
            passage("privacy", "We keep records for six years. Ask us for a copy."),
            passage("returns", "Returns are free. Unworn items can be returned within 30 days of delivery."),
        ]
    }

    fn echo() -> PromptEcho<'static> {
        PromptEcho { system_text: "Answer from the passages.", headers: &[] }
    }

    #[test]
    fn the_model_sees_only_the_evidence_and_markers_come_back_to_the_retrieved_passages() {
        let retrieved = retrieved();
        let evidence =
            evidence::select("how many days do i have to return unworn stuff", &retrieved, None, None)
                .unwrap();
        assert_eq!(evidence.best().unwrap().passage, 1);
        let prompt = EvidencePrompt::new(&evidence, &retrieved);
        assert_eq!(prompt.sources[0], 1);
        assert!(!prompt.passages[0].text.contains("six years"));
        let settled =
            settle("You can return unworn items within 30 days of delivery [1].", &prompt, &evidence, echo());
        assert_eq!(settled.grounding, Grounding::Verified);
        assert_eq!(settled.answer, "You can return unworn items within 30 days of delivery [2].");
    }

    #[test]
    fn a_false_figure_never_leaves_the_server() {
        let retrieved = retrieved();
        let evidence =
            evidence::select("how many days do i have to return unworn stuff", &retrieved, None, None)
                .unwrap();
        let prompt = EvidencePrompt::new(&evidence, &retrieved);
        let settled = settle("You have 60 days to return unworn items [1].", &prompt, &evidence, echo());
        assert_eq!(settled.grounding, Grounding::Extractive);
        assert!(settled.answer.contains("30 days") && settled.answer.ends_with("[2]."), "{}", settled.answer);
        assert!(!settled.answer.contains("60"));
    }

    #[test]
    fn spans_are_character_offsets_into_the_retrieved_passage() {
        let retrieved =
            vec![Passage { text: "Café hours vary. Returns take 5 days.".into(), ..Passage::default() }];
        let evidence = evidence::select("how long do returns take", &retrieved, None, None).unwrap();
        let span = &spans(&evidence, &retrieved)[0];
        let chars: String = retrieved[0]
            .text
            .chars()
            .skip(span.char_start as usize)
            .take((span.char_end - span.char_start) as usize)
            .collect();
        assert_eq!(chars, span.text);
    }

    #[test]
    fn weak_evidence_declines_only_in_modes_that_decline() {
        let evidence = Evidence::default();
        assert!(should_decline(&evidence, &GroundingPolicy::default()));
        assert!(!should_decline(
            &evidence,
            &GroundingPolicy { mode: GroundingMode::Verified, decline_below: 0.5 }
        ));
    }
}
