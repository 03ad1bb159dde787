//! Learning while serving, checked against the truth (issue 25).
//!
//! ```text
//! cargo run --release --example online_learning -- [--requests 300] [--warmup 20] [--rounds 40]
//!     [--bots 300] [--ope-requests 100000] [--seeds 20] [--bootstrap 500]
//! ```
//!
//! A synthetic shop (`SynthConfig::sample`: 3,000 products, 600 users) runs
//! as a service would: a recommender logs every feed's exposures into an
//! event log; users click and order; a [`ShopWriter`] applies the log
//! (signals, label joins, online learning) and publishes a new state every
//! round (100 s apart, `--requests` feeds of 12 each). Users examine
//! position `k` with probability `1 / (1 + k)^0.8`, click an examined item
//! with probability `sigmoid(3 · cos(interest, embedding) + 0.5 · quality −
//! 3 + s · price_band)` and order a clicked one with probability
//! `sigmoid(0.8 · quality − 1 + s · price_band)`, where `price_band` is the
//! item's log price against its category's median (the served feature):
//! `s = 0` at first, then a sale season shifts every user to cheap items,
//! `s = −1.5`.
//!
//! 1. **Warm-up** (`--warmup` rounds, before the shift): the default heads
//!    serve; the joined examples train the offline heads
//!    (`train_from_examples`, with the position column).
//! 2. From the shift on (`--rounds` rounds), from the same warmed-up state
//!    and with the same users and random numbers:
//!    - **frozen**: the offline heads serve throughout;
//!    - **oracle**: heads retrained offline on the frozen run's post-shift
//!      examples (the future, hence an oracle) serve from the shift;
//!    - **online**: the writer learns the heads online (`learn_online`,
//!      FTRL from the offline heads) and publishes them every round; the
//!      guard holds back 10% of requests and judges on orders
//!      (`GuardMetric::Orders`: click fraud moves clicks, see its docs).
//! 3. The three models' heads (the online one as learned at the end, and
//!    after each quarter for the curve) are judged exactly: each serves
//!    every user once on the frozen run's final state, and the expected
//!    clicks (and orders) per feed follow from the click model.
//!    `online_recovery` = (online − frozen) / (oracle − frozen) in clicks,
//!    after `--rounds × --requests` requests.
//! 4. **Poisoned**: the same online learning in the world without the
//!    shift (where the offline heads are not stale), while from a quarter
//!    of the way on a click-fraud ring of `--bots` accounts requests feeds
//!    and clicks the catalog's 30 dearest products (against their
//!    categories) wherever they are shown, and clicks three of them unseen.
//!    The learned heads chase the ring; the guard should roll them back.
//!    The poisoned heads (as they stood when learning stopped) and the
//!    frozen ones are judged exactly on that run's state, without the
//!    shift.
//!
//! The last line is JSON: `online_recovery` (and in orders), the curve, the
//! exact and realized clicks and orders, `rollback_on_poison`,
//! `rollback_without_poison` (the clean online run's guard), the reason,
//! and the off-policy figures of the `off_policy` example at
//! `--ope-requests × --seeds` (`ope_rel_error_snips`, `ope_rel_error_dr`,
//! `ci_coverage`, `obd_*`). It fails if the recovery is below 0.5, the
//! poisoned run was not rolled back, or the clean one was.

#[path = "support/ope_sim.rs"]
mod ope_sim;

