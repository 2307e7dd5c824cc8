//! GenerationService over real gRPC with the real SmolLM2 weights and the shipped region bundles.

use rudder_proto::v1::{
    self, GenerateRequest, GetModelInfoRequest, SamplingParams, generate_event::Event,
    generation_service_client::GenerationServiceClient, prompt_service_client::PromptServiceClient,
};
use rudder_tests::TestServer;

use crate::uk_passage as passage;
use tonic::Code;

fn uk_question(max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        question: "How long do I have to return an item?".into(),
        region: "uk".into(),
        passages: vec![
            passage(
                "returns-uk",
                "Returns Policy (UK)",
                "Return window",
                "You may return most items within 28 days of delivery for a full refund to the original payment method.",
            ),
            passage(
                "shipping-uk",
                "Shipping (UK)",
                "Carriers",
                "Orders ship with Royal Mail or DPD. Standard delivery costs £3.95.",
            ),
        ],
        sampling: Some(SamplingParams { max_tokens: Some(max_tokens), ..Default::default() }),
        // These tests are about the model's own stream (tokens as they come, cancellation, the queue);
        // the grounded answer around it is tested in grounding.rs.
        grounding: v1::GroundingMode::Off as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_streamed_answer_starts_with_its_passages_and_ends_with_citations_and_stats() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let mut cached = Vec::new();
    for _ in 0..2 {
        let mut stream = client.generate(uk_question(24)).await?.into_inner();
        let mut events = Vec::new();
        while let Some(event) = stream.message().await? {
            events.push(event.event.ok_or_else(|| anyhow::anyhow!("empty event"))?);
        }
        let Some(Event::Started(started)) = events.first() else {
            anyhow::bail!("first event is not Started: {events:?}")
        };
        assert!(!started.request_id.is_empty());
        assert_eq!(started.passages.len(), 2, "both passages fit");
        assert_eq!(
            started.bundle.as_ref().map(|b| (b.region.as_str(), b.version)),
            Some(("uk", rudder_tests::shipped_latest("uk")?))
        );
        let answer: String = events
            .iter()
            .filter_map(|e| if let Event::Delta(d) = e { Some(d.text.as_str()) } else { None })
            .collect();
        assert!(!answer.trim().is_empty());
        let n = events.len();
        assert!(matches!(events[n - 2], Event::Citations(_)), "citations come second to last");
        let Event::Stats(stats) = &events[n - 1] else { anyhow::bail!("last event is not Stats") };
        assert!(stats.output_tokens > 0 && stats.output_tokens <= 24);
        assert!(stats.prompt_tokens > stats.output_tokens);
        assert_ne!(stats.finish_reason, v1::FinishReason::Unspecified as i32);
        assert_eq!(stats.request_id, started.request_id);
        cached.push(stats.cached_prompt_tokens);
    }
    assert_eq!(cached[0], 0, "the first request computes the head");
    assert!(cached[1] > 0, "the second request reuses the bundle's head cache");
    server.server.shutdown().await
}

#[tokio::test]
async fn generate_once_answers_greedily_and_deterministically() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let first = client.generate_once(uk_question(20)).await?.into_inner();
    let second = client.generate_once(uk_question(20)).await?.into_inner();
    assert!(!first.answer.is_empty());
    assert_eq!(first.answer, second.answer, "greedy decoding is deterministic");
    assert_ne!(first.request_id, second.request_id);
    assert_eq!(first.passages.len(), 2);
    let info = client.get_model_info(GetModelInfoRequest {}).await?.into_inner();
    assert!(info.fingerprint.starts_with("llama:"), "{}", info.fingerprint);
    assert_eq!((info.num_layers, info.hidden_size, info.serving_format.as_str()), (30, 576, "q8_0"));
    server.server.shutdown().await
}

#[tokio::test]
async fn the_tuned_bundle_steers_the_answer_and_a_request_may_name_the_untuned_version() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    // The latest shipped uk version carries the trained prefix and soft prompt; uk@1 is text only.
    let shipped = rudder_tests::shipped_latest("uk")?;
    let mut answer_of = async |request: GenerateRequest| -> anyhow::Result<(Option<u32>, String)> {
        let mut stream = client.generate(request).await?.into_inner();
        let (mut version, mut answer) = (None, String::new());
        while let Some(event) = stream.message().await? {
            match event.event {
                Some(Event::Started(started)) => version = started.bundle.map(|b| b.version),
                Some(Event::Delta(delta)) => answer.push_str(&delta.text),
                _ => {}
            }
        }
        Ok((version, answer))
    };
    let (tuned_version, tuned) = answer_of(uk_question(24)).await?;
    let (untuned_version, untuned) =
        answer_of(GenerateRequest { bundle_version: Some(1), ..uk_question(24) }).await?;
    assert_eq!((tuned_version, untuned_version), (Some(shipped), Some(1)));
    assert_ne!(tuned, untuned, "the steering changes what the model says");
    server.server.shutdown().await
}

