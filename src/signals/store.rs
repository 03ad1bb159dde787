//! The writer: [`SignalStore`] checks and applies events, and publishes
//! [`Signals`] snapshots.

use crate::catalog::{Catalog, unit_into};
use crate::error::{Error, IdKind, Result};
use crate::ids::{ItemIdx, MerchantId, ProductId, Timestamp, UserId, elapsed, shift};
use crate::signals::coengage::CoTable;
use crate::signals::config::SignalConfig;
use crate::signals::counters::CounterTable;
use crate::signals::profile::{Purchase, SearchIntent};
use crate::signals::report::{IngestReport, Rejection};
use crate::signals::snapshot::Signals;
use crate::signals::tables::{CycleStats, SHARDS, Shard, Shared, Tables, shard_of};
use crate::signals::{COUNTERS, Counter, Event, EventKind, SearchQuery, Target, UserShard};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An event resolved to rows, after every check passed.
enum Resolved {
    Product { row: ItemIdx, via: Option<u32> },
    Content { crow: u32 },
    Merchant { mrow: u32 },
    Search(SearchIntent),
}

/// The single writer of signals: ingests events and publishes snapshots.
///
/// ```
/// # #[cfg(feature = "synth")] {
/// use std::sync::Arc;
/// use omnifeed::signals::{SignalConfig, SignalStore, Rejection};
/// use omnifeed::{synth, Event, EventKind, ProductId, Target, UserId};
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let catalog = Arc::new(world.catalog.clone());
/// let mut store = SignalStore::new(catalog, SignalConfig::default())?;
/// let report = store.ingest_batch(&world.events);
/// assert_eq!(report.applied, report.events);
/// let bad = Event::new(0, UserId(1), Target::Product(ProductId(7)), EventKind::Click);
/// assert!(matches!(store.ingest(&bad), Err(Rejection::TooLate { .. })));
/// let signals = store.publish();
/// assert!(signals.profile(world.users[0].id).is_some());
/// # }
/// # Ok::<(), omnifeed::Error>(())
/// ```
///
/// Cloning a store is cheap (its tables are shared copy-on-write); the
/// clone and the original then diverge independently.
#[derive(Debug, Clone)]
pub struct SignalStore {
    shared: Arc<Shared>,
    tables: Tables,
    users: Vec<Arc<Shard>>,
    dirty: Vec<Vec<UserId>>,
    repurchase: Vec<CycleStats>,
    flagged: HashSet<u32>,
    suspended: HashSet<u32>,
    watermark: Timestamp,
    report: IngestReport,
    credit: Vec<(ItemIdx, f32)>,
}

