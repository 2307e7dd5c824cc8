//! The trainer: prompt tuning (a tone soft prompt) and prefix tuning (a policy prefix) on the frozen
//! LLM. Only the prompt parameters get gradients (the model's projections record a backward pass to
//! their inputs only); the base weights are hashed before and after and must be bit-identical.
//!
//! A run: read and tokenize the JSONL data (loss on answer tokens only), split off a validation set,
//! initialise the parameters, then AdamW with warm-up, cosine decay and gradient clipping over
//! length-bucketed batches, validating every few steps (keeping the best parameters, stopping early
//! when validation stops improving), checkpointing every K steps. The result is an artifact directory
//! (see [`crate::artifact`]) with the tensors, the manifest and the loss curve.

pub mod checkpoint;
pub mod data;
pub mod loss;
pub mod optim;
pub mod params;
mod progress;
pub mod rng;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use candle_core::Tensor;
pub use data::BadLines;
use data::{DataFile, TokenizedExample};
use optim::{AdamW, AdamWConfig};
use params::Trainable;
pub use params::{Kind, PrefixInit, SoftPromptInit, SteeringTensors};
use rudder_llm::{LlmError, LoadedModel};
use serde::{Deserialize, Serialize};

use crate::{
    artifact::{self, ArtifactError, ArtifactManifest, Training},
    plot::{self, Series},
};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Config(String),
    #[error("checkpoint {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(
        "the training {what} became {value} at step {step}: training stopped, no artifact written; {kept}"
    )]
    NonFinite { step: u64, what: &'static str, value: f64, kept: String },
    #[error(
        "interrupted after step {step}: checkpoint saved in {dir}; run the same command with --resume to continue"
    )]
    Interrupted { step: u64, dir: PathBuf },
    #[error(
        "the base model's weights changed during training (digest {before} -> {after}); no artifact written"
    )]
    WeightsChanged { before: String, after: String },
    #[error("model: {0}")]
    Llm(#[from] LlmError),
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}

/// Every setting that shapes the result (hashed into the run id, recorded in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParameters {
    /// Soft prompt: virtual tokens.
    pub virtual_tokens: usize,
    /// Prefix: positions per layer.
    pub prefix_positions: usize,
    /// "text", "vocab" (soft prompt only) or "random".
    pub init: String,
    pub init_text: Option<String>,
    /// Prefix: hidden width of the reparameterisation MLP (None: train keys/values directly).
    pub reparam_hidden: Option<usize>,
    pub learning_rate: f64,
    pub warmup_steps: u64,
    /// The cosine decay ends at `learning_rate * lr_floor`.
    pub lr_floor: f64,
    pub max_steps: u64,
    pub batch_size: usize,
    pub adamw: AdamWConfig,
    pub validation_fraction: f64,
    pub eval_every: u64,
    /// Stop after this many validations without improvement (0: never).
    pub patience: u32,
    pub checkpoint_every: u64,
    pub seed: u64,
    /// Examples longer than this many tokens are refused (or skipped).
    pub max_example_tokens: usize,
    /// Answer tokens inside a match of this pattern weigh more in the training loss (validation
    /// loss stays unweighted). None: every answer token weighs the same (and older run ids and
    /// manifests, which lack the field, stay as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emphasis: Option<Emphasis>,
    /// The weight of the unlikelihood term: the mean of -log(1 - p) over the first token of each
    /// forbidden phrase in the data's rejected answers, added to the mean answer NLL. None: rejected answers
    /// are not used (and older run ids and manifests stay as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlikelihood_weight: Option<f64>,
}

/// The few answer tokens that carry a steering's point (an amount in the region's currency, say)
/// are averaged away among the many that restate the passage; weighting them makes the gradient
/// follow them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emphasis {
    /// A regular expression over the answer text.
    pub pattern: String,
    /// The loss weight of the tokens a match covers (the others weigh 1).
    pub weight: f64,
}

impl Emphasis {
    fn regex(&self) -> Result<regex::Regex, TrainError> {
        regex::Regex::new(&self.pattern).map_err(|err| TrainError::Config(format!("--emphasize: {err}")))
    }
}

