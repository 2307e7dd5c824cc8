//! Training examples: JSONL lines of chat `messages` (ending with the assistant's answer) or of
//! `{prompt, completion}`, tokenized with the model's chat template exactly as serving renders a
//! conversation, so the loss can cover the answer tokens only.

use std::path::{Path, PathBuf};

use regex::Regex;
use rudder_llm::{LoadedModel, Message, Role};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::TrainError;

/// What an example carries besides its text (evaluation reads it; training reads only `forbidden`,
/// to find the token of a rejected answer to push down, and `intent`, to split validation off).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ExampleMeta {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub doc_ids: Vec<String>,
    /// Phrases the answer must not contain (any case): promises the policy does not allow, which
    /// evaluation looks for, or in training data another region's amounts. In a rejected answer, the
    /// first token of each of these phrases is what the unlikelihood loss pushes down.
    #[serde(default)]
    pub forbidden: Vec<String>,
    /// What the question asks, independent of wording: paraphrases share it, and the validation
    /// split keeps each intent on one side (empty: the example is its own intent).
    #[serde(default)]
    pub intent: String,
}

/// One example as written in the file: the conversation up to the answer, and the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based line in its file (for error messages).
    pub line: usize,
    /// Turns before the answer; a leading system turn is optional.
    pub context: Vec<Message>,
    pub answer: String,
    /// Answers the model must not give to this prompt, each containing one of `meta.forbidden`'s
    /// phrases: the unlikelihood loss pushes the first token of each down (see
    /// [`super::HyperParameters::unlikelihood_weight`]).
    pub rejected: Vec<String>,
    pub meta: ExampleMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    messages: Option<Vec<LineMessage>>,
    prompt: Option<String>,
    completion: Option<String>,
    #[serde(default)]
    rejected: Vec<String>,
    #[serde(default)]
    meta: ExampleMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineMessage {
    role: String,
    content: String,
}

/// What to do with a line that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLines {
    /// Stop at the first one with an error naming the file and line.
    Stop,
    /// Report each one and go on without it.
    Skip,
}

/// The examples of one JSONL file and the sha256 of its bytes (recorded in the artifact manifest).
#[derive(Debug, Clone)]
pub struct DataFile {
    pub path: PathBuf,
    pub examples: Vec<Example>,
    pub sha256: String,
    /// `file:line: reason` for every line skipped under [`BadLines::Skip`].
    pub skipped: Vec<String>,
}

impl DataFile {
    pub fn read(path: &Path, bad_lines: BadLines) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|err| TrainError::io(path, err))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| TrainError::Data(format!("{}: not UTF-8 text", path.display())))?;
        let mut examples = Vec::new();
        let mut skipped = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            match parse_line(raw, index + 1) {
                Ok(example) => examples.push(example),
                Err(reason) => {
                    let message = format!("{}:{}: {reason}", path.display(), index + 1);
                    match bad_lines {
                        BadLines::Stop => return Err(TrainError::Data(message)),
                        BadLines::Skip => skipped.push(message),
                    }
                }
            }
        }
        if examples.is_empty() {
            return Err(TrainError::Data(format!("{}: no usable examples", path.display())));
        }
        Ok(Self { path: path.to_owned(), examples, sha256: hex_sha256(text.as_bytes()), skipped })
    }
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_line(raw: &str, line: usize) -> Result<Example, String> {
    let parsed: Line = serde_json::from_str(raw).map_err(|err| format!("not a valid example: {err}"))?;
    let (context, answer) = match (parsed.messages, parsed.prompt, parsed.completion) {
        (Some(messages), None, None) => split_messages(messages)?,
        (None, Some(prompt), Some(completion)) => (vec![Message::new(Role::User, prompt)], completion),
        _ => return Err("give either `messages` or both `prompt` and `completion`".into()),
    };
    if answer.trim().is_empty() {
        return Err("the answer is empty".into());
    }
    for (i, rejected) in parsed.rejected.iter().enumerate() {
        if forbidden_spans(rejected, &parsed.meta.forbidden).is_empty() {
            return Err(format!(
                "rejected[{i}]: contains none of the phrases in meta.forbidden, so it would push no token down"
            ));
        }
    }
    Ok(Example { line, context, answer, rejected: parsed.rejected, meta: parsed.meta })
}

/// Byte ranges of `text` where a forbidden phrase occurs (any case; empty phrases never match).
fn forbidden_spans(text: &str, forbidden: &[String]) -> Vec<(usize, usize)> {
    forbidden
        .iter()
        .filter(|phrase| !phrase.trim().is_empty())
        .filter_map(|phrase| {
            regex::RegexBuilder::new(&regex::escape(phrase)).case_insensitive(true).build().ok()
        })
        .flat_map(|pattern| pattern.find_iter(text).map(|m| (m.start(), m.end())).collect::<Vec<_>>())
        .collect()
}

