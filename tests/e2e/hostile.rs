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

/// Every bad input below, sent over gRPC to a fresh server, with the status and message it gets: the
/// table `tests/e2e/bad-inputs.md` (linked from the README) is this test's output, so it cannot
/// drift. `RUDDER_BLESS=1` rewrites it after a deliberate change.
#[tokio::test]
async fn the_bad_input_table_is_what_clients_get() -> anyhow::Result<()> {
    use rudder_proto::v1::{
        RetrieveRequest, ingest_request::Message, ingest_service_client::IngestServiceClient,
        retrieval_service_client::RetrievalServiceClient,
    };
    let server = TestServer::start().await?;
    let channel = server.channel().await?;
    let mut generation = GenerationServiceClient::new(channel.clone());
    let mut retrieval = RetrievalServiceClient::new(channel.clone());
    let mut ingest = IngestServiceClient::new(channel);
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut record = |input: &str, result: Result<String, tonic::Status>| {
        let (code, message) = match result {
            Ok(summary) => ("OK".to_owned(), summary),
            Err(status) => (format!("{:?}", status.code()), status.message().to_owned()),
        };
        rows.push((input.to_owned(), code, message.replace('|', "\\|").replace('\n', " ")));
    };

    let ask = || GenerateRequest {
        question: "how long do refunds take?".into(),
        region: "uk".into(),
        ..Default::default()
    };
    let sampling = |s: v1::SamplingParams| Some(s);
    let generate_cases: Vec<(&str, GenerateRequest)> = vec![
        ("Generate: empty question", GenerateRequest { question: " ".into(), ..ask() }),
        ("Generate: question of 4,001 characters", GenerateRequest { question: "a".repeat(4001), ..ask() }),
        ("Generate: no region", GenerateRequest { region: String::new(), ..ask() }),
        ("Generate: unknown region", GenerateRequest { region: "mars".into(), ..ask() }),
        ("Generate: unknown brand", GenerateRequest { brand: "acme".into(), ..ask() }),
        ("Generate: bundle_version 0", GenerateRequest { bundle_version: Some(0), ..ask() }),
        ("Generate: grounding 99", GenerateRequest { grounding: 99, ..ask() }),
        (
            "Generate: max_tokens 0",
            GenerateRequest {
                sampling: sampling(v1::SamplingParams { max_tokens: Some(0), ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: temperature -1",
            GenerateRequest {
                sampling: sampling(v1::SamplingParams { temperature: Some(-1.0), ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: top_p 1.5",
            GenerateRequest {
                sampling: sampling(v1::SamplingParams { top_p: Some(1.5), ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: 9 stop sequences",
            GenerateRequest {
                sampling: sampling(v1::SamplingParams { stop: vec!["x".into(); 9], ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: retrieval.top_k 21",
            GenerateRequest {
                retrieval: Some(v1::RetrievalOptions { top_k: 21, ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: retrieval.mode 99",
            GenerateRequest {
                retrieval: Some(v1::RetrievalOptions { mode: 99, ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: retrieval.min_score NaN",
            GenerateRequest {
                retrieval: Some(v1::RetrievalOptions { min_score: Some(f32::NAN), ..Default::default() }),
                ..ask()
            },
        ),
        (
            "Generate: 33 history turns",
            GenerateRequest {
                history: vec![v1::ChatTurn { role: v1::ChatRole::User as i32, content: "hi".into() }; 33],
                ..ask()
            },
        ),
        (
            "Generate: a 5 MB request (a 5 MB passage)",
            GenerateRequest {
                passages: vec![passage("huge", "Huge", "All", &"Refunds take 14 days. ".repeat(240_000))],
                ..ask()
            },
        ),
        (
            "Generate: history turn without a role",
            GenerateRequest { history: vec![v1::ChatTurn { role: 0, content: "hi".into() }], ..ask() },
        ),
    ];
    for (input, request) in generate_cases {
        let result = generation.generate_once(request).await.map(|r| {
            let r = r.into_inner();
            let grounding = r.stats.map(|s| s.grounding).unwrap_or_default();
            format!(
                "answered ({})",
                v1::Grounding::try_from(grounding).map(|g| g.as_str_name()).unwrap_or("?")
            )
        });
        record(input, result);
    }

    let query = || RetrieveRequest { query: "refunds".into(), region: "uk".into(), ..Default::default() };
    let retrieve_cases: Vec<(&str, RetrieveRequest)> = vec![
        ("Retrieve: empty query", RetrieveRequest { query: String::new(), ..query() }),
        ("Retrieve: unknown region", RetrieveRequest { region: "mars".into(), ..query() }),
        ("Retrieve: top_k 101", RetrieveRequest { top_k: 101, ..query() }),
        ("Retrieve: mode 99", RetrieveRequest { mode: 99, ..query() }),
        ("Retrieve: min_score infinite", RetrieveRequest { min_score: Some(f32::INFINITY), ..query() }),
        ("Retrieve: mmr_lambda 2", RetrieveRequest { mmr_lambda: Some(2.0), ..query() }),
    ];
    for (input, request) in retrieve_cases {
        let result =
            retrieval.retrieve(request).await.map(|r| format!("{} passages", r.into_inner().passages.len()));
        record(input, result);
    }

    let depth = 20_000;
    let nested = format!(
        "<html><body>{}<p>Refunds take 14 days.</p>{}</body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let documents: Vec<(&str, &str, Vec<u8>)> = vec![
        ("Ingest: unknown extension", "policy.docx", b"Refunds take 14 days.".to_vec()),
        ("Ingest: empty document", "empty.md", b"  \n".to_vec()),
        ("Ingest: invalid UTF-8", "bad.txt", vec![b'R', 0xff, 0xfe, b'x']),
        ("Ingest: a .pdf that is not a PDF", "fake.pdf", b"Refunds take 14 days.".to_vec()),
        (
            "Ingest: an encrypted PDF",
            "locked.pdf",
            b"%PDF-1.7\n1 0 obj << /Encrypt 2 0 R >> endobj\n".to_vec(),
        ),
        ("Ingest: headings only", "headings.md", b"# Refunds\n\n## Timing\n".to_vec()),
        ("Ingest: HTML nested 20,000 deep", "nested.html", nested.into_bytes()),
    ];
    for (input, file_name, content) in documents {
        let messages = vec![
            v1::IngestRequest {
                message: Some(Message::Start(v1::DocumentStart {
                    metadata: Some(v1::DocumentMetadata { regions: vec!["uk".into()], ..Default::default() }),
                    file_name: file_name.into(),
                    ..Default::default()
                })),
            },
            v1::IngestRequest { message: Some(Message::Data(v1::DocumentData { content })) },
            v1::IngestRequest { message: Some(Message::End(v1::DocumentEnd { sha256: String::new() })) },
        ];
        let result = ingest.ingest(tokio_stream::iter(messages)).await.and_then(|r| {
            let r = r.into_inner();
            let first = r.results.into_iter().next().ok_or_else(|| tonic::Status::internal("no result"))?;
            match v1::IngestOutcome::try_from(first.outcome) {
                Ok(v1::IngestOutcome::Failed) => {
                    Err(tonic::Status::new(Code::from_i32(first.error_code), first.error_message))
                }
                outcome => Ok(format!(
                    "{} ({} chunks)",
                    outcome.map(|o| o.as_str_name()).unwrap_or("?"),
                    first.chunk_count
                )),
            }
        });
        record(input, result);
    }

    let mut table = String::from(
        "<!-- Written by `cargo test -p rudder-tests --test e2e bad_input_table` (RUDDER_BLESS=1 to rewrite). -->\n\
         | input | status | message |\n| --- | --- | --- |\n",
    );
    for (input, code, message) in &rows {
        table.push_str(&format!("| {input} | {code} | {message} |\n"));
    }
    let path = rudder_tests::workspace_root().join("tests/e2e/bad-inputs.md");
    if std::env::var_os("RUDDER_BLESS").is_some() {
        std::fs::write(&path, &table)?;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, table,
        "tests/e2e/bad-inputs.md is out of date: rerun with RUDDER_BLESS=1 and review the diff"
    );
    for (input, code, _) in &rows {
        assert_ne!(code, "Internal", "{input}: INTERNAL is never the answer to bad input");
    }
    server.server.shutdown().await
}
