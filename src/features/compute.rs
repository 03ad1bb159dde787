//! Feature assembly: the packed per-product rank rows, the per-request
//! lists, [`compute_features`] (one pass over the candidates) and its plain
//! oracle [`features_naive`].

use super::matrix::FeatureMatrix;
use super::schema::{F, SOURCE_SLOTS, SRC0, col::*};
use crate::catalog::Catalog;
use crate::ids::{ItemIdx, Timestamp, elapsed};
use crate::kernels::{dot, prefetch};
use crate::signals::{PurchaseState, Rate, Signals, UserProfile};

/// Per-product signals the ranking gather reads, packed into one cache
/// line so a candidate costs one line here plus its embedding row.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub(crate) struct RankRow {
    pub(crate) ctr: f32,
    pub(crate) cvr: f32,
    pub(crate) cart: f32,
    pub(crate) content_watch: f32,
    pub(crate) content_ctr: f32,
    pub(crate) quality: f32,
    pub(crate) trending: f32,
    pub(crate) trending_recent: f32,
    pub(crate) refund: f32,
    pub(crate) price_band: f32,
    pub(crate) listed_at: i64,
    pub(crate) category: crate::ids::CategoryId,
}

/// Packs every product's ranking signals (see [`RankRow`]).
pub(crate) fn rank_rows(catalog: &Catalog, signals: &Signals, price_band: &[f32]) -> Vec<RankRow> {
    use rayon::prelude::*;
    let trend = signals.trending_scores();
    let recent = signals.recent_trending_scores();
    // Huge pages requested before the rows are written: no copy at
    // publish (see `crate::mem`).
    let mut rows: Vec<RankRow> = Vec::with_capacity(catalog.len());
    crate::mem::huge_pages_before_fill(rows.spare_capacity_mut());
    rows.par_extend((0..catalog.len()).into_par_iter().map(|i| {
        let r = ItemIdx(i as u32);
        let (content_watch, content_ctr) = match signals.best_content(r) {
            Some(c) => (
                signals.content_rate(c, Rate::WatchCompletion).unwrap_or(0.0),
                signals.content_rate(c, Rate::Ctr).unwrap_or(0.0),
            ),
            None => (0.0, 0.0),
        };
        RankRow {
            ctr: signals.rate(r, Rate::Ctr),
            cvr: signals.rate(r, Rate::Cvr),
            cart: signals.rate(r, Rate::CartRate),
            content_watch,
            content_ctr,
            quality: signals.quality(r),
            trending: trend[i],
            trending_recent: recent[i],
            refund: signals.rate(r, Rate::RefundRate),
            price_band: price_band[i],
            listed_at: catalog.listed_at()[i],
            category: catalog.categories()[i],
        }
    }));
    rows
}

/// What the features of one request read; the per-request lists are
/// prepared once by [`RequestLists::prepare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureContext<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) signals: &'a Signals,
    pub(crate) profile: Option<&'a UserProfile>,
    pub(crate) at: Timestamp,
    pub(crate) rank_rows: &'a [RankRow],
    /// Seconds over which freshness decays to `1/e`.
    pub(crate) fresh_scale: f32,
    /// Unit query vectors (the request's query, or the user's recent
    /// search intents on Omni): relevance is the best match.
    pub(crate) queries: &'a [&'a [f32]],
    pub(crate) lists: &'a RequestLists,
    /// The title index and the request's query terms: a text match counts
    /// as query relevance too.
    pub(crate) lexical: &'a crate::index::LexicalIndex,
    pub(crate) plan: &'a crate::index::QueryPlan,
    /// Set when the request carries query text: its text match, coverage
    /// and vector cosine make `relevance` through these weights (else it is
    /// the best cosine with `queries`).
    pub(crate) relevance: Option<&'a super::RelevanceWeights>,
    /// The user's co-engagement scores, sorted by row.
    pub(crate) co: &'a [(ItemIdx, f32)],
}

