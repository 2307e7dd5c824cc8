//! `rudder ingest PATH...`: uploads files and directories to a running server's IngestService — or,
//! with `--local`, loads, chunks, embeds and stores them straight into the embedded store under
//! `server.data_dir` (no server; stop one that uses the same data directory first), or with
//! `--dry-run` only shows what would be ingested. Either way a progress bar while it runs and the
//! per-document table at the end, failures first; the exit status is non-zero when a document failed
//! (unless `--allow-partial`).

use std::{path::PathBuf, sync::Arc, time::Instant};

use rudder_core::ServiceError;
use rudder_ingest::{
    IngestOptions, Pipeline,
    client::{self, DocumentFile, WalkOptions},
    local,
    metadata::PartialMetadata,
    preview,
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
    /// Skip files of a walked directory whose name matches this glob, case-insensitive (repeatable;
    /// replaces the default list: LICENSE*, LICENCE*, COPYING*, NOTICE*, CHANGELOG*, README*).
    #[arg(long, value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Skip no boilerplate: take LICENSE, NOTICE, README, ... files as documents too.
    #[arg(long, conflicts_with = "ignore")]
    pub no_ignore: bool,
    /// Name documents by their path relative to DIR (default: each directory given; a file given
    /// alone by its file name). A document without a doc_id gets its name without the extension, a
    /// last "/index" dropped: DIR/refund/index.md is "refund".
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Only show what would be ingested (doc_id, title, chunk count) and what would fail; stores
    /// nothing. Loads the embedding model's tokenizer from the configuration's models directory.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 0 even when some documents failed (the others are stored either way).
    #[arg(long)]
    pub allow_partial: bool,
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

/// Ingests and prints the summary; an error when the run as a whole fails, or when a document failed
/// and `--allow-partial` was not given.
pub async fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let ignore = match (args.no_ignore, args.ignore.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => WalkOptions::default().ignore,
        (false, false) => args.ignore.clone(),
    };
    let walk = WalkOptions {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        ignore,
        root: args.root.clone(),
    };
    let found = client::find_documents(&args.paths, &walk)?;
    if !found.ignored.is_empty() {
        let names: Vec<String> = found.ignored.iter().map(|path| path.display().to_string()).collect();
        println!("skipped as boilerplate (--ignore, --no-ignore): {}", names.join(", "));
    }
    let files = found.files;
    if files.is_empty() {
        anyhow::bail!("no documents found under {:?}", args.paths);
    }
    let flags = PartialMetadata {
        regions: args.regions.clone(),
        brand: args.brand.clone(),
        ..PartialMetadata::default()
    };
    let total = files.len();
    if args.dry_run {
        return dry_run(args, files, flags).await;
    }
    let started = Instant::now();
    let response = if args.local {
        ingest_locally(&args.config, files, flags).await?
    } else {
        let channel = crate::status::connect(&args.server).await?;
        let bar = Arc::new(ProgressBar::new(total, "sent"));
        let progress = Arc::clone(&bar);
        let api_key = crate::status::api_key();
        let response = client::upload_files_with_key(
            &mut IngestServiceClient::new(channel),
            files,
            flags,
            api_key.as_deref(),
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
    fail_unless_allowed(&client::failed_files(&response), total, "failed", args.allow_partial)
}

/// The error that makes the exit status non-zero when documents failed (`what` says how), unless
/// partial success was allowed.
fn fail_unless_allowed(failed: &[&str], total: usize, what: &str, allow_partial: bool) -> anyhow::Result<()> {
    if failed.is_empty() || allow_partial {
        return Ok(());
    }
    anyhow::bail!(
        "{} of {total} documents {what}: {}; --allow-partial makes this exit 0",
        failed.len(),
        failed.join(", ")
    )
}

/// `--dry-run`: each document loaded, resolved and chunked as an ingest would, nothing stored.
async fn dry_run(args: &IngestArgs, files: Vec<DocumentFile>, flags: PartialMetadata) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let model_files = crate::preflight::quick(&config.models.dir)?;
    let options = IngestOptions::new(config.store.regions.clone());
    let previews = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<preview::Preview>> {
        let embedder =
            rudder_embed::FastembedEmbedder::load(&model_files, rudder_embed::FastembedOptions::default())
                .map_err(|err| anyhow::anyhow!("cannot load the embedding model: {err}"))?;
        let documents = files.iter().map(|file| {
            client::read_named(file, &flags)
                .map_err(|err| (file.name.clone(), ServiceError::invalid("file", err.to_string())))
        });
        Ok(preview::preview_all(&embedder, &options, documents))
    })
    .await??;
    print!("{}", preview::preview_table(&previews));
    let failed: Vec<&str> =
        previews.iter().filter(|p| p.result.is_err()).map(|p| p.file_name.as_str()).collect();
    fail_unless_allowed(&failed, previews.len(), "would fail", args.allow_partial)
}

/// The same pipeline the server runs, in this process, on the configured embedded store.
async fn ingest_locally(
    flags: &ConfigFlags,
    files: Vec<DocumentFile>,
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
