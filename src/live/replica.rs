//! Replicas: a ranking process that starts from the newest shared snapshot
//! and follows the shared [`EventLog`] from the snapshot's offset.
//!
//! Every replica applies the same ordered entries through its own
//! [`ShopWriter`], so two replicas (of the same user shard) at the same
//! offset hold the same state and serve the same feeds. An entry no replica
//! can decode, or one the writer rejects, is passed over by all of them
//! alike ([`ShopWriter::skip`]).
//!
//! ```text
//!   SnapshotStore root/
//!     full/             snapshot-<offset>-<nanos>/state.osnap, CURRENT
//!     shard-0-of-2/     (one layout per user-shard configuration)
//!     shard-1-of-2/
//! ```

use super::log::{EventLog, LogRecord, Rejected, now_ms};
use super::{Applied, Retention, ShopWriter, SnapshotInfo, StdIo};
use crate::error::{Error, Result};
use crate::recommender::Recommender;
use crate::signals::UserShard;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A directory of snapshots shared by replicas (a network file system, or
/// a local copy of an object-store prefix), one subdirectory per layout.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    /// Snapshots under `root`.
    pub fn new(root: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { root: root.into() }
    }

    /// The directory of one layout: `root/full` or
    /// `root/shard-<i>-of-<n>`. Replicas of different layouts never read
    /// each other's snapshots (a shard learns co-engagement from its own
    /// users, so its state is not a full replica's).
    pub fn dir(&self, shard: Option<UserShard>) -> PathBuf {
        self.root.join(shard.map_or_else(|| "full".to_string(), |s| s.name()))
    }

    /// Loads the newest snapshot of the layout that loads, falling back past
    /// corrupt ones. `Ok(None)` when the layout has no snapshot yet.
    ///
    /// Errors: the layout's directory unreadable; snapshots exist but none
    /// loads.
    pub fn load_newest(&self, shard: Option<UserShard>) -> Result<Option<Loaded>> {
        super::snapshot::load_newest(&self.dir(shard))
    }

    /// The oldest log offset any snapshot of any layout under the root
    /// holds (`None`: no snapshot yet): a log may drop the entries up to it
    /// ([`EventLog::trim_before`] that offset + 1) and every layout still
    /// restarts.
    ///
    /// Errors: the root or a layout's directory unreadable.
    pub fn oldest_offset(&self) -> Result<Option<u64>> {
        let layouts = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        let mut oldest: Option<u64> = None;
        for layout in layouts.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
            let path = layout.path();
            let offsets =
                super::snapshot::snapshot_offsets(&path).map_err(|e| Error::io(&path, e))?;
            if let Some(&first) = offsets.iter().min() {
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
            }
        }
        Ok(oldest)
    }

    /// Saves `writer` as the layout's newest snapshot.
    ///
    /// Errors: as [`ShopWriter::save_with`].
    pub fn save(
        &self,
        writer: &mut ShopWriter,
        shard: Option<UserShard>,
        retention: Retention,
    ) -> Result<SnapshotInfo> {
        writer.save_with(&self.dir(shard), &StdIo, retention)
    }
}

/// A snapshot [`SnapshotStore::load_newest`] loaded.
#[derive(Debug)]
pub struct Loaded {
    /// The writer, at the snapshot's offset.
    pub writer: ShopWriter,
    /// The directory it came from.
    pub from: PathBuf,
    /// Newer snapshots that did not load, with why.
    pub skipped: Vec<(PathBuf, crate::error::Error)>,
}

