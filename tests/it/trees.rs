//! Boosted trees trained elsewhere (issue 24, part 4): a LightGBM text
//! dump and an XGBoost JSON dump, trained by `scripts/train_tree_models.py`
//! on synthetic rows (some values 0 or missing), score every row as the
//! library itself predicted it.

use omnifeed::rank::TreeEnsemble;
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/trees").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows and each library's raw-margin predictions.
fn rows_and_predictions() -> (Vec<Vec<f32>>, Vec<(f64, f64)>) {
    let rows = fixture("rows.csv")
        .lines()
        .map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect())
        .collect();
    let preds = fixture("predictions.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    (rows, preds)
}

#[test]
fn lightgbm_and_xgboost_dumps_score_as_the_libraries_do() {
    let (rows, preds) = rows_and_predictions();
    assert_eq!(rows.len(), preds.len());
    assert!(rows.iter().any(|r| r.iter().any(|v| v.is_nan())), "the rows exercise missing values");
    let lgb = TreeEnsemble::from_lightgbm_text(&fixture("lightgbm.txt")).unwrap();
    let base: f64 = fixture("xgboost.base").trim().parse().unwrap();
    let xgb = TreeEnsemble::from_xgboost_json(&fixture("xgboost.json"), base).unwrap();
    assert_eq!((lgb.trees(), xgb.trees()), (30, 30));
    assert!(lgb.features() <= 27 && xgb.features() <= 27);
    for (i, (row, &(want_lgb, want_xgb))) in rows.iter().zip(&preds).enumerate() {
        let (got_lgb, got_xgb) = (lgb.predict(row).unwrap(), xgb.predict(row).unwrap());
        // LightGBM sums in f64; XGBoost in f32 (its margin is an f32).
        assert!((got_lgb - want_lgb).abs() < 1e-9, "row {i}: lightgbm {got_lgb} vs {want_lgb}");
        assert!((got_xgb - want_xgb).abs() < 1e-5, "row {i}: xgboost {got_xgb} vs {want_xgb}");
    }
}

#[test]
fn malformed_dumps_are_typed_errors() {
    assert!(TreeEnsemble::from_lightgbm_text("not a model").is_err());
    let lgb = fixture("lightgbm.txt");
    // A child pointing past the tree.
    let broken = lgb.replacen("left_child=", "left_child=999 ", 1);
    assert!(TreeEnsemble::from_lightgbm_text(&broken).is_err());
    // A categorical split.
    let categorical = lgb.replacen("decision_type=2", "decision_type=1", 1);
    let e = TreeEnsemble::from_lightgbm_text(&categorical).unwrap_err();
    assert!(e.to_string().contains("categorical"), "{e}");
    assert!(TreeEnsemble::from_xgboost_json("[]", 0.0).is_err());
    assert!(TreeEnsemble::from_xgboost_json("{", 0.0).is_err());
    let cycle = r#"[{"nodeid":0,"split":"f1","split_condition":0.5,"yes":0,"no":1,"missing":1,"children":[{"nodeid":1,"leaf":0.5}]}]"#;
    assert!(TreeEnsemble::from_xgboost_json(cycle, 0.0).is_err());
    let xgb = TreeEnsemble::from_xgboost_json(&fixture("xgboost.json"), 0.0).unwrap();
    assert!(xgb.predict(&[0.5; 3]).is_err(), "a short row is an error");
}

