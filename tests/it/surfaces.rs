//! The whole request path on the three surfaces: invariants on random
//! synthetic worlds, the fast ranking path against the naive one, search
//! with filters, scorer files, config and bad requests.

use omnifeed::features::F;
use omnifeed::index::ExactIndex;
use omnifeed::rank::{HeadWeights, LogisticScorer, MlpScorer};
use omnifeed::retrieve::SearchFusion;
use omnifeed::signals::PurchaseState;
use omnifeed::stage::CandidateBuf;
use omnifeed::synth::{SynthConfig, World, generate};
use omnifeed::{
    CategoryId, Clock, ErrorKind, Event, FeedRequest, ItemIdx, ProductId, Recommender,
    RecommenderConfig, RemovalReason, RequestFilters, SearchQuery, ServingState, SignalConfig,
    SignalStore, Surface, UserId,
};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

/// A recommender over `world` with exact search; the last user searches.
fn setup(world: &World, config: RecommenderConfig) -> Recommender {
    let catalog = Arc::new(world.catalog.clone());
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    store.ingest_batch(&world.events);
    let at = store.watermark().unwrap_or(0);
    let last = world.users.last().unwrap();
    let q = SearchQuery {
        text: Some(omnifeed::synth::category_noun(CategoryId(1)).into()),
        embedding: Some(last.interests[0].1.clone()),
    };
    store.ingest(&Event::search(at, last.id, q)).unwrap();
    store.flag_product(world.catalog.product_id(ItemIdx(3)), true).unwrap();
    let signals = store.publish();
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(catalog, index, Arc::new(signals)).unwrap();
    // A replay of a recorded world: served as of its newest event.
    Recommender::builder().config(config).clock(Clock::SignalsAsOf).state(state).build().unwrap()
}

