//! The signal pipeline on hand-checkable cases: bridge crediting, live
//! momentum, bad events, lateness, repurchase cycles, governance, snapshots,
//! and the feed reading all of it.

use omnifeed::index::ExactIndex;
use omnifeed::signals::{
    Counter, Gate, PurchaseState, Rate, Rejection, SearchQuery, SignalConfig, SignalStore,
};
use omnifeed::{
    Catalog, CatalogBuilder, CategoryId, Content, ContentId, ContentKind, Event, EventKind,
    FeedRequest, ItemIdx, Merchant, MerchantId, MerchantStatus, Product, ProductId, Recommender,
    RemovalReason, ServingState, Target, UserId,
};
use std::sync::Arc;

const DAY: i64 = 86_400;

/// Products 10, 11 (category 1, merchant 1), 12 (category 2, merchant 2),
/// 13 (category 3, merchant 2); video 900 carries 10 and 11; live stream
/// 901 carries 12 and is on air from 1,000 to 5,000.
fn catalog() -> Arc<Catalog> {
    let mut b = CatalogBuilder::new();
    for m in [1, 2] {
        b.add_merchant(Merchant {
            id: MerchantId(m),
            experience: 0.8,
            status: MerchantStatus::Active,
        });
    }
    for (id, cat, m, e) in [
        (10, 1, 1, [1.0, 0.0, 0.0]),
        (11, 1, 1, [0.8, 0.6, 0.0]),
        (12, 2, 2, [0.0, 1.0, 0.0]),
        (13, 3, 2, [0.0, 0.0, 1.0]),
    ] {
        b.add_product(Product {
            id: ProductId(id),
            category: CategoryId(cat),
            price: 10.0,
            merchant: MerchantId(m),
            stock: 5,
            listed_at: 0,
            title: None,
            ..Product::default()
        });
        b.add_embedding(ProductId(id), &e);
    }
    b.add_content(Content {
        id: ContentId(900),
        kind: ContentKind::ShortVideo,
        creator: UserId(77),
        starts_at: 0,
        ends_at: None,
        products: vec![ProductId(10), ProductId(11)],
    });
    b.add_content(Content {
        id: ContentId(901),
        kind: ContentKind::LiveStream,
        creator: UserId(77),
        starts_at: 1_000,
        ends_at: Some(5_000),
        products: vec![ProductId(12)],
    });
    Arc::new(b.build().unwrap())
}

fn ev(at: i64, user: u64, target: Target, kind: EventKind) -> Event {
    Event::new(at, UserId(user), target, kind)
}

fn product(id: u64) -> Target {
    Target::Product(ProductId(id))
}

#[test]
fn content_performance_is_credited_to_linked_products_and_back() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    let video = Target::Content(ContentId(900));
    // A 15 s view of a video whose full watch is 30 s, then a click-through
    // to product 11 and an order of it, both attributed to the video.
    store.ingest(&ev(100, 1, video, EventKind::View { watch_secs: 15.0 })).unwrap();
    store.ingest(&ev(100, 1, product(11), EventKind::Click).via(ContentId(900))).unwrap();
    store
        .ingest(&ev(100, 1, product(11), EventKind::Order { price: Some(9.0) }).via(ContentId(900)))
        .unwrap();
    let s = store.publish();
    let (r10, r11) = (catalog.row(ProductId(10)).unwrap(), catalog.row(ProductId(11)).unwrap());
    let c = |c| s.content_counter(ContentId(900), c, 0, 100).unwrap();
    assert_eq!((c(Counter::View), c(Counter::Watch)), (1.0, 0.5));
    assert_eq!((c(Counter::Click), c(Counter::Order), c(Counter::Revenue)), (1.0, 1.0, 9.0));
    // The view is shared between the two products; the click and order
    // belong to product 11 alone.
    assert_eq!(s.counter(r10, Counter::View, 0, 100).unwrap(), 0.5);
    assert_eq!(s.counter(r10, Counter::Watch, 0, 100).unwrap(), 0.25);
    assert_eq!(s.counter(r10, Counter::Click, 0, 100).unwrap(), 0.0);
    assert_eq!(s.counter(r11, Counter::View, 0, 100).unwrap(), 0.5);
    assert_eq!(s.counter(r11, Counter::Click, 0, 100).unwrap(), 1.0);
    assert_eq!(s.counter(r11, Counter::Order, 0, 100).unwrap(), 1.0);
    // Merchant 1 and category 1 see everything of products 10 and 11.
    assert_eq!(s.merchant_counter(MerchantId(1), Counter::View, 0, 100), Some(1.0));
    assert_eq!(s.category_counter(CategoryId(1), Counter::Order, 0, 100), Some(1.0));
    assert_eq!(s.merchant_counter(MerchantId(2), Counter::View, 0, 100), Some(0.0));
    // Product signals seen from the content: the mean of its products' rates.
    let want = (s.rate(r10, Rate::Cvr) + s.rate(r11, Rate::Cvr)) / 2.0;
    assert_eq!(s.content_products_rate(ContentId(900), Rate::Cvr), Some(want));
    assert_eq!(s.best_content(r10), Some(ContentId(900)));
    assert_eq!(s.best_content(catalog.row(ProductId(13)).unwrap()), None);
    // Decay: one half-life (1 hour) later, half.
    assert_eq!(s.counter(r11, Counter::Order, 0, 100 + 3_600).unwrap(), 0.5);
    // Out-of-range reads are None, not panics.
    assert_eq!(s.counter(r11, Counter::Order, 3, 100), None);
    assert_eq!(s.counter(ItemIdx(99), Counter::Order, 0, 100), None);
    assert_eq!(s.content_counter(ContentId(900), Counter::View, 9, 100), None);
}

