//! Present: the placed items with their content card (a live stream on
//! air, else the best video) and their explanation (sources, features,
//! heads, fusion parts, pre-rank position, rules).

use super::Pipeline;
use super::merge::Candidates;
use super::rank::{Ranked, Ranking, boost_factor, fusion_terms};
use super::retrieve::Retrieved;
use super::select::Placement;
use crate::catalog::Catalog;
use crate::features::{FEATURE_NAMES, HEAD_NAMES, HEADS};
use crate::ids::{ContentId, ItemIdx};
use crate::rank::scorer::FUSION_TERMS;
use crate::request::{Explanation, FeedItem, NamedValue, ScorePart, SourceHit};
use crate::rerank::rules;
use crate::signals::Signals;
use crate::stage::RequestContext;
use crate::state::ServingState;

/// The stage buffers present reads.
pub(crate) type Stages<'a> = (&'a Retrieved, &'a Candidates, &'a Ranked, &'a Placement);

/// The feed items of the placement, in order; with their explanations
/// when `explain` (else those are left empty, allocating nothing).
pub(crate) fn present(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    state: &ServingState,
    (retrieved, c, ranked, placement): Stages<'_>,
    ranking: Ranking,
    explain: bool,
) -> Vec<FeedItem> {
    let (catalog, signals) = (ctx.catalog, ctx.signals);
    let fusion = p.config.fusion.get(ctx.surface());
    let ranks = SourceRanks::new(retrieved, if explain { placement.placed.len() } else { 0 });
    placement
        .placed
        .iter()
        .enumerate()
        .map(|(j, pl)| {
            let cand = placement.pool[pl.index];
            let i = placement.scored[pl.index].row.index();
            let (content, live) = content_card(catalog, signals, cand.row, ctx.at);
            let mut item = FeedItem {
                product: catalog.product_id(cand.row),
                score: cand.value,
                content,
                live,
                propensity: placement.propensity.get(j).copied().unwrap_or(1.0),
                explanation: Explanation::default(),
            };
            if !explain {
                return item;
            }
            let factor = boost_factor(ctx, cand.row);
            let bits = pl.rules | if factor != 1.0 { rules::BOOST } else { 0 };
            let heads = &ranked.heads[i * HEADS..(i + 1) * HEADS];
            let frow = ranked.features.row(i);
            let rr = &state.rank_rows[cand.row.index()];
            let terms = fusion_terms(heads, frow, rr, ranking.relevance);
            let parts = FUSION_TERMS.iter().zip(terms).zip(fusion.exponents());
            item.explanation = Explanation {
                sources: provenance(p, retrieved, &ranks, c.masks[i], cand.row),
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
            };
            item
        })
        .collect()
}