#[tokio::test]
async fn bad_requests_name_the_field_and_get_the_right_status() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let sampling = |s: SamplingParams| GenerateRequest { sampling: Some(s), ..uk_question(8) };
    let cases = [
        (GenerateRequest { question: "   ".into(), ..uk_question(8) }, Code::InvalidArgument, "question"),
        (GenerateRequest { question: "x".repeat(5000), ..uk_question(8) }, Code::InvalidArgument, "question"),
        (GenerateRequest { region: "fr".into(), ..uk_question(8) }, Code::NotFound, "eu, uk, us"),
        (GenerateRequest { bundle_version: Some(7), ..uk_question(8) }, Code::NotFound, "uk@1"),
        (
            sampling(SamplingParams { max_tokens: Some(0), ..Default::default() }),
            Code::InvalidArgument,
            "sampling.max_tokens",
        ),
        (
            sampling(SamplingParams { max_tokens: Some(100_000), ..Default::default() }),
            Code::InvalidArgument,
            "sampling.max_tokens",
        ),
        (
            sampling(SamplingParams { temperature: Some(-0.5), ..Default::default() }),
            Code::InvalidArgument,
            "sampling.temperature",
        ),
        (
            sampling(SamplingParams { top_p: Some(0.0), ..Default::default() }),
            Code::InvalidArgument,
            "sampling.top_p",
        ),
        (
            sampling(SamplingParams { top_p: Some(1.5), ..Default::default() }),
            Code::InvalidArgument,
            "sampling.top_p",
        ),
        (
            sampling(SamplingParams { stop: vec!["x".into(); 9], ..Default::default() }),
            Code::InvalidArgument,
            "sampling.stop",
        ),
    ];
    for (request, code, needle) in cases {
        let err = client.generate_once(request).await.expect_err("must be refused");
        assert_eq!(err.code(), code, "{needle}: {err:?}");
        assert!(err.message().contains(needle), "{needle} not in {:?}", err.message());
    }
    // No passages given and nothing ingested: retrieval finds none and the answer says so honestly.
    let answer =
        client.generate_once(GenerateRequest { passages: vec![], ..uk_question(8) }).await?.into_inner();
    assert!(answer.passages.is_empty() && answer.stats.is_some_and(|s| !s.retrieval_skipped));
    server.server.shutdown().await
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_frees_the_worker() -> anyhow::Result<()> {
    let server = TestServer::start_with(|config| config.generation.max_batch = 1).await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    let mut stream = client.generate(uk_question(400)).await?.into_inner();
    // Wait for the first token, then hang up.
    while let Some(event) = stream.message().await? {
        if matches!(event.event, Some(Event::Delta(_))) {
            break;
        }
    }
    drop(stream);
    // One request at a time (max_batch 1): this one only finishes if the abandoned one stopped.
    let started = std::time::Instant::now();
    let next = tokio::time::timeout(std::time::Duration::from_secs(60), client.generate_once(uk_question(8)))
        .await??;
    assert!(next.into_inner().stats.is_some_and(|s| s.output_tokens > 0));
    eprintln!("next request served {:?} after the hang-up", started.elapsed());
    // The bundle version's traffic tells the abandoned request from the answered one.
    let mut prompts = PromptServiceClient::new(server.channel().await?);
    let active = v1::BundleRef { region: "uk".into(), ..Default::default() };
    let bundle = prompts.get_bundle(v1::GetBundleRequest { r#ref: Some(active) }).await?.into_inner();
    let traffic = bundle.bundle.and_then(|b| b.traffic).unwrap_or_default();
    assert_eq!((traffic.requests, traffic.cancelled, traffic.errors), (2, 1, 0), "{traffic:?}");
    server.server.shutdown().await
}

#[tokio::test]
async fn beyond_the_queue_a_request_is_refused_at_once_and_counted_as_rejected() -> anyhow::Result<()> {
    let server = TestServer::start_with(|config| {
        config.generation.queue_capacity = 1;
        config.generation.max_batch = 1;
    })
    .await?;
    let mut client = GenerationServiceClient::new(server.channel().await?);
    // The model runs the first request (it is decoding once a token arrives) and the queue holds
    // the second: the third finds no room.
    let mut running = client.generate(uk_question(400)).await?.into_inner();
    while let Some(event) = running.message().await? {
        if matches!(event.event, Some(Event::Delta(_))) {
            break;
        }
    }
    let queued = client.generate(uk_question(400)).await?.into_inner();
    let refused = client.generate(uk_question(8)).await.map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    drop((running, queued));
    let mut prompts = PromptServiceClient::new(server.channel().await?);
    let active = v1::BundleRef { region: "uk".into(), ..Default::default() };
    let bundle = prompts.get_bundle(v1::GetBundleRequest { r#ref: Some(active) }).await?.into_inner();
    let traffic = bundle.bundle.and_then(|b| b.traffic).unwrap_or_default();
    assert_eq!(
        (traffic.rejected, traffic.errors),
        (1, 0),
        "load is not an error of the version: {traffic:?}"
    );
    server.server.shutdown().await
}

/// Requests of three regions (three bundles, each with its own steering and head) run together:
/// every one has its first token before any has finished, which a model serving one request at a
/// time cannot do, and each answer comes from its own bundle.
#[tokio::test]
async fn requests_of_different_regions_run_together_each_with_its_own_bundle() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    let started = std::time::Instant::now();
    let runs = ["us", "uk", "eu"].map(|region| {
        let mut client = GenerationServiceClient::new(channel.clone());
        let request = GenerateRequest { region: region.into(), ..uk_question(48) };
        tokio::spawn(async move {
            let mut stream = client.generate(request).await?.into_inner();
            let (mut bundle_region, mut first_token, mut answer) = (String::new(), None, String::new());
            while let Some(event) = stream.message().await? {
                match event.event {
                    Some(Event::Started(s)) => bundle_region = s.bundle.map(|b| b.region).unwrap_or_default(),
                    Some(Event::Delta(delta)) => {
                        first_token.get_or_insert_with(|| started.elapsed());
                        answer.push_str(&delta.text);
                    }
                    _ => {}
                }
            }
            let first_token = first_token.ok_or_else(|| anyhow::anyhow!("{region}: no token"))?;
            anyhow::Ok((bundle_region, first_token, started.elapsed(), answer))
        })
    });
    let mut results = Vec::new();
    for run in runs {
        results.push(run.await??);
    }
    let regions: Vec<&str> = results.iter().map(|(region, ..)| region.as_str()).collect();
    assert_eq!(regions, ["us", "uk", "eu"], "each request is served by its own region's bundle");
    let last_first_token = results.iter().map(|(_, first, ..)| *first).max().unwrap_or_default();
    let first_finish = results.iter().map(|(_, _, end, _)| *end).min().unwrap_or_default();
    eprintln!("last first token at {last_first_token:?}, first answer finished at {first_finish:?}");
    assert!(last_first_token < first_finish, "the three requests did not run together");
    assert!(results.iter().all(|(.., answer)| !answer.trim().is_empty()));
    server.server.shutdown().await
}

/// With the batch full, a client that hangs up frees its slot for a waiting request at once: the
/// waiting one gets its first token while the other running answer is still being written.
#[tokio::test]
async fn a_hang_up_frees_a_batch_slot_for_a_waiting_request() -> anyhow::Result<()> {
    let server = TestServer::start_with(|config| config.generation.max_batch = 2).await?;
    let channel = server.channel().await?;
    let first_token = async |stream: &mut tonic::Streaming<v1::GenerateEvent>| -> anyhow::Result<()> {
        while let Some(event) = stream.message().await? {
            if matches!(event.event, Some(Event::Delta(_))) {
                return Ok(());
            }
        }
        anyhow::bail!("the answer ended before its first token")
    };
    let mut client = GenerationServiceClient::new(channel.clone());
    let mut leaving = client.generate(uk_question(400)).await?.into_inner();
    let mut staying = client.generate(uk_question(400)).await?.into_inner();
    first_token(&mut leaving).await?;
    first_token(&mut staying).await?;
    let mut waiting = client.generate(uk_question(8)).await?.into_inner();
    drop(leaving);
    first_token(&mut waiting).await?;
    // The staying answer is still running (it had ~30 tokens to go here; the scheduler prefills the
    // waiting prompt in one turn and gives it a token at the next step, so it advances one or two).
    let still_running = tokio::time::timeout(std::time::Duration::from_millis(50), staying.message()).await;
    let ended = matches!(still_running, Ok(Ok(None)));
    assert!(!ended, "the waiting request started only after the other answer ended");
    server.server.shutdown().await
}
