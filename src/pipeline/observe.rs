//! Observability of the request path: a `tracing` span per stage and, with
//! the `metrics` feature, stage latencies and request counters through the
//! `metrics` facade.

#[cfg(feature = "metrics")]
use crate::request::Trace;

/// Runs one stage inside its `tracing` span (level TRACE, named after the
/// stage) and, with the `metrics` feature, records its latency in the
/// histogram `omnifeed_stage_seconds{stage}`.
macro_rules! stage {
    ($name:literal, $body:expr) => {{
        let _span = tracing::trace_span!($name).entered();
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let out = $body;
        #[cfg(feature = "metrics")]
        metrics::histogram!("omnifeed_stage_seconds", "stage" => $name)
            .record(started.elapsed().as_secs_f64());
        out
    }};
}
pub(crate) use stage;

/// Records a request's counters through the `metrics` facade (no recorder
/// installed: a no-op): `omnifeed_requests_total{surface}`,
/// `omnifeed_candidates_total{source}`, `omnifeed_source_errors_total{source}`,
/// `omnifeed_removed_total{reason}`, `omnifeed_repaired_total`.
#[cfg(feature = "metrics")]
pub(crate) fn record_metrics(trace: &Trace) {
    metrics::counter!("omnifeed_requests_total", "surface" => trace.surface.name()).increment(1);
    for s in &trace.sources {
        metrics::counter!("omnifeed_candidates_total", "source" => s.source)
            .increment(s.candidates as u64);
        if s.error.is_some() {
            metrics::counter!("omnifeed_source_errors_total", "source" => s.source).increment(1);
        }
    }
    for (reason, n) in &trace.removed {
        metrics::counter!("omnifeed_removed_total", "reason" => reason.name()).increment(*n as u64);
    }
    if trace.repaired > 0 {
        metrics::counter!("omnifeed_repaired_total").increment(trace.repaired as u64);
    }
}
