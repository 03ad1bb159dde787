//! Stage contracts (issue 11): custom sources reach their feature column,
//! filters say what they removed, stages switch off per surface and per
//! request, built-in sources can be replaced or removed, side effects see
//! the feed, a query that matched nothing says so, `features_for` gives
//! the ranking stage's rows.

use crate::it::adversarial::{recommender, store, user, world};
use omnifeed::rank::{F, FeatureMatrix, Scorer, col};
use omnifeed::stage::{CandidateBuf, CandidateSource, RequestContext};
use omnifeed::stage::{Filter, SideEffect};
use omnifeed::{
    ErrorKind, Feed, FeedRequest, ItemIdx, ProductId, QueryOutcome, Recommender, RecommenderConfig,
    RemovalReason, ServingState, Surface,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn state() -> ServingState {
    (*recommender().state()).clone()
}

/// Proposes fixed rows with fixed scores.
#[derive(Debug)]
struct Fixed(&'static str, Vec<(u32, f32)>);

impl CandidateSource for Fixed {
    fn id(&self) -> &'static str {
        self.0
    }
    fn retrieve(&self, _: &RequestContext<'_>, out: &mut CandidateBuf) -> omnifeed::Result<()> {
        for &(r, s) in &self.1 {
            out.push(ItemIdx(r), s);
        }
        Ok(())
    }
}

/// Writes each row's `src_other` feature into the first head, so the
/// explanation shows what the feature was.
#[derive(Debug)]
struct Echo;

impl Scorer for Echo {
    fn id(&self) -> &'static str {
        "echo"
    }
    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        for i in 0..features.rows() {
            out[i * 3] = features.row(i)[col::SRC_OTHER];
            out[i * 3 + 1] = 0.5;
            out[i * 3 + 2] = 0.5;
        }
    }
}

#[test]
fn a_custom_source_score_reaches_its_feature_column() {
    // Rows 40 and 41: scores 2 and 1 normalize to 1 and 0.5.
    let rec = Recommender::builder()
        .state(state())
        .source(Box::new(Fixed("followed", vec![(40, 2.0), (41, 1.0)])))
        .scorer(Box::new(Echo))
        .build()
        .unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(200)).unwrap();
    let catalog = world().catalog.clone();
    let other = |row: u32| {
        let id = catalog.product_id(ItemIdx(row));
        feed.items.iter().find(|i| i.product == id).map(|i| {
            let f = &i.explanation.features;
            assert_eq!(f[col::SRC_OTHER].name, "src_other");
            (f[col::SRC_OTHER].value, i.explanation.sources.iter().any(|s| s.source == "followed"))
        })
    };
    assert_eq!(other(40), Some((1.0, true)));
    assert_eq!(other(41), Some((0.5, true)));
    // A row the custom source did not find has 0 there.
    let plain = feed
        .items
        .iter()
        .find(|i| !i.explanation.sources.iter().any(|s| s.source == "followed"))
        .unwrap();
    assert_eq!(plain.explanation.features[col::SRC_OTHER].value, 0.0);
    assert_eq!(F, 27);
}

/// Removes every product of one category.
#[derive(Debug)]
struct NoCategory(u32);

impl Filter for NoCategory {
    fn id(&self) -> &'static str {
        "no_category"
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.surface() != Surface::Search
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let cats = ctx.catalog.categories();
        for (r, slot) in rows.iter().zip(removed) {
            if slot.is_none() && cats[r.index()].0 == self.0 {
                *slot = Some(RemovalReason::Custom("no_category"));
            }
        }
    }
}

#[test]
fn a_custom_filter_removes_counts_and_can_be_switched_off() {
    let banned = world().catalog.categories()[0].0;
    let rec =
        Recommender::builder().state(state()).filter(Box::new(NoCategory(banned))).build().unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(30)).unwrap();
    let state = rec.state();
    let catalog = state.catalog();
    assert!(
        feed.items
            .iter()
            .all(|i| catalog.categories()[catalog.row(i.product).unwrap().index()].0 != banned)
    );
    let (id, n) = *feed.trace.filters.last().unwrap();
    assert_eq!(id, "no_category");
    assert!(n > 0);
    assert!(feed.trace.removed.contains(&(RemovalReason::Custom("no_category"), n)));
    // Per request: skipped, it removes nothing and is not in the trace.
    let skipped = rec.recommend(&FeedRequest::new(user()).k(30).skip("no_category")).unwrap();
    assert!(skipped.trace.filters.iter().all(|f| f.0 != "no_category"));
    // Per surface through `enabled`: not on search.
    let search = rec
        .recommend(&FeedRequest::new(user()).surface(Surface::Search).search_text("headphones"))
        .unwrap();
    assert!(search.trace.filters.iter().all(|f| f.0 != "no_category"));
}

