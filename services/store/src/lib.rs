//! rudder-store: the backends of the [`VectorStore`](rudder_core::VectorStore) seam. For now the
//! embedded one, [`EdgeStore`] (qdrant-edge, Qdrant's engine in process, on disk); a Qdrant server
//! backend on qdrant-client follows with the same trait and the same conformance tests.

pub mod edge;

pub use edge::{DENSE_VECTOR, EdgeStore, SPARSE_VECTOR};
