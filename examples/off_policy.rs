//! Off-policy evaluation checked against the truth (issue 25).
//!
//! ```text
//! cargo run --release --example off_policy -- [--requests 100000] [--seeds 20] [--bootstrap 500]
//! ```
//!
//! A synthetic shop (`SynthConfig::sample`) whose users click by a known
//! model: an item at position `k` of a six-item feed is examined with
//! probability `1 / (1 + k)^0.8` and, if examined, clicked with probability
//! `sigmoid(3 · cos(user interest, product embedding) + 0.5 · quality − 3)`.
//!
//! - **Policy A** (logging): the pipeline's feed with a Plackett–Luce
//!   placement over its first six items at temperature 1
//!   (`Stochastic::PlackettLuce`); each shown item's probability is the
//!   exact marginal of its position. The draw is the library's own
//!   (`plackett_luce_draw` on the deterministic feed's values, which the
//!   pipeline's stochastic placement is tested to equal), so a seed's
//!   100,000 requests need one pipeline call per user.
//! - **Policy B** (evaluated): the deterministic feed (exploration turned
//!   off); a sharper Plackett–Luce at temperature 0.3; and the
//!   deterministic feed upside down (far from A: fewer clicks, and each
//!   position's weight rests on A's rarer draws).
//!
//! For each seed: log A, estimate B's clicks per request by IPS, SNIPS and
//! DR (the direct model: the ranker's pCTR head times a per-position
//! examination rate read off A's log, scaled to A's click rate), then run B
//! online in the same world for the truth. The last line is JSON:
//! `ope_rel_error_snips`, `ope_rel_error_dr` (mean over seeds of
//! |estimate − online truth| / truth, for the deterministic B), `ci_coverage`
//! (the share of seeds whose 95% bootstrap interval holds B's exact expected
//! clicks), and the Open Bandit Dataset estimates (`obd_ipw_men`,
//! `obd_snipw_men`, `obd_ipw_women`, `obd_snipw_women`) where
//! `../shared/data/open-bandit-sample` is present.

use omnifeed::eval::ope::{Estimate, Estimator, Logged, OpeConfig, Slot, estimate};
use omnifeed::rerank::{plackett_luce_draw, plackett_luce_marginals, plackett_luce_weights};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{
    FeedRequest, Recommender, RecommenderConfig, ServingState, SignalConfig, SignalStore,
};
use std::sync::Arc;

/// Feed positions shown (and drawn by Plackett–Luce).
const K: usize = 6;

#[derive(Debug, clap::Parser)]
#[command(about = "Off-policy estimates of a new policy against running it (issue 25)")]
struct Cli {
    /// Logged requests per seed.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Seeds (independent logs).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = 500)]
    bootstrap: usize,
}

/// One user's deterministic feed: the shown items' values, click
/// probabilities if examined, and pCTR heads.
struct UserFeed {
    values: Vec<f32>,
    attract: Vec<f64>,
    pctr: Vec<f64>,
}

fn examine(k: usize) -> f64 {
    1.0 / (1.0 + k as f64).powf(0.8)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// splitmix64.
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn unit(next: &mut impl FnMut() -> u64) -> f64 {
    (next() >> 11) as f64 / (1u64 << 53) as f64
}

/// The world's users' deterministic feeds.
fn feeds() -> Result<Vec<UserFeed>, Box<dyn std::error::Error>> {
    let world = generate(&SynthConfig::sample())?;
    let catalog = Arc::new(world.catalog.clone());
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default())?;
    store.ingest_batch(&world.events);
    let signals = store.publish();
    let at = signals.as_of();
    let index = Arc::new(omnifeed::index::ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals))?;
    let rec = Recommender::builder().config(RecommenderConfig::default()).state(state).build()?;
    let emb = catalog.embeddings();
    let mut out = Vec::new();
    for u in &world.users {
        let feed = rec.recommend(&FeedRequest::new(u.id).k(K).at(at))?;
        if feed.items.len() < K {
            continue;
        }
        let mut f = UserFeed { values: Vec::new(), attract: Vec::new(), pctr: Vec::new() };
        for item in &feed.items {
            let row = catalog.row(item.product).ok_or("a served product is not in the catalog")?;
            let e = emb.row(row);
            let cos: f32 = u
                .interests
                .iter()
                .map(|(w, v)| w * v.iter().zip(e).map(|(a, b)| a * b).sum::<f32>())
                .sum();
            let quality = world.product_quality[row.index()];
            f.values.push(item.score);
            f.attract.push(sigmoid(3.0 * f64::from(cos) + 0.5 * f64::from(quality) - 3.0));
            f.pctr.push(f64::from(item.explanation.heads[0].value));
        }
        out.push(f);
    }
    Ok(out)
}

