//! Markdown front matter: TOML between `+++` lines or YAML between `---` lines, read into the metadata
//! rudder knows. Front matter usually belongs to another tool (a static site generator's `layout`,
//! `permalink`, `description`, `date`), so keys rudder does not use, and known keys in a shape it
//! cannot use (a `tags` mapping), are left out with a note, never an error. Front matter that cannot
//! be read at all (invalid TOML, YAML outside the subset below, an unclosed block) fails the document
//! with the line in the file.
//!
//! The YAML read here is what front matter is written in: `key: value` with plain, 'single' or
//! "double" quoted scalars (continued on indented lines), `[flow, lists]`, `|` and `>` block scalars,
//! `key:` followed by `- item` lines, and comments. Nested mappings, lists of mappings, `{flow}`
//! mappings, anchors, aliases and tags are recognised so that their key can be skipped with a note.

use crate::{error::IngestError, metadata::PartialMetadata};

/// What front matter says about its document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontMatter {
    pub metadata: PartialMetadata,
    /// Keys left out, each with why when it is not simply unknown (`tags (a mapping)`).
    pub ignored: Vec<String>,
}

impl FrontMatter {
    /// The note a document's result carries for the ignored keys, if any.
    pub fn note(&self) -> Option<String> {
        (!self.ignored.is_empty()).then(|| format!("ignored front matter keys: {}", self.ignored.join(", ")))
    }
}

/// Splits `text` into its front matter (if it opens with a `+++` or `---` line) and the body after
/// it. An opening line that is never closed is an error rather than silently becoming body text.
pub(crate) fn split(text: &str) -> Result<(Option<FrontMatter>, &str), IngestError> {
    let first_line_end = text.find('\n').map_or(text.len(), |at| at + 1);
    let fence = text[..first_line_end].trim_end();
    if fence != "+++" && fence != "---" {
        return Ok((None, text));
    }
    let rest = &text[first_line_end..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == fence {
            let (inner, body) = (&rest[..offset], &rest[offset + line.len()..]);
            // The inner text starts on the file's second line.
            let front = if fence == "+++" { from_toml(inner, 2)? } else { from_yaml(inner, 2)? };
            return Ok((Some(front), body));
        }
        offset += line.len();
    }
    Err(IngestError::invalid(
        "metadata",
        format!("front matter opened with {fence} on line 1 is never closed"),
    ))
}

/// A front matter value, as far as metadata needs to tell shapes apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Null,
    Scalar(String),
    List(Vec<String>),
    /// A shape metadata has no use for, described for the note ("a mapping").
    Other(&'static str),
}

/// Known keys into metadata; everything else into `ignored`.
fn from_entries(entries: Vec<(String, Value)>) -> FrontMatter {
    let mut front = FrontMatter::default();
    for (key, value) in entries {
        let meta = &mut front.metadata;
        let single = match key.as_str() {
            "doc_id" => Some(&mut meta.doc_id),
            "title" => Some(&mut meta.title),
            "source" => Some(&mut meta.source),
            "brand" => Some(&mut meta.brand),
            "language" => Some(&mut meta.language),
            "version" | "effective_date" => Some(&mut meta.version),
            _ => None,
        };
        let list = match key.as_str() {
            "regions" => Some(&mut meta.regions),
            "tags" => Some(&mut meta.tags),
            _ => None,
        };
        let ignored = match (single, list, value) {
            (None, None, _) => Some(key),
            (_, _, Value::Null) => None,
            (Some(field), _, Value::Scalar(text)) if field.is_none() => {
                *field = Some(text);
                None
            }
            (Some(_), _, Value::Scalar(_)) => Some(format!("{key} (given twice)")),
            (Some(_), _, Value::List(_)) => Some(format!("{key} (a list)")),
            (_, Some(field), Value::Scalar(text)) => {
                field.push(text);
                None
            }
            (_, Some(field), Value::List(items)) => {
                field.extend(items);
                None
            }
            (Some(_), _, Value::Other(shape)) | (_, Some(_), Value::Other(shape)) => {
                Some(format!("{key} ({shape})"))
            }
        };
        front.ignored.extend(ignored);
    }
    front
}

