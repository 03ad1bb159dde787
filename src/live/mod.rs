//! The living shop: one writer applies an ordered log of events, catalog
//! deltas and governance actions, publishes serving states cheaply, and
//! saves and restores the whole state as a snapshot. Past one process,
//! [`Replica`]s follow a shared [`EventLog`] ([`MemoryLog`], or `RedisLog`
//! with the `redis` feature) from the newest snapshot in a
//! [`SnapshotStore`] (ARCHITECTURE.md, "Deployment").
//!
//! ```text
//!   log entries (offset 1, 2, 3, ...)         readers (any thread)
//!        │                                        │
//!        ▼                                        ▼
//!   ShopWriter::apply ──publish──▶ ArcSwap<ServingState> ──▶ Recommender
//!     catalog.apply(deltas)  → Catalog v+1 (rows stable, tombstones)
//!     index.updated(...)     → index v+1 (touched lists / exact segment)
//!     store.follow / ingest  → counters, profiles (copy-on-write chunks)
//!     save(dir) ─▶ snapshot-<offset>/ + CURRENT      load(dir) + tail
//! ```
//!
//! Every entry carries an offset; the writer applies entries in offset
//! order and skips any at or below the last applied one, so a log replayed
//! from a snapshot's offset, or delivered twice, applies each entry once.

#[cfg(unix)]
mod file_log;
mod log;
#[cfg(feature = "redis")]
mod redis_log;
mod replica;
mod snapshot;

#[cfg(unix)]
pub use file_log::{FileLog, FileLogConfig, Fsync, OpenReport};
pub use log::{
    ENTRY_VERSION, EventLog, LogBatch, LogRecord, LogSink, MAX_ENTRY_BYTES, MemoryLog, Rejected,
    check_append, decode_batch, decode_entry, encode_entry, now_ms,
};
#[cfg(feature = "redis")]
pub use redis_log::{RedisLog, RedisLogConfig};
pub use replica::{
    BuildHook, Lag, Loaded, Polled, Replica, ReplicaConfig, ReplicaStats, SnapshotStore,
};
pub use snapshot::{FORMAT_VERSION, Retention, SnapshotInfo, SnapshotIo, StdIo};

use crate::catalog::{Catalog, CatalogChanges, CatalogDelta};
use crate::error::{Error, Result};
use crate::ids::{ItemIdx, MerchantId, ProductId};
use crate::index::IndexConfig;
use crate::index::VectorIndex;
use crate::recommender::Recommender;
use crate::signals::{Event, IngestReport, SignalConfig, SignalStore};
use crate::state::ServingState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One entry of the shop's ordered log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEntry {
    /// Behaviour events, applied in order.
    Events(Vec<Event>),
    /// A batch of catalog changes, applied whole or not at all.
    Delta(Vec<CatalogDelta>),
    /// A product flagged (or unflagged) by hand.
    Flag {
        /// The product.
        product: ProductId,
        /// Flagged or cleared.
        flagged: bool,
    },
    /// A merchant suspended (or its manual suspension lifted).
    Suspend {
        /// The merchant.
        merchant: MerchantId,
        /// Suspended or lifted.
        suspended: bool,
    },
    /// Served feeds as ranked (see [`exposure`](crate::exposure)), appended
    /// by a [`LogSink`]. Applying one changes no state: a writer counts it.
    Exposures(crate::exposure::ExposureBatch),
    /// Business rules put in force on every replica that applies the entry
    /// ([`Recommender::set_rules`]) and carried by later snapshots: a
    /// runtime rule change that survives restarts and reaches every
    /// process. Held in the log as the rules' JSON text.
    Rules(#[serde(with = "json_text")] crate::business::BusinessRules),
    /// A/B experiments put in force (an empty list ends them), as
    /// [`Recommender::set_experiments`], on every replica and in later
    /// snapshots. Held in the log as JSON text.
    Experiments(#[serde(with = "json_text")] Vec<crate::experiment::Experiment>),
}

/// A field kept as its JSON text inside a log entry: the rules' and
/// experiments' serde forms are the config file's (a variant's `config` is
/// an open table), which the log's positional encoding cannot hold.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

    pub(super) fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        text.serialize(s)
    }

    pub(super) fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// What [`ShopWriter::apply`] did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The entry's offset was at or below the last applied one: skipped.
    Duplicate,
    /// Events: what ingest counted (bad events are counted, never fatal).
    Events(IngestReport),
    /// A delta: what it changed.
    Delta(CatalogChanges),
    /// A flag or a suspension.
    Governance,
    /// Exposures: how many (they change no state).
    Exposures(usize),
    /// Business rules, now the writer's ([`rules`](ShopWriter::rules)).
    Rules,
    /// Experiments, now the writer's ([`experiments`](ShopWriter::experiments)).
    Experiments,
}

