//! The off-policy validation world shared by the `off_policy` and
//! `online_learning` examples (issue 25): see `off_policy.rs` for the
//! model. Not an example itself (no `main`).

use omnifeed::eval::ope::{Estimate, Estimator, Logged, OpeConfig, Slot, estimate};
use omnifeed::rerank::{plackett_luce_draw, plackett_luce_marginals, plackett_luce_weights};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{
    FeedRequest, Recommender, RecommenderConfig, ServingState, SignalConfig, SignalStore,
};
use std::sync::Arc;

/// Feed positions shown (and drawn by Plackett–Luce).
const K: usize = 6;

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

/// The validation: for each policy B, `seeds` logs of `requests` requests
/// of A, B's estimates from each, B run online for the truth. The report:
/// per policy its figures, and for the deterministic B the keys
/// `ope_rel_error_snips`, `ope_rel_error_dr` and `ci_coverage` (the lower
/// of SNIPS' and DR's), plus the Open Bandit estimates where the sample is
/// present.
pub fn run(
    requests: usize,
    seeds: u64,
    bootstrap: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, Box<dyn std::error::Error>> {
    let feeds = feeds()?;
    println!("{} users with a feed of {K}", feeds.len());
    let cfg = OpeConfig { bootstrap, ..OpeConfig::default() };
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
        for seed in 0..seeds {
            let truth = online(&feeds, policy, requests, 1_000 + seed);
            let est = one_seed(&feeds, &target, requests, seed, &cfg)?;
            for (j, e) in est.iter().enumerate() {
                err[j] += (e.value - truth).abs() / truth / seeds as f64;
                covered[j] += usize::from(e.ci.0 <= exact && exact <= e.ci.1);
            }
            ess += est[0].ess / seeds as f64;
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
        let coverage = |j: usize| covered[j] as f64 / seeds as f64;
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
    report.insert("requests".into(), requests.into());
    report.insert("seeds".into(), seeds.into());
    if let Some(serde_json::Value::Object(o)) = obd() {
        report.extend(o);
    }
    Ok(report)
}
