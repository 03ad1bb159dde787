//! The stage contracts, in one room: every trait a request runs through,
//! what each stage reads ([`RequestContext`]) and the buffer a source
//! writes into ([`CandidateBuf`]). After X's `candidate-pipeline`: one
//! vocabulary for every stage.
//!
//! | trait | stage | built-ins | what it does |
//! |---|---|---|---|
//! | [`CandidateSource`] | retrieve (召回) | ten sources in [`retrieve`](crate::retrieve) | proposes products, best first, into its own buffer |
//! | [`Filter`] | filter | seven in [`pipeline`](crate::pipeline) | marks what must go, with a reason |
//! | [`Scorer`] | rank (精排) | [`LogisticScorer`](crate::rank::LogisticScorer), [`MlpScorer`](crate::rank::MlpScorer) | maps feature rows to heads, one result per row |
//! | [`Reranker`] | select (重排) | [`DefaultReranker`] | places up to `k` of the pool |
//! | [`SideEffect`] | after the response | none | works with the finished feed |
//!
//! Every one of them has the same two questions:
//!
//! - `id()`: a stable id, distinct among the stages of its kind, used in
//!   traces, explanations, config (`disabled`), quotas and a request's
//!   `skip`;
//! - `enabled(&ctx)`: whether it runs for this request (default: always).
//!   A source or filter that is not enabled is skipped; a scorer or
//!   reranker that is not enabled gives way to the built-in one (the
//!   config's logistic heads, [`DefaultReranker`]); a side effect that is
//!   not enabled is not spawned.
//!
//! The config's [`disabled`](crate::config::RecommenderConfig::disabled) lists per
//! surface and a request's [`skip`](crate::request::FeedRequest::skip) switch off
//! sources, filters and side effects by id on top of `enabled` (a
//! [`Filter::required`] one cannot be switched off). The event log seam,
//! [`EventLog`](crate::live::EventLog), shares `id()`; it serves no
//! request, so it has no `enabled`.

mod context;

pub(crate) use context::best_per_row;
pub use context::{CandidateBuf, RequestContext};

use crate::error::Result;
use crate::features::{FeatureMatrix, col};
use crate::ids::ItemIdx;
use crate::request::{Feed, FeedRequest, RemovalReason};
use crate::rerank::{Placed, RerankInput, RerankScratch};

/// A source of candidates (召回).
///
/// ```
/// use omnifeed::stage::{CandidateBuf, CandidateSource, RequestContext};
/// use omnifeed::{ItemIdx, Surface};
///
/// /// The first ten products of the catalog, on the feed only.
/// #[derive(Debug)]
/// struct FirstTen;
///
/// impl CandidateSource for FirstTen {
///     fn id(&self) -> &'static str { "first_ten" }
///     fn enabled(&self, ctx: &RequestContext<'_>) -> bool { ctx.surface() == Surface::Feed }
///     fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> omnifeed::Result<()> {
///         for r in (0..ctx.catalog.len().min(10)).map(|r| ItemIdx(r as u32)) {
///             if !ctx.is_excluded(r) {
///                 out.push(r, 1.0);
///             }
///         }
///         Ok(())
///     }
/// }
/// # let _: Box<dyn CandidateSource> = Box::new(FirstTen);
/// ```
pub trait CandidateSource: Send + Sync + std::fmt::Debug {
    /// A stable id for traces, explanations, quotas and config.
    fn id(&self) -> &'static str;

    /// True if the source runs for this request (default: always); a
    /// source for some surfaces returns `matches!(ctx.surface(), ...)`.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let _ = ctx;
        true
    }

    /// The feature column its normalized score feeds, one of the
    /// source-score columns `src_interest..=src_other`
    /// ([`features::schema`](crate::features::schema)); default
    /// [`col::SRC_OTHER`]. Any other column counts as `src_other`.
    fn feature(&self) -> usize {
        col::SRC_OTHER
    }

    /// Writes candidates for `ctx` into `out` (empty on entry), best first.
    /// Must not return rows for which `ctx.is_excluded` is true.
    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()>;

    /// Writes into `out` (empty on entry), best first, the rows of `rows`
    /// (given candidates, sorted, distinct) this source would have found
    /// for `ctx`, with the scores it would have given them: what
    /// [`Recommender::rank_products`](crate::recommender::Recommender::rank_products)
    /// ranks a caller's list with. The default finds none of them (their
    /// score column stays 0); the search source scores each by the query.
    fn score_given(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        out: &mut CandidateBuf,
    ) -> Result<()> {
        let _ = (ctx, rows, out);
        Ok(())
    }
}

/// A filter: removes candidates, and says why.
///
/// Filters run in order after the merge; each sees only what earlier ones
/// kept (`removed[i]` is `None`), so the first reason that applies is the
/// one counted. The built-in filters run first, in the order of the table
/// in [`pipeline`](crate::pipeline); custom ones after them, in the order
/// added.
///
/// ```
/// use omnifeed::stage::{Filter, RequestContext};
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

