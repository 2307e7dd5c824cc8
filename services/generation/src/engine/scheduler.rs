//! Continuous batching on the model thread. Each turn of the loop:
//! 1. admits queued requests while the batch has room (at most `max_batch` running, their KV
//!    caches within `kv_cache_bytes`): each gets its bundle's steering and head (from the head
//!    cache) and its own in-place copy of that head;
//! 2. prefills one chunk of the oldest request still prefilling, so a long prompt delays the
//!    running answers by one chunk at a time, never by its whole length;
//! 3. takes one decode step for every decoding request together (`Llama::decode_batch`: each
//!    weight matrix read once for all of them, each request attending over its own cache);
//! 4. lets go of requests that finished, failed or whose client left: their slot is free for the
//!    next turn.
//!
//! Requests are admitted in arrival order and each running request gets one token per step, so
//! none waits behind another's whole answer. Exclusive work (an evaluation run) waits until the
//! running requests are done, and nothing new is admitted meanwhile.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use rudder_core::Bundle;
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, LogitsAt};
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::{EngineConfig, EngineEvent, GenerationJob, Work, sequence::Sequence};
use crate::{
    GenerationError,
    fusion::{self, PromptParts},
    head_cache::{HeadCache, HeadState},
    steering::Steering,
};

/// Bundle versions whose loaded steering stays in memory (each is well under a megabyte for the
/// shipped model; the bound matters once many versions are published).
const STEERING_KEPT: usize = 32;

/// How long a turn with nothing to compute waits before looking again (only while finished
/// requests still have events their clients have not read).
const IDLE_WAIT: Duration = Duration::from_millis(2);

pub(super) struct Scheduler {
    model: LoadedModel,
    heads: HeadCache,
    /// Loaded steering per bundle id@version (versions are immutable), the most recent
    /// [`STEERING_KEPT`] of them.
    steering: HashMap<String, Arc<Steering>>,
    steering_order: VecDeque<String>,
    config: EngineConfig,
    running: Vec<Sequence>,
    /// Taken from the queue but not yet admitted: it waits for room in the batch (a request) or
    /// for the batch to empty (exclusive work).
    held: Option<Work>,
}

