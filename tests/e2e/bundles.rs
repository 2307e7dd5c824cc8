//! PromptService over real gRPC: publishing a bundle with real trained artifacts, the evaluation gate
//! on the real model, hot swaps that leave a request in flight on its version, A/B routing, rollback,
//! the audit log, a restart; and the feedback loop from SubmitFeedback to training examples.

use rudder_core::BundleKey;
use rudder_proto::v1::{
    self, ActivateBundleRequest, ArtifactData, ArtifactKind, ArtifactManifest, BundleRef, BundleSpec,
    EvaluateBundleRequest, GenerateRequest, GetAuditLogRequest, GetBundleRequest, ListBundlesRequest,
    ListFeedbackRequest, PromoteCandidateRequest, PublishBundleRequest, Rating, RollbackBundleRequest,
    SamplingParams, SubmitFeedbackRequest, generate_event::Event,
    generation_service_client::GenerationServiceClient, prompt_service_client::PromptServiceClient,
    publish_bundle_request::Message,
};
use rudder_tests::{TestServer, scrape_metrics, shipped_versions};
use tonic::{Code, transport::Channel};

fn uk(version: u32) -> Option<BundleRef> {
    Some(BundleRef { region: "uk".into(), brand: String::new(), version })
}

/// A short uk question with its passage, answered in `max_tokens` tokens at most.
fn question(conversation_id: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        question: "How long do refunds take?".into(),
        region: "uk".into(),
        conversation_id: conversation_id.into(),
        passages: vec![v1::Passage {
            document: Some(v1::DocumentRef { doc_id: "refunds-uk".into(), version: "2026-01".into() }),
            title: "Refunds (UK)".into(),
            heading_path: vec!["Refund timing".into()],
            text: "Refunds reach the original payment method within 5 working days of the return arriving."
                .into(),
            regions: vec!["uk".into()],
            ..Default::default()
        }],
        sampling: Some(SamplingParams { max_tokens: Some(max_tokens), ..Default::default() }),
        ..Default::default()
    }
}

/// The version that served one answer, and the answer's request id.
async fn served_by(
    client: &mut GenerationServiceClient<Channel>,
    request: GenerateRequest,
) -> anyhow::Result<(u32, String)> {
    let response = client.generate_once(request).await?.into_inner();
    let stats = response.stats.ok_or_else(|| anyhow::anyhow!("no stats"))?;
    Ok((stats.bundle.map_or(0, |b| b.version), response.request_id))
}

/// A publish of uk with `system_text` and the artifacts of the latest shipped uk version (as files of
/// the trainer's format), the soft prompt's bytes replaced by `soft_prompt_bytes` when given.
fn publish_messages(
    fingerprint: &str,
    system_text: &str,
    soft_prompt_bytes: Option<Vec<u8>>,
) -> anyhow::Result<Vec<PublishBundleRequest>> {
    let versions = shipped_versions("uk")?;
    let latest = versions.last().ok_or_else(|| anyhow::anyhow!("no shipped uk version"))?;
    let shipped = |artifact: &Option<rudder_core::bundle::ArtifactRef>| {
        let artifact =
            artifact.as_ref().ok_or_else(|| anyhow::anyhow!("{} is not tuned", latest.bundle.id()))?;
        anyhow::Ok(std::fs::read(&artifact.path)?)
    };
    let prefix = shipped(&latest.bundle.policy_prefix)?;
    let soft = match soft_prompt_bytes {
        Some(bytes) => bytes,
        None => shipped(&latest.bundle.tone_soft_prompt)?,
    };
    let manifest = |kind: ArtifactKind, name: &str| ArtifactManifest {
        kind: kind as i32,
        name: name.into(),
        base_model_fingerprint: fingerprint.into(),
        steps: 24,
        ..Default::default()
    };
    let spec = BundleSpec {
        region: "uk".into(),
        system_text: system_text.into(),
        artifacts: vec![
            manifest(ArtifactKind::PolicyPrefix, "policy-prefix"),
            manifest(ArtifactKind::ToneSoftPrompt, "tone-soft-prompt"),
        ],
        retrieval_regions: vec!["uk".into()],
        description: format!("{}'s steering, republished", latest.bundle.id()),
        actor: "ann".into(),
        ..Default::default()
    };
    let data = |name: &str, bytes: &[u8]| -> Vec<PublishBundleRequest> {
        // In pieces, as a client streams a large file.
        bytes
            .chunks(64 << 10)
            .map(|piece| PublishBundleRequest {
                message: Some(Message::Data(ArtifactData {
                    artifact_name: name.into(),
                    content: piece.to_vec(),
                })),
            })
            .collect()
    };
    let mut messages = vec![PublishBundleRequest { message: Some(Message::Spec(spec)) }];
    messages.extend(data("policy-prefix", &prefix));
    messages.extend(data("tone-soft-prompt", &soft));
    Ok(messages)
}

