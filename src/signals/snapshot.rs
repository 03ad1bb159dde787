//! The read side: an immutable [`Signals`] snapshot.

use crate::catalog::{Catalog, ContentKind};
use crate::ids::{CategoryId, ContentId, ItemIdx, MerchantId, Timestamp, UserId, elapsed};
use crate::signals::counters::decay_factor;
use crate::signals::derive::{Deriver, Trend, cycles};
pub use crate::signals::derive::{Gate, RepurchaseCycle};
use crate::signals::profile::UserProfile;
use crate::signals::rates::BetaPrior;
use crate::signals::report::IngestReport;
use crate::signals::tables::{CycleStats, Shard, Shared, Tables, profile_bytes, shard_of};
use crate::signals::{Counter, RATES, Rate, SignalConfig};
use std::collections::HashSet;
use std::sync::Arc;

/// The most seeds [`Signals::co_scores`] reads (`seeds` is capped here):
/// its picked list lives on the stack.
pub(crate) const MAX_CO_SEEDS: usize = 64;

/// A user's purchase relation to a product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchaseState {
    /// Not among the user's kept purchases.
    NotBought,
    /// Bought at `at` and not due again (a durable, or a consumable early in
    /// its cycle).
    Bought {
        /// When.
        at: Timestamp,
    },
    /// A consumable whose cycle has come round: `score` in `(0, 1]` peaks at
    /// one cycle after the purchase.
    Due {
        /// When it was bought.
        at: Timestamp,
        /// How due, 1 exactly one cycle after purchase.
        score: f32,
    },
}

/// Bytes of signal state, per entity and in all (see `BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Counter bytes per product.
    pub per_product: usize,
    /// Derived bytes per product (rates, scores, gates, best content).
    pub per_product_derived: usize,
    /// Counter bytes per content item (counters and live momentum).
    pub per_content: usize,
    /// Users with a profile.
    pub users: usize,
    /// Bytes of all profiles, with their map entries.
    pub user_bytes: usize,
    /// Bytes of everything.
    pub total: usize,
}

/// An immutable snapshot of every signal, what a query reads. Made by
/// [`SignalStore::publish`](crate::signals::SignalStore::publish) or [`Signals::from_events`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Signals {
    shared: Arc<Shared>,
    tables: Tables,
    users: Vec<Arc<Shard>>,
    as_of: Timestamp,
    report: IngestReport,
    derived: Arc<Derived>,
}

#[derive(Debug)]
struct Derived {
    /// Category × rate priors.
    priors: Vec<BetaPrior>,
    content_priors: [BetaPrior; RATES],
    merchant_priors: [BetaPrior; RATES],
    /// Product row × rate, smoothed.
    rates: Vec<f32>,
    /// Content row × rate, smoothed.
    content_rates: Vec<f32>,
    /// `ctr · cvr`, scaled to [0, 1] by its maximum.
    rate_score: Vec<f32>,
    /// `ln(1 + engagement) / ln(1 + max)` on the rate half-life, and the
    /// most engaged rows.
    trend: Trend,
    /// The same on the next shorter half-life.
    trend_recent: Trend,
    merchant_score: Vec<f32>,
    merchant_suspended: Vec<bool>,
    gates: Vec<Option<Gate>>,
    best_content: Vec<u32>,
    cycles: Vec<RepurchaseCycle>,
    /// Per dense category: most engaged rows, and fresh rows newest first.
    category_trending: Vec<Vec<ItemIdx>>,
    category_fresh: Vec<Vec<ItemIdx>>,
    /// Content rows by views on the shortest half-life, most first.
    rising: Vec<u32>,
    /// Live-stream rows not ended as of the snapshot.
    live: Vec<u32>,
}

impl Signals {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derive(
        shared: Arc<Shared>,
        tables: Tables,
        users: Vec<Arc<Shard>>,
        repurchase: &[CycleStats],
        flagged: &HashSet<u32>,
        suspended: &HashSet<u32>,
        watermark: Option<Timestamp>,
        report: IngestReport,
    ) -> Signals {
        let as_of = watermark.unwrap_or(0);
        let derived = {
            let d = Deriver::new(&shared, &tables, as_of);
            let (priors, content_priors, merchant_priors) = d.priors();
            let (rates, content_rates) = d.rates(&priors, &content_priors);
            let (rate_score, trend, trend_recent) = d.ranking(&rates);
            let (merchant_score, merchant_suspended, gates) =
                d.governance(&merchant_priors, &rates, flagged, suspended);
            let best_content = d.best_content(&content_rates);
            let (category_trending, category_fresh, rising, live) = d.lists(&trend.top);
            Derived {
                priors,
                content_priors,
                merchant_priors,
                rates,
                content_rates,
                rate_score,
                trend,
                trend_recent,
                merchant_score,
                merchant_suspended,
                gates,
                best_content,
                cycles: cycles(repurchase, &shared.config.repurchase),
                category_trending,
                category_fresh,
                rising,
                live,
            }
        };
        Signals { shared, tables, users, as_of, report, derived: Arc::new(derived) }
    }

