//! Filter: every enabled filter in order marks what it removes; the kept
//! candidates are compacted in place and the removals counted per filter
//! and per reason.

use super::Pipeline;
use super::merge::Candidates;
use crate::features::SOURCE_SLOTS;
use crate::request::Trace;
use crate::stage::RequestContext;

/// Runs the filters of `p` that are on for this request over `c`.
pub(crate) fn filter(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    c: &mut Candidates,
    trace: &mut Trace,
) {
    c.removed.clear();
    c.removed.resize(c.rows.len(), None);
    let mut left = c.rows.len();
    trace.filters.reserve_exact(p.filters.len());
    for f in &p.filters {
        if !f.enabled(ctx) || !p.stage_on(f.id(), ctx.request) {
            continue;
        }
        f.filter(ctx, &c.rows, &mut c.removed);
        let after = c.removed.iter().filter(|r| r.is_none()).count();
        trace.filters.push((f.id(), left.saturating_sub(after)));
        left = after;
    }
    let mut kept = 0;
    for i in 0..c.rows.len() {
        match c.removed[i] {
            Some(reason) => match trace.removed.iter_mut().find(|r| r.0 == reason) {
                Some(r) => r.1 += 1,
                None => trace.removed.push((reason, 1)),
            },
            None => {
                c.rows[kept] = c.rows[i];
                c.masks[kept] = c.masks[i];
                c.counts[kept] = c.counts[i];
                c.src_scores
                    .copy_within(i * SOURCE_SLOTS..(i + 1) * SOURCE_SLOTS, kept * SOURCE_SLOTS);
                kept += 1;
            }
        }
    }
    c.rows.truncate(kept);
    c.masks.truncate(kept);
    c.counts.truncate(kept);
    c.src_scores.truncate(kept * SOURCE_SLOTS);
}
