//! The [`Recommender`]: orchestration of the stages, nothing else.
//!
//! A request loads one `Arc<ServingState>` (catalog, index, signals) and
//! uses it throughout, so a state swapped in while it runs never mixes
//! with the old one (tantivy's searcher discipline, through `arc-swap`).

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::ItemIdx;
use crate::index::VectorIndex;
use crate::rank::kernels::{Scored, gather_dot, top_k_in_place};
use crate::request::{
    Explanation, Feed, FeedItem, FeedRequest, RemovalReason, ScorePart, SourceHit, SourceTrace,
    Trace,
};
use crate::retrieve::{CandidateBuf, CandidateSource, InterestAnn, Popular, RequestContext};
use crate::signals::{PurchaseState, Signals};
use arc_swap::ArcSwap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Everything a request reads, swapped as one unit.
#[derive(Debug, Clone)]
pub struct ServingState {
    catalog: Arc<Catalog>,
    index: Arc<dyn VectorIndex>,
    signals: Arc<Signals>,
}

impl ServingState {
    /// Puts a catalog, an index over its embeddings and signals learned
    /// against it together.
    ///
    /// Errors: the index's size or dimension, or the signals' size, differ
    /// from the catalog's ([`ErrorKind::DimensionMismatch`](crate::ErrorKind::DimensionMismatch)).
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
        Ok(ServingState { catalog, index, signals })
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
}

/// Recommender settings; every field has a documented default and is
/// checked by [`RecommenderBuilder::build`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecommenderConfig {
    /// Candidates the interest source fetches from the index (1..=10,000).
    /// Default 300.
    pub interest_candidates: usize,
    /// Candidates the popularity source adds (0..=10,000). Default 100.
    pub popular_candidates: usize,
    /// Weight of the smoothed-rate prior ([`Signals::rate_scores`]:
    /// expected conversion per impression) beside similarity, `>= 0`.
    /// Default 0.1.
    pub rate_weight: f32,
    /// Weight of decayed engagement volume ([`Signals::trending_scores`]),
    /// `>= 0`. Default 0.1.
    pub trending_weight: f32,
    /// Score lost per unit of merchant governance shortfall
    /// (`1 - Signals::quality`), `>= 0`. Default 0.3.
    pub quality_weight: f32,
    /// Products shown to the user within this many seconds before the
    /// request are not shown again; 0 keeps them. Default 1,800.
    pub seen_window: i64,
}

impl Default for RecommenderConfig {
    fn default() -> Self {
        RecommenderConfig {
            interest_candidates: 300,
            popular_candidates: 100,
            rate_weight: 0.1,
            trending_weight: 0.1,
            quality_weight: 0.3,
            seen_window: 1_800,
        }
    }
}

impl RecommenderConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=10_000).contains(&self.interest_candidates) {
            return Err(Error::invalid_config(
                "interest_candidates",
                format!("expected 1..=10000, got {}", self.interest_candidates),
            ));
        }
        if self.popular_candidates > 10_000 {
            return Err(Error::invalid_config(
                "popular_candidates",
                format!("expected 0..=10000, got {}", self.popular_candidates),
            ));
        }
        for (field, w) in [
            ("rate_weight", self.rate_weight),
            ("trending_weight", self.trending_weight),
            ("quality_weight", self.quality_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::invalid_config(
                    field,
                    format!("expected a finite value >= 0, got {w}"),
                ));
            }
        }
        if self.seen_window < 0 {
            return Err(Error::invalid_config(
                "seen_window",
                format!("expected seconds >= 0, got {}", self.seen_window),
            ));
        }
        Ok(())
    }
}

/// Per-thread working memory of a request: cleared between requests, never
/// shrunk. Get one from [`Recommender::new_scratch`].
#[derive(Debug, Default)]
pub struct Scratch {
    bufs: Vec<CandidateBuf>,
    tagged: Vec<(ItemIdx, u32)>,
    rows: Vec<ItemIdx>,
    masks: Vec<u32>,
    sims: Vec<f32>,
    scored: Vec<Scored>,
    excluded: Vec<ItemIdx>,
    blocked: Vec<(ItemIdx, RemovalReason)>,
    removed: Vec<(RemovalReason, usize)>,
}

