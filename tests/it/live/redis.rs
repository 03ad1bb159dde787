//! The shared log on a real `redis-server` (feature `redis`): each test
//! starts its own server on a free loopback port with a temporary data
//! directory, so it can kill and restart it. Without the binary they say so
//! and pass, except under `OMNIFEED_REQUIRE_REDIS=1` (CI), where they fail.

use super::replicas::{bootstrap, snapshot_dirs, world_log};
use super::snapshots::{assert_same_state, temp_dir};
use crate::redis_server::{RedisServer, binary_or_skip};
use omnifeed::live::{
    EventLog, LogEntry, RedisLog, RedisLogConfig, Replica, ReplicaConfig, ShopWriter, SnapshotStore,
};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{ErrorKind, UserId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn server(what: &str) -> Option<RedisServer> {
    let bin = binary_or_skip(what)?;
    Some(RedisServer::start(&bin).expect("redis-server starts"))
}

fn open(url: &str) -> Arc<dyn EventLog> {
    Arc::new(RedisLog::open(RedisLogConfig::new(url)).unwrap())
}

fn config() -> ReplicaConfig {
    ReplicaConfig { read_batch: 4, wait: Duration::from_millis(5), ..ReplicaConfig::default() }
}

#[test]
fn redis_log_keeps_order_and_counts_malformed_entries() {
    let Some(srv) = server("redis_log_keeps_order_and_counts_malformed_entries") else { return };
    let log = open(&srv.url());
    assert_eq!(log.head().unwrap(), 0);
    let flag = |p| LogEntry::Flag { product: omnifeed::ProductId(p), flagged: true };
    assert_eq!(log.append(&[flag(1), flag(2)]).unwrap(), 1);
    // A producer's corrupt bytes, and an entry without the `e` field added
    // behind the script's back: both counted, neither stops the stream.
    assert_eq!(log.append_encoded(&[vec![0xFF; 40]]).unwrap(), 3);
    let client = redis::Client::open(srv.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: String =
        redis::cmd("XADD").arg("omnifeed:log").arg("0-4").arg("x").arg("y").query(&mut c).unwrap();
    assert_eq!(log.append(&[flag(5)]).unwrap(), 5);
    let b = log.read(0, 100, Duration::ZERO).unwrap();
    let offsets: Vec<u64> = b.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![1, 2, 5]);
    let bad: Vec<u64> = b.rejected.iter().map(|r| r.offset).collect();
    assert_eq!((bad, b.last), (vec![3, 4], 5));
    // A blocking read returns when an entry arrives, or empty at the wait.
    assert_eq!(log.read(5, 10, Duration::from_millis(30)).unwrap().last, 5);
    // An entry with a wall-clock id (another program's XADD *) is refused
    // by appends and reads alike, as a typed error.
    let _: String =
        redis::cmd("XADD").arg("omnifeed:log").arg("*").arg("e").arg("z").query(&mut c).unwrap();
    let e = log.append(&[flag(6)]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Log { .. }), "{e}");
    assert!(log.read(5, 10, Duration::ZERO).is_err());
}

/// Retention on Redis (`XTRIM MINID`, opt in through `trim_before`): the
/// entries before the offset go, a reader behind them gets an error that
/// says so, the newest entry always stays, and appends number on.
#[test]
fn trimming_a_redis_log_keeps_its_offsets() {
    let Some(srv) = server("trimming_a_redis_log_keeps_its_offsets") else { return };
    let log = open(&srv.url());
    let flag = |p| LogEntry::Flag { product: omnifeed::ProductId(p), flagged: true };
    let entries: Vec<LogEntry> = (1..=10).map(flag).collect();
    assert_eq!(log.append(&entries).unwrap(), 1);
    assert_eq!(log.trim_before(6).unwrap(), 5);
    let e = log.read(0, 100, Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("trimmed"), "{e}");
    let b = log.read(5, 100, Duration::ZERO).unwrap();
    assert_eq!(
        b.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (6..=10).collect::<Vec<_>>()
    );
    assert_eq!(log.trim_before(1_000).unwrap(), 4);
    assert_eq!(log.head().unwrap(), 10);
    assert_eq!(log.append(&[flag(11)]).unwrap(), 11);
    assert_eq!(log.read(9, 10, Duration::ZERO).unwrap().records[0].offset, 10);
}

