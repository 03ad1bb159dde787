//! The [`Recommender`]: orchestration of the stages, nothing else.
//!
//! A request loads one `Arc<ServingState>` (catalog, index, title index,
//! signals) and uses it throughout, so a state swapped in while it runs
//! never mixes with the old one (tantivy's searcher discipline, through
//! `arc-swap`).

use crate::catalog::{Catalog, unit_into};
use crate::config::RecommenderConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ContentId, ItemIdx, elapsed};
use crate::index::VectorIndex;
use crate::rank::features::{
    F, FEATURE_NAMES, FeatureContext, FeatureMatrix, RankRow, RequestLists, SOURCE_SLOTS,
    compute_features, features_naive, rank_rows, source_slot,
};
use crate::rank::kernels::{Scored, top_k_in_place};
use crate::rank::scorer::{FUSION_TERMS, Fusion, HEAD_NAMES, HEADS, LogisticScorer, Scorer};
use crate::request::{
    Explanation, Feed, FeedItem, FeedRequest, NamedValue, RemovalReason, ScorePart, SourceHit,
    SourceTrace, Surface, Trace,
};
use crate::rerank::{Candidate, Placed, QuotaMask, RerankScratch, rerank, rules};
use crate::retrieve::{
    CandidateBuf, CandidateSource, CartPull, ContentDriven, Fresh, InterestAnn, LexicalIndex,
    Popular, Repurchase, RequestContext, SearchSource, SimilarItems, query_terms,
};
use crate::signals::{PurchaseState, Rate, Signals};
use arc_swap::ArcSwap;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Everything a request reads, swapped as one unit.
#[derive(Debug, Clone)]
pub struct ServingState {
    catalog: Arc<Catalog>,
    index: Arc<dyn VectorIndex>,
    signals: Arc<Signals>,
    lexical: Arc<LexicalIndex>,
    /// Each product's ranking signals packed in one cache line.
    rank_rows: Arc<Vec<RankRow>>,
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

/// Per-thread working memory of a request: cleared between requests, never
/// shrunk. Get one from [`Recommender::new_scratch`].
#[derive(Debug, Default)]
pub struct Scratch {
    bufs: Vec<CandidateBuf>,
    tagged: Vec<(ItemIdx, u8, f32)>,
    rows: Vec<ItemIdx>,
    masks: Vec<u32>,
    src_scores: Vec<f32>,
    counts: Vec<u8>,
    excluded: Vec<ItemIdx>,
    blocked: Vec<(ItemIdx, RemovalReason)>,
    removed: Vec<(RemovalReason, usize)>,
    features: FeatureMatrix,
    heads: Vec<f32>,
    values: Vec<f32>,
    scored: Vec<Scored>,
    pool: Vec<Candidate>,
    placed: Vec<Placed>,
    rerank: RerankScratch,
    query: Vec<f32>,
    terms: Vec<String>,
    buf_max: Vec<f32>,
    lists: RequestLists,
}

/// The config path of a surface's quotas, for errors.
fn surface_quota_field(surface: Surface) -> &'static str {
    match surface {
        Surface::Feed => "rerank.feed.quotas",
        Surface::Search => "rerank.search.quotas",
        Surface::Omni => "rerank.omni.quotas",
    }
}

/// Builds a [`Recommender`].
#[derive(Debug, Default)]
pub struct RecommenderBuilder {
    config: RecommenderConfig,
    state: Option<ServingState>,
    sources: Vec<Box<dyn CandidateSource>>,
    scorer: Option<Box<dyn Scorer>>,
}

