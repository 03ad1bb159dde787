//! People find goods, on real queries: omnifeed's Search surface on a
//! product-search judgment set (the Home Depot set in
//! `../shared/data/home-depot-search/`, whose README gives the protocols).
//!
//! ```text
//! cargo run --release --example search_eval -- [--products P] [--queries Q] [--run OUT]
//!     [--judgments J] [--rerank J --rerank-run OUT2] [--json OUT.json] [--dim 64] [--limit N]
//! ```
//!
//! It builds a catalogue from the products file (`product_uid,title`), asks
//! every query (`query_id<TAB>query`, or the queries of `--judgments`) on
//! the Search surface with k = 1,000, and writes the run file
//! (`query_id<TAB>product_uid<TAB>rank`). With `--judgments` it scores the
//! run on the retrieve protocol (NDCG@10 on the condensed list, Recall@100
//! of the products graded 2.5 and above) beside its ablations: text only,
//! embedding only, no typo tolerance, no stemming, and the title index
//! alone (BM25 with the full query plan, and plain stemmed BM25). With
//! `--rerank` it also orders each query's judged products as Search would
//! and reports the mean per-query NDCG@10 difference over stemmed BM25 with
//! its standard error.
//!
//! The query and product vectors come from a **stand-in text encoder**
//! fitted on the catalogue's own titles: TF-IDF over hashed character
//! 3-to-5-grams, reduced to `--dim` components by a randomized truncated
//! SVD. It exists so that hybrid search is exercised on real text; a
//! service brings its own encoder's vectors instead.
//!
//! Without the data folder it prints why and exits successfully.

