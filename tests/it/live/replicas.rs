//! Replicas over the in-memory log: convergence with a writer that applied
//! the stream directly, malformed entries, restarts from snapshots (and
//! past a corrupt one), user shards. The same scenarios against a real
//! Redis server are in `tests/redis.rs`.

use super::snapshots::{assert_same_state, tail, temp_dir};
use omnifeed::index::IndexConfig;
use omnifeed::live::{
    EventLog, LogEntry, MemoryLog, Replica, ReplicaConfig, ShopWriter, SnapshotStore,
};
use omnifeed::signals::{Rate, UserShard};
use omnifeed::synth::{SynthConfig, World, generate};
use omnifeed::{ErrorKind, FeedRequest, ItemIdx, SignalConfig, UserId};
use std::sync::Arc;
use std::time::Duration;

/// The tiny world's log: its events, then deltas, events and governance.
pub fn world_log(world: &World) -> Vec<LogEntry> {
    let mut entries = vec![LogEntry::Events(world.events.clone())];
    entries.extend(tail(world));
    entries
}

/// An in-memory log holding the world's log, and its entries.
fn logged(world: &World) -> (Arc<dyn EventLog>, Vec<LogEntry>) {
    let log: Arc<dyn EventLog> = Arc::new(MemoryLog::default());
    let entries = world_log(world);
    log.append(&entries).unwrap();
    (log, entries)
}

/// A replica of `world` over `log` with snapshots in `store`, started and
/// caught up to the log's head.
pub fn caught_up(
    world: &World,
    log: &Arc<dyn EventLog>,
    store: &std::path::Path,
    config: &ReplicaConfig,
) -> Replica {
    let store = SnapshotStore::new(store);
    let mut r = Replica::start(Arc::clone(log), store, config.clone(), bootstrap(world)).unwrap();
    r.catch_up(Duration::from_secs(60)).unwrap();
    r
}

pub fn bootstrap(world: &World) -> impl FnOnce() -> omnifeed::Result<ShopWriter> + '_ {
    move || ShopWriter::new(world.catalog.clone(), SignalConfig::default(), IndexConfig::default())
}

/// A writer that applied `log` directly at offsets 1, 2, …, skipping the
/// offsets in `skip` (entries no reader decodes), kept to `shard`.
fn direct(world: &World, log: &[(u64, LogEntry)], shard: Option<UserShard>) -> ShopWriter {
    let mut w = bootstrap(world)().unwrap();
    w.set_user_shard(shard);
    for (offset, e) in log {
        w.apply(*offset, e).unwrap();
    }
    w
}

/// The snapshot directories under a layout's directory, oldest first.
pub fn snapshot_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut snaps: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snapshot-"))
        .collect();
    snaps.sort();
    snaps
}

fn quick(shard: Option<UserShard>) -> ReplicaConfig {
    ReplicaConfig { shard, wait: Duration::ZERO, read_batch: 3, ..ReplicaConfig::default() }
}

fn users(world: &World) -> Vec<UserId> {
    world.users.iter().map(|u| u.id).collect()
}

#[test]
fn replicas_at_the_same_offset_equal_a_writer_that_applied_the_log() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(MemoryLog::default());
    let entries = world_log(&world);
    // Appended in two runs, with one foreign entry between them.
    let half = entries.len() / 2;
    assert_eq!(log.append(&entries[..half]).unwrap(), 1);
    let bad = log.append_encoded(&[b"{\"events\": []}".to_vec()]).unwrap();
    log.append(&entries[half..]).unwrap();
    let store = SnapshotStore::new(temp_dir("replicas"));
    let mut a =
        Replica::start(Arc::clone(&log), store.clone(), quick(None), bootstrap(&world)).unwrap();
    let mut b = Replica::start(Arc::clone(&log), store, quick(None), bootstrap(&world)).unwrap();
    let head = log.head().unwrap();
    assert_eq!(a.catch_up(Duration::from_secs(60)).unwrap(), head);
    assert_eq!(b.catch_up(Duration::from_secs(60)).unwrap(), head);
    assert_eq!(a.stats().rejected, 1);
    assert_eq!(a.stats().applied, entries.len() as u64);
    assert_eq!(a.lag().unwrap().entries, 0);
    let numbered: Vec<(u64, LogEntry)> =
        (1..=head).filter(|&o| o != bad).zip(entries.iter().cloned()).collect();
    let mut d = direct(&world, &numbered, None);
    let (sa, sb) = (a.recommender().state(), b.recommender().state());
    assert_same_state(&sa, &sb, &users(&world));
    assert_same_state(&sa, &d.publish().unwrap(), &users(&world));
}

