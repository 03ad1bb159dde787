//! Offline evaluation: split a log in time, replay the test period against
//! every method, and score the lists.
//!
//! The protocol, in the order [`evaluate`] runs it:
//!
//! 1. A [`Split`] cuts the log: one global time (by fraction of events or
//!    by date), or per user (leave the last relevant event out).
//! 2. **Replay.** With a global time the test period is replayed in
//!    `replay_steps` equal windows. Before each window every method is
//!    refitted (through the caller's `fit`) on all events before the
//!    window's start; every user with a [relevant](Relevance) event in the
//!    window gets one request at the window's start, and the window's
//!    relevant products are the answer. With one step that is the classic
//!    "train before t, test after". A per-user split asks once per user, at
//!    the held-out event's time, with the train events as history (so
//!    methods see other users' later events, as that protocol does).
//! 3. Each method returns its top [`list_len`](EvalConfig::list_len) for
//!    each request, in parallel (rayon) with a progress bar on a terminal;
//!    [metrics] are averaged over requests.
//!
//! What a user already had can be excluded from their lists
//! ([`EvalConfig::exclude_known`]): right for ratings (nobody rates a film
//! twice), wrong for e-commerce logs where viewing a product again is much
//! of what people do.
//!
//! Methods are anything implementing [`Method`]: the [`Pipeline`] (a
//! [`Recommender`](crate::recommender::Recommender)), the [baselines] and matrix
//! factorization ([`MfMethod`]).

pub mod baselines;
mod experiment;
pub mod metrics;
pub mod ope;
mod pipeline;
mod plot;
mod replay;
mod report;
mod rerank_ope;
mod score;
mod split;

pub use baselines::{ItemKnn, MfMethod, Popularity, RecentPopularity};
pub use experiment::{
    CatalogSource, Experiment, ExperimentConfig, IndexKind, RankerGuard, TreesGuard, run_experiment,
};
pub use pipeline::{ColdItems, Pipeline, catalog_from_log, catalog_with_factors};
pub use plot::ndcg_chart_svg;
pub use replay::{FitMethods, evaluate};
pub use report::{EvalReport, EvalRun, MethodLists, MethodReport};
pub use score::user_counts;
pub use split::{Level, Relevance, Split, SplitLog};

use crate::error::{Error, Result};
use crate::ids::{ProductId, Timestamp, UserId};
use serde::Serialize;

/// A recommender under evaluation.
pub trait Method: Send + Sync {
    /// Its name in reports (`pipeline`, `popularity`, ...).
    fn name(&self) -> &str;

    /// Up to `k` products for `user` at time `at`, best first, without
    /// duplicates and without any of `exclude` (sorted ascending).
    fn recommend(
        &self,
        user: UserId,
        at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>>;
}

/// The most replay windows ([`EvalConfig::replay_steps`]).
pub const MAX_REPLAY_STEPS: usize = 1_000;

/// How [`evaluate`] runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalConfig {
    /// What makes a product relevant.
    pub relevance: Relevance,
    /// Cut-offs for the metrics. Default `[10, 20, 50]`.
    pub ks: Vec<usize>,
    /// Length of each list asked for (at least the largest cut-off, at most
    /// [`MAX_K`](crate::limits::MAX_K)). Default 100.
    pub list_len: usize,
    /// NDCG@K is also reported for K = 1..=this (the chart). Default 50.
    pub curve_max: usize,
    /// Leave out of a user's lists the products they interacted with (any
    /// level) before the request. Default false.
    pub exclude_known: bool,
    /// Windows the test period is replayed in (global splits only),
    /// `1..=`[`MAX_REPLAY_STEPS`]. Default 1.
    pub replay_steps: usize,
    /// Draw a progress bar (on stderr, when it is a terminal).
    pub progress: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            relevance: Relevance::default(),
            ks: vec![10, 20, 50],
            list_len: 100,
            curve_max: 50,
            exclude_known: false,
            replay_steps: 1,
            progress: false,
        }
    }
}

impl EvalConfig {
    fn validate(&self) -> Result<()> {
        let bad = |field, msg: String| Err(Error::invalid_value(field, "eval config", msg));
        if self.ks.is_empty() || self.ks.contains(&0) {
            return bad("ks", format!("cut-offs must be >= 1, got {:?}", self.ks));
        }
        let kmax = self.ks.iter().copied().max().unwrap_or(0).max(self.curve_max);
        if self.list_len < kmax {
            return bad(
                "list_len",
                format!("{} is below the largest cut-off {kmax}", self.list_len),
            );
        }
        if self.replay_steps == 0 || self.replay_steps > MAX_REPLAY_STEPS {
            return bad(
                "replay_steps",
                format!("expected 1..={MAX_REPLAY_STEPS}, got {}", self.replay_steps),
            );
        }
        if self.list_len > crate::limits::MAX_K {
            return bad(
                "list_len",
                format!("{} is above MAX_K = {}", self.list_len, crate::limits::MAX_K),
            );
        }
        if self.ks.len() > 64 {
            return bad("ks", format!("at most 64 cut-offs, got {}", self.ks.len()));
        }
        Ok(())
    }
}

/// One request of the replay.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRequest {
    /// The user.
    pub user: UserId,
    /// When the request is made.
    pub at: Timestamp,
    /// The relevant products, sorted, distinct.
    pub relevant: Vec<ProductId>,
    /// The value of the user's orders in the window per product (order
    /// price, else catalog price), sorted by product.
    pub order_value: Vec<(ProductId, f64)>,
    /// What the lists must leave out, sorted.
    pub exclude: Vec<ProductId>,
}
