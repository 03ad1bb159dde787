//! Brute-force search: exact, and the oracle HNSW is measured against.

use super::{Neighbor, RowFilter, VectorIndex, check_successor, live_only, with_unit_query};
use crate::catalog::{Catalog, Embeddings, RowSet};
use crate::error::Result;
use crate::ids::ItemIdx;
use crate::kernels::{TopK, dot};
use std::sync::Arc;

/// Exact inner-product search: one pass over the contiguous matrix with a
/// streaming top-k. O(N·d) per query, no allocation once `out` has grown.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    embeddings: Arc<Embeddings>,
    /// Delisted rows, never returned.
    dead: RowSet,
}

impl ExactIndex {
    /// An index over `embeddings` (shared, not copied).
    pub fn new(embeddings: Arc<Embeddings>) -> Self {
        ExactIndex { embeddings, dead: RowSet::default() }
    }

    /// An index over a catalog's embeddings that skips its delisted rows.
    pub fn for_catalog(catalog: &Catalog) -> Self {
        ExactIndex { embeddings: catalog.shared_embeddings(), dead: catalog.delisted_set().clone() }
    }
}

impl VectorIndex for ExactIndex {
    fn id(&self) -> &'static str {
        "exact"
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
        with_unit_query(query, self.dim(), k, |unit| {
            let mut top = TopK::new(out, k.min(self.len()));
            let rows = self.embeddings.as_slice().chunks_exact(self.dim());
            match live_only(&self.dead, filter) {
                None => {
                    for (i, row) in rows.enumerate() {
                        top.push(ItemIdx(i as u32), dot(row, unit));
                    }
                }
                Some(keep) => {
                    for (i, row) in rows.enumerate() {
                        let idx = ItemIdx(i as u32);
                        if keep(idx) {
                            top.push(idx, dot(row, unit));
                        }
                    }
                }
            }
            top.finish();
        })?;
        Ok(())
    }

    /// Shares the catalog's new matrix: nothing to insert.
    fn updated(&self, catalog: &Catalog, _changed: &[ItemIdx]) -> Result<Arc<dyn VectorIndex>> {
        check_successor(self, catalog)?;
        Ok(Arc::new(ExactIndex::for_catalog(catalog)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ExactIndex {
        let e =
            Embeddings::from_rows("t", 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0]).unwrap();
        ExactIndex::new(Arc::new(e))
    }

    #[test]
    fn finds_in_order_and_filters() {
        let idx = index();
        let mut out = Vec::new();
        idx.search(&[2.0, 0.1], 3, None, &mut out).unwrap();
        assert_eq!(out.iter().map(|n| n.row.0).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert!(out[0].score <= 1.0 && out[0].score > 0.99);
        let odd = |r: ItemIdx| r.0 % 2 == 1;
        idx.search(&[2.0, 0.1], 3, Some(&odd), &mut out).unwrap();
        assert_eq!(out.iter().map(|n| n.row.0).collect::<Vec<_>>(), vec![1, 3]);
    }
}