/// How a [`Replica`] follows the log.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The user shard whose profiles this replica keeps (`None`: all).
    pub shard: Option<UserShard>,
    /// Publish applied entries at most this often. Default 100 ms.
    pub publish_every: Duration,
    /// Write a snapshot after this many entries (0: this replica never
    /// writes snapshots; one replica per layout is the snapshotter).
    /// Default 0.
    pub snapshot_every: u64,
    /// Snapshots kept per layout. Default 3.
    pub retention: Retention,
    /// Finishes the recommender a replica builds at start, after the
    /// snapshot's config, scorer, experiments and rules: custom sources,
    /// filters, scorers, side effects, a clock. Default none.
    pub build: Option<BuildHook>,
    /// Save the due snapshots on their own thread, from a copy of the
    /// writer, while this one goes on applying and publishing (false: on
    /// the poll thread, which then stops for the save). Default true.
    pub background_snapshots: bool,
    /// After each snapshot this replica writes, drop the log's entries
    /// older than the oldest snapshot any layout keeps
    /// ([`EventLog::trim_before`]; a [`FileLog`](super::FileLog) deletes
    /// segments, Redis runs `XTRIM`). Opt in: a log other processes read
    /// from further back must not be trimmed. Default false.
    pub trim_log: bool,
    /// Entries per read. Default 512.
    pub read_batch: usize,
    /// How long a read waits for new entries. Default 20 ms.
    pub wait: Duration,
    /// The shop this replica serves (`None`: not checked). When set, a
    /// snapshot of another shop, or one that names none, stops
    /// [`Replica::start`] with
    /// [`ErrorKind::ShopMismatch`](crate::error::ErrorKind::ShopMismatch),
    /// and a bootstrapped writer with no shop id is given this one. Default
    /// `None`.
    pub shop: Option<String>,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            shard: None,
            publish_every: Duration::from_millis(100),
            snapshot_every: 0,
            retention: Retention::default(),
            build: None,
            background_snapshots: true,
            trim_log: false,
            read_batch: 512,
            wait: Duration::from_millis(20),
            shop: None,
        }
    }
}

/// A replica's hook on its recommender builder (see
/// [`ReplicaConfig::build`]): what a service adds to every recommender it
/// builds, restarted replicas included.
///
/// ```
/// use omnifeed::live::{BuildHook, ReplicaConfig};
/// let config = ReplicaConfig {
///     build: Some(BuildHook::new(|b| b.clock(omnifeed::Clock::SignalsAsOf))),
///     ..ReplicaConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct BuildHook(
    pub  std::sync::Arc<
        dyn Fn(crate::builder::RecommenderBuilder) -> crate::builder::RecommenderBuilder
            + Send
            + Sync,
    >,
);

impl BuildHook {
    /// A hook from a function.
    pub fn new(
        f: impl Fn(crate::builder::RecommenderBuilder) -> crate::builder::RecommenderBuilder
        + Send
        + Sync
        + 'static,
    ) -> BuildHook {
        BuildHook(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for BuildHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildHook")
    }
}

/// Counts of what a replica did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Entries applied.
    pub applied: u64,
    /// Behaviour events in the applied entries.
    pub events: u64,
    /// Entries that did not decode (passed over).
    pub rejected: u64,
    /// Entries the writer refused (passed over).
    pub failed: u64,
    /// States published.
    pub publishes: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Log entries dropped after snapshots ([`ReplicaConfig::trim_log`]).
    pub trimmed: u64,
    /// The longest time from an entry's append to the publish that made it
    /// visible, in milliseconds.
    pub max_visible_delay_ms: i64,
}

/// How far a replica is behind the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Entries in the log after the last one applied.
    pub entries: u64,
    /// While behind: the age of the newest applied entry, in milliseconds
    /// (how old the replica's view is); 0 when caught up.
    pub ms: i64,
}

/// What one [`Replica::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Entries read (applied, rejected or failed).
    pub read: usize,
    /// Whether a state was published.
    pub published: bool,
}

/// One ranking replica: a writer fed by the log, and the recommender it
/// publishes to. Requests go to [`recommender`](Self::recommender) from
/// any thread while [`poll`](Self::poll) or [`run`](Self::run) follow
/// the log on one.
#[derive(Debug)]
pub struct Replica {
    log: Arc<dyn EventLog>,
    store: SnapshotStore,
    config: ReplicaConfig,
    writer: ShopWriter,
    recommender: Arc<Recommender>,
    last_publish: Instant,
    /// Append time of the oldest entry applied since the last publish.
    unpublished_since_ms: Option<i64>,
    newest_applied_ms: i64,
    since_snapshot: u64,
    /// A snapshot being saved on its own thread, from a copy of the writer.
    saving: Option<std::thread::JoinHandle<Result<SnapshotInfo>>>,
    stats: ReplicaStats,
    loaded_from: Option<PathBuf>,
    skipped_snapshots: Vec<(PathBuf, crate::error::Error)>,
}