#[test]
fn a_restarted_replica_catches_up_from_the_newest_snapshot_that_loads() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let (log, _) = logged(&world);
    let store = SnapshotStore::new(temp_dir("restart-replica"));
    let snapshotter = ReplicaConfig { snapshot_every: 4, ..quick(None) };
    let mut a =
        Replica::start(Arc::clone(&log), store.clone(), snapshotter, bootstrap(&world)).unwrap();
    // Two snapshots, then the replica "dies" part-way.
    while a.stats().snapshots < 2 {
        a.poll().unwrap();
    }
    let died_at = a.offset();
    drop(a);
    // The newest snapshot is corrupt: the restart falls back to the older.
    let snaps = snapshot_dirs(&store.dir(None));
    let newest = snaps.last().unwrap().join("state.osnap");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&newest, bytes).unwrap();
    let mut b = Replica::start(Arc::clone(&log), store.clone(), quick(None), || {
        panic!("a snapshot exists: no bootstrap")
    })
    .unwrap();
    assert_eq!(b.skipped_snapshots().len(), 1);
    assert_eq!(b.loaded_from(), Some(snaps[snaps.len() - 2].as_path()));
    assert!(b.offset() < died_at);
    b.catch_up(Duration::from_secs(60)).unwrap();
    let mut never = Replica::start(
        Arc::clone(&log),
        SnapshotStore::new(temp_dir("never")),
        quick(None),
        bootstrap(&world),
    )
    .unwrap();
    never.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(b.offset(), never.offset());
    assert_same_state(&b.recommender().state(), &never.recommender().state(), &users(&world));
    // Every snapshot corrupt: a typed error, never a silent bootstrap.
    for s in &snaps {
        let _ = std::fs::write(s.join("state.osnap"), b"OMNISNAP");
    }
    let err = Replica::start(log, store, quick(None), bootstrap(&world)).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Snapshot { .. }), "{err}");
}

