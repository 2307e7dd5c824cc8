//! Translating rudder's [`SearchFilter`] and document selections into Qdrant server `Filter`s: the
//! same conditions as the embedded backend's (`edge::filters`), in qdrant-client's gRPC types. Region
//! (and brand, tags, documents, current version) isolation is a condition of the server's query, so
//! it is enforced where ranking happens: nothing is filtered in Rust after.

use crate::common::{check_region, fields};
use qdrant_client::qdrant::{Condition, Filter, RepeatedStrings, r#match::MatchValue};
use rudder_core::{StoreError, store::SearchFilter};

/// An exact keyword match. Built as `MatchValue::Keyword` explicitly: qdrant-client's
/// `From<String>` turns a value with whitespace into a full-text match.
fn keyword(field: &str, value: &str) -> Condition {
    Condition::matches(field, MatchValue::Keyword(value.to_owned()))
}

fn any_keyword(field: &str, values: &[String]) -> Condition {
    Condition::matches(field, MatchValue::Keywords(RepeatedStrings { strings: values.to_vec() }))
}

fn flag(field: &str, value: bool) -> Condition {
    Condition::matches(field, MatchValue::Boolean(value))
}

fn all_of(must: Vec<Condition>, must_not: Vec<Condition>) -> Filter {
    Filter { must, must_not, ..Filter::default() }
}

/// The server filter of a search. Refuses an empty region: a search without one would cross regions.
pub(super) fn search_filter(filter: &SearchFilter) -> Result<Filter, StoreError> {
    let SearchFilter { region, brand, tags, doc_ids, current_only } = filter;
    check_region(region)?;
    // `regions` is a list: a keyword match on it matches when any element equals the region.
    let mut must = vec![keyword(fields::REGIONS, region)];
    if let Some(brand) = brand {
        // A document without a brand applies to every brand.
        let brand_or_none =
            Filter::should([keyword(fields::BRAND, brand), Condition::is_empty(fields::BRAND)]);
        must.push(Condition::from(brand_or_none));
    }
    if !tags.is_empty() {
        must.push(any_keyword(fields::TAGS, tags));
    }
    if !doc_ids.is_empty() {
        must.push(any_keyword(fields::DOC_ID, doc_ids));
    }
    if *current_only {
        must.push(flag(fields::CURRENT, true));
    }
    Ok(all_of(must, Vec::new()))
}

/// Every point of `doc_id`, or every point of it except those of `keep_version`.
pub(super) fn document(doc_id: &str, keep_version: Option<&str>) -> Filter {
    let must_not = match keep_version {
        Some(version) => vec![keyword(fields::VERSION, version)],
        None => Vec::new(),
    };
    all_of(vec![keyword(fields::DOC_ID, doc_id)], must_not)
}

/// Points of `doc_id` at exactly `version`.
pub(super) fn document_version(doc_id: &str, version: &str) -> Filter {
    all_of(vec![keyword(fields::DOC_ID, doc_id), keyword(fields::VERSION, version)], Vec::new())
}
