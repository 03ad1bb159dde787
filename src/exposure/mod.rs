//! Exposure logging: what was served, as it was ranked.
//!
//! A model can only learn from what users saw. Every served feed that the
//! sampler keeps becomes an [`Exposure`]: the request (id, user, surface,
//! A/B variant, state version, time) and per item its product, position,
//! content, the sources that found it with their ranks, the feature row
//! and the heads as the ranker saw them, its fused score and the
//! probability of its placement (1 for the deterministic feed).
//!
//! The [`ExposureRecorder`] is an inline [`SideEffect`]: on the request's
//! thread, once the feed is built, it copies the rows into a few flat
//! vectors, hands them to a bounded buffer without waiting and counts what
//! a full buffer drops; one thread writes batches to an
//! [`ExposureSink`]. [`MemorySink`] keeps the latest batches in memory;
//! `live::LogSink` appends them to an [`EventLog`](crate::live::EventLog)
//! (a Redis stream, a file log) as [`LogEntry::Exposures`](crate::live::LogEntry::Exposures).
//!
//! Encoding: a batch writes each distinct list of column names (feature
//! and head names) once, and its exposures name their list by index; the
//! rows are plain `f32`s in those columns' order. postcard on the log.
//!
//! ```
//! # #[cfg(feature = "synth")] {
//! use omnifeed::exposure::{ExposureConfig, MemorySink};
//! use omnifeed::{FeedRequest, Recommender};
//! use std::sync::Arc;
//! # let world = omnifeed::synth::generate(&omnifeed::synth::SynthConfig::tiny())?;
//! # let catalog = Arc::new(world.catalog.clone());
//! # let (signals, _) = omnifeed::Signals::from_events(Arc::clone(&catalog), &world.events, &Default::default())?;
//! # let index = Arc::new(omnifeed::index::ExactIndex::for_catalog(&catalog));
//! # let state = omnifeed::ServingState::new(catalog, index, Arc::new(signals))?;
//! let sink = Arc::new(MemorySink::new(1_000));
//! let config = ExposureConfig { sample_rate: 1.0, ..ExposureConfig::default() };
//! let rec = Recommender::builder().state(state).exposures(config, sink.clone()).build()?;
//! let user = world.users[0].id;
//! let feed = rec.recommend(&FeedRequest::new(user).id(42).at(world.events.last().unwrap().at))?;
//! rec.flush_exposures();
//! let batches = sink.take();
//! let e = &batches[0].exposures[0];
//! assert_eq!((e.request_id, e.items.len()), (42, feed.items.len()));
//! let columns = batches[0].columns_of(e).unwrap();
//! assert_eq!(columns.features.len(), e.features_of(0).len());
//! # }
//! # Ok::<(), omnifeed::Error>(())
//! ```

mod labels;
mod online;
pub(crate) use labels::JoinerRecord;
pub use labels::{
    Label, LabelJoiner, LabelWindows, MAX_WINDOW, OUTCOMES, TrainingExample, read_examples_csv,
    write_examples_csv,
};
pub use online::{
    ArmStats, GuardMetric, OnlineConfig, OnlineGuard, OnlineLearner, OnlineReport, held_back,
};

use crate::error::{Error, Result};
use crate::features::{FEATURE_NAMES, HEAD_NAMES};
use crate::ids::{ContentId, ProductId, Timestamp, UserId};
use crate::request::{Feed, FeedRequest, SourceHit, Surface};
use crate::stage::{RankedRows, RequestContext, SideEffect};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How exposures are sampled, buffered and batched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExposureConfig {
    /// The share of requests recorded, in `[0, 1]`. A request with an
    /// [`id`](FeedRequest::id) is kept or not by its id (the same id, the
    /// same choice). Default 1: every request (its cost on a Feed request
    /// is in BENCHMARKS.md, "Exposure log").
    pub sample_rate: f64,
    /// Exposures the buffer holds before it drops (counted); the writer
    /// thread holds at most as many more while it writes. Default 4,096.
    pub buffer: usize,
    /// Exposures per batch written to the sink. Default 256.
    pub batch: usize,
    /// The longest a recorded exposure waits for its batch to fill before
    /// it is written anyway, in milliseconds. Default 200.
    pub linger_ms: u64,
}

