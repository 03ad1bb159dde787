//! Training the [`MlpScorer`]: one ReLU hidden layer and a sigmoid per head,
//! by backpropagation with Adam on the binary cross-entropy of all heads,
//! on standardized features (the standardization is folded into the first
//! layer, so the scorer reads raw features). Deterministic for a seed.

use crate::error::{Error, Result};
use crate::features::{F, HEADS};
use crate::rank::MlpScorer;
use serde::{Deserialize, Serialize};

/// Settings of [`fit_mlp`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpTrainConfig {
    /// Hidden units (1..=1024). Default 32.
    pub hidden: usize,
    /// Passes over the examples (1..=1000). Default 20.
    pub epochs: usize,
    /// Adam's step size. Default 0.005.
    pub learning_rate: f32,
    /// Examples per step (1..=65536). Default 256.
    pub batch: usize,
    /// L2 penalty on the weights. Default 1e-4.
    pub l2: f32,
    /// Seed of the initial weights and the example order.
    pub seed: u64,
}

impl Default for MlpTrainConfig {
    fn default() -> Self {
        MlpTrainConfig {
            hidden: 32,
            epochs: 20,
            learning_rate: 0.005,
            batch: 256,
            l2: 1e-4,
            seed: 7,
        }
    }
}

impl MlpTrainConfig {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<()> {
        let ok = (1..=1024).contains(&self.hidden)
            && (1..=1000).contains(&self.epochs)
            && (1..=65_536).contains(&self.batch)
            && self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0
            && self.l2.is_finite()
            && (0.0..=1.0).contains(&self.l2);
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_config(
                "mlp",
                "hidden 1..=1024, epochs 1..=1000, batch 1..=65536, learning_rate (0, 1], l2 [0, 1]",
            ))
        }
    }
}

