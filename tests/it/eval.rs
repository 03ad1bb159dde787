//! Offline evaluation end to end: the shipped sample, slices of the real
//! logs, the report's shape, and the replay's bookkeeping.

use super::shared_data;
use omnifeed::eval::{
    CatalogSource, EvalConfig, ExperimentConfig, IndexKind, Method, Popularity, Split, SplitLog,
    evaluate, run_experiment,
};
use omnifeed::load::{
    LogOptions, read_dataset, read_movielens, read_movielens_movies, read_taobao,
};
use omnifeed::{Event, EventKind, ProductId, Target, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The events of the first `n` users in file order (both logs are grouped
/// or sorted by user, so a user's history stays whole).
fn first_users(events: &[Event], n: usize) -> Vec<Event> {
    let mut keep = HashSet::new();
    for e in events {
        if keep.len() < n {
            keep.insert(e.user);
        }
    }
    events.iter().filter(|e| keep.contains(&e.user)).cloned().collect()
}

fn beats(report: &omnifeed::eval::EvalReport, metric: &str, over: &[&str]) {
    let ours = report.metric("pipeline", metric).unwrap();
    for b in over {
        let theirs = report.metric(b, metric).unwrap();
        assert!(ours > theirs, "{metric}: pipeline {ours:.4} <= {b} {theirs:.4}");
    }
}

#[test]
fn taobao_slice_pipeline_beats_baselines() {
    let Some(path) = shared_data("taobao-userbehavior/UserBehavior.csv") else { return };
    let log = read_taobao(&path, &LogOptions::taobao()).unwrap();
    let events = first_users(&log.events, 500);
    let mut cfg = ExperimentConfig::taobao();
    cfg.index = IndexKind::Exact;
    let split = Split::Fraction(0.8).apply(&events, &cfg.eval.relevance).unwrap();
    let source = CatalogSource::FromLog { items: log.item_categories, titles: HashMap::new() };
    let exp = run_experiment(&source, &split, &cfg).unwrap();
    let report = &exp.run.report;
    println!("{}", report.table(&["ndcg@10", "recall@20", "hit@10", "mrr"]));
    assert!(report.requests > 400, "{}", report.requests);
    let r = exp.ranker.as_ref().unwrap();
    assert!(r.fitted[0] && r.examples > 10_000, "{r:?}");
    // The guard held out the latest labels and says what it chose; a head
    // it did not keep is the default's.
    let g = exp.guard.as_ref().unwrap();
    assert!(g.held_out > 0 && !g.reason.is_empty(), "{g:?}");
    assert_eq!(g.chosen == "default", !g.heads_kept.iter().any(|&k| k));
    let default = omnifeed::rank::LogisticScorer::from_weights(&cfg.recommender.scorer).unwrap();
    for h in 0..3 {
        if !g.heads_kept[h] {
            assert_eq!(exp.scorer.head(h), default.head(h), "head {h}");
        }
    }
    beats(report, "ndcg@10", &["popularity", "item_knn"]);
    beats(report, "recall@20", &["popularity", "item_knn"]);
}

#[test]
fn movielens_slice_pipeline_beats_baselines() {
    let Some(dir) = shared_data("movielens-latest-small") else { return };
    let (events, _) = read_movielens(dir.join("ratings.csv"), &LogOptions::default()).unwrap();
    let movies = read_movielens_movies(dir.join("movies.csv")).unwrap();
    assert_eq!(movies.len(), 9_742);
    let events = first_users(&events, 400);
    let cfg = ExperimentConfig::movielens();
    // Leave-last-out: every user of the slice is asked once.
    let split = Split::LeaveLastOut.apply(&events, &cfg.eval.relevance).unwrap();
    let source = CatalogSource::FromLog {
        items: movies.iter().map(|m| (m.id, m.category)).collect(),
        titles: movies.into_iter().map(|m| (m.id, m.title)).collect(),
    };
    let exp = run_experiment(&source, &split, &cfg).unwrap();
    let report = &exp.run.report;
    println!("{}", report.table(&["ndcg@10", "recall@20", "hit@10", "mrr"]));
    assert!(report.requests > 350, "{}", report.requests);
    beats(report, "ndcg@10", &["popularity", "item_knn"]);
    beats(report, "recall@20", &["popularity", "item_knn"]);
}

/// The shipped sample: the report has the documented JSON shape, every
/// method and metric is there and in range, runs are deterministic.
#[test]
fn sample_report_shape_and_determinism() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = read_dataset(&dir).unwrap();
    let source = CatalogSource::Given(Arc::new(data.catalog));
    let mut cfg = ExperimentConfig::taobao();
    cfg.index = IndexKind::Exact;
    let split = Split::Fraction(0.8).apply(&data.events, &cfg.eval.relevance).unwrap();
    let a = run_experiment(&source, &split, &cfg).unwrap();
    let json = a.run.report.to_json();
    let methods = json["methods"].as_object().unwrap();
    for m in ["pipeline", "popularity", "recent_popularity", "item_knn", "als"] {
        let metrics = methods[m].as_object().unwrap_or_else(|| panic!("no {m}"));
        for k in [
            "ndcg@10",
            "recall@20",
            "hit@10",
            "mrr",
            "coverage@20",
            "gini@20",
            "ild@10",
            "novelty@10",
            "gmv@20",
            "gini_merchant@20",
        ] {
            let v = metrics[k].as_f64().unwrap_or_else(|| panic!("{m} has no {k}"));
            assert!(v.is_finite() && v >= 0.0, "{m} {k} = {v}");
            if !k.starts_with("novelty") && !k.starts_with("gmv") {
                assert!(v <= 1.0, "{m} {k} = {v}");
            }
        }
        assert_eq!(json["ndcg_curve"][m].as_array().unwrap().len(), 50);
    }
    // The learned pipeline beats popularity on the synthetic sample too.
    assert!(
        a.run.report.metric("pipeline", "ndcg@10") > a.run.report.metric("popularity", "ndcg@10")
    );
    let b = run_experiment(&source, &split, &cfg).unwrap();
    assert_eq!(a.run.lists, b.run.lists, "same inputs, same lists");
    assert_eq!(a.scorer, b.scorer);
    // Heads trained elsewhere (here: a's) evaluate to the same lists.
    let given = ExperimentConfig { ranker: None, scorer: Some(a.scorer.clone()), ..cfg.clone() };
    let c = run_experiment(&source, &split, &given).unwrap();
    assert!(c.ranker.is_none());
    assert_eq!(a.run.lists, c.run.lists, "the given heads rank as the trained ones");
    let curve = &a.run.report.method("pipeline").unwrap().ndcg_curve;
    assert_eq!(curve[9], a.run.report.metric("pipeline", "ndcg@10").unwrap());
    // The chart has one line per method; the learned heads round-trip
    // through the file the scorer loads.
    let svg = omnifeed::eval::ndcg_chart_svg(&a.run.report, "sample");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 5);
    let path = std::env::temp_dir().join(format!("omnifeed-heads-{}.npy", std::process::id()));
    a.scorer.write_npy(&path).unwrap();
    let back = omnifeed::rank::LogisticScorer::from_npy(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(back, a.scorer);
}

/// `evaluate --variants`: each A/B variant is a method beside the pipeline;
/// a variant that overrides nothing ranks exactly as the pipeline does, and
/// one without the rerank rules ranks differently.
#[test]
fn variants_are_evaluated_beside_the_pipeline() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = read_dataset(&dir).unwrap();
    let source = CatalogSource::Given(Arc::new(data.catalog));
    let mut cfg = ExperimentConfig::taobao();
    cfg.index = IndexKind::Exact;
    cfg.ranker = None;
    let service = omnifeed::ServiceConfig::from_toml_str(
        r#"
        [[experiments]]
        name = "ab"
        [[experiments.variants]]
        name = "same"
        share = 0.5
        [[experiments.variants]]
        name = "no_rules"
        share = 0.5
        config = { rerank = { feed = { category_cap = 100, merchant_cap = 100, exploration_slots = 0, diversity = { kind = "none" } } } }
        "#,
    )
    .unwrap();
    cfg.variants = service.experiments;
    let split = Split::Fraction(0.8).apply(&data.events, &cfg.eval.relevance).unwrap();
    let exp = run_experiment(&source, &split, &cfg).unwrap();
    let r = &exp.run.report;
    let ndcg = |m: &str| r.metric(m, "ndcg@10").unwrap_or_else(|| panic!("no {m}"));
    assert_eq!(ndcg("pipeline"), ndcg("pipeline:ab/same"));
    assert_ne!(ndcg("pipeline"), ndcg("pipeline:ab/no_rules"));
    let ild = |m: &str| r.metric(m, "ild@10").unwrap();
    assert!(ild("pipeline:ab/no_rules") < ild("pipeline"), "the rules buy diversity");
}

