//! The whole-catalog passes of a publish: priors, smoothed rates, ranking
//! priors, governance (merchant scores, suspensions, gates), each product's
//! best content, the source lists and the repurchase cycles.

use crate::catalog::Catalog;
use crate::catalog::{ContentKind, MerchantStatus};
use crate::ids::{ItemIdx, Timestamp, elapsed};
use crate::signals::config::RepurchaseConfig;
use crate::signals::counters::CounterTable;
use crate::signals::rates::{BetaPrior, MomentSums};
use crate::signals::tables::{CycleStats, Shared, Tables};
use crate::signals::{Counter, RATES, Rate, SignalConfig};
use std::collections::HashSet;

/// A category's repurchase cycle, estimated from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepurchaseCycle {
    /// Users who bought in the category.
    pub buyers: u32,
    /// Repeat purchases (a later purchase in the category by the same
    /// user, at least `min_interval` after the previous one).
    pub repeats: u32,
    /// The median interval between repeat purchases, seconds (quarter-octave
    /// resolution), if there were any.
    pub cycle: Option<i64>,
    /// True if enough buyers come back to treat it as a consumable; false
    /// for a durable (suppressed after purchase).
    pub consumable: bool,
}

/// A hard governance gate: the product gets no exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Its merchant is suspended (catalog, by hand, or automatically).
    MerchantSuspended,
    /// Flagged by hand as a problem product.
    Flagged,
    /// Its refund rate passed the problem threshold.
    Refunds,
    /// Its complaint rate passed the problem threshold.
    Complaints,
}

impl Gate {
    /// The lowercase name used in traces.
    pub fn name(self) -> &'static str {
        match self {
            Gate::MerchantSuspended => "merchant_suspended",
            Gate::Flagged => "flagged",
            Gate::Refunds => "refunds",
            Gate::Complaints => "complaints",
        }
    }
}

/// How many of the most engaged rows `Signals::trending` keeps.
const TRENDING: usize = 2000;
/// How many rows each per-category list keeps.
const PER_CATEGORY: usize = 100;
/// How many content items `Signals::rising_content` keeps.
const RISING: usize = 500;

/// The whole-catalog passes of a publish, one method each (see
/// [`Signals::derive`]).
#[derive(Clone, Copy)]
pub(crate) struct Deriver<'a> {
    shared: &'a Shared,
    tables: &'a Tables,
    as_of: Timestamp,
    cfg: &'a SignalConfig,
    catalog: &'a Catalog,
    /// The rate half-life's index.
    h: usize,
    /// Products.
    n: usize,
    /// Categories.
    n_cats: usize,
}

/// Engagement volume on one half-life: a score per row in `[0, 1]`
/// (`ln(1 + w) / ln(1 + max)`) and the most engaged listed rows.
#[derive(Debug, Default)]
pub(crate) struct Trend {
    pub(crate) scores: Vec<f32>,
    pub(crate) top: Vec<ItemIdx>,
}

/// Priors per category and rate, then the content and merchant priors.
type Priors = (Vec<BetaPrior>, [BetaPrior; RATES], [BetaPrior; RATES]);

/// Per-category trending and fresh lists, rising and live content rows.
type Lists = (Vec<Vec<ItemIdx>>, Vec<Vec<ItemIdx>>, Vec<u32>, Vec<u32>);

impl<'a> Deriver<'a> {
    pub(crate) fn new(shared: &'a Shared, tables: &'a Tables, as_of: Timestamp) -> Self {
        let (cfg, catalog) = (&shared.config, &*shared.catalog);
        let (h, n, n_cats) = (cfg.rate_half_life, catalog.len(), shared.categories.len());
        Deriver { shared, tables, as_of, cfg, catalog, h, n, n_cats }
    }

    /// `(successes, trials)` of rate `r` of entity `e` on the rate half-life.
    fn sc(&self, table: &CounterTable, e: usize, r: Rate) -> (f32, f32) {
        let (s, t) = r.counters();
        (table.get(e, s as usize, self.h, self.as_of), table.get(e, t as usize, self.h, self.as_of))
    }

