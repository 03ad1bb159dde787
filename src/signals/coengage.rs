//! Co-engagement item-to-item: for every product, the products the same
//! users engaged with close in time, as time-decayed pair weights, top-N
//! per product, kept incrementally by the signal writer.
//!
//! An engagement of weight `w` with product `j` at time `t` pairs with
//! each of the user's latest engagements `(i, w_i, t_i)` within the gap:
//! both `i → j` and `j → i` gain `min(w, w_i)`. Each product's list holds
//! at most `N` neighbours; a new neighbour enters a full list by taking the
//! place of the weakest and its weight (the Space-Saving algorithm: every
//! neighbour heavier than `total / N` is kept; bounded memory per product,
//! `N × 8` bytes and a time). Weights decay with one half-life, lazily,
//! as the counters do: a list stores its values as of its last update.
//!
//! Similarity is normalized like item-kNN's cosine: `co(i, j) /
//! sqrt(total_i · total_j)`, `total` being all the pair weight a product
//! gained, so a popular product is not everyone's neighbour.

use crate::ids::{ItemIdx, Timestamp, elapsed};
use std::sync::Arc;

const CHUNK: usize = 1024;

/// A co-engagement table as flat columns: per product its time and total,
/// and its neighbours' rows and weights in CSR form.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CoRaw {
    pub(crate) t: Vec<Timestamp>,
    pub(crate) total: Vec<f32>,
    pub(crate) offsets: Vec<u32>,
    pub(crate) rows: Vec<u32>,
    pub(crate) weights: Vec<f32>,
}

/// One product's neighbours.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CoList {
    /// The time the values are as of.
    t: Timestamp,
    /// All pair weight gained, decayed to `t`.
    total: f32,
    rows: Vec<u32>,
    weights: Vec<f32>,
}

/// Top-N co-engagement neighbours for every product, in copy-on-write
/// chunks (a snapshot clones `Arc`s; the writer copies a chunk it changes).
#[derive(Debug, Clone)]
pub(crate) struct CoTable {
    neighbours: usize,
    /// `ln 2 / half-life`.
    rate: f64,
    len: usize,
    chunks: Vec<Arc<Vec<CoList>>>,
}

impl CoTable {
    pub(crate) fn new(len: usize, neighbours: usize, half_life: i64) -> CoTable {
        let mut t = CoTable {
            neighbours,
            rate: std::f64::consts::LN_2 / half_life.max(1) as f64,
            len: 0,
            chunks: Vec::new(),
        };
        t.grow(len);
        t
    }

    /// Grows to `len` products (never shrinks).
    pub(crate) fn grow(&mut self, len: usize) {
        while self.len < len {
            let i = self.len % CHUNK;
            if i == 0 {
                self.chunks.push(Arc::new(Vec::new()));
            }
            let n = (CHUNK - i).min(len - self.len);
            if let Some(last) = self.chunks.last_mut() {
                Arc::make_mut(last).resize(i + n, CoList::default());
            }
            self.len += n;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn list(&self, row: usize) -> Option<&CoList> {
        self.chunks.get(row / CHUNK)?.get(row % CHUNK)
    }

    /// Starts fetching `row`'s list head (a hint; nothing for a row out of
    /// range).
    #[inline]
    pub(crate) fn prefetch(&self, row: usize) {
        if let Some(list) = self.list(row) {
            crate::kernels::prefetch(std::slice::from_ref(list));
        }
    }

    fn decay(&self, dt: i64) -> f32 {
        (-(dt.max(0) as f64) * self.rate).exp() as f32
    }

    /// Adds `w` at `at` to the pair `from → to`.
    pub(crate) fn add(&mut self, from: usize, to: u32, w: f32, at: Timestamp) {
        if self.neighbours == 0 || from >= self.len || w.is_nan() || w <= 0.0 {
            return;
        }
        let (n, rate) = (self.neighbours, self.rate);
        let list = &mut Arc::make_mut(&mut self.chunks[from / CHUNK])[from % CHUNK];
        let w = if at >= list.t {
            if list.total > 0.0 {
                let f = (-(elapsed(at, list.t) as f64) * rate).exp() as f32;
                list.weights.iter_mut().for_each(|x| *x *= f);
                list.total *= f;
            }
            list.t = at;
            w
        } else {
            w * (-(elapsed(list.t, at) as f64) * rate).exp() as f32
        };
        list.total += w;
        if let Some(k) = list.rows.iter().position(|&r| r == to) {
            list.weights[k] += w;
        } else if list.rows.len() < n {
            list.rows.push(to);
            list.weights.push(w);
        } else if let Some((k, &min)) =
            list.weights.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        {
            // Space-Saving (Metwally et al.): the newcomer takes the
            // weakest place and inherits its weight, an overestimate that
            // guarantees every neighbour heavier than total / N is kept.
            list.rows[k] = to;
            list.weights[k] = min + w;
        }
    }

    /// The neighbours of `row` with their cosine-normalized weights as of
    /// `at`, written into `out` (cleared first).
    pub(crate) fn neighbours(&self, row: ItemIdx, at: Timestamp, out: &mut Vec<(ItemIdx, f32)>) {
        out.clear();
        let Some(list) = self.list(row.index()) else { return };
        if list.total <= 0.0 {
            return;
        }
        // Every neighbour's list is read below, scattered over the table:
        // their fetches are started together rather than one miss at a time.
        for &r in &list.rows {
            self.prefetch(r as usize);
        }
        let f = self.decay(elapsed(at, list.t));
        let total = list.total * f;
        for (&r, &w) in list.rows.iter().zip(&list.weights) {
            let Some(other) = self.list(r as usize) else { continue };
            let other_total = other.total * self.decay(elapsed(at, other.t));
            let denom = (total * other_total).sqrt();
            if denom > 0.0 {
                out.push((ItemIdx(r), (w * f / denom).min(1.0)));
            }
        }
    }

    /// Bytes held, for the memory report.
    pub(crate) fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|l| std::mem::size_of::<CoList>() + l.rows.capacity() * 8)
            .sum()
    }

