//! `rudder bench retrieval`: RetrievalService latency over gRPC on loopback at 10k and 100k chunks
//! (the sample corpus replicated), at concurrency 1, 2 and 8 — p50 / p99 per request (query embedding
//! included), the query embedding alone, throughput, and the server's peak RSS. The server is a real
//! `rudder serve retrieval` child process on a store prepared here (chunks upserted, HNSW built).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use rudder_core::{
    Config, Embedder, VectorStore,
    store::{ChunkId, ChunkPoint},
};
use rudder_ingest::{IngestOptions, Pipeline, client, metadata::PartialMetadata};
use rudder_proto::v1::{RetrieveRequest, retrieval_service_client::RetrievalServiceClient};
use rudder_store::EdgeStore;

use crate::{
    ConfigFlags,
    bench_child::{ChildServer, pct},
};

#[derive(Debug, Clone, clap::Args)]
pub struct RetrievalBenchArgs {
    /// Store sizes to measure, in chunks (repeatable).
    #[arg(long = "chunks", default_values_t = [10_000usize, 100_000])]
    pub chunks: Vec<usize>,
    /// Requests per concurrency level.
    #[arg(long, default_value_t = 400)]
    pub requests: usize,
    /// The corpus to replicate and the questions to ask.
    #[arg(long, default_value = "ingest/corpus")]
    pub corpus: PathBuf,
    #[arg(long, default_value = "ingest/eval/retrieval.jsonl")]
    pub questions: PathBuf,
    #[command(flatten)]
    pub config: ConfigFlags,
}

const CONCURRENCY: [usize; 3] = [1, 2, 8];

pub async fn run(args: &RetrievalBenchArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let files = crate::preflight::quick(&config.models.dir)?;
    let questions: Vec<(String, String)> = rudder_retrieval::quality::read_questions(&args.questions)?
        .into_iter()
        .map(|q| (q.question, q.region))
        .collect();
    let scratch = tempfile::tempdir()?;
    let mut scratch_config = config.clone();
    scratch_config.server.data_dir = scratch.path().join("corpus");
    let (store, embedder) = crate::grpc::open_store(&scratch_config, &files).await?;
    let corpus = corpus_points(&args.corpus, Arc::clone(&store), Arc::clone(&embedder), &config).await?;
    drop(store);
    let embed_ms = {
        let embedder = Arc::clone(&embedder);
        let texts: Vec<String> = questions.iter().map(|(q, _)| q.clone()).collect();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<f64>> {
            texts.iter().map(|t| Ok(timed(|| embedder.embed_query(t))?.1)).collect()
        })
        .await??
    };
    println!(
        "query embedding alone: p50 {:.2} ms, p99 {:.2} ms ({} questions)",
        pct(&embed_ms, 0.5),
        pct(&embed_ms, 0.99),
        embed_ms.len()
    );
    let auth_us = authentication_us()?;
    println!("API key check alone (auth.keys_file on): {auth_us:.2} µs per request (100,000 checks)");
    println!(
        "| chunks | concurrency | requests | p50 ms | p99 ms | req/s | server: embed / search p50 ms | server peak RSS MiB | key check / p50 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &chunks in &args.chunks {
        let data_dir = scratch.path().join(format!("store-{chunks}"));
        let prepared = prepare_store(&data_dir, &corpus, chunks, embedder.dim()).await?;
        let server = ChildServer::start(&["serve", "retrieval"], &data_dir, &config, &[])?;
        let mut channel_client = RetrievalServiceClient::new(crate::status::connect(&server.url).await?);
        // Warm up: page in the store, first connections.
        for (question, region) in questions.iter().take(20) {
            channel_client.retrieve(request(question, region)).await?;
        }
        let mut single_rate = 0.0;
        for concurrency in CONCURRENCY {
            let (samples, rate) = load(&channel_client, &questions, args.requests, concurrency).await?;
            let column = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
            let (latencies, embed, search) =
                (column(|s| s.latency_ms), column(|s| s.embed_ms), column(|s| s.search_ms));
            if concurrency == 1 {
                single_rate = rate;
            }
            println!(
                "| {prepared} | {concurrency} | {} | {:.2} | {:.2} | {rate:.0} ({:.2}x c=1) | {:.2} / {:.2} | {:.0} | {:.3}% |",
                latencies.len(),
                pct(&latencies, 0.5),
                pct(&latencies, 0.99),
                rate / single_rate.max(1e-9),
                pct(&embed, 0.5),
                pct(&search, 0.5),
                server.peak_rss_mib(),
                100.0 * auth_us / 1000.0 / pct(&latencies, 0.5).max(1e-9)
            );
        }
        drop(server);
    }
    Ok(())
}

