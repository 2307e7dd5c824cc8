//! The command line: `rudder serve | status | ingest | ask | prompts | eval | keys | config show | models verify | bench`.

use crate::{ConfigFlags, RunningServer, grpc, layered_config, logging, preflight, status};
use clap::{Parser, Subcommand};
use rudder_core::config::ServiceRole;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rudder",
    version,
    about = "Retrieval-augmented answers from a frozen LLM, steered per region"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server: every service in one process (the default), or some of them for a split
    /// deployment (`rudder serve retrieval`, `rudder serve generation --retrieval-url URL`).
    Serve {
        /// Services to serve: ingest, retrieval, generation (default: server.services, all three).
        #[arg(value_enum)]
        services: Vec<Role>,
        /// Ask this RetrievalService for passages (generation.retrieval_url).
        #[arg(long, value_name = "URL")]
        retrieval_url: Option<String>,
        #[command(flatten)]
        config: ConfigFlags,
        /// Write the bound address (e.g. 127.0.0.1:41234) to this file once listening.
        #[arg(long, value_name = "FILE")]
        addr_file: Option<PathBuf>,
    },
    /// Ask a running server for its health and the services reflection lists.
    Status {
        /// The server's URL.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
    },
    /// Upload policy documents (files or directories) to a running server (with the API key in
    /// RUDDER_API_KEY when the server checks keys).
    Ingest(crate::ingest_cmd::IngestArgs),
    /// Ask a running server a question; the answer streams to the terminal with its citations (with
    /// the API key in RUDDER_API_KEY when the server checks keys).
    Ask(crate::ask::AskArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Model-file commands.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Prompt tuning: train, evaluate, import and export steering artifacts.
    #[command(subcommand)]
    Prompts(Box<crate::prompts_cmd::PromptsCommand>),
    /// Quality measurements.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// API keys: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(crate::keys_cmd::KeysCommand),
    /// Benchmarks (figures go into BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Recall@1, recall@5 and MRR of dense, sparse and hybrid retrieval on the labelled question set.
    Retrieval(crate::eval_cmd::RetrievalEvalArgs),
    /// Answer correctness (fact-correct, honest decline, false figure, citation precision) of the
    /// grounded-answer pipeline on a labelled case set, per grounding mode and region.
    Answers(crate::eval_answers::AnswerEvalArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cost of a training token against an inference prefill token (same model, same sequence
    /// length, one run), s/step, train tokens/s and peak RSS.
    Train {
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Decode/prefill speed, time to first token with and without the head cache, bandwidth bound, RSS.
    Generate {
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// RetrievalService latency over gRPC at 10k and 100k chunks, concurrency 1, 2 and 8; RSS.
    Retrieval(crate::bench_retrieval::RetrievalBenchArgs),
    /// Many support tools at once: N gRPC clients against a started server, aggregate output
    /// tokens/s, requests/s, p50/p99 latency and time to first token, refusals, RSS.
    Serve(crate::bench_serve::ServeBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (all layers merged, secrets redacted).
    Show {
        #[command(flatten)]
        config: ConfigFlags,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every model file against its checksum, parse the LLM's header, load ONNX Runtime.
    Verify {
        #[command(flatten)]
        config: ConfigFlags,
    },
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve { services, retrieval_url, config, addr_file } => {
                serve(&config, &services, retrieval_url, addr_file).await
            }
            Command::Status { server } => print_status(&server).await,
            Command::Ingest(args) => crate::ingest_cmd::ingest(&args).await,
            Command::Ask(args) => crate::ask::ask(&args).await.map(drop),
            Command::Config(ConfigCommand::Show { config }) => {
                print!("{}", layered_config::render(&config.load()?)?);
                Ok(())
            }
            Command::Models(ModelsCommand::Verify { config }) => verify_models(&config),
            Command::Prompts(command) => crate::prompts_cmd::run(*command).await,
            Command::Keys(command) => crate::keys_cmd::run(&command),
            Command::Eval(EvalCommand::Retrieval(args)) => crate::eval_cmd::retrieval(&args).await,
            Command::Eval(EvalCommand::Answers(args)) => crate::eval_answers::answers(&args).await,
            Command::Bench(BenchCommand::Train { config }) => {
                let config = config.load()?;
                crate::bench::train(&preflight::quick(&config.models.dir)?)
            }
            Command::Bench(BenchCommand::Retrieval(args)) => crate::bench_retrieval::run(&args).await,
            Command::Bench(BenchCommand::Serve(args)) => crate::bench_serve::run(&args).await,
            Command::Bench(BenchCommand::Generate { config }) => {
                let config = config.load()?;
                crate::bench::generate(&preflight::quick(&config.models.dir)?, &config.generation.model)
            }
        }
    }
}

/// A service `rudder serve` may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Ingest,
    Retrieval,
    /// GenerationService with PromptService (the model and the bundles).
    Generation,
}

async fn serve(
    flags: &ConfigFlags,
    roles: &[Role],
    retrieval_url: Option<String>,
    addr_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut config = flags.load()?;
    if !roles.is_empty() {
        config.server.services = roles
            .iter()
            .map(|role| match role {
                Role::Ingest => ServiceRole::Ingest,
                Role::Retrieval => ServiceRole::Retrieval,
                Role::Generation => ServiceRole::Generation,
            })
            .collect();
    }
    if let Some(url) = retrieval_url {
        config.generation.retrieval_url = url;
    }
    logging::init(&config.log)?;
    let server = RunningServer::start(&config).await?;
    if let Some(path) = addr_file {
        write_atomically(&path, &server.addr().to_string())?;
    }
    grpc::termination_signal().await;
    server.shutdown().await
}

/// Writes via a temp file and rename, so a reader polling for the file never sees it half-written.
fn write_atomically(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))
}

async fn print_status(url: &str) -> anyhow::Result<()> {
    let channel = status::connect(url).await?;
    println!("rudder at {url}");
    println!("\n  {:<32} health", "service");
    for entry in status::health(channel.clone()).await? {
        let name = if entry.service.is_empty() { "(server)" } else { entry.service.as_str() };
        println!("  {name:<32} {}", entry.status.as_str_name());
    }
    println!("\n  listed by reflection (v1):");
    for name in status::list_services_v1(channel).await? {
        println!("    {name}");
    }
    Ok(())
}

fn verify_models(flags: &ConfigFlags) -> anyhow::Result<()> {
    let config = flags.load()?;
    let report = preflight::thorough(&config.models.dir)?;
    println!("models directory {}: every file matches its sha256", report.files.root().display());
    for (path, size) in report.files.listed() {
        println!("  {path:<52} {:>8.1} MB", size as f64 / 1e6);
    }
    let llm = &report.llm;
    println!(
        "LLM: {} ({}), {} layers, hidden {}, {} heads / {} KV heads, context {}, vocab {}, chat template: {}",
        llm.name.as_deref().unwrap_or("unnamed"),
        llm.architecture,
        llm.block_count,
        llm.embedding_length,
        llm.head_count,
        llm.head_count_kv,
        llm.context_length,
        llm.vocab_size,
        if llm.has_chat_template { "yes" } else { "no" },
    );
    println!("ONNX Runtime {} loads", report.onnx_runtime_version);
    Ok(())
}