fn split_messages(messages: Vec<LineMessage>) -> Result<(Vec<Message>, String), String> {
    let mut turns = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let role = match message.role.as_str() {
            "system" if i == 0 => Role::System,
            "system" => return Err(format!("messages[{i}]: a system turn may only come first")),
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(format!("messages[{i}].role: unknown role {other:?}")),
        };
        turns.push(Message::new(role, message.content));
    }
    match turns.pop() {
        Some(last) if last.role == Role::Assistant => {
            if !turns.iter().any(|m| m.role == Role::User) {
                return Err("messages: no user turn before the answer".into());
            }
            Ok((turns, last.content))
        }
        _ => Err("messages: the last turn must be the assistant's answer".into()),
    }
}

/// Token ids of one example; `ids[answer_start..]` is the answer (ending with the end-of-turn token)
/// and the only part scored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizedExample {
    pub ids: Vec<u32>,
    pub answer_start: usize,
    /// Positions in `ids` of answer tokens inside an emphasised span (sorted; see
    /// [`super::HyperParameters::emphasis`]).
    pub emphasised: Vec<usize>,
    /// The example's rejected answers after the same prompt.
    pub rejected: Vec<RejectedAnswer>,
}

/// A rejected answer rendered after its example's prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedAnswer {
    pub ids: Vec<u32>,
    /// Positions in `ids` of the first token of each forbidden phrase (sorted): the ones pushed down.
    pub unlikely: Vec<usize>,
}

impl TokenizedExample {
    pub fn answer_tokens(&self) -> usize {
        self.ids.len() - self.answer_start
    }

    /// Tokens one training step runs through the model for this example: its own and its rejected
    /// answers' (rendered only for training with the unlikelihood term).
    pub fn tokens_forwarded(&self) -> usize {
        self.ids.len() + self.rejected.iter().map(|r| r.ids.len()).sum::<usize>()
    }
}

/// Whether [`tokenize`] renders an example's rejected answers. Only training with the unlikelihood
/// term reads them; elsewhere they would cost tokenizing time, and a long one could refuse its
/// example for its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedAnswers {
    Render,
    Leave,
}

/// Renders `example` with `system_text` (unless it brings its own system turn) the way serving does:
/// the prompt with the generation prompt appended, then the answer up to and including the
/// end-of-turn token. The two parts are encoded separately, as serving encodes the prompt and then
/// generates, so the boundary tokens match. Answer tokens that overlap a match of `emphasis` are
/// marked as emphasised. With [`RejectedAnswers::Render`], each rejected answer is rendered after the
/// same prompt, with the first token of each forbidden phrase in it marked.
pub fn tokenize(
    model: &LoadedModel,
    system_text: &str,
    example: &Example,
    emphasis: Option<&Regex>,
    rejected_answers: RejectedAnswers,
) -> Result<TokenizedExample, String> {
    let mut context = example.context.clone();
    if context.first().is_none_or(|m| m.role != Role::System) {
        context.insert(0, Message::new(Role::System, system_text));
    }
    let prompt = model.chat.render(&context, true).map_err(|err| err.to_string())?;
    let prompt_ids = model.tokenizer.encode(&prompt).map_err(|err| err.to_string())?;
    let answer_start = prompt_ids.len();

    let answer = RenderedAnswer::new(model, &context, &prompt, &example.answer)?;
    let spans: Vec<(usize, usize)> = emphasis
        .map(|pattern| pattern.find_iter(&answer.text).map(|m| (m.start(), m.end())).collect())
        .unwrap_or_default();
    let emphasised = answer.tokens_overlapping(&spans, answer_start);
    let texts = match rejected_answers {
        RejectedAnswers::Render => example.rejected.as_slice(),
        RejectedAnswers::Leave => &[],
    };
    let mut rejected = Vec::with_capacity(texts.len());
    for text in texts {
        let rendered = RenderedAnswer::new(model, &context, &prompt, text)?;
        let unlikely =
            rendered.first_tokens_of(&forbidden_spans(&rendered.text, &example.meta.forbidden), answer_start);
        rejected.push(RejectedAnswer { ids: rendered.after(&prompt_ids), unlikely });
    }
    Ok(TokenizedExample { ids: answer.after(&prompt_ids), answer_start, emphasised, rejected })
}

/// An answer as the chat template renders it after the prompt, cut after its end-of-turn token (what
/// follows, a newline, is never generated), with each token's byte range in that text.
struct RenderedAnswer {
    text: String,
    tokens: Vec<(u32, (usize, usize))>,
}

impl RenderedAnswer {
    fn new(model: &LoadedModel, context: &[Message], prompt: &str, answer: &str) -> Result<Self, String> {
        let mut turns = context.to_vec();
        turns.push(Message::new(Role::Assistant, answer));
        let full = model.chat.render(&turns, false).map_err(|err| err.to_string())?;
        let text = full
            .strip_prefix(prompt)
            .ok_or("the chat template does not render the prompt as a prefix of the conversation")?;
        let end = text
            .find(&model.tokenizer.eos_token)
            .map_or(text.len(), |at| at + model.tokenizer.eos_token.len());
        let text = text[..end].to_owned();
        let tokens = model.tokenizer.encode_with_offsets(&text).map_err(|err| err.to_string())?;
        if tokens.is_empty() {
            return Err("the answer is empty".into());
        }
        Ok(Self { text, tokens })
    }

