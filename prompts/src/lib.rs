//! rudder-prompts: region bundles. For now the file-based registry generation resolves bundles from;
//! publishing, activation, rollback, A/B and audit (PromptService), the trainer and evaluation land
//! with the prompt-tuning and bundle issues.

pub mod registry;

pub use registry::{BundleFileError, FileBundles};