/// The single writer of a living shop: applies the log, publishes states.
///
/// What it promises a service, and what it refuses:
/// - **Events.** An event older than the newest applied minus
///   [`SignalConfig::lateness`], outside the time window, of an unknown id
///   or with a bad value is rejected, counted in the entry's report, warned
///   about through `tracing` and (feature `metrics`) counted in
///   `omnifeed_events_rejected_total{reason}`;
///   [`set_strict_events`](Self::set_strict_events) makes such an entry an
///   error with nothing applied. Sort a log exported per user by time first
///   ([`load::sort_by_time`](crate::load::sort_by_time)).
/// - **Deltas.** A batch applies whole or not; its cost is linear in its
///   length (links, unlinks and re-embedded rows included).
/// - **Snapshots.** Each is tied to one identity (the shop id of
///   [`set_shop_id`](Self::set_shop_id), the catalog fingerprint, offset,
///   version and save time): a spliced file, another shop's file
///   ([`load_expecting`](Self::load_expecting),
///   [`load_for_shop`](Self::load_for_shop)) or a corrupt one is a typed
///   error, never a served state.
///
/// ```
/// # #[cfg(feature = "synth")] {
/// use omnifeed::live::{LogEntry, ShopWriter};
/// use omnifeed::{synth, CatalogDelta, FeedRequest, Recommender, SignalConfig};
/// use omnifeed::index::IndexConfig;
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let mut writer = ShopWriter::new(world.catalog.clone(), SignalConfig::default(), IndexConfig::default())?;
/// writer.apply(1, &LogEntry::Events(world.events.clone()))?;
/// let rec = Recommender::builder().state(writer.publish()?).build()?;
/// let gone = world.catalog.product_ids()[0];
/// writer.apply(2, &LogEntry::Delta(vec![CatalogDelta::Delist { product: gone }]))?;
/// writer.publish_to(&rec)?;
/// let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(50))?;
/// assert!(feed.items.iter().all(|i| i.product != gone));
/// assert_eq!(writer.offset(), Some(2));
/// # }
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug)]
pub struct ShopWriter {
    catalog: Arc<Catalog>,
    index: Arc<dyn VectorIndex>,
    index_config: IndexConfig,
    store: SignalStore,
    /// The last state published (or the first, built at start).
    published: Option<ServingState>,
    /// Titles changed since the last publish.
    retitled: Vec<ItemIdx>,
    catalog_changed: bool,
    /// Rows re-embedded since a rebuild started (to replay onto it).
    since_rebuild: Option<Vec<ItemIdx>>,
    offset: Option<u64>,
    /// The version the first publish gets (a restart continues the
    /// numbering of the states published before it).
    pub(crate) first_version: u64,
    /// Saved with snapshots for the ranking side.
    pub(crate) recommender_config: Option<crate::config::RecommenderConfig>,
    pub(crate) scorer: Option<Vec<f32>>,
    /// Saved with snapshots: the A/B experiments and business rules a
    /// replica started from them serves with.
    pub(crate) experiments: Option<Vec<crate::experiment::Experiment>>,
    pub(crate) rules: Option<crate::business::BusinessRules>,
    /// Saved with snapshots: boosted trees the ranking side scores with
    /// instead of `scorer`.
    pub(crate) trees: Option<crate::rank::TreeScorer>,
    /// An events entry with any event ingest would reject is an error.
    strict_events: bool,
    /// The shop this writer's snapshots belong to (see
    /// [`set_shop_id`](Self::set_shop_id)).
    pub(crate) shop_id: Option<String>,
    /// A caller's analyzer for the title index (`None`: the built-in one
    /// `index_config.text` describes).
    analyzer: Option<Arc<dyn crate::index::Analyzer>>,
    /// Joins the log's exposures with its later events, if on.
    pub(crate) labels: Option<crate::exposure::LabelJoiner>,
    /// Examples joined and not taken yet.
    examples: Vec<crate::exposure::TrainingExample>,
    /// Learns the heads online from the joined examples, if on.
    pub(crate) online: Option<crate::exposure::OnlineLearner>,
}

