//! Stochastic placement with known probabilities (issue 25): after the
//! rerank, an option draws part of the feed at random and records, for
//! every placed item, the exact probability that the policy put it where
//! it is. Off-policy estimators ([`eval::ope`](crate::eval)) weigh logged
//! rewards by these.
//!
//! - [`Stochastic::PlackettLuce`]: the first `top_n` positions (pins stay)
//!   are a Plackett–Luce draw over their items, weights
//!   `value^(1/temperature)`: item after item, each with probability its
//!   weight over the weights left. The probability of an item at a
//!   position is the sum over the orders of the items above it, computed
//!   exactly by a recursion over the sets of items placed above
//!   ([`plackett_luce_marginals`]), so `top_n` is at most
//!   [`MAX_PLACKETT_LUCE`].
//! - [`Stochastic::Slots`]: each listed position shows a uniform draw,
//!   without replacement, from the next `pool` candidates below the feed;
//!   the items from that position down move one place. Every drawn item is
//!   at its slot with probability `1/m` (`m` the candidates drawn from),
//!   every other item is where the deterministic feed put it (probability
//!   1).
//!
//! The draw is seeded by the request: the same request (seed, id, user,
//! time) on the same state gives the same feed.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The most items a Plackett–Luce draw orders (its exact marginals cost
/// `2^top_n · top_n`).
pub const MAX_PLACKETT_LUCE: usize = 12;

/// A surface's stochastic placement (see the module docs). Default off:
/// the feed is deterministic and every item's probability is 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Stochastic {
    /// Deterministic.
    #[default]
    Off,
    /// The first `top_n` positions drawn by Plackett–Luce.
    PlackettLuce {
        /// Positions drawn, 2..=[`MAX_PLACKETT_LUCE`].
        top_n: usize,
        /// Weights are `value^(1/temperature)`; > 0 (small: close to the
        /// deterministic order).
        temperature: f32,
    },
    /// Exploration slots filled from below the feed.
    Slots {
        /// The positions (0-based) drawn.
        positions: Vec<usize>,
        /// Candidates drawn from: the next `pool` of the rerank pool, >= 1.
        pool: usize,
    },
}

impl Stochastic {
    /// Checks the settings; `field` names them in errors.
    pub fn validate(&self, field: &'static str) -> Result<()> {
        let ok = match self {
            Stochastic::Off => true,
            Stochastic::PlackettLuce { top_n, temperature } => {
                (2..=MAX_PLACKETT_LUCE).contains(top_n)
                    && temperature.is_finite()
                    && *temperature > 0.0
            }
            Stochastic::Slots { positions, pool } => {
                (1..=10_000).contains(pool)
                    && positions.len() <= 64
                    && positions.iter().all(|&p| p < crate::limits::MAX_K)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_config(
                field,
                format!(
                    "plackett_luce: top_n 2..={MAX_PLACKETT_LUCE}, temperature > 0; slots: pool \
                     1..=10000, at most 64 positions below the largest k"
                ),
            ))
        }
    }
}

/// Plackett–Luce weights of `values`: `value^(1/temperature)`, scaled by
/// the largest so that none overflows (a value not above 0 weighs the
/// least positive weight).
pub fn plackett_luce_weights(values: &[f32], temperature: f32) -> Vec<f64> {
    let t = f64::from(temperature.max(1e-6));
    let logs: Vec<f64> =
        values.iter().map(|&v| f64::from(v).max(f64::MIN_POSITIVE).ln() / t).collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    logs.iter().map(|l| (l - top).exp().max(f64::MIN_POSITIVE)).collect()
}

