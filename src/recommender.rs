//! The [`Recommender`]: orchestration of the stages, nothing else. The
//! stages are in [`pipeline`](crate::pipeline), the builder in `builder.rs`,
//! the state in `state.rs`.
//!
//! A request loads one `Arc<ServingState>` (catalog, index, title index,
//! signals) and uses it throughout, so a state swapped in while it runs
//! never mixes with the old one (tantivy's searcher discipline, through
//! `arc-swap`).

use crate::business::{BusinessRules, RuleSet};
use crate::clock::Clock;
use crate::config::RecommenderConfig;
use crate::error::Result;
use crate::experiment::Experiment;
use crate::features::FeatureMatrix;
use crate::ids::ItemIdx;
use crate::kernels::Scored;
use crate::pipeline::{Arm, Assemble, Scratch, Serving, Stages};
use crate::request::{Feed, FeedRequest};
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
    /// The rules in force as written.
    pub(crate) rules_written: ArcSwap<BusinessRules>,
    /// The control's pipeline, the A/B experiments and one arm per
    /// variant, swapped as one.
    pub(crate) stages: ArcSwap<Stages>,
    /// How the stages are assembled (for swaps; requests never lock it).
    pub(crate) recipe: Mutex<Box<dyn Assemble>>,
    pub(crate) effects: crate::pipeline::Effects,
    /// The exposure recorder, if on (also one of `effects`).
    pub(crate) exposures: Option<Arc<crate::exposure::ExposureRecorder>>,
    pub(crate) pool: Mutex<Vec<Scratch>>,
    /// The time of a request without `at`.
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("sources", &self.source_ids())
            .field("filters", &self.filter_ids())
            .field("scorer", &self.stages.load().pipeline.scorer.id())
            .finish()
    }
}

impl Recommender {
    /// The config in force (a copy: [`set_config`](Self::set_config) may
    /// swap it).
    pub fn config(&self) -> RecommenderConfig {
        self.stages.load().pipeline.config.clone()
    }

    /// Swaps in `config`: the pipelines are rebuilt around the same custom
    /// stages, scorer and experiments, checked, and swapped in as one.
    /// Requests already running finish on the old stages, later ones use
    /// the new.
    ///
    /// Errors: as [`RecommenderBuilder::build`](crate::RecommenderBuilder::build)
    /// for a config (an invalid value, experiments it does not accept, an
    /// id no stage has); the config in force stays.
    pub fn set_config(&self, config: RecommenderConfig) -> Result<()> {
        config.validate()?;
        self.reassemble(&**self.recipe(), Some(config), None)
    }

    /// Swaps in the A/B `experiments` (an empty list ends them), as
    /// [`set_config`](Self::set_config) swaps a config.
    ///
    /// Errors: an invalid experiment or variant; the experiments in force
    /// stay.
    pub fn set_experiments(&self, experiments: Vec<Experiment>) -> Result<()> {
        self.reassemble(&**self.recipe(), None, Some(experiments))
    }

    /// Swaps in `scorer` (any [`Scorer`](crate::stage::Scorer): logistic,
    /// MLP, trees, a custom one) for the control and the variants that keep
    /// the config's weights, as [`set_config`](Self::set_config) swaps a
    /// config. [`scorer_id`](Self::scorer_id) reads back which is in force.
    ///
    /// Errors: none in practice (the pipelines are rebuilt and checked);
    /// the scorer in force stays on an error.
    pub fn set_scorer(&self, scorer: Arc<dyn crate::stage::Scorer>) -> Result<()> {
        let mut recipe = self.recipe();
        let before = recipe.replace_scorer(Some(scorer));
        self.reassemble(&**recipe, None, None).inspect_err(|_| {
            recipe.replace_scorer(before);
        })
    }

    /// The recipe, locked: swaps run one at a time.
    fn recipe(&self) -> std::sync::MutexGuard<'_, Box<dyn Assemble>> {
        self.recipe.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Assembles the stages from `recipe` with `config` and `experiments`
    /// (those in force where `None`) and swaps them in; on an error what
    /// is in force stays.
    fn reassemble(
        &self,
        recipe: &dyn Assemble,
        config: Option<RecommenderConfig>,
        experiments: Option<Vec<Experiment>>,
    ) -> Result<()> {
        let now = self.stages.load();
        let config = config.unwrap_or_else(|| now.pipeline.config.clone());
        let experiments = experiments.unwrap_or_else(|| now.experiments.clone());
        self.stages.store(Arc::new(recipe.assemble(config, experiments)?));
        Ok(())
    }

