//! One admitted request on the scheduler: its own KV cache (a copy of its bundle's head, written in
//! place), its prompt's tail prefilled chunk by chunk, then its decoding state, and the events its
//! client gets. Nothing here is shared with another request, so a bundle swap or a rollback never
//! touches a request already running.

use std::{collections::VecDeque, time::Instant};

use candle_core::Tensor;
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, LogitsAt};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{
    EngineEvent, FinishReason, GenerationJob,
    text::{Detokenizer, TextStream},
};
use crate::{GenerationError, sampler::Sampler};

/// Tokens prefilled between two decode steps of the others, and between two checks that the
/// request is still wanted: a long prompt delays the running answers by one chunk at a time, and a
/// request whose client left frees its slot within one chunk.
pub(super) const PREFILL_CHUNK: usize = 256;

/// Events a client may leave unread before its request is cancelled: the scheduler never waits
/// for one client (the batch would wait with it), so what the channel has no room for waits here.
const UNREAD_LIMIT: usize = 4096;

pub(super) struct Sequence {
    job: GenerationJob,
    cache: KvCache,
    /// KV bytes held against the scheduler's budget while the request runs.
    pub(super) reserved_bytes: usize,
    phase: Phase,
    outbox: Outbox,
}

enum Phase {
    /// Prompt tokens after the head, prefilled up to `next`; `started` goes to the client after the
    /// last chunk.
    Prefilling {
        tail: Vec<u32>,
        next: usize,
        started: Option<EngineEvent>,
    },
    Decoding(Box<Decoding>),
    /// Finished, failed or cancelled: it computes nothing more (its events may still wait).
    Done,
}

struct Decoding {
    sampler: Sampler,
    /// The logits the next token is sampled from.
    logits: Vec<f32>,
    generated: Vec<u32>,
    text: TextStream,
    detokenizer: Detokenizer,
    first_token_at: Option<Instant>,
    started_at: Instant,
}

impl Sequence {
    pub(super) fn new(
        job: GenerationJob,
        cache: KvCache,
        tail: Vec<u32>,
        started: EngineEvent,
        reserved_bytes: usize,
    ) -> Self {
        let outbox = Outbox::new(job.events.clone());
        let phase = Phase::Prefilling { tail, next: 0, started: Some(started) };
        Self { job, cache, reserved_bytes, phase, outbox }
    }

    pub(super) fn span(&self) -> tracing::Span {
        self.job.span.clone()
    }

    pub(super) fn is_prefilling(&self) -> bool {
        matches!(self.phase, Phase::Prefilling { .. })
    }

    pub(super) fn is_decoding(&self) -> bool {
        matches!(self.phase, Phase::Decoding(_))
    }

    /// Done computing (its slot and KV budget are free).
    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Done and nothing left to deliver: it can go.
    pub(super) fn is_gone(&mut self) -> bool {
        self.is_done() && !self.outbox.flush()
    }

    /// Stops a request whose client left.
    pub(super) fn drop_if_cancelled(&mut self) {
        if !self.is_done() && self.outbox.is_closed() {
            self.finish_computing();
        }
    }

    pub(super) fn fail(&mut self, err: GenerationError) {
        tracing::warn!(parent: &self.job.span, error = %err, "generation failed");
        self.outbox.send(EngineEvent::Failed(std::sync::Arc::new(err)));
        self.finish_computing();
    }

    fn finish_computing(&mut self) {
        self.phase = Phase::Done;
        // The cache's memory goes now, not when the last event is read.
        self.cache = KvCache::new(0);
    }

    /// Runs the next chunk of the prompt's tail; after the last one the client hears that decoding
    /// starts, with the logits the first token is sampled from.
    pub(super) fn prefill_chunk(&mut self, model: &LoadedModel) -> Result<(), GenerationError> {
        let Phase::Prefilling { tail, next, started } = &mut self.phase else { return Ok(()) };
        let end = (*next + PREFILL_CHUNK).min(tail.len());
        let embeds = model.model.embed(&ids(&tail[*next..end])?)?;
        if end < tail.len() {
            let options = ForwardOptions { logits: LogitsAt::None, differentiable: false };
            model.model.forward(&embeds, &mut self.cache, options)?;
            *next = end;
            return Ok(());
        }
        let logits = model.model.forward(&embeds, &mut self.cache, ForwardOptions::SERVE_LAST)?;
        if let Some(started) = started.take() {
            self.outbox.send(started);
        }
        self.phase = Phase::Decoding(Box::new(Decoding {
            sampler: Sampler::new(self.job.params.clone()),
            logits: logits.squeeze(0)?.to_vec1()?,
            generated: Vec::new(),
            text: TextStream::new(&self.job.params.stop),
            detokenizer: Detokenizer::default(),
            first_token_at: None,
            started_at: Instant::now(),
        }));
        Ok(())
    }

