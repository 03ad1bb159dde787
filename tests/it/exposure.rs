//! The exposure log (issue 24, part 1): what was served, as it was ranked;
//! sampling by request id; a bounded buffer that drops (counted) instead
//! of waiting; a log-backed sink whose entries a writer counts.

use crate::it::adversarial::{recommender, world};
use omnifeed::exposure::{ExposureBatch, ExposureConfig, ExposureSink, ExposureStats, MemorySink};
use omnifeed::live::{EventLog, LogEntry, LogSink, MemoryLog};
use omnifeed::{FeedRequest, Recommender, ServingState, Surface};
use std::sync::{Arc, Condvar, Mutex};

fn state() -> ServingState {
    (*recommender().state()).clone()
}

fn every_request() -> ExposureConfig {
    ExposureConfig { sample_rate: 1.0, ..ExposureConfig::default() }
}

/// Every served item is recorded with its position, sources, features and
/// heads exactly as the feed's explanation shows them.
#[test]
fn an_exposure_is_the_feed_as_ranked() {
    let sink = Arc::new(MemorySink::new(10_000));
    let rec = Recommender::builder().state(state()).exposures(every_request(), sink.clone());
    let rec = rec.build().unwrap();
    let users: Vec<_> = world().users.iter().take(12).map(|u| u.id).collect();
    let mut feeds = Vec::new();
    for (i, &u) in users.iter().enumerate() {
        let surface = if i % 3 == 2 { Surface::Search } else { Surface::Feed };
        let mut req = FeedRequest::new(u).surface(surface).k(15).id(1_000 + i as u64);
        if surface == Surface::Search {
            req = req.search_text("mug");
        }
        feeds.push((req.clone(), rec.recommend(&req).unwrap()));
    }
    rec.flush_exposures();
    let batches = sink.take();
    let got: Vec<(&ExposureBatch, &omnifeed::exposure::Exposure)> =
        batches.iter().flat_map(|b| b.exposures.iter().map(move |e| (b, e))).collect();
    assert_eq!(got.len(), feeds.len());
    for (req, feed) in &feeds {
        let (batch, e) = got.iter().find(|(_, e)| Some(e.request_id) == req.id).unwrap();
        assert_eq!((e.user, e.surface, e.at), (req.user, req.surface, feed.trace.at));
        assert_eq!((e.state_version, &e.variant), (feed.trace.state_version, &feed.trace.variant));
        assert_eq!(e.items.len(), feed.items.len());
        let columns = batch.columns_of(e).unwrap();
        for (pos, (x, item)) in e.items.iter().zip(&feed.items).enumerate() {
            let ex = &item.explanation;
            assert_eq!((x.product, x.position, x.score), (item.product, pos as u32, item.score));
            assert_eq!(x.propensity, 1.0, "the default feed is deterministic");
            assert_eq!(x.content, item.content.map(|c| (c, item.live)));
            let names: Vec<&str> = columns.features.iter().map(String::as_str).collect();
            assert_eq!(names, ex.features.iter().map(|f| f.name).collect::<Vec<_>>());
            assert_eq!(e.features_of(pos), ex.features.iter().map(|f| f.value).collect::<Vec<_>>());
            assert_eq!(e.heads_of(pos), ex.heads.iter().map(|h| h.value).collect::<Vec<_>>());
            let sources: Vec<(&str, u32, f32)> =
                e.sources_of(pos).map(|(name, s)| (name, s.rank, s.score)).collect();
            let want: Vec<(&str, u32, f32)> =
                ex.sources.iter().map(|s| (s.source, s.rank, s.score)).collect();
            assert_eq!(sources, want);
        }
        assert!(e.features_of(e.items.len()).is_empty());
    }
    // The column names are written once per batch, not per exposure.
    assert!(batches.iter().all(|b| b.columns.len() <= 2), "{:?}", batches[0].columns.len());
    let stats = rec.exposures().unwrap().stats();
    assert_eq!((stats.sampled, stats.written, stats.dropped), (12, 12, 0));
}

