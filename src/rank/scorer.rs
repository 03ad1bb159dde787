//! Scoring (精排): a [`Scorer`] maps each feature row to head outputs
//! (pCTR, pCVR, engagement); [`Fusion`] turns the heads and a few signals
//! into one value per candidate.
//!
//! Weights load from config ([`HeadWeights`]) or from the files PyTorch and
//! NumPy export: safetensors (`weight` `[3, F]` and `bias` `[3]` for the
//! logistic scorer; `N.weight` / `N.bias` of an `nn.Sequential` of
//! `nn.Linear` layers for the MLP) or `.npy` (a `3 × (F + 1)` matrix with
//! the bias last; for the MLP one `out × (in + 1)` matrix per layer).

use crate::error::{Error, Result};
use crate::features::{F, FEATURE_NAMES, FeatureMatrix, HEADS, feature_index};
pub use crate::stage::Scorer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub use super::fusion::{FUSION_TERMS, Fusion};
pub use super::mlp::MlpScorer;
use super::weights::{check_finite, shape_error};
#[cfg(feature = "safetensors")]
use super::weights::{parse_safetensors, tensor};

#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Logistic weights of the three heads by feature name, plus `bias`: the
/// TOML-readable form of a [`LogisticScorer`]. Features not named weigh 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadWeights {
    /// pCTR weights.
    pub pctr: BTreeMap<String, f32>,
    /// pCVR weights.
    pub pcvr: BTreeMap<String, f32>,
    /// Engagement weights.
    pub engagement: BTreeMap<String, f32>,
}

impl Default for HeadWeights {
    /// Hand-set priors that rank sensibly before any training: similarity,
    /// smoothed rates and query relevance drive clicks; conversion rate,
    /// shop quality and due repurchases drive orders; content completion
    /// and live drive engagement.
    fn default() -> Self {
        let map = |pairs: &[(&str, f32)]| {
            pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>()
        };
        HeadWeights {
            pctr: map(&[
                ("bias", -3.0),
                ("sim_long", 2.5),
                ("sim_short", 1.0),
                ("sim_interest", 1.5),
                ("n_sources", 0.2),
                ("ctr", 3.0),
                ("category_affinity", 1.0),
                ("query_relevance", 2.0),
                ("trending", 0.5),
                ("freshness", 0.2),
                ("live_now", 0.3),
            ]),
            pcvr: map(&[
                ("bias", -3.0),
                ("sim_long", 1.0),
                ("cvr", 4.0),
                ("cart_rate", 1.0),
                ("merchant_score", 1.0),
                ("price_band", -0.3),
                ("repurchase_due", 1.5),
            ]),
            engagement: map(&[
                ("bias", -2.0),
                ("sim_short", 1.0),
                ("content_watch", 2.0),
                ("content_ctr", 1.0),
                ("trending", 0.5),
                ("live_now", 0.5),
            ]),
        }
    }
}

/// One logistic regression per head: `σ(w · x + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticScorer {
    /// `HEADS × (F + 1)`, bias last.
    w: Vec<f32>,
}

/// The fewest feature columns an earlier version's weight matrix had that
/// [`LogisticScorer::from_npy`] and [`LogisticScorer::from_matrix`] still
/// load (24, before `co_engaged` and `trending_recent`).
pub const MIN_OLDER_F: usize = 24;

/// `3 × (f + 1)` weights (bias last) as `3 × (F + 1)`, the newer columns 0.
fn widen(w: &[f32], f: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; HEADS * (F + 1)];
    for h in 0..HEADS {
        out[h * (F + 1)..h * (F + 1) + f].copy_from_slice(&w[h * (f + 1)..h * (f + 1) + f]);
        out[h * (F + 1) + F] = w[h * (f + 1) + f];
    }
    out
}

impl LogisticScorer {
    /// From weights by name. Errors: an unknown feature name or a
    /// non-finite weight, naming the head and feature.
    pub fn from_weights(weights: &HeadWeights) -> Result<Self> {
        let mut w = vec![0.0f32; HEADS * (F + 1)];
        for (h, (head, map)) in
            [("pctr", &weights.pctr), ("pcvr", &weights.pcvr), ("engagement", &weights.engagement)]
                .into_iter()
                .enumerate()
        {
            for (name, &v) in map {
                let col = if name == "bias" {
                    F
                } else {
                    feature_index(name).ok_or_else(|| {
                        Error::invalid_config(
                            "scorer.weights",
                            format!(
                                "{head}: unknown feature {name:?} (known: bias, {})",
                                FEATURE_NAMES.join(", ")
                            ),
                        )
                    })?
                };
                if !v.is_finite() {
                    return Err(Error::invalid_config(
                        "scorer.weights",
                        format!("{head}.{name} is {v}"),
                    ));
                }
                w[h * (F + 1) + col] = v;
            }
        }
        Ok(LogisticScorer { w })
    }

