//! Scoring one generated answer against its region's house style, so `rudder prompts eval` can compare
//! steering variants on held-out examples with numbers rather than by reading transcripts.
//!
//! Every check is a deliberately simple, explainable text rule: a metric that disagrees with a human
//! reviewer must be easy to debug from the answer alone. The text is lowercased and its whitespace
//! collapsed once ([`normalize`]); all matching happens on that form, so "Sorry", "SORRY" and "sorry"
//! agree, and typographic apostrophes ("can’t") read like ASCII ones.

/// What a region's answers must look like. Kept as data ([`REGION_STYLES`]) so adding a region is one
/// table row, not new code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionStyle {
    pub region: String,
    /// The currency symbol answers must quote amounts in.
    pub currency: char,
    /// Whether American spellings count against an answer.
    pub british_spelling: bool,
    /// Whether customers have a statutory right of withdrawal (EU distance selling); the eval uses it
    /// to decide which examples must mention it.
    pub withdrawal_right: bool,
}

/// (region, currency, british_spelling, withdrawal_right).
const REGION_STYLES: &[(&str, char, bool, bool)] =
    &[("us", '$', false, false), ("uk", '£', true, false), ("eu", '€', false, true)];

impl RegionStyle {
    /// The style for a region id (`us`, `uk`, `eu`; case and surrounding space ignored), or `None` for a
    /// region nobody has described yet, so callers fail loudly instead of scoring against a wrong style.
    pub fn for_region(region: &str) -> Option<RegionStyle> {
        let region = region.trim();
        REGION_STYLES.iter().find(|(id, ..)| id.eq_ignore_ascii_case(region)).map(
            |&(id, currency, british_spelling, withdrawal_right)| RegionStyle {
                region: id.to_owned(),
                currency,
                british_spelling,
                withdrawal_right,
            },
        )
    }
}

/// The checks for one answer. Plain booleans and strings so the eval report can show *why* an answer
/// scored as it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AnswerScore {
    /// The answer quotes at least one money amount.
    pub states_amount: bool,
    /// Every quoted amount is in the region's currency (trivially true when none is quoted).
    pub currency_correct: bool,
    /// American forms found, as listed in [`SPELLINGS`]; always empty outside British-spelling regions.
    pub american_spellings: Vec<String>,
    pub apologises: bool,
    /// The first forbidden (or generic promise) phrase the answer makes without negating it.
    pub forbidden_promise: Option<String>,
    /// The answer carries at least one citation marker `[n]` with n ≥ 1.
    pub cites: bool,
    /// It cites, and every marker names one of the prompt's passages (1..=passages).
    pub citation_in_range: bool,
}

/// One currency: its symbol, the words that may follow an amount ("30 euros") and the codes that may
/// precede or follow it ("EUR 30", "30 EUR").
struct Currency {
    symbol: char,
    words: &'static [&'static str],
    codes: &'static [&'static str],
}

const CURRENCIES: &[Currency] = &[
    Currency { symbol: '$', words: &["dollar", "dollars"], codes: &["usd"] },
    Currency { symbol: '£', words: &["pound", "pounds", "sterling", "quid"], codes: &["gbp"] },
    Currency { symbol: '€', words: &["euro", "euros"], codes: &["eur"] },
];

/// Words that may sit between a number and its currency word ("30 million euros").
const SCALE_WORDS: &[&str] = &["hundred", "thousand", "million", "billion"];