impl SignalStore {
    /// An empty store over `catalog`.
    ///
    /// Errors: an invalid config field ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn new(catalog: Arc<Catalog>, config: SignalConfig) -> Result<SignalStore> {
        config.validate()?;
        let mut category_index = HashMap::new();
        let mut categories = Vec::new();
        let product_cat = catalog
            .categories()
            .iter()
            .map(|&c| {
                *category_index.entry(c).or_insert_with(|| {
                    categories.push(c);
                    (categories.len() - 1) as u32
                })
            })
            .collect();
        let h = &config.half_lives;
        let tables = Tables {
            products: CounterTable::new(catalog.len(), COUNTERS, h),
            contents: CounterTable::new(catalog.content_len(), COUNTERS, h),
            merchants: CounterTable::new(catalog.merchants().len(), COUNTERS, h),
            categories: CounterTable::new(categories.len(), COUNTERS, h),
            live: CounterTable::new(catalog.content_len(), 1, &[config.live.momentum_half_life]),
            co: CoTable::new(
                catalog.len(),
                config.co_engagement.neighbours,
                config.co_engagement.half_life,
            ),
        };
        let repurchase = vec![CycleStats::default(); categories.len()];
        Ok(SignalStore {
            shared: Arc::new(Shared {
                catalog,
                config,
                categories,
                category_index,
                product_cat,
                user_shard: None,
            }),
            tables,
            users: (0..SHARDS).map(|_| Arc::new(Shard::new())).collect(),
            dirty: vec![Vec::new(); SHARDS],
            repurchase,
            flagged: HashSet::new(),
            suspended: HashSet::new(),
            watermark: Timestamp::MIN,
            report: IngestReport::default(),
            credit: Vec::new(),
        })
    }

    /// The catalog the store counts against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.shared.catalog
    }

    /// The config.
    pub fn config(&self) -> &SignalConfig {
        &self.shared.config
    }

    /// Everything counted so far.
    pub fn report(&self) -> &IngestReport {
        &self.report
    }

    /// The newest event time applied, if any.
    pub fn watermark(&self) -> Option<Timestamp> {
        (self.watermark != Timestamp::MIN).then_some(self.watermark)
    }

    /// Checks one event and applies it, or rejects it without changing
    /// anything; either way it is counted in [`report`](Self::report).
    pub fn ingest(&mut self, e: &Event) -> std::result::Result<(), Rejection> {
        self.report.events += 1;
        match self.check(e) {
            Ok(resolved) => {
                self.apply(e, resolved);
                self.report.applied += 1;
                Ok(())
            }
            Err(r) => {
                let n = self.report.count(&r);
                warn_rejected(&r, n);
                Err(r)
            }
        }
    }

    /// The first event of `events` that [`ingest`](Self::ingest) would
    /// reject, with its position, checked in order as ingest would (each
    /// accepted event moves the watermark that lateness is measured from);
    /// nothing is applied. `None` when every event would be applied.
    pub fn first_rejection(&self, events: &[Event]) -> Option<(usize, Rejection)> {
        let mut watermark = self.watermark;
        for (i, e) in events.iter().enumerate() {
            match self.check_at(e, watermark) {
                Ok(_) => watermark = watermark.max(e.at),
                Err(r) => return Some((i, r)),
            }
        }
        None
    }

    /// Ingests events in order; returns what this batch did.
    pub fn ingest_batch(&mut self, events: &[Event]) -> IngestReport {
        let before = self.report;
        for e in events {
            let _ = self.ingest(e);
        }
        let after = self.report;
        IngestReport {
            events: after.events - before.events,
            applied: after.applied - before.applied,
            out_of_window: after.out_of_window - before.out_of_window,
            too_late: after.too_late - before.too_late,
            unknown_product: after.unknown_product - before.unknown_product,
            unknown_content: after.unknown_content - before.unknown_content,
            unknown_merchant: after.unknown_merchant - before.unknown_merchant,
            bad_value: after.bad_value - before.bad_value,
            bad_query: after.bad_query - before.bad_query,
            wrong_target: after.wrong_target - before.wrong_target,
            counter_updates: after.counter_updates - before.counter_updates,
        }
    }

    /// Flags (or unflags) a problem product by hand: a hard gate until
    /// unflagged. Errors: an unknown product.
    pub fn flag_product(&mut self, product: ProductId, flagged: bool) -> Result<()> {
        let row = self.shared.catalog.require_row(product, "flag_product")?;
        if flagged {
            self.flagged.insert(row.0);
        } else {
            self.flagged.remove(&row.0);
        }
        Ok(())
    }

    /// Suspends (or lifts a manual suspension of) a merchant. A suspension
    /// in the catalog stays in force. Errors: an unknown merchant.
    pub fn suspend_merchant(&mut self, merchant: MerchantId, suspended: bool) -> Result<()> {
        let row = self
            .shared
            .catalog
            .merchant_row(merchant)
            .ok_or_else(|| Error::unknown(IdKind::Merchant, merchant.0, "suspend_merchant"))?;
        if suspended {
            self.suspended.insert(row);
        } else {
            self.suspended.remove(&row);
        }
        Ok(())
    }

    /// Follows the catalog to its next version (after [`Catalog::apply`]):
    /// the tables grow for new products, content, merchants and
    /// categories (new rows start at zero and at their category's prior);
    /// a changed product keeps its row and its counters, and counts under
    /// its new category from now on (past counts stay where they were
    /// made); a delisted product keeps its counters (events about it, a
    /// late refund say, still count, and a relisting finds them) but
    /// leaves every derived list. Profiles keep their rows: rows are stable.
    ///
    /// Errors: `catalog` is not a successor of the store's catalog (fewer
    /// rows, another dimension, or another product at an old row:
    /// [`ErrorKind::CatalogMismatch`](crate::error::ErrorKind::CatalogMismatch)).
    pub fn follow(&mut self, catalog: Arc<Catalog>) -> Result<()> {
        let old = &self.shared.catalog;
        let n_old = old.len();
        if catalog.dim() != old.dim()
            || catalog.len() < n_old
            || catalog.content_len() < old.content_len()
            || catalog.merchants().len() < old.merchants().len()
            || catalog.product_ids()[..n_old] != old.product_ids()[..]
        {
            return Err(Error::new(crate::error::ErrorKind::CatalogMismatch {
                part: "signal store",
                expected: catalog.fingerprint(),
                got: old.fingerprint(),
            }));
        }
        let mut categories = self.shared.categories.clone();
        let mut category_index = self.shared.category_index.clone();
        let mut product_cat = self.shared.product_cat.clone();
        product_cat.resize(catalog.len(), u32::MAX);
        // One comparison per row finds the new rows and changed categories.
        for (r, &c) in catalog.categories().iter().enumerate() {
            let known = product_cat[r];
            if known == u32::MAX || categories[known as usize] != c {
                product_cat[r] = *category_index.entry(c).or_insert_with(|| {
                    categories.push(c);
                    (categories.len() - 1) as u32
                });
            }
        }
        let t = &mut self.tables;
        t.products.grow(catalog.len());
        t.contents.grow(catalog.content_len());
        t.live.grow(catalog.content_len());
        t.merchants.grow(catalog.merchants().len());
        t.categories.grow(categories.len());
        t.co.grow(catalog.len());
        self.repurchase.resize(categories.len(), CycleStats::default());
        let (config, user_shard) = (self.shared.config.clone(), self.shared.user_shard);
        self.shared = Arc::new(Shared {
            catalog,
            config,
            categories,
            category_index,
            product_cat,
            user_shard,
        });
        Ok(())
    }

    fn check(&self, e: &Event) -> std::result::Result<Resolved, Rejection> {
        self.check_at(e, self.watermark)
    }

    /// [`check`](Self::check) against the given watermark (the newest
    /// event time applied, `Timestamp::MIN` before any).
    fn check_at(
        &self,
        e: &Event,
        watermark: Timestamp,
    ) -> std::result::Result<Resolved, Rejection> {
        let kind = e.kind.name();
        if let Some(v) = e.kind.value() {
            let max = match e.kind {
                EventKind::Order { .. } => crate::limits::MAX_PRICE,
                _ => crate::limits::MAX_EVENT_VALUE,
            };
            if !v.is_finite() || !(0.0..=max).contains(&v) {
                return Err(Rejection::BadValue { kind, value: v });
            }
        }
        let window = self.shared.config.time_window;
        let newest = (watermark != Timestamp::MIN).then_some(watermark);
        let ahead = match (self.shared.config.max_ahead, newest) {
            (Some(a), Some(w)) => shift(w, a).saturating_add(1),
            _ => Timestamp::MAX,
        };
        let max = window.max.min(ahead);
        if !(window.min..max).contains(&e.at) {
            return Err(Rejection::OutOfWindow { at: e.at, min: window.min, max });
        }
        let lateness = self.shared.config.lateness;
        if watermark != Timestamp::MIN && e.at < watermark.saturating_sub(lateness) {
            return Err(Rejection::TooLate { at: e.at, watermark });
        }
        let catalog = &*self.shared.catalog;
        let wrong = |target| Err(Rejection::WrongTarget { kind, target });
        if e.via.is_some() && !matches!(e.target, Target::Product(_)) {
            return wrong("non-product target with via");
        }
        match (&e.target, &e.kind) {
            (Target::None, EventKind::Search(q)) => Ok(Resolved::Search(self.intent(e.at, q)?)),
            (Target::None, _) => wrong("none"),
            (t, EventKind::Search(_)) => wrong(target_name(t)),
            (Target::Merchant(m), EventKind::Like | EventKind::Follow | EventKind::Complaint) => {
                let mrow = catalog.merchant_row(*m).ok_or(Rejection::UnknownMerchant(*m))?;
                Ok(Resolved::Merchant { mrow })
            }
            (Target::Merchant(_), _) => wrong("merchant"),
            (Target::Product(p), _) => {
                let row = catalog.row(*p).ok_or(Rejection::UnknownProduct(*p))?;
                let via = match e.via {
                    Some(c) => Some(catalog.content_row(c).ok_or(Rejection::UnknownContent(c))?),
                    None => None,
                };
                Ok(Resolved::Product { row, via })
            }
            (Target::Content(c), _) => {
                let crow = catalog.content_row(*c).ok_or(Rejection::UnknownContent(*c))?;
                Ok(Resolved::Content { crow })
            }
        }
    }

    fn intent(
        &self,
        at: Timestamp,
        q: &SearchQuery,
    ) -> std::result::Result<SearchIntent, Rejection> {
        let text = q
            .text
            .as_deref()
            .map(|t| crate::limits::cut_query(t).trim())
            .filter(|t| !t.is_empty())
            .map(Box::<str>::from);
        let vector = match &q.embedding {
            None => None,
            Some(v) => {
                if v.len() != self.shared.catalog.dim() {
                    return Err(Rejection::BadQuery("embedding has the wrong dimension"));
                }
                let mut unit = Vec::with_capacity(v.len());
                unit_into("search embedding", v, &mut unit).map_err(|e| match e.kind() {
                    crate::error::ErrorKind::NonFinite { .. } => {
                        Rejection::BadQuery("embedding is not finite")
                    }
                    _ => Rejection::BadQuery("embedding is zero or too small to normalize"),
                })?;
                Some(unit.into_boxed_slice())
            }
        };
        if text.is_none() && vector.is_none() {
            return Err(Rejection::BadQuery("neither text nor embedding"));
        }
        Ok(SearchIntent { at, text, vector })
    }

    fn apply(&mut self, e: &Event, resolved: Resolved) {
        let SignalStore {
            shared, tables, users, dirty, repurchase, report, credit, watermark, ..
        } = self;
        let catalog = &*shared.catalog;
        let cfg = &shared.config;
        let at = e.at;
        *watermark = (*watermark).max(at);
        let weight = cfg.weights.weight(&e.kind);
        let mut cells = [(0usize, 0.0f32); 3];
        let n_cells = counter_cells(&e.kind, weight, cfg.weights.full_watch_secs, &mut cells);
        let cells = &cells[..n_cells];
        let add_all =
            |table: &mut CounterTable, ent: usize, share: f32, report: &mut IngestReport| {
                for &(k, v) in cells {
                    table.add(ent, k, v * share, at);
                }
                report.counter_updates += cells.len() as u64;
            };
        credit.clear();
        let mut search = None;
        match resolved {
            Resolved::Product { row, via } => {
                credit.push((row, 1.0));
                if let Some(crow) = via {
                    add_all(&mut tables.contents, crow as usize, 1.0, report);
                }
            }
            Resolved::Content { crow } => {
                add_all(&mut tables.contents, crow as usize, 1.0, report);
                let rows = catalog.content_product_rows(crow);
                let share = 1.0 / rows.len().max(1) as f32;
                credit.extend(rows.iter().map(|&r| (ItemIdx(r), share)));
                if let EventKind::View { .. } = e.kind
                    && catalog.content_on_air(crow, at)
                {
                    tables.live.add(crow as usize, 0, 1.0, at);
                    report.counter_updates += 1;
                }
            }
            Resolved::Merchant { mrow } => {
                add_all(&mut tables.merchants, mrow as usize, 1.0, report)
            }
            Resolved::Search(intent) => search = Some(intent),
        }
        for &(row, share) in credit.iter() {
            add_all(&mut tables.products, row.index(), share, report);
            add_all(&mut tables.merchants, catalog.merchant_row_of(row) as usize, share, report);
            add_all(
                &mut tables.categories,
                shared.product_cat[row.index()] as usize,
                share,
                report,
            );
        }

        let ctx = ProfileUpdate { shared, e, credit, search, weight };
        update_profile(ctx, users, dirty, repurchase, &mut tables.co);
    }

    /// Finalizes changed profiles and derives rates, priors, governance and
    /// trending: the snapshot queries read. See the module's consistency
    /// model.
    pub fn publish(&mut self) -> Signals {
        self.finalize_profiles();
        Signals::derive(
            Arc::clone(&self.shared),
            self.tables.clone(),
            self.users.clone(),
            &self.repurchase,
            &self.flagged,
            &self.suspended,
            self.watermark(),
            self.report,
        )
    }

    /// Recomputes the session vector and interest clusters of every profile
    /// changed since the last call (in parallel over shards, with rayon);
    /// returns how many. [`publish`](Self::publish) calls it; call it
    /// between publishes to spread the work.
    pub fn finalize_profiles(&mut self) -> usize {
        let catalog = Arc::clone(&self.shared.catalog);
        let pcfg = self.shared.config.profiles;
        self.users
            .par_iter_mut()
            .zip(self.dirty.par_iter_mut())
            .map(|(shard, dirty)| {
                if dirty.is_empty() {
                    return 0;
                }
                let shard = Arc::make_mut(shard);
                let n = dirty.len();
                for user in dirty.drain(..) {
                    if let Some(p) = shard.get_mut(&user) {
                        Arc::make_mut(p).finalize(catalog.embeddings(), &pcfg);
                    }
                }
                n
            })
            .sum()
    }

    /// Keeps profiles only for `shard`'s users from now on (all users with
    /// `None`): profiles of other users already held are dropped, and
    /// co-engagement and repurchase intervals are learned from the shard's
    /// users, weighted by the shard count. Set it before the first event
    /// (or right after loading a snapshot of the same layout) so that every
    /// replica of the shard applies the whole stream under one rule.
    pub fn set_user_shard(&mut self, shard: Option<UserShard>) {
        if self.shared.user_shard == shard {
            return;
        }
        let mut shared = (*self.shared).clone();
        shared.user_shard = shard;
        self.shared = Arc::new(shared);
        if let Some(shard) = shard {
            for (users, dirty) in self.users.iter_mut().zip(&mut self.dirty) {
                if users.keys().any(|&u| !shard.owns(u)) {
                    Arc::make_mut(users).retain(|&u, _| shard.owns(u));
                }
                dirty.retain(|&u| shard.owns(u));
            }
        }
    }

    /// The user shard whose profiles this store keeps (`None`: all users).
    pub fn user_shard(&self) -> Option<UserShard> {
        self.shared.user_shard
    }
}

