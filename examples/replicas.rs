//! Replicas behind a shared log on Redis Streams: a producer, two replicas
//! of the unsharded layout (one writes snapshots), one replica per shard of
//! a two-shard layout; one replica is killed mid-stream and restarted from
//! the newest snapshot.
//!
//! ```text
//! cargo run --release --features redis --example replicas            # starts redis-server itself
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --features redis --example replicas
//! ```
//!
//! The producer appends at `--rate` events per second (default 40,000;
//! 0: as fast as it can). The last line is one JSON object: `events`, `replicas`, `converged`
//! (checked: the two unsharded replicas and a writer that applied the
//! stream in-process serve identical feeds, and so do a shard replica and
//! an in-process writer of that shard), `max_lag_ms` (append to visible on
//! the serving replicas; the snapshotter's apart, it writes snapshots inline),
//! `events_per_s_per_replica` (a fresh replica catching up through Redis)
//! against `in_process_events_per_s` (the same entries applied directly),
//! `restart_catch_up_s`, `profile_bytes_full`, `profile_bytes_per_shard`.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use omnifeed::live::{
    EventLog, LogEntry, RedisLog, RedisLogConfig, Replica, ReplicaConfig, ShopWriter, SnapshotStore,
};
use omnifeed::signals::UserShard;
use omnifeed::synth::{ShopSim, SynthConfig, World, generate};
use omnifeed::{FeedRequest, Recommender, ServiceConfig, UserId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The world's events in batches, then steps of catalog changes and events.
fn entries(world: &World, steps: usize) -> omnifeed::Result<Vec<LogEntry>> {
    let mut out: Vec<LogEntry> =
        world.events.chunks(2_000).map(|c| LogEntry::Events(c.to_vec())).collect();
    let mut sim = ShopSim::new(world, 11);
    let mut catalog = world.catalog.clone();
    for _ in 0..steps {
        let deltas = sim.product_changes(&catalog, 40);
        catalog = catalog.apply(&deltas)?.0;
        out.push(LogEntry::Delta(deltas));
        out.push(LogEntry::Events(sim.events(&catalog, 2_000, 120)));
    }
    Ok(out)
}

fn events_in(entries: &[LogEntry]) -> usize {
    entries.iter().map(|e| if let LogEntry::Events(v) = e { v.len() } else { 0 }).sum()
}

/// The shop's service config: every part (writers, replicas,
/// recommenders) is built through it. The defaults here; a service reads
/// its file (`ServiceConfig::from_file`).
fn service() -> ServiceConfig {
    ServiceConfig::default()
}

fn bootstrap(world: &World) -> impl FnOnce() -> omnifeed::Result<ShopWriter> + '_ {
    move || service().writer(world.catalog.clone())
}

/// A replica of the shop over `log`, bootstrapped from the world's catalog.
fn replica(
    log: Arc<dyn EventLog>,
    store: SnapshotStore,
    config: ReplicaConfig,
    world: &World,
) -> omnifeed::Result<Replica> {
    service().replica(log, store, config, || Ok(world.catalog.clone()))
}

/// A writer that applied `entries` at offsets 1, 2, … in this process.
fn direct(
    world: &World,
    entries: &[LogEntry],
    shard: Option<UserShard>,
) -> omnifeed::Result<ShopWriter> {
    let mut w = bootstrap(world)()?;
    w.set_user_shard(shard);
    for (i, e) in entries.iter().enumerate() {
        w.apply(i as u64 + 1, e)?;
    }
    Ok(w)
}

/// Where the log is: the server and this run's stream key.
#[derive(Clone)]
struct Log {
    url: String,
    stream: String,
}

impl Log {
    fn open(&self) -> omnifeed::Result<Arc<dyn EventLog>> {
        let config =
            RedisLogConfig { stream: self.stream.clone(), ..RedisLogConfig::new(&self.url) };
        Ok(Arc::new(RedisLog::open(config)?))
    }
}

/// A replica on its own thread: started (then `ready` counts it), polling
/// until `stop`, its offset in `progress` after every poll.
struct Running {
    thread: JoinHandle<omnifeed::Result<Replica>>,
    progress: Arc<AtomicU64>,
}