#[test]
fn stages_switch_off_per_surface_in_config_and_per_request() {
    let mut cfg = RecommenderConfig::default();
    cfg.disabled.feed = vec!["popular".into(), "fresh".into()];
    let rec = Recommender::builder().config(cfg).state(state()).build().unwrap();
    let feed = rec.recommend(&FeedRequest::new(user())).unwrap();
    assert!(feed.trace.sources.iter().all(|s| s.source != "popular" && s.source != "fresh"));
    let omni = rec.recommend(&FeedRequest::new(user()).surface(Surface::Omni)).unwrap();
    assert!(omni.trace.sources.iter().any(|s| s.source == "popular"));
    let req = FeedRequest::new(user()).surface(Surface::Omni).skip("interest_ann").skip("seen");
    let omni = rec.recommend(&req).unwrap();
    assert!(omni.trace.sources.iter().all(|s| s.source != "interest_ann"));
    assert!(omni.trace.filters.iter().all(|f| f.0 != "seen"));
    // Unknown and required stages cannot be skipped.
    for id in ["nope", "governance", "exclusion"] {
        let e = rec.recommend(&FeedRequest::new(user()).skip(id)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidValue { field: "request.skip", .. }),
            "{id}: {e}"
        );
    }
    let mut cfg = RecommenderConfig::default();
    cfg.disabled.omni = vec!["governance".into()];
    let e = Recommender::builder().config(cfg).state(state()).build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "disabled.omni", .. }), "{e}");
    let mut cfg = RecommenderConfig::default();
    cfg.disabled.feed = vec!["typo".into()];
    let e = Recommender::builder().config(cfg).state(state()).build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "disabled.feed", .. }), "{e}");
}

#[test]
fn built_in_sources_can_be_replaced_or_removed() {
    let rec = Recommender::builder()
        .state(state())
        .replace_source(Box::new(Fixed("popular", vec![(7, 1.0)])))
        .without_source("fresh")
        .build()
        .unwrap();
    assert!(!rec.source_ids().contains(&"fresh"));
    let feed = rec.recommend(&FeedRequest::new(user())).unwrap();
    let popular = feed.trace.sources.iter().find(|s| s.source == "popular").unwrap();
    assert_eq!(popular.candidates, 1);
    for b in [
        Recommender::builder().state(state()).replace_source(Box::new(Fixed("nope", vec![]))),
        Recommender::builder().state(state()).without_source("nope"),
        Recommender::builder()
            .state(state())
            .filter(Box::new(NoCategory(1)))
            .source(Box::new(Fixed("no_category", vec![]))),
    ] {
        let e = b.build().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "sources", .. }), "{e}");
    }
}

/// Counts feeds and remembers the last one's length.
#[derive(Debug, Default)]
struct Impressions {
    feeds: AtomicUsize,
    last: Mutex<Option<(u64, usize)>>,
}

