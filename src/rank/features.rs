//! The feature matrix: one dense `f32` row per candidate, in a buffer that
//! is reused from request to request.

use crate::catalog::Catalog;
use crate::ids::{ItemIdx, Timestamp};
use crate::rank::kernels::{dot, gather_dot};
use crate::signals::{PurchaseState, Rate, Signals, UserProfile};

/// Number of features per candidate.
pub const F: usize = 23;

/// Feature names, in column order.
pub const FEATURE_NAMES: [&str; F] = [
    "sim_long",
    "sim_short",
    "sim_interest",
    "n_sources",
    "src_interest",
    "src_similar",
    "src_content",
    "src_search",
    "src_repurchase",
    "src_popular",
    "ctr",
    "cvr",
    "cart_rate",
    "content_watch",
    "content_ctr",
    "freshness",
    "price_band",
    "merchant_score",
    "category_affinity",
    "repurchase_due",
    "query_relevance",
    "trending",
    "live_now",
];

/// Column of a named feature.
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|&n| n == name)
}

/// Source-score columns: the built-in sources map onto these six.
pub const SOURCE_SLOTS: usize = 6;

/// The source-score slot of a built-in source id, `None` for custom ones.
pub fn source_slot(id: &str) -> Option<usize> {
    Some(match id {
        "interest_ann" => 0,
        "similar" | "cart" => 1,
        "content" => 2,
        "search" => 3,
        "repurchase" => 4,
        "popular" | "fresh" => 5,
        _ => return None,
    })
}

const SIM_LONG: usize = 0;
const SIM_SHORT: usize = 1;
const SIM_INTEREST: usize = 2;
const N_SOURCES: usize = 3;
const SRC0: usize = 4;
const CTR: usize = 10;
const CVR: usize = 11;
const CART: usize = 12;
const CONTENT_WATCH: usize = 13;
const CONTENT_CTR: usize = 14;
const FRESHNESS: usize = 15;
const PRICE_BAND: usize = 16;
const MERCHANT: usize = 17;
const AFFINITY: usize = 18;
const DUE: usize = 19;
const RELEVANCE: usize = 20;
const TRENDING: usize = 21;
const LIVE: usize = 22;

/// `rows × F` features, row-major, reused between requests.
#[derive(Debug, Clone, Default)]
pub struct FeatureMatrix {
    data: Vec<f32>,
    rows: usize,
    /// Per-candidate scratch for a similarity column.
    col: Vec<f32>,
}

impl FeatureMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * F..(i + 1) * F]
    }

    /// All rows, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.rows * F]
    }

    /// Makes it the one row `f` (`F` values).
    pub(crate) fn set_single(&mut self, f: &[f32]) {
        self.reset(1);
        self.data.copy_from_slice(&f[..F]);
    }

    fn reset(&mut self, rows: usize) {
        self.rows = rows;
        self.data.clear();
        self.data.resize(rows * F, 0.0);
    }

    fn set_column(&mut self, c: usize, values: &[f32]) {
        for (row, &v) in self.data.chunks_exact_mut(F).zip(values) {
            row[c] = v;
        }
    }
}

/// What the features of one request read.
#[derive(Debug, Clone, Copy)]
pub struct FeatureContext<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The signals snapshot.
    pub signals: &'a Signals,
    /// The user's profile, if any.
    pub profile: Option<&'a UserProfile>,
    /// The request time.
    pub at: Timestamp,
    /// `ln(price / category median price)` of every row.
    pub price_band: &'a [f32],
    /// Seconds over which freshness decays to `1/e`.
    pub fresh_scale: f32,
    /// Unit query vectors (the request's query, or the user's recent
    /// search intents on Omni): relevance is the best match.
    pub queries: &'a [&'a [f32]],
}