use omnifeed::exposure::{ExposureConfig, LabelWindows, OnlineConfig, TrainingExample};
use omnifeed::features::col;
use omnifeed::live::{EventLog, LogEntry, LogRecord, LogSink, MemoryLog, ShopWriter};
use omnifeed::rank::LogisticScorer;
use omnifeed::signals::{Event, EventKind, Target};
use omnifeed::synth::{SynthConfig, World, generate};
use omnifeed::train::{RankerTrainConfig, train_from_examples};
use omnifeed::{
    FeedRequest, ProductId, Recommender, RecommenderConfig, ServiceConfig, ServingState, UserId,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Items per feed.
const K: usize = 12;
/// Seconds between rounds.
const STEP: i64 = 100;
/// Every label window: a round's labels are final by the next round.
const WINDOW: i64 = 60;
/// The click model's price sensitivity after the shift.
const SHIFT: f64 = -1.5;
/// The products the fraud ring clicks.
const RING: usize = 30;

#[derive(Debug, clap::Parser)]
#[command(about = "Frozen, online and oracle heads through an interest shift (issue 25)")]
struct Cli {
    /// Feed requests per round.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Rounds before the shift (the offline heads' training data).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Rounds after the shift.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    /// Logged requests per seed of the off-policy validation.
    #[arg(long, default_value_t = 100_000)]
    ope_requests: usize,
    /// Seeds of the off-policy validation.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = 500)]
    bootstrap: usize,
    /// Bot accounts of the fraud ring (each requests a feed every round of
    /// the burst).
    #[arg(long, default_value_t = 300)]
    bots: u64,
    /// FTRL's alpha (`OnlineConfig::alpha`).
    #[arg(long, default_value_t = OnlineConfig::default().alpha)]
    alpha: f64,
    /// The guard's held-back share (`OnlineGuard::holdback`).
    #[arg(long, default_value_t = OnlineConfig::default().guard.holdback)]
    holdback: f64,
    /// The guard's tolerated drop (`OnlineGuard::max_drop`).
    #[arg(long, default_value_t = OnlineConfig::default().guard.max_drop)]
    max_drop: f64,
}

impl Cli {
    /// The online learning's settings.
    fn online(&self) -> OnlineConfig {
        let d = OnlineConfig::default();
        OnlineConfig {
            alpha: self.alpha,
            guard: omnifeed::exposure::OnlineGuard {
                holdback: self.holdback,
                max_drop: self.max_drop,
                metric: omnifeed::exposure::GuardMetric::Orders,
                ..d.guard
            },
            ..d
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn examine(k: usize) -> f64 {
    1.0 / (1.0 + k as f64).powf(0.8)
}

/// A uniform number in `[0, 1)` from a key (splitmix64): the same key
/// gives the same number in every run (common random numbers).
fn uniform(key: [u64; 3]) -> f64 {
    let mut z = key[0]
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key[1].rotate_left(21))
        .wrapping_add(key[2].rotate_left(42) ^ 0x5DEE_CE66);
    for _ in 0..2 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The world and its click model.
struct Shop {
    world: World,
    /// The ring's products: the dearest against their category's median.
    ring: BTreeSet<ProductId>,
}

impl Shop {
    fn new() -> Result<Shop, Box<dyn std::error::Error>> {
        let world = generate(&SynthConfig::sample())?;
        let c = &world.catalog;
        let products: Vec<_> =
            (0..c.len()).map(|r| c.product(omnifeed::ItemIdx(r as u32))).collect();
        let mut band: Vec<(f32, ProductId)> = products
            .iter()
            .map(|p| {
                let mut same: Vec<f32> =
                    products.iter().filter(|q| q.category == p.category).map(|q| q.price).collect();
                same.sort_by(f32::total_cmp);
                ((p.price / same[same.len() / 2]).ln(), p.id)
            })
            .collect();
        band.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ring = band.iter().take(RING).map(|x| x.1).collect();
        Ok(Shop { world, ring })
    }

    /// The probability that user `u` (an index) clicks `item` if examined.
    fn attract(&self, u: usize, item: &omnifeed::FeedItem, shifted: bool) -> f64 {
        let c = &self.world.catalog;
        let Some(row) = c.row(item.product) else { return 0.0 };
        let e = c.embeddings().row(row);
        let cos: f32 = self.world.users[u]
            .interests
            .iter()
            .map(|(w, v)| w * v.iter().zip(e).map(|(a, b)| a * b).sum::<f32>())
            .sum();
        let band = f64::from(item.explanation.features[col::PRICE_BAND].value);
        let quality = f64::from(self.world.product_quality[row.index()]);
        let s = if shifted { SHIFT } else { 0.0 };
        sigmoid(3.0 * f64::from(cos) + 0.5 * quality - 3.0 + s * band)
    }

    /// The probability that a click on `item` turns into an order.
    fn order(&self, item: &omnifeed::FeedItem, shifted: bool) -> f64 {
        let c = &self.world.catalog;
        let Some(row) = c.row(item.product) else { return 0.0 };
        let band = f64::from(item.explanation.features[col::PRICE_BAND].value);
        let quality = f64::from(self.world.product_quality[row.index()]);
        let s = if shifted { SHIFT } else { 0.0 };
        sigmoid(0.8 * quality - 1.0 + s * band)
    }

    /// Expected clicks and orders of a feed served to user `u`.
    fn expected(&self, u: usize, feed: &omnifeed::Feed, shifted: bool) -> [f64; 2] {
        let mut out = [0.0; 2];
        for (k, it) in feed.items.iter().enumerate() {
            let click = examine(k) * self.attract(u, it, shifted);
            out[0] += click;
            out[1] += click * self.order(it, shifted);
        }
        out
    }
}

/// A running shop: the log, the writer applying it, the recommender
/// logging exposures into it.
struct Run {
    log: Arc<MemoryLog>,
    writer: ShopWriter,
    rec: Recommender,
    /// The log's last offset applied.
    applied: u64,
    /// The time of round 0: the world's last event.
    t0: i64,
    /// Realized clicks and requests from the shift on (real users only).
    clicks: f64,
    orders: f64,
    requests: f64,
}

/// The shop's service config, with `heads` as the default heads.
fn with_heads(heads: &LogisticScorer) -> ServiceConfig {
    let recommender =
        RecommenderConfig { scorer: heads.to_weights(), ..RecommenderConfig::default() };
    ServiceConfig { recommender, ..ServiceConfig::default() }
}

impl Run {
    /// A writer on the world's history, joining labels; a recommender with
    /// `heads` as its default heads, logging every exposure.
    fn new(shop: &Shop, heads: &LogisticScorer) -> Result<Run, Box<dyn std::error::Error>> {
        let service = with_heads(heads);
        let mut writer = service.writer(shop.world.catalog.clone())?;
        writer.apply(1, &LogEntry::Events(shop.world.events.clone()))?;
        let t0 = shop.world.events.last().map_or(0, |e| e.at);
        writer.join_labels(LabelWindows::all(WINDOW))?;
        let log = Arc::new(MemoryLog::default());
        let exposures =
            ExposureConfig { sample_rate: 1.0, buffer: 1 << 20, ..ExposureConfig::default() };
        let rec = service
            .recommender(writer.publish()?)
            .exposures(exposures, Arc::new(LogSink::new(log.clone())))
            .build()?;
        Ok(Run { log, writer, rec, applied: 0, t0, clicks: 0.0, orders: 0.0, requests: 0.0 })
    }

    /// Appends `entries` to the log, applies what is new, publishes.
    fn step(&mut self, entries: &[LogEntry]) -> Result<Vec<LogRecord>, Box<dyn std::error::Error>> {
        self.rec.flush_exposures();
        if !entries.is_empty() {
            self.log.append(entries)?;
        }
        let records =
            self.log.read(self.applied, usize::MAX >> 1, std::time::Duration::ZERO)?.records;
        for r in &records {
            self.writer.apply(10 + r.offset, &r.entry)?;
            self.applied = r.offset;
        }
        self.writer.publish_to(&self.rec)?;
        Ok(records)
    }

    /// Replays records logged by another run (the shared warm-up).
    fn replay(&mut self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error>> {
        let entries: Vec<LogEntry> = records.iter().map(|r| r.entry.clone()).collect();
        self.log.append(&entries)?;
        self.step(&[])?;
        self.writer.take_examples();
        Ok(())
    }

    /// One round at `at`: `n` real users' feeds and clicks (the users and
    /// random numbers keyed by round), and the bots' when `bots`.
    fn round(
        &mut self,
        shop: &Shop,
        round: u64,
        n: usize,
        shifted: bool,
        bots: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let at = self.t0 + STEP * (1 + round as i64);
        let users = &shop.world.users;
        let mut events = Vec::new();
        for i in 0..n as u64 {
            let u = (uniform([round, i, 0]) * users.len() as f64) as usize;
            let req = FeedRequest::new(users[u].id).k(K).at(at).id(round << 20 | i);
            let feed = self.rec.recommend(&req)?;
            for (k, it) in feed.items.iter().enumerate() {
                if uniform([round, i, 1 + k as u64]) < examine(k) * shop.attract(u, it, shifted) {
                    events.push(Event::new(
                        at + 10,
                        users[u].id,
                        Target::Product(it.product),
                        EventKind::Click,
                    ));
                    self.clicks += 1.0;
                    if uniform([round, i, 100 + k as u64]) < shop.order(it, shifted) {
                        let order = EventKind::Order { price: None };
                        events.push(Event::new(
                            at + 30,
                            users[u].id,
                            Target::Product(it.product),
                            order,
                        ));
                        self.orders += 1.0;
                    }
                }
            }
            self.requests += 1.0;
        }
        for b in 0..bots {
            let bot = UserId(9_000_000 + b);
            let req = FeedRequest::new(bot).k(K).at(at).id(round << 20 | 1 << 19 | b);
            for it in
                self.rec.recommend(&req)?.items.iter().filter(|it| shop.ring.contains(&it.product))
            {
                events.push(Event::new(
                    at + 10,
                    bot,
                    Target::Product(it.product),
                    EventKind::Click,
                ));
            }
            // The ring also clicks its products unseen, to lift their rates.
            for &p in shop.ring.iter().take(3) {
                events.push(Event::new(at + 20, bot, Target::Product(p), EventKind::Click));
            }
        }
        self.step(&[LogEntry::Events(events)])?;
        Ok(())
    }
}

/// The heads `train_from_examples` fits on the complete examples (position
/// column on).
fn fit(examples: &[TrainingExample]) -> Result<LogisticScorer, Box<dyn std::error::Error>> {
    let complete: Vec<TrainingExample> = examples.iter().filter(|e| e.complete).cloned().collect();
    let cfg = RankerTrainConfig { min_positives: 20, ..RankerTrainConfig::default() };
    let trained = train_from_examples(&complete, &cfg)?;
    println!("fitted on {} examples: heads fitted {:?}", complete.len(), trained.fitted);
    Ok(trained.scorer)
}

/// Expected clicks and orders per feed (after the shift if `shifted`) with
/// `heads` as the default heads, every user served once on `state`.
fn judge(
    shop: &Shop,
    state: &ServingState,
    heads: &LogisticScorer,
    shifted: bool,
) -> Result<[f64; 2], Box<dyn std::error::Error>> {
    let rec = with_heads(heads).recommender(state.clone()).build()?;
    let at = state.signals().as_of();
    let users = &shop.world.users;
    let mut total = [0.0; 2];
    for (u, user) in users.iter().enumerate() {
        let e = shop.expected(u, &rec.recommend(&FeedRequest::new(user.id).k(K).at(at))?, shifted);
        total = [total[0] + e[0], total[1] + e[1]];
    }
    let n = users.len() as f64;
    Ok([total[0] / n, total[1] / n])
}

/// What the shift leaves each model: the warm-up's records and offline
/// heads, then the frozen, oracle and online runs.
struct Outcome {
    frozen: Run,
    oracle_heads: LogisticScorer,
    oracle: Run,
    online: Run,
    /// The online heads after each quarter of the rounds.
    curve: Vec<LogisticScorer>,
    poisoned: Run,
}

/// The online heads the writer of `run` publishes (the offline ones after
/// a rollback).
fn online_heads(run: &Run, offline: &LogisticScorer) -> LogisticScorer {
    run.writer
        .online()
        .filter(|l| l.rolled_back().is_none())
        .and_then(|l| LogisticScorer::from_matrix(l.weights()).ok())
        .unwrap_or_else(|| offline.clone())
}

fn simulate(
    shop: &Shop,
    cli: &Cli,
) -> Result<(LogisticScorer, Outcome), Box<dyn std::error::Error>> {
    let default = LogisticScorer::from_weights(&Default::default())?;
    let mut warm = Run::new(shop, &default)?;
    let mut examples = Vec::new();
    for round in 0..cli.warmup as u64 {
        warm.round(shop, round, cli.requests, false, 0)?;
        examples.extend(warm.writer.take_examples());
    }
    let offline = fit(&examples)?;
    let history = warm.log.read(0, usize::MAX >> 1, std::time::Duration::ZERO)?.records;
    let start = |heads: &LogisticScorer, learn: bool| -> Result<Run, Box<dyn std::error::Error>> {
        let mut run = Run::new(shop, heads)?;
        run.replay(&history)?;
        if learn {
            run.writer.learn_online(&offline, cli.online())?;
        }
        Ok(run)
    };
    let after = |r: usize| (cli.warmup + r) as u64;
    let mut frozen = start(&offline, false)?;
    let mut post = Vec::new();
    for r in 0..cli.rounds {
        frozen.round(shop, after(r), cli.requests, true, 0)?;
        post.extend(frozen.writer.take_examples());
    }
    let oracle_heads = fit(&post)?;
    let mut oracle = start(&oracle_heads, false)?;
    let (mut online, mut poisoned) = (start(&offline, true)?, start(&offline, true)?);
    let mut curve = Vec::new();
    for r in 0..cli.rounds {
        oracle.round(shop, after(r), cli.requests, true, 0)?;
        online.round(shop, after(r), cli.requests, true, 0)?;
        let bots = if r >= cli.rounds / 4 { cli.bots } else { 0 };
        poisoned.round(shop, after(r), cli.requests, false, bots)?;
        if (r + 1) * 4 % cli.rounds.max(1) == 0 && (r + 1) * 4 / cli.rounds.max(1) <= 4 {
            curve.push(online_heads(&online, &offline));
        }
    }
    Ok((offline, Outcome { frozen, oracle_heads, oracle, online, curve, poisoned }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = <Cli as clap::Parser>::parse();
    let shop = Shop::new()?;
    let (offline, out) = simulate(&shop, &cli)?;
    let state: ServingState = (*out.frozen.rec.state()).clone();
    let learned = online_heads(&out.online, &offline);
    let (e_frozen, e_oracle, e_online) = (
        judge(&shop, &state, &offline, true)?,
        judge(&shop, &state, &out.oracle_heads, true)?,
        judge(&shop, &state, &learned, true)?,
    );
    let recovery = |e: [f64; 2], j: usize| (e[j] - e_frozen[j]) / (e_oracle[j] - e_frozen[j]);
    let mut curve = Vec::new();
    for h in &out.curve {
        curve.push(recovery(judge(&shop, &state, h, true)?, 0));
    }
    // The poisoned heads as they stood when the learning stopped (or at
    // the end), judged like the others.
    let poisoned_heads = out
        .poisoned
        .writer
        .online()
        .and_then(|l| LogisticScorer::from_matrix(l.weights()).ok())
        .ok_or("the poisoned run has no learner")?;
    // The poisoned run's world has no shift, and its state has the ring's
    // signals: judged there, before the shift.
    let p_state: ServingState = (*out.poisoned.rec.state()).clone();
    let (p_frozen, p_poisoned) =
        (judge(&shop, &p_state, &offline, false)?, judge(&shop, &p_state, &poisoned_heads, false)?);
    let realized = |r: &Run| r.clicks / r.requests.max(1.0);
    let realized_orders = |r: &Run| r.orders / r.requests.max(1.0);
    let report_of = |r: &Run| r.writer.online().map(|l| l.report());
    let poisoned = report_of(&out.poisoned);
    let clean = report_of(&out.online);
    println!("online learner (clean): {clean:?}");
    println!("online learner (poisoned): {poisoned:?}");
    let rollback_on_poison = poisoned.as_ref().is_some_and(|r| r.rolled_back.is_some());
    let rollback_without_poison = clean.as_ref().is_none_or(|r| r.rolled_back.is_some());
    let mut report = serde_json::Map::new();
    report.insert("online_recovery".into(), recovery(e_online, 0).into());
    report.insert("online_recovery_orders".into(), recovery(e_online, 1).into());
    report.insert("online_recovery_curve".into(), curve.into());
    report.insert("events_after_shift".into(), (cli.rounds * cli.requests).into());
    report.insert(
        "exact_clicks_per_feed".into(),
        serde_json::json!({
            "frozen": e_frozen[0], "online": e_online[0], "oracle": e_oracle[0],
        }),
    );
    report.insert(
        "exact_orders_per_feed".into(),
        serde_json::json!({
            "frozen": e_frozen[1], "online": e_online[1], "oracle": e_oracle[1],
        }),
    );
    report.insert(
        "realized_clicks_per_feed".into(),
        serde_json::json!({
            "frozen": realized(&out.frozen), "online": realized(&out.online),
            "oracle": realized(&out.oracle), "poisoned": realized(&out.poisoned),
        }),
    );
    report.insert(
        "realized_orders_per_feed".into(),
        serde_json::json!({
            "frozen": realized_orders(&out.frozen), "online": realized_orders(&out.online),
            "oracle": realized_orders(&out.oracle), "poisoned": realized_orders(&out.poisoned),
        }),
    );
    report.insert("rollback_on_poison".into(), rollback_on_poison.into());
    report.insert(
        "poisoned_run_exact_per_feed".into(),
        serde_json::json!({
            "frozen_heads": { "clicks": p_frozen[0], "orders": p_frozen[1] },
            "poisoned_heads": { "clicks": p_poisoned[0], "orders": p_poisoned[1] },
        }),
    );
    report.insert("rollback_without_poison".into(), rollback_without_poison.into());
    report.insert(
        "rollback_reason".into(),
        poisoned.and_then(|r| r.rolled_back).unwrap_or_default().into(),
    );
    report.extend(ope_sim::run(cli.ope_requests, cli.seeds, cli.bootstrap)?);
    println!("{}", serde_json::Value::Object(report));
    let r = recovery(e_online, 0);
    if r.is_nan() || r < 0.5 {
        return Err(format!("online recovery {r:.3} below 0.5").into());
    }
    if !rollback_on_poison || rollback_without_poison {
        return Err(
            "the guard did not roll back the poisoned run, or rolled back the clean one".into()
        );
    }
    Ok(())
}
