//! rudder-core: the types every other crate agrees on — configuration, the models-directory layout —
//! and, as the services land, the domain types and seam traits (`Embedder`, `VectorStore`,
//! `BundleRegistry`). It knows neither gRPC nor any model runtime.

pub mod config;
pub mod models;
pub mod secret;

pub use config::Config;
pub use models::{ModelFiles, ModelsError};
pub use secret::Secret;
