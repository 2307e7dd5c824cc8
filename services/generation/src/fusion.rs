//! Fusion: what the model reads, in order — [policy prefix KV] [tone soft prompt] then the chat
//! template with the bundle's system text (the *head*, constant per bundle version and cached), then
//! prior turns and a user turn with the passages numbered [1]..[k] and the question (the *tail*).
//!
//! Passages are fitted to the context budget by tokens: whole passages in rank order while they fit,
//! the first that does not fit cut to the tokens left (if a useful amount is left), the rest dropped.
//! The question is never cut: if it does not fit even without passages, that is the caller's error.

use rudder_core::Passage;
use rudder_llm::{LoadedModel, Message, Role};

use crate::GenerationError;

/// A passage cut shorter than this many tokens is dropped instead: a sentence fragment misleads more
/// than it informs.
const MIN_CUT_PASSAGE_TOKENS: usize = 24;

#[derive(Debug, Clone, Copy)]
pub struct PromptParts<'a> {
    pub system_text: &'a str,
    pub passages: &'a [Passage],
    pub history: &'a [Message],
    pub question: &'a str,
}

/// The token ids to run, split at the end of the cached head.
#[derive(Debug, Clone)]
pub struct PromptPlan {
    /// The system turn: identical for every request of a bundle version.
    pub head: Vec<u32>,
    /// History, passages and question, ending where the answer starts.
    pub tail: Vec<u32>,
    /// The passages as given to the model (the last may be cut), numbered from [1].
    pub passages: Vec<Passage>,
    /// Passages left out (wholly) for lack of room.
    pub passages_dropped: usize,
}

/// The head's text: the system turn alone, as the chat template renders it.
pub fn head_text(model: &LoadedModel, system_text: &str) -> Result<String, GenerationError> {
    Ok(model.chat.render(&[Message::new(Role::System, system_text)], false)?)
}

/// One passage as the model sees it.
pub fn passage_block(marker: usize, passage: &Passage) -> String {
    let mut heading = passage.title.clone();
    let section = passage.section();
    if !section.is_empty() {
        heading.push_str(" § ");
        heading.push_str(&section);
    }
    if !passage.version.is_empty() {
        heading.push_str(&format!(" (version {})", passage.version));
    }
    format!("[{marker}] {heading}\n{}", passage.text.trim())
}

/// The user turn: the numbered passages, then the question (training examples are written the same way).
pub fn user_turn(passages: &[Passage], question: &str) -> String {
    if passages.is_empty() {
        return format!("Policy passages: none were found for this question.\n\nQuestion: {question}");
    }
    let blocks: Vec<String> = passages.iter().enumerate().map(|(i, p)| passage_block(i + 1, p)).collect();
    format!("Policy passages:\n\n{}\n\nQuestion: {question}", blocks.join("\n\n"))
}

/// Plans the prompt within `budget` tokens for head + tail.
pub fn plan(
    model: &LoadedModel,
    parts: PromptParts<'_>,
    budget: usize,
) -> Result<PromptPlan, GenerationError> {
    let head_text = head_text(model, parts.system_text)?;
    let head = model.tokenizer.encode(&head_text)?;
    let tail_for = |passages: &[Passage]| -> Result<Vec<u32>, GenerationError> {
        let mut messages = vec![Message::new(Role::System, parts.system_text)];
        messages.extend(parts.history.iter().cloned());
        messages.push(Message::new(Role::User, user_turn(passages, parts.question)));
        let full = model.chat.render(&messages, true)?;
        let tail = full.strip_prefix(&head_text).ok_or_else(|| {
            GenerationError::Internal("the chat template does not render the system turn as a prefix".into())
        })?;
        Ok(model.tokenizer.encode(tail)?)
    };

    let bare_tail = tail_for(&[])?;
    if head.len() + bare_tail.len() > budget {
        return Err(GenerationError::QuestionTooLong { tokens: head.len() + bare_tail.len(), budget });
    }
    // Greedy fit in rank order, counting each passage block on its own (close to, not exactly, its
    // cost inside the whole text; the final check below corrects the difference).
    let mut room = budget - head.len() - bare_tail.len();
    let mut chosen: Vec<Passage> = Vec::new();
    for passage in parts.passages {
        let cost =
            model.tokenizer.encode(&format!("{}\n\n", passage_block(chosen.len() + 1, passage)))?.len();
        if cost <= room {
            room -= cost;
            chosen.push(passage.clone());
            continue;
        }
        let header_cost = cost.saturating_sub(text_tokens(model, passage)?);
        if let Some(cut) = cut_to_tokens(model, passage, room.saturating_sub(header_cost))? {
            chosen.push(cut);
        }
        break;
    }
    loop {
        let tail = tail_for(&chosen)?;
        if head.len() + tail.len() <= budget || chosen.is_empty() {
            let passages_dropped = parts.passages.len() - chosen.len();
            return Ok(PromptPlan { head, tail, passages: chosen, passages_dropped });
        }
        chosen.pop();
    }
}

fn text_tokens(model: &LoadedModel, passage: &Passage) -> Result<usize, GenerationError> {
    Ok(model.tokenizer.encode(passage.text.trim())?.len())
}

/// The passage with its text cut to `tokens` tokens, or None if that is too little to keep.
fn cut_to_tokens(
    model: &LoadedModel,
    passage: &Passage,
    tokens: usize,
) -> Result<Option<Passage>, GenerationError> {
    if tokens < MIN_CUT_PASSAGE_TOKENS {
        return Ok(None);
    }
    let ids = model.tokenizer.encode(passage.text.trim())?;
    let text = model.tokenizer.decode(&ids[..tokens.min(ids.len())])?;
    Ok(Some(Passage { text: format!("{} …", text.trim_end()), ..passage.clone() }))
}
