//! HNSW through `hnsw_rs`: the only file that imports it.
//!
//! The wrapper absorbs the crate's hazards: every parameter is checked before
//! `Hnsw::new` sees it (it calls `process::exit` on some), queries are checked
//! for dimension and finiteness (it checks neither and panics on NaN), and the
//! distance is our own `1 - dot` clamped at zero, since `hnsw_rs` asserts on
//! the slightly negative distances that rounding gives for near-identical
//! unit vectors. Scores handed back are recomputed exactly from the stored
//! embeddings, so they match [`ExactIndex`](super::ExactIndex) to float rounding.
//!
//! Catalog deltas: hnsw_rs forbids inserting while other threads search, so
//! a published graph is never written. [`VectorIndex::updated`] keeps the
//! graph and adds a growing exact segment (the rows added or re-embedded
//! since the graph was built, scanned brute force and merged), and marks
//! the graph's outdated points stale; a background rebuild folds the
//! segment into a new graph (the LSM pattern of Lucene's and Milvus'
//! growing segments).

use super::{Neighbor, RowFilter, VectorIndex, check_successor, with_unit_query};
use crate::catalog::{Catalog, Embeddings, RowSet};
use crate::error::{Error, Result};
use crate::ids::ItemIdx;
use crate::kernels::{TopK, best_first, dot};
use hnsw_rs::prelude::{Distance, Hnsw};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The widest search list (`ef`) and so the largest `k` one HNSW search
/// returns.
pub const MAX_EF: usize = 65_536;

/// Build and search parameters of an [`HnswIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswParams {
    /// Links per node and layer (`M` in the paper), 2..=256. More links give
    /// higher recall for more memory and build time.
    pub max_connections: usize,
    /// Width of the candidate list during build (`efConstruction`), 1..=4096.
    pub ef_construction: usize,
    /// Width of the candidate list during search (`ef`); raised to `k` when
    /// smaller. 1..=[`MAX_EF`]; a search returns at most `MAX_EF` rows.
    pub ef_search: usize,
    /// Upper bound on the number of layers, 1..=16.
    pub max_layers: usize,
    /// Insert with rayon across all threads (fast) or one by one
    /// (deterministic graph: the same catalog always gives the same index).
    pub parallel_build: bool,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 16,
            ef_construction: 200,
            ef_search: 128,
            max_layers: 16,
            parallel_build: true,
        }
    }
}

impl HnswParams {
    /// Checks every field against the ranges above.
    pub fn validate(&self) -> Result<()> {
        fn range(field: &'static str, v: usize, lo: usize, hi: usize) -> Result<()> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid_config(field, format!("expected {lo}..={hi}, got {v}")))
            }
        }
        range("hnsw.max_connections", self.max_connections, 2, 256)?;
        range("hnsw.ef_construction", self.ef_construction, 1, 4096)?;
        range("hnsw.ef_search", self.ef_search, 1, MAX_EF)?;
        range("hnsw.max_layers", self.max_layers, 1, 16)
    }
}

/// `1 - a·b` for unit vectors, never negative.
#[derive(Debug, Clone, Copy, Default)]
struct DotDistance;

impl Distance<f32> for DotDistance {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Rows a parallel build inserts one by one before the rest in parallel.
const SERIAL_FIRST: usize = 256;

/// An HNSW graph over a catalog's normalized embeddings.
///
/// ```
/// use std::sync::Arc;
/// use omnifeed::index::{HnswIndex, HnswParams, VectorIndex};
/// use omnifeed::Embeddings;
/// let emb = Embeddings::from_rows("demo", 2, vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7])?;
/// let index = HnswIndex::build(Arc::new(emb), HnswParams::default())?;
/// let mut out = Vec::new();
/// index.search(&[1.0, 0.1], 2, None, &mut out)?;
/// assert_eq!(out[0].row.0, 0);
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub struct HnswIndex {
    graph: Arc<Hnsw<'static, f32, DotDistance>>,
    embeddings: Arc<Embeddings>,
    params: HnswParams,
    /// Graph points whose row was re-embedded since the build.
    stale: RowSet,
    /// Rows searched exactly: added or re-embedded since the build.
    fresh: Arc<Vec<u32>>,
    /// Delisted rows, never returned.
    dead: RowSet,
}

impl fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HnswIndex")
            .field("len", &self.embeddings.len())
            .field("dim", &self.embeddings.dim())
            .field("params", &self.params)
            .finish()
    }
}

