//! The [`Embedder`] on fastembed: all-MiniLM-L6-v2 (int8 ONNX) from the models directory, mean
//! pooled and L2-normalised, 384-d, reading at most 256 tokens. It owns loading the model files,
//! pointing ONNX Runtime at the library in the models directory (after [`OnnxRuntime::load`] has
//! checked it, because fastembed panics on a missing or old library) and batching.

use crate::onnx_runtime::OnnxRuntime;
use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use rudder_core::{EmbedError, Embedder, ModelFiles, QueryEmbedding};
use std::{
    fmt, fs,
    path::Path,
    sync::{Mutex, PoisonError},
};
use tokenizers::Tokenizer;

/// Output size of all-MiniLM-L6-v2.
pub const MINILM_DIM: usize = 384;
/// The model was trained on 256-token inputs (its `max_seq_length`); longer inputs are cut.
pub const MINILM_MAX_TOKENS: usize = 256;
/// Texts per ONNX run. Inputs in a batch are padded to its longest, so moderate batches keep the
/// padding waste low while amortising the per-run overhead.
pub const DEFAULT_BATCH_SIZE: usize = 32;

const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2@onnx-int8";

/// Settings of [`FastembedEmbedder`]; the defaults are what rudder's stored vectors are made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastembedOptions {
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads; `None` uses every core.
    pub threads: Option<usize>,
}

impl Default for FastembedOptions {
    fn default() -> Self {
        Self { batch_size: DEFAULT_BATCH_SIZE, threads: None }
    }
}

/// all-MiniLM-L6-v2 through fastembed. `TextEmbedding::embed` needs `&mut self`, so each session sits
/// behind a mutex. Document batches (ingestion) take one session that uses every core; queries take
/// one of a pool of single-threaded sessions (one per core), so concurrent queries run side by side
/// instead of queueing for one lock.
pub struct FastembedEmbedder {
    model: Mutex<TextEmbedding>,
    query_sessions: Vec<Mutex<TextEmbedding>>,
    next_query_session: std::sync::atomic::AtomicUsize,
    /// The model's tokenizer without truncation or padding: counts tokens (for chunking and to tell a
    /// truncated query) without taking the model's lock.
    counter: Tokenizer,
    batch_size: usize,
    runtime_version: String,
}

impl fmt::Debug for FastembedEmbedder {
    // fastembed's model is not Debug; say what it is instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastembedEmbedder")
            .field("model", &MODEL_ID)
            .field("batch_size", &self.batch_size)
            .field("onnx_runtime", &self.runtime_version)
            .finish_non_exhaustive()
    }
}

impl FastembedEmbedder {
    /// Loads the model from a checked models directory.
    pub fn load(files: &ModelFiles, options: FastembedOptions) -> Result<Self, EmbedError> {
        let runtime = init_onnx_runtime(&files.path(ModelFiles::ONNX_RUNTIME_LIB))?;
        let embed_dir = files.path(ModelFiles::EMBED_DIR);
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read_model_file(&embed_dir.join("tokenizer.json"))?,
            config_file: read_model_file(&embed_dir.join("config.json"))?,
            special_tokens_map_file: read_model_file(&embed_dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read_model_file(&embed_dir.join("tokenizer_config.json"))?,
        };
        let onnx = read_model_file(&files.path(ModelFiles::EMBED_ONNX))?;
        let session = |threads: Option<usize>| {
            let model = UserDefinedEmbeddingModel::new(onnx.clone(), tokenizer_files.clone())
                .with_pooling(Pooling::Mean);
            let mut init = InitOptionsUserDefined::new().with_max_length(MINILM_MAX_TOKENS);
            if let Some(threads) = threads {
                init = init.with_intra_threads(threads.max(1));
            }
            TextEmbedding::try_new_from_user_defined(model, init).map_err(|err| EmbedError::Unavailable {
                reason: format!("cannot build the embedding model: {err}"),
            })
        };
        let model = session(options.threads)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let query_sessions =
            (0..cores).map(|_| session(Some(1)).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        let mut counter = model.tokenizer.clone();
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|err| EmbedError::Unavailable { reason: format!("embedding tokenizer: {err}") })?;
        let embedder = Self {
            model: Mutex::new(model),
            query_sessions,
            next_query_session: std::sync::atomic::AtomicUsize::new(0),
            counter,
            batch_size: options.batch_size.max(1),
            runtime_version: runtime.version().to_owned(),
        };
        // A model that loads but yields the wrong size would poison the store: check once, here.
        let probe = embedder.embed_query("probe")?;
        if probe.vector.len() != MINILM_DIM {
            return Err(EmbedError::Unavailable {
                reason: format!(
                    "{} produces {}-d vectors, expected {MINILM_DIM}",
                    files.path(ModelFiles::EMBED_ONNX).display(),
                    probe.vector.len()
                ),
            });
        }
        Ok(embedder)
    }