    /// The id of the control's scorer in force.
    pub fn scorer_id(&self) -> &'static str {
        self.stages.load().pipeline.scorer.id()
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
    /// Errors: a rule [`BusinessRules::compile`] rejects, or one naming a
    /// product the serving catalog does not know or has delisted
    /// ([`BusinessRules::check_products`]); the rules in force stay.
    pub fn set_rules(&self, rules: &BusinessRules) -> Result<()> {
        let compiled = rules.compile_for(&self.state.load().catalog)?;
        self.rules.store(Arc::new(compiled));
        self.rules_written.store(Arc::new(rules.clone()));
        Ok(())
    }

    /// The compiled rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// The rules in force as they were written (the builder's, or the last
    /// [`set_rules`](Self::set_rules)'): what a service shows or saves.
    pub fn business_rules(&self) -> Arc<BusinessRules> {
        self.rules_written.load_full()
    }

    /// The A/B experiments this recommender serves, as configured (a copy:
    /// [`set_experiments`](Self::set_experiments) may swap them).
    pub fn experiments(&self) -> Vec<Experiment> {
        self.stages.load().experiments.clone()
    }

    /// Fresh working memory for [`recommend_with`](Self::recommend_with).
    pub fn new_scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// The ids of the sources, in the order they run.
    pub fn source_ids(&self) -> Vec<&'static str> {
        self.stages.load().pipeline.sources.iter().map(|s| s.id()).collect()
    }

    /// The ids of the filters, in the order they run.
    pub fn filter_ids(&self) -> Vec<&'static str> {
        self.stages.load().pipeline.filters.iter().map(|f| f.id()).collect()
    }

    /// Ranks a feed for one request.
    ///
    /// Errors (the request fails closed): `k` outside `1..=MAX_K`, a search
    /// request without a query, a query embedding of the wrong dimension,
    /// not finite or (near) zero, bad price bounds, a time outside the
    /// signals' window, a `skip` naming an unknown or required stage. Stale
    /// `exclude` ids are not errors (see [`Trace::stale_excludes`](crate::request::Trace::stale_excludes)); a
    /// failing candidate source does not fail the request; it is recorded
    /// in [`Trace::sources`](crate::request::Trace::sources).
    pub fn recommend(&self, req: &FeedRequest) -> Result<Feed> {
        let mut scratch = self.pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        let feed = self.recommend_with(&mut scratch, req);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(scratch);
        }
        feed
    }

    /// Waits until the side effects of every request served before the
    /// call have run (they run on the rayon pool after the response): for
    /// a test, or before reading what an effect recorded.
    pub fn flush_effects(&self) {
        self.effects.wait();
    }

    /// Waits until every exposure of a request served before the call is
    /// written to the sink (or dropped): [`flush_effects`](Self::flush_effects),
    /// then the recorder's own buffer. A no-op with exposures off.
    pub fn flush_exposures(&self) {
        self.flush_effects();
        if let Some(e) = &self.exposures {
            e.flush();
        }
    }

    /// The exposure recorder, if exposures are on (see
    /// [`exposure`](crate::exposure)).
    pub fn exposures(&self) -> Option<&Arc<crate::exposure::ExposureRecorder>> {
        self.exposures.as_ref()
    }

    /// Ranks many requests in parallel (rayon), one result per request, in
    /// order. Each result equals [`recommend`](Self::recommend)'s.
    pub fn recommend_batch(&self, reqs: &[FeedRequest]) -> Vec<Result<Feed>> {
        reqs.par_iter()
            .map_init(Scratch::default, |scratch, req| self.recommend_with(scratch, req))
            .collect()
    }

    /// [`recommend`](Self::recommend) with caller-owned working memory:
    /// the user's arm (or the control) runs its pipeline (resolve,
    /// retrieve, merge, filter, rank, select, present), then the side
    /// effects.
    pub fn recommend_with(&self, s: &mut Scratch, req: &FeedRequest) -> Result<Feed> {
        let stages = self.stages.load();
        let (pipeline, label) = match arm_of(&stages, req.user) {
            Some(arm) => (&arm.pipeline, Some(arm.label.clone())),
            None => (&stages.pipeline, None),
        };
        let state = self.state.load_full();
        let rules = self.rules.load_full();
        let on = self.serving(&state, &rules);
        pipeline.run(s, on, req, label)
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
        let (state, rules) = (self.state(), self.rules());
        let on = self.serving(&state, &rules);
        crate::pipeline::score_rows(&self.stages.load().pipeline, s, on, req, rows)
    }

    /// Ranks `products` (a caller's candidate list: a shelf, a category
    /// page, the products a search engine of its own returned) as `req`'s
    /// surface would rank them: every source that would have found one
    /// fills its score column (on Search, the query's cosine and BM25
    /// fused as the search source fuses them), then features, scorer and
    /// fusion. No filter, no diversity, no rules: every given product comes
    /// back once, best first, with its value. `req.k` is not a cut.
    ///
    /// Errors: as [`recommend`](Self::recommend), and a product the catalog
    /// does not know ([`ErrorKind::UnknownId`](crate::error::ErrorKind::UnknownId)).
    pub fn rank_products(
        &self,
        req: &FeedRequest,
        products: &[crate::ids::ProductId],
    ) -> Result<Vec<(crate::ids::ProductId, f32)>> {
        let (state, rules) = (self.state(), self.rules());
        let rows = products
            .iter()
            .map(|&p| state.catalog.require_row(p, "rank_products"))
            .collect::<Result<Vec<_>>>()?;
        let on = self.serving(&state, &rules);
        let mut s = Scratch::default();
        let scored =
            crate::pipeline::rank_candidates(&self.stages.load().pipeline, &mut s, on, req, &rows)?;
        Ok(scored.iter().map(|x| (state.catalog.product_id(x.row), x.score)).collect())
    }

    /// The feature rows the ranking stage would see for `products` in a
    /// Feed request of `user` at `at`, source columns included: every
    /// source retrieves as for that request, and a product a source found
    /// gets its score there (normalized by the source's best, as in a
    /// served request), `n_sources` counting them; a product no source
    /// finds has 0 there, as it would if it were ranked at all. What an ML
    /// engineer builds training data from (served feeds already carry their
    /// rows: see [`exposure`](crate::exposure)). Rows are in the order of
    /// `products`; read them by [`col`](crate::features::col).
    ///
    /// Errors: a product the catalog does not know
    /// ([`ErrorKind::UnknownId`](crate::error::ErrorKind::UnknownId)), a time outside
    /// the signals' window.
    pub fn features_for(
        &self,
        user: crate::ids::UserId,
        products: &[crate::ids::ProductId],
        at: crate::ids::Timestamp,
    ) -> Result<FeatureMatrix> {
        let (state, rules) = (self.state(), self.rules());
        let rows = products
            .iter()
            .map(|&p| state.catalog.require_row(p, "features_for"))
            .collect::<Result<Vec<_>>>()?;
        let on = self.serving(&state, &rules);
        crate::pipeline::features_for(
            &self.stages.load().pipeline,
            on,
            &FeedRequest::new(user).at(at),
            &rows,
        )
    }

    /// [`score_rows`](Self::score_rows) the plain way: a feature vector
    /// allocated per row, the scorer called row by row, a full sort. The
    /// oracle the fast path is tested against and the benchmarks' baseline.
    pub fn score_rows_naive(&self, req: &FeedRequest, rows: &[ItemIdx]) -> Result<Vec<Scored>> {
        let (state, rules) = (self.state(), self.rules());
        let on = self.serving(&state, &rules);
        crate::pipeline::score_rows_naive(&self.stages.load().pipeline, on, req, rows)
    }

    /// What a request runs against, from the state and rules it loaded.
    fn serving<'a>(&'a self, state: &'a ServingState, rules: &'a RuleSet) -> Serving<'a> {
        Serving { state, rules, clock: self.clock, effects: &self.effects }
    }

    /// The variant `user` is served, as `experiment/variant`; `None` for
    /// the control.
    pub fn variant_of(&self, user: crate::ids::UserId) -> Option<String> {
        arm_of(&self.stages.load(), user).map(|a| a.label.clone())
    }
}

/// The arm serving `user`: the first experiment that assigns them a
/// variant.
fn arm_of(stages: &Stages, user: crate::ids::UserId) -> Option<&Arm> {
    stages.experiments.iter().enumerate().find_map(|(e, exp)| {
        let v = exp.variant_of(user)?;
        stages.arms.iter().find(|a| a.experiment == e && a.variant == v)
    })
}