/// As a scorer, a head with trees is the sigmoid of their margin and a
/// head without is the fallback's; the recommender ranks with it.
#[test]
fn a_tree_scorer_ranks_a_feed() {
    use omnifeed::rank::{FeatureMatrix, HEADS, LogisticScorer, Scorer, TreeScorer};
    let lgb = TreeEnsemble::from_lightgbm_text(&fixture("lightgbm.txt")).unwrap();
    let fallback = LogisticScorer::from_weights(&Default::default()).unwrap();
    let scorer = TreeScorer::new([Some(lgb.clone()), None, None], fallback.clone()).unwrap();
    let (rows, _) = rows_and_predictions();
    let finite: Vec<f32> =
        rows.iter().take(20).flatten().map(|v| if v.is_nan() { 0.0 } else { *v }).collect();
    let m = FeatureMatrix::from_rows(&finite).unwrap();
    let (mut got, mut want) = (vec![0.0; 20 * HEADS], vec![0.0; 20 * HEADS]);
    scorer.score(&m, &mut got);
    fallback.score(&m, &mut want);
    for r in 0..20 {
        let p = 1.0 / (1.0 + (-lgb.predict(m.row(r)).unwrap()).exp());
        assert!((f64::from(got[r * HEADS]) - p).abs() < 1e-6);
        assert_eq!(got[r * HEADS + 1..(r + 1) * HEADS], want[r * HEADS + 1..(r + 1) * HEADS]);
    }
    let rec = crate::it::adversarial::recommender();
    let with_trees = omnifeed::Recommender::builder()
        .state((*rec.state()).clone())
        .scorer(Box::new(scorer))
        .build()
        .unwrap();
    let user = crate::it::adversarial::user();
    let feed = with_trees.recommend(&omnifeed::FeedRequest::new(user).k(10)).unwrap();
    assert_eq!(feed.items.len(), 10);
    assert!(feed.items.iter().all(|i| i.explanation.heads.iter().all(|h| h.value.is_finite())));
}

/// A tree ranker travels with the writer's snapshots (issue 24, part 4):
/// loaded back it is the same scorer, and a replica started from the
/// snapshot serves its heads; a writer without one saves none.
#[test]
fn a_tree_ranker_travels_with_snapshots_to_replicas() {
    use omnifeed::features::{F, FeatureMatrix, HEADS};
    use omnifeed::live::{MemoryLog, Replica, ReplicaConfig, ShopWriter, SnapshotStore};
    use omnifeed::rank::{LogisticScorer, Scorer, TreeScorer};
    use std::sync::Arc;
    let lgb = TreeEnsemble::from_lightgbm_text(&fixture("lightgbm.txt")).unwrap();
    let fallback = LogisticScorer::from_weights(&Default::default()).unwrap();
    // pCTR trees alone, engagement trees over 0.5 × the logistic margin.
    let scorer =
        TreeScorer::boosted([Some(lgb.clone()), None, Some(lgb)], [0.0, 0.0, 0.5], fallback)
            .unwrap();
    let (world, mut w) = crate::it::live::world_writer(omnifeed::index::IndexKind::Exact);
    let dir = crate::it::live::snapshots::temp_dir("trees");
    w.save(&dir).unwrap();
    assert!(ShopWriter::load(&dir).unwrap().trees().is_none());
    w.set_trees(Some(scorer.clone()));
    let store = SnapshotStore::new(&dir);
    store.save(&mut w, None, omnifeed::live::Retention::default()).unwrap();
    let back = ShopWriter::load(store.dir(None)).unwrap();
    assert_eq!(back.trees(), Some(&scorer));

    let log: Arc<dyn omnifeed::live::EventLog> = Arc::new(MemoryLog::default());
    // The log the snapshot's writer applied (its head at the snapshot's offset).
    log.append(&[omnifeed::live::LogEntry::Events(Vec::new())]).unwrap();
    let config = ReplicaConfig { wait: std::time::Duration::ZERO, ..ReplicaConfig::default() };
    let replica =
        Replica::start(log, store, config, || unreachable!("loads the snapshot")).unwrap();
    let user = world.users[0].id;
    let at = replica.recommender().state().signals().as_of();
    let feed =
        replica.recommender().recommend(&omnifeed::FeedRequest::new(user).k(10).at(at)).unwrap();
    assert_eq!(feed.items.len(), 10);
    let rows: Vec<f32> =
        feed.items.iter().flat_map(|i| i.explanation.features.iter().map(|nv| nv.value)).collect();
    assert_eq!(rows.len(), 10 * F);
    let mut want = vec![0.0f32; 10 * HEADS];
    scorer.score(&FeatureMatrix::from_rows(&rows).unwrap(), &mut want);
    for (item, want) in feed.items.iter().zip(want.chunks_exact(HEADS)) {
        let got: Vec<f32> = item.explanation.heads.iter().map(|h| h.value).collect();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "served heads {got:?}, the trees' {want:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
