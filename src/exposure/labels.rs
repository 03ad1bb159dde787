//! Labels with delayed feedback: exposures joined with the same user's
//! later events on the same product.
//!
//! Each outcome (click, cart, order, refund) has its own window after the
//! exposure ([`LabelWindows`]). An event inside a window makes that label
//! positive for the user's latest exposure of the product at or before the
//! event (last touch). A label is negative only once its window has closed
//! without one. Time is the log's: the newest event or exposure time seen,
//! so a replay labels as the live shop did.
//!
//! An example is emitted ([`LabelJoiner::take`]) when its click window
//! closes; again when a later label turns positive (a late conversion);
//! and a last time, [`TrainingExample::complete`], when its longest window
//! closes. A consumer keeps the last row per `(request_id, position)`.
//! Pending exposures are held until their longest window closes: the
//! joiner's memory is the exposures of that long.

use super::{Columns, ExposureBatch};
use crate::error::{Error, Result};
use crate::ids::{ProductId, Timestamp, UserId};
use crate::request::Surface;
use crate::signals::{Event, EventKind, Target};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// The outcomes labelled, in label order.
pub const OUTCOMES: [&str; 4] = ["click", "cart", "order", "refund"];

/// The first columns of [`write_examples_csv`]'s file, before the
/// outcomes and `complete`.
const EXAMPLE_IDENTITY: [&str; 10] = [
    "request_id",
    "position",
    "user",
    "product",
    "surface",
    "variant",
    "state_version",
    "at",
    "propensity",
    "score",
];

/// The longest label window: 100 years of seconds.
pub const MAX_WINDOW: i64 = 100 * 366 * 86_400;

/// How long after an exposure each outcome counts for it, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelWindows {
    /// Default one hour.
    pub click: i64,
    /// Default one day.
    pub cart: i64,
    /// Default three days.
    pub order: i64,
    /// Default seven days.
    pub refund: i64,
}

impl Default for LabelWindows {
    fn default() -> Self {
        LabelWindows { click: 3_600, cart: 86_400, order: 3 * 86_400, refund: 7 * 86_400 }
    }
}

impl LabelWindows {
    /// The windows in [`OUTCOMES`] order.
    pub fn as_array(&self) -> [i64; 4] {
        [self.click, self.cart, self.order, self.refund]
    }

    /// Every outcome counted for `seconds` after its exposure: a replay of
    /// a historical log labels its exposures with the whole label period.
    pub fn all(seconds: i64) -> LabelWindows {
        LabelWindows { click: seconds, cart: seconds, order: seconds, refund: seconds }
    }

    /// Checks every window is at least one second and at most 100 years
    /// (a replay of a long log labels over all of it,
    /// [`all`](Self::all)).
    ///
    /// Errors: the first that is not
    /// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn validate(&self) -> Result<()> {
        for (name, w) in OUTCOMES.iter().zip(self.as_array()) {
            if !(1..=MAX_WINDOW).contains(&w) {
                return Err(Error::invalid_config_at(
                    "labels",
                    format!("labels.{name}"),
                    format!("{w} s is not between 1 s and 100 years"),
                ));
            }
        }
        Ok(())
    }
}

/// One label's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Label {
    /// Its window is open and nothing happened yet.
    #[default]
    Open,
    /// It happened inside its window.
    Yes,
    /// Its window closed without it.
    No,
}

impl Label {
    /// `1`, `0`, or empty while open: how the CSV export writes it.
    pub fn csv(self) -> &'static str {
        match self {
            Label::Open => "",
            Label::Yes => "1",
            Label::No => "0",
        }
    }
}

/// One exposed item with its labels: a training example, with the features
/// as they were served.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingExample {
    /// The request's id.
    pub request_id: u64,
    /// The item's position.
    pub position: u32,
    /// The user.
    pub user: UserId,
    /// The product.
    pub product: ProductId,
    /// The surface.
    pub surface: Surface,
    /// The A/B variant (`None`: the control).
    pub variant: Option<String>,
    /// The serving state's version.
    pub state_version: u64,
    /// When it was served.
    pub at: Timestamp,
    /// The placement's probability.
    pub propensity: f32,
    /// The fused score it was served with.
    pub score: f32,
    /// Click, cart, order and refund ([`OUTCOMES`] order).
    pub labels: [Label; 4],
    /// True once every window has closed: these labels are final.
    pub complete: bool,
    /// The feature row as served.
    pub features: Vec<f32>,
    /// The heads as served.
    pub heads: Vec<f32>,
    /// The names of `features` and `heads`.
    pub columns: Arc<Columns>,
}

