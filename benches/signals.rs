//! Signal ingest and profile cost on the synthetic world's event log
//! (20,000 products, 2,000 users, d = 64), one thread.
//!
//! - `ingest/log`: every event of the log into a fresh store; criterion's
//!   throughput is in counter updates (one entity × one counter kind, all
//!   half-lives at once); the events per run are printed at start.
//! - `finalize/all_users`: session vectors and spherical k-means interests
//!   of every user the log touched (what `publish` does for changed users),
//!   on one thread.
//! - `publish/derive`: a publish with no profile work: priors, rates,
//!   governance, trending over the whole catalog.
//! - `coengage/update`: one click by a user with recent engagements, with
//!   and without co-engagement (`neighbours = 0`): the pairing's cost is
//!   the difference, measured in the same run.
//! - `coengage/query`: a user's co-engagement scores (20 seeds' lists
//!   merged), what the `coengaged` source and feature compute per request.
//!
//! `cargo bench --bench signals`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{SignalConfig, SignalStore};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn signals(c: &mut Criterion) {
    let world = generate(&SynthConfig::default()).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let events = &world.events;
    let fresh = || SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).expect("store");
    let mut probe = fresh();
    let report = probe.ingest_batch(events);
    assert_eq!(report.applied, report.events);
    eprintln!(
        "log: {} events, {} counter updates ({:.2} per event), {} users",
        report.events,
        report.counter_updates,
        report.counter_updates as f64 / report.events as f64,
        world.users.len()
    );

    let mut group = c.benchmark_group("ingest");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(report.counter_updates));
    group.bench_function("log", |b| {
        b.iter_batched(
            fresh,
            |mut store| black_box(store.ingest_batch(black_box(events)).applied),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // Profile finalization on one thread (rayon would spread the shards).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let mut group = c.benchmark_group("finalize");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(world.users.len() as u64));
    group.bench_function("all_users", |b| {
        b.iter_batched(
            || probe.clone(),
            |mut store| pool.install(|| black_box(store.finalize_profiles())),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    probe.finalize_profiles();
    let mut group = c.benchmark_group("publish");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("derive", |b| b.iter(|| black_box(probe.publish().as_of())));
    group.finish();
}

fn coengage(c: &mut Criterion) {
    use omnifeed::signals::CoEngagementConfig;
    use omnifeed::{Event, EventKind, Target};
    let world = generate(&SynthConfig::default()).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let mut group = c.benchmark_group("coengage");
    for (name, neighbours) in [("update", 32), ("update_off", 0)] {
        let cfg = SignalConfig {
            co_engagement: CoEngagementConfig { neighbours, ..CoEngagementConfig::default() },
            ..SignalConfig::default()
        };
        let mut store = SignalStore::new(Arc::clone(&catalog), cfg).expect("store");
        store.ingest_batch(&world.events);
        let at = store.watermark().unwrap_or(0);
        let user = world.users[0].id;
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let p = catalog.product_ids()[(i * 7919 % catalog.len() as u64) as usize];
                let e = Event::new(at, user, Target::Product(p), EventKind::Click);
                black_box(store.ingest(&e).is_ok())
            })
        });
    }
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).expect("store");
    store.ingest_batch(&world.events);
    let signals = store.publish();
    let at = signals.as_of();
    let profiles: Vec<_> = world.users.iter().filter_map(|u| signals.profile(u.id)).collect();
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let mut i = 0;
    group.bench_function("query", |b| {
        b.iter(|| {
            i = (i + 1) % profiles.len();
            signals.co_scores(profiles[i], at, 20, &mut out, &mut scratch);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, signals, coengage);
criterion_main!(benches);
