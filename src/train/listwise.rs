//! A listwise ranking head: a softmax over each request's candidates
//! (the conditional logit), then a calibrated bias so the head is again a
//! probability the fusion can multiply.

use crate::error::{Error, Result};
use crate::train::logreg::{Standardizer, check_training_data};
use nalgebra::{DMatrix, DVector};

/// Fits a head that ranks within requests.
///
/// `x` holds `n = y.len()` rows of `dim` columns, grouped by request:
/// request `g` is rows `bounds[g]..bounds[g + 1]` (`bounds` starts at 0,
/// rises strictly and ends at `n`). The weights maximize, over requests
/// with a positive, `Σ_i t_i log softmax(w · x)_i` with `t = y / Σ y` (the
/// ListNet / conditional-logit likelihood), with penalty `l2 / 2 · |w|²`
/// on standardized columns, by damped Newton steps. Only differences
/// between a request's own candidates move the weights, so what separates
/// users (how many positives they have, features constant within their
/// list) cannot bend the ranking, as it does in a pointwise fit pooled over
/// users. The softmax has learned the scale; the bias `b` of
/// `P(y = 1) = σ(w · x + b)` is then fitted pointwise over every row, so
/// the head is a probability again (its mean matches the base rate). Only
/// the bias: a pooled fit of the scale too (Platt scaling) would let the
/// confound back in and can flatten the ranking. Returns `dim` weights then
/// the bias, on the original scale, as
/// [`fit_logistic`](crate::train::fit_logistic) does.
///
/// Errors: as `fit_logistic`, and `bounds` that do not partition the rows.
///
/// ```
/// use omnifeed::train::fit_listwise;
/// // Two requests of three candidates; column 0 decides within each.
/// let x = [0.1, 0.9, 0.5, 0.2, 0.8, 0.4];
/// let y = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
/// let w = fit_listwise(&x, &y, &[0, 3, 6], 1, 0.1, 30).unwrap();
/// assert!(w[0] > 0.0);
/// ```
pub fn fit_listwise(
    x: &[f32],
    y: &[f32],
    bounds: &[usize],
    dim: usize,
    l2: f32,
    iterations: usize,
) -> Result<Vec<f32>> {
    let p = Prepared::new(x, y, bounds, dim, l2, iterations)?;
    Ok(p.fit(f64::from(l2), iterations))
}

/// As [`fit_listwise`], with the penalty chosen from `grid` by held-out
/// loss: every fifth request (with a positive) is held out, each `l2` of
/// the grid is fitted on the rest, the one with the lowest listwise loss
/// on the held-out requests wins (the larger on a tie), and the head is
/// refitted on every request with it. Returns the weights (and bias) and
/// the chosen `l2`. With fewer than 5 requests with a positive, the grid's
/// middle value is used without selection. The listwise loss counts
/// requests rather than examples, so how much penalty it needs depends on
/// the log: a fixed one was measured 3% off on one log and right on
/// another.
///
/// Errors: as `fit_listwise`, and an empty grid or a grid value that is
/// not finite and `≥ 0`.
///
/// ```
/// use omnifeed::train::fit_listwise_selected;
/// let mut x = Vec::new();
/// let mut y = Vec::new();
/// let mut bounds = vec![0];
/// for g in 0..20 {
///     for k in 0..5 {
///         x.push(k as f32 + 0.1 * (g % 3) as f32);
///         y.push(if k == 4 { 1.0 } else { 0.0 });
///     }
///     bounds.push(x.len());
/// }
/// let (w, l2) = fit_listwise_selected(&x, &y, &bounds, 1, &[0.1, 1.0, 10.0], 30).unwrap();
/// assert!(w[0] > 0.0 && [0.1, 1.0, 10.0].contains(&l2));
/// ```
pub fn fit_listwise_selected(
    x: &[f32],
    y: &[f32],
    bounds: &[usize],
    dim: usize,
    grid: &[f32],
    iterations: usize,
) -> Result<(Vec<f32>, f32)> {
    if grid.is_empty() || grid.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(Error::invalid_value(
            "l2 grid",
            "fit_listwise_selected",
            format!("{grid:?}: expected one or more finite values >= 0"),
        ));
    }
    let p = Prepared::new(x, y, bounds, dim, grid[0], iterations)?;
    let mut chosen = grid[grid.len() / 2];
    if p.groups.len() >= 5 {
        let (mut held, mut fit) = (Vec::new(), Vec::new());
        for (i, &g) in p.groups.iter().enumerate() {
            if i % 5 == 4 { held.push(g) } else { fit.push(g) }
        }
        let mut best = f64::INFINITY;
        for &l2 in grid {
            let w = newton_listwise(&p.z, y, &fit, dim, f64::from(l2), iterations);
            let loss = listwise_terms(&p.z, y, &held, dim, &w, false).0;
            if loss < best || (loss == best && l2 > chosen) {
                best = loss;
                chosen = l2;
            }
        }
    }
    Ok((p.fit(f64::from(chosen), iterations), chosen))
}