/// A [`TrainingExample`] in a snapshot: its columns an index into the
/// joiner's list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExampleRecord {
    request_id: u64,
    position: u32,
    user: UserId,
    product: ProductId,
    surface: Surface,
    variant: Option<String>,
    state_version: u64,
    at: Timestamp,
    propensity: f32,
    score: f32,
    labels: [Label; 4],
    complete: bool,
    features: Vec<f32>,
    heads: Vec<f32>,
    columns: u32,
}

impl ExampleRecord {
    fn of(e: &TrainingExample, columns: &[Arc<Columns>]) -> ExampleRecord {
        let at = columns.iter().position(|c| Arc::ptr_eq(c, &e.columns) || **c == *e.columns);
        ExampleRecord {
            request_id: e.request_id,
            position: e.position,
            user: e.user,
            product: e.product,
            surface: e.surface,
            variant: e.variant.clone(),
            state_version: e.state_version,
            at: e.at,
            propensity: e.propensity,
            score: e.score,
            labels: e.labels,
            complete: e.complete,
            features: e.features.clone(),
            heads: e.heads.clone(),
            columns: at.unwrap_or(usize::MAX) as u32,
        }
    }

    fn into_example(self, columns: Arc<Columns>) -> TrainingExample {
        TrainingExample {
            request_id: self.request_id,
            position: self.position,
            user: self.user,
            product: self.product,
            surface: self.surface,
            variant: self.variant,
            state_version: self.state_version,
            at: self.at,
            propensity: self.propensity,
            score: self.score,
            labels: self.labels,
            complete: self.complete,
            features: self.features,
            heads: self.heads,
            columns,
        }
    }
}

/// What a snapshot keeps of a [`LabelJoiner`] (see `to_record`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinerRecord {
    windows: [i64; 4],
    columns: Vec<Columns>,
    slots: Vec<Option<(ExampleRecord, bool)>>,
    free: Vec<usize>,
    by_key: Vec<((UserId, ProductId), Vec<usize>)>,
    now: Timestamp,
    out: Vec<ExampleRecord>,
}

/// A pending example and whether it was emitted yet.
#[derive(Debug, Clone)]
struct Pending {
    example: TrainingExample,
    emitted: bool,
}

/// Joins exposures with later events into training examples (see the
/// module docs).
///
/// ```
/// use omnifeed::exposure::{Label, LabelJoiner, LabelWindows};
/// use omnifeed::signals::{Event, EventKind, Target};
/// # use omnifeed::exposure::{ExposureBatch, Exposure, ExposedItem, Columns};
/// # use omnifeed::{ProductId, Surface, UserId};
/// # let item = |p: u64, pos: u32| ExposedItem { product: ProductId(p), position: pos, content: None, score: 1.0, propensity: 1.0, sources: 0..0 };
/// # let batch = ExposureBatch { columns: vec![Columns { features: vec!["f".into()], heads: vec![] }],
/// #     exposures: vec![Exposure { request_id: 7, user: UserId(1), surface: Surface::Feed, variant: None,
/// #     state_version: 0, at: 1_000, columns: 0, items: vec![item(10, 0), item(11, 1)],
/// #     source_names: vec![], sources: vec![], features: vec![0.5, 0.25], heads: vec![] }] };
/// let mut join = LabelJoiner::new(LabelWindows { click: 60, cart: 600, order: 600, refund: 600 })?;
/// join.add_exposures(&batch); // request 7 showed products 10 and 11 at t = 1,000
/// let click = Event::new(1_030, UserId(1), Target::Product(ProductId(10)), EventKind::Click);
/// join.add_events(&[click]);
/// join.advance(1_061); // the click window closed
/// let rows = join.take();
/// assert_eq!(rows.len(), 2);
/// assert_eq!((rows[0].product, rows[0].labels[0]), (ProductId(10), Label::Yes));
/// assert_eq!((rows[1].product, rows[1].labels[0]), (ProductId(11), Label::No));
/// assert_eq!(rows[0].labels[2], Label::Open); // the order window is still open
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LabelJoiner {
    windows: [i64; 4],
    longest: i64,
    /// Pending examples; `None` slots are free.
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    /// Per (user, product), its pending slots in exposure-time order.
    by_key: HashMap<(UserId, ProductId), Vec<usize>>,
    /// (when, slot, outcome): a window closing; outcome 4 is completion.
    closing: BinaryHeap<Reverse<(Timestamp, usize, u8)>>,
    now: Timestamp,
    out: Vec<TrainingExample>,
    columns: Vec<Arc<Columns>>,
}

