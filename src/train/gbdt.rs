//! LambdaMART: gradient-boosted regression trees fitted to the lambdas of
//! NDCG (Burges, "From RankNet to LambdaRank to LambdaMART: An Overview",
//! 2010), grown leaf-wise on histograms of binned features as LightGBM
//! grows them (Ke et al., 2017).
//!
//! Written here rather than taken from a crate: of the pure-Rust GBDT
//! crates, `gbdt` has no ranking objective and its trees allocate per
//! prediction, and `forust-ml` / `perpetual` have no listwise objective;
//! `lightgbm` links the C++ library. The trees it grows are
//! [`TreeEnsemble`]s, served by [`TreeScorer`](crate::rank::TreeScorer)
//! like the ones LightGBM or XGBoost trained.
//!
//! The fit:
//! - each feature is cut at up to `bins - 1` quantiles of its values (a
//!   value `x` is in bin `b` when `cut[b-1] < x <= cut[b]`), so a split
//!   "bin <= b" is the serving comparison `x <= cut[b]` exactly;
//! - each round computes, per request, the lambda gradient and its second
//!   derivative of every pair of differently relevant rows with at least
//!   one of them in the current top `ndcg_at`, weighted by the change of
//!   NDCG@`ndcg_at` their swap makes;
//! - a tree grows by splitting, among its leaves, the one whose best split
//!   gains most (`G²/(H+λ)` of the children less the parent's), until
//!   `leaves` or no split gains; a child's histogram is its parent's less
//!   its sibling's;
//! - a leaf is worth `-learning_rate · G / (H + λ)`.
//!
//! The margin of a ranking is then calibrated (Platt scaling on the
//! training rows: `a · margin + b`, with `a > 0` so the order is kept), so
//! `sigmoid(margin)` estimates the chance of a relevant row and the head
//! is comparable in log loss with a logistic one.

use crate::error::{Error, Result};
use crate::rank::TreeEnsemble;
use crate::rank::{Split, TrainedTree};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of [`fit_lambdamart`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtConfig {
    /// Boosting rounds, one tree each (1..=10000). Default 50.
    pub trees: usize,
    /// Leaves per tree at most (2..=1024). Default 7.
    pub leaves: usize,
    /// Shrinkage of each tree (0, 1]. Default 0.05.
    ///
    /// The defaults are small on purpose: boosted from the logistic heads
    /// on the evaluated logs (a few hundred to a few thousand requests),
    /// 100 trees of 15 leaves at 0.1 lost to 50 of 7 at 0.05 on all three
    /// (BENCHMARKS.md, "Trees").
    pub learning_rate: f32,
    /// Rows a leaf holds at least (1..). Default 20.
    pub min_in_leaf: usize,
    /// Bins per feature (2..=256). Default 64.
    pub bins: usize,
    /// L2 penalty λ on leaf values (>= 0). Default 1.
    pub l2: f32,
    /// The NDCG truncation: pairs count when one of them ranks in the top
    /// `ndcg_at` (1..). Default 10.
    pub ndcg_at: usize,
    /// Where [`train_ranker`](crate::train::train_ranker) learns trees:
    /// boost from the learned logistic head's margin (the trees learn what
    /// the head misses, LightGBM's `init_score`) rather than from 0.
    /// Default true.
    pub boost_from_heads: bool,
}

impl Default for GbdtConfig {
    fn default() -> Self {
        GbdtConfig {
            trees: 50,
            leaves: 7,
            learning_rate: 0.05,
            min_in_leaf: 20,
            bins: 64,
            l2: 1.0,
            ndcg_at: 10,
            boost_from_heads: true,
        }
    }
}

impl GbdtConfig {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<()> {
        let ok = (1..=10_000).contains(&self.trees)
            && (2..=1024).contains(&self.leaves)
            && self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0
            && self.min_in_leaf >= 1
            && (2..=256).contains(&self.bins)
            && self.l2.is_finite()
            && self.l2 >= 0.0
            && self.ndcg_at >= 1;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_config(
                "trees",
                "trees 1..=10000, leaves 2..=1024, learning_rate (0, 1], min_in_leaf >= 1, \
                 bins 2..=256, l2 >= 0, ndcg_at >= 1",
            ))
        }
    }
}

