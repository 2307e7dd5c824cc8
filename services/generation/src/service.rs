//! GenerationService's request flow, independent of any transport: a [`ValidGenerate`] in, a
//! stream of [`AnswerEvent`]s out. Resolves the region's bundle, gets passages (the client's or
//! retrieval's), grounds the answer (see [`crate::grounding`]) on the model engine, and writes the
//! request down in its bundle version's ledger. The gRPC adapter and `rudder eval answers` both call
//! this; a gateway of another protocol would too. Dropping the event receiver (client gone, deadline
//! passed) stops the work within one token.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_core::{
    Bundle, BundleKey, BundleRegistry, Citation, Embedder, Passage, ServiceError,
    bundle::Outcome,
    passage::{PassageSource, cited},
};
use tokio::sync::mpsc;

use crate::{
    EngineEvent, FinishReason, GenerationJob, InferenceEngine, ModelInfo,
    feedback::{FeedbackBook, FeedbackEntry, FeedbackFilter, NewFeedback, ServedAnswer, Turn},
    grounding::{
        self, Evidence, EvidencePrompt, EvidenceSpan, Grounding, GroundingMode, GroundingPolicy, PromptEcho,
        evidence, sentences::sentences,
    },
    ledger::Ledger,
    validation::ValidGenerate,
};

/// Said when the evidence does not answer the question and the bundle sets no hand-over text.
pub const DEFAULT_HANDOVER: &str =
    "Our policies don't cover that question, so I'm passing you to a colleague who can help.";

/// What a request's stream carries, in order: `Started`, then `Delta`s, then `Finished` or `Failed`.
#[derive(Debug)]
pub enum AnswerEvent {
    Started { request_id: String, bundle: Arc<Bundle>, passages: Vec<Passage> },
    Delta(String),
    Finished(Box<FinishedAnswer>),
    Failed(ServiceError),
}

/// The end of an answer: what was said, on what, and how it was grounded.
#[derive(Debug, Clone)]
pub struct FinishedAnswer {
    pub request_id: String,
    pub bundle: Arc<Bundle>,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub evidence: Vec<EvidenceSpan>,
    pub grounding: Grounding,
    pub notes: Vec<String>,
    pub stats: AnswerStats,
}

#[derive(Debug, Clone, Default)]
pub struct AnswerStats {
    pub prompt_tokens: usize,
    pub cached_prompt_tokens: usize,
    pub output_tokens: usize,
    pub time_to_first_token: Duration,
    pub tokens_per_second: f32,
    pub retrieval_ms: u64,
    /// None when no model ran (a quoted or declined answer).
    pub finish_reason: Option<FinishReason>,
    pub retrieval_skipped: bool,
    pub passages_trimmed: usize,
}

/// A whole answer, collected from its stream.
#[derive(Debug, Clone)]
pub struct CollectedAnswer {
    pub passages: Vec<Passage>,
    /// The model's own answer before grounding changed it (empty when no model ran).
    pub finished: FinishedAnswer,
}

#[derive(Debug, Clone)]
pub struct GenerationService {
    engine: Arc<dyn InferenceEngine>,
    bundles: Arc<dyn BundleRegistry>,
    retrieval: Arc<dyn PassageSource>,
    feedback: Arc<FeedbackBook>,
    embedder: Option<Arc<dyn Embedder>>,
    grounding: GroundingPolicy,
}

impl GenerationService {
    pub fn new(
        engine: Arc<dyn InferenceEngine>,
        bundles: Arc<dyn BundleRegistry>,
        retrieval: Arc<dyn PassageSource>,
        feedback: Arc<FeedbackBook>,
    ) -> Self {
        Self { engine, bundles, retrieval, feedback, embedder: None, grounding: GroundingPolicy::default() }
    }

    /// Evidence is ranked by meaning with this embedder (by words alone without one).
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    pub fn with_grounding(mut self, grounding: GroundingPolicy) -> Self {
        self.grounding = grounding;
        self
    }

