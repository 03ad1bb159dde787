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
//! [`Recommender`](crate::Recommender)), the [baselines] and matrix
//! factorization ([`MfMethod`]).

pub mod baselines;
mod experiment;
pub mod metrics;
mod pipeline;
mod plot;
mod split;

pub use baselines::{ItemKnn, MfMethod, Popularity, RecentPopularity};
pub use experiment::{CatalogSource, Experiment, ExperimentConfig, IndexKind, run_experiment};
pub use pipeline::{ColdItems, Pipeline, catalog_from_log, catalog_with_factors};
pub use plot::ndcg_chart_svg;
pub use split::{Level, Relevance, Split, SplitLog};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{ProductId, Timestamp, UserId};
use crate::signals::{Event, EventKind};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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

/// A method's lists, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodLists {
    /// The method.
    pub name: String,
    /// `(user, at, list)` per request.
    pub lists: Vec<(UserId, Timestamp, Vec<ProductId>)>,
}

/// One method's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodReport {
    /// The method.
    pub name: String,
    /// Metric name (`ndcg@10`, `recall@20`, `mrr`, ...) → mean over requests
    /// (list-level metrics) or over the run (coverage, Gini).
    pub metrics: BTreeMap<String, f64>,
    /// NDCG@K for K = 1..=curve_max.
    pub ndcg_curve: Vec<f64>,
    /// Seconds spent producing the lists (fitting not included).
    pub seconds: f64,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Per method, in the order `fit` returned them.
    pub methods: Vec<MethodReport>,
    /// Requests scored (per method).
    pub requests: usize,
    /// Distinct users among them.
    pub users: usize,
    /// The config used.
    pub config: EvalConfig,
}

impl EvalReport {
    /// A method's report by name.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// A metric of a method.
    pub fn metric(&self, method: &str, metric: &str) -> Option<f64> {
        self.method(method)?.metrics.get(metric).copied()
    }