impl Default for ExposureConfig {
    fn default() -> Self {
        ExposureConfig { sample_rate: 1.0, buffer: 4096, batch: 256, linger_ms: 200 }
    }
}

impl ExposureConfig {
    /// Checks the rate is in `[0, 1]` and the sizes are at least 1.
    ///
    /// Errors: the first that is not
    /// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(Error::invalid_config(
                "exposures.sample_rate",
                format!("{} is not in [0, 1]", self.sample_rate),
            ));
        }
        if self.buffer == 0 || self.batch == 0 {
            return Err(Error::invalid_config("exposures.buffer", "buffer and batch must be >= 1"));
        }
        Ok(())
    }
}

/// The names of the columns of an exposure's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    /// Feature names, in row order.
    pub features: Vec<String>,
    /// Head names (the scorer's outputs), in order.
    pub heads: Vec<String>,
}

impl Columns {
    /// True if the feature columns are this build's ranking features
    /// ([`FEATURE_NAMES`], in order): rows a scorer of this build reads as
    /// they are.
    pub fn is_current_schema(&self) -> bool {
        self.features.iter().map(String::as_str).eq(crate::features::FEATURE_NAMES)
    }
}

/// One served feed as it was ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// The request's id ([`FeedRequest::id`], or one the recorder gave it).
    pub request_id: u64,
    /// The user served.
    pub user: UserId,
    /// The surface.
    pub surface: Surface,
    /// The A/B variant, `experiment/variant` (`None`: the control).
    pub variant: Option<String>,
    /// The serving state's version.
    pub state_version: u64,
    /// The time served for (Unix seconds).
    pub at: Timestamp,
    /// Which of its batch's [`ExposureBatch::columns`] name the rows.
    pub columns: u32,
    /// The items, in the order shown.
    pub items: Vec<ExposedItem>,
    /// The ids of the sources that found any item (the items'
    /// [`SourceRank::source`] index them).
    pub source_names: Vec<String>,
    /// Every item's source hits, item after item
    /// ([`ExposedItem::sources`] is its range).
    pub sources: Vec<SourceRank>,
    /// The feature rows, item after item, each in the columns' order.
    pub features: Vec<f32>,
    /// The heads, item after item, each in the columns' order.
    pub heads: Vec<f32>,
}

impl Exposure {
    /// Item `i`'s feature row (empty past the last item).
    pub fn features_of(&self, i: usize) -> &[f32] {
        row(&self.features, self.items.len(), i)
    }

    /// Item `i`'s heads (empty past the last item).
    pub fn heads_of(&self, i: usize) -> &[f32] {
        row(&self.heads, self.items.len(), i)
    }

    /// Item `i`'s source hits, with the sources' ids.
    pub fn sources_of(&self, i: usize) -> impl Iterator<Item = (&str, &SourceRank)> {
        let range = self.items.get(i).map_or(0..0, |it| {
            let (a, b) = (it.sources.start as usize, it.sources.end as usize);
            a.min(self.sources.len())..b.min(self.sources.len())
        });
        self.sources[range]
            .iter()
            .map(|s| (self.source_names.get(usize::from(s.source)).map_or("", String::as_str), s))
    }
}

/// Row `i` of `n` equal rows laid end to end in `flat`.
fn row(flat: &[f32], n: usize, i: usize) -> &[f32] {
    if n == 0 || i >= n {
        return &[];
    }
    let w = flat.len() / n;
    &flat[i * w..(i + 1) * w]
}