impl LabelJoiner {
    /// A joiner with these windows.
    ///
    /// Errors: an invalid window ([`LabelWindows::validate`]).
    pub fn new(windows: LabelWindows) -> Result<LabelJoiner> {
        windows.validate()?;
        let w = windows.as_array();
        Ok(LabelJoiner {
            windows: w,
            longest: w.iter().copied().max().unwrap_or(0),
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            closing: BinaryHeap::new(),
            now: Timestamp::MIN,
            out: Vec::new(),
            columns: Vec::new(),
        })
    }

    /// Exposures waiting for a window to close.
    pub fn pending(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// The newest time seen (an event's or an exposure's).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Registers every item of `batch` as a pending example.
    pub fn add_exposures(&mut self, batch: &ExposureBatch) {
        for e in &batch.exposures {
            let Some(columns) = batch.columns_of(e) else { continue };
            let columns = self.intern(columns);
            for (i, item) in e.items.iter().enumerate() {
                let example = TrainingExample {
                    request_id: e.request_id,
                    position: item.position,
                    user: e.user,
                    product: item.product,
                    surface: e.surface,
                    variant: e.variant.clone(),
                    state_version: e.state_version,
                    at: e.at,
                    propensity: item.propensity,
                    score: item.score,
                    labels: [Label::Open; 4],
                    complete: false,
                    features: e.features_of(i).to_vec(),
                    heads: e.heads_of(i).to_vec(),
                    columns: Arc::clone(&columns),
                };
                let slot = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.slots.push(None);
                        self.slots.len() - 1
                    }
                };
                self.slots[slot] = Some(Pending { example, emitted: false });
                let list = self.by_key.entry((e.user, item.product)).or_default();
                // Kept in exposure-time order (exposures arrive nearly in order).
                let at = list.partition_point(|&s| {
                    self.slots[s].as_ref().is_some_and(|p| p.example.at <= e.at)
                });
                list.insert(at, slot);
                for (k, w) in self.windows.iter().enumerate() {
                    self.closing.push(Reverse((e.at.saturating_add(*w), slot, k as u8)));
                }
                self.closing.push(Reverse((e.at.saturating_add(self.longest), slot, 4)));
            }
            self.advance(e.at);
        }
    }

    /// Labels pending examples with `events` (clicks, carts, orders and
    /// refunds of products; others pass), then moves time to the newest.
    pub fn add_events(&mut self, events: &[Event]) {
        for ev in events {
            let outcome = match ev.kind {
                EventKind::Click => 0,
                EventKind::Cart => 1,
                EventKind::Order { .. } => 2,
                EventKind::Refund => 3,
                _ => continue,
            };
            let Target::Product(product) = ev.target else { continue };
            self.label(ev.user, product, ev.at, outcome);
        }
        if let Some(t) = events.iter().map(|e| e.at).max() {
            self.advance(t);
        }
    }

    /// Labels pending examples with events read through `relevance`, for
    /// logs whose events are not the four outcomes (ratings, favourites):
    /// an event of [`Level::Click`](crate::signals::Level::Click) or above
    /// is a click, of [`Level::Engage`](crate::signals::Level::Engage) or
    /// above a cart too, of [`Level::Order`](crate::signals::Level::Order)
    /// an order too (a positive rating is an order); events without a level
    /// pass. Then moves time to the newest.
    pub fn add_levels(&mut self, events: &[Event], relevance: &crate::signals::Relevance) {
        use crate::signals::Level;
        for ev in events {
            let (Target::Product(product), Some(level)) = (ev.target, relevance.level(&ev.kind))
            else {
                continue;
            };
            let reached = [Level::Click, Level::Engage, Level::Order];
            for (outcome, l) in reached.into_iter().enumerate() {
                if level >= l {
                    self.label(ev.user, product, ev.at, outcome);
                }
            }
        }
        if let Some(t) = events.iter().map(|e| e.at).max() {
            self.advance(t);
        }
    }

    /// The user's latest exposure of `product` at or before `t` whose window
    /// for `outcome` holds `t` gets the label.
    fn label(&mut self, user: UserId, product: ProductId, t: Timestamp, outcome: usize) {
        let Some(list) = self.by_key.get(&(user, product)) else { return };
        let window = self.windows[outcome];
        let hit = list.iter().rev().copied().find(|&s| {
            self.slots[s]
                .as_ref()
                .is_some_and(|p| p.example.at <= t && t <= p.example.at.saturating_add(window))
        });
        let Some(slot) = hit else { return };
        let Some(p) = self.slots[slot].as_mut() else { return };
        if p.example.labels[outcome] == Label::Open {
            p.example.labels[outcome] = Label::Yes;
            // A late conversion updates a row already emitted.
            if p.emitted {
                self.out.push(p.example.clone());
            }
        }
    }

    /// Moves time to `now` (never back): windows that closed turn open
    /// labels negative; examples whose click window closed are emitted, and
    /// those whose every window closed are emitted complete and forgotten.
    pub fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        while let Some(&Reverse((when, slot, k))) = self.closing.peek() {
            if when >= self.now {
                break;
            }
            self.closing.pop();
            let Some(p) = self.slots[slot].as_mut() else { continue };
            if k == 4 {
                p.example.complete = true;
                self.out.push(p.example.clone());
                self.forget(slot);
                continue;
            }
            let label = &mut p.example.labels[usize::from(k)];
            if *label == Label::Open {
                *label = Label::No;
            }
            if k == 0 && !p.emitted {
                p.emitted = true;
                self.out.push(p.example.clone());
            }
        }
    }

    /// Takes the examples emitted since the last call, in emission order.
    pub fn take(&mut self) -> Vec<TrainingExample> {
        std::mem::take(&mut self.out)
    }

    fn forget(&mut self, slot: usize) {
        let Some(p) = self.slots[slot].take() else { return };
        let key = (p.example.user, p.example.product);
        if let Some(list) = self.by_key.get_mut(&key) {
            list.retain(|&s| s != slot);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
        self.free.push(slot);
    }

    /// What a snapshot keeps of the joiner: every pending example in its
    /// slot, the free slots, each key's slots in order, the time, the
    /// examples emitted and not taken. The closing windows are rebuilt.
    pub(crate) fn to_record(&self) -> JoinerRecord {
        let columns: Vec<Columns> = self.columns.iter().map(|c| (**c).clone()).collect();
        let record = |e: &TrainingExample| ExampleRecord::of(e, &self.columns);
        let mut by_key: Vec<((UserId, ProductId), Vec<usize>)> =
            self.by_key.iter().map(|(k, v)| (*k, v.clone())).collect();
        by_key.sort_unstable_by_key(|(k, _)| (k.0.0, k.1.0));
        JoinerRecord {
            windows: self.windows,
            columns,
            slots: self
                .slots
                .iter()
                .map(|s| s.as_ref().map(|p| (record(&p.example), p.emitted)))
                .collect(),
            free: self.free.clone(),
            by_key,
            now: self.now,
            out: self.out.iter().map(record).collect(),
        }
    }

    /// A joiner from a decoded record, every index checked.
    ///
    /// Errors: a window out of range, a column list or slot index out of
    /// range, a free slot in use or a key's slot empty (as
    /// [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
    pub(crate) fn from_record(r: JoinerRecord) -> Result<LabelJoiner> {
        let [click, cart, order, refund] = r.windows;
        let mut j = LabelJoiner::new(LabelWindows { click, cart, order, refund })?;
        let bad = |why: &str| Error::invalid_value("label joiner", "snapshot", why.to_string());
        j.columns = r.columns.into_iter().map(Arc::new).collect();
        let example = |e: ExampleRecord, cols: &[Arc<Columns>]| -> Result<TrainingExample> {
            let c = cols
                .get(e.columns as usize)
                .ok_or_else(|| bad("a column list index is out of range"))?;
            Ok(e.into_example(Arc::clone(c)))
        };
        for s in r.slots {
            j.slots.push(match s {
                Some((e, emitted)) => Some(Pending { example: example(e, &j.columns)?, emitted }),
                None => None,
            });
        }
        if r.free.iter().any(|&f| j.slots.get(f).is_none_or(Option::is_some)) {
            return Err(bad("a free slot is out of range or in use"));
        }
        j.free = r.free;
        for (key, list) in r.by_key {
            if list.iter().any(|&s| j.slots.get(s).is_none_or(Option::is_none)) {
                return Err(bad("a key names an empty slot"));
            }
            j.by_key.insert(key, list);
        }
        j.now = r.now;
        j.out = r.out.into_iter().map(|e| example(e, &j.columns)).collect::<Result<_>>()?;
        // The windows still to close: those not past `now` (the rest closed).
        let mut closing = Vec::new();
        for (slot, p) in j.slots.iter().enumerate() {
            let Some(p) = p else { continue };
            for (k, w) in j.windows.iter().chain([&j.longest]).enumerate() {
                let when = p.example.at.saturating_add(*w);
                if when >= j.now {
                    closing.push(Reverse((when, slot, k as u8)));
                }
            }
        }
        j.closing.extend(closing);
        Ok(j)
    }

    fn intern(&mut self, c: &Columns) -> Arc<Columns> {
        if let Some(have) = self.columns.iter().find(|have| ***have == *c) {
            return Arc::clone(have);
        }
        let c = Arc::new(c.clone());
        self.columns.push(Arc::clone(&c));
        c
    }
}

