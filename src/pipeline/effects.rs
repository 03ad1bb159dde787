//! Side effects: after the feed is built, each side effect that is on for
//! the request runs on the rayon pool with copies of the request and the
//! feed; a panicking effect is contained there.

use super::Pipeline;
use crate::request::Feed;
use crate::stage::{RequestContext, SideEffect};
use std::sync::Arc;

/// Spawns the effects of `effects` that are enabled for `ctx` and not
/// switched off by `p`'s config or the request.
pub(crate) fn spawn(
    p: &Pipeline,
    effects: &[Arc<dyn SideEffect>],
    ctx: &RequestContext<'_>,
    feed: &Feed,
) {
    let mut on = effects.iter().filter(|e| e.enabled(ctx) && p.stage_on(e.id(), ctx.request));
    let Some(first) = on.next() else { return };
    let shared = Arc::new((ctx.request.clone(), feed.clone()));
    for effect in std::iter::once(first).chain(on) {
        let (effect, shared) = (Arc::clone(effect), Arc::clone(&shared));
        rayon::spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                effect.run(&shared.0, &shared.1)
            }));
        });
    }
}