    pub fn model_info(&self) -> &ModelInfo {
        self.engine.info()
    }

    pub fn context_length(&self) -> usize {
        self.engine.info().config.max_position
    }

    /// Starts answering; everything that can fail before the first event fails here.
    pub async fn generate(&self, valid: ValidGenerate) -> Result<mpsc::Receiver<AnswerEvent>, ServiceError> {
        let received_at = Instant::now();
        let key = BundleKey { region: valid.region.clone(), brand: valid.brand.clone() };
        // Without a conversation id the request is its own conversation for the A/B split.
        let conversation =
            if valid.conversation_id.is_empty() { &valid.request_id } else { &valid.conversation_id };
        let bundle = self.bundles.route(&key, valid.bundle_version, conversation)?;
        let mut ledger = Ledger::new(
            Arc::clone(&self.bundles),
            Arc::clone(&self.feedback),
            Arc::clone(&bundle),
            received_at,
            served_answer(&valid, &bundle),
        );
        let (out, events) = mpsc::channel(64);
        let mut run = Run {
            request_id: valid.request_id.clone(),
            bundle: Arc::clone(&bundle),
            received_at,
            stats: AnswerStats::default(),
            out,
        };
        match self.prepare(&valid, &mut run).await {
            Ok(plan) => {
                tokio::spawn(run.drive(plan, ledger));
                Ok(events)
            }
            Err(err) => {
                ledger.record(Outcome::of_failure(&err), None);
                Err(err)
            }
        }
    }

    /// Runs a request to its end and returns the whole answer (GenerateOnce, evaluation).
    pub async fn answer(&self, valid: ValidGenerate) -> Result<CollectedAnswer, ServiceError> {
        let mut events = self.generate(valid).await?;
        let mut passages = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                AnswerEvent::Started { passages: given, .. } => passages = given,
                AnswerEvent::Delta(_) => {}
                AnswerEvent::Finished(finished) => {
                    return Ok(CollectedAnswer { passages, finished: *finished });
                }
                AnswerEvent::Failed(err) => return Err(err),
            }
        }
        Err(ServiceError::Internal("the answer ended without finishing".into()))
    }

    /// Passages, evidence, and the model job queued when one is needed: a full queue is refused here,
    /// before anything streams.
    async fn prepare(&self, valid: &ValidGenerate, run: &mut Run) -> Result<Plan, ServiceError> {
        let retrieval_started = Instant::now();
        let passages = if !valid.passages.is_empty() {
            valid.passages.clone()
        } else {
            match self.retrieval.retrieve(valid.passage_query(&run.bundle)).await {
                Ok(passages) => passages,
                Err(ServiceError::Unavailable(reason)) if valid.allow_without_passages => {
                    tracing::warn!(%reason, "answering without passages");
                    run.stats.retrieval_skipped = true;
                    Vec::new()
                }
                Err(err) => return Err(err),
            }
        };
        run.stats.retrieval_ms = retrieval_started.elapsed().as_millis() as u64;
        let policy =
            GroundingPolicy { mode: valid.grounding.unwrap_or(self.grounding.mode), ..self.grounding };
        if policy.mode == GroundingMode::Off {
            let engine = self.queue(valid, &run.bundle, passages.clone(), run.received_at)?;
            return Ok(Plan { passages, evidence: Evidence::default(), step: Step::Stream(engine) });
        }
        let evidence = self.select_evidence(&valid.question, &passages).await;
        let step = if grounding::should_decline(&evidence, &policy) {
            Step::Decline
        } else if !policy.mode.runs_model() || evidence.sentences.is_empty() {
            Step::Quote
        } else {
            let prompt = EvidencePrompt::new(&evidence, &passages);
            let engine = self.queue(valid, &run.bundle, prompt.passages.clone(), run.received_at)?;
            Step::Ground { engine, prompt, verify: policy.mode.verifies() }
        };
        Ok(Plan { passages, evidence, step })
    }

    fn queue(
        &self,
        valid: &ValidGenerate,
        bundle: &Arc<Bundle>,
        passages: Vec<Passage>,
        received_at: Instant,
    ) -> Result<mpsc::Receiver<EngineEvent>, ServiceError> {
        let (events, receiver) = mpsc::channel(64);
        let job = GenerationJob {
            bundle: Arc::clone(bundle),
            passages,
            history: valid.history.clone(),
            question: valid.question.clone(),
            params: valid.sampling(bundle),
            received_at,
            span: tracing::Span::current(),
            events,
        };
        self.engine.submit(job)?;
        Ok(receiver)
    }

    /// The evidence; ranked by words alone if the embedder fails (it is a ranking aid, not a gate).
    async fn select_evidence(&self, question: &str, passages: &[Passage]) -> Evidence {
        let (question, passages_owned) = (question.to_owned(), passages.to_vec());
        let embedder = self.embedder.clone();
        let selected = tokio::task::spawn_blocking(move || {
            evidence::select(&question, &passages_owned, embedder.as_deref()).or_else(|err| {
                tracing::warn!(error = %err, "ranking evidence by words alone");
                evidence::select(&question, &passages_owned, None)
            })
        })
        .await;
        match selected {
            Ok(Ok(evidence)) => evidence,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "no evidence selected");
                Evidence::default()
            }
            Err(err) => {
                tracing::warn!(error = %err, "evidence selection stopped");
                Evidence::default()
            }
        }
    }

    pub async fn submit_feedback(&self, feedback: NewFeedback) -> Result<FeedbackEntry, ServiceError> {
        let book = Arc::clone(&self.feedback);
        // The append is synced to disk: keep it off the async threads.
        let entry = tokio::task::spawn_blocking(move || book.submit(feedback))
            .await
            .map_err(|err| ServiceError::Internal(err.to_string()))??;
        tracing::info!(feedback_id = %entry.feedback_id, request_id = %entry.served.request_id, "feedback stored");
        Ok(entry)
    }

    pub fn list_feedback(
        &self,
        filter: &FeedbackFilter,
    ) -> Result<(Vec<FeedbackEntry>, String), ServiceError> {
        self.feedback.list(filter)
    }
}

