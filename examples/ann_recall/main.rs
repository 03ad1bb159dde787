//! Recall and speed of `HnswIndex` and `IvfIndex` against `ExactIndex` on a
//! synthetic catalog, or on the ANN peers' files.
//!
//! ```text
//! cargo run --release --example ann_recall -- [--n 20000] [--dim 64] [--queries 500]
//!     [--ef 16,32,64,128,256] [--m 16] [--ef-construction 200] [--seed 42]
//!     [--probes 8,16,24,32,64]   (--ef none skips HNSW, whose build is slow at scale)
//! cargo run --release --example ann_recall -- --items items.npy --queries queries.npy
//!     --truth truth.npy [--probes ...] [--ef ...]
//!     [--ivf-lists 0] [--ivf-iterations 8] [--ivf-train-sample 65536]
//! ```
//!
//! With `--items/--queries/--truth` (the `.npy` files
//! `../shared/bench/ann-peers/gen.py` writes: float32 items and queries,
//! int64 exact top-100 row ids) it measures every index on them and prints
//! one JSON line per index and setting: `index`, `setting`, `build_s`,
//! `bytes_per_vector`, `recall_at_10`, `recall_at_100`, `qps` (one thread,
//! k = 100, one query per call, after a warm-up pass), to set beside
//! `peers.py`'s hnswlib and faiss figures on the same vectors.
//!
//! Queries are the synthetic users' interest vectors (what the feed really
//! searches with). Both indexes answer the same queries one at a time on one
//! thread. The tables give recall@10, recall@100 and queries/s per `ef` and
//! per number of IVF probes; the last line is one JSON object for the best
//! settings: the fastest with recall@100 >= 0.95, or else the most accurate.

use omnifeed::index::{
    ExactIndex, HnswIndex, HnswParams, IvfIndex, IvfParams, Neighbor, VectorIndex, recall,
};
use omnifeed::synth::{SynthConfig, generate};
use std::path::PathBuf;
use std::time::Instant;

mod peers;

struct Args {
    items: Option<PathBuf>,
    queries_file: Option<PathBuf>,
    truth: Option<PathBuf>,
    ivf: IvfParams,
    n: usize,
    dim: usize,
    queries: usize,
    efs: Vec<usize>,
    probes: Vec<usize>,
    m: usize,
    ef_construction: usize,
    seed: u64,
}

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "ann_recall", about = "HNSW and IVF recall and speed against exact search")]
struct Cli {
    /// The peers' items (.npy); with --queries FILE.npy and --truth
    /// [default: none: a synthetic catalog].
    #[arg(long, value_name = "FILE.npy", requires = "truth")]
    items: Option<PathBuf>,
    /// The peers' true neighbours (.npy) [default: none].
    #[arg(long, value_name = "FILE.npy", requires = "items")]
    truth: Option<PathBuf>,
    /// Queries: a count of synthetic users' interest vectors, or the
    /// peers' queries (.npy).
    #[arg(long, value_name = "N|FILE.npy", default_value = "500")]
    queries: String,
    /// Synthetic catalog size.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Synthetic embedding dimension.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// HNSW ef values to sweep, comma-separated, or `none` [default with
    /// the peers' files: 50,100,200,400].
    #[arg(long, default_value = "16,32,64,128,256")]
    ef: String,
    /// IVF probes to sweep, comma-separated [default with the peers'
    /// files: a finer sweep].
    #[arg(long, value_delimiter = ',', default_value = "8,16,24,32,64")]
    probes: Vec<usize>,
    /// HNSW max connections.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW ef at construction.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// The synthetic world's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// IVF lists (0: 2·sqrt(n)).
    #[arg(long, default_value_t = 0)]
    ivf_lists: usize,
    /// IVF k-means iterations.
    #[arg(long, default_value_t = 12)]
    ivf_iterations: usize,
    /// IVF k-means training sample (0: 256 per list).
    #[arg(long, default_value_t = 0)]
    ivf_train_sample: usize,
}

