//! The foundations every floor above uses: dot products, gathers, top-k
//! selection, and one weighted spherical k-means (`kmeans`, for IVF lists
//! and user interests).
//!
//! Every hot loop here works on equal-length slices with no branch in the
//! body, written so that the compiler vectorizes it (eight independent
//! accumulators break the add dependency chain). The dot, gather and top-k
//! kernels allocate nothing.

pub(crate) mod kmeans;

use crate::ids::ItemIdx;
use std::cmp::Ordering;

/// Lanes of independent accumulators in [`dot`].
const LANES: usize = 8;

/// The inner product of two equal-length slices.
///
/// ```
/// assert_eq!(omnifeed::kernels::dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
/// ```
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    let s0 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
    let s1 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
    s0 + s1 + tail
}

/// [`dot`] of three equal-length slices with one more, in one pass: each
/// result is bit for bit `dot(w[h], x)` (the same lanes, the same order of
/// sums), but `x` is loaded once and the three chains overlap.
#[inline(always)]
pub(crate) fn dot3(w: [&[f32]; 3], x: &[f32]) -> [f32; 3] {
    let n = x.len().min(w[0].len()).min(w[1].len()).min(w[2].len());
    let mut acc = [[0.0f32; LANES]; 3];
    let split = n - n % LANES;
    for c in (0..split).step_by(LANES) {
        let xs = &x[c..c + LANES];
        for (a, wh) in acc.iter_mut().zip(&w) {
            let ws = &wh[c..c + LANES];
            for i in 0..LANES {
                a[i] += ws[i] * xs[i];
            }
        }
    }
    std::array::from_fn(|h| {
        let a = &acc[h];
        let mut tail = 0.0;
        for (p, q) in w[h][split..n].iter().zip(&x[split..n]) {
            tail += p * q;
        }
        let s0 = (a[0] + a[4]) + (a[1] + a[5]);
        let s1 = (a[2] + a[6]) + (a[3] + a[7]);
        s0 + s1 + tail
    })
}

/// The plain scalar inner product: the oracle [`dot`] is tested against.
#[inline]
pub fn dot_naive(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Writes `out[i] = dot(query, matrix row rows[i])` for a row-major matrix
/// of dimension `query.len()`: the gather at the heart of scoring.
#[inline]
pub fn gather_dot(matrix: &[f32], query: &[f32], rows: &[ItemIdx], out: &mut [f32]) {
    let d = query.len();
    debug_assert_eq!(rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows) {
        let start = r.index() * d;
        *o = dot(&matrix[start..start + d], query);
    }
}

/// Runs `f` with this thread's buffers in `key` (a fresh set if they are in
/// use further up this thread's stack): the scratch that the IVF scan, the
/// lexical search and the search source reuse across requests, so a
/// search allocates nothing once its thread has run one as large.
pub(crate) fn with_scratch<T: Default, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut T::default()),
    })
}

/// A row and its score; the unit of every top-k buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The catalog row.
    pub row: ItemIdx,
    /// Its score; higher is better.
    pub score: f32,
}

/// Defines `fn $name(args) -> R` that runs `$body(args, simd)` compiled
/// for AVX2 and FMA with [`Avx`] kernels when the CPU has them, else as it
/// is with [`Plain`] ones. The same source and kernels that agree bit for
/// bit, so the same results either way: Rust never contracts `a * b + c`
/// into a fused multiply-add on its own, only the vector width changes.
/// `$body` should be `#[inline(always)]` so that its loops are compiled
/// inside the wide copy.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide($($arg: $ty),*, simd: $crate::kernels::Avx) $(-> $ret)? {
                    $body($($arg),*, simd)
                }
                if let Some(simd) = $crate::kernels::Avx::detect() {
                    // SAFETY: `detect` found AVX2 and FMA on this CPU.
                    #[allow(unsafe_code)]
                    return unsafe { wide($($arg),*, simd) };
                }
            }
            $body($($arg),*, $crate::kernels::Plain)
        }
    };
}
pub(crate) use avx2_dispatch;

/// The inner products a loop built by [`avx2_dispatch!`] uses: every
/// implementation returns what [`dot`] and [`dot3`] return, bit for bit.
pub(crate) trait Simd: Copy {
    /// [`dot`].
    fn dot(self, a: &[f32], b: &[f32]) -> f32;
    /// [`dot3`].
    fn dot3(self, w: [&[f32]; 3], x: &[f32]) -> [f32; 3];
}

/// The portable kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain;

impl Simd for Plain {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        dot(a, b)
    }

    #[inline(always)]
    fn dot3(self, w: [&[f32]; 3], x: &[f32]) -> [f32; 3] {
        dot3(w, x)
    }
}

/// AVX kernels: [`dot`]'s eight lanes in one 256-bit register, the same
/// products, sums and order. Only [`Avx::detect`] makes one, so holding
/// one proves the CPU runs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx(());

