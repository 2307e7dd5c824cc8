//! GenerationService over gRPC: validates requests at the edge into a [`ValidGenerate`], resolves the
//! region's bundle, gets passages (the client's or retrieval's), queues the job on the model worker and
//! streams its events as `GenerateEvent`s. Dropping the response stream (client gone, deadline passed)
//! closes the job's channel, which stops decoding within one token.

use std::{sync::Arc, time::Instant};

use rudder_core::{
    Bundle, BundleKey, BundleRegistry, ServiceError,
    bundle::{Outcome, Served},
    passage::{PassageQuery, PassageSource, cited},
};
use rudder_llm::{Message, Role};
use rudder_proto::{status, v1};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::{
    Engine, EngineEvent, FinishReason, GenerationJob, SamplingParams,
    feedback::{FeedbackBook, FeedbackEntry, FeedbackFilter, NewFeedback, Rating, ServedAnswer, Turn},
};

/// Longest question accepted, in characters (about 1,000 tokens).
pub const MAX_QUESTION_CHARS: usize = 4000;
pub const MAX_STOP_SEQUENCES: usize = 8;
const DEFAULT_TOP_K: u32 = 5;
const MAX_TOP_K: u32 = 20;

#[derive(Debug, Clone)]
pub struct GenerationServiceImpl {
    engine: Engine,
    bundles: Arc<dyn BundleRegistry>,
    retrieval: Arc<dyn PassageSource>,
    feedback: Arc<FeedbackBook>,
}

impl GenerationServiceImpl {
    pub fn new(
        engine: Engine,
        bundles: Arc<dyn BundleRegistry>,
        retrieval: Arc<dyn PassageSource>,
        feedback: Arc<FeedbackBook>,
    ) -> Self {
        Self { engine, bundles, retrieval, feedback }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Validation, bundle, passages, queueing: everything before the first token. From the moment the
    /// bundle version is chosen, the request counts in that version's traffic, whatever happens next.
    async fn start(
        &self,
        request: v1::GenerateRequest,
    ) -> Result<(Started, mpsc::Receiver<EngineEvent>), ServiceError> {
        let received_at = Instant::now();
        let valid = ValidGenerate::new(request, self.engine.info().config.max_position)?;
        let key = BundleKey { region: valid.region.clone(), brand: valid.brand.clone() };
        // Without a conversation id the request is its own conversation for the A/B split.
        let conversation =
            if valid.conversation_id.is_empty() { &valid.request_id } else { &valid.conversation_id };
        let bundle = self.bundles.route(&key, valid.bundle_version, conversation)?;
        let mut ledger = Ledger {
            bundles: Arc::clone(&self.bundles),
            feedback: Arc::clone(&self.feedback),
            bundle: Arc::clone(&bundle),
            received_at,
            served: ServedAnswer {
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
            },
            recorded: false,
        };
        match self.retrieve_and_queue(&valid, &bundle, received_at).await {
            Ok((retrieval_ms, retrieval_skipped, receiver)) => Ok((
                Started { request_id: valid.request_id, bundle, retrieval_ms, retrieval_skipped, ledger },
                receiver,
            )),
            Err(err) => {
                ledger.record(Outcome::of_failure(&err), None);
                Err(err)
            }
        }
    }

    /// The passages (the client's, or retrieval's) and the job queued on the model worker; also the
    /// retrieval time and whether retrieval was skipped because it was unavailable.
    async fn retrieve_and_queue(
        &self,
        valid: &ValidGenerate,
        bundle: &Arc<Bundle>,
        received_at: Instant,
    ) -> Result<(u64, bool, mpsc::Receiver<EngineEvent>), ServiceError> {
        let retrieval_started = Instant::now();
        let (passages, retrieval_skipped) = if !valid.passages.is_empty() {
            (valid.passages.clone(), false)
        } else {
            match self.retrieval.retrieve(valid.passage_query(bundle)).await {
                Ok(passages) => (passages, false),
                Err(ServiceError::Unavailable(reason)) if valid.allow_without_passages => {
                    tracing::warn!(%reason, "answering without passages");
                    (Vec::new(), true)
                }
                Err(err) => return Err(err),
            }
        };
        let retrieval_ms = retrieval_started.elapsed().as_millis() as u64;
        let (events, receiver) = mpsc::channel(64);
        let job = GenerationJob {
            bundle: Arc::clone(bundle),
            passages,
            history: valid.history.clone(),
            question: valid.question.clone(),
            params: valid.sampling(bundle),
            received_at,
            events,
        };
        self.engine.submit(job).map_err(ServiceError::from)?;
        Ok((retrieval_ms, retrieval_skipped, receiver))
    }
}

/// Known before the first token, reported in the events.
#[derive(Debug)]
struct Started {
    request_id: String,
    bundle: Arc<Bundle>,
    retrieval_ms: u64,
    retrieval_skipped: bool,
    ledger: Ledger,
}

/// Where a request on a bundle version is written down, exactly once: the version's traffic counters
/// (by outcome) and, for a finished answer, the answers remembered for feedback. A ledger dropped
/// before anything was recorded belongs to a request the client abandoned (hung up, deadline passed).
#[derive(Debug)]
struct Ledger {
    bundles: Arc<dyn BundleRegistry>,
    feedback: Arc<FeedbackBook>,
    bundle: Arc<Bundle>,
    received_at: Instant,
    served: ServedAnswer,
    recorded: bool,
}

impl Ledger {
    fn finished(&mut self, passages: &[rudder_core::Passage], answer: &str, ttft: std::time::Duration) {
        self.record(Outcome::Ok, Some(ttft));
        self.feedback.remember(ServedAnswer {
            passages: passages.to_vec(),
            answer: answer.to_owned(),
            ..self.served.clone()
        });
    }