/// What one applied event says about its user.
struct ProfileUpdate<'a> {
    shared: &'a Shared,
    e: &'a Event,
    credit: &'a [(ItemIdx, f32)],
    search: Option<SearchIntent>,
    weight: f32,
}

/// Updates the event's user: seen, carts, searches, engagement (marking the
/// profile dirty for the next finalize), purchases and repurchase stats.
fn update_profile(
    u: ProfileUpdate<'_>,
    users: &mut [Arc<Shard>],
    dirty: &mut [Vec<UserId>],
    repurchase: &mut [CycleStats],
    co: &mut CoTable,
) {
    let ProfileUpdate { shared, e, credit, search, weight } = u;
    let (catalog, cfg, at) = (&*shared.catalog, &shared.config, e.at);
    // Another user shard's user: nothing is kept. What is learned through
    // profiles comes from this shard's users, standing for `count` each.
    let sample = match shared.user_shard {
        Some(shard) if !shard.owns(e.user) => return,
        Some(shard) => shard.count(),
        None => 1,
    };
    // The user's profile.
    let s = shard_of(e.user);
    let profile = Arc::make_mut(Arc::make_mut(&mut users[s]).entry(e.user).or_default());
    profile.touch(at);
    let pcfg = &cfg.profiles;
    match (&e.kind, &e.target) {
        (EventKind::Impression, _) => {
            for &(row, _) in credit {
                profile.saw(row, at, pcfg);
            }
        }
        (EventKind::Cart, Target::Product(_)) => profile.carted(credit[0].0, at),
        _ => {}
    }
    if let Some(intent) = search {
        profile.searched(intent, pcfg);
    }
    if weight > 0.0 {
        pair_with_recent(co, profile, credit, (weight, sample as f32), at, &cfg.co_engagement);
        let was_dirty = profile.dirty;
        for &(row, share) in credit.iter() {
            let category = catalog.categories()[row.index()];
            let emb = catalog.embeddings().row(row);
            profile.engage(row, category, emb, weight * share, at, pcfg);
        }
        if !was_dirty && profile.dirty {
            dirty[s].push(e.user);
        }
    }
    if let (EventKind::Order { .. }, Target::Product(_)) = (&e.kind, &e.target) {
        let row = credit[0].0;
        let cat = shared.product_cat[row.index()];
        let category = shared.categories[cat as usize];
        let stats = &mut repurchase[cat as usize];
        match profile.last_purchase_in(category) {
            None => stats.buyers = stats.buyers.saturating_add(sample),
            Some(prev) => {
                let gap = elapsed(at, prev.at).saturating_abs();
                if gap >= cfg.repurchase.min_interval {
                    stats.record_interval(gap, sample);
                }
            }
        }
        profile.bought(Purchase { row, category, at }, pcfg);
    }
}

