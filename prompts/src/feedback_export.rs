//! `rudder prompts export-feedback`: support agents' corrections (and, if asked, answers they rated
//! good) as training examples in the trainer's JSONL format — the conversation as the model saw it
//! (earlier turns, then the numbered passages and the question, rendered exactly as serving renders
//! them) followed by the answer the agent wants. The system text is left out: the trainer adds its
//! own (`--system-file`).

use rudder_generation::{
    feedback::{FeedbackEntry, Rating},
    fusion,
};
use serde_json::{Value, json};

/// Which feedback becomes an example.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only answers served in this region.
    pub region: Option<String>,
    /// Also answers rated good without a correction (as they were served).
    pub include_good: bool,
}

/// One JSONL line per usable feedback entry, oldest first; the answer taught is the correction, or the
/// served answer for a good rating when `include_good`.
pub fn training_examples(entries: &[FeedbackEntry], filter: &ExportFilter) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| filter.region.as_ref().is_none_or(|region| &e.served.region == region))
        .filter_map(|entry| {
            let answer = if !entry.corrected_answer.is_empty() {
                entry.corrected_answer.as_str()
            } else if filter.include_good && entry.rating == Rating::Good {
                entry.served.answer.as_str()
            } else {
                return None;
            };
            let served = &entry.served;
            let mut messages: Vec<Value> =
                served.history.iter().map(|t| json!({"role": t.role, "content": t.content})).collect();
            messages.push(
                json!({"role": "user", "content": fusion::user_turn(&served.passages, &served.question)}),
            );
            messages.push(json!({"role": "assistant", "content": answer}));
            let mut doc_ids: Vec<&str> = served.passages.iter().map(|p| p.doc_id.as_str()).collect();
            doc_ids.dedup();
            Some(json!({
                "messages": messages,
                "meta": {
                    "kind": "feedback",
                    "topic": served.region,
                    "doc_ids": doc_ids,
                    // Each rated answer is its own intent: the validation split never sees the same
                    // conversation on both sides.
                    "intent": format!("feedback:{}", served.request_id),
                }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rudder_core::Passage;
    use rudder_generation::feedback::{ServedAnswer, Turn};

    use super::*;
    use crate::train::data::{BadLines, DataFile};

    fn entry(region: &str, rating: Rating, corrected: &str) -> FeedbackEntry {
        FeedbackEntry {
            feedback_id: "f".into(),
            rating,
            corrected_answer: corrected.into(),
            reason: String::new(),
            author: "agent".into(),
            created_at: "2026-11-21T00:00:00Z".into(),
            served: ServedAnswer {
                request_id: format!("r-{region}-{corrected}"),
                conversation_id: String::new(),
                region: region.into(),
                brand: None,
                bundle_version: 2,
                history: vec![
                    Turn { role: "user".into(), content: "Hi".into() },
                    Turn { role: "assistant".into(), content: "Hello, how can I help?".into() },
                ],
                question: "How long do refunds take?".into(),
                passages: vec![Passage {
                    doc_id: "refunds-uk".into(),
                    title: "Refunds".into(),
                    text: "Within 5 working days.".into(),
                    ..Passage::default()
                }],
                answer: "Ten days.".into(),
            },
        }
    }

    #[test]
    fn corrections_become_examples_the_trainer_reads() {
        let entries = [
            entry("uk", Rating::Bad, "Refunds arrive within 5 working days [1]."),
            entry("uk", Rating::Bad, ""),
            entry("uk", Rating::Good, ""),
            entry("us", Rating::Bad, "Within 5 business days [1]."),
        ];
        let uk = ExportFilter { region: Some("uk".into()), include_good: false };
        let lines = training_examples(&entries, &uk);
        assert_eq!(lines.len(), 1, "a bad rating without a correction teaches nothing");
        let with_good = training_examples(&entries, &ExportFilter { include_good: true, ..uk });
        assert_eq!(with_good.len(), 2);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback.jsonl");
        let text: String = with_good.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let file = DataFile::read(&path, BadLines::Stop).unwrap();
        let first = &file.examples[0];
        assert_eq!(first.answer, "Refunds arrive within 5 working days [1].");
        assert_eq!(first.context.len(), 3, "two earlier turns and the user turn");
        assert!(first.context[2].content.contains("[1] Refunds\nWithin 5 working days."));
        assert!(first.context[2].content.ends_with("Question: How long do refunds take?"));
        assert_eq!(file.examples[1].answer, "Ten days.", "the good answer as served");
    }
}
