//! A load and fault drill of the reference server (`examples/server`): a
//! load generator sends feed and search requests and events at a fixed
//! rate to a server on 127.0.0.1 while the server is killed with SIGKILL
//! and restarted, several times.
//!
//! ```text
//! cargo run --release --example fault_drill                      # 3 kills, about 20 s (what CI runs)
//! cargo run --release --example fault_drill -- --restarts 10 --life-secs 10 --rate 400
//! ```
//!
//! The server is this binary, re-run as its own child (`serve-child`): the
//! same code as `examples/server`, on the `data/` catalog, a `FileLog` and
//! snapshots in a temporary data directory. What it checks:
//!
//! - **events_lost**: every event the server acknowledged is in its log
//!   after the last kill, at the offset the acknowledgement named, as sent
//!   (the drill opens the log itself), and the last server applied it;
//! - **errors_while_up**: no request started after the server was ready
//!   and ended before the kill failed (the requests a kill cut are
//!   `failed_at_kill`, and while the server is down the clients hold);
//! - **ready_before_caught_up**: no `readyz` said ready before the
//!   restarted server had applied every entry acknowledged before the kill;
//! - **http_overhead_ratio**: the HTTP p50 over the in-process p50, for the
//!   same requests sent one at a time to an idle server and to a
//!   recommender built in this process from the same data and config.
//!
//! The last line is JSON; the drill exits non-zero if a check fails.

#[path = "server/app.rs"]
mod app;
#[path = "server/routes.rs"]
mod routes;
#[path = "server/serve.rs"]
mod serve;

use omnifeed::live::{EventLog, FileLog, FileLogConfig, LogEntry};
use omnifeed::{Event, EventKind, ProductId, Surface, Target, Timestamp, UserId};
use rand::{RngExt, SeedableRng};
use routes::{Appended, Ask, StatusOut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "fault_drill", about = "Load, SIGKILL and restarts against the reference server")]
struct Args {
    /// SIGKILLs (each followed by a restart).
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Seconds of load between restarts (and after the last).
    #[arg(long, default_value_t = 3.0)]
    life_secs: f64,
    /// Requests per second, all clients together (a fixed schedule).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// The share of requests that post events (the rest: 2/3 feed, 1/3 search).
    #[arg(long, default_value_t = 0.3)]
    event_share: f64,
    /// Requests sent one at a time for the HTTP overhead.
    #[arg(long, default_value_t = 300)]
    calibration: usize,
    /// Entries between the server's snapshots (so restarts load snapshots).
    #[arg(long, default_value_t = 200)]
    snapshot_every: u64,
    /// The service config the server and the in-process baseline read.
    #[arg(long, value_name = "PATH", default_value = "examples/omnifeed.toml")]
    config: PathBuf,
    /// The catalog directory.
    #[arg(long, value_name = "DIR", default_value = "data")]
    catalog: PathBuf,
    /// The server's data directory [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

type BoxError = app::BoxError;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("serve-child") {
        let args = std::env::args().skip(1);
        return serve::main_from(args);
    }
    let args = <Args as clap::Parser>::parse();
    match drill(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fault_drill: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The requests the clients and the calibration draw from.
struct Workload {
    users: Vec<UserId>,
    products: Vec<ProductId>,
    queries: Vec<String>,
    /// The signals' time: event times start here.
    as_of: Timestamp,
}

impl Workload {
    fn ask(&self, rng: &mut impl rand::Rng, search: bool) -> (Surface, Ask) {
        let user = self.users[rng.random_range(0..self.users.len())];
        let query = search.then(|| self.queries[rng.random_range(0..self.queries.len())].clone());
        let ask = Ask {
            user,
            k: 20,
            at: None,
            exclude: Vec::new(),
            seed: 0,
            query,
            embedding: None,
            filters: omnifeed::RequestFilters::default(),
            skip: Vec::new(),
            id: None,
            explain: false,
        };
        (if search { Surface::Search } else { Surface::Feed }, ask)
    }

    fn events(&self, rng: &mut impl rand::Rng, t: Timestamp) -> Vec<Event> {
        let user = self.users[rng.random_range(0..self.users.len())];
        (0..rng.random_range(1..=4))
            .map(|_| {
                let p = self.products[rng.random_range(0..self.products.len())];
                let kind = match rng.random_range(0..10) {
                    0..=5 => EventKind::Impression,
                    6..=8 => EventKind::Click,
                    _ => EventKind::Cart,
                };
                Event::new(t, user, Target::Product(p), kind)
            })
            .collect()
    }
}

/// One request the clients sent.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    end: Instant,
    ok: bool,
    read: bool,
}

/// What the clients share with the drill's main thread.
#[derive(Default)]
struct Shared {
    down: AtomicBool,
    stop: AtomicBool,
    skipped: AtomicU64,
    /// The highest offset acknowledged so far.
    max_acked: AtomicU64,
    samples: Mutex<Vec<Sample>>,
    /// Acknowledged event entries: (offset, the events sent).
    acked: Mutex<Vec<(u64, Vec<Event>)>>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn path_of(surface: Surface) -> &'static str {
    match surface {
        Surface::Search => "search",
        Surface::Omni => "omni",
        _ => "feed",
    }
}

/// Posts `body` as JSON; the parsed reply on a 200.
fn post<T: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    body: &impl serde::Serialize,
) -> Result<T, String> {
    let mut reply = agent.post(url).send_json(body).map_err(|e| e.to_string())?;
    if reply.status() != 200 {
        let text = reply.body_mut().read_to_string().unwrap_or_default();
        return Err(format!("{}: {text}", reply.status()));
    }
    reply.body_mut().read_json::<T>().map_err(|e| e.to_string())
}

