//! The all-in-one gRPC server: the four rudder services, `grpc.health.v1`, and server reflection in
//! both v1 and v1alpha (Python's grpcio-reflection and older grpcurl builds speak only v1alpha).
//!

use std::sync::Arc;

use rudder_core::{
    Config, Embedder, ModelFiles, NoRetrieval, PassageSource, VectorStore,
    config::{ServiceRole, ServingFormatName, StoreBackend},
};
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use rudder_generation::{
    Engine, EngineConfig, FeedbackBook, GenerationService, GenerationServiceImpl, GroundingPolicy,
    InferenceEngine, grounding::RegionNames,
};
use rudder_ingest::{IngestOptions, IngestServiceImpl};
use rudder_llm::{LoadedModel, ServingFormat};
use rudder_prompts::{
    Registry, RegistryPaths,
    bundles::{
        grpc::{Evaluator, PromptServiceImpl},
        registry::watch,
    },
};
use rudder_proto::v1::{
    generation_service_server::GenerationServiceServer, ingest_service_server::IngestServiceServer,
    prompt_service_server::PromptServiceServer, retrieval_service_server::RetrievalServiceServer,
};
use rudder_retrieval::{RemoteRetrieval, RetrievalServiceImpl, Retriever};
use rudder_store::{EdgeStore, QdrantOptions, QdrantStore};
use std::{net::SocketAddr, path::Path, time::Duration};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

/// A server accepting connections on `addr` until [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    health: HealthReporter,
    served: Vec<&'static str>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), tonic::transport::Error>>,
    store: Option<Arc<dyn VectorStore>>,
    grace: Duration,
    watcher: Option<JoinHandle<()>>,
    metrics: Option<(SocketAddr, JoinHandle<()>)>,
    key_watcher: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Checks the model files, creates the data directory, binds `server.listen` and starts serving
    /// the services `server.services` names (all of them: the all-in-one server).
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let roles = &config.server.services;
        if roles.is_empty() {
            anyhow::bail!("server.services is empty; name at least one of ingest, retrieval, generation");
        }
        crate::auth::check_exposure(config.server.listen, &config.auth.keys_file)?;
        let keys = match config.auth.keys_file.trim() {
            "" => None,
            path => Some(crate::auth::KeyStore::open(std::path::Path::new(path))?),
        };
        let serves = |role: ServiceRole| roles.contains(&role);
        let remote_retrieval = !config.generation.retrieval_url.trim().is_empty();
        let files = crate::preflight::quick(&config.models.dir)?;
        std::fs::create_dir_all(&config.server.data_dir).map_err(|err| {
            anyhow::anyhow!(
                "cannot create data directory {} (server.data_dir): {err}",
                config.server.data_dir.display()
            )
        })?;
        // The store is needed by ingestion, retrieval, and generation when it retrieves in process.
        let needs_store = serves(ServiceRole::Ingest)
            || serves(ServiceRole::Retrieval)
            || (serves(ServiceRole::Generation) && !remote_retrieval);
        let store = if needs_store { Some(open_store(config, &files).await?) } else { None };
        let retriever = store.as_ref().map(|(store, embedder)| {
            Retriever::new(Arc::clone(store), Arc::clone(embedder), config.store.regions.clone())
        });

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(rudder_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        let key_watcher = keys.as_ref().map(crate::auth::KeyStore::watch);
        let mut router = Server::builder()
            .layer(crate::wire_status::OversizeLayer)
            .layer(crate::auth::AuthLayer::new(
                keys,
                config.auth.open_health,
                config.auth.requests_per_minute,
            ))
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        let mut served = vec![""];
        let mut watcher = None;
        let mut metrics_sources = crate::metrics::MetricsSources::default();
        if let (true, Some((store, embedder))) = (serves(ServiceRole::Ingest), &store) {
            router = router.add_service(IngestServiceServer::new(IngestServiceImpl::new(
                Arc::clone(store),
                Arc::clone(embedder),
                IngestOptions::new(config.store.regions.clone()),
            )));
            served.push("rudder.v1.IngestService");
        }
        if let (true, Some(retriever)) = (serves(ServiceRole::Retrieval), &retriever) {
            router =
                router.add_service(RetrievalServiceServer::new(RetrievalServiceImpl::new(retriever.clone())));
            served.push("rudder.v1.RetrievalService");
        }
        if serves(ServiceRole::Generation) {
            let passages: Arc<dyn PassageSource> = match (&retriever, remote_retrieval) {
                (_, true) => Arc::new(RemoteRetrieval::new(
                    config.generation.retrieval_url.trim(),
                    Duration::from_millis(config.generation.retrieval_timeout_ms),
                    config.generation.retrieval_api_key.expose(),
                )?),
                (Some(retriever), false) => Arc::new(retriever.clone()),
                (None, false) => Arc::new(NoRetrieval),
            };
            // Evidence is ranked with the embedding model: the store's, or its own in split mode.
            let embedder = match &store {
                Some((_, embedder)) => Arc::clone(embedder),
                None => load_embedder(&files).await?,
            };
            let (generation, prompts, watching, registry) =
                generation_and_prompts(config, &files, passages, embedder).await?;
            watch_engine(Arc::clone(&generation.engine), health.clone());
            metrics_sources.bundles = Some(registry);
            router = router
                .add_service(GenerationServiceServer::new(generation.grpc))
                .add_service(PromptServiceServer::new(prompts));
            served.extend(["rudder.v1.GenerationService", "rudder.v1.PromptService"]);
            watcher = watching;
        }
        let tls = match (config.server.tls_cert_file.trim(), config.server.tls_key_file.trim()) {
            ("", "") => None,
            ("", _) | (_, "") => {
                anyhow::bail!("set both server.tls_cert_file and server.tls_key_file, or neither")
            }
            (cert, key) => {
                let client_ca = Some(config.server.tls_client_ca_file.trim()).filter(|p| !p.is_empty());
                Some(crate::tls::server_config(Path::new(cert), Path::new(key), client_ca.map(Path::new))?)
            }
        };
        let listener = TcpListener::bind(config.server.listen).await.map_err(|err| {
            anyhow::anyhow!("cannot listen on {} (server.listen): {err}", config.server.listen)
        })?;
        let addr = listener.local_addr()?;
        let metrics = match config.server.metrics_listen.trim() {
            "" => None,
            listen => Some(crate::metrics::serve(listen, metrics_sources).await?),
        };
        for service in &served {
            health.set_service_status(*service, ServingStatus::Serving).await;
        }

        let (stop, stopped) = oneshot::channel::<()>();
        // A dropped sender means the owner is gone: stop as well.
        let stopped = async {
            let _ = stopped.await;
        };
        let serving =
            match tls {
                Some(tls) => tokio::spawn(
                    router.serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), stopped),
                ),
                // TCP_NODELAY: small gRPC responses must not wait for the peer's delayed ACK (~40 ms).
                None => tokio::spawn(router.serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stopped,
                )),
            };
        tracing::info!(%addr, services = ?roles, tls = !config.server.tls_cert_file.trim().is_empty(), data_dir = %config.server.data_dir.display(), "rudder listening on {addr}");
        Ok(Self {
            addr,
            health,
            served,
            stop,
            serving,
            store: store.map(|(store, _)| store),
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            watcher,
            metrics,
            key_watcher,
        })
    }

    /// The bound address (the real port when `server.listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the Prometheus endpoint, when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// Reports NOT_SERVING, stops accepting connections and lets in-flight requests finish within the
    /// grace period.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for service in &self.served {
            self.health.set_service_status(*service, ServingStatus::NotServing).await;
        }
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
        if let Some(keys) = &self.key_watcher {
            keys.abort();
        }
        if let Some((_, metrics)) = &self.metrics {
            metrics.abort();
        }
        let _ = self.stop.send(());
        match tokio::time::timeout(self.grace, self.serving).await {
            Ok(joined) => joined??,
            Err(_) => tracing::warn!(
                grace_secs = self.grace.as_secs(),
                "in-flight requests outlived the grace period"
            ),
        }
        if let Some(store) = self.store {
            tokio::task::spawn_blocking(move || store.flush()).await??;
        }
        tracing::info!("rudder stopped");
        Ok(())
    }
}

