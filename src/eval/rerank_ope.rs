//! Off-policy evaluation of a new ranking from joined exposures: what a
//! change of heads (weights, a model), fusion or placement would have
//! earned on the feeds a shop logged (issue 25).
//!
//! The evaluated policy re-ranks each logged request's items, with the
//! features they were served with:
//! - its heads are the new scorer's on the logged feature rows;
//! - its value for an item is the logged fused score with the head terms
//!   (and the price term) swapped for the new ones:
//!   `score · Π new_h^e'_h / old_h^e_h · price^(e'_p − e_p)`, the other
//!   fusion terms, boosts and rules kept as served (their exponents must
//!   not change: the log holds their product only);
//! - its placement is the new config's: deterministic (the item at its
//!   rank with probability 1) or Plackett–Luce over the first `top_n`
//!   (the exact marginals). Exploration slots draw from outside the logged
//!   feed and cannot be evaluated from it.
//!
//! Each slot's reward is weighed by the new policy's probability of the
//! logged item at the logged position over the logged propensity
//! ([`SlateWeight::Independent`](super::ope::SlateWeight)). What the log
//! never showed (items retrieved anew, filtered, pushed up from below the
//! feed) is outside this evaluation; a deterministic log overlaps a new
//! ranking only where both put the same item at the same place, which the
//! effective sample size shows.
//!
//! The direct model of DR is the new heads: pCTR for clicks, pCVR for
//! orders (times the price for GMV), times the reward's rate per position
//! relative to the first in the log, scaled to the log's total.

use super::ope::{Estimate, Estimator, Logged, OpeConfig, Slot, estimate};
use crate::error::{Error, Result};
use crate::exposure::{Label, TrainingExample};
use crate::features::{F, FeatureMatrix, HEADS, col};
use crate::ids::ProductId;
use crate::rank::Fusion;
use crate::rerank::{Stochastic, plackett_luce_marginals, plackett_luce_weights};
use crate::stage::Scorer;
use serde::Serialize;
use std::collections::BTreeMap;

/// A new ranking of logged feeds (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Reranking<'a> {
    /// The new heads, on the features as served.
    pub scorer: &'a dyn Scorer,
    /// The new fusion exponents.
    pub fusion: Fusion,
    /// The fusion exponents the log was served with.
    pub logged_fusion: Fusion,
    /// The new placement: [`Stochastic::Off`] or
    /// [`Stochastic::PlackettLuce`].
    pub stochastic: &'a Stochastic,
}

/// One reward's figures: the logging policy's (its mean per request) and
/// the new policy's estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outcome {
    /// The logging policy's reward per request (on-policy).
    pub logging: f64,
    /// IPS.
    pub ips: Estimate,
    /// SNIPS.
    pub snips: Estimate,
    /// DR with the new heads as the direct model.
    pub dr: Estimate,
}

/// What [`evaluate_reranking`] found, per request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffPolicyReport {
    /// Requests evaluated.
    pub requests: usize,
    /// Their slots.
    pub slots: usize,
    /// Places (request and position) left out: without a complete row, or
    /// of a request whose positions are not all there.
    pub skipped: usize,
    /// Clicks (a click, cart or order).
    pub clicks: Outcome,
    /// Orders (not refunded).
    pub orders: Outcome,
    /// Order value, where every shown product has a price.
    pub gmv: Option<Outcome>,
    /// Shown products without a price (their orders count 0 in GMV).
    pub unpriced: usize,
}

/// One logged request: its examples by position, and the new policy's
/// heads and placement: its order (`order[k]` the item at `k`, `rank` the
/// inverse), the first `drawn` positions drawn by Plackett–Luce with the
/// marginals `m` (`drawn × drawn`, by rank among them), the rest fixed.
struct Request<'e> {
    items: Vec<&'e TrainingExample>,
    heads: Vec<f32>,
    order: Vec<usize>,
    rank: Vec<usize>,
    drawn: usize,
    m: Vec<f64>,
}

impl Request<'_> {
    /// The new policy's probability of item `i` at position `k`.
    fn target(&self, i: usize, k: usize) -> f64 {
        let r = self.rank[i];
        if r < self.drawn && k < self.drawn {
            self.m[r * self.drawn + k]
        } else {
            f64::from(u8::from(r == k))
        }
    }

    /// `Σ_j P(item j at k) · q(j)`: the expectation of `q` at position `k`.
    fn expected_at(&self, k: usize, q: impl Fn(usize) -> f64) -> f64 {
        if k < self.drawn {
            (0..self.drawn).map(|a| self.m[a * self.drawn + k] * q(self.order[a])).sum()
        } else {
            q(self.order[k])
        }
    }
}

