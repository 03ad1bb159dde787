//! User profiles: long-term and session interest, several interest vectors,
//! category affinities, purchases, searches and the seen set.

use crate::catalog::Embeddings;
use crate::ids::{CategoryId, ItemIdx, Timestamp, elapsed, shift};
use crate::kernels::{dot, kmeans};
use crate::signals::config::ProfileConfig;
use crate::signals::counters::decay_factor;
use std::collections::VecDeque;

/// One engagement kept for clustering and the session vector.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Engagement {
    /// The product row.
    pub row: ItemIdx,
    /// Its engagement weight (share of the event's weight).
    pub weight: f32,
    /// When.
    pub at: Timestamp,
}

/// One purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Purchase {
    /// The product row.
    pub row: ItemIdx,
    /// Its category.
    pub category: CategoryId,
    /// When.
    pub at: Timestamp,
}

/// A recent search: its text and, where given, its unit intent vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchIntent {
    /// When.
    pub at: Timestamp,
    /// The query text (cut to [`MAX_QUERY_BYTES`](crate::limits::MAX_QUERY_BYTES), trimmed).
    pub text: Option<Box<str>>,
    /// The normalized query embedding.
    pub vector: Option<Box<[f32]>>,
}

/// What the engine knows about one user. Read it through
/// [`Signals::profile`](crate::signals::Signals::profile); the
/// [`SignalStore`](crate::signals::SignalStore) writes it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserProfile {
    /// Long-term unit vector (empty until the first engagement).
    long: Vec<f32>,
    /// Norm of the decayed sum `long` is the direction of, at `long_t`.
    long_norm: f32,
    long_t: Timestamp,
    /// Session unit vector (empty if none), set by `finalize`.
    short: Vec<f32>,
    /// The session is over after this time.
    session_until: Timestamp,
    /// `k × dim` unit centroids, heaviest first, set by `finalize`.
    interests: Vec<f32>,
    interest_weights: Vec<f32>,
    recent: VecDeque<Engagement>,
    /// Category affinities, all referred to `affinity_t`.
    affinities: Vec<(CategoryId, f32)>,
    affinity_t: Timestamp,
    purchases: VecDeque<Purchase>,
    searches: VecDeque<SearchIntent>,
    seen: VecDeque<(ItemIdx, Timestamp)>,
    carts: VecDeque<(ItemIdx, Timestamp)>,
    events: u32,
    last_at: Timestamp,
    #[serde(skip)]
    pub(crate) dirty: bool,
}

impl UserProfile {
    /// The long-term interest: the unit direction of the decayed,
    /// engagement-weighted sum of engaged product embeddings. `None` before
    /// the first engagement.
    pub fn interest(&self) -> Option<&[f32]> {
        (!self.long.is_empty()).then_some(&self.long[..])
    }

    /// The session vector: the engagements of the latest session (no gap
    /// longer than the session gap), decayed by the short half-life. `None`
    /// if there is none or it ended before `at`.
    pub fn short_term(&self, at: Timestamp) -> Option<&[f32]> {
        (!self.short.is_empty() && at <= self.session_until).then_some(&self.short[..])
    }

