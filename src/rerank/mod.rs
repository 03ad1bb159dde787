//! Reranking (重排): the only stage that drops or reorders. From a pool of
//! scored candidates (best value first) it fills `k` positions one at a
//! time:
//!
//! 1. **fixed positions**: every `live_every`-th position goes to the best
//!    remaining candidate shown with a live stream on air;
//! 2. **exploration**: at most `exploration_slots` positions (every
//!    `exploration_every`-th) go to a new product with a good prior, drawn
//!    with the request's seed from the best few eligible;
//! 3. **quotas**: a source whose minimum share can only still be met by
//!    filling every remaining position with it takes the position; a
//!    candidate whose sources are all at their maximum share waits;
//! 4. otherwise the best by the diversity objective (MMR or greedy DPP on
//!    the embeddings, or plain value; past position [`MAX_DIVERSE`] plain
//!    value) among the candidates that keep the
//!    sliding-window caps per category and per merchant. If none keeps the
//!    caps and maximum shares they are relaxed for that position (rule
//!    `cap_relaxed`), so the feed is as long as the candidates allow.
//!
//! Products are unique in the pool (the merge deduplicates by product, and
//! each product gets one content card at presentation), so no card can
//! repeat a product.

mod explore;

pub(crate) use explore::stream;
pub use explore::{
    MAX_PLACKETT_LUCE, Stochastic, plackett_luce_draw, plackett_luce_marginals,
    plackett_luce_weights,
};

use crate::catalog::Embeddings;
use crate::error::{Error, Result};
use crate::ids::{CategoryId, ItemIdx};
use crate::kernels::dot;
use serde::{Deserialize, Serialize};

/// The diversity objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Diversity {
    /// Value order.
    None,
    /// Maximal marginal relevance: `λ · value/max − (1 − λ) · max cosine to
    /// the items already placed`.
    Mmr {
        /// Weight of value against novelty, in `[0, 1]`.
        lambda: f32,
    },
    /// Greedy MAP of a determinantal point process with kernel
    /// `L_ij = q_i q_j cos(i, j)`, `q_i = exp(θ · value_i/max)`.
    Dpp {
        /// Weight of value (quality) against diversity, `>= 0`.
        theta: f32,
    },
}

/// A minimum and maximum share of the feed for one candidate source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// The source id (e.g. `search`, `interest_ann`).
    pub source: String,
    /// At least this share of the `k` positions, if it has candidates.
    #[serde(default)]
    pub min_share: f32,
    /// At most this share.
    #[serde(default = "one")]
    pub max_share: f32,
}

fn one() -> f32 {
    1.0
}

/// Positions ordered by the diversity objective (MMR or DPP); later
/// positions of a long feed are placed by value, still under the caps and
/// quotas. Bounds the rerank's time and the DPP state (`pool × 256`).
pub const MAX_DIVERSE: usize = 256;

/// The widest cap window ([`RerankConfig::window`]).
pub const MAX_WINDOW: usize = 1_000;

/// Rerank settings of one surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankConfig {
    /// The diversity objective. Default MMR with λ = 0.8.
    pub diversity: Diversity,
    /// Sliding window for the caps, in positions, 1..=[`MAX_WINDOW`]. Default 8.
    pub window: usize,
    /// At most this many of one category in any window. Default 3.
    pub category_cap: usize,
    /// At most this many of one merchant in any window. Default 2.
    pub merchant_cap: usize,
    /// Exploration positions per feed at most. Default 1.
    pub exploration_slots: usize,
    /// Exploration goes to positions `n·every − 1`. Default 10.
    pub exploration_every: usize,
    /// A live-stream card every this many positions; 0: none. Default 0.
    pub live_every: usize,
    /// Per-source quotas. Default none.
    pub quotas: Vec<Quota>,
    /// Stochastic placement with known probabilities, after the rerank
    /// ([`Stochastic`]). Default off (a deterministic feed).
    pub stochastic: Stochastic,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            diversity: Diversity::Mmr { lambda: 0.8 },
            window: 8,
            category_cap: 3,
            merchant_cap: 2,
            exploration_slots: 1,
            exploration_every: 10,
            live_every: 0,
            quotas: Vec::new(),
            stochastic: Stochastic::Off,
        }
    }
}

