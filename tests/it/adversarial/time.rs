//! Class 1: time arithmetic. Absurd timestamps are rejected as their own
//! kind, never wrap the decay, never move the store's clock; every time
//! difference saturates.

use super::*;
use omnifeed::ids::{elapsed, shift};
use omnifeed::signals::{Rejection, TimeWindow, decay_factor};
use omnifeed::{ErrorKind, Event, EventKind, FeedRequest, Target, UserId};
use proptest::prelude::*;

fn click(at: i64) -> Event {
    let p = world().catalog.product_ids()[0];
    Event::new(at, UserId(1), Target::Product(p), EventKind::Click)
}

fn fresh_store(cfg: SignalConfig) -> SignalStore {
    SignalStore::new(Arc::new(world().catalog.clone()), cfg).unwrap()
}

#[test]
fn the_default_window_accepts_1970_to_2100_and_nothing_else() {
    let cases: [(i64, bool); 12] = [
        (i64::MIN, false),
        (i64::MIN + 1, false),
        (-86_400 * 365, false),
        (-1, false),
        (0, true),
        (1_790_812_800, true),
        (4_102_444_799, true),
        (4_102_444_800, false),
        (1_000_000_000_000_000, false),
        (i64::MAX / 2, false),
        (i64::MAX - 1, false),
        (i64::MAX, false),
    ];
    for (at, accepted) in cases {
        // A fresh store each time: lateness plays no part.
        let mut s = fresh_store(SignalConfig::default());
        let got = s.ingest(&click(at));
        if accepted {
            assert_eq!(got, Ok(()), "at {at}");
            assert_eq!(s.watermark(), Some(at));
        } else {
            assert_eq!(
                got,
                Err(Rejection::OutOfWindow { at, min: 0, max: 4_102_444_800 }),
                "at {at}"
            );
            assert_eq!(s.watermark(), None, "a rejected event sets no clock");
            assert_eq!(s.report().out_of_window, 1);
            assert_eq!(s.report().applied, 0);
        }
    }
}

#[test]
fn one_absurd_event_neither_poisons_signals_nor_moves_the_clock() {
    let mut s = store();
    let before = s.watermark();
    for at in [i64::MIN, i64::MIN + 3_600, i64::MAX, i64::MAX - 1] {
        assert!(matches!(s.ingest(&click(at)), Err(Rejection::OutOfWindow { .. })));
    }
    assert_eq!(s.watermark(), before);
    assert_eq!(s.report().out_of_window, 4);
    let signals = s.publish();
    assert_signals_finite(&signals);
    let rec = recommender_with(signals, RecommenderConfig::default());
    let feed = rec.recommend(&FeedRequest::new(user()).k(20)).unwrap();
    assert_eq!(feed.items.len(), 20);
    assert_feed_finite(&feed);
}

#[test]
fn a_custom_window_is_half_open() {
    let cfg = SignalConfig { time_window: TimeWindow { min: 100, max: 200 }, ..Default::default() };
    for (at, ok) in [(99, false), (100, true), (199, true), (200, false)] {
        let mut s = fresh_store(cfg.clone());
        let got = s.ingest(&click(at));
        assert_eq!(got.is_ok(), ok, "at {at}: {got:?}");
        if !ok {
            assert_eq!(got, Err(Rejection::OutOfWindow { at, min: 100, max: 200 }));
        }
    }
}

#[test]
fn an_empty_or_absurd_window_is_a_config_error() {
    for w in [
        TimeWindow { min: 5, max: 5 },
        TimeWindow { min: 6, max: 5 },
        TimeWindow { min: i64::MIN, max: i64::MAX },
    ] {
        let cfg = SignalConfig { time_window: w, ..Default::default() };
        let e = SignalStore::new(Arc::new(world().catalog.clone()), cfg).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field: "signals.time_window", .. }),
            "{w:?}: {e}"
        );
    }
}

#[test]
fn max_ahead_keeps_a_far_future_event_from_moving_the_clock() {
    let cfg = SignalConfig { max_ahead: Some(3_600), ..Default::default() };
    let mut s = fresh_store(cfg);
    let t = 1_790_812_800;
    assert_eq!(s.ingest(&click(t)), Ok(()));
    assert_eq!(s.ingest(&click(t + 3_600)), Ok(()));
    let far = t + 3_600 + 3_601;
    assert_eq!(
        s.ingest(&click(far)),
        Err(Rejection::OutOfWindow { at: far, min: 0, max: t + 3_600 + 3_601 })
    );
    assert_eq!(s.watermark(), Some(t + 3_600));
}

#[test]
fn durations_in_config_are_bounded() {
    let d = SignalConfig::default;
    let cases: Vec<(SignalConfig, &str)> = vec![
        (SignalConfig { half_lives: vec![i64::MAX], ..d() }, "signals.half_lives"),
        (SignalConfig { half_lives: vec![3_600, 0], ..d() }, "signals.half_lives"),
        (SignalConfig { lateness: i64::MAX, ..d() }, "signals.lateness"),
        (SignalConfig { lateness: -1, ..d() }, "signals.lateness"),
        (SignalConfig { fresh_age: i64::MAX, ..d() }, "signals.fresh_age"),
        (SignalConfig { max_ahead: Some(0), ..d() }, "signals.max_ahead"),
        (
            SignalConfig {
                profiles: omnifeed::signals::ProfileConfig {
                    long_half_life: i64::MAX,
                    ..Default::default()
                },
                ..d()
            },
            "signals.profiles.long_half_life",
        ),
        (
            SignalConfig {
                profiles: omnifeed::signals::ProfileConfig {
                    session_gap: i64::MAX,
                    ..Default::default()
                },
                ..d()
            },
            "signals.profiles.session_gap",
        ),
        (
            SignalConfig {
                live: omnifeed::signals::LiveConfig {
                    end_half_life: i64::MAX,
                    ..Default::default()
                },
                ..d()
            },
            "signals.live.end_half_life",
        ),
        (
            SignalConfig {
                repurchase: omnifeed::signals::RepurchaseConfig {
                    min_interval: i64::MAX,
                    ..Default::default()
                },
                ..d()
            },
            "signals.repurchase.min_interval",
        ),
    ];
    for (cfg, field) in cases {
        assert_config_field(&cfg.validate().unwrap_err(), field);
    }
}

