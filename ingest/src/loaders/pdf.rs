//! PDF: the text layer, through pdf-extract (on lopdf). A PDF has no reliable heading markup, so
//! structure is recovered from the lines: a paragraph ends at a line that closes a sentence well short
//! of the text width, and a short line without closing punctuation that starts after a paragraph is a
//! heading (the first one level 1, later ones level 2).
//! Scanned PDFs (no text layer), encrypted and corrupt files are refused with a clear error; the
//! parser runs under `catch_unwind` because malformed input can make it panic.

use super::{Block, LoadedDocument, collapse_whitespace};
use crate::error::IngestError;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Longest line, in characters and in words, still taken as a heading.
const MAX_HEADING_CHARS: usize = 80;
const MAX_HEADING_WORDS: usize = 10;

pub(super) fn load(bytes: &[u8]) -> Result<LoadedDocument, IngestError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(IngestError::invalid("content", "not a PDF file (it does not start with %PDF-)"));
    }
    // Encrypted documents extract as gibberish or fail deep in the parser: name the real reason.
    if contains(bytes, b"/Encrypt") {
        return Err(IngestError::invalid("content", "the PDF is encrypted; upload a decrypted copy"));
    }
    let extracted = catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem(bytes)));
    let text = match extracted {
        Ok(Ok(text)) => text,
        Ok(Err(err)) => {
            return Err(IngestError::invalid("content", format!("the PDF cannot be read: {err}")));
        }
        Err(_) => return Err(IngestError::invalid("content", "the PDF is corrupt (its parser gave up)")),
    };
    let blocks = blocks_from_layout(&text);
    if blocks.is_empty() {
        return Err(IngestError::invalid(
            "content",
            "the PDF has no text layer (a scanned document?); only PDFs with text can be ingested",
        ));
    }
    let title_hint = blocks.iter().find_map(|block| match block {
        Block::Heading { level: 1, text } => Some(text.clone()),
        _ => None,
    });
    Ok(LoadedDocument { blocks, front_matter: None, title_hint, notes: Vec::new() })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn blocks_from_layout(text: &str) -> Vec<Block> {
    // pdf-extract puts blank lines between most lines, so they say nothing about paragraphs: work on
    // the non-empty lines and use their ends instead.
    let lines: Vec<&str> = text.split(['\n', '\u{c}']).map(str::trim).filter(|l| !l.is_empty()).collect();
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut blocks = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    for line in lines {
        let after_paragraph_end = paragraph.is_empty();
        if after_paragraph_end && looks_like_heading(line) {
            let first = !blocks.iter().any(|block| matches!(block, Block::Heading { .. }));
            blocks.push(Block::Heading { level: if first { 1 } else { 2 }, text: collapse_whitespace(line) });
            continue;
        }
        paragraph.push(line);
        // A line that ends a sentence well short of the text width is a paragraph's last line.
        let short = line.chars().count() * 5 < widest * 4;
        if short && line.ends_with(['.', '!', '?', ':']) {
            push_paragraph(&mut blocks, &mut paragraph);
        }
    }
    push_paragraph(&mut blocks, &mut paragraph);
    blocks
}

fn looks_like_heading(line: &str) -> bool {
    line.chars().count() <= MAX_HEADING_CHARS
        && line.split_whitespace().count() <= MAX_HEADING_WORDS
        && !line.ends_with(['.', ':', ';', ',', '!', '?'])
        && line.chars().next().is_some_and(char::is_uppercase)
}

fn push_paragraph(blocks: &mut Vec<Block>, lines: &mut Vec<&str>) {
    let text = collapse_whitespace(&lines.join(" "));
    lines.clear();
    if !text.is_empty() {
        blocks.push(Block::Paragraph(text));
    }
}
