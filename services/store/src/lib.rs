//! rudder-store: the backends of the [`VectorStore`](rudder_core::VectorStore) seam, which behave
//! alike and pass the same conformance tests: [`EdgeStore`], the embedded one (qdrant-edge, Qdrant's
//! engine in process, on disk), and [`QdrantStore`], a collection on a Qdrant server or cluster
//! (qdrant-client over gRPC). What they share (vector names, payload keys and JSON, BM25 encoding,
//! request checks) lives in `common`.

mod common;
pub mod edge;
pub mod qdrant;

pub use common::{DENSE_VECTOR, SPARSE_VECTOR};
pub use edge::EdgeStore;
pub use qdrant::{QdrantOptions, QdrantStore};