fn served_answer(valid: &ValidGenerate, bundle: &Bundle) -> ServedAnswer {
    ServedAnswer {
        request_id: valid.request_id.clone(),
        conversation_id: valid.conversation_id.clone(),
        region: valid.region.clone(),
        brand: valid.brand.clone(),
        bundle_version: bundle.version,
        history: valid
            .history
            .iter()
            .map(|m| Turn { role: m.role.as_str().to_owned(), content: m.content.clone() })
            .collect(),
        question: valid.question.clone(),
        passages: Vec::new(),
        answer: String::new(),
    }
}

/// What a request will do once it streams.
struct Plan {
    passages: Vec<Passage>,
    evidence: Evidence,
    step: Step,
}

enum Step {
    /// Grounding off: the model's tokens as they come.
    Stream(mpsc::Receiver<EngineEvent>),
    /// The model answers from the evidence; the answer is settled (verified) or passed on whole.
    Ground { engine: mpsc::Receiver<EngineEvent>, prompt: EvidencePrompt, verify: bool },
    /// The deciding evidence quoted.
    Quote,
    /// The hand-over.
    Decline,
}

/// One request's streaming half.
struct Run {
    request_id: String,
    bundle: Arc<Bundle>,
    received_at: Instant,
    stats: AnswerStats,
    out: mpsc::Sender<AnswerEvent>,
}

/// The client went away: nothing more to do.
struct Gone;

