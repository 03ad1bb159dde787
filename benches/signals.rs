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

criterion_group!(benches, signals);
criterion_main!(benches);
