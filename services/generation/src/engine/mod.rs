//! The engine seam ([`InferenceEngine`]: submit a job, read its events, know whether it runs) and
//! the engine behind it: one thread owns the frozen model and the head cache and runs generation
//! jobs with continuous batching ([`scheduler`]): up to [`EngineConfig::max_batch`] requests at
//! once, of any regions and bundles, their decode steps taken together, new prompts prefilled in
//! chunks between steps. Beyond the queue's capacity a job is refused at once (RESOURCE_EXHAUSTED)
//! instead of waiting unboundedly. Each job carries its own event channel; when the receiver goes
//! away (client cancelled, deadline passed) its slot is freed before the next step.

mod scheduler;
mod sequence;
mod text;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_core::{Bundle, Passage};
use rudder_llm::{LoadedModel, Message};
use tokio::sync::mpsc;

use crate::{GenerationError, sampler::SamplingParams};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs that may wait while the batch is full; one more is refused.
    pub queue_capacity: usize,
    /// Memory bound of the head cache.
    pub head_cache_bytes: usize,
    /// Prompt tokens one request may prefill at most (passages are trimmed to fit), whatever the
    /// model's context: prefill time grows with it.
    pub max_prompt_tokens: usize,
    /// Requests running at once (prefilling or decoding); 1 serves one request at a time.
    pub max_batch: usize,
    /// Memory bound of the running requests' KV caches: a request is admitted only while the
    /// caches reserved so far and its own (prompt budget plus answer) fit.
    pub kv_cache_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 16,
            head_cache_bytes: 256 << 20,
            max_prompt_tokens: 2048,
            max_batch: 8,
            kv_cache_bytes: 1 << 30,
        }
    }
}

/// What the served model is (for GetModelInfo and bundle checks).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub fingerprint: String,
    pub config: rudder_llm::LlamaConfig,
    pub serving_format: &'static str,
}

/// One request for the worker.
#[derive(Debug)]
pub struct GenerationJob {
    pub bundle: Arc<Bundle>,
    pub passages: Vec<Passage>,
    pub history: Vec<Message>,
    pub question: String,
    pub params: SamplingParams,
    pub received_at: Instant,
    /// The request's tracing span: the worker's logs for this job sit under it.
    pub span: tracing::Span,
    pub events: mpsc::Sender<EngineEvent>,
}

/// What the generation service needs of whatever runs the model. Dropping a job's event receiver
/// cancels it within one token.
pub trait InferenceEngine: Send + Sync + std::fmt::Debug {
    /// Queues a job, or refuses it at once (queue full: RESOURCE_EXHAUSTED; engine gone: UNAVAILABLE).
    fn submit(&self, job: GenerationJob) -> Result<(), GenerationError>;
    fn info(&self) -> &ModelInfo;
    /// False once the engine can take no more work (its worker ended): health says NOT_SERVING.
    fn is_running(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    EndOfText,
    MaxTokens,
    StopSequence,
    ContextFull,
}

#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// The prompt is prefilled; decoding starts.
    Started {
        passages: Vec<Passage>,
        passages_dropped: usize,
        prompt_tokens: usize,
        cached_prompt_tokens: usize,
    },
    Delta(String),
    Finished {
        answer: String,
        output_tokens: usize,
        time_to_first_token: Duration,
        decode_tokens_per_second: f32,
        finish_reason: FinishReason,
    },
    Failed(Arc<GenerationError>),
}

/// Work with the model that is not a generation request (an evaluation run), done on the model
/// thread once the running requests are done; it gets the model to itself while it runs.
pub type ExclusiveWork = Box<dyn FnOnce(&LoadedModel) + Send>;

enum Work {
    Generate(GenerationJob),
    Exclusive(ExclusiveWork),
}

/// Handle to the worker thread.
#[derive(Debug, Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Work>,
    info: Arc<ModelInfo>,
    capacity: usize,
}

impl Engine {
    /// Moves `model` onto a new model thread.
    pub fn start(model: LoadedModel, config: EngineConfig) -> Result<Self, GenerationError> {
        let info = Arc::new(ModelInfo {
            name: model.name.clone(),
            fingerprint: model.fingerprint.clone(),
            config: model.model.config().clone(),
            serving_format: model.format.name(),
        });
        let (jobs, queue) = mpsc::channel(config.queue_capacity.max(1));
        let capacity = config.queue_capacity;
        let scheduler = scheduler::Scheduler::new(model, config);
        std::thread::Builder::new()
            .name("rudder-model".into())
            .spawn(move || scheduler.run(queue))
            .map_err(|err| GenerationError::Internal(format!("cannot start the model thread: {err}")))?;
        Ok(Self { jobs, info, capacity })
    }

    /// Runs `work` with the model on the worker thread once the jobs queued before it are done, and
    /// returns its result. Queued like a request, so a full queue refuses it the same way.
    pub async fn run_exclusive<T: Send + 'static>(
        &self,
        work: impl FnOnce(&LoadedModel) -> T + Send + 'static,
    ) -> Result<T, GenerationError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.queue(Work::Exclusive(Box::new(move |model| {
            let _ = done.send(work(model));
        })))?;
        result.await.map_err(|_| GenerationError::WorkerGone)
    }

    fn queue(&self, work: Work) -> Result<(), GenerationError> {
        self.jobs.try_send(work).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => GenerationError::QueueFull { capacity: self.capacity },
            mpsc::error::TrySendError::Closed(_) => GenerationError::WorkerGone,
        })
    }
}

impl InferenceEngine for Engine {
    fn submit(&self, job: GenerationJob) -> Result<(), GenerationError> {
        self.queue(Work::Generate(job))
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }
}
