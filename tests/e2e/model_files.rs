//! The real model files of MODELS.md are installed, whole, and load: the manifest's checksums hold,
//! the LLM's GGUF header parses with the expected architecture, and ONNX Runtime loads with C API 24.

use rudder_core::{ModelFiles, ModelsError};
use rudder_embed::OnnxRuntime;
use rudder_llm::{GgufSummary, LlmFileError};
use rudder_server::ConfigFlags;

fn installed() -> anyhow::Result<ModelFiles> {
    let config = ConfigFlags::default().load()?;
    Ok(ModelFiles::open(&config.models.dir)?)
}

#[test]
fn every_file_matches_its_checksum() -> anyhow::Result<()> {
    installed()?.verify_checksums()?;
    Ok(())
}

#[test]
fn the_llm_header_describes_smollm2_135m() -> anyhow::Result<()> {
    let summary = GgufSummary::read(&installed()?.path(ModelFiles::LLM_GGUF))?;
    assert_eq!(summary.architecture, "llama");
    assert_eq!(
        (summary.block_count, summary.embedding_length, summary.head_count, summary.head_count_kv),
        (30, 576, 9, 3)
    );
    assert_eq!(summary.vocab_size, 49152);
    assert_eq!(summary.context_length, 8192);
    assert!(summary.has_chat_template);
    Ok(())
}

#[test]
fn a_truncated_copy_of_the_llm_is_refused() -> anyhow::Result<()> {
    let original = std::fs::read(installed()?.path(ModelFiles::LLM_GGUF))?;
    let dir = tempfile::tempdir()?;
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &original[..original.len() / 2])?;
    let err = GgufSummary::read(&truncated).map(drop).unwrap_err();
    assert!(matches!(err, LlmFileError::Truncated { .. }), "{err}");
    Ok(())
}

#[test]
fn a_truncated_file_in_a_models_dir_is_named_at_open() -> anyhow::Result<()> {
    let real = installed()?;
    let dir = tempfile::tempdir()?;
    // Same manifest, the small files copied, the ONNX model cut short.
    for (relative, _) in real.listed() {
        let target = dir.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap_or(dir.path()))?;
        if relative == ModelFiles::EMBED_ONNX {
            std::fs::write(&target, b"short")?;
        } else {
            std::os::unix::fs::symlink(real.path(relative), &target)?;
        }
    }
    std::fs::copy(real.path(ModelFiles::MANIFEST), dir.path().join(ModelFiles::MANIFEST))?;
    let err = ModelFiles::open(dir.path()).unwrap_err();
    assert!(matches!(err, ModelsError::WrongSize { actual: 5, .. }), "{err}");
    assert!(err.to_string().contains("model.onnx"), "{err}");
    Ok(())
}

#[test]
fn onnx_runtime_loads_with_the_api_fastembed_needs() -> anyhow::Result<()> {
    let runtime = OnnxRuntime::load(&installed()?.path(ModelFiles::ONNX_RUNTIME_LIB))?;
    let (major, minor) = parse_major_minor(runtime.version())
        .ok_or_else(|| anyhow::anyhow!("unparseable ONNX Runtime version {:?}", runtime.version()))?;
    assert!((major, minor) >= (1, 24), "ONNX Runtime {} is older than 1.24", runtime.version());
    Ok(())
}

fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
