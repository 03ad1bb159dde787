//! Rank (精排): the candidates' feature rows, the scorer's heads, their
//! fusion into one value per candidate, then the business boosts
//! ([`Ranked`]). Also the ranking core on given rows (no retrieval, no
//! filters, no rerank) and its naive oracle.

use super::merge::Candidates;
use super::resolve::{RequestInput, context, resolve};
use super::{Pipeline, Scratch, Serving};
use crate::error::{Error, Result};
use crate::features::{
    FeatureContext, FeatureMatrix, HEADS, NaiveRequest, RankRow, RequestLists, SOURCE_SLOTS, col,
    compute_features, features_naive,
};
use crate::ids::ItemIdx;
use crate::kernels::{Scored, top_k_in_place};
use crate::rank::Fusion;
use crate::request::{FeedRequest, Surface};
use crate::signals::Rate;
use crate::stage::{RequestContext, Scorer};

/// What ranking wrote: per candidate (in [`Candidates`] order) its feature
/// row, `HEADS` heads and fused value; and the per-request lists features
/// read.
#[derive(Debug, Default)]
pub(crate) struct Ranked {
    pub(crate) features: FeatureMatrix,
    pub(crate) heads: Vec<f32>,
    pub(crate) values: Vec<f32>,
    lists: RequestLists,
}

/// What ranking found out about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ranking {
    /// What relevance the fusion reads, if any.
    pub(crate) relevance: RelevanceFrom,
    /// Non-finite features and heads replaced by 0.
    pub(crate) repaired: usize,
}

/// Features of `c.rows`, then heads and fused values into `out`.
pub(crate) fn rank(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    state: &crate::state::ServingState,
    has_query: bool,
    c: &Candidates,
    out: &mut Ranked,
) -> Ranking {
    out.lists.prepare(ctx.catalog, ctx.signals, ctx.profile, ctx.at);
    out.lists.prepare_text(ctx.lexical, ctx.plan, &c.rows);
    let intents = query_vectors(p, ctx, has_query);
    // The relevance model needs the query's text; a vector-only query is
    // ordered by its cosine (and the search source's score), as before.
    let has_text = !ctx.plan.slots().is_empty();
    let rank_rows = &state.rank_rows[..];
    let fctx = feature_context(p, ctx, rank_rows, &intents, &out.lists, has_text);
    compute_features(&fctx, &c.rows, &c.src_scores, &c.counts, &mut out.features);
    let repaired = out.features.repair_non_finite();
    let searched = c.masks.iter().any(|&m| m & p.search_mask != 0);
    let relevance = RelevanceFrom::of(has_text, has_query || !intents.is_empty() || searched);
    let fusion = p.config.fusion.get(ctx.surface());
    let repaired =
        repaired + score_and_fuse(p.scorer_for(ctx, state), rank_rows, fusion, relevance, c, out);
    Ranking { relevance, repaired }
}

/// Where the fusion's relevance term comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelevanceFrom {
    /// Nothing to be relevant to: no relevance term.
    None,
    /// The request's query text: the `relevance` feature (the model of
    /// text match, coverage and cosine).
    Query,
    /// A query vector without text, search intents or a search source's
    /// candidates: the larger of `relevance` (the best cosine) and the
    /// search source's score.
    Other,
}

impl RelevanceFrom {
    fn of(has_text: bool, other: bool) -> RelevanceFrom {
        match (has_text, other) {
            (true, _) => RelevanceFrom::Query,
            (false, true) => RelevanceFrom::Other,
            (false, false) => RelevanceFrom::None,
        }
    }

    /// The relevance term of a candidate with `features`.
    #[inline]
    fn term(self, features: &[f32]) -> Option<f32> {
        match self {
            RelevanceFrom::None => None,
            RelevanceFrom::Query => Some(features[col::RELEVANCE]),
            RelevanceFrom::Other => Some(features[col::RELEVANCE].max(features[col::SRC_SEARCH])),
        }
    }
}