fn check_feed(rec: &Recommender, req: &FeedRequest) -> Result<(), TestCaseError> {
    let state = rec.state();
    let (catalog, signals) = (state.catalog(), state.signals());
    let feed = rec.recommend(req).unwrap();
    let items = &feed.items;
    // No duplicates.
    let ids: HashSet<ProductId> = items.iter().map(|i| i.product).collect();
    prop_assert_eq!(ids.len(), items.len());
    // Length: min(k, candidates that passed the filters).
    prop_assert_eq!(items.len(), req.k.min(feed.trace.scored));
    let at = req.at.unwrap_or(signals.as_of());
    let profile = signals.profile(req.user);
    let config = rec.config();
    let cfg = config.rerank.get(req.surface);
    // A pin takes its position whatever the caps, and moving it may bring
    // neighbours into one window: caps are checked on feeds without pins.
    let pinned = items.iter().any(|i| i.explanation.rules.contains(&"pin"));
    let rules = rec.rules();
    for (pos, item) in items.iter().enumerate() {
        let row = catalog.row(item.product).unwrap();
        // Never a blocked product.
        prop_assert!(!rules.is_blocked(
            item.product,
            catalog.merchant_of(row).id,
            catalog.categories()[row.index()]
        ));
        // No filtered product.
        prop_assert!(!req.exclude.contains(&item.product));
        prop_assert!(signals.gate(row).is_none());
        prop_assert!(catalog.stocks()[row.index()] > 0);
        prop_assert!(
            req.filters.admits(catalog.categories()[row.index()], catalog.prices()[row.index()])
        );
        if let Some(p) = profile {
            // Bought within the window and not due again: held back; after
            // it the ranker decides (the `bought` feature says so).
            let since = at - rec.config().bought_window;
            let bought = matches!(signals.purchase_state(p, row, at), PurchaseState::Bought { at: t } if t >= since);
            prop_assert!(!bought);
            let ever = p.bought_at(row).is_some();
            let feature = e_feature(&item.explanation, "bought");
            prop_assert_eq!(feature, if ever { 1.0 } else { 0.0 });
            let seen: Vec<ItemIdx> = p.seen_since(at - rec.config().seen_window).collect();
            prop_assert!(!seen.contains(&row));
        }
        // Explained: score = Π value^weight, every part present.
        let e = &item.explanation;
        prop_assert!(!e.sources.is_empty());
        prop_assert_eq!(e.features.len(), F);
        prop_assert_eq!(e.heads.len(), 3);
        let product: f32 = e.parts.iter().map(|p| p.value.powf(p.weight)).product();
        prop_assert!(
            (product - item.score).abs() <= 1e-4 * item.score.max(1e-3),
            "{product} vs {}",
            item.score
        );
        // Caps hold in every window, unless relaxed for this item.
        if !pinned && !e.rules.contains(&"cap_relaxed") {
            let start = pos.saturating_sub(cfg.window - 1);
            let window = &items[start..pos];
            let cat = catalog.categories()[row.index()];
            let same = window
                .iter()
                .filter(|o| catalog.categories()[catalog.row(o.product).unwrap().index()] == cat)
                .count();
            let fixed = e.rules.contains(&"fixed_position") || e.rules.contains(&"exploration");
            prop_assert!(fixed || same < cfg.category_cap, "category cap at {pos}");
        }
    }
    // Maximum shares hold unless relaxed.
    let relaxed = pinned || items.iter().any(|i| i.explanation.rules.contains(&"cap_relaxed"));
    for q in &cfg.quotas {
        let n = items
            .iter()
            .filter(|i| i.explanation.sources.iter().any(|h| h.source == q.source))
            .count();
        let max = (q.max_share * req.k as f32).floor() as usize;
        prop_assert!(relaxed || n <= max.max(items.len().min(max)), "{} has {n} > {max}", q.source);
    }
    // Deterministic, and the batch path agrees.
    prop_assert_eq!(&rec.recommend(req).unwrap(), &feed);
    prop_assert_eq!(rec.recommend_batch(std::slice::from_ref(req)).pop().unwrap().unwrap(), feed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn feeds_keep_their_invariants_on_random_worlds(
        seed in 0u64..1_000,
        k in 1usize..40,
        surface in 0usize..3,
        user_pick in 0usize..1000,
        max_price in prop::option::of(20.0f32..200.0),
        exclude_n in 0usize..5,
        req_seed in any::<u64>(),
    ) {
        let world = generate(&SynthConfig { seed, ..SynthConfig::tiny() }).unwrap();
        let rec = setup(&world, RecommenderConfig::default());
        let user = if user_pick % 7 == 0 { UserId(123_456_789) } else {
            world.users[user_pick % world.users.len()].id
        };
        let surface = Surface::ALL[surface];
        let mut req = FeedRequest::new(user).k(k).surface(surface).seed(req_seed)
            .exclude((0..exclude_n).map(|i| world.catalog.product_id(ItemIdx(i as u32 * 7))));
        req.filters = RequestFilters { max_price, ..RequestFilters::default() };
        if surface == Surface::Search {
            req = req.search_text(omnifeed::synth::category_noun(CategoryId((seed % 5) as u32)));
        }
        check_feed(&rec, &req)?;
        // The last user has a recent search: omni pulls search candidates.
        let searcher = FeedRequest::new(world.users.last().unwrap().id).k(k).surface(Surface::Omni);
        check_feed(&rec, &searcher)?;
        // The same invariants with business rules in force and half the
        // users in an A/B arm.
        let ruled = with_rules_and_arm(&rec, &world, seed);
        check_feed(&ruled, &req)?;
        check_feed(&ruled, &searcher)?;
    }
}

/// `rec`'s state with a pin, a boost, product and merchant blocks, and an
/// experiment whose arm (half the users) changes the diversity objective.
fn with_rules_and_arm(rec: &Recommender, world: &World, seed: u64) -> Recommender {
    use omnifeed::business::{Blocklist, Boost, BoostTarget, BusinessRules, Pin};
    use omnifeed::experiment::{Experiment, Variant};
    let ids = world.catalog.product_ids();
    let pick = |i: u64| ids[((seed.wrapping_mul(31) + i * 97) % ids.len() as u64) as usize];
    let rules = BusinessRules {
        pins: Surface::ALL
            .iter()
            .map(|&surface| Pin {
                product: pick(1),
                surface,
                position: (seed % 5) as usize,
                window: None,
            })
            .collect(),
        boosts: vec![Boost {
            target: BoostTarget::Category(CategoryId((seed % 7) as u32)),
            factor: 3.0,
            window: None,
        }],
        blocks: Blocklist {
            products: vec![pick(2), pick(3)],
            merchants: vec![world.catalog.merchant_of(world.catalog.row(pick(4)).unwrap()).id],
            categories: Vec::new(),
        },
    };
    let arm = Experiment {
        name: "diversity".into(),
        salt: Some(format!("s{seed}")),
        variants: vec![Variant {
            name: "mmr05".into(),
            share: 0.5,
            config: "[rerank.feed]\ndiversity = { kind = \"mmr\", lambda = 0.5 }".parse().unwrap(),
        }],
    };
    Recommender::builder()
        .clock(Clock::SignalsAsOf)
        .state((*rec.state()).clone())
        .rules(rules)
        .experiments(vec![arm])
        .build()
        .unwrap()
}

#[test]
fn omni_blends_search_intents_with_interest() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let user = world.users.last().unwrap().id;
    let feed = rec.recommend(&FeedRequest::new(user).k(20).surface(Surface::Omni)).unwrap();
    let from = |id| {
        feed.items.iter().filter(|i| i.explanation.sources.iter().any(|h| h.source == id)).count()
    };
    // The default quota: search at least 20% (4 of 20), interest at most 70%.
    assert!(from("search") >= 4, "{}", from("search"));
    assert!(from("interest_ann") <= 14, "{}", from("interest_ann"));
    let search_trace = feed.trace.sources.iter().find(|t| t.source == "search").unwrap();
    assert!(search_trace.candidates > 0);
    // The feed surface does not run the search source at all.
    let plain = rec.recommend(&FeedRequest::new(user).k(20)).unwrap();
    assert!(plain.trace.sources.iter().all(|t| t.source != "search"));
}

