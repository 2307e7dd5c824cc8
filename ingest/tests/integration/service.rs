//! IngestService over real tonic on 127.0.0.1:0: the corpus streamed with the generated client,
//! per-document results, paging, get and delete, and the stream-level errors.

use super::{CORPUS_DOCUMENTS, corpus_dir, embedder, regions, store};
use rudder_ingest::{
    IngestOptions, IngestServiceImpl,
    client::{self, WalkOptions},
    metadata::PartialMetadata,
};
use rudder_proto::v1::{
    DeleteDocumentRequest, DocumentData, DocumentEnd, DocumentMetadata, DocumentStart, GetDocumentRequest,
    IngestOutcome, IngestRequest, ListDocumentsRequest, ingest_request::Message,
    ingest_service_client::IngestServiceClient,
};
use std::{net::SocketAddr, path::PathBuf};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, transport::Channel};

struct Server {
    client: IngestServiceClient<Channel>,
    _server: tokio::task::JoinHandle<()>,
    // Declared last: dropped after the server task's store handle is released.
    _dir: tempfile::TempDir,
}

async fn serve(options: IngestOptions) -> Server {
    let (dir, store) = store();
    let service = IngestServiceImpl::new(store, embedder(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let client = IngestServiceClient::connect(format!("http://{addr}")).await.unwrap();
    Server { client, _server: server, _dir: dir }
}

fn corpus_files() -> Vec<PathBuf> {
    client::collect_files(&[corpus_dir()], &WalkOptions::default()).unwrap()
}

fn start(file_name: &str, regions: &[&str]) -> IngestRequest {
    IngestRequest {
        message: Some(Message::Start(DocumentStart {
            metadata: Some(DocumentMetadata {
                regions: regions.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            }),
            file_name: file_name.to_owned(),
            media_type: String::new(),
            size_bytes: 0,
        })),
    }
}

fn data(bytes: &[u8]) -> IngestRequest {
    IngestRequest { message: Some(Message::Data(DocumentData { content: bytes.to_vec() })) }
}

fn end() -> IngestRequest {
    IngestRequest { message: Some(Message::End(DocumentEnd { sha256: String::new() })) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_streams_in_and_an_oversized_document_fails_alone() {
    let mut options = IngestOptions::new(regions());
    options.limits.max_document_bytes = 64 * 1024;
    let mut server = serve(options).await;

    let extra = tempfile::tempdir().unwrap();
    let big = extra.path().join("huge-terms.md");
    std::fs::write(&big, format!("# Terms\n\n{}", "Every clause is long. ".repeat(5000))).unwrap();
    let mut files = corpus_files();
    files.insert(3, big);
    let flags = PartialMetadata { regions: vec!["us".into()], ..Default::default() };
    let response = client::upload_files(&mut server.client, files, flags, |_, _, _| {}).await.unwrap();

    assert_eq!(response.results.len(), CORPUS_DOCUMENTS + 1);
    let failed = &response.results[3];
    assert_eq!(failed.file_name, "huge-terms.md");
    assert_eq!(failed.outcome, i32::from(IngestOutcome::Failed));
    assert_eq!(failed.error_code, i32::from(Code::InvalidArgument));
    assert!(failed.error_message.contains("content") && failed.error_message.contains("65536"), "{failed:?}");
    for (index, result) in response.results.iter().enumerate().filter(|(index, _)| *index != 3) {
        assert_eq!(result.outcome, i32::from(IngestOutcome::Ingested), "{index}: {result:?}");
        assert!(result.chunk_count > 0 && !result.version.is_empty(), "{result:?}");
    }
    let summary = response.summary.unwrap();
    assert_eq!((summary.ingested, summary.failed), (CORPUS_DOCUMENTS as u32, 1));
    assert!(summary.bytes_received > 64 * 1024);
    let table = client::summary_table(&response);
    assert!(table.contains("huge-terms.md") && table.contains("FAILED"), "{table}");

    // Flags win over front matter: every document was stored for `us` only.
    let listed = server
        .client
        .list_documents(ListDocumentsRequest { region: "uk".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.documents.is_empty(), "{listed:?}");

    // The same upload again: everything unchanged, the big file still failing alone.
    let flags = PartialMetadata { regions: vec!["us".into()], ..Default::default() };
    let again = client::upload_files(&mut server.client, corpus_files(), flags, |_, _, _| {}).await.unwrap();
    assert!(again.results.iter().all(|r| r.outcome == i32::from(IngestOutcome::Unchanged)), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_and_delete_documents() {
    let mut server = serve(IngestOptions::new(regions())).await;
    let response =
        client::upload_files(&mut server.client, corpus_files(), PartialMetadata::default(), |_, _, _| {})
            .await
            .unwrap();
    assert_eq!(response.summary.unwrap().ingested, CORPUS_DOCUMENTS as u32);

    // Paging through the uk documents, three at a time.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .client
            .list_documents(ListDocumentsRequest {
                region: "uk".into(),
                brand: String::new(),
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.documents.len() <= 3);
        assert!(page.documents.iter().all(|d| d.ingested_at.is_some()), "{page:?}");
        seen.extend(page.documents.into_iter().map(|d| d.metadata.unwrap().doc_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        [
            "gift-cards",
            "loyalty-uk",
            "privacy-uk-eu",
            "refunds-uk",
            "returns-uk",
            "shipping-uk",
            "warranty-uk"
        ]
    );
    let branded = server
        .client
        .list_documents(ListDocumentsRequest { brand: "summitpeak".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = branded.documents.iter().map(|d| d.metadata.clone().unwrap().doc_id).collect();
    assert_eq!(ids, ["warranty-summitpeak-us"]);
    let bad_token = server
        .client
        .list_documents(ListDocumentsRequest { page_token: "not-hex".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    assert!(bad_token.message().contains("page_token"));

    let got = server
        .client
        .get_document(GetDocumentRequest { doc_id: "warranty-eu".into(), include_passages: true })
        .await
        .unwrap()
        .into_inner();
    let info = got.document.unwrap();
    assert_eq!(info.current_version, "2025-11-01");
    assert_eq!(info.versions, ["2025-11-01"]);
    assert_eq!(info.chunk_count as usize, got.passages.len());
    assert_eq!(info.content_sha256.len(), 64);
    // Ingested by this test, a moment ago.
    let ingested_at = info.ingested_at.unwrap().seconds;
    let now = i64::try_from(rudder_core::time::unix_now()).unwrap();
    assert!((now - 600..=now).contains(&ingested_at), "ingested at {ingested_at}, now {now}");
    let meta = info.metadata.unwrap();
    assert_eq!(
        (meta.title.as_str(), meta.source.as_str()),
        ("Legal Guarantee and Warranty (European Union)", "warranty-eu.pdf")
    );
    assert!(got.passages.iter().enumerate().all(|(i, p)| p.chunk_index as usize == i));
    assert!(got.passages.iter().any(|p| p.heading_path.last().is_some_and(|h| h == "How to make a claim")));

    let missing = server
        .client
        .get_document(GetDocumentRequest { doc_id: "nope".into(), include_passages: false })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let deleted = server
        .client
        .delete_document(DeleteDocumentRequest { doc_id: "warranty-eu".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.chunks_deleted, info.chunk_count);
    let gone = server
        .client
        .delete_document(DeleteDocumentRequest { doc_id: "warranty-eu".into() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let empty =
        server.client.delete_document(DeleteDocumentRequest { doc_id: " ".into() }).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("doc_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_and_per_document_failures() {
    let mut options = IngestOptions::new(regions());
    options.limits.max_documents_per_stream = 3;
    let mut server = serve(options).await;

    let out_of_order =
        server.client.ingest(tokio_stream::iter(vec![data(b"orphan bytes")])).await.unwrap_err();
    assert_eq!(out_of_order.code(), Code::InvalidArgument);
    assert!(out_of_order.message().contains("data"), "{out_of_order:?}");

    let nested = vec![start("a.md", &["us"]), start("b.md", &["us"])];
    let nested = server.client.ingest(tokio_stream::iter(nested)).await.unwrap_err();
    assert_eq!(nested.code(), Code::InvalidArgument);

    let too_many: Vec<_> =
        (0..4).flat_map(|i| [start(&format!("d{i}.md"), &["us"]), data(b"Some text."), end()]).collect();
    let too_many = server.client.ingest(tokio_stream::iter(too_many)).await.unwrap_err();
    assert_eq!(too_many.code(), Code::ResourceExhausted);
    // The three documents before the refused one were stored (the last one's write was still running
    // behind the stream when it failed), and the error says so.
    for doc_id in ["d0", "d1", "d2"] {
        assert!(too_many.message().contains(&format!("{doc_id}@")), "{doc_id} in {too_many:?}");
        let stored = server
            .client
            .get_document(GetDocumentRequest { doc_id: doc_id.into(), include_passages: false })
            .await;
        assert!(stored.is_ok(), "{doc_id}: {stored:?}");
    }
    assert!(!too_many.message().contains("d3@"), "{too_many:?}");

    // In-band failures: unknown region, bad checksum, a stream ending inside a document.
    let mut bad_sum = end();
    if let Some(Message::End(end)) = &mut bad_sum.message {
        end.sha256 = "00".repeat(32);
    }
    let messages = vec![
        start("fr.md", &["fr"]),
        data(b"Bonjour."),
        end(),
        start("sum.txt", &["eu"]),
        data(b"Text whose checksum is wrong."),
        bad_sum,
        start("cut.md", &["uk"]),
        data(b"Never finished."),
    ];
    let response = server.client.ingest(tokio_stream::iter(messages)).await.unwrap().into_inner();
    let codes: Vec<_> = response.results.iter().map(|r| (r.file_name.as_str(), r.error_code)).collect();
    assert_eq!(
        codes,
        [
            ("fr.md", i32::from(Code::NotFound)),
            ("sum.txt", i32::from(Code::InvalidArgument)),
            ("cut.md", i32::from(Code::InvalidArgument))
        ]
    );
    assert!(response.results[0].error_message.contains("\"fr\""), "{response:?}");
    assert!(response.results[1].error_message.contains("sha256"), "{response:?}");
    assert!(response.results.iter().all(|r| r.outcome == i32::from(IngestOutcome::Failed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_in_the_stream_describes_the_document_after_it() {
    let mut server = serve(IngestOptions::new(regions())).await;
    let sidecar = std::fs::read(corpus_dir().join("eu/shipping-eu.meta.toml")).unwrap();
    let html = std::fs::read(corpus_dir().join("eu/shipping-eu.html")).unwrap();
    let messages = vec![
        start("shipping-eu.meta.toml", &[]),
        data(&sidecar),
        end(),
        start("shipping-eu.html", &[]),
        data(&html),
        end(),
        start("orphan.meta.toml", &[]),
        data(b"doc_id = \"orphan\""),
        end(),
    ];
    let response = server.client.ingest(tokio_stream::iter(messages)).await.unwrap().into_inner();
    assert_eq!(response.results.len(), 2, "{response:?}");
    let shipping = &response.results[0];
    assert_eq!(shipping.outcome, i32::from(IngestOutcome::Ingested), "{shipping:?}");
    assert_eq!((shipping.doc_id.as_str(), shipping.version.as_str()), ("shipping-eu", "2026-02-15"));
    let orphan = &response.results[1];
    assert_eq!(orphan.file_name, "orphan.meta.toml");
    assert_eq!(orphan.error_code, i32::from(Code::InvalidArgument));
    assert!(orphan.error_message.contains("describes no document"), "{orphan:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_document_sent_again_in_a_stream_sees_its_earlier_write() {
    let mut server = serve(IngestOptions::new(regions())).await;
    // Each document's write runs behind the stream while the next is embedded: the second and third
    // must still decide on what the one before left in the store.
    let messages = vec![
        start("faq.md", &["us"]),
        data(b"# FAQ\n\nOrders ship within two days."),
        end(),
        start("faq.md", &["us"]),
        data(b"# FAQ\n\nOrders ship within three days."),
        end(),
        start("faq.md", &["us"]),
        data(b"# FAQ\n\nOrders ship within three days."),
        end(),
    ];
    let response = server.client.ingest(tokio_stream::iter(messages)).await.unwrap().into_inner();
    let outcomes: Vec<_> = response.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [IngestOutcome::Ingested, IngestOutcome::Replaced, IngestOutcome::Unchanged].map(i32::from),
        "{response:?}"
    );
    let (first, second) = (&response.results[0], &response.results[1]);
    assert_eq!(second.replaced_version, first.version);
    let got = server
        .client
        .get_document(GetDocumentRequest { doc_id: "faq".into(), include_passages: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.document.unwrap().versions, std::slice::from_ref(&second.version));
    assert!(got.passages.iter().any(|p| p.text.contains("three days")), "{:?}", got.passages);
    assert!(got.passages.iter().all(|p| !p.text.contains("two days")), "{:?}", got.passages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_named_by_their_path_are_listed_got_and_deleted_by_it() {
    let mut server = serve(IngestOptions::new(regions())).await;
    let site = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "refund/index.md",
            "---\ntitle: Refunds\ndescription: How we refund\n---\n# Refunds\n\nWithin 30 days.\n",
        ),
        ("refund/hey/index.md", "# HEY refunds\n\nWithin 14 days.\n"),
    ] {
        let path = site.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let files = client::find_documents(&[site.path().to_owned()], &WalkOptions::default()).unwrap().files;
    let flags = PartialMetadata { regions: vec!["us".into()], ..Default::default() };
    let response = client::upload_files(&mut server.client, files, flags, |_, _, _| {}).await.unwrap();
    let results: Vec<_> =
        response.results.iter().map(|r| (r.doc_id.as_str(), r.file_name.as_str())).collect();
    assert_eq!(results, [("refund/hey", "refund/hey/index.md"), ("refund", "refund/index.md")]);
    // The ignored front matter key travels with the result and shows in the table.
    assert_eq!(response.results[1].notes, ["ignored front matter keys: description"]);
    assert!(client::summary_table(&response).contains("ignored front matter keys: description"));

    let listed = server.client.list_documents(ListDocumentsRequest::default()).await.unwrap().into_inner();
    let ids: Vec<_> = listed.documents.iter().map(|d| d.metadata.as_ref().unwrap().doc_id.as_str()).collect();
    assert_eq!(ids, ["refund", "refund/hey"]);
    let got = server
        .client
        .get_document(GetDocumentRequest { doc_id: "refund/hey".into(), include_passages: true })
        .await
        .unwrap()
        .into_inner();
    let meta = got.document.unwrap().metadata.unwrap();
    assert_eq!((meta.doc_id.as_str(), meta.source.as_str()), ("refund/hey", "refund/hey/index.md"));
    assert!(got.passages.iter().all(|p| p.document.as_ref().unwrap().doc_id == "refund/hey"));
    assert!(got.passages.iter().any(|p| p.text.contains("14 days")), "{:?}", got.passages);

    let deleted = server
        .client
        .delete_document(DeleteDocumentRequest { doc_id: "refund/hey".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.chunks_deleted > 0);
    let gone = server
        .client
        .get_document(GetDocumentRequest { doc_id: "refund/hey".into(), include_passages: false })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // Deleting one path's document leaves the one above it.
    let kept = server
        .client
        .get_document(GetDocumentRequest { doc_id: "refund".into(), include_passages: false })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.document.unwrap().chunk_count > 0);
}

/// Documents built to exhaust a parser's stack: each is ingested or refused on its own, with a
/// status, and the service answers the next request (before the HTML walker stopped recursing, the
/// first one aborted the whole process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_nested_tens_of_thousands_deep_neither_crash_nor_block_the_service() {
    let mut server = serve(IngestOptions::new(regions())).await;
    let depth = 20_000;
    let html = format!(
        "<html><body>{}<p>Refunds take 14 days.</p>{}</body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let quotes = format!("# Refunds\n\n{}Refunds take 14 days.\n", "> ".repeat(depth));
    let lists = format!(
        "# Refunds\n\n{}\n",
        (0..depth).map(|i| format!("{}- level\n", "  ".repeat(i % 200))).collect::<String>()
    );
    let front = format!(
        "+++\nregions = {}{}\n+++\n# Refunds\n\nRefunds take 14 days.\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let documents = [("nested.html", html), ("quotes.md", quotes), ("lists.md", lists), ("front.md", front)];
    for (name, content) in &documents {
        let messages = vec![start(name, &["us"]), data(content.as_bytes()), end()];
        let response = server.client.ingest(tokio_stream::iter(messages)).await;
        let response =
            response.unwrap_or_else(|status| panic!("{name}: the stream failed: {status:?}")).into_inner();
        let result = &response.results[0];
        let outcome = IngestOutcome::try_from(result.outcome).unwrap();
        assert!(
            outcome == IngestOutcome::Ingested
                || (outcome == IngestOutcome::Failed
                    && result.error_code == i32::from(Code::InvalidArgument)),
            "{name}: {result:?}"
        );
    }
    let listed = server.client.list_documents(ListDocumentsRequest::default()).await.unwrap().into_inner();
    assert!(
        listed.documents.iter().any(|d| d.metadata.as_ref().is_some_and(|m| m.doc_id == "nested")),
        "{listed:?}"
    );
}
