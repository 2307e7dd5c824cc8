//! `rudder ingest PATH...`: uploads files and directories to a running server's IngestService — or,
//! with `--local`, loads, chunks, embeds and stores them straight into the embedded store under
//! `server.data_dir` (no server; stop one that uses the same data directory first). Either way a
//! progress bar while it runs and the per-document table at the end.

use std::{path::PathBuf, sync::Arc, time::Instant};

use rudder_ingest::{
    IngestOptions, Pipeline,
    client::{self, WalkOptions},
    local,
    metadata::PartialMetadata,
};
use rudder_proto::v1::{IngestResponse, ingest_service_client::IngestServiceClient};

use crate::{ConfigFlags, progress::ProgressBar};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The server's URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Ingest into the embedded store under server.data_dir directly, without a server.
    #[arg(long)]
    pub local: bool,
    /// Only files matching this glob (repeatable).
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files matching this glob (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Regions for documents that name none (repeatable).
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// Brand for documents that name none.
    #[arg(long)]
    pub brand: Option<String>,
    /// With --local: the configuration (data directory, models directory, regions).
    #[command(flatten)]
    pub config: ConfigFlags,
}

/// Ingests and prints the summary; an error only when the run as a whole fails.
pub async fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let files = client::collect_files(
        &args.paths,
        &WalkOptions { include: args.include.clone(), exclude: args.exclude.clone() },
    )?;
    if files.is_empty() {
        anyhow::bail!("no documents found under {:?}", args.paths);
    }
    let flags = PartialMetadata {
        regions: args.regions.clone(),
        brand: args.brand.clone(),
        ..PartialMetadata::default()
    };
    let total = files.len();
    let started = Instant::now();
    let response = if args.local {
        ingest_locally(&args.config, files, flags).await?
    } else {
        let channel = crate::status::connect(&args.server).await?;
        let bar = Arc::new(ProgressBar::new(total, "sent"));
        let progress = Arc::clone(&bar);
        let response = client::upload_files(
            &mut IngestServiceClient::new(channel),
            files,
            flags,
            move |index, path, _| {
                progress.update(index + 1, &path.display().to_string());
            },
        )
        .await?;
        bar.finish();
        response
    };
    let elapsed = started.elapsed().as_secs_f64();
    print!("{}", client::summary_table(&response));
    if let Some(summary) = response.summary {
        println!(
            "{} documents in {elapsed:.1} s ({:.1} docs/s, {:.1} chunks/s)",
            total,
            total as f64 / elapsed,
            summary.chunks_written as f64 / elapsed
        );
    }
    Ok(())
}

/// The same pipeline the server runs, in this process, on the configured embedded store.
async fn ingest_locally(
    flags: &ConfigFlags,
    files: Vec<PathBuf>,
    metadata: PartialMetadata,
) -> anyhow::Result<IngestResponse> {
    let config = flags.load()?;
    let model_files = crate::preflight::quick(&config.models.dir)?;
    let (store, embedder) = crate::grpc::open_store(&config, &model_files).await?;
    let pipeline =
        Pipeline::new(Arc::clone(&store), embedder, IngestOptions::new(config.store.regions.clone()));
    tokio::task::spawn_blocking(move || -> anyhow::Result<IngestResponse> {
        let bar = ProgressBar::new(files.len(), "docs");
        let response = local::ingest_files(&pipeline, &files, &metadata, |index, path| {
            bar.update(index + 1, &path.display().to_string());
        });
        bar.finish();
        store.flush()?;
        // Index what was written now: a server opening this store searches it right away.
        store.optimize()?;
        Ok(response)
    })
    .await?
}
