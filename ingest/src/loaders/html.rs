//! HTML: the page's readable content. Navigation, headers, footers, scripts, styles and forms are
//! dropped; headings, paragraphs, list items (numbered in ordered lists) and table rows are kept.
//! html5ever (through scraper) parses like a browser, so broken markup still yields text.

use super::{Block, LoadedDocument, collapse_whitespace};
use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node, Selector, node::Element};

/// Elements whose content is page furniture or code, not policy text.
const SKIPPED: &[&str] = &[
    "head", "nav", "header", "footer", "script", "style", "noscript", "template", "form", "button", "svg",
    "iframe", "aside", "select",
];

/// Elements that end the text before them and start a block of their own.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "html",
    "main",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "caption",
    "hr",
];

pub(super) fn load(text: &str) -> LoadedDocument {
    let page = Html::parse_document(text);
    let title_hint = Selector::parse("title")
        .ok()
        .and_then(|selector| page.select(&selector).next())
        .map(|title| collapse_whitespace(&title.text().collect::<String>()))
        .filter(|title| !title.is_empty());
    let mut walker = Walker::default();
    walker.walk(page.root_element());
    walker.flush();
    // The first <h1> is the document's own title; <title> often carries the site name as well.
    let h1 = walker.blocks.iter().find_map(|block| match block {
        Block::Heading { level: 1, text } => Some(text.clone()),
        _ => None,
    });
    LoadedDocument {
        blocks: walker.blocks,
        front_matter: None,
        title_hint: h1.or(title_hint),
        notes: Vec::new(),
    }
}

/// The block an element opens, if any.
fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Some(Kind::Heading(name[1..].parse::<u8>().unwrap_or(6))),
        "li" => Some(Kind::Item),
        "tr" => Some(Kind::Row),
        "ul" | "ol" => Some(Kind::Paragraph),
        _ if BLOCKS.contains(&name) => Some(Kind::Paragraph),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paragraph,
    Heading(u8),
    Item,
    Row,
}

#[derive(Debug, Default)]
struct Walker {
    blocks: Vec<Block>,
    buf: String,
    /// The block kind of each open block element; text belongs to the innermost.
    kinds: Vec<Kind>,
    /// Per open list: the next number of an `<ol>`, `None` for `<ul>`.
    lists: Vec<Option<u64>>,
    /// The marker of the innermost open `<li>`, used by its first flushed text only.
    item_marker: Option<String>,
}

impl Walker {
    /// Walks the tree with `traverse` (open and close edges), not by recursion: a page of 100,000
    /// nested elements must not overflow the stack.
    fn walk(&mut self, root: ElementRef<'_>) {
        // Depth inside a skipped element (0: not in one).
        let mut skipped_depth = 0usize;
        for edge in root.traverse() {
            match edge {
                Edge::Open(node) => match node.value() {
                    Node::Element(_) if skipped_depth > 0 => skipped_depth += 1,
                    Node::Element(element) if SKIPPED.contains(&element.name()) => skipped_depth = 1,
                    Node::Element(element) => self.open(element),
                    Node::Text(text) if skipped_depth == 0 => self.buf.push_str(text),
                    _ => {}
                },
                Edge::Close(node) => match node.value() {
                    Node::Element(_) if skipped_depth > 0 => skipped_depth -= 1,
                    Node::Element(element) => self.close(element),
                    _ => {}
                },
            }
        }
    }

    fn open(&mut self, element: &Element) {
        let name = element.name();
        match name {
            "br" => self.buf.push(' '),
            "ol" => self.lists.push(Some(element.attr("start").and_then(|s| s.parse().ok()).unwrap_or(1))),
            "ul" => self.lists.push(None),
            _ => {}
        }
        if let Some(kind) = kind_of(name) {
            self.flush();
            if kind == Kind::Item {
                self.item_marker = Some(self.next_marker());
            }
            self.kinds.push(kind);
        }
    }

    fn close(&mut self, element: &Element) {
        let name = element.name();
        if matches!(name, "td" | "th") {
            self.buf.push_str(" | ");
        }
        if kind_of(name).is_some() {
            self.flush();
            self.kinds.pop();
        }
        if matches!(name, "ol" | "ul") {
            self.lists.pop();
        }
    }

    fn next_marker(&mut self) -> String {
        match self.lists.last_mut() {
            Some(Some(next)) => {
                let marker = format!("{next}. ");
                *next += 1;
                marker
            }
            _ => "- ".to_owned(),
        }
    }

    fn flush(&mut self) {
        let raw = std::mem::take(&mut self.buf);
        let mut text = collapse_whitespace(&raw);
        let kind = self.kinds.last().copied().unwrap_or(Kind::Paragraph);
        if kind == Kind::Row {
            text = text.trim_end_matches(['|', ' ']).to_owned();
        }
        if text.is_empty() {
            return;
        }
        self.blocks.push(match kind {
            Kind::Heading(level) => Block::Heading { level, text },
            Kind::Item => match self.item_marker.take() {
                Some(marker) => Block::ListItem(format!("{marker}{text}")),
                // Text of the same item after a nested list: a continuation, not a new item.
                None => Block::ListItem(format!("  {text}")),
            },
            Kind::Paragraph | Kind::Row => Block::Paragraph(text),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_nested_twenty_thousand_deep_loads_on_a_small_stack() {
        let depth = 20_000;
        let page = format!(
            "<html><body>{}<p>Refunds take 14 days.</p>{}</body></html>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        // The size of a tokio worker's stack: the whole process went down on this page before.
        let loaded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || load(&page))
            .expect("a test thread")
            .join()
            .expect("loading did not overflow the stack");
        assert!(
            loaded
                .blocks
                .iter()
                .any(|b| matches!(b, Block::Paragraph(text) if text == "Refunds take 14 days.")),
            "{:?}",
            loaded.blocks.iter().take(3).collect::<Vec<_>>()
        );
    }

    #[test]
    fn skipped_elements_lists_and_tables_read_as_before() {
        let page = "<html><head><title>Site</title></head><body><nav><p>Menu</p></nav><h1>Returns</h1>\
                    <ol start=\"3\"><li>Unworn</li><li>Tagged</li></ol><table><tr><td>Standard</td><td>£3.95</td></tr></table>\
                    <script>var x = 1;</script><p>Ask us.</p></body></html>";
        let loaded = load(page);
        let texts: Vec<String> = loaded.blocks.iter().map(|b| format!("{b:?}")).collect();
        assert_eq!(loaded.title_hint.as_deref(), Some("Returns"));
        assert_eq!(
            texts,
            [
                "Heading { level: 1, text: \"Returns\" }",
                "ListItem(\"3. Unworn\")",
                "ListItem(\"4. Tagged\")",
                "Paragraph(\"Standard | £3.95\")",
                "Paragraph(\"Ask us.\")"
            ]
        );
    }
}
