//! The request path as stages with one contract each, after X's
//! `candidate-pipeline` (named stage traits, each with `enabled`, filters
//! that return what they removed and why, scorers that never reorder, a
//! selector that sorts with NaN sinking, side effects after the response):
//!
//! ```text
//! resolve ─► retrieve (CandidateSource…) ─► merge ─► filter (Filter…) ─► features
//!        ─► score (Scorer) ─► fuse ─► select (rerank) ─► present ─► Feed ─► SideEffect…
//! ```
//!
//! | stage | trait / type | built-ins | room |
//! |---|---|---|---|
//! | retrieve | [`CandidateSource`](crate::retrieve::CandidateSource) | eight sources | `retrieve/` |
//! | filter | [`Filter`] | [`Exclusion`], [`Governance`], [`Blocked`], [`Stock`], [`Attributes`], [`Bought`], [`Seen`] | `pipeline/filters.rs` |
//! | features | [`FeatureMatrix`](crate::rank::FeatureMatrix), [`col`](crate::rank::col) | the 24 columns | `rank/features.rs` |
//! | score | [`Scorer`](crate::rank::Scorer) | logistic heads, MLP | `rank/scorer.rs` |
//! | select | [`Reranker`] | [`DefaultReranker`]: caps, MMR/DPP, slots, quotas; then pins | `rerank/` |
//! | side effects | [`SideEffect`] | none | here |
//!
//! Every source and filter can be switched off per surface and per
//! request: its own `enabled` decides from the request, the config's
//! [`disabled`](crate::RecommenderConfig::disabled) lists per surface,
//! and a request's [`skip`](crate::FeedRequest::skip) names stages to skip
//! for that request (a [`Filter::required`] one cannot be skipped).

mod filters;
mod observe;
mod scratch;
mod stages;

pub use filters::{Attributes, Blocked, Bought, Exclusion, Governance, Seen, Stock};
#[cfg(feature = "metrics")]
pub(crate) use observe::record_metrics;
pub(crate) use observe::stage;
pub(crate) use scratch::RequestInput;
pub use scratch::Scratch;

use crate::catalog::Embeddings;
use crate::ids::ItemIdx;
use crate::request::{Feed, FeedRequest, RemovalReason};
use crate::rerank::{Candidate, Placed, QuotaMask, RerankConfig, RerankScratch};
use crate::retrieve::RequestContext;

/// A filter: removes candidates, and says why.
///
/// Filters run in order after the merge; each sees only what earlier ones
/// kept (`removed[i]` is `None`), so the first reason that applies is the
/// one counted. The built-in filters run first, in the order of the table
/// in [`pipeline`](self); custom ones after them, in the order added.
///
/// ```
/// use omnifeed::pipeline::Filter;
/// use omnifeed::retrieve::RequestContext;
/// use omnifeed::{ItemIdx, RemovalReason};
///
/// /// Leaves out products above a price, e.g. for a budget surface.
/// #[derive(Debug)]
/// struct Budget(f32);
///
/// impl Filter for Budget {
///     fn id(&self) -> &'static str { "budget" }
///     fn filter(&self, ctx: &RequestContext<'_>, rows: &[ItemIdx], removed: &mut [Option<RemovalReason>]) {
///         let prices = ctx.catalog.prices();
///         for (r, slot) in rows.iter().zip(removed) {
///             if slot.is_none() && prices[r.index()] > self.0 {
///                 *slot = Some(RemovalReason::Custom("budget"));
///             }
///         }
///     }
/// }
/// # let _: Box<dyn Filter> = Box::new(Budget(100.0));
/// ```
pub trait Filter: Send + Sync + std::fmt::Debug {
    /// A stable id for traces and config (distinct from every source id
    /// and other filter id).
    fn id(&self) -> &'static str;

    /// True if the filter runs for this request (default: always); a
    /// filter for one surface returns `ctx.surface() == ...`.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let _ = ctx;
        true
    }

    /// True if no request may skip it (governance and the caller's own
    /// exclusions are). Default false.
    fn required(&self) -> bool {
        false
    }

    /// For every `i` with `removed[i] == None` whose `rows[i]` must go, sets
    /// `removed[i]` to the reason. Leaves other entries as they are.
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    );
}

/// What a [`Reranker`] places from: the pool (best value first), the
/// embeddings, the surface's rerank config and quotas, `k`, the request's
/// seed and its context.
#[derive(Debug, Clone, Copy)]
pub struct RerankInput<'a> {
    /// The candidates, best fused value first.
    pub pool: &'a [Candidate],
    /// The catalog's embeddings (for diversity).
    pub embeddings: &'a Embeddings,
    /// The surface's rerank settings.
    pub config: &'a RerankConfig,
    /// The surface's quotas, resolved to source masks.
    pub quotas: &'a [QuotaMask],
    /// How many to place at most.
    pub k: usize,
    /// The request's seed for random choices.
    pub seed: u64,
    /// The request.
    pub ctx: &'a RequestContext<'a>,
}

/// The select stage (重排): places up to `k` of the pool. The default,
/// [`DefaultReranker`], is [`rerank`](crate::rerank::rerank) (fixed live
/// positions, exploration, quotas, MMR / DPP under caps). Pins are applied
/// after any reranker; indexes outside the pool or repeated are dropped.
pub trait Reranker: Send + Sync + std::fmt::Debug {
    /// A stable id for traces.
    fn id(&self) -> &'static str;

    /// Writes the placed candidates into `out` (empty on entry), in feed
    /// order. `scratch` is reusable per-thread memory.
    fn rerank(&self, input: &RerankInput<'_>, scratch: &mut RerankScratch, out: &mut Vec<Placed>);
}

/// The built-in reranker: [`rerank`](crate::rerank::rerank).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultReranker;

impl Reranker for DefaultReranker {
    fn id(&self) -> &'static str {
        "rerank"
    }

    fn rerank(&self, input: &RerankInput<'_>, scratch: &mut RerankScratch, out: &mut Vec<Placed>) {
        crate::rerank::rerank(
            input.pool,
            input.embeddings,
            input.config,
            input.quotas,
            input.k,
            input.seed,
            scratch,
            out,
        );
    }
}

/// Work done with a finished feed, after the response: impression logging,
/// counters, cache warming. Side effects run on the rayon pool once the
/// feed is built, never delay it and cannot change it; a panic in one is
/// contained there.
pub trait SideEffect: Send + Sync + std::fmt::Debug {
    /// A stable id (switch it off per surface or request like any stage).
    fn id(&self) -> &'static str;

    /// True if it runs for this request (default: always).
    fn enabled(&self, request: &FeedRequest) -> bool {
        let _ = request;
        true
    }

    /// Called with the request and the feed it got.
    fn run(&self, request: &FeedRequest, feed: &Feed);
}
