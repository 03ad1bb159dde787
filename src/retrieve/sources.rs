//! The built-in candidate sources (see the table in the module above).

use crate::error::Result;
use crate::features::col;
use crate::ids::{CategoryId, ItemIdx};
use crate::index::{Neighbor, RowFilter};
use crate::kernels::dot;
use crate::request::Surface;
use crate::stage::{CandidateBuf, CandidateSource, RequestContext};
use serde::{Deserialize, Serialize};

fn feed_or_omni(surface: Surface) -> bool {
    matches!(surface, Surface::Feed | Surface::Omni)
}

/// The user's interest vectors against the product index: each of the
/// k-means interests gets a share of `k` by its weight (at least 20); a
/// user without clusters uses the long-term vector.
#[derive(Debug, Clone)]
pub struct InterestAnn {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for InterestAnn {
    fn id(&self) -> &'static str {
        "interest_ann"
    }
    fn feature(&self) -> usize {
        col::SRC_INTEREST
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        feed_or_omni(ctx.surface())
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let Some(profile) = ctx.profile else { return Ok(()) };
        let keep = |row: ItemIdx| !ctx.is_excluded(row);
        let filter: Option<RowFilter<'_>> =
            if ctx.excluded.is_empty() { None } else { Some(&keep) };
        if profile.interests().len() == 0 {
            if let Some(v) = profile.interest() {
                ctx.index.search(v, self.k, filter, out.as_mut_vec())?;
            }
            return Ok(());
        }
        let mut part: Vec<Neighbor> = Vec::new();
        for (share, v) in profile.interests() {
            let k = ((self.k as f32 * share).ceil() as usize).max(20).min(self.k);
            ctx.index.search(v, k, filter, &mut part)?;
            out.as_mut_vec().extend_from_slice(&part);
        }
        out.sort_dedup(self.k);
        Ok(())
    }
}

/// Items similar to the user's most recent engagements (item-to-item ANN).
#[derive(Debug, Clone)]
pub struct SimilarItems {
    /// Candidates in all.
    pub k: usize,
    /// How many recent engaged products seed the search.
    pub seeds: usize,
}

impl CandidateSource for SimilarItems {
    fn id(&self) -> &'static str {
        "similar"
    }
    fn feature(&self) -> usize {
        col::SRC_SIMILAR
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        feed_or_omni(ctx.surface())
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let Some(profile) = ctx.profile else { return Ok(()) };
        let mut seeds: Vec<ItemIdx> = Vec::with_capacity(self.seeds);
        for e in profile.recent().rev() {
            if seeds.len() == self.seeds {
                break;
            }
            if !seeds.contains(&e.row) {
                seeds.push(e.row);
            }
        }
        neighbours_of(ctx, &seeds, self.k, out)
    }
}

/// Co-engagement item-to-item: the products the same users engaged with
/// close in time to what this user engaged with lately (and bought),
/// kept incrementally by the signal writer: the request's
/// [`RequestContext::co_engaged`] scores.
#[derive(Debug, Clone)]
pub struct CoEngaged {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for CoEngaged {
    fn id(&self) -> &'static str {
        "coengaged"
    }
    fn feature(&self) -> usize {
        col::SRC_SIMILAR
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        feed_or_omni(ctx.surface())
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        for &(row, score) in ctx.co_engaged {
            if ctx.admits(row) {
                out.push(row, score);
            }
        }
        out.sort_dedup(self.k);
        Ok(())
    }
}

/// ANN neighbours of `seeds` (not the seeds themselves), `k` in all.
fn neighbours_of(
    ctx: &RequestContext<'_>,
    seeds: &[ItemIdx],
    k: usize,
    out: &mut CandidateBuf,
) -> Result<()> {
    if seeds.is_empty() || k == 0 {
        return Ok(());
    }
    let per = k.div_ceil(seeds.len()) + 1;
    let keep = |row: ItemIdx| !ctx.is_excluded(row) && !seeds.contains(&row);
    let mut part: Vec<Neighbor> = Vec::new();
    for &s in seeds {
        ctx.index.search(ctx.catalog.embeddings().row(s), per, Some(&keep), &mut part)?;
        out.as_mut_vec().extend_from_slice(&part);
    }
    out.sort_dedup(k);
    Ok(())
}