/// Fits a LambdaMART ensemble (see the module docs) to `rel`, the graded
/// relevance (>= 0) of each row of `x` (`rows × dim`, row-major); request
/// `g` is rows `bounds[g]..bounds[g + 1]`. Its margin is Platt-calibrated
/// to the chance that a row is relevant (`rel > 0`).
///
/// Errors: shapes that do not agree, a value that is NaN or infinite, a
/// negative relevance, bounds that do not cover the rows in order, or no
/// request with both a relevant and an irrelevant row
/// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
///
/// ```
/// use omnifeed::train::{GbdtConfig, fit_lambdamart};
/// // 40 requests of 10 rows; column 0 decides relevance, column 1 is noise.
/// let (mut x, mut rel, mut bounds) = (Vec::new(), Vec::new(), vec![0]);
/// for g in 0..40 {
///     for i in 0..10 {
///         let a = ((g * 7 + i * 3) % 10) as f32;
///         x.extend_from_slice(&[a, ((g + i) % 4) as f32]);
///         rel.push(if a >= 8.0 { 1.0 } else { 0.0 });
///     }
///     bounds.push(rel.len());
/// }
/// let cfg = GbdtConfig { trees: 20, min_in_leaf: 5, ..GbdtConfig::default() };
/// let model = fit_lambdamart(&x, &rel, &bounds, 2, &cfg)?;
/// assert!(model.predict(&[9.0, 0.0])? > model.predict(&[2.0, 0.0])?);
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub fn fit_lambdamart(
    x: &[f32],
    rel: &[f32],
    bounds: &[usize],
    dim: usize,
    cfg: &GbdtConfig,
) -> Result<TreeEnsemble> {
    Ok(fit_holding(x, rel, bounds, dim, None, None, cfg)?.0)
}

/// [`fit_lambdamart`], with two more inputs:
/// - column `hold.0` (past the served features: the position) is fitted
///   like any other but held at `hold.1` in the trees returned: a split on
///   it is replaced by the side the held value takes, and the ensemble
///   reads the first `hold.0` columns only;
/// - `init`, a margin per row the trees boost from (another model's:
///   LightGBM's `init_score`). The calibrated margin is then
///   `a · (init + trees) + b`: the ensemble returned holds `a · trees + b`
///   and `a` is returned beside it, to scale the other model's margin by.
pub(crate) fn fit_holding(
    x: &[f32],
    rel: &[f32],
    bounds: &[usize],
    dim: usize,
    hold: Option<(usize, f32)>,
    init: Option<&[f64]>,
    cfg: &GbdtConfig,
) -> Result<(TreeEnsemble, f64)> {
    cfg.validate()?;
    let n = rel.len();
    let bad = |why: &str| Error::invalid_value("lambdamart", "fit", why.to_string());
    if dim == 0 || x.len() != n * dim {
        return Err(bad("x is not rows × dim"));
    }
    if x.iter().any(|v| !v.is_finite()) || rel.iter().any(|r| !r.is_finite() || *r < 0.0) {
        return Err(bad("a value is NaN or infinite, or a relevance is negative"));
    }
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&n)
        || bounds.windows(2).any(|w| w[0] > w[1])
    {
        return Err(bad("bounds do not cover the rows in order"));
    }
    if hold.is_some_and(|(c, v)| c >= dim || !v.is_finite()) {
        return Err(bad("the held column is past the rows, or its value not finite"));
    }
    let groups: Vec<(usize, usize)> =
        bounds.windows(2).map(|w| (w[0], w[1])).filter(|(a, b)| b > a).collect();
    let informative = groups.iter().any(|&(a, b)| {
        let r = &rel[a..b];
        r.iter().any(|&v| v > 0.0) && r.iter().any(|&v| v != r[0])
    });
    if !informative {
        return Err(bad("no request has rows of different relevance"));
    }
    if init.is_some_and(|m| m.len() != n || m.iter().any(|v| !v.is_finite())) {
        return Err(bad("the initial margin is not one finite value per row"));
    }
    let binned = Binned::new(x, n, dim, cfg.bins);
    let mut score = init.map_or_else(|| vec![0.0f64; n], <[f64]>::to_vec);
    let mut grad = vec![0.0f64; n];
    let mut hess = vec![0.0f64; n];
    let mut trees = Vec::with_capacity(cfg.trees);
    let mut grower = Grower::new(&binned, cfg);
    for _ in 0..cfg.trees {
        lambdas(&groups, rel, &score, cfg.ndcg_at, &mut grad, &mut hess);
        let tree = grower.grow(&grad, &hess);
        if tree.leaves.len() < 2 {
            break;
        }
        for (leaf, rows) in tree.leaves.iter().zip(&tree.leaf_rows) {
            for &r in rows {
                score[r as usize] += leaf;
            }
        }
        trees.push(tree.to_trained(&binned, hold));
    }
    let (a, b) = platt(&score, rel);
    let features = hold.map_or(dim, |(c, _)| c);
    let mut e = TreeEnsemble::from_trained(&trees, 0.0, features)?;
    e.rescale(a, b);
    Ok((e, a))
}