impl ShopWriter {
    /// A writer over a built catalog: builds the index (by `index`) and an
    /// empty signal store.
    ///
    /// Errors: an invalid signal or index config.
    pub fn new(catalog: Catalog, signals: SignalConfig, index: IndexConfig) -> Result<ShopWriter> {
        let catalog = Arc::new(catalog);
        let store = SignalStore::new(Arc::clone(&catalog), signals)?;
        let built = build_index(&index, &catalog)?;
        Ok(ShopWriter::from_parts(catalog, built, index, store, None))
    }

    pub(crate) fn from_parts(
        catalog: Arc<Catalog>,
        index: Arc<dyn VectorIndex>,
        index_config: IndexConfig,
        store: SignalStore,
        offset: Option<u64>,
    ) -> ShopWriter {
        ShopWriter {
            catalog,
            index,
            index_config,
            store,
            published: None,
            retitled: Vec::new(),
            catalog_changed: false,
            since_rebuild: None,
            offset,
            recommender_config: None,
            experiments: None,
            rules: None,
            scorer: None,
            trees: None,
            first_version: 0,
            strict_events: false,
            shop_id: None,
            analyzer: None,
            labels: None,
            examples: Vec::new(),
            online: None,
        }
    }

    /// Joins the exposures this writer applies (entries a
    /// [`LogSink`] appended) with the same users' later events into
    /// training examples, labelled within `windows` (see
    /// [`LabelJoiner`](crate::exposure::LabelJoiner)); take them with
    /// [`take_examples`](Self::take_examples). Pending examples are saved
    /// with snapshots (a writer loaded from one goes on joining them).
    ///
    /// Errors: an invalid window.
    pub fn join_labels(&mut self, windows: crate::exposure::LabelWindows) -> Result<()> {
        self.labels = Some(crate::exposure::LabelJoiner::new(windows)?);
        Ok(())
    }

    /// The training examples emitted since the last call (none unless
    /// [`join_labels`](Self::join_labels) is on).
    pub fn take_examples(&mut self) -> Vec<crate::exposure::TrainingExample> {
        std::mem::take(&mut self.examples)
    }

    /// Learns the ranker's logistic heads online from the joined examples
    /// as their labels mature (FTRL-Proximal from `base`, the offline heads:
    /// [`OnlineLearner`](crate::exposure::OnlineLearner)); every
    /// [`publish`](Self::publish) carries the current heads in the state
    /// ([`ServingState::online_heads`]), and snapshots keep the learner.
    ///
    /// Errors: labels are not joined ([`join_labels`](Self::join_labels)
    /// first), an invalid config or base.
    pub fn learn_online(
        &mut self,
        base: &crate::rank::LogisticScorer,
        config: crate::exposure::OnlineConfig,
    ) -> Result<()> {
        if self.labels.is_none() {
            return Err(Error::invalid_config("online", "learning online needs join_labels first"));
        }
        self.online = Some(crate::exposure::OnlineLearner::new(base.matrix(), config)?);
        Ok(())
    }

    /// The online learner, if on.
    pub fn online(&self) -> Option<&crate::exposure::OnlineLearner> {
        self.online.as_ref()
    }

    /// Moves what the joiner emitted into the examples to take, the
    /// complete ones through the online learner first, in order.
    fn collect_joined(&mut self) {
        let Some(j) = &mut self.labels else { return };
        let new = j.take();
        if let Some(l) = &mut self.online {
            let before = l.rolled_back().is_some();
            l.learn(&new);
            if let (false, Some(why)) = (before, l.rolled_back()) {
                tracing::warn!(reason = why, "online learning rolled back to the frozen heads");
                #[cfg(feature = "metrics")]
                metrics::counter!("omnifeed_online_rollbacks_total").increment(1);
            }
        }
        self.examples.extend(new);
    }

