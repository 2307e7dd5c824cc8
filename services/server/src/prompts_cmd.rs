//! `rudder prompts train soft|prefix`, `rudder prompts eval`, `rudder prompts import-peft|export-peft`:
//! the trainer, the evaluation and the PEFT bridge as command-line jobs. Training runs on the model
//! worker's thread pool (candle uses every core); Ctrl-C checkpoints and stops after the current step.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rudder_core::{ModelFiles, bundle::ArtifactRef};
use rudder_llm::{LoadedModel, ServingFormat};
use rudder_prompts::{
    bundles::file,
    eval::run::{self as eval_run, EvalOptions},
    feedback_export::{self, ExportFilter},
    peft,
    train::{self, BadLines, Emphasis, HyperParameters, Kind, TrainOptions, optim::AdamWConfig},
};

use crate::ConfigFlags;

#[derive(Debug, clap::Subcommand)]
pub enum PromptsCommand {
    /// Train a steering piece on the frozen model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Compare untuned, guidance-as-text, prefix, soft prompt and both on a region's held-out set.
    Eval(EvalArgs),
    /// Import a Hugging Face PEFT prompt-tuning adapter as a soft-prompt artifact for this model.
    ImportPeft {
        /// Directory with adapter_config.json and adapter_model.safetensors.
        peft_dir: PathBuf,
        /// Artifact directory to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Turn support agents' corrections (SubmitFeedback) into training examples for the next tuning
    /// round, in the trainer's JSONL format. Reads <server.data_dir>/feedback/feedback.jsonl.
    ExportFeedback {
        /// JSONL file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Only feedback on answers served in this region.
        #[arg(long)]
        region: Option<String>,
        /// Also export answers rated good without a correction, as they were served.
        #[arg(long)]
        include_good: bool,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Export a soft-prompt artifact as a Hugging Face PEFT prompt-tuning adapter.
    ExportPeft {
        /// Artifact directory (with manifest.json).
        artifact: PathBuf,
        /// Adapter directory to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigFlags,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TrainCommand {
    /// Prompt tuning: a tone soft prompt (N virtual tokens of the model's embedding size).
    Soft(TrainArgs),
    /// Prefix tuning: a policy prefix (keys and values for P positions in every layer).
    Prefix(TrainArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training examples (JSONL of `messages` or `{prompt, completion}`); a validation share is
    /// split off them.
    #[arg(long)]
    pub data: PathBuf,
    /// Artifact directory to write (tensors.safetensors, manifest.json, loss.svg).
    #[arg(long)]
    pub out: PathBuf,
    /// File holding the system text examples are rendered with (unless they bring their own).
    #[arg(long, default_value = "prompts/data/system.txt")]
    pub system_file: PathBuf,
    /// Artifact held fixed during training (e.g. the region's prefix under its soft prompt).
    #[arg(long)]
    pub with: Option<PathBuf>,
    /// Soft prompt: virtual tokens.
    #[arg(long, default_value_t = 20)]
    pub virtual_tokens: usize,
    /// Prefix: positions per layer.
    #[arg(long, default_value_t = 16)]
    pub prefix_positions: usize,
    /// text, vocab (soft prompt) or random.
    #[arg(long, default_value = "text")]
    pub init: String,
    /// Text for `--init text` (default: the system file's text).
    #[arg(long)]
    pub init_text: Option<String>,
    /// Prefix: train through a reparameterisation MLP of this hidden width (folded into the artifact).
    #[arg(long)]
    pub reparam_hidden: Option<usize>,
    /// Peak learning rate (default: 0.03 soft prompt, 0.01 prefix).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 5)]
    pub warmup_steps: u64,
    /// The cosine decay ends at lr * lr_floor.
    #[arg(long, default_value_t = 0.1)]
    pub lr_floor: f64,
    #[arg(long, default_value_t = 60)]
    pub steps: u64,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub clip_norm: f64,
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    #[arg(long, default_value_t = 10)]
    pub eval_every: u64,
    /// Stop after this many validations without improvement (0: never).
    #[arg(long, default_value_t = 3)]
    pub patience: u32,
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 20261121)]
    pub seed: u64,
    /// Examples longer than this (in tokens) are refused, or skipped with --skip-bad-lines.
    #[arg(long, default_value_t = 512)]
    pub max_example_tokens: usize,
    /// Answer tokens inside a match of this regular expression weigh --emphasis-weight in the
    /// training loss, e.g. '[$£€] ?[0-9]+([.,][0-9]+)*' for amounts with their currency (validation loss
    /// stays unweighted).
    #[arg(long)]
    pub emphasize: Option<String>,
    #[arg(long, default_value_t = 3.0, requires = "emphasize")]
    pub emphasis_weight: f64,
    /// Use the data's rejected answers: add this weight times the mean of -log(1 - p) over the first
    /// token of each forbidden phrase (meta.forbidden) in them to the loss (validation loss stays
    /// plain NLL).
    #[arg(long)]
    pub unlikelihood_weight: Option<f64>,
    /// Report malformed lines and go on without them (default: stop at the first).
    #[arg(long)]
    pub skip_bad_lines: bool,
    /// Continue the unfinished run whose checkpoint is in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Checkpoint and stop after this many steps in total (continue later with --resume).
    #[arg(long)]
    pub pause_after: Option<u64>,
    #[command(flatten)]
    pub config: ConfigFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// us, uk or eu.
    #[arg(long)]
    pub region: String,
    /// Held-out examples (default: prompts/data/<region>/heldout.jsonl).
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// The system text the steering was trained under.
    #[arg(long, default_value = "prompts/data/system.txt")]
    pub system_file: PathBuf,
    /// Bundles directory whose `<region>` version 1 holds the guidance-as-text system prompt.
    #[arg(long, default_value = "prompts/bundles")]
    pub bundles_dir: PathBuf,
    /// Policy prefix artifact (default: the one of the region's highest bundle version, if any).
    #[arg(long)]
    pub prefix: Option<PathBuf>,
    /// Tone soft prompt artifact (default: the one of the region's highest bundle version, if any).
    #[arg(long)]
    pub soft_prompt: Option<PathBuf>,
    #[arg(long, default_value_t = 96)]
    pub max_new_tokens: usize,
    /// Only the first N held-out examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the bar chart here (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Write the figures here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write every greedy answer here with its score, one JSON object per line (variant, held-out
    /// line, answer, checks), to see which answers a figure counts.
    #[arg(long)]
    pub answers: Option<PathBuf>,
    /// Run only these variants, by letter: `e`, or `a,e` (default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_variant)]
    pub variants: Vec<char>,
    #[command(flatten)]
    pub config: ConfigFlags,
}

fn parse_variant(letter: &str) -> Result<char, String> {
    let mut chars = letter.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(one @ 'a'..='e'), None) => Ok(one),
        _ => Err(format!(
            "{letter:?} is not a variant: a (untuned), b (guidance as text), c (prefix), d (soft prompt) or e (both)"
        )),
    }
}

