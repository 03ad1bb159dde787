//! L2-regularized logistic regression by Newton's method, and the ranker's
//! heads learned from a log with it.

use crate::error::{Error, Result};
use crate::features::{F, HEADS, feature_index};
use crate::ids::{ProductId, Timestamp, UserId};
use crate::rank::scorer::{HeadWeights, LogisticScorer};
use crate::recommender::Recommender;
use crate::request::{FeedRequest, Surface};
use crate::signals::Event;
use crate::signals::{Level, Relevance};
use nalgebra::{DMatrix, DVector};
use serde::Serialize;
use std::collections::HashMap;

/// Fits `P(y = 1 | x) = σ(w · x + b)` on `n = y.len()` rows of `x`
/// (row-major, `dim` columns) by Newton's method (IRLS) on standardized
/// columns, with penalty `l2 / 2 · |w|²` (the bias is not penalized), and
/// returns `dim` weights then the bias, on the original scale. A constant
/// column gets weight 0.
///
/// Errors: a shape mismatch, non-finite input, labels outside `{0, 1}`, or
/// no rows ([`ErrorKind::InvalidValue`](crate::error::ErrorKind)).
///
/// ```
/// use omnifeed::train::fit_logistic;
/// // y = 1 exactly when x > 0.5, with some overlap.
/// let x = [0.0, 0.2, 0.4, 0.6, 0.45, 0.55, 0.8, 1.0];
/// let y = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
/// let w = fit_logistic(&x, &y, 1, 0.01, 50).unwrap();
/// assert!(w[0] > 0.0);
/// let boundary = -w[1] / w[0];
/// assert!((boundary - 0.5).abs() < 0.1, "{boundary}");
/// ```
pub fn fit_logistic(
    x: &[f32],
    y: &[f32],
    dim: usize,
    l2: f32,
    iterations: usize,
) -> Result<Vec<f32>> {
    let n = y.len();
    check_training_data("fit_logistic", x, y, dim, l2, iterations)?;
    let st = Standardizer::fit(x, dim);
    let cols = dim + 1;
    let z = |row: &[f32], out: &mut [f64]| st.row(row, out);
    let mut w = DVector::<f64>::zeros(cols);
    // Start the bias at the base rate's log-odds.
    let rate = (y.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
    w[dim] = (rate / (1.0 - rate)).ln();
    let mut zi = vec![0.0f64; cols];
    // The penalized negative log-likelihood, for the step-size safeguard.
    let objective = |w: &DVector<f64>, zi: &mut [f64]| -> f64 {
        let mut loss = 0.0;
        for (row, &yi) in x.chunks_exact(dim).zip(y) {
            z(row, zi);
            let s: f64 = zi.iter().zip(w.iter()).map(|(a, b)| a * b).sum();
            // log(1 + e^s) − y s, computed stably.
            loss += s.max(0.0) + (-s.abs()).exp().ln_1p() - f64::from(yi) * s;
        }
        loss + 0.5 * f64::from(l2) * w.iter().take(dim).map(|v| v * v).sum::<f64>()
    };
    let mut current = objective(&w, &mut zi);
    for _ in 0..iterations.max(1) {
        let mut h = DMatrix::<f64>::zeros(cols, cols);
        let mut g = DVector::<f64>::zeros(cols);
        for (row, &yi) in x.chunks_exact(dim).zip(y) {
            z(row, &mut zi);
            let s: f64 = zi.iter().zip(w.iter()).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-s).exp());
            let r = p - f64::from(yi);
            let v = (p * (1.0 - p)).max(1e-9);
            for a in 0..cols {
                g[a] += r * zi[a];
                let va = v * zi[a];
                for b in a..cols {
                    h[(a, b)] += va * zi[b];
                }
            }
        }
        for a in 0..cols {
            for b in 0..a {
                h[(a, b)] = h[(b, a)];
            }
            if a < dim {
                h[(a, a)] += f64::from(l2);
                g[a] += f64::from(l2) * w[a];
            } else {
                h[(a, a)] += 1e-9;
            }
        }
        let Some(ch) = h.cholesky() else { break };
        let step = ch.solve(&g);
        // Damped Newton: halve the step until the objective does not rise.
        if !damped_step(&mut w, &step, &mut current, |trial| objective(trial, &mut zi)) {
            break;
        }
    }
    Ok(st.unscale(w.as_slice(), w[dim]))
}