/// `+++` front matter. `first_line` is the file line `text` starts on.
fn from_toml(text: &str, first_line: usize) -> Result<FrontMatter, IngestError> {
    let table = text.parse::<toml::Table>().map_err(|err| {
        let line = err.span().map_or(0, |span| text[..span.start.min(text.len())].matches('\n').count());
        IngestError::invalid(
            "metadata",
            format!("front matter line {}: not valid TOML: {}", first_line + line, err.message()),
        )
    })?;
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        // Dates are written as TOML has them: `2026-03-01`.
        toml::Value::Datetime(date) => Some(date.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    };
    let entries = table
        .into_iter()
        .map(|(key, value)| {
            let value = match &value {
                toml::Value::Table(_) => Value::Other("a table"),
                toml::Value::Array(items) => match items.iter().map(scalar).collect::<Option<Vec<_>>>() {
                    Some(items) => Value::List(items),
                    None => Value::Other("a list of lists or tables"),
                },
                other => scalar(other).map_or(Value::Null, Value::Scalar),
            };
            (key, value)
        })
        .collect();
    Ok(from_entries(entries))
}

/// `---` front matter. `first_line` is the file line `text` starts on.
fn from_yaml(text: &str, first_line: usize) -> Result<FrontMatter, IngestError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut first_seen: Vec<(String, usize)> = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let number = first_line + at;
        let line = lines[at].trim_end();
        let bad = |why: &str| {
            IngestError::invalid("metadata", format!("front matter line {number}: {why}: {line:?}"))
        };
        at += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(bad("indented line outside any value"));
        }
        if line.starts_with("- ") || line == "-" {
            return Err(bad("list item outside a list"));
        }
        let (key, value) = split_key(line).ok_or_else(|| bad("expected `key: value`"))?;
        if let Some((_, first)) = first_seen.iter().find(|(seen, _)| *seen == key) {
            return Err(bad(&format!("{key:?} is given twice (first on line {first})")));
        }
        first_seen.push((key.clone(), number));
        // The lines that belong to this value: indented ones, and `- item` lines of a list.
        let nested_start = at;
        while at < lines.len() {
            let next = lines[at];
            let belongs = next.trim().is_empty()
                || next.starts_with([' ', '\t'])
                || (value.is_empty() && (next.starts_with("- ") || next.trim_end() == "-"));
            if !belongs {
                break;
            }
            at += 1;
        }
        let nested = &lines[nested_start..at];
        let value = yaml_value(value, nested).map_err(|why| bad(&why))?;
        entries.push((key, value));
    }
    Ok(from_entries(entries))
}

/// `key` and the rest of the line after `: ` (or an empty rest after a final `:`).
fn split_key(line: &str) -> Option<(String, &str)> {
    if let Some(quote) = line.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let close = line[1..].find(quote)? + 1;
        let rest = line[close + 1..].trim_start().strip_prefix(':')?;
        return (rest.is_empty() || rest.starts_with(' ')).then(|| (line[1..close].to_owned(), rest.trim()));
    }
    let split = line.find(": ").or_else(|| line.ends_with(':').then(|| line.len() - 1))?;
    let key = line[..split].trim();
    (!key.is_empty()).then(|| (key.to_owned(), line[split + 1..].trim()))
}

