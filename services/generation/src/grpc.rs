//! GenerationService over gRPC: wire requests to validated ones, [`AnswerEvent`]s to wire events,
//! errors to statuses. The request flow itself is [`GenerationService`]'s.

use std::sync::Arc;

use rudder_core::{Bundle, ServiceError};
use rudder_proto::{status, v1};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::{
    FinishReason,
    answer::{AnswerEvent, FinishedAnswer},
    feedback::{FeedbackEntry, FeedbackFilter, NewFeedback, Rating},
    grounding::{EvidenceSpan, Grounding},
    service::GenerationService,
    validation::ValidGenerate,
};

#[derive(Debug, Clone)]
pub struct GenerationServiceImpl {
    service: GenerationService,
}

impl GenerationServiceImpl {
    pub fn new(service: GenerationService) -> Self {
        Self { service }
    }

    pub fn service(&self) -> &GenerationService {
        &self.service
    }

    /// The request as the service takes it, within the caller's regions and brands.
    fn validate(&self, request: Request<v1::GenerateRequest>) -> Result<ValidGenerate, Status> {
        let who = rudder_proto::convert::principal(&request);
        let mut valid =
            ValidGenerate::new(request.into_inner(), self.service.context_length()).map_err(status)?;
        valid.brand = who.brand_for(valid.brand.take()).map_err(status)?;
        who.check(&valid.region, valid.brand.as_deref()).map_err(status)?;
        Ok(valid)
    }
}

#[tonic::async_trait]
impl v1::generation_service_server::GenerationService for GenerationServiceImpl {
    #[instrument(skip_all, fields(region = %request.get_ref().region))]
    async fn generate(
        &self,
        request: Request<v1::GenerateRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<v1::GenerateEvent>>, Status> {
        let valid = self.validate(request)?;
        let mut events = self.service.generate(valid).await.map_err(status)?;
        let (out, stream) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                for item in wire_events(event) {
                    if out.send(item).await.is_err() {
                        return; // client gone: dropping `events` stops the work
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    #[instrument(skip_all, fields(region = %request.get_ref().region))]
    async fn generate_once(
        &self,
        request: Request<v1::GenerateRequest>,
    ) -> Result<Response<v1::GenerateResponse>, Status> {
        let valid = self.validate(request)?;
        let collected = self.service.answer(valid).await.map_err(status)?;
        let finished = collected.finished;
        Ok(Response::new(v1::GenerateResponse {
            request_id: finished.request_id.clone(),
            answer: finished.answer.clone(),
            citations: finished.citations.iter().map(Into::into).collect(),
            passages: collected.passages.iter().map(Into::into).collect(),
            evidence: finished.evidence.iter().map(evidence_span).collect(),
            stats: Some(stats(&finished)),
        }))
    }

    async fn submit_feedback(
        &self,
        request: Request<v1::SubmitFeedbackRequest>,
    ) -> Result<Response<v1::SubmitFeedbackResponse>, Status> {
        let by = rudder_proto::convert::principal(&request);
        let v1::SubmitFeedbackRequest { request_id, rating, corrected_answer, reason, author } =
            request.into_inner();
        let rating = match v1::Rating::try_from(rating) {
            Ok(v1::Rating::Good) => Rating::Good,
            Ok(v1::Rating::Bad) => Rating::Bad,
            _ => return Err(status(ServiceError::invalid("rating", "must be RATING_GOOD or RATING_BAD"))),
        };
        let submitted = NewFeedback { request_id, rating, corrected_answer, reason, author, by };
        let entry = self.service.submit_feedback(submitted).await.map_err(status)?;
        Ok(Response::new(v1::SubmitFeedbackResponse { feedback_id: entry.feedback_id }))
    }

    async fn list_feedback(
        &self,
        request: Request<v1::ListFeedbackRequest>,
    ) -> Result<Response<v1::ListFeedbackResponse>, Status> {
        let who = rudder_proto::convert::principal(&request);
        let v1::ListFeedbackRequest { region, corrections_only, page_size, page_token } =
            request.into_inner();
        let region = who.listing_region(&region).map_err(status)?;
        let filter = FeedbackFilter { region, corrections_only, page_size: page_size as usize, page_token };
        let (entries, next_page_token) = self.service.list_feedback(&filter).map_err(status)?;
        Ok(Response::new(v1::ListFeedbackResponse {
            feedback: entries.iter().map(feedback_record).collect(),
            next_page_token,
        }))
    }

    async fn get_model_info(
        &self,
        _request: Request<v1::GetModelInfoRequest>,
    ) -> Result<Response<v1::GetModelInfoResponse>, Status> {
        let info = self.service.model_info();
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

/// One answer event as the wire events it becomes (the end is citations, then stats).
fn wire_events(event: AnswerEvent) -> Vec<Result<v1::GenerateEvent, Status>> {
    use v1::generate_event::Event;
    let wrap = |event| Ok(v1::GenerateEvent { event: Some(event) });
    match event {
        AnswerEvent::Started { request_id, bundle, passages } => {
            vec![wrap(Event::Started(v1::GenerationStarted {
                request_id,
                bundle: Some(bundle_ref(&bundle)),
                passages: passages.iter().map(Into::into).collect(),
            }))]
        }
        AnswerEvent::Delta(text) => vec![wrap(Event::Delta(v1::TokenDelta { text }))],
        AnswerEvent::Finished(finished) => vec![
            wrap(Event::Citations(v1::CitationsEvent {
                citations: finished.citations.iter().map(Into::into).collect(),
                evidence: finished.evidence.iter().map(evidence_span).collect(),
            })),
            wrap(Event::Stats(stats(&finished))),
        ],
        AnswerEvent::Failed(err) => vec![Err(status(err))],
    }
}

fn stats(finished: &FinishedAnswer) -> v1::GenerationStats {
    let s = &finished.stats;
    v1::GenerationStats {
        request_id: finished.request_id.clone(),
        bundle: Some(bundle_ref(&finished.bundle)),
        prompt_tokens: s.prompt_tokens as u32,
        cached_prompt_tokens: s.cached_prompt_tokens as u32,
        output_tokens: s.output_tokens as u32,
        time_to_first_token_ms: s.time_to_first_token.as_millis() as u64,
        tokens_per_second: s.tokens_per_second,
        retrieval_ms: s.retrieval_ms,
        finish_reason: s.finish_reason.map_or(v1::FinishReason::Unspecified, finish_reason) as i32,
        retrieval_skipped: s.retrieval_skipped,
        passages_trimmed: s.passages_trimmed as u32,
        grounding: grounding(finished.grounding) as i32,
        grounding_notes: finished.notes.clone(),
    }
}

fn evidence_span(span: &EvidenceSpan) -> v1::EvidenceSpan {
    let EvidenceSpan { passage, char_start, char_end, text, score } = span;
    v1::EvidenceSpan {
        passage: *passage,
        char_start: *char_start,
        char_end: *char_end,
        text: text.clone(),
        score: *score,
    }
}

fn grounding(grounding: Grounding) -> v1::Grounding {
    match grounding {
        Grounding::Unchecked => v1::Grounding::Unchecked,
        Grounding::Verified => v1::Grounding::Verified,
        Grounding::Repaired => v1::Grounding::Repaired,
        Grounding::Extractive => v1::Grounding::Extractive,
        Grounding::Declined => v1::Grounding::Declined,
    }
}

fn bundle_ref(bundle: &Arc<Bundle>) -> v1::BundleRef {
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
