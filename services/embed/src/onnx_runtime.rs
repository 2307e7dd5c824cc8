//! Loading and checking the ONNX Runtime shared library.
//!
//! fastembed 7.5 pins `ort 2.0.0-rc.15`, which needs ONNX Runtime's C API version 24 (ONNX
//! Runtime 1.24 or newer). We open the library ourselves, read its version string and ask it for API 24, so a wrong
//! or missing library becomes a clear error naming the file instead of a panic deep inside ort.
// The C entry point has to be called through FFI; the unsafe blocks are confined to `probe`.
#![allow(unsafe_code)]

use libloading::{Library, Symbol};
use std::{
    ffi::{CStr, c_char},
    path::{Path, PathBuf},
};

/// The ONNX Runtime C API version ort 2.0.0-rc.15 is built against.
pub const REQUIRED_API_VERSION: u32 = 24;

#[derive(Debug, thiserror::Error)]
pub enum OnnxRuntimeError {
    #[error("ONNX Runtime library {path} is missing; run `make models` (deploy/models.sh) to install it")]
    Missing { path: PathBuf },
    #[error("cannot load the ONNX Runtime library {path}: {reason}")]
    Unloadable { path: PathBuf, reason: String },
    #[error(
        "ONNX Runtime library {path} is version {version}, which lacks C API {REQUIRED_API_VERSION} \
         (ONNX Runtime >= 1.24 is needed); run `make models` to install a supported one"
    )]
    TooOld { path: PathBuf, version: String },
}

/// A loaded ONNX Runtime library that offers the C API rudder's embedder needs.
#[derive(Debug)]
pub struct OnnxRuntime {
    path: PathBuf,
    version: String,
    // Kept loaded for the process lifetime: ort dlopens the same file later and gets this handle.
    _library: Library,
}

/// `OrtApiBase` from onnxruntime_c_api.h: two function pointers.
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(version: u32) -> *const std::ffi::c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

impl OnnxRuntime {
    /// Opens the library at `path` and checks that it provides C API [`REQUIRED_API_VERSION`].
    pub fn load(path: &Path) -> Result<Self, OnnxRuntimeError> {
        if !path.is_file() {
            return Err(OnnxRuntimeError::Missing { path: path.to_owned() });
        }
        let unloadable = |reason: String| OnnxRuntimeError::Unloadable { path: path.to_owned(), reason };
        let (library, version, has_api) = Self::probe(path).map_err(|e| unloadable(e.to_string()))?;
        if !has_api {
            return Err(OnnxRuntimeError::TooOld { path: path.to_owned(), version });
        }
        Ok(Self { path: path.to_owned(), version, _library: library })
    }

    fn probe(path: &Path) -> Result<(Library, String, bool), libloading::Error> {
        // SAFETY: loading ONNX Runtime runs its initialisers, which have no preconditions. The symbol
        // and struct layout follow onnxruntime_c_api.h, stable across releases: `OrtGetApiBase`
        // returns a pointer to a static `OrtApiBase`; `GetVersionString` returns a static C string;
        // `GetApi(v)` returns null for an API version the library does not provide.
        unsafe {
            let library = Library::new(path)?;
            let get_api_base: Symbol<unsafe extern "C" fn() -> *const OrtApiBase> =
                library.get(b"OrtGetApiBase")?;
            let base = get_api_base();
            let (version, has_api) = match base.as_ref() {
                Some(base) => {
                    let version = CStr::from_ptr((base.get_version_string)()).to_string_lossy().into_owned();
                    (version, !(base.get_api)(REQUIRED_API_VERSION).is_null())
                }
                None => ("unknown".to_owned(), false),
            };
            Ok((library, version, has_api))
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The library's own version string, e.g. "1.31.1".
    pub fn version(&self) -> &str {
        &self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_names_the_file() {
        let err = OnnxRuntime::load(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(matches!(err, OnnxRuntimeError::Missing { .. }));
        assert!(err.to_string().contains("/nonexistent/libonnxruntime.so"));
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = OnnxRuntime::load(&fake).unwrap_err();
        assert!(matches!(err, OnnxRuntimeError::Unloadable { .. }), "{err}");
    }
}
