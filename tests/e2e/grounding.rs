//! The grounded-answer pipeline over real gRPC, with the real model, embedder and shipped bundles:
//! evidence, verification, quoting and declining as a support tool sees them.

use rudder_proto::v1::{
    self, GenerateRequest, generate_event::Event, generation_service_client::GenerationServiceClient,
};
use rudder_tests::TestServer;

use crate::uk_passage as passage;

/// Two passages: the deciding one second, so a citation of [1] would be wrong.
fn question(text: &str, mode: v1::GroundingMode) -> GenerateRequest {
    GenerateRequest {
        question: text.into(),
        region: "uk".into(),
        passages: vec![
            passage(
                "shipping-uk",
                "Delivery (UK)",
                "Costs",
                "Orders ship with Royal Mail or DPD. Standard delivery costs £3.95. Orders over £50 ship free.",
            ),
            passage(
                "returns-uk",
                "Returns Policy (UK)",
                "Return window",
                "You may return most items within 28 days of delivery for a full refund. Sale items can be returned within 14 days.",
            ),
        ],
        grounding: mode as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_grounded_answer_states_the_deciding_fact_cites_its_passage_and_shows_its_evidence()
-> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    for mode in [v1::GroundingMode::Full, v1::GroundingMode::Extractive] {
        let answer = client
            .generate_once(question("hi, how many days have i got to send back a jacket i bought?", mode))
            .await?
            .into_inner();
        let stats = answer.stats.unwrap_or_default();
        let grounding = v1::Grounding::try_from(stats.grounding)?;
        assert!(
            matches!(
                grounding,
                v1::Grounding::Verified | v1::Grounding::Repaired | v1::Grounding::Extractive
            ),
            "{mode:?}: {grounding:?} {:?}",
            answer.answer
        );
        assert!(answer.answer.contains("28 days"), "{mode:?}: {:?}", answer.answer);
        assert!(!answer.answer.contains("£"), "no figure of the other passage: {:?}", answer.answer);
        assert!(
            answer.citations.iter().all(|c| c.marker == 2),
            "{:?}: {:?}",
            answer.answer,
            answer.citations
        );
        let best = answer.evidence.first().ok_or_else(|| anyhow::anyhow!("no evidence"))?;
        assert_eq!(best.passage, 2);
        let text: String = answer.passages[1]
            .text
            .chars()
            .skip(best.char_start as usize)
            .take((best.char_end - best.char_start) as usize)
            .collect();
        assert_eq!(text, best.text, "the span locates the evidence in its passage");
    }
    server.server.shutdown().await
}

#[tokio::test]
async fn a_question_the_passages_do_not_answer_is_declined_with_the_hand_over() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let answer = client
        .generate_once(question("can i pay with bitcoin or ethereum at checkout?", v1::GroundingMode::Full))
        .await?
        .into_inner();
    let stats = answer.stats.unwrap_or_default();
    assert_eq!(v1::Grounding::try_from(stats.grounding)?, v1::Grounding::Declined, "{:?}", answer.answer);
    assert!(answer.answer.contains("colleague"), "{:?}", answer.answer);
    assert!(answer.citations.is_empty());
    assert_eq!(stats.output_tokens, 0, "no model work for a decline");
    server.server.shutdown().await
}

#[tokio::test]
async fn a_grounded_stream_sends_verified_sentences_then_citations_and_how_it_was_grounded()
-> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let mut stream = client
        .generate(question("sale item return window?", v1::GroundingMode::Verified))
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event.event.ok_or_else(|| anyhow::anyhow!("empty event"))?);
    }
    assert!(matches!(events.first(), Some(Event::Started(s)) if s.passages.len() == 2), "{events:?}");
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| if let Event::Delta(d) = e { Some(d.text.as_str()) } else { None })
        .collect();
    assert!(!deltas.is_empty());
    assert!(
        deltas.iter().all(|d| d.trim_end().ends_with(['.', '!', '?', ']'])),
        "whole sentences: {deltas:?}"
    );
    let Some(Event::Citations(citations)) = events.get(events.len() - 2) else { anyhow::bail!("{events:?}") };
    assert!(!citations.evidence.is_empty());
    let Some(Event::Stats(stats)) = events.last() else { anyhow::bail!("{events:?}") };
    assert_ne!(stats.grounding, v1::Grounding::Unspecified as i32);
    assert_ne!(stats.grounding, v1::Grounding::Declined as i32, "verified mode never declines");
    assert!(deltas.concat().contains("14 days"), "{deltas:?}");
    server.server.shutdown().await
}

#[tokio::test]
async fn with_no_passages_at_all_every_grounded_mode_hands_over() -> anyhow::Result<()> {
    // A fresh server's store holds no documents: retrieval finds nothing.
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let request = GenerateRequest {
        passages: Vec::new(),
        ..question("how long do refunds take?", v1::GroundingMode::Verified)
    };
    let answer = client.generate_once(request).await?.into_inner();
    let stats = answer.stats.unwrap_or_default();
    assert!(answer.passages.is_empty(), "{:?}", answer.passages);
    assert_eq!(v1::Grounding::try_from(stats.grounding)?, v1::Grounding::Declined, "{:?}", answer.answer);
    assert!(answer.evidence.is_empty() && answer.citations.is_empty());
    server.server.shutdown().await
}

#[tokio::test]
async fn a_document_shared_by_regions_answers_each_customer_with_their_own_regions_rule() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let shared = v1::Passage {
        regions: vec!["us".into(), "uk".into(), "eu".into()],
        ..passage(
            "gift-cards",
            "Gift Card Terms",
            "Validity",
            "US gift cards are valid for at least 5 years from activation. UK gift cards are valid for 24 months from purchase. EU gift cards are valid for 3 years from purchase.",
        )
    };
    for (region, own, others) in
        [("uk", "24 months", ["5 years", "3 years"]), ("eu", "3 years", ["5 years", "24 months"])]
    {
        let request = GenerateRequest {
            question: "how long is my gift card valid for?".into(),
            region: region.into(),
            passages: vec![shared.clone()],
            grounding: v1::GroundingMode::Extractive as i32,
            ..Default::default()
        };
        let answer = client.generate_once(request).await?.into_inner();
        assert!(answer.answer.contains(own), "{region}: {:?}", answer.answer);
        assert!(others.iter().all(|o| !answer.answer.contains(o)), "{region}: {:?}", answer.answer);
        assert!(answer.evidence.iter().all(|e| !e.text.contains(others[0]) && !e.text.contains(others[1])));
    }
    server.server.shutdown().await
}