/// The unit vectors query relevance is measured against: the request's
/// query, else on omni the user's recent search intents.
fn query_vectors<'a>(p: &Pipeline, ctx: &RequestContext<'a>, has_query: bool) -> Vec<&'a [f32]> {
    if let Some(q) = ctx.query {
        return vec![q];
    }
    if has_query || ctx.surface() != Surface::Omni {
        return Vec::new();
    }
    let Some(profile) = ctx.profile else { return Vec::new() };
    let n = profile.searches().len();
    profile
        .searches()
        .skip(n.saturating_sub(p.config.sources.intents))
        .filter_map(|x| x.vector.as_deref())
        .collect()
}

/// What feature assembly reads for one request (the fast path and the
/// naive oracle alike).
fn feature_context<'a>(
    p: &'a Pipeline,
    ctx: &RequestContext<'a>,
    rank_rows: &'a [RankRow],
    queries: &'a [&'a [f32]],
    lists: &'a RequestLists,
    has_text: bool,
) -> FeatureContext<'a> {
    FeatureContext {
        catalog: ctx.catalog,
        signals: ctx.signals,
        profile: ctx.profile,
        at: ctx.at,
        rank_rows,
        fresh_scale: p.config.fresh_scale as f32,
        queries,
        lists,
        lexical: ctx.lexical,
        plan: ctx.plan,
        relevance: has_text.then_some(&p.config.relevance),
        co: ctx.co_engaged,
    }
}

/// Runs `scorer` over the features into `out.heads` and fuses into
/// `out.values`; returns how many non-finite heads were replaced by 0.
fn score_and_fuse(
    scorer: &dyn Scorer,
    rank_rows: &[RankRow],
    fusion: &Fusion,
    relevance: RelevanceFrom,
    c: &Candidates,
    out: &mut Ranked,
) -> usize {
    let n = out.features.rows();
    out.heads.clear();
    out.heads.resize(n * HEADS, 0.0);
    scorer.score(&out.features, &mut out.heads);
    let mut repaired = 0;
    for h in &mut out.heads {
        *h = if h.is_finite() {
            h.clamp(0.0, 1.0)
        } else {
            repaired += 1;
            0.0
        };
    }
    out.values.clear();
    out.values.resize(n, 0.0);
    let (heads, features) = (&out.heads, &out.features);
    // Term by term over all candidates, as `Fusion::terms` computes them;
    // the feature row is read only for the relevance term.
    fusion.values_into(&mut out.values, |k, i| {
        let signals = || {
            let rr = &rank_rows[c.rows[i].index()];
            (rr.price_band, rr.quality, rr.refund)
        };
        let rel = || relevance.term(features.row(i));
        Fusion::term(k, &heads[i * HEADS..], signals, rel)
    });
    repaired
}

/// Boosts: each candidate's fused value times the business rules' boosts
/// in force for it.
pub(crate) fn boost(ctx: &RequestContext<'_>, c: &Candidates, out: &mut Ranked) {
    if !ctx.rules.has_boosts() {
        return;
    }
    for (v, &r) in out.values.iter_mut().zip(&c.rows) {
        // Both finite; the product saturates rather than becoming infinite.
        *v = (*v * boost_factor(ctx, r)).min(f32::MAX);
    }
}

/// The business boost in force for `row` (1 when there is none): what the
/// boost stage multiplies and the explanation reports.
pub(crate) fn boost_factor(ctx: &RequestContext<'_>, row: ItemIdx) -> f32 {
    if !ctx.rules.has_boosts() {
        return 1.0;
    }
    let catalog = ctx.catalog;
    let (product, merchant) = (catalog.product_id(row), catalog.merchant_of(row).id);
    ctx.rules.boost(product, merchant, catalog.categories()[row.index()], ctx.at)
}

/// The fusion terms of one candidate.
#[inline]
pub(crate) fn fusion_terms(
    heads: &[f32],
    features: &[f32],
    rr: &RankRow,
    relevance: RelevanceFrom,
) -> [f32; 7] {
    Fusion::terms(heads, rr.price_band, rr.quality, relevance.term(features), rr.refund)
}