impl Replica {
    /// Starts a replica: the newest snapshot of its layout that loads (or
    /// `bootstrap()`, the writer over the base catalog at offset 0, when
    /// the layout has none yet), restricted to `config.shard`, published
    /// into a new recommender (with the snapshot's recommender config and
    /// scorer when it has them). Call [`catch_up`](Self::catch_up) before
    /// taking traffic.
    ///
    /// Errors: snapshots exist but none loads; the snapshot (or the
    /// bootstrapped writer) is of another shop than `config.shop`
    /// (`ErrorKind::ShopMismatch`); the snapshot is ahead of the log's head
    /// (a reset log, or another shop's: `ErrorKind::Log`); `bootstrap`'s
    /// error; the recommender's build errors.
    pub fn start(
        log: Arc<dyn EventLog>,
        store: SnapshotStore,
        config: ReplicaConfig,
        bootstrap: impl FnOnce() -> Result<ShopWriter>,
    ) -> Result<Replica> {
        let (mut writer, loaded_from, skipped_snapshots) = match store.load_newest(config.shard)? {
            Some(l) => (l.writer, Some(l.from), l.skipped),
            None => (bootstrap()?, None, Vec::new()),
        };
        if let Some(shop) = &config.shop {
            if loaded_from.is_none() && writer.shop_id().is_none() {
                writer.set_shop_id(shop)?;
            }
            let from = loaded_from.clone().unwrap_or_else(|| store.dir(config.shard));
            writer.expect_shop(&from, shop)?;
        }
        writer.set_user_shard(config.shard);
        let mut builder = Recommender::builder().state(writer.publish()?);
        if let Some(c) = writer.recommender_config() {
            builder = builder.config(c.clone());
        }
        if let Some(t) = writer.trees() {
            builder = builder.scorer(Box::new(t.clone()));
        } else if let Some(s) = writer.scorer() {
            builder = builder.scorer(Box::new(s));
        }
        if let Some(e) = writer.experiments() {
            builder = builder.experiments(e.to_vec());
        }
        if let Some(r) = writer.rules() {
            builder = builder.rules(r.clone());
        }
        if let Some(hook) = &config.build {
            builder = (hook.0)(builder);
        }
        let recommender = Arc::new(builder.build()?);
        let replica = Replica {
            log,
            store,
            config,
            writer,
            recommender,
            last_publish: Instant::now(),
            unpublished_since_ms: None,
            newest_applied_ms: 0,
            since_snapshot: 0,
            saving: None,
            stats: ReplicaStats::default(),
            loaded_from,
            skipped_snapshots,
        };
        replica.check_head(replica.log.head()?)?;
        Ok(replica)
    }

    /// The recommender this replica publishes to (share it with request
    /// threads).
    pub fn recommender(&self) -> &Arc<Recommender> {
        &self.recommender
    }

    /// The writer (its offset, catalog and store).
    pub fn writer(&self) -> &ShopWriter {
        &self.writer
    }

    /// The offset of the last entry applied or passed over (0 before any).
    pub fn offset(&self) -> u64 {
        self.writer.offset().unwrap_or(0)
    }

    /// What this replica did since it started.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// The snapshot directory it started from (`None`: bootstrapped).
    pub fn loaded_from(&self) -> Option<&Path> {
        self.loaded_from.as_deref()
    }

    /// Newer snapshots that did not load at start, with why.
    pub fn skipped_snapshots(&self) -> &[(PathBuf, crate::error::Error)] {
        &self.skipped_snapshots
    }

    /// How far behind the log this replica is (asks the log for its head),
    /// also as a `tracing` debug event. With the `metrics` feature it sets
    /// the gauges
    /// `omnifeed_replica_lag_entries` and `omnifeed_replica_lag_seconds`,
    /// which [`poll`](Self::poll) keeps current.
    ///
    /// Errors: the log unreachable.
    pub fn lag(&self) -> Result<Lag> {
        let head = self.log.head()?;
        self.check_head(head)?;
        let entries = head - self.offset();
        let ms = if entries == 0 { 0 } else { (now_ms() - self.newest_applied_ms).max(0) };
        let lag = Lag { entries, ms };
        tracing::debug!(offset = self.offset(), entries, ms, "replica lag");
        #[cfg(feature = "metrics")]
        record_lag(lag);
        Ok(lag)
    }