/// A soft prompt of `rows` x `hidden` values, one of which may be NaN, as safetensors bytes.
fn soft_prompt(rows: usize, hidden: usize, nan: bool) -> anyhow::Result<Vec<u8>> {
    let mut values = vec![0.01f32; rows * hidden];
    if nan {
        values[3] = f32::NAN;
    }
    let tensor = candle_core::Tensor::from_vec(values, (rows, hidden), &candle_core::Device::Cpu)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("t.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("prompt_embeddings".to_owned(), tensor)]),
        &path,
    )?;
    Ok(std::fs::read(path)?)
}

#[tokio::test]
async fn publish_gate_hot_swap_ab_rollback_and_audit_over_grpc() -> anyhow::Result<()> {
    let server = TestServer::start_with(|c| c.server.metrics_listen = "127.0.0.1:0".into()).await?;
    let channel = server.channel().await?;
    let mut prompts = PromptServiceClient::new(channel.clone());
    let mut generation = GenerationServiceClient::new(channel);
    let info = generation.get_model_info(v1::GetModelInfoRequest::default()).await?.into_inner();
    // `shipped` is the tuned version a fresh server serves uk with; the test publishes `next`.
    let shipped = rudder_tests::shipped_latest("uk")?;
    let next = shipped + 1;
    let shipped_text = prompts.get_bundle(GetBundleRequest { r#ref: uk(shipped) }).await?.into_inner();
    let shipped_text = shipped_text.bundle.map(|b| b.system_text).unwrap_or_default();

    // Bad publishes: a clear status each, and nothing written.
    let publisher = prompts.clone();
    let publish = |messages: Vec<PublishBundleRequest>| {
        let mut prompts = publisher.clone();
        async move { prompts.publish_bundle(tokio_stream::iter(messages)).await }
    };
    let wrong_model = publish(publish_messages("llama:0000", &shipped_text, None)?).await.unwrap_err();
    assert_eq!(wrong_model.code(), Code::FailedPrecondition, "{wrong_model:?}");
    let nan = publish(publish_messages(
        &info.fingerprint,
        &shipped_text,
        Some(soft_prompt(20, info.hidden_size as usize, true)?),
    )?)
    .await
    .unwrap_err();
    assert_eq!(nan.code(), Code::InvalidArgument);
    assert!(nan.message().contains("NaN"), "{nan:?}");
    let misshapen =
        publish(publish_messages(&info.fingerprint, &shipped_text, Some(soft_prompt(20, 7, false)?))?)
            .await
            .unwrap_err();
    assert_eq!(misshapen.code(), Code::InvalidArgument);
    assert!(misshapen.message().contains("shape"), "{misshapen:?}");
    let mut missing_data = publish_messages(&info.fingerprint, &shipped_text, None)?;
    missing_data
        .retain(|m| !matches!(&m.message, Some(Message::Data(d)) if d.artifact_name == "tone-soft-prompt"));
    assert_eq!(publish(missing_data).await.unwrap_err().code(), Code::InvalidArgument);
    type Widen = fn(&mut BundleSpec);
    let scopes: [(Widen, &str); 3] = [
        (|spec| spec.retrieval_regions.push("eu".into()), "spec.retrieval_regions"),
        (|spec| spec.retrieval_brands = vec!["acme".into(), "outlet".into()], "spec.retrieval_brands"),
        (|spec| spec.retrieval_brands = vec!["Outlet".into()], "spec.retrieval_brands[0]"),
    ];
    for (widen, field) in scopes {
        let mut messages = publish_messages(&info.fingerprint, &shipped_text, None)?;
        if let Some(Message::Spec(spec)) = &mut messages[0].message {
            widen(spec);
        }
        let refused = publish(messages).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{field}");
        assert!(refused.message().contains(field), "{refused:?}");
    }
    let listed = prompts.list_bundles(ListBundlesRequest { region: "uk".into() }).await?.into_inner();
    assert_eq!(
        listed.bundles[0].versions,
        (1..=shipped).collect::<Vec<_>>(),
        "no bad publish left a version behind"
    );

    // A good publish: uk@next carries exactly uk@shipped's steering, so the gate compares equals.
    let published = publish(publish_messages(&info.fingerprint, &shipped_text, None)?).await?.into_inner();
    assert_eq!(published.r#ref.map(|r| r.version), Some(next));
    let republished = prompts.get_bundle(GetBundleRequest { r#ref: uk(next) }).await?.into_inner();
    let republished_bundle = republished.bundle.ok_or_else(|| anyhow::anyhow!("no bundle"))?;
    assert!(!republished.active, "published, not yet active");
    let prefix = republished_bundle.policy_prefix.ok_or_else(|| anyhow::anyhow!("no prefix manifest"))?;
    assert_eq!(prefix.base_model_fingerprint, info.fingerprint);
    assert_eq!(prefix.shapes["prefix_keys"].dims.len(), 4);

    // Evaluations first, then a request starts on uk@shipped, then uk@next goes live: the request in
    // flight finishes on uk@shipped, the next one is served by uk@next.
    for version in [shipped, next] {
        let report =
            prompts.evaluate_bundle(EvaluateBundleRequest { r#ref: uk(version) }).await?.into_inner();
        let metrics = report.report.map(|r| r.metrics).unwrap_or_default();
        assert!(
            ["heldout_nll", "british_spelling", "false_figure_rate"].iter().all(|m| metrics.contains_key(*m)),
            "{metrics:?}"
        );
    }
    let mut in_flight = generation.generate(question("", 16)).await?.into_inner();
    let first = in_flight.message().await?.and_then(|e| e.event);
    let Some(Event::Started(started)) = first else { anyhow::bail!("no Started event: {first:?}") };
    assert_eq!(started.bundle.map(|b| b.version), Some(shipped));
    let activated = prompts
        .activate_bundle(ActivateBundleRequest {
            r#ref: uk(next),
            actor: "bob".into(),
            reason: "same steering".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!activated.gate.is_empty() && activated.gate.iter().all(|c| c.passed), "{:?}", activated.gate);
    let mut finished_on = None;
    while let Some(event) = in_flight.message().await? {
        if let Some(Event::Stats(stats)) = event.event {
            finished_on = stats.bundle.map(|b| b.version);
        }
    }
    assert_eq!(finished_on, Some(shipped), "the request in flight finished on the version it started with");
    assert_eq!(served_by(&mut generation, question("", 1)).await?.0, next);

    // The gate refuses uk@1 (guidance as text: a much higher held-out NLL than the tuned steering);
    // force needs a reason.
    let refused = prompts
        .activate_bundle(ActivateBundleRequest { r#ref: uk(1), actor: "eve".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("heldout_nll"), "{refused:?}");
    let no_reason = prompts
        .activate_bundle(ActivateBundleRequest { r#ref: uk(1), force: true, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    assert_eq!(served_by(&mut generation, question("", 1)).await?.0, next, "refusals change nothing");

    // A/B: uk@shipped as the candidate for 50% of conversations, sticky per conversation id.
    prompts
        .activate_bundle(ActivateBundleRequest {
            r#ref: uk(shipped),
            traffic_percent: 50,
            actor: "bob".into(),
            ..Default::default()
        })
        .await?;
    let key = BundleKey { region: "uk".into(), brand: None };
    let conversation = |on_candidate: bool| {
        (0..)
            .map(|i| format!("conversation-{i}"))
            .find(|id| (rudder_prompts::bundles::registry::ab_bucket(&key, id) < 50) == on_candidate)
            .unwrap_or_default()
    };
    for (id, expected) in [(conversation(true), shipped), (conversation(false), next)] {
        for _ in 0..2 {
            assert_eq!(served_by(&mut generation, question(&id, 1)).await?.0, expected, "{id}");
        }
    }
    let candidate = prompts.get_bundle(GetBundleRequest { r#ref: uk(shipped) }).await?.into_inner();
    assert!(candidate.candidate);
    let traffic = candidate.bundle.and_then(|b| b.traffic).unwrap_or_default();
    assert!(traffic.requests >= 2 && traffic.latency_p50_ms > 0.0, "{traffic:?}");
    // The same counts, and the A/B split itself, for Prometheus.
    let metrics = scrape_metrics(&server.server).await?;
    let on_candidate = format!(r#"region="uk",brand="",version="{shipped}""#);
    let answered = traffic.requests - traffic.errors - traffic.cancelled;
    for expected in [
        format!("rudder_bundle_active_version{{region=\"uk\",brand=\"\"}} {next}"),
        format!("rudder_bundle_candidate_traffic_percent{{{on_candidate}}} 50"),
        format!("rudder_generate_requests_total{{{on_candidate},outcome=\"ok\"}} {answered}"),
        format!(
            "rudder_generate_requests_total{{{on_candidate},outcome=\"cancelled\"}} {}",
            traffic.cancelled
        ),
        format!("rudder_generate_latency_seconds_count{{{on_candidate}}} {answered}"),
    ] {
        assert!(metrics.lines().any(|line| line == expected), "no {expected} in\n{metrics}");
    }
    let promoted = prompts
        .promote_candidate(PromoteCandidateRequest {
            region: "uk".into(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(promoted.summary.map(|s| (s.active_version, s.candidate_version)), Some((shipped, 0)));

    // Rollback returns to uk@next, and that survives a restart.
    let rolled = prompts
        .rollback_bundle(RollbackBundleRequest {
            region: "uk".into(),
            actor: "carol".into(),
            reason: "night shift".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rolled.summary.map(|s| s.active_version), Some(next));
    let server = server.restart().await?;
    let channel = server.channel().await?;
    let mut prompts = PromptServiceClient::new(channel.clone());
    let mut generation = GenerationServiceClient::new(channel);
    assert_eq!(served_by(&mut generation, question("", 1)).await?.0, next);
    let audit = prompts
        .get_audit_log(GetAuditLogRequest { region: "uk".into(), ..Default::default() })
        .await?
        .into_inner();
    let trail: Vec<(i32, u32, u32, &str)> =
        audit.entries.iter().map(|e| (e.action, e.from_version, e.to_version, e.actor.as_str())).collect();
    use v1::AuditAction as A;
    assert_eq!(
        trail,
        [
            (A::Rollback as i32, shipped, next, "carol"),
            (A::PromoteCandidate as i32, next, shipped, "bob"),
            (A::StartCandidate as i32, next, shipped, "bob"),
            (A::Activate as i32, shipped, next, "bob"),
            (A::Publish as i32, 0, next, "ann"),
        ]
    );
    let unknown = prompts
        .activate_bundle(ActivateBundleRequest { r#ref: uk(next + 90), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    server.server.shutdown().await
}

#[tokio::test]
async fn feedback_is_stored_listed_and_exported_as_training_examples() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut generation = GenerationServiceClient::new(server.channel().await?);
    let (_, request_id) = served_by(&mut generation, question("c-7", 8)).await?;

    let bad = |request_id: &str, rating: Rating| SubmitFeedbackRequest {
        request_id: request_id.into(),
        rating: rating as i32,
        corrected_answer: "Refunds reach you within 5 working days of the return arriving [1].".into(),
        reason: "wrong timing".into(),
        author: "agent-7".into(),
    };
    let unknown = generation.submit_feedback(bad("no-such-request", Rating::Bad)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unrated = generation.submit_feedback(bad(&request_id, Rating::Unspecified)).await.unwrap_err();
    assert_eq!(unrated.code(), Code::InvalidArgument);
    assert!(unrated.message().contains("rating"), "{unrated:?}");
    let stored = generation.submit_feedback(bad(&request_id, Rating::Bad)).await?.into_inner();
    assert!(!stored.feedback_id.is_empty());

    // Durable: listed after a restart, with the answer it rates.
    let server = server.restart().await?;
    let mut generation = GenerationServiceClient::new(server.channel().await?);
    let listed = generation
        .list_feedback(ListFeedbackRequest {
            region: "uk".into(),
            corrections_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let [record] = listed.feedback.as_slice() else { anyhow::bail!("expected one record: {listed:?}") };
    assert_eq!(
        (record.feedback_id.as_str(), record.request_id.as_str()),
        (stored.feedback_id.as_str(), request_id.as_str())
    );
    assert_eq!(record.question, "How long do refunds take?");
    assert_eq!(record.passages.len(), 1);
    assert_eq!(record.bundle.as_ref().map(|b| b.version), Some(rudder_tests::shipped_latest("uk")?));

    // export-feedback writes what the trainer reads.
    let out = tempfile::tempdir()?;
    let exported = out.path().join("feedback-train.jsonl");
    rudder_server::prompts_cmd::run(rudder_server::prompts_cmd::PromptsCommand::ExportFeedback {
        out: exported.clone(),
        region: Some("uk".into()),
        include_good: false,
        config: rudder_server::ConfigFlags {
            data_dir: Some(server.config.server.data_dir.clone()),
            ..Default::default()
        },
    })
    .await?;
    let data = rudder_prompts::train::data::DataFile::read(&exported, rudder_prompts::train::BadLines::Stop)?;
    let [example] = data.examples.as_slice() else { anyhow::bail!("expected one example") };
    assert_eq!(example.answer, record.corrected_answer);
    assert!(example.context.last().is_some_and(|turn| turn.content.contains("Refund timing")));
    server.server.shutdown().await
}
