//! Figures: the parts of an answer that must never be invented — amounts, numbers with their unit
//! (durations, percentages), phone numbers, e-mail addresses and URLs. Each is reduced to a normal
//! form so that "£1,000", "£1000" and "£ 1000" compare equal, "fourteen days" equals "14 days", and a
//! figure in an answer can be looked up among the figures of the evidence it cites.

use std::{collections::BTreeSet, sync::LazyLock};

use regex::Regex;

/// One figure in normal form, e.g. `£4.99`, `14 day`, `30 %`, `phone:08001234567`,
/// `mail:help@example.com`, `url:example.com/returns`, or a bare number `2025`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Figure {
    pub normal: String,
    /// The number alone (without currency or unit), for a looser comparison; empty for contacts.
    pub number: String,
    /// Where it sits in the text it was found in (byte range).
    pub start: usize,
    pub end: usize,
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:https?://|www\.)[^\s<>()\[\]]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|co\.uk|org|net|eu|io|gov)(?:/[^\s<>()\[\]]*)?",
    )
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+\b"));
/// Digit groups joined by spaces, dots or dashes (optionally with a leading + and an area code in
/// parentheses) that together hold at least seven digits.
static PHONE: LazyLock<Regex> = LazyLock::new(|| pattern(r"\+?\(?\d{1,4}\)?(?:[ .\-]\(?\d{2,4}\)?){2,5}"));
/// A number with an optional currency before it and an optional unit after it. Number words are
/// turned into digits before this runs.
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?ix)
        (?P<currency>[$£€]\s?|\b(?:usd|gbp|eur)\s?)?
        (?P<number>\d[\d,]*(?:\.\d+)?)
        (?:\s?(?P<unit>%|percent\b|(?:calendar\s|working\s|business\s)?(?:days?|weeks?|months?|years?|hours?|minutes?|hrs?)\b|(?:dollars?|pounds?|euros?|cents?|pence|p)\b))?",
    )
});
static MARKER: LazyLock<Regex> = LazyLock::new(|| pattern(r"\[\d+\]"));

/// A pattern written in this file: its tests compile every one, so it cannot fail at run time.
#[allow(clippy::expect_used)]
pub(crate) fn pattern(literal: &str) -> Regex {
    Regex::new(literal).expect("a literal pattern of this module")
}