/// Resolves `req` and ranks `rows` (no source found them) into `s`;
/// `what` names the caller in errors.
fn rank_given(
    p: &Pipeline,
    s: &mut Scratch,
    on: Serving<'_>,
    req: &FeedRequest,
    rows: &[ItemIdx],
    what: &'static str,
) -> Result<()> {
    let Scratch { input, candidates, ranked, .. } = s;
    let r = resolve(p, input, on, req)?;
    check_rows(rows, on.state.catalog.len(), what)?;
    let ctx = context(req, on.state, on.rules, input, &r);
    candidates.set_given(rows);
    rank(p, &ctx, on.state, r.has_query, candidates, ranked);
    Ok(())
}

/// Errors: a row outside a catalog of `n` rows, for the caller `what`.
fn check_rows(rows: &[ItemIdx], n: usize, what: &'static str) -> Result<()> {
    match rows.iter().find(|r| r.index() >= n) {
        Some(bad) => Err(Error::invalid_value(
            "rows",
            what,
            format!("row {} is outside the catalog of {n}", bad.0),
        )),
        None => Ok(()),
    }
}

/// The candidates' fused values as `(row, value)`, best first, `k` at
/// most, in `scored`.
fn best_values<'s>(
    c: &Candidates,
    ranked: &Ranked,
    scored: &'s mut Vec<Scored>,
    k: usize,
) -> &'s [Scored] {
    scored.clear();
    scored.extend(c.rows.iter().zip(&ranked.values).map(|(&row, &v)| Scored { row, score: v }));
    top_k_in_place(scored, k);
    &scored[..]
}

/// Ranks a caller's candidates as the request's surface would: every
/// enabled source scores the given rows it would have found
/// ([`CandidateSource::score_given`](crate::stage::CandidateSource::score_given)),
/// their scores fill the source columns as the merge stage fills them,
/// then features, scorer and fusion. `(row, value)` best first, every
/// given row once, in `s`'s placement buffer.
pub(crate) fn rank_candidates<'s>(
    p: &Pipeline,
    s: &'s mut Scratch,
    on: Serving<'_>,
    req: &FeedRequest,
    rows: &[ItemIdx],
) -> Result<&'s [Scored]> {
    let Scratch { input, retrieved, candidates, ranked, placement } = s;
    let r = resolve(p, input, on, req)?;
    let mut given = rows.to_vec();
    given.sort_unstable();
    given.dedup();
    check_rows(&given, on.state.catalog.len(), "rank_products")?;
    let ctx = context(req, on.state, on.rules, input, &r);
    candidates.set_given(&given);
    retrieved.bufs.resize_with(p.sources.len(), Default::default);
    for (i, src) in p.sources.iter().enumerate() {
        let buf = &mut retrieved.bufs[i];
        buf.clear();
        if !src.enabled(&ctx) || !p.stage_on(src.id(), req) {
            continue;
        }
        // A source that fails scores none of them, as in retrieval.
        if src.score_given(&ctx, &given, buf).is_err() {
            buf.clear();
        }
        let max = buf.as_slice().iter().map(|h| h.score).fold(0.0f32, f32::max);
        for h in buf.as_slice() {
            let Ok(at) = given.binary_search(&h.row) else { continue };
            credit(p, candidates, at, i, h.score, max);
        }
    }
    rank(p, &ctx, on.state, r.has_query, candidates, ranked);
    Ok(best_values(candidates, ranked, &mut placement.scored, given.len()))
}

/// Features, scorer, fusion and top-k over given rows: `(row, value)` best
/// first, `req.k` at most, in `s`'s placement buffer.
pub(crate) fn score_rows<'s>(
    p: &Pipeline,
    s: &'s mut Scratch,
    on: Serving<'_>,
    req: &FeedRequest,
    rows: &[ItemIdx],
) -> Result<&'s [Scored]> {
    rank_given(p, s, on, req, rows, "score_rows")?;
    Ok(best_values(&s.candidates, &s.ranked, &mut s.placement.scored, req.k))
}

