//! Beta-smoothed rates with priors fitted by empirical Bayes.
//!
//! A rate `s / n` (clicks per impression, orders per click, ...) of a
//! product with little traffic is noise. With a `Beta(α, β)` prior the
//! posterior mean is `(s + α) / (n + α + β)`: a product with 1 click in 2
//! impressions stays near its category's mean, and one with 100 clicks in
//! 1,000 is at its own 10%. The prior of each category is fitted from the
//! category's own products by the method of moments: the spread of their
//! raw rates, less the binomial noise their traffic explains, is the real
//! spread between products, and it sets the prior's strength `α + β`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A `Beta(alpha, beta)` prior on a rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetaPrior {
    /// Pseudo-successes, > 0.
    pub alpha: f32,
    /// Pseudo-failures, > 0.
    pub beta: f32,
}

impl BetaPrior {
    /// The prior mean `α / (α + β)`.
    pub fn mean(&self) -> f32 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The prior's strength `α + β`: how many trials it weighs.
    pub fn strength(&self) -> f32 {
        self.alpha + self.beta
    }

    /// The posterior mean `(s + α) / (n + α + β)` of `s` successes in `n`
    /// trials; `s` is clamped to `[0, n]`, so the result is in `(0, 1)`.
    #[inline]
    pub fn smooth(&self, successes: f32, trials: f32) -> f32 {
        let n = trials.max(0.0);
        let s = successes.max(0.0).min(n.max(0.0));
        (s + self.alpha) / (n + self.alpha + self.beta)
    }
}

/// How priors are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorConfig {
    /// Products with fewer (decayed) trials than this do not take part in
    /// a fit. Default 20.
    pub min_trials: f32,
    /// A category with fewer qualifying products uses the global prior.
    /// Default 5.
    pub min_products: usize,
    /// Smallest prior strength `α + β`. Default 2.
    pub min_strength: f32,
    /// Largest prior strength (the strength when products do not differ
    /// beyond noise). Default 1,000.
    pub max_strength: f32,
    /// Strength of the fallback prior when even the whole catalog has too
    /// little data to fit. Default 10.
    pub fallback_strength: f32,
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig {
            min_trials: 20.0,
            min_products: 5,
            min_strength: 2.0,
            max_strength: 1000.0,
            fallback_strength: 10.0,
        }
    }
}

impl PriorConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("signals.priors.min_strength", self.min_strength),
            ("signals.priors.max_strength", self.max_strength),
            ("signals.priors.fallback_strength", self.fallback_strength),
        ];
        let max = crate::limits::MAX_WEIGHT;
        for (field, v) in positive {
            if !v.is_finite() || v <= 0.0 || v > max {
                return Err(Error::invalid_config(
                    field,
                    format!("expected a value in (0, {max}], got {v}"),
                ));
            }
        }
        if !self.min_trials.is_finite() || !(1.0..=max).contains(&self.min_trials) {
            return Err(Error::invalid_config(
                "signals.priors.min_trials",
                format!("expected a value in [1, {max}], got {}", self.min_trials),
            ));
        }
        if self.max_strength < self.min_strength {
            return Err(Error::invalid_config(
                "signals.priors.max_strength",
                format!("{} is below min_strength {}", self.max_strength, self.min_strength),
            ));
        }
        if self.min_products < 2 {
            return Err(Error::invalid_config(
                "signals.priors.min_products",
                format!("expected >= 2, got {}", self.min_products),
            ));
        }
        Ok(())
    }
}

/// Running sums of one group's `(s, n)` pairs for a method-of-moments fit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MomentSums {
    /// Pooled successes and trials of every product, qualifying or not.
    all_s: f64,
    all_n: f64,
    count: f64,
    s: f64,
    n: f64,
    p: f64,
    p2: f64,
    inv_n: f64,
}

impl MomentSums {
    /// Adds one product's successes and trials, if it has enough trials.
    #[inline]
    pub(crate) fn add(&mut self, s: f32, n: f32, cfg: &PriorConfig) {
        if n > 0.0 {
            self.all_s += f64::from(s.max(0.0).min(n.max(0.0)));
            self.all_n += f64::from(n);
        }
        if n.is_nan() || n < cfg.min_trials {
            return;
        }
        let (s, n) = (f64::from(s.max(0.0).min(n.max(0.0))), f64::from(n));
        let p = s / n;
        self.count += 1.0;
        self.s += s;
        self.n += n;
        self.p += p;
        self.p2 += p * p;
        self.inv_n += 1.0 / n;
    }

    /// Merges another group's sums.
    pub(crate) fn merge(&mut self, o: &MomentSums) {
        self.all_s += o.all_s;
        self.all_n += o.all_n;
        self.count += o.count;
        self.s += o.s;
        self.n += o.n;
        self.p += o.p;
        self.p2 += o.p2;
        self.inv_n += o.inv_n;
    }

