//! Evidence selection: which sentences of the retrieved passages decide the question. Each sentence
//! is scored by meaning (cosine of the embedding model's vectors for the question and for the
//! sentence under its headings) and by words (the question's content words it shares, weighted by
//! how rare they are among the candidate sentences), plus a little for stating the kind of fact
//! asked for ([`super::asks`]); the best few are the evidence. A list item is read with the line that
//! introduces its list. Without an embedder the word score alone ranks.

use std::collections::{BTreeMap, HashSet};

use rudder_core::{Embedder, Passage};

use super::{
    asks::{asks, states},
    regions::Audience,
    sentences::{Span, is_list_item, sentences},
};

/// Sentences given to the model at most.
pub const MAX_EVIDENCE: usize = 3;
/// A sentence joins the evidence when its score is within this of the best one's.
const KEEP_WITHIN: f32 = 0.18;
/// Weight of the word score (0..1) next to the cosine (-1..1).
const WORD_WEIGHT: f32 = 0.25;
/// Bonus for a sentence of the first retrieved passage, halved for the second, and so on: hybrid
/// retrieval ranked whole passages with more context than one sentence has.
const RANK_BONUS: f32 = 0.06;
/// Sentences embedded for one question at most (five retrieved passages hold a few dozen).
const MAX_EMBEDDED: usize = 96;
/// Bonus for a sentence that states the kind of fact the question asks for ([`asks`]).
const ASKED_KIND_BONUS: f32 = 0.05;

/// One chosen sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceSentence {
    /// Index into the passages it was chosen from (0-based; marker `passage + 1`).
    pub passage: usize,
    pub span: Span,
    /// The line that introduces the list this sentence is an item of: read, scored and quoted
    /// with it ("We collect GST/HST on sales to customers based in: Ontario").
    pub lead_in: Option<Span>,
    /// The sentence, after its lead-in when it has one.
    pub text: String,
    pub score: f32,
    /// The cosine part of the score (0 without an embedder).
    pub similarity: f32,
    /// The share of the question's content words (by rarity) the sentence or its headings hold.
    pub coverage: f32,
    /// Whether it states the kind of fact the question asks for (which ranks it higher).
    pub states_asked: bool,
}

impl EvidenceSentence {
    /// How strongly the sentence bears on the question, which decides whether to answer at all:
    /// the score without the bonus for stating the kind of fact asked for, since "what's your phone
    /// number" is not answered by just any phone number.
    pub fn relevance(&self) -> f32 {
        if self.states_asked { self.score - ASKED_KIND_BONUS } else { self.score }
    }
}

/// The evidence for one question, best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub sentences: Vec<EvidenceSentence>,
}

impl Evidence {
    pub fn best(&self) -> Option<&EvidenceSentence> {
        self.sentences.first()
    }

