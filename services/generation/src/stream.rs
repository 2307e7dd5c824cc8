//! A request's streaming half: what [`crate::service::GenerationService`] planned (the model's
//! stream as it comes, a grounded answer from the evidence, a quote, or the hand-over) carried out
//! as [`AnswerEvent`]s, and written down in the request's ledger exactly once.

use std::{sync::Arc, time::Instant};

use rudder_core::{Bundle, Passage, ServiceError, bundle::Outcome, passage::cited};
use tokio::sync::mpsc;

use crate::{
    EngineEvent,
    answer::{AnswerEvent, AnswerStats, DEFAULT_HANDOVER, FinishedAnswer},
    grounding::{self, Evidence, EvidencePrompt, EvidenceSpan, Grounding, PromptEcho, sentences::sentences},
    ledger::Ledger,
};

/// What a request will do once it streams.
pub(crate) struct Plan {
    pub(crate) passages: Vec<Passage>,
    pub(crate) evidence: Evidence,
    pub(crate) step: Step,
}

pub(crate) enum Step {
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
pub(crate) struct Run {
    pub(crate) request_id: String,
    pub(crate) bundle: Arc<Bundle>,
    pub(crate) received_at: Instant,
    pub(crate) stats: AnswerStats,
    pub(crate) out: mpsc::Sender<AnswerEvent>,
}

/// The client went away: nothing more to do.
struct Gone;

impl Run {
    pub(crate) async fn drive(mut self, plan: Plan, mut ledger: Ledger) {
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
                let note = match evidence.relevance() {
                    Some(relevance) => {
                        format!(
                            "the best evidence's relevance is {relevance:.2}, below the decline threshold"
                        )
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
        let finished =
            self.finished(passages, answer, grounding::spans(evidence, passages), grounding, notes);
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
    rudder_core::markers::replace(answer, |marker| {
        let source = prompt.sources.get((marker as usize).checked_sub(1)?)?;
        Some(format!("[{}]", source + 1))
    })
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
