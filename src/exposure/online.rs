//! Online updates of the ranker's logistic heads from joined exposures
//! (issue 25): FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View
//! from the Trenches", 2013), per coordinate, on top of the frozen offline
//! heads.
//!
//! A head's weights are `base + w`, where `base` is the offline model and
//! `w` the FTRL solution: per coordinate
//! `w_i = 0` if `|z_i| <= l1`, else
//! `−(z_i − sign(z_i)·l1) / ((beta + √n_i)/alpha + l2)`,
//! and after an example with prediction `p = σ((base + w)·x)` and label `y`,
//! `g_i = (p − y)·x_i`, `z_i += g_i − (√(n_i + g_i²) − √n_i)/alpha · w_i`,
//! `n_i += g_i²`. The L2 term pulls `w` to 0, that is the heads to the
//! offline model. The schedule is FTRL's own: each coordinate's step is
//! `alpha / (beta + √(Σ g²))`.
//!
//! Only complete examples teach (every label window closed, so no
//! negative is taken before its window closes); labels as
//! [`train_from_examples`](crate::train) reads them: pCTR "clicked, carted
//! or ordered", pCVR "ordered and not refunded", engagement "carted or
//! ordered". The served position enters as one more coordinate,
//! `ln(1 + position)`, held at 0 when serving (as offline). The state
//! (`z`, `n`, counts) serializes, so a snapshot resumes the learning
//! exactly.

use super::{Label, TrainingExample};
use crate::error::{Error, Result};
use crate::features::{F, FEATURE_NAMES, HEADS};
use serde::{Deserialize, Serialize};

/// Settings of [`OnlineLearner`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineConfig {
    /// FTRL's `alpha` (the step scale), > 0. Default 0.05.
    pub alpha: f64,
    /// FTRL's `beta`, >= 0. Default 1.
    pub beta: f64,
    /// L1 penalty on the change from the offline heads, >= 0. Default 0.
    pub l1: f64,
    /// L2 penalty on the change from the offline heads, >= 0. Default 1.
    pub l2: f64,
    /// Fit the served position as a coordinate held at 0 when serving.
    /// Default true.
    pub position_feature: bool,
    /// The comparison with the frozen offline heads that can roll the
    /// learning back ([`OnlineGuard`]).
    pub guard: OnlineGuard,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            alpha: 0.05,
            beta: 1.0,
            l1: 0.0,
            l2: 1.0,
            position_feature: true,
            guard: OnlineGuard::default(),
        }
    }
}

/// The guard of online learning: a held-back share of the requests is
/// served by the frozen offline heads ([`held_back`] decides, by user and
/// time, the same way on the serving side and in the writer), and the
/// click rate of the items each arm showed is compared over the latest
/// `window` complete examples per arm. When the online arm's rate is below
/// the frozen arm's by more than `max_drop` of it and by more than two
/// standard errors of the difference, the learner rolls back: it stops
/// learning, the writer publishes no online heads (the frozen ones serve
/// everyone), emits a `tracing` warning and the metric
/// `omnifeed_online_rollbacks_total`, and the report says why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineGuard {
    /// The share of requests served by the frozen heads, in `[0, 0.5]`
    /// (0: no guard). Default 0.1.
    pub holdback: f64,
    /// The largest drop of the online arm's click rate tolerated, as a
    /// share of the frozen arm's, in `[0, 1]`. Default 0.1.
    pub max_drop: f64,
    /// Complete examples each arm needs before the guard judges. Default
    /// 2,000.
    pub min_items: u64,
    /// The examples per arm judged: the counts halve past this. Default
    /// 20,000.
    pub window: u64,
}

impl Default for OnlineGuard {
    fn default() -> Self {
        OnlineGuard { holdback: 0.1, max_drop: 0.1, min_items: 2_000, window: 20_000 }
    }
}

/// Whether the request of `user` at `at` is in the held-back share
/// `share` (served by the frozen heads): a hash of the two, uniform.
pub fn held_back(user: crate::ids::UserId, at: crate::ids::Timestamp, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let h = crate::ids::finalize64(user.0 ^ (at as u64).rotate_left(29) ^ 0x6F6E_6C69_6E65);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// Items shown and clicked by one arm (the counts halve past the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    /// Complete examples counted.
    pub items: f64,
    /// Of them clicked (or carted or ordered).
    pub clicks: f64,
}

impl ArmStats {
    /// Clicks per item.
    pub fn rate(&self) -> f64 {
        if self.items > 0.0 { self.clicks / self.items } else { 0.0 }
    }
}

/// What an [`OnlineLearner`] has done and where its guard stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineReport {
    /// Examples learned from.
    pub updates: u64,
    /// Examples passed over (open, another schema, after a rollback).
    pub skipped: u64,
    /// The online arm.
    pub online: ArmStats,
    /// The held-back arm (the frozen heads).
    pub frozen: ArmStats,
    /// Why it rolled back, if it did.
    pub rolled_back: Option<String>,
}

