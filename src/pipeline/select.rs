//! Select (重排): the best by value (at least `k`, and every pinned
//! candidate) form the rerank pool; the reranker places up to `k` of them;
//! pins take their positions ([`Placement`]).

use super::Pipeline;
use super::merge::Candidates;
use super::rank::Ranked;
use crate::features::col;
use crate::ids::{ItemIdx, elapsed};
use crate::kernels::{Scored, top_k_in_place};
use crate::request::Surface;
use crate::rerank::{
    Candidate, Placed, RerankInput, RerankScratch, Stochastic, plackett_luce_draw,
    plackett_luce_marginals, plackett_luce_weights, rules, stream,
};
use crate::stage::{DefaultReranker, RequestContext, Reranker};

/// What selection decided: the pool (`scored[i].row` indexes
/// [`Candidates`], best value first, and `pool[i]` is that candidate) and
/// the placed pool indexes in feed order.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    pub(crate) scored: Vec<Scored>,
    pub(crate) pool: Vec<Candidate>,
    pub(crate) placed: Vec<Placed>,
    /// Pool indexes already placed (checks a reranker's output), and
    /// pinned ones.
    taken: Vec<bool>,
    /// Per candidate (in [`Candidates`] order): its pool index, or
    /// `u32::MAX` when it is not in the pool.
    pool_of: Vec<u32>,
    /// The pins in force that found a candidate, by position: (position,
    /// candidate index) as the pool resolves them, then (position, pool
    /// index), each pool index once, as placement uses them.
    pins: Vec<(usize, usize)>,
    /// The placement with the pins in their positions.
    merged: Vec<Placed>,
    /// Per placed item, the probability that the policy put it there (1
    /// unless the surface's placement is stochastic).
    pub(crate) propensity: Vec<f32>,
    rerank: RerankScratch,
}

/// Fills `out` from the ranked candidates.
pub(crate) fn select(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    c: &Candidates,
    ranked: &Ranked,
    out: &mut Placement,
) {
    let req = ctx.request;
    pool(p, ctx, c, ranked, out);
    let surface_index = Surface::ALL.iter().position(|&x| x == req.surface).unwrap_or(0);
    let input = RerankInput {
        pool: &out.pool,
        embeddings: ctx.catalog.embeddings(),
        config: p.config.rerank.get(req.surface),
        quotas: &p.quotas[surface_index],
        k: req.k,
        seed: req.seed ^ req.user.0.rotate_left(17),
    };
    out.placed.clear();
    let reranker: &dyn Reranker =
        if p.reranker.enabled(ctx) { &*p.reranker } else { &DefaultReranker };
    reranker.rerank(&input, ctx, &mut out.rerank, &mut out.placed);
    // A custom reranker is user code: only valid, distinct indexes stay.
    let n = out.pool.len();
    out.taken.clear();
    out.taken.resize(n, false);
    let taken = &mut out.taken;
    out.placed.retain(|pl| pl.index < n && !std::mem::replace(&mut taken[pl.index], true));
    out.placed.truncate(req.k);
    place_pins(ctx, out);
    let seed = crate::ids::finalize64(
        req.seed
            ^ req.user.0.rotate_left(17)
            ^ req.id.unwrap_or(0).rotate_left(31)
            ^ (ctx.at as u64).rotate_left(47),
    );
    stochastic(&p.config.rerank.get(req.surface).stochastic, seed, req.k, out);
}

/// The surface's stochastic placement ([`Stochastic`]), each placed
/// item's probability in `out.propensity`.
fn stochastic(cfg: &Stochastic, seed: u64, k: usize, out: &mut Placement) {
    out.propensity.clear();
    out.propensity.resize(out.placed.len(), 1.0);
    match cfg {
        Stochastic::Off => {}
        Stochastic::PlackettLuce { top_n, temperature } => {
            // Pins keep their positions; the other first `top_n` are drawn.
            let top = (*top_n).min(out.placed.len());
            let free: Vec<usize> =
                (0..top).filter(|&j| out.placed[j].rules & rules::PIN == 0).collect();
            if free.len() < 2 {
                return;
            }
            let items: Vec<Placed> = free.iter().map(|&j| out.placed[j]).collect();
            let values: Vec<f32> = items.iter().map(|pl| out.pool[pl.index].value).collect();
            let w = plackett_luce_weights(&values, *temperature);
            let m = plackett_luce_marginals(&w);
            let n = free.len();
            for (pos, i) in plackett_luce_draw(&w, stream(seed)).into_iter().enumerate() {
                out.placed[free[pos]] = items[i];
                out.propensity[free[pos]] = m[i * n + pos] as f32;
            }
        }
        Stochastic::Slots { positions, pool } => {
            out.taken.clear();
            out.taken.resize(out.pool.len(), false);
            for pl in &out.placed {
                out.taken[pl.index] = true;
            }
            // The next `pool` candidates below the feed, best value first.
            let mut left: Vec<usize> =
                (0..out.pool.len()).filter(|&i| !out.taken[i]).take(*pool).collect();
            let m = left.len();
            let mut next = stream(seed);
            let mut at: Vec<usize> = positions.iter().copied().filter(|&p| p < k).collect();
            at.sort_unstable();
            at.dedup();
            for p in at {
                if left.is_empty() || p > out.placed.len() {
                    break;
                }
                let pick = left.swap_remove((next() % left.len() as u64) as usize);
                out.placed.insert(p, Placed { index: pick, rules: rules::EXPLORATION });
                out.propensity.insert(p, 1.0 / m as f32);
            }
            out.placed.truncate(k);
            out.propensity.truncate(k);
        }
    }
}

