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

use super::scan;
use super::{Neighbor, RowFilter, VectorIndex, check_successor, live_only, with_unit_query};
use crate::catalog::{Catalog, Embeddings, RowSet};
use crate::error::{Error, Result};
use crate::ids::ItemIdx;
use crate::kernels::{TopK, dot, kmeans, touch_row};
use rayon::prelude::*;
use std::sync::Arc;

/// IVF build and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfParams {
    /// Number of lists; 0 picks `2·√N` (at least 1). Default 0. More
    /// lists cost a longer build and more centroid dot products per query
    /// but fewer vectors per probe: on clustered vectors `4·√N` reached a
    /// recall at several times fewer scanned vectors (200,000 × 64 in
    /// 2,000 clusters: recall@100 0.98 at 14 of 1,789 probes against 60 of
    /// 894), while on near-uniform ones it gained nothing (BENCHMARKS.md,
    /// issue 27). Measure on your vectors.
    pub lists: usize,
    /// Lists scanned per query (1..=lists). Default 24.
    pub probes: usize,
    /// Rows sampled to train the centroids; 0 picks 256 per list, at most
    /// [`AUTO_TRAIN_SAMPLE_MAX`] (faiss' rule of thumb). Default 0. At
    /// 200,000 × 64 (2,000 clusters) 73 rows per list gave recall@100 0.932
    /// at 16 probes, 224 per list 0.953 (BENCHMARKS.md).
    pub train_sample: usize,
    /// k-means iterations. Default 12 (8 before: 0.953 → 0.957 at 16 probes
    /// on the set above; the assignment is a matrix product, so an
    /// iteration at 200,000 rows and 894 lists takes ~0.25 s on 2 cores).
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
/// The largest sample `train_sample = 0` picks (a million products, 2,000
/// lists, get 131 rows per list, not 256, to keep a rebuild in seconds).
pub const AUTO_TRAIN_SAMPLE_MAX: usize = 262_144;

impl IvfParams {
    /// Checks the fields against their bounds: `lists` in
    /// `0..=`[`MAX_LISTS`], `probes` in `1..=MAX_LISTS`, `iterations` in
    /// `1..=`[`MAX_ITERATIONS`], `train_sample` in `0..=`[`MAX_TRAIN_SAMPLE`].
    /// [`IvfIndex::build`] also checks `probes` against the lists built.
    pub fn validate(&self) -> Result<()> {
        for (field, v, lo, hi) in [
            ("ivf.lists", self.lists, 0, MAX_LISTS),
            ("ivf.probes", self.probes, 1, MAX_LISTS),
            ("ivf.iterations", self.iterations, 1, MAX_ITERATIONS),
            ("ivf.train_sample", self.train_sample, 0, MAX_TRAIN_SAMPLE),
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
        IvfParams { lists: 0, probes: 24, train_sample: 0, iterations: 12, seed: 42 }
    }
}

/// The IVF-Flat index.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    dim: usize,
    len: usize,
    probes: usize,
    /// `lists × dim` unit centroids.
    centroids: Arc<[f32]>,
    /// The lists, each shared copy-on-write between index versions.
    lists: Vec<Arc<IvfList>>,
    /// Row → its list.
    assign: Arc<Vec<u32>>,
    /// Per dimension: the value of code 0 and the step per code.
    lo: Arc<[f32]>,
    step: Arc<[f32]>,
    embeddings: Arc<Embeddings>,
    /// Delisted rows, never returned.
    dead: RowSet,
}

/// One inverted list: its rows and their codes, one byte per dimension.
#[derive(Debug, Clone, Default)]
pub(crate) struct IvfList {
    pub(crate) rows: Vec<u32>,
    pub(crate) codes: Vec<u8>,
}

/// The byte code of `x` on a per-dimension grid (clamped to the grid).
fn encode(x: &[f32], lo: &[f32], step: &[f32], out: &mut Vec<u8>) {
    for ((&x, &l), &s) in x.iter().zip(lo).zip(step) {
        out.push(((x - l) / s).round().clamp(0.0, 255.0) as u8);
    }
}

