//! The engine seam ([`InferenceEngine`]: submit a job, read its events, know whether it runs) and
//! today's engine behind it, the model worker: one thread owns the frozen model and the head cache
//! and serves generation jobs from a bounded queue, one at a time (two cores leave no room for
//! running two decodes at once). A batching scheduler would implement the same trait.
//! Beyond the queue's capacity a job is refused at once (RESOURCE_EXHAUSTED) instead of waiting
//! unboundedly. Each job carries its own event channel; when the receiver goes away (client
//! cancelled, deadline passed) decoding stops before the next token.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use candle_core::Tensor;
use rudder_core::{Bundle, Passage};
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, LogitsAt, Message};
use tokio::sync::mpsc;

use crate::{
    GenerationError,
    fusion::{self, PromptParts},
    head_cache::{HeadCache, HeadState},
    sampler::{Sampler, SamplingParams},
    steering::Steering,
};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs that may wait for the worker; one more is refused.
    pub queue_capacity: usize,
    /// Memory bound of the head cache.
    pub head_cache_bytes: usize,
    /// Prompt tokens one request may prefill at most (passages are trimmed to fit), whatever the
    /// model's context: prefill time grows with it, and the worker serves one request at a time.
    pub max_prompt_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { queue_capacity: 16, head_cache_bytes: 256 << 20, max_prompt_tokens: 2048 }
    }
}

/// Tokens prefilled between two checks that the request is still wanted: a request whose client
/// left (or whose deadline passed) frees the model within one chunk.
const PREFILL_CHUNK: usize = 256;

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

