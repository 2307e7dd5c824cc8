//! Access control over real gRPC: API keys from a key file, each role calling its own RPCs only,
//! region scopes, the audit log recording the key, revocation within a second, and health without a
//! key.

use std::time::Duration;

use rudder_core::access::Role;
use rudder_proto::v1::{
    self, ActivateBundleRequest, BundleRef, GenerateRequest, GetAuditLogRequest, RetrieveRequest,
    generation_service_client::GenerationServiceClient, prompt_service_client::PromptServiceClient,
    retrieval_service_client::RetrievalServiceClient,
};
use rudder_server::auth::KeyFile;
use rudder_tests::TestServer;
use tonic::Code;

use crate::uk_passage as passage;

fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {key}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn ask(region: &str) -> GenerateRequest {
    GenerateRequest {
        question: "how long do refunds take?".into(),
        region: region.into(),
        passages: vec![passage(
            "refunds",
            "Refunds",
            "Timing",
            "Refunds are paid within 14 days of receiving the return.",
        )],
        grounding: v1::GroundingMode::Extractive as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn keys_roles_and_regions_decide_who_may_do_what() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.toml");
    let mut keys = KeyFile::default();
    let agent = keys.create("agent-uk", Role::Agent, &["uk".into()], &[])?;
    let us_agent = keys.create("agent-us", Role::Agent, &["us".into()], &[])?;
    let owner = keys.create("owner-uk", Role::PromptOwner, &["uk".into()], &[])?;
    let auditor = keys.create("auditor", Role::Auditor, &[], &[])?;
    keys.write(&path)?;
    let server = TestServer::start_with(|c| c.auth.keys_file = path.display().to_string()).await?;
    let channel = server.channel().await?;
    let mut generation = GenerationServiceClient::new(channel.clone());
    let mut retrieval = RetrievalServiceClient::new(channel.clone());
    let mut prompts = PromptServiceClient::new(channel.clone());

    // No key, a made-up key: UNAUTHENTICATED, and no key in the message. Health needs none.
    let anonymous = generation.generate_once(ask("uk")).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let forged = generation.generate_once(with_key(ask("uk"), "rudder_agent-uk_00")).await.unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    assert!(!forged.message().contains("rudder_agent-uk_00"), "{}", forged.message());
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await?;
    assert_eq!(
        health.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The uk agent asks uk questions, and nothing else.
    let answer = generation.generate_once(with_key(ask("uk"), &agent)).await?.into_inner();
    assert!(answer.answer.contains("14 days"), "{:?}", answer.answer);
    // Feedback on that answer: from its region's agent, not from another region's.
    let rating = |key: &str| {
        with_key(
            v1::SubmitFeedbackRequest {
                request_id: answer.request_id.clone(),
                rating: v1::Rating::Good as i32,
                author: "Sam".into(),
                ..Default::default()
            },
            key,
        )
    };
    let outsider = generation.submit_feedback(rating(&us_agent)).await.unwrap_err();
    assert_eq!(outsider.code(), Code::PermissionDenied, "{outsider:?}");
    generation.submit_feedback(rating(&agent)).await?;
    let elsewhere = generation.generate_once(with_key(ask("us"), &agent)).await.unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied, "{elsewhere:?}");
    let us_passages = RetrieveRequest { query: "refunds".into(), region: "us".into(), ..Default::default() };
    let retrieved = retrieval.retrieve(with_key(us_passages, &agent)).await.unwrap_err();
    assert_eq!(retrieved.code(), Code::PermissionDenied);
    let shipped = rudder_tests::shipped_latest("uk")?;
    let activate = |version: u32, actor: &str| ActivateBundleRequest {
        r#ref: Some(BundleRef { region: "uk".into(), brand: String::new(), version }),
        force: true,
        reason: "access test".into(),
        actor: actor.into(),
        ..Default::default()
    };
    let not_theirs = prompts.activate_bundle(with_key(activate(shipped - 1, ""), &agent)).await.unwrap_err();
    assert_eq!(not_theirs.code(), Code::PermissionDenied, "{not_theirs:?}");
    assert!(not_theirs.message().contains("agent-uk") && not_theirs.message().contains("ActivateBundle"));

    // The uk prompt owner changes uk's steering; the audit log says who, whatever the request claims.
    prompts.activate_bundle(with_key(activate(shipped - 1, "mallory"), &owner)).await?;
    let us_bundle = ActivateBundleRequest {
        r#ref: Some(BundleRef { region: "us".into(), brand: String::new(), version: 1 }),
        ..activate(1, "")
    };
    assert_eq!(
        prompts.activate_bundle(with_key(us_bundle, &owner)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let log = prompts
        .get_audit_log(with_key(GetAuditLogRequest { region: "uk".into(), ..Default::default() }, &auditor))
        .await?
        .into_inner();
    let latest =
        log.entries.iter().find(|e| e.reason == "access test").ok_or_else(|| anyhow::anyhow!("{log:?}"))?;
    assert_eq!(latest.actor, "owner-uk (as mallory)");
    let auditor_acts = prompts.activate_bundle(with_key(activate(shipped, ""), &auditor)).await.unwrap_err();
    assert_eq!(auditor_acts.code(), Code::PermissionDenied);

    // A revoked key is refused within a second, without a restart.
    let mut keys = KeyFile::read(&path)?;
    keys.revoke("agent-uk")?;
    keys.write(&path)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let revoked = generation.generate_once(with_key(ask("uk"), &agent)).await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");
    assert!(revoked.message().contains("revoked"), "{}", revoked.message());
    server.server.shutdown().await
}

#[tokio::test]
async fn a_public_address_without_keys_is_refused_at_start() {
    let refused =
        TestServer::start_with(|c| c.server.listen = "0.0.0.0:0".parse().expect("an address")).await;
    let message = refused.map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("server.listen") && message.contains("auth.keys_file"), "{message}");
}

/// Split mode: generation asks a RetrievalService that checks keys with its own agent key.
#[tokio::test]
async fn generation_calls_a_retrieval_that_checks_keys_with_its_own_key() -> anyhow::Result<()> {
    use rudder_core::config::ServiceRole;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.toml");
    let mut keys = KeyFile::default();
    let generation_key = keys.create("generation", Role::Agent, &[], &[])?;
    keys.write(&path)?;
    let retrieval_side = TestServer::start_with(|c| {
        c.server.services = vec![ServiceRole::Retrieval];
        c.auth.keys_file = path.display().to_string();
    })
    .await?;
    let question = || GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        ..Default::default()
    };
    for (key, works) in [(generation_key.as_str(), true), ("rudder_generation_00", false)] {
        let generation_side = TestServer::start_with(|c| {
            c.server.services = vec![ServiceRole::Generation];
            c.generation.retrieval_url = retrieval_side.url();
            c.generation.retrieval_api_key = rudder_core::Secret::new(key);
        })
        .await?;
        let mut generation = GenerationServiceClient::new(generation_side.channel().await?);
        let answered = generation.generate_once(question()).await;
        if works {
            let answer = answered?.into_inner();
            assert!(answer.stats.is_some_and(|s| !s.retrieval_skipped), "retrieval answered");
        } else {
            let refused = answered.unwrap_err();
            assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
            assert!(refused.message().contains("generation.retrieval_api_key"), "{}", refused.message());
        }
        generation_side.server.shutdown().await?;
    }
    retrieval_side.server.shutdown().await
}

/// An editor scoped to uk writes, deletes and reads uk documents only.
#[tokio::test]
async fn an_editor_is_held_to_its_regions_and_brands() -> anyhow::Result<()> {
    use rudder_proto::v1::{
        DeleteDocumentRequest, GetDocumentRequest, ListDocumentsRequest, ingest_request::Message,
        ingest_service_client::IngestServiceClient,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.toml");
    let mut keys = KeyFile::default();
    let editor = keys.create("editor-uk", Role::Editor, &["uk".into()], &[])?;
    let brand_editor = keys.create("editor-summit", Role::Editor, &[], &["summitpeak".into()])?;
    let admin = keys.create("admin", Role::Admin, &[], &[])?;
    keys.write(&path)?;
    let server = TestServer::start_with(|c| c.auth.keys_file = path.display().to_string()).await?;
    let mut ingest = IngestServiceClient::new(server.channel().await?);
    let branded = |doc_id: &str, region: &str, brand: &str| {
        let start = v1::DocumentStart {
            metadata: Some(v1::DocumentMetadata {
                doc_id: doc_id.into(),
                regions: vec![region.into()],
                brand: brand.into(),
                ..Default::default()
            }),
            file_name: format!("{doc_id}.md"),
            ..Default::default()
        };
        let messages = vec![
            v1::IngestRequest { message: Some(Message::Start(start)) },
            v1::IngestRequest {
                message: Some(Message::Data(v1::DocumentData {
                    content: b"# Refunds\n\nRefunds take 14 days.\n".to_vec(),
                })),
            },
            v1::IngestRequest { message: Some(Message::End(v1::DocumentEnd { sha256: String::new() })) },
        ];
        tokio_stream::iter(messages)
    };
    let upload = |doc_id: &str, region: &str| branded(doc_id, region, "");
    let mine = ingest.ingest(with_key(upload("refunds-uk", "uk"), &editor)).await?.into_inner();
    assert_eq!(mine.results[0].outcome, v1::IngestOutcome::Ingested as i32, "{mine:?}");
    let theirs = ingest.ingest(with_key(upload("refunds-us", "us"), &editor)).await?.into_inner();
    assert_eq!(theirs.results[0].outcome, v1::IngestOutcome::Failed as i32);
    assert_eq!(theirs.results[0].error_code, Code::PermissionDenied as i32, "{theirs:?}");
    ingest.ingest(with_key(upload("refunds-us", "us"), &admin)).await?;

    let delete = DeleteDocumentRequest { doc_id: "refunds-us".into() };
    assert_eq!(
        ingest.delete_document(with_key(delete, &editor)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let get = GetDocumentRequest { doc_id: "refunds-us".into(), include_passages: false };
    assert_eq!(ingest.get_document(with_key(get, &editor)).await.unwrap_err().code(), Code::NotFound);
    let listed =
        ingest.list_documents(with_key(ListDocumentsRequest::default(), &editor)).await?.into_inner();
    let ids: Vec<String> =
        listed.documents.iter().filter_map(|d| d.metadata.as_ref().map(|m| m.doc_id.clone())).collect();
    assert_eq!(ids, ["refunds-uk"], "a uk editor lists uk documents");
    let us = ListDocumentsRequest { region: "us".into(), ..Default::default() };
    assert_eq!(
        ingest.list_documents(with_key(us, &editor)).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A brand-scoped editor writes its brand's documents only: not another brand's, and not a
    // brand-neutral one (which serves every brand); it deletes none of those either.
    let outcome =
        async |ingest: &mut IngestServiceClient<_>, doc: &str, brand: &str| -> anyhow::Result<(i32, i32)> {
            let response =
                ingest.ingest(with_key(branded(doc, "uk", brand), &brand_editor)).await?.into_inner();
            Ok((response.results[0].outcome, response.results[0].error_code))
        };
    let ingested = (v1::IngestOutcome::Ingested as i32, 0);
    let denied = (v1::IngestOutcome::Failed as i32, Code::PermissionDenied as i32);
    assert_eq!(outcome(&mut ingest, "faq-summit", "summitpeak").await?, ingested);
    assert_eq!(outcome(&mut ingest, "faq-northwind", "northwind").await?, denied);
    assert_eq!(outcome(&mut ingest, "faq-neutral", "").await?, denied);
    let neutral = DeleteDocumentRequest { doc_id: "refunds-uk".into() };
    assert_eq!(
        ingest.delete_document(with_key(neutral, &brand_editor)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    ingest
        .delete_document(with_key(DeleteDocumentRequest { doc_id: "faq-summit".into() }, &brand_editor))
        .await?;
    server.server.shutdown().await
}

/// A key over its calls per minute is refused with RESOURCE_EXHAUSTED saying when to retry (the
/// status details' google.rpc.RetryInfo and `retry-after`); other keys go on, and a key with no
/// limit of its own gets the server's.
#[tokio::test]
async fn a_key_over_its_rate_limit_is_told_when_to_retry_and_others_go_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.toml");
    let mut keys = KeyFile::default();
    let limited = keys.create("agent-limited", Role::Agent, &[], &[])?;
    keys.limit("agent-limited", Some(2))?;
    let unlimited = keys.create("agent-unlimited", Role::Agent, &[], &[])?;
    keys.limit("agent-unlimited", Some(0))?;
    let by_default = keys.create("agent-default", Role::Agent, &[], &[])?;
    keys.write(&path)?;
    let server = TestServer::start_with(|c| {
        c.auth.keys_file = path.display().to_string();
        c.auth.requests_per_minute = 1;
    })
    .await?;
    let mut generation = GenerationServiceClient::new(server.channel().await?);
    for _ in 0..2 {
        generation.generate_once(with_key(ask("uk"), &limited)).await?;
    }
    let refused = generation.generate_once(with_key(ask("uk"), &limited)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = rudder_server::auth::limits::retry_delay(&refused)
        .ok_or_else(|| anyhow::anyhow!("no RetryInfo in {refused:?}"))?;
    assert!(delay > Duration::from_secs(20) && delay <= Duration::from_secs(30), "{delay:?}");
    assert!(refused.metadata().get("retry-after").is_some());
    assert!(refused.message().contains("agent-limited") && !refused.message().contains(&limited));
    for _ in 0..5 {
        generation.generate_once(with_key(ask("uk"), &unlimited)).await?;
    }
    generation.generate_once(with_key(ask("uk"), &by_default)).await?;
    let second = generation.generate_once(with_key(ask("uk"), &by_default)).await.unwrap_err();
    assert_eq!(second.code(), Code::ResourceExhausted, "the server's 1 per minute: {second:?}");
    server.server.shutdown().await
}
