//! `rudder bench serve`: many support tools asking at once. A real all-in-one `rudder serve` child
//! process on a fresh data directory, the sample corpus ingested over gRPC, then for each client
//! count N, N real gRPC clients sending GenerateOnce with the labelled customer questions: aggregate
//! output tokens/s, requests/s, p50/p99 latency and time to first token, refusals
//! (RESOURCE_EXHAUSTED beyond the queue) and the server's peak RSS. With several `--max-batch`
//! values, one server per value in turn (one request at a time against continuous batching, in
//! one run).

use std::{path::PathBuf, time::Instant};

use rudder_core::GroundingMode;
use rudder_generation::answer_eval;
use rudder_ingest::{client, metadata::PartialMetadata};
use rudder_proto::v1::{
    self, GenerateRequest, generation_service_client::GenerationServiceClient,
    ingest_service_client::IngestServiceClient,
};
use tonic::Code;

use crate::{
    ConfigFlags,
    bench_child::{ChildServer, pct},
};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeBenchArgs {
    /// Concurrent clients to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 8, 16])]
    pub clients: Vec<usize>,
    /// Requests per client at each level.
    #[arg(long, default_value_t = 2)]
    pub requests: usize,
    /// How answers are grounded: "off" and "full" run the model on every request (what the
    /// scheduler serves), "extractive" runs none.
    #[arg(long, default_value = "off")]
    pub grounding: String,
    /// The servers' `generation.max_batch`, comma-separated: one server per value, in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    pub max_batch: Vec<usize>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// The corpus to ingest and the questions to ask (their region decides the bundle).
    #[arg(long, default_value = "ingest/corpus")]
    pub corpus: PathBuf,
    #[arg(long, default_value = "tests/answers/sample.jsonl")]
    pub questions: PathBuf,
    #[command(flatten)]
    pub config: ConfigFlags,
}

/// One request as its client saw it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency_ms: f64,
    first_token_ms: f64,
    output_tokens: u32,
}

pub async fn run(args: &ServeBenchArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    crate::preflight::quick(&config.models.dir)?;
    let grounding = grounding_mode(&args.grounding)?;
    let questions: Vec<(String, String)> = answer_eval::read_cases(&args.questions)?
        .into_iter()
        .filter(|case| case.brand.is_empty())
        .map(|case| (case.question, case.region))
        .collect();
    anyhow::ensure!(!questions.is_empty(), "{}: no questions", args.questions.display());
    println!(
        "grounding {}, answers up to {} tokens, {} requests per client",
        args.grounding, args.max_tokens, args.requests
    );
    println!(
        "| max batch | clients | requests | refused | output tok/s | req/s | latency p50 / p99 ms | TTFT p50 / p99 ms | server peak RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &max_batch in &args.max_batch {
        let scratch = tempfile::tempdir()?;
        let env = [("RUDDER__GENERATION__MAX_BATCH".to_owned(), max_batch.to_string())];
        let server = ChildServer::start(&["serve"], scratch.path(), &config, &env)?;
        let generation = start_serving(&server, args, &questions, grounding).await?;
        let mut offset = 0;
        for &clients in &args.clients {
            let mine = |worker: usize| -> Vec<(String, String)> {
                (0..args.requests)
                    .map(|i| questions[(offset + worker * args.requests + i) % questions.len()].clone())
                    .collect()
            };
            let level = measure(&generation, clients, mine, grounding, args.max_tokens).await?;
            offset += clients * args.requests;
            println!(
                "| {max_batch} | {clients} | {} | {} | {:.1} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} |",
                level.samples.len(),
                level.refused,
                level.output_tokens_per_s(),
                level.samples.len() as f64 / level.wall_s,
                pct(&level.latencies(), 0.5),
                pct(&level.latencies(), 0.99),
                pct(&level.first_tokens(), 0.5),
                pct(&level.first_tokens(), 0.99),
                server.peak_rss_mib()
            );
        }
    }
    Ok(())
}

/// Ingests the corpus into the started server and warms it up (the bundles' heads, the first
/// connections); returns its generation client.
async fn start_serving(
    server: &ChildServer,
    args: &ServeBenchArgs,
    questions: &[(String, String)],
    grounding: v1::GroundingMode,
) -> anyhow::Result<GenerationServiceClient<tonic::transport::Channel>> {
    let channel = crate::status::connect(&server.url).await?;
    let files = client::collect_files(std::slice::from_ref(&args.corpus), &client::WalkOptions::default())?;
    let ingested = client::upload_files(
        &mut IngestServiceClient::new(channel.clone()),
        files,
        PartialMetadata::default(),
        |_, _, _| {},
    )
    .await?;
    let summary = ingested.summary.unwrap_or_default();
    eprintln!("ingested {} documents ({} failed)", summary.ingested, summary.failed);
    let generation = GenerationServiceClient::new(channel);
    for (question, region) in questions.iter().take(3) {
        generation.clone().generate_once(request(question, region, grounding, args.max_tokens)).await?;
    }
    Ok(generation)
}

/// One load level: what its requests saw.
struct Level {
    samples: Vec<Sample>,
    refused: usize,
    wall_s: f64,
}

impl Level {
    fn output_tokens_per_s(&self) -> f64 {
        self.samples.iter().map(|s| f64::from(s.output_tokens)).sum::<f64>() / self.wall_s
    }

    fn latencies(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.latency_ms).collect()
    }

    fn first_tokens(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.first_token_ms).collect()
    }
}

/// `clients` clients at once, each asking its questions (`questions_of(client)`) one after another.
async fn measure(
    generation: &GenerationServiceClient<tonic::transport::Channel>,
    clients: usize,
    questions_of: impl Fn(usize) -> Vec<(String, String)>,
    grounding: v1::GroundingMode,
    max_tokens: u32,
) -> anyhow::Result<Level> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..clients {
        let mut client = generation.clone();
        let mine = questions_of(worker);
        workers.push(tokio::spawn(async move {
            let (mut samples, mut refused) = (Vec::new(), 0usize);
            for (question, region) in mine {
                let sent = Instant::now();
                match client.generate_once(request(&question, &region, grounding, max_tokens)).await {
                    Ok(response) => {
                        let stats = response.into_inner().stats.unwrap_or_default();
                        samples.push(Sample {
                            latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
                            first_token_ms: stats.time_to_first_token_ms as f64,
                            output_tokens: stats.output_tokens,
                        });
                    }
                    Err(status) if status.code() == Code::ResourceExhausted => refused += 1,
                    Err(status) => return Err(anyhow::anyhow!("{question:?}: {status}")),
                }
            }
            anyhow::Ok((samples, refused))
        }));
    }
    let (mut samples, mut refused) = (Vec::new(), 0);
    for worker in workers {
        let (mine, mine_refused) = worker.await??;
        samples.extend(mine);
        refused += mine_refused;
    }
    Ok(Level { samples, refused, wall_s: started.elapsed().as_secs_f64() })
}

fn request(question: &str, region: &str, grounding: v1::GroundingMode, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        question: question.to_owned(),
        region: region.to_owned(),
        grounding: grounding as i32,
        sampling: Some(v1::SamplingParams { max_tokens: Some(max_tokens), ..Default::default() }),
        ..Default::default()
    }
}

fn grounding_mode(name: &str) -> anyhow::Result<v1::GroundingMode> {
    let mode = GroundingMode::parse(name).ok_or_else(|| {
        anyhow::anyhow!("--grounding {name:?}: use off, evidence, verified, full or extractive")
    })?;
    Ok(rudder_proto::convert::grounding_mode(mode))
}