#[test]
fn live_momentum_rises_on_air_and_dies_after_the_end() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    let live = Target::Content(ContentId(901));
    // A view before the start does not count toward momentum.
    store.ingest(&ev(900, 1, live, EventKind::View { watch_secs: 5.0 })).unwrap();
    for (i, at) in (1_000..4_000).step_by(100).enumerate() {
        store.ingest(&ev(at, 2 + i as u64, live, EventKind::View { watch_secs: 5.0 })).unwrap();
    }
    let s = store.publish();
    let m = |at| s.live_momentum(ContentId(901), at).unwrap();
    assert_eq!(m(999), 0.0);
    assert_eq!(s.is_on_air(ContentId(901), 3_000), Some(true));
    assert_eq!(s.is_on_air(ContentId(901), 5_000), Some(false));
    // While on air: the decayed count of views (half-life 300 s).
    let at = 3_900;
    let want: f64 =
        (1_000..4_000).step_by(100).map(|t| omnifeed::signals::decay_factor(300.0, at - t)).sum();
    assert!((f64::from(m(at)) - want).abs() < 1e-4 * want, "{} vs {want}", m(at));
    // After the end it decays fast (half-life 60 s) and reaches exactly 0.
    assert!(m(5_060) < 0.51 * m(5_000) && m(5_060) > 0.0);
    assert_eq!(m(5_000 + 3_600), 0.0);
    assert_eq!(s.live_momentum(ContentId(900), 3_000), Some(0.0));
    assert_eq!(s.live_momentum(ContentId(1), 3_000), None);
}

#[test]
fn every_bad_event_is_counted_by_cause_and_changes_nothing() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    store.ingest(&ev(10_000, 1, product(10), EventKind::Click)).unwrap();
    let before = store.publish();
    let bad = [
        ev(10_000, 1, product(99), EventKind::Click),
        ev(10_000, 1, Target::Content(ContentId(99)), EventKind::Like),
        ev(10_000, 1, product(10), EventKind::Click).via(ContentId(99)),
        ev(10_000, 1, Target::Merchant(MerchantId(99)), EventKind::Complaint),
        ev(10_000, 1, Target::Content(ContentId(900)), EventKind::View { watch_secs: f32::NAN }),
        ev(10_000, 1, product(10), EventKind::Order { price: Some(-1.0) }),
        ev(10_000, 1, product(10), EventKind::Rating { value: f32::INFINITY }),
        Event::search(10_000, UserId(1), SearchQuery::default()),
        Event::search(
            10_000,
            UserId(1),
            SearchQuery { text: None, embedding: Some(vec![1.0, 0.0]) },
        ),
        Event::search(
            10_000,
            UserId(1),
            SearchQuery { text: None, embedding: Some(vec![f32::NAN, 0.0, 0.0]) },
        ),
        Event::search(10_000, UserId(1), SearchQuery { text: None, embedding: Some(vec![0.0; 3]) }),
        ev(10_000, 1, Target::None, EventKind::Click),
        ev(10_000, 1, Target::Merchant(MerchantId(1)), EventKind::Order { price: None }),
        ev(10_000, 1, Target::Content(ContentId(900)), EventKind::Click).via(ContentId(900)),
        ev(10_000 - 3_601, 1, product(10), EventKind::Click),
    ];
    for e in &bad {
        assert!(store.ingest(e).is_err(), "{e:?} was accepted");
    }
    let r = *store.report();
    assert_eq!(r.events, 1 + bad.len() as u64);
    assert_eq!(r.applied, 1);
    assert_eq!(r.rejected(), bad.len() as u64);
    assert_eq!((r.unknown_product, r.unknown_content, r.unknown_merchant), (1, 2, 1));
    assert_eq!((r.bad_value, r.bad_query, r.wrong_target, r.too_late), (3, 4, 3, 1));
    let err = store.ingest(&ev(0, 1, product(10), EventKind::Click)).unwrap_err();
    assert!(matches!(err, Rejection::TooLate { at: 0, watermark: 10_000 }));
    assert!(err.to_string().contains("too late"), "{err}");
    // Nothing moved: counters, profiles, rates.
    let after = store.publish();
    let row = catalog.row(ProductId(10)).unwrap();
    for c in Counter::ALL {
        assert_eq!(after.counter(row, c, 0, 10_000), before.counter(row, c, 0, 10_000));
    }
    let (p0, p1) = (before.profile(UserId(1)).unwrap(), after.profile(UserId(1)).unwrap());
    assert_eq!(p0, p1);
    assert_eq!(after.rate(row, Rate::Ctr), before.rate(row, Rate::Ctr));
}