/// One damped Newton step: `w - t·step` with `t` halved (at most 30 times)
/// until `objective` does not rise. Moves `w` and `current` there; false
/// when no such `t` exists or the step has become negligible (converged).
pub(crate) fn damped_step(
    w: &mut DVector<f64>,
    step: &DVector<f64>,
    current: &mut f64,
    mut objective: impl FnMut(&DVector<f64>) -> f64,
) -> bool {
    let mut t = 1.0;
    for _ in 0..30 {
        let trial = &*w - step * t;
        let value = objective(&trial);
        if value.is_finite() && value <= *current {
            *w = trial;
            *current = value;
            return step.amax() * t >= 1e-7;
        }
        t *= 0.5;
    }
    false
}

/// Checks the shapes and values [`fit_logistic`] and
/// [`fit_listwise`](crate::train::fit_listwise) take.
pub(crate) fn check_training_data(
    what: &'static str,
    x: &[f32],
    y: &[f32],
    dim: usize,
    l2: f32,
    iterations: usize,
) -> Result<()> {
    let n = y.len();
    let bad = |msg: String| Err(Error::invalid_value("training data", what, msg));
    if n == 0 || dim == 0 || Some(x.len()) != n.checked_mul(dim) {
        return bad(format!("{} values for {n} rows of {dim} columns", x.len()));
    }
    if dim > MAX_LOGISTIC_DIM || iterations > MAX_NEWTON_ITERATIONS {
        return bad(format!(
            "dim {dim} (at most {MAX_LOGISTIC_DIM}) or iterations {iterations} \
             (at most {MAX_NEWTON_ITERATIONS}) too large: the Newton step is dim² per row"
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return bad(format!("row {} column {} is {}", i / dim, i % dim, x[i]));
    }
    if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
        return bad(format!("label {i} is {}, not 0 or 1", y[i]));
    }
    if !(l2.is_finite() && l2 >= 0.0) {
        return bad(format!("l2 is {l2}"));
    }
    Ok(())
}

/// Per-column mean and standard deviation: the fits work on standardized
/// columns and report weights on the original scale.
pub(crate) struct Standardizer {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Standardizer {
    /// Fits on the rows of `x` (`dim` columns).
    pub(crate) fn fit(x: &[f32], dim: usize) -> Self {
        let n = (x.len() / dim.max(1)).max(1);
        let mut mean = vec![0.0f64; dim];
        let mut sd = vec![0.0f64; dim];
        for row in x.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        for row in x.chunks_exact(dim) {
            for ((s, m), &v) in sd.iter_mut().zip(&mean).zip(row) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        // A column whose spread is float noise around a constant (a neutral
        // merchant score everywhere) is constant: standardizing it would blow
        // its noise up into a feature.
        for (s, m) in sd.iter_mut().zip(&mean) {
            *s = (*s / n as f64).sqrt();
            if *s <= 1e-6 * m.abs().max(1.0) {
                *s = 0.0;
            }
        }
        Standardizer { mean, sd }
    }

    /// Writes the standardized `row` into `out[..dim]` (0 for a constant
    /// column) and 1 into `out[dim]` if `out` has room for it.
    #[inline]
    pub(crate) fn row(&self, row: &[f32], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate().take(self.mean.len()) {
            *o = if self.sd[j] > 1e-12 {
                (f64::from(row[j]) - self.mean[j]) / self.sd[j]
            } else {
                0.0
            };
        }
        if let Some(b) = out.get_mut(self.mean.len()) {
            *b = 1.0;
        }
    }

    /// Weights `w` on standardized columns plus `bias`, back on the
    /// original scale: `dim` weights, then the bias.
    pub(crate) fn unscale(&self, w: &[f64], bias: f64) -> Vec<f32> {
        let dim = self.mean.len();
        let mut out = vec![0.0f32; dim + 1];
        let mut b = bias;
        for j in 0..dim {
            if self.sd[j] > 1e-12 {
                out[j] = (w[j] / self.sd[j]) as f32;
                b -= w[j] * self.mean[j] / self.sd[j];
            }
        }
        out[dim] = b as f32;
        out
    }
}

/// The most columns [`fit_logistic`] takes (its Hessian is `dim²`).
pub const MAX_LOGISTIC_DIM: usize = 1_024;
/// The most Newton iterations [`fit_logistic`] and [`train_ranker`] run.
pub const MAX_NEWTON_ITERATIONS: usize = 1_000;

impl RankerTrainConfig {
    /// Checks `candidates` in `1..=`[`MAX_K`](crate::limits::MAX_K),
    /// `iterations` in `1..=1000` and `l2` finite in
    /// `[0, MAX_WEIGHT]`.
    pub fn validate(&self) -> Result<()> {
        let max_k = crate::limits::MAX_K;
        if !(1..=max_k).contains(&self.candidates) {
            return Err(Error::invalid_config(
                "ranker.candidates",
                format!("expected 1..={max_k}, got {}", self.candidates),
            ));
        }
        if !(1..=MAX_NEWTON_ITERATIONS).contains(&self.iterations) {
            return Err(Error::invalid_config(
                "ranker.iterations",
                format!("expected 1..={MAX_NEWTON_ITERATIONS}, got {}", self.iterations),
            ));
        }
        if self.chunk == 0
            || self.negatives_per_positive > 10_000
            || !(0.0..=1.0).contains(&self.hard_share)
        {
            return Err(Error::invalid_config(
                "ranker.chunk",
                "chunk must be at least 1, negatives_per_positive at most 10000, hard_share in [0, 1]",
            ));
        }
        for &v in &self.l2_grid {
            crate::signals::config::non_negative("ranker.l2_grid", v)?;
        }
        if self.l2_grid.len() > 64 {
            return Err(Error::invalid_config("ranker.l2_grid", "at most 64 values"));
        }
        if let Some(t) = &self.trees {
            t.validate()?;
        }
        crate::signals::config::non_negative("ranker.l2", self.l2)
    }
}

/// The candidates of one ranked list kept as training examples: every
/// positive, and `per_positive ×` positives negatives (or
/// `without_positive` if there are none): a `hard_share` of them the
/// highest-ranked, the rest spread evenly over the remaining ranks.
/// `positive[i]` is whether candidate `i` (in rank order) is a positive.
/// Returns kept indices, ascending.
///
/// ```
/// use omnifeed::train::sample_examples;
/// let positive = [false, true, false, false, false, false, false, false];
/// // One hard negative (rank 0), one from the middle of the rest (rank 5).
/// assert_eq!(sample_examples(&positive, 2, 0, 0.5), vec![0, 1, 5]);
/// ```
pub fn sample_examples(
    positive: &[bool],
    per_positive: usize,
    without_positive: usize,
    hard_share: f32,
) -> Vec<usize> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let want = if n_pos == 0 { without_positive } else { n_pos.saturating_mul(per_positive) };
    let negatives: Vec<usize> = (0..positive.len()).filter(|&i| !positive[i]).collect();
    let mut kept: Vec<usize> = (0..positive.len()).filter(|&i| positive[i]).collect();
    if want >= negatives.len() {
        kept.extend_from_slice(&negatives);
    } else {
        let hard = ((want as f32 * hard_share.clamp(0.0, 1.0)) as usize).min(want);
        kept.extend_from_slice(&negatives[..hard]);
        let rest = &negatives[hard..];
        let spread = want - hard;
        for k in 0..spread {
            // The middle of each of `spread` equal strata of the ranks.
            kept.push(rest[(2 * k + 1) * rest.len() / (2 * spread)]);
        }
    }
    kept.sort_unstable();
    kept.dedup();
    kept
}

/// Settings of [`train_ranker`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankerTrainConfig {
    /// Candidates asked for per user (their features are the examples).
    /// Default 400.
    pub candidates: usize,
    /// The surface the requests are made on. Default Feed.
    pub surface: Surface,
    /// L2 penalty on standardized weights, where `l2_grid` is empty or the
    /// objective is pointwise. Default 10: the listwise loss counts
    /// requests (a few hundred in the evaluated logs), not examples, and
    /// needs more penalty than the pointwise fit's 1; 10 was the best or
    /// within 1% of the best of {0.1, 1, 3, 10, 20, 50} on each of four
    /// logs (BENCHMARKS.md).
    pub l2: f32,
    /// If not empty, listwise heads choose their penalty from these by
    /// held-out loss ([`fit_listwise_selected`](crate::train::fit_listwise_selected)).
    /// Default empty: on the evaluated logs a fifth of a few hundred
    /// requests was too noisy a judge (it chose 30 on `data/` and 0.3 on
    /// Taobao and MovieLens, each worse than 10).
    pub l2_grid: Vec<f32>,
    /// Newton iterations at most. Default 30.
    pub iterations: usize,
    /// A head with fewer positive examples keeps its prior weights.
    /// Default 200.
    pub min_positives: usize,
    /// How events map to levels (ratings in particular).
    pub relevance: Relevance,
    /// Negative examples kept per positive of a user (every positive is
    /// kept), drawn from the user's retrieved candidates (so harder than
    /// random catalog products) evenly over the ranked list. Default 30.
    pub negatives_per_positive: usize,
    /// The share of those negatives taken from the top of the ranked list
    /// instead (the hardest). Default 0: measured, a half cost the
    /// synthetic sample 11% of NDCG@10 (BENCHMARKS.md).
    pub hard_share: f32,
    /// Negatives kept for a user with no positive among the candidates.
    /// Default 4.
    pub negatives_without_positive: usize,
    /// Users whose candidates are ranked at once (memory is bounded by
    /// this, not by the number of users). Default 256.
    pub chunk: usize,
    /// What the logistic heads are fitted to. Default
    /// [`Objective::Listwise`].
    pub objective: Objective,
    /// Also learn an MLP ranker (all heads, on the same examples), which
    /// can learn interactions of features the logistic heads cannot.
    /// Default none.
    pub mlp: Option<crate::train::MlpTrainConfig>,
    /// Also learn boosted trees (LambdaMART, [`fit_lambdamart`](crate::train::fit_lambdamart))
    /// for each head with enough positives, on the same examples: each
    /// head's trees rank the request's rows by that head's label, and are
    /// Platt-calibrated to its chance. Default none.
    pub trees: Option<crate::train::GbdtConfig>,
    /// Position bias, for examples of served feeds
    /// ([`train_from_examples`]): the item's position enters the fit as one
    /// more column, `ln(1 + position)`, and is held at the top (0) when
    /// serving, so its weight is dropped from the heads. Users click what
    /// they see first; without the column a head learns the features that
    /// put items on top (the old ranker's) as if they were what users want.
    /// Default true. [`train_ranker`]'s replayed candidates have no served
    /// position and ignore it.
    pub position_feature: bool,
}

impl Default for RankerTrainConfig {
    fn default() -> Self {
        RankerTrainConfig {
            candidates: 400,
            surface: Surface::Feed,
            l2: 10.0,
            l2_grid: Vec::new(),
            iterations: 30,
            min_positives: 200,
            relevance: Relevance::default(),
            negatives_per_positive: 30,
            hard_share: 0.0,
            negatives_without_positive: 4,
            chunk: 256,
            objective: Objective::Listwise,
            mlp: None,
            trees: None,
            position_feature: true,
        }
    }
}

/// The loss the logistic heads of [`train_ranker`] minimize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Log-loss of each candidate on its own, pooled over all requests
    /// ([`fit_logistic`]).
    Pointwise,
    /// A softmax over each request's candidates, then a bias calibrated
    /// ([`fit_listwise`](crate::train::fit_listwise)).
    Listwise,
}