    /// Makes an events entry with any event the store would reject (too
    /// late, outside the time window, an unknown id, a bad value) an error
    /// naming the first one, with nothing of the entry applied and the
    /// offset where it was; for a producer that must never lose an event
    /// quietly. Off by default: rejections are counted in
    /// [`Applied::Events`]'s report, warned about through `tracing` (the
    /// 1st, 10th, 100th, ... of each kind) and, with the `metrics` feature,
    /// counted in `omnifeed_events_rejected_total{reason}`.
    ///
    /// Lateness: an event older than the newest one applied minus
    /// [`SignalConfig::lateness`] is rejected as too late. A log exported
    /// per user rather than in time order loses most of its events that
    /// way; sort it first ([`load::sort_by_time`](crate::load::sort_by_time)).
    pub fn set_strict_events(&mut self, strict: bool) {
        self.strict_events = strict;
    }

    /// Names the shop this writer serves. The id is saved in every snapshot's
    /// identity, with the catalog's fingerprint, and every section's checksum
    /// is keyed by that identity: a section spliced in from another shop's
    /// (or another) snapshot fails to load, and
    /// [`load_expecting`](Self::load_expecting) and a replica configured with
    /// [`ReplicaConfig::shop`](crate::live::ReplicaConfig::shop) refuse a snapshot of another shop.
    ///
    /// Errors: an empty id, one over [`MAX_SHOP_ID_BYTES`], or one with a
    /// control character
    /// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
    pub fn set_shop_id(&mut self, id: &str) -> Result<()> {
        check_shop_id(id)?;
        self.shop_id = Some(id.to_string());
        Ok(())
    }

    /// The shop id saved with (or loaded from) snapshots; `None` until set
    /// (and for a snapshot saved before format 2).
    pub fn shop_id(&self) -> Option<&str> {
        self.shop_id.as_deref()
    }

    /// Makes `analyzer` the title index's (titles and queries), in place of
    /// the built-in one the index config's `text` settings describe; it
    /// takes effect at the next publish (a published title index is rebuilt
    /// with it). Snapshots do not hold a caller's analyzer: set it again
    /// after a load.
    pub fn set_analyzer(&mut self, analyzer: Arc<dyn crate::index::Analyzer>) {
        if let Some(prev) = self.published.take() {
            self.published = Some(prev.with_analyzer(Arc::clone(&analyzer)));
        }
        self.analyzer = Some(analyzer);
    }

    /// The version the next [`publish`](Self::publish) gives its state.
    pub fn next_version(&self) -> u64 {
        self.published.as_ref().map_or(self.first_version, |p| p.version() + 1)
    }

    /// Keeps a recommender config in the writer's snapshots.
    pub fn set_recommender_config(&mut self, config: crate::config::RecommenderConfig) {
        self.recommender_config = Some(config);
    }

    /// The recommender config saved with (or loaded from) snapshots.
    pub fn recommender_config(&self) -> Option<&crate::config::RecommenderConfig> {
        self.recommender_config.as_ref()
    }

    /// Keeps the A/B experiments in the writer's snapshots: a replica
    /// started from one serves them (the same user, the same variant).
    pub fn set_experiments(&mut self, experiments: Vec<crate::experiment::Experiment>) {
        self.experiments = Some(experiments);
    }

    /// The experiments saved with (or loaded from) snapshots.
    pub fn experiments(&self) -> Option<&[crate::experiment::Experiment]> {
        self.experiments.as_deref()
    }

    /// Keeps the business rules, as written, in the writer's snapshots: a
    /// replica started from one serves them. A service that changes its
    /// rules while serving ([`Recommender::set_rules`]) sets them here too,
    /// so the next snapshot carries them.
    pub fn set_rules(&mut self, rules: crate::business::BusinessRules) {
        self.rules = Some(rules);
    }

    /// The business rules saved with (or loaded from) snapshots.
    pub fn rules(&self) -> Option<&crate::business::BusinessRules> {
        self.rules.as_ref()
    }

    /// Keeps the ranking model's weights in the writer's snapshots.
    pub fn set_scorer(&mut self, scorer: &crate::rank::scorer::LogisticScorer) {
        self.scorer = Some(scorer.matrix().to_vec());
    }

    /// The scorer saved with (or loaded from) snapshots.
    pub fn scorer(&self) -> Option<crate::rank::scorer::LogisticScorer> {
        self.scorer.clone().and_then(|w| crate::rank::scorer::LogisticScorer::from_matrix(w).ok())
    }

