//! Markdown: front matter (TOML between `+++` lines, or simple YAML between `---` lines), then the
//! CommonMark body read with pulldown-cmark into headings, paragraphs, list items (numbered as in the
//! source), table rows (`cell | cell`) and code blocks. Raw HTML inside Markdown is dropped.

use super::{Block, LoadedDocument, collapse_whitespace};
use crate::{error::IngestError, metadata::PartialMetadata};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

pub(super) fn load(text: &str) -> Result<LoadedDocument, IngestError> {
    let (front_matter, body) = split_front_matter(text)?;
    let mut builder = Builder::default();
    for event in Parser::new_ext(body, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS) {
        builder.event(event);
    }
    builder.flush();
    let title_hint = builder.blocks.iter().find_map(|block| match block {
        Block::Heading { level: 1, text } => Some(text.clone()),
        _ => None,
    });
    Ok(LoadedDocument { blocks: builder.blocks, front_matter, title_hint })
}

/// The front matter of a Markdown text, if it has any (what a client merges before uploading).
pub(crate) fn front_matter(text: &str) -> Result<Option<PartialMetadata>, IngestError> {
    Ok(split_front_matter(text)?.0)
}

/// Front matter and the rest. Front matter must open on the first line; an unclosed block is an error
/// rather than silently becoming body text.
fn split_front_matter(text: &str) -> Result<(Option<PartialMetadata>, &str), IngestError> {
    for fence in ["+++", "---"] {
        let Some(rest) =
            text.strip_prefix(fence).and_then(|r| r.strip_prefix('\n').or(r.strip_prefix("\r\n")))
        else {
            continue;
        };
        let mut offset = 0;
        for line in rest.split_inclusive('\n') {
            if line.trim_end() == fence {
                let (inner, body) = (&rest[..offset], &rest[offset + line.len()..]);
                let meta = if fence == "+++" {
                    PartialMetadata::from_toml(inner, "front matter")?
                } else {
                    PartialMetadata::from_yaml_front_matter(inner)?
                };
                return Ok((Some(meta), body));
            }
            offset += line.len();
        }
        return Err(IngestError::invalid(
            "metadata",
            format!("front matter opened with {fence} is never closed"),
        ));
    }
    Ok((None, text))
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Pending {
    #[default]
    Paragraph,
    Heading(u8),
    Item(String),
    Code,
    Row,
}

#[derive(Debug, Default)]
struct Builder {
    blocks: Vec<Block>,
    buf: String,
    kind: Pending,
    /// Per open list: the next number of an ordered list, `None` for bullets.
    lists: Vec<Option<u64>>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Code(text) => self.buf.push_str(&text),
            Event::SoftBreak | Event::HardBreak => {
                self.buf.push(if self.kind == Pending::Code { '\n' } else { ' ' })
            }
            Event::TaskListMarker(done) => self.buf.push_str(if done { "[x] " } else { "[ ] " }),
            Event::Rule => self.flush(),
            // Raw HTML, footnote references and math are not prose a customer reads.
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => self.open(Pending::Heading(heading_level(level))),
            Tag::Paragraph => {
                // Paragraphs of a loose list item continue the item.
                if matches!(self.kind, Pending::Item(_)) {
                    if !self.buf.is_empty() {
                        self.buf.push(' ');
                    }
                } else {
                    self.open(Pending::Paragraph);
                }
            }
            Tag::List(first) => {
                self.flush();
                self.lists.push(first);
            }
            Tag::Item => {
                let marker = match self.lists.last_mut() {
                    Some(Some(next)) => {
                        let marker = format!("{next}. ");
                        *next += 1;
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                self.open(Pending::Item(marker));
            }
            Tag::CodeBlock(_) => self.open(Pending::Code),
            Tag::TableHead | Tag::TableRow => self.open(Pending::Row),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) | TagEnd::Item | TagEnd::CodeBlock | TagEnd::TableHead | TagEnd::TableRow => {
                self.flush()
            }
            TagEnd::Paragraph if !matches!(self.kind, Pending::Item(_)) => self.flush(),
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::TableCell => self.buf.push_str(" | "),
            _ => {}
        }
    }

    fn open(&mut self, kind: Pending) {
        self.flush();
        self.kind = kind;
    }

    /// Ends the pending block (if it has text) and returns to plain paragraphs.
    fn flush(&mut self) {
        let kind = std::mem::take(&mut self.kind);
        let raw = std::mem::take(&mut self.buf);
        let text = match kind {
            Pending::Code => raw.trim().to_owned(),
            Pending::Row => collapse_whitespace(&raw).trim_end_matches(['|', ' ']).to_owned(),
            _ => collapse_whitespace(&raw),
        };
        if text.is_empty() {
            return;
        }
        self.blocks.push(match kind {
            Pending::Heading(level) => Block::Heading { level, text },
            Pending::Item(marker) => Block::ListItem(format!("{marker}{text}")),
            Pending::Paragraph | Pending::Code | Pending::Row => Block::Paragraph(text),
        });
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}