    /// The highest [`EvidenceSentence::relevance`] (none without evidence).
    pub fn relevance(&self) -> Option<f32> {
        self.sentences.iter().map(EvidenceSentence::relevance).reduce(f32::max)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("evidence selection: {0}")]
pub struct EvidenceError(pub String);

/// Chooses the evidence for `question` among the sentences of `passages`, for a customer of
/// `audience`'s region (none: every sentence may serve).
pub fn select(
    question: &str,
    passages: &[Passage],
    embedder: Option<&dyn Embedder>,
    audience: Option<&Audience<'_>>,
) -> Result<Evidence, EvidenceError> {
    let every: Vec<(usize, Span)> = passages
        .iter()
        .enumerate()
        .flat_map(|(i, p)| sentences(&p.text).into_iter().map(move |span| (i, span)))
        .collect();
    let (mut candidates, mut lead_ins, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    for (&(i, span), lead_in) in every.iter().zip(find_lead_ins(&every, passages)) {
        let text = claim_text(&passages[i].text, span, lead_in);
        if audience.is_some_and(|audience| audience.excludes(&text, &passages[i])) {
            continue;
        }
        candidates.push((i, span));
        lead_ins.push(lead_in);
        texts.push(text);
    }
    if candidates.is_empty() {
        return Ok(Evidence::default());
    }
    let headings: Vec<Vec<String>> = passages.iter().map(|p| terms(&p.headings())).collect();
    let sentence_terms: Vec<Vec<String>> = texts.iter().map(|text| terms(text)).collect();
    let question_terms = unique(terms(question));
    let asked = asks(question);
    let rarity = rarity(&question_terms, &sentence_terms);
    let total: f32 = rarity.values().sum();

    let mut scored: Vec<EvidenceSentence> = candidates
        .iter()
        .zip(lead_ins)
        .zip(texts)
        .zip(&sentence_terms)
        .map(|((((i, span), lead_in), text), words)| {
            let held: f32 = question_terms
                .iter()
                .map(|t| {
                    let weight = rarity.get(t).copied().unwrap_or(0.0);
                    if words.contains(t) {
                        weight
                    } else if headings[*i].contains(t) {
                        weight * 0.5
                    } else {
                        0.0
                    }
                })
                .sum();
            let coverage = if total > 0.0 { held / total } else { 0.0 };
            let states_asked = asked.iter().any(|&kind| states(&text, kind));
            EvidenceSentence {
                passage: *i,
                span: *span,
                lead_in,
                text,
                score: WORD_WEIGHT * coverage
                    + RANK_BONUS / (1.0 + *i as f32)
                    + if states_asked { ASKED_KIND_BONUS } else { 0.0 },
                similarity: 0.0,
                coverage,
                states_asked,
            }
        })
        .collect();
    if let Some(embedder) = embedder {
        // Embedding is the costly part: past a bound (a client may send a whole document as one
        // passage), only the sentences the words rank best are embedded and considered.
        if scored.len() > MAX_EMBEDDED {
            scored.sort_by(|a, b| b.score.total_cmp(&a.score));
            scored.truncate(MAX_EMBEDDED);
        }
        let under_headings: Vec<String> =
            scored.iter().map(|s| format!("{}: {}", passages[s.passage].headings(), s.text)).collect();
        let query = embedder.embed_query(question).map_err(|err| EvidenceError(err.to_string()))?;
        let vectors =
            embedder.embed_documents(&under_headings).map_err(|err| EvidenceError(err.to_string()))?;
        for (sentence, vector) in scored.iter_mut().zip(&vectors) {
            sentence.similarity = cosine(&query.vector, vector);
            sentence.score += sentence.similarity;
        }
    }
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.passage.cmp(&b.passage)));
    let best = scored[0].score;
    let mut chosen: Vec<EvidenceSentence> = Vec::new();
    for sentence in scored {
        if chosen.len() >= MAX_EVIDENCE || sentence.score < best - KEEP_WITHIN {
            break;
        }
        // Beyond the best, a sentence sharing none of the question's words is near only by chance.
        if chosen.iter().any(|c| c.text == sentence.text) || (!chosen.is_empty() && sentence.coverage == 0.0)
        {
            continue;
        }
        chosen.push(sentence);
    }
    follow_list_introductions(&mut chosen, &candidates, passages);
    Ok(Evidence { sentences: chosen })
}

/// A chosen sentence that introduces a list ("You can return an item if:") says nothing alone: the
/// line after it comes too, read with it when it is an item of that list.
fn follow_list_introductions(
    chosen: &mut Vec<EvidenceSentence>,
    candidates: &[(usize, Span)],
    passages: &[Passage],
) {
    let mut extra = Vec::new();
    for sentence in chosen.iter_mut() {
        if !sentence.text.trim_end().ends_with(':') {
            continue;
        }
        let next = candidates
            .iter()
            .position(|c| *c == (sentence.passage, sentence.span))
            .and_then(|at| candidates.get(at + 1));
        if let Some(&(passage, span)) = next.filter(|(p, _)| *p == sentence.passage) {
            let text = &passages[passage].text;
            if is_list_item(text, span) {
                let lead_in = Some(sentence.span);
                *sentence = EvidenceSentence {
                    span,
                    lead_in,
                    text: claim_text(text, span, lead_in),
                    ..sentence.clone()
                };
            } else {
                extra.push(EvidenceSentence {
                    passage,
                    span,
                    lead_in: None,
                    text: span.of(text).to_owned(),
                    ..sentence.clone()
                });
            }
        }
    }
    for sentence in extra {
        if !chosen.iter().any(|c| c.text == sentence.text) {
            chosen.push(sentence);
        }
    }
}

/// For each candidate that is a list item, the nearest line above it in its passage that ends with
/// a colon, past the list's other items.
fn find_lead_ins(candidates: &[(usize, Span)], passages: &[Passage]) -> Vec<Option<Span>> {
    candidates
        .iter()
        .enumerate()
        .map(|(at, &(passage, span))| {
            let text = &passages[passage].text;
            if !is_list_item(text, span) {
                return None;
            }
            candidates[..at]
                .iter()
                .rev()
                .take_while(|(p, _)| *p == passage)
                .map(|&(_, earlier)| earlier)
                .find(|&earlier| !is_list_item(text, earlier))
                .filter(|earlier| earlier.of(text).trim_end().ends_with(':'))
        })
        .collect()
}

/// A sentence as evidence: after the lead-in of its list, when it has one.
fn claim_text(text: &str, span: Span, lead_in: Option<Span>) -> String {
    match lead_in {
        Some(lead_in) => format!("{} {}", lead_in.of(text), span.of(text)),
        None => span.of(text).to_owned(),
    }
}

