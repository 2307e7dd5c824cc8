//! The answer-correctness eval's rules: labelled cases (`tests/answers/*.jsonl`, see the README
//! there) and how one served answer is judged against its case. Each rule is simple enough to
//! check by hand:
//! - **fact-correct** (answerable cases): every deciding fact is stated (any of its surface forms,
//!   as a substring after normalising case, spaces, apostrophes, dashes and thousands separators)
//!   and no must-not phrase is;
//! - **honest decline** (unanswerable cases): the answer declines and states no must-not phrase;
//! - **false figure**: a figure in the answer (amount, number with unit, phone, e-mail, URL) that
//!   is in none of the passages given;
//! - **citation precision**: a passage an answer sentence cites supports that sentence (states its
//!   figures and most of its content words, the rule verification uses);
//! - **where it failed**: retrieval (no passage given holds every deciding fact) or answering.

use std::{collections::BTreeMap, path::Path, sync::LazyLock};

use regex::Regex;
use rudder_core::{Passage, ServiceError};
use serde::{Deserialize, Serialize};

use crate::grounding::{
    Grounding,
    figures::{figures, pattern, supported},
    sentences::sentences,
    verify::{markers, supports},
};

/// One labelled question.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCase {
    pub id: String,
    pub region: String,
    pub brand: String,
    pub question: String,
    pub answerable: bool,
    /// Each deciding fact as its acceptable surface forms.
    pub facts: Vec<Vec<String>>,
    pub doc_ids: Vec<String>,
    pub must_not: Vec<String>,
    pub style: String,
}

/// Reads a JSONL case file; a bad line is an error naming the file and line.
pub fn read_cases(path: &Path) -> Result<Vec<AnswerCase>, ServiceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ServiceError::invalid("cases", format!("{}: {err}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|err| ServiceError::invalid("cases", format!("{}:{}: {err}", path.display(), i + 1)))
        })
        .collect()
}

/// Phrases by which an answer (the model's own, or the hand-over) declines.
/// (Policy text itself says "does not cover zipper pulls", so the cues name the policies.)
const DECLINE_CUES: [&str; 9] = [
    "policies don't cover",
    "policies do not cover",
    "policy doesn't cover",
    "policy does not cover",
    "passing you to a colleague",
    "hand you over",
    "not covered by our polic",
    "can't find",
    "cannot find",
];

/// How one answer fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub declined: bool,
    /// Answerable: every fact stated and nothing forbidden; unanswerable: declined and nothing forbidden.
    pub correct: bool,
    pub must_not_stated: Vec<String>,
    pub facts_missing: usize,
    pub false_figures: Vec<String>,
    /// (citations whose passage supports their sentence, citations).
    pub citations_precise: usize,
    pub citations: usize,
    /// Answerable: whether the passages given held every deciding fact.
    pub facts_in_passages: bool,
}

pub fn judge(case: &AnswerCase, answer: &str, grounding: Grounding, passages: &[Passage]) -> Judgement {
    let said = normalise(answer);
    let declined = grounding == Grounding::Declined || DECLINE_CUES.iter().any(|cue| said.contains(cue));
    let must_not_stated: Vec<String> =
        case.must_not.iter().filter(|p| said.contains(&normalise(p))).cloned().collect();
    let stated = |forms: &Vec<String>, text: &str| forms.iter().any(|f| text.contains(&normalise(f)));
    let facts_missing = case.facts.iter().filter(|forms| !stated(forms, &said)).count();
    let given: Vec<_> = passages.iter().flat_map(|p| figures(&p.text)).collect();
    let false_figures = figures(answer)
        .into_iter()
        .filter(|f| !supported(f, &given))
        .map(|f| answer[f.start..f.end].to_owned())
        .collect();
    let passage_texts: Vec<String> = passages.iter().map(|p| normalise(&p.text)).collect();
    let (mut citations, mut citations_precise) = (0, 0);
    for span in sentences(answer) {
        let sentence = span.of(answer);
        for marker in markers(sentence) {
            citations += 1;
            let holds =
                passages.get((marker as usize).wrapping_sub(1)).is_some_and(|p| supports(&p.text, sentence));
            citations_precise += usize::from(holds);
        }
    }
    let all_passages = passage_texts.join("\n");
    let facts_in_passages = case.facts.iter().all(|forms| stated(forms, &all_passages));
    let correct = must_not_stated.is_empty() && if case.answerable { facts_missing == 0 } else { declined };
    Judgement {
        declined,
        correct,
        must_not_stated,
        facts_missing,
        false_figures,
        citations_precise,
        citations,
        facts_in_passages,
    }
}

/// Lower case, one kind of apostrophe and dash, single spaces, no thousands separators.
pub fn normalise(text: &str) -> String {
    static THOUSANDS: LazyLock<Regex> = LazyLock::new(|| pattern(r"(\d),(\d{3})"));
    let plain: String = text
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
            '\u{2010}'..='\u{2015}' => '-',
            '\u{201C}' | '\u{201D}' => '"',
            '\u{00A0}' => ' ',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    let joined = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    THOUSANDS.replace_all(&joined, "$1$2").into_owned()
}