impl Scheduler {
    pub(super) fn new(model: LoadedModel, config: EngineConfig) -> Self {
        Self {
            heads: HeadCache::new(config.head_cache_bytes),
            model,
            steering: HashMap::new(),
            steering_order: VecDeque::new(),
            config,
            running: Vec::new(),
            held: None,
        }
    }

    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Work>) {
        loop {
            if self.running.is_empty() && self.held.is_none() {
                match queue.blocking_recv() {
                    Some(work) => self.held = Some(work),
                    None => return,
                }
            }
            let queue_closed = self.admit(&mut queue);
            let computed = self.prefill_one_chunk() | self.decode_step();
            self.running.retain_mut(|sequence| !sequence.is_gone());
            if queue_closed && self.running.is_empty() && self.held.is_none() {
                return;
            }
            if !computed && !self.running.is_empty() {
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }

    /// Takes work from the queue while it can start; true once the queue is closed.
    fn admit(&mut self, queue: &mut mpsc::Receiver<Work>) -> bool {
        loop {
            let work = match self.held.take() {
                Some(work) => work,
                None => match queue.try_recv() {
                    Ok(work) => work,
                    Err(TryRecvError::Empty) => return false,
                    Err(TryRecvError::Disconnected) => return true,
                },
            };
            match work {
                Work::Exclusive(work) if self.running.is_empty() => work(&self.model),
                Work::Generate(job) if job.events.is_closed() => {} // the client left while it waited
                Work::Generate(job) if self.has_room_for(&job) => {
                    let span = job.span.clone();
                    let _entered = span.enter();
                    let events = job.events.clone();
                    match self.start(job) {
                        Ok(sequence) => self.running.push(sequence),
                        Err(err) => {
                            tracing::warn!(error = %err, "generation failed");
                            let _ = events.try_send(EngineEvent::Failed(Arc::new(err)));
                        }
                    }
                }
                waiting => {
                    self.held = Some(waiting);
                    return false;
                }
            }
        }
    }

    fn computing(&self) -> impl Iterator<Item = &Sequence> {
        self.running.iter().filter(|sequence| !sequence.is_done())
    }

    /// Room for `job`: a free slot, and its cache's reservation within the KV budget.
    fn has_room_for(&self, job: &GenerationJob) -> bool {
        let computing = self.computing().count();
        let reserved: usize = self.computing().map(|sequence| sequence.reserved_bytes).sum();
        // An empty batch always takes a request: a budget smaller than one request would
        // otherwise stall the queue.
        computing == 0
            || (computing < self.config.max_batch.max(1)
                && reserved + self.reservation(job.params.max_tokens as usize) <= self.config.kv_cache_bytes)
    }

    /// KV bytes a request may grow to: the largest prompt it may have, plus its answer.
    fn reservation(&self, max_tokens: usize) -> usize {
        let config = self.model.model.config();
        let positions = (self.config.max_prompt_tokens + max_tokens).min(config.max_position);
        let element = self.model.model.serving_kv_dtype().size_in_bytes();
        positions * config.num_layers * 2 * config.num_kv_heads * config.head_dim * element
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

    /// Plans the prompt and gives the request its copy of the bundle's head.
    fn start(&mut self, job: GenerationJob) -> Result<Sequence, GenerationError> {
        let steering = self.steering_for(&job.bundle)?;
        let config = self.model.model.config().clone();
        let budget = config
            .max_position
            .saturating_sub(steering.virtual_positions())
            .saturating_sub(job.params.max_tokens as usize)
            .min(self.config.max_prompt_tokens);
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
        let cache = head.cache.in_place_copy(room, self.model.model.serving_kv_dtype())?;
        if plan.tail.is_empty() {
            return Err(GenerationError::Internal("a prompt without tokens after its head".into()));
        }
        let started = EngineEvent::Started {
            passages: plan.passages,
            passages_dropped: plan.passages_dropped,
            prompt_tokens: steering.virtual_positions() + plan.head.len() + plan.tail.len(),
            cached_prompt_tokens: if cached { steering.virtual_positions() + plan.head.len() } else { 0 },
        };
        let reserved = self.reservation(job.params.max_tokens as usize);
        Ok(Sequence::new(job, cache, plan.tail, started, reserved))
    }

    /// One chunk of the oldest prompt still prefilling; true if it ran.
    fn prefill_one_chunk(&mut self) -> bool {
        for sequence in &mut self.running {
            sequence.drop_if_cancelled();
        }
        let Some(sequence) = self.running.iter_mut().find(|sequence| sequence.is_prefilling()) else {
            return false;
        };
        let span = sequence.span();
        let _entered = span.enter();
        if let Err(err) = sequence.prefill_chunk(&self.model) {
            sequence.fail(err);
        }
        true
    }

    /// Every decoding request's next token, then one forward step for all that go on; true if a
    /// step ran.
    fn decode_step(&mut self) -> bool {
        let mut stepping: Vec<(usize, u32)> = Vec::new();
        for (index, sequence) in self.running.iter_mut().enumerate() {
            if !sequence.is_decoding() {
                continue;
            }
            let span = sequence.span();
            let _entered = span.enter();
            match sequence.next_token(&self.model) {
                Ok(Some(token)) => stepping.push((index, token)),
                Ok(None) => {}
                Err(err) => sequence.fail(err),
            }
        }
        if stepping.is_empty() {
            return false;
        }
        let tokens: Vec<u32> = stepping.iter().map(|&(_, token)| token).collect();
        let mut caches: Vec<&mut KvCache> = Vec::with_capacity(stepping.len());
        let mut stepping_indices = stepping.iter().map(|&(index, _)| index).peekable();
        for (index, sequence) in self.running.iter_mut().enumerate() {
            if stepping_indices.next_if_eq(&index).is_some() {
                caches.push(sequence.cache_mut());
            }
        }
        match self.model.model.decode_batch(&tokens, &mut caches) {
            Ok(logits) => {
                for ((index, _), logits) in stepping.into_iter().zip(logits) {
                    self.running[index].stepped(logits);
                }
            }
            Err(err) => {
                let err = GenerationError::from(err);
                for (index, _) in stepping {
                    self.running[index]
                        .fail(GenerationError::Internal(format!("a batched decode step failed: {err}")));
                }
            }
        }
        true
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
    let text =
        model.model.embed(&candle_core::Tensor::new(head, &candle_core::Device::Cpu)?.unsqueeze(0)?)?;
    let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), text)?;
    model.model.forward(
        &embeds,
        &mut cache,
        ForwardOptions { logits: LogitsAt::None, differentiable: false },
    )?;
    Ok(HeadState { cache, head_tokens: head.to_vec() })
}
