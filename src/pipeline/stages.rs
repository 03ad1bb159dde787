//! The stages of one request, each a method the orchestrator
//! ([`Recommender::recommend_with`](crate::Recommender::recommend_with))
//! calls in order. Each reads the request context and writes its part of
//! the [`Scratch`] and the [`Trace`].

use super::Scratch;
use super::scratch::RequestInput;
use crate::catalog::{Catalog, unit_into};
use crate::error::{Error, Result};
use crate::ids::{ContentId, ItemIdx, elapsed};
use crate::pipeline::RerankInput;
use crate::rank::features::{
    FEATURE_NAMES, FeatureContext, FeatureMatrix, RankRow, RequestLists, SOURCE_SLOTS, col,
    compute_features, features_naive,
};
use crate::rank::kernels::{Scored, top_k_in_place};
use crate::rank::scorer::{FUSION_TERMS, Fusion, HEAD_NAMES, HEADS};
use crate::recommender::Recommender;
use crate::request::{
    Explanation, FeedItem, FeedRequest, NamedValue, ScorePart, SourceHit, SourceTrace, Surface,
    Trace,
};
use crate::rerank::{Candidate, Placed, rules};
use crate::retrieve::{RequestContext, query_terms};
use crate::signals::{Rate, Signals, UserProfile};
use crate::state::ServingState;

/// Per-request inputs resolved before the stages run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub(crate) at: i64,
    /// Unknown ids in `exclude`.
    pub(crate) stale: usize,
    pub(crate) has_query: bool,
}

impl Recommender {
    /// Checks the request and resolves exclusions, the query and the time
    /// into `input`.
    pub(crate) fn resolve(
        &self,
        input: &mut RequestInput,
        state: &ServingState,
        req: &FeedRequest,
    ) -> Result<Resolved> {
        req.validate()?;
        self.check_skips(req)?;
        let catalog = &*state.catalog;
        input.excluded.clear();
        let mut stale = 0;
        for &p in &req.exclude {
            match catalog.row(p) {
                Some(row) => input.excluded.push(row),
                None => stale += 1,
            }
        }
        input.excluded.sort_unstable();
        input.excluded.dedup();
        input.query.clear();
        input.terms.clear();
        if let Some(q) = &req.query {
            if let Some(e) = &q.embedding {
                if e.len() != catalog.dim() {
                    return Err(Error::dimension(
                        "request.query.embedding",
                        catalog.dim(),
                        e.len(),
                    ));
                }
                unit_into("request.query.embedding", e, &mut input.query)?;
            }
            if let Some(t) = &q.text {
                input.terms = query_terms(t);
            }
        }
        let signals = &*state.signals;
        let at = req.at.unwrap_or_else(|| self.clock.now(signals));
        let w = signals.config().time_window;
        if !w.contains(at) {
            return Err(Error::invalid_value(
                "request.at",
                format_args!("user {}", req.user),
                format!("time {at} is outside the accepted window [{}, {})", w.min, w.max),
            ));
        }
        input.co.clear();
        if let Some(p) = signals.profile(req.user) {
            let seeds = crate::rank::features::CO_SEEDS;
            signals.co_scores(p, at, seeds, &mut input.co, &mut input.co_scratch);
        }
        let has_query = !input.query.is_empty() || !input.terms.is_empty();
        Ok(Resolved { at, stale, has_query })
    }

    /// Retrieve: every enabled source into its own buffer. A failing source
    /// (or one returning rows outside the catalog) is recorded and skipped.
    pub(crate) fn retrieve(&self, s: &mut Scratch, ctx: &RequestContext<'_>, trace: &mut Trace) {
        s.bufs.resize_with(self.sources.len(), Default::default);
        s.buf_max.clear();
        s.tagged.clear();
        let n = ctx.catalog.len();
        for (i, (source, buf)) in self.sources.iter().zip(&mut s.bufs).enumerate() {
            buf.clear();
            if !source.serves(ctx.surface()) || !self.stage_on(source.id(), ctx.request) {
                s.buf_max.push(0.0);
                continue;
            }
            let mut outcome = source.retrieve(ctx, buf);
            if outcome.is_ok() {
                if let Some(bad) = buf.as_slice().iter().find(|h| h.row.index() >= n) {
                    outcome = Err(Error::invalid_value(
                        "candidate row",
                        format_args!("source {}", source.id()),
                        format!("row {} is outside the catalog of {n}", bad.row.0),
                    ));
                }
            }
            if outcome.is_err() {
                buf.clear();
            }
            trace.sources.push(SourceTrace {
                source: source.id(),
                candidates: buf.len(),
                error: outcome.err().map(|e| e.to_string()),
            });
            let max = buf.as_slice().iter().map(|h| h.score).fold(0.0f32, f32::max);
            s.buf_max.push(if max.is_finite() { max } else { 0.0 });
            s.tagged.extend(buf.as_slice().iter().map(|h| (h.row, i as u8, h.score)));
        }
        if ctx.query.is_some() || !ctx.terms.is_empty() {
            let found: usize = (0..self.sources.len())
                .filter(|&i| self.search_mask & (1 << i) != 0)
                .map(|i| s.bufs[i].len())
                .sum();
            trace.query_matched = Some(found > 0);
        }
    }