#[test]
fn bad_evaluation_input_is_an_error() {
    let click =
        |at, u, p| Event::new(at, UserId(u), Target::Product(ProductId(p)), EventKind::Click);
    let catalog = world_catalog(&[1, 2]);
    let split = SplitLog { train: vec![click(0, 1, 1)], test: vec![click(5, 1, 2)], at: Some(5) };
    let mut fit = |h: &[Event], _at: i64| -> omnifeed::Result<Vec<Box<dyn Method>>> {
        Ok(vec![Box::new(Popularity::fit(h, &Default::default()))])
    };
    for cfg in [
        EvalConfig { ks: vec![0], ..EvalConfig::default() },
        EvalConfig { list_len: 10, ..EvalConfig::default() },
        EvalConfig { replay_steps: 0, ..EvalConfig::default() },
    ] {
        assert!(evaluate(&catalog, &split, &cfg, &mut fit).is_err(), "{cfg:?}");
    }
    // No test user with a relevant event: nothing to evaluate.
    let only_impressions = SplitLog {
        test: vec![Event::new(5, UserId(1), Target::Product(ProductId(2)), EventKind::Impression)],
        ..split.clone()
    };
    let err = evaluate(&catalog, &only_impressions, &EvalConfig::default(), &mut fit).unwrap_err();
    assert!(err.to_string().contains("nothing to evaluate"), "{err}");
    // A method's failure names the method and the user.
    struct Failing;
    impl Method for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn recommend(
            &self,
            _: UserId,
            _: i64,
            _: usize,
            _: &[ProductId],
        ) -> omnifeed::Result<Vec<ProductId>> {
            omnifeed::load::read_npy_ids("/nonexistent/ids.npy")
        }
    }
    let mut failing = |_: &[Event], _: i64| -> omnifeed::Result<Vec<Box<dyn Method>>> {
        Ok(vec![Box::new(Failing)])
    };
    let err = evaluate(&catalog, &split, &EvalConfig::default(), &mut failing).unwrap_err();
    assert!(err.to_string().contains("failing") && err.to_string().contains("user 1"), "{err}");
}