    /// Version of the ONNX Runtime library in use, e.g. "1.31.1".
    pub fn runtime_version(&self) -> &str {
        &self.runtime_version
    }

    /// A free single-threaded session, else the next in turn (waiting for it). A lone query would be
    /// ~1.7x faster on the all-cores session, but measured on 2 cores (`rudder bench retrieval`)
    /// multi-threaded query sessions stop concurrent requests from scaling, so queries never use it.
    fn query_session(&self) -> std::sync::MutexGuard<'_, TextEmbedding> {
        for session in &self.query_sessions {
            match session.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let turn = self.next_query_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.query_sessions.get(turn % self.query_sessions.len().max(1)) {
            Some(session) => lock(session),
            None => lock(&self.model),
        }
    }

    fn run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.run_on(lock(&self.model), texts)
    }

    fn run_on(
        &self,
        mut session: std::sync::MutexGuard<'_, TextEmbedding>,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = session
            .embed(texts, Some(self.batch_size))
            .map_err(|err| EmbedError::Inference { reason: err.to_string() })?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::Inference {
                reason: format!("{} vectors for {} texts", vectors.len(), texts.len()),
            });
        }
        if let Some(bad) = vectors.iter().position(|v| v.len() != MINILM_DIM) {
            return Err(EmbedError::Inference {
                reason: format!("vector {bad} has {} dimensions, expected {MINILM_DIM}", vectors[bad].len()),
            });
        }
        Ok(vectors)
    }
}

impl Embedder for FastembedEmbedder {
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.run(&texts)
    }

    fn embed_query(&self, text: &str) -> Result<QueryEmbedding, EmbedError> {
        let truncated = self.count_tokens(text)? > MINILM_MAX_TOKENS;
        let mut vectors = self.run_on(self.query_session(), &[text])?;
        let vector = vectors.pop().ok_or_else(|| EmbedError::Inference { reason: "no vector".into() })?;
        Ok(QueryEmbedding { vector, truncated })
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        let encoding = self
            .counter
            .encode(text, true)
            .map_err(|err| EmbedError::InvalidInput { index: 0, reason: err.to_string() })?;
        Ok(encoding.len())
    }

    fn dim(&self) -> usize {
        MINILM_DIM
    }

    fn max_tokens(&self) -> usize {
        MINILM_MAX_TOKENS
    }

    fn model_id(&self) -> &str {
        MODEL_ID
    }
}

fn lock(session: &Mutex<TextEmbedding>) -> std::sync::MutexGuard<'_, TextEmbedding> {
    // A panic inside a previous run leaves the session itself usable; keep serving.
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks the library, then makes ort load it. ort keeps the first library it loads for the whole
/// process, so later calls (a second embedder, a test) reuse it whatever path they pass.
fn init_onnx_runtime(path: &Path) -> Result<OnnxRuntime, EmbedError> {
    let runtime =
        OnnxRuntime::load(path).map_err(|err| EmbedError::Unavailable { reason: err.to_string() })?;
    // ort resolves a relative path against the executable's directory; make it absolute first.
    let absolute = std::path::absolute(path).map_err(|err| EmbedError::Unavailable {
        reason: format!("cannot resolve {}: {err}", path.display()),
    })?;
    // The returned builder would create an environment; fastembed creates its own shared one.
    let _builder = ort::init_from(&absolute)
        .map_err(|err| EmbedError::Unavailable { reason: format!("ONNX Runtime: {err}") })?;
    tracing::debug!(path = %absolute.display(), version = runtime.version(), "ONNX Runtime loaded");
    Ok(runtime)
}

fn read_model_file(path: &Path) -> Result<Vec<u8>, EmbedError> {
    fs::read(path).map_err(|err| EmbedError::Unavailable {
        reason: format!("cannot read {}: {err}; run `make models` (deploy/models.sh)", path.display()),
    })
}