#[test]
fn user_shards_keep_their_users_share_product_signals_and_refuse_others() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let (log, entries) = logged(&world);
    let store = SnapshotStore::new(temp_dir("shards"));
    let start = |shard: Option<UserShard>| {
        let mut r =
            Replica::start(Arc::clone(&log), store.clone(), quick(shard), bootstrap(&world))
                .unwrap();
        r.catch_up(Duration::from_secs(60)).unwrap();
        r
    };
    let full = start(None);
    let (s0, s1) = (UserShard::new(0, 2).unwrap(), UserShard::new(1, 2).unwrap());
    let (a0, b0, a1) = (start(Some(s0)), start(Some(s0)), start(Some(s1)));
    let all = users(&world);
    let owned: Vec<UserId> = all.iter().copied().filter(|&u| s0.owns(u)).collect();
    let foreign = all.iter().copied().find(|&u| !s0.owns(u)).unwrap();
    // Two replicas of one shard are identical; so is a writer that applied
    // the stream directly under the same shard.
    let numbered: Vec<(u64, LogEntry)> = (1..).zip(entries.iter().cloned()).collect();
    let mut d0 = direct(&world, &numbered, Some(s0));
    assert_same_state(&a0.recommender().state(), &b0.recommender().state(), &owned);
    assert_same_state(&a0.recommender().state(), &d0.publish().unwrap(), &owned);
    // Product-level signals come from the whole stream on every shard.
    let (f, x0, x1) =
        (full.recommender().state(), a0.recommender().state(), a1.recommender().state());
    for r in 0..f.catalog().len() as u32 {
        for rate in [Rate::Ctr, Rate::Cvr] {
            let v = f.signals().rate(ItemIdx(r), rate).to_bits();
            assert_eq!(v, x0.signals().rate(ItemIdx(r), rate).to_bits());
            assert_eq!(v, x1.signals().rate(ItemIdx(r), rate).to_bits());
        }
    }
    assert_eq!(f.signals().trending(), x0.signals().trending());
    // Profiles: each user in exactly one shard, with the full replica's profile.
    let (m0, m1, mf) = (x0.signals().memory(), x1.signals().memory(), f.signals().memory());
    assert_eq!(m0.users + m1.users, mf.users);
    assert!(m0.users > 0 && m1.users > 0);
    for &u in &owned {
        assert_eq!(x0.signals().profile(u), f.signals().profile(u), "user {u}");
        assert!(x1.signals().profile(u).is_none());
    }
    // A foreign user is a typed error naming the owner.
    let err = a0.recommender().recommend(&FeedRequest::new(foreign).k(10)).unwrap_err();
    match err.kind() {
        ErrorKind::WrongShard { user, owner, shard, shards } => {
            assert_eq!((*user, *owner, *shard, *shards), (foreign.0, 1, 0, 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(a1.recommender().recommend(&FeedRequest::new(foreign).k(10)).is_ok());
}

/// A replica whose snapshot is ahead of its log's head (the log was reset,
/// or it is another shop's) stops with a typed error at start, and one
/// whose log is reset under it does too, instead of reporting lag 0.
#[test]
fn a_replica_ahead_of_its_log_stops_with_a_typed_error() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let (log, _) = logged(&world);
    let store = SnapshotStore::new(temp_dir("ahead-of-log"));
    let snapshotter = ReplicaConfig { snapshot_every: 2, ..quick(None) };
    let mut a =
        Replica::start(Arc::clone(&log), store.clone(), snapshotter, bootstrap(&world)).unwrap();
    a.catch_up(Duration::from_secs(60)).unwrap();
    assert!(a.stats().snapshots > 0);
    // A fresh, shorter log under the same snapshots.
    let reset: Arc<dyn EventLog> = Arc::new(MemoryLog::default());
    reset.append(&world_log(&world)[..1]).unwrap();
    let e = Replica::start(Arc::clone(&reset), store, quick(None), bootstrap(&world)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Log { .. }), "{e}");
    assert!(e.to_string().contains("head is 1"), "{e}");
    // A running replica whose log is reset under it: poll and lag refuse.
    let swappable = Arc::new(Swappable(std::sync::Mutex::new(Arc::clone(&log))));
    let as_log: Arc<dyn EventLog> = swappable.clone();
    let dir = SnapshotStore::new(temp_dir("ahead-b"));
    let mut b = Replica::start(as_log, dir, quick(None), bootstrap(&world)).unwrap();
    b.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(b.lag().unwrap().entries, 0);
    *swappable.0.lock().unwrap() = reset;
    assert!(matches!(b.lag().unwrap_err().kind(), ErrorKind::Log { .. }));
    assert!(matches!(b.poll().unwrap_err().kind(), ErrorKind::Log { .. }));
}

/// A replica configured with a shop names it in the snapshots it writes,
/// and a replica of another shop pointed at those snapshots stops with
/// `ShopMismatch` instead of serving them.
#[test]
fn a_replica_refuses_another_shops_snapshots() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let (log, _) = logged(&world);
    let store = SnapshotStore::new(temp_dir("shop-id"));
    let of = |shop: &str| ReplicaConfig { shop: Some(shop.into()), ..quick(None) };
    let snapshotter = ReplicaConfig { snapshot_every: 2, ..of("north") };
    let mut a =
        Replica::start(Arc::clone(&log), store.clone(), snapshotter, bootstrap(&world)).unwrap();
    a.catch_up(Duration::from_secs(60)).unwrap();
    assert!(a.stats().snapshots > 0);
    assert_eq!(a.writer().shop_id(), Some("north"));
    let same = Replica::start(Arc::clone(&log), store.clone(), of("north"), bootstrap(&world));
    assert_eq!(same.unwrap().writer().shop_id(), Some("north"));
    let e = Replica::start(Arc::clone(&log), store.clone(), of("south"), bootstrap(&world))
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::ShopMismatch { expected, found: Some(f), .. }
            if expected == "south" && f == "north"),
        "{e}"
    );
    // A bootstrapped writer that already names another shop is refused too.
    let named = || {
        let mut w = bootstrap(&world)()?;
        w.set_shop_id("south")?;
        Ok(w)
    };
    let fresh = SnapshotStore::new(temp_dir("shop-id-fresh"));
    let e = Replica::start(Arc::clone(&log), fresh, of("north"), named).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::ShopMismatch { .. }), "{e}");
}