/// What [`train_ranker`] learned from.
#[derive(Debug, Clone, PartialEq)]
pub struct RankerTraining {
    /// The learned heads (a head without enough positives keeps the prior).
    pub scorer: LogisticScorer,
    /// Requests made.
    pub requests: usize,
    /// Examples (candidates with features).
    pub examples: usize,
    /// Positive examples per head (pCTR, pCVR, engagement).
    pub positives: [usize; HEADS],
    /// Whether each head was fitted (else it kept the prior).
    pub fitted: [bool; HEADS],
    /// The L2 penalty each fitted head used (chosen from
    /// [`RankerTrainConfig::l2_grid`] for listwise heads); 0 for a prior.
    pub l2: [f32; HEADS],
    /// The MLP, if [`RankerTrainConfig::mlp`] asked for one.
    pub mlp: Option<crate::rank::MlpScorer>,
    /// The trees, if [`RankerTrainConfig::trees`] asked for them: a head
    /// without enough positives is the learned logistic head.
    pub trees: Option<crate::rank::TreeScorer>,
}

/// Sampled training examples: `x` is `rows × F`, `y` one label column
/// per head.
struct Examples {
    x: Vec<f32>,
    /// Request `g` is rows `bounds[g]..bounds[g + 1]`.
    bounds: Vec<usize>,
    y: [Vec<f32>; HEADS],
    negatives_seen: usize,
    negatives_kept: usize,
    /// Columns after the `F` features in each row of `x` (the position).
    extra: usize,
}