    /// Priors: per category for products, global for content and shops.
    pub(crate) fn priors(&self) -> Priors {
        let Deriver { shared, tables, cfg, n, n_cats, .. } = *self;
        let mut sums = vec![MomentSums::default(); n_cats * RATES];
        for row in 0..n {
            let cat = shared.product_cat[row] as usize;
            for (ri, &r) in Rate::ALL.iter().enumerate() {
                let (s, t) = self.sc(&tables.products, row, r);
                sums[cat * RATES + ri].add(s, t, &cfg.priors);
            }
        }
        let mut global = [MomentSums::default(); RATES];
        for cat in 0..n_cats {
            for ri in 0..RATES {
                global[ri].merge(&sums[cat * RATES + ri]);
            }
        }
        let global_prior: Vec<BetaPrior> = global
            .iter()
            .map(|g| g.fit(&cfg.priors).unwrap_or_else(|| g.fallback(&cfg.priors)))
            .collect();
        let priors: Vec<BetaPrior> = (0..n_cats * RATES)
            .map(|i| sums[i].fit(&cfg.priors).unwrap_or(global_prior[i % RATES]))
            .collect();
        let fit_all = |table: &crate::signals::counters::CounterTable| {
            let mut s = [MomentSums::default(); RATES];
            for e in 0..table.len() {
                for (ri, &r) in Rate::ALL.iter().enumerate() {
                    let (a, b) = self.sc(table, e, r);
                    s[ri].add(a, b, &cfg.priors);
                }
            }
            std::array::from_fn::<BetaPrior, RATES, _>(|ri| {
                s[ri].fit(&cfg.priors).unwrap_or_else(|| s[ri].fallback(&cfg.priors))
            })
        };
        let content_priors = fit_all(&tables.contents);
        let merchant_priors = fit_all(&tables.merchants);

        (priors, content_priors, merchant_priors)
    }

    /// Smoothed rates of products and content.
    pub(crate) fn rates(
        &self,
        priors: &[BetaPrior],
        content_priors: &[BetaPrior; RATES],
    ) -> (Vec<f32>, Vec<f32>) {
        let Deriver { shared, tables, catalog, n, .. } = *self;
        let mut rates = vec![0.0f32; n * RATES];
        for row in 0..n {
            let cat = shared.product_cat[row] as usize;
            for (ri, &r) in Rate::ALL.iter().enumerate() {
                let (s, t) = self.sc(&tables.products, row, r);
                rates[row * RATES + ri] = priors[cat * RATES + ri].smooth(s, t);
            }
        }
        let mut content_rates = vec![0.0f32; catalog.content_len() * RATES];
        for crow in 0..catalog.content_len() {
            for (ri, &r) in Rate::ALL.iter().enumerate() {
                let (s, t) = self.sc(&tables.contents, crow, r);
                content_rates[crow * RATES + ri] = content_priors[ri].smooth(s, t);
            }
        }

        (rates, content_rates)
    }

    /// Ranking priors: conversion per impression, and trending volume on
    /// the rate half-life (`h`) and on the next shorter one.
    pub(crate) fn ranking(&self, rates: &[f32]) -> (Vec<f32>, Trend, Trend) {
        let Deriver { n, .. } = *self;
        let mut rate_score: Vec<f32> = (0..n)
            .map(|row| {
                rates[row * RATES + Rate::Ctr as usize] * rates[row * RATES + Rate::Cvr as usize]
            })
            .collect();
        let max = rate_score.iter().copied().fold(0.0f32, f32::max);
        if max > 0.0 {
            rate_score.iter_mut().for_each(|x| *x /= max);
        }
        (rate_score, self.trend(self.h), self.trend(self.h.saturating_sub(1)))
    }

    /// Engagement volume on half-life `h`: `ln(1 + w) / ln(1 + max)` per
    /// row, and the most engaged listed rows.
    fn trend(&self, h: usize) -> Trend {
        let Deriver { tables, as_of, n, catalog, .. } = *self;
        let engagement: Vec<f32> = (0..n)
            .map(|row| tables.products.get(row, Counter::Engagement as usize, h, as_of))
            .collect();
        let max = engagement.iter().copied().fold(0.0f32, f32::max);
        let scores: Vec<f32> = if max > 0.0 {
            engagement.iter().map(|&x| (x.ln_1p() / max.ln_1p()).clamp(0.0, 1.0)).collect()
        } else {
            vec![0.0; n]
        };
        // Delisted rows keep their counters but leave every list.
        let mut top: Vec<ItemIdx> = (0..n as u32)
            .map(ItemIdx)
            .filter(|&r| engagement[r.index()] > 0.0 && catalog.is_listed(r))
            .collect();
        top.sort_by(|a, b| engagement[b.index()].total_cmp(&engagement[a.index()]).then(a.cmp(b)));
        top.truncate(TRENDING);
        Trend { scores, top }
    }

