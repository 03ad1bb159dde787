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
use crate::features::{F, HEADS};
use crate::ids::{Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Positive labels a head must have seen before it learns (as
    /// [`RankerTrainConfig::min_positives`](crate::train) offline): a head
    /// whose label never occurs (no orders logged, say) would otherwise
    /// learn from negatives alone, pushing down the items whose features
    /// are largest, and with them the feed. Default 200.
    pub min_positives: u64,
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
            min_positives: 200,
            guard: OnlineGuard::default(),
        }
    }
}

/// The guard of online learning: a held-back share of the requests is
/// served by the frozen offline heads ([`held_back`] decides, by user and
/// time, the same way on the serving side and in the writer), and each
/// arm's engagement, the share of its requests where an item shown was
/// clicked, carted or ordered (or ordered: [`GuardMetric`]), is compared over the latest requests whose
/// examples are complete (about `window` of the held-back arm). When the online arm's
/// share is below the frozen arm's by more than `max_drop` of it and by
/// more than two standard errors of the difference, the learner rolls
/// back: it stops
/// learning, the writer publishes no online heads (the frozen ones serve
/// everyone), emits a `tracing` warning and the metric
/// `omnifeed_online_rollbacks_total`, and the report says why.
///
/// The unit is the request, not the item: items of one feed share a user
/// and a moment, so counting them as independent draws understates the
/// error, and a few accounts clicking many items of every feed (click
/// fraud) would weigh as many users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineGuard {
    /// The share of requests served by the frozen heads, in `[0, 0.5]`
    /// (0: no guard). Default 0.1.
    pub holdback: f64,
    /// The largest drop of the online arm's click rate tolerated, as a
    /// share of the frozen arm's, in `[0, 1]`. Default 0.1.
    pub max_drop: f64,
    /// Requests each arm needs before the guard judges. Default 500.
    pub min_requests: u64,
    /// What a request must have led to, to count as engaged. Default
    /// [`GuardMetric::Engagement`].
    pub metric: GuardMetric,
    /// The held-back arm's requests judged: when it passes this, both
    /// arms' counts halve (so they cover the same time). Default 2,000.
    pub window: u64,
}

impl Default for OnlineGuard {
    fn default() -> Self {
        OnlineGuard {
            holdback: 0.1,
            max_drop: 0.1,
            min_requests: 500,
            metric: GuardMetric::Engagement,
            window: 2_000,
        }
    }
}

/// What the guard counts as an engaged request.
///
/// Clicks are what click fraud fakes, and the arms show fraudulent
/// accounts different items: a ring clicking its products wherever they
/// are shown engages more in whichever arm shows them more, so an
/// engagement guard can be moved by the fraud itself, either way. Orders
/// cost money to fake; judge on them where fraud is a concern (they are
/// rarer, so the guard needs more requests to see the same drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardMetric {
    /// An item shown was clicked, carted or ordered.
    #[default]
    Engagement,
    /// An item shown was ordered and not refunded.
    Orders,
}

/// Whether the request of `user` at `at` is in the held-back share
/// `share` (served by the frozen heads): a hash of the two, uniform.
pub fn held_back(user: UserId, at: Timestamp, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let h = crate::ids::finalize64(user.0 ^ (at as u64).rotate_left(29) ^ 0x6F6E_6C69_6E65);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// Requests served by one arm and those engaged (the counts halve past
/// the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    /// Requests counted (their examples complete).
    pub requests: f64,
    /// Of them, those where an item was clicked, carted or ordered.
    pub engaged: f64,
}