/// Names zipped with values.
fn named(names: &[&'static str], values: &[f32]) -> Vec<NamedValue> {
    names.iter().zip(values).map(|(&name, &value)| NamedValue { name, value }).collect()
}

/// Long feeds look a row's rank in each source up by binary search in the
/// source's hits sorted by row, instead of a scan of the source's list per
/// placed item (`k × hits`); short ones scan (no sort to pay for).
pub(crate) struct SourceRanks(Option<Vec<Vec<(ItemIdx, u32)>>>);

impl SourceRanks {
    /// Feeds up to this many items scan.
    const SCAN_UP_TO: usize = 32;

    pub(crate) fn new(retrieved: &Retrieved, placed: usize) -> SourceRanks {
        if placed <= Self::SCAN_UP_TO {
            return SourceRanks(None);
        }
        let sorted = retrieved
            .bufs
            .iter()
            .map(|buf| {
                let mut v: Vec<(ItemIdx, u32)> =
                    buf.as_slice().iter().enumerate().map(|(r, n)| (n.row, r as u32)).collect();
                v.sort_unstable();
                v
            })
            .collect();
        SourceRanks(Some(sorted))
    }

    /// The first rank of `row` in source `src`'s list.
    fn rank(&self, retrieved: &Retrieved, src: usize, row: ItemIdx) -> Option<usize> {
        match &self.0 {
            None => retrieved.bufs[src].as_slice().iter().position(|n| n.row == row),
            Some(sorted) => {
                let v = &sorted[src];
                let at = v.partition_point(|&(r, _)| r < row);
                v.get(at).filter(|&&(r, _)| r == row).map(|&(_, rank)| rank as usize)
            }
        }
    }
}

/// Where each source that found `row` ranked it.
fn provenance(
    p: &Pipeline,
    retrieved: &Retrieved,
    ranks: &SourceRanks,
    mask: u32,
    row: ItemIdx,
) -> Vec<SourceHit> {
    let mut hits = Vec::new();
    each_source(p, retrieved, ranks, mask, row, &mut |h| hits.push(h));
    hits
}

/// Calls `hit` for each source (in the sources' order) whose bit is in
/// `mask`, with where it ranked `row`.
fn each_source(
    p: &Pipeline,
    retrieved: &Retrieved,
    ranks: &SourceRanks,
    mask: u32,
    row: ItemIdx,
    hit: &mut dyn FnMut(SourceHit),
) {
    let found = p.sources.iter().zip(&retrieved.bufs).enumerate();
    for (i, (src, buf)) in found.filter(|(i, _)| mask & (1 << i) != 0) {
        if let Some(rank) = ranks.rank(retrieved, i, row) {
            let score = buf.as_slice()[rank].score;
            hit(SourceHit { source: src.id(), rank: rank as u32, score });
        }
    }
}

/// The placed items' ranked rows, borrowed from the stage buffers: what an
/// inline side effect reads instead of explanations
/// ([`RankedRows`](crate::stage::RankedRows)).
pub(crate) struct PlacedRows<'a> {
    p: &'a Pipeline,
    stages: Stages<'a>,
    ranks: SourceRanks,
}

impl<'a> PlacedRows<'a> {
    pub(crate) fn new(p: &'a Pipeline, stages: Stages<'a>) -> PlacedRows<'a> {
        let ranks = SourceRanks::new(stages.0, stages.3.placed.len());
        PlacedRows { p, stages, ranks }
    }

    /// Item `item`'s candidate index and catalog row.
    fn candidate(&self, item: usize) -> Option<(usize, ItemIdx)> {
        let placement = self.stages.3;
        let pl = placement.placed.get(item)?;
        Some((placement.scored[pl.index].row.index(), placement.pool[pl.index].row))
    }
}

impl crate::stage::RankedRows for PlacedRows<'_> {
    fn features(&self, item: usize) -> &[f32] {
        self.candidate(item).map_or(&[], |(i, _)| self.stages.2.features.row(i))
    }

    fn heads(&self, item: usize) -> &[f32] {
        self.candidate(item).map_or(&[], |(i, _)| &self.stages.2.heads[i * HEADS..(i + 1) * HEADS])
    }

    fn sources(&self, item: usize, hit: &mut dyn FnMut(SourceHit)) {
        if let Some((i, row)) = self.candidate(item) {
            let (retrieved, c) = (self.stages.0, self.stages.1);
            each_source(self.p, retrieved, &self.ranks, c.masks[i], row, hit);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::CandidateBuf;

    /// The sorted lookup long feeds use finds the rank the scan finds (the
    /// first, where a source lists a row twice), and nothing where the scan
    /// finds nothing.
    #[test]
    fn sorted_ranks_equal_the_scan() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut bufs = Vec::new();
        for len in [0usize, 1, 7, 300] {
            let mut b = CandidateBuf::new();
            for _ in 0..len {
                b.push(ItemIdx((next() % 200) as u32), (next() % 1000) as f32);
            }
            bufs.push(b);
        }
        let retrieved = Retrieved { max: vec![1.0; bufs.len()], bufs };
        let (scan, sorted) = (SourceRanks::new(&retrieved, 1), SourceRanks::new(&retrieved, 1000));
        assert!(scan.0.is_none() && sorted.0.is_some());
        let mut found = 0;
        for src in 0..retrieved.bufs.len() {
            for row in 0..220 {
                let want = scan.rank(&retrieved, src, ItemIdx(row));
                assert_eq!(sorted.rank(&retrieved, src, ItemIdx(row)), want, "{src} {row}");
                found += usize::from(want.is_some());
            }
        }
        assert!(found > 150, "{found}");
    }
}