#[test]
fn the_longest_lateness_still_decays_finitely() {
    let cfg = SignalConfig { lateness: omnifeed::limits::MAX_SPAN_SECS, ..Default::default() };
    let mut s = fresh_store(cfg);
    let newest = 4_102_444_799;
    s.ingest(&click(newest)).unwrap();
    // Late by 100 years, just inside the lateness: applied, decayed to ~0.
    s.ingest(&click(newest - omnifeed::limits::MAX_SPAN_SECS)).unwrap();
    assert!(matches!(
        s.ingest(&click(newest - omnifeed::limits::MAX_SPAN_SECS - 1)),
        Err(Rejection::TooLate { .. })
    ));
    let signals = s.publish();
    assert_signals_finite(&signals);
}

#[test]
fn request_times_outside_the_window_are_errors() {
    let rec = recommender();
    for at in [i64::MIN, -1, 4_102_444_800, i64::MAX] {
        let e = rec.recommend(&FeedRequest::new(user()).at(at)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidValue { field: "request.at", .. }),
            "{at}: {e}"
        );
    }
    // Inside the window but far from the data: served, finite.
    for at in [0, 4_102_444_799] {
        let feed = rec.recommend(&FeedRequest::new(user()).at(at).k(10)).unwrap();
        assert_eq!(feed.items.len(), 10);
        assert_feed_finite(&feed);
    }
}

#[test]
fn extreme_listing_and_content_times_are_served_finitely() {
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.5, status: MerchantStatus::Active });
    for (i, listed) in [(0u64, i64::MIN), (1, i64::MAX), (2, 0), (3, 1_790_000_000)] {
        b.add_product(Product { listed_at: listed, ..product(i, 5.0) });
        b.add_embedding(ProductId(i), &[1.0, i as f32]);
    }
    b.add_content(omnifeed::Content {
        id: omnifeed::ContentId(9),
        kind: omnifeed::ContentKind::LiveStream,
        creator: UserId(1),
        starts_at: i64::MIN,
        ends_at: Some(i64::MAX),
        products: vec![ProductId(0), ProductId(1)],
    });
    let catalog = Arc::new(b.build().unwrap());
    let ev = |at, p| Event::new(at, UserId(5), Target::Product(ProductId(p)), EventKind::Click);
    let view = Event::new(
        1_790_000_100,
        UserId(5),
        Target::Content(omnifeed::ContentId(9)),
        EventKind::View { watch_secs: 30.0 },
    );
    let (signals, report) = Signals::from_events(
        Arc::clone(&catalog),
        &[ev(1_790_000_000, 0), ev(1_790_000_050, 1), view],
        &SignalConfig::default(),
    )
    .unwrap();
    assert_eq!(report.applied, 3);
    assert_signals_finite(&signals);
    let rec = recommender_with(signals, RecommenderConfig::default());
    for at in [0, 1_790_000_200, 4_102_444_799] {
        let feed = rec.recommend(&FeedRequest::new(UserId(5)).at(at).k(4)).unwrap();
        assert!(!feed.items.is_empty());
        assert_feed_finite(&feed);
    }
}

#[test]
fn time_helpers_saturate() {
    assert_eq!(elapsed(i64::MAX, i64::MIN), i64::MAX);
    assert_eq!(elapsed(i64::MIN, i64::MAX), i64::MIN);
    assert_eq!(shift(i64::MAX, i64::MAX), i64::MAX);
    assert_eq!(shift(i64::MIN, i64::MIN), i64::MIN);
    // A negative difference never grows a counter.
    assert_eq!(decay_factor(3_600.0, -1_000_000), 1.0);
    assert_eq!(decay_factor(3_600.0, i64::MAX), 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Arbitrary i64 timestamps in arbitrary order, mixed with the world's
    /// events: every counter, rate and prior stays finite, and the clock
    /// stays inside the window.
    #[test]
    fn arbitrary_timestamps_keep_every_signal_finite(
        times in prop::collection::vec(
            prop_oneof![
                any::<i64>(),
                Just(i64::MIN),
                Just(i64::MAX),
                0i64..4_102_444_800,
                1_790_000_000i64..1_800_000_000,
            ],
            1..40,
        ),
        lateness in prop_oneof![Just(3_600i64), Just(omnifeed::limits::MAX_SPAN_SECS)],
    ) {
        let w = world();
        let cfg = SignalConfig { lateness, ..Default::default() };
        let mut s = SignalStore::new(Arc::new(w.catalog.clone()), cfg).unwrap();
        s.ingest_batch(&w.events[..200]);
        let ids = w.catalog.product_ids();
        for (i, &at) in times.iter().enumerate() {
            let p = ids[i % ids.len()];
            let kind = match i % 3 {
                0 => EventKind::Click,
                1 => EventKind::Order { price: Some(12.5) },
                _ => EventKind::Impression,
            };
            let _ = s.ingest(&Event::new(at, UserId(i as u64 % 7), Target::Product(p), kind));
        }
        let wm = s.watermark().unwrap();
        prop_assert!(TimeWindow::default().contains(wm));
        let signals = s.publish();
        assert_signals_finite(&signals);
    }
}