/// Ranks each user's candidates, logs them as exposures, joins them with
/// `labels`, and keeps the sampled ones as examples: the path production's
/// exposures take ([`train_from_examples`]), with a replay's exposures.
///
/// A replay shows each user its candidates once, as if at the start of the
/// label period, and every label event after counts
/// ([`LabelWindows::all`](crate::exposure::LabelWindows::all) over the
/// period, outcomes by level: [`LabelJoiner::add_levels`](crate::exposure::LabelJoiner::add_levels)).
fn collect_examples(
    rec: &Recommender,
    users: &[UserId],
    labels: &[Event],
    at: Timestamp,
    cfg: &RankerTrainConfig,
) -> Result<Examples> {
    use crate::exposure::{ExposureBatch, LabelJoiner, LabelWindows, TrainingExample};
    let first = labels.iter().map(|e| e.at).min().unwrap_or(at);
    let last = labels.iter().map(|e| e.at).max().unwrap_or(at);
    let windows =
        LabelWindows::all((last - first).saturating_add(1).clamp(1, crate::exposure::MAX_WINDOW));
    // Each user's label events, in time order.
    let mut by_user: HashMap<UserId, Vec<Event>> = HashMap::new();
    for e in labels {
        by_user.entry(e.user).or_default().push(e.clone());
    }
    by_user.values_mut().for_each(|v| v.sort_by_key(|e| e.at));
    // Ranked, logged and joined a chunk of users at a time, sampled as they
    // come: memory is the kept examples plus one chunk of feeds.
    let mut ex = Examples {
        x: Vec::new(),
        bounds: vec![0],
        y: [Vec::new(), Vec::new(), Vec::new()],
        negatives_seen: 0,
        negatives_kept: 0,
        extra: 0,
    };
    let mut request_id = 0u64;
    for chunk in users.chunks(cfg.chunk) {
        let reqs: Vec<FeedRequest> = chunk
            .iter()
            .map(|&u| FeedRequest::new(u).k(cfg.candidates).at(at).surface(cfg.surface))
            .collect();
        let mut batch = ExposureBatch::default();
        for (req, feed) in reqs.iter().zip(rec.recommend_batch(&reqs)) {
            batch.add_feed(request_id, req, &feed?);
            request_id += 1;
        }
        for e in &mut batch.exposures {
            e.at = first;
        }
        let mut joiner = LabelJoiner::new(windows)?;
        joiner.add_exposures(&batch);
        let mut events: Vec<Event> =
            chunk.iter().filter_map(|u| by_user.get(u)).flatten().cloned().collect();
        events.sort_by_key(|e| e.at);
        joiner.add_levels(&events, &cfg.relevance);
        joiner.advance(first.saturating_add(windows.click).saturating_add(1));
        let mut rows: Vec<TrainingExample> =
            joiner.take().into_iter().filter(|e| e.complete).collect();
        rows.sort_by_key(|e| (e.request_id, e.position));
        for list in rows.chunk_by(|a, b| a.request_id == b.request_id) {
            keep_sampled(list, cfg, &mut ex);
        }
    }
    Ok(ex)
}