    /// The interest vectors (spherical k-means over recent engagements),
    /// heaviest first, each with its share of the weight.
    pub fn interests(&self) -> impl ExactSizeIterator<Item = (f32, &[f32])> + '_ {
        let dim = if self.interest_weights.is_empty() {
            1
        } else {
            self.interests.len() / self.interest_weights.len()
        };
        self.interest_weights.iter().copied().zip(self.interests.chunks_exact(dim))
    }

    /// The interest centroids as one row-major block (`interests().len()`
    /// rows of the catalog's dimension), for loops that read them per
    /// candidate.
    pub(crate) fn interest_block(&self) -> &[f32] {
        &self.interests
    }

    /// The most recent engagements, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Engagement> + ExactSizeIterator + '_ {
        self.recent.iter()
    }

    /// The user's share of engagement in `category` (decayed by the long
    /// half-life; shares sum to 1 over the kept categories), 0 if unknown.
    pub fn category_affinity(&self, category: CategoryId) -> f32 {
        let total: f32 = self.affinities.iter().map(|a| a.1).sum();
        match self.affinities.iter().find(|a| a.0 == category) {
            Some(a) if total > 0.0 => a.1 / total,
            _ => 0.0,
        }
    }

    /// Categories with an affinity, strongest first, with their shares.
    pub fn top_categories(&self) -> Vec<(CategoryId, f32)> {
        let total: f32 = self.affinities.iter().map(|a| a.1).sum();
        let mut v: Vec<(CategoryId, f32)> =
            self.affinities.iter().map(|&(c, x)| (c, x / total.max(f32::MIN_POSITIVE))).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Purchases, oldest first.
    pub fn purchases(&self) -> impl DoubleEndedIterator<Item = &Purchase> + ExactSizeIterator + '_ {
        self.purchases.iter()
    }

    /// The last time the user bought `row`, if the kept purchases have it.
    pub fn bought_at(&self, row: ItemIdx) -> Option<Timestamp> {
        self.purchases.iter().rev().find(|p| p.row == row).map(|p| p.at)
    }

    /// The last purchase in `category`, if the kept purchases have one.
    pub fn last_purchase_in(&self, category: CategoryId) -> Option<&Purchase> {
        self.purchases.iter().rev().find(|p| p.category == category)
    }

    /// Recent searches, oldest first.
    pub fn searches(
        &self,
    ) -> impl DoubleEndedIterator<Item = &SearchIntent> + ExactSizeIterator + '_ {
        self.searches.iter()
    }

    /// Products shown to the user at or after `since`.
    pub fn seen_since(&self, since: Timestamp) -> impl Iterator<Item = ItemIdx> + '_ {
        self.seen.iter().filter(move |s| s.1 >= since).map(|s| s.0)
    }

    /// Products added to the cart, oldest first (at most 8 kept).
    pub fn carts(
        &self,
    ) -> impl DoubleEndedIterator<Item = &(ItemIdx, Timestamp)> + ExactSizeIterator + '_ {
        self.carts.iter()
    }

    /// Events of this user that were applied.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Time of the user's newest applied event.
    pub fn last_at(&self) -> Timestamp {
        self.last_at
    }

    /// Heap and inline bytes this profile holds.
    pub fn bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + 4 * (self.long.capacity() + self.short.capacity() + self.interests.capacity())
            + 4 * self.interest_weights.capacity()
            + self.recent.capacity() * size_of::<Engagement>()
            + self.affinities.capacity() * size_of::<(CategoryId, f32)>()
            + self.purchases.capacity() * size_of::<Purchase>()
            + (self.seen.capacity() + self.carts.capacity()) * size_of::<(ItemIdx, Timestamp)>()
            + self
                .searches
                .iter()
                .map(|s| {
                    size_of::<SearchIntent>()
                        + s.text.as_ref().map_or(0, |t| t.len())
                        + s.vector.as_ref().map_or(0, |v| 4 * v.len())
                })
                .sum::<usize>()
    }

    // ---- writes (the store calls these) ----

    pub(crate) fn touch(&mut self, at: Timestamp) {
        self.events = self.events.saturating_add(1);
        if self.events == 1 || at > self.last_at {
            self.last_at = at;
        }
    }

    pub(crate) fn saw(&mut self, row: ItemIdx, at: Timestamp, cfg: &ProfileConfig) {
        push_capped(&mut self.seen, (row, at), cfg.seen);
    }

    /// Adds `weight` of engagement with `row` (embedding `e`) at `at`.
    pub(crate) fn engage(
        &mut self,
        row: ItemIdx,
        category: CategoryId,
        e: &[f32],
        weight: f32,
        at: Timestamp,
        cfg: &ProfileConfig,
    ) {
        let h = cfg.long_half_life as f64;
        // Long term: unit direction × norm, lazily decayed (exact in any
        // arrival order, like the counters).
        if self.long.is_empty() {
            self.long = e.iter().map(|&x| x * weight).collect();
            self.long_t = at;
        } else {
            let (keep, add) = if at >= self.long_t {
                (self.long_norm * decay_factor(h, elapsed(at, self.long_t)) as f32, weight)
            } else {
                (self.long_norm, weight * decay_factor(h, elapsed(self.long_t, at)) as f32)
            };
            for (x, &y) in self.long.iter_mut().zip(e) {
                *x = *x * keep + add * y;
            }
            self.long_t = self.long_t.max(at);
        }
        let norm = dot(&self.long, &self.long).sqrt();
        if norm > 1e-12 {
            self.long.iter_mut().for_each(|x| *x /= norm);
            self.long_norm = norm;
        }
        // Category affinity, every entry referred to `affinity_t`.
        let (keep, add) = if at >= self.affinity_t {
            (decay_factor(h, elapsed(at, self.affinity_t)) as f32, weight)
        } else {
            (1.0, weight * decay_factor(h, elapsed(self.affinity_t, at)) as f32)
        };
        if keep != 1.0 {
            self.affinities.iter_mut().for_each(|a| a.1 *= keep);
        }
        self.affinity_t = self.affinity_t.max(at);
        match self.affinities.iter().position(|a| a.0 == category) {
            Some(i) => self.affinities[i].1 += add,
            None if self.affinities.len() < cfg.categories => self.affinities.push((category, add)),
            None => {
                // Full: the weakest category gives way if the new one is stronger.
                if let Some(weakest) = self.affinities.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1))
                    && weakest.1 < add
                {
                    *weakest = (category, add);
                }
            }
        }
        push_capped(&mut self.recent, Engagement { row, weight, at }, cfg.recent);
        self.dirty = true;
    }

    pub(crate) fn carted(&mut self, row: ItemIdx, at: Timestamp) {
        push_capped(&mut self.carts, (row, at), 8);
    }

    pub(crate) fn bought(&mut self, p: Purchase, cfg: &ProfileConfig) {
        push_capped(&mut self.purchases, p, cfg.purchases);
    }

    pub(crate) fn searched(&mut self, s: SearchIntent, cfg: &ProfileConfig) {
        push_capped(&mut self.searches, s, cfg.searches);
    }

    /// Recomputes the session vector and the interest clusters from the
    /// recent engagements.
    /// True if every row it names is below `n` and every vector has
    /// dimension `dim` (a snapshot's profiles are checked with it).
    pub(crate) fn fits(&self, n: u32, dim: usize) -> bool {
        let rows = self.recent.iter().map(|e| e.row).chain(self.purchases.iter().map(|p| p.row));
        let more = self.seen.iter().chain(&self.carts).map(|s| s.0);
        let vectors_fit = [&self.long, &self.short].iter().all(|v| v.is_empty() || v.len() == dim)
            && self.interests.len() == self.interest_weights.len() * dim
            && self.searches.iter().all(|s| s.vector.as_ref().is_none_or(|v| v.len() == dim));
        vectors_fit && rows.chain(more).all(|r| r.0 < n)
    }

    pub(crate) fn finalize(&mut self, emb: &Embeddings, cfg: &ProfileConfig) {
        self.dirty = false;
        let dim = emb.dim();
        if self.recent.is_empty() {
            return;
        }
        // Recent engagements arrive nearly in order; sort a copy by time.
        let mut recent: Vec<Engagement> = self.recent.iter().copied().collect();
        recent.sort_by_key(|e| e.at);
        let newest = recent[recent.len() - 1].at;
        // Session: walk back from the newest engagement until a long gap.
        let mut start = recent.len() - 1;
        while start > 0 && elapsed(recent[start].at, recent[start - 1].at) <= cfg.session_gap {
            start -= 1;
        }
        self.short.clear();
        self.short.resize(dim, 0.0);
        for e in &recent[start..] {
            let w =
                e.weight * decay_factor(cfg.short_half_life as f64, elapsed(newest, e.at)) as f32;
            for (x, &y) in self.short.iter_mut().zip(emb.row(e.row)) {
                *x += w * y;
            }
        }
        if !normalize(&mut self.short) {
            self.short.clear();
        }
        self.session_until = shift(newest, cfg.session_gap);
        // Interests: weighted spherical k-means over the recent engagements.
        let weights: Vec<f32> = recent
            .iter()
            .map(|e| {
                e.weight * decay_factor(cfg.long_half_life as f64, elapsed(newest, e.at)) as f32
            })
            .collect();
        let rows: Vec<ItemIdx> = recent.iter().map(|e| e.row).collect();
        let (centroids, shares) =
            spherical_kmeans(emb, &rows, &weights, cfg.interests, cfg.kmeans_iterations);
        self.interests = centroids;
        self.interest_weights = shares;
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, x: T, cap: usize) {
    if cap == 0 {
        return;
    }
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(x);
}

