//! Off-policy evaluation: what a new policy would earn, estimated from what
//! the logging policy showed, with the probabilities it showed it with.
//!
//! The unit is a logged request (a slate). Each of its slots holds the
//! reward seen there, the logging policy's probability `p0` of the item it
//! showed there, the evaluation policy's probability `pe` of the same item
//! there, and optionally a direct model's reward predictions. A slot's
//! weight is `w = pe / p0` (clipped at `clip` if set). Per request the
//! estimators sum their slots:
//!
//! - **IPS**: `Σ_k w_k r_k` (Horvitz–Thompson);
//! - **SNIPS**: each slot's `Σ w r` divided by that slot's `Σ w` over the
//!   requests (the weights' mean is 1 in expectation), summed over slots;
//! - **DR**: `Σ_k q̂e_k + w_k (r_k − q̂_k)` (Dudík et al. 2011), where
//!   `q̂_k` is the model's reward for the logged item and `q̂e_k` its
//!   expectation under the evaluation policy;
//! - **Switch-DR**: DR where `w_k <= tau`, the model alone where the weight
//!   is larger (Wang et al. 2017).
//!
//! The slot probabilities decide the variant for ranked lists:
//! - [`SlateWeight::Independent`]: the marginal probability of the item at
//!   its position (the independent / position-based estimator, unbiased
//!   when a slot's reward depends on its own item and position only);
//! - [`SlateWeight::Cascade`]: the product of the conditional
//!   probabilities of the slots down to this one (reward-interaction IPS,
//!   unbiased when a user's reward at a slot depends on the slots above).
//!
//! Every estimate comes with the standard error of its per-request terms,
//! a bootstrap percentile interval over requests (seeded), and the
//! effective sample size `(Σw)² / Σw²` of the first slot. The Open Bandit
//! Pipeline's IPW and SNIPW are these estimators on one-slot requests
//! (`examples/off_policy.rs` checks them on its logs).

use crate::error::{Error, Result};
use serde::Serialize;

pub use super::rerank_ope::{OffPolicyReport, Outcome, Reranking, evaluate_reranking};

/// One slot of a logged request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slot {
    /// The slot's index (self-normalization is per slot).
    pub slot: usize,
    /// The reward seen (a click, an order's value).
    pub reward: f64,
    /// The logging policy's probability of the logged item here (> 0).
    pub logging: f64,
    /// The evaluation policy's probability of the same item here.
    pub target: f64,
    /// The same two as conditional probabilities given the slots above
    /// (for [`SlateWeight::Cascade`]); `None` where not logged.
    pub conditional: Option<(f64, f64)>,
    /// A direct model's reward for the logged item here, and its
    /// expectation under the evaluation policy (for DR).
    pub model: Option<(f64, f64)>,
}

impl Slot {
    /// A slot without conditional probabilities or model.
    pub fn new(slot: usize, reward: f64, logging: f64, target: f64) -> Slot {
        Slot { slot, reward, logging, target, conditional: None, model: None }
    }
}

/// How a slot's weight is formed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlateWeight {
    /// `pe / p0` of the item at its position.
    Independent,
    /// The product of the conditional ratios of the slots down to this one.
    Cascade,
}

/// An estimator (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// Inverse propensity scoring.
    Ips,
    /// Self-normalized IPS.
    Snips,
    /// Doubly robust, the model as the direct method.
    Dr,
    /// Doubly robust where the weight is at most `tau`, the model beyond.
    SwitchDr {
        /// The largest weight DR is used with.
        tau: f64,
    },
}

/// Settings of [`estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpeConfig {
    /// How slot weights are formed. Default independent.
    pub weight: SlateWeight,
    /// Weights above this are cut to it (`None`: unclipped). Default none.
    pub clip: Option<f64>,
    /// Bootstrap resamples of the requests for the interval (0: none).
    /// Default 1,000.
    pub bootstrap: usize,
    /// The interval's level. Default 0.95.
    pub level: f64,
    /// The bootstrap's seed. Default 7.
    pub seed: u64,
}