#[cfg(target_arch = "x86_64")]
impl Avx {
    /// `Some` where this CPU runs AVX2 and FMA (the standard library's
    /// cached detection).
    #[inline]
    pub(crate) fn detect() -> Option<Avx> {
        (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
            .then_some(Avx(()))
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
impl Simd for Avx {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: an `Avx` exists only where AVX2 and FMA were detected.
        unsafe { avx::dot(a, b) }
    }

    #[inline(always)]
    fn dot3(self, w: [&[f32]; 3], x: &[f32]) -> [f32; 3] {
        // SAFETY: as above.
        unsafe { avx::dot3(w, x) }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx {
    use super::LANES;
    use std::arch::x86_64::*;

    /// `dot`'s final sums of eight lanes and a tail:
    /// `((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn finish(acc: __m256, tail: f32) -> f32 {
        let t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let mut l = [0.0f32; 4];
        // SAFETY: `l` holds four floats.
        unsafe { _mm_storeu_ps(l.as_mut_ptr(), t) };
        (l[0] + l[1]) + (l[2] + l[3]) + tail
    }

    /// Eight lanes of `a` from `at` (`at + 8 <= a.len()`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(a: &[f32], at: usize) -> __m256 {
        debug_assert!(at + LANES <= a.len());
        // SAFETY: the callers keep `at + 8 <= a.len()`.
        unsafe { _mm256_loadu_ps(a.as_ptr().add(at)) }
    }

    /// [`super::dot`], bit for bit.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let split = n - n % LANES;
        let mut acc = _mm256_setzero_ps();
        let mut at = 0;
        while at < split {
            acc = _mm256_add_ps(acc, _mm256_mul_ps(load(a, at), load(b, at)));
            at += LANES;
        }
        let mut tail = 0.0;
        for (x, y) in a[split..n].iter().zip(&b[split..n]) {
            tail += x * y;
        }
        finish(acc, tail)
    }

    /// [`super::dot3`], bit for bit.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot3(w: [&[f32]; 3], x: &[f32]) -> [f32; 3] {
        let n = x.len().min(w[0].len()).min(w[1].len()).min(w[2].len());
        let split = n - n % LANES;
        let mut acc = [_mm256_setzero_ps(); 3];
        let mut at = 0;
        while at < split {
            let xs = load(x, at);
            for h in 0..3 {
                acc[h] = _mm256_add_ps(acc[h], _mm256_mul_ps(load(w[h], at), xs));
            }
            at += LANES;
        }
        let mut out = [0.0f32; 3];
        for h in 0..3 {
            let mut tail = 0.0;
            for (p, q) in w[h][split..n].iter().zip(&x[split..n]) {
                tail += p * q;
            }
            out[h] = finish(acc[h], tail);
        }
        out
    }
}

/// Asks the CPU to start fetching the cache lines of `data` (a hint: no
/// result, no fault, nothing waits for it), so that a loop can fetch rows
/// it reaches a few iterations later while it computes on the current one.
/// A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = std::mem::size_of_val(data);
        let base = data.as_ptr().cast::<i8>();
        let mut off = 0;
        while off < bytes {
            // SAFETY: `base + off` lies inside `data` (off < its byte
            // length); a prefetch only hints the cache and never faults.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(base.add(off))
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Reads one `f32` from every 64-byte line of row `row` of a row-major
/// `dim`-column matrix and returns their sum. A loop of these over many rows
/// is a run of independent loads, so the memory system fetches the lines at
/// once instead of one miss stalling each later dot product: a software
/// prefetch without `unsafe`. Callers pass the sum to
/// [`std::hint::black_box`].
#[inline]
pub(crate) fn touch_row(matrix: &[f32], dim: usize, row: ItemIdx) -> f32 {
    const LINE: usize = 16; // f32 per 64-byte line
    let start = row.index() * dim;
    matrix.get(start..start + dim).map_or(0.0, |r| r.iter().step_by(LINE).sum())
}

/// Best first: higher score, then lower row (a total, deterministic order).
/// A NaN score sinks below every number, `-inf` included.
#[inline]
pub fn best_first(a: &Scored, b: &Scored) -> Ordering {
    let by_score = match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) => b.score.total_cmp(&a.score),
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
    };
    by_score.then(a.row.cmp(&b.row))
}

/// Keeps the `k` best of `buf` (by [`best_first`]) and sorts them best first.
///
/// Selection is `select_nth_unstable_by`, O(n), then only the `k` winners
/// are sorted.
pub fn top_k_in_place(buf: &mut Vec<Scored>, k: usize) {
    if buf.len() > k {
        if k == 0 {
            buf.clear();
            return;
        }
        buf.select_nth_unstable_by(k - 1, best_first);
        buf.truncate(k);
    }
    buf.sort_unstable_by(best_first);
}

