//! Implicit-feedback matrix factorization by alternating least squares
//! (Hu, Koren & Volinsky 2008).
//!
//! Every (user, product) pair the log touches gets a preference of 1 and a
//! confidence `c = 1 + alpha · w`, where `w` sums the pair's event weights
//! ([`EngagementWeights`]: a click 1, a cart 4, an order 8, a rating per
//! star above neutral, ...); every other pair has preference 0 and
//! confidence 1. ALS alternates exact solves: with item factors `Y` fixed,
//! user `u`'s factor is
//!
//! `x_u = (YᵀY + Σ_{i∈I(u)} (c_ui − 1) y_i y_iᵀ + λ I)⁻¹ Σ_{i∈I(u)} c_ui y_i`,
//!
//! and the same for items with users fixed. `YᵀY` is shared by all rows of
//! a half-step, so each row costs `O(|I(u)| d² + d³)`: the small `d × d`
//! systems are solved by Cholesky in `nalgebra`. Rows are solved in
//! parallel; each row's solve depends only on the other side, so the result
//! is the same for any thread count, and the initialisation is seeded.

use crate::error::{Error, Result};
use crate::ids::{ProductId, UserId};
use crate::signals::{EngagementWeights, Event, Target};
use nalgebra::{DMatrix, DVector};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Settings of [`fit_als`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsConfig {
    /// Factor dimension. Default 32.
    pub factors: usize,
    /// Alternations (each solves users, then items). Default 15.
    pub iterations: usize,
    /// L2 regularization `λ`. Default 0.1.
    pub regularization: f32,
    /// Confidence slope `alpha`. Default 10.
    pub alpha: f32,
    /// Event weights (the signal pipeline's engagement weights by default).
    pub weights: EngagementWeights,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        AlsConfig {
            factors: 32,
            iterations: 15,
            regularization: 0.1,
            alpha: 10.0,
            weights: EngagementWeights::default(),
            seed: 0x0A15,
        }
    }
}

/// The largest [`AlsConfig::factors`].
pub const MAX_FACTORS: usize = 1_024;
/// The largest [`AlsConfig::iterations`].
pub const MAX_ITERATIONS: usize = 1_000;

impl AlsConfig {
    /// Checks every field: `factors` in `1..=`[`MAX_FACTORS`], `iterations`
    /// in `1..=`[`MAX_ITERATIONS`], `regularization` and `alpha` finite in
    /// `[0, MAX_WEIGHT]`, valid weights.
    pub fn validate(&self) -> Result<()> {
        for (field, v, hi) in [
            ("als.factors", self.factors, MAX_FACTORS),
            ("als.iterations", self.iterations, MAX_ITERATIONS),
        ] {
            if !(1..=hi).contains(&v) {
                return Err(Error::invalid_config(field, format!("expected 1..={hi}, got {v}")));
            }
        }
        crate::signals::config::non_negative("als.regularization", self.regularization)?;
        crate::signals::config::non_negative("als.alpha", self.alpha)?;
        self.weights.validate()
    }
}

/// User and product factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    dim: usize,
    users: Vec<UserId>,
    user_rows: HashMap<UserId, usize>,
    user_vecs: Vec<f32>,
    items: Vec<ProductId>,
    item_rows: HashMap<ProductId, usize>,
    item_vecs: Vec<f32>,
}

impl Factors {
    /// The factor dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Users with a factor, in row order.
    pub fn users(&self) -> &[UserId] {
        &self.users
    }

    /// Products with a factor, in row order.
    pub fn items(&self) -> &[ProductId] {
        &self.items
    }

    /// A user's factor.
    pub fn user_vector(&self, user: UserId) -> Option<&[f32]> {
        let r = *self.user_rows.get(&user)?;
        Some(&self.user_vecs[r * self.dim..(r + 1) * self.dim])
    }

    /// A product's factor.
    pub fn item_vector(&self, product: ProductId) -> Option<&[f32]> {
        let r = *self.item_rows.get(&product)?;
        Some(&self.item_vecs[r * self.dim..(r + 1) * self.dim])
    }

