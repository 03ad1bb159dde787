//! Side effects: after the feed is built, each side effect that is on for
//! the request runs on the rayon pool with copies of the request and the
//! feed, or, if it is inline (the exposure recorder), on the request's
//! thread; a panicking effect is contained either way.

use super::Pipeline;
use crate::request::Feed;
use crate::stage::{RequestContext, SideEffect};
use std::sync::{Arc, Condvar, Mutex};

/// A recommender's side effects, with a count of those spawned and not yet
/// finished (so a caller can wait for them: a test, a flush at shutdown).
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) list: Vec<Arc<dyn SideEffect>>,
    in_flight: Arc<(Mutex<usize>, Condvar)>,
}

impl Effects {
    pub(crate) fn new(list: Vec<Arc<dyn SideEffect>>) -> Effects {
        Effects { list, in_flight: Arc::default() }
    }

    /// Waits until every effect spawned before the call has finished.
    pub(crate) fn wait(&self) {
        let (count, done) = &*self.in_flight;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = done.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Counts one effect in flight until dropped (after it ran or panicked).
struct InFlight(Arc<(Mutex<usize>, Condvar)>);

impl InFlight {
    fn start(counter: &Arc<(Mutex<usize>, Condvar)>) -> InFlight {
        *counter.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (count, done) = &*self.0;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            done.notify_all();
        }
    }
}

/// The effects of `effects` that are enabled for `ctx` and not switched
/// off by `p`'s config or the request, asked once per request (an effect's
/// `enabled` may count or sample: the exposure recorder's does). Empty, and
/// so no allocation, when none is on.
pub(crate) fn on_for<'e>(
    p: &Pipeline,
    effects: &'e Effects,
    ctx: &RequestContext<'_>,
) -> Vec<&'e Arc<dyn SideEffect>> {
    effects.list.iter().filter(|e| e.enabled(ctx) && p.stage_on(e.id(), ctx.request)).collect()
}

/// Whether `effect` needs the items' explanations: every effect on the
/// rayon pool, and an inline one that says it reads them.
pub(crate) fn reads_explanations(effect: &Arc<dyn SideEffect>) -> bool {
    !effect.inline() || effect.reads_explanations()
}

/// Runs the effects `on` ([`on_for`] of `effects`) with the feed: inline
/// ones here (with the items' ranked `rows`), the others on the rayon pool.
pub(crate) fn spawn(
    effects: &Effects,
    on: &[&Arc<dyn SideEffect>],
    ctx: &RequestContext<'_>,
    feed: &Feed,
    rows: &dyn crate::stage::RankedRows,
) {
    // The copy of the request and feed the spawned effects share, made
    // only if one is on.
    let mut shared: Option<Arc<(crate::request::FeedRequest, Feed)>> = None;
    for &effect in on {
        if effect.inline() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                effect.run_ranked(ctx.request, feed, rows)
            }));
            continue;
        }
        let shared =
            Arc::clone(shared.get_or_insert_with(|| Arc::new((ctx.request.clone(), feed.clone()))));
        let effect = Arc::clone(effect);
        let flight = InFlight::start(&effects.in_flight);
        rayon::spawn(move || {
            let _flight = flight;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                effect.run(&shared.0, &shared.1)
            }));
        });
    }
}