/// Co-engagement: each credited product pairs with the user's latest
/// engagements within the gap (before this one joins them); `weight` is the
/// event's weight and the number of users the profile stands for.
fn pair_with_recent(
    co: &mut CoTable,
    profile: &crate::signals::UserProfile,
    credit: &[(ItemIdx, f32)],
    (weight, sample): (f32, f32),
    at: Timestamp,
    cc: &crate::signals::CoEngagementConfig,
) {
    if cc.neighbours == 0 {
        return;
    }
    for &(row, share) in credit {
        let w = weight * share;
        for e in profile.recent().rev().take(cc.recent) {
            if e.row == row || elapsed(at, e.at).saturating_abs() > cc.max_gap {
                continue;
            }
            let pw = w.min(e.weight) * sample;
            co.add(e.row.index(), row.0, pw, at);
            co.add(row.index(), e.row.0, pw, at);
        }
    }
}

fn target_name(t: &Target) -> &'static str {
    match t {
        Target::Product(_) => "product",
        Target::Content(_) => "content",
        Target::Merchant(_) => "merchant",
        Target::None => "none",
    }
}

/// The counter cells one event adds to: `(counter, value)`; returns how
/// many of `out` it filled.
fn counter_cells(
    kind: &EventKind,
    weight: f32,
    full_watch: f32,
    out: &mut [(usize, f32); 3],
) -> usize {
    let mut n = 0;
    let mut push = |c: Counter, v: f32| {
        out[n] = (c as usize, v);
        n += 1;
    };
    match kind {
        EventKind::Impression => push(Counter::Impression, 1.0),
        EventKind::Click => push(Counter::Click, 1.0),
        EventKind::View { watch_secs } => {
            push(Counter::View, 1.0);
            push(Counter::Watch, (watch_secs / full_watch.max(1e-6)).min(1.0));
        }
        EventKind::Like | EventKind::Follow => push(Counter::Like, 1.0),
        EventKind::Favorite => push(Counter::Favorite, 1.0),
        EventKind::Cart => push(Counter::Cart, 1.0),
        EventKind::Order { price } => {
            push(Counter::Order, 1.0);
            if let Some(p) = price {
                push(Counter::Revenue, *p);
            }
        }
        EventKind::Refund => push(Counter::Refund, 1.0),
        EventKind::Complaint => push(Counter::Complaint, 1.0),
        EventKind::Rating { .. } | EventKind::Search(_) => {}
    }
    if weight > 0.0 {
        push(Counter::Engagement, weight);
    }
    n
}