    /// All product factors, row-major in [`items`](Self::items) order.
    pub fn item_matrix(&self) -> &[f32] {
        &self.item_vecs
    }

    /// All user factors, row-major in [`users`](Self::users) order.
    pub fn user_matrix(&self) -> &[f32] {
        &self.user_vecs
    }
}

/// Observations of one row: `(other row, confidence − 1)`, the `−1` folded
/// in because `YᵀY` already counts every other row once.
type Obs = Vec<(u32, f32)>;

/// Fits implicit ALS on the product events of `events` (other targets and
/// zero-weight kinds, such as impressions, are ignored).
///
/// Errors: a config outside [`AlsConfig::validate`]'s bounds
/// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)), or no
/// weighted product event ([`ErrorKind::InvalidValue`](crate::error::ErrorKind)).
/// Events whose value is NaN, infinite, negative or above
/// [`MAX_EVENT_VALUE`](crate::limits::MAX_EVENT_VALUE) are skipped.
///
/// ```
/// use omnifeed::train::{AlsConfig, fit_als};
/// use omnifeed::{Event, EventKind, ProductId, Target, UserId};
/// let click = |u, p| Event::new(0, UserId(u), Target::Product(ProductId(p)), EventKind::Click);
/// // Two tastes: users 1-3 click 10 and 11, users 4-6 click 20 and 21.
/// let mut log = Vec::new();
/// for u in 1..=3 { log.push(click(u, 10)); log.push(click(u, 11)); }
/// for u in 4..=6 { log.push(click(u, 20)); log.push(click(u, 21)); }
/// let f = fit_als(&log, &AlsConfig { factors: 4, ..AlsConfig::default() }).unwrap();
/// let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
/// let u1 = f.user_vector(UserId(1)).unwrap();
/// assert!(dot(u1, f.item_vector(ProductId(11)).unwrap()) > dot(u1, f.item_vector(ProductId(21)).unwrap()));
/// ```
pub fn fit_als(events: &[Event], cfg: &AlsConfig) -> Result<Factors> {
    cfg.validate()?;

    // Aggregate weights per pair, users and items in first-seen order.
    let mut users = Vec::new();
    let mut user_rows: HashMap<UserId, usize> = HashMap::new();
    let mut items = Vec::new();
    let mut item_rows: HashMap<ProductId, usize> = HashMap::new();
    let mut pairs: HashMap<(u32, u32), f32> = HashMap::new();
    for e in events {
        let Target::Product(p) = e.target else { continue };
        if e.kind
            .value()
            .is_some_and(|v| !v.is_finite() || !(0.0..=crate::limits::MAX_EVENT_VALUE).contains(&v))
        {
            continue;
        }
        let w = cfg.weights.weight(&e.kind);
        if !w.is_finite() || w <= 0.0 {
            continue;
        }
        let u = *user_rows.entry(e.user).or_insert_with(|| {
            users.push(e.user);
            users.len() - 1
        });
        let i = *item_rows.entry(p).or_insert_with(|| {
            items.push(p);
            items.len() - 1
        });
        *pairs.entry((u as u32, i as u32)).or_insert(0.0) += w;
    }
    if pairs.is_empty() {
        return Err(Error::invalid_value(
            "events",
            "fit_als",
            "no product event with a positive weight to learn from",
        ));
    }
    let mut by_user: Vec<Obs> = vec![Vec::new(); users.len()];
    let mut by_item: Vec<Obs> = vec![Vec::new(); items.len()];
    let mut sorted: Vec<((u32, u32), f32)> = pairs.into_iter().collect();
    sorted.sort_unstable_by_key(|p| p.0);
    for ((u, i), w) in sorted {
        let c1 = cfg.alpha * w;
        by_user[u as usize].push((i, c1));
        by_item[i as usize].push((u, c1));
    }

    let d = cfg.factors;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let scale = 0.1 / (d as f32).sqrt();
    let mut item_vecs: Vec<f32> =
        (0..items.len() * d).map(|_| scale * (rng.random::<f32>() * 2.0 - 1.0)).collect();
    let mut user_vecs = vec![0.0f32; users.len() * d];
    for _ in 0..cfg.iterations {
        solve_side(&mut user_vecs, &by_user, &item_vecs, d, cfg.regularization);
        solve_side(&mut item_vecs, &by_item, &user_vecs, d, cfg.regularization);
    }
    Ok(Factors { dim: d, users, user_rows, user_vecs, items, item_rows, item_vecs })
}