    /// From a `.npy` matrix of `3 × (F + 1)` (bias last), float32 or float64.
    /// A matrix of an earlier version, with fewer feature columns
    /// ([`MIN_OLDER_F`]`..F`; features are only ever appended), loads with
    /// the newer columns at weight 0.
    pub fn from_npy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (rows, cols, w) = crate::load::read_npy_matrix(path)?;
        if rows != HEADS || !(MIN_OLDER_F + 1..=F + 1).contains(&cols) {
            return Err(shape_error(path, "matrix", &[HEADS, F + 1], &[rows, cols]));
        }
        check_finite(path, "matrix", &w)?;
        Ok(LogisticScorer { w: widen(&w, cols - 1) })
    }

    /// From a safetensors file with `weight` (`[3, F]`) and `bias` (`[3]`),
    /// as `torch.nn.Linear(F, 3)` saves them; float32 or float64.
    #[cfg(feature = "safetensors")]
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = parse_safetensors(path, &bytes)?;
        let (ws, weight) = tensor(path, &st, "weight")?;
        let (bs, bias) = tensor(path, &st, "bias")?;
        if ws != [HEADS, F] {
            return Err(shape_error(path, "weight", &[HEADS, F], &ws));
        }
        if bs != [HEADS] {
            return Err(shape_error(path, "bias", &[HEADS], &bs));
        }
        let mut w = vec![0.0f32; HEADS * (F + 1)];
        for h in 0..HEADS {
            w[h * (F + 1)..h * (F + 1) + F].copy_from_slice(&weight[h * F..(h + 1) * F]);
            w[h * (F + 1) + F] = bias[h];
        }
        Ok(LogisticScorer { w })
    }

    /// From the `3 × (F + 1)` matrix (row-major, bias last) that
    /// [`matrix`](Self::matrix) returns; as [`from_npy`](Self::from_npy), a
    /// matrix of an earlier version (`3 × (f + 1)`, `MIN_OLDER_F ≤ f < F`)
    /// loads with the newer columns at 0. Errors: another length or a
    /// non-finite weight.
    pub fn from_matrix(w: Vec<f32>) -> Result<Self> {
        let older = (MIN_OLDER_F..F).find(|f| w.len() == HEADS * (f + 1));
        let w = match older {
            Some(f) => widen(&w, f),
            None if w.len() == HEADS * (F + 1) => w,
            None => return Err(Error::dimension("scorer matrix", HEADS * (F + 1), w.len())),
        };
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid_value(
                "scorer matrix",
                format_args!("head {} column {}", i / (F + 1), i % (F + 1)),
                format!("weight is {}", w[i]),
            ));
        }
        Ok(LogisticScorer { w })
    }

    /// The `3 × (F + 1)` weights, row-major, bias last: what
    /// [`from_npy`](Self::from_npy) reads.
    pub fn matrix(&self) -> &[f32] {
        &self.w
    }

    /// Writes the weights as a `3 × (F + 1)` float32 `.npy` file, the file
    /// [`from_npy`](Self::from_npy) loads.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::load::write_npy_matrix(path, F + 1, &self.w)
    }

    /// The weights of head `h` (`F` weights then the bias).
    pub fn head(&self, h: usize) -> &[f32] {
        &self.w[h * (F + 1)..(h + 1) * (F + 1)]
    }

    /// The weights by name, the config's form ([`HeadWeights`], the
    /// `[scorer]` table): every weight not 0, and `bias`. Heads trained
    /// offline or online become the recommender's default heads (which
    /// online learning starts from) this way;
    /// [`from_weights`](Self::from_weights) of the result gives this scorer
    /// back.
    ///
    /// ```
    /// use omnifeed::rank::{HeadWeights, LogisticScorer};
    /// let s = LogisticScorer::from_weights(&HeadWeights::default())?;
    /// let back = LogisticScorer::from_weights(&s.to_weights())?;
    /// assert_eq!(back.matrix(), s.matrix());
    /// # Ok::<(), omnifeed::Error>(())
    /// ```
    pub fn to_weights(&self) -> HeadWeights {
        let named = |h: usize| {
            let head = self.head(h);
            let mut m: BTreeMap<String, f32> = FEATURE_NAMES
                .iter()
                .zip(head)
                .filter(|(_, w)| **w != 0.0)
                .map(|(n, w)| ((*n).to_string(), *w))
                .collect();
            m.insert("bias".into(), head[F]);
            m
        };
        HeadWeights { pctr: named(0), pcvr: named(1), engagement: named(2) }
    }
}

impl Scorer for LogisticScorer {
    fn id(&self) -> &'static str {
        "logistic"
    }

    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        logistic_heads(&self.w, features.as_slice(), out);
    }
}

crate::kernels::avx2_dispatch! {
    /// `σ(w_h · x + b_h)` of every head for every row of `x` into `out`.
    fn logistic_heads(w: &[f32], x: &[f32], out: &mut [f32]) => logistic_pass
}

const _: () = assert!(HEADS == 3, "logistic_pass reads three heads");