use clap::Parser;
use omnifeed::index::{
    Analyzer, ExactIndex, LexicalIndex, QueryConfig, QueryPlan, TextAnalyzer, TextConfig,
};
use omnifeed::{
    CatalogBuilder, CategoryId, FeedRequest, Merchant, MerchantId, MerchantStatus, Product,
    ProductId, Recommender, RecommenderConfig, SearchQuery, ServingState, SignalConfig, Signals,
    Surface, UserId,
};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DATA: &str = "../shared/data/home-depot-search";

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "search_eval", about = "Search on real product-search judgments")]
struct Cli {
    /// The catalogue: `product_uid,title` [default: ../shared/data/home-depot-search/products.csv].
    #[arg(long, value_name = "P")]
    products: Option<PathBuf>,
    /// The queries, `query_id<TAB>query` [default: none: the queries of --judgments].
    #[arg(long, value_name = "Q")]
    queries: Option<PathBuf>,
    /// Where to write the retrieve run.
    #[arg(long, value_name = "OUT", default_value = "target/search_run.tsv")]
    run: PathBuf,
    /// Judgments `query_id,query,product_uid,relevance` to score the run
    /// with [default: none].
    #[arg(long, value_name = "J")]
    judgments: Option<PathBuf>,
    /// Judgments whose products to order per query (rerank protocol) [default: none].
    #[arg(long, value_name = "J")]
    rerank: Option<PathBuf>,
    /// Where to write the rerank run [default: none].
    #[arg(long, value_name = "OUT2", requires = "rerank")]
    rerank_run: Option<PathBuf>,
    /// Write the scores as JSON here [default: stdout only].
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// The stand-in encoder's dimension (64 is the issue's setup; 256
    /// keeps more of the n-gram space).
    #[arg(long, default_value_t = 256)]
    dim: usize,
    /// Results per query.
    #[arg(long, default_value_t = 1000)]
    k: usize,
    /// The ablations to score beside the run, comma-separated [default:
    /// all: text_only, embedding_only, no_typos, no_stemming, bm25_plan,
    /// bm25_stemmed].
    #[arg(long, value_name = "LIST")]
    variants: Option<String>,
    /// Write every scored variant's run here as `<variant>.tsv` [default: none].
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    /// Fit the relevance weights (text match, coverage, cosine) listwise on
    /// --judgments, 5-fold cross-validated by query, and write them as a
    /// recommender config here [default: none].
    #[arg(long, value_name = "OUT.toml", requires = "judgments")]
    fit_relevance: Option<PathBuf>,
    /// Unjudged products from each query's run taken as negatives (gain 0)
    /// when fitting.
    #[arg(long, default_value_t = 0)]
    fit_negatives: usize,
    /// A recommender config (TOML) for the full pipeline [default: the defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Write, per judged query, its run's first 300 products and its judged
    /// products with their relevance inputs and grade (empty: unjudged), as
    /// TSV for offline model work [default: none].
    #[arg(long, value_name = "OUT.tsv", requires = "judgments")]
    dump_features: Option<PathBuf>,
    /// Ask only the first N queries (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One ablation's run: per query its result uids.
type Ablation<'a> = dyn Fn() -> Res<Vec<Vec<u64>>> + 'a;

/// The rerank summary and each query's order.
type Reranked = (serde_json::Value, Vec<(u64, Vec<u64>)>);

fn main() -> Res<()> {
    let cli = Cli::parse();
    let products_path =
        cli.products.clone().unwrap_or_else(|| Path::new(DATA).join("products.csv"));
    if !products_path.exists() {
        println!(
            "search_eval: skipped: {} not found (the Home Depot set lives in {DATA}; pass --products)",
            products_path.display()
        );
        return Ok(());
    }
    let products = read_products(&products_path)?;
    let judged = match &cli.judgments {
        Some(p) => Some(read_judgments(p)?),
        None => None,
    };
    let mut queries: Vec<(u64, String)> = match (&cli.queries, &judged) {
        (Some(q), _) => read_queries(q)?,
        (None, Some(j)) => j.queries.clone(),
        (None, None) => return Err("give --queries or --judgments".into()),
    };
    if cli.limit > 0 {
        queries.truncate(cli.limit);
    }
    let t0 = std::time::Instant::now();
    let titles: Vec<&str> = products.iter().map(|p| p.1.as_str()).collect();
    let encoder = NgramEncoder::fit(&titles, cli.dim)?;
    let vectors: Vec<Vec<f32>> = titles.par_iter().map(|t| encoder.encode(t)).collect();
    eprintln!("encoder fitted on {} titles in {:.1?}", titles.len(), t0.elapsed());
    let state = build_state(&products, &vectors)?;
    let config = match &cli.config {
        Some(p) => RecommenderConfig::from_toml_str(&std::fs::read_to_string(p)?)?,
        None => RecommenderConfig::default(),
    };
    let shop = Shop::new(state, &products, &encoder, config)?;
    let run = shop.retrieve_all(&shop.full, &queries, cli.k, Ask::Both)?;
    write_run(&cli.run, &queries, &run)?;
    eprintln!("{} queries asked, run written to {}", queries.len(), cli.run.display());
    let mut report = serde_json::Map::new();
    report.insert("queries".into(), queries.len().into());
    report.insert("products".into(), products.len().into());
    if let Some(j) = &judged {
        let mut retrieve = serde_json::Map::new();
        let wanted = |name: &str| {
            cli.variants.as_ref().is_none_or(|v| v.split(',').any(|x| x.trim() == name))
        };
        let mut variants: Vec<(&str, Vec<Vec<u64>>)> = vec![("omnifeed", run.clone())];
        let ablations: [(&str, &Ablation<'_>); 6] = [
            ("text_only", &|| shop.retrieve_all(&shop.full, &queries, cli.k, Ask::Text)),
            ("embedding_only", &|| shop.retrieve_all(&shop.full, &queries, cli.k, Ask::Vector)),
            ("no_typos", &|| shop.retrieve_all(&shop.no_typos, &queries, cli.k, Ask::Both)),
            ("no_stemming", &|| shop.retrieve_all(&shop.no_stemming, &queries, cli.k, Ask::Both)),
            ("bm25_plan", &|| Ok(shop.bm25_all(&queries, cli.k, &QueryConfig::default()))),
            ("bm25_stemmed", &|| Ok(shop.bm25_all(&queries, cli.k, &QueryConfig::exact()))),
        ];
        for (name, run) in ablations {
            if wanted(name) {
                variants.push((name, run()?));
            }
        }
        for (name, lists) in &variants {
            if let Some(dir) = &cli.runs_dir {
                write_run(&dir.join(format!("{name}.tsv")), &queries, lists)?;
            }
            let (ndcg, recall, empty) = j.score_retrieve(&queries, lists);
            let mut m = serde_json::Map::new();
            m.insert("ndcg10_condensed".into(), round(ndcg).into());
            m.insert("recall100".into(), round(recall).into());
            m.insert("empty_results".into(), empty.into());
            retrieve.insert(name.to_string(), m.into());
        }
        report.insert("retrieve".into(), retrieve.into());
    }
    if let (Some(out), Some(j)) = (&cli.dump_features, &judged) {
        dump_features(&shop, j, &queries, &run, out)?;
    }
    if let (Some(out), Some(j)) = (&cli.fit_relevance, &judged) {
        let fitted = fit_relevance(&shop, j, &queries, &run, &cli)?;
        report.insert("fit_relevance".into(), fitted);
        eprintln!("fitted relevance weights written to {}", out.display());
    }
    if let Some(path) = &cli.rerank {
        let j = if cli.judgments.as_deref() == Some(path) {
            judged.clone().unwrap()
        } else {
            read_judgments(path)?
        };
        let (summary, orders) = shop.rerank(&j)?;
        if let Some(out) = &cli.rerank_run {
            let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
            for (qid, order) in &orders {
                for (rank, uid) in order.iter().enumerate() {
                    writeln!(f, "{qid}\t{uid}\t{}", rank + 1)?;
                }
            }
        }
        report.insert("rerank".into(), summary);
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(report))?;
    println!("{text}");
    if let Some(p) = &cli.json {
        std::fs::write(p, &text)?;
    }
    Ok(())
}

/// The columns of `--dump-features`.
const DUMP_HEADER: &str = "query_id\tproduct_uid\trank\tgrade\ttext\tcoverage\tcosine\tlast_word\tsurface\ttitle_terms\tslots";

fn dump_features(
    shop: &Shop<'_>,
    j: &Judgments,
    queries: &[(u64, String)],
    run: &[Vec<u64>],
    out: &Path,
) -> Res<()> {
    let plain = TextAnalyzer::new(TextConfig { stemming: false, ..TextConfig::default() });
    let lines: Vec<String> = queries
        .par_iter()
        .zip(run)
        .filter_map(|((qid, q), list)| {
            let g = j.grades.get(qid)?;
            let grade: HashMap<u64, f64> = g.iter().copied().collect();
            let mut uids: Vec<u64> = list.iter().take(300).copied().collect();
            for (u, _) in g {
                if !uids.contains(u) {
                    uids.push(*u);
                }
            }
            let x = inputs(shop, q, &uids);
            let extra = text_extras(shop, &plain, q, &uids);
            let mut text = String::new();
            for (i, u) in uids.iter().enumerate() {
                let rank = list.iter().position(|v| v == u).map_or(0, |p| p + 1);
                let gr = grade.get(u).map_or(String::new(), |g| g.to_string());
                let e = extra[i];
                text.push_str(&format!(
                    "{qid}\t{u}\t{rank}\t{gr}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    x[i][0], x[i][1], x[i][2], e.0, e.1, e.2, e.3
                ));
            }
            Some(text)
        })
        .collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(f, "{DUMP_HEADER}")?;
    for l in lines {
        f.write_all(l.as_bytes())?;
    }
    Ok(())
}

/// Per product: whether the query's last slot matched, the share of query
/// words found in the title unstemmed, the title's term count, and the
/// query's slot count.
fn text_extras(
    shop: &Shop<'_>,
    plain: &TextAnalyzer,
    q: &str,
    uids: &[u64],
) -> Vec<(u8, f32, usize, usize)> {
    let lexical = shop.state.lexical();
    let catalog = shop.state.catalog();
    let plan = lexical.plan(q, &shop.full.config().sources.query);
    let n = plan.slots().len();
    let mut qwords = Vec::new();
    plain.words(q, &mut qwords);
    qwords.retain(|w| plain.term(w).is_some());
    let mut rows: Vec<omnifeed::ItemIdx> =
        uids.iter().filter_map(|u| catalog.row(ProductId(*u))).collect();
    rows.sort_unstable();
    let mut m = Vec::new();
    lexical.match_rows(&plan, &rows, &mut m);
    uids.iter()
        .map(|u| {
            let Some(row) = catalog.row(ProductId(*u)) else { return (0, 0.0, 0, n) };
            let mask = m.binary_search_by_key(&row, |x| x.row).map_or(0, |k| m[k].slots);
            let last = u8::from(n > 0 && n <= 64 && mask & (1u64 << (n - 1)) != 0);
            let mut tw = Vec::new();
            plain.words(catalog.title(row).unwrap_or(""), &mut tw);
            let surface = if qwords.is_empty() {
                0.0
            } else {
                qwords.iter().filter(|w| tw.contains(w)).count() as f32 / qwords.len() as f32
            };
            (last, surface, tw.len(), n)
        })
        .collect()
}

/// One query's fitting rows: relevance inputs and gains.
struct FitQuery {
    qid: u64,
    x: Vec<[f32; 3]>,
    gain: Vec<f32>,
}

/// The relevance inputs of `uids` for query `q`, as the pipeline computes
/// them (`text` over the plan's bound, `coverage`, cosine floored at 0).
fn inputs(shop: &Shop<'_>, q: &str, uids: &[u64]) -> Vec<[f32; 3]> {
    let lexical = shop.state.lexical();
    let catalog = shop.state.catalog();
    let plan = lexical.plan(q, &shop.full.config().sources.query);
    let v = shop.encoder.encode(q);
    let mut rows: Vec<omnifeed::ItemIdx> =
        uids.iter().filter_map(|u| catalog.row(ProductId(*u))).collect();
    rows.sort_unstable();
    rows.dedup();
    let (mut scratch, mut m) = (Vec::new(), Vec::new());
    lexical.text_inputs(&plan, &rows, &mut scratch, &mut m);
    uids.iter()
        .map(|u| {
            let Some(row) = catalog.row(ProductId(*u)) else { return [0.0; 3] };
            let (t, c) =
                m.binary_search_by_key(&row, |x| x.0).map_or((0.0, 0.0), |k| (m[k].1, m[k].2));
            let e = catalog.embeddings().row(row);
            let cos: f32 = v.iter().zip(e).map(|(a, b)| a * b).sum();
            [t, c, cos.max(0.0)]
        })
        .collect()
}

/// Listwise fit (softmax cross-entropy against gains 2^g − 1, L2 1e-3)
/// of the three weights by gradient descent; the bias centres the mean
/// judged pair at 0.
fn fit_weights(data: &[&FitQuery]) -> omnifeed::rank::RelevanceWeights {
    let mut w = [1.0f64, 1.0, 1.0];
    let (lr, l2) = (0.5f64, 1e-3f64);
    for _ in 0..300 {
        let mut grad = [0.0f64; 3];
        let mut n = 0.0f64;
        for q in data {
            let total: f32 = q.gain.iter().sum();
            if total <= 0.0 || q.x.len() < 2 {
                continue;
            }
            let z: Vec<f64> =
                q.x.iter().map(|x| (0..3).map(|k| w[k] * f64::from(x[k])).sum()).collect();
            let m = z.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            for (i, x) in q.x.iter().enumerate() {
                let d = e[i] / s - f64::from(q.gain[i] / total);
                for k in 0..3 {
                    grad[k] += d * f64::from(x[k]);
                }
            }
            n += 1.0;
        }
        for k in 0..3 {
            w[k] -= lr * (grad[k] / n.max(1.0) + l2 * w[k]);
        }
    }
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for q in data {
        for x in &q.x {
            mean += (0..3).map(|k| w[k] * f64::from(x[k])).sum::<f64>();
            count += 1.0;
        }
    }
    omnifeed::rank::RelevanceWeights {
        bias: (-mean / count.max(1.0)) as f32,
        text: w[0] as f32,
        coverage: w[1] as f32,
        cosine: w[2] as f32,
    }
}

/// Fits the relevance weights on `j`, 5-fold cross-validated by query on
/// the retrieve protocol against the configured weights, then on all
/// queries; writes them as a config to `--fit-relevance`.
fn fit_relevance(
    shop: &Shop<'_>,
    j: &Judgments,
    queries: &[(u64, String)],
    run: &[Vec<u64>],
    cli: &Cli,
) -> Res<serde_json::Value> {
    let data: Vec<FitQuery> = queries
        .par_iter()
        .zip(run)
        .filter_map(|((qid, q), list)| {
            let g = j.grades.get(qid)?;
            let judged: std::collections::HashSet<u64> = g.iter().map(|x| x.0).collect();
            let mut uids: Vec<u64> = g.iter().map(|x| x.0).collect();
            let mut gain: Vec<f32> =
                g.iter().map(|x| (2f64.powf(x.1 - 1.0) - 1.0) as f32).collect();
            for u in list.iter().filter(|u| !judged.contains(u)).take(cli.fit_negatives) {
                uids.push(*u);
                gain.push(0.0);
            }
            Some(FitQuery { qid: *qid, x: inputs(shop, q, &uids), gain })
        })
        .collect();
    let fold = |qid: u64| (qid.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) as usize % 5;
    let base_cfg = shop.full.config().clone();
    let (mut cv_fit, mut cv_base) = ([0.0f64; 2], [0.0f64; 2]);
    let mut folds = Vec::new();
    for f in 0..5 {
        let train: Vec<&FitQuery> = data.iter().filter(|d| fold(d.qid) != f).collect();
        let w = fit_weights(&train);
        let held: Vec<(u64, String)> = queries.iter().filter(|q| fold(q.0) == f).cloned().collect();
        let cfg = RecommenderConfig { relevance: w, ..base_cfg.clone() };
        let rec = build(shop.state.clone(), cfg)?;
        let fitted = j.score_retrieve(&held, &shop.retrieve_all(&rec, &held, cli.k, Ask::Both)?);
        let base =
            j.score_retrieve(&held, &shop.retrieve_all(&shop.full, &held, cli.k, Ask::Both)?);
        for (acc, s) in [(&mut cv_fit, fitted), (&mut cv_base, base)] {
            acc[0] += s.0 / 5.0;
            acc[1] += s.1 / 5.0;
        }
        folds.push(serde_json::json!({"fold": f, "weights": format!("{w:?}"), "ndcg10": round(fitted.0), "recall100": round(fitted.1)}));
    }
    let all: Vec<&FitQuery> = data.iter().collect();
    let w = fit_weights(&all);
    let text = format!(
        "# Fitted by examples/search_eval.rs --fit-relevance on {} judged queries\n[relevance]\nbias = {}\ntext = {}\ncoverage = {}\ncosine = {}\n",
        data.len(),
        w.bias,
        w.text,
        w.coverage,
        w.cosine
    );
    if let Some(out) = &cli.fit_relevance {
        std::fs::write(out, text)?;
    }
    Ok(serde_json::json!({
        "weights": {"bias": w.bias, "text": w.text, "coverage": w.coverage, "cosine": w.cosine},
        "cv_fitted": {"ndcg10_condensed": round(cv_fit[0]), "recall100": round(cv_fit[1])},
        "cv_configured": {"ndcg10_condensed": round(cv_base[0]), "recall100": round(cv_base[1])},
        "folds": folds,
    }))
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn read_products(path: &Path) -> Res<Vec<(u64, String)>> {
    let mut r = csv::Reader::from_path(path)?;
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        let uid: u64 = rec.get(0).ok_or("no product_uid")?.parse()?;
        out.push((uid, rec.get(1).unwrap_or("").to_string()));
    }
    Ok(out)
}

fn read_queries(path: &Path) -> Res<Vec<(u64, String)>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (id, q) = line.split_once('\t').ok_or_else(|| format!("line {}: no tab", i + 1))?;
        out.push((id.trim().parse()?, q.to_string()));
    }
    Ok(out)
}

