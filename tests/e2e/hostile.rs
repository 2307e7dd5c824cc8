//! Requests built to hold the model or the server: each gets its answer or its status, and the
//! next request is served.

use std::time::Duration;

use rudder_proto::v1::{self, GenerateRequest, generation_service_client::GenerationServiceClient};
use rudder_tests::TestServer;
use tonic::Code;

use crate::uk_passage as passage;

/// About 300 kB of policy text in one client-supplied passage, the deciding sentence at the end.
fn a_whole_document_as_one_passage() -> v1::Passage {
    let filler = "Our stores stock tents, boots and jackets for every season. ".repeat(5000);
    passage(
        "everything",
        "Everything",
        "All of it",
        &format!("{filler}Refunds are paid within 14 days of receiving the return."),
    )
}

#[tokio::test]
async fn a_huge_passage_neither_holds_the_model_past_its_deadline_nor_stalls_the_next_request()
-> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    // The model runs (grounding off): prefill is bounded by generation.max_prompt_tokens, and the
    // request stops within one prefill chunk once its deadline passes.
    let mut hold = tonic::Request::new(GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        passages: vec![a_whole_document_as_one_passage()],
        grounding: v1::GroundingMode::Off as i32,
        ..Default::default()
    });
    hold.set_timeout(Duration::from_secs(2));
    let held = client.generate_once(hold).await;
    assert!(
        matches!(&held, Err(status) if matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled))
            || held.is_ok(),
        "{held:?}"
    );
    // The next request gets the model well within its own deadline (before the bound it waited
    // over a minute). Grounded extractively, the deciding sentence at the end of 300 kB is found.
    let mut next = tonic::Request::new(GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        passages: vec![a_whole_document_as_one_passage()],
        grounding: v1::GroundingMode::Extractive as i32,
        ..Default::default()
    });
    next.set_timeout(Duration::from_secs(60));
    let answer = client.generate_once(next).await?.into_inner();
    assert!(answer.answer.contains("14 days"), "{:?}", answer.answer);
    let mut after = tonic::Request::new(GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        passages: vec![passage(
            "refunds",
            "Refunds",
            "Timing",
            "Refunds are paid within 14 days of receiving the return.",
        )],
        grounding: v1::GroundingMode::Off as i32,
        sampling: Some(v1::SamplingParams { max_tokens: Some(8), ..Default::default() }),
        ..Default::default()
    });
    after.set_timeout(Duration::from_secs(60));
    let served = client.generate_once(after).await?.into_inner();
    assert!(served.stats.is_some_and(|s| s.output_tokens > 0), "the model answered the next request");
    server.server.shutdown().await
}

#[tokio::test]
async fn hostile_retrieval_options_and_history_get_invalid_argument_naming_the_field() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let base = || GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        ..Default::default()
    };
    let options = |mode, min_score| Some(v1::RetrievalOptions { mode, min_score, ..Default::default() });
    let turn = |content: String| v1::ChatTurn { role: v1::ChatRole::User as i32, content };
    let cases = [
        (GenerateRequest { retrieval: options(99, None), ..base() }, "retrieval.mode"),
        (GenerateRequest { retrieval: options(0, Some(f32::NAN)), ..base() }, "retrieval.min_score"),
        (GenerateRequest { history: vec![turn("hi".into()); 10_000], ..base() }, "history"),
        (GenerateRequest { history: vec![turn("x".repeat(5000))], ..base() }, "history[0].content"),
    ];
    for (request, field) in cases {
        let refused = client.generate_once(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{field}: {refused:?}");
        assert!(refused.message().starts_with(field), "{field}: {}", refused.message());
    }
    server.server.shutdown().await
}
