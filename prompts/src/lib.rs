//! rudder-prompts: the steering pieces and the bundles that carry them — the trainer for the policy
//! prefix and the tone soft prompt, the artifact format, evaluation, and the bundle registry
//! (PromptService: publish, activate, A/B, rollback, audit) generation resolves bundles from.

pub mod artifact;
pub mod bundles;
pub mod eval;
pub mod feedback_export;
pub mod peft;
pub mod plot;
pub mod train;

pub use bundles::{Registry, RegistryPaths};
