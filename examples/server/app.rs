//! The server's process: its `[server]` settings, the log, the replica that
//! follows it on its own thread, and what readiness means. The HTTP routes
//! are in `routes.rs`. `fault_drill` runs this same code as its child.

use omnifeed::live::{
    BuildHook, EventLog, LogEntry, Replica, ReplicaConfig, Retention, SnapshotStore,
};
use omnifeed::{Recommender, ServiceConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Errors of the process (a config, a port, the log).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `[server]` table of the service config (every key optional).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// The durable log (`log/`) and the snapshots (`snapshots/`) live here.
    pub data_dir: PathBuf,
    /// The catalog directory a first start bootstraps from (the
    /// `read_dataset` layout: products.csv, embeddings.npy, ...).
    pub catalog: PathBuf,
    /// On a first start (empty log, no snapshot), append the catalog
    /// directory's `events.csv` to the log as its first entries.
    pub seed_events: bool,
    /// `readyz` is true once the state is loaded, the replica reached the
    /// log's head as of its start, and it is at most this many entries
    /// behind the head.
    pub ready_lag: u64,
    /// Publish applied entries at most this often, in milliseconds.
    pub publish_ms: u64,
    /// Write a snapshot every this many entries (0: never).
    pub snapshot_every: u64,
    /// Snapshots kept.
    pub snapshots_kept: usize,
    /// Drop log segments older than the oldest snapshot kept (the file log
    /// only: a shared Redis stream is never trimmed by one server).
    pub trim_log: bool,
    /// The file log's segment size and fsync policy
    /// (`omnifeed::live::FileLogConfig`).
    pub log: omnifeed::live::FileLogConfig,
    /// Request worker threads (0: one per core).
    pub workers: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: "omnifeed-data".into(),
            catalog: "data".into(),
            seed_events: true,
            ready_lag: 1000,
            publish_ms: 100,
            snapshot_every: 20_000,
            snapshots_kept: 3,
            trim_log: true,
            log: omnifeed::live::FileLogConfig::default(),
            workers: 0,
            max_body_bytes: 8 << 20,
        }
    }
}

impl ServerConfig {
    /// The `[server]` table of `service`, read with its defaults.
    ///
    /// Errors: an unknown key or a wrong type, named.
    pub fn from_service(service: &ServiceConfig) -> Result<ServerConfig, BoxError> {
        let table = toml::Value::Table(service.server.clone());
        table
            .try_into()
            .map_err(|e: toml::de::Error| format!("[server]: {}", e.to_string().trim()).into())
    }
}

/// Where the replica is, as the request threads see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Why the server is not serving yet ("" once it is).
    pub phase: String,
    /// The last entry applied.
    pub offset: u64,
    /// The log's newest entry, as last asked.
    pub head: u64,
    /// The log's head when the replica started: readiness waits for it.
    pub start_head: u64,
    /// True once the offset reached `start_head`.
    pub caught_up: bool,
    /// Seconds from the process start to the first time it was ready.
    pub ready_after_s: Option<f64>,
    /// The snapshot the replica started from (`None`: bootstrapped).
    pub loaded_from: Option<String>,
    /// Entries applied.
    pub applied: u64,
    /// Behaviour events applied.
    pub events: u64,
    /// Entries that did not decode.
    pub rejected: u64,
    /// Entries the writer (or the recommender) refused.
    pub failed: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// The serving state's version.
    pub state_version: u64,
    /// The last poll's error, until a poll succeeds again (the last
    /// published state goes on serving).
    pub error: Option<String>,
    /// Why the replica thread stopped (it could not start): the process
    /// is unhealthy.
    pub stopped: Option<String>,
}

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The shop's log: events, deltas, rules and experiments are appended
    /// here and acknowledged after the append.
    pub log: Arc<dyn EventLog>,
    /// The recommender, once the replica has loaded a state.
    pub recommender: OnceLock<Arc<Recommender>>,
    /// Where the replica is.
    pub status: Mutex<Status>,
    /// The readiness bound.
    pub ready_lag: u64,
    /// Set to stop the replica thread.
    pub stop: AtomicBool,
    /// Prometheus text of the process's metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    started: Instant,
}