/// Writes `examples` as CSV, one row each, in the format FEATURES.md
/// documents: `request_id, position, user, product, surface, variant,
/// state_version, at, propensity, score, click, cart, order, refund,
/// complete`, then one column per feature (`f_<name>`) and head
/// (`h_<name>`). A label is `1`, `0`, or empty while its window is open.
/// pandas reads it with `pd.read_csv`; keep the last row per
/// `(request_id, position)`.
///
/// Errors: examples with different columns (a scorer or schema changed
/// between them: write them to separate files), or the writer's
/// ([`ErrorKind::Io`](crate::error::ErrorKind::Io)).
pub fn write_examples_csv<W: std::io::Write>(out: W, examples: &[TrainingExample]) -> Result<()> {
    let io = |e: csv::Error| Error::io("training examples", std::io::Error::other(e));
    let mut w = csv::Writer::from_writer(out);
    let Some(first) = examples.first() else { return w.flush().map_err(|e| io(e.into())) };
    let columns = &first.columns;
    let mut header: Vec<String> = EXAMPLE_IDENTITY
        .iter()
        .chain(OUTCOMES.iter())
        .chain(["complete"].iter())
        .map(|s| s.to_string())
        .collect();
    header.extend(columns.features.iter().map(|f| format!("f_{f}")));
    header.extend(columns.heads.iter().map(|h| format!("h_{h}")));
    w.write_record(&header).map_err(io)?;
    let mut row: Vec<String> = Vec::with_capacity(header.len());
    for (i, e) in examples.iter().enumerate() {
        if *e.columns != **columns {
            return Err(Error::invalid_value(
                "examples",
                format!("example {i}"),
                "its columns differ from the first example's: write them to another file",
            ));
        }
        row.clear();
        row.extend([
            e.request_id.to_string(),
            e.position.to_string(),
            e.user.0.to_string(),
            e.product.0.to_string(),
            e.surface.name().to_string(),
            e.variant.clone().unwrap_or_default(),
            e.state_version.to_string(),
            e.at.to_string(),
            e.propensity.to_string(),
            e.score.to_string(),
        ]);
        row.extend(e.labels.iter().map(|l| l.csv().to_string()));
        row.push(u8::from(e.complete).to_string());
        row.extend(e.features.iter().chain(&e.heads).map(|v| v.to_string()));
        w.write_record(&row).map_err(io)?;
    }
    w.flush().map_err(|e| io(e.into()))
}

