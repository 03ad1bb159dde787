//! The first feed, end to end, on a synthetic world whose truth we know.

use omnifeed::index::{HnswIndex, HnswParams};
use omnifeed::synth::{SynthConfig, World, generate};
use omnifeed::{
    Event, EventKind, FeedRequest, ProductId, Recommender, ServingState, SignalConfig, Signals,
    Target, UserId,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

fn state(world: &World, events: &[Event]) -> ServingState {
    let catalog = Arc::new(world.catalog.clone());
    let (signals, _) =
        Signals::from_events(Arc::clone(&catalog), events, &SignalConfig::default()).unwrap();
    let params = HnswParams { parallel_build: false, ..Default::default() };
    let index = HnswIndex::build(catalog.shared_embeddings(), params).unwrap();
    ServingState::new(catalog, Arc::new(index), Arc::new(signals)).unwrap()
}

/// Hit rate@k of `recommend` on each user's clicks (and better) after the split.
fn hit_rate(
    test: &HashMap<UserId, HashSet<ProductId>>,
    mut recommend: impl FnMut(UserId) -> Vec<ProductId>,
) -> f64 {
    let mut users: Vec<_> = test.keys().copied().collect();
    users.sort();
    let hits = users.iter().filter(|u| recommend(**u).iter().any(|p| test[u].contains(p))).count();
    hits as f64 / users.len() as f64
}

#[test]
fn learned_feed_beats_random_and_popularity_on_future_engagement() {
    let seed = 11;
    println!("seed {seed}");
    let world = generate(&SynthConfig { seed, ..SynthConfig::tiny() }).unwrap();
    let cut = world.events[world.events.len() * 7 / 10].at;
    let (train, future): (Vec<Event>, Vec<Event>) =
        world.events.iter().cloned().partition(|e| e.at < cut);
    let mut test: HashMap<UserId, HashSet<ProductId>> = HashMap::new();
    for e in &future {
        if let (Target::Product(p), EventKind::Click | EventKind::Cart | EventKind::Order { .. }) =
            (e.target, &e.kind)
        {
            test.entry(e.user).or_default().insert(p);
        }
    }
    assert!(test.len() > 30);
    let rec = Recommender::builder().state(state(&world, &train)).build().unwrap();
    let k = 20;
    let learned = hit_rate(&test, |u| {
        rec.recommend(&FeedRequest::new(u).k(k)).unwrap().items.iter().map(|i| i.product).collect()
    });
    let popular: Vec<ProductId> = rec.state().signals().trending()[..k]
        .iter()
        .map(|&r| world.catalog.product_id(r))
        .collect();
    let by_popularity = hit_rate(&test, |_| popular.clone());
    let ids = world.catalog.product_ids();
    let random = hit_rate(&test, |u| {
        (0..k)
            .map(|i| ids[((u.0 * 7919 + i as u64 * 104_729) % ids.len() as u64) as usize])
            .collect()
    });
    println!("hit@{k}: learned {learned:.3}, popularity {by_popularity:.3}, random {random:.3}");
    assert!(learned > 2.0 * random, "learned {learned} vs random {random}");
    assert!(learned > by_popularity, "learned {learned} vs popularity {by_popularity}");
}

#[test]
fn same_request_same_feed_and_swaps_are_atomic() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let rec = Arc::new(Recommender::builder().state(state(&world, &world.events)).build().unwrap());
    // A fixed time: the wall clock would move between the two feeds.
    let at = world.events.last().unwrap().at;
    let req = FeedRequest::new(world.users[1].id).k(12).seed(5).at(at);
    let first = rec.recommend(&req).unwrap();
    assert_eq!(rec.recommend(&req).unwrap(), first);

    // A state learned from half the log gives a different feed; while
    // threads query, swaps must hand every request one whole state.
    let half = state(&world, &world.events[..world.events.len() / 2]);
    let other = {
        let r = Recommender::builder().state(half.clone()).build().unwrap();
        r.recommend(&req).unwrap()
    };
    assert_ne!(other, first);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let rec = Arc::clone(&rec);
            let (req, first, other) = (req.clone(), first.clone(), other.clone());
            s.spawn(move || {
                for _ in 0..200 {
                    let got = rec.recommend(&req).unwrap();
                    assert!(got == first || got == other);
                }
            });
        }
        for i in 0..50 {
            rec.swap_state(if i % 2 == 0 { half.clone() } else { state(&world, &world.events) });
        }
    });
}

#[test]
fn a_request_without_explanations_gets_the_same_feed_with_empty_explanations() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let st = state(&world, &world.events);
    // One request time for every call (the default clock is the wall
    // clock, and decayed scores move with it).
    let at = st.signals().as_of();
    let bare = Recommender::builder().state(st.clone()).no_exposures().build().unwrap();
    let sink = Arc::new(omnifeed::exposure::MemorySink::new(1024));
    let config = omnifeed::exposure::ExposureConfig::default();
    let recorded =
        Recommender::builder().state(st).exposures(config, sink.clone()).build().unwrap();
    let mut nonempty = 0;
    for user in world.users.iter().take(40) {
        for surface in [omnifeed::Surface::Feed, omnifeed::Surface::Omni] {
            let req = FeedRequest::new(user.id).surface(surface).k(15).at(at);
            let full = bare.recommend(&req).unwrap();
            let plain = bare.recommend(&req.clone().explain(false)).unwrap();
            let pairs = full.items.iter().zip(&plain.items);
            assert_eq!(full.items.len(), plain.items.len());
            for (a, b) in pairs {
                assert_eq!(
                    (a.product, a.score, a.content, a.propensity),
                    (b.product, b.score, b.content, b.propensity)
                );
                assert_eq!(b.explanation, omnifeed::Explanation::default());
                nonempty += usize::from(!a.explanation.features.is_empty());
            }
            // The exposure recorder reads the ranked rows, not explanations:
            // none are built for it, and the recorded exposure still has
            // every item's features (below).
            let kept = recorded.recommend(&req.clone().explain(false)).unwrap();
            assert_eq!(kept.items, plain.items);
        }
    }
    assert!(nonempty > 0);
    recorded.exposures().unwrap().flush();
    let batches = sink.take();
    let e = batches.iter().flat_map(|b| &b.exposures).last().unwrap();
    assert_eq!(e.items.len(), 15);
    for i in 0..e.items.len() {
        assert_eq!(e.features_of(i).len(), omnifeed::rank::FEATURE_NAMES.len());
    }
}
