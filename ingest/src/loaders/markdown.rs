//! Markdown: front matter (see [`crate::front_matter`]), then the CommonMark body read with
//! pulldown-cmark into headings, paragraphs, list items (numbered as in the source), table rows
//! (`cell | cell`) and code blocks. What a reader of the rendered page would not see is dropped: raw
//! HTML tags (their text stays), link and image targets (the link text stays, also for a link the
//! parser could not read, such as `[text](url with spaces)`), and template placeholders
//! (`{{ site.email }}`, `{% include x %}`: Liquid, Jinja, Hugo), which are removed before parsing so
//! that `[contact us]({{ site.email }})` reads as the link text "contact us".

use super::{Block, LoadedDocument, collapse_whitespace};
use crate::{error::IngestError, front_matter, metadata::PartialMetadata};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

pub(super) fn load(text: &str) -> Result<LoadedDocument, IngestError> {
    let (front_matter, body) = front_matter::split(text)?;
    let body = drop_placeholders(body);
    let mut builder = Builder::default();
    for event in Parser::new_ext(&body, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS) {
        builder.event(event);
    }
    builder.flush();
    let title_hint = builder.blocks.iter().find_map(|block| match block {
        Block::Heading { level: 1, text } => Some(text.clone()),
        _ => None,
    });
    let notes = front_matter.as_ref().and_then(front_matter::FrontMatter::note).into_iter().collect();
    Ok(LoadedDocument {
        blocks: builder.blocks,
        front_matter: front_matter.map(|front| front.metadata),
        title_hint,
        notes,
    })
}

/// The front matter of a Markdown text, if it has any (what a client merges before uploading).
pub(crate) fn front_matter(text: &str) -> Result<Option<PartialMetadata>, IngestError> {
    Ok(front_matter::split(text)?.0.map(|front| front.metadata))
}

/// `text` without template placeholders: `{{ ... }}` and `{% ... %}`, each possibly over several
/// lines but not past a blank line. An opening without its closing is left as it is (it is text, not
/// a template). Linear in the text: each opening looks up the next closing and the next blank line
/// among positions found once, so a page of unclosed openings costs no more than a normal page.
pub(crate) fn drop_placeholders(text: &str) -> String {
    let closings = [("{{", Occurrences::of(text, "}}")), ("{%", Occurrences::of(text, "%}"))];
    let blank_lines = Occurrences::of(text, "\n\n");
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find('{') {
        let open = at + found;
        let Some((_, closings)) = closings.iter().find(|(opening, _)| text[open..].starts_with(opening))
        else {
            at = open + 1;
            continue;
        };
        let paragraph_end = blank_lines.next_from(open + 2).unwrap_or(usize::MAX);
        match closings.next_from(open + 2).filter(|&close| close < paragraph_end) {
            Some(close) => {
                out.push_str(&text[copied..open]);
                copied = close + 2;
                at = copied;
            }
            None => at = open + 2,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `text` with every `[label](target)` left in it (a link the parser did not take, its target
/// unreadable) reduced to its label. Linear in the text, as [`drop_placeholders`] is.
fn drop_link_targets(text: &str) -> String {
    let (openings, middles, ends) =
        (Occurrences::of(text, "["), Occurrences::of(text, "]("), Occurrences::of(text, ")"));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(open) = openings.next_from(at) {
        let link = middles.next_from(open + 1).and_then(|middle| {
            // A `[` inside the label means this `[` does not open the link.
            let nested = openings.next_from(open + 1).is_some_and(|next| next < middle);
            let end = ends.next_from(middle + 2)?;
            (!nested).then_some((&text[open + 1..middle], end + 1))
        });
        match link {
            Some((label, end)) => {
                out.push_str(&text[copied..open]);
                out.push_str(label);
                copied = end;
                at = end;
            }
            None => at = open + 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where a pattern occurs in a text (byte offsets, ascending), found once.
struct Occurrences(Vec<usize>);

impl Occurrences {
    fn of(text: &str, pattern: &str) -> Self {
        Self(text.match_indices(pattern).map(|(at, _)| at).collect())
    }

    /// The first occurrence at or after `at`.
    fn next_from(&self, at: usize) -> Option<usize> {
        self.0.get(self.0.partition_point(|&p| p < at)).copied()
    }
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
            Pending::Row => {
                collapse_whitespace(&drop_link_targets(&raw)).trim_end_matches(['|', ' ']).to_owned()
            }
            _ => collapse_whitespace(&drop_link_targets(&raw)),
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