/// `P(item i at position j)` for a Plackett–Luce draw of all `n` items
/// with `weights`, as `n × n` row-major (`out[i * n + j]`). Exact: a
/// recursion over the sets of items drawn before (`2^n` of them), so `n`
/// is at most [`MAX_PLACKETT_LUCE`] (more is cut to it).
pub fn plackett_luce_marginals(weights: &[f64]) -> Vec<f64> {
    let n = weights.len().min(MAX_PLACKETT_LUCE);
    let total: f64 = weights[..n].iter().sum();
    // p[set]: the probability that the first |set| draws are `set`.
    let mut p = vec![0.0f64; 1 << n];
    let mut set_weight = vec![0.0f64; 1 << n];
    p[0] = 1.0;
    let mut out = vec![0.0f64; n * n];
    for set in 0..(1usize << n) {
        if set > 0 {
            let low = set.trailing_zeros() as usize;
            set_weight[set] = set_weight[set & (set - 1)] + weights[low];
        }
        if p[set] == 0.0 {
            continue;
        }
        let left = total - set_weight[set];
        if left <= 0.0 {
            continue;
        }
        let position = set.count_ones() as usize;
        for (i, &w) in weights[..n].iter().enumerate() {
            if set & (1 << i) == 0 {
                let q = p[set] * w / left;
                out[i * n + position] += q;
                p[set | (1 << i)] += q;
            }
        }
    }
    out
}

/// A Plackett–Luce draw of the items of `weights` (indices, first drawn
/// first), by the 64-bit random stream `next`.
pub fn plackett_luce_draw(weights: &[f64], mut next: impl FnMut() -> u64) -> Vec<usize> {
    let mut left: Vec<usize> = (0..weights.len()).collect();
    let mut order = Vec::with_capacity(weights.len());
    while !left.is_empty() {
        let total: f64 = left.iter().map(|&i| weights[i]).sum();
        let u = (next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut acc = 0.0;
        let mut pick = left.len() - 1;
        for (k, &i) in left.iter().enumerate() {
            acc += weights[i];
            if u < acc {
                pick = k;
                break;
            }
        }
        order.push(left.remove(pick));
    }
    order
}

/// The request's random stream (splitmix64 from its seed).
pub(crate) fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::ids::finalize64(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marginals_by_hand_and_by_enumeration() {
        // Two items 3:1: first 0.75 / 0.25, second the rest.
        let m = plackett_luce_marginals(&[3.0, 1.0]);
        assert!((m[0] - 0.75).abs() < 1e-12 && (m[1] - 0.25).abs() < 1e-12);
        assert!((m[2] - 0.25).abs() < 1e-12 && (m[3] - 0.75).abs() < 1e-12);
        // Three items: enumerate the six orders.
        let w = [0.5, 2.0, 1.5];
        let m = plackett_luce_marginals(&w);
        let mut brute = [0.0f64; 9];
        for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let mut left: f64 = w.iter().sum();
            let mut p = 1.0;
            for &i in &order {
                p *= w[i] / left;
                left -= w[i];
            }
            for (pos, &i) in order.iter().enumerate() {
                brute[i * 3 + pos] += p;
            }
        }
        for (a, b) in m.iter().zip(brute) {
            assert!((a - b).abs() < 1e-12);
        }
        // Rows and columns sum to 1.
        let w: Vec<f64> = (1..=8).map(f64::from).collect();
        let m = plackett_luce_marginals(&w);
        for i in 0..8 {
            assert!(((0..8).map(|j| m[i * 8 + j]).sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(((0..8).map(|j| m[j * 8 + i]).sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn draws_follow_the_marginals() {
        let w = plackett_luce_weights(&[1.0, 0.8, 0.5, 0.2], 0.5);
        let m = plackett_luce_marginals(&w);
        let mut next = stream(42);
        let mut counts = [0usize; 16];
        let n = 40_000;
        for _ in 0..n {
            for (pos, &i) in plackett_luce_draw(&w, &mut next).iter().enumerate() {
                counts[i * 4 + pos] += 1;
            }
        }
        for (c, p) in counts.iter().zip(&m) {
            let f = *c as f64 / n as f64;
            assert!((f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3, "{f} {p}");
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(Stochastic::Off.validate("x").is_ok());
        let pl = |top_n, temperature| Stochastic::PlackettLuce { top_n, temperature };
        assert!(pl(6, 1.0).validate("x").is_ok());
        assert!(pl(13, 1.0).validate("x").is_err());
        assert!(pl(6, 0.0).validate("x").is_err());
        assert!(pl(6, f32::NAN).validate("x").is_err());
        assert!(Stochastic::Slots { positions: vec![2], pool: 0 }.validate("x").is_err());
    }
}