    /// Samples the next token and sends its text. The token when it needs a forward step (then
    /// [`Self::stepped`] takes the step's logits); None when the answer ended (the client has had
    /// its last event) or the client left.
    pub(super) fn next_token(&mut self, model: &LoadedModel) -> Result<Option<u32>, GenerationError> {
        let Phase::Decoding(decoding) = &mut self.phase else { return Ok(None) };
        let d = decoding.as_mut();
        let max_position = model.model.config().max_position;
        let finish = if d.generated.len() >= self.job.params.max_tokens as usize {
            Some(FinishReason::MaxTokens)
        } else if self.cache.len() >= max_position {
            Some(FinishReason::ContextFull)
        } else {
            let next = d.sampler.next(&mut d.logits, &d.generated);
            if model.tokenizer.is_stop(next) {
                Some(FinishReason::EndOfText)
            } else {
                d.generated.push(next);
                let new_text = d.detokenizer.next(&d.generated, |tokens| model.tokenizer.decode(tokens))?;
                let (delta, stopped) = d.text.push(&new_text);
                if !delta.is_empty() {
                    d.first_token_at.get_or_insert_with(Instant::now);
                    self.outbox.send(EngineEvent::Delta(delta));
                }
                if stopped {
                    Some(FinishReason::StopSequence)
                } else if self.outbox.is_closed() {
                    self.finish_computing();
                    return Ok(None);
                } else {
                    return Ok(Some(next));
                }
            }
        };
        if let Some(reason) = finish {
            self.finish(reason);
        }
        Ok(None)
    }

    /// This sequence's cache, for its step in a batch.
    pub(super) fn cache_mut(&mut self) -> &mut KvCache {
        &mut self.cache
    }

    /// The logits of the step that ran the token [`Self::next_token`] gave.
    pub(super) fn stepped(&mut self, logits: Vec<f32>) {
        if let Phase::Decoding(decoding) = &mut self.phase {
            decoding.logits = logits;
        }
    }

    fn finish(&mut self, reason: FinishReason) {
        let Phase::Decoding(decoding) = &mut self.phase else { return };
        let d = decoding.as_mut();
        if let Some(rest) = d.text.finish() {
            d.first_token_at.get_or_insert_with(Instant::now);
            self.outbox.send(EngineEvent::Delta(rest));
        }
        let elapsed = d.started_at.elapsed().as_secs_f32();
        let finished = EngineEvent::Finished {
            answer: std::mem::take(&mut d.text.emitted),
            output_tokens: d.generated.len(),
            time_to_first_token: d
                .first_token_at
                .unwrap_or_else(Instant::now)
                .duration_since(self.job.received_at),
            decode_tokens_per_second: if elapsed > 0.0 { d.generated.len() as f32 / elapsed } else { 0.0 },
            finish_reason: reason,
        };
        self.outbox.send(finished);
        self.finish_computing();
    }
}

fn ids(tokens: &[u32]) -> Result<Tensor, GenerationError> {
    Ok(Tensor::new(tokens, &candle_core::Device::Cpu)?.unsqueeze(0)?)
}

/// A client's events, sent without ever blocking: what its channel has no room for waits here and
/// goes on a later iteration.
struct Outbox {
    events: mpsc::Sender<EngineEvent>,
    waiting: VecDeque<EngineEvent>,
    closed: bool,
}

impl Outbox {
    fn new(events: mpsc::Sender<EngineEvent>) -> Self {
        Self { events, waiting: VecDeque::new(), closed: false }
    }

    fn send(&mut self, event: EngineEvent) {
        if !self.closed {
            self.waiting.push_back(event);
            self.flush();
        }
    }

    /// Sends what waits; true while events still wait for room.
    fn flush(&mut self) -> bool {
        while let Some(event) = self.waiting.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.waiting.push_front(event);
                    break;
                }
                Err(TrySendError::Closed(_)) => self.close(),
            }
        }
        if self.waiting.len() > UNREAD_LIMIT {
            self.close();
        }
        !self.waiting.is_empty()
    }

    fn close(&mut self) {
        self.closed = true;
        self.waiting.clear();
    }

    fn is_closed(&self) -> bool {
        self.closed || self.events.is_closed()
    }
}