/// The rows k-means trains on: a seeded sample without repeats (a random
/// permutation's prefix) of `train_sample` rows, or 256 per list up to
/// [`AUTO_TRAIN_SAMPLE_MAX`], sorted.
fn train_sample(n: usize, lists: usize, params: &IvfParams) -> Vec<u32> {
    let wanted = match params.train_sample {
        0 => lists.saturating_mul(256).min(AUTO_TRAIN_SAMPLE_MAX),
        s => s,
    };
    let sample_n = wanted.clamp(lists, n.max(lists));
    if sample_n >= n {
        return (0..n as u32).collect();
    }
    let mut keyed: Vec<(u64, u32)> =
        (0..n as u32).map(|r| (mix(params.seed ^ u64::from(r)), r)).collect();
    keyed.select_nth_unstable(sample_n - 1);
    let mut s: Vec<u32> = keyed[..sample_n].iter().map(|k| k.1).collect();
    s.sort_unstable();
    s
}

/// The 8-bit grid per dimension: the lowest value and the step to the
/// highest in 255 steps.
fn quantizer_grid(m: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for v in m.chunks_exact(dim) {
        for j in 0..dim {
            lo[j] = lo[j].min(v[j]);
            hi[j] = hi[j].max(v[j]);
        }
    }
    let step = lo.iter().zip(&hi).map(|(l, h)| ((h - l) / 255.0).max(1e-12)).collect();
    (lo, step)
}

/// The lists: each row of `m` under its list `all[row]`, in row order, with
/// its 8-bit codes.
fn lay_out(
    all: &[u32],
    lists: usize,
    (m, dim): (&[f32], usize),
    lo: &[f32],
    step: &[f32],
) -> Vec<Arc<IvfList>> {
    let mut offsets = vec![0u32; lists + 1];
    for &a in all {
        offsets[a as usize + 1] += 1;
    }
    for l in 0..lists {
        offsets[l + 1] += offsets[l];
    }
    let mut next = offsets.clone();
    let mut rows = vec![0u32; all.len()];
    for (r, &a) in all.iter().enumerate() {
        rows[next[a as usize] as usize] = r as u32;
        next[a as usize] += 1;
    }
    (0..lists)
        .into_par_iter()
        .map(|l| {
            let rows = rows[offsets[l] as usize..offsets[l + 1] as usize].to_vec();
            let mut codes = Vec::with_capacity(rows.len() * dim);
            for &r in &rows {
                encode(&m[r as usize * dim..(r as usize + 1) * dim], lo, step, &mut codes);
            }
            Arc::new(IvfList { rows, codes })
        })
        .collect()
}

fn mix(x: u64) -> u64 {
    crate::ids::splitmix64(x)
}

impl IvfIndex {
    /// Trains centroids on a sample and assigns every row.
    ///
    /// Errors: an empty matrix, a field outside [`IvfParams::validate`]'s
    /// bounds, or `probes` above the number of lists
    /// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn build(embeddings: Arc<Embeddings>, params: IvfParams) -> Result<IvfIndex> {
        params.validate()?;
        let (n, dim) = (embeddings.len(), embeddings.dim());
        if n == 0 {
            return Err(Error::new(crate::error::ErrorKind::EmptyCatalog { what: "ivf index" }));
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
        let sample = train_sample(n, lists, &params);
        let row = |r: u32| &m[r as usize * dim..(r as usize + 1) * dim];
        // Seed the centroids with distinct sample rows in a seeded order,
        // then iterate.
        let mut order = sample.clone();
        order.sort_by_key(|&r| mix(params.seed.rotate_left(7) ^ u64::from(r)));
        let mut centroids: Vec<f32> = Vec::with_capacity(lists * dim);
        for &r in order.iter().cycle().take(lists) {
            centroids.extend_from_slice(row(r));
        }
        // An empty list keeps its centroid (a sample point).
        let points = (m, dim);
        let (its, blocked) = (params.iterations, kmeans::Assign::Blocked);
        kmeans::spherical_kmeans(points, &sample, None, &mut centroids, its, blocked);
        // Assign every row, then lay the vectors out list by list.
        let every: Vec<u32> = (0..n as u32).collect();
        let all = kmeans::assign_blocked(&centroids, dim, m, &every);
        let (lo, step) = quantizer_grid(m, dim);
        let lists = lay_out(&all, lists, (m, dim), &lo, &step);
        Ok(IvfIndex {
            dim,
            len: n,
            probes: params.probes,
            centroids: centroids.into(),
            lists,
            assign: Arc::new(all),
            lo: lo.into(),
            step: step.into(),
            embeddings,
            dead: RowSet::default(),
        })
    }