impl Signals {
    /// Builds signals from a whole log: the events are applied in time order
    /// (a stable sort, so the log may come in any order), then published.
    ///
    /// Errors: an invalid config field. Bad events are counted in the
    /// report, never fatal.
    pub fn from_events(
        catalog: Arc<Catalog>,
        events: &[Event],
        config: &SignalConfig,
    ) -> Result<(Signals, IngestReport)> {
        let mut store = SignalStore::new(catalog, config.clone())?;
        let mut order: Vec<u32> = (0..events.len() as u32).collect();
        if !events.windows(2).all(|w| w[0].at <= w[1].at) {
            order.sort_by_key(|&i| events[i as usize].at);
        }
        for i in order {
            let _ = store.ingest(&events[i as usize]);
        }
        let signals = store.publish();
        let report = *store.report();
        Ok((signals, report))
    }
}

/// The small parts of a store a snapshot saves with postcard (the counter
/// tables and the profiles travel as their own sections).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoreRecord {
    /// Dense category order: the rows of the category table.
    pub(crate) categories: Vec<crate::ids::CategoryId>,
    pub(crate) repurchase: Vec<(u32, u32, Vec<u32>)>,
    pub(crate) flagged: Vec<u32>,
    pub(crate) suspended: Vec<u32>,
    pub(crate) watermark: Timestamp,
    pub(crate) report: IngestReport,
}