    /// Reads one batch after the current offset (waiting up to
    /// `config.wait` when there is none), applies it in offset order,
    /// publishes when `config.publish_every` has passed since the last
    /// publish, and writes a snapshot when one is due.
    ///
    /// Errors: the log unreachable or gapped; a failed publish or snapshot
    /// (the entries stay applied; the next poll tries again).
    pub fn poll(&mut self) -> Result<Polled> {
        let batch = self.log.read(self.offset(), self.config.read_batch, self.config.wait)?;
        let read = batch.records.len() + batch.rejected.len();
        if read == 0 {
            // Nothing after our offset: fine if the log ends there, not if
            // it ends before it (a reset log, or another one).
            self.check_head(self.log.head()?)?;
        }
        // Every entry of the batch is applied or passed over, so the offset
        // reaches `batch.last`.
        self.apply_in_order(batch.records, batch.rejected);
        let due = self.last_publish.elapsed() >= self.config.publish_every;
        let published = self.unpublished_since_ms.is_some() && due;
        if published {
            self.publish()?;
        }
        self.reap_snapshot(false)?;
        if self.config.snapshot_every > 0
            && self.since_snapshot >= self.config.snapshot_every
            && self.saving.is_none()
        {
            if self.config.background_snapshots {
                self.start_snapshot()?;
            } else {
                self.snapshot()?;
            }
        }
        // The lag gauges follow every poll: a short batch means caught up;
        // after a full one the log's head is asked (one round trip).
        #[cfg(feature = "metrics")]
        if read < self.config.read_batch.max(1) {
            record_lag(Lag::default());
        } else {
            self.lag()?;
        }
        Ok(Polled { read, published })
    }

    /// A replica ahead of its log's head follows a log that was reset or is
    /// another one: it must stop, not report lag 0 and wait forever.
    fn check_head(&self, head: u64) -> Result<()> {
        if self.offset() > head {
            return Err(Error::log(
                self.log.id(),
                format!(
                    "the replica is at offset {} but the log's head is {head}: the log was \
                     reset or is another shop's; start from a snapshot of this log or bootstrap",
                    self.offset()
                ),
            ));
        }
        Ok(())
    }

    /// Applies records and passes over rejected entries, merged by offset.
    fn apply_in_order(&mut self, records: Vec<LogRecord>, rejected: Vec<Rejected>) {
        let mut rejected = rejected.into_iter().peekable();
        for r in records {
            while let Some(bad) = rejected.next_if(|b| b.offset < r.offset) {
                self.pass_over(&bad);
            }
            self.apply_record(&r);
        }
        for bad in rejected {
            self.pass_over(&bad);
        }
    }

    fn pass_over(&mut self, bad: &Rejected) {
        tracing::warn!(offset = bad.offset, reason = %bad.reason, "log entry rejected");
        #[cfg(feature = "metrics")]
        metrics::counter!("omnifeed_log_rejected_total").increment(1);
        self.stats.rejected += 1;
        self.writer.skip(bad.offset);
    }

    fn apply_record(&mut self, r: &LogRecord) {
        match self.writer.apply(r.offset, &r.entry) {
            Ok(Applied::Duplicate) => return,
            Ok(applied) => {
                self.stats.applied += 1;
                match applied {
                    Applied::Events(report) => self.stats.events += report.events,
                    Applied::Rules => self.serve_service_change(r.offset, true),
                    Applied::Experiments => self.serve_service_change(r.offset, false),
                    _ => {}
                }
            }
            Err(e) => {
                tracing::warn!(offset = r.offset, error = %e, "log entry refused by the writer");
                self.stats.failed += 1;
                self.writer.skip(r.offset);
            }
        }
        self.since_snapshot += 1;
        self.newest_applied_ms = r.appended_ms;
        self.unpublished_since_ms.get_or_insert(r.appended_ms);
    }

    /// Puts the writer's rules and experiments in force on the recommender
    /// after a [`LogEntry::Rules`](super::LogEntry::Rules) (`rules`) or
    /// [`LogEntry::Experiments`](super::LogEntry::Experiments) entry. The
    /// state is published first, so rules that name a product a delta
    /// before them listed find it. One the recommender refuses (an id no
    /// stage of this replica has) is counted as failed and warned about;
    /// what was in force stays.
    fn serve_service_change(&mut self, offset: u64, rules: bool) {
        let mut done = self.publish();
        if done.is_ok() {
            done = match (rules, self.writer.rules(), self.writer.experiments()) {
                (true, Some(r), _) => self.recommender.set_rules(r),
                (false, _, Some(e)) => self.recommender.set_experiments(e.to_vec()),
                _ => Ok(()),
            };
        }
        if let Err(e) = done {
            tracing::warn!(offset, error = %e, "rules or experiments refused by the recommender");
            self.stats.failed += 1;
        }
    }