/// Judgments: per query its graded products.
#[derive(Clone)]
struct Judgments {
    queries: Vec<(u64, String)>,
    grades: HashMap<u64, Vec<(u64, f64)>>,
}

fn read_judgments(path: &Path) -> Res<Judgments> {
    let mut r = csv::Reader::from_path(path)?;
    let mut j = Judgments { queries: Vec::new(), grades: HashMap::new() };
    for rec in r.records() {
        let rec = rec?;
        let qid: u64 = rec.get(0).ok_or("no query_id")?.parse()?;
        let q = rec.get(1).unwrap_or("").to_string();
        let uid: u64 = rec.get(2).ok_or("no product_uid")?.parse()?;
        let rel: f64 = rec.get(3).ok_or("no relevance")?.parse()?;
        let e = j.grades.entry(qid).or_default();
        if e.is_empty() {
            j.queries.push((qid, q));
        }
        e.push((uid, rel));
    }
    Ok(j)
}

/// NDCG@10 of `gains` in ranked order against the ideal of `all`.
fn ndcg10(gains: &[f64], all: &[f64]) -> Option<f64> {
    let dcg = |g: &[f64]| -> f64 {
        g.iter()
            .take(10)
            .enumerate()
            .map(|(r, &g)| (2f64.powf(g) - 1.0) / (r as f64 + 2.0).log2())
            .sum()
    };
    let mut ideal = all.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    (best > 0.0).then(|| dcg(gains) / best)
}