impl Run {
    async fn drive(mut self, plan: Plan, mut ledger: Ledger) {
        let Plan { passages, evidence, step } = plan;
        let result = match step {
            Step::Stream(engine) => self.stream(engine, &mut ledger).await,
            Step::Ground { engine, prompt, verify } => {
                self.ground(engine, &passages, &evidence, &prompt, verify, &mut ledger).await
            }
            Step::Quote => {
                let answer = grounding::extractive_answer(&evidence);
                self.settled(&passages, &evidence, answer, Grounding::Extractive, Vec::new(), &mut ledger)
                    .await
            }
            Step::Decline => {
                let handover = if self.bundle.handover_text.is_empty() {
                    DEFAULT_HANDOVER.to_owned()
                } else {
                    self.bundle.handover_text.clone()
                };
                let note = match evidence.best() {
                    Some(best) => {
                        format!("the best evidence scored {:.2}, below the decline threshold", best.score)
                    }
                    None => "no evidence was found".to_owned(),
                };
                self.settled(&passages, &evidence, handover, Grounding::Declined, vec![note], &mut ledger)
                    .await
            }
        };
        if let Err(Gone) = result {
            ledger.record(Outcome::Cancelled, None);
        }
    }

    async fn send(&self, event: AnswerEvent) -> Result<(), Gone> {
        self.out.send(event).await.map_err(|_| Gone)
    }

    async fn started(&self, passages: &[Passage]) -> Result<(), Gone> {
        self.send(AnswerEvent::Started {
            request_id: self.request_id.clone(),
            bundle: Arc::clone(&self.bundle),
            passages: passages.to_vec(),
        })
        .await
    }

    async fn failed(&self, ledger: &mut Ledger, err: ServiceError) -> Result<(), Gone> {
        ledger.record(Outcome::Error, None);
        self.send(AnswerEvent::Failed(err)).await
    }

    /// Grounding off: the engine's events passed on as they come.
    async fn stream(
        &mut self,
        mut engine: mpsc::Receiver<EngineEvent>,
        ledger: &mut Ledger,
    ) -> Result<(), Gone> {
        let mut given = Vec::new();
        while let Some(event) = engine.recv().await {
            match event {
                EngineEvent::Started { passages, passages_dropped, prompt_tokens, cached_prompt_tokens } => {
                    self.stats.passages_trimmed = passages_dropped;
                    (self.stats.prompt_tokens, self.stats.cached_prompt_tokens) =
                        (prompt_tokens, cached_prompt_tokens);
                    self.started(&passages).await?;
                    given = passages;
                }
                EngineEvent::Delta(text) => self.send(AnswerEvent::Delta(text)).await?,
                EngineEvent::Finished {
                    answer,
                    output_tokens,
                    time_to_first_token,
                    decode_tokens_per_second,
                    finish_reason,
                } => {
                    self.stats.output_tokens = output_tokens;
                    self.stats.time_to_first_token = time_to_first_token;
                    self.stats.tokens_per_second = decode_tokens_per_second;
                    self.stats.finish_reason = Some(finish_reason);
                    ledger.finished(&given, &answer, time_to_first_token);
                    let finished =
                        self.finished(&given, answer, Vec::new(), Grounding::Unchecked, Vec::new());
                    return self.send(AnswerEvent::Finished(Box::new(finished))).await;
                }
                EngineEvent::Failed(err) => {
                    return self.failed(ledger, ServiceError::from(err.as_ref())).await;
                }
            }
        }
        self.worker_gone(ledger).await
    }

