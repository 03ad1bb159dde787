//! Class 2: sizes from callers. No k, probe count, factor count or capacity
//! reaches an allocation unchecked: searches clamp to `len()`, configs have
//! documented upper bounds and typed errors past them.

use super::*;
use omnifeed::index::{
    ExactIndex, HnswIndex, HnswParams, IvfIndex, IvfParams, MAX_EF, Neighbor, VectorIndex,
};
use omnifeed::kernels::TopK;
use omnifeed::limits::{MAX_FILTER_CATEGORIES, MAX_K};
use omnifeed::train::{AlsConfig, RankerTrainConfig, fit_als, fit_logistic};
use omnifeed::{ErrorKind, Event, EventKind, FeedRequest, RequestFilters, Target, UserId};
use proptest::prelude::*;

const N: u64 = 300;

fn emb(i: u64) -> Vec<f32> {
    let x = i as f32;
    vec![(x * 0.37).sin(), (x * 0.11).cos(), (x * 0.05).sin() + 0.1, 1.0]
}

fn indexes() -> Vec<Box<dyn VectorIndex>> {
    let e = small_catalog(N, emb).shared_embeddings();
    let ivf = IvfParams { lists: 16, probes: 4, ..IvfParams::default() };
    vec![
        Box::new(ExactIndex::new(Arc::clone(&e))),
        Box::new(IvfIndex::build(Arc::clone(&e), ivf).unwrap()),
        Box::new(HnswIndex::build(e, HnswParams::default()).unwrap()),
    ]
}

fn check_list(out: &[Neighbor], at_most: usize, what: &str) {
    assert!(out.len() <= at_most, "{what}: {} rows", out.len());
    let mut rows: Vec<u32> = out.iter().map(|n| n.row.0).collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), out.len(), "{what}: duplicate rows");
    assert!(out.windows(2).all(|w| w[0].score >= w[1].score), "{what}: not best first");
    assert!(out.iter().all(|n| n.score.is_finite() && n.row.0 < N as u32));
}

#[test]
fn huge_k_returns_at_most_len_rows_on_every_index() {
    let q = [0.3, -0.2, 0.5, 1.0];
    let keep_even = |r: ItemIdx| r.0.is_multiple_of(2);
    for index in indexes() {
        let len = index.len();
        for k in [usize::MAX, usize::MAX / 2 + 1, 1 << 40, len + 1, len] {
            let mut out = Vec::new();
            index.search(&q, k, None, &mut out).unwrap();
            check_list(&out, len, index.id());
            if index.id() == "exact" {
                assert_eq!(out.len(), len, "exact returns every row");
            } else {
                // Approximate: what the probed lists or the graph reach.
                assert!(!out.is_empty(), "{}: no rows for k = {k}", index.id());
            }
            index.search(&q, k, Some(&keep_even), &mut out).unwrap();
            check_list(&out, len / 2, index.id());
            assert!(out.iter().all(|n| n.row.0 % 2 == 0));
        }
    }
}

#[test]
fn k_zero_is_invalid_k_on_every_index() {
    for index in indexes() {
        let e = index.search(&[1.0, 0.0, 0.0, 0.0], 0, None, &mut Vec::new()).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidK { k: 0, .. }), "{}: {e}", index.id());
    }
}

#[test]
fn probes_and_ef_from_callers_are_clamped() {
    let e = small_catalog(N, emb).shared_embeddings();
    let ivf =
        IvfIndex::build(Arc::clone(&e), IvfParams { lists: 16, probes: 4, ..Default::default() })
            .unwrap();
    let exact = ExactIndex::new(Arc::clone(&e));
    let q = [0.1, 0.2, 0.3, 0.4];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    exact.search(&q, 20, None, &mut a).unwrap();
    // Every list probed: exact.
    ivf.search_probes(&q, 20, usize::MAX, None, &mut b).unwrap();
    assert_eq!(omnifeed::index::recall(&b, &a), 1.0);
    ivf.search_probes(&q, 20, 0, None, &mut b).unwrap();
    check_list(&b, 20, "ivf probes 0");
    let hnsw = HnswIndex::build(e, HnswParams::default()).unwrap();
    hnsw.search_ef(&q, usize::MAX, usize::MAX, None, &mut b).unwrap();
    check_list(&b, N as usize, "hnsw ef max");
    hnsw.search_ef(&q, 20, 0, None, &mut b).unwrap();
    check_list(&b, 20, "hnsw ef 0");
}

