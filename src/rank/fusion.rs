//! [`Fusion`]: the heads and a few signals into one value per candidate.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Fusion exponents: `value = pCTR^ctr · pCVR^cvr · engagement^engagement ·
/// price_ratio^price · quality^quality · relevance^relevance ·
/// (1 − refund_rate)^refund`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fusion {
    /// Exponent of pCTR. Default 1.
    pub ctr: f32,
    /// Exponent of pCVR. Default 0.5.
    pub cvr: f32,
    /// Exponent of the engagement head. Default 0.3.
    pub engagement: f32,
    /// Exponent of price over the category median (GMV weighting; negative
    /// favours cheaper). Default 0.
    pub price: f32,
    /// Exponent of the merchant governance score. Default 1.
    pub quality: f32,
    /// Exponent of query relevance: the term is `(1 + r) / 2` for the best
    /// of the cosine with the query (or recent search intents) and the
    /// search source's normalized score, so an irrelevant item loses at most
    /// a factor `2^relevance`; a request with no query and no intents has
    /// the neutral term 1. Default 0.
    pub relevance: f32,
    /// Exponent of `1 − refund rate`: the negative signal. Default 1.
    pub refund: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            ctr: 1.0,
            cvr: 0.5,
            engagement: 0.3,
            price: 0.0,
            quality: 1.0,
            relevance: 0.0,
            refund: 1.0,
        }
    }
}

/// Fusion term names, in [`Fusion::terms`] order.
pub const FUSION_TERMS: [&str; 7] =
    ["pctr", "pcvr", "engagement", "price", "quality", "relevance", "no_refund"];

/// A head, quality or `1 − refund` term: floored at 10⁻⁴, and 10⁻⁴ when
/// not finite.
#[inline(always)]
fn floor_term(x: f32) -> f32 {
    if x.is_finite() { x.max(1e-4) } else { 1e-4 }
}

/// The price term: `exp(price_band)` clamped to `[0.05, 20]`, 1 when the
/// band is not finite.
#[inline(always)]
fn price_term(price_band: f32) -> f32 {
    if price_band.is_finite() { price_band.exp().clamp(0.05, 20.0) } else { 1.0 }
}

/// The relevance term: `(1 + r) / 2` for `r` clamped to `[0, 1]`, 1 when
/// there is nothing to be relevant to.
#[inline(always)]
fn relevance_term(relevance: Option<f32>) -> f32 {
    relevance.map_or(1.0, |r| floor_term((1.0 + r.clamp(0.0, 1.0)) / 2.0))
}

impl Fusion {
    /// The exponents in [`FUSION_TERMS`] order.
    pub fn exponents(&self) -> [f32; 7] {
        [self.ctr, self.cvr, self.engagement, self.price, self.quality, self.relevance, self.refund]
    }

    /// Checks every exponent is finite and in `[-10, 10]`.
    pub fn validate(&self, field: &'static str) -> Result<()> {
        for (name, v) in FUSION_TERMS.iter().zip(self.exponents()) {
            if !v.is_finite() || v.abs() > 10.0 {
                return Err(Error::invalid_config(
                    field,
                    format!("exponent {name} = {v}, expected a finite value in [-10, 10]"),
                ));
            }
        }
        Ok(())
    }

    /// The term values: heads, `exp(price_band)` clamped to `[0.05, 20]`,
    /// quality, the relevance term (`(1 + r) / 2`, or 1 when `relevance` is
    /// `None`: no query to be relevant to) and `1 − refund`, each floored at
    /// 10⁻⁴.
    #[inline]
    pub fn terms(
        heads: &[f32],
        price_band: f32,
        quality: f32,
        relevance: Option<f32>,
        refund_rate: f32,
    ) -> [f32; 7] {
        let signals = || (price_band, quality, refund_rate);
        std::array::from_fn(|k| Self::term(k, heads, signals, || relevance))
    }

    /// Term `k` of [`terms`](Self::terms) alone, from the three heads,
    /// `signals` (price band, quality, refund rate) and `relevance`, each
    /// asked only by the terms that read it: what a pass over many
    /// candidates ([`values_into`](Self::values_into)) computes term by
    /// term.
    #[inline(always)]
    pub(crate) fn term(
        k: usize,
        heads: &[f32],
        signals: impl FnOnce() -> (f32, f32, f32),
        relevance: impl FnOnce() -> Option<f32>,
    ) -> f32 {
        match k {
            0..=2 => floor_term(heads[k]),
            3 => price_term(signals().0),
            4 => floor_term(signals().1),
            5 => relevance_term(relevance()),
            _ => floor_term(1.0 - signals().2),
        }
    }