impl OnlineConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if self.alpha.is_finite() && self.alpha > 0.0 && ok(self.beta) && ok(self.l1) && ok(self.l2)
        {
            Ok(())
        } else {
            Err(Error::invalid_config("online", "alpha > 0; beta, l1, l2 >= 0 and finite"))
        }?;
        let g = &self.guard;
        if (0.0..=0.5).contains(&g.holdback) && (0.0..=1.0).contains(&g.max_drop) && g.window >= 1 {
            Ok(())
        } else {
            Err(Error::invalid_config(
                "online.guard",
                "holdback in [0, 0.5], max_drop in [0, 1], window >= 1",
            ))
        }
    }
}

/// Coordinates per head: the features, the position, the bias.
const D: usize = F + 2;

/// FTRL-Proximal over the three heads (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineLearner {
    config: OnlineConfig,
    /// The offline heads, `HEADS × (F + 1)` (bias last).
    base: Vec<f32>,
    z: Vec<f64>,
    n: Vec<f64>,
    /// Examples learned from.
    updates: u64,
    /// Examples passed over (open, or another schema's columns).
    skipped: u64,
    /// Per arm: online, frozen.
    arms: [ArmStats; 2],
    /// Why the guard rolled the learning back, if it did.
    rolled_back: Option<String>,
}

