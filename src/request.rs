//! Requests and what comes back: [`FeedRequest`], [`Feed`], [`FeedItem`],
//! [`Explanation`] and [`Trace`].

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{CategoryId, ContentId, ProductId, Score, Timestamp, UserId};
use crate::limits::{MAX_FILTER_CATEGORIES, MAX_K};
use crate::signals::{Gate, SearchQuery};
use serde::{Deserialize, Serialize};

/// Where the feed is shown, which decides its candidate sources, fusion
/// and blend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The interest feed: goods find people, no query.
    #[default]
    Feed,
    /// Search results: people find goods; needs a query.
    Search,
    /// The home/mall feed that blends both: interest candidates beside
    /// search-like ones pulled in by recent searches and carts.
    Omni,
}

impl Surface {
    /// Every surface.
    pub const ALL: [Surface; 3] = [Surface::Feed, Surface::Search, Surface::Omni];

    /// The lowercase name used in config and traces.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Feed => "feed",
            Surface::Search => "search",
            Surface::Omni => "omni",
        }
    }
}

/// Attribute filters a request puts on its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestFilters {
    /// Only these categories (empty: any); at most
    /// [`MAX_FILTER_CATEGORIES`](crate::limits::MAX_FILTER_CATEGORIES).
    pub categories: Vec<CategoryId>,
    /// Lowest price, inclusive.
    pub min_price: Option<f32>,
    /// Highest price, inclusive.
    pub max_price: Option<f32>,
    /// Leave out products with no stock. Default true.
    pub in_stock: bool,
}

impl Default for RequestFilters {
    fn default() -> Self {
        RequestFilters { categories: Vec::new(), min_price: None, max_price: None, in_stock: true }
    }
}

impl RequestFilters {
    /// True if a product with this category and price passes the attribute
    /// filters (stock is checked separately).
    #[inline]
    pub fn admits(&self, category: CategoryId, price: f32) -> bool {
        (self.categories.is_empty() || self.categories.contains(&category))
            && self.min_price.is_none_or(|lo| price >= lo)
            && self.max_price.is_none_or(|hi| price <= hi)
    }

    /// True if no attribute filter is set.
    pub fn is_open(&self) -> bool {
        self.categories.is_empty() && self.min_price.is_none() && self.max_price.is_none()
    }
}

/// One request for a ranked feed.
///
/// ```
/// use omnifeed::{FeedRequest, ProductId, Surface, UserId};
/// let req = FeedRequest::new(UserId(7)).k(20).at(1_790_812_800).exclude([ProductId(3)]);
/// req.validate()?;
/// let search = FeedRequest::new(UserId(7)).surface(Surface::Search).search_text("red scarf");
/// search.validate()?;
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRequest {
    /// Who the feed is for. A user with no history gets a cold-start feed.
    pub user: UserId,
    /// Where it is shown.
    pub surface: Surface,
    /// How many items to return, `1..=`[`MAX_K`](crate::limits::MAX_K). Default 20.
    pub k: usize,
    /// The request time (Unix seconds); default the signals' snapshot time.
    pub at: Option<Timestamp>,
    /// Products the caller wants left out. Ids the catalog does not know
    /// (a product delisted since the client saw it) are ignored and counted
    /// in [`Trace::stale_excludes`].
    pub exclude: Vec<ProductId>,
    /// Seed for every random choice the request makes (exploration); the
    /// same request on the same state gives the same feed.
    pub seed: u64,
    /// The search query (required on [`Surface::Search`]; on other surfaces
    /// it adds search candidates).
    pub query: Option<SearchQuery>,
    /// Attribute filters.
    pub filters: RequestFilters,
    /// Ids of sources or filters to skip for this request (an A/B arm, a
    /// debugging call). A required filter (governance, exclusion) cannot be
    /// skipped. Default none.
    #[serde(default)]
    pub skip: Vec<String>,
    /// The caller's id for this request, recorded with its exposure (see
    /// [`exposure`](crate::exposure)) so clicks can be joined to it; `None`:
    /// the recorder numbers it.
    #[serde(default)]
    pub id: Option<u64>,
    /// Build each item's [`Explanation`] (sources with ranks, features,
    /// heads, fusion parts, rules). Default true. `false` leaves them empty,
    /// which spares most of a request's allocations
    /// (`examples/alloc_count.rs`). A side effect on for the request that
    /// reads explanations gets them anyway; the exposure recorder reads the
    /// ranked rows instead ([`SideEffect::reads_explanations`](crate::stage::SideEffect::reads_explanations)).
    #[serde(default = "explain_default")]
    pub explain: bool,
}

fn explain_default() -> bool {
    true
}

impl FeedRequest {
    /// A feed request for `user` with the defaults.
    pub fn new(user: UserId) -> Self {
        FeedRequest {
            user,
            surface: Surface::Feed,
            k: 20,
            at: None,
            exclude: Vec::new(),
            seed: 0,
            query: None,
            filters: RequestFilters::default(),
            skip: Vec::new(),
            id: None,
            explain: true,
        }
    }