/// One head's weights (and bias) by `cfg.objective`, with the penalty it
/// used.
fn fit_head(
    x: &[f32],
    y: &[f32],
    bounds: &[usize],
    dim: usize,
    cfg: &RankerTrainConfig,
) -> Result<(Vec<f32>, f32)> {
    match cfg.objective {
        Objective::Pointwise => Ok((fit_logistic(x, y, dim, cfg.l2, cfg.iterations)?, cfg.l2)),
        Objective::Listwise if cfg.l2_grid.is_empty() => {
            Ok((crate::train::fit_listwise(x, y, bounds, dim, cfg.l2, cfg.iterations)?, cfg.l2))
        }
        Objective::Listwise => {
            crate::train::fit_listwise_selected(x, y, bounds, dim, &cfg.l2_grid, cfg.iterations)
        }
    }
}

/// Learns the ranker's three logistic heads from a log.
///
/// `rec` must serve signals built from the events before the labels;
/// `labels` are what users did next (the test side of a split of the
/// training log), and the requests are made at `at`. Every user with a labelled product event
/// gets one request at `at` for `candidates` items: the retrieved and
/// scored candidates, with their features as the ranking stage sees them,
/// are the examples (impressions, where the log has none). A candidate's
/// labels come from the user's strongest later event on it: pCTR learns
/// "at least a click", engagement "at least a like/favourite/cart", pCVR
/// "an order" (or a positive rating).
///
/// Errors: no request could be made (no labelled user), or a request
/// failed.
pub fn train_ranker(
    rec: &Recommender,
    labels: &[Event],
    at: Timestamp,
    cfg: &RankerTrainConfig,
) -> Result<RankerTraining> {
    cfg.validate()?;
    let best = best_levels(labels, cfg);
    let mut users: Vec<UserId> = best.keys().map(|k| k.0).collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Err(Error::invalid_value(
            "labels",
            "train_ranker",
            "no labelled product event to learn from",
        ));
    }
    let examples = collect_examples(rec, &users, labels, at, cfg)?;
    fit_heads(examples, users.len(), cfg)
}

