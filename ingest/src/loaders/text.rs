//! Plain text: paragraphs separated by blank lines; no headings, so chunks carry an empty path.

use super::{Block, LoadedDocument, collapse_whitespace};

pub(super) fn load(text: &str) -> LoadedDocument {
    LoadedDocument { blocks: paragraphs(text), front_matter: None, title_hint: None, notes: Vec::new() }
}

/// Blank-line separated paragraphs, whitespace collapsed.
pub(super) fn paragraphs(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            push(&mut blocks, &mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    push(&mut blocks, &mut current);
    blocks
}

fn push(blocks: &mut Vec<Block>, current: &mut String) {
    let text = collapse_whitespace(current);
    if !text.is_empty() {
        blocks.push(Block::Paragraph(text));
    }
    current.clear();
}
