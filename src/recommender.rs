//! The [`Recommender`]: orchestration of the stages, nothing else. The
//! stages are in [`pipeline`](crate::pipeline), the builder in `builder.rs`,
//! the state in `state.rs`.
//!
//! A request loads one `Arc<ServingState>` (catalog, index, title index,
//! signals) and uses it throughout, so a state swapped in while it runs
//! never mixes with the old one (tantivy's searcher discipline, through
//! `arc-swap`).

use crate::builder::{Arm, RecommenderBuilder};
use crate::business::{BusinessRules, RuleSet};
use crate::config::RecommenderConfig;
use crate::error::Result;
use crate::experiment::Experiment;
#[cfg(feature = "metrics")]
use crate::pipeline::record_metrics;
use crate::pipeline::{Filter, RequestInput, Reranker, Scratch, SideEffect, stage};
use crate::rank::scorer::Scorer;
use crate::request::{Feed, FeedRequest, Trace};
use crate::rerank::QuotaMask;
use crate::retrieve::{CandidateSource, RequestContext};
use crate::state::ServingState;
use arc_swap::ArcSwap;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// The recommendation engine: `Send + Sync`, queried through `&self` from
/// any number of threads.
///
/// ```
/// # #[cfg(feature = "synth")] {
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
/// # }
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub struct Recommender {
    /// Shared with the A/B arms: one swap serves them all.
    pub(crate) state: Arc<ArcSwap<ServingState>>,
    pub(crate) rules: Arc<ArcSwap<RuleSet>>,
    pub(crate) config: RecommenderConfig,
    pub(crate) sources: Vec<Arc<dyn CandidateSource>>,
    pub(crate) filters: Vec<Arc<dyn Filter>>,
    pub(crate) effects: Vec<Arc<dyn SideEffect>>,
    /// The A/B experiments and one arm per variant.
    pub(crate) experiments: Vec<Experiment>,
    pub(crate) arms: Vec<Arm>,
    /// Feature slot of each source's score.
    pub(crate) slots: Vec<usize>,
    pub(crate) scorer: Arc<dyn Scorer>,
    pub(crate) reranker: Arc<dyn Reranker>,
    /// Quotas per surface (in `Surface::ALL` order), resolved to masks.
    pub(crate) quotas: Vec<Vec<QuotaMask>>,
    /// Bits of the sources with id `search`.
    pub(crate) search_mask: u32,
    pub(crate) pool: Mutex<Vec<Scratch>>,
    /// The time of a request without `at`.
    pub(crate) clock: crate::builder::Clock,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("sources", &self.sources.iter().map(|s| s.id()).collect::<Vec<_>>())
            .field("filters", &self.filters.iter().map(|s| s.id()).collect::<Vec<_>>())
            .field("scorer", &self.scorer.name())
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

    /// Checks and compiles `rules` and swaps them in atomically: requests
    /// already running finish with the old rules, later ones use the new.
    /// Nothing else is rebuilt.
    ///
    /// Errors: a rule [`BusinessRules::compile`] rejects; the rules in force
    /// stay.
    pub fn set_rules(&self, rules: &BusinessRules) -> Result<()> {
        self.rules.store(Arc::new(rules.compile()?));
        Ok(())
    }

    /// The compiled rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Fresh working memory for [`recommend_with`](Self::recommend_with).
    pub fn new_scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// The ids of the sources, in the order they run.
    pub fn source_ids(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.id()).collect()
    }

    /// The ids of the filters, in the order they run.
    pub fn filter_ids(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.id()).collect()
    }

    /// Ranks a feed for one request.
    ///
    /// Errors (the request fails closed): `k` outside `1..=MAX_K`, a search
    /// request without a query, a query embedding of the wrong dimension,
    /// not finite or (near) zero, bad price bounds, a time outside the
    /// signals' window, a `skip` naming an unknown or required stage. Stale
    /// `exclude` ids are not errors (see [`Trace::stale_excludes`]); a
    /// failing candidate source does not fail the request; it is recorded
    /// in [`Trace::sources`].
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

    /// [`recommend`](Self::recommend) with caller-owned working memory:
    /// resolve, retrieve, merge, filter, features and fusion, select,
    /// present, then the side effects.
    pub fn recommend_with(&self, s: &mut Scratch, req: &FeedRequest) -> Result<Feed> {
        let (rec, label) = match self.arm_of(req.user) {
            Some(arm) => (&arm.rec, Some(arm.label.clone())),
            None => (self, None),
        };
        let state = self.state.load_full();
        let mut input = std::mem::take(&mut s.input);
        let feed = rec.run(s, &mut input, &state, req);
        s.input = input;
        let mut feed = feed?;
        feed.trace.variant = label;
        if !self.effects.is_empty() {
            self.spawn_effects(req, &feed);
        }
        Ok(feed)
    }

    #[allow(clippy::let_and_return)]
    fn run(
        &self,
        s: &mut Scratch,
        input: &mut RequestInput,
        state: &ServingState,
        req: &FeedRequest,
    ) -> Result<Feed> {
        let _span = tracing::debug_span!(
            "recommend",
            user = req.user.0,
            surface = req.surface.name(),
            k = req.k
        )
        .entered();
        if let Some(shard) = state.signals.user_shard() {
            shard.check(req.user)?;
        }
        let r = stage!("resolve", self.resolve(input, state, req))?;
        let rules = self.rules.load_full();
        let (catalog, signals) = (&*state.catalog, &*state.signals);
        let ctx = RequestContext {
            request: req,
            catalog,
            index: &*state.index,
            lexical: &state.lexical,
            signals,
            profile: signals.profile(req.user),
            excluded: &input.excluded,
            at: r.at,
            query: (!input.query.is_empty()).then_some(&input.query[..]),
            terms: &input.terms,
            co_engaged: &input.co,
            rules: &rules,
        };
        let mut trace = Trace {
            surface: req.surface,
            stale_excludes: r.stale,
            query_terms: input.terms.len(),
            state_version: state.version,
            ..Trace::default()
        };
        stage!("retrieve", self.retrieve(s, &ctx, &mut trace));
        stage!("merge", self.merge(s, catalog));
        trace.candidates = s.rows.len();
        stage!("filter", self.filter(s, &ctx, &mut trace));
        trace.scored = s.rows.len();
        let (has_relevance, repaired) =
            stage!("rank", self.features_and_fusion(s, input, state, req, &r));
        trace.repaired = repaired;
        stage!("boost", self.boost(s, &ctx));
        stage!("select", self.select(s, &ctx));
        trace.rerank_pool = s.pool.len();
        let items = stage!("present", self.present(s, &ctx, state, has_relevance));
        #[cfg(feature = "metrics")]
        record_metrics(&trace);
        Ok(Feed { items, trace })
    }

    /// Runs the side effects on the rayon pool with copies of the request
    /// and the feed; a panicking effect is contained there.
    fn spawn_effects(&self, req: &FeedRequest, feed: &Feed) {
        let shared = Arc::new((req.clone(), feed.clone()));
        let on = self.effects.iter().filter(|e| e.enabled(req) && self.stage_on(e.id(), req));
        for effect in on {
            let (effect, shared) = (Arc::clone(effect), Arc::clone(&shared));
            rayon::spawn(move || {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    effect.run(&shared.0, &shared.1)
                }));
            });
        }
    }

    /// The A/B arm `user` is in: the first experiment (in order) whose
    /// buckets hold the user decides; `None` is the control.
    pub(crate) fn arm_of(&self, user: crate::UserId) -> Option<&Arm> {
        self.experiments.iter().enumerate().find_map(|(e, exp)| {
            let v = exp.variant_of(user)?;
            self.arms.iter().find(|a| a.experiment == e && a.variant == v)
        })
    }

    /// The variant `user` is served, as `experiment/variant`; `None` for
    /// the control.
    pub fn variant_of(&self, user: crate::UserId) -> Option<&str> {
        self.arm_of(user).map(|a| a.label.as_str())
    }
}