    fn record(&mut self, outcome: Outcome, time_to_first_token: Option<std::time::Duration>) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let served = Served { outcome, latency: self.received_at.elapsed(), time_to_first_token };
        self.bundles.record(&self.bundle, served);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.record(Outcome::Cancelled, None);
    }
}

/// A generate request that passed validation; deeper code never re-checks these.
#[derive(Debug, Clone)]
pub struct ValidGenerate {
    pub question: String,
    pub region: String,
    pub brand: Option<String>,
    pub history: Vec<Message>,
    pub passages: Vec<rudder_core::Passage>,
    pub top_k: u32,
    pub tags: Vec<String>,
    pub min_score: Option<f32>,
    pub sampling: v1::SamplingParams,
    pub bundle_version: Option<u32>,
    pub allow_without_passages: bool,
    pub request_id: String,
    pub conversation_id: String,
}

impl ValidGenerate {
    pub fn new(request: v1::GenerateRequest, context_length: usize) -> Result<Self, ServiceError> {
        let v1::GenerateRequest {
            question,
            region,
            brand,
            conversation_id,
            history,
            passages,
            retrieval,
            sampling,
            bundle_version,
            allow_without_passages,
            request_id,
        } = request;
        let question = question.trim().to_owned();
        if question.is_empty() {
            return Err(ServiceError::invalid("question", "must not be empty"));
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(ServiceError::invalid(
                "question",
                format!("is longer than {MAX_QUESTION_CHARS} characters"),
            ));
        }
        let region = region.trim().to_lowercase();
        if region.is_empty() {
            return Err(ServiceError::invalid("region", "must be set (e.g. \"us\", \"uk\", \"eu\")"));
        }
        let history = history
            .into_iter()
            .enumerate()
            .map(|(i, turn)| {
                let role = match v1::ChatRole::try_from(turn.role) {
                    Ok(v1::ChatRole::User) => Role::User,
                    Ok(v1::ChatRole::Assistant) => Role::Assistant,
                    _ => {
                        return Err(ServiceError::invalid(
                            format!("history[{i}].role"),
                            "must be USER or ASSISTANT",
                        ));
                    }
                };
                Ok(Message::new(role, turn.content))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let retrieval = retrieval.unwrap_or_default();
        let v1::RetrievalOptions { top_k, mode: _, tags, min_score } = retrieval;
        if top_k > MAX_TOP_K {
            return Err(ServiceError::invalid(
                "retrieval.top_k",
                format!("must be 0 (default {DEFAULT_TOP_K}) to {MAX_TOP_K}"),
            ));
        }
        let sampling = sampling.unwrap_or_default();
        validate_sampling(&sampling, context_length)?;
        if bundle_version == Some(0) {
            return Err(ServiceError::invalid(
                "bundle_version",
                "versions start at 1; leave it unset for the active one",
            ));
        }
        let request_id =
            if request_id.trim().is_empty() { uuid::Uuid::new_v4().to_string() } else { request_id };
        Ok(Self {
            question,
            region,
            brand: Some(brand.trim().to_lowercase()).filter(|b| !b.is_empty()),
            history,
            passages: passages.into_iter().map(Into::into).collect(),
            top_k: if top_k == 0 { DEFAULT_TOP_K } else { top_k },
            tags,
            min_score,
            sampling,
            bundle_version,
            allow_without_passages,
            request_id,
            conversation_id: conversation_id.trim().to_owned(),
        })
    }

    /// What retrieval looks for: the bundle's retrieval region and brand where it names them (at most
    /// one each, checked when it is loaded or published), otherwise the request's.
    fn passage_query(&self, bundle: &Bundle) -> PassageQuery {
        PassageQuery {
            question: self.question.clone(),
            region: bundle.retrieval_regions.first().cloned().unwrap_or_else(|| self.region.clone()),
            brand: bundle.retrieval_brands.first().cloned().or_else(|| self.brand.clone()),
            top_k: self.top_k,
            tags: self.tags.clone(),
            min_score: self.min_score,
        }
    }

    /// The request's sampling over the bundle's defaults.
    fn sampling(&self, bundle: &Bundle) -> SamplingParams {
        let defaults = &bundle.generation;
        let s = &self.sampling;
        SamplingParams {
            max_tokens: s.max_tokens.unwrap_or(defaults.max_tokens),
            temperature: s.temperature.unwrap_or(defaults.temperature),
            top_p: s.top_p.unwrap_or(defaults.top_p),
            top_k: s.top_k.unwrap_or(defaults.top_k),
            seed: s.seed.unwrap_or(0),
            stop: s.stop.clone(),
            repetition_penalty: s.repetition_penalty.unwrap_or(defaults.repetition_penalty),
        }
    }
}

fn validate_sampling(s: &v1::SamplingParams, context_length: usize) -> Result<(), ServiceError> {
    if let Some(max_tokens) = s.max_tokens
        && (max_tokens == 0 || max_tokens as usize >= context_length)
    {
        return Err(ServiceError::invalid(
            "sampling.max_tokens",
            format!("must be 1 to {}", context_length - 1),
        ));
    }
    if let Some(t) = s.temperature
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(ServiceError::invalid("sampling.temperature", "must be >= 0 (0 is greedy)"));
    }
    if let Some(p) = s.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(ServiceError::invalid("sampling.top_p", "must be in (0, 1]"));
    }
    if s.stop.len() > MAX_STOP_SEQUENCES {
        return Err(ServiceError::invalid(
            "sampling.stop",
            format!("at most {MAX_STOP_SEQUENCES} stop sequences"),
        ));
    }
    if s.stop.iter().any(String::is_empty) {
        return Err(ServiceError::invalid("sampling.stop", "stop sequences must not be empty"));
    }
    if let Some(r) = s.repetition_penalty
        && !(r.is_finite() && r > 0.0)
    {
        return Err(ServiceError::invalid("sampling.repetition_penalty", "must be > 0 (1 disables)"));
    }
    Ok(())
}