/// Checked, standardized training data and its requests with a positive.
struct Prepared<'a> {
    st: Standardizer,
    z: Vec<f64>,
    y: &'a [f32],
    dim: usize,
    groups: Vec<(usize, usize)>,
}

impl<'a> Prepared<'a> {
    fn new(
        x: &[f32],
        y: &'a [f32],
        bounds: &[usize],
        dim: usize,
        l2: f32,
        iterations: usize,
    ) -> Result<Self> {
        check_training_data("fit_listwise", x, y, dim, l2, iterations)?;
        let n = y.len();
        let partitions = bounds.first() == Some(&0)
            && bounds.last() == Some(&n)
            && bounds.windows(2).all(|w| w[0] < w[1]);
        if !partitions {
            return Err(Error::invalid_value(
                "training data",
                "fit_listwise",
                format!("bounds must rise strictly from 0 to the {n} rows"),
            ));
        }
        let st = Standardizer::fit(x, dim);
        let mut z = vec![0.0f64; n * dim];
        for (row, out) in x.chunks_exact(dim).zip(z.chunks_exact_mut(dim)) {
            st.row(row, out);
        }
        let groups: Vec<(usize, usize)> = bounds
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|&(a, b)| y[a..b].iter().any(|&v| v > 0.0))
            .collect();
        Ok(Prepared { st, z, y, dim, groups })
    }

    /// Fits on every request with a positive with penalty `l2`, calibrates
    /// the bias on every row, and returns the weights on the original scale.
    fn fit(&self, l2: f64, iterations: usize) -> Vec<f32> {
        let w = newton_listwise(&self.z, self.y, &self.groups, self.dim, l2, iterations);
        let s: Vec<f64> = self
            .z
            .chunks_exact(self.dim)
            .map(|zi| zi.iter().zip(w.iter()).map(|(a, b)| a * b).sum())
            .collect();
        self.st.unscale(w.as_slice(), calibrate_bias(&s, self.y))
    }
}

/// The listwise loss, its gradient and Hessian at `w`.
fn listwise_terms(
    z: &[f64],
    y: &[f32],
    groups: &[(usize, usize)],
    dim: usize,
    w: &DVector<f64>,
    with_derivatives: bool,
) -> (f64, DVector<f64>, DMatrix<f64>) {
    let mut loss = 0.0;
    let mut g = DVector::<f64>::zeros(dim);
    let mut h = DMatrix::<f64>::zeros(dim, dim);
    let mut p: Vec<f64> = Vec::new();
    let mut zbar = vec![0.0f64; dim];
    for &(a, b) in groups {
        let rows = &z[a * dim..b * dim];
        p.clear();
        p.extend(
            rows.chunks_exact(dim)
                .map(|zi| zi.iter().zip(w.iter()).map(|(u, v)| u * v).sum::<f64>()),
        );
        let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for v in p.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        let log_total = total.ln() + max;
        let ysum: f64 = y[a..b].iter().map(|&v| f64::from(v)).sum();
        for (k, zi) in rows.chunks_exact(dim).enumerate() {
            let t = f64::from(y[a + k]) / ysum;
            if t > 0.0 {
                let s: f64 = zi.iter().zip(w.iter()).map(|(u, v)| u * v).sum();
                loss -= t * (s - log_total);
            }
            p[k] /= total;
        }
        if !with_derivatives {
            continue;
        }
        zbar.iter_mut().for_each(|v| *v = 0.0);
        for (k, zi) in rows.chunks_exact(dim).enumerate() {
            let t = f64::from(y[a + k]) / ysum;
            for j in 0..dim {
                g[j] += (p[k] - t) * zi[j];
                zbar[j] += p[k] * zi[j];
            }
            for r in 0..dim {
                let pr = p[k] * zi[r];
                for c in r..dim {
                    h[(r, c)] += pr * zi[c];
                }
            }
        }
        for r in 0..dim {
            for c in r..dim {
                h[(r, c)] -= zbar[r] * zbar[c];
            }
        }
    }
    for r in 0..dim {
        for c in 0..r {
            h[(r, c)] = h[(c, r)];
        }
    }
    (loss, g, h)
}

/// Damped Newton on the penalized listwise loss; zeros if no group has a
/// positive.
fn newton_listwise(
    z: &[f64],
    y: &[f32],
    groups: &[(usize, usize)],
    dim: usize,
    l2: f64,
    iterations: usize,
) -> DVector<f64> {
    let penalty = |w: &DVector<f64>| 0.5 * l2 * w.norm_squared();
    let mut w = DVector::<f64>::zeros(dim);
    if groups.is_empty() {
        return w;
    }
    let mut current = listwise_terms(z, y, groups, dim, &w, false).0 + penalty(&w);
    for _ in 0..iterations.max(1) {
        let (_, mut g, mut h) = listwise_terms(z, y, groups, dim, &w, true);
        g += &w * l2;
        for j in 0..dim {
            h[(j, j)] += l2 + 1e-9;
        }
        let Some(ch) = h.cholesky() else { break };
        let step = ch.solve(&g);
        let objective = |trial: &DVector<f64>| {
            listwise_terms(z, y, groups, dim, trial, false).0 + penalty(trial)
        };
        if !crate::train::logreg::damped_step(&mut w, &step, &mut current, objective) {
            break;
        }
    }
    w
}

