//! Vector search over product embeddings.
//!
//! [`VectorIndex`] is the one interface retrieval uses. Scores are inner
//! products of unit vectors (cosine similarity): higher is better, in
//! `[-1, 1]`. Queries are validated (dimension, finite, non-zero) and
//! normalized by the index, so a caller may pass any scale.
//!
//! - [`ExactIndex`]: brute force over the contiguous matrix; the oracle.
//! - [`HnswIndex`]: an HNSW graph (the `hnsw_rs` crate, wrapped so that no
//!   parameter or input can make it panic or exit the process).
//! - [`IvfIndex`]: an inverted file over spherical k-means lists: builds a
//!   million products in seconds and searches them in a fraction of a
//!   millisecond at recall set by `probes`.

mod exact;
mod hnsw;
mod ivf;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use ivf::{IvfIndex, IvfParams};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::ItemIdx;
pub use crate::rank::kernels::Scored as Neighbor;

/// A row predicate: search returns only rows for which it is true.
pub type RowFilter<'a> = &'a (dyn Fn(ItemIdx) -> bool + Sync);

/// Nearest-neighbour search by inner product on normalized vectors.
///
/// Implementations are `Send + Sync` and search through `&self`, so one index
/// serves many threads. A remote engine (a vector database) can implement it
/// too.
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// A stable name for traces and reports.
    fn id(&self) -> &'static str;

    /// The vector dimension.
    fn dim(&self) -> usize;

    /// Number of indexed rows.
    fn len(&self) -> usize;

    /// True if nothing is indexed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes into `out` (cleared first) up to `k` rows most similar to
    /// `query`, best first, skipping rows `filter` rejects.
    ///
    /// Errors: `k == 0` ([`ErrorKind::InvalidK`]), a query of the wrong
    /// dimension, with NaN/inf, or all zero.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()>;
}

/// Checks a query and returns its L2 norm.
pub(crate) fn check_query(query: &[f32], dim: usize, k: usize) -> Result<f32> {
    if k == 0 {
        return Err(Error::new(ErrorKind::InvalidK { k }));
    }
    if query.len() != dim {
        return Err(Error::dimension("query", dim, query.len()));
    }
    if let Some(i) = query.iter().position(|x| !x.is_finite()) {
        return Err(Error::new(ErrorKind::NonFinite { what: "query", index: i }));
    }
    let norm = query.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt() as f32;
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::new(ErrorKind::ZeroVector { what: "query", index: 0 }));
    }
    Ok(norm)
}

/// Recall of `found` against `truth`: the share of `truth`'s rows that
/// `found` contains.
pub fn recall(found: &[Neighbor], truth: &[Neighbor]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let mut t: Vec<u32> = truth.iter().map(|n| n.row.0).collect();
    t.sort_unstable();
    let hits = found.iter().filter(|n| t.binary_search(&n.row.0).is_ok()).count();
    hits as f64 / truth.len() as f64
}