/// One item of a served feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExposedItem {
    /// The product.
    pub product: ProductId,
    /// Its position, 0 first.
    pub position: u32,
    /// The content it was shown with, if any, and whether it was live.
    pub content: Option<(ContentId, bool)>,
    /// Its fused score.
    pub score: f32,
    /// The probability that the policy placed it here (1 for a
    /// deterministic placement).
    pub propensity: f32,
    /// Its hits in the exposure's [`sources`](Exposure::sources).
    pub sources: std::ops::Range<u32>,
}

/// A source's part in an exposed item.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceRank {
    /// The source: an index into the exposure's
    /// [`source_names`](Exposure::source_names).
    pub source: u8,
    /// The item's rank in it (0-based).
    pub rank: u32,
    /// The item's score in it.
    pub score: f32,
}

/// Exposures as a sink receives them: each distinct column list once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExposureBatch {
    /// The column lists the exposures name by index.
    pub columns: Vec<Columns>,
    /// The exposures, in the order recorded.
    pub exposures: Vec<Exposure>,
}

impl ExposureBatch {
    /// The columns of `e` (one of this batch's exposures).
    pub fn columns_of(&self, e: &Exposure) -> Option<&Columns> {
        self.columns.get(e.columns as usize)
    }

    /// Adds the exposure of `feed`, served for `request`, as request
    /// `request_id`: what a recorder would have written of it. An offline
    /// replay logs its feeds with this, so that training reads them as it
    /// reads production's ([`train_ranker`](crate::train::train_ranker)).
    pub fn add_feed(&mut self, request_id: u64, request: &FeedRequest, feed: &Feed) {
        self.push(recorded(request_id, request, feed, None));
    }

    /// Adds a recorded exposure, its column names written once.
    fn push(&mut self, r: Recorded) {
        let Recorded { mut exposure, features, heads, sources } = r;
        exposure.source_names = sources.iter().map(|s| s.to_string()).collect();
        let same = |c: &Columns| {
            c.features.iter().map(String::as_str).eq(features.iter().copied())
                && c.heads.iter().map(String::as_str).eq(heads.iter().copied())
        };
        let at = match self.columns.iter().position(same) {
            Some(i) => i,
            None => {
                self.columns.push(Columns {
                    features: features.iter().map(|s| s.to_string()).collect(),
                    heads: heads.iter().map(|s| s.to_string()).collect(),
                });
                self.columns.len() - 1
            }
        };
        exposure.columns = at as u32;
        self.exposures.push(exposure);
    }
}

/// Where recorded exposures go. `write` runs on the recorder's own thread,
/// never on a request's; an error is counted and the batch dropped.
pub trait ExposureSink: Send + Sync + std::fmt::Debug {
    /// A stable id.
    fn id(&self) -> &str;

    /// Writes one batch.
    ///
    /// Errors: the sink's own (I/O, a full log): the batch is lost and
    /// counted in [`ExposureStats::write_errors`].
    fn write(&self, batch: ExposureBatch) -> Result<()>;
}

/// Keeps the latest batches in memory, up to a number of exposures (the
/// oldest batches go first, counted).
#[derive(Debug)]
pub struct MemorySink {
    capacity: usize,
    held: Mutex<(VecDeque<ExposureBatch>, usize)>,
    evicted: AtomicU64,
}

impl MemorySink {
    /// A sink holding at most `capacity` exposures.
    pub fn new(capacity: usize) -> MemorySink {
        MemorySink { capacity, held: Mutex::default(), evicted: AtomicU64::new(0) }
    }

