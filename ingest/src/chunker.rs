//! The heading-aware chunker: a loaded document's blocks into passages that each sit under one
//! heading path and fit the embedding model. Bounds are counted with the embedder's own tokenizer
//! ([`Embedder::count_tokens`]) on exactly the text the model will read (heading path line + passage),
//! so no passage is silently truncated. Breaks fall at paragraph ends where that keeps a chunk at least
//! half full, else at sentence ends, and only inside an over-long sentence at a word (or character)
//! boundary. Consecutive chunks of one section overlap by up to `overlap_tokens` of whole sentences.

use crate::{
    error::IngestError,
    loaders::{Block, LoadedDocument},
};
use rudder_core::Embedder;
use serde::Deserialize;
use std::collections::BTreeMap;
use unicode_segmentation::UnicodeSegmentation;

/// Chunk size and overlap, in the embedding model's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkerOptions {
    /// Most tokens the model reads per chunk, heading path and special tokens included (capped at the
    /// model's own limit).
    pub max_tokens: usize,
    /// Tokens of trailing sentences a chunk repeats from the one before it, within one section.
    pub overlap_tokens: usize,
}

impl Default for ChunkerOptions {
    fn default() -> Self {
        Self { max_tokens: 256, overlap_tokens: 32 }
    }
}

/// One passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The passage as stored and cited: a slice of the normalised text.
    pub text: String,
    /// What the embedding model reads: the heading path on its own line, then the passage.
    pub embed_text: String,
    /// Headings above the passage, outermost first.
    pub heading_path: Vec<String>,
    /// Span of `text` in the normalised text, in characters: `[char_start, char_end)`.
    pub char_start: u64,
    pub char_end: u64,
}

/// A document's normalised text and its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDocument {
    pub text: String,
    pub chunks: Vec<Chunk>,
}

/// A piece of a section that is never split again: a sentence, or part of an over-long one.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Byte span in the normalised text.
    start: usize,
    end: usize,
    /// Tokens without the special tokens.
    tokens: usize,
    /// The unit ends a paragraph or list item: the preferred place to end a chunk.
    paragraph_end: bool,
}

/// Units shorter than this (in bytes) join the next one: list markers such as "1." split off as
/// sentences of their own, and a chunk should not end on one.
const MIN_UNIT_BYTES: usize = 8;

/// Splits `document` into chunks bounded by `options` in `embedder`'s tokens.
pub fn chunk(
    document: &LoadedDocument,
    embedder: &dyn Embedder,
    options: &ChunkerOptions,
) -> Result<ChunkedDocument, IngestError> {
    let text = document.normalised_text();
    let offsets = document.block_offsets();
    let counter = Counter { embedder, specials: embedder.count_tokens("")? };
    let budget = options.max_tokens.min(embedder.max_tokens());
    if budget <= counter.specials + 8 {
        return Err(IngestError::invalid(
            "chunking.max_tokens",
            format!(
                "{budget} tokens leave no room for text (the model adds {} of its own)",
                counter.specials
            ),
        ));
    }
    let mut spans = Vec::new();
    for section in sections(document, &offsets) {
        chunk_section(&text, &section, &counter, budget, options.overlap_tokens, &mut spans)?;
    }
    let chars = char_offsets(&text, spans.iter().flat_map(|span| [span.start, span.end]));
    let chunks = spans
        .into_iter()
        .map(|span| {
            let passage = text[span.start..span.end].to_owned();
            Chunk {
                embed_text: span.embed_text(&passage),
                text: passage,
                char_start: chars.get(&span.start).copied().unwrap_or_default(),
                char_end: chars.get(&span.end).copied().unwrap_or_default(),
                heading_path: span.heading_path,
            }
        })
        .collect();
    Ok(ChunkedDocument { text, chunks })
}

struct Counter<'a> {
    embedder: &'a dyn Embedder,
    /// Tokens the tokenizer adds to any text ([CLS] and [SEP] for MiniLM).
    specials: usize,
}

