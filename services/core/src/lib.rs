//! rudder-core: the types every other crate agrees on — configuration, the models-directory layout,
//! the domain types (passage, citation, bundle) and the seam traits (`Embedder`, `VectorStore`,
//! `PassageSource`, `BundleRegistry`). It knows neither gRPC nor any model runtime.

pub mod access;
pub mod bundle;
pub mod config;
pub mod embedding;
pub mod error;
pub mod grounding;
pub mod jsonl;
pub mod markers;
pub mod metrics;
pub mod models;
pub mod names;
pub mod passage;
pub mod secret;
pub mod store;
pub mod time;

pub use bundle::{Bundle, BundleKey, BundleRegistry, GenerationDefaults};
pub use config::Config;
pub use embedding::{EmbedError, Embedder, QueryEmbedding};
pub use error::ServiceError;
pub use grounding::GroundingMode;
pub use models::{ModelFiles, ModelsError};
pub use passage::{Citation, NoRetrieval, Passage, PassageQuery, PassageSource};
pub use secret::Secret;
pub use store::{StoreError, VectorStore};