    /// Takes every batch held, oldest first.
    pub fn take(&self) -> Vec<ExposureBatch> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.1 = 0;
        held.0.drain(..).collect()
    }

    /// Exposures held now.
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// True if none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exposures evicted to stay within the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl ExposureSink for MemorySink {
    fn id(&self) -> &str {
        "memory"
    }

    fn write(&self, batch: ExposureBatch) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.1 += batch.exposures.len();
        held.0.push_back(batch);
        while held.1 > self.capacity {
            let Some(old) = held.0.pop_front() else { break };
            held.1 -= old.exposures.len();
            self.evicted.fetch_add(old.exposures.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// What a recorder did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExposureStats {
    /// Requests the sampler kept.
    pub sampled: u64,
    /// Requests the sampler passed over.
    pub skipped: u64,
    /// Exposures dropped because the buffer was full.
    pub dropped: u64,
    /// Exposures written to the sink.
    pub written: u64,
    /// Exposures lost to sink errors.
    pub write_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sampled: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
}

/// A recorded exposure with its column names, on the way to a batch.
struct Recorded {
    exposure: Exposure,
    /// The column names: the schema's own (no copy) when read from ranked
    /// rows, collected from the explanations otherwise.
    features: Cow<'static, [&'static str]>,
    heads: Cow<'static, [&'static str]>,
    sources: Vec<&'static str>,
}

/// The records on their way to the writer thread, shared with it. The
/// lock is held only to push a record or take them all, never while
/// writing, so a request waits at most for another's push.
#[derive(Default)]
struct Buffer {
    pending: Mutex<Pending>,
    /// Wakes the writer: a batch is full, a flush is asked, or the end.
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    records: Vec<Recorded>,
    /// Flushes asked for since the writer last took the records.
    flushes: Vec<SyncSender<()>>,
    closed: bool,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Buffer")
    }
}

/// Records served feeds into an [`ExposureSink`] (see the module docs).
/// Installed by [`RecommenderBuilder::exposures`](crate::builder::RecommenderBuilder::exposures).
#[derive(Debug)]
pub struct ExposureRecorder {
    config: ExposureConfig,
    sink: Arc<dyn ExposureSink>,
    buffer: Arc<Buffer>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    counters: Arc<Counters>,
    /// Ids for requests that bring none: a start from the clock, counted up.
    next_id: AtomicU64,
    /// Sampling of requests without an id.
    ticket: AtomicU64,
}

impl ExposureRecorder {
    /// A recorder writing to `sink`, with its writer thread started.
    ///
    /// Errors: an invalid config ([`ExposureConfig::validate`]) or a thread
    /// that cannot start ([`ErrorKind::Io`](crate::error::ErrorKind::Io)).
    pub fn new(config: ExposureConfig, sink: Arc<dyn ExposureSink>) -> Result<ExposureRecorder> {
        config.validate()?;
        let buffer = Arc::new(Buffer::default());
        let counters = Arc::new(Counters::default());
        let worker = {
            let (sink, counters, buffer) =
                (Arc::clone(&sink), Arc::clone(&counters), Arc::clone(&buffer));
            std::thread::Builder::new()
                .name("omnifeed-exposures".into())
                .spawn(move || write_loop(&buffer, &*sink, &counters, config))
                .map_err(|e| Error::io("omnifeed-exposures thread", e))?
        };
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(ExposureRecorder {
            config,
            sink,
            buffer,
            worker: Mutex::new(Some(worker)),
            counters,
            next_id: AtomicU64::new(start),
            ticket: AtomicU64::new(0),
        })
    }

    /// The config.
    pub fn config(&self) -> ExposureConfig {
        self.config
    }

    /// The sink.
    pub fn sink(&self) -> &Arc<dyn ExposureSink> {
        &self.sink
    }

    /// What it did so far.
    pub fn stats(&self) -> ExposureStats {
        let c = &self.counters;
        ExposureStats {
            sampled: c.sampled.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
        }
    }

    /// Waits until every exposure recorded before the call is written (or
    /// dropped). Side effects run on the rayon pool after the response, so
    /// a feed served just before may still be on its way:
    /// [`Recommender::flush_exposures`](crate::recommender::Recommender::flush_exposures)
    /// waits for both.
    pub fn flush(&self) {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        {
            let mut p = self.buffer.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.closed {
                return;
            }
            p.flushes.push(ack);
        }
        self.buffer.wake.notify_one();
        let _ = done.recv();
    }