/// Builds a [`Recommender`].
#[derive(Debug, Default)]
pub struct RecommenderBuilder {
    config: RecommenderConfig,
    state: Option<ServingState>,
    sources: Vec<Box<dyn CandidateSource>>,
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

    /// Validates the config and builds.
    ///
    /// Errors: an invalid config field, no state, or more than 32 sources
    /// ([`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)).
    pub fn build(self) -> Result<Recommender> {
        self.config.validate()?;
        let state = self.state.ok_or_else(|| Error::invalid_config("state", "no serving state"))?;
        let mut sources: Vec<Box<dyn CandidateSource>> = vec![
            Box::new(InterestAnn { k: self.config.interest_candidates }),
            Box::new(Popular { k: self.config.popular_candidates }),
        ];
        sources.extend(self.sources);
        if sources.len() > 32 {
            return Err(Error::invalid_config(
                "sources",
                format!("at most 32, got {}", sources.len()),
            ));
        }
        Ok(Recommender {
            state: ArcSwap::from_pointee(state),
            config: self.config,
            sources,
            pool: Mutex::new(Vec::new()),
        })
    }
}

/// The recommendation engine: `Send + Sync`, queried through `&self` from
/// any number of threads.
///
/// ```
/// use std::sync::Arc;
/// use omnifeed::{synth, FeedRequest, Recommender, ServingState, Signals, SignalConfig};
/// use omnifeed::index::ExactIndex;
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let catalog = Arc::new(world.catalog);
/// let (signals, _) = Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())?;
/// let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
/// let state = ServingState::new(catalog, index, Arc::new(signals))?;
/// let rec = Recommender::builder().state(state).build()?;
/// let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(10))?;
/// assert_eq!(feed.items.len(), 10);
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub struct Recommender {
    state: ArcSwap<ServingState>,
    config: RecommenderConfig,
    sources: Vec<Box<dyn CandidateSource>>,
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("config", &self.config)
            .field("sources", &self.sources.iter().map(|s| s.id()).collect::<Vec<_>>())
            .finish()
    }
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
    /// Errors (the request fails closed): `k == 0`, or an excluded product
    /// the catalog does not know. A failing candidate source does not fail
    /// the request; it is recorded in [`Trace::sources`].
    pub fn recommend(&self, req: &FeedRequest) -> Result<Feed> {
        let mut scratch = self.pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        let feed = self.recommend_with(&mut scratch, req);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(scratch);
        }
        feed
    }

    /// Ranks many requests in parallel (rayon), one result per request, in
    /// order.
    pub fn recommend_batch(&self, reqs: &[FeedRequest]) -> Vec<Result<Feed>> {
        reqs.par_iter()
            .map_init(Scratch::default, |scratch, req| self.recommend_with(scratch, req))
            .collect()
    }

    /// [`recommend`](Self::recommend) with caller-owned working memory.
    pub fn recommend_with(&self, s: &mut Scratch, req: &FeedRequest) -> Result<Feed> {
        req.validate()?;
        let state = self.state.load_full();
        let catalog = &*state.catalog;
        s.excluded.clear();
        for &p in &req.exclude {
            s.excluded.push(catalog.require_row(p, "request.exclude")?);
        }
        s.excluded.sort_unstable();
        s.excluded.dedup();
        let profile = state.signals.profile(req.user);
        let at = req.at.unwrap_or(state.signals.as_of());
        s.blocked.clear();
        if let Some(p) = profile {
            for pur in p.purchases() {
                if let PurchaseState::Bought { .. } = state.signals.purchase_state(p, pur.row, at) {
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

        let ctx = RequestContext {
            request: req,
            catalog,
            index: &*state.index,
            signals: &state.signals,
            profile,
            excluded: &s.excluded,
        };
        let mut trace = Trace::default();

        // Retrieve: every source into its own buffer; a failure is traced.
        s.bufs.resize_with(self.sources.len(), CandidateBuf::new);
        s.tagged.clear();
        for (i, (source, buf)) in self.sources.iter().zip(&mut s.bufs).enumerate() {
            buf.clear();
            let mut outcome = source.retrieve(&ctx, buf);
            // A custom source is user code: a row outside the catalog would
            // index out of bounds later, so it fails that source instead.
            if outcome.is_ok() {
                if let Some(bad) = buf.as_slice().iter().find(|n| n.row.index() >= catalog.len()) {
                    outcome = Err(Error::invalid_value(
                        "candidate row",
                        format_args!("source {}", source.id()),
                        format!("row {} is outside the catalog of {}", bad.row.0, catalog.len()),
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
            s.tagged.extend(buf.as_slice().iter().map(|n| (n.row, 1u32 << i)));
        }

        // Merge: dedupe by row, keeping which sources found each.
        s.tagged.sort_unstable_by_key(|&(row, _)| row);
        s.rows.clear();
        s.masks.clear();
        let mut distinct = 0;
        s.removed.clear();
        let signals = &*state.signals;
        let mut prev = None;
        for &(row, mask) in &s.tagged {
            if prev == Some(row) {
                if s.rows.last() == Some(&row) {
                    if let Some(m) = s.masks.last_mut() {
                        *m |= mask;
                    }
                }
                continue;
            }
            prev = Some(row);
            distinct += 1;
            // Filters, first reason wins: the caller's exclusions (sources
            // are asked to skip them; a custom one may not), governance
            // gates, then the user's seen and bought sets.
            let reason = if ctx.is_excluded(row) {
                Some(RemovalReason::Excluded)
            } else if let Some(gate) = signals.gate(row) {
                Some(RemovalReason::Gated(gate))
            } else {
                s.blocked.binary_search_by_key(&row, |b| b.0).ok().map(|i| s.blocked[i].1)
            };
            if let Some(reason) = reason {
                match s.removed.iter_mut().find(|r| r.0 == reason) {
                    Some(r) => r.1 += 1,
                    None => s.removed.push((reason, 1)),
                }
                continue;
            }
            s.rows.push(row);
            s.masks.push(mask);
        }
        trace.candidates = distinct;
        trace.removed.extend_from_slice(&s.removed);

        // Score: similarity to the long-term interest, the smoothed-rate
        // prior, trending volume, less the merchant governance shortfall.
        s.sims.clear();
        s.sims.resize(s.rows.len(), 0.0);
        if let Some(interest) = ctx.profile.and_then(|p| p.interest()) {
            gather_dot(catalog.embeddings().as_slice(), interest, &s.rows, &mut s.sims);
        }
        let c = &self.config;
        let (rate, trend) = (signals.rate_scores(), signals.trending_scores());
        s.scored.clear();
        s.scored.extend(s.rows.iter().zip(&s.sims).map(|(&row, &sim)| {
            let i = row.index();
            let score = sim + c.rate_weight * rate[i] + c.trending_weight * trend[i]
                - c.quality_weight * (1.0 - signals.quality(row));
            Scored { row, score }
        }));
        top_k_in_place(&mut s.scored, req.k);

        // Output: explanations only for the winners.
        let items = s
            .scored
            .iter()
            .map(|sc| {
                let at = s.rows.binary_search(&sc.row).unwrap_or(0);
                let (mask, sim) = (s.masks[at], s.sims[at]);
                let sources = self
                    .sources
                    .iter()
                    .zip(&s.bufs)
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .filter_map(|(_, (src, buf))| {
                        let rank = buf.as_slice().iter().position(|n| n.row == sc.row)?;
                        Some(SourceHit {
                            source: src.id(),
                            rank: rank as u32,
                            score: buf.as_slice()[rank].score,
                        })
                    })
                    .collect();
                FeedItem {
                    product: catalog.product_id(sc.row),
                    score: sc.score,
                    explanation: Explanation {
                        sources,
                        parts: vec![
                            ScorePart { name: "similarity", value: sim, weight: 1.0 },
                            ScorePart {
                                name: "rate_prior",
                                value: rate[sc.row.index()],
                                weight: c.rate_weight,
                            },
                            ScorePart {
                                name: "trending",
                                value: trend[sc.row.index()],
                                weight: c.trending_weight,
                            },
                            ScorePart {
                                name: "merchant_shortfall",
                                value: 1.0 - signals.quality(sc.row),
                                weight: -c.quality_weight,
                            },
                        ],
                    },
                }
            })
            .collect();
        Ok(Feed { items, trace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use crate::signals::SignalConfig;
    use crate::synth::{SynthConfig, generate};
    use crate::{ErrorKind, ProductId, UserId};

    fn rec() -> (Recommender, crate::synth::World) {
        let world = generate(&SynthConfig::tiny()).unwrap();
        let catalog = Arc::new(world.catalog.clone());
        let (signals, _) =
            Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
                .unwrap();
        let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
        let state = ServingState::new(catalog, index, Arc::new(signals)).unwrap();
        (Recommender::builder().state(state).build().unwrap(), world)
    }

    #[test]
    fn recommender_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Recommender>();
        check::<ServingState>();
    }

    #[test]
    fn feed_is_sorted_explained_and_respects_exclusions() {
        let (rec, world) = rec();
        let user = world.users[3].id;
        let feed = rec.recommend(&FeedRequest::new(user).k(15)).unwrap();
        assert_eq!(feed.items.len(), 15);
        assert!(feed.items.windows(2).all(|w| w[0].score >= w[1].score));
        for item in &feed.items {
            assert!(!item.explanation.sources.is_empty());
            let total: f32 = item.explanation.parts.iter().map(|p| p.value * p.weight).sum();
            assert!((total - item.score).abs() < 1e-5);
        }
        let banned: Vec<ProductId> = feed.items[..5].iter().map(|i| i.product).collect();
        let again = rec.recommend(&FeedRequest::new(user).k(15).exclude(banned.clone())).unwrap();
        assert!(again.items.iter().all(|i| !banned.contains(&i.product)));
        assert_eq!(again.items[0].product, feed.items[5].product);
    }

    #[test]
    fn cold_user_gets_popular_items() {
        let (rec, _) = rec();
        let feed = rec.recommend(&FeedRequest::new(UserId(987_654_321)).k(5)).unwrap();
        assert_eq!(feed.items.len(), 5);
        assert!(feed.items.iter().all(|i| i.explanation.sources[0].source == "popular"));
    }

    #[test]
    fn bad_requests_fail_closed() {
        let (rec, world) = rec();
        let e = rec.recommend(&FeedRequest::new(world.users[0].id).k(0)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidK { k: 0 }));
        let e = rec
            .recommend(&FeedRequest::new(world.users[0].id).exclude([ProductId(1)]))
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UnknownId { id: 1, .. }));
        let bad = RecommenderConfig { quality_weight: f32::NAN, ..Default::default() };
        let e = Recommender::builder().config(bad).build().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "quality_weight", .. }));
    }

    #[derive(Debug)]
    struct Broken;

    impl CandidateSource for Broken {
        fn id(&self) -> &'static str {
            "broken"
        }
        fn retrieve(&self, _: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
            out.push(ItemIdx(u32::MAX), 1.0);
            Ok(())
        }
    }

    #[test]
    fn a_source_returning_foreign_rows_fails_open() {
        let (plain, world) = rec();
        let state = (*plain.state()).clone();
        let rec = Recommender::builder().state(state).source(Box::new(Broken)).build().unwrap();
        let req = FeedRequest::new(world.users[0].id).k(10);
        let feed = rec.recommend(&req).unwrap();
        let broken = feed.trace.sources.iter().find(|t| t.source == "broken").unwrap();
        assert!(broken.error.as_deref().unwrap().contains("outside the catalog"));
        assert_eq!(feed.items, plain.recommend(&req).unwrap().items);
    }

    #[test]
    fn batch_equals_one_by_one() {
        let (rec, world) = rec();
        let reqs: Vec<FeedRequest> =
            world.users.iter().take(20).map(|u| FeedRequest::new(u.id).k(8)).collect();
        let batch = rec.recommend_batch(&reqs);
        for (req, got) in reqs.iter().zip(batch) {
            assert_eq!(got.unwrap(), rec.recommend(req).unwrap());
        }
    }
}