/// The five counter tables from their raw parts, checked against the
/// catalog's sizes and the config.
fn counter_tables(
    catalog: &Catalog,
    cfg: &SignalConfig,
    categories: usize,
    tables: &[(&[i64], &[f32])],
) -> std::result::Result<Vec<CounterTable>, String> {
    let h = &cfg.half_lives;
    let live = [cfg.live.momentum_half_life];
    let sizes = [
        (catalog.len(), COUNTERS, &h[..]),
        (catalog.content_len(), COUNTERS, &h[..]),
        (catalog.merchants().len(), COUNTERS, &h[..]),
        (categories, COUNTERS, &h[..]),
        (catalog.content_len(), 1, &live[..]),
    ];
    if tables.len() != sizes.len() {
        return Err(format!("{} counter tables, expected {}", tables.len(), sizes.len()));
    }
    let mut built = Vec::with_capacity(sizes.len());
    for (i, ((t, v), (len, kinds, halves))) in tables.iter().zip(sizes).enumerate() {
        match CounterTable::from_raw(kinds, halves, t, v) {
            Some(table) if table.len() == len => built.push(table),
            _ => return Err(format!("counter table {} does not fit the catalog", TABLES[i])),
        }
    }
    Ok(built)
}

/// A co-engagement table's raw columns: times, totals, CSR offsets, rows,
/// weights.
pub(crate) type CoSlices<'a> = (&'a [i64], &'a [f32], &'a [u32], &'a [u32], &'a [f32]);