/// Scales `v` to unit length; false (and `v` untouched) if it is ~zero.
fn normalize(v: &mut [f32]) -> bool {
    let n = dot(v, v).sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
        true
    } else {
        false
    }
}

/// Weighted spherical k-means of the unit rows `rows` of `emb`, at most `k`
/// clusters ([`kernels::kmeans`](crate::kernels)), seeded deterministically
/// (the heaviest point, then the point farthest from the seeds so far,
/// weighted), so equal input gives equal output. Returns `k' × dim` unit
/// centroids, heaviest first, and their weight shares.
pub(crate) fn spherical_kmeans(
    emb: &Embeddings,
    rows: &[ItemIdx],
    weights: &[f32],
    k: usize,
    iterations: usize,
) -> (Vec<f32>, Vec<f32>) {
    let dim = emb.dim();
    let points = (emb.as_slice(), dim);
    let rows: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let mut centroids = kmeans::farthest_first(points, &rows, weights, k);
    if centroids.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let clusters = kmeans::spherical_kmeans(
        points,
        &rows,
        Some(weights),
        &mut centroids,
        iterations,
        kmeans::Assign::Scalar,
    );
    let mass = clusters.mass;
    // Heaviest first; drop clusters that ended empty.
    let mut order: Vec<usize> = (0..mass.len()).filter(|&c| mass[c] > 0.0).collect();
    order.sort_by(|&a, &b| mass[b].total_cmp(&mass[a]).then(a.cmp(&b)));
    let total: f32 = order.iter().map(|&c| mass[c]).sum();
    let mut out = Vec::with_capacity(order.len() * dim);
    for &c in &order {
        out.extend_from_slice(&centroids[c * dim..(c + 1) * dim]);
    }
    let shares = order.iter().map(|&c| mass[c] / total.max(f32::MIN_POSITIVE)).collect();
    (out, shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb() -> Embeddings {
        // Two tight groups: around e0 and around e1.
        let rows = [
            [1.0, 0.0, 0.0],
            [0.9, 0.1, 0.0],
            [0.95, -0.1, 0.05],
            [0.0, 1.0, 0.0],
            [0.1, 0.9, 0.0],
            [0.0, 0.0, 1.0],
        ];
        Embeddings::from_rows("test", 3, rows.concat()).unwrap()
    }

    #[test]
    fn interest_moves_toward_what_the_user_engages_with() {
        let emb = emb();
        let cfg = ProfileConfig::default();
        let mut p = UserProfile::default();
        p.engage(ItemIdx(0), CategoryId(1), emb.row(ItemIdx(0)), 1.0, 0, &cfg);
        let before = dot(p.interest().unwrap(), emb.row(ItemIdx(3)));
        for t in 1..5 {
            p.engage(ItemIdx(3), CategoryId(2), emb.row(ItemIdx(3)), 5.0, t * 60, &cfg);
        }
        let after = dot(p.interest().unwrap(), emb.row(ItemIdx(3)));
        assert!(after > before + 0.5, "{before} -> {after}");
        assert!((dot(p.interest().unwrap(), p.interest().unwrap()) - 1.0).abs() < 1e-5);
        assert!(p.category_affinity(CategoryId(2)) > 0.9);
        assert!((p.top_categories().iter().map(|c| c.1).sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn old_engagement_fades_from_the_long_term_vector() {
        let emb = emb();
        let cfg = ProfileConfig::default();
        let mut p = UserProfile::default();
        p.engage(ItemIdx(0), CategoryId(1), emb.row(ItemIdx(0)), 1.0, 0, &cfg);
        // One equal-weight engagement 3 half-lives later: weights 1/8 vs 1.
        let later = 3 * cfg.long_half_life;
        p.engage(ItemIdx(5), CategoryId(3), emb.row(ItemIdx(5)), 1.0, later, &cfg);
        let v = p.interest().unwrap();
        assert!((v[2] / v[0] - 8.0).abs() < 1e-3, "{v:?}");
        // The same two events in the other order give the same vector.
        let mut q = UserProfile::default();
        q.engage(ItemIdx(5), CategoryId(3), emb.row(ItemIdx(5)), 1.0, later, &cfg);
        q.engage(ItemIdx(0), CategoryId(1), emb.row(ItemIdx(0)), 1.0, 0, &cfg);
        for (a, b) in v.iter().zip(q.interest().unwrap()) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn kmeans_separates_two_interests_and_the_session_is_the_last_one() {
        let emb = emb();
        let cfg = ProfileConfig { interests: 2, ..Default::default() };
        let mut p = UserProfile::default();
        for (i, row) in [0u32, 1, 2, 0, 1].into_iter().enumerate() {
            p.engage(ItemIdx(row), CategoryId(1), emb.row(ItemIdx(row)), 1.0, i as i64 * 60, &cfg);
        }
        // A new session two hours later on the other group.
        for (i, row) in [3u32, 4].into_iter().enumerate() {
            let at = 7_200 + i as i64 * 60;
            p.engage(ItemIdx(row), CategoryId(2), emb.row(ItemIdx(row)), 1.0, at, &cfg);
        }
        p.finalize(&emb, &cfg);
        let interests: Vec<(f32, &[f32])> = p.interests().collect();
        assert_eq!(interests.len(), 2);
        assert!((interests[0].0 - 5.0 / 7.0).abs() < 1e-3, "{:?}", interests[0].0);
        assert!(interests[0].1[0] > 0.9 && interests[1].1[1] > 0.9);
        let short = p.short_term(7_300).unwrap();
        assert!(short[1] > 0.95, "{short:?}");
        assert!(p.short_term(7_260 + cfg.session_gap + 1).is_none());
    }
}
