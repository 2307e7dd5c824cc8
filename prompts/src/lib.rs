//! rudder-prompts: the steering pieces and the bundles that carry them — the trainer for the policy
//! prefix and the tone soft prompt, the artifact format, evaluation, and the file-based bundle
//! registry generation resolves bundles from. Publishing, activation, rollback, A/B and audit
//! (PromptService) land with the bundle issue.

pub mod artifact;
pub mod eval;
pub mod peft;
pub mod plot;
pub mod registry;
pub mod train;

pub use registry::{BundleFileError, FileBundles};