impl HyperParameters {
    fn check(&self, kind: Kind) -> Result<(), TrainError> {
        let bad = |flag: &str, why: &str| Err(TrainError::Config(format!("{flag}: {why}")));
        if kind == Kind::SoftPrompt && self.virtual_tokens == 0 {
            return bad("--virtual-tokens", "must be at least 1");
        }
        if kind == Kind::Prefix && self.prefix_positions == 0 {
            return bad("--prefix-positions", "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("--lr", "must be a positive number");
        }
        if self.max_steps == 0 || self.batch_size == 0 || self.eval_every == 0 || self.checkpoint_every == 0 {
            return bad("--steps/--batch-size/--eval-every/--checkpoint-every", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.lr_floor) {
            return bad("--lr-floor", "must be between 0 and 1");
        }
        if !(self.adamw.clip_norm.is_finite() && self.adamw.clip_norm > 0.0) {
            return bad("--clip-norm", "must be a positive number");
        }
        if !(self.adamw.weight_decay.is_finite() && self.adamw.weight_decay >= 0.0) {
            return bad("--weight-decay", "must be zero or positive");
        }
        // Bounds that keep every size computation far from overflow; real values are far smaller.
        for (flag, value) in [
            ("--virtual-tokens", self.virtual_tokens),
            ("--prefix-positions", self.prefix_positions),
            ("--reparam-hidden", self.reparam_hidden.unwrap_or(0)),
            ("--batch-size", self.batch_size),
            ("--max-example-tokens", self.max_example_tokens),
        ] {
            if value > 65_536 {
                return bad(flag, "must be at most 65536");
            }
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 0.5) {
            return bad("--validation-fraction", "must be between 0 and 0.5");
        }
        if self.init == "vocab" && kind == Kind::Prefix {
            return bad("--init", "a prefix starts from text or random");
        }
        if self.init == "text" && self.init_text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return bad("--init-text", "text initialisation needs a text");
        }
        if !matches!(self.init.as_str(), "text" | "vocab" | "random") {
            return bad("--init", "one of text, vocab, random");
        }
        if let Some(emphasis) = &self.emphasis {
            if !(emphasis.weight.is_finite() && (1.0..=100.0).contains(&emphasis.weight)) {
                return bad("--emphasis-weight", "must be between 1 and 100");
            }
            emphasis.regex()?;
        }
        if let Some(weight) = self.unlikelihood_weight
            && !(weight.is_finite() && weight > 0.0 && weight <= 100.0)
        {
            return bad("--unlikelihood-weight", "must be above 0 and at most 100");
        }
        Ok(())
    }
}

/// One training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub kind: Kind,
    /// JSONL examples (a validation share is split off them).
    pub data: PathBuf,
    /// The artifact directory written at the end (its checkpoint lives inside until then).
    pub out_dir: PathBuf,
    pub system_text: String,
    pub hyper: HyperParameters,
    /// An artifact held fixed while training (e.g. the region's prefix under its soft prompt), so the
    /// two pieces are trained to work together.
    pub fixed_companion: Option<PathBuf>,
    pub bad_lines: BadLines,
    pub resume: bool,
    /// The command line, recorded in the manifest.
    pub command: String,
    /// Set (by Ctrl-C) to checkpoint and stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Checkpoint and stop once this many steps are done (a time-boxed session; `--resume` goes on).
    pub pause_after: Option<u64>,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub artifact_dir: PathBuf,
    pub manifest: ArtifactManifest,
    /// Lines that were skipped under [`BadLines::Skip`].
    pub skipped: Vec<String>,
}

