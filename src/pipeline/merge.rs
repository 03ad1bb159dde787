//! Merge: one row per product from every source's buffer, with the sources
//! that found it and their normalized scores ([`Candidates`]). Delisted
//! rows (tombstones) are dropped here, whatever source or pin produced
//! them: no later stage ever sees one.

use super::retrieve::Retrieved;
use crate::catalog::Catalog;
use crate::features::SOURCE_SLOTS;
use crate::ids::ItemIdx;
use crate::request::RemovalReason;

/// The merged candidates, sorted by row, and per candidate the sources
/// that found it (a bitmask), how many, and the best normalized score per
/// source-score slot (`SOURCE_SLOTS` per row).
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) rows: Vec<ItemIdx>,
    pub(crate) masks: Vec<u32>,
    pub(crate) counts: Vec<u8>,
    pub(crate) src_scores: Vec<f32>,
    /// (row, source, score) of every hit, the merge's working memory.
    tagged: Vec<(ItemIdx, u8, f32)>,
    /// Per candidate: why a filter removed it, the filter's working memory.
    pub(crate) removed: Vec<Option<RemovalReason>>,
}

impl Candidates {
    /// Makes `rows` the candidates, found by no source (scores 0).
    pub(crate) fn set_given(&mut self, rows: &[ItemIdx]) {
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.masks.clear();
        self.masks.resize(rows.len(), 0);
        self.src_scores.clear();
        self.src_scores.resize(rows.len() * SOURCE_SLOTS, 0.0);
        self.counts.clear();
        self.counts.resize(rows.len(), 0);
    }
}

/// Merges `retrieved` into `out`; `slots[i]` is source `i`'s score slot.
pub(crate) fn merge(
    retrieved: &Retrieved,
    slots: &[usize],
    catalog: &Catalog,
    out: &mut Candidates,
) {
    out.tagged.clear();
    for (i, buf) in retrieved.bufs.iter().enumerate() {
        out.tagged.extend(buf.as_slice().iter().map(|h| (h.row, i as u8, h.score)));
    }
    if catalog.delisted_len() > 0 {
        out.tagged.retain(|t| catalog.is_listed(t.0));
    }
    out.tagged.sort_unstable_by_key(|t| (t.0, t.1));
    out.rows.clear();
    out.masks.clear();
    out.counts.clear();
    out.src_scores.clear();
    let mut prev = None;
    for &(row, src, score) in &out.tagged {
        if prev != Some(row) {
            prev = Some(row);
            out.rows.push(row);
            out.masks.push(0);
            out.counts.push(0);
            out.src_scores.extend_from_slice(&[0.0; SOURCE_SLOTS]);
        }
        let last = out.rows.len() - 1;
        let bit = 1u32 << src;
        if out.masks[last] & bit == 0 {
            out.masks[last] |= bit;
            out.counts[last] += 1;
        }
        let max = retrieved.max[src as usize];
        let v = if max > 0.0 && score.is_finite() { score / max } else { 0.0 };
        let cell = &mut out.src_scores[last * SOURCE_SLOTS + slots[src as usize]];
        *cell = cell.max(v);
    }
}