impl OnlineLearner {
    /// A learner starting from the offline heads `base` (a
    /// [`LogisticScorer`](crate::rank::LogisticScorer)'s matrix:
    /// `HEADS × (F + 1)`, bias last).
    ///
    /// Errors: an invalid config, a matrix of another shape or with a
    /// value not finite.
    pub fn new(base: &[f32], config: OnlineConfig) -> Result<OnlineLearner> {
        config.validate()?;
        if base.len() != HEADS * (F + 1) {
            return Err(Error::dimension("online base heads", HEADS * (F + 1), base.len()));
        }
        if base.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_value(
                "online base heads",
                "matrix",
                "a weight is not finite",
            ));
        }
        Ok(OnlineLearner {
            config,
            base: base.to_vec(),
            z: vec![0.0; HEADS * D],
            n: vec![0.0; HEADS * D],
            updates: 0,
            skipped: 0,
            arms: [ArmStats::default(); 2],
            rolled_back: None,
        })
    }

    /// Why the guard rolled the learning back, if it did (the writer then
    /// publishes no online heads).
    pub fn rolled_back(&self) -> Option<&str> {
        self.rolled_back.as_deref()
    }

    /// The counts and the guard's state.
    pub fn report(&self) -> OnlineReport {
        OnlineReport {
            updates: self.updates,
            skipped: self.skipped,
            online: self.arms[0],
            frozen: self.arms[1],
            rolled_back: self.rolled_back.clone(),
        }
    }

    /// Counts a complete example in its arm and judges (see [`OnlineGuard`]).
    fn guard(&mut self, e: &TrainingExample, clicked: bool) {
        let g = self.config.guard;
        if g.holdback <= 0.0 || self.rolled_back.is_some() {
            return;
        }
        let arm = &mut self.arms[usize::from(held_back(e.user, e.at, g.holdback))];
        arm.items += 1.0;
        arm.clicks += f64::from(u8::from(clicked));
        if arm.items > g.window as f64 {
            arm.items /= 2.0;
            arm.clicks /= 2.0;
        }
        let [on, off] = self.arms;
        if on.items < g.min_items as f64 || off.items < g.min_items as f64 {
            return;
        }
        let (ro, rf) = (on.rate(), off.rate());
        let se = (ro * (1.0 - ro) / on.items + rf * (1.0 - rf) / off.items).sqrt();
        if ro < rf * (1.0 - g.max_drop) && rf - ro > 2.0 * se {
            self.rolled_back = Some(format!(
                "the online heads' click rate {ro:.4} fell below the frozen heads' {rf:.4} by \
                 more than {:.0}% and two standard errors ({se:.4}), over {:.0} and {:.0} items",
                100.0 * g.max_drop,
                on.items,
                off.items
            ));
        }
    }

    /// Checks a decoded learner (a snapshot's): its config, the shapes,
    /// every value finite and every `n` not negative.
    pub(crate) fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let finite = self.base.iter().all(|v| v.is_finite())
            && self.arms.iter().all(|a| a.items.is_finite() && a.clicks.is_finite())
            && self.z.iter().all(|v| v.is_finite())
            && self.n.iter().all(|v| v.is_finite() && *v >= 0.0);
        if self.base.len() != HEADS * (F + 1)
            || self.z.len() != HEADS * D
            || self.n.len() != HEADS * D
            || !finite
        {
            return Err(Error::invalid_value(
                "online learner",
                "snapshot",
                "shapes or values out of range",
            ));
        }
        Ok(())
    }

    /// Examples learned from.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Examples passed over: not complete, or of another feature schema.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The config.
    pub fn config(&self) -> OnlineConfig {
        self.config
    }

    /// FTRL's weight of coordinate `j` of head `h`.
    fn w(&self, h: usize, j: usize) -> f64 {
        let c = &self.config;
        let (z, n) = (self.z[h * D + j], self.n[h * D + j]);
        if z.abs() <= c.l1 {
            0.0
        } else {
            -(z - z.signum() * c.l1) / ((c.beta + n.sqrt()) / c.alpha + c.l2)
        }
    }

    /// Learns from one example if it is complete and of this build's
    /// schema (else counts it skipped).
    pub fn update(&mut self, e: &TrainingExample) {
        let schema = e.columns.features.iter().map(String::as_str).eq(FEATURE_NAMES);
        if !e.complete || !schema || e.features.len() != F || self.rolled_back.is_some() {
            self.skipped += 1;
            return;
        }
        let yes = |k: usize| e.labels[k] == Label::Yes;
        let (click, cart, order, refund) = (yes(0), yes(1), yes(2), yes(3));
        let y = [click || cart || order, order && !refund, cart || order];
        self.guard(e, y[0]);
        if self.rolled_back.is_some() {
            return;
        }
        let pos = if self.config.position_feature { (1.0 + e.position as f64).ln() } else { 0.0 };
        let x = |j: usize| -> f64 {
            match j {
                j if j < F => f64::from(e.features[j]),
                j if j == F => pos,
                _ => 1.0,
            }
        };
        for (h, &label) in y.iter().enumerate() {
            let w: Vec<f64> = (0..D).map(|j| self.w(h, j)).collect();
            let b = &self.base[h * (F + 1)..(h + 1) * (F + 1)];
            let mut margin = f64::from(b[F]) + w[D - 1];
            for j in 0..F {
                margin += (f64::from(b[j]) + w[j]) * x(j);
            }
            margin += w[F] * pos;
            let p = 1.0 / (1.0 + (-margin).exp());
            let g0 = p - f64::from(u8::from(label));
            for (j, &wj) in w.iter().enumerate() {
                let g = g0 * x(j);
                let k = h * D + j;
                let sigma = ((self.n[k] + g * g).sqrt() - self.n[k].sqrt()) / self.config.alpha;
                self.z[k] += g - sigma * wj;
                self.n[k] += g * g;
            }
        }
        self.updates += 1;
    }

    /// The heads to serve, `HEADS × (F + 1)` (bias last): the offline heads
    /// plus FTRL's weights, the position's dropped.
    pub fn weights(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(HEADS * (F + 1));
        for h in 0..HEADS {
            for j in 0..F {
                out.push(self.base[h * (F + 1) + j] + self.w(h, j) as f32);
            }
            out.push(self.base[h * (F + 1) + F] + self.w(h, D - 1) as f32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::Columns;
    use crate::ids::{ProductId, UserId};
    use std::sync::Arc;

    fn example(x0: f32, clicked: bool, complete: bool, columns: &Arc<Columns>) -> TrainingExample {
        let mut features = vec![0.0f32; F];
        features[0] = x0;
        let l = if clicked { Label::Yes } else { Label::No };
        TrainingExample {
            request_id: 1,
            position: 0,
            user: UserId(1),
            product: ProductId(1),
            surface: crate::request::Surface::Feed,
            variant: None,
            state_version: 0,
            at: 0,
            propensity: 1.0,
            score: 1.0,
            labels: [l, Label::No, Label::No, Label::No],
            complete,
            features,
            heads: Vec::new(),
            columns: Arc::clone(columns),
        }
    }

    /// Clicks follow feature 0: the pCTR head's weight on it grows from
    /// the base's 0; an open example teaches nothing; another schema's is
    /// skipped; bad settings and shapes are errors.
    #[test]
    fn learns_from_complete_examples_only() {
        let columns = Arc::new(Columns {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            heads: Vec::new(),
        });
        let base = vec![0.0f32; HEADS * (F + 1)];
        let mut l = OnlineLearner::new(&base, OnlineConfig::default()).unwrap();
        l.update(&example(1.0, true, false, &columns));
        assert_eq!((l.updates(), l.skipped()), (0, 1));
        assert_eq!(l.weights(), base);
        for i in 0..2_000 {
            let x0 = (i % 2) as f32;
            l.update(&example(x0, i % 2 == 1, true, &columns));
        }
        assert_eq!(l.updates(), 2_000);
        let w = l.weights();
        assert!(w[0] > 1.0, "pCTR weight on the feature that decides: {}", w[0]);
        let other = Arc::new(Columns { features: vec!["x".into()], heads: Vec::new() });
        l.update(&example(1.0, true, true, &other));
        assert_eq!(l.skipped(), 2);
        assert!(OnlineLearner::new(&base[1..], OnlineConfig::default()).is_err());
        let bad = OnlineConfig { alpha: 0.0, ..OnlineConfig::default() };
        assert!(OnlineLearner::new(&base, bad).is_err());
        let mut broken = l.clone();
        broken.n[0] = -1.0;
        assert!(broken.validate().is_err() && l.validate().is_ok());
    }
}