    /// The fitted prior, or `None` with fewer than `min_products` products.
    pub(crate) fn fit(&self, cfg: &PriorConfig) -> Option<BetaPrior> {
        if self.count < cfg.min_products as f64 || self.n <= 0.0 {
            return None;
        }
        let mean = (self.s / self.n).clamp(1e-6, 1.0 - 1e-6);
        let k = self.count;
        let mean_p = self.p / k;
        // Spread of raw rates around the pooled mean, less binomial noise.
        let observed = (self.p2 / k - 2.0 * mean * mean_p + mean * mean).max(0.0);
        let noise = mean * (1.0 - mean) * self.inv_n / k;
        let between = observed - noise;
        let (lo, hi) = (f64::from(cfg.min_strength), f64::from(cfg.max_strength));
        let strength =
            if between <= 1e-12 { hi } else { (mean * (1.0 - mean) / between - 1.0).clamp(lo, hi) };
        Some(BetaPrior { alpha: (mean * strength) as f32, beta: ((1.0 - mean) * strength) as f32 })
    }

    /// The pooled mean of every product (too little traffic to fit is still
    /// traffic) with the fallback strength; mean 0.5 with no traffic at all.
    pub(crate) fn fallback(&self, cfg: &PriorConfig) -> BetaPrior {
        let mean =
            if self.all_n > 0.0 { (self.all_s / self.all_n).clamp(1e-4, 1.0 - 1e-4) } else { 0.5 };
        let st = f64::from(cfg.fallback_strength);
        BetaPrior { alpha: (mean * st) as f32, beta: ((1.0 - mean) * st) as f32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_lucky_newcomer_does_not_outrank_a_proven_product() {
        let cfg = PriorConfig::default();
        let mut sums = MomentSums::default();
        // A category whose products click at 4%..8% on 2,000 impressions.
        for i in 0..20 {
            let ctr = 0.04 + 0.002 * i as f32;
            sums.add(ctr * 2000.0, 2000.0, &cfg);
        }
        let prior = sums.fit(&cfg).unwrap();
        assert!((prior.mean() - 0.059).abs() < 0.002, "{prior:?}");
        let newcomer = prior.smooth(1.0, 2.0);
        let proven = prior.smooth(100.0, 1000.0);
        assert!(newcomer < proven, "newcomer {newcomer} vs proven {proven}");
        assert!((newcomer - prior.mean()).abs() < 0.002, "{newcomer}");
        // ... and a well-proven one is not held back by the prior: its
        // estimate goes to its own rate as its traffic grows.
        let well_proven = prior.smooth(1000.0, 10_000.0);
        assert!(proven > prior.mean() && well_proven > proven);
        assert!((well_proven - 0.1).abs() < 0.005, "{well_proven}");
    }

    #[test]
    fn no_spread_beyond_noise_means_a_strong_prior() {
        let cfg = PriorConfig::default();
        let mut sums = MomentSums::default();
        for _ in 0..50 {
            sums.add(50.0, 1000.0, &cfg);
        }
        let prior = sums.fit(&cfg).unwrap();
        assert_eq!(prior.strength(), cfg.max_strength);
        assert!((prior.mean() - 0.05).abs() < 1e-6);
        // Too few products: no fit; too few trials: not counted.
        let mut few = MomentSums::default();
        few.add(1.0, 10.0, &cfg);
        few.add(5.0, 100.0, &cfg);
        assert!(few.fit(&cfg).is_none());
        // The fallback pools every product, the one below min_trials too.
        assert!((few.fallback(&cfg).mean() - 6.0 / 110.0).abs() < 1e-6);
        assert_eq!(few.fallback(&cfg).strength(), cfg.fallback_strength);
    }

    proptest! {
        #[test]
        fn smoothing_is_bounded_and_monotone(
            alpha in 0.01f32..100.0, beta in 0.01f32..1000.0,
            frac in 0.0f32..=1.0, n in 0.0f32..1000.0, ds in 0.1f32..10.0,
        ) {
            let prior = BetaPrior { alpha, beta };
            let s = frac * n;
            let r = prior.smooth(s, n);
            prop_assert!(r > 0.0 && r < 1.0);
            // More successes in the same trials never lower the rate, and
            // more failures never raise it.
            prop_assert!(prior.smooth((s + ds).min(n), n) >= r - 1e-6);
            prop_assert!(prior.smooth(s, n + ds) <= r + 1e-6);
            // Successes beyond the trials count as the trials.
            prop_assert_eq!(prior.smooth(n + 1.0, n), prior.smooth(n, n));
            // The estimate lies between the prior mean and the raw rate.
            if n > 0.0 {
                let raw = s / n;
                let (lo, hi) = if raw < prior.mean() { (raw, prior.mean()) } else { (prior.mean(), raw) };
                prop_assert!(r >= lo - 1e-5 && r <= hi + 1e-5);
            }
        }
    }
}