    /// [`value`](Self::value) of many candidates at once, term by term:
    /// `term(k, i)` is term `k` ([`FUSION_TERMS`] order) of candidate `i`,
    /// as [`terms`](Self::terms) computes it, and `out[i]` becomes its
    /// value. The same products in the same order as `value`, so the same
    /// results bit for bit; a term whose exponent is 0 is never computed,
    /// and each pass is a loop the compiler vectorizes (but `powf`).
    pub(crate) fn values_into(&self, out: &mut [f32], term: impl Fn(usize, usize) -> f32) {
        out.fill(1.0);
        for (k, w) in self.exponents().into_iter().enumerate() {
            let t = |i: usize| term(k, i);
            if w == 0.0 {
                continue;
            } else if w == 1.0 {
                out.iter_mut().enumerate().for_each(|(i, v)| *v *= t(i));
            } else if w == 2.0 {
                out.iter_mut().enumerate().for_each(|(i, v)| *v *= t(i) * t(i));
            } else if w == 0.5 {
                out.iter_mut().enumerate().for_each(|(i, v)| *v *= t(i).sqrt());
            } else {
                out.iter_mut().enumerate().for_each(|(i, v)| *v *= t(i).powf(w));
            }
        }
        for (i, v) in out.iter_mut().enumerate() {
            if !(v.is_finite() && *v > 0.0) {
                *v = self.value(&std::array::from_fn(|k| term(k, i)));
            }
        }
    }

    /// `Π term ^ exponent`. Exponents 0, 1, 2 and 0.5 (the common ones)
    /// cost a multiply or a square root; others a `powf`. Always finite and
    /// `>= 0`: a product that leaves `f32`'s range (large exponents on small
    /// or large terms) is recomputed in the log domain and clamped to
    /// `[e⁻⁸⁰, e⁸⁰]`, and a non-finite or negative term counts as 10⁻⁴.
    #[inline]
    pub fn value(&self, terms: &[f32; 7]) -> f32 {
        let v = self.value_fast(terms);
        if v.is_finite() && v > 0.0 {
            return v;
        }
        let log: f64 = terms
            .iter()
            .zip(self.exponents())
            .map(|(&t, w)| {
                let t = if t.is_finite() && t > 0.0 { f64::from(t) } else { 1e-4 };
                f64::from(w) * t.ln()
            })
            .sum();
        log.clamp(-80.0, 80.0).exp() as f32
    }

    #[inline]
    fn value_fast(&self, terms: &[f32; 7]) -> f32 {
        let mut v = 1.0f32;
        for (&t, w) in terms.iter().zip(self.exponents()) {
            v *= if w == 0.0 {
                1.0
            } else if w == 1.0 {
                t
            } else if w == 2.0 {
                t * t
            } else if w == 0.5 {
                t.sqrt()
            } else {
                t.powf(w)
            };
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The column pass gives every candidate what `value` gives it,
        /// bit for bit, for every kind of exponent (skipped, multiply,
        /// square, root, `powf`) and for products that leave `f32`'s range
        /// (the log-domain fallback).
        #[test]
        fn values_into_is_value_bit_for_bit(
            exps in proptest::collection::vec(
                prop_oneof![Just(0.0f32), Just(1.0), Just(2.0), Just(0.5), -10.0f32..10.0], 7),
            rows in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![1e-6f32..1.0, 1.0f32..30.0], 7), 0..40),
        ) {
            let f = Fusion {
                ctr: exps[0],
                cvr: exps[1],
                engagement: exps[2],
                price: exps[3],
                quality: exps[4],
                relevance: exps[5],
                refund: exps[6],
            };
            let mut out = vec![0.0f32; rows.len()];
            f.values_into(&mut out, |k, i| rows[i][k]);
            for (i, row) in rows.iter().enumerate() {
                let terms: [f32; 7] = std::array::from_fn(|k| row[k]);
                prop_assert_eq!(out[i].to_bits(), f.value(&terms).to_bits(), "row {}", i);
            }
        }
    }
}
