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
use crate::rank::features::{F, FEATURE_NAMES, FeatureMatrix, feature_index};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Number of heads.
pub const HEADS: usize = 3;
/// Head names, in output order.
pub const HEAD_NAMES: [&str; HEADS] = ["pctr", "pcvr", "engagement"];

/// Maps feature rows to head outputs in `(0, 1)`.
///
/// The contract keeps scoring from dropping or reordering: the caller hands
/// a slice of exactly `features.rows() × HEADS` outputs, row `i`'s heads at
/// `out[i * HEADS..]`. Non-finite outputs are replaced by 0 after the call.
pub trait Scorer: Send + Sync + std::fmt::Debug {
    /// A name for traces.
    fn name(&self) -> &'static str;

    /// Writes the heads of every row of `features` into `out`.
    fn score(&self, features: &FeatureMatrix, out: &mut [f32]);
}

#[inline]
fn sigmoid(x: f32) -> f32 {
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
    pub fn from_npy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (rows, cols, w) = crate::load::read_npy_matrix(path)?;
        if (rows, cols) != (HEADS, F + 1) {
            return Err(shape_error(path, "matrix", &[HEADS, F + 1], &[rows, cols]));
        }
        check_finite(path, "matrix", &w)?;
        Ok(LogisticScorer { w })
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
    /// [`matrix`](Self::matrix) returns. Errors: another length or a
    /// non-finite weight.
    pub fn from_matrix(w: Vec<f32>) -> Result<Self> {
        if w.len() != HEADS * (F + 1) {
            return Err(Error::dimension("scorer matrix", HEADS * (F + 1), w.len()));
        }
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
}

impl Scorer for LogisticScorer {
    fn name(&self) -> &'static str {
        "logistic"
    }

    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        for (x, o) in features.as_slice().chunks_exact(F).zip(out.chunks_exact_mut(HEADS)) {
            for (h, o) in o.iter_mut().enumerate() {
                let w = &self.w[h * (F + 1)..(h + 1) * (F + 1)];
                let z = w[F] + crate::rank::kernels::dot(&w[..F], x);
                *o = sigmoid(z);
            }
        }
    }
}

/// A small multi-layer perceptron: ReLU hidden layers, a 3-unit sigmoid
/// output layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpScorer {
    /// Per layer: `(out, in, weights out × in, bias out)`.
    layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
    widest: usize,
}

impl MlpScorer {
    fn new(path: &Path, layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::parse(path, None, "no layers"));
        }
        let mut input = F;
        for (i, (out, inp, w, b)) in layers.iter().enumerate() {
            if *inp != input {
                return Err(Error::parse(
                    path,
                    None,
                    format!("layer {i} takes {inp} inputs, the one before gives {input}"),
                ));
            }
            check_finite(path, "layer", w)?;
            check_finite(path, "layer", b)?;
            input = *out;
        }
        if input != HEADS {
            return Err(Error::parse(
                path,
                None,
                format!("the last layer has {input} outputs, expected {HEADS} heads"),
            ));
        }
        let widest = layers.iter().map(|l| l.0).max().unwrap_or(HEADS).max(F);
        Ok(MlpScorer { layers, widest })
    }

    /// From a safetensors file of an `nn.Sequential` of `nn.Linear` layers
    /// (`0.weight`, `0.bias`, `2.weight`, ...: layers in numeric order; any
    /// prefix before the number, e.g. `net.0.weight`, is accepted).
    #[cfg(feature = "safetensors")]
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = parse_safetensors(path, &bytes)?;
        let mut names: Vec<(u32, String)> = st
            .names()
            .into_iter()
            .filter_map(|n| {
                let stem = n.strip_suffix(".weight")?;
                let idx = stem.rsplit('.').next()?.parse::<u32>().ok()?;
                Some((idx, stem.to_string()))
            })
            .collect();
        names.sort();
        let mut layers = Vec::new();
        for (_, stem) in names {
            let (ws, w) = tensor(path, &st, &format!("{stem}.weight"))?;
            let (bs, b) = tensor(path, &st, &format!("{stem}.bias"))?;
            if ws.len() != 2 || bs != [ws[0]] {
                return Err(shape_error(path, "layer", &[bs.first().copied().unwrap_or(0)], &ws));
            }
            layers.push((ws[0], ws[1], w, b));
        }
        Self::new(path, layers)
    }

    /// From `.npy` files, one `out × (in + 1)` matrix per layer (bias last),
    /// in the order given.
    pub fn from_npy(paths: &[impl AsRef<Path>]) -> Result<Self> {
        let mut layers = Vec::new();
        let mut first = Path::new("");
        for (i, p) in paths.iter().enumerate() {
            let p = p.as_ref();
            if i == 0 {
                first = p;
            }
            let (out, cols, m) = crate::load::read_npy_matrix(p)?;
            if cols < 2 {
                return Err(Error::parse(p, None, format!("{cols} columns: no weights")));
            }
            let inp = cols - 1;
            let mut w = Vec::with_capacity(out * inp);
            let mut b = Vec::with_capacity(out);
            for r in m.chunks_exact(cols) {
                w.extend_from_slice(&r[..inp]);
                b.push(r[inp]);
            }
            layers.push((out, inp, w, b));
        }
        Self::new(first, layers)
    }
}