/// The bias `b` minimizing the log-loss of `σ(s + b)` against `y`, by
/// Newton's method on one variable (the loss is convex in `b`).
fn calibrate_bias(s: &[f64], y: &[f32]) -> f64 {
    let n = s.len() as f64;
    let positives: f64 = y.iter().map(|&v| f64::from(v)).sum();
    let rate = (positives / n).clamp(1e-6, 1.0 - 1e-6);
    let mut b = (rate / (1.0 - rate)).ln() - s.iter().sum::<f64>() / n;
    for _ in 0..100 {
        let (mut g, mut h) = (0.0, 1e-12);
        for &si in s {
            let p = 1.0 / (1.0 + (-(si + b)).exp());
            g += p;
            h += p * (1.0 - p);
        }
        g -= positives;
        let step = (g / h).clamp(-5.0, 5.0);
        b -= step;
        if step.abs() < 1e-9 {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fit_logistic;

    /// Simpson's paradox across users: within every request the positive is
    /// the candidate with the highest column 0, but requests with high
    /// column 0 overall have fewer positives. A pointwise fit pooled over
    /// requests learns column 0 upside down; the listwise fit does not.
    #[test]
    fn listwise_ranks_within_requests_where_pooled_fit_is_confounded() {
        let (mut x, mut y, mut bounds) = (Vec::new(), Vec::new(), vec![0]);
        for g in 0..60 {
            let base = (g % 6) as f32; // the request's level of column 0
            let positives = 6 - (g % 6); // higher level, fewer positives
            for k in 0..12 {
                let v = base + 0.1 * k as f32;
                x.push(v);
                y.push(if k >= 12 - positives { 1.0 } else { 0.0 });
            }
            bounds.push(x.len());
        }
        let pooled = fit_logistic(&x, &y, 1, 0.1, 50).unwrap();
        let listwise = fit_listwise(&x, &y, &bounds, 1, 0.1, 50).unwrap();
        assert!(pooled[0] < 0.0, "pooled {pooled:?}");
        assert!(listwise[0] > 0.0, "listwise {listwise:?}");
        // The calibrated bias keeps it a probability near the base rate.
        let rate = y.iter().sum::<f32>() / y.len() as f32;
        let mean_p =
            x.iter().map(|&v| 1.0 / (1.0 + (-(listwise[0] * v + listwise[1])).exp())).sum::<f32>()
                / x.len() as f32;
        assert!((mean_p - rate).abs() < 0.05, "mean p {mean_p} against rate {rate}");
    }

    /// Column 0 decides, columns 1..6 are noise: the held-out loss prefers
    /// a moderate penalty to none, and on pure noise the largest.
    #[test]
    fn the_penalty_is_chosen_by_held_out_loss() {
        let (mut x, mut y, mut bounds) = (Vec::new(), Vec::new(), vec![0]);
        let mut state = 7u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for _ in 0..60 {
            let best = (noise() * 8.0 + 4.0) as usize % 8;
            for k in 0..8 {
                x.push(if k == best { 1.0 } else { 0.0 } + 0.8 * noise());
                for _ in 1..6 {
                    x.push(noise());
                }
                y.push(if k == best { 1.0 } else { 0.0 });
            }
            bounds.push(y.len());
        }
        let grid = [0.0, 1.0, 10.0, 1e4];
        let (w, l2) = fit_listwise_selected(&x, &y, &bounds, 6, &grid, 30).unwrap();
        assert!(w[0] > 0.0 && l2 < 1e4, "signal kept: {w:?}, l2 {l2}");
        // Shuffle the labels' link to column 0: nothing to learn.
        let flat: Vec<f32> =
            x.iter().enumerate().map(|(i, &v)| if i % 6 == 0 { noise() } else { v }).collect();
        let (_, l2_noise) = fit_listwise_selected(&flat, &y, &bounds, 6, &grid, 30).unwrap();
        assert!(l2_noise >= 10.0, "pure noise chose l2 {l2_noise}");
        assert!(fit_listwise_selected(&x, &y, &bounds, 6, &[], 30).is_err());
        assert!(fit_listwise_selected(&x, &y, &bounds, 6, &[f32::NAN], 30).is_err());
    }

    #[test]
    fn bad_bounds_are_an_error() {
        let x = [0.0, 1.0, 2.0];
        let y = [0.0, 1.0, 0.0];
        assert!(fit_listwise(&x, &y, &[0, 3], 1, 1.0, 10).is_ok());
        for bad in [&[0, 2][..], &[1, 3], &[0, 2, 2, 3], &[]] {
            assert!(fit_listwise(&x, &y, bad, 1, 1.0, 10).is_err(), "{bad:?}");
        }
        assert!(fit_listwise(&x, &[0.0, 2.0, 0.0], &[0, 3], 1, 1.0, 10).is_err());
    }
}