/// Content-driven: the products of live streams on air now (scored by
/// viewer momentum, above every video) and of rising videos (by recent
/// views).
#[derive(Debug, Clone)]
pub struct ContentDriven {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for ContentDriven {
    fn id(&self) -> &'static str {
        "content"
    }
    fn feature(&self) -> usize {
        col::SRC_CONTENT
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        feed_or_omni(ctx.surface())
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let s = ctx.signals;
        for c in s.on_air_rows(ctx.at) {
            let m = s.live_momentum_row(c, ctx.at);
            for &r in ctx.catalog.content_product_rows(c) {
                if ctx.admits(ItemIdx(r)) {
                    out.push(ItemIdx(r), 1.0 + m / (1.0 + m));
                }
            }
        }
        for (c, views) in s.rising_content() {
            if out.len() >= 4 * self.k {
                break;
            }
            if let Some(rows) = ctx.catalog.content_products(c) {
                for r in rows.filter(|&r| ctx.admits(r)) {
                    out.push(r, views / (1.0 + views));
                }
            }
        }
        out.sort_dedup(self.k);
        Ok(())
    }
}

/// How the search source fuses its semantic and lexical lists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SearchFusion {
    /// Reciprocal rank fusion: `Σ 1 / (k + rank)` over the lists (rank
    /// 1-based).
    Rrf {
        /// The RRF constant (60 in the original paper).
        k: f32,
    },
    /// `semantic · cosine + lexical · bm25 / max bm25`.
    Weighted {
        /// Weight of the cosine.
        semantic: f32,
        /// Weight of the normalized BM25.
        lexical: f32,
    },
}

impl Default for SearchFusion {
    fn default() -> Self {
        SearchFusion::Rrf { k: 60.0 }
    }
}

impl SearchFusion {
    /// Fuses a semantic list (best first, cosine scores) and a lexical list
    /// (best first, BM25 scores) into `out`, best first, at most `k`.
    pub fn fuse(
        &self,
        semantic: &[Neighbor],
        lexical: &[(ItemIdx, f32)],
        k: usize,
        out: &mut CandidateBuf,
    ) {
        match *self {
            SearchFusion::Rrf { k: c } => {
                for (rank, n) in semantic.iter().enumerate() {
                    out.push(n.row, 1.0 / (c + rank as f32 + 1.0));
                }
                for (rank, &(row, _)) in lexical.iter().enumerate() {
                    out.push(row, 1.0 / (c + rank as f32 + 1.0));
                }
            }
            SearchFusion::Weighted { semantic: ws, lexical: wl } => {
                let max = lexical.iter().map(|l| l.1).fold(f32::MIN_POSITIVE, f32::max);
                for n in semantic {
                    out.push(n.row, ws * n.score);
                }
                for &(row, s) in lexical {
                    out.push(row, wl * s / max);
                }
            }
        }
        // A row in both lists: its two contributions add up.
        let hits = out.as_mut_vec();
        hits.sort_by_key(|n| n.row);
        let mut w = 0;
        for i in 0..hits.len() {
            if w > 0 && hits[w - 1].row == hits[i].row {
                hits[w - 1].score += hits[i].score;
            } else {
                hits[w] = hits[i];
                w += 1;
            }
        }
        hits.truncate(w);
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        hits.truncate(k);
    }
}

