//! The serving state: everything a request reads, swapped as one unit.

use crate::catalog::{Catalog, CatalogChanges};
use crate::error::{Error, ErrorKind, Result};
use crate::features::{RankRow, rank_rows};
use crate::index::LexicalIndex;
use crate::index::VectorIndex;
use crate::signals::Signals;
use std::sync::Arc;

/// Everything a request reads, swapped as one unit.
///
/// A state is immutable. The next one is made by [`new`](Self::new) (all
/// parts built), [`with_signals`](Self::with_signals) (new signals, the
/// catalog's structures shared) or [`with_delta`](Self::with_delta) (a
/// catalog delta: the title index updated in place of a rebuild), and each
/// gets the next [`version`](Self::version).
#[derive(Debug, Clone)]
pub struct ServingState {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) index: Arc<dyn VectorIndex>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) lexical: Arc<LexicalIndex>,
    /// Each product's ranking signals packed in one cache line.
    pub(crate) rank_rows: Arc<Vec<RankRow>>,
    pub(crate) price_bands: Arc<Vec<f32>>,
    pub(crate) version: u64,
    /// Heads learned online by the writer
    /// ([`ShopWriter::learn_online`](crate::live::ShopWriter::learn_online)),
    /// published with the state: a recommender with the default scorer
    /// scores with them.
    pub(crate) online: Option<Arc<crate::rank::LogisticScorer>>,
    /// The share of requests the online heads leave to the default ones
    /// ([`held_back`](crate::exposure::held_back)).
    pub(crate) online_holdback: f64,
}

impl ServingState {
    /// Puts a catalog, an index over its embeddings and signals learned
    /// against it together, and builds the title index and price bands.
    ///
    /// Errors: the index's or the signals' row count differs from the
    /// catalog's ([`ErrorKind::CountMismatch`]), or their dimension
    /// ([`ErrorKind::DimensionMismatch`]); the
    /// index or the signals were built over another catalog, even one of
    /// the same size and dimension ([`ErrorKind::CatalogMismatch`], by
    /// [`Catalog::fingerprint`]).
    pub fn new(
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        signals: Arc<Signals>,
    ) -> Result<Self> {
        Self::new_with(catalog, index, signals, Arc::new(crate::index::TextAnalyzer::default()))
    }

    /// [`new`](Self::new) with the title index built by `analyzer`.
    ///
    /// Errors: as [`new`](Self::new).
    pub fn new_with(
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        signals: Arc<Signals>,
        analyzer: Arc<dyn crate::index::Analyzer>,
    ) -> Result<Self> {
        Self::new_text(catalog, index, signals, analyzer, crate::index::FieldWeights::default())
    }

    /// [`new_with`](Self::new_with) with the text index weighting its
    /// fields by `fields` (BM25F).
    ///
    /// Errors: as [`new`](Self::new), or invalid weights
    /// ([`FieldWeights::validate`](crate::index::FieldWeights::validate)).
    pub fn new_text(
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        signals: Arc<Signals>,
        analyzer: Arc<dyn crate::index::Analyzer>,
        fields: crate::index::FieldWeights,
    ) -> Result<Self> {
        check_parts(&catalog, &*index, &signals)?;
        fields.validate()?;
        let lexical = Arc::new(LexicalIndex::build_fields(&catalog, analyzer, fields));
        let price_bands = Arc::new(price_bands(&catalog));
        let rank_rows = Arc::new(rank_rows(&catalog, &signals, &price_bands));
        Ok(ServingState {
            catalog,
            index,
            signals,
            lexical,
            rank_rows,
            price_bands,
            version: 0,
            online: None,
            online_holdback: 0.0,
        })
    }

    /// The next version with new signals over the same catalog: the index,
    /// title index and price bands are shared, only the packed rank rows
    /// (which hold signals) are recomputed. This is a signals-only publish.
    ///
    /// Errors: signals over another catalog ([`ErrorKind::CatalogMismatch`]).
    pub fn with_signals(&self, signals: Arc<Signals>) -> Result<ServingState> {
        check_parts(&self.catalog, &*self.index, &signals)?;
        let rank_rows = Arc::new(rank_rows(&self.catalog, &signals, &self.price_bands));
        Ok(ServingState { signals, rank_rows, version: self.version + 1, ..self.clone() })
    }

