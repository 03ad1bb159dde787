//! An inverted-file index (IVF-Flat): spherical k-means cuts the catalog
//! into lists; a query scans the `probes` lists whose centroids are
//! closest. Deterministic (seeded sample and seeding), built in parallel
//! with rayon, and fast to build at a million products, where an HNSW graph
//! through hnsw_rs takes minutes.
//!
//! The vectors are stored again in list order, scalar-quantized to one byte
//! per dimension (faiss' `IndexIVFScalarQuantizer` with 8 bits), so a probe
//! is one contiguous scan of a quarter of the bytes: at a million products
//! the scan, not the arithmetic, is what a search costs. The best
//! `k + 32` by approximate score are rescored exactly against the
//! catalog's `f32` matrix, so returned scores are exact. Extra memory:
//! `N × d` bytes.

use super::{Neighbor, RowFilter, VectorIndex, with_unit_query};
use crate::catalog::Embeddings;
use crate::error::{Error, Result};
use crate::ids::ItemIdx;
use crate::rank::kernels::{TopK, dot};
use rayon::prelude::*;
use std::sync::Arc;

/// IVF build and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfParams {
    /// Number of lists; 0 picks `2·√N` (at least 1). Default 0.
    pub lists: usize,
    /// Lists scanned per query (1..=lists). Default 24.
    pub probes: usize,
    /// Rows sampled to train the centroids. Default 65,536.
    pub train_sample: usize,
    /// k-means iterations. Default 8.
    pub iterations: usize,
    /// Seed of the sample and the centroid seeding.
    pub seed: u64,
}

/// The most lists an [`IvfIndex`] may have (and so the most probes).
pub const MAX_LISTS: usize = 1 << 20;
/// The most k-means iterations.
pub const MAX_ITERATIONS: usize = 100;
/// The largest training sample.
pub const MAX_TRAIN_SAMPLE: usize = 1 << 24;

impl IvfParams {
    /// Checks the fields against their bounds: `lists` in
    /// `0..=`[`MAX_LISTS`], `probes` in `1..=MAX_LISTS`, `iterations` in
    /// `1..=`[`MAX_ITERATIONS`], `train_sample` in `1..=`[`MAX_TRAIN_SAMPLE`].
    /// [`IvfIndex::build`] also checks `probes` against the lists built.
    pub fn validate(&self) -> Result<()> {
        for (field, v, lo, hi) in [
            ("ivf.lists", self.lists, 0, MAX_LISTS),
            ("ivf.probes", self.probes, 1, MAX_LISTS),
            ("ivf.iterations", self.iterations, 1, MAX_ITERATIONS),
            ("ivf.train_sample", self.train_sample, 1, MAX_TRAIN_SAMPLE),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(Error::invalid_config(field, format!("expected {lo}..={hi}, got {v}")));
            }
        }
        Ok(())
    }
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams { lists: 0, probes: 24, train_sample: 65_536, iterations: 8, seed: 42 }
    }
}

/// The IVF-Flat index.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    dim: usize,
    len: usize,
    probes: usize,
    /// `lists × dim` unit centroids.
    centroids: Vec<f32>,
    /// List `l` holds `rows[offsets[l]..offsets[l + 1]]`.
    offsets: Vec<u32>,
    rows: Vec<u32>,
    /// The vectors in list order, one byte per dimension.
    codes: Vec<u8>,
    /// Per dimension: the value of code 0 and the step per code.
    lo: Vec<f32>,
    step: Vec<f32>,
    embeddings: Arc<Embeddings>,
}