/// Work with the model that is not a generation request (an evaluation run), done on the worker
/// thread between requests; it gets the model to itself while it runs.
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
    /// Moves `model` onto a new worker thread.
    pub fn start(model: LoadedModel, config: EngineConfig) -> Result<Self, GenerationError> {
        let info = Arc::new(ModelInfo {
            name: model.name.clone(),
            fingerprint: model.fingerprint.clone(),
            config: model.model.config().clone(),
            serving_format: model.format.name(),
        });
        let (jobs, queue) = mpsc::channel(config.queue_capacity.max(1));
        let worker = Worker {
            model,
            heads: HeadCache::new(config.head_cache_bytes),
            steering: HashMap::new(),
            steering_order: VecDeque::new(),
            max_prompt_tokens: config.max_prompt_tokens,
        };
        std::thread::Builder::new()
            .name("rudder-model".into())
            .spawn(move || worker.run(queue))
            .map_err(|err| GenerationError::Internal(format!("cannot start the model thread: {err}")))?;
        Ok(Self { jobs, info, capacity: config.queue_capacity })
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

struct Worker {
    model: LoadedModel,
    heads: HeadCache,
    /// Loaded steering per bundle id@version (versions are immutable), the most recent
    /// [`STEERING_KEPT`] of them.
    steering: HashMap<String, Arc<Steering>>,
    steering_order: VecDeque<String>,
    max_prompt_tokens: usize,
}

/// Bundle versions whose loaded steering stays in memory (each is well under a megabyte for the
/// shipped model; the bound matters once many versions are published).
const STEERING_KEPT: usize = 32;

impl Worker {
    fn run(mut self, mut queue: mpsc::Receiver<Work>) {
        while let Some(work) = queue.blocking_recv() {
            let job = match work {
                Work::Generate(job) => job,
                Work::Exclusive(work) => {
                    work(&self.model);
                    continue;
                }
            };
            let events = job.events.clone();
            if events.is_closed() {
                continue; // the client left while the job waited
            }
            let span = job.span.clone();
            let _entered = span.enter();
            if let Err(err) = self.generate(job) {
                tracing::warn!(error = %err, "generation failed");
                let _ = events.blocking_send(EngineEvent::Failed(Arc::new(err)));
            }
        }
    }

    fn steering_for(&mut self, bundle: &Bundle) -> Result<Arc<Steering>, GenerationError> {
        if let Some(steering) = self.steering.get(&bundle.id()) {
            return Ok(Arc::clone(steering));
        }
        let steering = Arc::new(Steering::load(bundle, &self.model)?);
        self.steering.insert(bundle.id(), Arc::clone(&steering));
        self.steering_order.push_back(bundle.id());
        while self.steering_order.len() > STEERING_KEPT {
            if let Some(oldest) = self.steering_order.pop_front() {
                self.steering.remove(&oldest);
            }
        }
        Ok(steering)
    }

    fn generate(&mut self, job: GenerationJob) -> Result<(), GenerationError> {
        let steering = self.steering_for(&job.bundle)?;
        let config = self.model.model.config().clone();
        let budget = config
            .max_position
            .saturating_sub(steering.virtual_positions())
            .saturating_sub(job.params.max_tokens as usize)
            .min(self.max_prompt_tokens);
        let parts = PromptParts {
            system_text: &job.bundle.system_text,
            passages: &job.passages,
            history: &job.history,
            question: &job.question,
        };
        let plan = fusion::plan(&self.model, parts, budget)?;

        let model = &self.model;
        let (head, cached) = self
            .heads
            .get_or_compute(&job.bundle.id(), &plan.head, || compute_head(model, &steering, &plan.head))?;
        // The request's own copy, written in place with room for its tail and answer; the shared
        // head stays as it is.
        let room = plan.tail.len() + job.params.max_tokens as usize;
        let mut cache = head.cache.in_place_copy(room, self.model.model.serving_kv_dtype())?;
        let Some(logits) = prefill(&self.model, &plan.tail, &mut cache, &job.events)? else {
            return Ok(()); // cancelled during prefill
        };
        let started = EngineEvent::Started {
            passages: plan.passages,
            passages_dropped: plan.passages_dropped,
            prompt_tokens: steering.virtual_positions() + plan.head.len() + plan.tail.len(),
            cached_prompt_tokens: if cached { steering.virtual_positions() + plan.head.len() } else { 0 },
        };
        if job.events.blocking_send(started).is_err() {
            return Ok(());
        }
        self.decode(job, cache, logits)
    }

    fn decode(&self, job: GenerationJob, mut cache: KvCache, logits: Tensor) -> Result<(), GenerationError> {
        let model = &self.model;
        let max_position = model.model.config().max_position;
        let mut sampler = Sampler::new(job.params.clone());
        let mut logits: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        let mut generated: Vec<u32> = Vec::new();
        let mut text = TextStream::new(&job.params.stop);
        let mut detokenizer = Detokenizer::default();
        let mut first_token_at = None;
        let decode_started = Instant::now();
        let finish_reason = loop {
            if generated.len() >= job.params.max_tokens as usize {
                break FinishReason::MaxTokens;
            }
            if cache.len() >= max_position {
                break FinishReason::ContextFull;
            }
            let next = sampler.next(&mut logits, &generated);
            if model.tokenizer.is_stop(next) {
                break FinishReason::EndOfText;
            }
            generated.push(next);
            let new_text = detokenizer.next(&generated, |tokens| model.tokenizer.decode(tokens))?;
            let (delta, stopped) = text.push(&new_text);
            if !delta.is_empty() {
                first_token_at.get_or_insert_with(Instant::now);
                if job.events.blocking_send(EngineEvent::Delta(delta)).is_err() {
                    return Ok(()); // cancelled: stop within one token
                }
            }
            if stopped {
                break FinishReason::StopSequence;
            }
            if job.events.is_closed() {
                return Ok(());
            }
            let step = model.model.embed(&ids(&[next])?)?;
            logits =
                model.model.forward(&step, &mut cache, ForwardOptions::SERVE_LAST)?.squeeze(0)?.to_vec1()?;
        };
        if let Some(rest) = text.finish() {
            first_token_at.get_or_insert_with(Instant::now);
            if job.events.blocking_send(EngineEvent::Delta(rest)).is_err() {
                return Ok(());
            }
        }
        let elapsed = decode_started.elapsed().as_secs_f32();
        let finished = EngineEvent::Finished {
            answer: text.emitted,
            output_tokens: generated.len(),
            time_to_first_token: first_token_at.unwrap_or_else(Instant::now).duration_since(job.received_at),
            decode_tokens_per_second: if elapsed > 0.0 { generated.len() as f32 / elapsed } else { 0.0 },
            finish_reason,
        };
        let _ = job.events.blocking_send(finished);
        Ok(())
    }
}

/// The KV after prefix + soft prompt + head text.
fn compute_head(
    model: &LoadedModel,
    steering: &Steering,
    head: &[u32],
) -> Result<HeadState, GenerationError> {
    let config = model.model.config();
    let mut cache = steering.start_cache(config.num_layers)?;
    let text = model.model.embed(&ids(head)?)?;
    let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), text)?;
    model.model.forward(
        &embeds,
        &mut cache,
        ForwardOptions { logits: LogitsAt::None, differentiable: false },
    )?;
    Ok(HeadState { cache, head_tokens: head.to_vec() })
}

/// Runs `tokens` after `cache` in chunks of [`PREFILL_CHUNK`], stopping early (`None`) once nobody
/// waits for the request's events; the logits after the last token otherwise.
fn prefill(
    model: &LoadedModel,
    tokens: &[u32],
    cache: &mut KvCache,
    events: &mpsc::Sender<EngineEvent>,
) -> Result<Option<Tensor>, GenerationError> {
    let chunks: Vec<&[u32]> = tokens.chunks(PREFILL_CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if events.is_closed() {
            return Ok(None);
        }
        let embeds = model.model.embed(&ids(chunk)?)?;
        if i + 1 == chunks.len() {
            return Ok(Some(model.model.forward(&embeds, cache, ForwardOptions::SERVE_LAST)?));
        }
        model.model.forward(
            &embeds,
            cache,
            ForwardOptions { logits: LogitsAt::None, differentiable: false },
        )?;
    }
    Err(GenerationError::Internal("a prompt without tokens after its head".into()))
}

fn ids(tokens: &[u32]) -> Result<Tensor, GenerationError> {
    Ok(Tensor::new(tokens, &candle_core::Device::Cpu)?.unsqueeze(0)?)
}