fn load_model(flags: &ConfigFlags, format: ServingFormat) -> anyhow::Result<LoadedModel> {
    let config = flags.load()?;
    let files = crate::preflight::quick(&config.models.dir)?;
    let path = files.path(ModelFiles::LLM_GGUF);
    LoadedModel::load(&path, format).with_context(|| format!("cannot load the LLM {}", path.display()))
}

fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
    Ok(text.trim().to_owned())
}

pub async fn run(command: PromptsCommand) -> anyhow::Result<()> {
    match command {
        PromptsCommand::Train(TrainCommand::Soft(args)) => train_cmd(Kind::SoftPrompt, args).await,
        PromptsCommand::Train(TrainCommand::Prefix(args)) => train_cmd(Kind::Prefix, args).await,
        PromptsCommand::Eval(args) => tokio::task::spawn_blocking(move || eval_cmd(&args)).await?,
        PromptsCommand::ImportPeft { peft_dir, out, config } => {
            let model = load_model(&config, ServingFormat::F32)?;
            let manifest = peft::import(&peft_dir, &base_model(&model), &out)?;
            println!("imported {} as {} ({:?})", peft_dir.display(), out.display(), manifest.tensors);
            Ok(())
        }
        PromptsCommand::ExportFeedback { out, region, include_good, config } => {
            export_feedback(&config, &out, ExportFilter { region, include_good })
        }
        PromptsCommand::ExportPeft { artifact, out, config } => {
            let model = load_model(&config, ServingFormat::F32)?;
            peft::export(&artifact, &base_model(&model), &out)?;
            println!("exported {} as a PEFT prompt-tuning adapter in {}", artifact.display(), out.display());
            Ok(())
        }
    }
}

fn export_feedback(flags: &ConfigFlags, out: &Path, filter: ExportFilter) -> anyhow::Result<()> {
    let config = flags.load()?;
    let source = config.server.data_dir.join("feedback").join(rudder_generation::feedback::FEEDBACK_FILE);
    if !source.is_file() {
        anyhow::bail!("no feedback recorded yet: {} does not exist (server.data_dir)", source.display());
    }
    if out.exists() {
        anyhow::bail!("--out {} exists; choose a new file", out.display());
    }
    let entries = rudder_generation::feedback::read_entries(&source)?;
    let lines = feedback_export::training_examples(&entries, &filter);
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(out, text).with_context(|| format!("cannot write --out {}", out.display()))?;
    println!(
        "{} training examples from {} feedback entries written to {} (train with: rudder prompts train soft --data {})",
        lines.len(),
        entries.len(),
        out.display(),
        out.display()
    );
    Ok(())
}

fn base_model(model: &LoadedModel) -> peft::BaseModel {
    let config = model.model.config();
    peft::BaseModel {
        fingerprint: model.fingerprint.clone(),
        name: model.name.clone(),
        hidden_size: config.hidden_size,
        num_heads: config.num_heads,
        num_layers: config.num_layers,
    }
}