fn bundle_ref(bundle: &Bundle) -> v1::BundleRef {
    v1::BundleRef {
        region: bundle.key.region.clone(),
        brand: bundle.key.brand.clone().unwrap_or_default(),
        version: bundle.version,
    }
}

fn feedback_record(entry: &FeedbackEntry) -> v1::FeedbackRecord {
    let served = &entry.served;
    v1::FeedbackRecord {
        feedback_id: entry.feedback_id.clone(),
        request_id: served.request_id.clone(),
        rating: match entry.rating {
            Rating::Good => v1::Rating::Good,
            Rating::Bad => v1::Rating::Bad,
        } as i32,
        corrected_answer: entry.corrected_answer.clone(),
        reason: entry.reason.clone(),
        author: entry.author.clone(),
        created_at: rudder_proto::timestamp(&entry.created_at),
        question: served.question.clone(),
        answer: served.answer.clone(),
        bundle: Some(v1::BundleRef {
            region: served.region.clone(),
            brand: served.brand.clone().unwrap_or_default(),
            version: served.bundle_version,
        }),
        passages: served.passages.iter().map(Into::into).collect(),
    }
}

fn finish_reason(reason: FinishReason) -> v1::FinishReason {
    match reason {
        FinishReason::EndOfText => v1::FinishReason::EndOfText,
        FinishReason::MaxTokens => v1::FinishReason::MaxTokens,
        FinishReason::StopSequence => v1::FinishReason::StopSequence,
        FinishReason::ContextFull => v1::FinishReason::ContextFull,
    }
}

/// Turns the worker's events into wire events, resolving citations against the passages used.
#[derive(Debug)]
struct EventMapper {
    started: Started,
    passages: Vec<rudder_core::Passage>,
    prompt_tokens: usize,
    cached_prompt_tokens: usize,
    passages_dropped: usize,
}

