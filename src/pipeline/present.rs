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

/// The feed items of the placement, in order.
pub(crate) fn present(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    state: &ServingState,
    (retrieved, c, ranked, placement): Stages<'_>,
    ranking: Ranking,
) -> Vec<FeedItem> {
    let (catalog, signals) = (ctx.catalog, ctx.signals);
    let fusion = p.config.fusion.get(ctx.surface());
    placement
        .placed
        .iter()
        .map(|pl| {
            let cand = placement.pool[pl.index];
            let i = placement.scored[pl.index].row.index();
            let (content, live) = content_card(catalog, signals, cand.row, ctx.at);
            let factor = boost_factor(ctx, cand.row);
            let bits = pl.rules | if factor != 1.0 { rules::BOOST } else { 0 };
            let heads = &ranked.heads[i * HEADS..(i + 1) * HEADS];
            let frow = ranked.features.row(i);
            let rr = &state.rank_rows[cand.row.index()];
            let terms = fusion_terms(heads, frow, rr, ranking.has_relevance);
            let parts = FUSION_TERMS.iter().zip(terms).zip(fusion.exponents());
            FeedItem {
                product: catalog.product_id(cand.row),
                score: cand.value,
                content,
                live,
                explanation: Explanation {
                    sources: provenance(p, retrieved, c.masks[i], cand.row),
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

/// Names zipped with values.
fn named(names: &[&'static str], values: &[f32]) -> Vec<NamedValue> {
    names.iter().zip(values).map(|(&name, &value)| NamedValue { name, value }).collect()
}

/// Where each source that found `row` ranked it.
fn provenance(p: &Pipeline, retrieved: &Retrieved, mask: u32, row: ItemIdx) -> Vec<SourceHit> {
    p.sources
        .iter()
        .zip(&retrieved.bufs)
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