/// A log whose backing log can be replaced, as a reset would.
#[derive(Debug)]
struct Swappable(std::sync::Mutex<Arc<dyn EventLog>>);

impl EventLog for Swappable {
    fn id(&self) -> String {
        "swappable".into()
    }
    fn append_encoded(&self, entries: &[Vec<u8>]) -> omnifeed::Result<u64> {
        let log = Arc::clone(&self.0.lock().unwrap());
        log.append_encoded(entries)
    }
    fn read(
        &self,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> omnifeed::Result<omnifeed::live::LogBatch> {
        let log = Arc::clone(&self.0.lock().unwrap());
        log.read(after, max, wait)
    }
    fn head(&self) -> omnifeed::Result<u64> {
        let log = Arc::clone(&self.0.lock().unwrap());
        log.head()
    }
}

#[test]
fn rules_and_experiments_in_the_log_reach_every_replica_and_survive_a_restart() {
    use omnifeed::business::{BusinessRules, Pin};
    use omnifeed::experiment::{Experiment, Variant};
    let world = generate(&SynthConfig::tiny()).unwrap();
    let (log, _) = logged(&world);
    let root = temp_dir("service-entries");
    // A snapshot from before the changes: a restart replays them from the log.
    let mut before = caught_up(&world, &log, &root, &quick(None));
    before.snapshot().unwrap();
    let pinned = world.catalog.product_ids()[7];
    let rules = BusinessRules {
        pins: vec![Pin {
            product: pinned,
            surface: omnifeed::Surface::Feed,
            position: 0,
            window: None,
        }],
        ..BusinessRules::default()
    };
    let config: toml::Table = toml::from_str("rerank_pool = 200").unwrap();
    let experiments = vec![Experiment {
        name: "pool".into(),
        salt: None,
        variants: vec![Variant { name: "pool200".into(), share: 1.0, config }],
    }];
    // A pin of an unknown product is refused by every reader alike.
    let unknown = BusinessRules {
        pins: vec![Pin { product: omnifeed::ProductId(u64::MAX), ..rules.pins[0] }],
        ..BusinessRules::default()
    };
    log.append(&[
        LogEntry::Rules(rules.clone()),
        LogEntry::Experiments(experiments.clone()),
        LogEntry::Rules(unknown),
    ])
    .unwrap();
    let user = world.users[0].id;
    let check = |r: &Replica| {
        assert_eq!(*r.recommender().business_rules(), rules);
        assert_eq!(r.recommender().experiments(), experiments);
        assert_eq!(r.recommender().variant_of(user).as_deref(), Some("pool/pool200"));
        let feed = r.recommender().recommend(&FeedRequest::new(user).k(10)).unwrap();
        assert_eq!(feed.items[0].product, pinned);
    };
    before.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(before.stats().failed, 1, "the unknown pin is refused");
    check(&before);
    let replayed = Replica::start(Arc::clone(&log), SnapshotStore::new(&root), quick(None), || {
        panic!("a snapshot exists: no bootstrap")
    });
    let mut replayed = replayed.unwrap();
    replayed.catch_up(Duration::from_secs(60)).unwrap();
    check(&replayed);
    // A snapshot taken after them carries them.
    replayed.snapshot().unwrap();
    let restarted = Replica::start(log, SnapshotStore::new(&root), quick(None), || {
        panic!("a snapshot exists: no bootstrap")
    })
    .unwrap();
    assert_eq!(restarted.offset(), replayed.offset());
    check(&restarted);
}
