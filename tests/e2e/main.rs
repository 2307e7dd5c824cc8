//! End-to-end tests over real gRPC on 127.0.0.1:0 with the real model files. One test binary with a
//! module per area keeps link time down.
// A test binary: a panic here is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod bundles;
mod generation;
mod grounding;
mod hostile;
mod journey;
mod model_files;
mod retrieval_quality;
mod server_contract;
mod tls;

/// A client-supplied uk passage, as a support tool sends one.
fn uk_passage(doc_id: &str, title: &str, section: &str, text: &str) -> rudder_proto::v1::Passage {
    rudder_proto::v1::Passage {
        document: Some(rudder_proto::v1::DocumentRef { doc_id: doc_id.into(), version: "2026-01".into() }),
        title: title.into(),
        heading_path: vec![section.into()],
        text: text.into(),
        regions: vec!["uk".into()],
        ..Default::default()
    }
}
