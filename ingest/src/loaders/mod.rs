//! Loaders: bytes of one document in, its structure out. Owns the choice of loader (explicit media type
//! first, then the file name's extension), the block model every loader produces (headings,
//! paragraphs, list items) and the normalised text that char spans and the content hash refer to.
//! Each format lives in its own module; none of them knows about chunks, embeddings or the store.

mod html;
mod markdown;
mod pdf;
mod text;

use crate::{error::IngestError, metadata::PartialMetadata};

/// The formats rudder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Markdown,
    PlainText,
    Html,
    Pdf,
}

impl MediaType {
    pub const ALL: [MediaType; 4] = [Self::Markdown, Self::PlainText, Self::Html, Self::Pdf];

    pub fn mime(self) -> &'static str {
        match self {
            Self::Markdown => "text/markdown",
            Self::PlainText => "text/plain",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
        }
    }

    /// The format of an upload: `explicit` (a media type) wins over the file name's extension.
    pub fn detect(file_name: &str, explicit: Option<&str>) -> Result<Self, IngestError> {
        if let Some(explicit) = explicit.map(str::trim).filter(|m| !m.is_empty()) {
            // Parameters such as "; charset=utf-8" do not change the format.
            let essence = explicit.split(';').next().unwrap_or(explicit).trim().to_ascii_lowercase();
            return Self::ALL.into_iter().find(|m| m.mime() == essence).ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|m| m.mime()).collect();
                IngestError::invalid(
                    "media_type",
                    format!("unsupported media type {explicit:?}; supported: {}", known.join(", ")),
                )
            });
        }
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        let extension = base.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
        match extension.as_deref() {
            Some("md" | "markdown") => Ok(Self::Markdown),
            Some("txt" | "text") => Ok(Self::PlainText),
            Some("html" | "htm") => Ok(Self::Html),
            Some("pdf") => Ok(Self::Pdf),
            Some(other) => Err(IngestError::invalid(
                "file_name",
                format!(
                    "unknown extension .{other} of {file_name:?}; use .md, .txt, .html or .pdf, or set media_type"
                ),
            )),
            None => Err(IngestError::invalid(
                "file_name",
                format!("{file_name:?} has no extension to choose a loader by; set media_type"),
            )),
        }
    }
}

/// One structural element of a document, its text with whitespace collapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Level 1 (top) to 6.
    Heading {
        level: u8,
        text: String,
    },
    Paragraph(String),
    /// A list item, its marker included (`- ` or `1. `), so the normalised text reads like the source.
    ListItem(String),
}

impl Block {
    pub fn text(&self) -> &str {
        match self {
            Self::Heading { text, .. } | Self::Paragraph(text) | Self::ListItem(text) => text,
        }
    }
}

/// A loaded document: its blocks, and what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadedDocument {
    pub blocks: Vec<Block>,
    /// Markdown front matter, if there was any.
    pub front_matter: Option<PartialMetadata>,
    /// A title found in the document (first top-level heading, HTML `<title>`, PDF info title).
    pub title_hint: Option<String>,
    /// What loading left out that the user may want to know (front matter keys rudder does not use);
    /// shown with the document's result, never a failure.
    pub notes: Vec<String>,
}

impl LoadedDocument {
    /// The normalised text: blocks separated by a blank line, consecutive list items by a newline.
    /// Char spans and the content hash refer to this text; [`Self::block_offsets`] gives each
    /// block's byte offset in it.
    pub fn normalised_text(&self) -> String {
        let mut out = String::new();
        for (index, block) in self.blocks.iter().enumerate() {
            if index > 0 {
                out.push_str(self.separator_before(index));
            }
            out.push_str(block.text());
        }
        out
    }

    /// Byte offset of every block's text in [`Self::normalised_text`].
    pub fn block_offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.blocks.len());
        let mut at = 0;
        for (index, block) in self.blocks.iter().enumerate() {
            if index > 0 {
                at += self.separator_before(index).len();
            }
            offsets.push(at);
            at += block.text().len();
        }
        offsets
    }

    fn separator_before(&self, index: usize) -> &'static str {
        let consecutive_items = matches!(
            (self.blocks.get(index.wrapping_sub(1)), self.blocks.get(index)),
            (Some(Block::ListItem(_)), Some(Block::ListItem(_)))
        );
        if consecutive_items { "\n" } else { "\n\n" }
    }
}

/// Loads `bytes` as `media`. Empty documents, invalid UTF-8 and unreadable PDFs are refused with
/// an error naming `content`.
pub fn load(media: MediaType, bytes: &[u8]) -> Result<LoadedDocument, IngestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::invalid("content", "the document is empty"));
    }
    let document = match media {
        MediaType::Markdown => markdown::load(utf8(bytes)?)?,
        MediaType::PlainText => text::load(utf8(bytes)?),
        MediaType::Html => html::load(utf8(bytes)?),
        MediaType::Pdf => pdf::load(bytes)?,
    };
    if document.blocks.iter().all(|block| matches!(block, Block::Heading { .. })) {
        return Err(IngestError::invalid(
            "content",
            format!(
                "no text found in the {} document (only headings, or nothing, after loading)",
                media.mime()
            ),
        ));
    }
    Ok(document)
}

/// The metadata a document carries in itself (Markdown front matter), without loading the rest.
pub fn embedded_metadata(media: MediaType, bytes: &[u8]) -> Result<Option<PartialMetadata>, IngestError> {
    match media {
        MediaType::Markdown => markdown::front_matter(utf8(bytes)?),
        MediaType::PlainText | MediaType::Html | MediaType::Pdf => Ok(None),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, IngestError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        IngestError::invalid(
            "content",
            format!("not valid UTF-8 (first bad byte at offset {})", err.valid_up_to()),
        )
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Collapses every whitespace run (newlines included) to one space and trims the ends.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