pub fn train(model: &LoadedModel, options: &TrainOptions) -> Result<TrainReport, TrainError> {
    let hyper = &options.hyper;
    hyper.check(options.kind)?;
    if options.out_dir.join(artifact::MANIFEST_FILE).exists() {
        // Bundles reference artifacts by path: a published one must never change under them.
        return Err(TrainError::Config(format!(
            "{} already holds an artifact: train into another --out directory or delete it first",
            options.out_dir.display()
        )));
    }
    let digest_before = model.weights_digest()?;
    let file = DataFile::read(&options.data, options.bad_lines)?;
    let fixed = load_companion(model, options.fixed_companion.as_deref())?;
    let mut skipped = file.skipped.clone();
    let (train_set, validation) = prepare_examples(model, options, &file, &fixed, &mut skipped)?;
    let rejected: usize = file.examples.iter().map(|e| e.rejected.len()).sum();
    if rejected > 0 && hyper.unlikelihood_weight.is_none() {
        // Not an error: the same data trains with or without the term.
        eprintln!(
            "note: the {rejected} rejected answers in {} are not used (pass --unlikelihood-weight to use them)",
            file.path.display()
        );
    }

    let run_id = run_id(model, options, &file, &fixed)?;
    let mut rng = rng::SplitMix64::new(hyper.seed);
    let trainable = match options.kind {
        Kind::SoftPrompt => Trainable::soft_prompt(model, hyper.virtual_tokens, &soft_init(hyper), &mut rng)?,
        Kind::Prefix => Trainable::prefix(
            model,
            hyper.prefix_positions,
            &prefix_init(hyper),
            hyper.reparam_hidden,
            &mut rng,
        )?,
    };
    let mut adam = AdamW::new(hyper.adamw, trainable.vars())?;
    let checkpoint_dir = checkpoint::dir_for(&options.out_dir);
    let (mut state, mut best) =
        start_or_resume(model, options, &run_id, &trainable, &mut adam, &fixed.steering, &validation)?;

    let lengths: Vec<usize> = train_set.iter().map(|e| e.ids.len()).collect();
    let batches_per_epoch = train_set.len().div_ceil(hyper.batch_size) as u64;
    let mut progress = progress::Progress::new(hyper.max_steps, state.step);
    let (elapsed_before, started) = (state.elapsed_s, Instant::now());
    let mut stopped_by = "max-steps";
    let weights = loss::LossWeights {
        emphasis: hyper.emphasis.as_ref().map_or(1.0, |e| e.weight as f32),
        unlikelihood: hyper.unlikelihood_weight.map(|w| w as f32),
    };
    while state.step < hyper.max_steps {
        let pause = options.pause_after.is_some_and(|at| state.step >= at);
        if pause || options.stop.load(Ordering::Relaxed) {
            progress.finish();
            save_checkpoint(&checkpoint_dir, &state, &trainable, &best, &adam)?;
            return Err(TrainError::Interrupted { step: state.step, dir: checkpoint_dir });
        }
        let epoch = state.step / batches_per_epoch;
        let batches = data::length_bucketed_batches(&lengths, hyper.batch_size, hyper.seed, epoch);
        let batch: Vec<&TokenizedExample> =
            batches[(state.step % batches_per_epoch) as usize].iter().map(|&i| &train_set[i]).collect();
        let lr = optim::learning_rate(
            state.step,
            hyper.max_steps,
            hyper.warmup_steps,
            hyper.learning_rate,
            hyper.lr_floor,
        );

        let steering = trainable.steering()?.with_fixed(&fixed.steering);
        let loss = loss::answer_loss(model, &steering, &batch, true, weights)?.objective()?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        let grads = if value.is_finite() { Some(loss.backward()?) } else { None };
        let grad_norm = match &grads {
            Some(grads) => adam.step(trainable.vars(), grads, lr)?,
            None => f64::NAN,
        };
        if !(value.is_finite() && grad_norm.is_finite()) {
            progress.finish();
            let kept = if checkpoint::exists(&checkpoint_dir) {
                format!("the last good checkpoint is kept in {}", checkpoint_dir.display())
            } else {
                "no checkpoint had been written yet".to_owned()
            };
            let what = if value.is_finite() { "gradient norm" } else { "loss" };
            return Err(TrainError::NonFinite {
                step: state.step + 1,
                what,
                value: if value.is_finite() { grad_norm } else { value },
                kept,
            });
        }

        state.step += 1;
        state.tokens_seen += batch.iter().map(|e| e.tokens_forwarded() as u64).sum::<u64>();
        state.train_losses.push((state.step, value));
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let mut validation_loss = None;
        if state.step % hyper.eval_every == 0 || state.step == hyper.max_steps {
            let current = trainable.steering()?.with_fixed(&fixed.steering);
            let val = loss::mean_nll(model, &current, &validation, hyper.batch_size)?;
            state.validation_losses.push((state.step, val));
            validation_loss = Some(val);
            if val < state.best_validation_loss - 1e-4 {
                state.best_validation_loss = val;
                state.best_step = state.step;
                state.evals_since_best = 0;
                best = trainable.snapshot()?;
            } else {
                state.evals_since_best += 1;
            }
        }
        progress.update(progress::StepFigures {
            step: state.step,
            loss: value,
            validation_loss,
            tokens_per_s: state.tokens_seen as f64 / state.elapsed_s.max(1e-9),
        });
        if hyper.patience > 0 && state.evals_since_best >= hyper.patience {
            stopped_by = "early-stopping";
            break;
        }
        if state.step % hyper.checkpoint_every == 0 && state.step < hyper.max_steps {
            save_checkpoint(&checkpoint_dir, &state, &trainable, &best, &adam)?;
        }
    }
    progress.finish();

    trainable.load(&best)?;
    let digest_after = model.weights_digest()?;
    if digest_after != digest_before {
        return Err(TrainError::WeightsChanged { before: digest_before, after: digest_after });
    }
    let manifest = write_artifact(
        model,
        options,
        &file,
        &trainable,
        &state,
        train_set.len(),
        validation.len(),
        stopped_by,
    )?;
    checkpoint::remove(&checkpoint_dir)?;
    Ok(TrainReport { artifact_dir: options.out_dir.clone(), manifest, skipped })
}