#[test]
fn late_events_within_the_lateness_are_applied_exactly() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    store.ingest(&ev(10_000, 1, product(10), EventKind::Click)).unwrap();
    store.ingest(&ev(10_000 - 3_600, 1, product(10), EventKind::Click)).unwrap();
    let s = store.publish();
    let row = catalog.row(ProductId(10)).unwrap();
    // Half-life 1 hour: 1 + 1/2.
    assert!((s.counter(row, Counter::Click, 0, 10_000).unwrap() - 1.5).abs() < 1e-6);
    assert_eq!(s.as_of(), 10_000);
}

#[test]
fn snapshots_do_not_move_when_the_store_does() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    store.ingest(&ev(100, 1, product(10), EventKind::Cart)).unwrap();
    let first = store.publish();
    let profile = first.profile(UserId(1)).unwrap().clone();
    for t in 0..50 {
        store.ingest(&ev(200 + t, 1, product(12), EventKind::Order { price: None })).unwrap();
        store.ingest(&ev(200 + t, 2, product(10), EventKind::Cart)).unwrap();
    }
    let second = store.publish();
    let row = catalog.row(ProductId(10)).unwrap();
    assert_eq!(first.counter(row, Counter::Cart, 2, 100).unwrap(), 1.0);
    assert_eq!(first.profile(UserId(1)), Some(&profile));
    assert!(first.profile(UserId(2)).is_none());
    assert!(second.counter(row, Counter::Cart, 2, 249).unwrap() > 50.0);
    assert_eq!(second.profile(UserId(1)).unwrap().purchases().len(), 16);
}

