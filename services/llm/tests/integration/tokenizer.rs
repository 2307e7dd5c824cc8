//! The tokenizer and chat template built from GGUF metadata behave like SmolLM2's own.

use crate::common::smollm;

#[test]
fn text_round_trips_through_the_tokenizer() {
    let tokenizer = &smollm().tokenizer;
    for text in [
        "What is the capital of France?",
        "Refunds take 5–10 days; £20 fee. naïve café",
        "  two  spaces\nnewline",
    ] {
        let ids = tokenizer.encode(text).unwrap();
        assert!(!ids.is_empty());
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    }
}

#[test]
fn digits_are_split_one_by_one() {
    let tokenizer = &smollm().tokenizer;
    assert_eq!(tokenizer.encode("2024").unwrap().len(), 4);
}

#[test]
fn chat_markers_are_single_special_tokens_and_end_a_turn() {
    let model = smollm();
    let ids = model.tokenizer.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
    let im_end = *ids.last().unwrap();
    assert!(model.tokenizer.is_stop(im_end), "<|im_end|> ends an answer");
    assert_eq!(ids.len(), 5, "{ids:?}: <|im_start|> user \\n Hi <|im_end|>");
    assert_eq!(model.tokenizer.vocab_size(), 49152);
}

#[test]
fn the_chat_template_comes_from_the_gguf_metadata() {
    use rudder_llm::{Message, Role};
    let text = smollm()
        .chat
        .render(&[Message::new(Role::System, "Be brief."), Message::new(Role::User, "Hi")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}