    /// Positions (counted from `start`) of the tokens that overlap any of `spans`.
    fn tokens_overlapping(&self, spans: &[(usize, usize)], start: usize) -> Vec<usize> {
        self.tokens
            .iter()
            .enumerate()
            .filter(|(_, (_, (from, to)))| spans.iter().any(|&(begin, end)| *from < end && begin < *to))
            .map(|(index, _)| start + index)
            .collect()
    }

    /// Positions (counted from `start`) of the first token of each of `spans`, sorted, without
    /// repeats. Only the first: it is where the answer turns to the phrase, and the rest follow from
    /// it almost surely ("waive" -> "the charge"), so pushing them down too would bend the model's
    /// ordinary continuations for nothing.
    fn first_tokens_of(&self, spans: &[(usize, usize)], start: usize) -> Vec<usize> {
        let mut firsts: Vec<usize> = spans
            .iter()
            .filter_map(|&(begin, end)| {
                self.tokens.iter().position(|(_, (from, to))| *from < end && begin < *to)
            })
            .map(|index| start + index)
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        firsts
    }

    /// The whole sequence: `prompt_ids`, then this answer.
    fn after(&self, prompt_ids: &[u32]) -> Vec<u32> {
        prompt_ids.iter().copied().chain(self.tokens.iter().map(|&(id, _)| id)).collect()
    }
}

/// Batches of example indices of similar length (little padding), in an order fixed by `seed` and
/// `epoch`: the same run visits the same batches, which is what makes `--resume` exact.
pub fn length_bucketed_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut rng = super::rng::SplitMix64::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // Shuffle first so examples of equal length do not always share a batch, then sort by length
    // (stable) and cut into batches, then shuffle the batch order.
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    order.sort_by_key(|&i| lengths[i]);
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_line_shapes_parse_and_bad_lines_say_why() {
        let chat = r#"{"messages":[{"role":"user","content":"Q?"},{"role":"assistant","content":"A [1]."}],"meta":{"kind":"answer"}}"#;
        let example = parse_line(chat, 3).expect("a chat line parses");
        assert_eq!(
            (example.answer.as_str(), example.context.len(), example.meta.kind.as_str()),
            ("A [1].", 1, "answer")
        );
        let pair = parse_line(r#"{"prompt":"Q?","completion":"A."}"#, 1).expect("a pair parses");
        assert_eq!(pair.context[0].content, "Q?");

        let reason = |raw: &str| parse_line(raw, 1).expect_err("the line is refused");
        assert!(reason("{not json").contains("not a valid example"));
        assert!(reason(r#"{"prompt":"Q?","completion":"  "}"#).contains("answer is empty"));
        assert!(reason(r#"{"messages":[{"role":"user","content":"Q?"}]}"#).contains("last turn"));
        assert!(reason(r#"{"messages":[{"role":"bot","content":"Q?"}]}"#).contains("messages[0].role"));
        assert!(reason(r#"{"prompt":"Q?"}"#).contains("either"));
        let promise = r#"{"prompt":"Q?","completion":"No.","rejected":["Yes, for free."],"meta":{"forbidden":["FOR FREE"]}}"#;
        assert_eq!(parse_line(promise, 1).expect("a rejected answer parses").rejected, ["Yes, for free."]);
        let no_promise =
            r#"{"prompt":"Q?","completion":"No.","rejected":["Maybe."],"meta":{"forbidden":["for free"]}}"#;
        assert!(reason(no_promise).contains("rejected[0]"));
    }

    #[test]
    fn a_malformed_line_stops_or_is_skipped_with_its_line_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("train.jsonl");
        let good = r#"{"prompt":"Q?","completion":"A."}"#;
        std::fs::write(&path, format!("{good}\n{{oops\n\n{good}\n")).expect("write");
        let err = DataFile::read(&path, BadLines::Stop).expect_err("stops at line 2");
        assert!(err.to_string().contains("train.jsonl:2:"), "{err}");
        let file = DataFile::read(&path, BadLines::Skip).expect("skips line 2");
        assert_eq!(file.examples.len(), 2);
        assert_eq!(file.examples[1].line, 4);
        assert_eq!(file.skipped.len(), 1);
    }

    #[test]
    fn batches_cover_every_example_once_group_similar_lengths_and_repeat_per_seed() {
        let lengths: Vec<usize> = (0..23).map(|i| (i * 37) % 50 + 10).collect();
        let batches = length_bucketed_batches(&lengths, 4, 7, 0);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        for batch in &batches {
            let (min, max) =
                batch.iter().fold((usize::MAX, 0), |(lo, hi), &i| (lo.min(lengths[i]), hi.max(lengths[i])));
            assert!(max - min <= 12, "batch {batch:?} mixes lengths {min}..{max}");
        }
        assert_eq!(batches, length_bucketed_batches(&lengths, 4, 7, 0));
        assert_ne!(batches, length_bucketed_batches(&lengths, 4, 7, 1));
    }
}