    /// Number of lists.
    pub fn lists(&self) -> usize {
        self.lists.len()
    }

    /// The catalog rows in list `list`, in list order (`None`: no such
    /// list). For inspection: list balance, or checking an updated index
    /// against one rebuilt under the same centroids.
    pub fn list_rows(&self, list: usize) -> Option<&[u32]> {
        self.lists.get(list).map(|l| &l.rows[..])
    }

    /// The 8-bit codes of list `list`'s rows, `dim` per row, in the order
    /// of [`list_rows`](Self::list_rows) (`None`: no such list).
    pub fn list_codes(&self, list: usize) -> Option<&[u8]> {
        self.lists.get(list).map(|l| &l.codes[..])
    }

    /// The parts a snapshot saves.
    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(&self) -> (usize, &[f32], &[Arc<IvfList>], &[f32], &[f32]) {
        (self.probes, &self.centroids, &self.lists, &self.lo, &self.step)
    }

    /// Reassembles an index saved by a snapshot over `catalog`.
    ///
    /// Errors: parts that do not fit the catalog (a row out of range or in
    /// two lists, codes of the wrong length, a bad probe count).
    pub(crate) fn from_parts(
        catalog: &Catalog,
        probes: usize,
        centroids: Vec<f32>,
        lists: Vec<IvfList>,
        lo: Vec<f32>,
        step: Vec<f32>,
    ) -> Result<IvfIndex> {
        let (n, dim) = (catalog.len(), catalog.dim());
        let bad = |reason: String| Error::invalid_value("ivf index", "snapshot", reason);
        if lists.is_empty() || centroids.len() != lists.len() * dim {
            return Err(bad(format!(
                "{} centroid values for {} lists",
                centroids.len(),
                lists.len()
            )));
        }
        if lo.len() != dim || step.len() != dim || !(1..=lists.len()).contains(&probes) {
            return Err(bad("quantizer or probes do not fit the dimension".into()));
        }
        let mut assign = vec![u32::MAX; n];
        for (l, list) in lists.iter().enumerate() {
            if list.codes.len() != list.rows.len() * dim {
                return Err(bad(format!("list {l} has codes of the wrong length")));
            }
            for &r in &list.rows {
                match assign.get_mut(r as usize) {
                    Some(a) if *a == u32::MAX => *a = l as u32,
                    _ => return Err(bad(format!("row {r} is out of range or in two lists"))),
                }
            }
        }
        if assign.contains(&u32::MAX) {
            return Err(bad("a row is in no list".into()));
        }
        Ok(IvfIndex {
            dim,
            len: n,
            probes,
            centroids: centroids.into(),
            lists: lists.into_iter().map(Arc::new).collect(),
            assign: Arc::new(assign),
            lo: lo.into(),
            step: step.into(),
            embeddings: catalog.shared_embeddings(),
            dead: catalog.delisted_set().clone(),
        })
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
    /// query, with this thread's scratch buffers (a fresh set if they are
    /// in use further up this thread's stack).
    fn scan(
        &self,
        query: &[f32],
        k: usize,
        probes: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) {
        crate::kernels::with_scratch(&SCAN, |s| self.scan_with(s, query, k, probes, filter, out))
    }

    fn scan_with(
        &self,
        scratch: &mut ScanScratch,
        query: &[f32],
        k: usize,
        probes: usize,
        filter: Option<RowFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) {
        let lists = self.lists();
        let probes = probes.clamp(1, lists);
        let keep = live_only(&self.dead, filter);
        let ScanScratch { near, qs, qi, scores } = scratch;
        nearest_centroids(&self.centroids, self.dim, query, probes, near);
        // Approximate scores from the codes: q·x ≈ Σ q_j lo_j + Σ (q_j step_j) c_j.
        let bias: f32 = query.iter().zip(self.lo.iter()).map(|(q, l)| q * l).sum();
        // The step-weighted query in i16 (relative error ≤ 2⁻¹⁶ of its largest
        // entry), scored against whole lists at a time by `scan::scores`.
        qs.clear();
        qs.extend(query.iter().zip(self.step.iter()).map(|(q, s)| q * s));
        let max = qs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { scan::query_scale_max(self.dim) / max } else { 1.0 };
        qi.clear();
        qi.extend(qs.iter().map(|v| (v * scale).round() as i16));
        let inv = 1.0 / scale;
        {
            let mut top = TopK::new(out, k.saturating_add(32).min(self.len));
            for l in near.iter() {
                let list = &self.lists[l.row.index()];
                scan::scores(qi, &list.codes, scores);
                for (&r, &s) in list.rows.iter().zip(scores.iter()) {
                    let idx = ItemIdx(r);
                    if keep.as_ref().is_none_or(|keep| keep(idx)) {
                        top.push(idx, bias + s as f32 * inv);
                    }
                }
            }
            top.finish();
        }
        // Exact rescoring of the shortlist, then the best k; its rows are
        // scattered over the matrix, so their lines are fetched first, all
        // at once (36% of the search's own time went to these misses).
        let matrix = self.embeddings.as_slice();
        let touched: f32 = out.iter().map(|n| touch_row(matrix, self.dim, n.row)).sum();
        std::hint::black_box(touched);
        for n in out.iter_mut() {
            n.score = dot(self.embeddings.row(n.row), query);
        }
        crate::kernels::top_k_in_place(out, k);
    }
}

crate::kernels::avx2_dispatch! {
    /// The `probes` unit centroids (`dim` values each) closest to `query`,
    /// best first, into `near`.
    fn nearest_centroids(
        centroids: &[f32],
        dim: usize,
        query: &[f32],
        probes: usize,
        near: &mut Vec<Neighbor>,
    ) => nearest_pass
}

/// [`nearest_centroids`]' loop, compiled once per instruction set.
#[inline(always)]
fn nearest_pass(
    centroids: &[f32],
    dim: usize,
    query: &[f32],
    probes: usize,
    near: &mut Vec<Neighbor>,
    simd: impl crate::kernels::Simd,
) {
    let mut top = TopK::new(near, probes);
    for (l, c) in centroids.chunks_exact(dim).enumerate() {
        top.push(ItemIdx(l as u32), simd.dot(c, query));
    }
    top.finish();
}

/// One thread's buffers for [`IvfIndex`] searches: the centroid shortlist,
/// the step-weighted query in f32 and i16, one list's approximate scores.
/// Reused, so a search allocates nothing once a thread has run one as
/// large (`examples/alloc_count.rs`).
#[derive(Debug, Default)]
struct ScanScratch {
    near: Vec<Neighbor>,
    qs: Vec<f32>,
    qi: Vec<i16>,
    scores: Vec<i32>,
}

thread_local! {
    static SCAN: std::cell::RefCell<ScanScratch> = std::cell::RefCell::new(ScanScratch::default());
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

    fn as_ivf(&self) -> Option<&IvfIndex> {
        Some(self)
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

    /// Moves each changed row to the list of its nearest centroid (the
    /// centroids and the quantizer grid stay; a value off the grid is
    /// clamped, and rescoring is exact anyway). Only the touched lists are
    /// copied; the rest are shared with `self`.
    fn updated(&self, catalog: &Catalog, changed: &[ItemIdx]) -> Result<Arc<dyn VectorIndex>> {
        check_successor(self, catalog)?;
        let emb = catalog.embeddings();
        let mut lists = self.lists.clone();
        let mut assign = (*self.assign).clone();
        assign.resize(catalog.len(), u32::MAX);
        // Each changed row once, in the order given (a row named twice is
        // placed once, by its final vector).
        let mut moving = vec![false; catalog.len()];
        let mut rows = Vec::with_capacity(changed.len());
        for &row in changed {
            let Some(m) = moving.get_mut(row.index()) else {
                return Err(Error::invalid_value(
                    "index update",
                    format_args!("row {}", row.0),
                    format!("a changed row outside the catalog of {}", catalog.len()),
                ));
            };
            if !std::mem::replace(m, true) {
                rows.push(row);
            }
        }
        // Out of their old lists in one pass over each touched list (no
        // search of a list per changed row).
        let mut touched: Vec<u32> =
            rows.iter().map(|r| assign[r.index()]).filter(|&l| l != u32::MAX).collect();
        touched.sort_unstable();
        touched.dedup();
        for &l in &touched {
            let list = Arc::make_mut(&mut lists[l as usize]);
            let (mut keep, dim) = (0, self.dim);
            for i in 0..list.rows.len() {
                let r = list.rows[i];
                if !moving[r as usize] {
                    list.rows[keep] = r;
                    list.codes.copy_within(i * dim..(i + 1) * dim, keep * dim);
                    keep += 1;
                }
            }
            list.rows.truncate(keep);
            list.codes.truncate(keep * dim);
        }
        for row in rows {
            let v = emb.row(row);
            let l = kmeans::nearest(&self.centroids, self.dim, v);
            assign[row.index()] = l;
            let list = Arc::make_mut(&mut lists[l as usize]);
            list.rows.push(row.0);
            encode(v, &self.lo, &self.step, &mut list.codes);
        }
        if let Some(r) = assign.iter().position(|&a| a == u32::MAX) {
            return Err(Error::invalid_value(
                "index update",
                format_args!("row {r}"),
                "a new row was not in the changed rows",
            ));
        }
        Ok(Arc::new(IvfIndex {
            len: catalog.len(),
            lists,
            assign: Arc::new(assign),
            embeddings: catalog.shared_embeddings(),
            dead: catalog.delisted_set().clone(),
            ..self.clone()
        }))
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
        assert_eq!(*ivf.assign, *again.assign, "deterministic build");
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

    /// The default parameters (2·√N lists, 24 probes, 256 training rows per
    /// list) against exact search at k = 100.
    #[test]
    fn default_parameters_keep_recall_at_100() {
        let world = generate(&SynthConfig::catalog_only(20_000, 32)).unwrap();
        let emb = world.catalog.shared_embeddings();
        let ivf = IvfIndex::build(Arc::clone(&emb), IvfParams::default()).unwrap();
        let exact = ExactIndex::new(emb);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let queries: Vec<&[f32]> = world.interest_vectors().take(100).collect();
        let mut total = 0.0;
        for q in &queries {
            exact.search(q, 100, None, &mut a).unwrap();
            ivf.search(q, 100, None, &mut b).unwrap();
            total += recall(&b, &a);
        }
        let r = total / queries.len() as f64;
        assert!(r >= 0.95, "recall@100 at the default probes: {r}");
    }

    fn ivf_emb() -> Arc<Embeddings> {
        Arc::new(Embeddings::from_rows("t", 2, (0..40).map(|i| i as f32 + 1.0).collect()).unwrap())
    }
}