/// Columns cut into bins: `bin[f * rows + r]`, and each column's cuts.
struct Binned {
    bin: Vec<u8>,
    cuts: Vec<Vec<f32>>,
    rows: usize,
}

impl Binned {
    fn new(x: &[f32], rows: usize, dim: usize, bins: usize) -> Binned {
        let cuts: Vec<Vec<f32>> = (0..dim)
            .into_par_iter()
            .map(|f| {
                // Quantiles of at most 50,000 evenly spaced rows.
                let step = rows.div_ceil(50_000).max(1);
                let mut v: Vec<f32> = (0..rows).step_by(step).map(|r| x[r * dim + f]).collect();
                v.sort_unstable_by(f32::total_cmp);
                let mut cuts: Vec<f32> = Vec::with_capacity(bins);
                let mut distinct = v.clone();
                distinct.dedup();
                if distinct.len() <= bins {
                    cuts = distinct;
                } else {
                    for q in 1..bins {
                        let c = v[q * v.len() / bins];
                        if cuts.last() != Some(&c) {
                            cuts.push(c);
                        }
                    }
                }
                // The last cut would hold nothing above it.
                if cuts.last() == v.last() {
                    cuts.pop();
                }
                cuts
            })
            .collect();
        let mut bin = vec![0u8; dim * rows];
        bin.par_chunks_mut(rows.max(1)).enumerate().for_each(|(f, col)| {
            let c = &cuts[f];
            for (r, b) in col.iter_mut().enumerate() {
                *b = c.partition_point(|&t| t < x[r * dim + f]) as u8;
            }
        });
        Binned { bin, cuts, rows }
    }

    fn column(&self, f: usize) -> &[u8] {
        &self.bin[f * self.rows..(f + 1) * self.rows]
    }
}

/// Sets `grad` and `hess` to the LambdaMART gradients of the current
/// `score` (see the module docs); a request without two relevance levels
/// gets zeros.
fn lambdas(
    groups: &[(usize, usize)],
    rel: &[f32],
    score: &[f64],
    at: usize,
    grad: &mut [f64],
    hess: &mut [f64],
) {
    let mut parts: Vec<(&mut [f64], &mut [f64], usize, usize)> = Vec::with_capacity(groups.len());
    let (mut g_rest, mut h_rest) = (grad, hess);
    let mut offset = 0;
    for &(a, b) in groups {
        let (_, g) = std::mem::take(&mut g_rest).split_at_mut(a - offset);
        let (_, h) = std::mem::take(&mut h_rest).split_at_mut(a - offset);
        let (g, g2) = g.split_at_mut(b - a);
        let (h, h2) = h.split_at_mut(b - a);
        parts.push((g, h, a, b));
        g_rest = g2;
        h_rest = h2;
        offset = b;
    }
    g_rest.iter_mut().for_each(|v| *v = 0.0);
    h_rest.iter_mut().for_each(|v| *v = 0.0);
    parts.into_par_iter().for_each_init(Vec::new, |order: &mut Vec<usize>, (g, h, a, b)| {
        g.iter_mut().for_each(|v| *v = 0.0);
        h.iter_mut().for_each(|v| *v = 0.0);
        let (rel, score) = (&rel[a..b], &score[a..b]);
        let gain = |r: f32| f64::from(r).exp2() - 1.0;
        let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
        let mut ideal: Vec<f32> = rel.to_vec();
        ideal.sort_unstable_by(|x, y| y.total_cmp(x));
        let idcg: f64 =
            ideal.iter().take(at).enumerate().map(|(k, &r)| gain(r) * discount(k)).sum();
        if idcg <= 0.0 {
            return;
        }
        order.clear();
        order.extend(0..rel.len());
        order.sort_by(|&i, &j| score[j].total_cmp(&score[i]).then(i.cmp(&j)));
        for (ri, &i) in order.iter().enumerate().take(at) {
            for (rj, &j) in order.iter().enumerate().skip(ri + 1) {
                if rel[i] == rel[j] {
                    continue;
                }
                let (hi, lo) = if rel[i] > rel[j] { (i, j) } else { (j, i) };
                let delta = (gain(rel[hi]) - gain(rel[lo])).abs()
                    * (discount(ri) - discount(rj)).abs()
                    / idcg;
                // The chance the model puts `lo` above `hi`.
                let p = 1.0 / (1.0 + (score[hi] - score[lo]).exp());
                let lambda = p * delta;
                g[hi] -= lambda;
                g[lo] += lambda;
                let w = (p * (1.0 - p)).max(1e-12) * delta;
                h[hi] += w;
                h[lo] += w;
            }
        }
    });
}