#[test]
fn request_k_is_bounded() {
    let rec = recommender();
    for k in [0, MAX_K + 1, usize::MAX] {
        let e = rec.recommend(&FeedRequest::new(user()).k(k)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidK { k: got, max } if *got == k && *max == MAX_K),
            "{k}: {e}"
        );
    }
    let feed = rec.recommend(&FeedRequest::new(user()).k(MAX_K)).unwrap();
    assert!(!feed.items.is_empty() && feed.items.len() <= MAX_K);
    assert!(feed.items.len() <= feed.trace.scored);
}

#[test]
fn ivf_params_have_upper_bounds() {
    let e = small_catalog(50, emb).shared_embeddings();
    let d = IvfParams::default;
    for (p, field) in [
        (IvfParams { lists: omnifeed::index::MAX_LISTS + 1, ..d() }, "ivf.lists"),
        (IvfParams { probes: 0, ..d() }, "ivf.probes"),
        (IvfParams { probes: usize::MAX, ..d() }, "ivf.probes"),
        (IvfParams { iterations: 0, ..d() }, "ivf.iterations"),
        (IvfParams { iterations: 101, ..d() }, "ivf.iterations"),
        (IvfParams { train_sample: usize::MAX, ..d() }, "ivf.train_sample"),
        (IvfParams { lists: 4, probes: 5, ..d() }, "ivf.probes"),
    ] {
        assert_config_field(&IvfIndex::build(Arc::clone(&e), p).unwrap_err(), field);
    }
}

#[test]
fn hnsw_params_have_upper_bounds() {
    let e = small_catalog(10, emb).shared_embeddings();
    let d = HnswParams::default;
    for (p, field) in [
        (HnswParams { max_connections: 1, ..d() }, "hnsw.max_connections"),
        (HnswParams { max_connections: 257, ..d() }, "hnsw.max_connections"),
        (HnswParams { ef_construction: 4097, ..d() }, "hnsw.ef_construction"),
        (HnswParams { ef_search: 0, ..d() }, "hnsw.ef_search"),
        (HnswParams { ef_search: MAX_EF + 1, ..d() }, "hnsw.ef_search"),
        (HnswParams { max_layers: 17, ..d() }, "hnsw.max_layers"),
    ] {
        assert_config_field(&HnswIndex::build(Arc::clone(&e), p).unwrap_err(), field);
    }
}

#[test]
fn als_config_has_upper_bounds() {
    let log: Vec<Event> = (0..6)
        .map(|i| {
            Event::new(0, UserId(i), Target::Product(omnifeed::ProductId(i % 2)), EventKind::Click)
        })
        .collect();
    let d = AlsConfig::default;
    for (cfg, field) in [
        (AlsConfig { factors: 0, ..d() }, "als.factors"),
        (AlsConfig { factors: omnifeed::train::MAX_FACTORS + 1, ..d() }, "als.factors"),
        (AlsConfig { factors: usize::MAX, ..d() }, "als.factors"),
        (AlsConfig { iterations: 0, ..d() }, "als.iterations"),
        (AlsConfig { iterations: omnifeed::train::MAX_ITERATIONS + 1, ..d() }, "als.iterations"),
        (AlsConfig { alpha: f32::INFINITY, ..d() }, "als.alpha"),
        (AlsConfig { alpha: 1e7, ..d() }, "als.alpha"),
        (AlsConfig { regularization: -1.0, ..d() }, "als.regularization"),
    ] {
        assert_config_field(&fit_als(&log, &cfg).unwrap_err(), field);
    }
}

