pub mod adversarial;
mod ann;
mod bad_input;
mod business;
mod coengage;
mod data;
mod docs;
mod eval;
pub mod examples;
mod exposure;
mod feed;
mod golden;
mod live;
mod ope;
mod search;
mod server;
mod signals;
mod stages;
mod structure;
mod surfaces;
mod trees;

use std::path::{Path, PathBuf};

/// `../shared/data/<rel>` from the crate root, or `None` (with a message)
/// where that folder is absent, as on a user's fresh clone.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} not found (the shared data sets are not on this machine)",
            p.display()
        );
        None
    }
}

/// The `.rs` files under `dir`, recursively, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Runs `f` under a `tracing` subscriber at DEBUG that also writes each
/// span as it is created (with its fields); returns `f`'s result and the
/// text written. One level for every caller: tracing keeps one global
/// maximum level over the subscribers alive, so tests on other threads
/// with a lower one could filter this one's events.
pub fn traced<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    (out, text)
}