/// Small per-request lists the per-candidate loop scans instead of
/// reaching into profiles and signals.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLists {
    /// The user's category shares.
    affinity: Vec<(crate::ids::CategoryId, f32)>,
    /// The user's purchases due again, with their scores.
    due: Vec<(ItemIdx, f32)>,
    /// The rows the user bought (kept purchases), sorted.
    bought: Vec<ItemIdx>,
    /// Rows carried by a live stream on air, sorted.
    live: Vec<ItemIdx>,
    /// Candidates' title match with the query plan: (row, BM25 over its
    /// bound, share of query words matched), sorted by row.
    text: Vec<(ItemIdx, f32, f32)>,
    matches: Vec<crate::index::TextMatch>,
}

/// Seeds of the co-engagement feature and source: the user's latest
/// distinct engagements.
pub(crate) const CO_SEEDS: usize = 20;

impl RequestLists {
    /// The title match of each of `rows` with `terms`, as BM25 divided by
    /// [`LexicalIndex::score_bound`](crate::index::LexicalIndex::score_bound),
    /// sorted by row. Merged candidates come sorted; a caller's given rows
    /// may not, and the feature pass looks matches up by row.
    pub(crate) fn prepare_text(
        &mut self,
        lexical: &crate::index::LexicalIndex,
        plan: &crate::index::QueryPlan,
        rows: &[ItemIdx],
    ) {
        lexical.text_inputs(plan, rows, &mut self.matches, &mut self.text);
        if !self.text.is_sorted_by_key(|t| t.0) {
            self.text.sort_unstable_by_key(|t| t.0);
        }
    }

    /// Fills the lists for one request.
    pub(crate) fn prepare(
        &mut self,
        catalog: &Catalog,
        signals: &Signals,
        profile: Option<&UserProfile>,
        at: Timestamp,
    ) {
        self.affinity.clear();
        self.due.clear();
        self.bought.clear();
        self.live.clear();
        if let Some(p) = profile {
            self.affinity.extend(p.top_categories());
            signals.due_purchases_into(p, at, &mut self.due);
            self.bought.extend(p.purchases().map(|b| b.row));
            self.bought.sort_unstable();
            self.bought.dedup();
        }
        for c in signals.on_air_rows(at) {
            self.live.extend(catalog.content_product_rows(c).iter().map(|&r| ItemIdx(r)));
        }
        self.live.sort_unstable();
        self.live.dedup();
    }
}

crate::kernels::avx2_dispatch! {
    /// Fills `out` with the features of `rows`. `source_scores` is
    /// `rows.len() × SOURCE_SLOTS` (0 where a source did not find the row)
    /// and `source_counts` the number of sources that found each row. One
    /// pass, row by row: each candidate's embedding is loaded once and
    /// dotted with every profile and query vector while it is in cache.
    pub(crate) fn compute_features(
        ctx: &FeatureContext<'_>,
        rows: &[ItemIdx],
        source_scores: &[f32],
        source_counts: &[u8],
        out: &mut FeatureMatrix,
    ) => features_pass
}