/// Each head's mean log loss under `scorer` on the examples `labels` make
/// (collected as [`train_ranker`] collects them: the same requests,
/// candidates and sampled negatives), so two scorers compare on one set.
///
/// Errors: as [`train_ranker`].
pub fn head_log_loss(
    rec: &Recommender,
    labels: &[Event],
    at: Timestamp,
    cfg: &RankerTrainConfig,
    scorers: &[&dyn crate::stage::Scorer],
) -> Result<Vec<[f64; HEADS]>> {
    cfg.validate()?;
    let best = best_levels(labels, cfg);
    let mut users: Vec<UserId> = best.keys().map(|k| k.0).collect();
    users.sort_unstable();
    users.dedup();
    let ex = collect_examples(rec, &users, labels, at, cfg)?;
    let n = ex.y[0].len().max(1) as f64;
    let rows = crate::features::FeatureMatrix::from_rows(&ex.x)?;
    let mut p = vec![0.0f32; ex.y[0].len() * HEADS];
    let mut out = Vec::with_capacity(scorers.len());
    for s in scorers {
        // The heads as serving computes them.
        s.score(&rows, &mut p);
        out.push(std::array::from_fn(|h| {
            let total: f64 = p
                .chunks_exact(HEADS)
                .zip(&ex.y[h])
                .map(|(ps, &y)| {
                    let p = f64::from(ps[h]).clamp(1e-7, 1.0 - 1e-7);
                    if y > 0.5 { -p.ln() } else { -(1.0 - p).ln() }
                })
                .sum();
            total / n
        }));
    }
    Ok(out)
}

/// Each (user, product)'s strongest labelled event level.
fn best_levels(labels: &[Event], cfg: &RankerTrainConfig) -> HashMap<(UserId, ProductId), Level> {
    let mut best: HashMap<(UserId, ProductId), Level> = HashMap::new();
    for e in labels {
        if let (crate::signals::Target::Product(p), Some(level)) =
            (e.target, cfg.relevance.level(&e.kind))
        {
            let l = best.entry((e.user, p)).or_insert(level);
            *l = (*l).max(level);
        }
    }
    best
}

/// Learns the ranker's heads from served exposures joined with what users
/// did next ([`TrainingExample`](crate::exposure::TrainingExample)s from
/// [`ShopWriter::take_examples`](crate::live::ShopWriter::take_examples) or
/// a [`LabelJoiner`](crate::exposure::LabelJoiner)): the features as they
/// were served, one list per request. Production's path to the same fit as
/// [`train_ranker`]'s: pCTR learns "clicked, carted or ordered", engagement
/// "carted or ordered", pCVR "ordered and not refunded". The position an
/// item was served at is a training column held at the top when serving
/// ([`RankerTrainConfig::position_feature`]). Only complete
/// examples (every window closed) are used; of rows repeated for one
/// `(request_id, position)` the last counts.
///
/// Errors: an invalid config; no complete example; examples whose feature
/// columns are not this build's schema (a model trained on another
/// schema's columns would read the wrong ones).
pub fn train_from_examples(
    examples: &[crate::exposure::TrainingExample],
    cfg: &RankerTrainConfig,
) -> Result<RankerTraining> {
    use crate::exposure::Label;
    cfg.validate()?;
    let mut last: HashMap<(u64, u32), &crate::exposure::TrainingExample> = HashMap::new();
    for e in examples.iter().filter(|e| e.complete) {
        last.insert((e.request_id, e.position), e);
    }
    let mut rows: Vec<&crate::exposure::TrainingExample> = last.into_values().collect();
    if rows.is_empty() {
        return Err(Error::invalid_value(
            "examples",
            "train_from_examples",
            "no complete example (every label window closed) to learn from",
        ));
    }
    if let Some(bad) = rows.iter().find(|e| !e.columns.is_current_schema()) {
        return Err(Error::invalid_value(
            "examples",
            format!("request {}", bad.request_id),
            "its feature columns are not this build's schema",
        ));
    }
    rows.sort_by_key(|e| (e.request_id, e.position));
    let extra = usize::from(cfg.position_feature);
    let mut ex = Examples {
        x: Vec::with_capacity(rows.len() * (F + extra)),
        bounds: vec![0],
        y: std::array::from_fn(|_| Vec::with_capacity(rows.len())),
        negatives_seen: 0,
        negatives_kept: 0,
        extra,
    };
    let yes = |l: Label| l == Label::Yes;
    for (i, e) in rows.iter().enumerate() {
        if i > 0 && rows[i - 1].request_id != e.request_id {
            ex.bounds.push(i);
        }
        ex.x.extend_from_slice(&e.features);
        if extra > 0 {
            ex.x.push((1.0 + e.position as f32).ln());
        }
        let [click, cart, order, refund] = e.labels.map(yes);
        ex.y[0].push(f32::from(u8::from(click || cart || order)));
        ex.y[1].push(f32::from(u8::from(order && !refund)));
        ex.y[2].push(f32::from(u8::from(cart || order)));
    }
    ex.bounds.push(rows.len());
    let requests = ex.bounds.len() - 1;
    fit_heads(ex, requests, cfg)
}

