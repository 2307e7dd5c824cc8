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

#[tokio::test]
async fn ingest_the_corpus_retrieve_per_region_and_answer_from_it() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    let files = client::collect_files(&[workspace_root().join("ingest/corpus")], &WalkOptions::default())?;
    let response = client::upload_files(
        &mut IngestServiceClient::new(channel.clone()),
        files,
        PartialMetadata::default(),
        |_, _, _| {},
    )
    .await?;
    let summary = response.summary.unwrap_or_default();
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