impl RecommenderBuilder {
    /// Sets the config.
    pub fn config(mut self, config: RecommenderConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the serving state.
    pub fn state(mut self, state: ServingState) -> Self {
        self.state = Some(state);
        self
    }

    /// Adds a candidate source after the built-in ones (at most 32 in all).
    pub fn source(mut self, source: Box<dyn CandidateSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Replaces the default scorer (the logistic heads of the config's
    /// `scorer` weights), e.g. with a [`MlpScorer`](crate::rank::MlpScorer)
    /// or a [`LogisticScorer`] loaded from a file.
    pub fn scorer(mut self, scorer: Box<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Validates the config and builds.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`]): an invalid config field, no
    /// state, more than 32 sources, two sources with the same id, or a
    /// rerank quota naming a source id no source has.
    pub fn build(self) -> Result<Recommender> {
        self.config.validate()?;
        let state = self.state.ok_or_else(|| Error::invalid_config("state", "no serving state"))?;
        let s = &self.config.sources;
        let mut sources: Vec<Box<dyn CandidateSource>> = vec![
            Box::new(InterestAnn { k: s.interest }),
            Box::new(SimilarItems { k: s.similar, seeds: s.similar_seeds }),
            Box::new(ContentDriven { k: s.content }),
            Box::new(SearchSource { k: s.search, fusion: s.search_fusion, intents: s.intents }),
            Box::new(Repurchase { k: s.repurchase }),
            Box::new(CartPull { k: s.cart }),
            Box::new(Popular { k: s.popular }),
            Box::new(Fresh { k: s.fresh }),
        ];
        sources.extend(self.sources);
        if sources.len() > 32 {
            return Err(Error::invalid_config(
                "sources",
                format!("at most 32, got {}", sources.len()),
            ));
        }
        let mut ids: Vec<&'static str> = sources.iter().map(|s| s.id()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid_config(
                "sources",
                format!("two sources have the id {:?}; source ids must be unique", w[0]),
            ));
        }
        for surface in Surface::ALL {
            for q in &self.config.rerank.get(surface).quotas {
                if ids.binary_search(&q.source.as_str()).is_err() {
                    return Err(Error::invalid_config(
                        surface_quota_field(surface),
                        format!("quota names source {:?}, which no source has", q.source),
                    ));
                }
            }
        }
        let slots = sources.iter().map(|s| source_slot(s.id())).collect();
        let scorer = match self.scorer {
            Some(s) => s,
            None => Box::new(LogisticScorer::from_weights(&self.config.scorer)?),
        };
        let quotas = Surface::ALL
            .iter()
            .map(|&surface| {
                self.config
                    .rerank
                    .get(surface)
                    .quotas
                    .iter()
                    .map(|q| {
                        let mask = sources
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.id() == q.source)
                            .fold(0u32, |m, (i, _)| m | 1 << i);
                        QuotaMask { mask, min_share: q.min_share, max_share: q.max_share }
                    })
                    .collect()
            })
            .collect();
        let search_mask = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.id() == "search")
            .fold(0u32, |m, (i, _)| m | 1 << i);
        Ok(Recommender {
            search_mask,
            state: ArcSwap::from_pointee(state),
            config: self.config,
            sources,
            slots,
            scorer,
            quotas,
            pool: Mutex::new(Vec::new()),
        })
    }
}

/// The recommendation engine: `Send + Sync`, queried through `&self` from
/// any number of threads.
///
/// ```
/// use std::sync::Arc;
/// use omnifeed::{synth, FeedRequest, Recommender, ServingState, Signals, SignalConfig, Surface};
/// use omnifeed::index::ExactIndex;
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let catalog = Arc::new(world.catalog);
/// let (signals, _) = Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())?;
/// let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
/// let state = ServingState::new(catalog, index, Arc::new(signals))?;
/// let rec = Recommender::builder().state(state).build()?;
/// let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(10))?;
/// assert_eq!(feed.items.len(), 10);
/// let search = FeedRequest::new(world.users[0].id).surface(Surface::Search).search_text("headphones");
/// assert!(!rec.recommend(&search)?.items.is_empty());
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub struct Recommender {
    state: ArcSwap<ServingState>,
    config: RecommenderConfig,
    sources: Vec<Box<dyn CandidateSource>>,
    /// Feature slot of each source's score.
    slots: Vec<Option<usize>>,
    scorer: Box<dyn Scorer>,
    /// Quotas per surface (in `Surface::ALL` order), resolved to masks.
    quotas: Vec<Vec<QuotaMask>>,
    /// Bits of the sources with id `search`.
    search_mask: u32,
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("sources", &self.sources.iter().map(|s| s.id()).collect::<Vec<_>>())
            .field("scorer", &self.scorer.name())
            .finish()
    }
}

/// Per-request inputs resolved before the stages run.
struct Resolved {
    at: i64,
    /// Unknown ids in `exclude`.
    stale: usize,
    has_query: bool,
}

impl Recommender {
    /// Starts a builder.
    pub fn builder() -> RecommenderBuilder {
        RecommenderBuilder::default()
    }

    /// The config.
    pub fn config(&self) -> &RecommenderConfig {
        &self.config
    }

    /// The current serving state.
    pub fn state(&self) -> Arc<ServingState> {
        self.state.load_full()
    }

    /// Replaces the serving state atomically: requests already running finish
    /// on the old state, later ones see the new one.
    pub fn swap_state(&self, state: ServingState) {
        self.state.store(Arc::new(state));
    }

    /// Fresh working memory for [`recommend_with`](Self::recommend_with).
    pub fn new_scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// Ranks a feed for one request.
    ///
    /// Errors (the request fails closed): `k == 0`, an excluded product
    /// the catalog does not know, a search request without a query, a query
    /// embedding of the wrong dimension or not finite, bad price bounds. A
    /// failing candidate source does not fail the request; it is recorded in
    /// [`Trace::sources`].
    pub fn recommend(&self, req: &FeedRequest) -> Result<Feed> {
        let mut scratch = self.pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        let feed = self.recommend_with(&mut scratch, req);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(scratch);
        }
        feed
    }

    /// Ranks many requests in parallel (rayon), one result per request, in
    /// order. Each result equals [`recommend`](Self::recommend)'s.
    pub fn recommend_batch(&self, reqs: &[FeedRequest]) -> Vec<Result<Feed>> {
        reqs.par_iter()
            .map_init(Scratch::default, |scratch, req| self.recommend_with(scratch, req))
            .collect()
    }

    /// Resolves exclusions, the query and the user's blocked rows.
    fn resolve(
        &self,
        s: &mut Scratch,
        state: &ServingState,
        req: &FeedRequest,
    ) -> Result<Resolved> {
        req.validate()?;
        let catalog = &*state.catalog;
        s.excluded.clear();
        let mut stale = 0;
        for &p in &req.exclude {
            match catalog.row(p) {
                Some(row) => s.excluded.push(row),
                None => stale += 1,
            }
        }
        s.excluded.sort_unstable();
        s.excluded.dedup();
        s.query.clear();
        s.terms.clear();
        if let Some(q) = &req.query {
            if let Some(e) = &q.embedding {
                if e.len() != catalog.dim() {
                    return Err(Error::dimension(
                        "request.query.embedding",
                        catalog.dim(),
                        e.len(),
                    ));
                }
                unit_into("request.query.embedding", e, &mut s.query)?;
            }
            if let Some(t) = &q.text {
                s.terms = query_terms(t);
            }
        }
        let signals = &*state.signals;
        let at = req.at.unwrap_or(signals.as_of());
        if !signals.config().time_window.contains(at) {
            let w = signals.config().time_window;
            return Err(Error::invalid_value(
                "request.at",
                format_args!("user {}", req.user),
                format!("time {at} is outside the accepted window [{}, {})", w.min, w.max),
            ));
        }
        s.blocked.clear();
        if let Some(p) = signals.profile(req.user) {
            for pur in p.purchases() {
                if let PurchaseState::Bought { .. } = signals.purchase_state(p, pur.row, at) {
                    s.blocked.push((pur.row, RemovalReason::Bought));
                }
            }
            if self.config.seen_window > 0 {
                let since = at.saturating_sub(self.config.seen_window);
                s.blocked.extend(p.seen_since(since).map(|r| (r, RemovalReason::Seen)));
            }
        }
        // Stable: a product both bought and seen is removed as bought.
        s.blocked.sort_by_key(|b| b.0);
        s.blocked.dedup_by_key(|b| b.0);
        Ok(Resolved { at, stale, has_query: !s.query.is_empty() || !s.terms.is_empty() })
    }

    /// [`recommend`](Self::recommend) with caller-owned working memory.
    pub fn recommend_with(&self, s: &mut Scratch, req: &FeedRequest) -> Result<Feed> {
        let state = self.state.load_full();
        let r = self.resolve(s, &state, req)?;
        let catalog = &*state.catalog;
        let signals = &*state.signals;
        let profile = signals.profile(req.user);
        let mut trace = Trace {
            surface: req.surface,
            stale_excludes: r.stale,
            query_terms: s.terms.len(),
            ..Trace::default()
        };

        // Retrieve: every source serving the surface into its own buffer.
        s.bufs.resize_with(self.sources.len(), CandidateBuf::new);
        s.tagged.clear();
        s.buf_max.clear();
        {
            let ctx = RequestContext {
                request: req,
                catalog,
                index: &*state.index,
                lexical: &state.lexical,
                signals,
                profile,
                excluded: &s.excluded,
                at: r.at,
                query: (!s.query.is_empty()).then_some(&s.query[..]),
                terms: &s.terms,
            };
            for (i, (source, buf)) in self.sources.iter().zip(&mut s.bufs).enumerate() {
                buf.clear();
                if !source.serves(req.surface) {
                    s.buf_max.push(0.0);
                    continue;
                }
                let mut outcome = source.retrieve(&ctx, buf);
                // A custom source is user code: a row outside the catalog
                // fails that source instead of indexing out of bounds.
                if outcome.is_ok() {
                    if let Some(bad) =
                        buf.as_slice().iter().find(|n| n.row.index() >= catalog.len())
                    {
                        outcome = Err(Error::invalid_value(
                            "candidate row",
                            format_args!("source {}", source.id()),
                            format!(
                                "row {} is outside the catalog of {}",
                                bad.row.0,
                                catalog.len()
                            ),
                        ));
                    }
                }
                if outcome.is_err() {
                    buf.clear();
                }
                trace.sources.push(SourceTrace {
                    source: source.id(),
                    candidates: buf.len(),
                    error: outcome.err().map(|e| e.to_string()),
                });
                let max = buf.as_slice().iter().map(|n| n.score).fold(0.0f32, f32::max);
                s.buf_max.push(max);
                s.tagged.extend(buf.as_slice().iter().map(|n| (n.row, i as u8, n.score)));
            }
        }

        // Merge: dedupe by row, keep which sources found each and their
        // (normalized) scores; filter with reasons.
        s.tagged.sort_unstable_by_key(|t| (t.0, t.1));
        s.rows.clear();
        s.masks.clear();
        s.src_scores.clear();
        s.counts.clear();
        s.removed.clear();
        let mut distinct = 0;
        let mut prev = None;
        let mut kept = false;
        let filters = &req.filters;
        let (cats, prices, stocks) = (catalog.categories(), catalog.prices(), catalog.stocks());
        for &(row, src, score) in &s.tagged {
            if prev != Some(row) {
                prev = Some(row);
                distinct += 1;
                let i = row.index();
                let reason = if s.excluded.binary_search(&row).is_ok() {
                    Some(RemovalReason::Excluded)
                } else if let Some(gate) = signals.gate(row) {
                    Some(RemovalReason::Gated(gate))
                } else if filters.in_stock && stocks[i] == 0 {
                    Some(RemovalReason::OutOfStock)
                } else if !filters.admits(cats[i], prices[i]) {
                    Some(RemovalReason::RequestFilter)
                } else {
                    s.blocked.binary_search_by_key(&row, |b| b.0).ok().map(|j| s.blocked[j].1)
                };
                if let Some(reason) = reason {
                    match s.removed.iter_mut().find(|r| r.0 == reason) {
                        Some(r) => r.1 += 1,
                        None => s.removed.push((reason, 1)),
                    }
                    kept = false;
                    continue;
                }
                kept = true;
                s.rows.push(row);
                s.masks.push(0);
                s.counts.push(0);
                s.src_scores.extend_from_slice(&[0.0; SOURCE_SLOTS]);
            }
            if !kept {
                continue;
            }
            let last = s.rows.len() - 1;
            let bit = 1u32 << src;
            if s.masks[last] & bit == 0 {
                s.masks[last] |= bit;
                s.counts[last] += 1;
            }
            if let Some(slot) = self.slots[src as usize] {
                let max = s.buf_max[src as usize];
                let v = if max > 0.0 { score / max } else { 0.0 };
                let cell = &mut s.src_scores[last * SOURCE_SLOTS + slot];
                *cell = cell.max(v);
            }
        }
        trace.candidates = distinct;
        trace.removed.extend_from_slice(&s.removed);
        trace.scored = s.rows.len();

        // Features, heads, fusion.
        let searched = s.masks.iter().any(|&m| m & self.search_mask != 0);
        let (has_relevance, repaired) = self.features_and_fusion(s, &state, req, &r, searched);
        trace.repaired = repaired;
        let fusion = self.config.fusion.get(req.surface);

        // Rerank pool: the best by value, at least k.
        let pool_size = self.config.rerank_pool.max(req.k);
        s.scored.clear();
        s.scored.extend(
            s.values.iter().enumerate().map(|(i, &v)| Scored { row: ItemIdx(i as u32), score: v }),
        );
        top_k_in_place(&mut s.scored, pool_size);
        trace.rerank_pool = s.scored.len();
        let listed = catalog.listed_at();
        let rate = signals.rate_scores();
        s.pool.clear();
        for sc in &s.scored {
            let i = sc.row.index();
            let row = s.rows[i];
            let fresh = elapsed(r.at, listed[row.index()]) <= self.config.explore_max_age;
            s.pool.push(Candidate {
                row,
                value: sc.score,
                sources: s.masks[i],
                category: cats[row.index()],
                merchant: catalog.merchant_row_of(row),
                live: s.features.row(i)[F - 1] > 0.0,
                explore: fresh && rate[row.index()] >= self.config.explore_min_rate,
            });
        }
        let surface_index = Surface::ALL.iter().position(|&x| x == req.surface).unwrap_or(0);
        let seed = req.seed ^ req.user.0.rotate_left(17);
        rerank(
            &s.pool,
            catalog.embeddings(),
            self.config.rerank.get(req.surface),
            &self.quotas[surface_index],
            req.k,
            seed,
            &mut s.rerank,
            &mut s.placed,
        );

        // Output: presentation and explanations for the placed items only.
        let items = s
            .placed
            .iter()
            .map(|pl| {
                let cand = s.pool[pl.index];
                let i = s.scored[pl.index].row.index();
                let (content, live) = present(catalog, signals, cand.row, r.at);
                let heads = &s.heads[i * HEADS..(i + 1) * HEADS];
                let frow = s.features.row(i);
                let terms =
                    fusion_terms(heads, frow, &state.rank_rows[cand.row.index()], has_relevance);
                FeedItem {
                    product: catalog.product_id(cand.row),
                    score: cand.value,
                    content,
                    live,
                    explanation: Explanation {
                        sources: self.provenance(s, s.masks[i], cand.row),
                        features: FEATURE_NAMES
                            .iter()
                            .zip(frow)
                            .map(|(&name, &value)| NamedValue { name, value })
                            .collect(),
                        heads: HEAD_NAMES
                            .iter()
                            .zip(heads)
                            .map(|(&name, &value)| NamedValue { name, value })
                            .collect(),
                        parts: FUSION_TERMS
                            .iter()
                            .zip(terms)
                            .zip(fusion.exponents())
                            .map(|((&name, value), weight)| ScorePart { name, value, weight })
                            .collect(),
                        pre_rank: pl.index as u32,
                        rules: rules::NAMES
                            .iter()
                            .filter(|(bit, _)| pl.rules & bit != 0)
                            .map(|&(_, name)| name)
                            .collect(),
                    },
                }
            })
            .collect();
        Ok(Feed { items, trace })
    }

    /// The unit vectors query relevance is measured against: the request's
    /// query, else on omni the user's recent search intents.
    fn query_vectors<'a>(
        &self,
        query: &'a [f32],
        surface: Surface,
        profile: Option<&'a crate::signals::UserProfile>,
        has_query: bool,
    ) -> Vec<&'a [f32]> {
        if !query.is_empty() {
            return vec![query];
        }
        if has_query || surface != Surface::Omni {
            return Vec::new();
        }
        let Some(p) = profile else { return Vec::new() };
        let n = p.searches().len();
        p.searches()
            .skip(n.saturating_sub(self.config.sources.intents))
            .filter_map(|x| x.vector.as_deref())
            .collect()
    }

    /// Features of `s.rows`, then heads and fused values; returns whether
    /// the request has anything to be relevant to (a query, search intents,
    /// or `searched`: candidates from the search source).
    fn features_and_fusion(
        &self,
        s: &mut Scratch,
        state: &ServingState,
        req: &FeedRequest,
        r: &Resolved,
        searched: bool,
    ) -> (bool, usize) {
        let (catalog, signals) = (&*state.catalog, &*state.signals);
        let profile = signals.profile(req.user);
        s.lists.prepare(catalog, signals, profile, r.at);
        let intents = self.query_vectors(&s.query, req.surface, profile, r.has_query);
        let fctx = FeatureContext {
            catalog,
            signals,
            profile,
            at: r.at,
            rank_rows: &state.rank_rows,
            fresh_scale: self.config.fresh_scale as f32,
            queries: &intents,
            lists: &s.lists,
        };
        compute_features(&fctx, &s.rows, &s.src_scores, &s.counts, &mut s.features);
        let repaired = s.features.repair_non_finite();
        let has_relevance = r.has_query || !intents.is_empty() || searched;
        let repaired = repaired
            + self.score_and_fuse(
                s,
                &state.rank_rows,
                self.config.fusion.get(req.surface),
                has_relevance,
            );
        (has_relevance, repaired)
    }

    /// Runs the scorer over `s.features` into `s.heads` and fuses into
    /// `s.values`; returns how many non-finite heads were replaced by 0.
    fn score_and_fuse(
        &self,
        s: &mut Scratch,
        rank_rows: &[RankRow],
        fusion: &Fusion,
        has_relevance: bool,
    ) -> usize {
        let n = s.features.rows();
        s.heads.clear();
        s.heads.resize(n * HEADS, 0.0);
        self.scorer.score(&s.features, &mut s.heads);
        let mut repaired = 0;
        for h in &mut s.heads {
            *h = if h.is_finite() {
                h.clamp(0.0, 1.0)
            } else {
                repaired += 1;
                0.0
            };
        }
        s.values.clear();
        s.values.extend((0..n).map(|i| {
            let terms = fusion_terms(
                &s.heads[i * HEADS..(i + 1) * HEADS],
                s.features.row(i),
                &rank_rows[s.rows[i].index()],
                has_relevance,
            );
            fusion.value(&terms)
        }));
        repaired
    }

    /// Features, scorer, fusion and top-k over given rows (no retrieval, no
    /// filters, no rerank): the ranking core, for callers with their own
    /// candidates and for benchmarks. Rows are `(row, value)` best first in
    /// the returned slice of `scratch`.
    ///
    /// Errors: as [`recommend`](Self::recommend), and a row outside the
    /// catalog.
    pub fn score_rows<'s>(
        &self,
        s: &'s mut Scratch,
        req: &FeedRequest,
        rows: &[ItemIdx],
    ) -> Result<&'s [Scored]> {
        let state = self.state.load_full();
        let r = self.resolve(s, &state, req)?;
        let catalog = &*state.catalog;
        if let Some(bad) = rows.iter().find(|r| r.index() >= catalog.len()) {
            return Err(Error::invalid_value(
                "rows",
                "score_rows",
                format!("row {} is outside the catalog of {}", bad.0, catalog.len()),
            ));
        }
        s.rows.clear();
        s.rows.extend_from_slice(rows);
        s.src_scores.clear();
        s.src_scores.resize(rows.len() * SOURCE_SLOTS, 0.0);
        s.counts.clear();
        s.counts.resize(rows.len(), 0);
        self.features_and_fusion(s, &state, req, &r, false);
        s.scored.clear();
        s.scored.extend(s.rows.iter().zip(&s.values).map(|(&row, &v)| Scored { row, score: v }));
        top_k_in_place(&mut s.scored, req.k);
        Ok(&s.scored)
    }

    /// [`score_rows`](Self::score_rows) the plain way: a feature vector
    /// allocated per row, the scorer called row by row, a full sort. The
    /// oracle the fast path is tested against and the benchmarks' baseline.
    pub fn score_rows_naive(&self, req: &FeedRequest, rows: &[ItemIdx]) -> Result<Vec<Scored>> {
        let mut s = Scratch::default();
        let state = self.state.load_full();
        let r = self.resolve(&mut s, &state, req)?;
        let catalog = &*state.catalog;
        if rows.iter().any(|r| r.index() >= catalog.len()) {
            return Err(Error::invalid_value(
                "rows",
                "score_rows_naive",
                "row outside the catalog",
            ));
        }
        let signals = &*state.signals;
        let profile = signals.profile(req.user);
        let intents = self.query_vectors(&s.query, req.surface, profile, r.has_query);
        let fctx = FeatureContext {
            catalog,
            signals,
            profile,
            at: r.at,
            rank_rows: &state.rank_rows,
            fresh_scale: self.config.fresh_scale as f32,
            queries: &intents,
            lists: &s.lists,
        };
        let fusion = self.config.fusion.get(req.surface);
        let has_relevance = r.has_query || !intents.is_empty();
        let mut out: Vec<Scored> = rows
            .iter()
            .map(|&row| {
                let f = features_naive(&fctx, row, &[0.0; SOURCE_SLOTS], 0);
                let mut one = FeatureMatrix::new();
                compute_from_vec(&mut one, &f);
                let mut heads = [0.0f32; HEADS];
                self.scorer.score(&one, &mut heads);
                for h in &mut heads {
                    *h = if h.is_finite() { h.clamp(0.0, 1.0) } else { 0.0 };
                }
                // The oracle reads the public accessors, not the packed rows.
                let relevance = has_relevance.then(|| f[20].max(f[7]));
                let terms = Fusion::terms(
                    &heads,
                    f[16],
                    signals.quality(row),
                    relevance,
                    signals.rate(row, Rate::RefundRate),
                );
                Scored { row, score: fusion.value(&terms) }
            })
            .collect();
        out.sort_by(crate::rank::kernels::best_first);
        out.truncate(req.k);
        Ok(out)
    }

    /// Where each source that found `row` ranked it.
    fn provenance(&self, s: &Scratch, mask: u32, row: ItemIdx) -> Vec<SourceHit> {
        self.sources
            .iter()
            .zip(&s.bufs)
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .filter_map(|(_, (src, buf))| {
                let rank = buf.as_slice().iter().position(|n| n.row == row)?;
                Some(SourceHit {
                    source: src.id(),
                    rank: rank as u32,
                    score: buf.as_slice()[rank].score,
                })
            })
            .collect()
    }
}

/// One feature row as a one-row matrix (the naive path's scorer input).
fn compute_from_vec(m: &mut FeatureMatrix, f: &[f32]) {
    m.set_single(f);
}

/// The fusion terms of one candidate.
#[inline]
fn fusion_terms(heads: &[f32], features: &[f32], rr: &RankRow, has_relevance: bool) -> [f32; 7] {
    const RELEVANCE: usize = 20;
    const SRC_SEARCH: usize = 7;
    let relevance = has_relevance.then(|| features[RELEVANCE].max(features[SRC_SEARCH]));
    Fusion::terms(heads, rr.price_band, rr.quality, relevance, rr.refund)
}

/// The content to show `row` with: a live stream on air that carries it,
/// else its best video.
fn present(
    catalog: &Catalog,
    signals: &Signals,
    row: ItemIdx,
    at: i64,
) -> (Option<ContentId>, bool) {
    if let Some(&c) =
        catalog.product_content_rows(row).iter().find(|&&c| catalog.content_on_air(c, at))
    {
        return (Some(catalog.content_id_at(c)), true);
    }
    (signals.best_content(row), false)
}
