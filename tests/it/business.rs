//! Business rules (issue 11): pins, boosts and blocklists, swapped in at
//! runtime, listed in the explanations, honoured by the rerank: a pinned
//! item is never dropped by a cap, a blocked one is never shown.

use crate::it::adversarial::{recommender, user, world};
use omnifeed::business::{Blocklist, Boost, BoostTarget, BusinessRules, Pin, TimeRange};
use omnifeed::{
    ErrorKind, FeedRequest, ProductId, Recommender, RecommenderConfig, RemovalReason, ServingState,
    Surface,
};
use proptest::prelude::*;
use std::collections::HashSet;

fn fresh() -> Recommender {
    let state: ServingState = (*recommender().state()).clone();
    Recommender::builder().state(state).build().unwrap()
}

fn pin(product: ProductId, position: usize) -> Pin {
    Pin { product, surface: Surface::Feed, position, window: None }
}

/// Products of the world that no filter removes for `user()` (in stock,
/// not gated, not seen or bought): a plain feed's items.
fn eligible(rec: &Recommender, k: usize) -> Vec<ProductId> {
    rec.recommend(&FeedRequest::new(user()).k(k)).unwrap().items.iter().map(|i| i.product).collect()
}

#[test]
fn pins_take_their_positions_whatever_the_caps() {
    let mut cfg = RecommenderConfig::default();
    cfg.rerank.feed.category_cap = 1;
    cfg.rerank.feed.window = 8;
    let rec =
        Recommender::builder().config(cfg).state((*recommender().state()).clone()).build().unwrap();
    // Three products of one category, pinned at 0, 1 and 2: the cap of one
    // per window would hold two of them back.
    let base = eligible(&rec, 100);
    let catalog = &world().catalog;
    let cat = |p: ProductId| catalog.categories()[catalog.row(p).unwrap().index()];
    let c = cat(base[0]);
    let same: Vec<ProductId> = base.iter().copied().filter(|&p| cat(p) == c).take(3).collect();
    assert_eq!(same.len(), 3, "three eligible products of one category");
    let rules = BusinessRules {
        pins: vec![pin(same[2], 0), pin(same[0], 1), pin(same[1], 2)],
        ..Default::default()
    };
    rec.set_rules(&rules).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    let got: Vec<ProductId> = feed.items.iter().take(3).map(|i| i.product).collect();
    assert_eq!(got, vec![same[2], same[0], same[1]]);
    assert!(feed.items[..3].iter().all(|i| i.explanation.rules.contains(&"pin")));
    assert_eq!(feed.items.len(), 10);
    // A pin at or past k is not on this page; at k - 1 it is last.
    rec.set_rules(&BusinessRules { pins: vec![pin(base[40], 10)], ..Default::default() }).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    assert!(feed.items.iter().all(|i| i.product != base[40]));
    rec.set_rules(&BusinessRules { pins: vec![pin(base[40], 9)], ..Default::default() }).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    assert_eq!(feed.items.last().unwrap().product, base[40]);
    // Other surfaces are untouched.
    let omni = rec.recommend(&FeedRequest::new(user()).surface(Surface::Omni).k(10)).unwrap();
    assert!(omni.items.iter().all(|i| !i.explanation.rules.contains(&"pin")));
}

#[test]
fn a_pin_outside_its_window_or_of_a_blocked_product_does_nothing() {
    let rec = fresh();
    let base = eligible(&rec, 60);
    let at = rec.state().signals().as_of();
    let later =
        Pin { window: Some(TimeRange { start: at + 10, end: at + 20 }), ..pin(base[50], 0) };
    rec.set_rules(&BusinessRules { pins: vec![later], ..Default::default() }).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10).at(at)).unwrap();
    assert_ne!(feed.items[0].product, base[50]);
    let feed = rec.recommend(&FeedRequest::new(user()).k(10).at(at + 15)).unwrap();
    assert_eq!(feed.items[0].product, base[50]);
    let blocked = BusinessRules {
        pins: vec![pin(base[50], 0)],
        blocks: Blocklist { products: vec![base[50]], ..Default::default() },
        ..Default::default()
    };
    rec.set_rules(&blocked).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(60)).unwrap();
    assert!(feed.items.iter().all(|i| i.product != base[50]));
    assert!(feed.trace.removed.iter().any(|r| r.0 == RemovalReason::Blocked));
}

#[test]
fn blocklists_remove_products_merchants_and_categories() {
    let rec = fresh();
    let base = eligible(&rec, 30);
    let catalog = &world().catalog;
    let row = |p: ProductId| catalog.row(p).unwrap();
    let merchant = catalog.merchant_of(row(base[1])).id;
    let category = catalog.categories()[row(base[2]).index()];
    let rules = BusinessRules {
        blocks: Blocklist {
            products: vec![base[0]],
            merchants: vec![merchant],
            categories: vec![category],
        },
        ..Default::default()
    };
    rec.set_rules(&rules).unwrap();
    for surface in [Surface::Feed, Surface::Omni] {
        let feed = rec.recommend(&FeedRequest::new(user()).surface(surface).k(50)).unwrap();
        for i in &feed.items {
            let r = row(i.product);
            assert_ne!(i.product, base[0]);
            assert_ne!(catalog.merchant_of(r).id, merchant);
            assert_ne!(catalog.categories()[r.index()], category);
        }
        let (id, n) = *feed.trace.filters.iter().find(|f| f.0 == "blocklist").unwrap();
        assert!(n > 0, "{id}");
    }
    // A request cannot skip it.
    let e = rec.recommend(&FeedRequest::new(user()).skip("blocklist")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { field: "request.skip", .. }));
}