/// The server's status from `/readyz` (whatever its code).
fn ready_status(agent: &ureq::Agent, base: &str) -> Option<StatusOut> {
    let mut reply = agent.get(&format!("{base}/readyz")).call().ok()?;
    reply.body_mut().read_json::<StatusOut>().ok()
}

/// One client: a fixed schedule of `rate` requests per second.
fn client(id: usize, args: &Args, base: &str, work: &Workload, shared: &Shared, t0: Instant) {
    let agent = agent();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1000 + id as u64);
    let interval = Duration::from_secs_f64(args.clients as f64 / args.rate);
    let mut next = Instant::now() + interval.mul_f64(id as f64 / args.clients as f64);
    let (mut samples, mut acked) = (Vec::new(), Vec::new());
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            next = now; // no burst to catch up after a stall
        }
        next += interval;
        if shared.down.load(Ordering::SeqCst) {
            shared.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let start = Instant::now();
        let (ok, read) = if rng.random_bool(args.event_share) {
            let at = work.as_of + (start - t0).as_secs() as Timestamp;
            let events = work.events(&mut rng, at);
            match post::<Appended>(&agent, &format!("{base}/v1/events"), &events) {
                Ok(a) => {
                    shared.max_acked.fetch_max(a.offset, Ordering::SeqCst);
                    acked.push((a.offset, events));
                    (true, false)
                }
                Err(_) => (false, false),
            }
        } else {
            let search = rng.random_bool(1.0 / 3.0);
            let (surface, ask) = work.ask(&mut rng, search);
            let url = format!("{base}/v1/{}", path_of(surface));
            (post::<routes::FeedOut>(&agent, &url, &ask).is_ok(), true)
        };
        samples.push(Sample { start, end: Instant::now(), ok, read });
    }
    if let (Ok(mut s), Ok(mut a)) = (shared.samples.lock(), shared.acked.lock()) {
        s.extend(samples);
        a.extend(acked);
    }
}

/// The drill's server process.
struct Server {
    child: Child,
    base: String,
    exe: PathBuf,
    argv: Vec<String>,
    log: PathBuf,
}

