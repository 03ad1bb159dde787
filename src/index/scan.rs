//! The IVF list scan: integer dot products of an `i16` query with byte-code
//! rows, many rows per call.
//!
//! The scan is the IVF search's hot loop (14,000 rows at 64 probes on 200,000
//! products). The `f32` form converts every byte to a float before its
//! multiply; here a byte row is widened to `i16` and multiplied pairwise into
//! `i32` (`pmaddwd`): 16 dimensions per AVX2 instruction, 8 with SSE2. SSE2 is
//! part of every x86-64 target, so the portable binary CI builds always has
//! it; AVX2 is chosen at run time when the CPU offers it. Other targets use
//! the scalar loop, which is also the reference the tests compare against.

/// The largest query magnitude for which `Σ q_j · c_j` over `dim` bytes
/// cannot overflow `i32` (`|q_j| · 255 · dim < 2³¹`), at most `i16::MAX`.
pub(crate) fn query_scale_max(dim: usize) -> f32 {
    let cap = i32::MAX as f32 / (255.0 * dim.max(1) as f32);
    cap.min(f32::from(i16::MAX)).floor().max(1.0)
}

/// Writes `Σ_j q_j · codes[i·dim + j]` for every row `i` of `codes` into
/// `out` (cleared first). `q.len()` is `dim`; `codes.len()` a multiple of it.
/// The caller keeps `|q_j|` within [`query_scale_max`], so no sum overflows.
pub(crate) fn scores(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
    out.clear();
    let dim = q.len();
    if dim == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            x86::scores_avx2_entry(q, codes, out);
        } else {
            x86::scores_sse2_entry(q, codes, out);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    scores_scalar(q, codes, out);
}

/// The reference loop (and the scan on targets without a SIMD copy).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn scores_scalar(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
    out.clear();
    if q.is_empty() {
        return;
    }
    out.extend(
        codes
            .chunks_exact(q.len())
            .map(|row| row.iter().zip(q).map(|(&c, &q)| i32::from(c) * i32::from(q)).sum::<i32>()),
    );
}

/// Whether this CPU runs AVX2 (asked once).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    /// `Σ q·c` of one row over its first `16·⌊dim/16⌋` dimensions plus the
    /// scalar tail.
    #[inline(always)]
    fn tail(q: &[i16], row: &[u8], from: usize) -> i32 {
        row[from..].iter().zip(&q[from..]).map(|(&c, &q)| i32::from(c) * i32::from(q)).sum()
    }

    /// Calls the SSE2 scan.
    pub(super) fn scores_sse2_entry(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
        // SAFETY: SSE2 is part of the x86-64 baseline: every CPU this code
        // runs on has it.
        unsafe { scores_sse2(q, codes, out) }
    }

    /// The SSE2 scan: 8 dimensions per `pmaddwd`.
    #[target_feature(enable = "sse2")]
    pub(super) fn scores_sse2(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
        let dim = q.len();
        let head = dim / 16 * 16;
        for row in codes.chunks_exact(dim) {
            let mut acc = _mm_setzero_si128();
            let zero = _mm_setzero_si128();
            let mut j = 0;
            while j < head {
                // SAFETY: `j + 16 <= head <= dim == row.len() == q.len()`, so
                // the 16 bytes of `row` and the 16 `i16` of `q` (two loads of
                // 8) read from `j` lie inside the slices; unaligned loads.
                let (c, q0, q1) = unsafe {
                    (
                        _mm_loadu_si128(row.as_ptr().add(j).cast()),
                        _mm_loadu_si128(q.as_ptr().add(j).cast()),
                        _mm_loadu_si128(q.as_ptr().add(j + 8).cast()),
                    )
                };
                let lo = _mm_unpacklo_epi8(c, zero);
                let hi = _mm_unpackhi_epi8(c, zero);
                acc = _mm_add_epi32(acc, _mm_madd_epi16(lo, q0));
                acc = _mm_add_epi32(acc, _mm_madd_epi16(hi, q1));
                j += 16;
            }
            out.push(hsum128(acc) + tail(q, row, head));
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn hsum128(v: __m128i) -> i32 {
        let s = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Calls the AVX2 scan; only after `has_avx2()` said yes.
    pub(super) fn scores_avx2_entry(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
        // SAFETY: the caller checked at run time that this CPU has AVX2, the
        // only requirement `scores_avx2`'s target feature adds.
        unsafe { scores_avx2(q, codes, out) }
    }

    /// The AVX2 scan: 16 dimensions per `vpmaddwd`, two rows at a time so
    /// their reductions overlap.
    #[target_feature(enable = "avx2")]
    fn scores_avx2(q: &[i16], codes: &[u8], out: &mut Vec<i32>) {
        let dim = q.len();
        let head = dim / 16 * 16;
        let one = |row: &[u8]| -> __m256i {
            let mut acc = _mm256_setzero_si256();
            let mut j = 0;
            while j < head {
                // SAFETY: `j + 16 <= head <= dim == row.len() == q.len()`:
                // 16 bytes of `row` and 16 `i16` of `q` from `j` are in bounds.
                let (c, qv) = unsafe {
                    (
                        _mm_loadu_si128(row.as_ptr().add(j).cast()),
                        _mm256_loadu_si256(q.as_ptr().add(j).cast()),
                    )
                };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c), qv));
                j += 16;
            }
            acc
        };
        let reduce = |v: __m256i| -> i32 {
            hsum128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)))
        };
        let mut pairs = codes.chunks_exact(2 * dim);
        for two in &mut pairs {
            let (a, b) = two.split_at(dim);
            let (va, vb) = (one(a), one(b));
            out.push(reduce(va) + tail(q, a, head));
            out.push(reduce(vb) + tail(q, b, head));
        }
        let rest = pairs.remainder();
        if !rest.is_empty() {
            out.push(reduce(one(rest)) + tail(q, rest, head));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The dispatched scan (AVX2 or SSE2 here) equals the scalar loop for
        /// every dimension, including ones that are not a multiple of 16,
        /// and at the largest query magnitude the caller may use.
        #[test]
        fn simd_scan_equals_scalar(
            dim in 1usize..80,
            rows in 0usize..7,
            seed in any::<u64>(),
            extreme in any::<bool>(),
        ) {
            let max = query_scale_max(dim) as i32;
            let mut s = seed;
            let mut next = || { s = crate::ids::splitmix64(s); s };
            let q: Vec<i16> = (0..dim)
                .map(|_| if extreme { max } else { (next() % (2 * max as u64 + 1)) as i32 - max })
                .map(|v| v as i16)
                .collect();
            let codes: Vec<u8> =
                (0..dim * rows).map(|_| if extreme { 255 } else { next() as u8 }).collect();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            scores(&q, &codes, &mut fast);
            scores_scalar(&q, &codes, &mut slow);
            prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn sse2_scan_equals_scalar() {
        #[cfg(target_arch = "x86_64")]
        {
            let dim = 37;
            let q: Vec<i16> = (0..dim).map(|j| (j as i16 - 18) * 911).collect();
            let codes: Vec<u8> = (0..dim * 5).map(|i| (i * 53 % 256) as u8).collect();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            x86::scores_sse2_entry(&q, &codes, &mut fast);
            scores_scalar(&q, &codes, &mut slow);
            assert_eq!(fast, slow);
            assert_eq!(fast.len(), 5);
        }
    }
}