impl EventMapper {
    fn new(started: Started) -> Self {
        Self { started, passages: Vec::new(), prompt_tokens: 0, cached_prompt_tokens: 0, passages_dropped: 0 }
    }

    fn map(&mut self, event: EngineEvent) -> Result<Vec<v1::GenerateEvent>, Status> {
        use v1::generate_event::Event;
        let wrap = |event| v1::GenerateEvent { event: Some(event) };
        Ok(match event {
            EngineEvent::Started { passages, passages_dropped, prompt_tokens, cached_prompt_tokens } => {
                let wire = passages.iter().map(Into::into).collect();
                (self.passages, self.prompt_tokens, self.cached_prompt_tokens, self.passages_dropped) =
                    (passages, prompt_tokens, cached_prompt_tokens, passages_dropped);
                vec![wrap(Event::Started(v1::GenerationStarted {
                    request_id: self.started.request_id.clone(),
                    bundle: Some(bundle_ref(&self.started.bundle)),
                    passages: wire,
                }))]
            }
            EngineEvent::Delta(text) => vec![wrap(Event::Delta(v1::TokenDelta { text }))],
            EngineEvent::Finished {
                answer,
                output_tokens,
                time_to_first_token,
                decode_tokens_per_second,
                finish_reason: reason,
            } => {
                self.started.ledger.finished(&self.passages, &answer, time_to_first_token);
                let citations = cited(&answer, &self.passages).iter().map(Into::into).collect();
                vec![
                    wrap(Event::Citations(v1::CitationsEvent { citations })),
                    wrap(Event::Stats(v1::GenerationStats {
                        request_id: self.started.request_id.clone(),
                        bundle: Some(bundle_ref(&self.started.bundle)),
                        prompt_tokens: self.prompt_tokens as u32,
                        cached_prompt_tokens: self.cached_prompt_tokens as u32,
                        output_tokens: output_tokens as u32,
                        time_to_first_token_ms: time_to_first_token.as_millis() as u64,
                        tokens_per_second: decode_tokens_per_second,
                        retrieval_ms: self.started.retrieval_ms,
                        finish_reason: finish_reason(reason) as i32,
                        retrieval_skipped: self.started.retrieval_skipped,
                        passages_trimmed: self.passages_dropped as u32,
                    })),
                ]
            }
            EngineEvent::Failed(err) => {
                self.started.ledger.record(Outcome::Error, None);
                return Err(status(ServiceError::from(err.as_ref())));
            }
        })
    }
}