/// (American, British) pairs whose American form is unambiguous in support answers. Words that are
/// correct British English in some sense (check/cheque, license as a verb, program for software,
/// practice/practise, meter) are left out on purpose: flagging them would punish correct answers.
/// Plurals and third-person forms match too (see [`phrase_starts`]), so "colors" needs no row.
pub const SPELLINGS: &[(&str, &str)] = &[
    ("color", "colour"),
    ("colored", "coloured"),
    ("favor", "favour"),
    ("favorite", "favourite"),
    ("favorable", "favourable"),
    ("behavior", "behaviour"),
    ("honor", "honour"),
    ("labor", "labour"),
    ("neighbor", "neighbour"),
    ("organize", "organise"),
    ("organized", "organised"),
    ("organization", "organisation"),
    ("realize", "realise"),
    ("realized", "realised"),
    ("apologize", "apologise"),
    ("apologized", "apologised"),
    ("apologizing", "apologising"),
    ("recognize", "recognise"),
    ("recognized", "recognised"),
    ("analyze", "analyse"),
    ("analyzed", "analysed"),
    ("customize", "customise"),
    ("customized", "customised"),
    ("personalized", "personalised"),
    ("authorize", "authorise"),
    ("authorized", "authorised"),
    ("authorization", "authorisation"),
    ("prioritize", "prioritise"),
    ("finalize", "finalise"),
    ("minimize", "minimise"),
    ("maximize", "maximise"),
    ("summarize", "summarise"),
    ("specialize", "specialise"),
    ("specialized", "specialised"),
    ("utilize", "utilise"),
    ("optimize", "optimise"),
    ("center", "centre"),
    ("theater", "theatre"),
    ("fiber", "fibre"),
    ("liter", "litre"),
    ("catalog", "catalogue"),
    ("canceled", "cancelled"),
    ("canceling", "cancelling"),
    ("labeled", "labelled"),
    ("traveled", "travelled"),
    ("traveling", "travelling"),
    ("jewelry", "jewellery"),
    ("gray", "grey"),
    ("fulfill", "fulfil"),
    ("fulfillment", "fulfilment"),
    ("enrollment", "enrolment"),
    ("installment", "instalment"),
    ("defense", "defence"),
    ("aluminum", "aluminium"),
];

/// Whole words and phrases that make an answer apologetic. "regret" alone is not here: "you won't
/// regret it" is not an apology.
const APOLOGY_PHRASES: &[&str] = &[
    "sorry",
    "apologise",
    "apologize",
    "apologised",
    "apologized",
    "apologising",
    "apologizing",
    "apology",
    "apologies",
    "we regret",
    "regrettably",
    "unfortunately",
];

/// Promises no agent may make whatever the example's own forbidden list says.
const GENERIC_PROMISES: &[&str] = &[
    "i guarantee",
    "we guarantee",
    "i can guarantee",
    "we can guarantee",
    "make an exception",
    "i promise",
    "we promise",
];

/// Words that, earlier in the same sentence, turn a forbidden phrase into a refusal ("we cannot offer a
/// full refund").
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "cannot",
    "can't",
    "unable",
    "isn't",
    "aren't",
    "won't",
    "don't",
    "doesn't",
    "didn't",
    "wouldn't",
    "couldn't",
    "shouldn't",
];

/// Words that start a new clause for negation purposes: in "we cannot make an exception, but you will
/// get a full refund" the refusal does not cover the promise after "but".
const CONTRASTS: &[&str] = &["but", "however", "although", "though", "instead", "yet"];

/// Scores one answer. `forbidden` holds the example's own forbidden phrases (any case; empty ones are
/// ignored) and `passages` the number of passages in the prompt, which bounds the citation markers.
pub fn score_answer(answer: &str, style: &RegionStyle, forbidden: &[String], passages: usize) -> AnswerScore {
    let text = normalize(answer);
    let currencies = stated_currencies(&text);
    let markers = citation_markers(answer);
    let cites = markers.iter().any(|&n| n >= 1);
    AnswerScore {
        states_amount: !currencies.is_empty(),
        currency_correct: currencies.iter().all(|&c| c == style.currency),
        american_spellings: if style.british_spelling { american_spellings(&text) } else { Vec::new() },
        apologises: APOLOGY_PHRASES.iter().any(|p| !phrase_starts(&text, &normalize(p)).is_empty()),
        forbidden_promise: forbidden_promise(&text, forbidden),
        cites,
        citation_in_range: cites && markers.iter().all(|&n| (1..=passages).contains(&n)),
    }
}