    /// The JSON report: `{"methods": {name: {metric: value}}, "ndcg_curve":
    /// {name: [NDCG@1, ...]}, "seconds": {name: s}, "requests", "users",
    /// "config"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut methods = serde_json::Map::new();
        let mut curves = serde_json::Map::new();
        let mut seconds = serde_json::Map::new();
        for m in &self.methods {
            methods.insert(m.name.clone(), serde_json::json!(m.metrics));
            curves.insert(m.name.clone(), serde_json::json!(m.ndcg_curve));
            seconds.insert(m.name.clone(), serde_json::json!(m.seconds));
        }
        serde_json::json!({
            "methods": methods,
            "ndcg_curve": curves,
            "seconds": seconds,
            "requests": self.requests,
            "users": self.users,
            "config": self.config,
        })
    }

    /// A plain-text table, one row per method, one column per metric
    /// (those of `metrics` that some method has).
    pub fn table(&self, metrics: &[&str]) -> String {
        let cols: Vec<&str> = metrics
            .iter()
            .copied()
            .filter(|c| self.methods.iter().any(|m| m.metrics.contains_key(*c)))
            .collect();
        let w = self.methods.iter().map(|m| m.name.len()).max().unwrap_or(6).max(6);
        let mut out = format!("{:w$}", "method");
        for c in &cols {
            out.push_str(&format!(" {c:>13}"));
        }
        out.push('\n');
        for m in &self.methods {
            out.push_str(&format!("{:w$}", m.name));
            for c in &cols {
                match m.metrics.get(*c) {
                    Some(v) => out.push_str(&format!(" {v:>13.4}")),
                    None => out.push_str(&format!(" {:>13}", "-")),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The result of [`evaluate`]: the report and every list.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    /// Scores.
    pub report: EvalReport,
    /// Each method's lists.
    pub lists: Vec<MethodLists>,
}

/// Builds the requests of one window: users with relevant events in
/// `window`, asked at `at` (or, when `at` is `None`, at their first
/// window event), with what they had in `history` excluded when asked.
fn requests_for(
    catalog: &Catalog,
    history: &[Event],
    window: &[Event],
    at: Option<Timestamp>,
    cfg: &EvalConfig,
) -> Vec<EvalRequest> {
    let mut by_user: BTreeMap<UserId, EvalRequest> = BTreeMap::new();
    for e in window {
        let Some(p) = cfg.relevance.relevant_product(e) else { continue };
        let r = by_user.entry(e.user).or_insert_with(|| EvalRequest {
            user: e.user,
            at: at.unwrap_or(e.at),
            relevant: Vec::new(),
            order_value: Vec::new(),
            exclude: Vec::new(),
        });
        r.at = r.at.min(at.unwrap_or(e.at));
        r.relevant.push(p);
    }
    // Order value: every order in the window, relevant or not.
    for e in window {
        if let (EventKind::Order { price }, crate::signals::Target::Product(p)) =
            (&e.kind, &e.target)
        {
            if let Some(r) = by_user.get_mut(&e.user) {
                let v = price.map(f64::from).or_else(|| {
                    catalog.row(*p).map(|row| f64::from(catalog.prices()[row.index()]))
                });
                r.order_value.push((*p, v.unwrap_or(0.0)));
            }
        }
    }
    if cfg.exclude_known {
        let relevance = Relevance { min_level: Level::Click, ..cfg.relevance };
        for e in history {
            if let (Some(p), Some(r)) = (relevance.relevant_product(e), by_user.get_mut(&e.user)) {
                if e.at < r.at && catalog.row(p).is_some() {
                    r.exclude.push(p);
                }
            }
        }
    }
    by_user
        .into_values()
        .map(|mut r| {
            r.relevant.sort_unstable();
            r.relevant.dedup();
            r.exclude.sort_unstable();
            r.exclude.dedup();
            r.order_value.sort_by_key(|o| o.0);
            // Relevant items the user had before stay relevant, unless
            // excluded: a list can never contain them then.
            if cfg.exclude_known {
                r.relevant.retain(|p| r.exclude.binary_search(p).is_err());
            }
            r
        })
        .filter(|r| !r.relevant.is_empty())
        .collect()
}

/// Sums of per-request metrics and exposure counts for one method.
struct Accumulator {
    sums: BTreeMap<String, f64>,
    ild_n: Vec<usize>,
    curve: Vec<f64>,
    /// Exposure per catalog row and per merchant row, per cut-off.
    exposure: Vec<Vec<u64>>,
    merchant_exposure: Vec<Vec<u64>>,
    requests: usize,
}

impl Accumulator {
    fn new(cfg: &EvalConfig, catalog: &Catalog) -> Self {
        Accumulator {
            sums: BTreeMap::new(),
            ild_n: vec![0; cfg.ks.len()],
            curve: vec![0.0; cfg.curve_max],
            exposure: vec![vec![0; catalog.len()]; cfg.ks.len()],
            merchant_exposure: vec![vec![0; catalog.merchants().len()]; cfg.ks.len()],
            requests: 0,
        }
    }
}

/// Users who touched each catalog row in `history` (any level).
fn users_touched(catalog: &Catalog, history: &[Event]) -> (Vec<u32>, usize) {
    let relevance = Relevance { min_level: Level::Click, ..Relevance::default() };
    let mut touched = vec![0u32; catalog.len()];
    for (p, n) in user_counts(history, &relevance) {
        if let Some(row) = catalog.row(p) {
            touched[row.index()] = n;
        }
    }
    let users = history.iter().map(|e| e.user).collect::<std::collections::HashSet<_>>().len();
    (touched, users)
}

/// What [`evaluate`] calls to fit the methods on a window's history:
/// `(events before the window, the window's start) → methods`.
pub type FitMethods<'a> = dyn FnMut(&[Event], Timestamp) -> Result<Vec<Box<dyn Method>>> + 'a;

/// Runs the protocol of the [module docs](self) and scores every method
/// `fit` returns. `fit(history, at)` is called once per replay window with
/// every event before the window (sorted by time) and the window's start;
/// it must return the same methods, in the same order, each time.
///
/// Errors: an invalid config, a split with no request (no test user with a
/// relevant event), `fit` returning no methods or different names, and any
/// error of a method (which names the method and user).
pub fn evaluate(
    catalog: &Catalog,
    split: &SplitLog,
    cfg: &EvalConfig,
    fit: &mut FitMethods<'_>,
) -> Result<EvalRun> {
    cfg.validate()?;
    let (touched, train_users) = users_touched(catalog, &split.train);
    let has_merchants = catalog.merchants().len() > 1;

    let windows = replay_windows(split, cfg);

    let mut names: Vec<String> = Vec::new();
    let mut accs: Vec<Accumulator> = Vec::new();
    let mut lists: Vec<MethodLists> = Vec::new();
    let mut seconds: Vec<f64> = Vec::new();
    let mut all_users = std::collections::HashSet::new();
    let mut n_requests = 0;
    let mut gmv = false;
    let mut history: Vec<Event> = split.train.clone();

    for &(lo, hi, at, fit_at) in &windows {
        // History: train plus the test events before this window.
        let hist_lo = history.len() - split.train.len();
        history.extend_from_slice(&split.test[hist_lo..lo]);
        let window = &split.test[lo..hi];
        let requests = requests_for(catalog, &history, window, at, cfg);
        if requests.is_empty() {
            continue;
        }
        let methods = fit(&history, fit_at)?;
        if methods.is_empty() {
            return Err(Error::invalid_value("methods", "evaluate", "fit returned no method"));
        }
        if names.is_empty() {
            names = methods.iter().map(|m| m.name().to_string()).collect();
            for name in &names {
                accs.push(Accumulator::new(cfg, catalog));
                lists.push(MethodLists { name: name.clone(), lists: Vec::new() });
                seconds.push(0.0);
            }
        } else if methods.iter().map(|m| m.name()).ne(names.iter().map(String::as_str)) {
            return Err(Error::invalid_value(
                "methods",
                "evaluate",
                "fit returned different methods in a later window",
            ));
        }
        n_requests += requests.len();
        gmv |= requests.iter().any(|r| r.order_value.iter().any(|o| o.1 > 0.0));
        all_users.extend(requests.iter().map(|r| r.user));
        let sink = Sink { accs: &mut accs, lists: &mut lists, seconds: &mut seconds };
        run_window(
            &methods,
            &requests,
            catalog,
            cfg,
            (&touched, train_users, has_merchants),
            sink,
        )?;
    }
    if n_requests == 0 {
        return Err(Error::invalid_value(
            "split",
            "evaluate",
            "no test user has a relevant event: nothing to evaluate",
        ));
    }

    let methods = summarize(&names, accs, &seconds, cfg, catalog, has_merchants, gmv);
    Ok(EvalRun {
        report: EvalReport {
            methods,
            requests: n_requests,
            users: all_users.len(),
            config: cfg.clone(),
        },
        lists,
    })
}

/// Where [`run_window`] accumulates: per method, metric sums, lists and
/// seconds.
struct Sink<'a> {
    accs: &'a mut [Accumulator],
    lists: &'a mut [MethodLists],
    seconds: &'a mut [f64],
}

/// Asks every method for every request of one window (in parallel over
/// requests) and scores the lists.
fn run_window(
    methods: &[Box<dyn Method>],
    requests: &[EvalRequest],
    catalog: &Catalog,
    cfg: &EvalConfig,
    (touched, train_users, has_merchants): (&[u32], usize, bool),
    sink: Sink<'_>,
) -> Result<()> {
    let Sink { accs, lists, seconds } = sink;
    let bar = progress_bar(cfg.progress, (requests.len() * methods.len()) as u64);
    for (mi, method) in methods.iter().enumerate() {
        bar.set_message(method.name().to_string());
        let started = std::time::Instant::now();
        let got: Vec<Result<Vec<ProductId>>> = requests
            .par_iter()
            .map(|r| {
                let out = method.recommend(r.user, r.at, cfg.list_len, &r.exclude);
                bar.inc(1);
                out.map_err(|e| {
                    Error::invalid_value(
                        "method",
                        format_args!("method {} for user {}", method.name(), r.user),
                        e.to_string(),
                    )
                })
            })
            .collect();
        seconds[mi] += started.elapsed().as_secs_f64();
        for (r, list) in requests.iter().zip(got) {
            let mut list = list?;
            dedup_keep_first(&mut list);
            list.truncate(cfg.list_len);
            score_list(&mut accs[mi], catalog, r, &list, cfg, touched, train_users, has_merchants);
            lists[mi].lists.push((r.user, r.at, list));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// The replay windows: (first test event of the window, end, request
/// time, fit time).
fn replay_windows(
    split: &SplitLog,
    cfg: &EvalConfig,
) -> Vec<(usize, usize, Option<Timestamp>, Timestamp)> {
    let mut windows: Vec<(usize, usize, Option<Timestamp>, Timestamp)> = Vec::new();
    match split.at {
        Some(t) => {
            let end = split.test.last().map_or(t, |e| e.at).saturating_add(1);
            let steps = cfg.replay_steps as i128;
            // i128: the window arithmetic cannot overflow whatever the log's times.
            let at_step = |s: i128| -> Timestamp {
                let span = i128::from(end) - i128::from(t);
                (i128::from(t) + span * s / steps) as Timestamp
            };
            let mut lo = 0;
            for s in 0..steps {
                let start = at_step(s);
                let stop = at_step(s + 1);
                let hi = split.test.partition_point(|e| e.at < stop);
                windows.push((lo, hi, Some(start), start));
                lo = hi;
            }
        }
        None => {
            // Per-user splits ask everyone at the end of the history: the
            // methods are fitted on all of it (other users' later events
            // included), and a time-aware method asked at an earlier time
            // would read a snapshot from its future.
            let fit_at = split.train.last().map_or(0, |e| e.at).saturating_add(1);
            windows.push((0, split.test.len(), Some(fit_at), fit_at));
        }
    }

    windows
}

/// Each method's metrics from its accumulated sums.
fn summarize(
    names: &[String],
    accs: Vec<Accumulator>,
    seconds: &[f64],
    cfg: &EvalConfig,
    catalog: &Catalog,
    has_merchants: bool,
    gmv: bool,
) -> Vec<MethodReport> {
    names
        .iter()
        .zip(accs)
        .zip(seconds)
        .map(|((name, acc), &secs)| {
            let n = acc.requests.max(1) as f64;
            let mut metrics: BTreeMap<String, f64> = acc
                .sums
                .iter()
                .filter(|(k, _)| gmv || !k.starts_with("gmv"))
                .filter(|(k, _)| !k.starts_with("ild"))
                .map(|(k, v)| (k.clone(), v / n))
                .collect();
            for (i, &k) in cfg.ks.iter().enumerate() {
                if acc.ild_n[i] > 0 {
                    metrics.insert(
                        format!("ild@{k}"),
                        acc.sums[&format!("ild@{k}")] / acc.ild_n[i] as f64,
                    );
                }
                let shown = acc.exposure[i].iter().filter(|&&c| c > 0).count();
                metrics.insert(format!("coverage@{k}"), shown as f64 / catalog.len() as f64);
                metrics.insert(format!("gini@{k}"), metrics::gini(&acc.exposure[i]));
                if has_merchants {
                    metrics.insert(
                        format!("gini_merchant@{k}"),
                        metrics::gini(&acc.merchant_exposure[i]),
                    );
                }
            }
            MethodReport {
                name: name.clone(),
                metrics,
                ndcg_curve: acc.curve.iter().map(|v| v / n).collect(),
                seconds: secs,
            }
        })
        .collect()
}

fn progress_bar(enabled: bool, len: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} requests (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

fn dedup_keep_first(list: &mut Vec<ProductId>) {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.retain(|p| seen.insert(*p));
}

#[allow(clippy::too_many_arguments)]
fn score_list(
    acc: &mut Accumulator,
    catalog: &Catalog,
    r: &EvalRequest,
    list: &[ProductId],
    cfg: &EvalConfig,
    touched: &[u32],
    train_users: usize,
    has_merchants: bool,
) {
    let rel = &r.relevant;
    let mut add = |name: String, v: f64| *acc.sums.entry(name).or_insert(0.0) += v;
    add("mrr".into(), metrics::reciprocal_rank(list, rel));
    let rows: Vec<Option<crate::ids::ItemIdx>> = list.iter().map(|&p| catalog.row(p)).collect();
    for (i, &k) in cfg.ks.iter().enumerate() {
        add(format!("ndcg@{k}"), metrics::ndcg_at(list, rel, k));
        add(format!("recall@{k}"), metrics::recall_at(list, rel, k));
        add(format!("hit@{k}"), metrics::hit_at(list, rel, k));
        let top = &rows[..k.min(rows.len())];
        let known: Vec<crate::ids::ItemIdx> = top.iter().flatten().copied().collect();
        let nov: f64 = known
            .iter()
            .map(|row| metrics::self_information(touched[row.index()], train_users))
            .sum::<f64>()
            / known.len().max(1) as f64;
        add(format!("novelty@{k}"), nov);
        let cats: Vec<_> = known.iter().map(|row| catalog.categories()[row.index()]).collect();
        if let Some(d) = metrics::intra_list_diversity(&cats) {
            add(format!("ild@{k}"), d);
            acc.ild_n[i] += 1;
        }
        let gmv: f64 = r
            .order_value
            .iter()
            .filter(|(p, _)| list.iter().take(k).any(|q| q == p))
            .map(|o| o.1)
            .sum();
        add(format!("gmv@{k}"), gmv);
        for row in &known {
            acc.exposure[i][row.index()] += 1;
            if has_merchants {
                acc.merchant_exposure[i][catalog.merchant_row_of(*row) as usize] += 1;
            }
        }
    }
    for (i, c) in acc.curve.iter_mut().enumerate() {
        *c += metrics::ndcg_at(list, rel, i + 1);
    }
    acc.requests += 1;
}

/// Counts, per product, the distinct users with a relevant event: the
/// popularity the baselines and novelty use.
pub fn user_counts(events: &[Event], relevance: &Relevance) -> HashMap<ProductId, u32> {
    let mut pairs: Vec<(ProductId, UserId)> =
        events.iter().filter_map(|e| Some((relevance.relevant_product(e)?, e.user))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = HashMap::new();
    for (p, _) in pairs {
        *out.entry(p).or_insert(0) += 1;
    }
    out
}