#[test]
fn a_text_only_query_reaches_relevance_and_search_keeps_matches_in_order() {
    use omnifeed::features::col;
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let catalog = &world.catalog;
    for c in 0..5u32 {
        let noun = omnifeed::synth::category_noun(CategoryId(c));
        let req =
            FeedRequest::new(world.users[1].id).surface(Surface::Search).search_text(noun).k(20);
        let feed = rec.recommend(&req).unwrap();
        assert!(!feed.items.is_empty());
        // Text only: the title match is the query relevance, in [0, 1].
        for item in &feed.items {
            let title = catalog.title(catalog.row(item.product).unwrap()).unwrap_or("");
            let rel = item.explanation.features[col::RELEVANCE].value;
            assert!((0.0..=1.0).contains(&rel));
            if omnifeed::index::tokenize(title).iter().any(|t| t == noun) {
                assert!(rel > 0.0, "{title:?} matches {noun:?} but relevance is 0");
            }
        }
        // No caps on Search; MMR at 0.98 never places an item above a
        // better one by more than 2(1 - 0.98)/0.98 of the best value.
        let best = feed.items.iter().map(|i| i.score).fold(0.0f32, f32::max);
        let margin = 2.0 * (1.0 - 0.98) / 0.98 * best + 1e-6;
        for (i, a) in feed.items.iter().enumerate() {
            for b in &feed.items[i + 1..] {
                assert!(b.score - a.score <= margin, "{} above {} ({noun})", a.score, b.score);
            }
        }
    }
}

