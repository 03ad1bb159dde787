//! Off-policy evaluation (issue 25) against a peer's implementation: the
//! Open Bandit Pipeline's IPW and SNIPW of the Bernoulli-TS policy,
//! estimated from the random policy's logs of the Open Bandit Dataset
//! sample. `scripts/obp_check.py` ran obp on the same files and wrote its
//! figures to `tests/data/obd/obp_estimates.json`.

use omnifeed::eval::ope::{Estimator, OpeConfig, estimate, open_bandit_log};
use std::path::PathBuf;

fn obp_figures() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/obd/obp_estimates.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// IPW and SNIPW equal obp's to within 1% (here to 1e-9: the same
/// formulas on the same rows), for both campaigns; the intervals hold the
/// estimate, and the on-policy click rate lies within about two combined
/// standard errors (the sample's noise: its README).
#[test]
fn open_bandit_estimates_equal_the_open_bandit_pipelines() {
    let Some(dir) = crate::it::shared_data("open-bandit-sample") else { return };
    let obp = obp_figures();
    for campaign in ["men", "women"] {
        let log = dir.join("random").join(campaign).join(format!("{campaign}.csv"));
        let logged = open_bandit_log(&log, &dir.join("bts_action_dist.csv"), campaign).unwrap();
        assert_eq!(logged.requests(), 10_000);
        let cfg = OpeConfig::default();
        for (name, est) in [("ipw", Estimator::Ips), ("snipw", Estimator::Snips)] {
            let ours = estimate(&logged, est, &cfg).unwrap();
            let theirs = obp[format!("obd_{name}_{campaign}")].as_f64().unwrap();
            let rel = (ours.value - theirs).abs() / theirs;
            assert!(rel < 1e-9, "{name} {campaign}: ours {} obp {theirs}", ours.value);
            assert!(ours.ci.0 <= ours.value && ours.value <= ours.ci.1, "{ours:?}");
            let truth = obp[format!("obd_on_policy_{campaign}")].as_f64().unwrap();
            // The on-policy rate rests on 46-69 clicks: its standard error is
            // about truth / sqrt(clicks).
            let se_truth = truth / (truth * 10_000.0).sqrt();
            let combined = (ours.se.powi(2) + se_truth.powi(2)).sqrt();
            assert!(
                (ours.value - truth).abs() < 2.5 * combined,
                "{name} {campaign}: {ours:?} truth {truth}"
            );
        }
    }
}

/// A recommender over the adversarial world's state with `stochastic` on
/// the feed surface, recording every request's exposure into the sink
/// returned.
fn stochastic_recommender(
    stochastic: omnifeed::rerank::Stochastic,
) -> (omnifeed::Recommender, std::sync::Arc<omnifeed::exposure::MemorySink>) {
    let mut config = omnifeed::RecommenderConfig::default();
    config.rerank.feed.stochastic = stochastic;
    let sink = std::sync::Arc::new(omnifeed::exposure::MemorySink::new(100_000));
    // A buffer that holds every request of a test: none is dropped.
    let every = omnifeed::exposure::ExposureConfig {
        sample_rate: 1.0,
        buffer: 100_000,
        ..omnifeed::exposure::ExposureConfig::default()
    };
    let rec = omnifeed::Recommender::builder()
        .state((*crate::it::adversarial::recommender().state()).clone())
        .config(config)
        .exposures(every, sink.clone())
        .build()
        .unwrap();
    (rec, sink)
}

/// The adversarial world's user, the time served for, and the
/// deterministic feed of 10.
fn deterministic_feed() -> (omnifeed::UserId, i64, omnifeed::Feed) {
    let user = crate::it::adversarial::user();
    let det = crate::it::adversarial::recommender();
    let at = det.state().signals().as_of();
    (user, at, det.recommend(&omnifeed::FeedRequest::new(user).k(10).at(at)).unwrap())
}

