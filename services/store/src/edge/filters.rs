//! Translating rudder's [`SearchFilter`] and document selections into qdrant-edge `Filter`s. Region
//! (and brand, tags, documents, current version) isolation is expressed here, as conditions of the
//! engine's query, so it is enforced by the same code that ranks: nothing is filtered in Rust after.

use super::EDGE;
use crate::common::{check_region, fields};
use qdrant_edge::{
    AnyVariants, Condition, FieldCondition, Filter, IsEmptyCondition, JsonPath, Match, ValueVariants,
};
use rudder_core::{StoreError, store::SearchFilter};

/// A payload key as the engine spells it. Keys are rudder's constants, so a failure is a bug, but
/// it still surfaces as an error, not a panic.
pub(super) fn key(name: &str) -> Result<JsonPath, StoreError> {
    JsonPath::try_from(name).map_err(|_| StoreError::Backend {
        backend: EDGE,
        operation: "build a filter",
        reason: format!("{name:?} is not a valid payload key"),
    })
}

fn keyword(field: &str, value: &str) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(
        key(field)?,
        Match::new_value(ValueVariants::String(value.to_owned())),
    )))
}

fn any_keyword(field: &str, values: &[String]) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(
        key(field)?,
        Match::new_any(AnyVariants::Strings(values.iter().cloned().collect())),
    )))
}

fn flag(field: &str, value: bool) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(key(field)?, Match::new_value(ValueVariants::Bool(value)))))
}

fn all_of(must: Vec<Condition>, must_not: Vec<Condition>) -> Filter {
    Filter {
        should: None,
        min_should: None,
        must: (!must.is_empty()).then_some(must),
        must_not: (!must_not.is_empty()).then_some(must_not),
    }
}

/// The engine filter of a search. Refuses an empty region: a search without one would cross regions.
pub(super) fn search_filter(filter: &SearchFilter) -> Result<Filter, StoreError> {
    let SearchFilter { region, brand, tags, doc_ids, current_only } = filter;
    check_region(region)?;
    // `regions` is a list: a keyword match on it matches when any element equals the region.
    let mut must = vec![keyword(fields::REGIONS, region)?];
    if let Some(brand) = brand {
        // A document without a brand applies to every brand.
        let brand_or_none = Filter {
            should: Some(vec![
                keyword(fields::BRAND, brand)?,
                Condition::IsEmpty(IsEmptyCondition::from(key(fields::BRAND)?)),
            ]),
            min_should: None,
            must: None,
            must_not: None,
        };
        must.push(Condition::Filter(brand_or_none));
    }
    if !tags.is_empty() {
        must.push(any_keyword(fields::TAGS, tags)?);
    }
    if !doc_ids.is_empty() {
        must.push(any_keyword(fields::DOC_ID, doc_ids)?);
    }
    if *current_only {
        must.push(flag(fields::CURRENT, true)?);
    }
    Ok(all_of(must, Vec::new()))
}

/// Every point of `doc_id`, or every point of it except those of `keep_version`.
pub(super) fn document(doc_id: &str, keep_version: Option<&str>) -> Result<Filter, StoreError> {
    let must_not = match keep_version {
        Some(version) => vec![keyword(fields::VERSION, version)?],
        None => Vec::new(),
    };
    Ok(all_of(vec![keyword(fields::DOC_ID, doc_id)?], must_not))
}

/// Points of `doc_id` at exactly `version`.
pub(super) fn document_version(doc_id: &str, version: &str) -> Result<Filter, StoreError> {
    Ok(all_of(vec![keyword(fields::DOC_ID, doc_id)?, keyword(fields::VERSION, version)?], Vec::new()))
}