#[test]
fn ranker_training_and_logistic_sizes_are_bounded() {
    let d = RankerTrainConfig::default;
    for (cfg, field) in [
        (RankerTrainConfig { candidates: 0, ..d() }, "ranker.candidates"),
        (RankerTrainConfig { candidates: MAX_K + 1, ..d() }, "ranker.candidates"),
        (RankerTrainConfig { iterations: 0, ..d() }, "ranker.iterations"),
        (RankerTrainConfig { l2: f32::NAN, ..d() }, "ranker.l2"),
        (RankerTrainConfig { l2_grid: vec![1.0, -1.0], ..d() }, "ranker.l2_grid"),
        (RankerTrainConfig { l2_grid: vec![f32::INFINITY], ..d() }, "ranker.l2_grid"),
        (RankerTrainConfig { l2_grid: vec![1.0; 65], ..d() }, "ranker.l2_grid"),
    ] {
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig { field: f, .. } if *f == field));
    }
    // dim² Hessian: a huge dim is refused before it is allocated.
    let dim = 5_000;
    let x = vec![0.5f32; dim * 2];
    let err = fit_logistic(&x, &[0.0, 1.0], dim, 1.0, 10).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidValue { .. }), "{err}");
    // rows × dim overflowing usize is a shape error, not a wrap.
    let err = fit_logistic(&[1.0], &[1.0], usize::MAX, 1.0, 10).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidValue { .. }), "{err}");
}

#[test]
fn rerank_window_and_filter_categories_are_bounded() {
    let mut cfg = RecommenderConfig::default();
    cfg.rerank.feed.window = omnifeed::rerank::MAX_WINDOW + 1;
    let err = cfg.validate().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { field: "rerank.feed", .. }));
    let many = RequestFilters {
        categories: (0..=MAX_FILTER_CATEGORIES as u32).map(CategoryId).collect(),
        ..Default::default()
    };
    let err = recommender().recommend(&FeedRequest::new(user()).filters(many)).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidValue { field: "request.filters.categories", .. }
    ));
}

#[test]
fn a_top_k_of_usize_max_reserves_nothing_huge() {
    let mut buf = Vec::new();
    let mut top = TopK::new(&mut buf, usize::MAX);
    for i in 0..100u32 {
        top.push(ItemIdx(i), i as f32);
    }
    top.finish();
    assert_eq!(buf.len(), 100);
    assert_eq!(buf[0].row, ItemIdx(99));
    assert!(buf.capacity() < 10_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any k, probe count and ef: at most min(k, len) distinct rows, best
    /// first, finite scores.
    #[test]
    fn any_k_probes_and_ef_give_a_bounded_list(
        k in prop_oneof![1usize..50, Just(usize::MAX), any::<usize>().prop_map(|k| k.max(1))],
        probes in any::<usize>(),
        ef in any::<usize>(),
        q in prop::collection::vec(-10.0f32..10.0, 4),
    ) {
        prop_assume!(q.iter().any(|x| x.abs() > 1e-3));
        let e = small_catalog(N, emb).shared_embeddings();
        let ivf = IvfIndex::build(Arc::clone(&e), IvfParams { lists: 16, probes: 4, ..Default::default() }).unwrap();
        let hnsw = HnswIndex::build(e, HnswParams { parallel_build: false, ..Default::default() }).unwrap();
        let mut out = Vec::new();
        ivf.search_probes(&q, k, probes, None, &mut out).unwrap();
        check_list(&out, k.min(N as usize), "ivf");
        hnsw.search_ef(&q, k, ef, None, &mut out).unwrap();
        check_list(&out, k.min(N as usize), "hnsw");
    }
}