/// Plackett–Luce placement: the first `top_n` items are the deterministic
/// feed's, drawn in another order; each item's logged probability is the
/// exact Plackett–Luce marginal of its position (from the items' values),
/// and over many requests the items land at each position as often as
/// their probabilities say. The exposure log records the same
/// probabilities; below `top_n` the feed is the deterministic one.
#[test]
fn plackett_luce_placement_logs_exact_probabilities() {
    use omnifeed::rerank::{Stochastic, plackett_luce_marginals, plackett_luce_weights};
    let (user, at, base) = deterministic_feed();
    let top: Vec<omnifeed::ProductId> = base.items[..5].iter().map(|i| i.product).collect();
    let values: Vec<f32> = base.items[..5].iter().map(|i| i.score).collect();
    let m = plackett_luce_marginals(&plackett_luce_weights(&values, 0.5));
    let (rec, sink) =
        stochastic_recommender(Stochastic::PlackettLuce { top_n: 5, temperature: 0.5 });
    let n = 3_000;
    let mut logged: Vec<(u64, Vec<f32>)> = Vec::new();
    let mut counts = [0usize; 25];
    for id in 0..n {
        let req = omnifeed::FeedRequest::new(user).k(10).at(at).id(id);
        let feed = rec.recommend(&req).unwrap();
        assert_eq!(rec.recommend(&req).unwrap(), feed, "the same request, the same draw");
        logged.push((id, feed.items.iter().map(|i| i.propensity).collect()));
        for (pos, item) in feed.items.iter().enumerate() {
            if pos >= 5 {
                assert_eq!(item.product, base.items[pos].product);
                assert_eq!(item.propensity, 1.0);
                continue;
            }
            let i = top.iter().position(|&p| p == item.product).expect("one of the top five");
            assert!((f64::from(item.propensity) - m[i * 5 + pos]).abs() < 1e-6);
            counts[i * 5 + pos] += 1;
        }
    }
    for (c, p) in counts.iter().zip(&m) {
        let f = *c as f64 / n as f64;
        assert!((f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 2e-3, "{f} against {p}");
    }
    // The deterministic feed logs probability 1 everywhere.
    assert!(base.items.iter().all(|i| i.propensity == 1.0));
    // The exposure log holds the served probabilities (each request twice).
    rec.flush_exposures();
    let exposures: Vec<_> = sink.take().into_iter().flat_map(|b| b.exposures).collect();
    assert_eq!(exposures.len(), 2 * n as usize);
    for e in &exposures {
        let want = &logged[e.request_id as usize];
        let got: Vec<f32> = e.items.iter().map(|i| i.propensity).collect();
        assert_eq!((e.request_id, &got), (want.0, &want.1));
    }
}

/// Exploration slots: the listed positions show a uniform draw from the
/// next candidates below the feed (probability 1/pool), the rest of the
/// deterministic feed moves down one place per slot above it.
#[test]
fn exploration_slots_draw_from_below_the_feed() {
    use omnifeed::rerank::Stochastic;
    let (user, at, base) = deterministic_feed();
    let (rec, _) = stochastic_recommender(Stochastic::Slots { positions: vec![2, 6], pool: 8 });
    let mut drawn = std::collections::HashSet::new();
    for id in 0..200 {
        let feed = rec.recommend(&omnifeed::FeedRequest::new(user).k(10).at(at).id(id)).unwrap();
        assert_eq!(feed.items.len(), 10);
        let rest: Vec<_> = feed
            .items
            .iter()
            .enumerate()
            .filter(|(p, _)| *p != 2 && *p != 6)
            .map(|(_, i)| (i.product, i.propensity))
            .collect();
        let want: Vec<_> = base.items[..8].iter().map(|i| (i.product, 1.0)).collect();
        assert_eq!(rest, want);
        for p in [2, 6] {
            let item = &feed.items[p];
            assert_eq!(item.propensity, 1.0 / 8.0);
            assert!(!base.items.iter().any(|b| b.product == item.product), "from below the feed");
            drawn.insert(item.product);
        }
    }
    assert_eq!(drawn.len(), 8, "every one of the next 8 is drawn sometimes");
}

/// Joined exposures of a Plackett–Luce feed (the examples written to CSV
/// and read back), users of the tiny world clicking by a known model, 3,000
/// requests at distinct times. Evaluated from them:
/// - the logging policy itself: every weight is 1 and IPS is the log's
///   click rate exactly;
/// - the deterministic ranking (the same heads, exploration off): SNIPS
///   and DR within 5% of its true expected clicks on the same requests,
///   the intervals covering it;
/// - a fusion change the log cannot evaluate is refused, naming the term.
#[test]
fn a_new_ranking_is_estimated_from_joined_exposures() {
    use omnifeed::eval::ope::{OpeConfig, Reranking, evaluate_reranking};
    use omnifeed::exposure::{LabelJoiner, LabelWindows, read_examples_csv, write_examples_csv};
    use omnifeed::features::col;
    use omnifeed::rerank::Stochastic;
    use omnifeed::signals::{Event, EventKind, Target};
    let logging = Stochastic::PlackettLuce { top_n: 6, temperature: 1.0 };
    let (rec, sink) = stochastic_recommender(logging.clone());
    let users = &crate::it::adversarial::world().users;
    let t0 = rec.state().signals().as_of();
    let examine = |k: usize| 1.0 / (1.0 + k as f64).powf(0.8);
    let attract = |it: &omnifeed::FeedItem| {
        let x = f64::from(it.explanation.features[col::SIM_INTEREST].value);
        1.0 / (1.0 + (1.5 - 4.0 * x).exp())
    };
    let mut joiner = LabelJoiner::new(LabelWindows::all(60)).unwrap();
    let (mut truth, mut clicks, mut n) = (0.0, 0.0, 0.0);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut unit = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for id in 0..3_000u64 {
        let (user, at) = (users[id as usize % users.len()].id, t0 + 100 * id as i64);
        let feed = rec.recommend(&omnifeed::FeedRequest::new(user).k(6).at(at).id(id)).unwrap();
        rec.flush_exposures();
        for batch in sink.take() {
            joiner.add_exposures(&batch);
        }
        let mut events = Vec::new();
        for (k, it) in feed.items.iter().enumerate() {
            if unit() < examine(k) * attract(it) {
                events.push(Event::new(
                    at + 10,
                    user,
                    Target::Product(it.product),
                    EventKind::Click,
                ));
            }
        }
        clicks += events.len() as f64;
        joiner.add_events(&events);
        let mut by_score: Vec<&omnifeed::FeedItem> = feed.items.iter().collect();
        by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
        truth += by_score.iter().enumerate().map(|(k, it)| examine(k) * attract(it)).sum::<f64>();
        n += 1.0;
    }
    joiner.advance(t0 + 100 * 3_000 + 1_000);
    let joined = joiner.take();
    let mut bytes = Vec::new();
    write_examples_csv(&mut bytes, &joined).unwrap();
    let examples = read_examples_csv(&bytes[..], "examples.csv").unwrap();
    assert_eq!(examples, joined, "the CSV reads back as written");
    // Another file's header, or columns after `complete` that are not
    // features then heads, are parse errors naming line 1.
    let text = String::from_utf8(bytes.clone()).unwrap();
    for bad in [text.replacen("propensity", "p", 1), text.replacen(",f_", ",x_", 1)] {
        let e = read_examples_csv(bad.as_bytes(), "bad.csv").unwrap_err();
        assert!(e.to_string().contains("bad.csv") && e.to_string().contains('1'), "{e}");
    }
    let (truth, clicks) = (truth / n, clicks / n);

    let config = omnifeed::RecommenderConfig::default();
    let scorer = omnifeed::rank::LogisticScorer::from_weights(&config.scorer).unwrap();
    let fusion = config.fusion.feed;
    let cfg = OpeConfig { bootstrap: 200, ..OpeConfig::default() };
    let policy =
        |stochastic| Reranking { scorer: &scorer, fusion, logged_fusion: fusion, stochastic };
    let no_price = |_: omnifeed::ProductId| None;
    let same = evaluate_reranking(&examples, &policy(&logging), &no_price, &cfg).unwrap();
    assert_eq!((same.requests, same.slots, same.skipped), (3_000, 18_000, 0));
    assert!((same.clicks.logging - clicks).abs() < 1e-9, "{} {clicks}", same.clicks.logging);
    assert!((same.clicks.ips.value - clicks).abs() < 1e-6, "{:?}", same.clicks.ips);
    assert!(same.gmv.is_none() && same.unpriced == 18_000);

    let det = evaluate_reranking(&examples, &policy(&Stochastic::Off), &no_price, &cfg).unwrap();
    eprintln!(
        "deterministic: truth {truth:.4}, logging {clicks:.4}; IPS {:.4} SNIPS {:.4} DR {:.4}, ESS {:.0}",
        det.clicks.ips.value, det.clicks.snips.value, det.clicks.dr.value, det.clicks.snips.ess
    );
    for e in [det.clicks.snips, det.clicks.dr] {
        assert!((e.value - truth).abs() / truth < 0.05, "{e:?} truth {truth}");
        assert!(e.ci.0 <= truth && truth <= e.ci.1, "{e:?} truth {truth}");
    }
    assert!(truth > clicks, "the deterministic ranking earns more than the shuffled one");

    // The command line on the same file gives the same estimates.
    let dir = crate::it::live::snapshots::temp_dir("off_policy_cli");
    let csv = dir.join("examples.csv");
    std::fs::write(&csv, &bytes).unwrap();
    let out = std::process::Command::new(crate::it::examples::example("evaluate"))
        .args(["--off-policy", csv.to_str().unwrap(), "--bootstrap", "50"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let snips = line["summary"]["clicks"]["snips"].as_f64().unwrap();
    assert!((snips - det.clicks.snips.value).abs() < 1e-12, "{line}");
    assert_eq!(line["report"]["requests"], 3_000);
    let _ = std::fs::remove_dir_all(&dir);

    let quality = omnifeed::rank::Fusion { quality: 2.0, ..fusion };
    let bad = Reranking { fusion: quality, ..policy(&Stochastic::Off) };
    let err = evaluate_reranking(&examples, &bad, &no_price, &cfg).unwrap_err();
    assert!(err.to_string().contains("quality"), "{err}");
}