/// The feature rows ranking would see for `rows` in `req`.
pub(crate) fn features_for(
    p: &Pipeline,
    on: Serving<'_>,
    req: &FeedRequest,
    rows: &[ItemIdx],
) -> Result<FeatureMatrix> {
    let mut s = Scratch::default();
    let Scratch { input, retrieved, candidates, ranked, .. } = &mut s;
    let r = resolve(p, input, on, req)?;
    check_rows(rows, on.state.catalog.len(), "features_for")?;
    let ctx = context(req, on.state, on.rules, input, &r);
    // Every source retrieves as for the request; a given row a source found
    // gets its score there, normalized by that source's best as in a
    // served request's merge.
    super::retrieve::retrieve(p, &ctx, retrieved, &mut crate::request::Trace::default());
    candidates.set_given(rows);
    let mut by_row: Vec<(ItemIdx, usize)> = rows.iter().copied().zip(0..).collect();
    by_row.sort_unstable();
    for (i, buf) in retrieved.bufs.iter().enumerate() {
        let max = retrieved.max.get(i).copied().unwrap_or(0.0);
        for h in buf.as_slice() {
            let from = by_row.partition_point(|&(r, _)| r < h.row);
            for &(_, at) in by_row[from..].iter().take_while(|&&(r, _)| r == h.row) {
                credit(p, candidates, at, i, h.score, max);
            }
        }
    }
    rank(p, &ctx, on.state, r.has_query, candidates, ranked);
    Ok(std::mem::take(&mut ranked.features))
}

/// Credits candidate `at` with source `i`'s hit of score `score` (the
/// source's best `max`): its bit, its count, its normalized score slot.
fn credit(p: &Pipeline, candidates: &mut Candidates, at: usize, i: usize, score: f32, max: f32) {
    let bit = 1u32 << i;
    if candidates.masks[at] & bit == 0 {
        candidates.masks[at] |= bit;
        candidates.counts[at] += 1;
    }
    let v = if max > 0.0 && score.is_finite() { score / max } else { 0.0 };
    let cell = &mut candidates.src_scores[at * SOURCE_SLOTS + p.slots[i]];
    *cell = cell.max(v);
}

/// [`score_rows`] the plain way: a feature vector allocated per row
/// through the public signal accessors, the scorer called row by row, a
/// full sort. The oracle the fast path is tested against.
pub(crate) fn score_rows_naive(
    p: &Pipeline,
    on: Serving<'_>,
    req: &FeedRequest,
    rows: &[ItemIdx],
) -> Result<Vec<Scored>> {
    let mut input = RequestInput::default();
    let r = resolve(p, &mut input, on, req)?;
    let ctx = context(req, on.state, on.rules, &input, &r);
    let (catalog, signals) = (ctx.catalog, ctx.signals);
    if rows.iter().any(|r| r.index() >= catalog.len()) {
        return Err(Error::invalid_value("rows", "score_rows_naive", "row outside the catalog"));
    }
    let intents = query_vectors(p, &ctx, r.has_query);
    let lists = RequestLists::default();
    let has_text = !ctx.plan.slots().is_empty();
    let fctx = feature_context(p, &ctx, &on.state.rank_rows, &intents, &lists, has_text);
    let fusion = p.config.fusion.get(req.surface);
    let relevance = RelevanceFrom::of(has_text, r.has_query || !intents.is_empty());
    let scorer = p.scorer_for(&ctx, on.state);
    let once = NaiveRequest::new(&fctx);
    let mut out: Vec<Scored> = rows
        .iter()
        .map(|&row| {
            let f = features_naive(&fctx, &once, row, &[0.0; SOURCE_SLOTS], 0);
            let heads = naive_heads(scorer, &f);
            // The oracle reads the public accessors, not the packed rows.
            let relevance = relevance.term(&f);
            let terms = Fusion::terms(
                &heads,
                f[col::PRICE_BAND],
                signals.quality(row),
                relevance,
                signals.rate(row, Rate::RefundRate),
            );
            Scored { row, score: fusion.value(&terms) }
        })
        .collect();
    out.sort_by(crate::kernels::best_first);
    out.truncate(req.k);
    Ok(out)
}

/// One feature row's heads, scored alone and clamped as ranking does.
fn naive_heads(scorer: &dyn Scorer, f: &[f32]) -> [f32; HEADS] {
    let mut one = FeatureMatrix::new();
    one.set_single(f);
    let mut heads = [0.0f32; HEADS];
    scorer.score(&one, &mut heads);
    for h in &mut heads {
        *h = if h.is_finite() { h.clamp(0.0, 1.0) } else { 0.0 };
    }
    heads
}