/// Adam state of one parameter block.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam { m: vec![0.0; n], v: vec![0.0; n] }
    }

    fn step(&mut self, w: &mut [f32], g: &[f32], lr: f32, t: i32) {
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..w.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Per feature: its mean and the inverse of its standard deviation (0 for
/// a constant column, which then contributes nothing).
fn standardize(x: &[f32], n: usize) -> ([f32; F], [f32; F]) {
    let mut mean = [0.0f64; F];
    let mut sq = [0.0f64; F];
    for row in x.chunks_exact(F) {
        for j in 0..F {
            mean[j] += f64::from(row[j]);
            sq[j] += f64::from(row[j]) * f64::from(row[j]);
        }
    }
    let mut mu = [0.0f32; F];
    let mut inv = [1.0f32; F];
    for j in 0..F {
        let m = mean[j] / n as f64;
        let var = (sq[j] / n as f64 - m * m).max(0.0);
        mu[j] = m as f32;
        inv[j] = if var > 1e-12 { (1.0 / var.sqrt()) as f32 } else { 0.0 };
    }
    (mu, inv)
}

/// Rewrites the first layer to take raw features:
/// `W·((x − μ)·inv) + b = (W·inv)·x + (b − (W·inv)·μ)`.
fn fold_standardization(w1: &mut [f32], b1: &mut [f32], mu: &[f32; F], inv: &[f32; F]) {
    for (u, b) in b1.iter_mut().enumerate() {
        let mut shift = 0.0;
        for j in 0..F {
            w1[u * F + j] *= inv[j];
            shift += w1[u * F + j] * mu[j];
        }
        *b -= shift;
    }
}

/// Learns an `F → hidden → HEADS` MLP from `x` (`n × F` features, row-major)
/// and one 0/1 label column per head.
///
/// Errors: an invalid config, labels of another length than the rows, no
/// rows, a non-finite feature.
pub fn fit_mlp(x: &[f32], y: &[Vec<f32>; HEADS], cfg: &MlpTrainConfig) -> Result<MlpScorer> {
    cfg.validate()?;
    let n = x.len() / F;
    if n == 0 || !x.len().is_multiple_of(F) || y.iter().any(|c| c.len() != n) {
        return Err(Error::invalid_value(
            "mlp examples",
            "fit_mlp",
            "rows and labels do not match",
        ));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::new(crate::error::ErrorKind::NonFinite {
            what: "mlp features",
            index: 0,
        }));
    }
    let (mu, inv) = standardize(x, n);
    let mut net = Net::init(cfg, y, n);
    let mut grad = Net::zeros(cfg.hidden);
    let mut adam: [Adam; 4] = [
        Adam::new(net.w1.len()),
        Adam::new(net.b1.len()),
        Adam::new(net.w2.len()),
        Adam::new(net.b2.len()),
    ];
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut xs = [0.0f32; F];
    let mut t = 0;
    for epoch in 0..cfg.epochs {
        // A seeded shuffle per epoch.
        let mut key = cfg.seed.wrapping_add(epoch as u64);
        for i in (1..n).rev() {
            key = crate::ids::splitmix64(key);
            order.swap(i, (key % (i as u64 + 1)) as usize);
        }
        for batch in order.chunks(cfg.batch) {
            grad.clear();
            for &i in batch {
                let i = i as usize;
                let row = &x[i * F..(i + 1) * F];
                for j in 0..F {
                    xs[j] = (row[j] - mu[j]) * inv[j];
                }
                let labels = [y[0][i], y[1][i], y[2][i]];
                net.backprop(&xs, labels, &mut grad);
            }
            grad.finish(&net, 1.0 / batch.len() as f32, cfg.l2);
            t += 1;
            net.step(&grad, &mut adam, cfg.learning_rate, t);
        }
    }
    let Net { mut w1, mut b1, w2, b2, h, .. } = net;
    fold_standardization(&mut w1, &mut b1, &mu, &inv);
    MlpScorer::from_layers(vec![(h, F, w1, b1), (HEADS, h, w2, b2)])
}

/// The two layers (or their gradients), with scratch for one example.
struct Net {
    h: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    pre: Vec<f32>,
    hid: Vec<f32>,
    dh: Vec<f32>,
}

impl Net {
    fn zeros(h: usize) -> Net {
        Net {
            h,
            w1: vec![0.0; h * F],
            b1: vec![0.0; h],
            w2: vec![0.0; HEADS * h],
            b2: vec![0.0; HEADS],
            pre: vec![0.0; h],
            hid: vec![0.0; h],
            dh: vec![0.0; h],
        }
    }

    /// He-uniform weights from the seed; output biases at the base rates.
    fn init(cfg: &MlpTrainConfig, y: &[Vec<f32>; HEADS], n: usize) -> Net {
        let h = cfg.hidden;
        let mut rng = cfg.seed ^ 0x5EED;
        let mut uniform = move || {
            rng = crate::ids::splitmix64(rng);
            (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let (s1, s2) = ((6.0 / F as f32).sqrt(), (6.0 / h as f32).sqrt() * 0.5);
        let mut net = Net::zeros(h);
        net.w1.iter_mut().for_each(|w| *w = uniform() * s1);
        net.w2.iter_mut().for_each(|w| *w = uniform() * s2);
        for (k, b) in net.b2.iter_mut().enumerate() {
            let p = (y[k].iter().sum::<f32>() / n as f32).clamp(1e-4, 1.0 - 1e-4);
            *b = (p / (1.0 - p)).ln();
        }
        net
    }

    fn clear(&mut self) {
        for g in [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2] {
            g.iter_mut().for_each(|v| *v = 0.0);
        }
    }

    /// Adds one example's cross-entropy gradient (all heads) to `g`.
    fn backprop(&mut self, xs: &[f32; F], labels: [f32; HEADS], g: &mut Net) {
        let (h, dot) = (self.h, crate::kernels::dot);
        for u in 0..h {
            self.pre[u] = self.b1[u] + dot(&self.w1[u * F..(u + 1) * F], xs);
            self.hid[u] = self.pre[u].max(0.0);
        }
        self.dh.iter_mut().for_each(|v| *v = 0.0);
        for (k, &label) in labels.iter().enumerate() {
            let o = self.b2[k] + dot(&self.w2[k * h..(k + 1) * h], &self.hid);
            let d = crate::rank::scorer::sigmoid(o) - label;
            g.b2[k] += d;
            for u in 0..h {
                g.w2[k * h + u] += d * self.hid[u];
                self.dh[u] += d * self.w2[k * h + u];
            }
        }
        for u in 0..h {
            if self.pre[u] > 0.0 {
                g.b1[u] += self.dh[u];
                for (gw, &x) in g.w1[u * F..(u + 1) * F].iter_mut().zip(xs) {
                    *gw += self.dh[u] * x;
                }
            }
        }
    }

    /// Averages the summed gradient and adds the L2 term of `net`'s weights.
    fn finish(&mut self, net: &Net, scale: f32, l2: f32) {
        for (g, w) in [(&mut self.w1, &net.w1), (&mut self.w2, &net.w2)] {
            for (g, &w) in g.iter_mut().zip(w.iter()) {
                *g = *g * scale + l2 * w;
            }
        }
        self.b1.iter_mut().chain(self.b2.iter_mut()).for_each(|g| *g *= scale);
    }

    fn step(&mut self, g: &Net, adam: &mut [Adam; 4], lr: f32, t: i32) {
        adam[0].step(&mut self.w1, &g.w1, lr, t);
        adam[1].step(&mut self.b1, &g.b1, lr, t);
        adam[2].step(&mut self.w2, &g.w2, lr, t);
        adam[3].step(&mut self.b2, &g.b2, lr, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureMatrix;
    use crate::rank::Scorer;

    /// Mean binary cross-entropy of head 0 on rows `x`.
    fn logloss(scores: &[f32], y: &[f32]) -> f64 {
        let mut s = 0.0;
        for (i, &t) in y.iter().enumerate() {
            let p = f64::from(scores[i * HEADS]).clamp(1e-6, 1.0 - 1e-6);
            s -= f64::from(t) * p.ln() + (1.0 - f64::from(t)) * (1.0 - p).ln();
        }
        s / y.len() as f64
    }

    /// The truth is an interaction (`σ(4·x0·x1)`): a linear head cannot
    /// learn it, the MLP does, on held-out rows.
    #[test]
    fn the_mlp_learns_an_interaction_a_linear_head_cannot() {
        let mut rng = 11u64;
        let mut unit = || {
            rng = crate::ids::splitmix64(rng);
            (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let rows = 6_000;
        let mut x = Vec::with_capacity(rows * F);
        let mut y: [Vec<f32>; HEADS] = Default::default();
        for _ in 0..rows {
            let row: Vec<f32> = (0..F).map(|_| unit()).collect();
            let p = 1.0 / (1.0 + (-4.0 * row[0] * row[1]).exp());
            let label = if (unit() + 1.0) / 2.0 < p { 1.0 } else { 0.0 };
            x.extend_from_slice(&row);
            for c in &mut y {
                c.push(label);
            }
        }
        let split = 4_500;
        let (xt, xv) = x.split_at(split * F);
        let yt: [Vec<f32>; HEADS] = y.clone().map(|c| c[..split].to_vec());
        let yv = y[0][split..].to_vec();
        let mlp = fit_mlp(xt, &yt, &MlpTrainConfig::default()).unwrap();
        let lin = crate::train::fit_logistic(xt, &yt[0], F, 1.0, 30).unwrap();
        let mut m = FeatureMatrix::new();
        let mut mlp_scores = vec![0.0; (rows - split) * HEADS];
        let mut lin_scores = vec![0.0; (rows - split) * HEADS];
        for (i, row) in xv.chunks_exact(F).enumerate() {
            m.set_single(row);
            mlp.score(&m, &mut mlp_scores[i * HEADS..(i + 1) * HEADS]);
            let z = lin[F] + crate::kernels::dot(&lin[..F], row);
            lin_scores[i * HEADS] = 1.0 / (1.0 + (-z).exp());
        }
        let (l_mlp, l_lin) = (logloss(&mlp_scores, &yv), logloss(&lin_scores, &yv));
        assert!(l_mlp < l_lin - 0.03, "held-out logloss: mlp {l_mlp:.4}, linear {l_lin:.4}");
        // Deterministic for a seed; the files round-trip.
        assert_eq!(fit_mlp(xt, &yt, &MlpTrainConfig::default()).unwrap(), mlp);
        let dir = std::env::temp_dir().join(format!("omnifeed-mlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = [dir.join("l0.npy"), dir.join("l1.npy")];
        mlp.write_npy(&paths).unwrap();
        assert_eq!(MlpScorer::from_npy(&paths).unwrap(), mlp);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