/// Estimates what `policy` would earn on the logged feeds of `examples`
/// (joined exposures as a writer emits them or
/// [`read_examples_csv`](crate::exposure::read_examples_csv) reads them;
/// the last of several rows of one request and position counts), against
/// what the logging policy earned. `price` gives a product's price for
/// GMV.
///
/// Errors: no complete request; examples of another feature schema or
/// without the three heads; a fusion exponent other than the heads' and
/// price changed; exploration slots; a propensity not in (0, 1]
/// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)
/// or [`InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
pub fn evaluate_reranking(
    examples: &[TrainingExample],
    policy: &Reranking<'_>,
    price: &dyn Fn(ProductId) -> Option<f32>,
    cfg: &OpeConfig,
) -> Result<OffPolicyReport> {
    check_policy(policy)?;
    let (groups, mut skipped) = group(examples)?;
    let mut requests = Vec::with_capacity(groups.len());
    for items in groups {
        if items.iter().enumerate().any(|(k, e)| e.position as usize != k) {
            skipped += items.len();
            continue;
        }
        requests.push(rerank(items, policy)?);
    }
    if requests.is_empty() {
        return Err(Error::invalid_value(
            "off-policy examples",
            "requests",
            "no request with every position complete",
        ));
    }
    let unpriced =
        requests.iter().flat_map(|r| &r.items).filter(|e| price(e.product).is_none()).count();
    let slots = requests.iter().map(|r| r.items.len()).sum();
    let reward = |kind: usize| {
        move |e: &TrainingExample| -> f64 {
            let yes = |k: usize| e.labels[k] == Label::Yes;
            let ordered = yes(2) && !yes(3);
            match kind {
                0 => f64::from(u8::from(yes(0) || yes(1) || yes(2))),
                1 => f64::from(u8::from(ordered)),
                _ if ordered => f64::from(price(e.product).unwrap_or(0.0)),
                _ => 0.0,
            }
        }
    };
    let clicks = outcome(&requests, &reward(0), &|_, h| f64::from(h[0]), cfg)?;
    let orders = outcome(&requests, &reward(1), &|_, h| f64::from(h[1]), cfg)?;
    let value = |e: &TrainingExample, h: &[f32]| {
        f64::from(h[1]) * f64::from(price(e.product).unwrap_or(0.0))
    };
    let gmv =
        if unpriced < slots { Some(outcome(&requests, &reward(2), &value, cfg)?) } else { None };
    Ok(OffPolicyReport { requests: requests.len(), slots, skipped, clicks, orders, gmv, unpriced })
}

/// Errors: a change the log cannot evaluate.
fn check_policy(policy: &Reranking<'_>) -> Result<()> {
    policy.fusion.validate("off_policy.fusion")?;
    policy.logged_fusion.validate("off_policy.logged_fusion")?;
    let (new, old) = (policy.fusion, policy.logged_fusion);
    for (name, a, b) in [
        ("quality", new.quality, old.quality),
        ("relevance", new.relevance, old.relevance),
        ("refund", new.refund, old.refund),
    ] {
        if a != b {
            return Err(Error::invalid_config(
                "off_policy.fusion",
                format!(
                    "{name} is {a} against {b} in the log: the log holds the product of these \
                     terms, not each, so only the heads' and price's exponents can change"
                ),
            ));
        }
    }
    policy.stochastic.validate("off_policy.stochastic")?;
    if matches!(policy.stochastic, Stochastic::Slots { .. }) {
        return Err(Error::invalid_config(
            "off_policy.stochastic",
            "exploration slots show items from below the logged feed, which the log never \
             showed: evaluate them from a log that has them",
        ));
    }
    Ok(())
}

/// The complete examples by request (time, user, id), each request's by
/// position (the last row of a position counts); and how many places
/// (request and position) have no complete row.
fn group(examples: &[TrainingExample]) -> Result<(Vec<Vec<&TrainingExample>>, usize)> {
    let mut by: BTreeMap<(i64, u64, u64), BTreeMap<u32, &TrainingExample>> = BTreeMap::new();
    let mut open = std::collections::BTreeSet::new();
    for (i, e) in examples.iter().enumerate() {
        if !e.columns.is_current_schema() || e.features.len() != F || e.heads.len() != HEADS {
            return Err(Error::invalid_value(
                "off-policy examples",
                format!("example {i}"),
                format!(
                    "features or heads are not this build's ({F} features, {HEADS} heads): \
                     evaluate it with the version that logged it"
                ),
            ));
        }
        if !(e.propensity > 0.0 && e.propensity <= 1.0) {
            return Err(Error::invalid_value(
                "off-policy examples",
                format!("example {i}"),
                format!("propensity {} is not in (0, 1]", e.propensity),
            ));
        }
        if e.position as usize >= crate::limits::MAX_K {
            return Err(Error::invalid_value(
                "off-policy examples",
                format!("example {i}"),
                format!(
                    "position {} is past the longest feed ({})",
                    e.position,
                    crate::limits::MAX_K
                ),
            ));
        }
        let key = (e.at, e.user.0, e.request_id);
        if e.complete {
            by.entry(key).or_default().insert(e.position, e);
        } else {
            open.insert((key, e.position));
        }
    }
    // Open rows a complete one of the same place superseded are not
    // skipped.
    let skipped =
        open.iter().filter(|(k, p)| !by.get(k).is_some_and(|m| m.contains_key(p))).count();
    Ok((by.into_values().map(|m| m.into_values().collect()).collect(), skipped))
}