impl Default for OpeConfig {
    fn default() -> Self {
        OpeConfig {
            weight: SlateWeight::Independent,
            clip: None,
            bootstrap: 1_000,
            level: 0.95,
            seed: 7,
        }
    }
}

/// An estimate of the evaluation policy's reward per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// The standard error of the mean of the per-request terms (for
    /// SNIPS, of the ratio by the delta method).
    pub se: f64,
    /// The bootstrap percentile interval at [`OpeConfig::level`] (the
    /// value twice where `bootstrap` is 0).
    pub ci: (f64, f64),
    /// The effective sample size of the first slot's weights,
    /// `(Σw)² / Σw²`.
    pub ess: f64,
    /// Requests.
    pub requests: usize,
}

/// Logged requests: request `i` is `slots[bounds[i]..bounds[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Logged {
    /// Every request's slots, request after request.
    pub slots: Vec<Slot>,
    /// Where each request starts, and the end.
    pub bounds: Vec<usize>,
}

impl Logged {
    /// No requests.
    pub fn new() -> Logged {
        Logged { slots: Vec::new(), bounds: vec![0] }
    }

    /// Appends one request's slots.
    pub fn push(&mut self, slots: &[Slot]) {
        if self.bounds.is_empty() {
            self.bounds.push(0);
        }
        self.slots.extend_from_slice(slots);
        self.bounds.push(self.slots.len());
    }