    /// Builds the items' explanations (`true`, the default) or leaves them
    /// empty (see [`FeedRequest::explain`](#structfield.explain)).
    pub fn explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    /// Sets the request's id (recorded with its exposure).
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// Skips the source or filter `id` for this request.
    pub fn skip(mut self, id: impl Into<String>) -> Self {
        self.skip.push(id.into());
        self
    }

    /// Sets the number of items.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets the request time.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.at = Some(t);
        self
    }

    /// Sets the surface.
    pub fn surface(mut self, surface: Surface) -> Self {
        self.surface = surface;
        self
    }

    /// Adds products to leave out.
    pub fn exclude(mut self, products: impl IntoIterator<Item = ProductId>) -> Self {
        self.exclude.extend(products);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the query.
    pub fn query(mut self, query: SearchQuery) -> Self {
        self.query = Some(query);
        self
    }

    /// Sets the query text (keeping a query embedding already set).
    pub fn search_text(mut self, text: impl Into<String>) -> Self {
        self.query.get_or_insert_with(SearchQuery::default).text = Some(text.into());
        self
    }

    /// Sets the attribute filters.
    pub fn filters(mut self, filters: RequestFilters) -> Self {
        self.filters = filters;
        self
    }

    /// Checks what can be checked without the state: `k` in `1..=MAX_K`, a query on
    /// the search surface, finite non-negative price bounds in order, a
    /// finite query embedding.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::new(ErrorKind::InvalidK { k: self.k, max: MAX_K }));
        }
        let usable = self.query.as_ref().is_some_and(|q| {
            q.text.as_deref().is_some_and(|t| !t.trim().is_empty()) || q.embedding.is_some()
        });
        if self.surface == Surface::Search && !usable {
            return Err(Error::invalid_value(
                "request.query",
                "search surface",
                "a search request needs query text or a query embedding",
            ));
        }
        if self.filters.categories.len() > MAX_FILTER_CATEGORIES {
            return Err(Error::invalid_value(
                "request.filters.categories",
                "request",
                format!(
                    "at most {MAX_FILTER_CATEGORIES} categories, got {}",
                    self.filters.categories.len()
                ),
            ));
        }
        for (field, v) in [
            ("request.filters.min_price", self.filters.min_price),
            ("request.filters.max_price", self.filters.max_price),
        ] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(Error::invalid_value(
                    field,
                    "request",
                    format!("expected a finite price >= 0, got {v}"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.filters.min_price, self.filters.max_price)
            && lo > hi
        {
            return Err(Error::invalid_value(
                "request.filters",
                "request",
                format!("min_price {lo} is above max_price {hi}"),
            ));
        }
        if let Some(e) = self.query.as_ref().and_then(|q| q.embedding.as_ref())
            && let Some(i) = e.iter().position(|x| !x.is_finite())
        {
            return Err(Error::new(ErrorKind::NonFinite {
                what: "request.query.embedding",
                index: i,
            }));
        }
        Ok(())
    }
}

/// A ranked feed: best first, with the trace of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feed {
    /// The items, best first; at most `k`.
    pub items: Vec<FeedItem>,
    /// What each stage did.
    pub trace: Trace,
}

/// One ranked product with its presentation and explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedItem {
    /// The product.
    pub product: ProductId,
    /// Its fused value ([`Explanation::parts`]). Reranking may place a lower
    /// value above a higher one (diversity, caps, slots); `rules` says why.
    pub score: Score,
    /// The content to show it with: a live stream on air that carries it,
    /// else its best video; `None` shows the product card.
    pub content: Option<ContentId>,
    /// True if `content` is a live stream on air.
    pub live: bool,
    /// The probability that the policy placed it at this position: 1 for
    /// the deterministic feed, less under a stochastic placement
    /// ([`Stochastic`](crate::rerank::Stochastic)).
    pub propensity: f32,
    /// Why it is here.
    pub explanation: Explanation,
}

/// Why an item is in the feed: which sources found it, its features, the
/// scorer's heads, the fusion and the rules that moved it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Explanation {
    /// The sources that retrieved it, with its rank (0-based) and score in each.
    pub sources: Vec<SourceHit>,
    /// Its feature row, by name.
    pub features: Vec<NamedValue>,
    /// The scorer's head outputs (pCTR, pCVR, engagement), by name.
    pub heads: Vec<NamedValue>,
    /// The fusion terms: `score = Π value ^ weight` (a business boost in
    /// force is the last part, `boost` with weight 1).
    pub parts: Vec<ScorePart>,
    /// Its rank by fused value before reranking (0-based).
    pub pre_rank: u32,
    /// The rerank rules that placed it (empty: it kept its place in value
    /// order among what was left).
    pub rules: Vec<&'static str>,
}

/// A named number in an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NamedValue {
    /// The name.
    pub name: &'static str,
    /// The value.
    pub value: f32,
}

/// A candidate source's finding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SourceHit {
    /// The source's id.
    pub source: &'static str,
    /// 0-based rank within that source's list.
    pub rank: u32,
    /// The source's own score.
    pub score: Score,
}