impl HnswIndex {
    /// Builds the graph over every row of `embeddings`.
    ///
    /// Errors: invalid `params` ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)),
    /// no rows ([`ErrorKind::EmptyCatalog`](crate::error::ErrorKind::EmptyCatalog)).
    pub fn build(embeddings: Arc<Embeddings>, params: HnswParams) -> Result<Self> {
        params.validate()?;
        if embeddings.is_empty() {
            return Err(Error::new(crate::error::ErrorKind::EmptyCatalog { what: "index rows" }));
        }
        let n = embeddings.len();
        let mut graph = Hnsw::<f32, DotDistance>::new(
            params.max_connections,
            n,
            params.max_layers,
            params.ef_construction,
            DotDistance,
        );
        let dim = embeddings.dim();
        let rows: Vec<(&[f32], usize)> =
            embeddings.as_slice().chunks_exact(dim).enumerate().map(|(i, r)| (r, i)).collect();
        // The first rows go in one by one even in a parallel build: threads
        // inserting into a graph of a few points race for its entry point
        // and leave points unlinked (a 3-point graph lost its nearest
        // point in about one build of eight).
        let serial = if params.parallel_build { rows.len().min(SERIAL_FIRST) } else { rows.len() };
        for &row in &rows[..serial] {
            graph.insert_slice(row);
        }
        if serial < rows.len() {
            graph.parallel_insert_slice(&rows[serial..].to_vec());
        }
        graph.set_searching_mode(true);
        Ok(HnswIndex {
            graph: Arc::new(graph),
            embeddings,
            params,
            stale: RowSet::default(),
            fresh: Arc::default(),
            dead: RowSet::default(),
        })
    }

    /// Rows in the exact segment (added or re-embedded since the build):
    /// what a rebuild would fold into the graph.
    pub fn segment_len(&self) -> usize {
        self.fresh.len()
    }

    /// The parameters it was built with.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// [`VectorIndex::search`] with an explicit `ef` instead of
    /// [`HnswParams::ef_search`]; `ef` is raised to `k` when smaller.
    pub fn search_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        out.clear();
        with_unit_query(query, self.dim(), k, |unit| {
            // hnsw_rs sizes its search by `ef` and `k`: both stay within the
            // rows there are and the documented ef ceiling.
            let k = k.min(self.len()).min(MAX_EF);
            let ef = ef.clamp(1, MAX_EF).max(k);
            let (stale, dead) = (&self.stale, &self.dead);
            let found = if filter.is_none() && stale.len() == 0 && dead.len() == 0 {
                self.graph.search_filter(unit, k, ef, None)
            } else {
                let f = |id: &usize| {
                    let r = *id as u32;
                    !stale.contains(r) && !dead.contains(r) && filter.is_none_or(|f| f(ItemIdx(r)))
                };
                self.graph.search_filter(unit, k, ef, Some(&f))
            };
            out.extend(found.iter().map(|nb| {
                let row = ItemIdx(nb.d_id as u32);
                Neighbor { row, score: dot(self.embeddings.row(row), unit) }
            }));
            if !self.fresh.is_empty() {
                self.merge_fresh(unit, k, filter, out);
            }
        })?;
        out.sort_unstable_by(best_first);
        Ok(())
    }

    /// Scans the exact segment and keeps the best `k` of it and `out`.
    fn merge_fresh(
        &self,
        unit: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) {
        let mut all = std::mem::take(out);
        {
            let mut top = TopK::new(out, k);
            for n in &all {
                top.push(n.row, n.score);
            }
            for &r in self.fresh.iter() {
                let row = ItemIdx(r);
                if !self.dead.contains(r) && filter.is_none_or(|f| f(row)) {
                    top.push(row, dot(self.embeddings.row(row), unit));
                }
            }
            top.finish();
        }
        all.clear();
    }
}