impl ArmStats {
    /// The share of requests engaged.
    pub fn rate(&self) -> f64 {
        if self.requests > 0.0 { self.engaged / self.requests } else { 0.0 }
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
        if (0.0..=0.5).contains(&g.holdback)
            && (0.0..=1.0).contains(&g.max_drop)
            && g.window >= g.min_requests.max(1)
        {
            Ok(())
        } else {
            Err(Error::invalid_config(
                "online.guard",
                "holdback in [0, 0.5], max_drop in [0, 1], window >= min_requests and >= 1",
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
    /// Positive labels seen per head.
    #[serde(default)]
    positives: [u64; HEADS],
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
            positives: [0; HEADS],
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

    /// Counts each request of a batch in its arm (engaged if any of its
    /// examples is), then judges (see [`OnlineGuard`]).
    fn guard(&mut self, requests: &BTreeMap<(Timestamp, UserId, u64), bool>) {
        let g = self.config.guard;
        if g.holdback <= 0.0 || self.rolled_back.is_some() || requests.is_empty() {
            return;
        }
        for (&(at, user, _), &engaged) in requests {
            let arm = &mut self.arms[usize::from(held_back(user, at, g.holdback))];
            arm.requests += 1.0;
            arm.engaged += f64::from(u8::from(engaged));
        }
        // Both arms halve together, so they cover the same time.
        while self.arms[1].requests > g.window as f64 {
            for arm in &mut self.arms {
                arm.requests /= 2.0;
                arm.engaged /= 2.0;
            }
        }
        let [on, off] = self.arms;
        if on.requests < g.min_requests as f64 || off.requests < g.min_requests as f64 {
            return;
        }
        let (ro, rf) = (on.rate(), off.rate());
        let se = (ro * (1.0 - ro) / on.requests + rf * (1.0 - rf) / off.requests).sqrt();
        if ro < rf * (1.0 - g.max_drop) && rf - ro > 2.0 * se {
            self.rolled_back = Some(format!(
                "the online heads' {} {ro:.4} fell below the frozen \
                 heads' {rf:.4} by more than {:.0}% and two standard errors ({se:.4}), over \
                 {:.0} and {:.0} requests",
                match g.metric {
                    GuardMetric::Engagement => "share of requests engaged",
                    GuardMetric::Orders => "share of requests with an order",
                },
                100.0 * g.max_drop,
                on.requests,
                off.requests
            ));
        }
    }

    /// Checks a decoded learner (a snapshot's): its config, the shapes,
    /// every value finite and every `n` not negative.
    pub(crate) fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let finite = self.base.iter().all(|v| v.is_finite())
            && self.arms.iter().all(|a| a.requests.is_finite() && a.engaged.is_finite())
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

    /// Learns from a batch of examples, in order: each complete one of
    /// this build's schema teaches the heads (others are counted skipped);
    /// then the guard counts the batch's requests and judges. The writer
    /// passes what each applied entry completed, so a request's examples
    /// (which complete together) are judged together.
    pub fn learn(&mut self, examples: &[TrainingExample]) {
        let mut requests = BTreeMap::new();
        for e in examples {
            if !e.complete
                || !e.columns.is_current_schema()
                || e.features.len() != F
                || self.rolled_back.is_some()
            {
                self.skipped += 1;
                continue;
            }
            let yes = |k: usize| e.labels[k] == Label::Yes;
            let (click, cart, order, refund) = (yes(0), yes(1), yes(2), yes(3));
            let y = [click || cart || order, order && !refund, cart || order];
            let engaged = match self.config.guard.metric {
                GuardMetric::Engagement => y[0],
                GuardMetric::Orders => y[1],
            };
            *requests.entry((e.at, e.user, e.request_id)).or_insert(false) |= engaged;
            self.fit(e, y);
        }
        self.guard(&requests);
    }

    /// One FTRL step per head on a complete example with labels `y`.
    fn fit(&mut self, e: &TrainingExample, y: [bool; HEADS]) {
        let pos = if self.config.position_feature { (1.0 + e.position as f64).ln() } else { 0.0 };
        let x = |j: usize| -> f64 {
            match j {
                j if j < F => f64::from(e.features[j]),
                j if j == F => pos,
                _ => 1.0,
            }
        };
        for (h, &label) in y.iter().enumerate() {
            self.positives[h] += u64::from(label);
            if self.positives[h] < self.config.min_positives {
                continue;
            }
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
    use crate::ids::ProductId;
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

    /// This build's feature columns, no heads.
    fn schema_columns() -> Arc<Columns> {
        let features = crate::features::FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
        Arc::new(Columns { features, heads: Vec::new() })
    }

    /// Clicks follow feature 0: the pCTR head's weight on it grows from
    /// the base's 0; an open example teaches nothing; another schema's is
    /// skipped; bad settings and shapes are errors.
    #[test]
    fn learns_from_complete_examples_only() {
        let columns = schema_columns();
        let base = vec![0.0f32; HEADS * (F + 1)];
        let mut l = OnlineLearner::new(&base, OnlineConfig::default()).unwrap();
        l.learn(&[example(1.0, true, false, &columns)]);
        assert_eq!((l.updates(), l.skipped()), (0, 1));
        assert_eq!(l.weights(), base);
        for i in 0..2_000 {
            let x0 = (i % 2) as f32;
            l.learn(&[example(x0, i % 2 == 1, true, &columns)]);
        }
        assert_eq!(l.updates(), 2_000);
        let w = l.weights();
        assert!(w[0] > 1.0, "pCTR weight on the feature that decides: {}", w[0]);
        // No order was seen: the pCVR and engagement heads, below
        // min_positives, stay the offline ones (learning from negatives
        // alone would push them down along every feature).
        assert_eq!(&w[F + 1..], &base[F + 1..]);
        let other = Arc::new(Columns { features: vec!["x".into()], heads: Vec::new() });
        l.learn(&[example(1.0, true, true, &other)]);
        assert_eq!(l.skipped(), 2);
        assert!(OnlineLearner::new(&base[1..], OnlineConfig::default()).is_err());
        let bad = OnlineConfig { alpha: 0.0, ..OnlineConfig::default() };
        assert!(OnlineLearner::new(&base, bad).is_err());
        let mut broken = l.clone();
        broken.n[0] = -1.0;
        assert!(broken.validate().is_err() && l.validate().is_ok());
    }

    /// The guard counts requests, not items, on its metric: every request
    /// has one of three items clicked, and only the held-back arm's are
    /// ordered. Judged on engagement the arms are equal; on orders the
    /// online arm falls behind and the learner rolls back.
    #[test]
    fn the_guard_judges_requests_on_its_metric() {
        let columns = schema_columns();
        let base = vec![0.0f32; HEADS * (F + 1)];
        let guard = OnlineGuard { holdback: 0.5, min_requests: 50, ..OnlineGuard::default() };
        for (metric, rolls) in [(GuardMetric::Engagement, false), (GuardMetric::Orders, true)] {
            let config = OnlineConfig {
                guard: OnlineGuard { metric, ..guard },
                min_positives: u64::MAX,
                ..OnlineConfig::default()
            };
            let mut l = OnlineLearner::new(&base, config).unwrap();
            for r in 0..400u64 {
                let (user, at) = (UserId(r), r as i64);
                let batch: Vec<TrainingExample> = (0..3)
                    .map(|pos| {
                        let mut e = example(0.0, pos == 0, true, &columns);
                        (e.user, e.at, e.request_id, e.position) = (user, at, r, pos);
                        if pos == 0 && held_back(user, at, 0.5) {
                            e.labels[2] = Label::Yes;
                        }
                        e
                    })
                    .collect();
                l.learn(&batch);
            }
            let report = l.report();
            assert_eq!(report.rolled_back.is_some(), rolls, "{metric:?}: {report:?}");
            if !rolls {
                assert_eq!(report.online.requests + report.frozen.requests, 400.0, "{report:?}");
                assert_eq!((report.online.rate(), report.frozen.rate()), (1.0, 1.0));
            }
        }
    }
}