/// [`logistic_heads`]' loop: the three heads' dot products in one pass
/// over each row, each as [`dot`](crate::kernels::dot) computes it.
#[inline(always)]
fn logistic_pass(w: &[f32], x: &[f32], out: &mut [f32], simd: impl crate::kernels::Simd) {
    let head = |h: usize| &w[h * (F + 1)..h * (F + 1) + F];
    let (w3, bias) = ([head(0), head(1), head(2)], [w[F], w[2 * F + 1], w[3 * F + 2]]);
    for (x, o) in x.chunks_exact(F).zip(out.chunks_exact_mut(HEADS)) {
        let z = simd.dot3(w3, x);
        for h in 0..HEADS {
            o[h] = sigmoid(bias[h] + z[h]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused heads equal one `dot` per head, bit for bit, in the copy
    /// built for AVX2 (where this CPU has it) and in the plain build.
    #[test]
    fn fused_heads_are_one_dot_per_head_bit_for_bit() {
        let w: Vec<f32> =
            (0..HEADS * (F + 1)).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let x: Vec<f32> = (0..57 * F).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        let mut wide = vec![0.0f32; 57 * HEADS];
        let mut plain = wide.clone();
        logistic_heads(&w, &x, &mut wide);
        logistic_pass(&w, &x, &mut plain, crate::kernels::Plain);
        for (i, row) in x.chunks_exact(F).enumerate() {
            for h in 0..HEADS {
                let wh = &w[h * (F + 1)..(h + 1) * (F + 1)];
                let want = sigmoid(wh[F] + crate::kernels::dot(&wh[..F], row)).to_bits();
                assert_eq!(wide[i * HEADS + h].to_bits(), want, "row {i} head {h}");
                assert_eq!(plain[i * HEADS + h].to_bits(), want, "row {i} head {h}");
            }
        }
    }

    #[test]
    fn older_weight_matrices_load_with_the_new_columns_at_zero() {
        let f = F - 2;
        let old: Vec<f32> = (0..HEADS * (f + 1)).map(|i| i as f32).collect();
        let s = LogisticScorer::from_matrix(old.clone()).unwrap();
        for h in 0..HEADS {
            let row = &s.matrix()[h * (F + 1)..(h + 1) * (F + 1)];
            assert_eq!(&row[..f], &old[h * (f + 1)..h * (f + 1) + f]);
            assert_eq!(&row[f..F], &[0.0, 0.0]);
            assert_eq!(row[F], old[h * (f + 1) + f], "bias of head {h}");
        }
        assert!(LogisticScorer::from_matrix(vec![0.0; HEADS * MIN_OLDER_F]).is_err());
        assert!(LogisticScorer::from_matrix(vec![0.0; HEADS * (F + 2)]).is_err());
    }

    #[test]
    fn fusion_is_the_product_of_powers() {
        let f = Fusion {
            ctr: 1.0,
            cvr: 0.5,
            engagement: 0.0,
            price: 1.0,
            quality: 2.0,
            relevance: 0.0,
            refund: 1.0,
        };
        let t = Fusion::terms(&[0.2, 0.09, 0.5], 2f32.ln(), 0.5, Some(0.0), 0.1);
        // 0.2 · 0.09^0.5 · 2 · 0.5² · 0.9 = 0.2 · 0.3 · 2 · 0.25 · 0.9 = 0.027
        assert!((f.value(&t) - 0.027).abs() < 1e-6, "{}", f.value(&t));
        // A zero exponent ignores its term.
        assert_eq!(t[5], 0.5);
        // Relevance: (1 + r) / 2, neutral without a query.
        let g = Fusion { relevance: 2.0, ..f };
        let rel = Fusion::terms(&[0.2, 0.09, 0.5], 2f32.ln(), 0.5, Some(1.0), 0.1);
        assert!((g.value(&rel) - 0.027).abs() < 1e-6);
        let none = Fusion::terms(&[0.2, 0.09, 0.5], 2f32.ln(), 0.5, None, 0.1);
        assert_eq!(none[5], 1.0);
        assert!((g.value(&t) - 0.027 / 4.0).abs() < 1e-6);
        let bad = Fusion { quality: f32::NAN, ..Fusion::default() };
        assert!(bad.validate("fusion.feed").is_err());
    }

    #[test]
    fn unknown_feature_names_are_config_errors() {
        let mut w = HeadWeights::default();
        w.pcvr.insert("colour".into(), 1.0);
        let e = LogisticScorer::from_weights(&w).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn logistic_heads_are_sigmoids_of_the_weighted_sum() {
        let mut w = HeadWeights {
            pctr: BTreeMap::new(),
            pcvr: BTreeMap::new(),
            engagement: BTreeMap::new(),
        };
        w.pctr.insert("bias".into(), -1.0);
        w.pctr.insert("ctr".into(), 2.0);
        let s = LogisticScorer::from_weights(&w).unwrap();
        assert_eq!(s.head(0)[F], -1.0);
        assert_eq!(s.head(0)[feature_index("ctr").unwrap()], 2.0);
        assert!(s.head(1).iter().all(|&x| x == 0.0));
    }
}
