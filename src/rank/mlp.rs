//! [`MlpScorer`]: a small multi-layer perceptron over the feature rows.

use super::scorer::sigmoid;
use super::weights::check_finite;
#[cfg(feature = "safetensors")]
use super::weights::{parse_safetensors, shape_error, tensor};
use crate::error::{Error, Result};
use crate::features::{F, FeatureMatrix, HEADS};
use crate::stage::Scorer;
use std::path::Path;

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

impl MlpScorer {
    /// From layers `(outputs, inputs, weights row-major, biases)`: ReLU
    /// between layers, a sigmoid per head on the last; the first takes the
    /// `F` features, the last gives the `HEADS` heads.
    ///
    /// Errors: shapes that do not chain, a non-finite value.
    pub fn from_layers(layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>) -> Result<Self> {
        for (i, (out, inp, w, b)) in layers.iter().enumerate() {
            if Some(w.len()) != out.checked_mul(*inp) || b.len() != *out {
                return Err(Error::invalid_value(
                    "mlp layer",
                    format_args!("layer {i}"),
                    format!(
                        "{out} x {inp} weights and {out} biases expected, got {} and {}",
                        w.len(),
                        b.len()
                    ),
                ));
            }
        }
        Self::new(Path::new("<layers>"), layers)
    }

    /// Adds `delta` to every head's bias (a sampling-rate correction).
    #[cfg(feature = "train")]
    pub(crate) fn shift_output_bias(&mut self, delta: f32) {
        if let Some(last) = self.layers.last_mut() {
            last.3.iter_mut().for_each(|b| *b += delta);
        }
    }

    /// The layers, as [`from_layers`](Self::from_layers) takes them.
    pub fn layers(&self) -> &[(usize, usize, Vec<f32>, Vec<f32>)] {
        &self.layers
    }

    /// Writes one `.npy` matrix per layer (`outputs × (inputs + 1)`, bias
    /// last), the files [`from_npy`](Self::from_npy) reads, in order.
    pub fn write_npy(&self, paths: &[impl AsRef<Path>]) -> Result<()> {
        if paths.len() != self.layers.len() {
            return Err(Error::count("mlp layer files", self.layers.len(), paths.len()));
        }
        for (p, (out, inp, w, b)) in paths.iter().zip(&self.layers) {
            let mut m = Vec::with_capacity(out * (inp + 1));
            for j in 0..*out {
                m.extend_from_slice(&w[j * inp..(j + 1) * inp]);
                m.push(b[j]);
            }
            crate::load::write_npy_matrix(p, inp + 1, &m)?;
        }
        Ok(())
    }
}

impl Scorer for MlpScorer {
    fn id(&self) -> &'static str {
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
                    let z =
                        bias[j] + crate::kernels::dot(&w[j * n_in..(j + 1) * n_in], &a[..*n_in]);
                    b[j] = if l == last { sigmoid(z) } else { z.max(0.0) };
                }
                std::mem::swap(&mut a, &mut b);
            }
            o.copy_from_slice(&a[..HEADS]);
        }
    }
}