impl Judgments {
    /// Mean condensed NDCG@10 and Recall@100 (products graded >= 2.5), and
    /// the queries with no result.
    fn score_retrieve(&self, queries: &[(u64, String)], lists: &[Vec<u64>]) -> (f64, f64, usize) {
        let (mut ndcg, mut n_ndcg, mut recall, mut n_recall, mut empty) = (0.0, 0, 0.0, 0, 0);
        for ((qid, _), list) in queries.iter().zip(lists) {
            let Some(g) = self.grades.get(qid) else { continue };
            let grade: HashMap<u64, f64> = g.iter().copied().collect();
            empty += usize::from(list.is_empty());
            let all: Vec<f64> = g.iter().map(|x| x.1 - 1.0).collect();
            let condensed: Vec<f64> =
                list.iter().filter_map(|u| grade.get(u).map(|r| r - 1.0)).collect();
            if let Some(v) = ndcg10(&condensed, &all) {
                ndcg += v;
                n_ndcg += 1;
            }
            let good: Vec<u64> = g.iter().filter(|x| x.1 >= 2.5).map(|x| x.0).collect();
            if !good.is_empty() {
                let top: std::collections::HashSet<u64> = list.iter().take(100).copied().collect();
                recall +=
                    good.iter().filter(|u| top.contains(u)).count() as f64 / good.len() as f64;
                n_recall += 1;
            }
        }
        (ndcg / n_ndcg.max(1) as f64, recall / n_recall.max(1) as f64, empty)
    }
}