    /// The catalog these signals count against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.shared.catalog
    }

    /// The config they were built with.
    pub fn config(&self) -> &SignalConfig {
        &self.shared.config
    }

    /// The co-engagement neighbours of `row` as of `at`: the products the
    /// same users engaged with close in time, with a cosine-normalized
    /// weight in `[0, 1]` (see [`CoEngagementConfig`](crate::signals::CoEngagementConfig)).
    /// `out` is cleared first; empty for an unknown row.
    pub fn co_engaged(&self, row: ItemIdx, at: Timestamp, out: &mut Vec<(ItemIdx, f32)>) {
        self.tables.co.neighbours(row, at, out);
    }

    /// A user's co-engagement scores: the neighbours of their latest
    /// `seeds` distinct engagements (weighted by engagement and recency
    /// rank) and of their last five purchases, summed per product and
    /// scaled so the best is 1. Sorted by row, into `out` (cleared first);
    /// `scratch` is working memory. At most 64 seeds (recent and bought
    /// together) are read.
    pub fn co_scores(
        &self,
        profile: &UserProfile,
        at: Timestamp,
        seeds: usize,
        out: &mut Vec<(ItemIdx, f32)>,
        scratch: &mut Vec<(ItemIdx, f32)>,
    ) {
        out.clear();
        // The seeds and their rank weights, on the stack (at most
        // `MAX_CO_SEEDS`), picked before any list is read so that all
        // their lists are fetched at once.
        let mut picked = [(ItemIdx(0), 0.0f32); MAX_CO_SEEDS];
        let (mut n, cap) = (0, seeds.saturating_add(5).min(MAX_CO_SEEDS));
        let recent = profile.recent().rev().map(|e| (e.row, e.weight));
        let bought = profile.purchases().rev().take(5).map(|p| (p.row, 1.0));
        for (row, w) in recent.chain(bought) {
            if picked[..n].iter().any(|p| p.0 == row) {
                continue;
            }
            if n >= cap {
                break;
            }
            picked[n] = (row, w / (1.0 + 0.2 * n as f32));
            n += 1;
        }
        for &(row, _) in &picked[..n] {
            self.tables.co.prefetch(row.index());
        }
        for &(row, rank_weight) in &picked[..n] {
            self.tables.co.neighbours(row, at, scratch);
            out.extend(scratch.iter().map(|&(r, s)| (r, s * rank_weight)));
        }
        out.sort_unstable_by_key(|x| x.0);
        out.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 += b.1;
                true
            } else {
                false
            }
        });
        let max = out.iter().map(|x| x.1).fold(0.0f32, f32::max);
        if max > 0.0 {
            out.iter_mut().for_each(|x| x.1 /= max);
        }
    }

    /// The newest event time included (0 if none): rates and governance are
    /// as of this time.
    pub fn as_of(&self) -> Timestamp {
        self.as_of
    }

    /// What ingest counted up to this snapshot.
    pub fn report(&self) -> &IngestReport {
        &self.report
    }

    /// A user's profile, if they have applied events.
    pub fn profile(&self, user: UserId) -> Option<&UserProfile> {
        self.users[shard_of(user)].get(&user).map(|p| &**p)
    }

    /// The user shard whose profiles these signals hold (`None`: all
    /// users); requests for other users are refused
    /// ([`ErrorKind::WrongShard`](crate::error::ErrorKind::WrongShard)).
    pub fn user_shard(&self) -> Option<crate::signals::UserShard> {
        self.shared.user_shard
    }

    /// Number of users with a profile.
    pub fn user_count(&self) -> usize {
        self.users.iter().map(|s| s.len()).sum()
    }

    /// Counter `c` of product `row` with half-life number `half` (an index
    /// into the config's `half_lives`), decayed to `at`. Reads before the
    /// product's newest update return the value at that update. `None` if
    /// `row` or `half` is out of range.
    pub fn counter(&self, row: ItemIdx, c: Counter, half: usize, at: Timestamp) -> Option<f32> {
        self.tables.products.try_get(row.index(), c as usize, half, at)
    }

    /// Counter `c` of a content item, `None` if the catalog does not have it
    /// or `half` is out of range.
    pub fn content_counter(
        &self,
        id: ContentId,
        c: Counter,
        half: usize,
        at: Timestamp,
    ) -> Option<f32> {
        let crow = self.shared.catalog.content_row(id)?;
        self.tables.contents.try_get(crow as usize, c as usize, half, at)
    }

    /// Counter `c` of a merchant, `None` if unknown or `half` is out of range.
    pub fn merchant_counter(
        &self,
        id: MerchantId,
        c: Counter,
        half: usize,
        at: Timestamp,
    ) -> Option<f32> {
        let m = self.shared.catalog.merchant_row(id)?;
        self.tables.merchants.try_get(m as usize, c as usize, half, at)
    }

    /// Counter `c` of a category, `None` if no product has it or `half` is
    /// out of range.
    pub fn category_counter(
        &self,
        id: CategoryId,
        c: Counter,
        half: usize,
        at: Timestamp,
    ) -> Option<f32> {
        let k = *self.shared.category_index.get(&id)?;
        self.tables.categories.try_get(k as usize, c as usize, half, at)
    }

    /// Product `row`'s smoothed rate `r` (as of [`as_of`](Self::as_of), on
    /// the config's `rate_half_life`), in `(0, 1)`.
    ///
    /// Panics if `row` is not a row of the catalog (rows come from it).
    #[inline]
    pub fn rate(&self, row: ItemIdx, r: Rate) -> f32 {
        self.derived.rates[row.index() * RATES + r as usize]
    }

    /// The fitted prior of rate `r` in `category` (the global prior where
    /// the category had too little data), `None` for an unknown category.
    pub fn prior(&self, category: CategoryId, r: Rate) -> Option<BetaPrior> {
        let k = *self.shared.category_index.get(&category)? as usize;
        Some(self.derived.priors[k * RATES + r as usize])
    }

    /// The global priors of content and merchant rates.
    pub fn content_prior(&self, r: Rate) -> BetaPrior {
        self.derived.content_priors[r as usize]
    }

    /// The global prior of merchant rate `r`.
    pub fn merchant_prior(&self, r: Rate) -> BetaPrior {
        self.derived.merchant_priors[r as usize]
    }

    /// A content item's smoothed rate `r`, `None` if unknown.
    pub fn content_rate(&self, id: ContentId, r: Rate) -> Option<f32> {
        let crow = self.shared.catalog.content_row(id)? as usize;
        Some(self.derived.content_rates[crow * RATES + r as usize])
    }

    /// Product signals seen from content: the mean smoothed rate `r` of the
    /// products a content item carries. `None` if unknown or it carries none.
    pub fn content_products_rate(&self, id: ContentId, r: Rate) -> Option<f32> {
        let crow = self.shared.catalog.content_row(id)?;
        let rows = self.shared.catalog.content_product_rows(crow);
        if rows.is_empty() {
            return None;
        }
        let sum: f32 = rows.iter().map(|&p| self.rate(ItemIdx(p), r)).sum();
        Some(sum / rows.len() as f32)
    }

    /// The content to show product `row` with: the best of its content by
    /// smoothed watch completion, `None` if no content carries it.
    ///
    /// Panics if `row` is not a row of the catalog (rows come from it).
    pub fn best_content(&self, row: ItemIdx) -> Option<ContentId> {
        let c = self.derived.best_content[row.index()];
        (c != u32::MAX).then(|| self.shared.catalog.content_id_at(c))
    }

    /// True if a live stream is on air at `at`; `None` for unknown content.
    pub fn is_on_air(&self, id: ContentId, at: Timestamp) -> Option<bool> {
        let crow = self.shared.catalog.content_row(id)?;
        Some(self.shared.catalog.content_on_air(crow, at))
    }

    /// Viewer momentum of a live stream at `at`: its views decayed with the
    /// momentum half-life while on air; after the stream ends it decays
    /// with the (short) end half-life and is exactly 0 once below 10⁻⁶. 0
    /// for a video or before the start; `None` for unknown content.
    pub fn live_momentum(&self, id: ContentId, at: Timestamp) -> Option<f32> {
        let crow = self.shared.catalog.content_row(id)?;
        Some(self.live_momentum_row(crow, at))
    }

    /// [`live_momentum`](Self::live_momentum) by content row (see
    /// [`Catalog::content_row`](crate::catalog::Catalog::content_row)). Panics if
    /// `crow` is out of range.
    pub fn live_momentum_row(&self, crow: u32, at: Timestamp) -> f32 {
        let (kind, starts, ends) = self.shared.catalog.content_times(crow);
        if kind != ContentKind::LiveStream || at < starts {
            return 0.0;
        }
        let live = &self.tables.live;
        match ends {
            Some(end) if at >= end => {
                let cfg = &self.shared.config.live;
                let v = live.get(crow as usize, 0, 0, end)
                    * decay_factor(cfg.end_half_life as f64, elapsed(at, end)) as f32;
                if v < 1e-6 { 0.0 } else { v }
            }
            _ => live.get(crow as usize, 0, 0, at),
        }
    }

    /// Content rows of the live streams on air at `at` (from the streams
    /// not ended at the snapshot time; no id lookups): what the built-in
    /// `content` source and the `live_now` feature read, for custom sources
    /// ([`Catalog::content_product_rows`](crate::catalog::Catalog::content_product_rows)
    /// gives each stream's products).
    pub fn on_air_rows(&self, at: Timestamp) -> impl Iterator<Item = u32> + '_ {
        let catalog = &self.shared.catalog;
        self.derived.live.iter().copied().filter(move |&c| catalog.content_on_air(c, at))
    }

    /// `ctr · cvr` of every row scaled to `[0, 1]`: expected conversion
    /// per impression, the rate prior the feed ranks with.
    pub fn rate_scores(&self) -> &[f32] {
        &self.derived.rate_score
    }

    /// Decayed engagement volume of every row, `ln(1 + w) / ln(1 + max)`.
    pub fn trending_scores(&self) -> &[f32] {
        &self.derived.trend.scores
    }

    /// The most engaged rows on the rate half-life, most first (at most
    /// 2,000).
    pub fn trending(&self) -> &[ItemIdx] {
        &self.derived.trend.top
    }

    /// As [`trending_scores`](Self::trending_scores), on the next shorter
    /// of [`SignalConfig::half_lives`](crate::signals::SignalConfig::half_lives)
    /// than the rate half-life (the same one if it is the shortest): what
    /// is popular lately rather than over the longer scale.
    pub fn recent_trending_scores(&self) -> &[f32] {
        &self.derived.trend_recent.scores
    }

    /// The most engaged rows on that shorter half-life, most first (at
    /// most 2,000).
    pub fn recent_trending(&self) -> &[ItemIdx] {
        &self.derived.trend_recent.top
    }

    /// The most engaged products of a category, most first (at most 100);
    /// empty for an unknown category.
    pub fn category_trending(&self, category: CategoryId) -> &[ItemIdx] {
        self.shared
            .category_index
            .get(&category)
            .map_or(&[], |&k| &self.derived.category_trending[k as usize])
    }

    /// The products of a category listed within `fresh_age` of the
    /// snapshot time, newest first (at most 100).
    pub fn category_fresh(&self, category: CategoryId) -> &[ItemIdx] {
        self.shared
            .category_index
            .get(&category)
            .map_or(&[], |&k| &self.derived.category_fresh[k as usize])
    }

    /// The content items with the most views on the shortest half-life, most
    /// first (at most 500), with those views.
    pub fn rising_content(&self) -> impl Iterator<Item = (ContentId, f32)> + '_ {
        let h = 0;
        self.derived.rising.iter().map(move |&c| {
            let views = self.tables.contents.get(c as usize, Counter::View as usize, h, self.as_of);
            (self.shared.catalog.content_id_at(c), views)
        })
    }

    /// Live streams that had not ended at the snapshot time (check
    /// [`is_on_air`](Self::is_on_air) at the request time).
    pub fn live_streams(&self) -> impl Iterator<Item = ContentId> + '_ {
        self.derived.live.iter().map(|&c| self.shared.catalog.content_id_at(c))
    }

    /// A merchant's governance score in `[0, 1]`: its experience score less
    /// its refund and complaint rates above the platform mean. `None` if
    /// unknown.
    pub fn merchant_score(&self, id: MerchantId) -> Option<f32> {
        let m = self.shared.catalog.merchant_row(id)?;
        Some(self.derived.merchant_score[m as usize])
    }

    /// The governance score of product `row`'s merchant: the soft penalty
    /// ranking reads (1 is a perfect shop).
    ///
    /// Panics if `row` is not a row of the catalog (rows come from it).
    #[inline]
    pub fn quality(&self, row: ItemIdx) -> f32 {
        self.derived.merchant_score[self.shared.catalog.merchant_row_of(row) as usize]
    }

    /// True if the merchant is suspended (catalog, by hand, or by score).
    pub fn is_suspended(&self, id: MerchantId) -> Option<bool> {
        let m = self.shared.catalog.merchant_row(id)?;
        Some(self.derived.merchant_suspended[m as usize])
    }

    /// The hard gate on product `row`, if any: filters drop gated products.
    ///
    /// Panics if `row` is not a row of the catalog (rows come from it).
    #[inline]
    pub fn gate(&self, row: ItemIdx) -> Option<Gate> {
        self.derived.gates[row.index()]
    }

    /// The repurchase cycle of a category, `None` if no product has it.
    pub fn repurchase_cycle(&self, category: CategoryId) -> Option<RepurchaseCycle> {
        let k = *self.shared.category_index.get(&category)?;
        Some(self.derived.cycles[k as usize])
    }

    /// Whether `profile`'s user bought product `row`, and if so whether it
    /// is due again at `at` (a consumable whose cycle has come round).
    pub fn purchase_state(
        &self,
        profile: &UserProfile,
        row: ItemIdx,
        at: Timestamp,
    ) -> PurchaseState {
        let Some(bought) = profile.bought_at(row) else {
            return PurchaseState::NotBought;
        };
        let category = self.shared.catalog.categories()[row.index()];
        match self.due_score(category, bought, at) {
            Some(score) => PurchaseState::Due { at: bought, score },
            None => PurchaseState::Bought { at: bought },
        }
    }

    /// The user's purchases that are due again at `at`, most due first:
    /// what a repurchase source proposes.
    pub fn due_purchases(&self, profile: &UserProfile, at: Timestamp) -> Vec<(ItemIdx, f32)> {
        let mut due = Vec::new();
        self.due_purchases_into(profile, at, &mut due);
        due
    }

    /// [`due_purchases`](Self::due_purchases) appended to `due` (a caller's
    /// reused buffer; what it held is kept before them).
    pub fn due_purchases_into(
        &self,
        profile: &UserProfile,
        at: Timestamp,
        out: &mut Vec<(ItemIdx, f32)>,
    ) {
        let start = out.len();
        for p in profile.purchases() {
            let due = &out[start..];
            if due.iter().any(|d| d.0 == p.row) || profile.bought_at(p.row) != Some(p.at) {
                continue;
            }
            if let Some(score) = self.due_score(p.category, p.at, at) {
                out.push((p.row, score));
            }
        }
        out[start..].sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }

    fn due_score(&self, category: CategoryId, bought: Timestamp, at: Timestamp) -> Option<f32> {
        let cycle = self.repurchase_cycle(category)?;
        let c = cycle.cycle? as f64;
        if !cycle.consumable {
            return None;
        }
        let since = elapsed(at, bought) as f64;
        if since < f64::from(self.shared.config.repurchase.due_from) * c {
            return None;
        }
        // A log-normal bump: 1 at one cycle, 0.79 at half or double.
        let z = (since.max(1.0) / c).ln();
        Some((-0.5 * z * z).exp() as f32)
    }

    /// Bytes of state, per entity and in all.
    pub fn memory(&self) -> MemoryReport {
        let t = &self.tables;
        let n = self.shared.catalog.len().max(1);
        let d = &self.derived;
        let derived_products = d.rates.len() * 4
            + d.rate_score.len() * 4
            + (d.trend.scores.len() + d.trend_recent.scores.len()) * 4
            + (d.trend.top.len() + d.trend_recent.top.len()) * 4
            + d.gates.len() * std::mem::size_of::<Option<Gate>>()
            + d.best_content.len() * 4
            + self.shared.product_cat.len() * 4;
        let (users, user_bytes) = profile_bytes(&self.users);
        let counters = t.products.bytes()
            + t.contents.bytes()
            + t.merchants.bytes()
            + t.categories.bytes()
            + t.live.bytes();
        MemoryReport {
            per_product: t.products.bytes_per_entity(),
            per_product_derived: derived_products / n,
            per_content: t.contents.bytes_per_entity() + t.live.bytes_per_entity(),
            users,
            user_bytes,
            total: counters
                + derived_products
                + user_bytes
                + d.content_rates.len() * 4
                + t.co.bytes(),
        }
    }
}