/// [`compute_features`]' loop, compiled once per instruction set.
#[inline(always)]
fn features_pass(
    ctx: &FeatureContext<'_>,
    rows: &[ItemIdx],
    source_scores: &[f32],
    source_counts: &[u8],
    out: &mut FeatureMatrix,
    simd: impl crate::kernels::Simd,
) {
    let n = rows.len();
    out.reset(n);
    let emb = ctx.catalog.embeddings();
    let long = ctx.profile.and_then(|p| p.interest());
    let short = ctx.profile.and_then(|p| p.short_term(ctx.at));
    let inv_scale = 1.0 / ctx.fresh_scale;
    let lists = ctx.lists;
    // Each candidate's embedding and packed signal row are requested AHEAD
    // rows before the loop reaches them, so their memory latency overlaps
    // the arithmetic on the rows before.
    let fetch = |r: ItemIdx| {
        prefetch(emb.row(r));
        prefetch(std::slice::from_ref(&ctx.rank_rows[r.index()]));
    };
    rows.iter().take(AHEAD).for_each(|&r| fetch(r));
    // The interest centroids as one block, split per candidate without the
    // division `UserProfile::interests` makes (7% of this loop in perf).
    let (dim, interests) = (emb.dim(), ctx.profile.map_or(&[][..], |p| p.interest_block()));
    // Candidates come sorted by row (merged, or given in order): each
    // sorted list is walked once alongside them.
    let (mut text_at, mut co_at) = (Walk::new(&lists.text), Walk::new(ctx.co));
    let (mut live_at, mut bought_at) = (Walk::new(&lists.live), Walk::new(&lists.bought));
    for (i, (&r, row)) in rows.iter().zip(out.rows_mut()).enumerate() {
        if let Some(&next) = rows.get(i + AHEAD) {
            fetch(next);
        }
        let e = emb.row(r);
        let rr = &ctx.rank_rows[r.index()];
        row[SIM_LONG] = long.map_or(0.0, |v| simd.dot(v, e));
        row[SIM_SHORT] = short.map_or(0.0, |v| simd.dot(v, e));
        if ctx.profile.is_some() {
            let mut best = 0.0f32;
            for v in interests.chunks_exact(dim) {
                best = best.max(simd.dot(v, e));
            }
            row[SIM_INTEREST] = best;
        }
        let mut rel = 0.0f32;
        for q in ctx.queries {
            rel = rel.max(simd.dot(q, e));
        }
        let (text, coverage) = text_at.find(r).map_or((0.0, 0.0), |t| (t.1, t.2));
        row[RELEVANCE] = match ctx.relevance {
            Some(w) => w.value(super::RelevanceInputs {
                text,
                coverage,
                cosine: if ctx.queries.is_empty() { 0.0 } else { rel },
            }),
            None => rel.max(text),
        };
        row[N_SOURCES] = f32::from(source_counts[i]);
        row[SRC0..SRC0 + SOURCE_SLOTS]
            .copy_from_slice(&source_scores[i * SOURCE_SLOTS..(i + 1) * SOURCE_SLOTS]);
        packed_columns(rr, ctx.at, inv_scale, row);
        row[LIVE] = if live_at.find(r).is_some() { 1.0 } else { 0.0 };
        row[AFFINITY] = lists.affinity.iter().find(|a| a.0 == rr.category).map_or(0.0, |a| a.1);
        row[DUE] = lists.due.iter().find(|d| d.0 == r).map_or(0.0, |d| d.1);
        row[BOUGHT] = if bought_at.find(r).is_some() { 1.0 } else { 0.0 };
        row[CO_ENGAGED] = co_at.find(r).map_or(0.0, |c| c.1);
    }
}

/// The columns copied from a product's packed row, and its freshness.
#[inline(always)]
fn packed_columns(rr: &RankRow, at: Timestamp, inv_scale: f32, row: &mut [f32]) {
    row[CTR] = rr.ctr;
    row[CVR] = rr.cvr;
    row[CART] = rr.cart;
    row[CONTENT_WATCH] = rr.content_watch;
    row[CONTENT_CTR] = rr.content_ctr;
    row[FRESHNESS] = (-(elapsed(at, rr.listed_at).max(0) as f32) * inv_scale).exp();
    row[PRICE_BAND] = rr.price_band;
    row[MERCHANT] = rr.quality;
    row[TRENDING] = rr.trending;
    row[TRENDING_RECENT] = rr.trending_recent;
}

/// An entry of a list sorted by row.
trait Keyed {
    fn key(&self) -> ItemIdx;
}

impl Keyed for ItemIdx {
    #[inline(always)]
    fn key(&self) -> ItemIdx {
        *self
    }
}

impl<A> Keyed for (ItemIdx, A) {
    #[inline(always)]
    fn key(&self) -> ItemIdx {
        self.0
    }
}

