//! GenerationService's request flow, independent of any transport: a [`ValidGenerate`] in, a
//! stream of [`AnswerEvent`]s out. Resolves the region's bundle, gets passages (the client's or
//! retrieval's), grounds the answer (see [`crate::grounding`]) on the model engine, and writes the
//! request down in its bundle version's ledger. The gRPC adapter and `rudder eval answers` both call
//! this; a gateway of another protocol would too. Dropping the event receiver (client gone, deadline
//! passed) stops the work within one token.

use std::{sync::Arc, time::Instant};

use rudder_core::{
    Bundle, BundleKey, BundleRegistry, Embedder, Passage, ServiceError, bundle::Outcome,
    passage::PassageSource,
};
use tokio::sync::mpsc;

use crate::{
    EngineEvent, GenerationJob, InferenceEngine, ModelInfo,
    answer::{AnswerEvent, AnswerStats, CollectedAnswer},
    feedback::{FeedbackBook, FeedbackEntry, FeedbackFilter, NewFeedback, ServedAnswer, Turn},
    grounding::{self, Evidence, EvidencePrompt, GroundingMode, GroundingPolicy, RegionNames, evidence},
    ledger::Ledger,
    stream::{Plan, Run, Step},
    validation::ValidGenerate,
};

#[derive(Debug, Clone)]
pub struct GenerationService {
    engine: Arc<dyn InferenceEngine>,
    bundles: Arc<dyn BundleRegistry>,
    retrieval: Arc<dyn PassageSource>,
    feedback: Arc<FeedbackBook>,
    embedder: Option<Arc<dyn Embedder>>,
    grounding: GroundingPolicy,
    region_names: Arc<RegionNames>,
}

impl GenerationService {
    pub fn new(
        engine: Arc<dyn InferenceEngine>,
        bundles: Arc<dyn BundleRegistry>,
        retrieval: Arc<dyn PassageSource>,
        feedback: Arc<FeedbackBook>,
    ) -> Self {
        Self {
            engine,
            bundles,
            retrieval,
            feedback,
            embedder: None,
            grounding: GroundingPolicy::default(),
            region_names: Arc::default(),
        }
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

    /// How regions are named in policy text: in a document shared by several regions, a sentence
    /// about another region only is never evidence (see [`grounding::regions`]).
    pub fn with_region_names(mut self, names: RegionNames) -> Self {
        self.region_names = Arc::new(names);
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
        let region = run.bundle.retrieval_regions.first().unwrap_or(&valid.region).clone();
        let evidence = self.select_evidence(&valid.question, &passages, region).await;
        // With no evidence at all there is nothing to ground on, whatever the mode: hand over.
        let step = if evidence.sentences.is_empty() || grounding::should_decline(&evidence, &policy) {
            Step::Decline
        } else if !policy.mode.runs_model() {
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
    async fn select_evidence(&self, question: &str, passages: &[Passage], region: String) -> Evidence {
        let (question, passages_owned) = (question.to_owned(), passages.to_vec());
        let (embedder, names) = (self.embedder.clone(), Arc::clone(&self.region_names));
        let selected = tokio::task::spawn_blocking(move || {
            let audience = names.audience(&region);
            evidence::select(&question, &passages_owned, embedder.as_deref(), Some(&audience)).or_else(
                |err| {
                    tracing::warn!(error = %err, "ranking evidence by words alone");
                    evidence::select(&question, &passages_owned, None, Some(&audience))
                },
            )
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
