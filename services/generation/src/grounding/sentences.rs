//! Sentences of a passage: the unit evidence is chosen in. A line (a bullet, a table row, a
//! paragraph) is split at sentence ends; list markers and table pipes are not part of a sentence.
//! Each sentence keeps its byte range in the passage text, so a support tool can highlight it.

/// Abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: [&str; 16] = [
    "e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "st", "no", "vs", "approx", "incl", "inc", "ltd", "a.m",
    "p.m",
];

/// A sentence: its byte range in the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn of<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }
}

/// The sentences of `text`, in order; empty lines, headings rules and bare markers give none.
pub fn sentences(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let (start, end) = content_of_line(text, line_start, line);
        line_start += line.len();
        if start < end {
            split_line(text, start, end, &mut spans);
        }
    }
    spans
}

/// The line's text without its list marker, quote marker, table pipes and surrounding blanks.
fn content_of_line(text: &str, offset: usize, line: &str) -> (usize, usize) {
    let mut start = offset;
    let mut end = offset + line.trim_end().len();
    loop {
        let rest = &text[start..end];
        let trimmed = rest.trim_start();
        start += rest.len() - trimmed.len();
        let marker =
            ["* ", "- ", "+ ", "• ", "> ", "| "].iter().find(|m| trimmed.starts_with(**m)).map(|m| m.len());
        let numbered = trimmed
            .find(". ")
            .filter(|&dot| dot > 0 && dot <= 3 && trimmed[..dot].chars().all(|c| c.is_ascii_digit()));
        match marker.or(numbered.map(|dot| dot + 2)) {
            Some(len) => start += len,
            None => break,
        }
    }
    while end > start && text[start..end].ends_with(['|', ' ']) {
        end -= 1;
    }
    let body = &text[start..end];
    if body.chars().all(|c| matches!(c, '-' | '=' | '*' | '_' | '|' | ':' | ' ')) {
        return (start, start);
    }
    (start, end)
}

fn split_line(text: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    let line = &text[start..end];
    let mut sentence_start = 0;
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        if !matches!(c, '.' | '?' | '!') {
            continue;
        }
        let after = i + 1;
        // The end: closing quotes/brackets, then a space, then something that starts a sentence.
        let mut next = after;
        while next < bytes.len() && matches!(bytes[next], b'"' | b'\'' | b')') {
            next += 1;
        }
        if next >= bytes.len() || bytes[next] != b' ' {
            continue;
        }
        let following = line[next..].trim_start().chars().next();
        let starts_sentence = following
            .is_some_and(|f| f.is_uppercase() || f.is_ascii_digit() || matches!(f, '"' | '“' | '[' | '('));
        if !starts_sentence || (c == '.' && ends_with_abbreviation(&line[sentence_start..i])) {
            continue;
        }
        push(spans, start + sentence_start, start + next, text);
        sentence_start = next;
    }
    push(spans, start + sentence_start, end, text);
}

/// Whether the sentence opens a bulleted or numbered line: an item of a list, which says little
/// without the line that introduces the list.
pub fn is_list_item(text: &str, span: Span) -> bool {
    let line_start = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
    let marker = text[line_start..span.start].trim();
    ["*", "-", "+", "•"].contains(&marker)
        || marker
            .strip_suffix('.')
            .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.chars().all(|c| c.is_ascii_digit()))
}

fn ends_with_abbreviation(before: &str) -> bool {
    let word =
        before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default().to_lowercase();
    ABBREVIATIONS.contains(&word.as_str()) || is_initialism(&word)
}

/// "B.V", "U.S", "a": single letters joined by full stops (a company form, a country, an initial).
fn is_initialism(word: &str) -> bool {
    !word.is_empty()
        && word.split('.').all(|part| part.chars().count() == 1 && part.chars().all(char::is_alphabetic))
}

fn push(spans: &mut Vec<Span>, start: usize, end: usize, text: &str) {
    let piece = &text[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    let (start, end) = (start + lead, end - trail);
    if text[start..end].chars().any(char::is_alphanumeric) {
        spans.push(Span { start, end });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        sentences(text).iter().map(|s| s.of(text)).collect()
    }

    #[test]
    fn sentences_end_at_stops_but_not_at_abbreviations_or_decimals() {
        let text = "Refunds take 5 days. Delivery costs £4.99, e.g. for boots. Is it free? Yes! Over £50 it is. \
                    Order by 12 p.m. Eastern Time.";
        assert_eq!(
            split(text),
            [
                "Refunds take 5 days.",
                "Delivery costs £4.99, e.g. for boots.",
                "Is it free?",
                "Yes!",
                "Over £50 it is.",
                "Order by 12 p.m. Eastern Time."
            ]
        );
    }

    #[test]
    fn initialisms_do_not_end_a_sentence() {
        let text = "Northwind Outfitters B.V. (European Union) is the controller. Ask the U.S. team.";
        assert_eq!(
            split(text),
            ["Northwind Outfitters B.V. (European Union) is the controller.", "Ask the U.S. team."]
        );
    }

    #[test]
    fn bulleted_and_numbered_lines_are_list_items() {
        let text = "We collect tax in:\n* Ontario\n2. Quebec\nTax is 5%. Or more.\n";
        let items: Vec<bool> = sentences(text).into_iter().map(|s| is_list_item(text, s)).collect();
        assert_eq!(items, [false, true, true, false, false]);
    }

    #[test]
    fn list_markers_table_pipes_and_rules_are_not_sentence_text() {
        let text =
            "Ways to pay:\n* Card payments.\n- PayPal\n2. Gift cards\n| Standard | £3.99 |\n|---|---|\n";
        assert_eq!(
            split(text),
            ["Ways to pay:", "Card payments.", "PayPal", "Gift cards", "Standard | £3.99"]
        );
    }

    #[test]
    fn spans_point_into_the_text() {
        let text = "  * First one. Second one.\n";
        for span in sentences(text) {
            assert!(!span.of(text).starts_with(' ') && !span.of(text).starts_with('*'));
        }
    }
}