/// A scripted method on a tiny log, checked by hand: requests, exclusions,
/// replay windows, and the averaged metrics.
#[test]
fn replay_bookkeeping_by_hand() {
    let click =
        |at, u, p| Event::new(at, UserId(u), Target::Product(ProductId(p)), EventKind::Click);
    let train = vec![click(0, 1, 1), click(1, 2, 2), click(2, 1, 3)];
    let test = vec![click(10, 1, 2), click(11, 2, 1), click(12, 2, 4), click(20, 1, 4)];
    let split = SplitLog { train, test, at: Some(10) };
    let catalog = world_catalog(&[1, 2, 3, 4]);

    /// Always lists 2, 1, 4, 3 minus exclusions.
    struct Fixed;
    impl Method for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn recommend(
            &self,
            user: UserId,
            at: i64,
            k: usize,
            exclude: &[ProductId],
        ) -> omnifeed::Result<Vec<ProductId>> {
            let _ = (user, at);
            Ok([2, 1, 4, 3]
                .into_iter()
                .map(ProductId)
                .filter(|p| !exclude.contains(p))
                .take(k)
                .collect())
        }
    }
    let cfg = EvalConfig {
        ks: vec![1, 2],
        list_len: 4,
        curve_max: 2,
        exclude_known: true,
        ..EvalConfig::default()
    };
    let fits = std::cell::RefCell::new(Vec::new());
    let mut fit = |h: &[Event], at: i64| -> omnifeed::Result<Vec<Box<dyn Method>>> {
        fits.borrow_mut().push((h.len(), at));
        Ok(vec![Box::new(Fixed), Box::new(Popularity::fit(h, &Default::default()))])
    };
    let run = evaluate(&catalog, &split, &cfg, &mut fit).unwrap();
    // One window: both users asked at 10 with everything before it.
    assert_eq!(*fits.borrow(), vec![(3, 10)]);
    let fixed = &run.lists[0];
    // User 1 had 1 and 3: the list is 2, 4; relevant {2, 4}: recall@1 1/2,
    // ndcg@2 = 1. User 2 had 2: list 1, 4, 3; relevant {1, 4}: recall@1
    // 1/2, ndcg@2 = 1.
    assert_eq!(fixed.lists[0], (UserId(1), 10, vec![ProductId(2), ProductId(4)]));
    assert_eq!(fixed.lists[1], (UserId(2), 10, vec![ProductId(1), ProductId(4), ProductId(3)]));
    let r = &run.report;
    assert_eq!(r.requests, 2);
    assert_eq!(r.metric("fixed", "recall@1"), Some(0.5));
    assert_eq!(r.metric("fixed", "ndcg@2"), Some(1.0));
    assert_eq!(r.metric("fixed", "mrr"), Some(1.0));
    // Coverage@1: products 2 and 1 of 4 shown.
    assert_eq!(r.metric("fixed", "coverage@1"), Some(0.5));

    // Two replay windows: [10, 15) and [15, 21). The second refits on the
    // first window's events and asks only user 1, about product 4.
    let cfg2 = EvalConfig { replay_steps: 2, ..cfg };
    fits.borrow_mut().clear();
    let run = evaluate(&catalog, &split, &cfg2, &mut fit).unwrap();
    assert_eq!(*fits.borrow(), vec![(3, 10), (6, 15)]);
    assert_eq!(run.report.requests, 3);
    // User 1 had 1, 3 and 2 by 15: the list is 4 alone, a hit.
    assert_eq!(run.lists[0].lists[2], (UserId(1), 15, vec![ProductId(4)]));
}

fn world_catalog(ids: &[u64]) -> omnifeed::Catalog {
    use omnifeed::{CatalogBuilder, CategoryId, Merchant, MerchantId, MerchantStatus, Product};
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.5, status: MerchantStatus::Active });
    for &id in ids {
        b.add_product(Product {
            id: ProductId(id),
            category: CategoryId(id as u32 % 2),
            price: 1.0,
            merchant: MerchantId(1),
            stock: 1,
            listed_at: 0,
            title: None,
            ..Product::default()
        });
        b.add_embedding(ProductId(id), &[1.0, id as f32]);
    }
    b.build().unwrap()
}