#[test]
fn repurchase_cycle_is_recovered_from_a_log_with_a_known_cycle() {
    let catalog = catalog();
    let mut events = Vec::new();
    // 40 users buy product 10 (category 1) every 6 days ± 6 hours; they buy
    // product 13 (category 3) once.
    for u in 0..40u64 {
        let mut t = 1_000_000 + (u as i64) * 3_000;
        for k in 0..5 {
            let jitter = ((u * 31 + k * 17) % 13) as i64 * 3_600 - 6 * 3_600;
            events.push(ev(t, u + 1, product(10), EventKind::Order { price: Some(5.0) }));
            t += 6 * DAY + jitter;
        }
        events.push(ev(1_000_000 + u as i64, u + 1, product(13), EventKind::Order { price: None }));
    }
    let (s, report) =
        omnifeed::Signals::from_events(Arc::clone(&catalog), &events, &SignalConfig::default())
            .unwrap();
    assert_eq!(report.applied, events.len() as u64, "{report:?}");
    let cons = s.repurchase_cycle(CategoryId(1)).unwrap();
    assert_eq!((cons.buyers, cons.repeats), (40, 160));
    assert!(cons.consumable);
    let cycle = cons.cycle.unwrap() as f64 / DAY as f64;
    // Quarter-octave bins: within 10% of 6 days.
    assert!((cycle - 6.0).abs() < 0.6, "cycle {cycle} days");
    let durable = s.repurchase_cycle(CategoryId(3)).unwrap();
    assert_eq!((durable.buyers, durable.repeats, durable.consumable), (40, 0, false));

    let p = s.profile(UserId(1)).unwrap();
    let last = p.bought_at(catalog.row(ProductId(10)).unwrap()).unwrap();
    let (r10, r13) = (catalog.row(ProductId(10)).unwrap(), catalog.row(ProductId(13)).unwrap());
    assert!(matches!(s.purchase_state(p, r10, last + DAY), PurchaseState::Bought { .. }));
    match s.purchase_state(p, r10, last + 6 * DAY) {
        PurchaseState::Due { score, .. } => assert!(score > 0.95, "{score}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.purchase_state(p, r13, last + 60 * DAY), PurchaseState::Bought { .. }));
    assert_eq!(s.due_purchases(p, last + 6 * DAY).first().map(|d| d.0), Some(r10));
    assert_eq!(
        s.purchase_state(p, catalog.row(ProductId(12)).unwrap(), last),
        PurchaseState::NotBought
    );
}

#[test]
fn refunds_and_complaints_move_merchant_scores_and_gate_problem_products() {
    let catalog = catalog();
    let mut events = Vec::new();
    for u in 0..60u64 {
        let at = 10_000 + u as i64;
        // Merchant 1 (product 10): orders, half refunded, some complaints.
        events.push(ev(at, u, product(10), EventKind::Order { price: None }));
        if u % 2 == 0 {
            events.push(ev(at, u, product(10), EventKind::Refund));
        }
        if u % 5 == 0 {
            events.push(ev(at, u, Target::Merchant(MerchantId(1)), EventKind::Complaint));
        }
        // Merchant 2 (product 12): clean orders.
        events.push(ev(at, u, product(12), EventKind::Order { price: None }));
    }
    let (s, _) =
        omnifeed::Signals::from_events(Arc::clone(&catalog), &events, &SignalConfig::default())
            .unwrap();
    let (bad, good) = (s.merchant_score(MerchantId(1)).unwrap(), s.merchant_score(MerchantId(2)));
    assert!(bad < 0.8 - 0.1, "bad merchant {bad}");
    assert_eq!(good, Some(0.8));
    let r10 = catalog.row(ProductId(10)).unwrap();
    assert!(s.rate(r10, Rate::RefundRate) > 0.3);
    assert_eq!(s.gate(r10), Some(Gate::Refunds));
    assert_eq!(s.quality(r10), bad);
    assert_eq!(s.gate(catalog.row(ProductId(12)).unwrap()), None);

    // Manual flags and suspensions, and their errors.
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    store.flag_product(ProductId(13), true).unwrap();
    store.suspend_merchant(MerchantId(1), true).unwrap();
    assert!(store.flag_product(ProductId(5), true).is_err());
    assert!(store.suspend_merchant(MerchantId(5), true).is_err());
    let s = store.publish();
    assert_eq!(s.gate(catalog.row(ProductId(13)).unwrap()), Some(Gate::Flagged));
    assert_eq!(s.gate(catalog.row(ProductId(11)).unwrap()), Some(Gate::MerchantSuspended));
    assert_eq!(s.is_suspended(MerchantId(1)), Some(true));
    store.suspend_merchant(MerchantId(1), false).unwrap();
    assert_eq!(store.publish().gate(catalog.row(ProductId(11)).unwrap()), None);
}

#[test]
fn searches_become_intents() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    let q = SearchQuery { text: Some("  red scarf ".into()), embedding: Some(vec![0.0, 3.0, 4.0]) };
    store.ingest(&Event::search(50, UserId(3), q)).unwrap();
    let s = store.publish();
    let intent = s.profile(UserId(3)).unwrap().searches().next().unwrap().clone();
    assert_eq!(intent.text.as_deref(), Some("red scarf"));
    assert_eq!(intent.vector.as_deref(), Some(&[0.0, 0.6, 0.8][..]));
}

#[test]
fn bad_config_names_the_field() {
    let catalog = catalog();
    let cases: [(SignalConfig, &str); 4] = [
        (SignalConfig { half_lives: vec![], ..Default::default() }, "signals.half_lives"),
        (SignalConfig { rate_half_life: 3, ..Default::default() }, "signals.rate_half_life"),
        (SignalConfig { lateness: -1, ..Default::default() }, "signals.lateness"),
        (
            SignalConfig {
                profiles: omnifeed::signals::ProfileConfig { interests: 0, ..Default::default() },
                ..Default::default()
            },
            "signals.profiles.interests",
        ),
    ];
    for (cfg, field) in cases {
        let e = SignalStore::new(Arc::clone(&catalog), cfg).unwrap_err();
        assert!(
            matches!(e.kind(), omnifeed::ErrorKind::InvalidConfig { field: f, .. } if *f == field),
            "{e}"
        );
    }
}

#[test]
fn the_feed_filters_gated_bought_and_seen_products_with_reasons() {
    let catalog = catalog();
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    // User 1 likes the first axis; bought 10 (durable category 1: nobody
    // repurchases), was just shown 11; 13 is flagged.
    store.ingest(&ev(100, 1, product(10), EventKind::Order { price: None })).unwrap();
    store.ingest(&ev(200, 1, product(11), EventKind::Impression)).unwrap();
    store.ingest(&ev(200, 2, product(12), EventKind::Click)).unwrap();
    store.flag_product(ProductId(13), true).unwrap();
    let signals = store.publish();
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals)).unwrap();
    let rec = Recommender::builder().state(state).build().unwrap();
    let feed = rec.recommend(&FeedRequest::new(UserId(1)).k(4).at(300)).unwrap();
    let ids: Vec<ProductId> = feed.items.iter().map(|i| i.product).collect();
    assert_eq!(ids, vec![ProductId(12)]);
    let mut removed = feed.trace.removed.clone();
    removed.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        removed,
        vec![
            (RemovalReason::Bought, 1),
            (RemovalReason::Gated(Gate::Flagged), 1),
            (RemovalReason::Seen, 1),
        ]
    );
    // Long after the seen window, 11 comes back; 10 stays bought.
    let later = rec.recommend(&FeedRequest::new(UserId(1)).k(4).at(300 + 3_600)).unwrap();
    let ids: Vec<ProductId> = later.items.iter().map(|i| i.product).collect();
    assert!(ids.contains(&ProductId(11)) && !ids.contains(&ProductId(10)), "{ids:?}");
    assert_eq!(ItemIdx(0), catalog.row(ProductId(10)).unwrap());
    // After the bought window (a day) 10 is the ranker's to place again,
    // with its `bought` feature set; nothing is removed as bought.
    let window = rec.config().bought_window;
    assert_eq!(window, 86_400);
    let next_day = rec.recommend(&FeedRequest::new(UserId(1)).k(4).at(100 + window + 1)).unwrap();
    assert!(next_day.trace.removed.iter().all(|r| r.0 != RemovalReason::Bought));
    let ten = next_day.items.iter().find(|i| i.product == ProductId(10)).expect("10 is back");
    let bought = ten.explanation.features.iter().find(|f| f.name == "bought").unwrap();
    assert_eq!(bought.value, 1.0);
}