/// One term of a fused score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScorePart {
    /// The term's name.
    pub name: &'static str,
    /// Its value for this item.
    pub value: f32,
    /// Its weight (the exponent in the fusion product).
    pub weight: f32,
}

/// What became of a request's query ([`Trace::query`]).
///
/// ```
/// # #[cfg(feature = "synth")] {
/// use std::sync::Arc;
/// use omnifeed::index::ExactIndex;
/// use omnifeed::{synth, FeedRequest, QueryOutcome, Recommender, ServingState, Signals, SignalConfig, Surface};
/// let world = synth::generate(&synth::SynthConfig::tiny())?;
/// let catalog = Arc::new(world.catalog);
/// let (signals, _) = Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())?;
/// let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
/// let rec = Recommender::builder().state(ServingState::new(catalog, index, Arc::new(signals))?).build()?;
/// let search = |text: &str| FeedRequest::new(world.users[0].id).surface(Surface::Search).search_text(text);
/// assert_eq!(rec.recommend(&search("!!!"))?.trace.query, QueryOutcome::NoSearchableTerm);
/// assert_eq!(rec.recommend(&search("zzqxj"))?.trace.query, QueryOutcome::NoMatch);
/// let feed = FeedRequest::new(world.users[0].id).search_text("headphones");
/// assert_eq!(rec.recommend(&feed)?.trace.query, QueryOutcome::NotSearch);
/// # }
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryOutcome {
    /// No search ran with a query: the request has none, or no search
    /// source serves its surface (a Feed carrying search text: the text
    /// only counts as relevance in ranking), or they were switched off.
    #[default]
    NotSearch,
    /// The query has no searchable term (`"!!!"`) and no embedding: the
    /// search sources had nothing to look for.
    NoSearchableTerm,
    /// The search sources ran and found nothing: the items are what the
    /// other sources found, not search results.
    NoMatch,
    /// The search sources found candidates for the query.
    Matched,
}

/// Why a candidate was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemovalReason {
    /// The caller excluded it.
    Excluded,
    /// A governance gate: suspended merchant or problem product.
    Gated(Gate),
    /// Shown to the user within the seen window.
    Seen,
    /// Already bought and not due again.
    Bought,
    /// No stock.
    OutOfStock,
    /// Outside the request's category or price filters.
    RequestFilter,
    /// On a [`business`](crate::business) blocklist (product, merchant or
    /// category).
    Blocked,
    /// A custom [`Filter`](crate::stage::Filter); the filter's id.
    Custom(&'static str),
}

impl RemovalReason {
    /// A short name for metrics labels and logs: `excluded`, `gated`,
    /// `blocked`, `seen`, `bought`, `out_of_stock`, `request_filter`, or a
    /// custom filter's id.
    pub fn name(&self) -> &'static str {
        match self {
            RemovalReason::Excluded => "excluded",
            RemovalReason::Gated(_) => "gated",
            RemovalReason::Blocked => "blocked",
            RemovalReason::Seen => "seen",
            RemovalReason::Bought => "bought",
            RemovalReason::OutOfStock => "out_of_stock",
            RemovalReason::RequestFilter => "request_filter",
            RemovalReason::Custom(id) => id,
        }
    }
}

/// What each stage of one request did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Trace {
    /// The surface served.
    pub surface: Surface,
    /// The [`ServingState::version`](crate::state::ServingState::version) that
    /// served it: every product in the feed exists, listed, in that version.
    pub state_version: u64,
    /// The time it was served for (the request's `at`, or the state's
    /// time), Unix seconds.
    pub at: Timestamp,
    /// Each candidate source, in order.
    pub sources: Vec<SourceTrace>,
    /// Distinct candidates after merging.
    pub candidates: usize,
    /// Candidates removed, by reason (first reason that applied).
    pub removed: Vec<(RemovalReason, usize)>,
    /// Candidates each filter that ran removed, in order: `(filter id,
    /// count)`.
    pub filters: Vec<(&'static str, usize)>,
    /// Candidates scored (after filters).
    pub scored: usize,
    /// Candidates the rerank stage chose from.
    pub rerank_pool: usize,
    /// Feature or head values that came out NaN or infinite and were
    /// replaced by 0 before scoring or fusion. Always 0 with the built-in
    /// parts; non-zero points at a custom scorer or source.
    pub repaired: usize,
    /// What became of the request's query: not a search, no searchable
    /// term, no match (the items are what the other sources found, not
    /// search results), or matched.
    pub query: QueryOutcome,
    /// The A/B variant that served the request, as `experiment/variant`;
    /// `None` for the control (see [`experiment`](crate::experiment)).
    pub variant: Option<String>,
    /// Ids in the request's `exclude` the catalog does not know; ignored.
    pub stale_excludes: usize,
    /// Distinct search terms used (at most
    /// [`MAX_QUERY_TERMS`](crate::limits::MAX_QUERY_TERMS)).
    pub query_terms: usize,
}

/// One source's part in a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceTrace {
    /// The source's id.
    pub source: &'static str,
    /// Candidates it returned.
    pub candidates: usize,
    /// Its error, if it failed (the feed went on without it).
    pub error: Option<String>,
}