    /// The next version after a catalog delta: `catalog` is the result of
    /// [`Catalog::apply`] on this state's catalog, `changes` what it
    /// returned, `index` this state's index
    /// [`updated`](VectorIndex::updated) for it and `signals` published by
    /// a store that [`follow`](crate::signals::SignalStore::follow)ed it. The title
    /// index is updated for the changed titles only.
    ///
    /// Errors: as [`new`](Self::new), and a catalog that is not a successor
    /// of this one: fewer rows ([`ErrorKind::CountMismatch`]), or another
    /// product at any of this one's rows, or an older version
    /// ([`ErrorKind::CatalogMismatch`], part `successor catalog`): another
    /// shop's catalog of the same size is refused, not served.
    pub fn with_delta(
        &self,
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        signals: Arc<Signals>,
        changes: &CatalogChanges,
    ) -> Result<ServingState> {
        check_parts(&catalog, &*index, &signals)?;
        if catalog.len() < self.catalog.len() {
            return Err(Error::count("catalog rows", self.catalog.len(), catalog.len()));
        }
        // A successor keeps every row's product and a version as new.
        if catalog.version() < self.catalog.version() || !catalog.extends(&self.catalog) {
            return Err(Error::new(ErrorKind::CatalogMismatch {
                part: "successor catalog",
                expected: self.catalog.fingerprint(),
                got: catalog.fingerprint(),
            }));
        }
        let lexical = Arc::new(self.lexical.updated(&self.catalog, &catalog, &changes.retitled));
        let price_bands = Arc::new(price_bands(&catalog));
        let rank_rows = Arc::new(rank_rows(&catalog, &signals, &price_bands));
        Ok(ServingState {
            catalog,
            index,
            signals,
            lexical,
            rank_rows,
            price_bands,
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// The next version with the title index rebuilt by `analyzer` (titles
    /// and queries both go through it; later
    /// [`with_delta`](Self::with_delta)s keep it). For another language
    /// than English, or a tokenizer of your own:
    ///
    /// ```
    /// # #[cfg(feature = "synth")] {
    /// use omnifeed::index::{Language, TextAnalyzer, TextConfig};
    /// # let world = omnifeed::synth::generate(&omnifeed::synth::SynthConfig::tiny())?;
    /// # let catalog = std::sync::Arc::new(world.catalog.clone());
    /// # let (signals, _) = omnifeed::Signals::from_events(std::sync::Arc::clone(&catalog), &[], &Default::default())?;
    /// # let index = std::sync::Arc::new(omnifeed::index::ExactIndex::for_catalog(&catalog));
    /// # let state = omnifeed::ServingState::new(catalog, index, std::sync::Arc::new(signals))?;
    /// let german = TextAnalyzer::new(TextConfig { language: Language::German, ..TextConfig::default() });
    /// let state = state.with_analyzer(std::sync::Arc::new(german));
    /// assert_eq!(state.lexical().analyzer().terms("Häuser"), ["haus"]);
    /// # }
    /// # Ok::<(), omnifeed::Error>(())
    /// ```
    pub fn with_analyzer(&self, analyzer: Arc<dyn crate::index::Analyzer>) -> ServingState {
        let fields = self.lexical.field_weights();
        let lexical = Arc::new(LexicalIndex::build_fields(&self.catalog, analyzer, fields));
        ServingState { lexical, version: self.version + 1, ..self.clone() }
    }

    /// The next version with the text index's fields weighted by `fields`
    /// (BM25F; the analyzer is kept).
    ///
    /// Errors: invalid weights
    /// ([`FieldWeights::validate`](crate::index::FieldWeights::validate)).
    pub fn with_fields(&self, fields: crate::index::FieldWeights) -> Result<ServingState> {
        fields.validate()?;
        let analyzer = Arc::clone(self.lexical.analyzer());
        let lexical = Arc::new(LexicalIndex::build_fields(&self.catalog, analyzer, fields));
        Ok(ServingState { lexical, version: self.version + 1, ..self.clone() })
    }

    /// 0 for a state made by [`new`](Self::new); each
    /// [`with_signals`](Self::with_signals) or [`with_delta`](Self::with_delta)
    /// adds one. Reported in [`Trace::state_version`](crate::request::Trace::state_version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The heads learned online that this state carries, if any.
    pub fn online_heads(&self) -> Option<&crate::rank::LogisticScorer> {
        self.online.as_deref()
    }

    /// The same state carrying `heads` (learned online) or none: a
    /// recommender with the default scorer scores with them, but for the
    /// `holdback` share of requests ([`held_back`](crate::exposure::held_back)),
    /// which keep the default heads; one given its own scorer
    /// ([`RecommenderBuilder::scorer`](crate::RecommenderBuilder::scorer))
    /// keeps it.
    pub fn with_online_heads(
        mut self,
        heads: Option<Arc<crate::rank::LogisticScorer>>,
        holdback: f64,
    ) -> Self {
        self.online = heads;
        self.online_holdback = holdback;
        self
    }

    /// The same state under another version number (a writer restoring
    /// its numbering after a restart).
    pub fn with_version(mut self, version: u64) -> ServingState {
        self.version = version;
        self
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog as a shared handle.
    pub fn shared_catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The index.
    pub fn index(&self) -> &dyn VectorIndex {
        &*self.index
    }

    /// The index as a shared handle.
    pub fn shared_index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
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

/// The checks every state constructor makes.
fn check_parts(catalog: &Arc<Catalog>, index: &dyn VectorIndex, signals: &Signals) -> Result<()> {
    if index.dim() != catalog.dim() {
        return Err(Error::dimension("index", catalog.dim(), index.dim()));
    }
    if index.len() != catalog.len() {
        return Err(Error::count("index rows", catalog.len(), index.len()));
    }
    if signals.catalog().len() != catalog.len() {
        return Err(Error::count("signals rows", catalog.len(), signals.catalog().len()));
    }
    if signals.catalog().dim() != catalog.dim() {
        return Err(Error::dimension("signals", catalog.dim(), signals.catalog().dim()));
    }
    if let Some(got) = index.embeddings_fingerprint() {
        let expected = catalog.embeddings().fingerprint();
        if got != expected {
            return Err(Error::new(ErrorKind::CatalogMismatch { part: "index", expected, got }));
        }
    }
    if !Arc::ptr_eq(signals.catalog(), catalog)
        && signals.catalog().fingerprint() != catalog.fingerprint()
    {
        return Err(Error::new(ErrorKind::CatalogMismatch {
            part: "signals",
            expected: catalog.fingerprint(),
            got: signals.catalog().fingerprint(),
        }));
    }
    Ok(())
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