/// What a query asks with.
#[derive(Clone, Copy, PartialEq)]
enum Ask {
    Text,
    Vector,
    Both,
}

/// The catalogue and its recommenders (the full one and the ablations).
struct Shop<'e> {
    encoder: &'e NgramEncoder,
    /// Product uid by row (ids are the uids).
    uids: Vec<u64>,
    full: Recommender,
    no_typos: Recommender,
    no_stemming: Recommender,
    state: ServingState,
}

fn build_state(products: &[(u64, String)], vectors: &[Vec<f32>]) -> Res<ServingState> {
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.8, status: MerchantStatus::Active });
    for ((uid, title), v) in products.iter().zip(vectors) {
        b.add_product(Product {
            id: ProductId(*uid),
            category: CategoryId(0),
            price: 10.0,
            merchant: MerchantId(1),
            stock: 10,
            listed_at: 0,
            title: Some(title.clone()),
            ..Product::default()
        });
        b.add_embedding(ProductId(*uid), v);
    }
    let catalog = Arc::new(b.build()?);
    let (signals, _) = Signals::from_events(Arc::clone(&catalog), &[], &SignalConfig::default())?;
    let index = Arc::new(ExactIndex::for_catalog(&catalog));
    Ok(ServingState::new(catalog, index, Arc::new(signals))?)
}

