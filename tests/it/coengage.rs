//! Co-engagement item-to-item (issue 13) against a brute-force count.

use omnifeed::signals::CoEngagementConfig;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{Event, EventKind, ItemIdx, SignalConfig, Signals, Target, UserId};
use std::collections::HashMap;
use std::sync::Arc;

/// Clicks of 12 users on 9 products at hand-picked times, some pairs
/// beyond the gap; no decay (a century's half-life), no eviction.
#[test]
fn co_engagement_equals_a_brute_force_count() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let catalog = Arc::new(world.catalog.clone());
    let cc =
        CoEngagementConfig { neighbours: 64, recent: 3, max_gap: 1_000, half_life: 3_000_000_000 };
    let cfg = SignalConfig { co_engagement: cc, ..SignalConfig::default() };
    let w = cfg.weights.weight(&EventKind::Click);
    let mut x = 12345u64;
    let mut events = Vec::new();
    for u in 0..12u64 {
        let mut t = 10_000 + u as i64;
        for _ in 0..7 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let row = ItemIdx(((x >> 33) % 9) as u32);
            t += [200, 700, 1_500][((x >> 20) % 3) as usize];
            let p = catalog.product_id(row);
            events.push(Event::new(t, UserId(u), Target::Product(p), EventKind::Click));
        }
    }
    events.sort_by_key(|e| e.at);
    let (signals, report) = Signals::from_events(Arc::clone(&catalog), &events, &cfg).unwrap();
    assert_eq!(report.applied, events.len() as u64);

    // Brute force: each engagement pairs with the user's previous `recent`
    // engagements (by arrival) within the gap, other products only.
    let mut history: HashMap<UserId, Vec<(u32, i64)>> = HashMap::new();
    let mut co: HashMap<(u32, u32), f64> = HashMap::new();
    let mut total: HashMap<u32, f64> = HashMap::new();
    for e in &events {
        let row = catalog
            .row(match e.target {
                Target::Product(p) => p,
                _ => unreachable!(),
            })
            .unwrap()
            .0;
        let h = history.entry(e.user).or_default();
        for &(prev, t) in h.iter().rev().take(cc.recent) {
            if prev == row || e.at - t > cc.max_gap {
                continue;
            }
            for (a, b) in [(prev, row), (row, prev)] {
                *co.entry((a, b)).or_default() += f64::from(w);
                *total.entry(a).or_default() += f64::from(w);
            }
        }
        h.push((row, e.at));
    }
    let at = events.last().unwrap().at;
    let mut out = Vec::new();
    let mut checked = 0;
    for i in 0..9u32 {
        signals.co_engaged(ItemIdx(i), at, &mut out);
        let mut want: Vec<(u32, f64)> = co
            .iter()
            .filter(|((a, _), _)| *a == i)
            .map(|(&(_, b), &c)| (b, c / (total[&i] * total[&b]).sqrt()))
            .collect();
        want.sort_by_key(|p| p.0);
        let mut got: Vec<(u32, f64)> = out.iter().map(|&(r, s)| (r.0, f64::from(s))).collect();
        got.sort_by_key(|p| p.0);
        assert_eq!(got.len(), want.len(), "product row {i}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "row {i}");
            assert!((g.1 - w.1).abs() < 1e-4, "row {i} → {}: {} vs {}", g.0, g.1, w.1);
        }
        checked += got.len();
    }
    assert!(checked > 20, "the log pairs enough products ({checked})");
}

/// A full list keeps the heaviest neighbours: with room for 2, a product
/// co-engaged with many keeps the two most co-engaged.
#[test]
fn a_full_list_keeps_the_heaviest() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let catalog = Arc::new(world.catalog.clone());
    let cc =
        CoEngagementConfig { neighbours: 2, recent: 1, max_gap: 100, half_life: 3_000_000_000 };
    let cfg = SignalConfig { co_engagement: cc, ..SignalConfig::default() };
    let p = |r: u32| Target::Product(catalog.product_id(ItemIdx(r)));
    let mut events = Vec::new();
    let mut t = 1_000;
    // Row 0 then row k, by (k) users: row 0 pairs with 1 once, 2 twice,
    // 3 three times, 4 four times.
    let mut user = 0;
    for k in 1..=4u32 {
        for _ in 0..k {
            user += 1;
            events.push(Event::new(t, UserId(user), p(0), EventKind::Click));
            events.push(Event::new(t + 1, UserId(user), p(k), EventKind::Click));
            t += 10;
        }
    }
    let (signals, _) = Signals::from_events(catalog, &events, &cfg).unwrap();
    let mut out = Vec::new();
    signals.co_engaged(ItemIdx(0), t, &mut out);
    let mut rows: Vec<u32> = out.iter().map(|o| o.0.0).collect();
    rows.sort_unstable();
    assert_eq!(rows, vec![3, 4]);
}