    /// Keeps a tree ranker (learned by
    /// [`train_ranker`](crate::train::train_ranker) with
    /// [`trees`](crate::train::RankerTrainConfig::trees), or loaded from
    /// LightGBM or XGBoost) in the writer's snapshots; replicas started
    /// from them score with it. `None` drops it (the logistic
    /// [`scorer`](Self::scorer) serves again).
    pub fn set_trees(&mut self, trees: Option<crate::rank::TreeScorer>) {
        self.trees = trees;
    }

    /// The tree ranker saved with (or loaded from) snapshots.
    pub fn trees(&self) -> Option<&crate::rank::TreeScorer> {
        self.trees.as_ref()
    }

    /// The offset of the last applied entry (`None` before the first).
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The catalog as of the last applied entry (perhaps not published).
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The index as of the last applied entry.
    pub fn index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
    }

    /// The signal store.
    pub fn store(&self) -> &SignalStore {
        &self.store
    }

    /// The index config rebuilds use.
    pub fn index_config(&self) -> &IndexConfig {
        &self.index_config
    }

    /// Applies the entry at `offset`: entries at or below the last applied
    /// offset are skipped ([`Applied::Duplicate`]), so at-least-once
    /// delivery applies each entry once. Readers see nothing until
    /// [`publish`](Self::publish).
    ///
    /// Errors (the entry is not applied and the offset does not move, so
    /// it can be fixed and resent): a delta [`Catalog::apply`] rejects, a
    /// flag or suspension of an unknown id, rules that do not compile or
    /// name an unknown or delisted product, experiments the writer's
    /// recommender config does not accept, and with
    /// [`set_strict_events`](Self::set_strict_events) an events entry with an
    /// event the store would reject.
    pub fn apply(&mut self, offset: u64, entry: &LogEntry) -> Result<Applied> {
        if self.offset.is_some_and(|o| offset <= o) {
            return Ok(Applied::Duplicate);
        }
        let applied = match entry {
            LogEntry::Events(events) => {
                if self.strict_events
                    && let Some((i, r)) = self.store.first_rejection(events)
                {
                    let at = format_args!("event {i} of the entry at offset {offset}");
                    return Err(Error::invalid_value("log entry events", at, r.to_string()));
                }
                if let Some(j) = &mut self.labels {
                    j.add_events(events);
                }
                self.collect_joined();
                Applied::Events(self.store.ingest_batch(events))
            }
            LogEntry::Delta(deltas) => match self.apply_delta(deltas) {
                Ok(changes) => Applied::Delta(changes),
                Err(e) => {
                    tracing::warn!(offset, deltas = deltas.len(), error = %e, "catalog delta refused");
                    #[cfg(feature = "metrics")]
                    metrics::counter!("omnifeed_deltas_refused_total").increment(1);
                    return Err(e);
                }
            },
            LogEntry::Flag { product, flagged } => {
                self.store.flag_product(*product, *flagged)?;
                Applied::Governance
            }
            LogEntry::Suspend { merchant, suspended } => {
                self.store.suspend_merchant(*merchant, *suspended)?;
                Applied::Governance
            }
            LogEntry::Exposures(batch) => {
                if let Some(j) = &mut self.labels {
                    j.add_exposures(batch);
                }
                self.collect_joined();
                Applied::Exposures(batch.exposures.len())
            }
            LogEntry::Rules(rules) => {
                rules.compile_for(&self.catalog)?;
                self.rules = Some(rules.clone());
                Applied::Rules
            }
            LogEntry::Experiments(experiments) => {
                let base = self.recommender_config.clone().unwrap_or_default();
                crate::experiment::validate_all(experiments, &base)?;
                self.experiments = Some(experiments.clone());
                Applied::Experiments
            }
        };
        self.offset = Some(offset);
        Ok(applied)
    }

    fn apply_delta(&mut self, deltas: &[CatalogDelta]) -> Result<CatalogChanges> {
        let (next, changes) = self.catalog.apply(deltas)?;
        let next = Arc::new(next);
        let index = self.index.updated(&next, &changes.embedded)?;
        // Profiles changed so far are finalized against the vectors they
        // engaged with, before any vector changes: finalizing is then a
        // function of the log alone, not of when publishes happened, so a
        // restart from a snapshot replays to the same profiles.
        if !changes.embedded.is_empty() {
            self.store.finalize_profiles();
        }
        // Nothing fails after this point: the three parts move together.
        self.store.follow(Arc::clone(&next))?;
        self.index = index;
        self.catalog = next;
        self.retitled.extend_from_slice(&changes.retitled);
        self.catalog_changed = true;
        if let Some(rows) = &mut self.since_rebuild {
            rows.extend_from_slice(&changes.embedded);
        }
        Ok(changes)
    }

    /// Publishes the state as of the last applied entry: the signals are
    /// derived again; the catalog's structures are shared when no delta
    /// came since the last publish, else updated for the rows that changed.
    ///
    /// Errors: none in practice (the parts are kept consistent); the
    /// checks of [`ServingState::new`] still run.
    pub fn publish(&mut self) -> Result<ServingState> {
        let started = std::time::Instant::now();
        let catalog_changed = self.catalog_changed;
        let signals = Arc::new(self.store.publish());
        let state = match &self.published {
            None => {
                let analyzer = self.analyzer.clone().unwrap_or_else(|| {
                    Arc::new(crate::index::TextAnalyzer::new(self.index_config.text))
                });
                ServingState::new_text(
                    Arc::clone(&self.catalog),
                    Arc::clone(&self.index),
                    signals,
                    analyzer,
                    self.index_config.fields,
                )?
            }
            Some(prev) if !self.catalog_changed && Arc::ptr_eq(&prev.index, &self.index) => {
                prev.with_signals(signals)?
            }
            Some(prev) => {
                let mut changes = CatalogChanges::default();
                self.retitled.sort_unstable();
                self.retitled.dedup();
                changes.retitled = std::mem::take(&mut self.retitled);
                prev.with_delta(
                    Arc::clone(&self.catalog),
                    Arc::clone(&self.index),
                    signals,
                    &changes,
                )?
            }
        };
        // A learner its guard rolled back publishes nothing: the frozen
        // heads serve everyone.
        let (online, holdback) = match &self.online {
            Some(l) if l.rolled_back().is_none() => (
                Some(Arc::new(crate::rank::LogisticScorer::from_matrix(l.weights())?)),
                l.config().guard.holdback,
            ),
            _ => (None, 0.0),
        };
        let state = state.with_online_heads(online, holdback);
        self.catalog_changed = false;
        self.published = Some(state.clone());
        let took = started.elapsed();
        tracing::debug!(
            version = state.version(),
            offset = self.offset,
            catalog_changed,
            ms = took.as_secs_f64() * 1e3,
            "state published"
        );
        #[cfg(feature = "metrics")]
        {
            metrics::histogram!("omnifeed_publish_seconds").record(took.as_secs_f64());
            metrics::gauge!("omnifeed_state_version").set(state.version() as f64);
        }
        Ok(state)
    }

    /// [`publish`](Self::publish)es and swaps the state into `rec`:
    /// requests running finish on the old state, later ones see this one.
    pub fn publish_to(&mut self, rec: &Recommender) -> Result<u64> {
        let state = self.publish()?;
        let version = state.version();
        rec.swap_state(state);
        Ok(version)
    }

    /// Starts an index rebuild off the serving path: the job holds the
    /// current catalog; [`IndexRebuild::build`] can run on another thread
    /// while the writer goes on applying entries, and
    /// [`finish_rebuild`](Self::finish_rebuild) swaps the result in with
    /// the vectors that changed meanwhile. A rebuild compacts the index
    /// (IVF lists re-trained, HNSW's exact segment folded into the graph);
    /// catalog rows stay as they are.
    pub fn start_rebuild(&mut self) -> IndexRebuild {
        self.since_rebuild = Some(Vec::new());
        IndexRebuild { catalog: Arc::clone(&self.catalog), config: self.index_config.clone() }
    }

    /// Takes a rebuilt index in (see [`start_rebuild`](Self::start_rebuild)).
    ///
    /// Errors: the job was not started by this writer's last
    /// `start_rebuild`, or the index cannot take the changes made since.
    pub fn finish_rebuild(&mut self, built: RebuiltIndex) -> Result<()> {
        let Some(mut rows) = self.since_rebuild.take() else {
            return Err(Error::invalid_config("rebuild", "no rebuild was started"));
        };
        rows.sort_unstable();
        rows.dedup();
        let index = if Arc::ptr_eq(&built.catalog, &self.catalog) {
            built.index
        } else {
            built.index.updated(&self.catalog, &rows)?
        };
        self.index = index;
        self.catalog_changed = true;
        Ok(())
    }

    /// Saves the whole state under `dir` through `io` as a snapshot (format
    /// and protocol in `ARCHITECTURE.md`, "The living shop"), makes it
    /// current and applies `retention`. Returns what was written.
    ///
    /// Errors: a failed write, fsync or rename ([`ErrorKind::Io`](crate::error::ErrorKind::Io));
    /// the snapshot `CURRENT` named before stays current.
    pub fn save_with(
        &mut self,
        dir: &std::path::Path,
        io: &dyn SnapshotIo,
        retention: Retention,
    ) -> Result<SnapshotInfo> {
        self.store.finalize_profiles();
        snapshot::save(self, dir, io, retention)
    }

    /// [`save_with`](Self::save_with) on the local file system, keeping the
    /// default number of snapshots.
    pub fn save(&mut self, dir: impl AsRef<std::path::Path>) -> Result<SnapshotInfo> {
        self.save_with(dir.as_ref(), &StdIo, Retention::default())
    }

    /// Loads the current snapshot under `dir`; the log is then replayed from
    /// [`offset`](Self::offset) + 1.
    ///
    /// Errors: no snapshot, or a corrupt, truncated or foreign one
    /// ([`ErrorKind::Snapshot`](crate::error::ErrorKind::Snapshot),
    /// [`ErrorKind::SnapshotVersion`](crate::error::ErrorKind::SnapshotVersion)).
    pub fn load(dir: impl AsRef<std::path::Path>) -> Result<ShopWriter> {
        snapshot::load(dir.as_ref())
    }

    /// [`load`](Self::load), checking that the snapshot is of shop `shop`
    /// (the id its writer was given with [`set_shop_id`](Self::set_shop_id))
    /// and that its embeddings have dimension `dim` (the one the service's
    /// models and queries use). A snapshot of another shop, or one that
    /// names no shop, is refused instead of served.
    ///
    /// Errors: as `load`; another shop or none
    /// ([`ErrorKind::ShopMismatch`](crate::error::ErrorKind::ShopMismatch)
    /// naming both); another dimension
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch)
    /// naming both).
    pub fn load_expecting(
        dir: impl AsRef<std::path::Path>,
        shop: &str,
        dim: usize,
    ) -> Result<ShopWriter> {
        let w = Self::load(dir.as_ref())?;
        w.expect_shop(dir.as_ref(), shop)?;
        if w.catalog.dim() != dim {
            return Err(Error::dimension("snapshot embeddings", dim, w.catalog.dim()));
        }
        Ok(w)
    }

    /// Checks that this writer (loaded from `path`) is of shop `shop`.
    pub(crate) fn expect_shop(&self, path: &std::path::Path, shop: &str) -> Result<()> {
        if self.shop_id.as_deref() == Some(shop) {
            return Ok(());
        }
        Err(Error::new(crate::error::ErrorKind::ShopMismatch {
            path: path.to_path_buf(),
            expected: shop.to_string(),
            found: self.shop_id.clone(),
        }))
    }

    /// [`load`](Self::load), checking that the snapshot is of the shop whose
    /// base catalog is `base`: the same dimension, and the same product at
    /// every row of `base` (rows are stable: a shop's later catalogs only
    /// append rows). A snapshot of another shop with the same dimension is
    /// refused instead of served. After a compaction
    /// ([`Catalog::to_builder`](crate::catalog::Catalog::to_builder)) renumbers
    /// rows, the compacted catalog is the base to check against.
    ///
    /// Errors: as `load`; another dimension
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch));
    /// another shop ([`ErrorKind::CatalogMismatch`](crate::error::ErrorKind::CatalogMismatch),
    /// part `snapshot catalog`).
    pub fn load_for_shop(dir: impl AsRef<std::path::Path>, base: &Catalog) -> Result<ShopWriter> {
        let w = Self::load(dir)?;
        if w.catalog.dim() != base.dim() {
            return Err(Error::dimension("snapshot embeddings", base.dim(), w.catalog.dim()));
        }
        if !w.catalog.extends(base) {
            return Err(Error::new(crate::error::ErrorKind::CatalogMismatch {
                part: "snapshot catalog",
                expected: base.fingerprint(),
                got: w.catalog.fingerprint(),
            }));
        }
        Ok(w)
    }

    /// Records the entry at `offset` as passed over without applying it (an
    /// entry no reader could decode, or one [`apply`](Self::apply)
    /// rejected: every replica of the log does the same, so they stay
    /// equal). Offsets at or below the current one change nothing.
    pub fn skip(&mut self, offset: u64) {
        if self.offset.is_none_or(|o| offset > o) {
            self.offset = Some(offset);
        }
    }

    /// Keeps profiles only for `shard`'s users (see
    /// [`SignalStore::set_user_shard`]).
    pub fn set_user_shard(&mut self, shard: Option<crate::signals::UserShard>) {
        self.store.set_user_shard(shard);
    }

    pub(crate) fn parts(&self) -> (&Arc<Catalog>, &Arc<dyn VectorIndex>, &SignalStore) {
        (&self.catalog, &self.index, &self.store)
    }

    /// A copy of what a snapshot saves, cheap to make: the catalog and the
    /// index are shared, the signal store's tables are copy-on-write, and
    /// the pending label joins are copied. A save can then run on another
    /// thread while this writer goes on applying entries
    /// ([`Replica`] saves that way). The copy saves the snapshot this writer
    /// would save now; it is not for applying entries (it has no published
    /// state, and the examples not taken stay here).
    pub fn snapshot_copy(&self) -> ShopWriter {
        ShopWriter {
            catalog: Arc::clone(&self.catalog),
            index: Arc::clone(&self.index),
            index_config: self.index_config.clone(),
            store: self.store.clone(),
            published: None,
            retitled: Vec::new(),
            catalog_changed: self.catalog_changed,
            since_rebuild: None,
            offset: self.offset,
            first_version: self.next_version(),
            recommender_config: self.recommender_config.clone(),
            experiments: self.experiments.clone(),
            rules: self.rules.clone(),
            scorer: self.scorer.clone(),
            trees: self.trees.clone(),
            strict_events: self.strict_events,
            shop_id: self.shop_id.clone(),
            analyzer: self.analyzer.clone(),
            labels: self.labels.clone(),
            examples: Vec::new(),
            online: self.online.clone(),
        }
    }
}