impl App {
    /// The shared state of a server over `log`.
    pub fn new(
        log: Arc<dyn EventLog>,
        ready_lag: u64,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
    ) -> App {
        let status = Status { phase: "starting".into(), ..Status::default() };
        App {
            log,
            recommender: OnceLock::new(),
            status: Mutex::new(status),
            ready_lag,
            stop: AtomicBool::new(false),
            metrics,
            started: Instant::now(),
        }
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Ready: the replica runs, a state is loaded, the replica caught up
    /// with the log's head as of its start, and it is within `ready_lag`
    /// entries of the head.
    pub fn ready(s: &Status, ready_lag: u64) -> bool {
        s.stopped.is_none()
            && s.phase.is_empty()
            && s.caught_up
            && s.head.saturating_sub(s.offset) <= ready_lag
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

/// Opens the log the server follows: a `FileLog` under the data directory,
/// or the Redis stream at `redis`.
pub fn open_log(config: &ServerConfig, redis: Option<&str>) -> Result<Arc<dyn EventLog>, BoxError> {
    if let Some(url) = redis {
        #[cfg(feature = "redis")]
        {
            let log = omnifeed::live::RedisLog::open(omnifeed::live::RedisLogConfig::new(url))?;
            return Ok(Arc::new(log));
        }
        #[cfg(not(feature = "redis"))]
        return Err(format!(
            "--redis {url}: this build has no Redis log; run with --features redis"
        )
        .into());
    }
    let log = omnifeed::live::FileLog::open(config.data_dir.join("log"), config.log)?;
    let report = log.open_report();
    tracing::info!(dir = %log.dir().display(), report = ?report, "file log opened");
    Ok(Arc::new(log))
}

/// Appends the catalog directory's events to an empty log with no
/// snapshot ([`seed_entries`]). Returns how many.
fn seed(app: &App, config: &ServerConfig, store: &SnapshotStore) -> omnifeed::Result<usize> {
    let path = config.catalog.join("events.csv");
    if !config.seed_events || app.log.head()? > 0 || store.oldest_offset()?.is_some() {
        return Ok(0);
    }
    if !path.exists() {
        return Ok(0);
    }
    let (mut events, _) = omnifeed::load::read_events(&path, &Default::default())?;
    let entries = seed_entries(&mut events);
    if !entries.is_empty() {
        app.log.append(&entries)?;
    }
    Ok(events.len())
}

/// The entries a first start seeds the log with: `events` sorted by time
/// (in place), 5,000 to an entry. `fault_drill` applies the same entries to
/// its in-process twin of the server.
pub fn seed_entries(events: &mut [omnifeed::Event]) -> Vec<LogEntry> {
    omnifeed::load::sort_by_time(events);
    events.chunks(5000).map(|c| LogEntry::Events(c.to_vec())).collect()
}

/// The replica's thread: seed a new log, start from the newest snapshot (or
/// the catalog), catch up, then follow the log until `app.stop`. Every poll
/// updates the status readiness reads.
pub fn follow(app: Arc<App>, service: ServiceConfig, config: ServerConfig) {
    let failed = |app: &App, e: omnifeed::Error| {
        tracing::error!(error = %e, "the replica stopped");
        app.set(|s| s.stopped = Some(e.to_string()));
    };
    let store = SnapshotStore::new(config.data_dir.join("snapshots"));
    app.set(|s| s.phase = "seeding the log".into());
    match seed(&app, &config, &store) {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "log seeded from the catalog directory"),
        Err(e) => return failed(&app, e),
    }
    app.set(|s| s.phase = "loading the state".into());
    let mut replica = match start(&app, &service, &config, store) {
        Ok(r) => r,
        Err(e) => return failed(&app, e),
    };
    if let Err(e) = run(&app, &mut replica) {
        failed(&app, e);
    }
}

fn start(
    app: &App,
    service: &ServiceConfig,
    config: &ServerConfig,
    store: SnapshotStore,
) -> omnifeed::Result<Replica> {
    // The file's recommender config is the deployment's: it wins over the
    // one a snapshot carries. Rules and experiments change through the log
    // (PUT /v1/rules, /v1/experiments), so a snapshot's are newer than the
    // file's and stay in force.
    let file_config = service.recommender.clone();
    let replica_config = ReplicaConfig {
        build: Some(BuildHook::new(move |b| b.config(file_config.clone()))),
        publish_every: Duration::from_millis(config.publish_ms),
        snapshot_every: config.snapshot_every,
        retention: Retention { keep: config.snapshots_kept.max(1) },
        trim_log: config.trim_log && app.log.id().starts_with("file:"),
        ..ReplicaConfig::default()
    };
    let catalog_dir = config.catalog.clone();
    let mut replica = service.replica(Arc::clone(&app.log), store, replica_config, move || {
        Ok(omnifeed::load::read_dataset(&catalog_dir)?.catalog)
    })?;
    if let Some(from) = replica.loaded_from() {
        let rec = replica.recommender();
        if *rec.business_rules() != service.rules || rec.experiments() != service.experiments {
            tracing::warn!(
                snapshot = %from.display(),
                "the snapshot's rules or experiments differ from the config file's: the \
                 snapshot's are in force (they hold the changes made through the log); \
                 PUT /v1/rules or /v1/experiments to change them"
            );
        }
    }
    let start_head = app.log.head()?;
    let loaded_from = replica.loaded_from().map(|p| p.display().to_string());
    app.set(|s| {
        s.phase = "catching up".into();
        s.start_head = start_head;
        s.loaded_from = loaded_from;
    });
    let _ = app.recommender.set(Arc::clone(replica.recommender()));
    // Catch up with the head as of the start; `catch_up` publishes what it
    // applied, so readiness never counts an entry requests cannot see.
    while replica.offset() < start_head && !app.stop.load(Ordering::Relaxed) {
        replica.catch_up(Duration::from_millis(500))?;
        let offset = replica.offset();
        app.set(|s| s.offset = offset);
    }
    app.set(|s| s.caught_up = true);
    Ok(replica)
}

/// Polls until stopped; the status follows every poll and the log's head
/// is asked at most every 50 ms, or after a poll that read entries. A
/// failed poll (the log unreachable past its retries, a failed snapshot
/// save) is reported in the status and `tracing`, and tried again a second
/// later: the last published state goes on serving meanwhile.
fn run(app: &App, replica: &mut Replica) -> omnifeed::Result<()> {
    let mut head: Option<(u64, Instant)> = None;
    while !app.stop.load(Ordering::Relaxed) {
        match step(app, replica, &mut head) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "replica poll failed; retrying in 1 s");
                metrics::counter!("omnifeed_server_poll_errors_total").increment(1);
                app.set(|s| s.error = Some(e.to_string()));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    replica.publish()
}

/// One poll, and the status after it.
fn step(
    app: &App,
    replica: &mut Replica,
    head: &mut Option<(u64, Instant)>,
) -> omnifeed::Result<()> {
    let polled = replica.poll()?;
    let stale = head.is_none_or(|(_, at)| at.elapsed() >= Duration::from_millis(50));
    if stale || polled.read > 0 {
        *head = Some((app.log.head()?, Instant::now()));
    }
    let head = head.map_or(0, |(h, _)| h);
    let (offset, stats) = (replica.offset(), replica.stats());
    let version = replica.recommender().state().version();
    let (ready_lag, started) = (app.ready_lag, app.started);
    let mut ready = false;
    app.set(|s| {
        s.phase.clear();
        s.error = None;
        s.offset = offset;
        s.head = head.max(offset);
        if s.ready_after_s.is_none() && App::ready(s, ready_lag) {
            s.ready_after_s = Some(started.elapsed().as_secs_f64());
        }
        (s.applied, s.events, s.rejected, s.failed, s.snapshots) =
            (stats.applied, stats.events, stats.rejected, stats.failed, stats.snapshots);
        s.state_version = version;
        ready = App::ready(s, ready_lag);
    });
    record(offset, head, ready);
    Ok(())
}

/// The server's own gauges, beside the library's.
fn record(offset: u64, head: u64, ready: bool) {
    metrics::gauge!("omnifeed_server_offset").set(offset as f64);
    metrics::gauge!("omnifeed_server_log_head").set(head as f64);
    metrics::gauge!("omnifeed_server_ready").set(f64::from(u8::from(ready)));
}

/// Reads the service config (with its `[server]` table) from `path`, or
/// the defaults.
pub fn read_config(path: Option<&Path>) -> Result<(ServiceConfig, ServerConfig), BoxError> {
    let service = match path {
        Some(p) => ServiceConfig::from_file(p)?,
        None => ServiceConfig::default(),
    };
    let server = ServerConfig::from_service(&service)?;
    Ok((service, server))
}