/// Running totals over a region's held-out examples; rates are shares in 0..=1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricTotals {
    british_spelling: bool,
    count: usize,
    stating_amount: usize,
    currency_correct: usize,
    without_american: usize,
    apologising: usize,
    forbidden_promises: usize,
    citing_in_range: usize,
}

impl MetricTotals {
    /// Empty totals for a region; the style decides whether spelling is measured at all.
    pub fn new(style: &RegionStyle) -> Self {
        MetricTotals {
            british_spelling: style.british_spelling,
            count: 0,
            stating_amount: 0,
            currency_correct: 0,
            without_american: 0,
            apologising: 0,
            forbidden_promises: 0,
            citing_in_range: 0,
        }
    }

    pub fn add(&mut self, score: &AnswerScore) {
        self.count += 1;
        if score.states_amount {
            self.stating_amount += 1;
            self.currency_correct += usize::from(score.currency_correct);
        }
        self.without_american += usize::from(score.american_spellings.is_empty());
        self.apologising += usize::from(score.apologises);
        self.forbidden_promises += usize::from(score.forbidden_promise.is_some());
        self.citing_in_range += usize::from(score.citation_in_range);
    }

    /// Answers added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Share of the answers quoting an amount that quote only the region's currency; `None` when no
    /// answer quoted one, since 100% of nothing would flatter a variant that never states prices.
    pub fn currency_correctness(&self) -> Option<f64> {
        (self.stating_amount > 0).then(|| share(self.currency_correct, self.stating_amount))
    }

    /// Share of answers free of American spellings; `None` where the region does not ask for British
    /// spelling.
    pub fn british_spelling(&self) -> Option<f64> {
        self.british_spelling.then(|| share(self.without_american, self.count))
    }

    /// Share of answers that apologise (0 with no answers, like the other plain rates).
    pub fn apology_rate(&self) -> f64 {
        share(self.apologising, self.count)
    }

    /// Share of answers making a forbidden promise: lower is better.
    pub fn forbidden_promise_rate(&self) -> f64 {
        share(self.forbidden_promises, self.count)
    }

    /// Share of answers that cite with every marker in range.
    pub fn citation_rate(&self) -> f64 {
        share(self.citing_in_range, self.count)
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Lowercases, reads typographic apostrophes as `'`, and collapses each whitespace run to one space, or
/// to one newline when the run holds a line break (a line break ends a sentence for negation).
fn normalize(text: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len());
    let mut pending: Option<char> = None;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() {
            let here = if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') { '\n' } else { ' ' };
            pending = Some(if pending == Some('\n') { '\n' } else { here });
            continue;
        }
        if let Some(ws) = pending.take()
            && !out.is_empty()
        {
            out.push(ws);
        }
        out.push(match c {
            '\u{2018}' | '\u{2019}' | '\u{02bc}' => '\'',
            c => c,
        });
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Start indices of `phrase` in `text` as whole words: no letter or digit right before it, and none
/// right after it except a single plural/third-person `s` ("full refunds", "colors", "apologizes").
/// A space in the phrase matches a space or a line break.
fn phrase_starts(text: &[char], phrase: &[char]) -> Vec<usize> {
    if phrase.is_empty() || phrase.len() > text.len() {
        return Vec::new();
    }
    let boundary_at = |i: usize| text.get(i).is_none_or(|&c| !is_word_char(c));
    (0..=text.len() - phrase.len())
        .filter(|&start| start == 0 || !is_word_char(text[start - 1]))
        .filter(|&start| {
            phrase
                .iter()
                .zip(&text[start..])
                .all(|(&p, &t)| if p == ' ' { t.is_whitespace() } else { p == t })
        })
        .filter(|&start| {
            let end = start + phrase.len();
            boundary_at(end) || (text.get(end) == Some(&'s') && boundary_at(end + 1))
        })
        .collect()
}

fn word_at(text: &[char], start: usize) -> String {
    text[start..].iter().take_while(|&&c| c.is_alphabetic()).collect()
}

/// The currency symbol of every money amount in the text: a symbol or code right before a number
/// (`$25`, `€ 30`, `usd 30`), or a symbol, code or currency word right after it (`30€`, `30 eur`,
/// `30 euros`, `30 million euros`). An amount marked twice (`$25 usd`) is listed twice, so mixed
/// markings (`$25 euros`) count as wrong for every region.
fn stated_currencies(text: &[char]) -> Vec<char> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts_number = text[i].is_ascii_digit() && (i == 0 || !is_word_char(text[i - 1]));
        if !starts_number {
            i += 1;
            continue;
        }
        let end = number_end(text, i);
        found.extend(currency_before(text, i));
        found.extend(currency_after(text, end));
        i = end.max(i + 1);
    }
    found
}