/// Solves every row of `out` against the fixed factors `other`.
fn solve_side(out: &mut [f32], obs: &[Obs], other: &[f32], d: usize, lambda: f32) {
    // Gram matrix of the fixed side, in f64.
    let gram = other
        .par_chunks(d * 1024)
        .map(|block| {
            let mut g = DMatrix::<f64>::zeros(d, d);
            for v in block.chunks_exact(d) {
                for a in 0..d {
                    let va = f64::from(v[a]);
                    for b in a..d {
                        g[(a, b)] += va * f64::from(v[b]);
                    }
                }
            }
            g
        })
        .reduce(|| DMatrix::<f64>::zeros(d, d), |a, b| a + b);
    out.par_chunks_mut(d).zip(obs.par_iter()).for_each(|(x, obs)| {
        if obs.is_empty() {
            x.fill(0.0);
            return;
        }
        let mut a = gram.clone();
        let mut b = DVector::<f64>::zeros(d);
        for &(j, c1) in obs {
            let y = &other[j as usize * d..(j as usize + 1) * d];
            let c1 = f64::from(c1);
            for p in 0..d {
                let yp = f64::from(y[p]);
                b[p] += (1.0 + c1) * yp;
                let cyp = c1 * yp;
                for q in p..d {
                    a[(p, q)] += cyp * f64::from(y[q]);
                }
            }
        }
        for p in 0..d {
            a[(p, p)] += f64::from(lambda);
            for q in 0..p {
                a[(p, q)] = a[(q, p)];
            }
        }
        // With λ > 0 the system is positive definite; λ = 0 can make it
        // singular, and that row then keeps no factor.
        match a.cholesky() {
            Some(ch) => {
                let sol = ch.solve(&b);
                for (xi, s) in x.iter_mut().zip(sol.iter()) {
                    *xi = *s as f32;
                }
            }
            None => x.fill(0.0),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::EventKind;

    fn ev(u: u64, p: u64, kind: EventKind) -> Event {
        Event::new(0, UserId(u), Target::Product(ProductId(p)), kind)
    }

    #[test]
    fn deterministic_and_ranks_held_out_taste() {
        // Block structure: users 0..20 like items 0..10, users 20..40 like
        // 10..20; each user misses one item of their block.
        let mut log = Vec::new();
        for u in 0..40u64 {
            let base = if u < 20 { 0 } else { 10 };
            for p in base..base + 10 {
                if p != base + u % 10 {
                    log.push(ev(u, p, EventKind::Click));
                }
            }
        }
        log.push(ev(99, 5, EventKind::Impression));
        let cfg = AlsConfig { factors: 8, ..AlsConfig::default() };
        let a = fit_als(&log, &cfg).unwrap();
        let b = fit_als(&log, &cfg).unwrap();
        assert_eq!(a, b);
        assert!(a.user_vector(UserId(99)).is_none(), "impressions weigh nothing");
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        for u in 0..40u64 {
            let base = if u < 20 { 0 } else { 10 };
            let other = if u < 20 { 10 } else { 0 };
            let x = a.user_vector(UserId(u)).unwrap();
            let held = dot(x, a.item_vector(ProductId(base + u % 10)).unwrap());
            let best_other = (other..other + 10)
                .map(|p| dot(x, a.item_vector(ProductId(p)).unwrap()))
                .fold(f32::MIN, f32::max);
            assert!(held > best_other, "user {u}: {held} <= {best_other}");
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let log = vec![ev(1, 1, EventKind::Click)];
        assert!(fit_als(&log, &AlsConfig { factors: 0, ..AlsConfig::default() }).is_err());
        assert!(fit_als(&log, &AlsConfig { alpha: f32::NAN, ..AlsConfig::default() }).is_err());
        assert!(fit_als(&[ev(1, 1, EventKind::Impression)], &AlsConfig::default()).is_err());
    }
}