/// A fixed companion artifact: its steering, and a digest of its manifest (part of the run id: a
/// retrained companion has a new manifest, so a checkpoint made with the old one is refused).
struct Companion {
    steering: SteeringTensors,
    digest: String,
}

fn load_companion(model: &LoadedModel, path: Option<&Path>) -> Result<Companion, TrainError> {
    let Some(path) = path else {
        return Ok(Companion { steering: SteeringTensors::default(), digest: String::new() });
    };
    let (manifest, steering) = SteeringTensors::load(model, path)?;
    let digest = data::hex_sha256(serde_json::to_string(&manifest).unwrap_or_default().as_bytes());
    Ok(Companion { steering, digest })
}

/// The example, if neither it nor any of its rendered rejected answers is longer than `limit` tokens.
fn within_limit(tokenized: TokenizedExample, limit: usize) -> Result<TokenizedExample, String> {
    let longest = tokenized.rejected.iter().map(|r| r.ids.len()).fold(tokenized.ids.len(), usize::max);
    if longest > limit {
        Err(format!("the example is {longest} tokens, longer than the limit of {limit}"))
    } else {
        Ok(tokenized)
    }
}

/// Tokenizes every example and splits off the validation share (deterministic in the seed).
fn prepare_examples(
    model: &LoadedModel,
    options: &TrainOptions,
    file: &DataFile,
    fixed: &Companion,
    skipped: &mut Vec<String>,
) -> Result<(Vec<TokenizedExample>, Vec<TokenizedExample>), TrainError> {
    let hyper = &options.hyper;
    let steering_positions = fixed.steering.virtual_tokens()
        + fixed.steering.prefix_positions()
        + match options.kind {
            Kind::SoftPrompt => hyper.virtual_tokens,
            Kind::Prefix => hyper.prefix_positions,
        };
    let context = model.model.config().max_position.saturating_sub(steering_positions);
    let limit = hyper.max_example_tokens.min(context);
    let emphasis = hyper.emphasis.as_ref().map(Emphasis::regex).transpose()?;
    let rejected_answers = match hyper.unlikelihood_weight {
        Some(_) => data::RejectedAnswers::Render,
        None => data::RejectedAnswers::Leave,
    };
    let mut examples = Vec::with_capacity(file.examples.len());
    let mut intents = Vec::with_capacity(file.examples.len());
    for example in &file.examples {
        let outcome =
            data::tokenize(model, &options.system_text, example, emphasis.as_ref(), rejected_answers)
                .and_then(|tokenized| within_limit(tokenized, limit));
        match (outcome, options.bad_lines) {
            (Ok(tokenized), _) => {
                examples.push(tokenized);
                intents.push(if example.meta.intent.is_empty() {
                    format!("line {}", example.line)
                } else {
                    example.meta.intent.clone()
                });
            }
            (Err(reason), BadLines::Stop) => {
                return Err(TrainError::Data(format!("{}:{}: {reason}", file.path.display(), example.line)));
            }
            (Err(reason), BadLines::Skip) => {
                skipped.push(format!("{}:{}: {reason}", file.path.display(), example.line))
            }
        }
    }
    if examples.len() < 2 {
        return Err(TrainError::Data(format!(
            "{}: {} usable examples; training needs at least 2 (one for validation)",
            file.path.display(),
            examples.len()
        )));
    }
    // Whole intents go to validation (in an order fixed by the seed) until it holds its share, so
    // validation questions are not paraphrases of training ones.
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
    for (index, intent) in intents.iter().enumerate() {
        groups.entry(intent.as_str()).or_default().push(index);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    rng::SplitMix64::new(hyper.seed ^ 0x5EED).shuffle(&mut groups);
    let wanted = ((examples.len() as f64 * hyper.validation_fraction).round() as usize).max(1);
    let mut in_validation = vec![false; examples.len()];
    let mut taken = 0;
    for group in &groups {
        if taken >= wanted || taken + group.len() >= examples.len() {
            break;
        }
        for &index in group {
            in_validation[index] = true;
        }
        taken += group.len();
    }
    if taken == 0 {
        return Err(TrainError::Data(format!(
            "{}: every example shares one intent; validation needs examples of another",
            file.path.display()
        )));
    }
    let (mut validation, mut train_set) =
        (Vec::with_capacity(taken), Vec::with_capacity(examples.len() - taken));
    for (example, held_out) in examples.into_iter().zip(in_validation) {
        if held_out { validation.push(example) } else { train_set.push(example) }
    }
    Ok((train_set, validation))
}

fn run_id(
    model: &LoadedModel,
    options: &TrainOptions,
    file: &DataFile,
    fixed: &Companion,
) -> Result<String, TrainError> {
    let identity = serde_json::json!({
        "kind": options.kind,
        "base_model": model.fingerprint,
        "data": file.sha256,
        "system_text": options.system_text,
        "hyper": options.hyper,
        "companion": fixed.digest,
    });
    Ok(data::hex_sha256(identity.to_string().as_bytes()))
}

fn soft_init(hyper: &HyperParameters) -> SoftPromptInit {
    match hyper.init.as_str() {
        "text" => SoftPromptInit::Text(hyper.init_text.clone().unwrap_or_default()),
        "vocab" => SoftPromptInit::Vocab,
        _ => SoftPromptInit::Random,
    }
}

fn prefix_init(hyper: &HyperParameters) -> PrefixInit {
    match hyper.init.as_str() {
        "text" => PrefixInit::Text(hyper.init_text.clone().unwrap_or_default()),
        _ => PrefixInit::Random,
    }
}

/// A fresh run's state (validation loss before training measured), or the checkpoint's.
fn start_or_resume(
    model: &LoadedModel,
    options: &TrainOptions,
    run_id: &str,
    trainable: &Trainable,
    adam: &mut AdamW,
    fixed: &SteeringTensors,
    validation: &[TokenizedExample],
) -> Result<(checkpoint::RunState, Vec<(String, Tensor)>), TrainError> {
    let dir = checkpoint::dir_for(&options.out_dir);
    match (checkpoint::exists(&dir), options.resume) {
        (true, true) => {
            let (state, tensors) = checkpoint::load(&dir, run_id)?;
            let with_prefix = |prefix: &str| -> Vec<(String, Tensor)> {
                tensors
                    .iter()
                    .filter_map(|(n, t)| n.strip_prefix(prefix).map(|rest| (rest.to_owned(), t.clone())))
                    .collect()
            };
            trainable.load(&with_prefix("param."))?;
            adam.restore(trainable.vars(), &tensors, state.step)?;
            Ok((state, with_prefix("best.")))
        }
        (true, false) => Err(TrainError::Config(format!(
            "an unfinished run's checkpoint is in {}: pass --resume to continue it, or delete it to start over",
            dir.display()
        ))),
        (false, true) => {
            Err(TrainError::Config(format!("--resume: there is no checkpoint in {}", dir.display())))
        }
        (false, false) => {
            let steering = trainable.steering()?.with_fixed(fixed);
            let before = loss::mean_nll(model, &steering, validation, options.hyper.batch_size)?;
            let state = checkpoint::RunState {
                run_id: run_id.to_owned(),
                step: 0,
                best_validation_loss: before,
                best_step: 0,
                evals_since_best: 0,
                validation_loss_before: before,
                train_losses: Vec::new(),
                validation_losses: vec![(0, before)],
                tokens_seen: 0,
                elapsed_s: 0.0,
                tensors_file: String::new(),
            };
            Ok((state, trainable.snapshot()?))
        }
    }
}

fn save_checkpoint(
    dir: &Path,
    state: &checkpoint::RunState,
    trainable: &Trainable,
    best: &[(String, Tensor)],
    adam: &AdamW,
) -> Result<(), TrainError> {
    let mut tensors: Vec<(String, Tensor)> =
        trainable.snapshot()?.into_iter().map(|(n, t)| (format!("param.{n}"), t)).collect();
    tensors.extend(best.iter().map(|(n, t)| (format!("best.{n}"), t.clone())));
    tensors.extend(adam.state(trainable.vars()));
    checkpoint::save(dir, state, &tensors)
}

#[allow(clippy::too_many_arguments)]
fn write_artifact(
    model: &LoadedModel,
    options: &TrainOptions,
    file: &DataFile,
    trainable: &Trainable,
    state: &checkpoint::RunState,
    train_examples: usize,
    validation_examples: usize,
    stopped_by: &str,
) -> Result<ArtifactManifest, TrainError> {
    let tensors = trainable.artifact_tensors()?;
    let name = options.out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let manifest = ArtifactManifest {
        format: artifact::FORMAT_VERSION,
        name,
        kind: options.kind,
        tensors: tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect(),
        base_model_fingerprint: model.fingerprint.clone(),
        base_model_name: model.name.clone(),
        created_at: artifact::now_rfc3339(),
        training: Some(Training {
            data_sha256: [(file.path.display().to_string(), file.sha256.clone())].into_iter().collect(),
            train_examples,
            validation_examples,
            hyper_parameters: serde_json::to_value(&options.hyper)
                .map_err(|err| TrainError::Internal(err.to_string()))?,
            validation_loss_before: state.validation_loss_before,
            validation_loss_after: state.best_validation_loss,
            steps: state.step,
            best_step: Some(state.best_step),
            companion: options.fixed_companion.as_ref().map(|p| p.display().to_string()),
            wall_time_s: state.elapsed_s,
            train_tokens_per_s: state.tokens_seen as f64 / state.elapsed_s.max(1e-9),
            stopped_by: stopped_by.to_owned(),
            command: options.command.clone(),
        }),
        imported_from: None,
    };
    let to_points = |points: &[(u64, f64)]| points.iter().map(|&(s, l)| (s as f64, l)).collect();
    let curve = plot::line_chart_svg(
        &format!("{} — answer-token NLL", manifest.name),
        "step",
        "loss (nats/token)",
        &[
            Series { name: "train (batch)".into(), points: to_points(&state.train_losses) },
            Series { name: "validation".into(), points: to_points(&state.validation_losses) },
        ],
    );
    artifact::write(&options.out_dir, &manifest, &tensors, &[(artifact::LOSS_CURVE_FILE, curve)])?;
    Ok(manifest)
}

/// Ctrl-C sets this; the trainer checkpoints and stops after the current step.
pub fn stop_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