impl RerankConfig {
    /// Checks every field; `field` prefixes the names in errors.
    pub fn validate(&self, field: &'static str) -> Result<()> {
        let bad = |why: String| Err(Error::invalid_config(field, why));
        match self.diversity {
            Diversity::Mmr { lambda } if !(0.0..=1.0).contains(&lambda) => {
                return bad(format!("diversity.lambda = {lambda}, expected [0, 1]"));
            }
            Diversity::Dpp { theta } if !(theta.is_finite() && (0.0..=20.0).contains(&theta)) => {
                return bad(format!("diversity.theta = {theta}, expected [0, 20]"));
            }
            _ => {}
        }
        if self.window == 0 || self.category_cap == 0 || self.merchant_cap == 0 {
            return bad("window, category_cap and merchant_cap must be >= 1".into());
        }
        if self.window > MAX_WINDOW {
            return bad(format!("window = {}, expected 1..={MAX_WINDOW}", self.window));
        }
        if self.exploration_every == 0 {
            return bad("exploration_every must be >= 1".into());
        }
        self.stochastic.validate(field)?;
        let mut min_total = 0.0;
        for q in &self.quotas {
            if !(0.0..=1.0).contains(&q.min_share)
                || !(0.0..=1.0).contains(&q.max_share)
                || q.min_share > q.max_share
            {
                return bad(format!(
                    "quota {}: need 0 <= min_share <= max_share <= 1, got {} and {}",
                    q.source, q.min_share, q.max_share
                ));
            }
            min_total += q.min_share;
        }
        if min_total > 1.0 + 1e-6 {
            return bad(format!("quota minimum shares sum to {min_total} > 1"));
        }
        Ok(())
    }
}

/// One scored candidate offered to the reranker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The product row.
    pub row: ItemIdx,
    /// Its fused value.
    pub value: f32,
    /// Bit `i` set: source `i` found it.
    pub sources: u32,
    /// Its category.
    pub category: CategoryId,
    /// Its merchant's row.
    pub merchant: u32,
    /// True if it can be shown with a live stream on air.
    pub live: bool,
    /// True if it may take an exploration slot.
    pub explore: bool,
}

/// A quota resolved to a source bit mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaMask {
    /// The sources it counts.
    pub mask: u32,
    /// Minimum share.
    pub min_share: f32,
    /// Maximum share.
    pub max_share: f32,
}

/// Rule bits recorded on placed items.
pub mod rules {
    /// The diversity objective moved it: placed above a higher-valued
    /// candidate, or held back below a lower-valued one.
    pub const DIVERSITY: u16 = 1;
    /// It waited: its category was at the cap in the window.
    pub const CATEGORY_CAP: u16 = 2;
    /// It waited: its merchant was at the cap in the window.
    pub const MERCHANT_CAP: u16 = 4;
    /// No candidate kept the caps; they were relaxed.
    pub const CAP_RELAXED: u16 = 8;
    /// An exploration slot.
    pub const EXPLORATION: u16 = 16;
    /// A fixed live-stream position.
    pub const FIXED_POSITION: u16 = 32;
    /// Placed to meet a source's minimum share.
    pub const QUOTA_MIN: u16 = 64;
    /// It waited: a source that found it was at its maximum share.
    pub const QUOTA_MAX: u16 = 128;
    /// Pinned to its position by a business rule (caps do not apply).
    pub const PIN: u16 = 256;
    /// Its value was multiplied by a business rule's boost.
    pub const BOOST: u16 = 512;
    /// Names, by bit.
    pub const NAMES: [(u16, &str); 10] = [
        (DIVERSITY, "diversity"),
        (CATEGORY_CAP, "category_cap"),
        (MERCHANT_CAP, "merchant_cap"),
        (CAP_RELAXED, "cap_relaxed"),
        (EXPLORATION, "exploration"),
        (FIXED_POSITION, "fixed_position"),
        (QUOTA_MIN, "quota_min"),
        (QUOTA_MAX, "quota_max"),
        (PIN, "pin"),
        (BOOST, "boost"),
    ];
}