const NUMBER_WORDS: [(&str, &str); 24] = [
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("forty-five", "45"),
    ("sixty", "60"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("twenty-one", "21"),
    ("twenty-four", "24"),
    ("forty-eight", "48"),
];

/// Every figure in `text`, in order. Citation markers (`[2]`) are not figures.
pub fn figures(text: &str) -> Vec<Figure> {
    let text = &MARKER.replace_all(text, |m: &regex::Captures<'_>| " ".repeat(m[0].len())).into_owned();
    let mut found = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let overlaps = |taken: &[(usize, usize)], s: usize, e: usize| taken.iter().any(|&(a, b)| s < b && a < e);
    for m in EMAIL.find_iter(text) {
        found.push(contact("mail", m.as_str().to_lowercase(), m.start(), m.end()));
        taken.push((m.start(), m.end()));
    }
    for m in URL.find_iter(text) {
        if overlaps(&taken, m.start(), m.end()) {
            continue;
        }
        let url = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']).to_lowercase();
        let url = url.trim_start_matches("https://").trim_start_matches("http://").trim_start_matches("www.");
        let end = m.start() + m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']).len();
        found.push(contact("url", url.trim_end_matches('/').to_owned(), m.start(), end));
        taken.push((m.start(), m.end()));
    }
    for m in PHONE.find_iter(text) {
        let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 7 || overlaps(&taken, m.start(), m.end()) || looks_like_amount_list(m.as_str()) {
            continue;
        }
        found.push(contact("phone", digits, m.start(), m.end()));
        taken.push((m.start(), m.end()));
    }
    let words = with_number_words_as_digits(text);
    for caps in QUANTITY.captures_iter(&words.text) {
        let Some(whole) = caps.get(0) else { continue };
        let (start, end) = (words.original(whole.start()), words.original(whole.end()));
        if overlaps(&taken, start, end) || preceded_by_letter(&words.text, whole.start()) {
            continue;
        }
        let number = normal_number(&caps["number"]);
        let currency = caps.name("currency").map(|c| currency_symbol(c.as_str()));
        let unit = caps.name("unit").map(|u| normal_unit(u.as_str()));
        let normal = match (currency, unit.as_deref()) {
            (Some(symbol), _) => format!("{symbol}{number}"),
            (None, Some(unit @ ("$" | "£" | "€"))) => format!("{unit}{number}"),
            (None, Some(unit)) => format!("{number} {unit}"),
            (None, None) => number.clone(),
        };
        found.push(Figure { normal, number, start, end });
    }
    found.sort_by_key(|f| f.start);
    found
}

/// The normal forms of every figure in `text`.
pub fn figure_set(text: &str) -> BTreeSet<String> {
    figures(text).into_iter().map(|f| f.normal).collect()
}

/// Whether `figure` (from an answer) is stated by `evidence` (the normal forms of the evidence's
/// figures and its bare numbers): an exact normal form, or, for a number with no currency and no
/// unit, the same number anywhere in the evidence.
pub fn supported(figure: &Figure, evidence: &[Figure]) -> bool {
    if evidence.iter().any(|e| e.normal == figure.normal) {
        return true;
    }
    let bare = figure.normal == figure.number;
    bare && !figure.number.is_empty() && evidence.iter().any(|e| e.number == figure.number)
}

fn contact(kind: &str, value: String, start: usize, end: usize) -> Figure {
    Figure { normal: format!("{kind}:{value}"), number: String::new(), start, end }
}

/// "10, 25, 50 and 100" is a list of amounts, not a phone number.
fn looks_like_amount_list(text: &str) -> bool {
    text.contains(", ")
}

fn preceded_by_letter(text: &str, at: usize) -> bool {
    text[..at].chars().next_back().is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn normal_number(number: &str) -> String {
    let plain: String = number.chars().filter(|c| *c != ',').collect();
    match plain.split_once('.') {
        Some((whole, fraction)) if fraction.chars().all(|c| c == '0') => whole.to_owned(),
        _ => plain,
    }
}

fn currency_symbol(currency: &str) -> &'static str {
    match currency.trim().to_lowercase().as_str() {
        "usd" | "$" => "$",
        "gbp" | "£" => "£",
        _ => "€",
    }
}

/// Units reduced to one spelling: "working days" and "days" both become "day" (a qualifier changes
/// the meaning less than a wrong count does, and answers often drop it), currencies written as words
/// become their symbol.
fn normal_unit(unit: &str) -> String {
    let unit = unit.to_lowercase();
    let last = unit.split_whitespace().last().unwrap_or_default().to_owned();
    match last.as_str() {
        "%" | "percent" => "%".into(),
        "day" | "days" => "day".into(),
        "week" | "weeks" => "week".into(),
        "month" | "months" => "month".into(),
        "year" | "years" => "year".into(),
        "hour" | "hours" | "hr" | "hrs" => "hour".into(),
        "minute" | "minutes" => "minute".into(),
        "dollar" | "dollars" => "$".into(),
        "pound" | "pounds" => "£".into(),
        "euro" | "euros" => "€".into(),
        "cent" | "cents" => "cent".into(),
        _ => "pence".into(),
    }
}

/// `text` with number words ("fourteen", "Thirty") replaced by digits, and a map from positions in
/// the new text back to the original.
struct Rewritten {
    text: String,
    /// (position in `text`, position in the original) at each replacement's end, in order.
    shifts: Vec<(usize, isize)>,
}

impl Rewritten {
    fn original(&self, at: usize) -> usize {
        let shift = self.shifts.iter().take_while(|(pos, _)| *pos <= at).last().map_or(0, |(_, s)| *s);
        (at as isize + shift).max(0) as usize
    }
}

fn with_number_words_as_digits(text: &str) -> Rewritten {
    static WORD: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)\b[a-z]+(?:-[a-z]+)?\b"));
    let mut out = String::with_capacity(text.len());
    let mut shifts = Vec::new();
    let mut last = 0;
    let mut shift: isize = 0;
    for m in WORD.find_iter(text) {
        let lower = m.as_str().to_lowercase();
        let Some((_, digits)) = NUMBER_WORDS.iter().find(|(word, _)| *word == lower) else { continue };
        out.push_str(&text[last..m.start()]);
        out.push_str(digits);
        shift += m.as_str().len() as isize - digits.len() as isize;
        shifts.push((out.len(), shift));
        last = m.end();
    }
    out.push_str(&text[last..]);
    Rewritten { text: out, shifts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normals(text: &str) -> Vec<String> {
        figures(text).into_iter().map(|f| f.normal).collect()
    }

    #[test]
    fn amounts_durations_and_percentages_take_one_normal_form() {
        assert_eq!(normals("A fee of £1,000.00 or £ 4.99"), ["£1000", "£4.99"]);
        assert_eq!(normals("within 14 working days, or fourteen days"), ["14 day", "14 day"]);
        assert_eq!(normals("refunds of 100% after Thirty days"), ["100 %", "30 day"]);
        assert_eq!(normals("costs 25 euros or USD 30"), ["€25", "$30"]);
    }

    #[test]
    fn contacts_are_figures_and_markers_are_not() {
        let found = normals(
            "Call 0800 123 4567 or write to help@northwind.example.com [2], see www.Northwind.com/returns.",
        );
        assert_eq!(
            found,
            ["phone:08001234567", "mail:help@northwind.example.com", "url:northwind.com/returns"]
        );
        assert!(normals("as stated in [1] and [12]").is_empty());
    }

    #[test]
    fn a_figure_is_supported_only_by_the_same_amount_and_unit() {
        let evidence = figures("Returns are free within 30 days; express delivery costs £6.95.");
        let supported_in = |answer: &str| figures(answer).iter().all(|f| supported(f, &evidence));
        assert!(supported_in("You have thirty days and express is £6.95."));
        assert!(!supported_in("You have 60 days."));
        assert!(!supported_in("Express costs $6.95."), "another currency is another figure");
        assert!(!supported_in("You have 30 weeks."));
        assert!(supported_in("It is 30 of them."), "a bare number is found among the evidence's numbers");
    }

    #[test]
    fn positions_point_into_the_original_text() {
        let text = "Wait fourteen days, then pay £5.";
        for figure in figures(text) {
            let original = &text[figure.start..figure.end];
            assert!(original == "fourteen days" || original == "£5", "{original:?}");
        }
    }
}