impl Scorer for MlpScorer {
    fn name(&self) -> &'static str {
        "mlp"
    }

    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        let mut a = vec![0.0f32; self.widest];
        let mut b = vec![0.0f32; self.widest];
        for (x, o) in features.as_slice().chunks_exact(F).zip(out.chunks_exact_mut(HEADS)) {
            a[..F].copy_from_slice(x);
            let last = self.layers.len() - 1;
            for (l, (n_out, n_in, w, bias)) in self.layers.iter().enumerate() {
                for j in 0..*n_out {
                    let z = bias[j]
                        + crate::rank::kernels::dot(&w[j * n_in..(j + 1) * n_in], &a[..*n_in]);
                    b[j] = if l == last { sigmoid(z) } else { z.max(0.0) };
                }
                std::mem::swap(&mut a, &mut b);
            }
            o.copy_from_slice(&a[..HEADS]);
        }
    }
}

#[cfg(feature = "safetensors")]
fn parse_safetensors<'a>(path: &Path, bytes: &'a [u8]) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::parse(path, None, format!("not a safetensors file: {e}")))
}

/// A tensor as `(shape, f32 values)`; float32 or float64 little-endian.
#[cfg(feature = "safetensors")]
fn tensor(
    path: &Path,
    st: &safetensors::SafeTensors<'_>,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>)> {
    use safetensors::Dtype;
    let t = st.tensor(name).map_err(|_| Error::parse(path, None, format!("no tensor {name:?}")))?;
    let data = t.data();
    let values: Vec<f32> = match t.dtype() {
        Dtype::F32 => {
            data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => {
            return Err(Error::parse(
                path,
                None,
                format!("tensor {name:?} is {other:?}, expected F32 or F64"),
            ));
        }
    };
    check_finite(path, "tensor", &values)?;
    Ok((t.shape().to_vec(), values))
}

fn check_finite(path: &Path, what: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::parse(path, None, format!("{what} value {i} is not finite"))),
        None => Ok(()),
    }
}

fn shape_error(path: &Path, name: &str, want: &[usize], got: &[usize]) -> Error {
    Error::parse(path, None, format!("{name} has shape {got:?}, expected {want:?}"))
}

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
        let floor = |x: f32| if x.is_finite() { x.max(1e-4) } else { 1e-4 };
        [
            floor(heads[0]),
            floor(heads[1]),
            floor(heads[2]),
            if price_band.is_finite() { price_band.exp().clamp(0.05, 20.0) } else { 1.0 },
            floor(quality),
            relevance.map_or(1.0, |r| floor((1.0 + r.clamp(0.0, 1.0)) / 2.0)),
            floor(1.0 - refund_rate),
        ]
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