/// Names of the five counter tables, in the order snapshots save them.
pub(crate) const TABLES: [&str; 5] = ["products", "contents", "merchants", "categories", "live"];

impl SignalStore {
    /// What a snapshot saves: the record, the counter tables (raw, in
    /// [`TABLES`] order) and the profiles. Call after finalizing profiles.
    #[allow(clippy::type_complexity)]
    pub(crate) fn to_parts(
        &self,
    ) -> (StoreRecord, Vec<(Vec<i64>, Vec<f32>)>, Vec<(UserId, &crate::signals::UserProfile)>) {
        let mut flagged: Vec<u32> = self.flagged.iter().copied().collect();
        let mut suspended: Vec<u32> = self.suspended.iter().copied().collect();
        flagged.sort_unstable();
        suspended.sort_unstable();
        let record = StoreRecord {
            categories: self.shared.categories.clone(),
            repurchase: self.repurchase.iter().map(|c| c.to_parts()).collect(),
            flagged,
            suspended,
            watermark: self.watermark,
            report: self.report,
        };
        let t = &self.tables;
        let tables = [&t.products, &t.contents, &t.merchants, &t.categories, &t.live]
            .iter()
            .map(|t| t.raw())
            .collect();
        let mut profiles: Vec<(UserId, &crate::signals::UserProfile)> =
            self.users.iter().flat_map(|shard| shard.iter().map(|(&u, p)| (u, &**p))).collect();
        profiles.sort_unstable_by_key(|p| p.0);
        (record, tables, profiles)
    }

    /// The co-engagement table's raw columns, for a snapshot.
    pub(crate) fn co_raw(&self) -> crate::signals::coengage::CoRaw {
        self.tables.co.raw()
    }