/// The longest shop id [`ShopWriter::set_shop_id`] takes, in bytes.
pub const MAX_SHOP_ID_BYTES: usize = 128;

/// A shop id is 1 to [`MAX_SHOP_ID_BYTES`] bytes with no control character.
pub(crate) fn check_shop_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "is empty"
    } else if id.len() > MAX_SHOP_ID_BYTES {
        "is longer than 128 bytes"
    } else if id.chars().any(char::is_control) {
        "holds a control character"
    } else {
        return Ok(());
    };
    Err(Error::invalid_value("shop id", format!("{id:?}"), reason))
}

/// An index rebuild job (see [`ShopWriter::start_rebuild`]); `Send`, so it
/// can run on another thread.
#[derive(Debug)]
pub struct IndexRebuild {
    catalog: Arc<Catalog>,
    config: IndexConfig,
}

/// A rebuilt index, for [`ShopWriter::finish_rebuild`].
#[derive(Debug)]
pub struct RebuiltIndex {
    catalog: Arc<Catalog>,
    index: Arc<dyn VectorIndex>,
}

impl IndexRebuild {
    /// Builds the index over the job's catalog (the slow part).
    ///
    /// Errors: as the index's build.
    pub fn build(self) -> Result<RebuiltIndex> {
        let index = build_index(&self.config, &self.catalog)?;
        Ok(RebuiltIndex { catalog: self.catalog, index })
    }
}

/// Builds the configured index over `catalog`, skipping its tombstones.
pub(crate) fn build_index(config: &IndexConfig, catalog: &Catalog) -> Result<Arc<dyn VectorIndex>> {
    let index = config.build(catalog.shared_embeddings())?;
    if catalog.delisted_len() == 0 { Ok(index) } else { index.updated(catalog, &[]) }
}