#[tonic::async_trait]
impl v1::generation_service_server::GenerationService for GenerationServiceImpl {
    #[instrument(skip_all, fields(region = %request.get_ref().region))]
    async fn generate(
        &self,
        request: Request<v1::GenerateRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<v1::GenerateEvent>>, Status> {
        let (started, mut events) = self.start(request.into_inner()).await.map_err(status)?;
        let (out, stream) = mpsc::channel(64);
        let mut mapper = EventMapper::new(started);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let last = matches!(event, EngineEvent::Finished { .. } | EngineEvent::Failed(_));
                let mapped = mapper.map(event);
                let items = match mapped {
                    Ok(items) => items.into_iter().map(Ok).collect(),
                    Err(err) => vec![Err(err)],
                };
                for item in items {
                    if out.send(item).await.is_err() {
                        return; // client gone: dropping `events` stops the worker
                    }
                }
                if last {
                    return;
                }
            }
            // The worker dropped the job without finishing it: say so instead of ending the stream
            // as if it were complete (a client would otherwise wait for stats that never come).
            mapper.started.ledger.record(Outcome::Error, None);
            let _ = out
                .send(Err(status(ServiceError::Internal(
                    "the model worker ended the request without finishing it".into(),
                ))))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    #[instrument(skip_all, fields(region = %request.get_ref().region))]
    async fn generate_once(
        &self,
        request: Request<v1::GenerateRequest>,
    ) -> Result<Response<v1::GenerateResponse>, Status> {
        use v1::generate_event::Event;
        let (started, mut events) = self.start(request.into_inner()).await.map_err(status)?;
        let request_id = started.request_id.clone();
        let mut mapper = EventMapper::new(started);
        let mut response = v1::GenerateResponse { request_id, ..Default::default() };
        while let Some(event) = events.recv().await {
            for mapped in mapper.map(event)? {
                match mapped.event {
                    Some(Event::Started(started)) => response.passages = started.passages,
                    Some(Event::Delta(delta)) => response.answer.push_str(&delta.text),
                    Some(Event::Citations(c)) => response.citations = c.citations,
                    Some(Event::Stats(stats)) => {
                        response.stats = Some(stats);
                        return Ok(Response::new(response));
                    }
                    None => {}
                }
            }
        }
        mapper.started.ledger.record(Outcome::Error, None);
        Err(status(ServiceError::Internal("the model worker ended the request without finishing it".into())))
    }

    async fn submit_feedback(
        &self,
        request: Request<v1::SubmitFeedbackRequest>,
    ) -> Result<Response<v1::SubmitFeedbackResponse>, Status> {
        let v1::SubmitFeedbackRequest { request_id, rating, corrected_answer, reason, author } =
            request.into_inner();
        let rating = match v1::Rating::try_from(rating) {
            Ok(v1::Rating::Good) => Rating::Good,
            Ok(v1::Rating::Bad) => Rating::Bad,
            _ => return Err(status(ServiceError::invalid("rating", "must be RATING_GOOD or RATING_BAD"))),
        };
        let feedback = Arc::clone(&self.feedback);
        let submitted = NewFeedback { request_id, rating, corrected_answer, reason, author };
        // The append is synced to disk: keep it off the async threads.
        let entry = tokio::task::spawn_blocking(move || feedback.submit(submitted))
            .await
            .map_err(|err| Status::internal(err.to_string()))?
            .map_err(status)?;
        tracing::info!(feedback_id = %entry.feedback_id, request_id = %entry.served.request_id, "feedback stored");
        Ok(Response::new(v1::SubmitFeedbackResponse { feedback_id: entry.feedback_id }))
    }

    async fn list_feedback(
        &self,
        request: Request<v1::ListFeedbackRequest>,
    ) -> Result<Response<v1::ListFeedbackResponse>, Status> {
        let v1::ListFeedbackRequest { region, corrections_only, page_size, page_token } =
            request.into_inner();
        let filter = FeedbackFilter {
            region: Some(region.trim().to_lowercase()).filter(|r| !r.is_empty()),
            corrections_only,
            page_size: page_size as usize,
            page_token,
        };
        let (entries, next_page_token) = self.feedback.list(&filter).map_err(status)?;
        Ok(Response::new(v1::ListFeedbackResponse {
            feedback: entries.iter().map(feedback_record).collect(),
            next_page_token,
        }))
    }

    async fn get_model_info(
        &self,
        _request: Request<v1::GetModelInfoRequest>,
    ) -> Result<Response<v1::GetModelInfoResponse>, Status> {
        let info = self.engine.info();
        let c = &info.config;
        Ok(Response::new(v1::GetModelInfoResponse {
            architecture: c.architecture.clone(),
            name: info.name.clone(),
            fingerprint: info.fingerprint.clone(),
            context_length: c.max_position as u32,
            hidden_size: c.hidden_size as u32,
            num_layers: c.num_layers as u32,
            num_kv_heads: c.num_kv_heads as u32,
            head_dim: c.head_dim as u32,
            vocab_size: c.vocab_size as u32,
            serving_format: info.serving_format.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(region: &str, brand: &str) -> ValidGenerate {
        let request = v1::GenerateRequest {
            question: "Can I return boots?".into(),
            region: region.into(),
            brand: brand.into(),
            ..Default::default()
        };
        ValidGenerate::new(request, 2048).unwrap()
    }

    fn bundle(retrieval_regions: &[&str], retrieval_brands: &[&str]) -> Bundle {
        Bundle {
            key: BundleKey { region: "uk".into(), brand: Some("outlet".into()) },
            version: 1,
            system_text: "Answer from the passages.".into(),
            policy_prefix: None,
            tone_soft_prompt: None,
            retrieval_regions: retrieval_regions.iter().map(|r| (*r).to_owned()).collect(),
            retrieval_brands: retrieval_brands.iter().map(|b| (*b).to_owned()).collect(),
            generation: Default::default(),
        }
    }

    #[test]
    fn retrieval_takes_the_bundles_region_and_brand_where_it_names_them() {
        let asked = request("uk", "Outlet");
        let query = asked.passage_query(&bundle(&[], &[]));
        assert_eq!((query.region.as_str(), query.brand.as_deref()), ("uk", Some("outlet")));
        let query = asked.passage_query(&bundle(&["eu"], &["trailhead"]));
        assert_eq!((query.region.as_str(), query.brand.as_deref()), ("eu", Some("trailhead")));
        let unbranded = request("uk", " ");
        assert_eq!(unbranded.passage_query(&bundle(&[], &[])).brand, None);
        assert_eq!(unbranded.passage_query(&bundle(&[], &["trailhead"])).brand.as_deref(), Some("trailhead"));
    }
}