/// One placed item: its index in the candidate slice and the rules that
/// placed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Index into the candidates.
    pub index: usize,
    /// [`rules`] bits.
    pub rules: u16,
}

/// Reusable working memory of [`rerank`].
#[derive(Debug, Default, Clone)]
pub struct RerankScratch {
    taken: Vec<bool>,
    allowed: Vec<bool>,
    /// Rules that held each candidate back while it waited.
    waited: Vec<u16>,
    /// MMR: best cosine to the placed items. DPP: `d_i²`.
    state: Vec<f32>,
    /// DPP: `c_i`, `pool × min(k, MAX_DIVERSE)`.
    c: Vec<f32>,
    ci: Vec<f32>,
    quota_counts: Vec<usize>,
    /// MMR and DPP: the candidates' embeddings gathered once, `pool × dim`
    /// contiguous, so each placement's similarity pass streams one small
    /// matrix instead of gathering rows from the catalog again.
    vecs: Vec<f32>,
    /// MMR: the candidates placed so far, in order, and for each candidate
    /// how many of them its `state` has seen (updated lazily, see `choose`).
    mmr_placed: Vec<u32>,
    mmr_seen: Vec<u32>,
}

/// A 64-bit mix of the seed and position, for exploration draws.
fn mix(seed: u64, p: u64) -> u64 {
    crate::ids::finalize64(seed ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// What the rerank places from: the pool (best value first), the
/// embeddings (for diversity), the surface's settings and quotas, how many
/// to place and the request's seed.
#[derive(Debug, Clone, Copy)]
pub struct RerankInput<'a> {
    /// The candidates, best fused value first.
    pub pool: &'a [Candidate],
    /// The catalog's embeddings (for diversity).
    pub embeddings: &'a Embeddings,
    /// The surface's rerank settings.
    pub config: &'a RerankConfig,
    /// The surface's quotas, resolved to source masks.
    pub quotas: &'a [QuotaMask],
    /// How many to place at most.
    pub k: usize,
    /// The request's seed for random choices.
    pub seed: u64,
}

/// Places up to `input.k` of `input.pool` (sorted by value, best first)
/// into `out`.
pub fn rerank(input: &RerankInput<'_>, s: &mut RerankScratch, out: &mut Vec<Placed>) {
    let RerankInput { pool: cands, embeddings: emb, config: cfg, quotas, k, seed } = *input;
    out.clear();
    let n = cands.len();
    let k = k.min(n);
    s.taken.clear();
    s.taken.resize(n, false);
    s.allowed.clear();
    s.allowed.resize(n, false);
    s.waited.clear();
    s.waited.resize(n, 0);
    s.mmr_placed.clear();
    s.mmr_seen.clear();
    s.mmr_seen.resize(n, 0);
    s.quota_counts.clear();
    s.quota_counts.resize(quotas.len(), 0);
    let vmax = cands.iter().map(|c| c.value).fold(f32::MIN_POSITIVE, f32::max);
    // The diversity objective orders the head of the feed; the positions
    // past it go by value (caps and quotas still hold), so a huge k costs
    // O(k · n), not the O(k² · n) time and n · k memory of DPP.
    let diverse = k.min(MAX_DIVERSE);
    s.state.clear();
    s.vecs.clear();
    if !matches!(cfg.diversity, Diversity::None) {
        s.vecs.reserve(n * emb.dim());
        for c in cands {
            s.vecs.extend_from_slice(emb.row(c.row));
        }
    }
    match cfg.diversity {
        Diversity::Mmr { .. } => s.state.resize(n, f32::NEG_INFINITY),
        Diversity::Dpp { theta } => {
            s.state.extend(cands.iter().map(|c| (2.0 * theta * c.value / vmax).exp()));
            s.c.clear();
            s.c.resize(n * diverse.max(1), 0.0);
        }
        Diversity::None => {}
    }
    let mut explored = 0;
    for p in 0..k {
        let (mut pick, mut rule) =
            fixed_or_exploration(cands, cfg, quotas, k, p, seed, &mut explored, s);
        if pick.is_none() {
            // A minimum share that must be met from here on takes the slot.
            let left = k - p;
            let forced = quotas.iter().enumerate().find_map(|(q, quota)| {
                let want = (quota.min_share * k as f32).ceil() as usize;
                let need = want.saturating_sub(s.quota_counts[q]);
                let available = (0..n).any(|i| !s.taken[i] && cands[i].sources & quota.mask != 0);
                (need > 0 && need >= left && available).then_some(quota.mask)
            });
            let diversity = if p < diverse { cfg.diversity } else { Diversity::None };
            let (chosen, r) = choose(cands, cfg, diversity, quotas, forced, vmax, k, out, s);
            pick = chosen;
            rule = r | if forced.is_some() { rules::QUOTA_MIN } else { 0 };
        }
        let Some(i) = pick else { break };
        let diversity = if p < diverse { cfg.diversity } else { Diversity::None };
        place(cands, emb, diversity, quotas, i, p, diverse, s);
        out.push(Placed { index: i, rules: rule | s.waited[i] });
    }
}

/// The candidate a fixed live position or an exploration slot gives
/// position `p`, with its rule; `(None, 0)` when neither applies.
#[allow(clippy::too_many_arguments)]
fn fixed_or_exploration(
    cands: &[Candidate],
    cfg: &RerankConfig,
    quotas: &[QuotaMask],
    k: usize,
    p: usize,
    seed: u64,
    explored: &mut usize,
    s: &RerankScratch,
) -> (Option<usize>, u16) {
    let n = cands.len();
    let mut rule = 0u16;
    let mut pick = None;
    if cfg.live_every > 0 && (p + 1).is_multiple_of(cfg.live_every) {
        pick = (0..n).find(|&i| {
            !s.taken[i] && cands[i].live && !over_max(&cands[i], quotas, &s.quota_counts, k)
        });
        rule = rules::FIXED_POSITION;
    }
    if pick.is_none()
        && *explored < cfg.exploration_slots
        && (p + 1).is_multiple_of(cfg.exploration_every)
    {
        // Draw among the best few eligible not already placed.
        let mut eligible = [usize::MAX; 4];
        let open = (0..n).filter(|&i| {
            !s.taken[i] && cands[i].explore && !over_max(&cands[i], quotas, &s.quota_counts, k)
        });
        for (slot, i) in eligible.iter_mut().zip(open) {
            *slot = i;
        }
        let m = eligible.iter().filter(|&&i| i != usize::MAX).count();
        if m > 0 {
            pick = Some(eligible[(mix(seed, p as u64) % m as u64) as usize]);
            rule = rules::EXPLORATION;
            *explored += 1;
        }
    }
    (pick, rule)
}

/// A candidate counts toward every quota whose source found it, so it
/// waits while any of those is at its maximum share of `k`.
fn over_max(c: &Candidate, quotas: &[QuotaMask], counts: &[usize], k: usize) -> bool {
    quotas.iter().zip(counts).any(|(quota, &n)| {
        c.sources & quota.mask != 0 && n >= (quota.max_share * k as f32).floor() as usize
    })
}

/// Chooses the next item by the diversity objective among those allowed.
#[allow(clippy::too_many_arguments)]
fn choose(
    cands: &[Candidate],
    cfg: &RerankConfig,
    diversity: Diversity,
    quotas: &[QuotaMask],
    forced: Option<u32>,
    vmax: f32,
    k: usize,
    placed: &[Placed],
    s: &mut RerankScratch,
) -> (Option<usize>, u16) {
    let n = cands.len();
    let window = &placed[placed.len().saturating_sub(cfg.window - 1)..];
    let over_max = |c: &Candidate, s: &RerankScratch| over_max(c, quotas, &s.quota_counts, k);
    for relax in [false, true] {
        let mut best: Option<(usize, f32)> = None;
        for i in 0..n {
            s.allowed[i] = false;
            if s.taken[i] {
                continue;
            }
            let c = &cands[i];
            if forced.is_some_and(|m| c.sources & m == 0) {
                continue;
            }
            if !relax && !quotas.is_empty() && over_max(c, s) {
                s.waited[i] |= rules::QUOTA_MAX;
                continue;
            }
            if !relax {
                let cat = window.iter().filter(|pl| cands[pl.index].category == c.category).count();
                let mer = window.iter().filter(|pl| cands[pl.index].merchant == c.merchant).count();
                if cat >= cfg.category_cap {
                    s.waited[i] |= rules::CATEGORY_CAP;
                    continue;
                }
                if mer >= cfg.merchant_cap {
                    s.waited[i] |= rules::MERCHANT_CAP;
                    continue;
                }
            }
            s.allowed[i] = true;
            let g = match diversity {
                Diversity::None => c.value,
                Diversity::Mmr { lambda } => {
                    match mmr_lazy_gain(s, i, lambda, c.value / vmax, best.map(|b| b.1)) {
                        Some(g) => g,
                        None => continue,
                    }
                }
                Diversity::Dpp { .. } => s.state[i],
            };
            if best.is_none_or(|(_, bg)| g > bg) {
                best = Some((i, g));
            }
        }
        if let Some((i, _)) = best {
            // Allowed candidates above it in value order wait for diversity.
            let mut rule = if relax { rules::CAP_RELAXED } else { 0 };
            for j in 0..i {
                if s.allowed[j] && cands[j].value > cands[i].value {
                    s.waited[j] |= rules::DIVERSITY;
                    rule |= rules::DIVERSITY;
                }
            }
            return (Some(i), rule);
        }
    }
    (None, 0)
}

/// MMR's gain of a candidate of scaled value `v` whose best similarity to
/// the placed items is `sim` (`-inf`: none placed yet, counted as 0).
#[inline]
fn mmr_gain(lambda: f32, v: f32, sim: f32) -> f32 {
    let sim = if sim.is_finite() { sim } else { 0.0 };
    lambda * v - (1.0 - lambda) * sim
}

/// Candidate `i`'s MMR gain, or `None` if it cannot beat `best`.
///
/// Lazy greedy: a candidate's best similarity only grows as items are
/// placed, so once it has seen one, the gain from its stale state bounds
/// the true gain from above (before that, "no similarity" counts as 0 and a
/// negative cosine would raise it). Only a candidate whose bound beats the
/// best so far is brought up to date: the same pick as a full pass, with a
/// few dot products instead of one per candidate per placement.
fn mmr_lazy_gain(
    s: &mut RerankScratch,
    i: usize,
    lambda: f32,
    v: f32,
    best: Option<f32>,
) -> Option<f32> {
    let stale = s.state[i];
    if stale.is_finite() || s.mmr_placed.is_empty() {
        let bound = mmr_gain(lambda, v, stale);
        if best.is_some_and(|bg| bound <= bg) {
            return None;
        }
    }
    mmr_refresh(s, i);
    Some(mmr_gain(lambda, v, s.state[i]))
}

/// Brings candidate `i`'s best similarity up to date with the items placed
/// since it was last looked at.
fn mmr_refresh(s: &mut RerankScratch, i: usize) {
    let dim = s.vecs.len() / s.taken.len().max(1);
    let seen = s.mmr_seen[i] as usize;
    let vi = &s.vecs[i * dim..(i + 1) * dim];
    let mut best = s.state[i];
    for &j in &s.mmr_placed[seen..] {
        let j = j as usize;
        best = best.max(dot(vi, &s.vecs[j * dim..(j + 1) * dim]));
    }
    s.state[i] = best;
    s.mmr_seen[i] = s.mmr_placed.len() as u32;
}

/// Marks `i` placed at position `p` and updates the diversity state
/// (`k` is the DPP state's stride: the diversified positions).
#[allow(clippy::too_many_arguments)]
fn place(
    cands: &[Candidate],
    emb: &Embeddings,
    diversity: Diversity,
    quotas: &[QuotaMask],
    i: usize,
    p: usize,
    k: usize,
    s: &mut RerankScratch,
) {
    s.taken[i] = true;
    for (q, quota) in quotas.iter().enumerate() {
        if cands[i].sources & quota.mask != 0 {
            s.quota_counts[q] += 1;
        }
    }
    let dim = emb.dim();
    let row_range = |j: usize| j * dim..(j + 1) * dim;
    match diversity {
        Diversity::None => {}
        Diversity::Mmr { .. } => s.mmr_placed.push(i as u32),
        Diversity::Dpp { theta } => {
            // Fast greedy MAP (Chen et al. 2018): c_j gains one entry, d_j²
            // drops by its square.
            let vmax = cands.iter().map(|c| c.value).fold(f32::MIN_POSITIVE, f32::max);
            let qi = (theta * cands[i].value / vmax).exp();
            let di = s.state[i].max(1e-12).sqrt();
            s.ci.clear();
            s.ci.extend_from_slice(&s.c[i * k..i * k + p]);
            for (j, c) in cands.iter().enumerate() {
                if s.taken[j] {
                    continue;
                }
                let qj = (theta * c.value / vmax).exp();
                let lij = qi * qj * dot(&s.vecs[row_range(j)], &s.vecs[row_range(i)]);
                let e = (lij - dot(&s.ci, &s.c[j * k..j * k + p])) / di;
                s.c[j * k + p] = e;
                s.state[j] -= e * e;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(rows: &[[f32; 2]]) -> Embeddings {
        Embeddings::from_rows("t", 2, rows.concat()).unwrap()
    }

    fn cand(row: u32, value: f32, category: u32, merchant: u32) -> Candidate {
        Candidate {
            row: ItemIdx(row),
            value,
            sources: 1,
            category: CategoryId(category),
            merchant,
            live: false,
            explore: false,
        }
    }

    fn run(cands: &[Candidate], e: &Embeddings, cfg: &RerankConfig, k: usize) -> Vec<Placed> {
        let mut out = Vec::new();
        let input =
            RerankInput { pool: cands, embeddings: e, config: cfg, quotas: &[], k, seed: 7 };
        rerank(&input, &mut RerankScratch::default(), &mut out);
        out
    }

    fn plain() -> RerankConfig {
        RerankConfig {
            diversity: Diversity::None,
            category_cap: 99,
            merchant_cap: 99,
            exploration_slots: 0,
            ..Default::default()
        }
    }

    #[test]
    fn a_long_feed_is_diversified_only_at_its_head() {
        let n = 700;
        let rows: Vec<[f32; 2]> =
            (0..n).map(|i| [(i as f32 * 0.01).cos(), (i as f32 * 0.01).sin()]).collect();
        let e = emb(&rows);
        let cands: Vec<Candidate> =
            (0..n).map(|i| cand(i as u32, 1.0 - i as f32 / n as f32, 0, 0)).collect();
        for diversity in [Diversity::Dpp { theta: 2.0 }, Diversity::Mmr { lambda: 0.5 }] {
            let cfg = RerankConfig { diversity, ..plain() };
            let mut s = RerankScratch::default();
            let mut out = Vec::new();
            let input = RerankInput {
                pool: &cands,
                embeddings: &e,
                config: &cfg,
                quotas: &[],
                k: usize::MAX,
                seed: 7,
            };
            rerank(&input, &mut s, &mut out);
            assert_eq!(out.len(), n);
            // The DPP state is pool × MAX_DIVERSE, not pool × k.
            assert!(s.c.len() <= n * MAX_DIVERSE, "{}", s.c.len());
            // Past the head, what is left goes in value order.
            let tail: Vec<usize> = out[MAX_DIVERSE..].iter().map(|p| p.index).collect();
            assert!(tail.windows(2).all(|w| w[0] < w[1]), "{diversity:?}");
        }
    }

    /// The textbook MMR: every step, every remaining candidate's gain from
    /// its best similarity to all placed items; the first best wins.
    fn mmr_naive(cands: &[Candidate], e: &Embeddings, lambda: f32, k: usize) -> Vec<usize> {
        let vmax = cands.iter().map(|c| c.value).fold(f32::MIN_POSITIVE, f32::max);
        let mut placed: Vec<usize> = Vec::new();
        while placed.len() < k.min(cands.len()) {
            let mut best: Option<(usize, f32)> = None;
            for (i, c) in cands.iter().enumerate() {
                if placed.contains(&i) {
                    continue;
                }
                let sim = placed
                    .iter()
                    .map(|&j| dot(e.row(c.row), e.row(cands[j].row)))
                    .fold(f32::NEG_INFINITY, f32::max);
                let g = mmr_gain(lambda, c.value / vmax, sim);
                if best.is_none_or(|(_, bg)| g > bg) {
                    best = Some((i, g));
                }
            }
            placed.push(best.unwrap().0);
        }
        placed
    }

    proptest::proptest! {
        /// The lazy MMR places exactly what the full pass places.
        #[test]
        fn lazy_mmr_equals_the_full_pass(
            points in proptest::collection::vec((-1.0f32..1.0, -1.0f32..1.0, 0.01f32..1.0), 1..40),
            lambda in 0.0f32..=1.0,
            k in 1usize..30,
        ) {
            let rows: Vec<[f32; 2]> = points
                .iter()
                .map(|&(x, y, _)| if x * x + y * y < 1e-6 { [1.0, 0.0] } else { [x, y] })
                .collect();
            let e = emb(&rows);
            let mut cands: Vec<Candidate> =
                points.iter().enumerate().map(|(i, p)| cand(i as u32, p.2, 0, i as u32)).collect();
            cands.sort_by(|a, b| b.value.total_cmp(&a.value));
            let cfg = RerankConfig { diversity: Diversity::Mmr { lambda }, ..plain() };
            let got: Vec<usize> = run(&cands, &e, &cfg, k).iter().map(|p| p.index).collect();
            proptest::prop_assert_eq!(got, mmr_naive(&cands, &e, lambda, k));
        }
    }

    #[test]
    fn mmr_picks_the_novel_item_over_a_near_duplicate() {
        // 0 and 1 are near-identical; 2 is orthogonal with a lower value.
        let e = emb(&[[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]]);
        let c = [cand(0, 1.0, 1, 1), cand(1, 0.9, 2, 2), cand(2, 0.6, 3, 3)];
        let cfg = RerankConfig { diversity: Diversity::Mmr { lambda: 0.5 }, ..plain() };
        // Second pick: 1 scores 0.5·0.9 − 0.5·0.99 = −0.045; 2 scores 0.3 − 0 = 0.3.
        let got: Vec<usize> = run(&c, &e, &cfg, 3).iter().map(|p| p.index).collect();
        assert_eq!(got, vec![0, 2, 1]);
        assert_eq!(run(&c, &e, &cfg, 3)[1].rules, rules::DIVERSITY);
        // With λ = 1 it is value order.
        let cfg = RerankConfig { diversity: Diversity::Mmr { lambda: 1.0 }, ..plain() };
        let got: Vec<usize> = run(&c, &e, &cfg, 3).iter().map(|p| p.index).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn dpp_prefers_spread_and_matches_the_determinant() {
        let e = emb(&[[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]]);
        let c = [cand(0, 1.0, 1, 1), cand(1, 1.0, 2, 2), cand(2, 1.0, 3, 3)];
        let cfg = RerankConfig { diversity: Diversity::Dpp { theta: 0.0 }, ..plain() };
        // Equal quality: det{0,2} = 1 beats det{0,1} = 1 − 0.99² .
        let got: Vec<usize> = run(&c, &e, &cfg, 2).iter().map(|p| p.index).collect();
        assert_eq!(got, vec![0, 2]);
    }

    #[test]
    fn category_caps_hold_in_every_window_and_relax_when_they_must() {
        let e = emb(&[[1.0, 0.0]; 6]);
        let c: Vec<Candidate> =
            (0..6).map(|i| cand(i, 1.0 - 0.1 * i as f32, 1 + u32::from(i >= 4), i)).collect();
        let cfg = RerankConfig { category_cap: 2, window: 3, ..plain() };
        let got = run(&c, &e, &cfg, 6);
        let cats: Vec<u32> = got.iter().map(|p| c[p.index].category.0).collect();
        // 1,1 then category 2 (4), then 1 can come back after the window.
        assert_eq!(cats[..3], [1, 1, 2]);
        // The third of category 1 waited for the cap; 4 did not.
        assert_eq!(got[2].rules & rules::CATEGORY_CAP, 0);
        assert_eq!(got[3].rules & rules::CATEGORY_CAP, rules::CATEGORY_CAP);
        assert_eq!(got.len(), 6);
        // Every window of 3 has at most 2 of a category.
        assert!(cats.windows(3).all(|w| w.iter().filter(|&&c| c == w[0]).count() <= 2));
        // One category only: the caps cannot hold, so they relax.
        let same: Vec<Candidate> = (0..4).map(|i| cand(i, 1.0 - 0.1 * i as f32, 1, i)).collect();
        let got = run(&same, &e, &cfg, 4);
        assert_eq!(got.len(), 4);
        assert_eq!(got[2].rules & rules::CAP_RELAXED, rules::CAP_RELAXED);
    }

    #[test]
    fn live_positions_exploration_and_quotas() {
        let e = emb(&[[1.0, 0.0]; 8]);
        let mut c: Vec<Candidate> = (0..8).map(|i| cand(i, 1.0 - 0.1 * i as f32, i, i)).collect();
        c[6].live = true;
        c[7].explore = true;
        c[5].sources = 2;
        let cfg =
            RerankConfig { live_every: 3, exploration_slots: 1, exploration_every: 4, ..plain() };
        let mut out = Vec::new();
        let quotas = [QuotaMask { mask: 2, min_share: 0.2, max_share: 1.0 }];
        let input =
            RerankInput { pool: &c, embeddings: &e, config: &cfg, quotas: &quotas, k: 5, seed: 1 };
        rerank(&input, &mut RerankScratch::default(), &mut out);
        let got: Vec<usize> = out.iter().map(|p| p.index).collect();
        // 0, 1, live 6 at position 2, exploration 7 at position 3, and the
        // last position forced to source 2's candidate (5) for its 20%.
        assert_eq!(got, vec![0, 1, 6, 7, 5]);
        assert_eq!(out[2].rules, rules::FIXED_POSITION);
        assert_eq!(out[3].rules, rules::EXPLORATION);
        assert_eq!(out[4].rules & rules::QUOTA_MIN, rules::QUOTA_MIN);
    }
}