#[test]
fn search_respects_filters_and_ranks_title_matches() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let catalog = &world.catalog;
    let noun = omnifeed::synth::category_noun(CategoryId(2));
    let filters = RequestFilters { max_price: Some(80.0), ..RequestFilters::default() };
    let req = FeedRequest::new(world.users[0].id)
        .surface(Surface::Search)
        .search_text(noun)
        .filters(filters)
        .k(10);
    let feed = rec.recommend(&req).unwrap();
    assert!(!feed.items.is_empty());
    for item in &feed.items {
        let row = catalog.row(item.product).unwrap();
        assert!(catalog.prices()[row.index()] <= 80.0);
    }
    // The top results are title matches found by the search source.
    let top = &feed.items[0];
    let title = catalog.title(catalog.row(top.product).unwrap()).unwrap();
    assert!(title.contains(noun), "{title}");
    assert_eq!(top.explanation.sources[0].source, "search");
    // Category filter: only that category survives.
    let only = RequestFilters { categories: vec![CategoryId(2)], ..RequestFilters::default() };
    let feed = rec.recommend(&req.clone().filters(only)).unwrap();
    assert!(feed.items.iter().all(|i| catalog.categories()[catalog.row(i.product).unwrap().index()] == CategoryId(2)));
    assert!(feed.trace.removed.iter().all(|(r, _)| *r != RemovalReason::Excluded));
}