    /// Reassembles a store from [`to_parts`](Self::to_parts).
    ///
    /// Errors (`what` names the bad part): tables, categories or rows that
    /// do not fit the catalog and config.
    pub(crate) fn from_parts(
        catalog: Arc<Catalog>,
        config: SignalConfig,
        record: StoreRecord,
        tables: &[(&[i64], &[f32])],
        co: CoSlices<'_>,
        profiles: Vec<(UserId, crate::signals::UserProfile)>,
    ) -> std::result::Result<SignalStore, String> {
        config.validate().map_err(|e| format!("signal config: {e}"))?;
        let mut category_index = HashMap::with_capacity(record.categories.len());
        for (i, &c) in record.categories.iter().enumerate() {
            if category_index.insert(c, i as u32).is_some() {
                return Err(format!("category {c} listed twice"));
            }
        }
        let mut product_cat = Vec::with_capacity(catalog.len());
        for c in catalog.categories() {
            product_cat.push(*category_index.get(c).ok_or(format!("category {c} unknown"))?);
        }
        let built = counter_tables(&catalog, &config, record.categories.len(), tables)?;
        let cc = config.co_engagement;
        let (t, total, offsets, rows, weights) = co;
        let co = CoTable::from_raw(t, total, offsets, rows, weights, cc.neighbours, cc.half_life)
            .filter(|t| t.len() == catalog.len())
            .ok_or("co-engagement lists do not fit the catalog")?;
        let mut it = built.into_iter();
        let mut next = || it.next().ok_or("counter tables".to_string());
        let tables = Tables {
            products: next()?,
            contents: next()?,
            merchants: next()?,
            categories: next()?,
            live: next()?,
            co,
        };
        let n_cats = record.categories.len();
        let shared = Shared {
            catalog: Arc::clone(&catalog),
            config,
            categories: record.categories,
            category_index,
            product_cat,
            user_shard: None,
        };
        let mut store = SignalStore {
            shared: Arc::new(shared),
            tables,
            users: (0..SHARDS).map(|_| Arc::new(Shard::new())).collect(),
            dirty: vec![Vec::new(); SHARDS],
            repurchase: Vec::new(),
            flagged: HashSet::new(),
            suspended: HashSet::new(),
            watermark: Timestamp::MIN,
            report: IngestReport::default(),
            credit: Vec::new(),
        };
        let mut repurchase = Vec::with_capacity(record.repurchase.len());
        for (b, r, hist) in &record.repurchase {
            repurchase.push(CycleStats::from_parts(*b, *r, hist).ok_or("repurchase histogram")?);
        }
        if repurchase.len() != n_cats {
            return Err("repurchase statistics do not match the categories".into());
        }
        let (n, m) = (catalog.len() as u32, catalog.merchants().len() as u32);
        if record.flagged.iter().any(|&r| r >= n) || record.suspended.iter().any(|&r| r >= m) {
            return Err("a flagged product or suspended merchant is out of range".into());
        }
        for (user, profile) in profiles {
            if !profile.fits(n, catalog.dim()) {
                return Err(format!("profile of user {user} names a row out of range"));
            }
            Arc::make_mut(&mut store.users[shard_of(user)]).insert(user, Arc::new(profile));
        }
        store.repurchase = repurchase;
        store.flagged = record.flagged.into_iter().collect();
        store.suspended = record.suspended.into_iter().collect();
        store.watermark = record.watermark;
        store.report = record.report;
        Ok(store)
    }
}
/// Makes a rejection visible without reading a counter: a `tracing`
/// warning for the 1st, 10th, 100th, ... rejection of each kind (so a flood
/// of one kind costs a handful of lines), and with the `metrics` feature the
/// counter `omnifeed_events_rejected_total{reason}`.
fn warn_rejected(r: &Rejection, n: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!("omnifeed_events_rejected_total", "reason" => r.name()).increment(1);
    if power_of_ten(n) {
        tracing::warn!(
            reason = r.name(),
            count = n,
            "event rejected: {r} ({n} of this kind so far)"
        );
    }
}

/// True for `1, 10, 100, ...`: the counts a warning is logged at.
fn power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}