impl VectorIndex for HnswIndex {
    fn id(&self) -> &'static str {
        "hnsw"
    }

    fn dim(&self) -> usize {
        self.embeddings.dim()
    }

    fn embeddings_fingerprint(&self) -> Option<u64> {
        Some(self.embeddings.fingerprint())
    }

    fn len(&self) -> usize {
        self.embeddings.len()
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        self.search_ef(query, k, self.params.ef_search, filter, out)
    }

    /// Adds the changed rows to the exact segment and marks their graph
    /// points stale; the graph itself is shared, never written.
    fn updated(&self, catalog: &Catalog, changed: &[ItemIdx]) -> Result<Arc<dyn VectorIndex>> {
        check_successor(self, catalog)?;
        let built = self.graph.get_nb_point();
        let mut stale = self.stale.clone();
        let mut fresh: Vec<u32> = (*self.fresh).clone();
        for &row in changed {
            if row.index() >= catalog.len() {
                return Err(Error::invalid_value(
                    "index update",
                    format_args!("row {}", row.0),
                    format!("a changed row outside the catalog of {}", catalog.len()),
                ));
            }
            if row.index() < built {
                stale.insert(row.0);
            }
            fresh.push(row.0);
        }
        fresh.sort_unstable();
        fresh.dedup();
        Ok(Arc::new(HnswIndex {
            graph: Arc::clone(&self.graph),
            embeddings: catalog.shared_embeddings(),
            params: self.params,
            stale,
            fresh: Arc::new(fresh),
            dead: catalog.delisted_set().clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn out_of_range_params_are_errors_not_exits() {
        let emb = Arc::new(Embeddings::from_rows("t", 2, vec![1.0, 0.0]).unwrap());
        for (p, field) in [
            (HnswParams { max_connections: 300, ..Default::default() }, "hnsw.max_connections"),
            (HnswParams { max_layers: 0, ..Default::default() }, "hnsw.max_layers"),
            (HnswParams { ef_construction: 0, ..Default::default() }, "hnsw.ef_construction"),
        ] {
            let err = HnswIndex::build(emb.clone(), p).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::InvalidConfig { field: f, .. } if *f == field));
        }
    }

    #[test]
    fn identical_vectors_do_not_trip_asserts() {
        // Near-identical unit vectors give 1 - dot slightly below zero.
        let mut data = Vec::new();
        for i in 0..200 {
            data.extend_from_slice(&[1.0 + i as f32 * 1e-7, 1e-7, 0.3]);
        }
        let emb = Arc::new(Embeddings::from_rows("t", 3, data).unwrap());
        let idx = HnswIndex::build(emb, HnswParams::default()).unwrap();
        let mut out = Vec::new();
        idx.search(&[1.0, 0.0, 0.3], 10, None, &mut out).unwrap();
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn filter_is_respected() {
        let data: Vec<f32> = (0..400).flat_map(|i| [(i as f32).cos(), (i as f32).sin()]).collect();
        let emb = Arc::new(Embeddings::from_rows("t", 2, data).unwrap());
        let idx = HnswIndex::build(emb, HnswParams::default()).unwrap();
        let mut out = Vec::new();
        let even = |r: ItemIdx| r.0.is_multiple_of(2);
        idx.search(&[1.0, 0.0], 20, Some(&even), &mut out).unwrap();
        assert!(!out.is_empty());
        assert!(out.iter().all(|n| n.row.0 % 2 == 0));
    }
}