/// `Σ q_j · c_j` for byte codes, in eight independent lanes.
#[inline]
fn dot_u8(q: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (qc, cc) = (q.chunks_exact(8), c.chunks_exact(8));
    let (qr, cr) = (qc.remainder(), cc.remainder());
    for (x, y) in qc.zip(cc) {
        for i in 0..8 {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    let mut tail = 0.0;
    for (x, &y) in qr.iter().zip(cr) {
        tail += x * f32::from(y);
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

fn mix(x: u64) -> u64 {
    crate::ids::splitmix64(x)
}

/// The closest centroid to `x` (ties to the lower list).
fn nearest(centroids: &[f32], dim: usize, x: &[f32]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (l, c) in centroids.chunks_exact(dim).enumerate() {
        let s = dot(c, x);
        if s > best.1 {
            best = (l as u32, s);
        }
    }
    best.0
}

impl IvfIndex {
    /// Trains centroids on a sample and assigns every row.
    ///
    /// Errors: an empty matrix, a field outside [`IvfParams::validate`]'s
    /// bounds, or `probes` above the number of lists
    /// ([`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)).
    pub fn build(embeddings: Arc<Embeddings>, params: IvfParams) -> Result<IvfIndex> {
        params.validate()?;
        let (n, dim) = (embeddings.len(), embeddings.dim());
        if n == 0 {
            return Err(Error::new(crate::ErrorKind::EmptyCatalog { what: "ivf index" }));
        }
        let lists = if params.lists == 0 {
            ((2.0 * (n as f64).sqrt()) as usize).clamp(1, n)
        } else {
            params.lists.min(n)
        };
        if params.probes == 0 || params.probes > lists {
            return Err(Error::invalid_config(
                "ivf.probes",
                format!("expected 1..={lists}, got {}", params.probes),
            ));
        }
        let m = embeddings.as_slice();
        // A seeded sample without repeats: a random permutation's prefix.
        let sample_n = params.train_sample.clamp(lists, n.max(lists));
        let sample: Vec<u32> = if sample_n >= n {
            (0..n as u32).collect()
        } else {
            let mut keyed: Vec<(u64, u32)> =
                (0..n as u32).map(|r| (mix(params.seed ^ u64::from(r)), r)).collect();
            keyed.select_nth_unstable(sample_n - 1);
            let mut s: Vec<u32> = keyed[..sample_n].iter().map(|k| k.1).collect();
            s.sort_unstable();
            s
        };
        let row = |r: u32| &m[r as usize * dim..(r as usize + 1) * dim];
        // Seed the centroids with distinct sample rows in a seeded order,
        // then iterate.
        let mut order = sample.clone();
        order.sort_by_key(|&r| mix(params.seed.rotate_left(7) ^ u64::from(r)));
        let mut centroids: Vec<f32> = Vec::with_capacity(lists * dim);
        for &r in order.iter().cycle().take(lists) {
            centroids.extend_from_slice(row(r));
        }
        let mut assign = vec![0u32; sample.len()];
        for _ in 0..params.iterations {
            assign.par_iter_mut().zip(&sample).for_each(|(a, &r)| {
                *a = nearest(&centroids, dim, row(r));
            });
            let mut sums = vec![0.0f32; lists * dim];
            let mut counts = vec![0u32; lists];
            for (&a, &r) in assign.iter().zip(&sample) {
                counts[a as usize] += 1;
                for (s, &x) in sums[a as usize * dim..(a as usize + 1) * dim].iter_mut().zip(row(r))
                {
                    *s += x;
                }
            }
            for l in 0..lists {
                let s = &mut sums[l * dim..(l + 1) * dim];
                let norm = dot(s, s).sqrt();
                if counts[l] > 0 && norm > 1e-12 {
                    for (c, &x) in centroids[l * dim..(l + 1) * dim].iter_mut().zip(s.iter()) {
                        *c = x / norm;
                    }
                }
                // An empty list keeps its centroid (a sample point).
            }
        }
        // Assign every row, then lay the vectors out list by list.
        let all: Vec<u32> =
            (0..n).into_par_iter().map(|r| nearest(&centroids, dim, row(r as u32))).collect();
        let mut offsets = vec![0u32; lists + 1];
        for &a in &all {
            offsets[a as usize + 1] += 1;
        }
        for l in 0..lists {
            offsets[l + 1] += offsets[l];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; n];
        for (r, &a) in all.iter().enumerate() {
            rows[next[a as usize] as usize] = r as u32;
            next[a as usize] += 1;
        }
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for v in m.chunks_exact(dim) {
            for j in 0..dim {
                lo[j] = lo[j].min(v[j]);
                hi[j] = hi[j].max(v[j]);
            }
        }
        let step: Vec<f32> =
            lo.iter().zip(&hi).map(|(l, h)| ((h - l) / 255.0).max(1e-12)).collect();
        let mut codes = Vec::with_capacity(n * dim);
        for &r in &rows {
            for (j, &x) in row(r).iter().enumerate() {
                codes.push(((x - lo[j]) / step[j]).round().clamp(0.0, 255.0) as u8);
            }
        }
        Ok(IvfIndex {
            dim,
            len: n,
            probes: params.probes,
            centroids,
            offsets,
            rows,
            codes,
            lo,
            step,
            embeddings,
        })
    }

    /// Number of lists.
    pub fn lists(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Searches with `probes` lists instead of the built-in number.
    pub fn search_probes(
        &self,
        query: &[f32],
        k: usize,
        probes: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        with_unit_query(query, self.dim, k, |unit| {
            self.scan(unit, k.min(self.len), probes, filter, out)
        })
    }

    /// The body of [`search_probes`](Self::search_probes) for a checked unit
    /// query.
    fn scan(
        &self,
        query: &[f32],
        k: usize,
        probes: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) {
        let lists = self.lists();
        let probes = probes.clamp(1, lists);
        // The closest `probes` centroids.
        let mut near: Vec<Neighbor> = Vec::with_capacity(probes * 2);
        {
            let mut top = TopK::new(&mut near, probes);
            for (l, c) in self.centroids.chunks_exact(self.dim).enumerate() {
                top.push(ItemIdx(l as u32), dot(c, query));
            }
            top.finish();
        }
        // Approximate scores from the codes: q·x ≈ Σ q_j lo_j + Σ (q_j step_j) c_j.
        let bias: f32 = query.iter().zip(&self.lo).map(|(q, l)| q * l).sum();
        let qs: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        {
            let mut top = TopK::new(out, k.saturating_add(32).min(self.len));
            for l in &near {
                let li = l.row.index();
                let (a, b) = (self.offsets[li] as usize, self.offsets[li + 1] as usize);
                let codes = self.codes[a * self.dim..b * self.dim].chunks_exact(self.dim);
                for (&r, c) in self.rows[a..b].iter().zip(codes) {
                    let idx = ItemIdx(r);
                    if filter.is_none_or(|keep| keep(idx)) {
                        top.push(idx, bias + dot_u8(&qs, c));
                    }
                }
            }
            top.finish();
        }
        // Exact rescoring of the shortlist, then the best k.
        for n in out.iter_mut() {
            n.score = dot(self.embeddings.row(n.row), query);
        }
        crate::rank::kernels::top_k_in_place(out, k);
    }
}

impl VectorIndex for IvfIndex {
    fn id(&self) -> &'static str {
        "ivf"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embeddings_fingerprint(&self) -> Option<u64> {
        Some(self.embeddings.fingerprint())
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Probes `probes · √(k / 100)` lists, at least 4 and at most
    /// `probes`: a small k (item-to-item neighbours) needs fewer lists for
    /// the same recall than the k = 100 the default is tuned for.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        let k = k.min(self.len);
        let scaled = (self.probes as f64 * (k as f64 / 100.0).sqrt()).ceil() as usize;
        self.search_probes(query, k, scaled.clamp(4.min(self.probes), self.probes), filter, out)
    }
}

#[cfg(all(test, feature = "synth"))]
mod tests {
    use super::*;
    use crate::index::{ExactIndex, recall};
    use crate::synth::{SynthConfig, generate};

    #[test]
    fn ivf_recall_against_exact_and_all_probes_is_exact() {
        let world = generate(&SynthConfig::catalog_only(5_000, 16)).unwrap();
        let emb = world.catalog.shared_embeddings();
        let params = IvfParams { lists: 64, probes: 8, ..IvfParams::default() };
        let ivf = IvfIndex::build(Arc::clone(&emb), params).unwrap();
        let again = IvfIndex::build(Arc::clone(&emb), params).unwrap();
        assert_eq!(ivf.rows, again.rows, "deterministic build");
        let exact = ExactIndex::new(emb);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut total = 0.0;
        let queries: Vec<&[f32]> = world.interest_vectors().take(50).collect();
        for q in &queries {
            exact.search(q, 50, None, &mut a).unwrap();
            ivf.search(q, 50, None, &mut b).unwrap();
            total += recall(&b, &a);
            ivf.search_probes(q, 50, 64, None, &mut b).unwrap();
            assert_eq!(recall(&b, &a), 1.0);
            assert!((b[0].score - a[0].score).abs() < 1e-5);
        }
        let r = total / queries.len() as f64;
        assert!(r > 0.85, "recall@50 with 8 of 64 lists: {r}");
        let odd = |r: ItemIdx| r.0 % 2 == 1;
        ivf.search(queries[0], 20, Some(&odd), &mut b).unwrap();
        assert!(b.iter().all(|n| n.row.0 % 2 == 1));
        let bad = IvfParams { lists: 10, probes: 11, ..IvfParams::default() };
        assert!(IvfIndex::build(Arc::clone(&ivf_emb()), bad).is_err());
    }

    fn ivf_emb() -> Arc<Embeddings> {
        Arc::new(Embeddings::from_rows("t", 2, (0..40).map(|i| i as f32 + 1.0).collect()).unwrap())
    }
}