impl<A, B> Keyed for (ItemIdx, A, B) {
    #[inline(always)]
    fn key(&self) -> ItemIdx {
        self.0
    }
}

/// Lookups in a list sorted by row for rows that mostly come in ascending
/// order: each lookup steps on from the last one (a few entries, then a
/// binary search of the rest), and a row below the last one searches the
/// whole list again. So a pass over sorted candidates walks each list once
/// instead of binary-searching it per candidate, and any order still
/// finds the right entry.
struct Walk<'a, T> {
    list: &'a [T],
    /// Entries with a row below `last`.
    at: usize,
    last: ItemIdx,
}

impl<'a, T: Keyed> Walk<'a, T> {
    fn new(list: &'a [T]) -> Self {
        Walk { list, at: 0, last: ItemIdx(0) }
    }

    /// The entry of `row`, if the list has one.
    #[inline(always)]
    fn find(&mut self, row: ItemIdx) -> Option<&'a T> {
        if row < self.last {
            self.at = self.list.partition_point(|t| t.key() < row);
        } else {
            let mut steps = 0;
            while self.at < self.list.len() && self.list[self.at].key() < row {
                self.at += 1;
                steps += 1;
                if steps == 8 {
                    self.at += self.list[self.at..].partition_point(|t| t.key() < row);
                    break;
                }
            }
        }
        self.last = row;
        self.list.get(self.at).filter(|t| t.key() == row)
    }
}

/// How many rows ahead the feature loop prefetches. Against a warm pass
/// over all rows first (a loop of independent loads), prefetching 16 rows
/// ahead left ~105 µs of a cold 1,000-row ranking unhidden against ~150 µs
/// (cold minus hot, alternated runs on a 1M-product catalog). On an AMD
/// EPYC the cold bench then gave 317 µs with no prefetch, 190 at 4 rows,
/// 185 at 10–12 and 226 at 16: too far ahead was worse than too near
/// (BENCHMARKS.md, issue 27).
const AHEAD: usize = 10;

/// What the oracle computes once per request, the plain way: the user's
/// co-engagement scores and every title's text score for the query, each
/// in a hash map (the fast path keeps sorted lists of the candidates
/// only). Computing them per row made the oracle quadratic: each row
/// walked every posting of the query and every seed's neighbours.
#[derive(Debug, Default)]
pub(crate) struct NaiveRequest {
    co: std::collections::HashMap<ItemIdx, f32>,
    text: std::collections::HashMap<ItemIdx, f32>,
    bound: f32,
}

impl NaiveRequest {
    /// The request's lists, from the public accessors.
    pub(crate) fn new(ctx: &FeatureContext<'_>) -> NaiveRequest {
        let mut once = NaiveRequest::default();
        if let Some(p) = ctx.profile {
            let (mut co, mut scratch) = (Vec::new(), Vec::new());
            ctx.signals.co_scores(p, ctx.at, CO_SEEDS, &mut co, &mut scratch);
            once.co = co.into_iter().collect();
        }
        if !ctx.plan.is_empty() {
            once.bound = ctx.lexical.score_bound_plan(ctx.plan);
            let (mut acc, mut hits) = (Vec::new(), Vec::new());
            let all = ctx.catalog.len();
            ctx.lexical.search_plan(ctx.plan, all, &|_| true, &mut acc, &mut hits);
            once.text = hits.into_iter().collect();
        }
        once
    }
}