/// The new policy on one logged request (positions `0..n`).
fn rerank<'e>(items: Vec<&'e TrainingExample>, policy: &Reranking<'_>) -> Result<Request<'e>> {
    let n = items.len();
    let rows: Vec<f32> = items.iter().flat_map(|e| e.features.iter().copied()).collect();
    let mut heads = vec![0.0f32; n * HEADS];
    policy.scorer.score(&FeatureMatrix::from_rows(&rows)?, &mut heads);
    let (new, old) = (policy.fusion.exponents(), policy.logged_fusion.exponents());
    let ln = |x: f32| f64::from(if x.is_finite() { x.max(1e-4) } else { 1e-4 }).ln();
    let log_value: Vec<f64> = items
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut v = f64::from(e.score).max(f64::MIN_POSITIVE).ln();
            for h in 0..HEADS {
                v += f64::from(new[h]) * ln(heads[i * HEADS + h])
                    - f64::from(old[h]) * ln(e.heads[h]);
            }
            let band = e.features[col::PRICE_BAND];
            let p = if band.is_finite() { f64::from(band).exp().clamp(0.05, 20.0) } else { 1.0 };
            v + f64::from(new[3] - old[3]) * p.ln()
        })
        .collect();
    // The new order: by value, ties by the logged position.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| log_value[b].total_cmp(&log_value[a]).then(a.cmp(&b)));
    let mut rank = vec![0; n];
    for (k, &i) in order.iter().enumerate() {
        rank[i] = k;
    }
    let (drawn, m) = match *policy.stochastic {
        Stochastic::PlackettLuce { top_n, temperature } => {
            let top = top_n.min(n);
            let peak = log_value[order[0]];
            let values: Vec<f32> =
                order[..top].iter().map(|&i| ((log_value[i] - peak).exp()) as f32).collect();
            (top, plackett_luce_marginals(&plackett_luce_weights(&values, temperature)))
        }
        _ => (0, Vec::new()),
    };
    Ok(Request { items, heads, order, rank, drawn, m })
}