    /// Merge: one row per product, with the sources that found it and their
    /// normalized scores (the best per feature slot).
    /// Delisted rows (tombstones) are dropped here, whatever source or pin
    /// produced them: no later stage ever sees one.
    pub(crate) fn merge(&self, s: &mut Scratch, catalog: &crate::Catalog) {
        if catalog.delisted_len() > 0 {
            s.tagged.retain(|t| catalog.is_listed(t.0));
        }
        s.tagged.sort_unstable_by_key(|t| (t.0, t.1));
        s.rows.clear();
        s.masks.clear();
        s.counts.clear();
        s.src_scores.clear();
        let mut prev = None;
        for &(row, src, score) in &s.tagged {
            if prev != Some(row) {
                prev = Some(row);
                s.rows.push(row);
                s.masks.push(0);
                s.counts.push(0);
                s.src_scores.extend_from_slice(&[0.0; SOURCE_SLOTS]);
            }
            let last = s.rows.len() - 1;
            let bit = 1u32 << src;
            if s.masks[last] & bit == 0 {
                s.masks[last] |= bit;
                s.counts[last] += 1;
            }
            let max = s.buf_max[src as usize];
            let v = if max > 0.0 && score.is_finite() { score / max } else { 0.0 };
            let cell = &mut s.src_scores[last * SOURCE_SLOTS + self.slots[src as usize]];
            *cell = cell.max(v);
        }
    }

    /// Filter: every enabled filter in order marks what it removes; the
    /// kept candidates are compacted in place and removals counted.
    pub(crate) fn filter(&self, s: &mut Scratch, ctx: &RequestContext<'_>, trace: &mut Trace) {
        s.removed.clear();
        s.removed.resize(s.rows.len(), None);
        let mut left = s.rows.len();
        for f in &self.filters {
            if !f.enabled(ctx) || !self.stage_on(f.id(), ctx.request) {
                continue;
            }
            f.filter(ctx, &s.rows, &mut s.removed);
            let after = s.removed.iter().filter(|r| r.is_none()).count();
            trace.filters.push((f.id(), left.saturating_sub(after)));
            left = after;
        }
        let mut kept = 0;
        for i in 0..s.rows.len() {
            match s.removed[i] {
                Some(reason) => match trace.removed.iter_mut().find(|r| r.0 == reason) {
                    Some(r) => r.1 += 1,
                    None => trace.removed.push((reason, 1)),
                },
                None => {
                    s.rows[kept] = s.rows[i];
                    s.masks[kept] = s.masks[i];
                    s.counts[kept] = s.counts[i];
                    s.src_scores
                        .copy_within(i * SOURCE_SLOTS..(i + 1) * SOURCE_SLOTS, kept * SOURCE_SLOTS);
                    kept += 1;
                }
            }
        }
        s.rows.truncate(kept);
        s.masks.truncate(kept);
        s.counts.truncate(kept);
        s.src_scores.truncate(kept * SOURCE_SLOTS);
    }

