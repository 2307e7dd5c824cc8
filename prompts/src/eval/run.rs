//! `rudder prompts eval`: on a region's held-out examples, compares (a) the untuned model, (b) the
//! same guidance written as text into the system prompt, (c) the policy prefix alone, (d) the tone
//! soft prompt alone and (e) both — on the NLL of the reference answers (teacher-forced) and on
//! greedy answers scored for currency, British spelling, apologies, forbidden promises and
//! citations. Greedy decoding with serving's repetition penalty: the result is deterministic.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rudder_generation::{Sampler, SamplingParams};
use rudder_llm::{ForwardOptions, LoadedModel, LogitsAt};

use super::{
    facts::{FactScore, FactTotals, score_facts},
    metrics::{AnswerScore, MetricTotals, RegionStyle, score_answer},
};
use crate::train::{
    SteeringTensors, TrainError,
    data::{self, BadLines, DataFile, Example},
    loss,
};

/// What to compare.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub region: String,
    pub heldout: PathBuf,
    /// The short system text the steering was trained under (variants a, c, d, e).
    pub system_text: String,
    /// The region's guidance written out as a system prompt (variant b).
    pub guidance_text: String,
    pub policy_prefix: Option<PathBuf>,
    pub tone_soft_prompt: Option<PathBuf>,
    pub max_new_tokens: usize,
    /// Evaluate only the first N held-out examples (None: all).
    pub limit: Option<usize>,
    /// Which variants to run, by letter (`a`..`e`); empty: all that the artifacts allow.
    pub variants: Vec<char>,
}

/// One variant's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VariantResult {
    /// "(a) untuned", ...
    pub name: String,
    /// Mean NLL per reference-answer token.
    pub nll: f64,
    pub currency_correctness: Option<f64>,
    pub british_spelling: Option<f64>,
    pub apology_rate: f64,
    pub forbidden_promise_rate: f64,
    pub citation_rate: f64,
    /// Share of the examples whose reference states figures answered with every one of them and no
    /// false figure ([`super::facts`]); `None` when no reference states one.
    pub fact_correct: Option<f64>,
    /// Share of answers stating a figure none of their passages states.
    pub false_figure_rate: f64,
    pub examples: usize,
    /// A few answers, for the reader to judge.
    pub samples: Vec<String>,
    /// Every greedy answer with its score, so a figure can be traced to the answers behind it
    /// (written by `rudder prompts eval --answers`, kept out of the summary JSON).
    #[serde(skip)]
    pub answers: Vec<ScoredAnswer>,
}

/// One held-out example's greedy answer under one variant, and why it scored as it did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoredAnswer {
    /// 1-based line of the example in the held-out file.
    pub line: usize,
    pub answer: String,
    pub score: AnswerScore,
    pub facts: FactScore,
}

struct Variant {
    name: &'static str,
    system_text: String,
    steering: SteeringTensors,
}

pub fn evaluate(model: &LoadedModel, options: &EvalOptions) -> Result<Vec<VariantResult>, TrainError> {
    let style = RegionStyle::for_region(&options.region).ok_or_else(|| {
        TrainError::Config(format!("--region: no evaluation style for {:?} (us, uk, eu)", options.region))
    })?;
    let file = DataFile::read(&options.heldout, BadLines::Stop)?;
    let examples: Vec<&Example> = file.examples.iter().take(options.limit.unwrap_or(usize::MAX)).collect();
    let load = |path: &Option<PathBuf>| -> Result<Option<SteeringTensors>, TrainError> {
        path.as_deref()
            .map(|path| SteeringTensors::load(model, path).map(|(_, steering)| steering))
            .transpose()
    };
    let prefix = load(&options.policy_prefix)?;
    let soft = load(&options.tone_soft_prompt)?;

    let tuned = |steering: SteeringTensors, name| Variant {
        name,
        system_text: options.system_text.clone(),
        steering,
    };
    let mut variants = vec![
        tuned(SteeringTensors::default(), "(a) untuned"),
        Variant {
            name: "(b) guidance as text",
            system_text: options.guidance_text.clone(),
            steering: SteeringTensors::default(),
        },
    ];
    if let Some(prefix) = &prefix {
        variants.push(tuned(prefix.clone(), "(c) prefix"));
    }
    if let Some(soft) = &soft {
        variants.push(tuned(soft.clone(), "(d) soft prompt"));
    }
    if let (Some(prefix), Some(soft)) = (&prefix, &soft) {
        variants.push(tuned(soft.clone().with_fixed(prefix), "(e) prefix + soft prompt"));
    }
    variants
        .iter()
        .filter(|variant| options.variants.is_empty() || options.variants.contains(&variant.letter()))
        .map(|variant| evaluate_variant(model, variant, &examples, &style, options))
        .collect()
}

