//! The ranking core: features + scorer heads + fusion + top-k over a given
//! candidate set (`Recommender::score_rows`), d = 64, on a 100,000-product
//! synthetic world, against the naive path (`score_rows_naive`: a feature
//! vector allocated per candidate, the scorer called row by row, a full
//! sort) in the same group.
//!
//! `rank/score_fuse_topk_cold/1000` and `rank/gather_dot_cold/1000` (one
//! group) rank fresh random rows of a 1,000,000-product catalog each
//! iteration, so the rows come from memory, not cache: the real case of a
//! retrieval result scattered over a large catalog. The floor is the same
//! rows with one dot product each (the embedding gather, nothing else).
//!
//! `cargo bench --bench rank` (`-- cold` for the cold group alone)

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use omnifeed::index::ExactIndex;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{Clock, FeedRequest, ItemIdx, Recommender, ServingState, SignalConfig, Signals};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// A synthetic catalog of `n` products × 64, its signals, and a
/// recommender over an exact index at the signals' time.
fn served_world(n: usize) -> (omnifeed::synth::World, Arc<omnifeed::Catalog>, Recommender) {
    let world = generate(&SynthConfig::catalog_only(n, 64)).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let (signals, _) =
        Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
            .expect("signals");
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals)).expect("state");
    let rec =
        Recommender::builder().clock(Clock::SignalsAsOf).state(state).build().expect("recommender");
    (world, catalog, rec)
}

fn rank(c: &mut Criterion) {
    let (world, catalog, rec) = served_world(100_000);
    let users: Vec<FeedRequest> = world
        .users
        .iter()
        .filter(|u| rec.state().signals().profile(u.id).is_some())
        .take(64)
        .map(|u| FeedRequest::new(u.id).k(50))
        .collect();
    let mut group = c.benchmark_group("rank");
    group.sample_size(50).measurement_time(Duration::from_secs(4));
    for n in [1000usize, 5000] {
        // Candidates spread over the catalog (a retrieval result's pattern:
        // scattered rows, so the gathers miss cache like the real thing).
        let step = catalog.len() / n;
        let rows: Vec<ItemIdx> = (0..n).map(|i| ItemIdx((i * step + i % 7) as u32)).collect();
        group.throughput(Throughput::Elements(n as u64));
        let mut scratch = rec.new_scratch();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("score_fuse_topk", n), |b| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let top = rec.score_rows(&mut scratch, &users[i], black_box(&rows)).expect("rank");
                black_box(top.len())
            })
        });
        group.bench_function(BenchmarkId::new("score_fuse_topk_naive", n), |b| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let top = rec.score_rows_naive(&users[i], black_box(&rows)).expect("rank");
                black_box(top.len())
            })
        });
    }
    // Tree heads (issue 24): the LightGBM model `scripts/train_tree_models.py`
    // trains (30 trees of 15 leaves, depth up to 6), one per head, ranking
    // the same 1,000 rows as `score_fuse_topk/1000`.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trees/lightgbm.txt");
    let model = std::fs::read_to_string(path).expect("tests/data/trees/lightgbm.txt");
    let trees = omnifeed::rank::TreeEnsemble::from_lightgbm_text(&model).expect("trees");
    let fallback = omnifeed::rank::LogisticScorer::from_weights(&Default::default()).expect("w");
    let scorer = omnifeed::rank::TreeScorer::new(
        [Some(trees.clone()), Some(trees.clone()), Some(trees)],
        fallback,
    )
    .expect("tree scorer");
    let rec_trees = Recommender::builder()
        .clock(Clock::SignalsAsOf)
        .state(rec.state().as_ref().clone())
        .scorer(Box::new(scorer))
        .build()
        .expect("recommender");
    let n = 1000;
    let step = catalog.len() / n;
    let rows: Vec<ItemIdx> = (0..n).map(|i| ItemIdx((i * step + i % 7) as u32)).collect();
    group.throughput(Throughput::Elements(n as u64));
    for (name, r) in [("score_fuse_topk_again", &rec), ("gbdt_topk", &rec_trees)] {
        let mut scratch = r.new_scratch();
        let mut i = 0;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let top = r.score_rows(&mut scratch, &users[i], black_box(&rows)).expect("rank");
                black_box(top.len())
            })
        });
    }
    group.finish();
}

/// A seeded stream of distinct random rows (splitmix64), `n` per call.
fn random_rows(state: &mut u64, len: usize, n: usize) -> Vec<ItemIdx> {
    let mut rows: Vec<ItemIdx> = (0..n)
        .map(|_| {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ItemIdx(((z ^ (z >> 31)) % len as u64) as u32)
        })
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

fn rank_cold(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let (world, catalog, rec) = served_world(N);
    let users: Vec<(FeedRequest, Vec<f32>)> = world
        .users
        .iter()
        .filter_map(|u| {
            let state = rec.state();
            let v = state.signals().profile(u.id)?.interest()?.to_vec();
            Some((FeedRequest::new(u.id).k(50), v))
        })
        .take(64)
        .collect();
    let emb = catalog.shared_embeddings();
    let mut group = c.benchmark_group("rank");
    group.sample_size(50).measurement_time(Duration::from_secs(6));
    let n = 1000;
    group.throughput(Throughput::Elements(n as u64));
    let mut scratch = rec.new_scratch();
    // Both draw the same seeded sequence of row sets.
    let (mut s1, mut s2, mut i, mut j) = (7u64, 7u64, 0usize, 0usize);
    group.bench_function(BenchmarkId::new("score_fuse_topk_cold", n), |b| {
        b.iter_batched(
            || random_rows(&mut s1, N, n),
            |rows| {
                i = (i + 1) % users.len();
                let top = rec.score_rows(&mut scratch, &users[i].0, &rows).expect("rank");
                black_box(top.len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function(BenchmarkId::new("gather_dot_cold", n), |b| {
        b.iter_batched(
            || random_rows(&mut s2, N, n),
            |rows| {
                j = (j + 1) % users.len();
                let q = &users[j].1;
                let mut sum = 0.0f32;
                for r in &rows {
                    sum += omnifeed::kernels::dot(q, emb.row(*r));
                }
                black_box(sum)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, rank, rank_cold);
criterion_main!(benches);