impl Server {
    /// Starts this binary as the server on a free loopback port, with the
    /// drill's config in `dir`.
    fn start(args: &Args, dir: &Path) -> Result<Server, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(&args.config)?)?;
        let server = toml::toml! {
            snapshot_every = (args.snapshot_every as i64)
            // The drill reads every acknowledged entry back from the log.
            trim_log = false
        };
        table.insert("server".into(), toml::Value::Table(server));
        let config = dir.join("omnifeed.toml");
        std::fs::write(&config, toml::to_string(&table)?)?;
        let argv = vec![
            "serve-child".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--catalog".into(),
            args.catalog.display().to_string(),
        ];
        let exe = std::env::current_exe()?;
        let log = dir.join("server.log");
        let child = spawn(&exe, &argv, &log)?;
        Ok(Server { child, base: format!("http://127.0.0.1:{port}"), exe, argv, log })
    }

    /// SIGKILL, then the same command again.
    fn kill_and_restart(&mut self) -> Result<(), BoxError> {
        self.child.kill()?;
        self.child.wait()?;
        self.child = spawn(&self.exe, &self.argv, &self.log)?;
        Ok(())
    }

    /// Polls `readyz` every 10 ms until ready at an offset of at least
    /// `acked` (every entry acknowledged before the kill). Returns the
    /// seconds it took, the times it said ready before reaching `acked`,
    /// and the times it said not ready.
    fn wait_ready(&mut self, acked: u64) -> Result<(f64, u64, u64), BoxError> {
        let (t, agent) = (Instant::now(), agent());
        let (mut early, mut not_ready) = (0, 0);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("the server exited ({status}); see {}", self.log.display()).into()
                );
            }
            match ready_status(&agent, &self.base) {
                Some(s) if s.ready => {
                    let offset = s.status["offset"].as_u64().unwrap_or(0);
                    if offset >= acked {
                        return Ok((t.elapsed().as_secs_f64(), early, not_ready));
                    }
                    early += 1;
                }
                Some(_) => not_ready += 1,
                None => {}
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err("the server was not ready within 300 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(exe: &Path, argv: &[String], log: &Path) -> Result<Child, BoxError> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = Command::new(exe)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(child)
}

/// The in-process twin of the server's first life: the same config, the
/// same catalog, the same seeded log entries.
fn in_process(args: &Args) -> Result<(omnifeed::Recommender, Workload), BoxError> {
    let service = omnifeed::ServiceConfig::from_file(&args.config)?;
    let data = omnifeed::load::read_dataset(&args.catalog)?;
    let mut events = data.events.clone();
    let mut writer = service.writer(data.catalog.clone())?;
    for (i, entry) in app::seed_entries(&mut events).iter().enumerate() {
        writer.apply(i as u64 + 1, entry)?;
    }
    let rec = service.recommender(writer.publish()?).build()?;
    let mut users: Vec<UserId> = events.iter().map(|e| e.user).collect();
    users.sort_unstable();
    users.dedup();
    let catalog = &data.catalog;
    let products = catalog.product_ids().to_vec();
    let queries = (0..catalog.len())
        .step_by(97)
        .filter_map(|r| {
            let title = catalog.title(omnifeed::ItemIdx(r as u32))?;
            let words: Vec<&str> = title.split_whitespace().take(2).collect();
            (!words.is_empty()).then(|| words.join(" "))
        })
        .collect();
    let as_of = rec.state().signals().as_of();
    Ok((rec, Workload { users, products, queries, as_of }))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The same requests one at a time over HTTP and in process: the p50s in
/// milliseconds, and how many feeds differed.
fn calibrate(
    base: &str,
    rec: &omnifeed::Recommender,
    work: &Workload,
    n: usize,
) -> Result<(f64, f64, usize), BoxError> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    // At the signals' time: both sides then rank at the same instant,
    // whatever the wall clock does between the two calls.
    let asks: Vec<(Surface, Ask)> = (0..n)
        .map(|i| work.ask(&mut rng, i % 3 == 2))
        .map(|(surface, ask)| (surface, Ask { at: Some(work.as_of), ..ask }))
        .collect();
    let agent = agent();
    let (mut http, mut local, mut differ) = (Vec::new(), Vec::new(), 0);
    for (surface, ask) in &asks {
        let url = format!("{base}/v1/{}", path_of(*surface));
        let t = Instant::now();
        let served: routes::FeedOut = post(&agent, &url, ask)?;
        http.push(t.elapsed().as_secs_f64() * 1e3);
        let req = ask.request(*surface);
        let t = Instant::now();
        let feed = rec.recommend(&req)?;
        local.push(t.elapsed().as_secs_f64() * 1e3);
        let a: Vec<ProductId> = served.items.iter().map(|i| i.product).collect();
        let b: Vec<ProductId> = feed.items.iter().map(|i| i.product).collect();
        differ += usize::from(a != b);
    }
    Ok((percentile(&sorted(http), 0.5), percentile(&sorted(local), 0.5), differ))
}

/// Every entry of the log at `dir`, by offset.
fn read_log(dir: &Path) -> Result<std::collections::HashMap<u64, LogEntry>, BoxError> {
    let log = FileLog::open(dir, FileLogConfig::default())?;
    let (head, mut after, mut out) =
        (log.head()?, log.first().saturating_sub(1), Default::default());
    let out: &mut std::collections::HashMap<u64, LogEntry> = &mut out;
    while after < head {
        let batch = log.read(after, 4096, Duration::ZERO)?;
        if !batch.rejected.is_empty() {
            return Err(format!("{} entries of the log do not decode", batch.rejected.len()).into());
        }
        out.extend(batch.records.into_iter().map(|r| (r.offset, r.entry)));
        after = batch.last;
    }
    Ok(std::mem::take(out))
}

/// What the restarts saw.
#[derive(Default)]
struct Restarts {
    ready_s: Vec<f64>,
    early: u64,
    not_ready: u64,
    /// When each life was up (ready) and when its kill began; the last
    /// life ends when the load stops.
    ups: Vec<Instant>,
    kills: Vec<Instant>,
}

/// Starts the load, kills and restarts the server `args.restarts` times,
/// stops the load.
fn load_and_kill(
    args: &Args,
    server: &mut Server,
    work: &Arc<Workload>,
    shared: &Arc<Shared>,
) -> Result<Restarts, BoxError> {
    let t0 = Instant::now();
    let mut r = Restarts { ups: vec![t0], ..Restarts::default() };
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let (args, base) = (args.clone(), server.base.clone());
            let (work, shared) = (Arc::clone(work), Arc::clone(shared));
            std::thread::spawn(move || client(id, &args, &base, &work, &shared, t0))
        })
        .collect();
    let life = Duration::from_secs_f64(args.life_secs);
    for _ in 0..args.restarts {
        std::thread::sleep(life);
        shared.down.store(true, Ordering::SeqCst);
        r.kills.push(Instant::now());
        let acked = shared.max_acked.load(Ordering::SeqCst);
        server.kill_and_restart()?;
        let (secs, early, not_ready) = server.wait_ready(acked)?;
        r.ready_s.push(secs);
        (r.early, r.not_ready) = (r.early + early, r.not_ready + not_ready);
        r.ups.push(Instant::now());
        shared.down.store(false, Ordering::SeqCst);
    }
    std::thread::sleep(life);
    shared.stop.store(true, Ordering::SeqCst);
    r.kills.push(Instant::now());
    for c in clients {
        c.join().map_err(|_| "a client thread panicked")?;
    }
    Ok(r)
}