/// Reads what [`write_examples_csv`] wrote: every row as a
/// [`TrainingExample`], in file order (several rows of one request and
/// position are kept; readers count the last). `source` names the input in
/// errors (a path).
///
/// Errors: a header without the fixed columns, a row that does not parse
/// (naming its line and column)
/// ([`ErrorKind::Parse`](crate::error::ErrorKind::Parse)), or the reader's.
///
/// ```
/// use omnifeed::exposure::{read_examples_csv, write_examples_csv};
/// let mut bytes = Vec::new();
/// write_examples_csv(&mut bytes, &[])?;
/// assert!(read_examples_csv(&bytes[..], "empty.csv")?.is_empty());
/// # Ok::<(), omnifeed::Error>(())
/// ```
pub fn read_examples_csv<R: std::io::Read>(input: R, source: &str) -> Result<Vec<TrainingExample>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(input);
    let mut records = r.records();
    let Some(header) = records.next() else { return Ok(Vec::new()) };
    let bad = |line: u64, why: String| Error::parse(source, Some(line), why);
    let header = header.map_err(|e| bad(1, e.to_string()))?;
    let names: Vec<&str> = header.iter().collect();
    let fixed = EXAMPLE_IDENTITY.len() + OUTCOMES.len() + 1;
    let named = |from: usize, want: &[&str]| names.get(from..from + want.len()) == Some(want);
    if !named(0, &EXAMPLE_IDENTITY)
        || !named(EXAMPLE_IDENTITY.len(), &OUTCOMES)
        || !named(fixed - 1, &["complete"])
    {
        return Err(bad(1, "not a training examples header (write_examples_csv's)".into()));
    }
    let tail = &names[fixed..];
    let prefixed = |p: &str| -> Vec<String> {
        tail.iter().filter_map(|n| n.strip_prefix(p)).map(String::from).collect()
    };
    let columns = Arc::new(Columns { features: prefixed("f_"), heads: prefixed("h_") });
    let nf = columns.features.len();
    if tail.iter().take(nf).any(|n| !n.starts_with("f_"))
        || tail.iter().skip(nf).any(|n| !n.starts_with("h_"))
    {
        return Err(bad(1, "the columns after `complete` are not f_* then h_*".into()));
    }
    let mut out = Vec::new();
    for (i, row) in records.enumerate() {
        let line = i as u64 + 2;
        let row = row.map_err(|e| bad(line, e.to_string()))?;
        if row.len() != names.len() {
            return Err(bad(line, format!("{} fields, the header has {}", row.len(), names.len())));
        }
        out.push(example_of(&row, &names, &columns).map_err(|why| bad(line, why))?);
    }
    Ok(out)
}