/// Gradient, hessian and rows of one bin.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// The best split of a leaf: feature, bin (left takes bins <= it), gain.
#[derive(Debug, Clone, Copy)]
struct Best {
    feature: usize,
    bin: usize,
    gain: f64,
}

/// A leaf while the tree grows: its rows are `order[start..end]`.
struct Open {
    start: usize,
    end: usize,
    hist: Vec<Bin>,
    best: Option<Best>,
    /// Where it hangs: (split index, is the left child), none for the root.
    parent: Option<(usize, bool)>,
}

/// A grown tree: splits on bins, the leaves' values and rows.
struct Grown {
    /// (feature, bin, left child, right child) in LightGBM's child code.
    splits: Vec<(usize, usize, i64, i64)>,
    leaves: Vec<f64>,
    leaf_rows: Vec<Vec<u32>>,
}

impl Grown {
    /// The tree with thresholds in feature values; splits on the held
    /// column replaced by the side its held value takes.
    fn to_trained(&self, binned: &Binned, hold: Option<(usize, f32)>) -> TrainedTree {
        let threshold = |f: usize, b: usize| binned.cuts[f].get(b).copied().unwrap_or(f32::MAX);
        let Some((col, v)) = hold else {
            let splits = self
                .splits
                .iter()
                .map(|&(f, b, l, r)| Split::new(f as u32, threshold(f, b), l, r))
                .collect();
            return TrainedTree { splits, leaf_value: self.leaves.clone() };
        };
        // Rebuild from the root, following the held value through splits
        // on the held column.
        let mut out = TrainedTree::default();
        self.rebuild(if self.splits.is_empty() { -1 } else { 0 }, col, v, &threshold, &mut out);
        out
    }

    /// Appends node `c` (LightGBM's child code) of `self` to `out`, bypassing
    /// splits on `col`, and returns its code in `out`.
    fn rebuild(
        &self,
        c: i64,
        col: usize,
        v: f32,
        threshold: &dyn Fn(usize, usize) -> f32,
        out: &mut TrainedTree,
    ) -> i64 {
        if c < 0 {
            out.leaf_value.push(self.leaves[!c as usize]);
            return !(out.leaf_value.len() as i64 - 1);
        }
        let (f, b, l, r) = self.splits[c as usize];
        let t = threshold(f, b);
        if f == col {
            return self.rebuild(if v <= t { l } else { r }, col, v, threshold, out);
        }
        let k = out.splits.len();
        out.splits.push(Split::new(f as u32, t, 0, 0));
        let left = self.rebuild(l, col, v, threshold, out);
        let right = self.rebuild(r, col, v, threshold, out);
        out.splits[k].left = left;
        out.splits[k].right = right;
        k as i64
    }
}

/// Grows trees on one binned matrix, reusing its row order.
struct Grower<'a> {
    binned: &'a Binned,
    cfg: GbdtConfig,
    order: Vec<u32>,
    /// Bins per feature (cuts + 1), and each feature's offset in a
    /// histogram.
    width: Vec<usize>,
    offset: Vec<usize>,
}

