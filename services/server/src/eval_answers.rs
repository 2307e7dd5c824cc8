//! `rudder eval answers`: ingests a corpus into a fresh embedded store, loads the model and the
//! bundles, and asks every labelled question of a case file through the generation service core
//! (the request flow GenerateOnce runs), once per grounding mode; then judges each answer by the
//! rules of [`rudder_generation::answer_eval`] and prints one table per mode and region.

use std::{path::PathBuf, sync::Arc, time::Instant};

use rudder_core::{GroundingMode, PassageSource};
use rudder_generation::{
    Grounding, ValidGenerate,
    answer_eval::{self, AnswerCase, Report, Tally},
};
use rudder_ingest::{
    IngestOptions, Pipeline,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_proto::v1;
use rudder_retrieval::Retriever;

use crate::ConfigFlags;

#[derive(Debug, Clone, clap::Args)]
pub struct AnswerEvalArgs {
    /// The labelled cases (JSONL; see tests/answers/README.md).
    #[arg(long, default_value = "tests/answers/sample.jsonl")]
    pub cases: PathBuf,
    /// The corpus they are labelled over.
    #[arg(long, default_value = "ingest/corpus")]
    pub corpus: PathBuf,
    /// Ingest the corpus under this brand (for a corpus whose files name none).
    #[arg(long)]
    pub brand: Option<String>,
    /// Ingest the corpus for these regions (for a corpus whose files name none).
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// Bundles to serve (default: prompts.bundles_dir).
    #[arg(long)]
    pub bundles: Option<PathBuf>,
    /// Grounding modes to run, comma-separated: off, evidence, verified, full, extractive.
    #[arg(long, value_delimiter = ',', default_value = "off,full")]
    pub modes: Vec<String>,
    /// Ask every region's bundle at this version (e.g. 1, the shipped text-only versions) instead of
    /// the active one: the pipeline without the trained steering.
    #[arg(long)]
    pub bundle_version: Option<u32>,
    /// Only the first N cases.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write every answer with its judgement here (JSONL).
    #[arg(long)]
    pub answers: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub async fn answers(args: &AnswerEvalArgs) -> anyhow::Result<()> {
    let modes = args
        .modes
        .iter()
        .map(|name| {
            GroundingMode::parse(name.trim()).ok_or_else(|| {
                anyhow::anyhow!("--modes: unknown mode {name:?} (off, evidence, verified, full, extractive)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut cases = answer_eval::read_cases(&args.cases)?;
    if let Some(limit) = args.limit {
        cases.truncate(limit);
    }
    let data_dir = tempfile::tempdir()?;
    let mut config = args.config.load()?;
    config.server.data_dir = data_dir.path().to_owned();
    config.prompts.watch_interval_secs = 0;
    if let Some(bundles) = &args.bundles {
        config.prompts.bundles_dir = bundles.clone();
    }
    let files = crate::preflight::quick(&config.models.dir)?;
    let (store, embedder) = crate::grpc::open_store(&config, &files).await?;
    let flags = PartialMetadata {
        brand: args.brand.clone(),
        regions: args.regions.clone(),
        ..PartialMetadata::default()
    };
    // Found under the corpus root, so a document's id is its path there (`refund/hey`).
    let documents =
        client::find_documents(std::slice::from_ref(&args.corpus), &WalkOptions::default())?.files;
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        Arc::clone(&embedder),
        IngestOptions::new(config.store.regions.clone()),
    );
    let ingested = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        for file in &documents {
            let report = pipeline.ingest(client::read_named(file, &flags)?);
            report.result.map_err(|err| anyhow::anyhow!("{}: {err}", file.path.display()))?;
        }
        Ok(documents.len())
    })
    .await??;
    store.flush()?;
    eprintln!("ingested {ingested} documents from {}", args.corpus.display());
    let retriever: Arc<dyn PassageSource> =
        Arc::new(Retriever::new(Arc::clone(&store), Arc::clone(&embedder), config.store.regions.clone()));
    let (generation, _prompts, _watcher, _registry) =
        crate::grpc::generation_and_prompts(&config, &files, retriever, embedder).await?;
    let service = generation.grpc.service().clone();

    let mut lines = Vec::new();
    println!(
        "{} — {} cases ({} answerable)\n",
        args.cases.display(),
        cases.len(),
        cases.iter().filter(|c| c.answerable).count()
    );
    println!("{}", Tally::HEADER);
    for mode in modes {
        let mut report = Report::default();
        for (i, case) in cases.iter().enumerate() {
            let started = Instant::now();
            let asked = v1::GenerateRequest { bundle_version: args.bundle_version, ..request(case, mode) };
            let valid = ValidGenerate::new(asked, service.context_length())?;
            let collected = match service.answer(valid).await {
                Ok(collected) => collected,
                Err(err) => {
                    // A request the service refuses (e.g. a brand with no bundle) is a miss, not the end.
                    eprintln!("[{}/{}] {} {} ERROR: {err}", i + 1, cases.len(), mode.as_str(), case.id);
                    report.add(case, &answer_eval::judge(case, "", Grounding::Unchecked, &[]), 0, 0);
                    lines.push(
                        serde_json::json!({"mode": mode.as_str(), "id": case.id, "error": err.to_string()}),
                    );
                    continue;
                }
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let finished = &collected.finished;
            let judgement =
                answer_eval::judge(case, &finished.answer, finished.grounding, &collected.passages);
            let ttft_ms = finished.stats.time_to_first_token.as_millis() as u64;
            report.add(case, &judgement, ttft_ms, latency_ms);
            eprintln!(
                "[{}/{}] {} {} {}: {}",
                i + 1,
                cases.len(),
                mode.as_str(),
                case.id,
                if judgement.correct { "ok" } else { "MISS" },
                finished.answer.replace('\n', " ")
            );
            lines.push(serde_json::json!({
                "mode": mode.as_str(),
                "id": case.id,
                "region": case.region,
                "answerable": case.answerable,
                "question": case.question,
                "answer": finished.answer,
                "grounding": finished.grounding.as_str(),
                "notes": finished.notes,
                "best_score": finished.evidence.first().map(|e| e.score),
                "evidence": finished.evidence.iter().map(|e| format!("{:.2} [{}] {}", e.score, e.passage, e.text)).collect::<Vec<_>>(),
                "judgement": judgement,
            }));
        }
        println!("{}", report.overall.row(&format!("{} · all", mode.as_str())));
        for (region, tally) in &report.regions {
            println!("{}", tally.row(&format!("{} · {region}", mode.as_str())));
        }
    }
    if let Some(path) = &args.answers {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text)
            .map_err(|err| anyhow::anyhow!("cannot write --answers {}: {err}", path.display()))?;
    }
    // The store flushes when its last holder goes: before its directory does.
    drop((service, generation, store));
    drop(data_dir);
    Ok(())
}

fn request(case: &AnswerCase, mode: GroundingMode) -> v1::GenerateRequest {
    let grounding = rudder_proto::convert::grounding_mode(mode);
    v1::GenerateRequest {
        question: case.question.clone(),
        region: case.region.clone(),
        brand: case.brand.clone(),
        request_id: format!("eval-{}", case.id),
        grounding: grounding as i32,
        ..Default::default()
    }
}