/// How rare each question word is among the candidate sentences (inverse document frequency,
/// smoothed so a word in every sentence still counts a little).
fn rarity(question_terms: &[String], sentence_terms: &[Vec<String>]) -> BTreeMap<String, f32> {
    let n = sentence_terms.len() as f32;
    question_terms
        .iter()
        .map(|t| {
            let df = sentence_terms.iter().filter(|words| words.contains(t)).count() as f32;
            (t.clone(), ((n + 1.0) / (df + 0.5)).ln().max(0.1))
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 { dot / denominator } else { 0.0 }
}

fn unique(words: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    words.into_iter().filter(|w| seen.insert(w.clone())).collect()
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does", "did",
    "for", "from", "get", "got", "had", "has", "have", "hi", "hello", "how", "i", "if", "im", "in", "is",
    "it", "its", "just", "me", "my", "of", "on", "or", "our", "please", "so", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "u", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your", "yours", "want", "need", "know", "thanks",
    "thank", "any", "about", "all", "am", "also", "still", "some", "ok", "okay", "pls", "hey", "ur",
];

/// Customer words and the policy words they mean: each group's words count as its first.
const SAME_MEANING: [&[&str]; 9] = [
    &["refund", "reimburse", "reimbursement", "moneyback"],
    &["cost", "fee", "price", "charge", "pay", "payment", "paid", "costs", "much"],
    &["ship", "shipping", "delivery", "deliver", "postage", "post", "dispatch", "arrive"],
    &["faulty", "broken", "defect", "defective", "damaged", "broke", "fault"],
    &["cancel", "cancellation", "cancelled", "canceled"],
    &["long", "days", "day", "time", "week", "weeks"],
    &["return", "send", "sending"],
    &["delete", "deletion", "erase", "remove", "removal"],
    &["warranty", "guarantee"],
];

/// Content words of `text`, lower-cased, crudely stemmed, customer words mapped to policy words.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| {
            (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
                && !STOP_WORDS.contains(&w.as_str())
        })
        .map(|w| {
            let stemmed = stem(&w);
            SAME_MEANING
                .iter()
                .find(|group| group.contains(&w.as_str()) || group.contains(&stemmed.as_str()))
                .map_or(stemmed, |group| group[0].to_owned())
        })
        .collect()
}

fn stem(word: &str) -> String {
    let n = word.chars().count();
    if !word.is_ascii() || n <= 3 {
        return word.to_owned();
    }
    for (suffix, replacement, min) in
        [("ies", "y", 5), ("ing", "", 6), ("ed", "", 5), ("es", "", 5), ("s", "", 4)]
    {
        if n >= min && word.ends_with(suffix) && !word.ends_with("ss") {
            return format!("{}{replacement}", &word[..word.len() - suffix.len()]);
        }
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(title: &str, section: &str, text: &str) -> Passage {
        Passage {
            doc_id: title.to_lowercase(),
            title: title.into(),
            heading_path: vec![section.into()],
            text: text.into(),
            ..Passage::default()
        }
    }

    #[test]
    fn the_sentence_sharing_the_questions_rare_words_is_chosen_first() {
        let passages = [
            passage(
                "Privacy",
                "Your data",
                "We keep order records for six years. You can ask us for a copy.",
            ),
            passage(
                "Delivery",
                "Costs",
                "Standard delivery costs £3.99. Orders over £50 ship free. Parcels arrive in 3 days.",
            ),
        ];
        let evidence = select("how much is shipping for a £20 order??", &passages, None, None).unwrap();
        let best = evidence.best().unwrap();
        assert_eq!(best.passage, 1);
        assert!(best.text.contains("£3.99") || best.text.contains("free"), "{best:?}");
        assert!(evidence.sentences.len() <= MAX_EVIDENCE);
    }

    #[test]
    fn a_list_introduction_brings_its_first_item() {
        let passages = [passage(
            "Returns",
            "Conditions",
            "You can return an item if:\n* it is unworn and has its tags.\n",
        )];
        let evidence = select("can i return an item?", &passages, None, None).unwrap();
        let texts: Vec<&str> = evidence.sentences.iter().map(|s| s.text.as_str()).collect();
        assert!(texts.contains(&"You can return an item if: it is unworn and has its tags."), "{texts:?}");
    }

    #[test]
    fn a_list_item_is_read_with_the_line_that_introduces_it() {
        let passages = [passage(
            "Taxes",
            "Within Canada",
            "We collect GST/HST on sales to Canadian customers based in:\n\n* Alberta\n* Ontario\n\nPrices are in US dollars.\n",
        )];
        let evidence = select("do you charge tax in ontario?", &passages, None, None).unwrap();
        let best = evidence.best().unwrap();
        assert_eq!(best.text, "We collect GST/HST on sales to Canadian customers based in: Ontario");
        assert_eq!(best.span.of(&passages[0].text), "Ontario");
        assert!(best.lead_in.is_some());
    }

    #[test]
    fn customer_words_meet_policy_words() {
        assert_eq!(terms("Refunds shipping costs"), ["refund", "ship", "cost"]);
        assert_eq!(terms("what's the postage fee"), ["ship", "cost"]);
    }
}