impl SideEffect for Impressions {
    fn id(&self) -> &'static str {
        "impressions"
    }
    fn run(&self, request: &FeedRequest, feed: &Feed) {
        *self.last.lock().unwrap() = Some((request.user.0, feed.items.len()));
        self.feeds.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn side_effects_see_every_feed_after_it_is_built() {
    let log = Arc::new(Impressions::default());
    let rec = Recommender::builder().state(state()).side_effect(log.clone()).build().unwrap();
    for _ in 0..3 {
        rec.recommend(&FeedRequest::new(user()).k(12)).unwrap();
    }
    let t = std::time::Instant::now();
    while log.feeds.load(Ordering::SeqCst) < 3 && t.elapsed().as_secs() < 10 {
        std::thread::yield_now();
    }
    assert_eq!(log.feeds.load(Ordering::SeqCst), 3);
    assert_eq!(*log.last.lock().unwrap(), Some((user().0, 12)));
    // Skipped per request: it does not run.
    rec.recommend(&FeedRequest::new(user()).k(3).skip("impressions")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(log.feeds.load(Ordering::SeqCst), 3);
    // The ranking core takes the same request (a side effect's id is a
    // valid skip there too) and spawns no side effect.
    let rows: Vec<ItemIdx> = (0..20).map(ItemIdx).collect();
    let skip = FeedRequest::new(user()).k(3).skip("impressions");
    assert_eq!(rec.score_rows(&mut rec.new_scratch(), &skip, &rows).unwrap().len(), 3);
    assert_eq!(rec.score_rows_naive(&skip, &rows).unwrap().len(), 3);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(log.feeds.load(Ordering::SeqCst), 3);
}

#[test]
fn a_query_that_matched_nothing_says_so() {
    let rec = recommender();
    let noun = omnifeed::synth::category_noun(world().catalog.categories()[0]);
    let req = FeedRequest::new(user()).surface(Surface::Search).search_text(noun);
    let hit = rec.recommend(&req).unwrap();
    assert_eq!(hit.trace.query, QueryOutcome::Matched);
    let miss = rec
        .recommend(&FeedRequest::new(user()).surface(Surface::Search).search_text("zzqxj"))
        .unwrap();
    assert_eq!(miss.trace.query, QueryOutcome::NoMatch);
    assert!(miss.items.iter().all(|i| i.explanation.sources.iter().all(|s| s.source != "search")));
    let none = rec.recommend(&FeedRequest::new(user())).unwrap();
    assert_eq!(none.trace.query, QueryOutcome::NotSearch);
    // Punctuation only: nothing to search for, said as such.
    for text in ["!!!", "?!.,;", "-- + --"] {
        let req = FeedRequest::new(user()).surface(Surface::Search).search_text(text);
        assert_eq!(rec.recommend(&req).unwrap().trace.query, QueryOutcome::NoSearchableTerm);
    }
    // A Feed carrying search text runs no search: not a search, not "no match".
    let feed = rec.recommend(&FeedRequest::new(user()).search_text(noun)).unwrap();
    assert_eq!(feed.trace.query, QueryOutcome::NotSearch);
    // The search source switched off for the request: not a search either.
    let skipped = rec.recommend(&req.clone().skip("search")).unwrap();
    assert_eq!(skipped.trace.query, QueryOutcome::NotSearch);
}

#[test]
fn features_for_gives_the_ranking_rows() {
    let rec = recommender();
    let at = rec.state().signals().as_of();
    let ids: Vec<ProductId> = world().catalog.product_ids()[..5].to_vec();
    let m = rec.features_for(user(), &ids, at).unwrap();
    assert_eq!(m.rows(), 5);
    let signals = store().publish();
    for (i, &id) in ids.iter().enumerate() {
        let row = world().catalog.row(id).unwrap();
        let ctr = signals.rate(row, omnifeed::signals::Rate::Ctr);
        assert!((m.row(i)[col::CTR] - ctr).abs() < 1e-6);
    }
    // The rows of a served feed's products are the rows it was ranked
    // with, source columns included (issue 24: they were 0 before).
    let feed = rec.recommend(&FeedRequest::new(user()).k(40).at(at)).unwrap();
    let served: Vec<ProductId> = feed.items.iter().map(|i| i.product).collect();
    let m = rec.features_for(user(), &served, at).unwrap();
    for (i, item) in feed.items.iter().enumerate() {
        let want: Vec<f32> = item.explanation.features.iter().map(|f| f.value).collect();
        assert_eq!(m.row(i), &want[..], "{}", item.product);
        assert_eq!(m.row(i)[col::N_SOURCES], item.explanation.sources.len() as f32);
    }
    assert!(feed.items.iter().all(|i| !i.explanation.sources.is_empty()));
    let e = rec.features_for(user(), &[ProductId(u64::MAX)], at).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { .. }));
    // A matrix from rows scores like the one the engine built.
    let again = FeatureMatrix::from_rows(m.as_slice()).unwrap();
    assert_eq!(again.as_slice(), m.as_slice());
    assert!(FeatureMatrix::from_rows(&[0.0; F - 1]).is_err());
}

#[test]
fn the_documented_service_config_loads_and_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/omnifeed.toml");
    let cfg = omnifeed::ServiceConfig::from_file(&path).unwrap();
    // Every documented key equals its default, apart from the example arm.
    let expected = omnifeed::ServiceConfig {
        experiments: cfg.experiments.clone(),
        server: cfg.server.clone(),
        ..Default::default()
    };
    assert_eq!(cfg, expected, "examples/omnifeed.toml drifted from the defaults");
    assert_eq!(cfg.experiments[0].variants[0].name, "pool300_mmr07");
    let rec = Recommender::builder().service(&cfg).state(state()).build().unwrap();
    // About one user in ten is in the variant; the trace names it.
    let mut variant = 0;
    for u in &world().users {
        let feed = rec.recommend(&FeedRequest::new(u.id).k(5)).unwrap();
        assert_eq!(feed.trace.variant.as_deref(), rec.variant_of(u.id).as_deref());
        if let Some(v) = feed.trace.variant {
            assert_eq!(v, "bigger_pool/pool300_mmr07");
            assert!(feed.trace.rerank_pool <= 300);
            variant += 1;
        }
    }
    assert!((2..=25).contains(&variant), "{variant} of 100 users in a 10% arm");
}