/// End of the number starting at `start`: digits, with `.` or `,` only between digits ("1,299.99").
fn number_end(text: &[char], start: usize) -> usize {
    let mut end = start;
    while end < text.len() {
        let c = text[end];
        let separator_between_digits =
            matches!(c, '.' | ',') && text.get(end + 1).is_some_and(char::is_ascii_digit);
        if !(c.is_ascii_digit() || separator_between_digits) {
            break;
        }
        end += 1;
    }
    end
}

fn currency_before(text: &[char], number_start: usize) -> Option<char> {
    let mut k = number_start;
    while k > 0 && text[k - 1] == ' ' {
        k -= 1;
    }
    let before = *text.get(k.checked_sub(1)?)?;
    if let Some(currency) = CURRENCIES.iter().find(|c| c.symbol == before) {
        return Some(currency.symbol);
    }
    let word_start = text[..k].iter().rposition(|&c| !c.is_alphabetic()).map_or(0, |p| p + 1);
    let word = word_at(text, word_start);
    CURRENCIES.iter().find(|c| c.codes.contains(&word.as_str())).map(|c| c.symbol)
}

fn currency_after(text: &[char], number_end: usize) -> Option<char> {
    let skip_gap = |mut k: usize| {
        while text.get(k).is_some_and(|&c| c == ' ' || c == '-') {
            k += 1;
        }
        k
    };
    let mut k = skip_gap(number_end);
    let next = *text.get(k)?;
    if let Some(currency) = CURRENCIES.iter().find(|c| c.symbol == next) {
        return Some(currency.symbol);
    }
    let mut word = word_at(text, k);
    if SCALE_WORDS.contains(&word.as_str()) {
        k = skip_gap(k + word.chars().count());
        word = word_at(text, k);
    }
    if text.get(k + word.chars().count()).is_some_and(|&c| is_word_char(c)) {
        return None;
    }
    CURRENCIES
        .iter()
        .find(|c| c.words.contains(&word.as_str()) || c.codes.contains(&word.as_str()))
        .map(|c| c.symbol)
}

/// American forms present, in table order, each once.
fn american_spellings(text: &[char]) -> Vec<String> {
    SPELLINGS
        .iter()
        .filter(|(american, _)| !phrase_starts(text, &normalize(american)).is_empty())
        .map(|(american, _)| (*american).to_owned())
        .collect()
}

/// The first phrase of the example's list, then of [`GENERIC_PROMISES`], that occurs un-negated.
fn forbidden_promise(text: &[char], forbidden: &[String]) -> Option<String> {
    let candidates = forbidden.iter().map(String::as_str).chain(GENERIC_PROMISES.iter().copied());
    for phrase in candidates {
        let needle = normalize(phrase);
        if phrase_starts(text, &needle).into_iter().any(|start| !negated_before(text, start)) {
            return Some(phrase.trim().to_owned());
        }
    }
    None
}