fn spawn(
    log: &Log,
    world: &World,
    store: &SnapshotStore,
    config: ReplicaConfig,
    (stop, ready): (&Arc<AtomicBool>, &Arc<AtomicU64>),
) -> Running {
    let (log, world, store) = (log.clone(), world.clone(), store.clone());
    let (stop, ready) = (Arc::clone(stop), Arc::clone(ready));
    let progress = Arc::new(AtomicU64::new(0));
    let offset = Arc::clone(&progress);
    let thread = std::thread::spawn(move || {
        let mut r = replica(log.open()?, store, config, &world)?;
        ready.fetch_add(1, Ordering::SeqCst);
        while !stop.load(Ordering::Relaxed) {
            r.poll()?;
            offset.store(r.offset(), Ordering::Relaxed);
        }
        Ok(r)
    });
    Running { thread, progress }
}

impl Running {
    fn join(self) -> Result<Replica, Box<dyn std::error::Error>> {
        Ok(self.thread.join().map_err(|_| "a replica thread panicked")??)
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(600) {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Feeds of `users` from two recommenders, equal item for item.
fn same_feeds(a: &Recommender, b: &Recommender, users: &[UserId], at: i64) -> bool {
    users.iter().all(|&u| {
        let req = FeedRequest::new(u).k(20).at(at);
        match (a.recommend(&req), b.recommend(&req)) {
            (Ok(x), Ok(y)) => x.items == y.items,
            _ => false,
        }
    })
}

fn served(state: omnifeed::ServingState) -> omnifeed::Result<Recommender> {
    service().recommender(state).build()
}

/// Holds a producer to `rate` events per second (0: no limit).
struct Pacer {
    rate: f64,
    start: Instant,
    sent: usize,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer { rate, start: Instant::now(), sent: 0 }
    }

    fn sent(&mut self, events: usize) {
        self.sent += events;
        if self.rate > 0.0 {
            let due = Duration::from_secs_f64(self.sent as f64 / self.rate);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "replicas",
    about = "A producer and four replicas on a shared log in Redis Streams"
)]
struct Cli {
    /// Events per second the producer sends (0: unpaced).
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 40_000.0)]
    rate: f64,
    /// Products in the synthetic shop (its snapshots grow with it).
    #[arg(long, default_value_t = SynthConfig::default().products)]
    products: usize,
    /// Save the snapshotter's snapshots on its poll thread, as before
    /// background saves (for comparison).
    #[arg(long)]
    sync_snapshots: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = <Cli as clap::Parser>::parse();
    let rate = cli.rate;
    // Redis: REDIS_URL, else a server of our own on a free loopback port.
    let mut own_server = None;
    let url = match std::env::var("REDIS_URL") {
        Ok(u) => u,
        Err(_) => {
            let bin = redis_server::binary().ok_or(
                "redis-server not found: apt-get install -y redis-server, or set REDIS_URL",
            )?;
            own_server.insert(redis_server::RedisServer::start(&bin)?).url()
        }
    };
    let world = generate(&SynthConfig { products: cli.products, ..SynthConfig::default() })?;
    let entries = entries(&world, 40)?;
    let events = events_in(&entries);
    eprintln!("{} log entries, {events} events, {} products", entries.len(), world.catalog.len());

    // The in-process reference: the same entries applied directly.
    let t = Instant::now();
    let mut reference = direct(&world, &entries, None)?;
    let reference = served(reference.publish()?)?;
    let in_process = events as f64 / t.elapsed().as_secs_f64();

    // This run's own stream and snapshot store.
    let run = omnifeed::live::now_ms();
    let log = Log { url, stream: format!("omnifeed:replicas:{run}") };
    let root = std::env::temp_dir().join(format!("omnifeed-replicas-{run}"));
    let store = SnapshotStore::new(&root);
    let (s0, s1) = (UserShard::new(0, 2)?, UserShard::new(1, 2)?);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_b = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicU64::new(0));
    let snapshotter = ReplicaConfig {
        snapshot_every: 20,
        background_snapshots: !cli.sync_snapshots,
        ..ReplicaConfig::default()
    };
    let shard = |s| ReplicaConfig { shard: Some(s), ..ReplicaConfig::default() };
    let a = spawn(&log, &world, &store, snapshotter, (&stop, &ready));
    let b = spawn(&log, &world, &store, ReplicaConfig::default(), (&stop_b, &ready));
    let r0 = spawn(&log, &world, &store, shard(s0), (&stop, &ready));
    let r1 = spawn(&log, &world, &store, shard(s1), (&stop, &ready));
    wait_for("the replicas to start", || ready.load(Ordering::SeqCst) == 4)?;