    /// True if the sampler keeps a request with id `id` (or, without one,
    /// the next ticket).
    fn keep(&self, id: Option<u64>) -> bool {
        let rate = self.config.sample_rate;
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let key = id.unwrap_or_else(|| self.ticket.fetch_add(1, Ordering::Relaxed));
        (mix(key) >> 11) as f64 / (1u64 << 53) as f64 <= rate
    }

    /// The exposure of `feed`, served for `request`, read from the items'
    /// `rows`, or from their explanations without them.
    fn record(
        &self,
        request: &FeedRequest,
        feed: &Feed,
        rows: Option<&dyn RankedRows>,
    ) -> Recorded {
        let request_id = request.id.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        recorded(request_id, request, feed, rows)
    }

    /// Hands `record` to the writer, or counts it dropped when the buffer
    /// is full or closed.
    fn hand_over(&self, record: Recorded) {
        let full = {
            let mut p = self.buffer.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.records.len() >= self.config.buffer || p.closed {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            p.records.push(record);
            p.records.len() == self.config.batch
        };
        // Wake the writer once per full batch; otherwise it comes by
        // itself every `linger_ms`.
        if full {
            self.buffer.wake.notify_one();
        }
    }
}

/// The exposure of `feed`, served for `request` as request `request_id`: a
/// few flat vectors, whatever the number of items. Sources, features and
/// heads come from the items' ranked `rows` when given (what the
/// recommender's recorder reads, so that no explanation is built for it),
/// else from the items' explanations; the two hold the same values.
fn recorded(
    request_id: u64,
    request: &FeedRequest,
    feed: &Feed,
    rows: Option<&dyn RankedRows>,
) -> Recorded {
    let first = feed.items.first().map(|i| &i.explanation);
    type Names = Cow<'static, [&'static str]>;
    let (features, heads): (Names, Names) = match (rows, first) {
        (_, None) => (Cow::Borrowed(&[]), Cow::Borrowed(&[])),
        (Some(_), Some(_)) => (Cow::Borrowed(&FEATURE_NAMES), Cow::Borrowed(&HEAD_NAMES)),
        (None, Some(e)) => {
            (e.features.iter().map(|f| f.name).collect(), e.heads.iter().map(|h| h.name).collect())
        }
    };
    let n = feed.items.len();
    let mut exposure = Exposure {
        request_id,
        user: request.user,
        surface: feed.trace.surface,
        variant: feed.trace.variant.clone(),
        state_version: feed.trace.state_version,
        at: feed.trace.at,
        columns: 0,
        items: Vec::with_capacity(n),
        source_names: Vec::new(),
        sources: Vec::with_capacity(n * 2),
        features: Vec::with_capacity(n * features.len()),
        heads: Vec::with_capacity(n * heads.len()),
    };
    let mut names: Vec<&'static str> = Vec::new();
    for (pos, item) in feed.items.iter().enumerate() {
        let e = &item.explanation;
        let start = exposure.sources.len() as u32;
        let mut add = |hit: SourceHit| {
            let source = match names.iter().position(|&s| s == hit.source) {
                Some(k) => k,
                None => {
                    names.push(hit.source);
                    names.len() - 1
                }
            };
            let source = source.min(usize::from(u8::MAX)) as u8;
            exposure.sources.push(SourceRank { source, rank: hit.rank, score: hit.score });
        };
        match rows {
            Some(r) => r.sources(pos, &mut add),
            None => e.sources.iter().for_each(|&h| add(h)),
        }
        // Every row has the first item's columns (one schema per feed).
        let row = |vals: &mut Vec<f32>, w: usize, it: &mut dyn Iterator<Item = f32>| {
            let before = vals.len();
            vals.extend(it.take(w));
            vals.resize(before + w, 0.0);
        };
        let (fw, hw) = (features.len(), heads.len());
        match rows {
            Some(r) => {
                row(&mut exposure.features, fw, &mut r.features(pos).iter().copied());
                row(&mut exposure.heads, hw, &mut r.heads(pos).iter().copied());
            }
            None => {
                row(&mut exposure.features, fw, &mut e.features.iter().map(|f| f.value));
                row(&mut exposure.heads, hw, &mut e.heads.iter().map(|h| h.value));
            }
        }
        exposure.items.push(ExposedItem {
            product: item.product,
            position: pos as u32,
            content: item.content.map(|c| (c, item.live)),
            score: item.score,
            propensity: item.propensity,
            sources: start..exposure.sources.len() as u32,
        });
    }
    Recorded { exposure, features, heads, sources: names }
}

