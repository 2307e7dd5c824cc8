//! `rudder eval retrieval`: ingests the sample corpus into a fresh embedded store and measures
//! retrieval on the labelled question set — recall@1, recall@5 and MRR@10 for dense, sparse and
//! hybrid search, overall and per question style.

use std::{path::PathBuf, sync::Arc};

use rudder_core::{ServiceError, store::SearchMode};
use rudder_ingest::{
    IngestOptions, Pipeline,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_retrieval::{
    Retriever,
    quality::{self, ModeReport},
};

use crate::ConfigFlags;

#[derive(Debug, Clone, clap::Args)]
pub struct RetrievalEvalArgs {
    /// The labelled questions (JSONL; see ingest/eval/README.md).
    #[arg(long, default_value = "ingest/eval/retrieval.jsonl")]
    pub questions: PathBuf,
    /// The corpus they are labelled over.
    #[arg(long, default_value = "ingest/corpus")]
    pub corpus: PathBuf,
    /// Also write the figures here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub async fn retrieval(args: &RetrievalEvalArgs) -> anyhow::Result<()> {
    let reports = retrieval_quality(&args.config, &args.questions, &args.corpus).await?;
    print!("{}", quality::table(&reports));
    for report in &reports {
        println!("{} misses at 5: {}", report.mode, report.missed_at_5.join(" "));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)
            .map_err(|err| anyhow::anyhow!("cannot write --json {}: {err}", path.display()))?;
    }
    Ok(())
}

/// The three modes' reports, from a fresh store (a temporary data directory) holding `corpus`.
pub async fn retrieval_quality(
    flags: &ConfigFlags,
    questions: &std::path::Path,
    corpus: &std::path::Path,
) -> anyhow::Result<Vec<ModeReport>> {
    let questions = quality::read_questions(questions)?;
    let files = client::collect_files(&[corpus.to_owned()], &WalkOptions::default())?;
    let data_dir = tempfile::tempdir()?;
    let mut config = flags.load()?;
    config.server.data_dir = data_dir.path().to_owned();
    let model_files = crate::preflight::quick(&config.models.dir)?;
    let (store, embedder) = crate::grpc::open_store(&config, &model_files).await?;
    let regions = config.store.regions.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ModeReport>> {
        let pipeline =
            Pipeline::new(Arc::clone(&store), Arc::clone(&embedder), IngestOptions::new(regions.clone()));
        for path in &files {
            let report = pipeline.ingest(client::read_document(path, &PartialMetadata::default())?);
            report.result.map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
        }
        store.flush()?;
        let retriever = Retriever::new(store, embedder, regions);
        let reports = [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid]
            .into_iter()
            .map(|mode| quality::evaluate(&retriever, &questions, mode))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        // The store flushes when dropped: before its directory goes.
        drop((retriever, pipeline));
        drop(data_dir);
        Ok(reports)
    })
    .await?
}