fn drill(args: &Args) -> Result<bool, BoxError> {
    if args.rate <= 0.0 || args.clients == 0 || !(0.0..=1.0).contains(&args.event_share) {
        return Err("--rate must be > 0, --clients >= 1, --event-share in [0, 1]".into());
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("omnifeed-drill-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let (rec, work) = in_process(args)?;
    let work = Arc::new(work);
    let mut server = Server::start(args, &dir)?;
    let (first_ready, _, _) = server.wait_ready(0)?;
    let (http_p50, local_p50, differ) = calibrate(&server.base, &rec, &work, args.calibration)?;
    drop(rec);
    let shared = Arc::new(Shared::default());
    let restarts = load_and_kill(args, &mut server, &work, &shared)?;
    // Every acknowledged entry applied by the last server, then in its log.
    let acked_max = shared.max_acked.load(Ordering::SeqCst);
    let (_, _, _) = server.wait_ready(acked_max)?;
    drop(server);
    let log = read_log(&dir.join("data").join("log"))?;
    let samples = shared.samples.lock().map(|s| s.clone()).unwrap_or_default();
    let acked = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let events_acked: usize = acked.iter().map(|(_, e)| e.len()).sum();
    let events_lost: usize = acked
        .iter()
        .filter(|(offset, events)| log.get(offset) != Some(&LogEntry::Events(events.clone())))
        .map(|(_, e)| e.len())
        .sum();
    let up = |s: &Sample| {
        restarts.ups.iter().zip(&restarts.kills).any(|(u, k)| *u <= s.start && s.end <= *k)
    };
    let errors_while_up = samples.iter().filter(|s| !s.ok && up(s)).count();
    let failed_at_kill = samples.iter().filter(|s| !s.ok && !up(s)).count();
    let ms = |s: &Sample| (s.end - s.start).as_secs_f64() * 1e3;
    let reads = sorted(samples.iter().filter(|s| s.ok && s.read).map(ms).collect());
    let writes = sorted(samples.iter().filter(|s| s.ok && !s.read).map(ms).collect());
    let ready_max = restarts.ready_s.iter().copied().fold(0.0, f64::max);
    let report = serde_json::json!({
        "requests": samples.len(),
        "errors_while_up": errors_while_up,
        "failed_at_kill": failed_at_kill,
        "skipped_while_down": shared.skipped.load(Ordering::Relaxed),
        "p50_ms": percentile(&reads, 0.5),
        "p99_ms": percentile(&reads, 0.99),
        "events_p50_ms": percentile(&writes, 0.5),
        "events_p99_ms": percentile(&writes, 0.99),
        "events_acked": events_acked,
        "events_lost": events_lost,
        "restarts": restarts.ready_s.len(),
        "ready_after_restart_s": ready_max,
        "ready_after_each_s": restarts.ready_s,
        "first_ready_s": first_ready,
        "ready_before_caught_up": restarts.early,
        "not_ready_polls": restarts.not_ready,
        "http_overhead_ratio": http_p50 / local_p50,
        "http_p50_ms": http_p50,
        "in_process_p50_ms": local_p50,
        "feeds_differing": differ,
        "rate": args.rate,
        "clients": args.clients,
        "life_secs": args.life_secs,
        "log_entries": log.len(),
    });
    println!("data directory: {} (server log: server.log)", dir.display());
    println!("{report}");
    let passed = events_lost == 0
        && errors_while_up == 0
        && restarts.early == 0
        && differ == 0
        && events_acked > 0
        && restarts.ready_s.len() == args.restarts;
    if passed && args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(passed)
}
