//! The all-in-one path as a support tool uses it: the sample corpus ingested over gRPC, retrieval
//! isolated per region, and an answer generated from retrieved passages.

use rudder_ingest::{
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_proto::v1::{
    GenerateRequest, RetrieveRequest, SamplingParams, generation_service_client::GenerationServiceClient,
    ingest_service_client::IngestServiceClient, retrieval_service_client::RetrievalServiceClient,
};
use rudder_tests::{TestServer, workspace_root};
use tonic::transport::Channel;

#[tokio::test]
async fn ingest_the_corpus_retrieve_per_region_and_answer_from_it() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    let files = client::collect_files(&[workspace_root().join("ingest/corpus")], &WalkOptions::default())?;
    let summary = ingest(&channel, files).await?;
    assert!(summary.ingested >= 18 && summary.failed == 0, "{summary:?}");

    let mut retrieval = RetrievalServiceClient::new(channel.clone());
    for region in ["us", "uk", "eu"] {
        let request = RetrieveRequest {
            query: "how long do refunds take".into(),
            region: region.into(),
            top_k: 10,
            ..Default::default()
        };
        let passages = retrieval.retrieve(request).await?.into_inner().passages;
        assert!(!passages.is_empty(), "{region}: no passages");
        for passage in &passages {
            assert!(
                passage.regions.iter().any(|r| r == region),
                "{region} saw a passage for {:?}",
                passage.regions
            );
        }
    }
    let unknown = retrieval
        .retrieve(RetrieveRequest { query: "refunds".into(), region: "fr".into(), ..Default::default() })
        .await;
    assert_eq!(unknown.map_err(|s| s.code()).err(), Some(tonic::Code::NotFound));

    let answer = GenerationServiceClient::new(channel)
        .generate_once(GenerateRequest {
            question: "Which carriers deliver my order?".into(),
            region: "uk".into(),
            sampling: Some(SamplingParams { max_tokens: Some(16), ..Default::default() }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!answer.passages.is_empty(), "generation retrieved passages");
    assert!(answer.passages.iter().all(|p| p.regions.iter().any(|r| r == "uk")));
    assert!(answer.stats.is_some_and(|s| s.retrieval_ms > 0 || s.prompt_tokens > 0));
    server.server.shutdown().await
}

/// Uploads `files` and returns the response's summary.
async fn ingest(
    channel: &tonic::transport::Channel,
    files: Vec<std::path::PathBuf>,
) -> anyhow::Result<rudder_proto::v1::IngestSummary> {
    let response = client::upload_files(
        &mut IngestServiceClient::new(channel.clone()),
        files,
        PartialMetadata::default(),
        |_, _, _| {},
    )
    .await?;
    Ok(response.summary.unwrap_or_default())
}

fn refund_question(max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        question: "How long does a refund take after you get my return?".into(),
        region: "uk".into(),
        conversation_id: "journey-1".into(),
        sampling: Some(SamplingParams { max_tokens: Some(max_tokens), ..Default::default() }),
        ..Default::default()
    }
}

/// Versions of `doc_id` among an answer's passages and citations.
fn versions_of(response: &rudder_proto::v1::GenerateResponse, doc_id: &str) -> Vec<String> {
    let from_passages = response
        .passages
        .iter()
        .filter_map(|p| p.document.as_ref())
        .filter(|d| d.doc_id == doc_id)
        .map(|d| d.version.clone());
    let from_citations = response
        .citations
        .iter()
        .filter_map(|c| c.document.as_ref())
        .filter(|d| d.doc_id == doc_id)
        .map(|d| d.version.clone());
    from_passages.chain(from_citations).collect()
}

/// The journey of issue 8: ingest -> ask -> the refunds policy changes (a new version) -> the next
/// answer uses only the new version -> the region's bundle is swapped while a stream is in flight (it
/// finishes on the old bundle, the next answer uses the new one) -> rollback -> feedback on an answer
/// is recorded. `ingest_at` serves IngestService, `generate_at` GenerationService and PromptService
/// (the same server all-in-one; different ones in split mode).
async fn journey(ingest_at: &Channel, generate_at: &Channel) -> anyhow::Result<()> {
    use rudder_proto::v1::{
        ActivateBundleRequest, BundleRef, ListFeedbackRequest, Rating, RollbackBundleRequest,
        SubmitFeedbackRequest, generate_event::Event, prompt_service_client::PromptServiceClient,
    };
    let corpus = workspace_root().join("ingest/corpus");
    let files = client::collect_files(&[corpus.join("uk"), corpus.join("shared")], &WalkOptions::default())?;
    assert_eq!(ingest(ingest_at, files).await?.failed, 0);

    let mut generation = GenerationServiceClient::new(generate_at.clone());
    let before = generation.generate_once(refund_question(8)).await?.into_inner();
    let versions = versions_of(&before, "refunds-uk");
    assert!(
        !versions.is_empty() && versions.iter().all(|v| v == "2026-03-01"),
        "the first answer draws on refunds-uk 2026-03-01: {:?}",
        before.passages
    );

    // The refunds policy changes: a new version with a shorter refund time.
    let dir = tempfile::tempdir()?;
    let original = std::fs::read_to_string(corpus.join("uk/refunds-uk.md"))?;
    let changed = original
        .replace("version = \"2026-03-01\"", "version = \"2026-12-01\"")
        .replace("We refund you within **14 days**", "We refund you within **7 days**");
    assert_ne!(changed, original);
    std::fs::write(dir.path().join("refunds-uk.md"), changed)?;
    let summary = ingest(ingest_at, vec![dir.path().join("refunds-uk.md")]).await?;
    assert_eq!(summary.replaced, 1, "{summary:?}");
    let after = generation.generate_once(refund_question(8)).await?.into_inner();
    let versions = versions_of(&after, "refunds-uk");
    assert!(
        !versions.is_empty() && versions.iter().all(|v| v == "2026-12-01"),
        "only the new version: {versions:?}"
    );
    assert!(after.passages.iter().any(|p| p.text.contains("7 days")), "the new text is what the model saw");

    // The bundle swap: the shipped tuned version serves a stream while uk@1 is activated (forced, with
    // a reason: this is a swap to the text-only version, which the gate would refuse).
    let tuned = rudder_tests::shipped_latest("uk")?;
    let mut prompts = PromptServiceClient::new(generate_at.clone());
    let mut in_flight = generation.generate(refund_question(12)).await?.into_inner();
    let first = in_flight.message().await?.and_then(|e| e.event);
    assert!(
        matches!(&first, Some(Event::Started(s)) if s.bundle.as_ref().map(|b| b.version) == Some(tuned)),
        "{first:?}"
    );
    prompts
        .activate_bundle(ActivateBundleRequest {
            r#ref: Some(BundleRef { region: "uk".into(), brand: String::new(), version: 1 }),
            force: true,
            reason: "journey: switch to the text-only bundle".into(),
            actor: "journey".into(),
            ..Default::default()
        })
        .await?;
    let mut finished_on = None;
    while let Some(event) = in_flight.message().await? {
        if let Some(Event::Stats(stats)) = event.event {
            finished_on = stats.bundle.map(|b| b.version);
        }
    }
    assert_eq!(finished_on, Some(tuned), "the stream in flight finished on the bundle it started with");
    let swapped = generation.generate_once(refund_question(4)).await?.into_inner();
    assert_eq!(swapped.stats.and_then(|s| s.bundle).map(|b| b.version), Some(1));

    // Rollback, then feedback on the rolled-back answer.
    let rolled = prompts
        .rollback_bundle(RollbackBundleRequest {
            region: "uk".into(),
            reason: "journey".into(),
            actor: "journey".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rolled.summary.map(|s| s.active_version), Some(tuned));
    let answer = generation.generate_once(refund_question(8)).await?.into_inner();
    assert_eq!(answer.stats.as_ref().and_then(|s| s.bundle.as_ref()).map(|b| b.version), Some(tuned));
    generation
        .submit_feedback(SubmitFeedbackRequest {
            request_id: answer.request_id.clone(),
            rating: Rating::Bad as i32,
            corrected_answer: "We refund you within 7 days of receiving your return [1].".into(),
            reason: "the policy changed".into(),
            author: "journey".into(),
        })
        .await?;
    let listed = generation.list_feedback(ListFeedbackRequest::default()).await?.into_inner();
    assert_eq!(listed.feedback.first().map(|f| f.request_id.as_str()), Some(answer.request_id.as_str()));
    Ok(())
}

#[tokio::test]
async fn the_journey_on_the_all_in_one_server() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    journey(&channel, &channel).await?;
    server.server.shutdown().await
}

/// The same journey with retrieval in its own server: generation asks it over gRPC. (Ingestion shares
/// retrieval's server here: on the embedded store two processes cannot open one store; a Qdrant server
/// lets all three run apart.) Then retrieval goes away: generation answers UNAVAILABLE naming it, or
/// without passages when the request allows, and recovers when retrieval is back.
#[tokio::test]
async fn the_journey_in_split_mode_and_retrieval_going_away_and_coming_back() -> anyhow::Result<()> {
    use rudder_core::config::ServiceRole;
    let store_side =
        TestServer::start_with(|c| c.server.services = vec![ServiceRole::Ingest, ServiceRole::Retrieval])
            .await?;
    let retrieval_url = store_side.url();
    let generation_side = TestServer::start_with(|c| {
        c.server.services = vec![ServiceRole::Generation];
        c.generation.retrieval_url = retrieval_url.clone();
    })
    .await?;
    let (store_channel, generation_channel) = (store_side.channel().await?, generation_side.channel().await?);
    journey(&store_channel, &generation_channel).await?;

    let (stopped, config) = store_side.stop().await?;
    let mut generation = GenerationServiceClient::new(generation_channel.clone());
    let refused = generation.generate_once(refund_question(4)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains(&retrieval_url), "{refused:?}");
    let without = generation
        .generate_once(GenerateRequest { allow_without_passages: true, ..refund_question(4) })
        .await?
        .into_inner();
    assert!(without.stats.is_some_and(|s| s.retrieval_skipped) && without.passages.is_empty());

    let store_side = stopped.start_again(config).await?;
    let mut recovered = None;
    for _ in 0..50 {
        match generation.generate_once(refund_question(4)).await {
            Ok(answer) => {
                recovered = Some(answer.into_inner());
                break;
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
    let recovered = recovered.ok_or_else(|| anyhow::anyhow!("generation did not recover within 10 s"))?;
    assert!(!recovered.passages.is_empty(), "passages come from retrieval again");
    generation_side.server.shutdown().await?;
    store_side.server.shutdown().await
}

/// MMR over gRPC: lambda 1 keeps the relevance order, a low lambda spreads the passages over at least
/// as many documents, and a lambda outside [0, 1] names the field.
#[tokio::test]
async fn mmr_diversity_over_grpc() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    let corpus = workspace_root().join("ingest/corpus");
    let files = client::collect_files(&[corpus.join("uk"), corpus.join("shared")], &WalkOptions::default())?;
    assert_eq!(ingest(&channel, files).await?.failed, 0);
    let mut retrieval = RetrievalServiceClient::new(channel);
    let ask = |mmr_lambda: Option<f32>| RetrieveRequest {
        query: "faulty item refund".into(),
        region: "uk".into(),
        top_k: 6,
        mmr_lambda,
        ..Default::default()
    };
    let ids = |passages: &[rudder_proto::v1::Passage]| -> Vec<(String, u32)> {
        passages.iter().map(|p| (p.document.clone().unwrap_or_default().doc_id, p.chunk_index)).collect()
    };
    let plain = retrieval.retrieve(ask(None)).await?.into_inner().passages;
    let relevance = retrieval.retrieve(ask(Some(1.0))).await?.into_inner().passages;
    assert_eq!(ids(&relevance), ids(&plain), "lambda 1 is plain relevance order");
    let diverse = retrieval.retrieve(ask(Some(0.2))).await?.into_inner().passages;
    assert_eq!(diverse.len(), plain.len());
    let documents = |passages: &[rudder_proto::v1::Passage]| {
        passages
            .iter()
            .filter_map(|p| p.document.as_ref().map(|d| d.doc_id.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(documents(&diverse) >= documents(&plain), "{:?} vs {:?}", ids(&diverse), ids(&plain));
    assert_ne!(ids(&diverse), ids(&plain), "a low lambda changes the pick");
    let bad = retrieval.retrieve(ask(Some(1.5))).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("mmr_lambda"), "{bad:?}");
    server.server.shutdown().await
}

/// The journey with ingestion, retrieval and generation as three servers, the first two on a Qdrant
/// server through the `qdrant` backend. Needs a server: runs when RUDDER_TEST_QDRANT_URL is set.
#[tokio::test]
async fn the_journey_with_three_servers_on_a_qdrant_server() -> anyhow::Result<()> {
    use rudder_core::config::{ServiceRole, StoreBackend};
    let Ok(url) = std::env::var("RUDDER_TEST_QDRANT_URL") else {
        eprintln!("skipped: RUDDER_TEST_QDRANT_URL is not set");
        return Ok(());
    };
    let collection = format!("rudder_journey_{}", std::process::id());
    let on_qdrant = |config: &mut rudder_core::Config, role: ServiceRole| {
        config.server.services = vec![role];
        config.store.backend = StoreBackend::Qdrant;
        config.store.qdrant.url = url.clone();
        config.store.qdrant.collection = collection.clone();
    };
    let ingest_side = TestServer::start_with(|c| on_qdrant(c, ServiceRole::Ingest)).await?;
    let retrieval_side = TestServer::start_with(|c| on_qdrant(c, ServiceRole::Retrieval)).await?;
    let retrieval_url = retrieval_side.url();
    let generation_side = TestServer::start_with(|c| {
        c.server.services = vec![ServiceRole::Generation];
        c.generation.retrieval_url = retrieval_url.clone();
    })
    .await?;
    let outcome = journey(&ingest_side.channel().await?, &generation_side.channel().await?).await;
    let options = rudder_store::QdrantOptions::new(&url, &collection);
    let cleanup = tokio::task::spawn_blocking(move || {
        rudder_store::QdrantStore::connect(&options, 384).and_then(|store| store.drop_collection())
    })
    .await?;
    outcome?;
    cleanup?;
    generation_side.server.shutdown().await?;
    retrieval_side.server.shutdown().await?;
    ingest_side.server.shutdown().await
}