/// Search: the query embedding against the index with the request's
/// filters pushed down, and BM25 over titles for the query terms, fused. On
/// the omni surface without a query it searches the user's recent
/// searches (people find goods inside the feed).
#[derive(Debug, Clone)]
pub struct SearchSource {
    /// Candidates in all.
    pub k: usize,
    /// How the two lists are fused.
    pub fusion: SearchFusion,
    /// Recent searches used on omni.
    pub intents: usize,
    /// How the words of an omni intent's text match title terms (a
    /// request's text is planned once, in the request's context).
    pub query: crate::index::QueryConfig,
}

impl CandidateSource for SearchSource {
    fn id(&self) -> &'static str {
        "search"
    }
    fn feature(&self) -> usize {
        col::SRC_SEARCH
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let surface = ctx.surface();
        matches!(surface, Surface::Search | Surface::Omni)
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        // Category and price filters and exclusions are pushed down into the
        // index (they can be restrictive); stock alone is left to the
        // filter stage, which is cheaper than a check per scanned vector.
        let pushed = |row: ItemIdx| {
            let i = row.index();
            !ctx.is_excluded(row)
                && ctx.request.filters.admits(ctx.catalog.categories()[i], ctx.catalog.prices()[i])
        };
        let push_down = !ctx.request.filters.is_open() || !ctx.excluded.is_empty();
        let filter: Option<RowFilter<'_>> = if push_down { Some(&pushed) } else { None };
        crate::kernels::with_scratch(&SEARCH, |s| self.retrieve_with(ctx, &pushed, filter, s, out))
    }

    /// The given rows as this search would score them: each row's cosine
    /// with the query vector and its BM25 under the query plan, ranked
    /// among the given rows, fused as in [`retrieve`](Self::retrieve).
    fn score_given(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        out: &mut CandidateBuf,
    ) -> Result<()> {
        if ctx.surface() != Surface::Search && ctx.surface() != Surface::Omni {
            return Ok(());
        }
        let mut semantic: Vec<Neighbor> = Vec::new();
        if let Some(q) = ctx.query {
            let e = ctx.catalog.embeddings();
            semantic.extend(rows.iter().map(|&row| Neighbor { row, score: dot(q, e.row(row)) }));
            semantic.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        }
        let mut lexical: Vec<(ItemIdx, f32)> = Vec::new();
        ctx.lexical.score_rows_plan(ctx.plan, rows, &mut lexical);
        lexical.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        self.fusion.fuse(&semantic, &lexical, rows.len(), out);
        Ok(())
    }
}

impl SearchSource {
    /// [`retrieve`](CandidateSource::retrieve) with this thread's buffers.
    fn retrieve_with(
        &self,
        ctx: &RequestContext<'_>,
        pushed: &dyn Fn(ItemIdx) -> bool,
        filter: Option<RowFilter<'_>>,
        scratch: &mut SearchScratch,
        out: &mut CandidateBuf,
    ) -> Result<()> {
        let SearchScratch { semantic, part, lexical, acc } = scratch;
        semantic.clear();
        lexical.clear();
        // A search asks for as many as the request shows (up to MAX_K),
        // never fewer than the configured depth.
        let k = self.k.max(ctx.request.k);
        if ctx.query.is_some() || !ctx.plan.slots().is_empty() {
            if let Some(q) = ctx.query {
                ctx.index.search(q, k, filter, semantic)?;
            }
            ctx.lexical.search_plan(ctx.plan, k, pushed, acc, lexical);
        } else if ctx.surface() == Surface::Omni {
            let Some(p) = ctx.profile else { return Ok(()) };
            let n = p.searches().len();
            let mut plan = crate::index::QueryPlan::default();
            for s in p.searches().skip(n.saturating_sub(self.intents)) {
                if let Some(v) = &s.vector {
                    ctx.index.search(v, self.k, filter, part)?;
                    semantic.extend_from_slice(part);
                }
                if let Some(t) = &s.text {
                    plan.append(ctx.lexical.plan(t, &self.query));
                }
            }
            // Several intents may find the same row: keep its best score
            // (a score sort leaves a row's copies apart, so dedup by row).
            crate::stage::best_per_row(semantic, usize::MAX);
            ctx.lexical.search_plan(&plan, self.k, pushed, acc, lexical);
        }
        self.fusion.fuse(semantic, lexical, k, out);
        Ok(())
    }
}