    // The producer; replica B is killed half-way, once a snapshot exists
    // and B has applied entries past it, and restarted after the stream.
    let producer = log.open()?;
    let half = entries.len() / 2;
    let mut paced = Pacer::new(rate);
    for chunk in entries[..half].chunks(4) {
        producer.append(chunk)?;
        paced.sent(events_in(chunk));
    }
    wait_for("a snapshot and replica B mid-stream", || {
        a.progress.load(Ordering::Relaxed) >= 40 && b.progress.load(Ordering::Relaxed) >= 50
    })?;
    stop_b.store(true, Ordering::Relaxed);
    let killed = b.join()?;
    let (killed_at, killed_lag) = (killed.offset(), killed.stats().max_visible_delay_ms);
    drop(killed);
    for chunk in entries[half..].chunks(4) {
        producer.append(chunk)?;
        paced.sent(events_in(chunk));
    }
    let head = producer.head()?;
    let t = Instant::now();
    let mut b = replica(log.open()?, store.clone(), ReplicaConfig::default(), &world)?;
    let resumed_from = b.offset();
    b.catch_up(Duration::from_secs(600))?;
    let restart_catch_up_s = t.elapsed().as_secs_f64();
    eprintln!(
        "replica B: killed at offset {killed_at}, restarted from the snapshot at offset \
         {resumed_from}, caught up to {} in {restart_catch_up_s:.2} s",
        b.offset()
    );

    // Everyone reaches the head.
    wait_for("the replicas to reach the head", || {
        [&a, &r0, &r1].iter().all(|r| r.progress.load(Ordering::Relaxed) == head)
    })?;
    stop.store(true, Ordering::Relaxed);
    let (mut a, mut r0, mut r1) = (a.join()?, r0.join()?, r1.join()?);
    for r in [&mut a, &mut r0, &mut r1] {
        r.catch_up(Duration::from_secs(600))?;
    }

    // Throughput of one replica through Redis: a fresh one from offset 0.
    let t = Instant::now();
    let mut fresh = replica(
        log.open()?,
        SnapshotStore::new(root.join("fresh")),
        ReplicaConfig::default(),
        &world,
    )?;
    fresh.catch_up(Duration::from_secs(600))?;
    let through_redis = events as f64 / t.elapsed().as_secs_f64();

    // Convergence, checked on feeds of sampled users at one time.
    let at = reference.state().signals().as_of();
    let users: Vec<UserId> = world.users.iter().step_by(40).map(|u| u.id).collect();
    let owned: Vec<UserId> = users.iter().copied().filter(|&u| s0.owns(u)).collect();
    let shard_reference = served(direct(&world, &entries, Some(s0))?.publish()?)?;
    let offsets_equal = [a.offset(), b.offset(), r0.offset(), r1.offset(), fresh.offset()]
        .iter()
        .all(|&o| o == head);
    let converged = offsets_equal
        && same_feeds(a.recommender(), b.recommender(), &users, at)
        && same_feeds(a.recommender(), &reference, &users, at)
        && same_feeds(fresh.recommender(), &reference, &users, at)
        && same_feeds(r0.recommender(), &shard_reference, &owned, at);
    for (name, r) in [("A", &a), ("B restarted", &b), ("shard 0", &r0), ("shard 1", &r1)] {
        eprintln!("replica {name}: {:?}", r.stats());
    }
    // Append to visible while following the stream live: the replicas that
    // ran throughout, and B before it was killed (after its restart B only
    // catches up, timed as restart_catch_up_s). The snapshotter A also
    // pays its snapshot writes inline, so its figure is given apart.
    let delay = |r: &Replica| r.stats().max_visible_delay_ms;
    let max_lag_ms = delay(&r0).max(delay(&r1)).max(killed_lag);
    let user_bytes = |r: &Replica| r.recommender().state().signals().memory().user_bytes;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "producer_events_per_s": rate,
            "log_entries": head,
            "replicas": 4,
            "converged": converged,
            "max_lag_ms": max_lag_ms,
            "snapshotter_max_lag_ms": delay(&a),
            "events_per_s_per_replica": through_redis.round(),
            "in_process_events_per_s": in_process.round(),
            "redis_vs_in_process": (through_redis / in_process * 1000.0).round() / 1000.0,
            "restart_catch_up_s": (restart_catch_up_s * 1000.0).round() / 1000.0,
            "restart_resumed_from_offset": resumed_from,
            "rejected_entries": a.stats().rejected,
            "profile_bytes_full": user_bytes(&a),
            "profile_bytes_per_shard": user_bytes(&r0).max(user_bytes(&r1)),
        })
    );
    if !converged {
        return Err("replicas did not converge".into());
    }
    Ok(())
}
