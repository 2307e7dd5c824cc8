//! `rudder ingest PATH...`: uploads files and directories to a running server's IngestService, with
//! progress (documents sent, documents/s) and the per-document summary table at the end.

use std::{path::PathBuf, time::Instant};

use rudder_ingest::{
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_proto::v1::ingest_service_client::IngestServiceClient;

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The server's URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
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
}

/// Uploads and prints the summary; an error only when the upload as a whole fails.
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
    let channel = crate::status::connect(&args.server).await?;
    let total = files.len();
    let started = Instant::now();
    let response = client::upload_files(
        &mut IngestServiceClient::new(channel),
        files,
        flags,
        move |index, path, bytes| {
            let rate = (index + 1) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "  [{:>3}/{total}] sent {} ({bytes} bytes, {rate:.1} docs/s)",
                index + 1,
                path.display()
            );
        },
    )
    .await?;
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