    /// The unit vectors query relevance is measured against: the request's
    /// query, else on omni the user's recent search intents.
    pub(crate) fn query_vectors<'a>(
        &self,
        query: &'a [f32],
        surface: Surface,
        profile: Option<&'a UserProfile>,
        has_query: bool,
    ) -> Vec<&'a [f32]> {
        if !query.is_empty() {
            return vec![query];
        }
        if has_query || surface != Surface::Omni {
            return Vec::new();
        }
        let Some(p) = profile else { return Vec::new() };
        let n = p.searches().len();
        p.searches()
            .skip(n.saturating_sub(self.config.sources.intents))
            .filter_map(|x| x.vector.as_deref())
            .collect()
    }

    /// Features of `s.rows`, then heads and fused values; returns whether
    /// the request has anything to be relevant to (a query, search intents,
    /// or `searched`: candidates from the search source) and how many
    /// non-finite values were repaired.
    pub(crate) fn features_and_fusion(
        &self,
        s: &mut Scratch,
        input: &RequestInput,
        state: &ServingState,
        req: &FeedRequest,
        r: &Resolved,
    ) -> (bool, usize) {
        let (catalog, signals) = (&*state.catalog, &*state.signals);
        let profile = signals.profile(req.user);
        s.lists.prepare(catalog, signals, profile, r.at);
        s.lists.prepare_text(&state.lexical, &input.terms, &s.rows);
        let intents = self.query_vectors(&input.query, req.surface, profile, r.has_query);
        let fctx = self.feature_context(state, profile, r.at, &intents, &s.lists, input);
        compute_features(&fctx, &s.rows, &s.src_scores, &s.counts, &mut s.features);
        let repaired = s.features.repair_non_finite();
        let searched = s.masks.iter().any(|&m| m & self.search_mask != 0);
        let has_relevance = r.has_query || !intents.is_empty() || searched;
        let fusion = self.config.fusion.get(req.surface);
        let repaired = repaired + self.score_and_fuse(s, &state.rank_rows, fusion, has_relevance);
        (has_relevance, repaired)
    }

    /// What feature assembly reads for one request (the fast path and the
    /// naive oracle alike).
    fn feature_context<'a>(
        &self,
        state: &'a ServingState,
        profile: Option<&'a UserProfile>,
        at: i64,
        queries: &'a [&'a [f32]],
        lists: &'a RequestLists,
        input: &'a RequestInput,
    ) -> FeatureContext<'a> {
        FeatureContext {
            catalog: &state.catalog,
            signals: &state.signals,
            profile,
            at,
            rank_rows: &state.rank_rows,
            fresh_scale: self.config.fresh_scale as f32,
            queries,
            lists,
            lexical: &state.lexical,
            terms: &input.terms,
            co: &input.co,
        }
    }

    /// Runs the scorer over `s.features` into `s.heads` and fuses into
    /// `s.values`; returns how many non-finite heads were replaced by 0.
    fn score_and_fuse(
        &self,
        s: &mut Scratch,
        rank_rows: &[RankRow],
        fusion: &Fusion,
        has_relevance: bool,
    ) -> usize {
        let n = s.features.rows();
        s.heads.clear();
        s.heads.resize(n * HEADS, 0.0);
        self.scorer.score(&s.features, &mut s.heads);
        let mut repaired = 0;
        for h in &mut s.heads {
            *h = if h.is_finite() {
                h.clamp(0.0, 1.0)
            } else {
                repaired += 1;
                0.0
            };
        }
        s.values.clear();
        s.values.extend((0..n).map(|i| {
            let heads = &s.heads[i * HEADS..(i + 1) * HEADS];
            let rr = &rank_rows[s.rows[i].index()];
            fusion.value(&fusion_terms(heads, s.features.row(i), rr, has_relevance))
        }));
        repaired
    }

    /// Boosts: each candidate's fused value times the business rules'
    /// boosts in force for it.
    pub(crate) fn boost(&self, s: &mut Scratch, ctx: &RequestContext<'_>) {
        if !ctx.rules.has_boosts() {
            return;
        }
        let (c, cats) = (ctx.catalog, ctx.catalog.categories());
        for (v, &r) in s.values.iter_mut().zip(&s.rows) {
            *v *= ctx.rules.boost(c.product_id(r), c.merchant_of(r).id, cats[r.index()], ctx.at);
        }
    }

    /// Select: the best by value (at least `k`, and every pinned candidate)
    /// form the rerank pool; the rerank places up to `k` of them; pins take
    /// their positions.
    pub(crate) fn select(&self, s: &mut Scratch, ctx: &RequestContext<'_>) {
        let (catalog, signals, req) = (ctx.catalog, ctx.signals, ctx.request);
        s.scored.clear();
        s.scored.extend(
            s.values.iter().enumerate().map(|(i, &v)| Scored { row: ItemIdx(i as u32), score: v }),
        );
        top_k_in_place(&mut s.scored, self.config.rerank_pool.max(req.k));
        for pin in ctx.rules.pins(req.surface, ctx.at) {
            let Some(row) = catalog.row(pin.product) else { continue };
            if let Ok(i) = s.rows.binary_search(&row) {
                if !s.scored.iter().any(|x| x.row.index() == i) {
                    s.scored.push(Scored { row: ItemIdx(i as u32), score: s.values[i] });
                }
            }
        }
        let (listed, cats, rate) =
            (catalog.listed_at(), catalog.categories(), signals.rate_scores());
        s.pool.clear();
        for sc in &s.scored {
            let i = sc.row.index();
            let row = s.rows[i];
            let fresh = elapsed(ctx.at, listed[row.index()]) <= self.config.explore_max_age;
            s.pool.push(Candidate {
                row,
                value: sc.score,
                sources: s.masks[i],
                category: cats[row.index()],
                merchant: catalog.merchant_row_of(row),
                live: s.features.row(i)[col::LIVE] > 0.0,
                explore: fresh && rate[row.index()] >= self.config.explore_min_rate,
            });
        }
        let surface_index = Surface::ALL.iter().position(|&x| x == req.surface).unwrap_or(0);
        let input = RerankInput {
            pool: &s.pool,
            embeddings: catalog.embeddings(),
            config: self.config.rerank.get(req.surface),
            quotas: &self.quotas[surface_index],
            k: req.k,
            seed: req.seed ^ req.user.0.rotate_left(17),
            ctx,
        };
        s.placed.clear();
        self.reranker.rerank(&input, &mut s.rerank, &mut s.placed);
        // A custom reranker is user code: only valid, distinct indexes stay.
        let n = s.pool.len();
        s.taken.clear();
        s.taken.resize(n, false);
        let taken = &mut s.taken;
        s.placed.retain(|p| p.index < n && !std::mem::replace(&mut taken[p.index], true));
        s.placed.truncate(req.k);
        self.place_pins(s, ctx);
    }

    /// Moves each pinned candidate to its position (caps do not apply to
    /// it), then cuts the feed to `k`. Pinned rows leave their rerank
    /// places first, then go in by position, so no pin shifts another (two
    /// at one position: the later lands just after); a product pinned twice
    /// takes its lowest position.
    fn place_pins(&self, s: &mut Scratch, ctx: &RequestContext<'_>) {
        let mut pins: Vec<(usize, usize)> = Vec::new();
        for pin in ctx.rules.pins(ctx.surface(), ctx.at) {
            let Some(row) = ctx.catalog.row(pin.product) else { continue };
            let Some(index) = s.pool.iter().position(|c| c.row == row) else { continue };
            if !pins.iter().any(|p| p.1 == index) {
                pins.push((pin.position, index));
            }
        }
        if pins.is_empty() {
            return;
        }
        s.placed.retain(|p| !pins.iter().any(|&(_, i)| i == p.index));
        // Pins come by position; one at a taken position lands just after.
        let mut next = 0;
        for (position, index) in pins {
            let at = position.max(next).min(s.placed.len());
            s.placed.insert(at, Placed { index, rules: rules::PIN });
            next = at + 1;
        }
        s.placed.truncate(ctx.request.k);
    }

    /// Present: the placed items with their content card and explanation.
    pub(crate) fn present(
        &self,
        s: &Scratch,
        ctx: &RequestContext<'_>,
        state: &ServingState,
        has_relevance: bool,
    ) -> Vec<FeedItem> {
        let (catalog, signals, req) = (ctx.catalog, ctx.signals, ctx.request);
        let cats = catalog.categories();
        // The business boost in force for a row, if any (1 is none).
        let boost = |row: ItemIdx| {
            let (p, m) = (catalog.product_id(row), catalog.merchant_of(row).id);
            if ctx.rules.has_boosts() {
                ctx.rules.boost(p, m, cats[row.index()], ctx.at)
            } else {
                1.0
            }
        };
        let fusion = self.config.fusion.get(req.surface);
        let named = |names: &[&'static str], values: &[f32]| -> Vec<NamedValue> {
            names.iter().zip(values).map(|(&name, &value)| NamedValue { name, value }).collect()
        };
        s.placed
            .iter()
            .map(|pl| {
                let cand = s.pool[pl.index];
                let i = s.scored[pl.index].row.index();
                let (content, live) = content_card(catalog, signals, cand.row, ctx.at);
                let factor = boost(cand.row);
                let bits = pl.rules | if factor != 1.0 { rules::BOOST } else { 0 };
                let heads = &s.heads[i * HEADS..(i + 1) * HEADS];
                let frow = s.features.row(i);
                let rr = &state.rank_rows[cand.row.index()];
                let terms = fusion_terms(heads, frow, rr, has_relevance);
                let parts = FUSION_TERMS.iter().zip(terms).zip(fusion.exponents());
                FeedItem {
                    product: catalog.product_id(cand.row),
                    score: cand.value,
                    content,
                    live,
                    explanation: Explanation {
                        sources: self.provenance(s, s.masks[i], cand.row),
                        features: named(&FEATURE_NAMES, frow),
                        heads: named(&HEAD_NAMES, heads),
                        parts: parts
                            .map(|((&name, value), weight)| ScorePart { name, value, weight })
                            .chain((factor != 1.0).then_some(ScorePart {
                                name: "boost",
                                value: factor,
                                weight: 1.0,
                            }))
                            .collect(),
                        pre_rank: pl.index as u32,
                        rules: rules::NAMES
                            .iter()
                            .filter(|(bit, _)| bits & bit != 0)
                            .map(|&(_, name)| name)
                            .collect(),
                    },
                }
            })
            .collect()
    }

    /// Where each source that found `row` ranked it.
    fn provenance(&self, s: &Scratch, mask: u32, row: ItemIdx) -> Vec<SourceHit> {
        self.sources
            .iter()
            .zip(&s.bufs)
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .filter_map(|(_, (src, buf))| {
                let rank = buf.as_slice().iter().position(|n| n.row == row)?;
                Some(SourceHit {
                    source: src.id(),
                    rank: rank as u32,
                    score: buf.as_slice()[rank].score,
                })
            })
            .collect()
    }

    /// Features, scorer, fusion and top-k over given rows (no retrieval, no
    /// filters, no rerank): the ranking core, for callers with their own
    /// candidates and for benchmarks. Rows are `(row, value)` best first in
    /// the returned slice of `scratch`.
    ///
    /// Errors: as [`recommend`](Self::recommend), and a row outside the
    /// catalog.
    pub fn score_rows<'s>(
        &self,
        s: &'s mut Scratch,
        req: &FeedRequest,
        rows: &[ItemIdx],
    ) -> Result<&'s [Scored]> {
        let state = self.state();
        let mut input = std::mem::take(&mut s.input);
        let resolved = self.resolve(&mut input, &state, req);
        let out = resolved.and_then(|r| {
            self.rank_given(s, &input, &state, req, &r, rows, "score_rows")?;
            s.scored.clear();
            s.scored
                .extend(s.rows.iter().zip(&s.values).map(|(&row, &v)| Scored { row, score: v }));
            top_k_in_place(&mut s.scored, req.k);
            Ok(())
        });
        s.input = input;
        out.map(|()| &s.scored[..])
    }

    /// Features, heads and values of `rows` into `s` (no source found them).
    #[allow(clippy::too_many_arguments)]
    fn rank_given(
        &self,
        s: &mut Scratch,
        input: &RequestInput,
        state: &ServingState,
        req: &FeedRequest,
        r: &Resolved,
        rows: &[ItemIdx],
        what: &'static str,
    ) -> Result<()> {
        let n = state.catalog.len();
        if let Some(bad) = rows.iter().find(|r| r.index() >= n) {
            return Err(Error::invalid_value(
                "rows",
                what,
                format!("row {} is outside the catalog of {n}", bad.0),
            ));
        }
        s.rows.clear();
        s.rows.extend_from_slice(rows);
        s.masks.clear();
        s.masks.resize(rows.len(), 0);
        s.src_scores.clear();
        s.src_scores.resize(rows.len() * SOURCE_SLOTS, 0.0);
        s.counts.clear();
        s.counts.resize(rows.len(), 0);
        self.features_and_fusion(s, input, state, req, r);
        Ok(())
    }

    /// The feature rows the ranking stage would see for `products` in a
    /// Feed request of `user` at `at` (no source found them, so the
    /// source-score columns are 0): what an ML engineer builds training
    /// data from. Rows are in the order of `products`; read them by
    /// [`col`](crate::rank::col).
    ///
    /// Errors: a product the catalog does not know
    /// ([`ErrorKind::UnknownId`](crate::ErrorKind::UnknownId)), a time outside
    /// the signals' window.
    pub fn features_for(
        &self,
        user: crate::UserId,
        products: &[crate::ProductId],
        at: crate::Timestamp,
    ) -> Result<FeatureMatrix> {
        let state = self.state();
        let rows = products
            .iter()
            .map(|&p| state.catalog.require_row(p, "features_for"))
            .collect::<Result<Vec<_>>>()?;
        let req = FeedRequest::new(user).at(at);
        let mut s = Scratch::default();
        let mut input = RequestInput::default();
        let r = self.resolve(&mut input, &state, &req)?;
        self.rank_given(&mut s, &input, &state, &req, &r, &rows, "features_for")?;
        Ok(s.features)
    }

    /// [`score_rows`](Self::score_rows) the plain way: a feature vector
    /// allocated per row, the scorer called row by row, a full sort. The
    /// oracle the fast path is tested against and the benchmarks' baseline.
    pub fn score_rows_naive(&self, req: &FeedRequest, rows: &[ItemIdx]) -> Result<Vec<Scored>> {
        let state = self.state();
        let mut input = RequestInput::default();
        let r = self.resolve(&mut input, &state, req)?;
        let (catalog, signals) = (&*state.catalog, &*state.signals);
        if rows.iter().any(|r| r.index() >= catalog.len()) {
            return Err(Error::invalid_value(
                "rows",
                "score_rows_naive",
                "row outside the catalog",
            ));
        }
        let profile = signals.profile(req.user);
        let intents = self.query_vectors(&input.query, req.surface, profile, r.has_query);
        let lists = Default::default();
        let fctx = self.feature_context(&state, profile, r.at, &intents, &lists, &input);
        let fusion = self.config.fusion.get(req.surface);
        let has_relevance = r.has_query || !intents.is_empty();
        let mut out: Vec<Scored> = rows
            .iter()
            .map(|&row| {
                let f = features_naive(&fctx, row, &[0.0; SOURCE_SLOTS], 0);
                let mut one = FeatureMatrix::new();
                one.set_single(&f);
                let mut heads = [0.0f32; HEADS];
                self.scorer.score(&one, &mut heads);
                for h in &mut heads {
                    *h = if h.is_finite() { h.clamp(0.0, 1.0) } else { 0.0 };
                }
                // The oracle reads the public accessors, not the packed rows.
                let relevance = has_relevance.then(|| f[col::RELEVANCE].max(f[col::SRC_SEARCH]));
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
        out.sort_by(crate::rank::kernels::best_first);
        out.truncate(req.k);
        Ok(out)
    }
}

/// The fusion terms of one candidate.
#[inline]
fn fusion_terms(heads: &[f32], features: &[f32], rr: &RankRow, has_relevance: bool) -> [f32; 7] {
    let relevance = has_relevance.then(|| features[col::RELEVANCE].max(features[col::SRC_SEARCH]));
    Fusion::terms(heads, rr.price_band, rr.quality, relevance, rr.refund)
}

/// The content to show `row` with: a live stream on air that carries it,
/// else its best video.
fn content_card(
    catalog: &Catalog,
    signals: &Signals,
    row: ItemIdx,
    at: i64,
) -> (Option<ContentId>, bool) {
    if let Some(&c) =
        catalog.product_content_rows(row).iter().find(|&&c| catalog.content_on_air(c, at))
    {
        return (Some(catalog.content_id_at(c)), true);
    }
    (signals.best_content(row), false)
}

impl Recommender {
    /// True if stage `id` runs for `req`: not disabled for its surface in
    /// the config, not skipped by the request.
    pub(crate) fn stage_on(&self, id: &str, req: &FeedRequest) -> bool {
        !self.config.disabled.get(req.surface).iter().any(|d| d == id)
            && !req.skip.iter().any(|d| d == id)
    }

    /// A request may skip only stages that exist and are not required.
    pub(crate) fn check_skips(&self, req: &FeedRequest) -> Result<()> {
        for id in &req.skip {
            let source = self.sources.iter().any(|s| s.id() == id)
                || self.effects.iter().any(|e| e.id() == id);
            let filter = self.filters.iter().find(|f| f.id() == id);
            let why = match (source, filter) {
                (false, None) => "is not the id of a source or filter",
                (_, Some(f)) if f.required() => "is a required filter",
                _ => continue,
            };
            return Err(Error::invalid_value(
                "request.skip",
                format_args!("user {}", req.user),
                format!("{id:?} {why}"),
            ));
        }
        Ok(())
    }
}