/// Repurchase: the user's consumables whose cycle has come round.
#[derive(Debug, Clone)]
pub struct Repurchase {
    /// Candidates at most.
    pub k: usize,
}

impl CandidateSource for Repurchase {
    fn id(&self) -> &'static str {
        "repurchase"
    }
    fn feature(&self) -> usize {
        col::SRC_REPURCHASE
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        feed_or_omni(ctx.surface())
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let Some(p) = ctx.profile else { return Ok(()) };
        for (row, score) in ctx.signals.due_purchases(p, ctx.at) {
            if out.len() == self.k {
                break;
            }
            if ctx.admits(row) {
                out.push(row, score);
            }
        }
        Ok(())
    }
}

/// Cart pull (omni): products in the cart and not bought since, and the
/// neighbours of the latest of them.
#[derive(Debug, Clone)]
pub struct CartPull {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for CartPull {
    fn id(&self) -> &'static str {
        "cart"
    }
    fn feature(&self) -> usize {
        col::SRC_SIMILAR
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        let surface = ctx.surface();
        surface == Surface::Omni
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let Some(p) = ctx.profile else { return Ok(()) };
        let mut carted: Vec<ItemIdx> = Vec::new();
        for &(row, at) in p.carts().rev() {
            let bought_since = p.bought_at(row).is_some_and(|b| b >= at);
            if !bought_since && !carted.contains(&row) {
                carted.push(row);
            }
        }
        if carted.is_empty() {
            return Ok(());
        }
        neighbours_of(ctx, &carted[..1], self.k, out)?;
        // The carted products themselves lead.
        let own: Vec<Neighbor> = carted
            .iter()
            .filter(|&&r| ctx.admits(r))
            .map(|&row| Neighbor { row, score: 2.0 })
            .collect();
        out.as_mut_vec().splice(0..0, own);
        out.sort_dedup(self.k);
        Ok(())
    }
}

/// The categories a list source draws from: the request's category filter,
/// else the user's top categories, else the categories of the global
/// trending list (cold start).
fn source_categories<'a>(ctx: &RequestContext<'a>) -> Cats<'a> {
    if !ctx.request.filters.categories.is_empty() {
        return Cats::Filter(&ctx.request.filters.categories);
    }
    let mut top = [CategoryId(0); TOP_CATS];
    let mut n = 0;
    if let Some(p) = ctx.profile {
        for (slot, c) in top.iter_mut().zip(p.top_categories()) {
            *slot = c.0;
            n += 1;
        }
        if n > 0 {
            return Cats::Top(top, n);
        }
    }
    let cats = ctx.catalog.categories();
    for r in ctx.signals.trending() {
        let c = cats[r.index()];
        if !top[..n].contains(&c) {
            top[n] = c;
            n += 1;
            if n == TOP_CATS {
                break;
            }
        }
    }
    Cats::Top(top, n)
}

/// Categories the category sources read per request.
const TOP_CATS: usize = 4;

/// The categories of [`source_categories`]: the request's filter
/// (borrowed) or up to [`TOP_CATS`] of the user's or the trending ones (on
/// the stack): no allocation either way.
enum Cats<'a> {
    Filter(&'a [CategoryId]),
    Top([CategoryId; TOP_CATS], usize),
}

impl Cats<'_> {
    fn as_slice(&self) -> &[CategoryId] {
        match self {
            Cats::Filter(c) => c,
            Cats::Top(c, n) => &c[..*n],
        }
    }
}

/// Takes from several ranked lists in turn (round robin), `k` in all.
fn interleave(
    ctx: &RequestContext<'_>,
    lists: &[&[ItemIdx]],
    score: impl Fn(ItemIdx) -> f32,
    k: usize,
    out: &mut CandidateBuf,
) {
    let mut depth = 0;
    while out.len() < k && lists.iter().any(|l| depth < l.len()) {
        for l in lists {
            if let Some(&r) = l.get(depth)
                && out.len() < k
                && ctx.admits(r)
            {
                out.push(r, score(r));
            }
        }
        depth += 1;
    }
}