impl Counter<'_> {
    /// Tokens of `text` without the special tokens: additive over whitespace-joined pieces.
    fn content(&self, text: &str) -> Result<usize, IngestError> {
        Ok(self.embedder.count_tokens(text)?.saturating_sub(self.specials))
    }

    fn total(&self, text: &str) -> Result<usize, IngestError> {
        Ok(self.embedder.count_tokens(text)?)
    }
}

/// The blocks under one heading path, as byte spans of the normalised text.
struct Section {
    path: Vec<String>,
    spans: Vec<(usize, usize)>,
}

fn sections(document: &LoadedDocument, offsets: &[usize]) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut current = Section { path: Vec::new(), spans: Vec::new() };
    for (block, &start) in document.blocks.iter().zip(offsets) {
        match block {
            Block::Heading { level, text } => {
                let path_before = std::mem::take(&mut current.spans);
                if !path_before.is_empty() {
                    sections.push(Section { path: current.path.clone(), spans: path_before });
                }
                while headings.last().is_some_and(|(open, _)| open >= level) {
                    headings.pop();
                }
                headings.push((*level, text.clone()));
                current.path = headings.iter().map(|(_, text)| text.clone()).collect();
            }
            Block::Paragraph(text) | Block::ListItem(text) => current.spans.push((start, start + text.len())),
        }
    }
    if !current.spans.is_empty() {
        sections.push(current);
    }
    sections
}

/// A chunk before char offsets are known.
struct Span {
    start: usize,
    end: usize,
    heading_path: Vec<String>,
    with_path: bool,
}

impl Span {
    fn embed_text(&self, passage: &str) -> String {
        if self.with_path {
            format!("{}\n{passage}", self.heading_path.join(" > "))
        } else {
            passage.to_owned()
        }
    }
}

fn chunk_section(
    text: &str,
    section: &Section,
    counter: &Counter<'_>,
    budget: usize,
    overlap: usize,
    out: &mut Vec<Span>,
) -> Result<(), IngestError> {
    let path_line = section.path.join(" > ");
    let mut path_tokens = if path_line.is_empty() { 0 } else { counter.content(&path_line)? };
    // A heading path that eats most of the budget would leave chunks of a few words: drop it from the
    // model input (the payload still carries it).
    let with_path = path_tokens > 0 && path_tokens <= (budget - counter.specials) / 2;
    if !with_path {
        path_tokens = 0;
    }
    let room = budget - counter.specials - path_tokens;
    let units = units(text, &section.spans, counter, room)?;
    let new_span = |first: &Unit, last: &Unit| Span {
        start: first.start,
        end: last.end,
        heading_path: section.path.clone(),
        with_path,
    };
    let mut begin = 0;
    while begin < units.len() {
        // Greedy: as many whole units as fit (always at least one).
        let mut end = begin;
        let mut used = 0;
        while end < units.len() && (end == begin || used + units[end].tokens <= room) {
            used += units[end].tokens;
            end += 1;
        }
        // Cut short: prefer the last paragraph end that keeps the chunk at least half full.
        if end < units.len() {
            let mut cumulative = 0;
            let mut best = None;
            for (index, unit) in units.iter().enumerate().take(end).skip(begin) {
                cumulative += unit.tokens;
                if unit.paragraph_end && cumulative * 2 >= room {
                    best = Some(index + 1);
                }
            }
            end = best.unwrap_or(end);
        }
        // Estimates add pieces' counts; check the real input and give back units if it is over.
        while end - begin > 1 {
            let span = new_span(&units[begin], &units[end - 1]);
            if counter.total(&span.embed_text(&text[span.start..span.end]))? <= budget {
                break;
            }
            end -= 1;
        }
        out.push(new_span(&units[begin], &units[end - 1]));
        if end >= units.len() {
            break;
        }
        // Overlap: trailing whole units of this chunk, if they leave room for at least the next unit.
        let mut next = end;
        let mut repeated = 0;
        while next - 1 > begin && repeated + units[next - 1].tokens <= overlap {
            repeated += units[next - 1].tokens;
            next -= 1;
        }
        if repeated + units[end].tokens > room {
            next = end;
        }
        begin = next;
    }
    Ok(())
}

