//! Snapshots: save/load, restart = snapshot + tail, corruption, crashes
//! and failed writes, the committed format-v1 golden snapshot.

use super::{random_deltas, small_catalog, world_writer};
use omnifeed::index::IndexKind;
use omnifeed::live::{FORMAT_VERSION, LogEntry, Retention, ShopWriter, SnapshotIo, StdIo};
use omnifeed::signals::Rate;
use omnifeed::{
    Clock, ErrorKind, Event, EventKind, FeedRequest, ItemIdx, ProductId, Recommender, ServingState,
    SignalConfig, Target, UserId,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "omnifeed-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The log of the tiny world after its events: deltas, more events,
/// governance, one entry each.
pub fn tail(world: &omnifeed::synth::World) -> Vec<LogEntry> {
    let at = world.events.last().unwrap().at;
    let mut entries = Vec::new();
    for (i, batch) in random_deltas(world, 12, 5).into_iter().enumerate() {
        entries.push(LogEntry::Delta(batch));
        let user = world.users[i % world.users.len()].id;
        let product = world.catalog.product_id(ItemIdx((i * 13 % world.catalog.len()) as u32));
        let events = (0..20)
            .map(|j| {
                let kind = if j % 5 == 0 {
                    EventKind::Order { price: Some(9.0) }
                } else {
                    EventKind::Click
                };
                Event::new(at + (i * 20 + j) as i64, user, Target::Product(product), kind)
            })
            .collect();
        entries.push(LogEntry::Events(events));
    }
    entries.push(LogEntry::Flag { product: world.catalog.product_id(ItemIdx(5)), flagged: true });
    entries.push(LogEntry::Suspend { merchant: world.catalog.merchants()[0].id, suspended: true });
    entries
}

/// Every derived signal, every user's profile and 20 feeds are equal.
pub fn assert_same_state(a: &ServingState, b: &ServingState, users: &[UserId]) {
    let (sa, sb) = (a.signals(), b.signals());
    assert_eq!(a.catalog().len(), b.catalog().len());
    assert_eq!(a.catalog().fingerprint(), b.catalog().fingerprint());
    assert_eq!(sa.as_of(), sb.as_of());
    assert_eq!(sa.report(), sb.report());
    for r in 0..a.catalog().len() as u32 {
        let row = ItemIdx(r);
        for rate in [Rate::Ctr, Rate::Cvr, Rate::RefundRate] {
            assert_eq!(sa.rate(row, rate).to_bits(), sb.rate(row, rate).to_bits(), "row {r}");
        }
        assert_eq!(sa.gate(row), sb.gate(row), "row {r}");
        assert_eq!(sa.quality(row).to_bits(), sb.quality(row).to_bits());
        assert_eq!(a.catalog().is_listed(row), b.catalog().is_listed(row));
    }
    assert_eq!(sa.trending(), sb.trending());
    assert_eq!(sa.trending_scores(), sb.trending_scores());
    assert_eq!(sa.user_count(), sb.user_count());
    let at = sa.as_of();
    let ra = Recommender::builder().clock(Clock::Fixed(at)).state(a.clone()).build().unwrap();
    let rb = Recommender::builder().clock(Clock::Fixed(at)).state(b.clone()).build().unwrap();
    for &u in users.iter().take(20) {
        assert_eq!(sa.profile(u), sb.profile(u), "user {u}");
        for surface in [omnifeed::Surface::Feed, omnifeed::Surface::Omni] {
            let req = FeedRequest::new(u).surface(surface).k(15);
            let (fa, fb) = (ra.recommend(&req).unwrap(), rb.recommend(&req).unwrap());
            assert_eq!(fa.items, fb.items, "user {u} {surface:?}");
        }
    }
}

#[test]
fn restart_from_snapshot_and_tail_equals_never_restarting() {
    for kind in [IndexKind::Ivf, IndexKind::Exact] {
        let (world, mut live) = world_writer(kind);
        let entries = tail(&world);
        let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
        let dir = temp_dir("restart");
        let cut = entries.len() / 2;
        for (i, e) in entries[..cut].iter().enumerate() {
            live.apply(2 + i as u64, e).unwrap();
        }
        live.publish().unwrap();
        let info = live.save(&dir).unwrap();
        assert_eq!(info.offset, Some(1 + cut as u64));
        for (i, e) in entries.iter().enumerate() {
            live.apply(2 + i as u64, e).unwrap(); // the first half: duplicates, skipped
            // A service publishes as it goes; the restarted writer below
            // publishes once at the end: profiles must not depend on when.
            live.publish().unwrap();
        }
        // The restarted writer replays the whole log; the snapshot's offset
        // skips what it holds.
        let mut restarted = ShopWriter::load(&dir).unwrap();
        assert_eq!(restarted.offset(), Some(1 + cut as u64));
        for (i, e) in entries.iter().enumerate() {
            restarted.apply(2 + i as u64, e).unwrap();
        }
        assert_eq!(restarted.offset(), live.offset());
        // Versions continue where the saved writer's publishes left off.
        assert_eq!(restarted.next_version(), 1);
        assert_same_state(&live.publish().unwrap(), &restarted.publish().unwrap(), &users);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn scorer_and_configs_travel_with_the_snapshot() {
    let (_, mut w) = world_writer(IndexKind::Exact);
    let scorer =
        omnifeed::rank::LogisticScorer::from_weights(&omnifeed::rank::HeadWeights::default())
            .unwrap();
    w.set_scorer(&scorer);
    let mut cfg = omnifeed::RecommenderConfig::default();
    cfg.sources.interest = 123;
    w.set_recommender_config(cfg.clone());
    let dir = temp_dir("model");
    w.save(&dir).unwrap();
    let back = ShopWriter::load(&dir).unwrap();
    assert_eq!(back.scorer().unwrap().matrix(), scorer.matrix());
    assert_eq!(back.recommender_config(), Some(&cfg));
    assert_eq!(back.store().config(), w.store().config());
    assert_eq!(back.index_config(), w.index_config());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The file of the snapshot `CURRENT` names.
fn current_file(dir: &Path) -> PathBuf {
    let name = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    dir.join(name.trim()).join("state.osnap")
}

fn saved_tiny() -> (PathBuf, ServingState, Vec<u8>) {
    let dir = temp_dir("corrupt");
    let mut w = ShopWriter::new(small_catalog(), SignalConfig::default(), super::exact()).unwrap();
    w.set_shop_id("tiny").unwrap();
    let e = |t, u, p| Event::new(t, UserId(u), Target::Product(ProductId(p)), EventKind::Click);
    w.apply(1, &LogEntry::Events(vec![e(200, 1, 10), e(201, 1, 11), e(202, 2, 13)])).unwrap();
    w.save(&dir).unwrap();
    let state = w.publish().unwrap();
    let bytes = std::fs::read(current_file(&dir)).unwrap();
    (dir, state, bytes)
}

fn is_typed(e: &omnifeed::Error) -> bool {
    matches!(e.kind(), ErrorKind::Snapshot { .. } | ErrorKind::SnapshotVersion { .. })
}

#[test]
fn every_truncation_is_a_typed_error() {
    let (dir, _, bytes) = saved_tiny();
    let file = current_file(&dir);
    // Every length up to the end of the last section (padding after it
    // is not data).
    let data_end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    for len in 0..data_end {
        std::fs::write(&file, &bytes[..len]).unwrap();
        let err = ShopWriter::load(&dir).unwrap_err();
        assert!(is_typed(&err), "length {len}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn flipped_bytes_are_typed_errors_or_the_same_state(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let (dir, state, bytes) = saved_tiny();
        let mut bad = bytes.clone();
        for (at, x) in &flips {
            let i = at.index(bad.len());
            bad[i] ^= x;
        }
        std::fs::write(current_file(&dir), &bad).unwrap();
        match ShopWriter::load(&dir) {
            Err(e) => prop_assert!(is_typed(&e), "{e}"),
            // Flips in the padding between sections change no data.
            Ok(mut w) => assert_same_state(&state, &w.publish().unwrap(), &[UserId(1), UserId(2)]),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A snapshot of another shop with the same dimension is refused by
/// `load_for_shop`, and a later catalog of the same shop is accepted.
#[test]
fn a_snapshot_of_another_shop_is_refused() {
    let (dir, _, _) = saved_tiny();
    let ours = small_catalog();
    assert!(ShopWriter::load_for_shop(&dir, &ours).is_ok());
    // Another shop: the same size and dimension, other product ids.
    let mut b = omnifeed::CatalogBuilder::new();
    b.add_merchant(omnifeed::Merchant {
        id: omnifeed::MerchantId(1),
        experience: 0.5,
        status: omnifeed::MerchantStatus::Active,
    });
    for i in 0..4u64 {
        let id = ProductId(500 + i);
        b.add_product(omnifeed::Product {
            id,
            category: omnifeed::CategoryId(0),
            price: 1.0,
            merchant: omnifeed::MerchantId(1),
            stock: 1,
            listed_at: 0,
            title: None,
            ..omnifeed::Product::default()
        });
        b.add_embedding(id, &[1.0, i as f32]);
    }
    let theirs = b.build().unwrap();
    assert_eq!((theirs.len(), theirs.dim()), (ours.len(), ours.dim()));
    let e = ShopWriter::load_for_shop(&dir, &theirs).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::CatalogMismatch { part: "snapshot catalog", .. }), "{e}");
    // A base with a row the snapshot does not have is not this snapshot's shop either.
    let (bigger, _) = ours
        .apply(&[omnifeed::CatalogDelta::UpsertProduct {
            product: omnifeed::Product { id: ProductId(77), ..ours.product(omnifeed::ItemIdx(0)) },
            embedding: Some(vec![0.0, 1.0]),
        }])
        .unwrap();
    assert!(ShopWriter::load_for_shop(&dir, &bigger).is_err());
}

#[test]
fn another_version_or_dimension_is_named() {
    let (dir, _, bytes) = saved_tiny();
    let mut other = bytes.clone();
    other[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(current_file(&dir), &other).unwrap();
    let err = ShopWriter::load(&dir).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::SnapshotVersion { found, supported, .. } if *found == FORMAT_VERSION + 1 && *supported == FORMAT_VERSION),
        "{err}"
    );
    std::fs::write(current_file(&dir), &bytes).unwrap();
    let err = ShopWriter::load_expecting(&dir, "tiny", 64).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::DimensionMismatch { expected: 64, got: 2, .. }),
        "{err}"
    );
    assert!(ShopWriter::load_expecting(&dir, "tiny", 2).is_ok());
    std::fs::write(dir.join("CURRENT"), "../../etc\n").unwrap();
    assert!(is_typed(&ShopWriter::load(&dir).unwrap_err()));
    std::fs::write(current_file(&dir).with_file_name("x"), b"").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fails the `fail_at`-th operation of a save (counting every call).
#[derive(Debug)]
struct FailingIo {
    calls: AtomicUsize,
    fail_at: usize,
}

impl FailingIo {
    fn tick(&self) -> std::io::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            Err(std::io::Error::other("injected failure"))
        } else {
            Ok(())
        }
    }
}

impl SnapshotIo for FailingIo {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        self.tick()?;
        StdIo.create_dir(path)
    }
    fn write_synced(&self, path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
        self.tick()?;
        StdIo.write_synced(path, parts)?;
        self.tick() // the fsync at its end
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.tick()?;
        StdIo.sync_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.tick()?;
        StdIo.rename(from, to)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdIo.remove_dir_all(path)
    }
}

#[test]
fn a_failed_write_or_fsync_leaves_the_pointer_unchanged() {
    let (_, mut w) = world_writer(IndexKind::Ivf);
    let dir = temp_dir("failing");
    w.save(&dir).unwrap();
    let before = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    let more = LogEntry::Flag { product: w.catalog().product_id(ItemIdx(0)), flagged: true };
    w.apply(2, &more).unwrap();
    // The save's operations up to and including the rename: each one fails
    // once in turn.
    let mut failed = 0;
    for fail_at in 0.. {
        let io = FailingIo { calls: AtomicUsize::new(0), fail_at };
        match w.save_with(&dir, &io, Retention::default()) {
            Err(e) => {
                failed += 1;
                assert!(matches!(e.kind(), ErrorKind::Io { .. }), "{e}");
                let now = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
                assert_eq!(now, before, "fail at {fail_at}: the pointer moved");
                assert_eq!(ShopWriter::load(&dir).unwrap().offset(), Some(1));
            }
            Ok(_) => break,
        }
    }
    assert!(failed >= 7, "{failed} injected failures");
    assert_eq!(ShopWriter::load(&dir).unwrap().offset(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_keeps_the_newest() {
    let (_, mut w) = world_writer(IndexKind::Exact);
    let dir = temp_dir("retention");
    for i in 0..5u64 {
        w.apply(2 + i, &LogEntry::Events(Vec::new())).unwrap();
        w.save_with(&dir, &StdIo, Retention { keep: 2 }).unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].contains("00000000000000000006"));
    assert_eq!(ShopWriter::load(&dir).unwrap().offset(), Some(6));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run by [`a_save_killed_at_any_point_leaves_a_loadable_snapshot`] in a
/// child process: loads the snapshot under `OMNIFEED_KILL_DIR` and saves
/// new ones until killed.
#[test]
#[ignore = "a child process of the kill test"]
fn kill_child_saves_until_killed() {
    let Ok(dir) = std::env::var("OMNIFEED_KILL_DIR") else { return };
    let dir = PathBuf::from(dir);
    let mut w = ShopWriter::load(&dir).unwrap();
    loop {
        let next = w.offset().unwrap_or(0) + 1;
        w.apply(next, &LogEntry::Events(Vec::new())).unwrap();
        w.save_with(&dir, &StdIo, Retention { keep: 2 }).unwrap();
    }
}

#[test]
fn a_save_killed_at_any_point_leaves_a_loadable_snapshot() {
    let (_, mut w) = world_writer(IndexKind::Ivf);
    let dir = temp_dir("kill");
    w.save(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last = 1;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..60 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "it::live::snapshots::kill_child_saves_until_killed",
                "--ignored",
                "--test-threads=1",
            ])
            .env("OMNIFEED_KILL_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(std::time::Duration::from_millis(20 + x % 180));
        child.kill().unwrap();
        child.wait().unwrap();
        let loaded = ShopWriter::load(&dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let offset = loaded.offset().unwrap();
        assert!(offset >= last, "round {round}: offset went back from {last} to {offset}");
        last = offset;
    }
    assert!(last > 1, "the children saved snapshots");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_format_v1_golden_snapshot_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1");
    if std::env::var_os("OMNIFEED_WRITE_GOLDEN").is_some() {
        // Deliberate format change: regenerate, review, commit.
        let _ = std::fs::remove_dir_all(&dir);
        golden_writer().save(&dir).unwrap();
    }
    let mut w = ShopWriter::load(&dir).unwrap();
    assert_eq!(w.offset(), Some(4));
    let state = w.publish().unwrap();
    let c = state.catalog();
    assert_eq!((c.len(), c.dim(), c.version()), (5, 2, 1));
    assert!(!c.is_listed(c.row(ProductId(12)).unwrap()));
    assert_eq!(c.prices()[c.row(ProductId(11)).unwrap().index()], 12.5);
    let s = state.signals();
    assert_eq!(s.as_of(), 202);
    assert_eq!(s.report().applied, 3);
    assert!(s.profile(UserId(1)).is_some() && s.profile(UserId(3)).is_none());
    assert_eq!(s.gate(c.row(ProductId(13)).unwrap()), Some(omnifeed::signals::Gate::Flagged));
    let clicks = s.counter(ItemIdx(0), omnifeed::signals::Counter::Click, 0, 200).unwrap();
    assert_eq!(clicks, 1.0);
    // And it still equals what this build makes of the same log.
    let mut fresh = golden_writer();
    assert_same_state(&fresh.publish().unwrap(), &state, &[UserId(1), UserId(2)]);
}

/// The golden snapshot's log: 3 events, a delta, a flag.
fn golden_writer() -> ShopWriter {
    let mut w = ShopWriter::new(small_catalog(), SignalConfig::default(), super::exact()).unwrap();
    let e = |t, u, p| Event::new(t, UserId(u), Target::Product(ProductId(p)), EventKind::Click);
    w.apply(1, &LogEntry::Events(vec![e(200, 1, 10), e(201, 1, 11), e(202, 2, 13)])).unwrap();
    let mut p = small_catalog().product(ItemIdx(1));
    p.price = 12.5;
    let new = super::product(ProductId(20), 1, 2, "green tea");
    w.apply(
        2,
        &LogEntry::Delta(vec![
            omnifeed::CatalogDelta::UpsertProduct { product: p, embedding: None },
            omnifeed::CatalogDelta::UpsertProduct {
                product: new,
                embedding: Some(vec![0.2, -1.0]),
            },
            omnifeed::CatalogDelta::Delist { product: ProductId(12) },
        ]),
    )
    .unwrap();
    w.apply(3, &LogEntry::Flag { product: ProductId(13), flagged: true }).unwrap();
    w.apply(4, &LogEntry::Suspend { merchant: omnifeed::MerchantId(2), suspended: false }).unwrap();
    w
}
