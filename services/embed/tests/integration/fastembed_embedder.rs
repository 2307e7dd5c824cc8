//! The fastembed embedder on the real model: shape, normalisation, meaning, batching, edge cases.

use crate::embedder;
use rudder_core::Embedder;
use rudder_embed::{MINILM_DIM, MINILM_MAX_TOKENS};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn vectors_have_384_dimensions_and_unit_length() {
    let embedder = embedder();
    assert_eq!(embedder.dim(), MINILM_DIM);
    let vectors = embedder
        .embed_documents(&texts(&[
            "Refunds are issued within 14 days.",
            "Shipping to Scotland takes 3 days.",
        ]))
        .unwrap();
    assert_eq!(vectors.len(), 2);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    }
    let query = embedder.embed_query("how long do refunds take").unwrap();
    assert_eq!(query.vector.len(), 384);
    assert!((norm(&query.vector) - 1.0).abs() < 1e-4);
    assert!(!query.truncated);
}

#[test]
fn a_paraphrase_is_closer_than_an_unrelated_sentence() {
    let v = embedder()
        .embed_documents(&texts(&[
            "How do I return an item I bought online?",
            "What is the process for sending back an online purchase?",
            "The weather in Lisbon is sunny in July.",
        ]))
        .unwrap();
    let paraphrase = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(paraphrase > unrelated + 0.2, "paraphrase {paraphrase}, unrelated {unrelated}");
}

#[test]
fn a_batch_equals_one_by_one() {
    let embedder = embedder();
    // Different lengths, so the batch is padded: padding must not change any vector.
    let inputs = texts(&[
        "Refund",
        "Items bought in our UK stores can be returned within 30 days with a receipt.",
        "Warranty claims for electronics require the original proof of purchase and the serial number.",
        "",
    ]);
    let batch = embedder.embed_documents(&inputs).unwrap();
    for (text, batched) in inputs.iter().zip(&batch) {
        let single = embedder.embed_documents(std::slice::from_ref(text)).unwrap();
        let max_diff = batched.iter().zip(&single[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-5, "{text:?}: max difference {max_diff}");
    }
}

#[test]
fn an_empty_list_gives_no_vectors() {
    assert!(embedder().embed_documents(&[]).unwrap().is_empty());
}

#[test]
fn odd_input_is_embedded_without_panicking() {
    let long = "refund ".repeat(2000);
    let odd = texts(&["", "   ", "\u{0}\u{7}", "🙂 ñ 日本語", &long]);
    let vectors = embedder().embed_documents(&odd).unwrap();
    assert_eq!(vectors.len(), odd.len());
    assert!(vectors.iter().all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite())));
}

#[test]
fn a_long_query_is_truncated_and_says_so() {
    let embedder = embedder();
    let long = "where is my parcel ".repeat(200);
    assert!(embedder.count_tokens(&long).unwrap() > MINILM_MAX_TOKENS);
    let query = embedder.embed_query(&long).unwrap();
    assert!(query.truncated);
    assert_eq!(query.vector.len(), 384);
    // Truncation keeps the head: the vector is that of the first 256 tokens.
    assert!(embedder.count_tokens("refund").unwrap() >= 3, "special tokens are counted");
}
