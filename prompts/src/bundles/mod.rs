//! Region bundles: the versions on disk, the registry that serves and swaps them (publish, activate,
//! A/B, rollback, audit), the evaluation gate, and PromptService over gRPC.

pub mod audit;
pub mod file;
pub mod gate;
pub mod grpc;
pub mod registry;
pub mod state;
pub mod traffic;

pub use file::{BundleFileError, VersionOnDisk};
pub use registry::{ChangeBy, Registry, RegistryPaths};