fn parse_args() -> Result<Args, String> {
    let c = <Cli as clap::Parser>::parse();
    let num = |flag: &str, v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
    let (queries, queries_file) = if c.queries.ends_with(".npy") {
        (500, Some(PathBuf::from(&c.queries)))
    } else {
        (num("--queries", &c.queries)?, None)
    };
    let efs = match c.ef.as_str() {
        "none" => Vec::new(),
        v => v.split(',').map(|x| num("--ef", x)).collect::<Result<_, _>>()?,
    };
    let ivf = IvfParams {
        lists: c.ivf_lists,
        iterations: c.ivf_iterations,
        train_sample: c.ivf_train_sample,
        ..IvfParams::default()
    };
    Ok(Args {
        items: c.items,
        queries_file,
        truth: c.truth,
        ivf,
        n: c.n,
        dim: c.dim,
        queries,
        efs,
        probes: c.probes,
        m: c.m,
        ef_construction: c.ef_construction,
        seed: c.seed,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| format!("ann_recall: {e}"))?;
    match (&args.items, &args.queries_file, &args.truth) {
        (Some(items), Some(queries), Some(truth)) => {
            let efs: &[usize] =
                if args.efs == [16, 32, 64, 128, 256] { &[50, 100, 200, 400] } else { &args.efs };
            let probes: &[usize] = if args.probes == [8, 16, 24, 32, 64] {
                &[8, 12, 16, 24, 32, 48, 64, 96, 128]
            } else {
                &args.probes
            };
            return peers::run(&peers::PeerArgs {
                items,
                queries,
                truth,
                efs,
                probes,
                m: args.m,
                ef_construction: args.ef_construction,
                ivf: args.ivf,
            });
        }
        (None, None, None) => {}
        _ => return Err("ann_recall: --items, --queries (.npy) and --truth go together".into()),
    }
    let cfg = SynthConfig { seed: args.seed, ..SynthConfig::catalog_only(args.n, args.dim) };
    let world = generate(&cfg)?;
    let queries: Vec<&[f32]> = world.interest_vectors().take(args.queries).collect();
    let emb = world.catalog.shared_embeddings();
    println!("catalog: n = {}, dim = {}, {} queries, k = 100", args.n, args.dim, queries.len());

    let exact = ExactIndex::new(emb.clone());
    let mut truth: Vec<Vec<Neighbor>> = Vec::with_capacity(queries.len());
    let t = Instant::now();
    for q in &queries {
        let mut out = Vec::new();
        exact.search(q, 100, None, &mut out)?;
        truth.push(out);
    }
    let qps_exact = queries.len() as f64 / t.elapsed().as_secs_f64();

    let params = HnswParams {
        max_connections: args.m,
        ef_construction: args.ef_construction,
        ..Default::default()
    };
    println!("exact: {qps_exact:.0} queries/s");
    let t = Instant::now();
    let hnsw = if args.efs.is_empty() { None } else { Some(HnswIndex::build(emb, params)?) };
    let build_s = t.elapsed().as_secs_f64();
    if hnsw.is_some() {
        println!(
            "hnsw: M = {}, efConstruction = {}, built in {build_s:.2} s",
            args.m, args.ef_construction
        );
    }
    println!(
        "{:>6} {:>10} {:>11} {:>12} {:>8}",
        "ef", "recall@10", "recall@100", "queries/s", "speedup"
    );

    let mut rows = Vec::new();
    let mut out = Vec::new();
    for &ef in &args.efs {
        let (mut r10, mut r100) = (0.0, 0.0);
        let t = Instant::now();
        for (q, tr) in queries.iter().zip(&truth) {
            if let Some(h) = &hnsw {
                h.search_ef(q, 100, ef, None, &mut out)?;
            }
            r10 += recall(&out[..out.len().min(10)], &tr[..10.min(tr.len())]);
            r100 += recall(&out, tr);
        }
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        let nq = queries.len() as f64;
        let (r10, r100) = (r10 / nq, r100 / nq);
        println!("{ef:>6} {r10:>10.4} {r100:>11.4} {qps:>12.0} {:>7.1}x", qps / qps_exact);
        rows.push((ef, r10, r100, qps));
    }
    // IVF over the same queries, per number of probed lists.
    let t = Instant::now();
    let ivf = IvfIndex::build(world.catalog.shared_embeddings(), IvfParams::default())?;
    let ivf_build_s = t.elapsed().as_secs_f64();
    println!("ivf: {} lists, built in {ivf_build_s:.2} s", ivf.lists());
    println!(
        "{:>6} {:>10} {:>11} {:>12} {:>8}",
        "probes", "recall@10", "recall@100", "queries/s", "speedup"
    );
    let mut ivf_rows = Vec::new();
    for &probes in &args.probes {
        let (mut r10, mut r100) = (0.0, 0.0);
        let t = Instant::now();
        for (q, tr) in queries.iter().zip(&truth) {
            ivf.search_probes(q, 100, probes, None, &mut out)?;
            r10 += recall(&out[..out.len().min(10)], &tr[..10.min(tr.len())]);
            r100 += recall(&out, tr);
        }
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        let nq = queries.len() as f64;
        let (r10, r100) = (r10 / nq, r100 / nq);
        println!("{probes:>6} {r10:>10.4} {r100:>11.4} {qps:>12.0} {:>7.1}x", qps / qps_exact);
        ivf_rows.push((probes, r10, r100, qps));
    }
    let ivf_best = ivf_rows
        .iter()
        .filter(|r| r.2 >= 0.95)
        .min_by_key(|r| r.0)
        .or_else(|| ivf_rows.iter().max_by(|a, b| a.2.total_cmp(&b.2)))
        .ok_or("no probes given")?;

    let best = rows
        .iter()
        .filter(|r| r.2 >= 0.95)
        .max_by(|a, b| a.3.total_cmp(&b.3))
        .or_else(|| rows.iter().max_by(|a, b| a.2.total_cmp(&b.2)))
        .copied()
        .unwrap_or((0, f64::NAN, f64::NAN, f64::NAN));
    let json = serde_json::json!({
        "n": args.n,
        "dim": args.dim,
        "ef": best.0,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "queries": queries.len(),
        "recall_at_10": best.1,
        "recall_at_100": best.2,
        "qps_hnsw": best.3,
        "qps_exact": qps_exact,
        "build_s": build_s,
        "ivf_lists": ivf.lists(),
        "ivf_probes": ivf_best.0,
        "ivf_recall_at_100": ivf_best.2,
        "qps_ivf": ivf_best.3,
        "ivf_build_s": ivf_build_s,
    });
    println!("{json}");
    Ok(())
}