#[test]
fn variants_override_the_config_and_the_scorer() {
    use omnifeed::experiment::{Experiment, Variant, bucket};
    let table = |s: &str| s.parse::<toml::Table>().unwrap();
    let exp = Experiment {
        name: "half".into(),
        salt: Some("s1".into()),
        variants: vec![Variant {
            name: "no_popular".into(),
            share: 0.5,
            config: table("disabled = { feed = [\"popular\"] }\n[scorer.pctr]\nbias = 5.0"),
        }],
    };
    let rec = Recommender::builder().state(state()).experiments(vec![exp.clone()]).build().unwrap();
    let mut seen = [0, 0];
    for u in &world().users {
        let feed = rec.recommend(&FeedRequest::new(u.id)).unwrap();
        let in_arm = bucket(u.id, "s1") < 0.5;
        assert_eq!(feed.trace.variant.is_some(), in_arm);
        let popular = feed.trace.sources.iter().any(|s| s.source == "popular");
        assert_eq!(popular, !in_arm, "the arm disables popular");
        if in_arm {
            // bias 5 on pctr: every head near 1.
            assert!(feed.items.iter().all(|i| i.explanation.heads[0].value > 0.9));
        }
        seen[usize::from(in_arm)] += 1;
    }
    assert!(seen[0] > 20 && seen[1] > 20, "{seen:?}");
    // Bad variants are build errors.
    for bad in [
        Variant { name: "a".into(), share: 1.5, config: table("") },
        Variant { name: "b".into(), share: 0.5, config: table("rerank_pol = 3") },
        Variant { name: "c".into(), share: 0.5, config: table("rerank_pool = 0") },
    ] {
        let e = Experiment { name: "x".into(), salt: None, variants: vec![bad] };
        let err = Recommender::builder().state(state()).experiments(vec![e]).build().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }), "{err}");
    }
}

/// With the `metrics` feature: stage latencies and counters reach the
/// installed recorder (`.ci/run` runs this with `--features metrics`).
#[cfg(feature = "metrics")]
#[test]
fn metrics_reach_the_recorder() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rec = fresh_with_failing_source();
    metrics::with_local_recorder(&recorder, || {
        rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    });
    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        snap.iter().find(|(k, _, _, _)| {
            k.key().name() == name
                && label.is_none_or(|(lk, lv)| {
                    k.key().labels().any(|l| l.key() == lk && l.value() == lv)
                })
        })
    };
    for stage in ["resolve", "retrieve", "merge", "filter", "rank", "select", "present"] {
        let (_, _, _, v) = find("omnifeed_stage_seconds", Some(("stage", stage))).expect(stage);
        assert!(matches!(v, DebugValue::Histogram(h) if h.len() == 1), "{stage}");
    }
    let (_, _, _, v) = find("omnifeed_candidates_total", Some(("source", "interest_ann"))).unwrap();
    assert!(matches!(v, DebugValue::Counter(n) if *n > 0));
    let (_, _, _, v) = find("omnifeed_source_errors_total", Some(("source", "broken"))).unwrap();
    assert!(matches!(v, DebugValue::Counter(1)));
    assert!(find("omnifeed_requests_total", Some(("surface", "feed"))).is_some());
}

#[cfg(feature = "metrics")]
fn fresh_with_failing_source() -> Recommender {
    #[derive(Debug)]
    struct Broken;
    impl CandidateSource for Broken {
        fn id(&self) -> &'static str {
            "broken"
        }
        fn retrieve(&self, ctx: &RequestContext<'_>, _: &mut CandidateBuf) -> omnifeed::Result<()> {
            Err(ctx.catalog.require_row(ProductId(u64::MAX), "broken source").unwrap_err())
        }
    }
    Recommender::builder().state(state()).source(Box::new(Broken)).build().unwrap()
}

/// Places the pool in ascending value, and once more a row out of range and
/// a repeat (user code gone wrong: both are dropped).
#[derive(Debug)]
struct Ascending;