/// Whether a negation word precedes `start` in its sentence (after the last contrast word such as
/// "but"). Sentences end at a line break, `;`, or `.`/`!`/`?` followed by a space, so "£4.99" does not
/// split one.
fn negated_before(text: &[char], start: usize) -> bool {
    let sentence_start = (0..start)
        .rev()
        .find(|&i| {
            let c = text[i];
            c == '\n'
                || c == ';'
                || (matches!(c, '.' | '!' | '?') && text.get(i + 1).is_some_and(|c| c.is_whitespace()))
        })
        .map_or(0, |i| i + 1);
    let prefix: String = text[sentence_start..start].iter().collect();
    let words: Vec<&str> =
        prefix.split(|c: char| !(is_word_char(c) || c == '\'')).filter(|w| !w.is_empty()).collect();
    let clause_start = words.iter().rposition(|w| CONTRASTS.contains(w)).map_or(0, |p| p + 1);
    words[clause_start..].iter().any(|w| NEGATIONS.contains(w))
}

/// Numbers in citation markers: `[3]`, and lists such as `[1, 2]`. Bracketed text that is not a list of
/// integers (markdown links, `[^1]` footnotes) is no marker. `[0]` is a marker, but out of range; a number
/// too large for `usize` reads as `usize::MAX`, out of range as well.
fn citation_markers(answer: &str) -> Vec<usize> {
    let mut markers = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find([']', '[']) else { break };
        if rest[close..].starts_with('[') {
            continue;
        }
        let inside = &rest[..close];
        let numbers: Vec<&str> = inside.split(',').map(str::trim).collect();
        if numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            markers.extend(numbers.iter().map(|n| n.parse::<usize>().unwrap_or(usize::MAX)));
        }
        rest = &rest[close + 1..];
    }
    markers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(region: &str) -> RegionStyle {
        RegionStyle::for_region(region).unwrap()
    }

    fn score(answer: &str, region: &str) -> AnswerScore {
        score_answer(answer, &style(region), &[], 2)
    }

    fn forbidden(answer: &str, phrases: &[&str]) -> Option<String> {
        let phrases: Vec<String> = phrases.iter().map(|p| (*p).to_owned()).collect();
        score_answer(answer, &style("us"), &phrases, 2).forbidden_promise
    }

    #[test]
    fn region_styles_are_the_documented_table() {
        let uk = style("uk");
        assert_eq!(
            (uk.region.as_str(), uk.currency, uk.british_spelling, uk.withdrawal_right),
            ("uk", '£', true, false)
        );
        let eu = style(" EU ");
        assert_eq!(
            (eu.region.as_str(), eu.currency, eu.british_spelling, eu.withdrawal_right),
            ("eu", '€', false, true)
        );
        let us = style("us");
        assert_eq!((us.currency, us.british_spelling, us.withdrawal_right), ('$', false, false));
        assert_eq!(RegionStyle::for_region("de"), None);
        assert_eq!(RegionStyle::for_region(""), None);
    }

    #[test]
    fn pound_amount_is_right_for_uk_and_dollar_is_wrong() {
        let pounds = score("The fee is £4.99 per parcel.", "uk");
        assert!(pounds.states_amount && pounds.currency_correct);
        let dollars = score("The fee is $4.99 per parcel.", "uk");
        assert!(dollars.states_amount && !dollars.currency_correct);
        assert!(score("The fee is $4.99 per parcel.", "us").currency_correct);
    }

    #[test]
    fn euro_symbol_may_follow_the_number_or_be_spaced() {
        for answer in ["It costs 30 € to return.", "It costs 30€.", "It costs € 30.", "It costs €1,299.50."]
        {
            let s = score(answer, "eu");
            assert!(s.states_amount && s.currency_correct, "{answer}");
            assert!(!score(answer, "us").currency_correct, "{answer}");
        }
    }

    #[test]
    fn currency_words_and_codes_count_as_amounts() {
        assert!(score("You will be charged 25 dollars.", "us").currency_correct);
        assert!(!score("You will be charged 25 dollars.", "uk").currency_correct);
        assert!(score("That is 10 pounds sterling.", "uk").currency_correct);
        assert!(score("A fee of GBP 10 applies.", "uk").currency_correct);
        assert!(score("A fee of 10 EUR applies.", "eu").currency_correct);
        assert!(score("Fines reach 2 million euros.", "eu").currency_correct);
        assert!(score("A 5-euro voucher.", "eu").states_amount);
    }

    #[test]
    fn one_wrong_amount_among_right_ones_is_wrong() {
        let s = score("Shipping is £3.50, or $5 for express.", "uk");
        assert!(s.states_amount && !s.currency_correct);
    }

    #[test]
    fn no_amount_is_trivially_correct_and_not_stated() {
        let s = score("Returns are accepted within 30 days; see [1]. Order 12345 shipped.", "uk");
        assert!(!s.states_amount && s.currency_correct);
    }

    #[test]
    fn plain_numbers_and_bare_symbols_are_not_amounts() {
        assert!(!score("Call us at 0800 123 456 within 14 days.", "us").states_amount);
        assert!(!score("Prices are shown in $ on the site.", "us").states_amount);
        assert!(!score("It weighs 30 pounds2 or so.", "us").states_amount);
        assert!(!score("Model a4 euros", "eu").states_amount);
    }

    #[test]
    fn american_spellings_found_as_whole_words_in_british_regions_only() {
        let text = "We apologize: your Color choice was canceled. Our centers realize this.";
        let uk = score(text, "uk");
        assert_eq!(uk.american_spellings, ["color", "realize", "apologize", "center", "canceled"]);
        assert!(score(text, "us").american_spellings.is_empty());
        assert!(score(text, "eu").american_spellings.is_empty());
    }

    #[test]
    fn british_forms_and_words_containing_american_ones_are_fine() {
        let s = score(
            "Your colour was cancelled; the grey jewellery is in the centre. Discolored? Graying?",
            "uk",
        );
        assert!(s.american_spellings.is_empty(), "{:?}", s.american_spellings);
    }

    #[test]
    fn apology_needs_a_whole_word() {
        assert!(score("Sorry about that.", "us").apologises);
        assert!(score("We APOLOGISE for the delay.", "us").apologises);
        assert!(score("Please accept our apologies.", "us").apologises);
        assert!(score("We regret the inconvenience.", "us").apologises);
        assert!(score("Unfortunately the item is gone.", "us").apologises);
        assert!(!score("Much sorrow in this sorryish world.", "us").apologises);
        assert!(!score("You won't regret it.", "us").apologises);
        assert!(!score("He was apologetic.", "us").apologises);
    }

    #[test]
    fn forbidden_phrase_stated_plainly_is_a_promise() {
        assert_eq!(
            forbidden("You will get a Full Refund today.", &["full refund"]).as_deref(),
            Some("full refund")
        );
        assert_eq!(forbidden("Full refunds are issued.", &["full refund"]).as_deref(), Some("full refund"));
    }

    #[test]
    fn negated_forbidden_phrase_is_not_a_promise() {
        for answer in [
            "We cannot offer a full refund.",
            "We can’t offer a full refund for opened items.",
            "Sorry, we are unable to give a full refund.",
            "This order isn't eligible for a full refund.",
            "No full refund is possible here.",
            "We don't make an exception for late returns.",
        ] {
            assert_eq!(forbidden(answer, &["full refund"]), None, "{answer}");
        }
    }

    #[test]
    fn negation_stops_at_the_sentence_and_at_but() {
        assert!(forbidden("We cannot ship today. You will get a full refund.", &["full refund"]).is_some());
        assert!(forbidden("Not today;\nyou will get a full refund", &["full refund"]).is_some());
        assert!(
            forbidden("We cannot repair it, but you will get a full refund.", &["full refund"]).is_some()
        );
        // A decimal point does not end the sentence.
        assert!(forbidden("We cannot refund £4.99 as a full refund.", &["full refund"]).is_none());
        // A negation after the phrase does not cover it.
        assert!(forbidden("You get a full refund, no questions asked.", &["full refund"]).is_some());
    }

    #[test]
    fn generic_promises_count_without_being_listed() {
        assert_eq!(forbidden("I'll make an exception for you.", &[]).as_deref(), Some("make an exception"));
        assert_eq!(forbidden("We guarantee delivery by Friday.", &[]).as_deref(), Some("we guarantee"));
        assert_eq!(
            forbidden("We cannot guarantee delivery; I promise to check.", &[]).as_deref(),
            Some("i promise")
        );
        assert_eq!(forbidden("We cannot make an exception or guarantee anything.", &[]), None);
    }

    #[test]
    fn example_list_comes_first_and_empty_phrases_are_ignored() {
        let answer = "I promise you a full refund.";
        assert_eq!(forbidden(answer, &["", "  ", "full refund"]).as_deref(), Some("full refund"));
        assert_eq!(forbidden("Nothing to see.", &["", " "]), None);
    }

    #[test]
    fn citations_in_and_out_of_range() {
        let ok = score_answer("Returns take 14 days [1][2].", &style("us"), &[], 2);
        assert!(ok.cites && ok.citation_in_range);
        let out = score_answer("Returns take 14 days [1][3].", &style("us"), &[], 2);
        assert!(out.cites && !out.citation_in_range);
        let list = score_answer("See [1, 2].", &style("us"), &[], 2);
        assert!(list.cites && list.citation_in_range);
        let none = score_answer("Returns take 14 days.", &style("us"), &[], 2);
        assert!(!none.cites && !none.citation_in_range);
        let zero = score_answer("See [0].", &style("us"), &[], 2);
        assert!(!zero.cites && !zero.citation_in_range);
        let huge = score_answer("See [1][99999999999999999999999].", &style("us"), &[], 2);
        assert!(huge.cites && !huge.citation_in_range);
        let no_passages = score_answer("See [1].", &style("us"), &[], 0);
        assert!(no_passages.cites && !no_passages.citation_in_range);
    }

    #[test]
    fn non_numeric_brackets_are_not_citations() {
        for answer in ["See [the policy](https://x).", "Note[^1].", "[]", "[a1]", "[[1]", "unclosed [1"] {
            let s = score_answer(answer, &style("us"), &[], 2);
            assert_eq!(s.cites, answer == "[[1]", "{answer}");
        }
    }

    #[test]
    fn totals_compute_rates_over_the_right_denominators() {
        let uk = style("uk");
        let mut totals = MetricTotals::new(&uk);
        assert_eq!(totals.count(), 0);
        assert_eq!(totals.currency_correctness(), None);
        assert_eq!(totals.apology_rate(), 0.0);
        for answer in [
            "Sorry, it costs £5 [1].",
            "It costs $5 [3].",
            "Your color is ready [2].",
            "We will make an exception.",
        ] {
            totals.add(&score_answer(answer, &uk, &[], 2));
        }
        assert_eq!(totals.count(), 4);
        assert_eq!(totals.currency_correctness(), Some(0.5));
        assert_eq!(totals.british_spelling(), Some(0.75));
        assert_eq!(totals.apology_rate(), 0.25);
        assert_eq!(totals.forbidden_promise_rate(), 0.25);
        assert_eq!(totals.citation_rate(), 0.5);
    }

    #[test]
    fn totals_skip_spelling_outside_british_regions() {
        let mut totals = MetricTotals::new(&style("us"));
        totals.add(&score("Your color is ready.", "us"));
        assert_eq!(totals.british_spelling(), None);
        assert_eq!(totals.currency_correctness(), None);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for answer in ["", " ", "$", "€", "[", "]", "1", "İstanbul £", "\u{0}", "…30…€", "x\r\n\r\ny"]
        {
            let _ = score_answer(answer, &style("uk"), &["İ".to_owned(), "£".to_owned()], 1);
        }
    }
}