/// The figures of one group of cases (a region, or all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub answerable: usize,
    pub fact_correct: usize,
    pub unanswerable: usize,
    pub honest_declines: usize,
    pub answers: usize,
    pub with_false_figure: usize,
    /// Answers stating a must-not phrase (another region's figure, a promise the policy forbids).
    pub with_must_not: usize,
    pub citations: usize,
    pub citations_precise: usize,
    /// Answerable cases missed because the passages lacked the facts.
    pub retrieval_misses: usize,
    /// Answerable cases missed although the passages held the facts.
    pub answering_misses: usize,
    pub time_to_first_token_ms: Vec<u64>,
    pub latency_ms: Vec<u64>,
}

impl Tally {
    pub fn add(&mut self, case: &AnswerCase, judgement: &Judgement, ttft_ms: u64, latency_ms: u64) {
        self.answers += 1;
        self.with_false_figure += usize::from(!judgement.false_figures.is_empty());
        self.with_must_not += usize::from(!judgement.must_not_stated.is_empty());
        self.citations += judgement.citations;
        self.citations_precise += judgement.citations_precise;
        self.time_to_first_token_ms.push(ttft_ms);
        self.latency_ms.push(latency_ms);
        if case.answerable {
            self.answerable += 1;
            self.fact_correct += usize::from(judgement.correct);
            if !judgement.correct {
                if judgement.facts_in_passages {
                    self.answering_misses += 1;
                } else {
                    self.retrieval_misses += 1;
                }
            }
        } else {
            self.unanswerable += 1;
            self.honest_declines += usize::from(judgement.correct);
        }
    }

    /// One Markdown table row: label, fact-correct, honest decline, false figure, must-not stated, citation precision,
    /// misses (retrieval / answering), median TTFT and latency.
    pub fn row(&self, label: &str) -> String {
        let percent = |n: usize, d: usize| {
            if d == 0 { "–".to_owned() } else { format!("{:.0}% ({n}/{d})", 100.0 * n as f64 / d as f64) }
        };
        format!(
            "| {label} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            percent(self.fact_correct, self.answerable),
            percent(self.honest_declines, self.unanswerable),
            percent(self.with_false_figure, self.answers),
            percent(self.with_must_not, self.answers),
            percent(self.citations_precise, self.citations),
            self.retrieval_misses,
            self.answering_misses,
            median(&self.time_to_first_token_ms),
            median(&self.latency_ms),
        )
    }

    pub const HEADER: &str = "| run | fact-correct | honest decline | false figure | must-not stated | citation precision | misses: retrieval / answering | TTFT p50 ms | latency p50 ms |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |";
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Tallies per region and overall.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub overall: Tally,
    pub regions: BTreeMap<String, Tally>,
}

impl Report {
    pub fn add(&mut self, case: &AnswerCase, judgement: &Judgement, ttft_ms: u64, latency_ms: u64) {
        self.overall.add(case, judgement, ttft_ms, latency_ms);
        self.regions.entry(case.region.clone()).or_default().add(case, judgement, ttft_ms, latency_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(answerable: bool) -> AnswerCase {
        AnswerCase {
            id: "t1".into(),
            region: "uk".into(),
            brand: String::new(),
            question: "how long for a refund".into(),
            answerable,
            facts: if answerable { vec![vec!["14 days".into(), "fourteen days".into()]] } else { Vec::new() },
            doc_ids: Vec::new(),
            must_not: vec!["30 days".into()],
            style: "casual".into(),
        }
    }

    fn passages() -> Vec<Passage> {
        vec![
            Passage { text: "We keep data for 6 years.".into(), ..Passage::default() },
            Passage {
                text: "Refunds are made within 14 days of receiving the item.".into(),
                ..Passage::default()
            },
        ]
    }

    #[test]
    fn a_right_answer_states_the_fact_cites_its_passage_and_invents_nothing() {
        let judgement =
            judge(&case(true), "Refunds are made within 14 days [2].", Grounding::Verified, &passages());
        assert!(judgement.correct && judgement.false_figures.is_empty());
        assert_eq!((judgement.citations_precise, judgement.citations), (1, 1));
    }

    #[test]
    fn a_forbidden_phrase_an_invented_figure_or_a_wrong_citation_counts_against() {
        let judgement = judge(
            &case(true),
            "Refunds within 14 days, or 30 days for sale items, £5 fee [1].",
            Grounding::Unchecked,
            &passages(),
        );
        assert!(!judgement.correct);
        assert_eq!(judgement.must_not_stated, ["30 days"]);
        assert_eq!(judgement.false_figures, ["30 days", "£5"]);
        assert_eq!((judgement.citations_precise, judgement.citations), (0, 1));
    }

    #[test]
    fn unanswerable_cases_want_a_decline() {
        let declined =
            judge(&case(false), "Our policies don't cover that.", Grounding::Declined, &passages());
        assert!(declined.correct);
        let confident = judge(&case(false), "Yes, we price match.", Grounding::Unchecked, &passages());
        assert!(!confident.correct);
    }

    #[test]
    fn normalising_makes_typography_and_separators_irrelevant() {
        assert_eq!(normalise("It’s  £1,000 – OK"), "it's £1000 - ok");
    }
}
