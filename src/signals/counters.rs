//! Exponentially decayed counters, several half-lives at once, with lazy
//! decay and copy-on-write chunks.
//!
//! A counter with half-life `h` that received weights `w_i` at times `t_i`
//! reads, at time `T >= max t_i`,
//!
//! ```text
//! c(T) = Σ w_i · 2^(-(T - t_i) / h)
//! ```
//!
//! Each entity keeps one row: the time `t` of its newest update and, for
//! every counter kind and half-life, `c(t)`. An update at `t' >= t` first
//! decays the whole row to `t'` then adds; an update at `t' < t` (a late
//! event) adds `w · 2^(-(t - t') / h)`. Either way the row holds the closed
//! form exactly (up to `f32` rounding), whatever the arrival order.
//!
//! Rows live in chunks of [`CHUNK`] entities behind `Arc`s. Cloning a table
//! (a snapshot) clones the `Arc`s; the writer's next update of a chunk that
//! a snapshot still holds copies just that chunk (`Arc::make_mut`).

use crate::ids::{Timestamp, elapsed};
use std::sync::Arc;

/// Entities per copy-on-write chunk.
pub(crate) const CHUNK: usize = 1024;
const SHIFT: u32 = CHUNK.trailing_zeros();
/// The time of a row that was never updated.
const NEVER: Timestamp = Timestamp::MIN;
/// At most this many half-lives per table.
pub(crate) const MAX_HALF_LIVES: usize = 8;

/// The closed-form decay factor `2^(-dt / half_life)`, `dt >= 0`.
#[inline]
pub fn decay_factor(half_life_secs: f64, dt: i64) -> f64 {
    // A negative `dt` (a caller's clock running backwards) reads as 0: the
    // factor never exceeds 1, so no counter can grow by being read.
    (-(dt.max(0) as f64) * std::f64::consts::LN_2 / half_life_secs).exp()
}

#[derive(Debug, Clone)]
struct Chunk {
    t: Vec<Timestamp>,
    v: Vec<f32>,
}

/// `len` entities × `kinds` counter kinds × `half_lives.len()` half-lives.
#[derive(Debug, Clone)]
pub(crate) struct CounterTable {
    kinds: usize,
    halves: usize,
    /// `ln 2 / h` per half-life.
    rates: Arc<[f64]>,
    len: usize,
    chunks: Vec<Arc<Chunk>>,
}

impl CounterTable {
    /// A zeroed table. `half_lives` are in seconds, each > 0, at most
    /// [`MAX_HALF_LIVES`] (the config validates both).
    pub(crate) fn new(len: usize, kinds: usize, half_lives: &[i64]) -> Self {
        let halves = half_lives.len().min(MAX_HALF_LIVES);
        let rates: Arc<[f64]> =
            half_lives[..halves].iter().map(|&h| std::f64::consts::LN_2 / h as f64).collect();
        let stride = kinds * halves;
        let chunks = (0..len.div_ceil(CHUNK))
            .map(|c| {
                let n = CHUNK.min(len - c * CHUNK);
                Arc::new(Chunk { t: vec![NEVER; n], v: vec![0.0; n * stride] })
            })
            .collect();
        CounterTable { kinds, halves, rates, len, chunks }
    }

    /// Number of entities.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Grows to `len` entities (new ones zeroed; never shrinks). Only the
    /// last, partial chunk is copied; full chunks stay shared.
    pub(crate) fn grow(&mut self, len: usize) {
        let stride = self.kinds * self.halves;
        while self.len < len {
            let i = self.len & (CHUNK - 1);
            if i == 0 {
                self.chunks.push(Arc::new(Chunk { t: Vec::new(), v: Vec::new() }));
            }
            let n = (CHUNK - i).min(len - self.len);
            let Some(last) = self.chunks.last_mut() else { return };
            let chunk = Arc::make_mut(last);
            chunk.t.resize(i + n, NEVER);
            chunk.v.resize((i + n) * stride, 0.0);
            self.len += n;
        }
    }