/// Popular: trending products of the user's top categories (or the
/// request's category filter) and what is popular lately everywhere;
/// global trending on both time scales for a cold user. The score is the
/// higher of the two trending scores.
#[derive(Debug, Clone)]
pub struct Popular {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for Popular {
    fn id(&self) -> &'static str {
        "popular"
    }
    fn feature(&self) -> usize {
        col::SRC_POPULAR
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let s = ctx.signals;
        let (trend, recent) = (s.trending_scores(), s.recent_trending_scores());
        let score = |r: ItemIdx| trend[r.index()].max(recent[r.index()]);
        let personal = ctx.profile.is_some_and(|p| !p.top_categories().is_empty());
        if ctx.request.filters.categories.is_empty() && !personal {
            interleave(ctx, &[s.trending(), s.recent_trending()], score, self.k, out);
            return Ok(());
        }
        let cats = source_categories(ctx);
        let cats = cats.as_slice();
        let recent = ctx.request.filters.categories.is_empty().then(|| s.recent_trending());
        let lists = cats.iter().map(|&c| s.category_trending(c)).chain(recent);
        if cats.len() <= TOP_CATS {
            // The usual case on the stack; a long category filter collects.
            let mut on_stack: [&[ItemIdx]; TOP_CATS + 1] = [&[]; TOP_CATS + 1];
            let mut n = 0;
            for (slot, l) in on_stack.iter_mut().zip(lists) {
                *slot = l;
                n += 1;
            }
            interleave(ctx, &on_stack[..n], score, self.k, out);
        } else {
            interleave(ctx, &lists.collect::<Vec<_>>(), score, self.k, out);
        }
        Ok(())
    }
}

/// Fresh: newly listed products of the same categories, best prior first
/// within each (cold items get exposure by their smoothed rates).
#[derive(Debug, Clone)]
pub struct Fresh {
    /// Candidates in all.
    pub k: usize,
}

impl CandidateSource for Fresh {
    fn id(&self) -> &'static str {
        "fresh"
    }
    fn feature(&self) -> usize {
        col::SRC_POPULAR
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let cats = source_categories(ctx);
        let rate = ctx.signals.rate_scores();
        let listed = ctx.catalog.listed_at();
        for &c in cats.as_slice() {
            for &r in ctx.signals.category_fresh(c) {
                if listed[r.index()] <= ctx.at && ctx.admits(r) {
                    out.push(r, rate[r.index()]);
                }
            }
        }
        out.sort_dedup(self.k);
        Ok(())
    }
}

/// Pinned products (see [`business`](crate::business)): the pins of the
/// surface in force at the request time, so they pass the filters and get
/// features like every candidate; the rerank then puts them at their
/// positions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pins;

impl CandidateSource for Pins {
    fn id(&self) -> &'static str {
        "pins"
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        for pin in ctx.rules.pins(ctx.surface(), ctx.at) {
            if let Some(row) = ctx.catalog.row(pin.product)
                && !ctx.is_excluded(row)
            {
                out.push(row, 1.0);
            }
        }
        Ok(())
    }
}

/// One thread's buffers for [`SearchSource`]: the semantic hits (and one
/// intent's), the lexical hits and the lexical search's cursors. Reused,
/// so a search allocates none of them once the thread has run one.
#[derive(Debug, Default)]
struct SearchScratch {
    semantic: Vec<Neighbor>,
    part: Vec<Neighbor>,
    lexical: Vec<(ItemIdx, f32)>,
    acc: Vec<(u32, f32)>,
}

thread_local! {
    static SEARCH: std::cell::RefCell<SearchScratch> =
        std::cell::RefCell::new(SearchScratch::default());
}
