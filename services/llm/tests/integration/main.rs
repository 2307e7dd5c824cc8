//! The LLM runtime on the real SmolLM2-135M-Instruct weights (installed by `make models`).
// A test binary: a panic here is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod forward;
mod gradients;
mod hf_directory;
mod stock_parity;
mod tokenizer;