/// A request is kept or not by its id, at the configured rate; off is off.
#[test]
fn sampling_keeps_the_configured_share_by_request_id() {
    let run = |rate: f64| -> (ExposureStats, Vec<u64>) {
        let sink = Arc::new(MemorySink::new(100_000));
        let config = ExposureConfig { sample_rate: rate, ..ExposureConfig::default() };
        let rec = Recommender::builder().state(state()).exposures(config, sink.clone());
        let rec = rec.build().unwrap();
        let u = world().users[0].id;
        for id in 0..2_000u64 {
            rec.recommend(&FeedRequest::new(u).k(3).id(id)).unwrap();
        }
        rec.flush_exposures();
        let mut ids: Vec<u64> =
            sink.take().iter().flat_map(|b| b.exposures.iter().map(|e| e.request_id)).collect();
        ids.sort_unstable();
        (rec.exposures().unwrap().stats(), ids)
    };
    let (stats, ids) = run(0.25);
    // 2,000 draws at 0.25: 500 ± 19 (one standard deviation).
    assert!((420..=580).contains(&ids.len()), "{} kept", ids.len());
    assert_eq!(stats.sampled as usize, ids.len());
    assert_eq!(stats.sampled + stats.skipped, 2_000);
    // The same ids are kept again: the choice is the id's.
    assert_eq!(run(0.25).1, ids);
    assert_eq!(run(0.0).1.len(), 0);
    let off = Recommender::builder().state(state()).no_exposures().build().unwrap();
    assert!(off.exposures().is_none());
    // Invalid configs are named.
    let bad = ExposureConfig { sample_rate: 1.5, ..ExposureConfig::default() };
    let err = Recommender::builder().state(state()).exposures(bad, Arc::new(MemorySink::new(1)));
    assert!(err.build().unwrap_err().to_string().contains("sample_rate"));
}

/// A sink that waits until it is released: a stalled log.
#[derive(Debug, Default)]
struct Stalled {
    open: Mutex<bool>,
    wake: Condvar,
    written: Mutex<usize>,
}

impl ExposureSink for Stalled {
    fn id(&self) -> &str {
        "stalled"
    }
    fn write(&self, batch: ExposureBatch) -> omnifeed::Result<()> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.wake.wait(open).unwrap();
        }
        *self.written.lock().unwrap() += batch.exposures.len();
        Ok(())
    }
}

/// A stalled sink never holds a request up: the buffer fills, what does not
/// fit is dropped and counted, and what was buffered is written once the
/// sink moves again.
#[test]
fn a_stalled_sink_drops_counted_and_never_blocks() {
    let sink = Arc::new(Stalled::default());
    let config = ExposureConfig { sample_rate: 1.0, buffer: 8, batch: 1, linger_ms: 1 };
    let rec = Recommender::builder().state(state()).exposures(config, sink.clone());
    let rec = rec.build().unwrap();
    let u = world().users[0].id;
    for id in 0..200u64 {
        rec.recommend(&FeedRequest::new(u).k(3).id(id)).unwrap();
    }
    rec.flush_effects();
    let stats = rec.exposures().unwrap().stats();
    assert_eq!(stats.sampled, 200);
    // At most 8 taken by the stalled writer and 8 buffered: the rest dropped.
    assert!(stats.dropped >= 200 - 16, "{stats:?}");
    *sink.open.lock().unwrap() = true;
    sink.wake.notify_all();
    rec.flush_exposures();
    let stats = rec.exposures().unwrap().stats();
    assert_eq!(stats.written + stats.dropped, 200, "{stats:?}");
    assert_eq!(*sink.written.lock().unwrap() as u64, stats.written);
}

/// The log-backed sink appends batches a reader decodes and a writer
/// counts without changing its state.
#[test]
fn the_log_sink_appends_entries_a_writer_counts() {
    let log = Arc::new(MemoryLog::default());
    let sink = Arc::new(LogSink::new(log.clone()));
    let config = ExposureConfig { sample_rate: 1.0, batch: 4, ..ExposureConfig::default() };
    let rec = Recommender::builder().state(state()).exposures(config, sink).build().unwrap();
    let users: Vec<_> = world().users.iter().take(10).map(|u| u.id).collect();
    for (i, &u) in users.iter().enumerate() {
        rec.recommend(&FeedRequest::new(u).k(5).id(i as u64)).unwrap();
    }
    rec.flush_exposures();
    let read = log.read(0, 1_000, std::time::Duration::ZERO).unwrap();
    assert!(read.rejected.is_empty());
    let mut ids = Vec::new();
    let mut w = crate::it::live::world_writer(omnifeed::index::IndexKind::Exact).1;
    let before = w.publish().unwrap().signals().clone();
    for r in &read.records {
        let LogEntry::Exposures(batch) = &r.entry else { panic!("{:?}", r.entry) };
        ids.extend(batch.exposures.iter().map(|e| e.request_id));
        let n = batch.exposures.len();
        let applied = w.apply(1_000_000 + r.offset, &r.entry).unwrap();
        assert_eq!(applied, omnifeed::live::Applied::Exposures(n));
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..10).collect::<Vec<u64>>());
    let after = w.publish().unwrap();
    assert_eq!(after.signals().as_of(), before.as_of(), "exposures change no state");
}