/// One reward's logging value and estimates.
fn outcome(
    requests: &[Request<'_>],
    reward: &dyn Fn(&TrainingExample) -> f64,
    head: &dyn Fn(&TrainingExample, &[f32]) -> f64,
    cfg: &OpeConfig,
) -> Result<Outcome> {
    // The reward's rate per position, relative to the first, and the scale
    // that makes the model's total the log's.
    let longest = requests.iter().map(|r| r.items.len()).max().unwrap_or(0);
    let mut per_pos = vec![0.0f64; longest];
    for r in requests {
        for (k, e) in r.items.iter().enumerate() {
            per_pos[k] += reward(e);
        }
    }
    let first = per_pos.first().copied().unwrap_or(0.0).max(1e-12);
    let rate: Vec<f64> = per_pos.iter().map(|c| c / first).collect();
    let h = |r: &Request<'_>, i: usize| head(r.items[i], &r.heads[i * HEADS..(i + 1) * HEADS]);
    let modelled: f64 =
        requests.iter().map(|r| (0..r.items.len()).map(|k| h(r, k) * rate[k]).sum::<f64>()).sum();
    let total: f64 = per_pos.iter().sum();
    let scale = if modelled > 0.0 { total / modelled } else { 0.0 };
    let mut log = Logged::new();
    let mut slots = Vec::new();
    for r in requests {
        slots.clear();
        for (k, e) in r.items.iter().enumerate() {
            let q = |i: usize| scale * h(r, i) * rate[k];
            slots.push(Slot {
                model: Some((q(k), r.expected_at(k, q))),
                ..Slot::new(k, reward(e), f64::from(e.propensity), r.target(k, k))
            });
        }
        log.push(&slots);
    }
    Ok(Outcome {
        logging: total / requests.len() as f64,
        ips: estimate(&log, Estimator::Ips, cfg)?,
        snips: estimate(&log, Estimator::Snips, cfg)?,
        dr: estimate(&log, Estimator::Dr, cfg)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::Columns;
    use crate::features::FEATURE_NAMES;
    use crate::ids::UserId;
    use crate::rank::{HeadWeights, LogisticScorer};
    use std::sync::Arc;

    /// Two logged requests of two items, each placed with probability
    /// 1/2, heads as the scorer gives them (so the new value is the logged
    /// score). The first showed the lower-scored item first, so the
    /// deterministic ranking never shows its slots as logged (weight 0);
    /// the second matches it (weight 2 at both slots). Clicks: the first
    /// request's second slot, the second's first slot. By hand: IPS
    /// (0 + 0 + 2·1 + 2·0) / 2 = 1; SNIPS per slot 2/2 + 0/2 = 1; the
    /// logging policy's clicks 2 / 2 = 1; and orders 0.
    #[test]
    fn a_small_log_is_estimated_by_hand() {
        let scorer = LogisticScorer::from_weights(&HeadWeights::default()).unwrap();
        let mut heads = vec![0.0f32; HEADS];
        scorer.score(&FeatureMatrix::from_rows(&[0.0; F]).unwrap(), &mut heads);
        let columns = Arc::new(Columns {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            heads: vec!["pctr".into(), "pcvr".into(), "engagement".into()],
        });
        let ex = |request: u64, position: u32, score: f32, clicked: bool| TrainingExample {
            request_id: request,
            position,
            user: UserId(1),
            product: ProductId(10 + u64::from(position)),
            surface: crate::request::Surface::Feed,
            variant: None,
            state_version: 0,
            at: 100 * request as i64,
            propensity: 0.5,
            score,
            labels: [if clicked { Label::Yes } else { Label::No }, Label::No, Label::No, Label::No],
            complete: true,
            features: vec![0.0; F],
            heads: heads.clone(),
            columns: Arc::clone(&columns),
        };
        let log =
            [ex(1, 0, 1.0, false), ex(1, 1, 2.0, true), ex(2, 0, 2.0, true), ex(2, 1, 1.0, false)];
        let policy = Reranking {
            scorer: &scorer,
            fusion: Fusion::default(),
            logged_fusion: Fusion::default(),
            stochastic: &Stochastic::Off,
        };
        let cfg = OpeConfig { bootstrap: 0, ..OpeConfig::default() };
        let r = evaluate_reranking(&log, &policy, &|_| Some(5.0), &cfg).unwrap();
        assert_eq!((r.requests, r.slots, r.skipped, r.unpriced), (2, 4, 0, 0));
        assert!((r.clicks.logging - 1.0).abs() < 1e-12);
        assert!((r.clicks.ips.value - 1.0).abs() < 1e-12, "{:?}", r.clicks.ips);
        assert!((r.clicks.snips.value - 1.0).abs() < 1e-12, "{:?}", r.clicks.snips);
        assert_eq!((r.orders.logging, r.orders.ips.value), (0.0, 0.0));
        assert_eq!(r.gmv.map(|g| g.logging), Some(0.0));
        // A request missing a position above one logged is left out (one
        // missing its last positions reads as a shorter feed); exploration
        // slots and a propensity of 0 are refused.
        let cut = [log[1].clone(), log[2].clone(), log[3].clone()];
        let r = evaluate_reranking(&cut, &policy, &|_| None, &cfg).unwrap();
        assert_eq!((r.requests, r.skipped), (1, 1));
        let slots = Stochastic::Slots { positions: vec![1], pool: 4 };
        let bad = Reranking { stochastic: &slots, ..policy };
        assert!(evaluate_reranking(&log, &bad, &|_| None, &cfg).is_err());
        let mut wrong = log.to_vec();
        wrong[0].propensity = 0.0;
        assert!(evaluate_reranking(&wrong, &policy, &|_| None, &cfg).is_err());
        // Positions are bounded by the longest feed: the last one passes
        // (its request lacks the ones above it, so it is skipped), the next
        // is refused before anything is sized by it.
        let mut far = log.to_vec();
        far[3].position = (crate::limits::MAX_K - 1) as u32;
        let r = evaluate_reranking(&far, &policy, &|_| None, &cfg).unwrap();
        assert_eq!((r.requests, r.skipped), (1, 2));
        far[3].position = crate::limits::MAX_K as u32;
        let e = evaluate_reranking(&far, &policy, &|_| None, &cfg).unwrap_err();
        assert!(e.to_string().contains("longest feed"), "{e}");
    }
}