/// The rerank pool: the top `rerank_pool` (at least `k`) by value plus
/// every pinned candidate, as rerank candidates.
fn pool(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    c: &Candidates,
    ranked: &Ranked,
    out: &mut Placement,
) {
    let (catalog, signals, req) = (ctx.catalog, ctx.signals, ctx.request);
    out.scored.clear();
    out.scored.extend(
        ranked.values.iter().enumerate().map(|(i, &v)| Scored { row: ItemIdx(i as u32), score: v }),
    );
    top_k_in_place(&mut out.scored, p.config.rerank_pool.max(req.k));
    out.pool_of.clear();
    out.pool_of.resize(c.rows.len(), u32::MAX);
    for (k, sc) in out.scored.iter().enumerate() {
        out.pool_of[sc.row.index()] = k as u32;
    }
    // Each pin in force is resolved to its candidate once, here.
    out.pins.clear();
    for pin in ctx.rules.pins(req.surface, ctx.at) {
        let Some(row) = catalog.row(pin.product) else { continue };
        if let Ok(i) = c.rows.binary_search(&row) {
            out.pins.push((pin.position, i));
            if out.pool_of[i] == u32::MAX {
                out.pool_of[i] = out.scored.len() as u32;
                out.scored.push(Scored { row: ItemIdx(i as u32), score: ranked.values[i] });
            }
        }
    }
    let (listed, cats, rate) = (catalog.listed_at(), catalog.categories(), signals.rate_scores());
    out.pool.clear();
    for sc in &out.scored {
        let i = sc.row.index();
        let row = c.rows[i];
        let fresh = elapsed(ctx.at, listed[row.index()]) <= p.config.explore_max_age;
        out.pool.push(Candidate {
            row,
            value: sc.score,
            sources: c.masks[i],
            category: cats[row.index()],
            merchant: catalog.merchant_row_of(row),
            live: ranked.features.row(i)[col::LIVE] > 0.0,
            explore: fresh && rate[row.index()] >= p.config.explore_min_rate,
        });
    }
}

/// Moves each pinned candidate to its position (caps do not apply to it),
/// then cuts the feed to `k`. Pinned rows leave their rerank places first,
/// then go in by position, so no pin shifts another (two at one position:
/// the later lands just after); a product pinned twice takes its lowest
/// position. Linear in the pins and the feed: one merge, no search per pin.
fn place_pins(ctx: &RequestContext<'_>, out: &mut Placement) {
    out.taken.clear();
    out.taken.resize(out.pool.len(), false);
    // The pool resolved the pins to candidates; map them to pool indexes,
    // each once (a product pinned twice keeps its lowest position).
    let mut kept = 0;
    for j in 0..out.pins.len() {
        let (position, i) = out.pins[j];
        let index = out.pool_of[i] as usize;
        if !std::mem::replace(&mut out.taken[index], true) {
            out.pins[kept] = (position, index);
            kept += 1;
        }
    }
    out.pins.truncate(kept);
    if out.pins.is_empty() {
        return;
    }
    let taken = &out.taken;
    out.placed.retain(|p| !taken[p.index]);
    // Pins come by position; one at a taken position lands just after.
    out.merged.clear();
    let mut rest = out.placed.iter().copied();
    for &(position, index) in &out.pins {
        while out.merged.len() < position {
            let Some(next) = rest.next() else { break };
            out.merged.push(next);
        }
        out.merged.push(Placed { index, rules: rules::PIN });
    }
    out.merged.extend(rest);
    out.merged.truncate(ctx.request.k);
    std::mem::swap(&mut out.placed, &mut out.merged);
}