    /// Publishes what was applied into the recommender now.
    ///
    /// Errors: as [`ShopWriter::publish`].
    pub fn publish(&mut self) -> Result<()> {
        self.writer.publish_to(&self.recommender)?;
        if let Some(since) = self.unpublished_since_ms.take() {
            let delay = (now_ms() - since).max(0);
            self.stats.max_visible_delay_ms = self.stats.max_visible_delay_ms.max(delay);
        }
        self.stats.publishes += 1;
        self.last_publish = Instant::now();
        Ok(())
    }

    /// Writes a snapshot of the current state into the layout's directory,
    /// now, on this thread (after any save in flight). The saves
    /// [`poll`](Self::poll) starts every `snapshot_every` entries run on
    /// their own thread instead, from a copy of the writer
    /// ([`ShopWriter::snapshot_copy`]), so applying and publishing go on
    /// meanwhile.
    ///
    /// Errors: as [`SnapshotStore::save`].
    pub fn snapshot(&mut self) -> Result<SnapshotInfo> {
        self.reap_snapshot(true)?;
        let info = self.store.save(&mut self.writer, self.config.shard, self.config.retention)?;
        self.since_snapshot = 0;
        self.saved()?;
        Ok(info)
    }

    /// Starts a save of the current state on its own thread.
    fn start_snapshot(&mut self) -> Result<()> {
        let mut copy = self.writer.snapshot_copy();
        let (store, shard, retention) =
            (self.store.clone(), self.config.shard, self.config.retention);
        let handle = std::thread::Builder::new()
            .name("omnifeed-snapshot".into())
            .spawn(move || store.save(&mut copy, shard, retention))
            .map_err(|e| Error::io(self.store.dir(self.config.shard), e))?;
        self.saving = Some(handle);
        self.since_snapshot = 0;
        Ok(())
    }

    /// Collects the save in flight if it finished (or waits for it when
    /// `wait`). A failed save is returned as the error, and the next poll
    /// tries again.
    fn reap_snapshot(&mut self, wait: bool) -> Result<()> {
        let Some(handle) = self.saving.take_if(|h| wait || h.is_finished()) else {
            return Ok(());
        };
        let saved = handle
            .join()
            .unwrap_or_else(|_| Err(Error::log(self.log.id(), "the snapshot thread panicked")));
        match saved {
            Ok(_) => self.saved(),
            Err(e) => {
                self.since_snapshot = self.since_snapshot.max(self.config.snapshot_every);
                Err(e)
            }
        }
    }

    /// Counts a snapshot written and trims the log behind the oldest one
    /// kept, when asked to.
    fn saved(&mut self) -> Result<()> {
        self.stats.snapshots += 1;
        if self.config.trim_log
            && let Some(oldest) = self.store.oldest_offset()?
        {
            // The offset comes from a directory name: it must not wrap.
            let before = oldest.saturating_add(1);
            let dropped = self.log.trim_before(before)?;
            self.stats.trimmed += dropped;
            if dropped > 0 {
                tracing::info!(log = %self.log.id(), before, dropped, "log trimmed");
            }
        }
        Ok(())
    }

    /// Polls until the offset reaches the log's head as of the call (or
    /// `timeout` passes), then publishes and waits for a snapshot being
    /// saved. Returns the offset reached.
    ///
    /// Errors: as [`poll`](Self::poll), and the log's head unreachable.
    pub fn catch_up(&mut self, timeout: Duration) -> Result<u64> {
        let target = self.log.head()?;
        self.check_head(target)?;
        let start = Instant::now();
        while self.offset() < target && start.elapsed() < timeout {
            self.poll()?;
        }
        if self.unpublished_since_ms.is_some() {
            self.publish()?;
        }
        self.reap_snapshot(true)?;
        Ok(self.offset())
    }

    /// Polls until `stop` is set, then publishes what was applied and waits
    /// for a snapshot being saved.
    ///
    /// Errors: the first error of [`poll`](Self::poll) (the log stayed
    /// unreachable past its retries).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll()?;
        }
        if self.unpublished_since_ms.is_some() {
            self.publish()?;
        }
        self.reap_snapshot(true)
    }
}

impl Drop for Replica {
    /// Lets a save in flight finish (a process killed outright leaves a
    /// partial snapshot, which the next start passes over).
    fn drop(&mut self) {
        if let Some(h) = self.saving.take() {
            let _ = h.join();
        }
    }
}

/// Sets the lag gauges.
#[cfg(feature = "metrics")]
fn record_lag(lag: Lag) {
    metrics::gauge!("omnifeed_replica_lag_entries").set(lag.entries as f64);
    metrics::gauge!("omnifeed_replica_lag_seconds").set(lag.ms as f64 / 1000.0);
}
