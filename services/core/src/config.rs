//! The configuration schema. Every key has its default in the server's embedded `default.toml`, so
//! the schema has no serde defaults: a key missing from the merged layers is an error, never a silent
//! default, and an unknown key is an error too (`deny_unknown_fields`). Layering (file, env, flags)
//! lives in the server binary, the only place that reads the environment.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub models: ModelsConfig,
    pub generation: GenerationConfig,
    pub prompts: PromptsConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
}

/// Who may call the server (see `auth` in the server's default.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The API key file (`rudder keys create`); empty: no authentication, loopback listeners only.
    pub keys_file: String,
    /// Health checks and reflection answer without a key.
    pub open_health: bool,
    /// Calls per minute of a key whose entry sets none; 0: unlimited.
    pub requests_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// A .gguf file or a Hugging Face directory; empty for the LLM in the models directory.
    pub model: PathBuf,
    pub serving_format: ServingFormatName,
    pub queue_capacity: usize,
    pub head_cache_mib: usize,
    /// Prompt tokens one request may prefill at most; passages are trimmed to fit.
    pub max_prompt_tokens: usize,
    /// Requests the model runs at once (continuous batching); 1 runs one at a time.
    pub max_batch: usize,
    /// Memory bound of the running requests' KV caches, in MiB.
    pub kv_cache_mib: usize,
    /// A RetrievalService to ask for passages (split mode); empty: retrieval in this process.
    pub retrieval_url: String,
    /// Time one remote retrieval may take (connect included).
    pub retrieval_timeout_ms: u64,
    /// The API key generation sends to that RetrievalService (an agent key for its regions).
    pub retrieval_api_key: Secret,
    /// How much of the grounded-answer pipeline runs when a request does not say.
    pub grounding: crate::grounding::GroundingMode,
    /// Decline (hand over) when the best evidence sentence scores below this.
    pub decline_below: f32,
    /// How each region (by code) is named in policy text; see `generation.region_names` in the
    /// server's default.toml.
    pub region_names: std::collections::BTreeMap<String, Vec<String>>,
}

/// Which weights one-token decode steps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingFormatName {
    F32,
    Q8_0,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// Shipped region bundles (read only): `<dir>/<region>[/<brand>]/v<N>/bundle.toml`.
    pub bundles_dir: PathBuf,
    /// `<dir>/<region>/heldout.jsonl`: what the evaluation gate runs on.
    pub eval_data_dir: PathBuf,
    /// Held-out examples per evaluation; 0 for all.
    pub eval_limit: usize,
    pub eval_max_new_tokens: usize,
    /// Seconds between checks for bundle files changed on disk; 0 turns watching off.
    pub watch_interval_secs: u64,
    /// Served answers remembered for feedback.
    pub feedback_recent_answers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gRPC server binds; port 0 picks a free port (the chosen address is logged).
    pub listen: SocketAddr,
    /// Where the embedded store, bundles state and feedback live. `~/` expands to the home directory.
    pub data_dir: PathBuf,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish before the server exits.
    pub shutdown_grace_secs: u64,
    /// The services this process serves (all three: the all-in-one server).
    pub services: Vec<ServiceRole>,
    /// Address of the Prometheus endpoint (`GET /metrics`, plain HTTP); empty: no endpoint.
    pub metrics_listen: String,
    /// PEM certificate chain for TLS on `listen`; empty (with `tls_key_file`): plaintext.
    pub tls_cert_file: String,
    /// PEM private key of that certificate.
    pub tls_key_file: String,
    /// PEM CA certificates whose client certificates are accepted as identities (mTLS; see the
    /// key file's `[[certificate]]` entries); empty: none.
    pub tls_client_ca_file: String,
}

/// A service a process may serve; split deployments run one (or two) per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRole {
    /// IngestService: documents into the store.
    Ingest,
    /// RetrievalService: passages out of the store.
    Retrieval,
    /// GenerationService and PromptService: the model, the bundles and feedback.
    Generation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// The directory `deploy/models.sh` fills. `~/` expands to the home directory.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing env-filter directive, e.g. "info" or "rudder_server=debug,info". `RUST_LOG` wins.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Regions documents may name and questions may ask about.
    pub regions: Vec<String>,
    pub qdrant: QdrantConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// qdrant-edge: Qdrant's engine in process, on disk under `server.data_dir`.
    Edge,
    /// A Qdrant server or cluster through qdrant-client.
    Qdrant,
}

/// Connection to a Qdrant server or cluster (used when `store.backend = "qdrant"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. "http://127.0.0.1:6334"; https enables TLS.
    pub url: String,
    /// Sent as the `api-key` header; never logged or shown.
    pub api_key: Secret,
    pub collection: String,
    /// Shards of the collection when rudder creates it (0: the server's default).
    pub shard_number: u32,
    /// Copies of each shard across a cluster when rudder creates the collection (0: the server's default).
    pub replication_factor: u32,
    /// Limit on connecting and on each store request, in seconds.
    pub timeout_secs: u64,
}
