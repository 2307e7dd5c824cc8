//! What kind of fact a question asks for ("how long" wants a time, "how much" an amount, "what's
//! the email" a contact), and whether a sentence states one. A sentence that states the kind of
//! fact asked for is more likely the answer than a sentence that only shares the topic: "when is
//! my money coming" is answered by "within 3 business days", not by "refunds go to the original
//! payment method".

use super::figures::figures;

/// The kind of fact a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asks {
    /// A duration, a deadline, a date or a time of day.
    Time,
    /// A price, fee or amount of money.
    Amount,
    /// An e-mail address, phone number or web address.
    Contact,
}

/// Phrases that ask for each kind, matched on the lower-cased question with words bounded.
const TIME_CUES: &[&str] = &[
    "how long",
    "how soon",
    "how fast",
    "how quickly",
    "how many days",
    "how many weeks",
    "how many months",
    "how much time",
    "how much warning",
    "how much notice",
    "when",
    "what time",
    "last day",
    "deadline",
    "until",
    "till",
    "by what date",
];
const AMOUNT_CUES: &[&str] =
    &["cost", "costs", "price", "fee", "fees", "charge", "charged", "what do i pay", "worth"];
/// "How much" asks for an amount unless it asks for time ("how much warning").
const HOW_MUCH_OF_TIME: &[&str] = &["how much time", "how much warning", "how much notice"];
const CONTACT_CUES: &[&str] = &[
    "email",
    "e-mail",
    "email address",
    "phone",
    "phone number",
    "number to call",
    "call you",
    "website",
    "link",
    "url",
];

/// The kinds of fact `question` asks for (none when it asks for none in particular).
pub fn asks(question: &str) -> Vec<Asks> {
    let text = format!(" {} ", normalise(question));
    let has = |cues: &[&str]| cues.iter().any(|cue| text.contains(&format!(" {cue} ")));
    let amount = has(AMOUNT_CUES) || (has(&["how much"]) && !has(HOW_MUCH_OF_TIME));
    [(Asks::Time, has(TIME_CUES)), (Asks::Amount, amount), (Asks::Contact, has(CONTACT_CUES))]
        .into_iter()
        .filter_map(|(kind, asked)| asked.then_some(kind))
        .collect()
}

/// Whether `sentence` states a fact of `kind`.
pub fn states(sentence: &str, kind: Asks) -> bool {
    let found = figures(sentence);
    match kind {
        Asks::Time => {
            found.iter().any(|f| TIME_UNITS.iter().any(|unit| f.normal.ends_with(unit)))
                || names_a_date_or_clock_time(sentence)
        }
        Asks::Amount => found.iter().any(|f| f.normal.starts_with(['$', '£', '€'])) || says_free(sentence),
        Asks::Contact => {
            found.iter().any(|f| ["mail:", "phone:", "url:"].iter().any(|p| f.normal.starts_with(p)))
        }
    }
}

const TIME_UNITS: [&str; 6] = [" day", " week", " month", " year", " hour", " minute"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn names_a_date_or_clock_time(sentence: &str) -> bool {
    let text = normalise(sentence);
    let words: Vec<&str> = text.split(' ').collect();
    let is_number = |w: &&str| w.chars().next().is_some_and(|c| c.is_ascii_digit());
    words.windows(2).any(|pair| {
        (MONTHS.contains(&pair[0]) && is_number(&pair[1]))
            || (is_number(&pair[0])
                && (MONTHS.contains(&pair[1]) || matches!(pair[1], "am" | "pm" | "a.m" | "p.m")))
    })
}

/// "Returns are free", "free of charge", "no fee": the amount is nothing.
fn says_free(sentence: &str) -> bool {
    let text = format!(" {} ", normalise(sentence));
    [" free ", " no fee ", " no charge ", " not charge ", " no cost "].iter().any(|cue| text.contains(cue))
}

/// Lower-cased, apostrophes kept, other punctuation as spaces, blanks collapsed.
fn normalise(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '-' | '.')))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_ask_for_a_time_an_amount_or_a_contact() {
        assert_eq!(asks("so you got my return... now what, when is my money coming"), [Asks::Time]);
        assert_eq!(asks("how much is overnight shipping to chicago"), [Asks::Amount]);
        assert_eq!(asks("how much warning do we get"), [Asks::Time]);
        assert_eq!(asks("whats the email for warranty claims"), [Asks::Contact]);
        assert!(asks("can i return boots i wore once?").is_empty());
    }

    #[test]
    fn sentences_state_times_amounts_and_contacts() {
        assert!(states("We issue a refund within 3 business days.", Asks::Time));
        assert!(states("Items bought in December may be returned until January 31.", Asks::Time));
        assert!(!states("Refunds go to the original payment method.", Asks::Time));
        assert!(states("Express costs $34.95.", Asks::Amount));
        assert!(states("Returns by Royal Mail are free of charge.", Asks::Amount));
        assert!(!states("Express arrives in 2 days.", Asks::Amount));
        assert!(states("Email guarantee@example.com with photos.", Asks::Contact));
    }
}