impl<'a> Grower<'a> {
    fn new(binned: &'a Binned, cfg: &GbdtConfig) -> Grower<'a> {
        let width: Vec<usize> = binned.cuts.iter().map(|c| c.len() + 1).collect();
        let mut offset = Vec::with_capacity(width.len() + 1);
        offset.push(0);
        for w in &width {
            offset.push(offset[offset.len() - 1] + w);
        }
        Grower { binned, cfg: *cfg, order: (0..binned.rows as u32).collect(), width, offset }
    }

    fn histogram(&self, rows: &[u32], grad: &[f64], hess: &[f64]) -> Vec<Bin> {
        let total = self.offset[self.width.len()];
        let mut hist = vec![Bin::default(); total];
        let mut parts: Vec<&mut [Bin]> = Vec::with_capacity(self.width.len());
        let mut rest: &mut [Bin] = &mut hist;
        for &w in &self.width {
            let (a, b) = std::mem::take(&mut rest).split_at_mut(w);
            parts.push(a);
            rest = b;
        }
        parts.into_par_iter().enumerate().for_each(|(f, h)| {
            let col = self.binned.column(f);
            for &r in rows {
                let b = &mut h[col[r as usize] as usize];
                b.g += grad[r as usize];
                b.h += hess[r as usize];
                b.n += 1;
            }
        });
        hist
    }

    fn best(&self, hist: &[Bin]) -> Option<Best> {
        let lambda = f64::from(self.cfg.l2);
        let min = self.cfg.min_in_leaf as u32;
        let score = |g: f64, h: f64| g * g / (h + lambda);
        let mut best: Option<Best> = None;
        for (f, &w) in self.width.iter().enumerate() {
            let h = &hist[self.offset[f]..self.offset[f] + w];
            let (g_all, h_all, n_all) =
                h.iter().fold((0.0, 0.0, 0u32), |a, b| (a.0 + b.g, a.1 + b.h, a.2 + b.n));
            let parent = score(g_all, h_all);
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
            for (b, bin) in h.iter().enumerate().take(w - 1) {
                gl += bin.g;
                hl += bin.h;
                nl += bin.n;
                if nl < min {
                    continue;
                }
                if n_all - nl < min {
                    break;
                }
                let gain = score(gl, hl) + score(g_all - gl, h_all - hl) - parent;
                if gain > 1e-12 && best.is_none_or(|x| gain > x.gain) {
                    best = Some(Best { feature: f, bin: b, gain });
                }
            }
        }
        best
    }

    /// Splits `leaf` by `b` (it becomes split number `split`): its rows
    /// partitioned, the smaller child's histogram counted and the larger's
    /// subtracted from the parent's, each child's best split found.
    fn split(
        &mut self,
        leaf: Open,
        b: Best,
        split: usize,
        grad: &[f64],
        hess: &[f64],
    ) -> (Open, Open) {
        let col = self.binned.column(b.feature);
        let rows = &mut self.order[leaf.start..leaf.end];
        // Partition: rows with bin <= b.bin first.
        let mut mid = 0;
        for i in 0..rows.len() {
            if col[rows[i] as usize] as usize <= b.bin {
                rows.swap(i, mid);
                mid += 1;
            }
        }
        let (ls, le, rs, re) = (leaf.start, leaf.start + mid, leaf.start + mid, leaf.end);
        let left_small = le - ls <= re - rs;
        let small = if left_small { (ls, le) } else { (rs, re) };
        let small_hist = self.histogram(&self.order[small.0..small.1], grad, hess);
        let mut large_hist = leaf.hist;
        for (l, s) in large_hist.iter_mut().zip(&small_hist) {
            l.g -= s.g;
            l.h -= s.h;
            l.n -= s.n;
        }
        let (lh, rh) = if left_small { (small_hist, large_hist) } else { (large_hist, small_hist) };
        let (lb, rb) = (self.best(&lh), self.best(&rh));
        (
            Open { start: ls, end: le, hist: lh, best: lb, parent: Some((split, true)) },
            Open { start: rs, end: re, hist: rh, best: rb, parent: Some((split, false)) },
        )
    }

    fn grow(&mut self, grad: &[f64], hess: &[f64]) -> Grown {
        let n = self.order.len();
        let root_hist = self.histogram(&self.order, grad, hess);
        let best = self.best(&root_hist);
        let mut open = vec![Open { start: 0, end: n, hist: root_hist, best, parent: None }];
        let mut splits: Vec<(usize, usize, i64, i64)> = Vec::new();
        while open.len() < self.cfg.leaves {
            let Some((k, b)) = open
                .iter()
                .enumerate()
                .filter_map(|(k, o)| o.best.map(|b| (k, b)))
                .max_by(|x, y| x.1.gain.total_cmp(&y.1.gain))
            else {
                break;
            };
            let leaf = open.swap_remove(k);
            let split = splits.len();
            splits.push((b.feature, b.bin, 0, 0));
            if let Some((p, left)) = leaf.parent {
                if left {
                    splits[p].2 = split as i64;
                } else {
                    splits[p].3 = split as i64;
                }
            }
            let (l, r) = self.split(leaf, b, split, grad, hess);
            open.push(l);
            open.push(r);
        }
        // Leaves in a fixed order (by their first row position) get codes.
        open.sort_by_key(|o| o.start);
        let lambda = f64::from(self.cfg.l2);
        let lr = f64::from(self.cfg.learning_rate);
        let mut leaves = Vec::with_capacity(open.len());
        let mut leaf_rows = Vec::with_capacity(open.len());
        for (i, o) in open.iter().enumerate() {
            let rows = &self.order[o.start..o.end];
            let (g, h) = rows
                .iter()
                .fold((0.0, 0.0), |a, &r| (a.0 + grad[r as usize], a.1 + hess[r as usize]));
            leaves.push(-lr * g / (h + lambda));
            leaf_rows.push(rows.to_vec());
            if let Some((p, left)) = o.parent {
                let code = !(i as i64);
                if left {
                    splits[p].2 = code;
                } else {
                    splits[p].3 = code;
                }
            }
        }
        Grown { splits, leaves, leaf_rows }
    }
}

/// Platt scaling of `margin` to `rel > 0`: `(a, b)` minimizing the log
/// loss of `sigmoid(a · margin + b)` by Newton steps, with `a` kept
/// positive (a margin that does not order the rows gets `a` near 0).
fn platt(margin: &[f64], rel: &[f32]) -> (f64, f64) {
    let n = margin.len().max(1) as f64;
    let pos = rel.iter().filter(|&&r| r > 0.0).count() as f64;
    // Platt's smoothed targets keep the fit finite on separable rows.
    let (t1, t0) = ((pos + 1.0) / (pos + 2.0), 1.0 / (n - pos + 2.0));
    let (mut a, mut b) = (1.0f64, ((pos + 1.0) / (n - pos + 1.0)).ln());
    let loss = |a: f64, b: f64| -> f64 {
        margin
            .iter()
            .zip(rel)
            .map(|(&m, &r)| {
                let z = a * m + b;
                let t = if r > 0.0 { t1 } else { t0 };
                // log(1 + e^z) - t z, stably.
                z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
            })
            .sum()
    };
    let mut current = loss(a, b);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&m, &r) in margin.iter().zip(rel) {
            let p = 1.0 / (1.0 + (-(a * m + b)).exp());
            let t = if r > 0.0 { t1 } else { t0 };
            let d = p - t;
            let w = p * (1.0 - p);
            ga += d * m;
            gb += d;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        // Halve the step until the loss falls.
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-6 {
            let (na, nb) = ((a - step * da).max(1e-6), b - step * db);
            let l = loss(na, nb);
            if l < current {
                (a, b, current) = (na, nb, l);
                improved = true;
                break;
            }
            step *= 0.5;
        }
        if !improved || (da.abs() + db.abs()) < 1e-9 {
            break;
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests where column 0 decides relevance through a threshold and
    /// column 1 through an interaction with column 2 (a logistic model
    /// cannot order both); column 3 is noise.
    fn interaction_data(groups: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let (mut x, mut rel, mut bounds) = (Vec::new(), Vec::new(), vec![0]);
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        for _ in 0..groups {
            for _ in 0..20 {
                let (a, b, c, d) = (next(), next(), next(), next());
                x.extend_from_slice(&[a, b, c, d]);
                let xor = (b > 0.5) != (c > 0.5);
                rel.push(if a > 0.9 {
                    2.0
                } else if xor && a > 0.5 {
                    1.0
                } else {
                    0.0
                });
            }
            bounds.push(rel.len());
        }
        (x, rel, bounds)
    }

    fn ndcg10(model: &TreeEnsemble, x: &[f32], rel: &[f32], bounds: &[usize], dim: usize) -> f64 {
        let mut total = 0.0;
        for w in bounds.windows(2) {
            let mut idx: Vec<usize> = (w[0]..w[1]).collect();
            let s: Vec<f64> =
                idx.iter().map(|&i| model.predict(&x[i * dim..(i + 1) * dim]).unwrap()).collect();
            let mut order: Vec<usize> = (0..idx.len()).collect();
            order.sort_by(|&i, &j| s[j].total_cmp(&s[i]));
            let dcg: f64 = order
                .iter()
                .take(10)
                .enumerate()
                .map(|(k, &i)| (f64::from(rel[idx[i]]).exp2() - 1.0) / ((k + 2) as f64).log2())
                .sum();
            idx.sort_by(|&i, &j| rel[j].total_cmp(&rel[i]));
            let ideal: f64 = idx
                .iter()
                .take(10)
                .enumerate()
                .map(|(k, &i)| (f64::from(rel[i]).exp2() - 1.0) / ((k + 2) as f64).log2())
                .sum();
            total += if ideal > 0.0 { dcg / ideal } else { 1.0 };
        }
        total / (bounds.len() - 1) as f64
    }

    #[test]
    fn learns_an_interaction_and_generalizes() {
        let (x, rel, bounds) = interaction_data(300);
        let (tx, trel, tb) = interaction_data(100);
        let model = fit_lambdamart(&x, &rel, &bounds, 4, &GbdtConfig::default()).unwrap();
        let one = GbdtConfig { trees: 1, leaves: 2, ..GbdtConfig::default() };
        let stump = fit_lambdamart(&x, &rel, &bounds, 4, &one).unwrap();
        let (full, weak) = (ndcg10(&model, &tx, &trel, &tb, 4), ndcg10(&stump, &tx, &trel, &tb, 4));
        // On fresh requests: the boosted trees order the interaction too.
        assert!(full > 0.95 && full > weak + 0.05, "trees {full:.4} stump {weak:.4}");
    }

    #[test]
    fn platt_calibrates_the_margin() {
        // A margin of 2x where P(relevant) = sigmoid(x): a = 1/2, b = 0.
        let mut m = Vec::new();
        let mut rel = Vec::new();
        for i in 0..4000 {
            let x = (i % 80) as f64 / 10.0 - 4.0;
            let p = 1.0 / (1.0 + (-x).exp());
            let k = ((i / 80) as f64 + 0.5) / 50.0;
            m.push(2.0 * x);
            rel.push(if k < p { 1.0 } else { 0.0 });
        }
        let (a, b) = platt(&m, &rel);
        assert!((a - 0.5).abs() < 0.05 && b.abs() < 0.1, "a {a} b {b}");
    }

    #[test]
    fn a_held_column_is_fitted_then_fixed() {
        // Relevance follows column 1 only when column 0 (the "position")
        // is small; the returned trees read column 1 only.
        let (mut x, mut rel, mut bounds) = (Vec::new(), Vec::new(), vec![0]);
        for g in 0..200 {
            for i in 0..10 {
                let pos = i as f32;
                let want = ((g * 3 + i * 7) % 10) as f32 / 10.0;
                x.extend_from_slice(&[want, pos]);
                rel.push(if pos < 5.0 && want > 0.6 { 1.0 } else { 0.0 });
            }
            bounds.push(rel.len());
        }
        let model = fit_holding(&x, &rel, &bounds, 2, Some((1, 0.0)), None, &GbdtConfig::default())
            .unwrap()
            .0;
        assert_eq!(model.features(), 1);
        assert!(model.predict(&[0.9]).unwrap() > model.predict(&[0.2]).unwrap());
    }

    #[test]
    fn bad_input_is_an_error() {
        let cfg = GbdtConfig::default();
        assert!(fit_lambdamart(&[1.0, 2.0], &[1.0], &[0, 1], 1, &cfg).is_err());
        assert!(fit_lambdamart(&[f32::NAN, 1.0], &[1.0, 0.0], &[0, 2], 1, &cfg).is_err());
        assert!(fit_lambdamart(&[0.0, 1.0], &[-1.0, 0.0], &[0, 2], 1, &cfg).is_err());
        assert!(fit_lambdamart(&[0.0, 1.0], &[1.0, 0.0], &[0, 1], 1, &cfg).is_err());
        // No request with two levels.
        assert!(fit_lambdamart(&[0.0, 1.0], &[0.0, 0.0], &[0, 2], 1, &cfg).is_err());
        assert!(GbdtConfig { leaves: 1, ..cfg }.validate().is_err());
        assert!(GbdtConfig { learning_rate: f32::NAN, ..cfg }.validate().is_err());
    }
}