/// Fits each head with enough positives on `examples` (the others keep
/// the prior), and the MLP if asked.
fn fit_heads(
    examples: Examples,
    requests: usize,
    cfg: &RankerTrainConfig,
) -> Result<RankerTraining> {
    let Examples { x, bounds, y, negatives_seen, negatives_kept, extra } = examples;
    let dim = F + extra;
    // Negatives were subsampled at rate r: the fitted log-odds are too high
    // by -ln r; the bias is corrected so the heads stay calibrated.
    let bias_shift = if negatives_kept > 0 && negatives_seen > negatives_kept {
        (negatives_kept as f32 / negatives_seen as f32).ln()
    } else {
        0.0
    };
    let examples = y[0].len();
    let prior = LogisticScorer::from_weights(&HeadWeights::default())?;
    let mut w = Vec::with_capacity(HEADS * (F + 1));
    let mut positives = [0; HEADS];
    let mut fitted = [false; HEADS];
    let mut l2 = [0.0f32; HEADS];
    let mut full_heads: [Vec<f32>; HEADS] = Default::default();
    for h in 0..HEADS {
        positives[h] = y[h].iter().filter(|&&v| v > 0.0).count();
        if examples > 0 && positives[h] >= cfg.min_positives && positives[h] < examples {
            let (mut head, penalty) = fit_head(&x, &y[h], &bounds, dim, cfg)?;
            if cfg.trees.is_some() {
                full_heads[h] = head.clone();
            }
            // Columns past the features (the position) are held at 0 when
            // serving: their weights go.
            head.drain(F..dim);
            l2[h] = penalty;
            if let Some(b) = head.last_mut() {
                *b += bias_shift;
            }
            w.extend(head);
            fitted[h] = true;
        } else {
            w.extend_from_slice(prior.head(h));
        }
    }
    let x_trees = if cfg.trees.is_some() { x.clone() } else { Vec::new() };
    let mlp = match &cfg.mlp {
        Some(mcfg) if examples > 0 => {
            let features: Vec<f32> = if extra == 0 {
                x
            } else {
                x.chunks_exact(dim).flat_map(|r| r[..F].iter().copied()).collect()
            };
            let mut m = crate::train::fit_mlp(&features, &y, mcfg)?;
            m.shift_output_bias(bias_shift);
            Some(m)
        }
        _ => None,
    };
    let scorer = LogisticScorer::from_matrix(w)?;
    let trees = match &cfg.trees {
        Some(tcfg) if fitted.iter().any(|&f| f) => {
            let fit = TreeFit { x: &x_trees, y: &y, bounds: &bounds, dim, extra, bias_shift };
            Some(fit_tree_heads(&fit, fitted, &full_heads, &scorer, tcfg)?)
        }
        _ => None,
    };
    Ok(RankerTraining { mlp, trees, scorer, requests, examples, positives, fitted, l2 })
}

/// The examples trees are fitted on (see [`fit_tree_heads`]).
struct TreeFit<'a> {
    x: &'a [f32],
    y: &'a [Vec<f32>; HEADS],
    bounds: &'a [usize],
    dim: usize,
    /// Columns past the features (the position, held at 0 when serving).
    extra: usize,
    /// The sampling correction of the margins.
    bias_shift: f32,
}

/// LambdaMART trees for each fitted head, boosted from its logistic head
/// (`full_heads[h]`, before its position weight was dropped and its bias
/// shifted) if `tcfg` says so, over `scorer` for the rest.
fn fit_tree_heads(
    fit: &TreeFit<'_>,
    fitted: [bool; HEADS],
    full_heads: &[Vec<f32>; HEADS],
    scorer: &LogisticScorer,
    tcfg: &crate::train::GbdtConfig,
) -> Result<crate::rank::TreeScorer> {
    let dim = fit.dim;
    // The position column, if any, is held at the top (ln 1 = 0).
    let hold = (fit.extra > 0).then_some((F, 0.0));
    let mut heads: [Option<crate::rank::TreeEnsemble>; HEADS] = [None, None, None];
    let mut over = [0.0f32; HEADS];
    for h in (0..HEADS).filter(|&h| fitted[h]) {
        // The head's margin on the training rows (the position's weight
        // included), before the sampling shift.
        let init: Option<Vec<f64>> = tcfg.boost_from_heads.then(|| {
            let w = &full_heads[h];
            fit.x
                .chunks_exact(dim)
                .map(|r| {
                    let dot: f32 = r.iter().zip(w).map(|(a, b)| a * b).sum();
                    f64::from(dot + w[dim])
                })
                .collect()
        });
        let y = &fit.y[h];
        let (mut t, a) =
            crate::train::fit_holding(fit.x, y, fit.bounds, dim, hold, init.as_deref(), tcfg)?;
        // Serving: a · (head margin + trees) + b + shift, where the served
        // head's margin already holds the shift.
        let scale = if init.is_some() { a } else { 0.0 };
        t.rescale(1.0, f64::from(fit.bias_shift) * (1.0 - scale));
        over[h] = scale as f32;
        heads[h] = Some(t);
    }
    crate::rank::TreeScorer::boosted(heads, over, scorer.clone())
}

