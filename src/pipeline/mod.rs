//! The request path as a value: a `Pipeline` is the stages one config
//! gives (sources, filters, scorer, reranker, and their settings), and
//! `Pipeline::run` calls one function per stage, each in its own file,
//! each with explicit inputs and one output buffer:
//!
//! ```text
//! FeedRequest ─► resolve  (resolve.rs)  ─► RequestInput + Resolved
//!             ─► retrieve (retrieve.rs) ─► Retrieved     one CandidateBuf per source
//!             ─► merge    (merge.rs)    ─► Candidates    rows, source masks, source scores
//!             ─► filter   (filter.rs)   ─► Candidates    compacted, removals counted
//!             ─► rank     (rank.rs)     ─► Ranked        features, heads, fused values, boosts
//!             ─► select   (select.rs)   ─► Placement     pool, rerank, pins
//!             ─► present  (present.rs)  ─► Vec<FeedItem> content cards, explanations
//!             ─► effects  (effects.rs)     SideEffect… on the rayon pool
//! ```
//!
//! The buffers are reused from request to request ([`Scratch`] holds one
//! of each), so no stage allocates per candidate. The stage contracts are
//! in [`stage`](crate::stage); the built-in filters are here:
//!
//! | filter | removes | required |
//! |---|---|---|
//! | [`Exclusion`] | the caller's `exclude` list | yes |
//! | [`Governance`] | suspended merchants, problem products | yes |
//! | [`Blocked`] | the business rules' blocklists | yes |
//! | [`Stock`] | out of stock, when asked | no |
//! | [`Attributes`] | outside the request's categories and prices | no |
//! | [`Bought`] | bought within `bought_window`, unless due again | no |
//! | [`Seen`] | shown within `seen_window` | no |

mod buffers;
mod effects;
pub(crate) use effects::Effects;
mod filter;
mod filters;
mod merge;
mod observe;
mod present;
mod rank;
mod resolve;
mod retrieve;
mod select;

pub use buffers::Scratch;
pub use filters::{Attributes, Blocked, Bought, Exclusion, Governance, Seen, Stock};
#[cfg(feature = "metrics")]
pub(crate) use observe::record_metrics;
pub(crate) use observe::stage;
pub(crate) use rank::{features_for, rank_candidates, score_rows, score_rows_naive};

pub use crate::stage::{
    CandidateBuf, CandidateSource, DefaultReranker, Filter, RequestContext, Reranker, Scorer,
    SideEffect,
};

use crate::business::RuleSet;
use crate::clock::Clock;
use crate::config::RecommenderConfig;
use crate::error::Result;
use crate::request::{Feed, FeedRequest, Trace};
use crate::rerank::QuotaMask;
use crate::state::ServingState;
use std::sync::Arc;

/// The stages one config gives, assembled and checked by the
/// [`RecommenderBuilder`](crate::builder::RecommenderBuilder): what the base
/// recommender and each A/B arm run.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) config: RecommenderConfig,
    pub(crate) sources: Vec<Arc<dyn CandidateSource>>,
    pub(crate) filters: Vec<Arc<dyn Filter>>,
    /// The scorer, and the config's logistic heads that score the requests
    /// it is not enabled for.
    pub(crate) scorer: Arc<dyn Scorer>,
    pub(crate) default_scorer: Arc<dyn Scorer>,
    pub(crate) reranker: Arc<dyn Reranker>,
    /// Source-score slot (`0..SOURCE_SLOTS`) of each source.
    pub(crate) slots: Vec<usize>,
    /// Quotas per surface (in `Surface::ALL` order), resolved to masks.
    pub(crate) quotas: Vec<Vec<QuotaMask>>,
    /// Bits of the sources whose score is `src_search`.
    pub(crate) search_mask: u32,
}

/// What a request runs against: one state and one rule set, loaded once,
/// the recommender's clock and its side effects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serving<'a> {
    pub(crate) state: &'a ServingState,
    pub(crate) rules: &'a RuleSet,
    pub(crate) clock: Clock,
    pub(crate) effects: &'a Effects,
}

