//! rudder-embed's integration tests, one binary: the real all-MiniLM-L6-v2 model and the real ONNX
//! Runtime library from the models directory (`RUDDER_MODELS_DIR`, default `~/.cache/rudder/models`,
//! filled by `make models`).
// Fixtures panic with the error: in a test binary that is the failing test's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fastembed_embedder;

use rudder_core::ModelFiles;
use rudder_embed::{FastembedEmbedder, FastembedOptions};
use std::{path::PathBuf, sync::OnceLock};

/// The models directory the way the server resolves it by default.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUDDER_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/rudder/models")
}

/// One embedder for the whole binary: loading the model costs more than most tests.
pub fn embedder() -> &'static FastembedEmbedder {
    static EMBEDDER: OnceLock<FastembedEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let files = ModelFiles::open(models_dir()).unwrap_or_else(|err| panic!("{err}"));
        FastembedEmbedder::load(&files, FastembedOptions::default()).unwrap_or_else(|err| panic!("{err}"))
    })
}