/// The features of one row computed the plain way, through the public
/// signal accessors (no packed rows, no per-request sorted lists): the
/// oracle [`compute_features`] is tested against. `once` holds what it
/// computes per request ([`NaiveRequest::new`]), so the oracle is linear in
/// rows × features.
pub(crate) fn features_naive(
    ctx: &FeatureContext<'_>,
    once: &NaiveRequest,
    row: ItemIdx,
    source_scores: &[f32],
    source_count: u8,
) -> Vec<f32> {
    let mut f = vec![0.0f32; F];
    let e = ctx.catalog.embeddings().row(row);
    let s = ctx.signals;
    if let Some(p) = ctx.profile {
        f[SIM_LONG] = p.interest().map_or(0.0, |v| dot(v, e));
        f[SIM_SHORT] = p.short_term(ctx.at).map_or(0.0, |v| dot(v, e));
        f[SIM_INTEREST] = p.interests().map(|(_, v)| dot(v, e)).fold(0.0, f32::max);
        f[AFFINITY] = p.category_affinity(ctx.catalog.categories()[row.index()]);
        if let PurchaseState::Due { score, .. } = s.purchase_state(p, row, ctx.at) {
            f[DUE] = score;
        }
        f[BOUGHT] = if p.bought_at(row).is_some() { 1.0 } else { 0.0 };
        f[CO_ENGAGED] = once.co.get(&row).copied().unwrap_or(0.0);
    }
    f[RELEVANCE] = ctx.queries.iter().map(|q| dot(q, e)).fold(0.0, f32::max);
    let (mut text, mut coverage) = (0.0, 0.0);
    // `once.text` is empty without a query plan.
    if let Some(&score) = once.text.get(&row).filter(|_| once.bound > 0.0) {
        text = (score / once.bound).clamp(0.0, 1.0);
        let matched = ctx
            .plan
            .slots()
            .iter()
            .filter(|slot| slot.iter().any(|a| ctx.lexical.title_has(&a.term, row)))
            .count();
        coverage = (matched as f32 / ctx.plan.slots().len().max(1) as f32).min(1.0);
    }
    f[RELEVANCE] = match ctx.relevance {
        Some(w) => {
            let cosine = if ctx.queries.is_empty() { 0.0 } else { f[RELEVANCE] };
            w.value(super::RelevanceInputs { text, coverage, cosine })
        }
        None => f[RELEVANCE].max(text),
    };
    f[N_SOURCES] = f32::from(source_count);
    f[SRC0..SRC0 + SOURCE_SLOTS].copy_from_slice(source_scores);
    f[CTR] = s.rate(row, Rate::Ctr);
    f[CVR] = s.rate(row, Rate::Cvr);
    f[CART] = s.rate(row, Rate::CartRate);
    if let Some(c) = s.best_content(row) {
        f[CONTENT_WATCH] = s.content_rate(c, Rate::WatchCompletion).unwrap_or(0.0);
        f[CONTENT_CTR] = s.content_rate(c, Rate::Ctr).unwrap_or(0.0);
    }
    let age = elapsed(ctx.at, ctx.catalog.listed_at()[row.index()]).max(0) as f32;
    f[FRESHNESS] = (-age / ctx.fresh_scale).exp();
    f[PRICE_BAND] = ctx.rank_rows[row.index()].price_band;
    f[MERCHANT] = s.quality(row);
    f[TRENDING] = s.trending_scores()[row.index()];
    f[TRENDING_RECENT] = s.recent_trending_scores()[row.index()];
    f[LIVE] = if ctx.catalog.contents_of(row).any(|c| s.is_on_air(c, ctx.at) == Some(true)) {
        1.0
    } else {
        0.0
    };
    f
}