/// Sentences of each block (short ones joined to the next), over-long ones split further.
fn units(
    text: &str,
    spans: &[(usize, usize)],
    counter: &Counter<'_>,
    room: usize,
) -> Result<Vec<Unit>, IngestError> {
    let mut units = Vec::new();
    for &(block_start, block_end) in spans {
        let block = &text[block_start..block_end];
        let mut sentences: Vec<(usize, usize)> = Vec::new();
        let mut pending_start: Option<usize> = None;
        for (offset, sentence) in block.split_sentence_bound_indices() {
            let start = pending_start.take().unwrap_or(block_start + offset);
            let end = block_start + offset + sentence.trim_end().len();
            if sentence.trim().len() < MIN_UNIT_BYTES {
                pending_start = Some(start);
            } else {
                sentences.push((start, end));
            }
        }
        if let Some(start) = pending_start {
            match sentences.last_mut() {
                Some(last) => last.1 = block_end,
                None => sentences.push((start, block_end)),
            }
        }
        let count = sentences.len();
        for (index, (start, end)) in sentences.into_iter().enumerate() {
            let first_new = units.len();
            fit(text, start, end, counter, room, &mut units)?;
            if index + 1 == count
                && units.len() > first_new
                && let Some(last) = units.last_mut()
            {
                last.paragraph_end = true;
            }
        }
    }
    Ok(units)
}

/// Pushes `text[start..end]` as units of at most `room` tokens: whole if it fits, else halves split
/// at the whitespace nearest the middle (or the middle character when there is none).
fn fit(
    text: &str,
    start: usize,
    end: usize,
    counter: &Counter<'_>,
    room: usize,
    out: &mut Vec<Unit>,
) -> Result<(), IngestError> {
    let piece = &text[start..end];
    let trimmed_start = start + (piece.len() - piece.trim_start().len());
    let trimmed_end = start + piece.trim_end().len();
    if trimmed_start >= trimmed_end {
        return Ok(());
    }
    let piece = &text[trimmed_start..trimmed_end];
    let tokens = counter.content(piece)?;
    if tokens <= room || piece.chars().count() == 1 {
        out.push(Unit { start: trimmed_start, end: trimmed_end, tokens, paragraph_end: false });
        return Ok(());
    }
    let middle = piece.len() / 2;
    let split = piece
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(index, _)| index)
        .min_by_key(|index| index.abs_diff(middle))
        .filter(|&index| index > 0)
        .unwrap_or_else(|| {
            (middle..piece.len()).find(|&index| piece.is_char_boundary(index)).unwrap_or(piece.len())
        });
    if split == 0 || split >= piece.len() {
        out.push(Unit { start: trimmed_start, end: trimmed_end, tokens, paragraph_end: false });
        return Ok(());
    }
    fit(text, trimmed_start, trimmed_start + split, counter, room, out)?;
    fit(text, trimmed_start + split, trimmed_end, counter, room, out)
}

/// Character offset of each byte offset in `positions` (one pass over the text).
fn char_offsets(text: &str, positions: impl Iterator<Item = usize>) -> BTreeMap<usize, u64> {
    let mut wanted: Vec<usize> = positions.collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut result = BTreeMap::new();
    let mut wanted = wanted.into_iter().peekable();
    let ends = text.char_indices().map(|(byte, _)| byte).chain(std::iter::once(text.len()));
    for (chars, byte) in (0u64..).zip(ends) {
        while let Some(w) = wanted.next_if(|&w| w <= byte) {
            result.insert(w, chars);
        }
    }
    result
}