    /// The raw parts a snapshot saves: per entity its time, and its values.
    pub(crate) fn raw(&self) -> (Vec<i64>, Vec<f32>) {
        let mut t = Vec::with_capacity(self.len);
        let mut v = Vec::with_capacity(self.len * self.kinds * self.halves);
        for c in &self.chunks {
            t.extend_from_slice(&c.t);
            v.extend_from_slice(&c.v);
        }
        (t, v)
    }

    /// Reassembles a table from [`raw`](Self::raw) parts; `None` if their
    /// lengths do not fit `kinds` and `half_lives`.
    pub(crate) fn from_raw(
        kinds: usize,
        half_lives: &[i64],
        t: &[i64],
        v: &[f32],
    ) -> Option<CounterTable> {
        let mut table = CounterTable::new(0, kinds, half_lives);
        let stride = kinds * table.halves;
        if v.len() != t.len().checked_mul(stride)? {
            return None;
        }
        table.chunks = t
            .chunks(CHUNK)
            .zip(v.chunks(CHUNK * stride))
            .map(|(t, v)| Arc::new(Chunk { t: t.to_vec(), v: v.to_vec() }))
            .collect();
        table.len = t.len();
        Some(table)
    }

    /// [`get`](Self::get), or `None` if `e` or `half` is out of range.
    pub(crate) fn try_get(
        &self,
        e: usize,
        kind: usize,
        half: usize,
        now: Timestamp,
    ) -> Option<f32> {
        (e < self.len && kind < self.kinds && half < self.halves)
            .then(|| self.get(e, kind, half, now))
    }

    /// Adds `w` at time `at` to counter `kind` of entity `e`, in every
    /// half-life. `e < len`, `kind < kinds`, `w` finite (callers check).
    #[inline]
    pub(crate) fn add(&mut self, e: usize, kind: usize, w: f32, at: Timestamp) {
        let (h, k) = (self.halves, self.kinds);
        let chunk = Arc::make_mut(&mut self.chunks[e >> SHIFT]);
        let i = e & (CHUNK - 1);
        let t = &mut chunk.t[i];
        let row = &mut chunk.v[i * k * h..(i + 1) * k * h];
        if at >= *t {
            if *t != NEVER && at > *t {
                let dt = elapsed(at, *t) as f64;
                let mut f = [0.0f32; MAX_HALF_LIVES];
                for (f, &r) in f.iter_mut().zip(self.rates.iter()) {
                    *f = (-dt * r).exp() as f32;
                }
                for kind_row in row.chunks_exact_mut(h) {
                    for (x, &f) in kind_row.iter_mut().zip(&f) {
                        *x *= f;
                    }
                }
            }
            *t = at;
            for x in &mut row[kind * h..(kind + 1) * h] {
                *x += w;
            }
        } else {
            let dt = elapsed(*t, at) as f64;
            for (x, &r) in row[kind * h..(kind + 1) * h].iter_mut().zip(self.rates.iter()) {
                *x += w * (-dt * r).exp() as f32;
            }
        }
    }

    /// Counter `kind` of entity `e` in half-life `half`, read at `now`. A
    /// read before the entity's newest update returns the value at that
    /// update (counters do not run backwards).
    #[inline]
    pub(crate) fn get(&self, e: usize, kind: usize, half: usize, now: Timestamp) -> f32 {
        let chunk = &self.chunks[e >> SHIFT];
        let i = e & (CHUNK - 1);
        let t = chunk.t[i];
        let v = chunk.v[(i * self.kinds + kind) * self.halves + half];
        if t == NEVER || now <= t || v == 0.0 {
            return v;
        }
        v * (-(elapsed(now, t) as f64) * self.rates[half]).exp() as f32
    }