/// A streaming top-k collector over a caller-owned buffer, after tantivy's
/// `TopNComputer`: candidates are appended while they beat the current
/// threshold; when the buffer holds `2k` it is cut back to the best `k`,
/// raising the threshold. Amortized O(1) per candidate, no allocation once
/// the buffer has grown to `2k`.
#[derive(Debug)]
pub struct TopK<'a> {
    buf: &'a mut Vec<Scored>,
    k: usize,
    threshold: f32,
}

impl<'a> TopK<'a> {
    /// Starts collecting the best `k` into `buf` (cleared first). Only what
    /// is pushed is stored: a huge `k` reserves no more than 4,096 slots up
    /// front.
    pub fn new(buf: &'a mut Vec<Scored>, k: usize) -> Self {
        buf.clear();
        buf.reserve(k.saturating_mul(2).min(4096));
        TopK { buf, k, threshold: f32::NEG_INFINITY }
    }

    /// Offers one candidate. A NaN score is never kept.
    #[inline]
    pub fn push(&mut self, row: ItemIdx, score: f32) {
        // One comparison that also fails for NaN: the hot loop's only test.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(score >= self.threshold) {
            return;
        }
        self.buf.push(Scored { row, score });
        if self.buf.len() >= self.k.saturating_mul(2) {
            self.truncate();
        }
    }

    #[inline(never)]
    fn truncate(&mut self) {
        let k = self.k.max(1);
        self.buf.select_nth_unstable_by(k - 1, best_first);
        self.buf.truncate(k);
        self.threshold = self.buf[k - 1].score;
    }

    /// A score below which no later push can enter the best `k`: the
    /// `k`-th best kept at the last truncation (−∞ until then). Rises
    /// monotonically; a search can skip candidates whose upper bound is
    /// below it.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Finishes: the buffer holds the best `k`, best first.
    pub fn finish(self) {
        top_k_in_place(self.buf, self.k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn dot3_is_three_dots_bit_for_bit(
            v in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0, -10.0f32..10.0, -10.0f32..10.0), 0..70)
        ) {
            let (w0, w1, w2, x): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) = v.into_iter().fold(
                Default::default(),
                |mut acc, (a, b, c, d)| {
                    acc.0.push(a);
                    acc.1.push(b);
                    acc.2.push(c);
                    acc.3.push(d);
                    acc
                },
            );
            let three = dot3([&w0, &w1, &w2], &x);
            let one = [dot(&w0, &x), dot(&w1, &x), dot(&w2, &x)];
            prop_assert_eq!(three.map(f32::to_bits), one.map(f32::to_bits));
            // The AVX kernels, where this CPU has them, agree bit for bit.
            #[cfg(target_arch = "x86_64")]
            if let Some(avx) = Avx::detect() {
                prop_assert_eq!(avx.dot3([&w0, &w1, &w2], &x).map(f32::to_bits), one.map(f32::to_bits));
                for w in [&w0, &w1, &w2] {
                    prop_assert_eq!(avx.dot(w, &x).to_bits(), dot(w, &x).to_bits());
                }
            }
        }

        #[test]
        fn dot_matches_naive(v in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..70)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let fast = dot(&a, &b);
            let slow = dot_naive(&a, &b);
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f32>() + 1.0;
            prop_assert!((fast - slow).abs() <= 1e-5 * scale, "{fast} vs {slow}");
        }

        #[test]
        fn streaming_top_k_equals_full_sort(
            scores in proptest::collection::vec(-1000i32..1000, 0..300),
            k in 1usize..40,
        ) {
            let mut buf = Vec::new();
            let mut top = TopK::new(&mut buf, k);
            for (i, &s) in scores.iter().enumerate() {
                top.push(ItemIdx(i as u32), s as f32);
            }
            top.finish();
            let mut all: Vec<Scored> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| Scored { row: ItemIdx(i as u32), score: s as f32 })
                .collect();
            all.sort_by(best_first);
            all.truncate(k);
            prop_assert_eq!(buf, all);
        }
    }

    #[test]
    fn gather_reads_the_right_rows() {
        let m = [1.0, 0.0, 0.0, 1.0, 2.0, 2.0];
        let mut out = [0.0; 2];
        gather_dot(&m, &[1.0, 3.0], &[ItemIdx(2), ItemIdx(1)], &mut out);
        assert_eq!(out, [8.0, 3.0]);
    }

    #[test]
    fn top_k_breaks_ties_by_row() {
        let mut v = vec![
            Scored { row: ItemIdx(5), score: 1.0 },
            Scored { row: ItemIdx(2), score: 1.0 },
            Scored { row: ItemIdx(9), score: 2.0 },
        ];
        top_k_in_place(&mut v, 2);
        assert_eq!(v.iter().map(|s| s.row.0).collect::<Vec<_>>(), vec![9, 2]);
    }
}