    /// The model answers from the evidence; its answer is settled before any of it is sent.
    async fn ground(
        &mut self,
        mut engine: mpsc::Receiver<EngineEvent>,
        passages: &[Passage],
        evidence: &Evidence,
        prompt: &EvidencePrompt,
        verify: bool,
        ledger: &mut Ledger,
    ) -> Result<(), Gone> {
        self.started(passages).await?;
        while let Some(event) = engine.recv().await {
            if self.out.is_closed() {
                return Err(Gone); // dropping `engine` stops the worker
            }
            match event {
                EngineEvent::Started { prompt_tokens, cached_prompt_tokens, passages_dropped, .. } => {
                    (self.stats.prompt_tokens, self.stats.cached_prompt_tokens) =
                        (prompt_tokens, cached_prompt_tokens);
                    self.stats.passages_trimmed = passages_dropped;
                }
                EngineEvent::Delta(_) => {}
                EngineEvent::Finished {
                    answer,
                    output_tokens,
                    decode_tokens_per_second,
                    finish_reason,
                    ..
                } => {
                    self.stats.output_tokens = output_tokens;
                    self.stats.tokens_per_second = decode_tokens_per_second;
                    self.stats.finish_reason = Some(finish_reason);
                    let (answer, grounding, notes) = if verify {
                        let headers = grounding::passage_headers(&prompt.passages);
                        let echo = PromptEcho { system_text: &self.bundle.system_text, headers: &headers };
                        let settled = grounding::settle(&answer, prompt, evidence, echo);
                        (settled.answer, settled.grounding, settled.notes)
                    } else {
                        (renumber(&answer, prompt), Grounding::Unchecked, Vec::new())
                    };
                    return self.settled(passages, evidence, answer, grounding, notes, ledger).await;
                }
                EngineEvent::Failed(err) => {
                    return self.failed(ledger, ServiceError::from(err.as_ref())).await;
                }
            }
        }
        self.worker_gone(ledger).await
    }

    /// Sends a settled answer sentence by sentence, then its end. `Started` has been sent unless no
    /// model ran.
    async fn settled(
        &mut self,
        passages: &[Passage],
        evidence: &Evidence,
        answer: String,
        grounding: Grounding,
        notes: Vec<String>,
        ledger: &mut Ledger,
    ) -> Result<(), Gone> {
        if self.stats.finish_reason.is_none() {
            self.started(passages).await?;
        }
        let mut sent = 0;
        for span in sentences(&answer) {
            if sent == 0 {
                self.stats.time_to_first_token = self.received_at.elapsed();
            }
            self.send(AnswerEvent::Delta(answer[sent..span.end].to_owned())).await?;
            sent = span.end;
        }
        if sent < answer.len() {
            self.send(AnswerEvent::Delta(answer[sent..].to_owned())).await?;
        }
        ledger.finished(passages, &answer, self.stats.time_to_first_token);
        let mut finished =
            self.finished(passages, answer, grounding::spans(evidence, passages), grounding, notes);
        finished.stats.time_to_first_token = self.stats.time_to_first_token;
        self.send(AnswerEvent::Finished(Box::new(finished))).await
    }

    fn finished(
        &self,
        passages: &[Passage],
        answer: String,
        evidence: Vec<EvidenceSpan>,
        grounding: Grounding,
        notes: Vec<String>,
    ) -> FinishedAnswer {
        FinishedAnswer {
            request_id: self.request_id.clone(),
            bundle: Arc::clone(&self.bundle),
            citations: cited(&answer, passages),
            answer,
            evidence,
            grounding,
            notes,
            stats: self.stats.clone(),
        }
    }

    /// The worker dropped the job without finishing it: say so instead of ending the stream as if it
    /// were complete (a client would otherwise wait for stats that never come).
    async fn worker_gone(&self, ledger: &mut Ledger) -> Result<(), Gone> {
        let err = ServiceError::Internal("the model worker ended the request without finishing it".into());
        self.failed(ledger, err).await
    }
}

/// An unchecked answer to the evidence prompt with its markers counted over the retrieved passages.
fn renumber(answer: &str, prompt: &EvidencePrompt) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..=open]);
        rest = after;
        if digits > 0
            && after[digits..].starts_with(']')
            && let Ok(marker) = after[..digits].parse::<usize>()
            && let Some(&source) = marker.checked_sub(1).and_then(|i| prompt.sources.get(i))
        {
            out.push_str(&(source + 1).to_string());
            rest = &after[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_maps_evidence_markers_to_retrieved_passages_and_leaves_others() {
        let prompt = EvidencePrompt { passages: Vec::new(), sources: vec![3, 0] };
        assert_eq!(renumber("A [1], b [2], c [5] [x].", &prompt), "A [4], b [1], c [5] [x].");
    }
}
