//! The chunker with the real MiniLM tokenizer: heading paths, token bounds, spans and overlap.

use super::{corpus_file, embedder};
use rudder_core::Embedder;
use rudder_ingest::{
    ChunkerOptions,
    chunker::{self, ChunkedDocument},
    loaders::{self, MediaType},
};

fn chunk_markdown(markdown: &str, options: ChunkerOptions) -> ChunkedDocument {
    let document = loaders::load(MediaType::Markdown, markdown.as_bytes()).unwrap();
    chunker::chunk(&document, embedder().as_ref(), &options).unwrap()
}

/// Every chunk's text is exactly its char span of the normalised text.
fn assert_spans(chunked: &ChunkedDocument) {
    let chars: Vec<char> = chunked.text.chars().collect();
    for chunk in &chunked.chunks {
        let span: String = chars[chunk.char_start as usize..chunk.char_end as usize].iter().collect();
        assert_eq!(span, chunk.text);
    }
}

/// A long section: numbered sentences, paragraphs of four, one run-on sentence and one unbroken token.
fn long_markdown() -> String {
    let mut markdown = String::from("# Policy\n\n## Long section\n\n");
    for paragraph in 0..12 {
        for sentence in 0..4 {
            markdown.push_str(&format!(
                "Rule {paragraph}.{sentence} says a customer may return item number {} within thirty days. ",
                paragraph * 4 + sentence
            ));
        }
        markdown.push_str("\n\n");
    }
    markdown.push_str(&"and then the parcel went on ".repeat(80));
    markdown.push_str("\n\n");
    markdown.push_str(&"x".repeat(3000));
    markdown.push_str("\n\n### Café ünïcode\n\nPrices in € and £ stay intact.\n");
    markdown
}

#[test]
fn corpus_chunks_carry_heading_paths() {
    let markdown = std::fs::read_to_string(corpus_file("us/returns-us.md")).unwrap();
    let chunked = chunk_markdown(&markdown, ChunkerOptions::default());
    assert_spans(&chunked);
    let holiday = chunked.chunks.iter().find(|c| c.text.contains("January 31")).unwrap();
    assert_eq!(holiday.heading_path, ["Returns Policy", "Return window", "Holiday returns"]);
    assert!(holiday.embed_text.starts_with("Returns Policy > Return window > Holiday returns\n"));
    let fee = chunked.chunks.iter().find(|c| c.text.contains("15% restocking fee")).unwrap();
    assert_eq!(fee.heading_path, ["Returns Policy", "Restocking fee"]);
    // Sections are never merged: no chunk holds text of two headings.
    assert!(chunked.chunks.iter().all(|c| !(c.text.contains("January 31") && c.text.contains("restocking"))));
    let intro = &chunked.chunks[0];
    assert_eq!(intro.heading_path, ["Returns Policy"]);
    // The intro paragraph follows the title heading and its blank line in the normalised text.
    assert_eq!(intro.char_start, "Returns Policy\n\n".chars().count() as u64);
}

#[test]
fn chunks_fit_the_token_bound_of_the_real_tokenizer() {
    let embedder = embedder();
    for max_tokens in [48, 96, 256, 1024] {
        let options = ChunkerOptions { max_tokens, overlap_tokens: 0 };
        let chunked = chunk_markdown(&long_markdown(), options);
        assert_spans(&chunked);
        let bound = max_tokens.min(embedder.max_tokens());
        for chunk in &chunked.chunks {
            let tokens = embedder.count_tokens(&chunk.embed_text).unwrap();
            assert!(tokens <= bound, "{tokens} > {bound}: {:?}", chunk.embed_text);
        }
        // Without overlap the chunks tile the section text in order.
        for pair in chunked.chunks.windows(2) {
            assert!(pair[0].char_end <= pair[1].char_start, "{max_tokens}: {pair:?}");
        }
        let last = chunked.chunks.last().unwrap();
        assert_eq!(last.heading_path, ["Policy", "Long section", "Café ünïcode"]);
        assert_eq!(last.text, "Prices in € and £ stay intact.");
    }
}

#[test]
fn chunks_end_at_sentence_ends_and_prefer_paragraph_ends() {
    let chunked = chunk_markdown(&long_markdown(), ChunkerOptions { max_tokens: 128, overlap_tokens: 0 });
    let sentence_chunks: Vec<_> = chunked.chunks.iter().filter(|c| c.text.starts_with("Rule")).collect();
    assert!(sentence_chunks.len() >= 3, "{sentence_chunks:?}");
    for chunk in &sentence_chunks {
        assert!(chunk.text.ends_with("thirty days."), "{:?}", chunk.text);
    }
    // A chunk that could hold more than one paragraph ends at a paragraph end (sentence x.3).
    let paragraph_ends = sentence_chunks.iter().filter(|c| c.text.contains(".3 says")).count();
    assert!(paragraph_ends * 2 >= sentence_chunks.len(), "{sentence_chunks:?}");
}

#[test]
fn overlap_repeats_trailing_sentences() {
    let without = chunk_markdown(&long_markdown(), ChunkerOptions { max_tokens: 96, overlap_tokens: 0 });
    let with = chunk_markdown(&long_markdown(), ChunkerOptions { max_tokens: 96, overlap_tokens: 40 });
    assert_spans(&with);
    assert!(with.chunks.len() > without.chunks.len());
    let overlapping = with
        .chunks
        .windows(2)
        .filter(|pair| pair[0].heading_path == pair[1].heading_path && pair[1].char_start < pair[0].char_end)
        .count();
    assert!(overlapping >= 3, "{:?}", with.chunks);
    // Repeated text is whole sentences of the previous chunk.
    for pair in with.chunks.windows(2).filter(|pair| pair[1].char_start < pair[0].char_end) {
        let repeated_chars = (pair[0].char_end - pair[1].char_start) as usize;
        let tail: String =
            pair[0].text.chars().rev().take(repeated_chars).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(pair[1].text.starts_with(&tail), "{pair:?}");
    }
    // Overlap never crosses into another section.
    let last = with.chunks.last().unwrap();
    assert_eq!(last.text, "Prices in € and £ stay intact.");
}