impl SideEffect for ExposureRecorder {
    fn id(&self) -> &'static str {
        "exposures"
    }

    /// The sampler: a request passed over costs a counter.
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let keep = self.keep(ctx.request.id);
        let c = if keep { &self.counters.sampled } else { &self.counters.skipped };
        c.fetch_add(1, Ordering::Relaxed);
        keep
    }

    /// Runs on the request's thread: it copies the feed's rows into a few
    /// flat vectors and hands them to the buffer without waiting, which
    /// costs less than the copy of the whole feed a spawned effect needs.
    fn inline(&self) -> bool {
        true
    }

    /// Records from the items' explanations (a caller's own feed).
    fn run(&self, request: &FeedRequest, feed: &Feed) {
        self.hand_over(self.record(request, feed, None));
    }

    /// It reads the ranked rows, so a request that asks for no
    /// explanations builds none for it.
    fn reads_explanations(&self) -> bool {
        false
    }

    /// Records from the items' ranked rows, the values their explanations
    /// would hold.
    fn run_ranked(&self, request: &FeedRequest, feed: &Feed, rows: &dyn RankedRows) {
        self.hand_over(self.record(request, feed, Some(rows)));
    }
}

impl Drop for ExposureRecorder {
    /// Writes what is buffered, then stops the writer thread.
    fn drop(&mut self) {
        self.buffer.pending.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.buffer.wake.notify_one();
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: takes what is buffered when a batch is full, a flush
/// is asked, `linger_ms` passed or the recorder closes, and writes it in
/// batches of up to `config.batch`.
fn write_loop(buffer: &Buffer, sink: &dyn ExposureSink, c: &Counters, config: ExposureConfig) {
    let linger = Duration::from_millis(config.linger_ms.max(1));
    let write = |batch: ExposureBatch| {
        let n = batch.exposures.len() as u64;
        if n == 0 {
            return;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.write(batch))) {
            Ok(Ok(())) => c.written.fetch_add(n, Ordering::Relaxed),
            Ok(Err(e)) => {
                tracing::warn!(sink = sink.id(), error = %e, lost = n, "exposure batch not written");
                c.write_errors.fetch_add(n, Ordering::Relaxed)
            }
            Err(_) => c.write_errors.fetch_add(n, Ordering::Relaxed),
        };
    };
    loop {
        let (records, flushes, closed) = {
            let mut p = buffer.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.records.len() < config.batch && p.flushes.is_empty() && !p.closed {
                p = buffer.wake.wait_timeout(p, linger).unwrap_or_else(|p| p.into_inner()).0;
            }
            (std::mem::take(&mut p.records), std::mem::take(&mut p.flushes), p.closed)
        };
        let mut batch = ExposureBatch::default();
        for r in records {
            batch.push(r);
            if batch.exposures.len() >= config.batch {
                write(std::mem::take(&mut batch));
            }
        }
        write(batch);
        for ack in flushes {
            let _ = ack.send(());
        }
        if closed {
            return;
        }
    }
}

/// SplitMix64's finalizer: a request id to a uniform 64-bit number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