/// `s` parsed, or why not, naming the column `name`.
fn num<T: std::str::FromStr>(s: &str, name: &str) -> std::result::Result<T, String> {
    s.parse().map_err(|_| format!("{name} {s:?} does not parse"))
}

/// One row of [`write_examples_csv`]'s file (its header `names`, of
/// `columns`) as an example, or why not.
fn example_of(
    row: &csv::StringRecord,
    names: &[&str],
    columns: &Arc<Columns>,
) -> std::result::Result<TrainingExample, String> {
    let field = |k: usize| &row[k];
    let label = |k: usize| match field(k) {
        "" => Ok(Label::Open),
        "1" => Ok(Label::Yes),
        "0" => Ok(Label::No),
        s => Err(format!("label {} is {s:?}", names[k])),
    };
    let surface = Surface::ALL
        .into_iter()
        .find(|s| s.name() == field(4))
        .ok_or_else(|| format!("surface {:?} is unknown", field(4)))?;
    let values = |range: std::ops::Range<usize>| {
        range.map(|k| num::<f32>(field(k), names[k])).collect::<std::result::Result<Vec<_>, _>>()
    };
    let fixed = names.len() - columns.features.len() - columns.heads.len();
    let nf = columns.features.len();
    Ok(TrainingExample {
        request_id: num(field(0), "request_id")?,
        position: num(field(1), "position")?,
        user: UserId(num(field(2), "user")?),
        product: ProductId(num(field(3), "product")?),
        surface,
        variant: Some(field(5).to_string()).filter(|v| !v.is_empty()),
        state_version: num(field(6), "state_version")?,
        at: num(field(7), "at")?,
        propensity: num(field(8), "propensity")?,
        score: num(field(9), "score")?,
        labels: [label(10)?, label(11)?, label(12)?, label(13)?],
        complete: field(14) == "1",
        features: values(fixed..fixed + nf)?,
        heads: values(fixed + nf..names.len())?,
        columns: Arc::clone(columns),
    })
}
