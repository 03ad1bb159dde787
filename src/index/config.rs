//! The index settings of a service: which vector index, with which
//! parameters ([`IndexConfig`]), as read from the `[index]` table of a
//! [`ServiceConfig`](crate::service::ServiceConfig).

use crate::catalog::Embeddings;
#[cfg(not(feature = "hnsw"))]
use crate::error::Error;
use crate::error::Result;
use crate::index::{ExactIndex, IvfIndex, IvfParams, VectorIndex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which vector index a service builds over the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// [`IvfIndex`]: builds a million products in seconds. The default.
    #[default]
    Ivf,
    /// `HnswIndex` (feature `hnsw`).
    Hnsw,
    /// [`ExactIndex`]: brute force, the oracle.
    Exact,
}

/// The index settings of a service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Which index. Default IVF.
    pub kind: IndexKind,
    /// IVF parameters (used when `kind = "ivf"`).
    pub ivf: IvfParams,
    /// HNSW parameters (used when `kind = "hnsw"`).
    #[cfg(feature = "hnsw")]
    pub hnsw: crate::index::HnswParams,
    /// How the title index analyzes titles and queries (language,
    /// stemming, stop words). Default English.
    pub text: crate::index::TextConfig,
    /// The weight and length normalization of each text field in search
    /// (BM25F: title, brand, category names, attributes).
    pub fields: crate::index::FieldWeights,
}

impl IndexConfig {
    /// Builds the configured index over `embeddings`.
    ///
    /// Errors: invalid parameters (field weights included), an empty matrix, or `hnsw` without the
    /// `hnsw` feature ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn build(&self, embeddings: Arc<Embeddings>) -> Result<Arc<dyn VectorIndex>> {
        self.fields.validate()?;
        Ok(match self.kind {
            IndexKind::Ivf => Arc::new(IvfIndex::build(embeddings, self.ivf)?),
            IndexKind::Exact => Arc::new(ExactIndex::new(embeddings)),
            #[cfg(feature = "hnsw")]
            IndexKind::Hnsw => Arc::new(crate::index::HnswIndex::build(embeddings, self.hnsw)?),
            #[cfg(not(feature = "hnsw"))]
            IndexKind::Hnsw => {
                return Err(Error::invalid_config(
                    "index.kind",
                    "hnsw needs the crate's `hnsw` feature",
                ));
            }
        })
    }
}