#[test]
fn rrf_and_weighted_fusion_hand_checked() {
    use omnifeed::index::Neighbor;
    let sem = [Neighbor { row: ItemIdx(1), score: 0.9 }, Neighbor { row: ItemIdx(2), score: 0.8 }];
    let lex = [(ItemIdx(2), 7.0), (ItemIdx(3), 3.5)];
    let mut out = CandidateBuf::new();
    SearchFusion::Rrf { k: 60.0 }.fuse(&sem, &lex, 10, &mut out);
    // 2: 1/62 + 1/61; 1: 1/61; 3: 1/62.
    let got: Vec<(u32, f32)> = out.as_slice().iter().map(|n| (n.row.0, n.score)).collect();
    assert_eq!(got[0].0, 2);
    assert!((got[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);
    assert_eq!((got[1].0, got[2].0), (1, 3));
    let mut out = CandidateBuf::new();
    SearchFusion::Weighted { semantic: 1.0, lexical: 0.5 }.fuse(&sem, &lex, 2, &mut out);
    // 2: 0.8 + 0.5·1 = 1.3; 1: 0.9; 3: 0.25 (cut by k = 2).
    let got: Vec<(u32, f32)> = out.as_slice().iter().map(|n| (n.row.0, n.score)).collect();
    assert_eq!(got, vec![(2, 1.3), (1, 0.9)]);
}

#[test]
fn the_fast_ranking_path_equals_the_naive_one() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let rows: Vec<ItemIdx> = (0..world.catalog.len() as u32).step_by(3).map(ItemIdx).collect();
    let mut scratch = rec.new_scratch();
    for (u, surface) in [(0, Surface::Feed), (5, Surface::Omni), (9, Surface::Search)] {
        let mut req = FeedRequest::new(world.users[u].id).k(25).surface(surface);
        if surface == Surface::Search {
            req = req.query(SearchQuery {
                text: None,
                embedding: Some(world.users[1].interests[0].1.clone()),
            });
        }
        let fast = rec.score_rows(&mut scratch, &req, &rows).unwrap().to_vec();
        let naive = rec.score_rows_naive(&req, &rows).unwrap();
        assert_eq!(fast.len(), 25);
        for (a, b) in fast.iter().zip(&naive) {
            assert!((a.score - b.score).abs() <= 1e-5 * b.score.max(1e-3), "{a:?} vs {b:?}");
        }
        let fa: HashSet<u32> = fast.iter().map(|s| s.row.0).collect();
        let na: HashSet<u32> = naive.iter().map(|s| s.row.0).collect();
        assert!(fa.intersection(&na).count() >= 24);
    }
}

/// The ranking core scores a caller's rows the same whatever their order:
/// its per-request lists (title matches, co-engagement, live, bought) are
/// looked up by row, not by position. A search with query text is the
/// case that reads the title matches.
#[test]
fn given_rows_score_the_same_in_any_order() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let sorted: Vec<ItemIdx> = (0..world.catalog.len() as u32).step_by(2).map(ItemIdx).collect();
    let mut shuffled = sorted.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let word = (0..world.catalog.len() as u32)
        .find_map(|r| world.catalog.title(ItemIdx(r)).and_then(|t| t.split_whitespace().next()))
        .unwrap()
        .to_string();
    let at = rec.state().signals().as_of();
    let mut scratch = rec.new_scratch();
    for (u, surface) in [(0, Surface::Feed), (5, Surface::Omni), (9, Surface::Search)] {
        let mut req = FeedRequest::new(world.users[u].id).k(sorted.len()).surface(surface).at(at);
        if surface == Surface::Search {
            req = req.search_text(&word);
        }
        let by_row = |rows: &[ItemIdx], scratch: &mut omnifeed::Scratch| {
            let mut got: Vec<(u32, u32)> = rec
                .score_rows(scratch, &req, rows)
                .unwrap()
                .iter()
                .map(|s| (s.row.0, s.score.to_bits()))
                .collect();
            got.sort_unstable();
            got
        };
        let (a, b) = (by_row(&sorted, &mut scratch), by_row(&shuffled, &mut scratch));
        assert_eq!(a.len(), sorted.len());
        assert_eq!(a, b, "{surface:?}");
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("omnifeed-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn scorers_load_from_npy_and_safetensors() {
    let weights = HeadWeights::default();
    let from_config = LogisticScorer::from_weights(&weights).unwrap();
    // .npy: 3 × (F + 1), bias last.
    let mut m = Vec::new();
    for h in 0..3 {
        m.extend_from_slice(from_config.head(h));
    }
    let npy = tmp("heads.npy");
    omnifeed::load::write_npy_matrix(&npy, F + 1, &m).unwrap();
    assert_eq!(LogisticScorer::from_npy(&npy).unwrap(), from_config);
    // safetensors: weight [3, F], bias [3], as torch.nn.Linear saves them.
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for h in 0..3 {
        w.extend_from_slice(&from_config.head(h)[..F]);
        b.push(from_config.head(h)[F]);
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (wb, bb) = (bytes(&w), bytes(&b));
    let tensors = [
        (
            "weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, F], &wb).unwrap(),
        ),
        (
            "bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &bb).unwrap(),
        ),
    ];
    let st = tmp("heads.safetensors");
    safetensors::serialize_to_file(tensors.clone(), None, &st).unwrap();
    assert_eq!(LogisticScorer::from_safetensors(&st).unwrap(), from_config);
    // An MLP: F → 4 (ReLU) → 3 (sigmoid), named like nn.Sequential.
    let w0 = bytes(&vec![0.1; 4 * F]);
    let b0 = bytes(&[0.0; 4]);
    let w2 = bytes(&[0.5; 12]);
    let b2 = bytes(&[-1.0; 3]);
    let mlp = [
        (
            "net.0.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, F], &w0).unwrap(),
        ),
        (
            "net.0.bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &b0).unwrap(),
        ),
        (
            "net.2.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 4], &w2).unwrap(),
        ),
        (
            "net.2.bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &b2).unwrap(),
        ),
    ];
    let mp = tmp("mlp.safetensors");
    safetensors::serialize_to_file(mlp, None, &mp).unwrap();
    let scorer = MlpScorer::from_safetensors(&mp).unwrap();
    // Hand-check one row: all features 1 → hidden 0.1·F each → out σ(0.5·4·0.1F − 1).
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = Recommender::builder()
        .state(setup(&world, RecommenderConfig::default()).state().as_ref().clone())
        .scorer(Box::new(scorer))
        .build()
        .unwrap();
    let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(5)).unwrap();
    for item in &feed.items {
        let sum: f32 = item.explanation.features.iter().map(|f| f.value).sum();
        let hidden = (0.1 * sum).max(0.0);
        let want = 1.0 / (1.0 + (-(0.5 * 4.0 * hidden - 1.0)).exp());
        assert!((item.explanation.heads[0].value - want).abs() < 1e-4);
    }
    // Wrong shapes and foreign files are errors naming the problem (an
    // earlier version's narrower matrix loads: see `MIN_OLDER_F`).
    let bad = tmp("bad.npy");
    omnifeed::load::write_npy_matrix(&bad, F + 2, &vec![0.0; 3 * (F + 2)]).unwrap();
    assert!(LogisticScorer::from_npy(&bad).unwrap_err().to_string().contains("shape"));
    let narrow = tmp("narrow.npy");
    omnifeed::load::write_npy_matrix(&narrow, 10, &[0.0; 3 * 10]).unwrap();
    assert!(LogisticScorer::from_npy(&narrow).unwrap_err().to_string().contains("shape"));
    let older = tmp("older.npy");
    omnifeed::load::write_npy_matrix(&older, F, &vec![0.5; 3 * F]).unwrap();
    let widened = LogisticScorer::from_npy(&older).unwrap();
    assert_eq!(widened.head(0)[F - 1], 0.0, "the newest column starts at 0");
    assert_eq!(widened.head(0)[F], 0.5, "the bias stays the bias");
    let junk = tmp("junk.safetensors");
    std::fs::write(&junk, b"not a tensor file at all").unwrap();
    assert!(matches!(
        LogisticScorer::from_safetensors(&junk).unwrap_err().kind(),
        ErrorKind::Parse { .. }
    ));
    assert!(MlpScorer::from_safetensors(&st).is_err(), "a single 'weight' is not a layer stack");
}

#[test]
fn config_reads_toml_and_names_bad_fields() {
    let cfg = RecommenderConfig::default();
    let back = RecommenderConfig::from_toml_str(&cfg.to_toml_string()).unwrap();
    assert_eq!(back, cfg);
    for (text, field) in [
        ("[sources]\ninterest = 0", "sources.interest"),
        ("[fusion.omni]\nquality = nan", "fusion.omni"),
        ("[rerank.search]\ndiversity = { kind = \"mmr\", lambda = 2.0 }", "rerank.search"),
        (
            "[[rerank.feed.quotas]]\nsource = \"popular\"\nmin_share = 0.9\nmax_share = 0.5",
            "rerank.feed",
        ),
        ("[scorer.pctr]\nshoe_size = 1.0", "scorer.weights"),
        ("seen_window = \"yes\"", "toml"),
        ("bought_window = -1", "bought_window"),
    ] {
        let e = RecommenderConfig::from_toml_str(text).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field: f, .. } if *f == field),
            "{text}: {e}"
        );
    }
}

