//! Generation's request rules, the only place they live: a wire `GenerateRequest` becomes a
//! [`ValidGenerate`] here, once, and deeper code never re-checks it.

use rudder_core::{Bundle, ServiceError, passage::PassageQuery};
use rudder_llm::{Message, Role};
use rudder_proto::v1;

use crate::{SamplingParams, grounding::GroundingMode};

/// Longest question accepted, in characters (about 1,000 tokens).
pub const MAX_QUESTION_CHARS: usize = 4000;
pub const MAX_STOP_SEQUENCES: usize = 8;
/// Earlier turns a request may carry: a support conversation's recent context, not its archive.
pub const MAX_HISTORY_TURNS: usize = 32;
pub const DEFAULT_TOP_K: u32 = 5;
pub const MAX_TOP_K: u32 = 20;

/// A generate request that passed validation; deeper code never re-checks these.
#[derive(Debug, Clone)]
pub struct ValidGenerate {
    pub question: String,
    pub region: String,
    pub brand: Option<String>,
    pub history: Vec<Message>,
    pub passages: Vec<rudder_core::Passage>,
    pub top_k: u32,
    pub mode: rudder_core::store::SearchMode,
    pub tags: Vec<String>,
    pub min_score: Option<f32>,
    pub sampling: v1::SamplingParams,
    pub bundle_version: Option<u32>,
    pub allow_without_passages: bool,
    pub request_id: String,
    pub conversation_id: String,
    /// None: the server's configured mode.
    pub grounding: Option<GroundingMode>,
}