/// Maps feature rows to head outputs in `(0, 1)` (精排).
///
/// The contract keeps scoring from dropping or reordering: the caller hands
/// a slice of exactly `features.rows() × HEADS` outputs, row `i`'s heads at
/// `out[i * HEADS..]` ([`HEADS`](crate::features::HEADS),
/// [`HEAD_NAMES`](crate::features::HEAD_NAMES)). Non-finite outputs are
/// replaced by 0 after the call. A scorer that is not enabled for a request
/// gives way to the config's logistic heads.
pub trait Scorer: Send + Sync + std::fmt::Debug {
    /// A stable id for traces.
    fn id(&self) -> &'static str;

    /// True if it scores this request (default: always); otherwise the
    /// config's [`LogisticScorer`](crate::rank::LogisticScorer) does.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let _ = ctx;
        true
    }

    /// Writes the heads of every row of `features` into `out`.
    fn score(&self, features: &FeatureMatrix, out: &mut [f32]);
}

/// The select stage (重排): places up to `input.k` of the pool. The
/// default, [`DefaultReranker`], is [`rerank`](crate::rerank::rerank)
/// (fixed live positions, exploration, quotas, MMR / DPP under caps). Pins
/// are applied after any reranker; indexes outside the pool or repeated are
/// dropped. A reranker that is not enabled gives way to the default.
pub trait Reranker: Send + Sync + std::fmt::Debug {
    /// A stable id for traces.
    fn id(&self) -> &'static str;

    /// True if it places this request (default: always); otherwise
    /// [`DefaultReranker`] does.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let _ = ctx;
        true
    }

    /// Writes the placed candidates into `out` (empty on entry), in feed
    /// order. `scratch` is reusable per-thread memory.
    fn rerank(
        &self,
        input: &RerankInput<'_>,
        ctx: &RequestContext<'_>,
        scratch: &mut RerankScratch,
        out: &mut Vec<Placed>,
    );
}

/// The built-in reranker: [`rerank`](crate::rerank::rerank).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultReranker;

impl Reranker for DefaultReranker {
    fn id(&self) -> &'static str {
        "rerank"
    }

    fn rerank(
        &self,
        input: &RerankInput<'_>,
        _ctx: &RequestContext<'_>,
        scratch: &mut RerankScratch,
        out: &mut Vec<Placed>,
    ) {
        crate::rerank::rerank(input, scratch, out);
    }
}

/// Work done with a finished feed, after the response: impression logging,
/// counters, cache warming. Side effects run on the rayon pool once the
/// feed is built, never delay it and cannot change it; a panic in one is
/// contained there.
pub trait SideEffect: Send + Sync + std::fmt::Debug {
    /// A stable id (switch it off per surface or request like any stage).
    fn id(&self) -> &'static str;

    /// True if it runs for this request (default: always); asked while the
    /// request's context is alive, before the effect is spawned.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let _ = ctx;
        true
    }

    /// Called with the request and the feed it got.
    fn run(&self, request: &FeedRequest, feed: &Feed);

    /// True if it runs on the request's thread, right after the feed is
    /// built, instead of on the rayon pool with a copy of the feed (default
    /// false). Only for an effect that costs less than that copy and never
    /// blocks, such as handing a record to a bounded buffer; a panic is
    /// still contained.
    fn inline(&self) -> bool {
        false
    }

    /// True if it reads the items' explanations (default), so the request
    /// builds them for it whatever [`FeedRequest::explain`] asks. An
    /// [`inline`](Self::inline) effect that returns false is called through
    /// [`run_ranked`](Self::run_ranked) with the items' ranked rows instead,
    /// and a request that asks for no explanations builds none for it.
    /// Effects on the rayon pool always get explanations.
    fn reads_explanations(&self) -> bool {
        true
    }

    /// What an [`inline`](Self::inline) effect runs: `rows` borrows the
    /// feed items' sources, features and heads from the request's buffers,
    /// so an effect that records them needs no explanations (see
    /// [`reads_explanations`](Self::reads_explanations)). Default: [`run`](Self::run).
    fn run_ranked(&self, request: &FeedRequest, feed: &Feed, rows: &dyn RankedRows) {
        let _ = rows;
        self.run(request, feed);
    }
}

/// The ranked rows behind a feed's items, in item order, borrowed from the
/// request that built it: what [`SideEffect::run_ranked`] reads instead of
/// the items' explanations. Each is what the item's
/// [`Explanation`](crate::request::Explanation) would hold.
pub trait RankedRows {
    /// Item `item`'s feature row, in [`FEATURE_NAMES`](crate::features::FEATURE_NAMES)
    /// order (empty for an item out of range).
    fn features(&self, item: usize) -> &[f32];

    /// Item `item`'s heads, in [`HEAD_NAMES`](crate::features::HEAD_NAMES)
    /// order (empty for an item out of range).
    fn heads(&self, item: usize) -> &[f32];

    /// Calls `hit` for each source that found item `item`, in the sources'
    /// order, with its rank and score there.
    fn sources(&self, item: usize, hit: &mut dyn FnMut(crate::request::SourceHit));
}