impl<'e> Shop<'e> {
    fn new(
        state: ServingState,
        products: &[(u64, String)],
        encoder: &'e NgramEncoder,
        config: RecommenderConfig,
    ) -> Res<Shop<'e>> {
        let mut cfg = config.clone();
        let full = build(state.clone(), cfg.clone())?;
        cfg.sources.query.typos = false;
        let no_typos = build(state.clone(), cfg)?;
        let plain = TextAnalyzer::new(TextConfig { stemming: false, ..TextConfig::default() });
        let no_stemming = build(state.with_analyzer(Arc::new(plain)), config)?;
        let uids = products.iter().map(|p| p.0).collect();
        Ok(Shop { encoder, uids, full, no_typos, no_stemming, state })
    }

    fn request(&self, text: &str, k: usize, ask: Ask) -> FeedRequest {
        let q = SearchQuery {
            text: (ask != Ask::Vector).then(|| text.to_string()),
            embedding: (ask != Ask::Text).then(|| self.encoder.encode(text)),
        };
        FeedRequest::new(UserId(1)).surface(Surface::Search).k(k).query(q)
    }

    /// Each query's result rows (as product ids' rows).
    fn retrieve_all(
        &self,
        rec: &Recommender,
        queries: &[(u64, String)],
        k: usize,
        ask: Ask,
    ) -> Res<Vec<Vec<u64>>> {
        queries
            .par_iter()
            .map(|(_, q)| {
                let req = self.request(q, k, ask);
                match rec.recommend(&req) {
                    Ok(feed) => Ok(feed.items.iter().map(|i| i.product.0).collect()),
                    // A query with nothing to search with (no term and a
                    // zero vector) returns nothing.
                    Err(e) if matches!(e.kind(), omnifeed::ErrorKind::ZeroVector { .. }) => {
                        Ok(Vec::new())
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .collect()
    }

    /// The title index alone: BM25 under `config`'s plan.
    fn bm25_all(&self, queries: &[(u64, String)], k: usize, config: &QueryConfig) -> Vec<Vec<u64>> {
        let lexical: &LexicalIndex = self.state.lexical();
        queries
            .par_iter()
            .map(|(_, q)| {
                let plan = lexical.plan(q, config);
                let (mut acc, mut out) = (Vec::new(), Vec::new());
                lexical.search_plan(&plan, k, &|_| true, &mut acc, &mut out);
                out.iter().map(|(r, _)| self.uids[r.index()]).collect()
            })
            .collect()
    }

    /// The rerank protocol: each query's judged products ordered by Search
    /// (`Recommender::rank_products`) and by stemmed BM25; the mean
    /// per-query NDCG@10 difference and its standard error.
    fn rerank(&self, j: &Judgments) -> Res<Reranked> {
        let lexical = self.state.lexical();
        let catalog = self.state.catalog();
        let rows: Vec<_> = j
            .queries
            .par_iter()
            .map(|(qid, q)| -> Res<_> {
                let g = &j.grades[qid];
                let products: Vec<ProductId> = g.iter().map(|x| ProductId(x.0)).collect();
                let req = self.request(q, products.len(), Ask::Both);
                let ranked = self.full.rank_products(&req, &products)?;
                let ours: Vec<u64> = ranked.iter().map(|x| x.0.0).collect();
                let plan: QueryPlan = lexical.plan(q, &QueryConfig::exact());
                let mut rows: Vec<omnifeed::ItemIdx> =
                    products.iter().filter_map(|p| catalog.row(*p)).collect();
                rows.sort_unstable();
                rows.dedup();
                let mut scored = Vec::new();
                lexical.score_rows_plan(&plan, &rows, &mut scored);
                let score: HashMap<u64, f32> =
                    scored.iter().map(|(r, s)| (catalog.product_id(*r).0, *s)).collect();
                // BM25 order; ties (and non-matches) keep the judged order.
                let mut bm25: Vec<u64> = g.iter().map(|x| x.0).collect();
                bm25.sort_by(|a, b| {
                    score.get(b).unwrap_or(&0.0).total_cmp(score.get(a).unwrap_or(&0.0))
                });
                let grade: HashMap<u64, f64> = g.iter().copied().collect();
                let all: Vec<f64> = g.iter().map(|x| x.1 - 1.0).collect();
                let gains = |o: &[u64]| o.iter().map(|u| grade[u] - 1.0).collect::<Vec<_>>();
                let a = ndcg10(&gains(&ours), &all);
                let b = ndcg10(&gains(&bm25), &all);
                Ok((*qid, ours, a.zip(b)))
            })
            .collect::<Res<Vec<_>>>()?;
        let diffs: Vec<f64> = rows.iter().filter_map(|r| r.2.map(|(a, b)| a - b)).collect();
        let ours: f64 =
            rows.iter().filter_map(|r| r.2.map(|x| x.0)).sum::<f64>() / diffs.len() as f64;
        let base: f64 =
            rows.iter().filter_map(|r| r.2.map(|x| x.1)).sum::<f64>() / diffs.len() as f64;
        let n = diffs.len() as f64;
        let mean = diffs.iter().sum::<f64>() / n;
        let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let se = (var / n).sqrt();
        let summary = serde_json::json!({
            "queries": diffs.len(),
            "ndcg10_omnifeed": round(ours),
            "ndcg10_bm25_stemmed": round(base),
            "mean_difference": round(mean),
            "standard_error": round(se),
            "differences_in_se": round(mean / se.max(1e-12)),
        });
        Ok((summary, rows.into_iter().map(|r| (r.0, r.1)).collect()))
    }
}

fn build(s: ServingState, cfg: RecommenderConfig) -> Result<Recommender, omnifeed::Error> {
    Recommender::builder().config(cfg).state(s).clock(omnifeed::Clock::Fixed(0)).build()
}

/// `query_id<TAB>product_uid<TAB>rank` per returned product.
fn write_run(path: &Path, queries: &[(u64, String)], run: &[Vec<u64>]) -> Res<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for ((qid, _), list) in queries.iter().zip(run) {
        for (rank, uid) in list.iter().enumerate() {
            writeln!(f, "{qid}\t{uid}\t{}", rank + 1)?;
        }
    }
    Ok(())
}

/// The stand-in text encoder: TF-IDF over hashed character 3-to-5-grams of
/// each word (padded with spaces), projected on the top `dim` right
/// singular vectors of the titles' matrix (a randomized SVD: one power
/// iteration, 8 extra dimensions of oversampling).
struct NgramEncoder {
    idf: Vec<f32>,
    /// `BUCKETS × dim`, row-major: the projection.
    basis: Vec<f32>,
    dim: usize,
}

const BUCKETS: usize = 1 << 17;

fn ngrams(text: &str, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let a = TextAnalyzer::new(TextConfig {
        stemming: false,
        stop_words: false,
        ..TextConfig::default()
    });
    let mut words = Vec::new();
    a.words(text, &mut words);
    let mut counts: HashMap<u32, f32> = HashMap::new();
    for w in &words {
        let padded: Vec<char> = format!(" {w} ").chars().collect();
        for n in 3..=5 {
            for g in padded.windows(n) {
                let s: String = g.iter().collect();
                let h = fnv(s.as_bytes()) % BUCKETS as u64;
                *counts.entry(h as u32).or_default() += 1.0;
            }
        }
    }
    out.extend(counts);
    out.sort_unstable_by_key(|x| x.0);
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl NgramEncoder {
    fn fit(titles: &[&str], dim: usize) -> Res<NgramEncoder> {
        use nalgebra::DMatrix;
        let docs: Vec<Vec<(u32, f32)>> = titles
            .par_iter()
            .map(|t| {
                let mut v = Vec::new();
                ngrams(t, &mut v);
                v
            })
            .collect();
        let mut df = vec![0u32; BUCKETS];
        for d in &docs {
            for &(h, _) in d {
                df[h as usize] += 1;
            }
        }
        let n = docs.len() as f32;
        let idf: Vec<f32> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0).collect();
        let weigh = |d: &[(u32, f32)]| -> Vec<(u32, f32)> {
            let mut v: Vec<(u32, f32)> =
                d.iter().map(|&(h, c)| (h, (1.0 + c.ln()) * idf[h as usize])).collect();
            let norm = v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| x.1 /= norm);
            v
        };
        let a: Vec<Vec<(u32, f32)>> = docs.par_iter().map(|d| weigh(d)).collect();
        let l = dim + 8;
        // Ω: a pseudo-random ±1 matrix, BUCKETS × l.
        let omega = |h: usize, j: usize| -> f32 {
            if fnv(&((h * 131 + j) as u64).to_le_bytes()) & 1 == 0 { 1.0 } else { -1.0 }
        };
        let rows = a.len();
        // Y = A Ω, then one power iteration: Y = A (Aᵀ Y).
        let mut y = DMatrix::<f32>::zeros(rows, l);
        for (i, d) in a.iter().enumerate() {
            for &(h, v) in d {
                for j in 0..l {
                    y[(i, j)] += v * omega(h as usize, j);
                }
            }
        }
        let q = y.qr().q();
        let mut z = vec![0f32; BUCKETS * l];
        for (i, d) in a.iter().enumerate() {
            for &(h, v) in d {
                for j in 0..l {
                    z[h as usize * l + j] += v * q[(i, j)];
                }
            }
        }
        let mut y = DMatrix::<f32>::zeros(rows, l);
        for (i, d) in a.iter().enumerate() {
            for &(h, v) in d {
                for j in 0..l {
                    y[(i, j)] += v * z[h as usize * l + j];
                }
            }
        }
        let q = y.qr().q();
        // B = Qᵀ A (l × BUCKETS), stored BUCKETS × l; B Bᵀ's eigenvectors.
        let mut b = vec![0f32; BUCKETS * l];
        for (i, d) in a.iter().enumerate() {
            for &(h, v) in d {
                for j in 0..l {
                    b[h as usize * l + j] += v * q[(i, j)];
                }
            }
        }
        let mut bbt = DMatrix::<f64>::zeros(l, l);
        for h in 0..BUCKETS {
            let r = &b[h * l..(h + 1) * l];
            if r.iter().all(|&x| x == 0.0) {
                continue;
            }
            for x in 0..l {
                for w in 0..l {
                    bbt[(x, w)] += f64::from(r[x]) * f64::from(r[w]);
                }
            }
        }
        let eig = bbt.symmetric_eigen();
        let mut order: Vec<usize> = (0..l).collect();
        order.sort_by(|&x, &w| eig.eigenvalues[w].total_cmp(&eig.eigenvalues[x]));
        // V_k = Bᵀ U_k Σ⁻¹: BUCKETS × dim.
        let mut basis = vec![0f32; BUCKETS * dim];
        for (c, &e) in order.iter().take(dim).enumerate() {
            let s = eig.eigenvalues[e].max(1e-12).sqrt();
            for h in 0..BUCKETS {
                let r = &b[h * l..(h + 1) * l];
                let acc: f64 = r
                    .iter()
                    .enumerate()
                    .map(|(x, &v)| f64::from(v) * eig.eigenvectors[(x, e)])
                    .sum();
                basis[h * dim + c] = (acc / s) as f32;
            }
        }
        Ok(NgramEncoder { idf, basis, dim })
    }

    /// The unit vector of `text` (a zero vector when it has no n-gram the
    /// titles had).
    fn encode(&self, text: &str) -> Vec<f32> {
        let mut d = Vec::new();
        ngrams(text, &mut d);
        let mut v = vec![0f32; self.dim];
        let mut norm = 0f32;
        let weights: Vec<(u32, f32)> =
            d.iter().map(|&(h, c)| (h, (1.0 + c.ln()) * self.idf[h as usize])).collect();
        for &(_, w) in &weights {
            norm += w * w;
        }
        let norm = norm.sqrt().max(1e-12);
        for &(h, w) in &weights {
            let r = &self.basis[h as usize * self.dim..(h as usize + 1) * self.dim];
            for (x, &b) in v.iter_mut().zip(r) {
                *x += w / norm * b;
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 1e-6 {
            v.iter_mut().for_each(|x| *x /= n);
        }
        v
    }
}