/// A policy over a user's six items.
#[derive(Debug, Clone, Copy)]
enum Policy {
    /// The deterministic feed.
    Greedy,
    /// The deterministic feed upside down (worst first).
    Reversed,
    /// Plackett–Luce at this temperature.
    PlackettLuce(f32),
}

/// A policy: per user, `P(item i at position k)` (`K × K`).
fn marginals(feeds: &[UserFeed], policy: Policy) -> Vec<Vec<f64>> {
    let fixed = |at: fn(usize) -> usize| -> Vec<f64> {
        (0..K * K).map(|x| if at(x / K) == x % K { 1.0 } else { 0.0 }).collect()
    };
    feeds
        .iter()
        .map(|f| match policy {
            Policy::PlackettLuce(t) => {
                plackett_luce_marginals(&plackett_luce_weights(&f.values, t))
            }
            Policy::Greedy => fixed(|i| i),
            Policy::Reversed => fixed(|i| K - 1 - i),
        })
        .collect()
}

/// A draw of the policy for user `u`: item per position.
fn draw(
    feeds: &[UserFeed],
    u: usize,
    policy: Policy,
    next: &mut impl FnMut() -> u64,
) -> Vec<usize> {
    match policy {
        Policy::PlackettLuce(t) => {
            plackett_luce_draw(&plackett_luce_weights(&feeds[u].values, t), &mut *next)
        }
        Policy::Greedy => (0..K).collect(),
        Policy::Reversed => (0..K).rev().collect(),
    }
}

/// Exact expected clicks per request of a policy (users uniform).
fn expected(feeds: &[UserFeed], m: &[Vec<f64>]) -> f64 {
    let total: f64 = feeds
        .iter()
        .zip(m)
        .map(|(f, m)| {
            (0..K)
                .flat_map(|i| (0..K).map(move |k| (i, k)))
                .map(|(i, k)| m[i * K + k] * f.attract[i] * examine(k))
                .sum::<f64>()
        })
        .sum();
    total / feeds.len() as f64
}

/// Runs `temperature`'s policy online for `n` requests: clicks per request.
fn online(feeds: &[UserFeed], policy: Policy, n: usize, seed: u64) -> f64 {
    let mut next = stream(seed);
    let mut clicks = 0.0;
    for _ in 0..n {
        let u = (next() % feeds.len() as u64) as usize;
        for (k, &i) in draw(feeds, u, policy, &mut next).iter().enumerate() {
            if unit(&mut next) < examine(k) * feeds[u].attract[i] {
                clicks += 1.0;
            }
        }
    }
    clicks / n as f64
}

/// One seed: A's log of `n` requests, the estimates of the policy whose
/// marginals are `target`.
fn one_seed(
    feeds: &[UserFeed],
    target: &[Vec<f64>],
    n: usize,
    seed: u64,
    cfg: &OpeConfig,
) -> Result<[Estimate; 3], Box<dyn std::error::Error>> {
    let logging = marginals(feeds, Policy::PlackettLuce(1.0));
    let mut next = stream(seed);
    let mut shown: Vec<(usize, Vec<usize>, Vec<f64>)> = Vec::with_capacity(n);
    let mut per_pos = [0.0f64; K];
    for _ in 0..n {
        let u = (next() % feeds.len() as u64) as usize;
        let order = draw(feeds, u, Policy::PlackettLuce(1.0), &mut next);
        let clicks: Vec<f64> = order
            .iter()
            .enumerate()
            .map(|(k, &i)| f64::from(u8::from(unit(&mut next) < examine(k) * feeds[u].attract[i])))
            .collect();
        for (k, c) in clicks.iter().enumerate() {
            per_pos[k] += c;
        }
        shown.push((u, order, clicks));
    }
    // The direct model: pCTR × the examination rate seen at each position
    // (relative to the first), scaled to the log's click rate.
    let rate: Vec<f64> = per_pos.iter().map(|c| c / per_pos[0].max(1.0)).collect();
    let mean_pctr: f64 = shown
        .iter()
        .map(|(u, o, _)| {
            o.iter().enumerate().map(|(k, &i)| feeds[*u].pctr[i] * rate[k]).sum::<f64>()
        })
        .sum();
    let scale = per_pos.iter().sum::<f64>() / mean_pctr.max(1e-12);
    let q = |u: usize, i: usize, k: usize| scale * feeds[u].pctr[i] * rate[k];
    let mut log = Logged::new();
    for (u, order, clicks) in &shown {
        let slots: Vec<Slot> = order
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let expected_q: f64 = (0..K).map(|j| target[*u][j * K + k] * q(*u, j, k)).sum();
                Slot {
                    model: Some((q(*u, i, k), expected_q)),
                    ..Slot::new(k, clicks[k], logging[*u][i * K + k], target[*u][i * K + k])
                }
            })
            .collect();
        log.push(&slots);
    }
    Ok([
        estimate(&log, Estimator::Ips, cfg)?,
        estimate(&log, Estimator::Snips, cfg)?,
        estimate(&log, Estimator::Dr, cfg)?,
    ])
}