/// The value of one key: `inline` is what follows `key:` on its line, `nested` the lines under it.
fn yaml_value(inline: &str, nested: &[&str]) -> Result<Value, String> {
    let filled: Vec<&str> = nested.iter().copied().filter(|l| !l.trim().is_empty()).collect();
    if inline.is_empty() || inline.starts_with('#') {
        let Some(first) = filled.first() else {
            return Ok(Value::Null);
        };
        if !first.trim_start().starts_with('-') {
            return Ok(Value::Other("a mapping"));
        }
        let indent = first.len() - first.trim_start().len();
        let mut items = Vec::new();
        for line in filled.iter().filter(|line| !line.trim_start().starts_with('#')) {
            let this_indent = line.len() - line.trim_start().len();
            let item = line.trim_start();
            if this_indent > indent {
                // A continuation or a nested block: an item that is not a plain scalar.
                return Ok(Value::Other("a list of lists or mappings"));
            }
            let item = item.strip_prefix('-').filter(|rest| rest.is_empty() || rest.starts_with(' '));
            let item = item.ok_or_else(|| "expected `- item` in a list".to_owned())?.trim();
            if item.starts_with(['[', '{']) || split_key(item).is_some() {
                return Ok(Value::Other("a list of lists or mappings"));
            }
            items.push(scalar(item, &[])?);
        }
        return Ok(Value::List(items));
    }
    if let Some(indicator) = inline.strip_prefix(['|', '>']) {
        if !indicator.chars().all(|c| matches!(c, '-' | '+') || c.is_ascii_digit()) {
            return Err("unexpected text after a block scalar indicator".to_owned());
        }
        let separator = if inline.starts_with('|') { "\n" } else { " " };
        let text = filled.iter().map(|line| line.trim()).collect::<Vec<_>>().join(separator);
        return Ok(Value::Scalar(text));
    }
    if let Some(inner) = inline.strip_prefix('[') {
        let joined =
            std::iter::once(inner).chain(filled.iter().map(|l| l.trim())).collect::<Vec<_>>().join(" ");
        let inner = strip_comment(&joined);
        let inner = inner.strip_suffix(']').ok_or_else(|| "a [ list that is not closed with ]".to_owned())?;
        let mut items = Vec::new();
        for item in split_flow(inner)? {
            if item.starts_with(['[', '{']) {
                return Ok(Value::Other("a list of lists or mappings"));
            }
            if !item.is_empty() {
                items.push(scalar(item, &[])?);
            }
        }
        return Ok(Value::List(items));
    }
    if inline.starts_with('{') {
        return Ok(Value::Other("a mapping"));
    }
    if inline.starts_with(['&', '*', '!']) {
        return Ok(Value::Other("an anchor, alias or tag"));
    }
    scalar(inline, &filled).map(Value::Scalar)
}

/// A scalar: quoted (possibly continued on the `more` lines) or plain (continued by them).
fn scalar(first: &str, more: &[&str]) -> Result<String, String> {
    let joined =
        std::iter::once(first.trim()).chain(more.iter().map(|l| l.trim())).collect::<Vec<_>>().join(" ");
    let Some(quote) = joined.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
        return Ok(strip_comment(&joined).to_owned());
    };
    let mut out = String::new();
    let mut chars = joined[1..].chars();
    loop {
        let Some(c) = chars.next() else {
            return Err(format!("a {quote}quoted{quote} value that is not closed"));
        };
        match (quote, c) {
            ('\'', '\'') if chars.as_str().starts_with('\'') => {
                chars.next();
                out.push('\'');
            }
            ('"', '\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => return Err("a \"quoted\" value that is not closed".to_owned()),
            },
            _ if c == quote => break,
            _ => out.push(c),
        }
    }
    let after = chars.as_str().trim();
    if !(after.is_empty() || after.starts_with('#')) {
        return Err(format!("unexpected text after the closing {quote}"));
    }
    Ok(out)
}

/// A plain scalar without a trailing ` # comment`.
fn strip_comment(text: &str) -> &str {
    text.find(" #").map_or(text, |at| &text[..at]).trim()
}

/// The items of a flow list's inside, split on commas outside quotes and brackets.
fn split_flow(inner: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut quote, mut start) = (0_i32, None::<char>, 0);
    for (at, c) in inner.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(inner[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() || depth != 0 {
        return Err("an unbalanced quote or bracket in a [ list ]".to_owned());
    }
    items.push(inner[start..].trim());
    Ok(items)
}
