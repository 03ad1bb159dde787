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

mod analyzer;
mod config;
mod exact;
#[cfg(feature = "hnsw")]
mod hnsw;
mod ivf;
mod lexical;
mod query;
mod scan;

pub use analyzer::{Analyzer, Language, TextAnalyzer, TextConfig};
pub use config::{IndexConfig, IndexKind};
pub use exact::ExactIndex;
#[cfg(feature = "hnsw")]
pub use hnsw::{HnswIndex, HnswParams, MAX_EF};
pub(crate) use ivf::IvfList;
pub use ivf::{
    AUTO_TRAIN_SAMPLE_MAX, IvfIndex, IvfParams, MAX_ITERATIONS as IVF_MAX_ITERATIONS, MAX_LISTS,
    MAX_TRAIN_SAMPLE,
};
pub use lexical::{
    FieldWeight, FieldWeights, LexicalIndex, PLAN_CACHE, PlannedQuery, TextMatch, query_terms,
    tokenize,
};
pub use query::{
    Alternative, MAX_EXPANSIONS, MAX_FUZZY_BYTES, MAX_PREFIX_SCAN, MatchKind, PREFIX_WEIGHT,
    QueryConfig, QueryPlan, TYPO_FREQUENCY_RATIO, TYPO_WEIGHT,
};

use crate::catalog::{Catalog, RowSet};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::ItemIdx;
pub use crate::kernels::Scored as Neighbor;
use std::sync::Arc;

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

    /// The [`Embeddings::fingerprint`](crate::catalog::Embeddings::fingerprint) of
    /// the vectors it indexes, where it knows them; a state built with it
    /// checks this against its catalog's. `None` (the default, for a remote
    /// engine) skips the check.
    fn embeddings_fingerprint(&self) -> Option<u64> {
        None
    }

    /// Writes into `out` (cleared first) up to `k` rows most similar to
    /// `query`, best first, skipping rows `filter` rejects. A `k` above
    /// [`len`](Self::len) is clamped to it: at most `len()` rows come back
    /// and nothing is sized by `k` beyond that.
    ///
    /// Errors: `k == 0` ([`ErrorKind::InvalidK`]), a query of the wrong
    /// dimension, with NaN/inf, or with a norm below
    /// [`MIN_NORM`](crate::limits::MIN_NORM) ([`ErrorKind::ZeroVector`]).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()>;

    /// This index as an [`IvfIndex`], if it is one (snapshots save its
    /// lists; other kinds are rebuilt at load).
    #[doc(hidden)]
    fn as_ivf(&self) -> Option<&IvfIndex> {
        None
    }

    /// The next version of this index for `catalog`, a version of the
    /// catalog it indexes after [`Catalog::apply`]: the rows in `changed`
    /// (new rows, and rows whose vector was rewritten; ascending) are
    /// inserted, the catalog's delisted rows are excluded from every search.
    /// `self` is untouched, so requests running on it finish on it.
    ///
    /// Errors: an index that cannot change in place (the default, for
    /// example a remote engine: [`ErrorKind::Unsupported`]; rebuild it
    /// instead), a catalog of another dimension or with fewer rows.
    fn updated(&self, catalog: &Catalog, changed: &[ItemIdx]) -> Result<Arc<dyn VectorIndex>> {
        let _ = (catalog, changed);
        Err(Error::new(ErrorKind::Unsupported { what: "incremental update of this index" }))
    }
}

/// Checks that `catalog` can be the next version of an index's catalog.
pub(crate) fn check_successor(index: &dyn VectorIndex, catalog: &Catalog) -> Result<()> {
    if catalog.dim() != index.dim() {
        return Err(Error::dimension("catalog for the index update", index.dim(), catalog.dim()));
    }
    if catalog.len() < index.len() {
        return Err(Error::dimension(
            "catalog rows for the index update",
            index.len(),
            catalog.len(),
        ));
    }
    Ok(())
}

/// A filter that also drops tombstones: `None` if there are neither.
#[inline]
pub(crate) fn live_only<'a>(
    dead: &'a RowSet,
    filter: Option<RowFilter<'a>>,
) -> Option<impl Fn(ItemIdx) -> bool + Sync + 'a> {
    (dead.len() > 0 || filter.is_some())
        .then_some(move |r: ItemIdx| !dead.contains(r.0) && filter.is_none_or(|f| f(r)))
}

/// Checks a query (`k >= 1`, dimension, finite, norm at least
/// [`MIN_NORM`](crate::limits::MIN_NORM)) and calls `f` with it scaled to
/// unit length (computed in `f64`, so neither a huge nor a tiny query
/// overflows; on the stack up to 256 dimensions).
pub(crate) fn with_unit_query<R>(
    query: &[f32],
    dim: usize,
    k: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R> {
    if k == 0 {
        return Err(Error::new(ErrorKind::InvalidK { k, max: usize::MAX }));
    }
    if query.len() != dim {
        return Err(Error::dimension("query", dim, query.len()));
    }
    let norm = crate::catalog::checked_norm("query", None, query)?;
    let scale = |x: f32| (f64::from(x) / norm) as f32;
    if dim <= 256 {
        let mut buf = [0.0f32; 256];
        for (b, &x) in buf.iter_mut().zip(query) {
            *b = scale(x);
        }
        Ok(f(&buf[..dim]))
    } else {
        let unit: Vec<f32> = query.iter().map(|&x| scale(x)).collect();
        Ok(f(&unit))
    }
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