    /// Bytes of counter state per entity.
    pub(crate) fn bytes_per_entity(&self) -> usize {
        std::mem::size_of::<Timestamp>() + self.kinds * self.halves * std::mem::size_of::<f32>()
    }

    /// Bytes held by the whole table.
    pub(crate) fn bytes(&self) -> usize {
        self.len * self.bytes_per_entity() + self.chunks.len() * std::mem::size_of::<Chunk>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn closed_form(events: &[(i64, f32)], h: i64, now: i64) -> f64 {
        events
            .iter()
            .filter(|&&(t, _)| t <= now)
            .map(|&(t, w)| f64::from(w) * decay_factor(h as f64, now - t))
            .sum()
    }

    proptest! {
        #[test]
        fn lazy_decay_equals_closed_form(
            events in prop::collection::vec((0i64..1_000_000, 0.0f32..100.0), 1..60),
            extra in 0i64..2_000_000,
        ) {
            let halves = [3_600i64, 86_400, 604_800];
            let mut table = CounterTable::new(3, 2, &halves);
            // Applied in the given (unsorted) order: late events included.
            for &(t, w) in &events {
                table.add(1, 1, w, t);
            }
            let newest = events.iter().map(|e| e.0).max().unwrap();
            let now = newest + extra;
            for (hi, &h) in halves.iter().enumerate() {
                let want = closed_form(&events, h, now);
                let got = f64::from(table.get(1, 1, hi, now));
                prop_assert!((got - want).abs() <= 1e-4 * want.max(1.0), "h={h} got={got} want={want}");
            }
            prop_assert_eq!(table.get(0, 1, 0, now), 0.0);
            prop_assert_eq!(table.get(1, 0, 0, now), 0.0);
        }
    }

    #[test]
    fn grow_keeps_values_and_round_trips_raw() {
        let mut table = CounterTable::new(CHUNK - 2, 2, &[100, 200]);
        table.add(CHUNK - 3, 1, 4.0, 10);
        let before = table.clone();
        table.grow(2 * CHUNK + 7);
        assert_eq!(table.len(), 2 * CHUNK + 7);
        assert_eq!(table.get(CHUNK - 3, 1, 0, 10), 4.0);
        table.add(2 * CHUNK + 6, 0, 1.0, 10);
        assert_eq!(table.get(2 * CHUNK + 6, 0, 1, 10), 1.0);
        assert_eq!(before.len(), CHUNK - 2);
        let (t, v) = table.raw();
        let back = CounterTable::from_raw(2, &[100, 200], &t, &v).unwrap();
        assert_eq!(back.raw(), (t.clone(), v.clone()));
        assert!(CounterTable::from_raw(2, &[100, 200], &t, &v[1..]).is_none());
    }

    #[test]
    fn a_half_life_halves() {
        let mut table = CounterTable::new(1, 1, &[100, 200]);
        table.add(0, 0, 8.0, 1000);
        assert_eq!(table.get(0, 0, 0, 1000), 8.0);
        assert!((table.get(0, 0, 0, 1100) - 4.0).abs() < 1e-5);
        assert!((table.get(0, 0, 1, 1100) - 8.0 / 2f32.sqrt()).abs() < 1e-5);
        // Reads before the newest update do not run backwards.
        assert_eq!(table.get(0, 0, 0, 500), 8.0);
    }

    #[test]
    fn snapshots_are_copy_on_write() {
        let mut table = CounterTable::new(CHUNK + 5, 1, &[100]);
        table.add(3, 0, 1.0, 10);
        let snapshot = table.clone();
        table.add(3, 0, 1.0, 10);
        table.add(CHUNK + 1, 0, 5.0, 10);
        assert_eq!(snapshot.get(3, 0, 0, 10), 1.0);
        assert_eq!(snapshot.get(CHUNK + 1, 0, 0, 10), 0.0);
        assert_eq!(table.get(3, 0, 0, 10), 2.0);
        assert_eq!(table.get(CHUNK + 1, 0, 0, 10), 5.0);
    }
}