impl ValidGenerate {
    pub fn new(request: v1::GenerateRequest, context_length: usize) -> Result<Self, ServiceError> {
        let v1::GenerateRequest {
            question,
            region,
            brand,
            conversation_id,
            history,
            passages,
            retrieval,
            sampling,
            bundle_version,
            allow_without_passages,
            request_id,
            grounding,
        } = request;
        let question = question.trim().to_owned();
        if question.is_empty() {
            return Err(ServiceError::invalid("question", "must not be empty"));
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(ServiceError::invalid(
                "question",
                format!("is longer than {MAX_QUESTION_CHARS} characters"),
            ));
        }
        let region = rudder_core::names::region(&region);
        if region.is_empty() {
            return Err(ServiceError::invalid("region", "must be set (e.g. \"us\", \"uk\", \"eu\")"));
        }
        if history.len() > MAX_HISTORY_TURNS {
            return Err(ServiceError::invalid(
                "history",
                format!("has {} turns; at most {MAX_HISTORY_TURNS} (send the latest ones)", history.len()),
            ));
        }
        let history = history
            .into_iter()
            .enumerate()
            .map(|(i, turn)| {
                if turn.content.chars().count() > MAX_QUESTION_CHARS {
                    return Err(ServiceError::invalid(
                        format!("history[{i}].content"),
                        format!("is longer than {MAX_QUESTION_CHARS} characters"),
                    ));
                }
                let role = match v1::ChatRole::try_from(turn.role) {
                    Ok(v1::ChatRole::User) => Role::User,
                    Ok(v1::ChatRole::Assistant) => Role::Assistant,
                    _ => {
                        return Err(ServiceError::invalid(
                            format!("history[{i}].role"),
                            "must be USER or ASSISTANT",
                        ));
                    }
                };
                Ok(Message::new(role, turn.content))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let retrieval = retrieval.unwrap_or_default();
        let v1::RetrievalOptions { top_k, mode, tags, min_score } = retrieval;
        let mode = rudder_proto::convert::search_mode(mode).ok_or_else(|| {
            ServiceError::invalid("retrieval.mode", format!("unknown retrieval mode {mode}"))
        })?;
        if min_score.is_some_and(|s| !s.is_finite()) {
            return Err(ServiceError::invalid("retrieval.min_score", "must be a finite number"));
        }
        if top_k > MAX_TOP_K {
            return Err(ServiceError::invalid(
                "retrieval.top_k",
                format!("must be 0 (default {DEFAULT_TOP_K}) to {MAX_TOP_K}"),
            ));
        }
        let sampling = sampling.unwrap_or_default();
        validate_sampling(&sampling, context_length)?;
        if bundle_version == Some(0) {
            return Err(ServiceError::invalid(
                "bundle_version",
                "versions start at 1; leave it unset for the active one",
            ));
        }
        let request_id =
            if request_id.trim().is_empty() { uuid::Uuid::new_v4().to_string() } else { request_id };
        Ok(Self {
            question,
            region,
            brand: rudder_core::names::brand(&brand),
            history,
            passages: passages.into_iter().map(Into::into).collect(),
            top_k: if top_k == 0 { DEFAULT_TOP_K } else { top_k },
            mode,
            tags,
            min_score,
            sampling,
            bundle_version,
            allow_without_passages,
            request_id,
            conversation_id: conversation_id.trim().to_owned(),
            grounding: grounding_mode(grounding)?,
        })
    }

    /// What retrieval looks for: the bundle's retrieval region and brand where it names them (at most
    /// one each, checked when it is loaded or published), otherwise the request's.
    pub fn passage_query(&self, bundle: &Bundle) -> PassageQuery {
        PassageQuery {
            question: self.question.clone(),
            region: bundle.retrieval_regions.first().cloned().unwrap_or_else(|| self.region.clone()),
            brand: bundle.retrieval_brands.first().cloned().or_else(|| self.brand.clone()),
            top_k: self.top_k,
            mode: self.mode,
            tags: self.tags.clone(),
            min_score: self.min_score,
        }
    }

    /// The request's sampling over the bundle's defaults.
    pub fn sampling(&self, bundle: &Bundle) -> SamplingParams {
        let defaults = &bundle.generation;
        let s = &self.sampling;
        SamplingParams {
            max_tokens: s.max_tokens.unwrap_or(defaults.max_tokens),
            temperature: s.temperature.unwrap_or(defaults.temperature),
            top_p: s.top_p.unwrap_or(defaults.top_p),
            top_k: s.top_k.unwrap_or(defaults.top_k),
            seed: s.seed.unwrap_or(0),
            stop: s.stop.clone(),
            repetition_penalty: s.repetition_penalty.unwrap_or(defaults.repetition_penalty),
        }
    }
}

fn grounding_mode(wire: i32) -> Result<Option<GroundingMode>, ServiceError> {
    Ok(match v1::GroundingMode::try_from(wire) {
        Ok(v1::GroundingMode::Unspecified) => None,
        Ok(v1::GroundingMode::Off) => Some(GroundingMode::Off),
        Ok(v1::GroundingMode::EvidenceOnly) => Some(GroundingMode::Evidence),
        Ok(v1::GroundingMode::Verified) => Some(GroundingMode::Verified),
        Ok(v1::GroundingMode::Full) => Some(GroundingMode::Full),
        Ok(v1::GroundingMode::Extractive) => Some(GroundingMode::Extractive),
        Err(_) => return Err(ServiceError::invalid("grounding", format!("unknown mode {wire}"))),
    })
}

/// The sampling rules (also applied by PromptService's evaluation requests).
/// What a temperature must be, wherever it is set (a request, a bundle's defaults): 0 is greedy.
pub fn temperature_ok(t: f32) -> bool {
    t.is_finite() && t >= 0.0
}

/// What a nucleus mass must be, wherever it is set.
pub fn top_p_ok(p: f32) -> bool {
    p > 0.0 && p <= 1.0
}

/// What a repetition penalty must be, wherever it is set: 1 disables it.
pub fn repetition_penalty_ok(r: f32) -> bool {
    r.is_finite() && r > 0.0
}

pub fn validate_sampling(s: &v1::SamplingParams, context_length: usize) -> Result<(), ServiceError> {
    if let Some(max_tokens) = s.max_tokens
        && (max_tokens == 0 || max_tokens as usize >= context_length)
    {
        return Err(ServiceError::invalid(
            "sampling.max_tokens",
            format!("must be 1 to {}", context_length - 1),
        ));
    }
    if let Some(t) = s.temperature
        && !temperature_ok(t)
    {
        return Err(ServiceError::invalid("sampling.temperature", "must be >= 0 (0 is greedy)"));
    }
    if let Some(p) = s.top_p
        && !top_p_ok(p)
    {
        return Err(ServiceError::invalid("sampling.top_p", "must be in (0, 1]"));
    }
    if s.stop.len() > MAX_STOP_SEQUENCES {
        return Err(ServiceError::invalid(
            "sampling.stop",
            format!("at most {MAX_STOP_SEQUENCES} stop sequences"),
        ));
    }
    if s.stop.iter().any(String::is_empty) {
        return Err(ServiceError::invalid("sampling.stop", "stop sequences must not be empty"));
    }
    if let Some(r) = s.repetition_penalty
        && !repetition_penalty_ok(r)
    {
        return Err(ServiceError::invalid("sampling.repetition_penalty", "must be > 0 (1 disables)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rudder_core::BundleKey;

    use super::*;

    fn request(region: &str, brand: &str) -> ValidGenerate {
        let request = v1::GenerateRequest {
            question: "Can I return boots?".into(),
            region: region.into(),
            brand: brand.into(),
            ..Default::default()
        };
        ValidGenerate::new(request, 2048).unwrap()
    }

    fn bundle(retrieval_regions: &[&str], retrieval_brands: &[&str]) -> Bundle {
        Bundle {
            key: BundleKey { region: "uk".into(), brand: Some("outlet".into()) },
            version: 1,
            system_text: "Answer from the passages.".into(),
            handover_text: String::new(),
            policy_prefix: None,
            tone_soft_prompt: None,
            retrieval_regions: retrieval_regions.iter().map(|r| (*r).to_owned()).collect(),
            retrieval_brands: retrieval_brands.iter().map(|b| (*b).to_owned()).collect(),
            generation: Default::default(),
        }
    }

    #[test]
    fn retrieval_takes_the_bundles_region_and_brand_where_it_names_them() {
        let asked = request("uk", "Outlet");
        let query = asked.passage_query(&bundle(&[], &[]));
        assert_eq!((query.region.as_str(), query.brand.as_deref()), ("uk", Some("outlet")));
        let query = asked.passage_query(&bundle(&["eu"], &["trailhead"]));
        assert_eq!((query.region.as_str(), query.brand.as_deref()), ("eu", Some("trailhead")));
        let unbranded = request("uk", " ");
        assert_eq!(unbranded.passage_query(&bundle(&[], &[])).brand, None);
        assert_eq!(unbranded.passage_query(&bundle(&[], &["trailhead"])).brand.as_deref(), Some("trailhead"));
    }

    #[test]
    fn an_unknown_grounding_mode_names_the_field() {
        let request = v1::GenerateRequest {
            question: "q".into(),
            region: "uk".into(),
            grounding: 99,
            ..Default::default()
        };
        let err = ValidGenerate::new(request, 2048).unwrap_err();
        assert!(err.to_string().contains("grounding"), "{err}");
    }

    #[test]
    fn hostile_retrieval_options_and_history_are_refused_naming_their_field() {
        let base = || v1::GenerateRequest { question: "q".into(), region: "uk".into(), ..Default::default() };
        let options = |mode, min_score| Some(v1::RetrievalOptions { mode, min_score, ..Default::default() });
        let cases = [
            (v1::GenerateRequest { retrieval: options(99, None), ..base() }, "retrieval.mode"),
            (v1::GenerateRequest { retrieval: options(0, Some(f32::NAN)), ..base() }, "retrieval.min_score"),
            (
                v1::GenerateRequest { retrieval: options(0, Some(f32::INFINITY)), ..base() },
                "retrieval.min_score",
            ),
            (
                v1::GenerateRequest {
                    history: vec![
                        v1::ChatTurn { role: v1::ChatRole::User as i32, content: "hi".into() };
                        10_000
                    ],
                    ..base()
                },
                "history",
            ),
            (
                v1::GenerateRequest {
                    history: vec![v1::ChatTurn {
                        role: v1::ChatRole::User as i32,
                        content: "x".repeat(5000),
                    }],
                    ..base()
                },
                "history[0].content",
            ),
        ];
        for (request, field) in cases {
            match ValidGenerate::new(request, 2048) {
                Err(ServiceError::InvalidArgument { field: named, .. }) => assert_eq!(named, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let dense = ValidGenerate::new(
            v1::GenerateRequest { retrieval: options(v1::RetrievalMode::Dense as i32, Some(0.2)), ..base() },
            2048,
        )
        .unwrap();
        assert_eq!(
            dense.passage_query(&bundle(&[], &[])).mode,
            rudder_core::store::SearchMode::Dense,
            "the mode asked for is the mode searched"
        );
    }
}