    /// Requests logged.
    pub fn requests(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// Checks every probability and reward (see [`estimate`]'s errors).
    fn validate(&self, cfg: &OpeConfig, est: Estimator) -> Result<()> {
        let bad =
            |at: String, why: &str| Error::invalid_value("off-policy log", at, why.to_string());
        if self.requests() == 0
            || self.bounds.first() != Some(&0)
            || self.bounds.last() != Some(&self.slots.len())
        {
            return Err(bad(
                "requests".into(),
                "no request, or bounds that do not cover the slots",
            ));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if cfg.clip.is_some_and(|c| !positive(c)) || !(cfg.level > 0.0 && cfg.level < 1.0) {
            return Err(Error::invalid_config("ope", "clip > 0, level in (0, 1)"));
        }
        if let Estimator::SwitchDr { tau } = est
            && !positive(tau)
        {
            return Err(Error::invalid_config("ope", "switch tau > 0"));
        }
        let prob = |p: f64| p.is_finite() && p > 0.0 && p <= 1.0 + 1e-9;
        let target = |p: f64| p.is_finite() && (0.0..=1.0 + 1e-9).contains(&p);
        for (i, s) in self.slots.iter().enumerate() {
            let at = format!("slot {i}");
            if !(s.reward.is_finite() && prob(s.logging) && target(s.target)) {
                return Err(bad(
                    at,
                    "a reward not finite, a logging probability not in (0, 1] or a target one not in [0, 1]",
                ));
            }
            if cfg.weight == SlateWeight::Cascade {
                let Some((l, t)) = s.conditional else {
                    return Err(bad(at, "the cascade weight needs conditional probabilities"));
                };
                if !(prob(l) && target(t)) {
                    return Err(bad(at, "a conditional probability out of range"));
                }
            }
            if matches!(est, Estimator::Dr | Estimator::SwitchDr { .. }) {
                match s.model {
                    Some((q, qe)) if q.is_finite() && qe.is_finite() => {}
                    _ => return Err(bad(at, "DR needs the model's two finite predictions")),
                }
            }
        }
        Ok(())
    }
}

/// Each slot's weight under `cfg` (clipped).
fn weights(log: &Logged, cfg: &OpeConfig) -> Vec<f64> {
    let clip = |w: f64| cfg.clip.map_or(w, |c| w.min(c));
    let mut w = Vec::with_capacity(log.slots.len());
    for r in log.bounds.windows(2) {
        let mut prefix = 1.0;
        for s in &log.slots[r[0]..r[1]] {
            let v = match (cfg.weight, s.conditional) {
                (SlateWeight::Cascade, Some((l, t))) => {
                    prefix *= t / l;
                    prefix
                }
                _ => s.target / s.logging,
            };
            w.push(clip(v));
        }
    }
    w
}

/// Per request, the estimator's term; for SNIPS also each slot's weight
/// (the normalizers).
fn terms(log: &Logged, w: &[f64], est: Estimator) -> Vec<f64> {
    log.bounds
        .windows(2)
        .map(|r| {
            (r[0]..r[1])
                .map(|i| {
                    let (s, w) = (&log.slots[i], w[i]);
                    let (q, qe) = s.model.unwrap_or((0.0, 0.0));
                    match est {
                        Estimator::Ips | Estimator::Snips => w * s.reward,
                        Estimator::Dr => qe + w * (s.reward - q),
                        Estimator::SwitchDr { tau } => {
                            if w <= tau {
                                qe + w * (s.reward - q)
                            } else {
                                qe
                            }
                        }
                    }
                })
                .sum()
        })
        .collect()
}

/// The slots' indices present, the per-request `Σ w r` and `Σ w` of each.
fn by_slot(log: &Logged, w: &[f64]) -> (usize, Vec<Vec<(f64, f64)>>) {
    let slots = log.slots.iter().map(|s| s.slot + 1).max().unwrap_or(0);
    let per_request = log
        .bounds
        .windows(2)
        .map(|r| {
            let mut v = vec![(0.0, 0.0); slots];
            for (s, &w) in log.slots[r[0]..r[1]].iter().zip(&w[r[0]..r[1]]) {
                v[s.slot].0 += w * s.reward;
                v[s.slot].1 += w;
            }
            v
        })
        .collect();
    (slots, per_request)
}

/// SNIPS over the requests `pick` names (with repeats).
fn snips(per: &[Vec<(f64, f64)>], slots: usize, pick: impl Iterator<Item = usize> + Clone) -> f64 {
    (0..slots)
        .map(|k| {
            let (num, den) =
                pick.clone().fold((0.0, 0.0), |a, i| (a.0 + per[i][k].0, a.1 + per[i][k].1));
            if den > 0.0 { num / den } else { 0.0 }
        })
        .sum()
}

/// An estimate recomputed on a resample of the requests (indices, with
/// repeats).
type Statistic = Box<dyn Fn(&[usize]) -> f64>;

/// Estimates the evaluation policy's reward per request from `log` (see
/// the module docs).
///
/// Errors: no request; a logging probability not in (0, 1], a target one
/// not in [0, 1], a reward not finite; a cascade weight without
/// conditional probabilities; DR without the model's predictions; a clip
/// or `tau` not above 0, a level not in (0, 1)
/// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue) or
/// [`InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
///
/// ```
/// use omnifeed::eval::ope::{estimate, Estimator, Logged, OpeConfig, Slot};
/// // A uniform logging policy over two items; the new policy always shows
/// // item A, which was clicked every time it was shown.
/// let mut log = Logged::new();
/// for i in 0..100 {
///     let shown_a = i % 2 == 0;
///     let target = if shown_a { 1.0 } else { 0.0 };
///     log.push(&[Slot::new(0, if shown_a { 1.0 } else { 0.0 }, 0.5, target)]);
/// }
/// let e = estimate(&log, Estimator::Snips, &OpeConfig::default())?;
/// assert!((e.value - 1.0).abs() < 1e-12);
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub fn estimate(log: &Logged, est: Estimator, cfg: &OpeConfig) -> Result<Estimate> {
    log.validate(cfg, est)?;
    let n = log.requests();
    let w = weights(log, cfg);
    let first: Vec<f64> =
        log.bounds[..n].iter().map(|&b| if b < w.len() { w[b] } else { 0.0 }).collect();
    let (s1, s2) = first.iter().fold((0.0, 0.0), |a, &x| (a.0 + x, a.1 + x * x));
    let ess = if s2 > 0.0 { s1 * s1 / s2 } else { 0.0 };
    let nf = n as f64;
    let (value, se, stat): (f64, f64, Statistic) = match est {
        Estimator::Snips => {
            let (slots, per) = by_slot(log, &w);
            let value = snips(&per, slots, 0..n);
            // The delta method: each request's linearized term, summed over slots.
            let means: Vec<(f64, f64)> = (0..slots)
                .map(|k| per.iter().fold((0.0, 0.0), |a, p| (a.0 + p[k].0 / nf, a.1 + p[k].1 / nf)))
                .collect();
            let resid: Vec<f64> = per
                .iter()
                .map(|v| {
                    means
                        .iter()
                        .enumerate()
                        .map(
                            |(k, &(num, den))| {
                                if den > 0.0 { (v[k].0 - num / den * v[k].1) / den } else { 0.0 }
                            },
                        )
                        .sum()
                })
                .collect();
            let se = (resid.iter().map(|r| r * r).sum::<f64>() / (nf * (nf - 1.0).max(1.0))).sqrt();
            (value, se, Box::new(move |idx: &[usize]| snips(&per, slots, idx.iter().copied())))
        }
        _ => {
            let t = terms(log, &w, est);
            let mean = t.iter().sum::<f64>() / nf;
            let var = t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0).max(1.0);
            (
                mean,
                (var / nf).sqrt(),
                Box::new(move |idx: &[usize]| {
                    idx.iter().map(|&i| t[i]).sum::<f64>() / idx.len() as f64
                }),
            )
        }
    };
    let ci = bootstrap(n, cfg, &*stat).unwrap_or((value, value));
    Ok(Estimate { value, se, ci, ess, requests: n })
}

/// The percentile interval of `stat` over `cfg.bootstrap` resamples of the
/// `n` requests (`None` without resamples).
fn bootstrap(n: usize, cfg: &OpeConfig, stat: &dyn Fn(&[usize]) -> f64) -> Option<(f64, f64)> {
    if cfg.bootstrap == 0 {
        return None;
    }
    let mut state = cfg.seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut idx = vec![0usize; n];
    let mut stats: Vec<f64> = (0..cfg.bootstrap)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = (next() % n as u64) as usize);
            stat(&idx)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| stats[((p * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    let tail = (1.0 - cfg.level) / 2.0;
    Some((q(tail), q(1.0 - tail)))
}

/// Reads a log of the Open Bandit Dataset (ZOZOTOWN; `random/men/men.csv`
/// and the like: `item_id`, `position` 1–3, `click`, `propensity_score`)
/// and an evaluation policy's action distribution for its campaign
/// (`campaign,item_id,position,prob`, as `bts_action_dist.csv`), as
/// one-slot requests, one per row, the way the Open Bandit Pipeline treats
/// its rounds: reward the click, logging probability the row's propensity,
/// target probability the distribution's for the row's item and position.
///
/// Errors: a file that cannot be read
/// ([`ErrorKind::Io`](crate::error::ErrorKind::Io)); a row without those
/// columns or with a value that does not parse, an item and position the
/// distribution lacks
/// ([`ErrorKind::Parse`](crate::error::ErrorKind::Parse)).
pub fn open_bandit_log(
    log: &std::path::Path,
    action_dist: &std::path::Path,
    campaign: &str,
) -> Result<Logged> {
    use std::collections::HashMap;
    let read = |path: &std::path::Path| -> Result<csv::Reader<std::fs::File>> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(csv::ReaderBuilder::new().has_headers(true).from_reader(f))
    };
    let column = |headers: &csv::StringRecord, path: &std::path::Path, name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::parse(path, Some(1), format!("no `{name}` column")))
    };
    let mut dist: HashMap<(u32, u32), f64> = HashMap::new();
    let mut rdr = read(action_dist)?;
    let h = rdr.headers().map_err(|e| Error::parse(action_dist, Some(1), e.to_string()))?.clone();
    let (c_campaign, c_item) =
        (column(&h, action_dist, "campaign")?, column(&h, action_dist, "item_id")?);
    let (c_pos, c_prob) = (column(&h, action_dist, "position")?, column(&h, action_dist, "prob")?);
    for (line, rec) in rdr.records().enumerate() {
        let at = Some(line as u64 + 2);
        let rec = rec.map_err(|e| Error::parse(action_dist, at, e.to_string()))?;
        if rec.get(c_campaign) != Some(campaign) {
            continue;
        }
        let num = |c: usize| -> Result<f64> {
            rec.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| Error::parse(action_dist, at, format!("column {c} is not a number")))
        };
        dist.insert((num(c_item)? as u32, num(c_pos)? as u32), num(c_prob)?);
    }
    let mut out = Logged::new();
    let mut rdr = read(log)?;
    let h = rdr.headers().map_err(|e| Error::parse(log, Some(1), e.to_string()))?.clone();
    let (c_item, c_pos) = (column(&h, log, "item_id")?, column(&h, log, "position")?);
    let (c_click, c_prop) = (column(&h, log, "click")?, column(&h, log, "propensity_score")?);
    for (line, rec) in rdr.records().enumerate() {
        let at = Some(line as u64 + 2);
        let rec = rec.map_err(|e| Error::parse(log, at, e.to_string()))?;
        let num = |c: usize| -> Result<f64> {
            rec.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| Error::parse(log, at, format!("column {c} is not a number")))
        };
        let (item, pos) = (num(c_item)? as u32, num(c_pos)? as u32);
        let target = *dist.get(&(item, pos)).ok_or_else(|| {
            Error::parse(
                log,
                at,
                format!("item {item} at position {pos} is not in the distribution"),
            )
        })?;
        out.push(&[Slot::new(0, num(c_click)?, num(c_prop)?, target)]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(rows: &[(f64, f64, f64)]) -> Logged {
        let mut l = Logged::new();
        for &(r, p0, pe) in rows {
            l.push(&[Slot::new(0, r, p0, pe)]);
        }
        l
    }

    #[test]
    fn hand_checked_values() {
        // Weights 2, 0, 1, 0.5; rewards 1, 1, 0, 1.
        let log = log_of(&[(1.0, 0.25, 0.5), (1.0, 0.5, 0.0), (0.0, 0.5, 0.5), (1.0, 0.5, 0.25)]);
        let cfg = OpeConfig { bootstrap: 0, ..OpeConfig::default() };
        let ips = estimate(&log, Estimator::Ips, &cfg).unwrap();
        assert!((ips.value - 2.5 / 4.0).abs() < 1e-12);
        let sn = estimate(&log, Estimator::Snips, &cfg).unwrap();
        assert!((sn.value - 2.5 / 3.5).abs() < 1e-12);
        // ESS: (3.5)^2 / (4 + 0 + 1 + 0.25).
        assert!((ips.ess - 12.25 / 5.25).abs() < 1e-12);
        // Clipped at 1: weights 1, 0, 1, 0.5.
        let clipped = OpeConfig { clip: Some(1.0), ..cfg };
        assert!(
            (estimate(&log, Estimator::Ips, &clipped).unwrap().value - 1.5 / 4.0).abs() < 1e-12
        );
        // DR with a model that predicts 0.5 for everything, 0.5 expected:
        // 0.5 + w (r - 0.5) per row = 1.5, 0.5, 0.0, 0.75.
        let mut dr_log = log.clone();
        dr_log.slots.iter_mut().for_each(|s| s.model = Some((0.5, 0.5)));
        let dr = estimate(&dr_log, Estimator::Dr, &cfg).unwrap();
        assert!((dr.value - 2.75 / 4.0).abs() < 1e-12);
        // Switch at tau 1: the weight-2 row uses the model alone (0.5).
        let sw = estimate(&dr_log, Estimator::SwitchDr { tau: 1.0 }, &cfg).unwrap();
        assert!((sw.value - 1.75 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn slates_sum_their_slots_and_cascade_multiplies() {
        let mut log = Logged::new();
        let s =
            |slot, r, c: (f64, f64)| Slot { conditional: Some(c), ..Slot::new(slot, r, c.0, c.1) };
        log.push(&[s(0, 1.0, (0.5, 1.0)), s(1, 1.0, (0.5, 0.5))]);
        log.push(&[s(0, 0.0, (0.5, 0.0)), s(1, 1.0, (1.0, 1.0))]);
        let cfg = OpeConfig { bootstrap: 0, ..OpeConfig::default() };
        // Independent: (2·1 + 1·1) + (0 + 1·1) = 4 over 2 requests.
        assert!((estimate(&log, Estimator::Ips, &cfg).unwrap().value - 2.0).abs() < 1e-12);
        // Cascade: slot 1's weight is 2·1 = 2, then 0·1 = 0: (2 + 2) + 0.
        let cascade = OpeConfig { weight: SlateWeight::Cascade, ..cfg };
        assert!((estimate(&log, Estimator::Ips, &cascade).unwrap().value - 2.0).abs() < 1e-12);
        // SNIPS normalizes per slot: slot 0: 2/2 = 1; slot 1: (1+1)/(1+1) = 1.
        assert!((estimate(&log, Estimator::Snips, &cfg).unwrap().value - 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_interval_covers_the_value_and_narrows_with_data() {
        let rows: Vec<(f64, f64, f64)> = (0..2000)
            .map(|i| (f64::from(u8::from(i % 7 == 0)), 0.5, if i % 3 == 0 { 1.0 } else { 0.25 }))
            .collect();
        let e = estimate(&log_of(&rows), Estimator::Ips, &OpeConfig::default()).unwrap();
        assert!(e.ci.0 < e.value && e.value < e.ci.1, "{e:?}");
        let small = estimate(&log_of(&rows[..200]), Estimator::Ips, &OpeConfig::default()).unwrap();
        assert!(small.ci.1 - small.ci.0 > 2.0 * (e.ci.1 - e.ci.0), "{small:?} {e:?}");
        // Standard error and the interval agree roughly (normal: ±1.96 se).
        let width = e.ci.1 - e.ci.0;
        assert!((width / (2.0 * 1.96 * e.se) - 1.0).abs() < 0.2, "{e:?}");
    }

    #[test]
    fn bad_logs_are_errors() {
        let cfg = OpeConfig::default();
        assert!(estimate(&Logged::new(), Estimator::Ips, &cfg).is_err());
        assert!(estimate(&log_of(&[(1.0, 0.0, 0.5)]), Estimator::Ips, &cfg).is_err());
        assert!(estimate(&log_of(&[(f64::NAN, 0.5, 0.5)]), Estimator::Ips, &cfg).is_err());
        assert!(estimate(&log_of(&[(1.0, 0.5, 1.5)]), Estimator::Ips, &cfg).is_err());
        assert!(estimate(&log_of(&[(1.0, 0.5, 0.5)]), Estimator::Dr, &cfg).is_err(), "no model");
        let cascade = OpeConfig { weight: SlateWeight::Cascade, ..cfg };
        assert!(estimate(&log_of(&[(1.0, 0.5, 0.5)]), Estimator::Ips, &cascade).is_err());
        let clip0 = OpeConfig { clip: Some(0.0), ..cfg };
        assert!(estimate(&log_of(&[(1.0, 0.5, 0.5)]), Estimator::Ips, &clip0).is_err());
    }
}