async fn train_cmd(kind: Kind, args: TrainArgs) -> anyhow::Result<()> {
    let system_text = read_text(&args.system_file, "--system-file")?;
    let hyper = HyperParameters {
        virtual_tokens: args.virtual_tokens,
        prefix_positions: args.prefix_positions,
        init: args.init.clone(),
        init_text: Some(args.init_text.clone().unwrap_or_else(|| system_text.clone())),
        reparam_hidden: args.reparam_hidden,
        learning_rate: args.lr.unwrap_or(match kind {
            Kind::SoftPrompt => 0.03,
            Kind::Prefix => 0.01,
        }),
        warmup_steps: args.warmup_steps,
        lr_floor: args.lr_floor,
        max_steps: args.steps,
        batch_size: args.batch_size,
        adamw: AdamWConfig {
            weight_decay: args.weight_decay,
            clip_norm: args.clip_norm,
            ..AdamWConfig::default()
        },
        validation_fraction: args.validation_fraction,
        eval_every: args.eval_every,
        patience: args.patience,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        max_example_tokens: args.max_example_tokens,
        emphasis: args.emphasize.clone().map(|pattern| Emphasis { pattern, weight: args.emphasis_weight }),
        unlikelihood_weight: args.unlikelihood_weight,
    };
    let options = TrainOptions {
        kind,
        data: args.data.clone(),
        out_dir: args.out.clone(),
        system_text,
        hyper,
        fixed_companion: args.with.clone(),
        bad_lines: if args.skip_bad_lines { BadLines::Skip } else { BadLines::Stop },
        resume: args.resume,
        pause_after: args.pause_after,
        command: std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        stop: train::stop_flag(),
    };
    let stop = options.stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCtrl-C: checkpointing after the current step (press again to abort)");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let flags = args.config.clone();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let model = load_model(&flags, ServingFormat::F32)?;
        Ok(train::train(&model, &options)?)
    })
    .await??;
    for line in &report.skipped {
        eprintln!("skipped {line}");
    }
    let training = report.manifest.training.as_ref();
    println!("wrote {}", report.artifact_dir.display());
    if let Some(t) = training {
        println!(
            "  validation NLL {:.3} -> {:.3} ({:+.1}%), {} steps ({}), {:.0} s, {:.1} train tokens/s",
            t.validation_loss_before,
            t.validation_loss_after,
            100.0 * (t.validation_loss_after / t.validation_loss_before - 1.0),
            t.steps,
            t.stopped_by,
            t.wall_time_s,
            t.train_tokens_per_s
        );
    }
    println!("  tensors {:?}", report.manifest.tensors);
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> anyhow::Result<()> {
    let region = args.region.as_str();
    let key = rudder_core::BundleKey { region: region.to_owned(), brand: None };
    let versions = file::scan(&args.bundles_dir)?.remove(&key).unwrap_or_default();
    let guidance = versions.get(&1).map(|v1| v1.bundle.system_text.clone()).ok_or_else(|| {
        anyhow::anyhow!("--region {region}: no bundle {region}@1 under {}", args.bundles_dir.display())
    })?;
    // Without --prefix / --soft-prompt: the steering the region ships with (its highest version).
    let latest = versions.values().next_back().map(|v| &v.bundle);
    let shipped = |artifact: fn(&rudder_core::Bundle) -> &Option<ArtifactRef>| {
        let bundle = latest?;
        let reference = artifact(bundle).as_ref()?;
        eprintln!("{}: {}", bundle.id(), reference.path.display());
        Some(reference.path.clone())
    };
    let options = EvalOptions {
        region: region.to_owned(),
        heldout: args
            .heldout
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("prompts/data/{region}/heldout.jsonl"))),
        system_text: read_text(&args.system_file, "--system-file")?,
        guidance_text: guidance,
        policy_prefix: args.prefix.clone().or_else(|| shipped(|b| &b.policy_prefix)),
        tone_soft_prompt: args.soft_prompt.clone().or_else(|| shipped(|b| &b.tone_soft_prompt)),
        max_new_tokens: args.max_new_tokens,
        limit: args.limit,
        variants: args.variants.clone(),
    };
    let model = load_model(&args.config, ServingFormat::Q8_0)?;
    let results = eval_run::evaluate(&model, &options)?;
    println!("{}", eval_run::table(&results));
    for r in &results {
        println!("{} — first answers:", r.name);
        for sample in &r.samples {
            println!("  > {}", sample.replace('\n', " "));
        }
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, eval_run::chart(region, &results))
            .with_context(|| format!("--chart {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &args.answers {
        let mut lines = String::new();
        for result in &results {
            for answer in &result.answers {
                let mut line = serde_json::to_value(answer)?;
                line["variant"] = serde_json::Value::from(result.name.as_str());
                lines += &format!("{line}\n");
            }
        }
        std::fs::write(path, lines).with_context(|| format!("--answers {}", path.display()))?;
    }
    Ok(())
}
