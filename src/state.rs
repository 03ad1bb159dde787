//! The serving state: everything a request reads, swapped as one unit.

use crate::catalog::Catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::index::VectorIndex;
use crate::rank::features::{RankRow, rank_rows};
use crate::retrieve::LexicalIndex;
use crate::signals::Signals;
use std::sync::Arc;

/// Everything a request reads, swapped as one unit.
#[derive(Debug, Clone)]
pub struct ServingState {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) index: Arc<dyn VectorIndex>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) lexical: Arc<LexicalIndex>,
    /// Each product's ranking signals packed in one cache line.
    pub(crate) rank_rows: Arc<Vec<RankRow>>,
}

impl ServingState {
    /// Puts a catalog, an index over its embeddings and signals learned
    /// against it together, and builds the title index and price bands.
    ///
    /// Errors: the index's size or dimension, or the signals' catalog size,
    /// differ from the catalog's ([`ErrorKind::DimensionMismatch`]); the
    /// index or the signals were built over another catalog, even one of
    /// the same size and dimension ([`ErrorKind::CatalogMismatch`], by
    /// [`Catalog::fingerprint`]).
    pub fn new(
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        signals: Arc<Signals>,
    ) -> Result<Self> {
        if index.dim() != catalog.dim() {
            return Err(Error::dimension("index", catalog.dim(), index.dim()));
        }
        if index.len() != catalog.len() {
            return Err(Error::dimension("index rows", catalog.len(), index.len()));
        }
        if signals.catalog().len() != catalog.len() {
            return Err(Error::dimension("signals rows", catalog.len(), signals.catalog().len()));
        }
        if signals.catalog().dim() != catalog.dim() {
            return Err(Error::dimension("signals", catalog.dim(), signals.catalog().dim()));
        }
        if let Some(got) = index.embeddings_fingerprint() {
            let expected = catalog.embeddings().fingerprint();
            if got != expected {
                return Err(Error::new(ErrorKind::CatalogMismatch {
                    part: "index",
                    expected,
                    got,
                }));
            }
        }
        if !Arc::ptr_eq(signals.catalog(), &catalog)
            && signals.catalog().fingerprint() != catalog.fingerprint()
        {
            return Err(Error::new(ErrorKind::CatalogMismatch {
                part: "signals",
                expected: catalog.fingerprint(),
                got: signals.catalog().fingerprint(),
            }));
        }
        let lexical = Arc::new(LexicalIndex::build(&catalog));
        let rank_rows = Arc::new(rank_rows(&catalog, &signals, &price_bands(&catalog)));
        Ok(ServingState { catalog, index, signals, lexical, rank_rows })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The index.
    pub fn index(&self) -> &dyn VectorIndex {
        &*self.index
    }

    /// The signals.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The title index.
    pub fn lexical(&self) -> &LexicalIndex {
        &self.lexical
    }
}

/// `ln(price / median price of its category)` per row, clamped to ±3.
fn price_bands(catalog: &Catalog) -> Vec<f32> {
    let mut by_cat: std::collections::HashMap<u32, Vec<f32>> = std::collections::HashMap::new();
    for (c, &p) in catalog.categories().iter().zip(catalog.prices()) {
        by_cat.entry(c.0).or_default().push(p);
    }
    let medians: std::collections::HashMap<u32, f32> = by_cat
        .into_iter()
        .map(|(c, mut v)| {
            v.sort_by(f32::total_cmp);
            (c, v[v.len() / 2])
        })
        .collect();
    catalog
        .categories()
        .iter()
        .zip(catalog.prices())
        .map(|(c, &p)| {
            let m = medians[&c.0];
            if p > 0.0 && m > 0.0 { (p / m).ln().clamp(-3.0, 3.0) } else { 0.0 }
        })
        .collect()
}
