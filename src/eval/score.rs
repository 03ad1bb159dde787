//! Scoring the lists: per-request metrics summed per method, exposure
//! counts, and the per-method summary.

use super::metrics;
use super::report::MethodReport;
use super::{EvalConfig, EvalRequest};
use crate::catalog::Catalog;
use crate::ids::{ProductId, UserId};
use crate::signals::{Event, Level, Relevance};
use std::collections::{BTreeMap, HashMap};

/// Sums of per-request metrics and exposure counts for one method.
pub(crate) struct Accumulator {
    pub(crate) sums: BTreeMap<String, f64>,
    pub(crate) ild_n: Vec<usize>,
    pub(crate) curve: Vec<f64>,
    /// Exposure per catalog row and per merchant row, per cut-off.
    pub(crate) exposure: Vec<Vec<u64>>,
    pub(crate) merchant_exposure: Vec<Vec<u64>>,
    pub(crate) requests: usize,
}

impl Accumulator {
    pub(crate) fn new(cfg: &EvalConfig, catalog: &Catalog) -> Self {
        Accumulator {
            sums: BTreeMap::new(),
            ild_n: vec![0; cfg.ks.len()],
            curve: vec![0.0; cfg.curve_max],
            exposure: vec![vec![0; catalog.len()]; cfg.ks.len()],
            merchant_exposure: vec![vec![0; catalog.merchants().len()]; cfg.ks.len()],
            requests: 0,
        }
    }
}

/// Users who touched each catalog row in `history` (any level).
pub(crate) fn users_touched(catalog: &Catalog, history: &[Event]) -> (Vec<u32>, usize) {
    let relevance = Relevance { min_level: Level::Click, ..Relevance::default() };
    let mut touched = vec![0u32; catalog.len()];
    for (p, n) in user_counts(history, &relevance) {
        if let Some(row) = catalog.row(p) {
            touched[row.index()] = n;
        }
    }
    let users = history.iter().map(|e| e.user).collect::<std::collections::HashSet<_>>().len();
    (touched, users)
}

/// Each method's metrics from its accumulated sums.
pub(crate) fn summarize(
    names: &[String],
    accs: Vec<Accumulator>,
    seconds: &[f64],
    cfg: &EvalConfig,
    catalog: &Catalog,
    has_merchants: bool,
    gmv: bool,
) -> Vec<MethodReport> {
    names
        .iter()
        .zip(accs)
        .zip(seconds)
        .map(|((name, acc), &secs)| {
            let n = acc.requests.max(1) as f64;
            let mut metrics: BTreeMap<String, f64> = acc
                .sums
                .iter()
                .filter(|(k, _)| gmv || !k.starts_with("gmv"))
                .filter(|(k, _)| !k.starts_with("ild"))
                .map(|(k, v)| (k.clone(), v / n))
                .collect();
            for (i, &k) in cfg.ks.iter().enumerate() {
                if acc.ild_n[i] > 0 {
                    metrics.insert(
                        format!("ild@{k}"),
                        acc.sums[&format!("ild@{k}")] / acc.ild_n[i] as f64,
                    );
                }
                let shown = acc.exposure[i].iter().filter(|&&c| c > 0).count();
                metrics.insert(format!("coverage@{k}"), shown as f64 / catalog.len() as f64);
                metrics.insert(format!("gini@{k}"), metrics::gini(&acc.exposure[i]));
                if has_merchants {
                    metrics.insert(
                        format!("gini_merchant@{k}"),
                        metrics::gini(&acc.merchant_exposure[i]),
                    );
                }
            }
            MethodReport {
                name: name.clone(),
                metrics,
                ndcg_curve: acc.curve.iter().map(|v| v / n).collect(),
                seconds: secs,
            }
        })
        .collect()
}

pub(crate) fn dedup_keep_first(list: &mut Vec<ProductId>) {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.retain(|p| seen.insert(*p));
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn score_list(
    acc: &mut Accumulator,
    catalog: &Catalog,
    r: &EvalRequest,
    list: &[ProductId],
    cfg: &EvalConfig,
    touched: &[u32],
    train_users: usize,
    has_merchants: bool,
) {
    let rel = &r.relevant;
    let mut add = |name: String, v: f64| *acc.sums.entry(name).or_insert(0.0) += v;
    add("mrr".into(), metrics::reciprocal_rank(list, rel));
    let rows: Vec<Option<crate::ids::ItemIdx>> = list.iter().map(|&p| catalog.row(p)).collect();
    for (i, &k) in cfg.ks.iter().enumerate() {
        add(format!("ndcg@{k}"), metrics::ndcg_at(list, rel, k));
        add(format!("recall@{k}"), metrics::recall_at(list, rel, k));
        add(format!("hit@{k}"), metrics::hit_at(list, rel, k));
        let top = &rows[..k.min(rows.len())];
        let known: Vec<crate::ids::ItemIdx> = top.iter().flatten().copied().collect();
        let nov: f64 = known
            .iter()
            .map(|row| metrics::self_information(touched[row.index()], train_users))
            .sum::<f64>()
            / known.len().max(1) as f64;
        add(format!("novelty@{k}"), nov);
        let cats: Vec<_> = known.iter().map(|row| catalog.categories()[row.index()]).collect();
        if let Some(d) = metrics::intra_list_diversity(&cats) {
            add(format!("ild@{k}"), d);
            acc.ild_n[i] += 1;
        }
        let gmv: f64 = r
            .order_value
            .iter()
            .filter(|(p, _)| list.iter().take(k).any(|q| q == p))
            .map(|o| o.1)
            .sum();
        add(format!("gmv@{k}"), gmv);
        for row in &known {
            acc.exposure[i][row.index()] += 1;
            if has_merchants {
                acc.merchant_exposure[i][catalog.merchant_row_of(*row) as usize] += 1;
            }
        }
    }
    for (i, c) in acc.curve.iter_mut().enumerate() {
        *c += metrics::ndcg_at(list, rel, i + 1);
    }
    acc.requests += 1;
}

/// Counts, per product, the distinct users with a relevant event: the
/// popularity the baselines and novelty use.
pub fn user_counts(events: &[Event], relevance: &Relevance) -> HashMap<ProductId, u32> {
    let mut pairs: Vec<(ProductId, UserId)> =
        events.iter().filter_map(|e| Some((relevance.relevant_product(e)?, e.user))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = HashMap::new();
    for (p, _) in pairs {
        *out.entry(p).or_insert(0) += 1;
    }
    out
}
