//! The one feature schema: every ranking feature declared once, with its
//! name, definition, range, scaling and what fills it. [`F`], [`col`],
//! [`FEATURE_NAMES`] and [`FEATURES`] are generated from the declaration
//! below, and `FEATURES.md`'s table is checked against [`FEATURES`] by a
//! test, so they cannot disagree.
//!
//! Adding a feature is one declaration here plus its computation in
//! `compute_features` and the oracle `features_naive`
//! (a test compares the two on every column); a source that fills a new
//! column names it in [`CandidateSource::feature`](crate::stage::CandidateSource::feature).

/// One declared ranking feature: what `FEATURES.md` shows and scorers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// The column.
    pub column: usize,
    /// The name weights and explanations use.
    pub name: &'static str,
    /// What it measures.
    pub definition: &'static str,
    /// Its range of values.
    pub range: &'static str,
    /// How it is scaled.
    pub scaling: &'static str,
    /// Which signal, profile or source fills it.
    pub source: &'static str,
}

macro_rules! feature_schema {
    ($($col:ident: $name:literal, $definition:literal, $range:literal, $scaling:literal, $source:literal;)+) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
        #[repr(usize)]
        enum Column {
            $($col,)+
            Count,
        }

        /// Number of features per candidate.
        pub const F: usize = Column::Count as usize;

        /// The feature columns by name. Code outside the features reads a
        /// feature row through these (or [`feature_index`]), never by number.
        pub mod col {
            $(
                #[doc = concat!("`", $name, "`: ", $definition, " (", $range, ").")]
                pub const $col: usize = super::Column::$col as usize;
            )+
        }

        /// Every feature, in column order.
        pub const FEATURES: [Feature; F] = [
            $(Feature {
                column: col::$col,
                name: $name,
                definition: $definition,
                range: $range,
                scaling: $scaling,
                source: $source,
            },)+
        ];

        /// Feature names, in column order.
        pub const FEATURE_NAMES: [&str; F] = [$($name,)+];
    };
}