/// Fills `out` with the features of `rows`. `source_scores` is
/// `rows.len() × SOURCE_SLOTS` (0 where a source did not find the row) and
/// `source_counts` the number of sources that found each row.
pub fn compute_features(
    ctx: &FeatureContext<'_>,
    rows: &[ItemIdx],
    source_scores: &[f32],
    source_counts: &[u8],
    out: &mut FeatureMatrix,
) {
    let n = rows.len();
    out.reset(n);
    let emb = ctx.catalog.embeddings().as_slice();
    // Similarities: gathered column by column (each a vectorized pass).
    out.col.resize(n, 0.0);
    if let Some(p) = ctx.profile {
        if let Some(v) = p.interest() {
            gather_dot(emb, v, rows, &mut out.col);
            let col = std::mem::take(&mut out.col);
            out.set_column(SIM_LONG, &col);
            out.col = col;
        }
        if let Some(v) = p.short_term(ctx.at) {
            gather_dot(emb, v, rows, &mut out.col);
            let col = std::mem::take(&mut out.col);
            out.set_column(SIM_SHORT, &col);
            out.col = col;
        }
        for (_, v) in p.interests() {
            gather_dot(emb, v, rows, &mut out.col);
            for (row, &s) in out.data.chunks_exact_mut(F).zip(&out.col) {
                row[SIM_INTEREST] = row[SIM_INTEREST].max(s);
            }
        }
    }
    for q in ctx.queries {
        gather_dot(emb, q, rows, &mut out.col);
        for (row, &s) in out.data.chunks_exact_mut(F).zip(&out.col) {
            row[RELEVANCE] = row[RELEVANCE].max(s);
        }
    }
    let s = ctx.signals;
    let (trend, listed) = (s.trending_scores(), ctx.catalog.listed_at());
    let cats = ctx.catalog.categories();
    for (i, (&r, row)) in rows.iter().zip(out.data.chunks_exact_mut(F)).enumerate() {
        let ri = r.index();
        row[N_SOURCES] = f32::from(source_counts[i]);
        row[SRC0..SRC0 + SOURCE_SLOTS]
            .copy_from_slice(&source_scores[i * SOURCE_SLOTS..(i + 1) * SOURCE_SLOTS]);
        row[CTR] = s.rate(r, Rate::Ctr);
        row[CVR] = s.rate(r, Rate::Cvr);
        row[CART] = s.rate(r, Rate::CartRate);
        if let Some(c) = s.best_content(r) {
            row[CONTENT_WATCH] = s.content_rate(c, Rate::WatchCompletion).unwrap_or(0.0);
            row[CONTENT_CTR] = s.content_rate(c, Rate::Ctr).unwrap_or(0.0);
        }
        let age = (ctx.at - listed[ri]).max(0) as f32;
        row[FRESHNESS] = (-age / ctx.fresh_scale).exp();
        row[PRICE_BAND] = ctx.price_band[ri];
        row[MERCHANT] = s.quality(r);
        row[TRENDING] = trend[ri];
        let live = ctx
            .catalog
            .product_content_rows(r)
            .iter()
            .any(|&c| ctx.catalog.content_on_air(c, ctx.at));
        row[LIVE] = if live { 1.0 } else { 0.0 };
        if let Some(p) = ctx.profile {
            row[AFFINITY] = p.category_affinity(cats[ri]);
            if let PurchaseState::Due { score, .. } = s.purchase_state(p, r, ctx.at) {
                row[DUE] = score;
            }
        }
        if row[RELEVANCE] < 0.0 {
            row[RELEVANCE] = 0.0;
        }
    }
}

/// The features of one row computed the plain way (no gathers, no reuse):
/// the oracle [`compute_features`] is tested against.
pub fn features_naive(
    ctx: &FeatureContext<'_>,
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
    }
    f[RELEVANCE] = ctx.queries.iter().map(|q| dot(q, e)).fold(0.0, f32::max);
    f[N_SOURCES] = f32::from(source_count);
    f[SRC0..SRC0 + SOURCE_SLOTS].copy_from_slice(source_scores);
    f[CTR] = s.rate(row, Rate::Ctr);
    f[CVR] = s.rate(row, Rate::Cvr);
    f[CART] = s.rate(row, Rate::CartRate);
    if let Some(c) = s.best_content(row) {
        f[CONTENT_WATCH] = s.content_rate(c, Rate::WatchCompletion).unwrap_or(0.0);
        f[CONTENT_CTR] = s.content_rate(c, Rate::Ctr).unwrap_or(0.0);
    }
    let age = (ctx.at - ctx.catalog.listed_at()[row.index()]).max(0) as f32;
    f[FRESHNESS] = (-age / ctx.fresh_scale).exp();
    f[PRICE_BAND] = ctx.price_band[row.index()];
    f[MERCHANT] = s.quality(row);
    f[TRENDING] = s.trending_scores()[row.index()];
    f[LIVE] = if ctx.catalog.contents_of(row).any(|c| s.is_on_air(c, ctx.at) == Some(true)) {
        1.0
    } else {
        0.0
    };
    f
}