impl Variant {
    /// The letter of "(e) prefix + soft prompt"; `?` for an unlettered name.
    fn letter(&self) -> char {
        self.name.chars().nth(1).unwrap_or('?')
    }
}

/// One bundle version on a region's held-out set: its system text with its prefix and soft prompt,
/// scored as the variants above (what the activation gate compares).
pub fn evaluate_bundle(
    model: &LoadedModel,
    bundle: &rudder_core::Bundle,
    heldout: &std::path::Path,
    limit: Option<usize>,
    max_new_tokens: usize,
) -> Result<VariantResult, TrainError> {
    let style = RegionStyle::for_region(&bundle.key.region).ok_or_else(|| {
        TrainError::Config(format!("no evaluation style for region {:?} (us, uk, eu)", bundle.key.region))
    })?;
    let file = DataFile::read(heldout, BadLines::Stop)?;
    let examples: Vec<&Example> = file.examples.iter().take(limit.unwrap_or(usize::MAX)).collect();
    let load =
        |artifact: &Option<rudder_core::bundle::ArtifactRef>| -> Result<Option<SteeringTensors>, TrainError> {
            artifact
                .as_ref()
                .map(|a| {
                    // The evaluation is stored against this version: it must score the version's bytes.
                    a.read_unchanged().map_err(|reason| {
                        TrainError::Config(format!("artifact {}: {reason}", a.path.display()))
                    })?;
                    SteeringTensors::load(model, &a.path).map(|(_, steering)| steering)
                })
                .transpose()
        };
    let steering = match (load(&bundle.policy_prefix)?, load(&bundle.tone_soft_prompt)?) {
        (Some(prefix), Some(soft)) => soft.with_fixed(&prefix),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => SteeringTensors::default(),
    };
    let variant = Variant { name: "bundle", system_text: bundle.system_text.clone(), steering };
    let options = EvalOptions {
        region: bundle.key.region.clone(),
        heldout: heldout.to_owned(),
        system_text: bundle.system_text.clone(),
        guidance_text: String::new(),
        policy_prefix: None,
        tone_soft_prompt: None,
        max_new_tokens,
        limit,
        variants: Vec::new(),
    };
    let mut result = evaluate_variant(model, &variant, &examples, &style, &options)?;
    result.name = bundle.id();
    Ok(result)
}

impl VariantResult {
    /// The figures by the metric names PromptService reports and the gate compares.
    pub fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let mut metrics = std::collections::BTreeMap::from([
            ("heldout_nll".to_owned(), self.nll),
            ("apology_rate".to_owned(), self.apology_rate),
            ("forbidden_promise_rate".to_owned(), self.forbidden_promise_rate),
            ("citation_rate".to_owned(), self.citation_rate),
            ("false_figure_rate".to_owned(), self.false_figure_rate),
        ]);
        if let Some(v) = self.fact_correct {
            metrics.insert("fact_correct".to_owned(), v);
        }
        if let Some(v) = self.currency_correctness {
            metrics.insert("currency_correct".to_owned(), v);
        }
        if let Some(v) = self.british_spelling {
            metrics.insert("british_spelling".to_owned(), v);
        }
        metrics
    }
}

