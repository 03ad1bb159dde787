//! `ann_recall --items/--queries/--truth`: the peers' files (`gen.py` in
//! `../shared/bench/ann-peers`), every index and a sweep of its search
//! setting, one JSON line each.

use omnifeed::catalog::Embeddings;
use omnifeed::index::{
    ExactIndex, HnswIndex, HnswParams, IvfIndex, IvfParams, Neighbor, VectorIndex,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The files and the sweeps.
pub struct PeerArgs<'a> {
    pub items: &'a Path,
    pub queries: &'a Path,
    pub truth: &'a Path,
    pub efs: &'a [usize],
    pub probes: &'a [usize],
    pub m: usize,
    pub ef_construction: usize,
    /// The IVF build parameters.
    pub ivf: IvfParams,
}

/// What one index at one setting did.
struct Measured {
    recall_at_10: f64,
    recall_at_100: f64,
    qps: f64,
}

/// Share of `truth[..k]` found in `got[..k]`.
fn recall_ids(got: &[Neighbor], truth: &[i64], k: usize) -> f64 {
    let k = k.min(truth.len());
    if k == 0 {
        return 1.0;
    }
    let mut want: Vec<i64> = truth[..k].to_vec();
    want.sort_unstable();
    let hits =
        got.iter().take(k).filter(|n| want.binary_search(&i64::from(n.row.0)).is_ok()).count();
    hits as f64 / k as f64
}

/// Runs `search` over every query once to warm up, then times three more
/// passes and keeps the median, as `peers.py` does (one query per call,
/// this thread).
fn measure(
    queries: &[f32],
    dim: usize,
    truth: &[i64],
    mut search: impl FnMut(&[f32], &mut Vec<Neighbor>) -> omnifeed::Result<()>,
) -> omnifeed::Result<Measured> {
    let mut out = Vec::with_capacity(200);
    for q in queries.chunks_exact(dim) {
        search(q, &mut out)?;
    }
    let nq = queries.len() / dim;
    let (mut r10, mut r100) = (0.0, 0.0);
    for (q, tr) in queries.chunks_exact(dim).zip(truth.chunks_exact(100)) {
        search(q, &mut out)?;
        r10 += recall_ids(&out, tr, 10);
        r100 += recall_ids(&out, tr, 100);
    }
    let mut times = Vec::with_capacity(3);
    for _ in 0..3 {
        let t = Instant::now();
        for q in queries.chunks_exact(dim) {
            search(q, &mut out)?;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let secs = times[1];
    Ok(Measured {
        recall_at_10: r10 / nq as f64,
        recall_at_100: r100 / nq as f64,
        qps: nq as f64 / secs,
    })
}

fn emit(index: &str, setting: String, build_s: f64, bytes_per_vector: f64, m: &Measured) {
    println!(
        "{}",
        serde_json::json!({
            "index": index,
            "setting": setting,
            "build_s": (build_s * 1000.0).round() / 1000.0,
            "bytes_per_vector": bytes_per_vector,
            "recall_at_10": (m.recall_at_10 * 10_000.0).round() / 10_000.0,
            "recall_at_100": (m.recall_at_100 * 10_000.0).round() / 10_000.0,
            "qps": m.qps.round(),
        })
    );
}

/// Reads the three files and measures exact, IVF (per probes) and HNSW (per
/// ef) search on them.
pub fn run(a: &PeerArgs<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let (n, dim, items) = omnifeed::load::read_npy_matrix(a.items)?;
    let (nq, qdim, queries) = omnifeed::load::read_npy_matrix(a.queries)?;
    if qdim != dim {
        return Err(format!("queries have dimension {qdim}, items {dim}").into());
    }
    let truth: ndarray::Array2<i64> = ndarray_npy::read_npy(a.truth)
        .map_err(|e| format!("{}: {e} (expected an int64 matrix)", a.truth.display()))?;
    if truth.nrows() != nq || truth.ncols() < 100 {
        return Err(format!("truth is {:?}, expected {nq} × 100", truth.shape()).into());
    }
    let truth: Vec<i64> = truth
        .rows()
        .into_iter()
        .flat_map(|r| r.iter().take(100).copied().collect::<Vec<_>>())
        .collect();
    eprintln!("peers: {n} items × {dim}, {nq} queries, k = 100, one thread, one query per call");
    let emb = Arc::new(Embeddings::from_rows("items", dim, items)?);
    let f32_bytes = (4 * dim) as f64;

    let t = Instant::now();
    let exact = ExactIndex::new(Arc::clone(&emb));
    let build = t.elapsed().as_secs_f64();
    let m = measure(&queries, dim, &truth, |q, out| exact.search(q, 100, None, out))?;
    emit("exact", "-".into(), build, f32_bytes, &m);

    let t = Instant::now();
    let ivf = IvfIndex::build(Arc::clone(&emb), a.ivf)?;
    let build = t.elapsed().as_secs_f64();
    // Codes (one byte per dimension) and row ids, beside the f32 rows the
    // rescoring reads.
    let ivf_bytes = f32_bytes + dim as f64 + 4.0;
    for &p in a.probes {
        let m = measure(&queries, dim, &truth, |q, out| ivf.search_probes(q, 100, p, None, out))?;
        emit("ivf", format!("lists={} probes={p}", ivf.lists()), build, ivf_bytes, &m);
    }

    if !a.efs.is_empty() {
        let params = HnswParams {
            max_connections: a.m,
            ef_construction: a.ef_construction,
            ..Default::default()
        };
        let t = Instant::now();
        let hnsw = HnswIndex::build(Arc::clone(&emb), params)?;
        let build = t.elapsed().as_secs_f64();
        // Layer-0 links of `2M` u32 ids, beside the f32 rows.
        let hnsw_bytes = f32_bytes + (8 * a.m) as f64;
        for &ef in a.efs {
            let m = measure(&queries, dim, &truth, |q, out| hnsw.search_ef(q, 100, ef, None, out))?;
            emit("hnsw_rs", format!("m={} ef={ef}", a.m), build, hnsw_bytes, &m);
        }
    }
    Ok(())
}
