//! What every stage reads about one request ([`RequestContext`]) and the
//! buffer a source writes into ([`CandidateBuf`]).

use crate::catalog::Catalog;
use crate::ids::{ItemIdx, Score, Timestamp};
use crate::index::{LexicalIndex, QueryPlan};
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
    /// The request's query terms the title vocabulary has verbatim
    /// (analyzed: stemmed, stop words dropped), empty without text.
    pub terms: &'a [String],
    /// The request's query text as the title index searches it: per query
    /// word its alternatives (exact, split, joined, typos, prefix). Empty
    /// without text.
    pub plan: &'a QueryPlan,
    /// The business rules in force (pins, boosts, blocklists).
    pub rules: &'a crate::business::RuleSet,
    /// The user's co-engagement scores, sorted by row, in `[0, 1]`
    /// ([`Signals::co_scores`](crate::signals::Signals::co_scores)); empty for a
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