    /// The table as flat columns, for a snapshot's raw blocks.
    pub(crate) fn raw(&self) -> CoRaw {
        let mut r = CoRaw::default();
        r.offsets.push(0);
        for l in self.chunks.iter().flat_map(|c| c.iter()) {
            r.t.push(l.t);
            r.total.push(l.total);
            r.rows.extend_from_slice(&l.rows);
            r.weights.extend_from_slice(&l.weights);
            r.offsets.push(r.rows.len() as u32);
        }
        r
    }

    /// Reassembles a table from [`raw`](Self::raw) columns; `None` if they
    /// do not fit one another, name a row out of range, hold more than
    /// `neighbours` entries per list or a negative or non-finite weight.
    pub(crate) fn from_raw(
        t: &[Timestamp],
        total: &[f32],
        offsets: &[u32],
        rows: &[u32],
        weights: &[f32],
        neighbours: usize,
        half_life: i64,
    ) -> Option<CoTable> {
        let len = t.len();
        let shape = total.len() == len
            && offsets.len() == len + 1
            && offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1] && (w[1] - w[0]) as usize <= neighbours)
            && offsets.last().map(|&o| o as usize) == Some(rows.len())
            && rows.len() == weights.len();
        let values = rows.iter().all(|&r| (r as usize) < len)
            && weights.iter().chain(total).all(|w| w.is_finite() && *w >= 0.0);
        if !shape || !values {
            return None;
        }
        let mut table = CoTable::new(0, neighbours, half_life);
        for start in (0..len).step_by(CHUNK) {
            let chunk: Vec<CoList> = (start..len.min(start + CHUNK))
                .map(|i| {
                    let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                    CoList {
                        t: t[i],
                        total: total[i],
                        rows: rows[a..b].to_vec(),
                        weights: weights[a..b].to_vec(),
                    }
                })
                .collect();
            table.len += chunk.len();
            table.chunks.push(Arc::new(chunk));
        }
        Some(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_heaviest_and_normalizes() {
        let mut t = CoTable::new(5, 2, 1_000_000);
        for (from, to, w) in [(0, 1, 3.0), (1, 0, 3.0), (0, 2, 1.0), (2, 0, 1.0), (0, 3, 2.0)] {
            t.add(from, to, w, 10);
        }
        let mut out = Vec::new();
        t.neighbours(ItemIdx(0), 10, &mut out);
        // List of 2: 1 (3.0) and 3 (took 2's place and weight: 1.0 + 2.0).
        let rows: Vec<u32> = out.iter().map(|o| o.0.0).collect();
        assert_eq!(rows, vec![1], "3 has no list of its own, so no normalizer");
        // 0's total is 6, 1's is 3: 3 / sqrt(18).
        assert!((out[0].1 - 3.0 / 18f32.sqrt()).abs() < 1e-6);
        // Out of range and zero weights are ignored; growth keeps lists.
        t.add(9, 1, 1.0, 10);
        t.add(0, 1, 0.0, 10);
        t.grow(2000);
        t.neighbours(ItemIdx(0), 10, &mut out);
        assert_eq!(out.len(), 1);
    }
}