impl omnifeed::stage::Reranker for Ascending {
    fn id(&self) -> &'static str {
        "ascending"
    }
    fn rerank(
        &self,
        input: &omnifeed::rerank::RerankInput<'_>,
        _: &omnifeed::stage::RequestContext<'_>,
        _: &mut omnifeed::rerank::RerankScratch,
        out: &mut Vec<omnifeed::rerank::Placed>,
    ) {
        let n = input.pool.len();
        out.push(omnifeed::rerank::Placed { index: n + 5, rules: 0 });
        for i in (0..n).rev().take(input.k) {
            out.push(omnifeed::rerank::Placed { index: i, rules: 0 });
        }
        out.push(omnifeed::rerank::Placed { index: n - 1, rules: 0 });
    }
}

#[test]
fn a_custom_reranker_replaces_the_select_stage() {
    let rec = Recommender::builder().state(state()).reranker(Box::new(Ascending)).build().unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    assert_eq!(feed.items.len(), 10);
    assert!(feed.items.windows(2).all(|w| w[0].score <= w[1].score), "ascending value");
    let ids: std::collections::HashSet<_> = feed.items.iter().map(|i| i.product).collect();
    assert_eq!(ids.len(), 10, "the repeat was dropped");
}

/// Lifecycle swaps (issue 26, part 2): the scorer, the config and the
/// experiments of a running recommender swap atomically. While four
/// threads serve feeds, another swaps the scorer back and forth between
/// the config's logistic heads and one whose heads are all 0.25: every
/// feed is wholly one or the other, never torn. Read back: the scorer's
/// id, the config and the experiments in force.
#[test]
fn swaps_under_load_give_no_torn_response() {
    use omnifeed::features::FeatureMatrix;
    use omnifeed::stage::Scorer;
    use std::sync::atomic::{AtomicBool, Ordering};
    #[derive(Debug)]
    struct Flat;
    impl Scorer for Flat {
        fn id(&self) -> &'static str {
            "flat"
        }
        fn score(&self, _: &FeatureMatrix, out: &mut [f32]) {
            out.fill(0.25);
        }
    }
    let rec = Arc::new(Recommender::builder().state(state()).build().unwrap());
    let logistic: Arc<dyn Scorer> =
        Arc::new(omnifeed::rank::LogisticScorer::from_weights(&rec.config().scorer).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = (0..4)
        .map(|t| {
            let (rec, stop) = (Arc::clone(&rec), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut flat, mut other) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let feed = rec.recommend(&FeedRequest::new(user()).k(10).id(t)).unwrap();
                    let heads: Vec<f32> = feed
                        .items
                        .iter()
                        .flat_map(|i| i.explanation.heads.iter().map(|h| h.value))
                        .collect();
                    let quarter = heads.iter().filter(|&&h| h == 0.25).count();
                    assert!(quarter == 0 || quarter == heads.len(), "a torn feed: {heads:?}");
                    if quarter == 0 { other += 1 } else { flat += 1 }
                }
                (flat, other)
            })
        })
        .collect();
    for i in 0..200 {
        let next: Arc<dyn Scorer> = if i % 2 == 0 { Arc::new(Flat) } else { Arc::clone(&logistic) };
        rec.set_scorer(next).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut flat, mut other) = (0, 0);
    for s in servers {
        let (f, o) = s.join().unwrap();
        (flat, other) = (flat + f, other + o);
    }
    assert!(flat > 0 && other > 0, "both scorers served: {flat} flat, {other} logistic");
    assert_eq!(rec.scorer_id(), logistic.id());
    // The config and the experiments swap and read back the same way.
    let mut config = rec.config();
    config.sources.interest = 77;
    rec.set_config(config.clone()).unwrap();
    assert_eq!(rec.config(), config);
    let mut bad = config.clone();
    bad.rerank_pool = 0;
    assert!(rec.set_config(bad).is_err());
    assert_eq!(rec.config(), config, "a refused config leaves the one in force");
    let exp = omnifeed::ServiceConfig::from_toml_str(
        "[[experiments]]\nname = \"e\"\n[[experiments.variants]]\nname = \"v\"\nshare = 1.0\nconfig = { rerank_pool = 50 }\n",
    )
    .unwrap()
    .experiments;
    rec.set_experiments(exp.clone()).unwrap();
    assert_eq!(rec.experiments(), exp);
    assert_eq!(rec.variant_of(user()).as_deref(), Some("e/v"));
    let feed = rec.recommend(&FeedRequest::new(user()).k(5)).unwrap();
    assert_eq!(feed.trace.variant.as_deref(), Some("e/v"));
    rec.set_experiments(Vec::new()).unwrap();
    assert_eq!(rec.variant_of(user()), None);
}