/// Text for new tokens only: decodes a short window (the tokens since the last emitted text, with
/// the tokens before them as context) instead of the whole answer at every step. The context
/// matters: a byte-level BPE token may be half a character, and some decoders drop a leading space
/// at the start of what they decode; comparing with the context's own text cancels both.
#[derive(Debug, Default)]
pub(crate) struct Detokenizer {
    /// Start of the context tokens.
    context_start: usize,
    /// Start of the tokens whose text is not yet returned.
    unread_start: usize,
}

impl Detokenizer {
    pub(crate) fn next<E>(
        &mut self,
        tokens: &[u32],
        decode: impl Fn(&[u32]) -> Result<String, E>,
    ) -> Result<String, E> {
        let context = decode(&tokens[self.context_start..self.unread_start])?;
        let window = decode(&tokens[self.context_start..])?;
        if window.len() <= context.len() || window.ends_with('\u{FFFD}') || !window.starts_with(&context) {
            return Ok(String::new()); // mid-character: wait for the next token
        }
        self.context_start = self.unread_start;
        self.unread_start = tokens.len();
        Ok(window[context.len()..].to_owned())
    }
}

/// Turns new answer text into deltas: holds back any tail that could be the start of a stop
/// sequence, and cuts the answer at a stop sequence.
#[derive(Debug)]
pub(crate) struct TextStream {
    stops: Vec<String>,
    pub(crate) emitted: String,
    pending: String,
}

impl TextStream {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self { stops: stops.to_vec(), emitted: String::new(), pending: String::new() }
    }

    /// Given the answer's new text, the text safe to emit, and whether a stop matched.
    pub(crate) fn push(&mut self, new_text: &str) -> (String, bool) {
        self.pending.push_str(new_text);
        let whole = format!("{}{}", self.emitted, self.pending);
        if let Some(cut) = self.stops.iter().filter_map(|stop| whole.find(stop.as_str())).min() {
            let delta = whole[self.emitted.len().min(cut)..cut].to_owned();
            self.emitted = whole[..cut].to_owned();
            self.pending.clear();
            return (delta, true);
        }
        let hold = self.stops.iter().map(|stop| longest_suffix_prefix(&whole, stop)).max().unwrap_or(0);
        let safe_end = floor_char_boundary(&whole, whole.len() - hold).max(self.emitted.len());
        let delta = whole[self.emitted.len()..safe_end].to_owned();
        self.emitted.push_str(&delta);
        self.pending = whole[safe_end..].to_owned();
        (delta, false)
    }

    /// Text held back for a stop sequence that never came.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.pending);
        self.emitted.push_str(&rest);
        Some(rest)
    }
}

/// Length of the longest proper prefix of `stop` that `text` ends with.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n])).unwrap_or(0)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::{Detokenizer, TextStream};

    fn run(stops: &[&str], deltas_in: &[&str]) -> (Vec<String>, bool, String) {
        let mut stream = TextStream::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut deltas = Vec::new();
        for step in deltas_in {
            let (delta, stopped) = stream.push(step);
            deltas.push(delta);
            if stopped {
                return (deltas, true, stream.emitted);
            }
        }
        if let Some(rest) = stream.finish() {
            deltas.push(rest);
        }
        (deltas, false, stream.emitted)
    }

    #[test]
    fn a_stop_sequence_cuts_the_answer_and_is_never_emitted() {
        let (deltas, stopped, answer) = run(&["\nQ:"], &["Yes", ".\n", "Q", ":", " more"]);
        assert!(stopped);
        assert_eq!(answer, "Yes.");
        assert_eq!(deltas.concat(), "Yes.");
    }

    #[test]
    fn held_back_text_is_released_when_no_stop_follows() {
        let (deltas, stopped, answer) = run(&["END"], &["it is E", "N", "OUGH"]);
        assert!(!stopped);
        assert_eq!(answer, "it is ENOUGH");
        assert_eq!(deltas.concat(), "it is ENOUGH");
        assert_eq!(deltas[0], "it is ", "the possible start of END waits");
    }

    /// A byte-level decoder: each token is one byte of UTF-8; like some real decoders it drops a
    /// leading space of what it decodes.
    fn decode(tokens: &[u32]) -> Result<String, ()> {
        let bytes: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(text.strip_prefix(' ').map(str::to_owned).unwrap_or(text))
    }

    #[test]
    fn new_text_comes_whole_across_split_characters_and_leading_spaces() {
        let answer = "Oui, café ok";
        let tokens: Vec<u32> = answer.bytes().map(u32::from).collect();
        let mut detokenizer = Detokenizer::default();
        let mut pieces = Vec::new();
        for n in 1..=tokens.len() {
            pieces.push(detokenizer.next(&tokens[..n], decode).unwrap());
        }
        assert_eq!(pieces.concat(), answer);
        let e_acute = answer.find('é').unwrap();
        assert_eq!(pieces[e_acute], "", "half of é waits for its second byte");
        assert_eq!(pieces[e_acute + 1], "é");
        assert_eq!(pieces[answer.rfind(' ').unwrap()], " ", "a space after context is kept");
    }
}