fn obd() -> Option<serde_json::Value> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/open-bandit-sample");
    if !dir.exists() {
        eprintln!("skipping the Open Bandit check: {} not found", dir.display());
        return None;
    }
    let mut out = serde_json::Map::new();
    for campaign in ["men", "women"] {
        let log = dir.join("random").join(campaign).join(format!("{campaign}.csv"));
        let l =
            omnifeed::eval::ope::open_bandit_log(&log, &dir.join("bts_action_dist.csv"), campaign)
                .ok()?;
        let cfg = OpeConfig::default();
        out.insert(
            format!("obd_ipw_{campaign}"),
            estimate(&l, Estimator::Ips, &cfg).ok()?.value.into(),
        );
        out.insert(
            format!("obd_snipw_{campaign}"),
            estimate(&l, Estimator::Snips, &cfg).ok()?.value.into(),
        );
    }
    Some(out.into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = <Cli as clap::Parser>::parse();
    let feeds = feeds()?;
    println!("{} users with a feed of {K}", feeds.len());
    let cfg = OpeConfig { bootstrap: cli.bootstrap, ..OpeConfig::default() };
    let mut report = serde_json::Map::new();
    let policies = [
        ("deterministic", Policy::Greedy),
        ("plackett_luce_0.3", Policy::PlackettLuce(0.3)),
        ("reversed", Policy::Reversed),
    ];
    for (name, policy) in policies {
        let target = marginals(&feeds, policy);
        let exact = expected(&feeds, &target);
        let (mut err, mut covered, mut ess) = ([0.0f64; 3], [0usize; 3], 0.0);
        for seed in 0..cli.seeds {
            let truth = online(&feeds, policy, cli.requests, 1_000 + seed);
            let est = one_seed(&feeds, &target, cli.requests, seed, &cfg)?;
            for (j, e) in est.iter().enumerate() {
                err[j] += (e.value - truth).abs() / truth / cli.seeds as f64;
                covered[j] += usize::from(e.ci.0 <= exact && exact <= e.ci.1);
            }
            ess += est[0].ess / cli.seeds as f64;
            println!(
                "{name} seed {seed}: truth online {truth:.4} (exact {exact:.4}); IPS {:.4} [{:.4}, {:.4}], SNIPS {:.4} [{:.4}, {:.4}], DR {:.4} [{:.4}, {:.4}]",
                est[0].value,
                est[0].ci.0,
                est[0].ci.1,
                est[1].value,
                est[1].ci.0,
                est[1].ci.1,
                est[2].value,
                est[2].ci.0,
                est[2].ci.1
            );
        }
        let coverage = |j: usize| covered[j] as f64 / cli.seeds as f64;
        let fig = serde_json::json!({
            "exact_clicks_per_request": exact,
            "rel_error_ips": err[0], "rel_error_snips": err[1], "rel_error_dr": err[2],
            "ci_coverage_ips": coverage(0), "ci_coverage_snips": coverage(1), "ci_coverage_dr": coverage(2),
            "ess_first_slot": ess,
        });
        if matches!(policy, Policy::Greedy) {
            report.insert("ope_rel_error_snips".into(), err[1].into());
            report.insert("ope_rel_error_dr".into(), err[2].into());
            report.insert("ci_coverage".into(), coverage(1).min(coverage(2)).into());
        }
        report.insert(name.into(), fig);
    }
    report.insert(
        "logging_exact_clicks_per_request".into(),
        expected(&feeds, &marginals(&feeds, Policy::PlackettLuce(1.0))).into(),
    );
    report.insert("requests".into(), cli.requests.into());
    report.insert("seeds".into(), cli.seeds.into());
    if let Some(serde_json::Value::Object(o)) = obd() {
        report.extend(o);
    }
    // The issue's bounds: relative error at most 0.10 for SNIPS and DR, and
    // (over 20 seeds or more) intervals covering the truth in 90% of them.
    let num = |k: &str| report.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let (snips, dr, coverage) =
        (num("ope_rel_error_snips"), num("ope_rel_error_dr"), num("ci_coverage"));
    println!("{}", serde_json::Value::Object(report));
    if snips.is_nan() || dr.is_nan() || snips > 0.10 || dr > 0.10 {
        return Err(format!("relative error SNIPS {snips:.4}, DR {dr:.4}: above 0.10").into());
    }
    if cli.seeds >= 20 && (coverage.is_nan() || coverage < 0.9) {
        return Err(format!("interval coverage {coverage:.2} below 0.9").into());
    }
    Ok(())
}
