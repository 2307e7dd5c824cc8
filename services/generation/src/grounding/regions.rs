//! Which region a sentence is about. A document shared by several regions often states each
//! region's rule side by side ("US gift cards are valid for 5 years. UK gift cards are valid for 24
//! months."); quoting the wrong one is the worst kind of answer, a confident wrong figure. In such a
//! document, a sentence that names another region and not the asker's is therefore never evidence.
//! A document of one region was written for that region's customers, and is left alone. Regions are
//! named as the server's `generation.region_names` says; names match as whole words, case and all
//! ("US", not "us").

use std::collections::BTreeMap;

use rudder_core::Passage;

/// How each region (by its code) is named in policy text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionNames {
    names: BTreeMap<String, Vec<String>>,
}

impl RegionNames {
    pub fn new(names: BTreeMap<String, Vec<String>>) -> Self {
        let names = names
            .into_iter()
            .map(|(region, names)| {
                (
                    rudder_core::names::region(&region),
                    names.into_iter().filter(|n| !n.trim().is_empty()).collect(),
                )
            })
            .collect();
        Self { names }
    }

    /// The filter for a customer of `region`.
    pub fn audience(&self, region: &str) -> Audience<'_> {
        Audience { region: rudder_core::names::region(region), names: self }
    }

    /// The regions `text` names.
    fn named_in(&self, text: &str) -> Vec<&str> {
        self.names
            .iter()
            .filter(|(_, names)| names.iter().any(|name| names_whole_word(text, name)))
            .map(|(region, _)| region.as_str())
            .collect()
    }
}

/// A customer's region, against which sentences are checked.
#[derive(Debug, Clone)]
pub struct Audience<'a> {
    region: String,
    names: &'a RegionNames,
}

impl Audience<'_> {
    /// Whether `sentence` of `passage` is about other regions only: the passage's document covers
    /// several regions, and the sentence names some region and not the customer's. A sentence
    /// naming none is judged by its headings (the document title and section).
    pub fn excludes(&self, sentence: &str, passage: &Passage) -> bool {
        if passage.regions.len() < 2 {
            return false;
        }
        let mut named = self.names.named_in(sentence);
        if named.is_empty() {
            named = self.names.named_in(&passage.headings());
        }
        !named.is_empty() && !named.contains(&self.region.as_str())
    }
}

/// Whether `name` stands in `text` as a whole word (no letter or digit right before or after it).
fn names_whole_word(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> RegionNames {
        RegionNames::new(BTreeMap::from([
            ("us".to_owned(), vec!["United States".to_owned(), "US".to_owned()]),
            ("uk".to_owned(), vec!["United Kingdom".to_owned(), "UK".to_owned()]),
            ("EU".to_owned(), vec!["European Union".to_owned(), "EU".to_owned()]),
        ]))
    }

    fn shared(title: &str, section: &str) -> Passage {
        Passage {
            title: title.into(),
            heading_path: vec![section.into()],
            regions: vec!["us".into(), "uk".into(), "eu".into()],
            ..Passage::default()
        }
    }

    #[test]
    fn a_sentence_about_another_region_only_is_excluded() {
        let names = names();
        let uk = names.audience("uk");
        let cards = shared("Gift Cards", "Validity");
        assert!(uk.excludes("US gift cards are valid for at least 5 years.", &cards));
        assert!(!uk.excludes("UK gift cards are valid for 24 months.", &cards));
        assert!(!uk.excludes("A US gift card cannot be used in the UK or the EU.", &cards));
        assert!(!uk.excludes("Let us know within 14 days.", &cards), "'us' is not 'US'");
        let eu = names.audience("eu");
        let privacy = shared("Privacy (United Kingdom and European Union)", "Complaints");
        assert!(eu.excludes("In the United Kingdom you may complain to the ICO.", &privacy));
        assert!(!eu.excludes("Under Directive 2011/83/EU you may withdraw.", &privacy));
    }

    #[test]
    fn a_sentence_naming_no_region_is_judged_by_its_headings() {
        let names = names();
        let eu = names.audience("eu");
        assert!(eu.excludes("They are valid for 24 months.", &shared("Gift Cards", "United Kingdom")));
        assert!(!eu.excludes("They are valid for 3 years.", &shared("Gift Cards", "European Union")));
        assert!(!eu.excludes("Refunds take 14 days.", &shared("Refunds", "Timing")));
        assert!(
            !RegionNames::default().audience("eu").excludes("UK cards last 24 months.", &shared("Cards", ""))
        );
    }

    #[test]
    fn a_document_of_one_region_is_left_alone() {
        let names = names();
        let terms = Passage { title: "Taxes".into(), regions: vec!["us".into()], ..Passage::default() };
        assert!(!names.audience("us").excludes("We collect VAT on sales to EU-based customers.", &terms));
    }
}