#[test]
fn replicas_lose_and_double_nothing_across_a_redis_crash() {
    let Some(mut srv) = server("replicas_lose_and_double_nothing_across_a_redis_crash") else {
        return;
    };
    let world = generate(&SynthConfig::tiny()).unwrap();
    let entries = world_log(&world);
    let producer = RedisLog::open(RedisLogConfig::new(srv.url())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let url = srv.url();
    // A replica follows the stream on its own thread throughout.
    let follower = {
        let (stop, world) = (Arc::clone(&stop), world.clone());
        std::thread::spawn(move || {
            let store = SnapshotStore::new(temp_dir("redis-crash"));
            let mut r = Replica::start(open(&url), store, config(), bootstrap(&world)).unwrap();
            r.run(&stop).unwrap();
            r
        })
    };
    let crash_at = entries.len() / 2;
    for (i, e) in entries.iter().enumerate() {
        if i == crash_at {
            // Killed (SIGKILL) and restarted on the same port and files:
            // the producer's next append and the replica's reads retry.
            srv.restart().unwrap();
        }
        producer.append(std::slice::from_ref(e)).unwrap();
    }
    assert_eq!(producer.head().unwrap(), entries.len() as u64, "an append was lost or doubled");
    assert!(producer.reconnects() > 0, "the crash was not seen by the producer");
    // The replica reaches the head, then stops.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline && !follower.is_finished() {
        let probe = open(&srv.url());
        if probe.head().unwrap() == entries.len() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut r = follower.join().unwrap();
    r.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(r.offset(), entries.len() as u64);
    assert_eq!(r.stats().applied, entries.len() as u64);
    assert_eq!(r.stats().rejected, 0);
    // Exactly-once: the state equals a writer that applied each entry once.
    let mut direct = bootstrap(&world)().unwrap();
    for (i, e) in entries.iter().enumerate() {
        direct.apply(i as u64 + 1, e).unwrap();
    }
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
    assert_same_state(&r.recommender().state(), &direct.publish().unwrap(), &users);
}

#[test]
fn a_killed_replica_restarts_from_the_newest_good_snapshot_and_catches_up() {
    let Some(srv) = server("a_killed_replica_restarts_from_the_newest_good_snapshot") else {
        return;
    };
    let world = generate(&SynthConfig::tiny()).unwrap();
    let entries = world_log(&world);
    let log = open(&srv.url());
    log.append(&entries).unwrap();
    let store = SnapshotStore::new(temp_dir("redis-restart"));
    let snapshotter = ReplicaConfig { snapshot_every: 3, ..config() };
    let mut a =
        Replica::start(open(&srv.url()), store.clone(), snapshotter, bootstrap(&world)).unwrap();
    while a.stats().snapshots < 2 {
        a.poll().unwrap();
    }
    drop(a); // killed
    // Its newest snapshot was cut short by the crash.
    let snaps = snapshot_dirs(&store.dir(None));
    let newest = snaps.last().unwrap().join("state.osnap");
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(len / 2).unwrap();
    let mut b =
        Replica::start(open(&srv.url()), store, config(), || -> omnifeed::Result<ShopWriter> {
            panic!("snapshots exist: no bootstrap")
        })
        .unwrap();
    assert_eq!(b.skipped_snapshots().len(), 1);
    assert_eq!(b.loaded_from(), Some(snaps[snaps.len() - 2].as_path()));
    assert_eq!(b.catch_up(Duration::from_secs(60)).unwrap(), entries.len() as u64);
    let mut fresh = Replica::start(
        open(&srv.url()),
        SnapshotStore::new(temp_dir("redis-fresh")),
        config(),
        bootstrap(&world),
    )
    .unwrap();
    fresh.catch_up(Duration::from_secs(60)).unwrap();
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
    assert_same_state(&b.recommender().state(), &fresh.recommender().state(), &users);
}