feature_schema! {
    SIM_LONG: "sim_long",
        "cosine of the product embedding with the user's long-term interest (decayed, engagement-weighted sum of engaged products)",
        "[-1, 1]", "raw cosine; 0 without a profile", "profile, catalog embeddings";
    SIM_SHORT: "sim_short",
        "cosine with the session vector (engagements of the latest session, short half-life)",
        "[-1, 1]", "0 when no session is open at `at`", "profile";
    SIM_INTEREST: "sim_interest",
        "best cosine with any of the user's interest clusters (spherical k-means of recent engagements)",
        "[-1, 1]", "max over clusters; 0 without", "profile";
    N_SOURCES: "n_sources",
        "how many candidate sources found the product",
        "1..=number of sources", "count", "retrieval";
    SRC_INTEREST: "src_interest",
        "`interest_ann`'s score for the product",
        "[0, 1]", "divided by the source's best score in this request", "retrieval";
    SRC_SIMILAR: "src_similar",
        "the best of `similar`, `cart` and `coengaged` scores",
        "[0, 1]", "per-source max-normalized", "retrieval";
    SRC_CONTENT: "src_content",
        "`content`'s score (live on air above rising videos)",
        "[0, 1]", "max-normalized", "retrieval";
    SRC_SEARCH: "src_search",
        "`search`'s fused score (RRF or weighted)",
        "[0, 1]", "max-normalized", "retrieval";
    SRC_REPURCHASE: "src_repurchase",
        "`repurchase`'s due score",
        "[0, 1]", "max-normalized", "retrieval";
    SRC_POPULAR: "src_popular",
        "the best of `popular` and `fresh` scores",
        "[0, 1]", "max-normalized", "retrieval";
    SRC_OTHER: "src_other",
        "the best score of any custom source",
        "[0, 1]", "max-normalized", "retrieval";
    CTR: "ctr",
        "smoothed click-through rate: (clicks + α) / (impressions + α + β), on the rate half-life",
        "[0, 1]", "Beta prior per category, method of moments", "signals";
    CVR: "cvr",
        "smoothed orders per click",
        "[0, 1]", "as `ctr`", "signals";
    CART: "cart_rate",
        "smoothed carts per click",
        "[0, 1]", "as `ctr`", "signals";
    CONTENT_WATCH: "content_watch",
        "watch completion of the product's best content",
        "[0, 1]", "smoothed, content prior", "signals";
    CONTENT_CTR: "content_ctr",
        "click-through of the product's best content",
        "[0, 1]", "smoothed, content prior", "signals";
    FRESHNESS: "freshness",
        "`exp(-(at - listed_at) / fresh_scale)`",
        "(0, 1]", "`fresh_scale` default 7 days", "catalog, request time";
    PRICE_BAND: "price_band",
        "`ln(price / median price of its category)`",
        "[-3, 3]", "clamped", "catalog";
    MERCHANT: "merchant_score",
        "the merchant's governance score (experience, refunds and complaints against the mean)",
        "[0, 1]", "score as derived", "signals, catalog";
    AFFINITY: "category_affinity",
        "the user's share of engagement in the product's category (long half-life)",
        "[0, 1]", "shares sum to 1 over kept categories", "profile";
    DUE: "repurchase_due",
        "how due a repurchase is: peaks at 1 one cycle after the last purchase of a consumable",
        "[0, 1]", "0 for durables and non-purchases", "signals (cycles), profile";
    RELEVANCE: "query_relevance",
        "best cosine with the request's query embedding, or the user's recent search intents on Omni",
        "[-1, 1]", "0 without a query", "request, profile";
    TRENDING: "trending",
        "`ln(1 + engagement) / ln(1 + max engagement)`, decayed on the rate half-life (`SignalConfig::half_lives[rate_half_life]`: 7 days by default, ten years on the MovieLens preset)",
        "[0, 1]", "log-scaled to the catalog's maximum", "signals";
    LIVE: "live_now",
        "1 if a live stream on air at `at` carries the product",
        "{0, 1}", "indicator", "catalog, signals";
    CO_ENGAGED: "co_engaged",
        "the user's co-engagement score: sum over their latest 20 distinct engagements (weight × `1 / (1 + 0.2·rank)`) and last 5 purchases of the cosine-normalized co-engagement weight `co(i, j) / sqrt(total_i · total_j)`",
        "[0, 1]", "divided by the request's best", "signals (`SignalConfig::co_engagement`), profile";
    TRENDING_RECENT: "trending_recent",
        "as `trending`, on the next shorter half-life (`half_lives[rate_half_life − 1]`, the same one if the rate half-life is the shortest: 1 day by default, a year on the MovieLens preset): what is popular lately",
        "[0, 1]", "log-scaled to the catalog's maximum", "signals";
    BOUGHT: "bought",
        "1 if the user bought the product (among their kept purchases, `profiles.purchases`)",
        "{0, 1}", "indicator; a purchase within `bought_window` (a day) is filtered out before ranking unless due again, so the ranker sees older ones", "profile";
}

/// Column of a named feature.
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|&n| n == name)
}

/// Source-score columns: `src_interest` to `src_other`, contiguous. Each
/// source names the column its score feeds
/// ([`CandidateSource::feature`](crate::stage::CandidateSource::feature));
/// custom sources feed `src_other` unless they say otherwise.
pub const SOURCE_SLOTS: usize = col::SRC_OTHER - col::SRC_INTEREST + 1;

/// The first source-score column.
pub(crate) const SRC0: usize = col::SRC_INTEREST;

/// The slot (`0..SOURCE_SLOTS`) of a source-score column; any other column
/// maps to `src_other`'s.
pub(crate) fn source_slot(column: usize) -> usize {
    if (SRC0..SRC0 + SOURCE_SLOTS).contains(&column) {
        column - SRC0
    } else {
        col::SRC_OTHER - SRC0
    }
}

/// Number of heads a scorer writes per candidate.
pub const HEADS: usize = 3;
/// Head names, in output order.
pub const HEAD_NAMES: [&str; HEADS] = ["pctr", "pcvr", "engagement"];
