//! HNSW recall against the exact oracle.

use omnifeed::index::{ExactIndex, HnswIndex, HnswParams, VectorIndex, recall};
use omnifeed::synth::{SynthConfig, generate};

#[test]
fn hnsw_recall_at_100_on_20k_products() {
    let seed = 42;
    println!("seed {seed}");
    let world = generate(&SynthConfig { seed, ..SynthConfig::catalog_only(20_000, 64) }).unwrap();
    let emb = world.catalog.shared_embeddings();
    let exact = ExactIndex::new(emb.clone());
    let hnsw = HnswIndex::build(emb, HnswParams::default()).unwrap();
    let queries: Vec<&[f32]> = world.interest_vectors().take(200).collect();
    let (mut truth, mut found) = (Vec::new(), Vec::new());
    let mut total = 0.0;
    for q in &queries {
        exact.search(q, 100, None, &mut truth).unwrap();
        hnsw.search(q, 100, None, &mut found).unwrap();
        assert_eq!(found.len(), 100);
        // Scores are exact dot products, so common rows score the same.
        for n in &found {
            if let Some(t) = truth.iter().find(|t| t.row == n.row) {
                assert!((t.score - n.score).abs() <= 1e-6, "{} vs {}", t.score, n.score);
            }
        }
        total += recall(&found, &truth);
    }
    let r = total / queries.len() as f64;
    println!("recall@100 = {r:.4} over {} queries", queries.len());
    assert!(r >= 0.95, "recall@100 {r}");
}
