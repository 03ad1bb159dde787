//! Candidate retrieval (召回): the sources that propose products for a
//! request.
//!
//! Each source is a [`CandidateSource`]: object-safe, `Send + Sync`, called
//! through `&self`, writing into a buffer the caller owns, with a stable id.
//! A source that fails is skipped and recorded in the
//! [`Trace`](crate::Trace); the feed goes on with the others (fail open).
//!
//! | id | surfaces | what it proposes |
//! |---|---|---|
//! | `interest_ann` | feed, omni | ANN neighbours of each interest vector (share of `k` by weight), or of the long-term vector |
//! | `similar` | feed, omni | ANN neighbours of the most recent engaged products |
//! | `coengaged` | feed, omni | co-engagement neighbours (products the same users engaged with close in time) of the latest engagements and purchases |
//! | `content` | feed, omni | products of live streams on air (by momentum) and of rising videos |
//! | `search` | search, omni | query embedding against the index with the request filters, plus BM25 over titles, fused by RRF or weight; on omni without a query, the recent searches |
//! | `repurchase` | feed, omni | the user's consumables due again |
//! | `cart` | omni | carted, not bought products and neighbours of the latest |
//! | `popular` | all | trending in the user's (or the filter's) top categories; global trending when cold |
//! | `fresh` | all | newly listed products of those categories |
//! | `pins` | all | the operations team's pinned products in force ([`business`](crate::business)) |

mod lexical;
mod sources;

pub use lexical::{LexicalIndex, query_terms, tokenize};
pub use sources::{
    CartPull, CoEngaged, ContentDriven, Fresh, InterestAnn, Pins, Popular, Repurchase,
    SearchFusion, SearchSource, SimilarItems,
};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::ids::{ItemIdx, Score, Timestamp};
use crate::index::{Neighbor, VectorIndex};
use crate::request::{FeedRequest, Surface};
use crate::signals::{Signals, UserProfile};

/// Everything a stage may read about one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The request.
    pub request: &'a FeedRequest,
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The product index.
    pub index: &'a dyn VectorIndex,
    /// The title index.
    pub lexical: &'a LexicalIndex,
    /// Learned signals.
    pub signals: &'a Signals,
    /// The user's profile, if they have history.
    pub profile: Option<&'a UserProfile>,
    /// Rows excluded for this request, sorted.
    pub excluded: &'a [ItemIdx],
    /// The request time.
    pub at: Timestamp,
    /// The request's query embedding, normalized, if it has one.
    pub query: Option<&'a [f32]>,
    /// The request's query terms (tokenized), empty without text.
    pub terms: &'a [String],
    /// The business rules in force (pins, boosts, blocklists).
    pub rules: &'a crate::business::RuleSet,
    /// The user's co-engagement scores, sorted by row, in `[0, 1]`
    /// ([`Signals::co_scores`](crate::Signals::co_scores)); empty for a
    /// cold user.
    pub co_engaged: &'a [(ItemIdx, f32)],
}

impl RequestContext<'_> {
    /// The surface served.
    pub fn surface(&self) -> Surface {
        self.request.surface
    }

    /// True if `row` must not be returned.
    #[inline]
    pub fn is_excluded(&self, row: ItemIdx) -> bool {
        !self.excluded.is_empty() && self.excluded.binary_search(&row).is_ok()
    }

    /// True if `row` passes the caller's exclusions, the request's category
    /// and price filters and, if asked, the stock filter: what a source
    /// pushes down into an index search.
    #[inline]
    pub fn admits(&self, row: ItemIdx) -> bool {
        let f = &self.request.filters;
        let i = row.index();
        !self.is_excluded(row)
            && (!f.in_stock || self.catalog.stocks()[i] > 0)
            && f.admits(self.catalog.categories()[i], self.catalog.prices()[i])
    }
}

/// A caller-owned buffer a source writes its candidates into, best first.
#[derive(Debug, Clone, Default)]
pub struct CandidateBuf {
    hits: Vec<Neighbor>,
}

impl CandidateBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a candidate; sources push in their own rank order.
    #[inline]
    pub fn push(&mut self, row: ItemIdx, score: Score) {
        self.hits.push(Neighbor { row, score });
    }

    /// The candidates, in the order pushed.
    pub fn as_slice(&self) -> &[Neighbor] {
        &self.hits
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.hits.clear();
    }

    /// The underlying vector, for index searches that write into one.
    pub fn as_mut_vec(&mut self) -> &mut Vec<Neighbor> {
        &mut self.hits
    }

    /// Keeps each row once (its best score), best first, at most `k`: for
    /// sources that gather from several lists.
    pub fn sort_dedup(&mut self, k: usize) {
        best_per_row(&mut self.hits, k);
    }
}

/// Keeps each row of `hits` once (its best score), best first, at most `k`.
pub(crate) fn best_per_row(hits: &mut Vec<Neighbor>, k: usize) {
    hits.sort_by(|a, b| a.row.cmp(&b.row).then(b.score.total_cmp(&a.score)));
    hits.dedup_by_key(|n| n.row);
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    hits.truncate(k);
}

/// A source of candidates.
pub trait CandidateSource: Send + Sync + std::fmt::Debug {
    /// A stable id for traces, explanations, quotas and config.
    fn id(&self) -> &'static str;

    /// True if the source runs on `surface` (default: every surface).
    fn serves(&self, surface: Surface) -> bool {
        let _ = surface;
        true
    }

    /// Writes candidates for `ctx` into `out` (empty on entry), best first.
    /// Must not return rows for which `ctx.is_excluded` is true.
    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_per_row_removes_copies_a_score_sort_leaves_apart() {
        // Row 1 found by two intents with different scores, row 2 between.
        let n = |row, score| Neighbor { row: ItemIdx(row), score };
        let mut hits = vec![n(1, 0.9), n(2, 0.5), n(1, 0.3)];
        best_per_row(&mut hits, 10);
        assert_eq!(hits, vec![n(1, 0.9), n(2, 0.5)]);
        best_per_row(&mut hits, 1);
        assert_eq!(hits, vec![n(1, 0.9)]);
    }
}