/// The embedder and the vector store (embedded qdrant-edge under the data directory).
pub async fn open_store(
    config: &Config,
    files: &ModelFiles,
) -> anyhow::Result<(Arc<dyn VectorStore>, Arc<dyn Embedder>)> {
    let embedder = load_embedder(files).await?;
    let dim = embedder.dim();
    let store: Arc<dyn VectorStore> =
        match config.store.backend {
            StoreBackend::Edge => {
                let dir = config.server.data_dir.join("qdrant");
                Arc::new(tokio::task::spawn_blocking(move || EdgeStore::open(&dir, dim)).await?.map_err(
                    |err| anyhow::anyhow!("cannot open the embedded store (server.data_dir): {err}"),
                )?)
            }
            StoreBackend::Qdrant => {
                let q = &config.store.qdrant;
                let options = QdrantOptions {
                    url: q.url.clone(),
                    api_key: Some(q.api_key.expose().to_owned()).filter(|key| !key.is_empty()),
                    collection: q.collection.clone(),
                    shard_number: q.shard_number,
                    replication_factor: q.replication_factor,
                    timeout: Duration::from_secs(q.timeout_secs.max(1)),
                };
                Arc::new(
                    tokio::task::spawn_blocking(move || QdrantStore::connect(&options, dim)).await?.map_err(
                        |err| anyhow::anyhow!("cannot reach the Qdrant server (store.qdrant.url): {err}"),
                    )?,
                )
            }
        };
    let ready = Arc::clone(&store);
    tokio::task::spawn_blocking(move || ready.ensure_collection()).await??;
    Ok((store, embedder))
}

