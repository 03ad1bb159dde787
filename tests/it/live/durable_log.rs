//! The durable local log (`live::FileLog`, issue 26): entries and offsets
//! through restarts and segment rolls, a torn tail cut at open, corruption
//! of a closed segment refused, retention by trimming, one process at a
//! time, a replica over it equal to one over the in-memory log, and SIGKILL
//! during appends: 50 kills, every acknowledged entry survives and nothing
//! past a torn tail is misread.

use super::replicas::{bootstrap, caught_up, world_log};
use super::snapshots::{assert_same_state, temp_dir};
use omnifeed::live::{
    EventLog, FileLog, FileLogConfig, Fsync, LogEntry, MemoryLog, Replica, ReplicaConfig,
    SnapshotStore,
};
use omnifeed::signals::{Event, EventKind, Target};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{ProductId, UserId};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The entry at `offset`: its content names the offset (1 to 6 events of
/// user `offset`), so a reader can tell every entry is the one appended
/// there.
fn entry(offset: u64) -> LogEntry {
    let n = 1 + (offset % 6) as usize;
    let ev = |i: usize| {
        Event::new(
            offset as i64,
            UserId(offset),
            Target::Product(ProductId(i as u64 + 1)),
            EventKind::Click,
        )
    };
    LogEntry::Events((0..n).map(ev).collect())
}

/// Every entry of `log` is the one [`entry`] gives its offset; returns the
/// head.
fn check_all(log: &FileLog) -> u64 {
    let head = log.head().unwrap();
    let mut after = 0;
    while after < head {
        let batch = log.read(after, 500, Duration::ZERO).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        for r in &batch.records {
            assert_eq!(r.entry, entry(r.offset), "offset {}", r.offset);
        }
        after = batch.last;
    }
    assert_eq!(after, head);
    head
}

fn small(fsync: Fsync) -> FileLogConfig {
    FileLogConfig { segment_bytes: 2_000, fsync }
}

/// Appends of one to three entries up to offset `to`.
fn fill(log: &FileLog, to: u64) {
    let mut next = log.head().unwrap() + 1;
    while next <= to {
        let n = (1 + next % 3).min(to + 1 - next);
        let entries: Vec<LogEntry> = (next..next + n).map(entry).collect();
        assert_eq!(log.append(&entries).unwrap(), next);
        next += n;
    }
}

/// Flips the bits of byte `at` of the file at `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xFF;
    std::fs::write(path, &bytes).unwrap();
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn entries_and_offsets_survive_restarts_and_segment_rolls() {
    let dir = temp_dir("durable-log");
    let log = FileLog::open(&dir, small(Fsync::Always)).unwrap();
    assert_eq!((log.head().unwrap(), log.first()), (0, 1));
    fill(&log, 200);
    assert!(segments(&dir).len() > 5, "small segments roll");
    let e = FileLog::open(&dir, small(Fsync::Always)).unwrap_err();
    assert!(e.to_string().contains("another process"), "{e}");
    drop(log);
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    assert_eq!(log.open_report().cut_bytes, 0);
    assert_eq!(check_all(&log), 200);
    fill(&log, 260);
    assert_eq!(check_all(&log), 260);
    // A reader at the largest offset gets nothing, not a wrap.
    let end = log.read(u64::MAX, 10, Duration::ZERO).unwrap();
    assert!(end.records.is_empty() && end.last == u64::MAX);
    // A read waits for the next append.
    let log = Arc::new(log);
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            log.append(&[entry(261)]).unwrap()
        })
    };
    let batch = log.read(260, 10, Duration::from_secs(10)).unwrap();
    assert_eq!((batch.records.len(), batch.last), (1, 261));
    assert_eq!(writer.join().unwrap(), 261);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_cut_and_a_corrupt_closed_segment_refused() {
    let dir = temp_dir("durable-torn");
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    fill(&log, 100);
    drop(log);
    let newest = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    // Half a frame written when the process died.
    let mut f = std::fs::OpenOptions::new().append(true).open(&newest).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(f);
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    assert_eq!(log.open_report().cut_bytes, 10);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), len);
    assert_eq!(check_all(&log), 100);
    fill(&log, 101);
    drop(log);
    // A frame whose checksum fails at the tail: cut, the entries before
    // it kept.
    let newest = segments(&dir).pop().unwrap();
    let end = std::fs::metadata(&newest).unwrap().len() as usize;
    flip(&newest, end - 1);
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    assert!(log.open_report().cut_bytes > 0);
    assert_eq!(check_all(&log), 100);
    drop(log);
    // The same in a closed segment is corruption.
    flip(&segments(&dir).remove(0), 12);
    let e = FileLog::open(&dir, small(Fsync::Never)).unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trimming_drops_whole_old_segments_and_keeps_offsets() {
    let dir = temp_dir("durable-trim");
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    fill(&log, 300);
    let before = segments(&dir).len();
    let removed = log.trim_before(150).unwrap();
    assert!(removed > 0 && removed < 150, "{removed}");
    assert_eq!(log.first(), removed + 1);
    assert!(segments(&dir).len() < before);
    let e = log.read(0, 10, Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("trimmed"), "{e}");
    let batch = log.read(149, 10, Duration::ZERO).unwrap();
    assert_eq!(batch.records[0].offset, 150);
    // The newest segment always stays.
    log.trim_before(u64::MAX).unwrap();
    assert_eq!(segments(&dir).len(), 1);
    assert_eq!(log.head().unwrap(), 300);
    drop(log);
    let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
    assert_eq!(log.head().unwrap(), 300);
    fill(&log, 310);
    let batch = log.read(300, 20, Duration::ZERO).unwrap();
    assert_eq!(
        batch.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (301..=310).collect::<Vec<_>>()
    );
    assert!(batch.records.iter().all(|r| r.entry == entry(r.offset)));
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica following the file log ends in the state of one following
/// the in-memory log with the same entries.
#[test]
fn a_replica_over_the_file_log_equals_one_over_memory() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let entries = world_log(&world);
    let dir = temp_dir("durable-replica");
    let file: Arc<dyn EventLog> =
        Arc::new(FileLog::open(dir.join("log"), FileLogConfig::default()).unwrap());
    let memory: Arc<dyn EventLog> = Arc::new(MemoryLog::default());
    for log in [&file, &memory] {
        log.append(&entries).unwrap();
    }
    let quick = ReplicaConfig { wait: Duration::ZERO, read_batch: 3, ..ReplicaConfig::default() };
    let start =
        |log: &Arc<dyn EventLog>, name: &str| caught_up(&world, log, &dir.join(name), &quick);
    let (a, b) = (start(&file, "a"), start(&memory, "b"));
    assert_eq!(a.offset(), entries.len() as u64);
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
    assert_same_state(&a.recommender().state(), &b.recommender().state(), &users);
    drop((a, b, file));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child of [`sigkill_during_appends_loses_no_acknowledged_entry`]:
/// appends in a loop to the log named by `OMNIFEED_FILELOG_CHILD`, printing
/// each acknowledged offset. Does nothing in a normal test run.
#[test]
fn file_log_child_appender() {
    let Ok(dir) = std::env::var("OMNIFEED_FILELOG_CHILD") else { return };
    let fsync = match std::env::var("OMNIFEED_FILELOG_FSYNC").as_deref() {
        Ok("always") => Fsync::Always,
        _ => Fsync::Never,
    };
    let log = FileLog::open(&dir, small(fsync)).unwrap();
    let mut out = std::io::stdout().lock();
    let mut next = log.head().unwrap() + 1;
    loop {
        let n = 1 + next % 3;
        let entries: Vec<LogEntry> = (next..next + n).map(entry).collect();
        let first = log.append(&entries).unwrap();
        assert_eq!(first, next);
        next += n;
        writeln!(out, "acked {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

/// Appends to the newest segment of `dir` a prefix (varying by `round`)
/// of the frame the next entry would be: a write cut short. Its length.
fn tear(dir: &Path, round: u64) -> u64 {
    let newest = segments(dir).pop().unwrap();
    let log = FileLog::open(dir, small(Fsync::Never)).unwrap();
    let next = log.head().unwrap() + 1;
    drop(log);
    let body = omnifeed::live::encode_entry(&entry(next), 0).unwrap();
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    let keep = 1 + (round as usize * 7919) % (frame.len() - 1);
    let mut f = std::fs::OpenOptions::new().append(true).open(newest).unwrap();
    f.write_all(&frame[..keep]).unwrap();
    keep as u64
}

/// SIGKILL during appends, 50 times: after each kill the log opens (a torn
/// tail cut: every other round leaves one, see [`tear`]), holds every
/// entry whose offset the child printed as acknowledged, and every entry it
/// holds is the one appended there.
#[test]
fn sigkill_during_appends_loses_no_acknowledged_entry() {
    if std::env::var("OMNIFEED_FILELOG_CHILD").is_ok() {
        return;
    }
    let dir = temp_dir("durable-kill");
    let exe = std::env::current_exe().unwrap();
    let (mut acked, mut cuts) = (0u64, 0);
    for round in 0..50u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "it::live::durable_log::file_log_child_appender", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("OMNIFEED_FILELOG_CHILD", &dir)
            .env("OMNIFEED_FILELOG_FSYNC", if round % 5 == 0 { "always" } else { "never" })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a number of acknowledgements that varies by round.
        let want = 5 + (round * 37) % 120;
        let mut seen = 0;
        for line in lines {
            let Some(n) = line.unwrap().strip_prefix("acked ").map(|n| n.parse::<u64>().unwrap())
            else {
                continue;
            };
            acked = acked.max(n);
            seen += 1;
            if seen >= want {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A kill does not tear one write on Linux (the kernel finishes the
        // pwrite); a power loss can. Every other round, the start of the
        // next frame is left at the tail as such a write would leave it.
        let torn = if round % 2 == 1 { tear(&dir, round) } else { 0 };
        let log = FileLog::open(&dir, small(Fsync::Never)).unwrap();
        assert_eq!(log.open_report().cut_bytes, torn, "round {round}");
        cuts += usize::from(log.open_report().cut_bytes > 0);
        let head = check_all(&log);
        assert!(head >= acked, "round {round}: head {head}, acknowledged {acked}");
        acked = head;
    }
    eprintln!("50 kills: {acked} entries, {cuts} torn tails cut");
    assert_eq!(cuts, 25);
    assert!(acked > 50 * 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Retention by snapshots: a snapshotting replica with `trim_log`, over a
/// file log of one entry per segment, drops the segments behind the oldest
/// snapshot kept. A replica started afterwards from the store loads the
/// newest snapshot and ends in the same state; a reader from the start is
/// told the entries were trimmed.
#[test]
fn a_snapshotting_replica_trims_the_log_behind_its_oldest_snapshot() {
    use omnifeed::live::Retention;
    let world = generate(&SynthConfig::tiny()).unwrap();
    let dir = temp_dir("durable-retention");
    let log = Arc::new(FileLog::open(dir.join("log"), small(Fsync::Never)).unwrap());
    let mut entries = world_log(&world);
    // More entries after the world's: a flag per product, one per append.
    entries.extend(
        (0..40).map(|i| LogEntry::Flag {
            product: world.catalog.product_ids()[i],
            flagged: i % 2 == 0,
        }),
    );
    let shared: Arc<dyn EventLog> = log.clone();
    let store = SnapshotStore::new(dir.join("snapshots"));
    let config = ReplicaConfig {
        snapshot_every: 8,
        retention: Retention { keep: 2 },
        trim_log: true,
        wait: Duration::ZERO,
        read_batch: 4,
        ..ReplicaConfig::default()
    };
    let mut a =
        Replica::start(Arc::clone(&shared), store.clone(), config, bootstrap(&world)).unwrap();
    // The log arrives in four parts of more than `snapshot_every` entries:
    // a snapshot starts in each (saves run one at a time, on their own
    // thread), and catching up waits for it.
    for part in entries.chunks(entries.len().div_ceil(4)) {
        for e in part {
            log.append(std::slice::from_ref(e)).unwrap();
        }
        a.catch_up(Duration::from_secs(60)).unwrap();
    }
    let oldest = store.oldest_offset().unwrap().expect("snapshots were written");
    assert!(a.stats().snapshots >= 4 && a.stats().trimmed > 0, "{:?}", a.stats());
    assert!(log.first() > 1 && log.first() <= oldest + 1, "first {} oldest {oldest}", log.first());
    let e = log.read(0, 10, Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("trimmed"), "{e}");
    let quiet = ReplicaConfig { wait: Duration::ZERO, ..ReplicaConfig::default() };
    let mut b = Replica::start(shared, store, quiet, bootstrap(&world)).unwrap();
    b.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(b.offset(), entries.len() as u64);
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
    assert_same_state(&a.recommender().state(), &b.recommender().state(), &users);
    drop((a, b, log));
    let _ = std::fs::remove_dir_all(&dir);
}