fn evaluate_variant(
    model: &LoadedModel,
    variant: &Variant,
    examples: &[&Example],
    style: &RegionStyle,
    options: &EvalOptions,
) -> Result<VariantResult, TrainError> {
    let tokenized = examples
        .iter()
        .map(|e| {
            data::tokenize(model, &variant.system_text, e, None, data::RejectedAnswers::Leave).map_err(
                |reason| TrainError::Data(format!("{}:{}: {reason}", options.heldout.display(), e.line)),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nll = loss::mean_nll(model, &variant.steering, &tokenized, 8)?;
    let mut totals = MetricTotals::new(style);
    let mut fact_totals = FactTotals::default();
    let mut answers = Vec::new();
    for (example, tokens) in examples.iter().zip(&tokenized) {
        let answer = greedy_answer(
            model,
            &variant.steering,
            &tokens.ids[..tokens.answer_start],
            options.max_new_tokens,
        )?;
        let prompt = example.context.last().map_or("", |turn| turn.content.as_str());
        let score = score_answer(&answer, style, &example.meta.forbidden, count_passages(prompt));
        let facts = score_facts(&answer, &example.answer, prompt);
        totals.add(&score);
        fact_totals.add(&facts);
        answers.push(ScoredAnswer { line: example.line, answer, score, facts });
    }
    eprintln!("evaluated {}: NLL {nll:.3}", variant.name);
    Ok(VariantResult {
        name: variant.name.to_owned(),
        nll,
        currency_correctness: totals.currency_correctness(),
        british_spelling: totals.british_spelling(),
        apology_rate: totals.apology_rate(),
        forbidden_promise_rate: totals.forbidden_promise_rate(),
        citation_rate: totals.citation_rate(),
        fact_correct: fact_totals.fact_correct(),
        false_figure_rate: fact_totals.false_figure_rate(),
        examples: totals.count(),
        samples: answers.iter().take(3).map(|a| a.answer.clone()).collect(),
        answers,
    })
}

/// Passages in a rendered user turn: lines that start with a `[n] ` marker.
fn count_passages(user_turn: &str) -> usize {
    user_turn
        .lines()
        .filter(|line| {
            line.strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// The steered model's greedy answer to `prompt` (token ids up to the generation prompt).
fn greedy_answer(
    model: &LoadedModel,
    steering: &SteeringTensors,
    prompt: &[u32],
    max_new_tokens: usize,
) -> Result<String, TrainError> {
    let config = model.model.config();
    let mut cache = steering.start_cache(config.num_layers, 1)?;
    let text = model.model.embed(&Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?)?;
    let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), text)?;
    let serve = ForwardOptions { logits: LogitsAt::Last, differentiable: false };
    let mut logits: Vec<f32> = model.model.forward(&embeds, &mut cache, serve)?.squeeze(0)?.to_vec1()?;
    let mut sampler = Sampler::new(SamplingParams {
        max_tokens: u32::try_from(max_new_tokens).unwrap_or(u32::MAX),
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        seed: 0,
        stop: Vec::new(),
        repetition_penalty: rudder_core::GenerationDefaults::default().repetition_penalty,
    });
    let mut generated = Vec::new();
    // Stop at the context limit too: a long answer is scored as far as it got.
    while generated.len() < max_new_tokens && cache.len() < config.max_position {
        let next = sampler.next(&mut logits, &generated);
        if model.tokenizer.is_stop(next) {
            break;
        }
        generated.push(next);
        let step = model.model.embed(&Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?)?;
        logits = model.model.forward(&step, &mut cache, serve)?.squeeze(0)?.to_vec1()?;
    }
    Ok(model.tokenizer.decode(&generated)?)
}

/// The comparison as a Markdown table.
pub fn table(results: &[VariantResult]) -> String {
    let rate = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{:.0}%", v * 100.0));
    let mut out = String::from(
        "| variant | NLL | currency ok | British spelling | apologies | forbidden promises | cites [n] | fact-correct | false figure | n |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.nll,
            rate(r.currency_correctness),
            rate(r.british_spelling),
            rate(Some(r.apology_rate)),
            rate(Some(r.forbidden_promise_rate)),
            rate(Some(r.citation_rate)),
            rate(r.fact_correct),
            rate(Some(r.false_figure_rate)),
            r.examples
        ));
    }
    out
}

/// The comparison as a grouped bar chart (one group per metric, one bar per variant).
pub fn chart(region: &str, results: &[VariantResult]) -> String {
    let groups: Vec<String> = [
        "NLL",
        "currency ok",
        "British spelling",
        "apologies",
        "forbidden promises",
        "cites [n]",
        "fact-correct",
        "false figure",
    ]
    .map(String::from)
    .to_vec();
    let series: Vec<(String, Vec<Option<f64>>)> = results
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                vec![
                    Some(r.nll),
                    r.currency_correctness,
                    r.british_spelling,
                    Some(r.apology_rate),
                    Some(r.forbidden_promise_rate),
                    Some(r.citation_rate),
                    r.fact_correct,
                    Some(r.false_figure_rate),
                ],
            )
        })
        .collect();
    crate::plot::bar_chart_svg(
        &format!("rudder prompts eval — {region} held-out"),
        &groups,
        &series,
        "value (rates 0–1; NLL in nats/token)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_counted_by_their_markers() {
        let turn = "Policy passages:\n\n[1] Returns § Window (version 2)\nText [2] inline.\n\n[2] Shipping\nMore.\n\nQuestion: x";
        assert_eq!(count_passages(turn), 2);
        assert_eq!(count_passages("Policy passages: none were found for this question.\n\nQuestion: x"), 0);
    }
}