#[test]
fn boosts_promote_and_demote_and_say_so() {
    let rec = fresh();
    let base = eligible(&rec, 40);
    let low = base[35];
    let rules = BusinessRules {
        boosts: vec![
            Boost { target: BoostTarget::Product(low), factor: 1_000.0, window: None },
            Boost { target: BoostTarget::Product(base[0]), factor: 1e-6, window: None },
        ],
        ..Default::default()
    };
    rec.set_rules(&rules).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    let promoted =
        feed.items.iter().find(|i| i.product == low).expect("the boosted product is shown");
    assert!(promoted.explanation.rules.contains(&"boost"));
    assert_eq!(promoted.explanation.pre_rank, 0);
    assert!(feed.items.iter().all(|i| i.product != base[0]), "demoted out of the top 10");
}

#[test]
fn bad_rules_are_errors_and_the_rules_in_force_stay() {
    let rec = fresh();
    let good = BusinessRules {
        pins: vec![pin(world().catalog.product_ids()[0], 0)],
        ..Default::default()
    };
    rec.set_rules(&good).unwrap();
    let bad = [
        BusinessRules {
            boosts: vec![Boost {
                target: BoostTarget::Product(ProductId(1)),
                factor: 0.0,
                window: None,
            }],
            ..Default::default()
        },
        BusinessRules {
            boosts: vec![Boost {
                target: BoostTarget::Product(ProductId(1)),
                factor: f32::NAN,
                window: None,
            }],
            ..Default::default()
        },
        BusinessRules {
            pins: vec![pin(ProductId(1), omnifeed::limits::MAX_K)],
            ..Default::default()
        },
        BusinessRules {
            pins: vec![Pin {
                window: Some(TimeRange { start: 5, end: 5 }),
                ..pin(ProductId(1), 0)
            }],
            ..Default::default()
        },
    ];
    for rules in bad {
        let e = rec.set_rules(&rules).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e}");
    }
    assert_eq!(rec.rules().pins(Surface::Feed, 0).count(), 1, "the good rules stay");
    let e = BusinessRules::from_toml_str(
        "[[pins]]\nproduct = 1\nsurface = \"feed\"\nposition = 0\nposiiton = 1",
    )
    .unwrap_err();
    assert!(e.to_string().contains("posiiton"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random pins, boosts and blocks on random surfaces: no blocked
    /// product is shown, every pinned product that is shown carries `pin`,
    /// and the first pinned product the filters keep is at its position (or
    /// last, in a shorter feed).
    #[test]
    fn rules_hold_under_random_requests(
        pins in prop::collection::vec((0usize..500, 0usize..12), 0..4),
        blocks in prop::collection::vec(0usize..500, 0..30),
        boosts in prop::collection::vec((0usize..500, 0.01f32..100.0), 0..10),
        surface in prop_oneof![Just(Surface::Feed), Just(Surface::Omni)],
        k in 1usize..30,
        user_i in 0usize..100,
    ) {
        let ids = world().catalog.product_ids();
        let rules = BusinessRules {
            pins: pins.iter().map(|&(i, p)| Pin { product: ids[i], surface, position: p, window: None }).collect(),
            boosts: boosts.iter().map(|&(i, f)| Boost { target: BoostTarget::Product(ids[i]), factor: f, window: None }).collect(),
            blocks: Blocklist { products: blocks.iter().map(|&i| ids[i]).collect(), ..Default::default() },
        };
        let rec = fresh();
        rec.set_rules(&rules).unwrap();
        let u = world().users[user_i].id;
        let feed = rec.recommend(&FeedRequest::new(u).surface(surface).k(k)).unwrap();
        let blocked: HashSet<ProductId> = rules.blocks.products.iter().copied().collect();
        prop_assert!(feed.items.iter().all(|i| !blocked.contains(&i.product)));
        prop_assert!(feed.items.len() <= k);
        let pinned: HashSet<ProductId> = rules.pins.iter().map(|p| p.product).collect();
        for item in &feed.items {
            if item.explanation.rules.contains(&"pin") {
                prop_assert!(pinned.contains(&item.product));
            }
        }
        // Shown pinned products come in pin order, and the first one sits
        // at its position, or last in a shorter feed.
        let mut order: Vec<&Pin> = rules.pins.iter().collect();
        order.sort_by_key(|p| p.position);
        let mut seen = HashSet::new();
        order.retain(|p| seen.insert(p.product));
        let shown: Vec<&Pin> =
            order.into_iter().filter(|p| feed.items.iter().any(|i| i.product == p.product)).collect();
        let at = |p: &Pin| feed.items.iter().position(|i| i.product == p.product).unwrap();
        prop_assert!(shown.windows(2).all(|w| at(w[0]) < at(w[1])));
        if let Some(first) = shown.first() {
            let a = at(first);
            prop_assert!(a == first.position || a == feed.items.len() - 1, "{a} vs {}", first.position);
        }
    }
}