/// Keeps the sampled rows of one request's joined examples (in position
/// order) in `ex`.
fn keep_sampled(
    list: &[crate::exposure::TrainingExample],
    cfg: &RankerTrainConfig,
    ex: &mut Examples,
) {
    use crate::exposure::{Label, TrainingExample};
    let yes = |e: &TrainingExample, o: usize| e.labels[o] == Label::Yes;
    let positive: Vec<bool> = list.iter().map(|e| yes(e, 0)).collect();
    let kept = sample_examples(
        &positive,
        cfg.negatives_per_positive,
        cfg.negatives_without_positive,
        cfg.hard_share,
    );
    ex.negatives_seen += positive.iter().filter(|p| !**p).count();
    ex.negatives_kept += kept.iter().filter(|&&i| !positive[i]).count();
    for i in kept {
        let e = &list[i];
        if e.columns.is_current_schema() {
            ex.x.extend_from_slice(&e.features);
        } else {
            // A feed whose columns are not the schema's (a custom stage's):
            // each value where its name says.
            let mut row = [0.0f32; F];
            for (name, v) in e.columns.features.iter().zip(&e.features) {
                if let Some(c) = feature_index(name) {
                    row[c] = *v;
                }
            }
            ex.x.extend_from_slice(&row);
        }
        // pCTR: any level; pCVR: an order; engagement: a cart or more.
        ex.y[0].push(f32::from(u8::from(yes(e, 0))));
        ex.y[1].push(f32::from(u8::from(yes(e, 2))));
        ex.y[2].push(f32::from(u8::from(yes(e, 1))));
    }
    if ex.y[0].len() > ex.bounds[ex.bounds.len() - 1] {
        ex.bounds.push(ex.y[0].len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sampling_keeps_every_positive_and_bounds_negatives(
            positive in prop::collection::vec(prop::bool::weighted(0.05), 0..500),
            per in 0usize..20,
            without in 0usize..10,
            hard in 0.0f32..=1.0,
        ) {
            let kept = sample_examples(&positive, per, without, hard);
            let n_pos = positive.iter().filter(|&&p| p).count();
            for (i, &p) in positive.iter().enumerate() {
                if p {
                    prop_assert!(kept.binary_search(&i).is_ok(), "positive {i} dropped");
                }
            }
            let negs = kept.iter().filter(|&&i| !positive[i]).count();
            let bound = if n_pos == 0 { without } else { n_pos * per };
            let available = positive.len() - n_pos;
            prop_assert_eq!(negs, bound.min(available));
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]));
            // The hard share of the kept negatives are the first ranked.
            let n_hard = ((negs as f32 * hard) as usize).min(negs);
            let first_negs: Vec<usize> = (0..positive.len()).filter(|&i| !positive[i]).take(n_hard).collect();
            prop_assert!(first_negs.iter().all(|i| kept.binary_search(i).is_ok()));
        }
    }

    #[test]
    fn separable_direction_and_constant_columns() {
        // Column 0 decides, column 1 is constant, column 2 is noise.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let a = (i % 20) as f32 / 20.0;
            let noise = ((i * 7919) % 13) as f32 / 13.0;
            x.extend_from_slice(&[a, 3.0, noise]);
            y.push(if a + 0.1 * noise > 0.55 { 1.0 } else { 0.0 });
        }
        let w = fit_logistic(&x, &y, 3, 0.1, 50).unwrap();
        assert!(w[0] > 5.0, "{w:?}");
        assert_eq!(w[1], 0.0);
        // Predictions agree with the labels on most rows.
        let right = x
            .chunks_exact(3)
            .zip(&y)
            .filter(|&(r, &t)| {
                let s = w[3] + w[0] * r[0] + w[1] * r[1] + w[2] * r[2];
                (s > 0.0) == (t > 0.5)
            })
            .count();
        assert!(right >= 190, "{right}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(fit_logistic(&[], &[], 1, 1.0, 10).is_err());
        assert!(fit_logistic(&[1.0, 2.0], &[1.0], 1, 1.0, 10).is_err());
        assert!(fit_logistic(&[f32::NAN], &[1.0], 1, 1.0, 10).is_err());
        assert!(fit_logistic(&[1.0], &[0.5], 1, 1.0, 10).is_err());
    }
}
