//! Retrieval quality on the labelled set (ingest/eval/retrieval.jsonl) over the sample corpus, with the
//! real embedder and the embedded Qdrant engine: the quality bar for hybrid search.

use rudder_server::{ConfigFlags, eval_cmd};
use rudder_tests::workspace_root;

#[tokio::test]
async fn hybrid_search_finds_the_answering_section_in_the_top_five() -> anyhow::Result<()> {
    let root = workspace_root();
    let reports = eval_cmd::retrieval_quality(
        &ConfigFlags::default(),
        &root.join("ingest/eval/retrieval.jsonl"),
        &root.join("ingest/corpus"),
    )
    .await?;
    let recall_at_5 = |mode: &str| {
        reports.iter().find(|r| r.mode == mode).map(|r| r.overall.recall_at_5).unwrap_or_default()
    };
    let (hybrid, dense, sparse) = (recall_at_5("hybrid"), recall_at_5("dense"), recall_at_5("sparse"));
    assert!(reports.iter().all(|r| r.overall.questions >= 80), "the labelled set has at least 80 questions");
    assert!(hybrid >= 0.90, "hybrid recall@5 {hybrid:.3} < 0.90");
    assert!(hybrid >= dense.max(sparse) - 0.02, "hybrid {hybrid:.3} vs dense {dense:.3}, sparse {sparse:.3}");
    Ok(())
}