#[cfg(all(test, feature = "synth"))]
mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;
    use crate::index::LexicalIndex;
    use crate::signals::{SignalConfig, Signals};
    use crate::synth::{SynthConfig, generate};
    use std::sync::Arc;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A walk finds what a binary search finds, whatever the order of
        /// the rows asked (ascending runs, repeats, steps back, long jumps).
        #[test]
        fn walk_finds_what_binary_search_finds(
            list in proptest::collection::btree_set(0u32..400, 0..120),
            asks in proptest::collection::vec(0u32..420, 0..200),
            sort in proptest::bool::ANY,
        ) {
            let list: Vec<(ItemIdx, f32)> = list.into_iter().map(|r| (ItemIdx(r), r as f32)).collect();
            let mut asks: Vec<ItemIdx> = asks.into_iter().map(ItemIdx).collect();
            if sort {
                asks.sort_unstable();
            }
            let mut walk = Walk::new(&list);
            for r in asks {
                let want = list.binary_search_by_key(&r, |t| t.0).ok().map(|k| &list[k]);
                proptest::prop_assert_eq!(walk.find(r), want, "row {}", r.0);
            }
        }
    }

    /// Adding a feature is a declaration plus its computation in both
    /// paths: this holds the two paths to each other, column by column, at
    /// the signals' own time (how a service serves).
    #[test]
    fn every_column_of_the_fast_path_equals_the_oracle() {
        let world = generate(&SynthConfig::tiny()).unwrap();
        let catalog = Arc::new(world.catalog);
        let (signals, _) =
            Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
                .unwrap();
        // Both paths read the price band from the packed rows: any values do.
        let bands: Vec<f32> = (0..catalog.len()).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
        let packed = rank_rows(&catalog, &signals, &bands);
        let lexical = LexicalIndex::build(&catalog);
        let (signals, at) = (&signals, signals.as_of());
        let rows: Vec<ItemIdx> = (0..catalog.len() as u32).step_by(2).map(ItemIdx).collect();
        let n = rows.len();
        let src: Vec<f32> = (0..n * SOURCE_SLOTS).map(|i| (i % 5 + 1) as f32 / 6.0).collect();
        let counts: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        let word = catalog.title(rows[3]).and_then(|t| t.split_whitespace().last()).unwrap();
        let plan = lexical.plan(word, &crate::index::QueryConfig::default());
        let query = catalog.embeddings().row(rows[5]).to_vec();
        let queries = [&query[..]];
        let weights = crate::features::RelevanceWeights::default();
        let mut nonzero = [0usize; F];
        for user in world.users.iter().take(160) {
            let profile = signals.profile(user.id);
            let (mut co, mut scratch) = (Vec::new(), Vec::new());
            if let Some(p) = profile {
                signals.co_scores(p, at, CO_SEEDS, &mut co, &mut scratch);
            }
            let mut lists = RequestLists::default();
            lists.prepare(&catalog, signals, profile, at);
            lists.prepare_text(&lexical, &plan, &rows);
            let ctx = FeatureContext {
                catalog: &catalog,
                signals,
                profile,
                at,
                rank_rows: &packed,
                fresh_scale: 7.0 * 86_400.0,
                queries: &queries,
                lists: &lists,
                lexical: &lexical,
                plan: &plan,
                relevance: Some(&weights),
                co: &co,
            };
            let mut fast = FeatureMatrix::new();
            compute_features(&ctx, &rows, &src, &counts, &mut fast);
            // The copy built for AVX2 (where this CPU has it) and the plain
            // build of the same loop agree bit for bit.
            let mut plain = FeatureMatrix::new();
            features_pass(&ctx, &rows, &src, &counts, &mut plain, crate::kernels::Plain);
            let bits =
                |m: &FeatureMatrix| m.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain), "user {}", user.id);
            let once = NaiveRequest::new(&ctx);
            for (i, &r) in rows.iter().enumerate() {
                let src = &src[i * SOURCE_SLOTS..][..SOURCE_SLOTS];
                let slow = features_naive(&ctx, &once, r, src, counts[i]);
                for (c, (&a, &b)) in fast.row(i).iter().zip(&slow).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "user {} row {} column {c} ({}): fast {a}, oracle {b}",
                        user.id,
                        r.0,
                        FEATURE_NAMES[c]
                    );
                    nonzero[c] += usize::from(b != 0.0);
                }
            }
        }
        // Every column is exercised, but `live_now`: no stream of this seeded
        // world is on air at the end of its log (both paths say 0 there).
        let dead: Vec<&str> =
            (0..F).filter(|&c| nonzero[c] == 0 && c != LIVE).map(|c| FEATURE_NAMES[c]).collect();
        assert!(dead.is_empty(), "columns never non-zero here: {dead:?}");
    }
}