async fn load_embedder(files: &ModelFiles) -> anyhow::Result<Arc<dyn Embedder>> {
    let files = files.clone();
    let embedder =
        tokio::task::spawn_blocking(move || FastembedEmbedder::load(&files, FastembedOptions::default()))
            .await?
            .map_err(|err| anyhow::anyhow!("cannot load the embedding model: {err}"))?;
    Ok(Arc::new(embedder))
}

/// GenerationService and PromptService go NOT_SERVING once the model engine stops.
fn watch_engine(engine: Arc<dyn InferenceEngine>, health: HealthReporter) {
    tokio::spawn(async move {
        while engine.is_running() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::error!("the model engine stopped: generation is NOT_SERVING");
        for service in ["rudder.v1.GenerationService", "rudder.v1.PromptService"] {
            health.set_service_status(service, ServingStatus::NotServing).await;
        }
    });
}

/// The generation service as the server holds it: its gRPC adapter and the engine under it.
pub(crate) struct Generation {
    pub(crate) grpc: GenerationServiceImpl,
    engine: Arc<dyn InferenceEngine>,
}

/// The model worker, the bundle registry, and the two services built on them (generation, prompts);
/// also the task watching bundle files, when configured, and the registry itself (for the metrics).
pub(crate) async fn generation_and_prompts(
    config: &Config,
    files: &ModelFiles,
    retrieval: Arc<dyn PassageSource>,
    embedder: Arc<dyn Embedder>,
) -> anyhow::Result<(Generation, PromptServiceImpl, Option<JoinHandle<()>>, Arc<Registry>)> {
    let model_path = files.llm(&config.generation.model)?;
    let format = match config.generation.serving_format {
        ServingFormatName::F32 => ServingFormat::F32,
        ServingFormatName::Q8_0 => ServingFormat::Q8_0,
    };
    let started = std::time::Instant::now();
    let model = tokio::task::spawn_blocking(move || {
        LoadedModel::load(&model_path, format).map_err(|err| (model_path, err))
    })
    .await?
    .map_err(|(path, err)| {
        anyhow::anyhow!("cannot load the LLM {} (generation.model): {err}", path.display())
    })?;
    tracing::info!(model = %model.name, fingerprint = %model.fingerprint, format = format.name(), elapsed_ms = started.elapsed().as_millis() as u64, "LLM loaded");
    let engine = Engine::start(
        model,
        EngineConfig {
            queue_capacity: config.generation.queue_capacity,
            head_cache_bytes: config.generation.head_cache_mib << 20,
            max_prompt_tokens: config.generation.max_prompt_tokens,
            max_batch: config.generation.max_batch,
            kv_cache_bytes: config.generation.kv_cache_mib << 20,
        },
    )?;
    let prompts = &config.prompts;
    let registry = Arc::new(
        Registry::open(RegistryPaths {
            shipped: prompts.bundles_dir.clone(),
            state_dir: config.server.data_dir.join("bundles"),
            eval_data: prompts.eval_data_dir.clone(),
        })
        .map_err(|err| {
            anyhow::anyhow!("cannot load bundles (prompts.bundles_dir, server.data_dir): {err}")
        })?,
    );
    if registry.keys().is_empty() {
        tracing::warn!(dir = %prompts.bundles_dir.display(), "no region bundles found: every Generate answers NOT_FOUND");
    }
    let feedback =
        FeedbackBook::open(&config.server.data_dir.join("feedback"), prompts.feedback_recent_answers)
            .map_err(|err| anyhow::anyhow!("cannot open the feedback store (server.data_dir): {err}"))?;
    let evaluator = Evaluator {
        engine: engine.clone(),
        limit: (prompts.eval_limit > 0).then_some(prompts.eval_limit),
        max_new_tokens: prompts.eval_max_new_tokens,
    };
    let prompt_service = PromptServiceImpl::new(
        Arc::clone(&registry),
        engine.info().clone(),
        config.store.regions.clone(),
        Some(evaluator),
    );
    let watcher = (prompts.watch_interval_secs > 0).then(|| {
        tokio::spawn(watch(Arc::clone(&registry), Duration::from_secs(prompts.watch_interval_secs)))
    });
    let shared: Arc<dyn InferenceEngine> = Arc::new(engine);
    let service = GenerationService::new(
        Arc::clone(&shared),
        Arc::clone(&registry) as _,
        retrieval,
        Arc::new(feedback),
    )
    .with_embedder(embedder)
    .with_grounding(GroundingPolicy {
        mode: config.generation.grounding,
        decline_below: config.generation.decline_below,
    })
    .with_region_names(RegionNames::new(config.generation.region_names.clone()));
    let generation = Generation { grpc: GenerationServiceImpl::new(service), engine: shared };
    Ok((generation, prompt_service, watcher, registry))
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}