#[test]
fn ingest_runs_while_queries_run() {
    let world = omnifeed::synth::generate(&omnifeed::synth::SynthConfig::tiny()).unwrap();
    let catalog = Arc::new(world.catalog.clone());
    let index: Arc<dyn omnifeed::index::VectorIndex> =
        Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
    let state = |signals| ServingState::new(Arc::clone(&catalog), Arc::clone(&index), signals);
    let rec =
        Recommender::builder().state(state(Arc::new(store.publish())).unwrap()).build().unwrap();
    let users: Vec<UserId> = world.users.iter().take(20).map(|u| u.id).collect();
    let chunks: Vec<&[Event]> = world.events.chunks(world.events.len() / 10 + 1).collect();
    std::thread::scope(|s| {
        for t in 0..2 {
            let (rec, users) = (&rec, &users);
            s.spawn(move || {
                for i in 0..300 {
                    let req = FeedRequest::new(users[(i + t) % users.len()]).k(10);
                    let feed = rec.recommend(&req).unwrap();
                    // Every feed comes from one whole snapshot: each item's
                    // value is its fusion product, no duplicates.
                    for item in &feed.items {
                        let p: f32 =
                            item.explanation.parts.iter().map(|p| p.value.powf(p.weight)).product();
                        assert!((p - item.score).abs() <= 1e-4 * item.score.max(1e-3));
                    }
                    let mut ids: Vec<ProductId> = feed.items.iter().map(|i| i.product).collect();
                    ids.sort();
                    ids.dedup();
                    assert_eq!(ids.len(), feed.items.len());
                }
            });
        }
        for chunk in &chunks {
            store.ingest_batch(chunk);
            rec.swap_state(state(Arc::new(store.publish())).unwrap());
        }
    });
    // The last state is exactly what a store fed the whole log publishes.
    let (whole, _) = omnifeed::Signals::from_events(
        Arc::clone(&catalog),
        &world.events,
        &SignalConfig::default(),
    )
    .unwrap();
    let fresh = Recommender::builder().state(state(Arc::new(whole)).unwrap()).build().unwrap();
    for &u in &users {
        let req = FeedRequest::new(u).k(10);
        assert_eq!(rec.recommend(&req).unwrap(), fresh.recommend(&req).unwrap());
    }
}