    /// Governance: merchant scores, suspensions and product gates.
    pub(crate) fn governance(
        &self,
        merchant_priors: &[BetaPrior; RATES],
        rates: &[f32],
        flagged: &HashSet<u32>,
        suspended: &HashSet<u32>,
    ) -> (Vec<f32>, Vec<bool>, Vec<Option<Gate>>) {
        let Deriver { tables, as_of, cfg, catalog, h, n, .. } = *self;
        let g = &cfg.governance;
        let (refund_mean, complaint_mean) = (
            merchant_priors[Rate::RefundRate as usize].mean(),
            merchant_priors[Rate::ComplaintRate as usize].mean(),
        );
        let mut merchant_score = Vec::with_capacity(catalog.merchants().len());
        let mut merchant_suspended = Vec::with_capacity(catalog.merchants().len());
        for (m, merchant) in catalog.merchants().iter().enumerate() {
            let (rs, rt) = self.sc(&tables.merchants, m, Rate::RefundRate);
            let (cs, ct) = self.sc(&tables.merchants, m, Rate::ComplaintRate);
            let refund = merchant_priors[Rate::RefundRate as usize].smooth(rs, rt);
            let complaint = merchant_priors[Rate::ComplaintRate as usize].smooth(cs, ct);
            let score = (merchant.experience
                - g.refund_weight * (refund - refund_mean).max(0.0)
                - g.complaint_weight * (complaint - complaint_mean).max(0.0))
            .clamp(0.0, 1.0);
            merchant_score.push(score);
            merchant_suspended.push(
                merchant.status == MerchantStatus::Suspended
                    || suspended.contains(&(m as u32))
                    || score < g.suspend_below,
            );
        }
        let gates: Vec<Option<Gate>> = (0..n)
            .map(|row| {
                let r = ItemIdx(row as u32);
                if merchant_suspended[catalog.merchant_row_of(r) as usize] {
                    return Some(Gate::MerchantSuspended);
                }
                if flagged.contains(&(row as u32)) {
                    return Some(Gate::Flagged);
                }
                let orders = tables.products.get(row, Counter::Order as usize, h, as_of);
                if orders >= g.problem_min_orders {
                    if rates[row * RATES + Rate::RefundRate as usize] >= g.problem_refund_rate {
                        return Some(Gate::Refunds);
                    }
                    if rates[row * RATES + Rate::ComplaintRate as usize] >= g.problem_complaint_rate
                    {
                        return Some(Gate::Complaints);
                    }
                }
                None
            })
            .collect();

        (merchant_score, merchant_suspended, gates)
    }

    /// Presentation: each product's best content by smoothed completion.
    pub(crate) fn best_content(&self, content_rates: &[f32]) -> Vec<u32> {
        let Deriver { catalog, n, .. } = *self;
        (0..n)
            .map(|row| {
                let wc = Rate::WatchCompletion as usize;
                catalog
                    .product_content_rows(ItemIdx(row as u32))
                    .iter()
                    .copied()
                    .max_by(|&a, &b| {
                        content_rates[a as usize * RATES + wc]
                            .total_cmp(&content_rates[b as usize * RATES + wc])
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(u32::MAX)
            })
            .collect()
    }

    /// Per-category lists and content lists for the candidate sources.
    pub(crate) fn lists(&self, trending: &[ItemIdx]) -> Lists {
        let Deriver { shared, tables, as_of, cfg, catalog, n, n_cats, .. } = *self;
        let mut category_trending: Vec<Vec<ItemIdx>> = vec![Vec::new(); n_cats];
        for &r in trending {
            let list = &mut category_trending[shared.product_cat[r.index()] as usize];
            if list.len() < PER_CATEGORY {
                list.push(r);
            }
        }
        let mut category_fresh: Vec<Vec<ItemIdx>> = vec![Vec::new(); n_cats];
        let listed = catalog.listed_at();
        for row in 0..n {
            if listed[row] <= as_of
                && elapsed(as_of, listed[row]) <= cfg.fresh_age
                && catalog.is_listed(ItemIdx(row as u32))
            {
                category_fresh[shared.product_cat[row] as usize].push(ItemIdx(row as u32));
            }
        }
        for list in &mut category_fresh {
            list.sort_by(|a, b| listed[b.index()].cmp(&listed[a.index()]).then(a.cmp(b)));
            list.truncate(PER_CATEGORY);
        }
        let views: Vec<f32> = (0..catalog.content_len())
            .map(|c| tables.contents.get(c, Counter::View as usize, 0, as_of))
            .collect();
        let mut rising: Vec<u32> =
            (0..catalog.content_len() as u32).filter(|&c| views[c as usize] > 0.0).collect();
        rising.sort_by(|&a, &b| views[b as usize].total_cmp(&views[a as usize]).then(a.cmp(&b)));
        rising.truncate(RISING);
        let live: Vec<u32> = (0..catalog.content_len() as u32)
            .filter(|&c| {
                let (kind, _, ends) = catalog.content_times(c);
                kind == ContentKind::LiveStream && ends.is_none_or(|e| e > as_of)
            })
            .collect();

        (category_trending, category_fresh, rising, live)
    }
}

/// Each category's repurchase cycle from its interval histogram.
pub(crate) fn cycles(repurchase: &[CycleStats], rp: &RepurchaseConfig) -> Vec<RepurchaseCycle> {
    repurchase
        .iter()
        .map(|st| {
            let cycle = st.median();
            let share = if st.buyers > 0 { st.repeats as f32 / st.buyers as f32 } else { 0.0 };
            RepurchaseCycle {
                buyers: st.buyers,
                repeats: st.repeats,
                cycle,
                consumable: cycle.is_some()
                    && st.repeats >= rp.min_repeats
                    && share >= rp.consumable_share,
            }
        })
        .collect()
}
