//! The shipped `data/` folder and the real public logs.

use super::shared_data;
use omnifeed::load::{LogOptions, read_dataset, read_movielens, read_taobao};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{EventKind, ItemIdx};

#[test]
fn shipped_data_is_the_sample_world() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = read_dataset(&dir).unwrap();
    let world = generate(&SynthConfig::sample()).unwrap();
    assert_eq!(data.catalog.len(), world.catalog.len());
    assert_eq!(data.catalog.content_len(), world.catalog.content_len());
    assert_eq!(
        data.events, world.events,
        "data/ is stale: run `cargo run --release --example gen_data`"
    );
    for row in (0..world.catalog.len()).step_by(97).map(|r| ItemIdx(r as u32)) {
        assert_eq!(data.catalog.product(row), world.catalog.product(row));
        let (a, b) = (data.catalog.embeddings().row(row), world.catalog.embeddings().row(row));
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6));
    }
    assert_eq!(data.report.rows, data.events.len() as u64);
}

#[test]
fn taobao_user_behavior_loads_with_stated_policy() {
    let Some(path) = shared_data("taobao-userbehavior/UserBehavior.csv") else { return };
    let log = read_taobao(&path, &LogOptions::taobao()).unwrap();
    let r = log.report;
    assert_eq!(r.rows, 84_475);
    assert!(r.out_of_period > 0, "the sample has a few out-of-period timestamps");
    assert_eq!(r.events + r.out_of_period, r.rows);
    let buys = log.events.iter().filter(|e| matches!(e.kind, EventKind::Order { .. })).count();
    assert!(buys > 1_700 && buys <= 1_750, "{buys}");
    let users: std::collections::HashSet<_> = log.events.iter().map(|e| e.user).collect();
    assert!(users.len() >= 800, "{}", users.len());
    assert!(log.item_categories.len() > 50_000);
    println!("taobao: {r:?}");
}

#[test]
fn movielens_ratings_load() {
    let Some(path) = shared_data("movielens-latest-small/ratings.csv") else { return };
    let (events, report) = read_movielens(&path, &LogOptions::default()).unwrap();
    assert_eq!(report.rows, 100_836);
    assert_eq!(events.len(), 100_836);
    let positives = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Rating { value } if value >= 4.0))
        .count();
    assert!(positives > 40_000, "{positives}");
}
