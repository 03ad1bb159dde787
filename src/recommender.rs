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
use crate::signals::Signals;
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
        if signals.popularity().len() != catalog.len() {
            return Err(Error::dimension(
                "signals rows",
                catalog.len(),
                signals.popularity().len(),
            ));
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
    /// Weight of the popularity prior beside similarity, `>= 0`. Default 0.15.
    pub popularity_weight: f32,
}

impl Default for RecommenderConfig {
    fn default() -> Self {
        RecommenderConfig {
            interest_candidates: 300,
            popular_candidates: 100,
            popularity_weight: 0.15,
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
        if !self.popularity_weight.is_finite() || self.popularity_weight < 0.0 {
            return Err(Error::invalid_config(
                "popularity_weight",
                format!("expected a finite value >= 0, got {}", self.popularity_weight),
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
/// use omnifeed::{synth, FeedRequest, Recommender, ServingState, Signals, EngagementWeights};
/// use omnifeed::index::ExactIndex;
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let (signals, _) = Signals::from_events(&world.catalog, &world.events, &EngagementWeights::default())?;
/// let index = Arc::new(ExactIndex::new(world.catalog.shared_embeddings()));
/// let state = ServingState::new(Arc::new(world.catalog), index, Arc::new(signals))?;
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

        let ctx = RequestContext {
            request: req,
            catalog,
            index: &*state.index,
            signals: &state.signals,
            profile: state.signals.profile(req.user),
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
        let mut removed_excluded = 0;
        for &(row, mask) in &s.tagged {
            if s.rows.last() == Some(&row) {
                if let Some(m) = s.masks.last_mut() {
                    *m |= mask;
                }
                continue;
            }
            // Sources are asked to skip excluded rows; a custom one may not.
            if ctx.is_excluded(row) {
                removed_excluded += 1;
                continue;
            }
            s.rows.push(row);
            s.masks.push(mask);
        }
        trace.candidates = s.rows.len() + removed_excluded;
        if removed_excluded > 0 {
            trace.removed.push((RemovalReason::Excluded, removed_excluded));
        }

        // Score: similarity to the interest vector plus the popularity prior.
        s.sims.clear();
        s.sims.resize(s.rows.len(), 0.0);
        if let Some(interest) = ctx.profile.and_then(|p| p.interest.as_deref()) {
            gather_dot(catalog.embeddings().as_slice(), interest, &s.rows, &mut s.sims);
        }
        let pop = state.signals.popularity();
        let w = self.config.popularity_weight;
        s.scored.clear();
        s.scored.extend(
            s.rows
                .iter()
                .zip(&s.sims)
                .map(|(&row, &sim)| Scored { row, score: sim + w * pop[row.index()] }),
        );
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
                            ScorePart { name: "popularity", value: pop[sc.row.index()], weight: w },
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
    use crate::signals::EngagementWeights;
    use crate::synth::{SynthConfig, generate};
    use crate::{ErrorKind, ProductId, UserId};

    fn rec() -> (Recommender, crate::synth::World) {
        let world = generate(&SynthConfig::tiny()).unwrap();
        let (signals, _) =
            Signals::from_events(&world.catalog, &world.events, &EngagementWeights::default())
                .unwrap();
        let catalog = Arc::new(world.catalog.clone());
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
        let bad = RecommenderConfig { popularity_weight: f32::NAN, ..Default::default() };
        let e = Recommender::builder().config(bad).build().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "popularity_weight", .. }));
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