impl Pipeline {
    /// Runs every stage for `req` into `s`'s buffers and returns the feed,
    /// with the side effects that are on for it spawned.
    pub(crate) fn run(
        &self,
        s: &mut Scratch,
        on: Serving<'_>,
        req: &FeedRequest,
        variant: Option<String>,
    ) -> Result<Feed> {
        let state = on.state;
        let _span = tracing::debug_span!(
            "recommend",
            user = req.user.0,
            surface = req.surface.name(),
            k = req.k,
            variant = variant.as_deref().unwrap_or("control"),
            state_version = state.version,
        )
        .entered();
        if let Some(shard) = state.signals.user_shard() {
            shard.check(req.user)?;
        }
        let Scratch { input, retrieved, candidates, ranked, placement } = s;
        let r = stage!("resolve", resolve::resolve(self, input, on, req))?;
        let ctx = resolve::context(req, state, on.rules, input, &r);
        let mut trace = Trace {
            surface: req.surface,
            stale_excludes: r.stale,
            query_terms: input.plan().slots().len(),
            state_version: state.version,
            at: ctx.at,
            variant,
            ..Trace::default()
        };
        stage!("retrieve", retrieve::retrieve(self, &ctx, retrieved, &mut trace));
        stage!("merge", merge::merge(retrieved, &self.slots, &state.catalog, candidates));
        trace.candidates = candidates.rows.len();
        stage!("filter", filter::filter(self, &ctx, candidates, &mut trace));
        trace.scored = candidates.rows.len();
        let ranking =
            stage!("rank", rank::rank(self, &ctx, state, r.has_query, candidates, ranked));
        trace.repaired = ranking.repaired;
        stage!("boost", rank::boost(&ctx, candidates, ranked));
        stage!("select", select::select(self, &ctx, candidates, ranked, placement));
        trace.rerank_pool = placement.pool.len();
        // Side effects that read explanations get them whatever the request
        // asks; an inline one that does not reads the ranked rows.
        let effects_on = effects::on_for(self, on.effects, &ctx);
        let explain = req.explain || effects_on.iter().any(|e| effects::reads_explanations(e));
        let items = stage!(
            "present",
            present::present(
                self,
                &ctx,
                state,
                (retrieved, candidates, ranked, placement),
                ranking,
                explain
            )
        );
        #[cfg(feature = "metrics")]
        record_metrics(&trace);
        let feed = Feed { items, trace };
        if !effects_on.is_empty() {
            let rows = present::PlacedRows::new(self, (retrieved, candidates, ranked, placement));
            effects::spawn(on.effects, &effects_on, &ctx, &feed, &rows);
        }
        Ok(feed)
    }

    /// The scorer of this request: the pipeline's, or the config's logistic
    /// heads when it is not enabled for it; the state's heads learned
    /// online in place of the default heads, but for the held-back share.
    pub(crate) fn scorer_for<'s>(
        &'s self,
        ctx: &RequestContext<'_>,
        state: &'s ServingState,
    ) -> &'s dyn Scorer {
        if !self.scorer.enabled(ctx) {
            return &*self.default_scorer;
        }
        // Heads learned online replace the default logistic heads only, and
        // not for the held-back share of requests (the guard's).
        match state.online.as_deref() {
            Some(heads)
                if Arc::ptr_eq(&self.scorer, &self.default_scorer)
                    && !crate::exposure::held_back(
                        ctx.request.user,
                        ctx.at,
                        state.online_holdback,
                    ) =>
            {
                heads
            }
            _ => &*self.scorer,
        }
    }

    /// True if stage `id` runs for `req`: not disabled for its surface in
    /// the config, not skipped by the request.
    pub(crate) fn stage_on(&self, id: &str, req: &FeedRequest) -> bool {
        !self.config.disabled.get(req.surface).iter().any(|d| d == id)
            && !req.skip.iter().any(|d| d == id)
    }
}

/// An A/B arm: the pipeline of one variant (sharing the state, the rules,
/// the custom stages and the side effects with the base).
#[derive(Debug)]
pub(crate) struct Arm {
    pub(crate) experiment: usize,
    pub(crate) variant: usize,
    pub(crate) label: String,
    pub(crate) pipeline: Pipeline,
}

/// What a recommender serves with, swapped as one: the control's pipeline,
/// the experiments and one pipeline per variant.
pub(crate) struct Stages {
    pub(crate) pipeline: Pipeline,
    pub(crate) experiments: Vec<crate::experiment::Experiment>,
    pub(crate) arms: Vec<Arm>,
}

/// Builds a recommender's [`Stages`] again around the same custom stages:
/// what a swap of the config, the experiments or the scorer runs (the
/// builder's recipe implements it).
pub(crate) trait Assemble: Send {
    /// The stages under `config` and `experiments`.
    fn assemble(
        &self,
        config: RecommenderConfig,
        experiments: Vec<crate::experiment::Experiment>,
    ) -> Result<Stages>;

    /// Replaces the scorer the next assembly uses; returns the one before.
    fn replace_scorer(
        &mut self,
        scorer: Option<Arc<dyn crate::stage::Scorer>>,
    ) -> Option<Arc<dyn crate::stage::Scorer>>;
}