#[test]
fn bad_requests_fail_closed_with_typed_errors() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = setup(&world, RecommenderConfig::default());
    let u = world.users[0].id;
    let e = rec.recommend(&FeedRequest::new(u).surface(Surface::Search)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { field: "request.query", .. }), "{e}");
    let wrong_dim = SearchQuery { text: None, embedding: Some(vec![1.0; 3]) };
    let e =
        rec.recommend(&FeedRequest::new(u).surface(Surface::Search).query(wrong_dim)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DimensionMismatch { .. }), "{e}");
    let nan = SearchQuery { text: None, embedding: Some(vec![f32::NAN; 16]) };
    let e = rec.recommend(&FeedRequest::new(u).query(nan)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NonFinite { .. }), "{e}");
    let zero = SearchQuery { text: None, embedding: Some(vec![0.0; 16]) };
    let e = rec.recommend(&FeedRequest::new(u).query(zero)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::ZeroVector { .. }), "{e}");
    let f = RequestFilters { min_price: Some(50.0), max_price: Some(10.0), ..Default::default() };
    assert!(rec.recommend(&FeedRequest::new(u).filters(f)).is_err());
    let e = rec.score_rows_naive(&FeedRequest::new(u), &[ItemIdx(u32::MAX)]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { .. }));
}

/// The value of the named feature in an explanation.
fn e_feature(e: &omnifeed::Explanation, name: &str) -> f32 {
    e.features.iter().find(|f| f.name == name).map_or(f32::NAN, |f| f.value)
}
