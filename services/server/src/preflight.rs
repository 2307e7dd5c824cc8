//! Start-up checks of the model files, so a missing or damaged models directory is one clear line at
//! start-up rather than a failure at the first request. `quick` is what `serve` runs; `thorough` is
//! `rudder models verify` (every checksum, the GGUF header parsed, ONNX Runtime loaded).

use rudder_core::ModelFiles;
use rudder_embed::OnnxRuntime;
use rudder_llm::GgufSummary;
use std::path::Path;

/// What the thorough check found, for printing.
#[derive(Debug)]
pub struct ModelsReport {
    pub files: ModelFiles,
    pub llm: GgufSummary,
    pub onnx_runtime_version: String,
}

/// Manifest present and every listed file at its recorded size.
pub fn quick(models_dir: &Path) -> anyhow::Result<ModelFiles> {
    Ok(ModelFiles::open(models_dir)?)
}

/// Checksums, the LLM's GGUF header, and the ONNX Runtime library.
pub fn thorough(models_dir: &Path) -> anyhow::Result<ModelsReport> {
    let files = quick(models_dir)?;
    files.verify_checksums()?;
    let llm = GgufSummary::read(&files.path(ModelFiles::LLM_GGUF))?;
    let onnx_runtime = OnnxRuntime::load(&files.path(ModelFiles::ONNX_RUNTIME_LIB))?;
    let onnx_runtime_version = onnx_runtime.version().to_owned();
    Ok(ModelsReport { files, llm, onnx_runtime_version })
}