/// What the authentication layer adds to a request, in microseconds: finding the key's entry,
/// hashing the presented key and comparing in constant time, against a file of 100 keys.
fn authentication_us() -> anyhow::Result<f64> {
    let mut keys = crate::auth::KeyFile::default();
    let mut last = String::new();
    for i in 0..100 {
        last = keys.create(&format!("agent-{i}"), rudder_core::access::Role::Agent, &["uk".into()], &[])?;
    }
    let checks = 100_000;
    let started = Instant::now();
    for _ in 0..checks {
        std::hint::black_box(keys.authenticate(std::hint::black_box(&last)))
            .map_err(|reason| anyhow::anyhow!("the bench key: {reason}"))?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / checks as f64)
}

/// The corpus's chunks with their dense vectors, as ingestion makes them.
async fn corpus_points(
    corpus: &Path,
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    config: &Config,
) -> anyhow::Result<Vec<ChunkPoint>> {
    let files = client::collect_files(&[corpus.to_owned()], &client::WalkOptions::default())?;
    let options = IngestOptions::new(config.store.regions.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ChunkPoint>> {
        let pipeline = Pipeline::new(Arc::clone(&store), Arc::clone(&embedder), options);
        let mut points = Vec::new();
        for path in &files {
            let report = pipeline.ingest(client::read_document(path, &PartialMetadata::default())?);
            let ingested = report.result.map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
            let payloads = store.document_chunks(&report.doc_id, &ingested.version)?;
            let texts: Vec<String> = payloads.iter().map(|p| p.text.clone()).collect();
            let vectors = embedder.embed_documents(&texts)?;
            points.extend(payloads.into_iter().zip(vectors).map(|(payload, dense)| ChunkPoint {
                id: ChunkId::for_chunk(&payload.doc_id, &payload.version, payload.chunk_index),
                dense,
                payload,
                current: true,
            }));
        }
        Ok(points)
    })
    .await?
}

/// A store of at least `chunks` chunks in `data_dir`: the corpus copied under new doc ids, indexed.
async fn prepare_store(
    data_dir: &Path,
    corpus: &[ChunkPoint],
    chunks: usize,
    dim: usize,
) -> anyhow::Result<usize> {
    let dir = data_dir.join("qdrant");
    let corpus = corpus.to_vec();
    tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let started = Instant::now();
        let store = EdgeStore::open(&dir, dim)?;
        store.ensure_collection()?;
        let copies = chunks.div_ceil(corpus.len().max(1));
        for copy in 0..copies {
            let points: Vec<ChunkPoint> = corpus
                .iter()
                .map(|p| {
                    let mut payload = p.payload.clone();
                    payload.doc_id = format!("{}~{copy}", payload.doc_id);
                    ChunkPoint {
                        id: ChunkId::for_chunk(&payload.doc_id, &payload.version, payload.chunk_index),
                        dense: p.dense.clone(),
                        payload,
                        current: true,
                    }
                })
                .collect();
            store.upsert(&points)?;
        }
        store.flush()?;
        store.optimize()?;
        let written = copies * corpus.len();
        eprintln!("prepared {written} chunks in {:.0} s", started.elapsed().as_secs_f64());
        Ok(written)
    })
    .await?
}

/// One request as the client saw it and as the server timed it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency_ms: f64,
    embed_ms: f64,
    search_ms: f64,
}

/// `requests` retrievals, `concurrency` at a time: each one's sample and the requests per second.
async fn load(
    client: &RetrievalServiceClient<tonic::transport::Channel>,
    questions: &[(String, String)],
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Sample>, f64)> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let mut client = client.clone();
        let mine: Vec<(String, String)> =
            (worker..requests).step_by(concurrency).map(|i| questions[i % questions.len()].clone()).collect();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine.len());
            for (question, region) in mine {
                let sent = Instant::now();
                let response = client.retrieve(request(&question, &region)).await?.into_inner();
                let timings = response.timings.unwrap_or_default();
                latencies.push(Sample {
                    latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
                    embed_ms: timings.embed_us as f64 / 1000.0,
                    search_ms: timings.search_us as f64 / 1000.0,
                });
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for worker in workers {
        all.extend(worker.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok((all, rate))
}

fn request(question: &str, region: &str) -> RetrieveRequest {
    RetrieveRequest { query: question.to_owned(), region: region.to_owned(), top_k: 5, ..Default::default() }
}

fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E> {
    let started = Instant::now();
    let value = f()?;
    Ok((value, started.elapsed().as_secs_f64() * 1000.0))
}
