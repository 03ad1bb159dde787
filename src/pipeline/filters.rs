//! The built-in filters: what the request path always removed, each now a
//! [`Filter`] with its own [`RemovalReason`].

use crate::ids::ItemIdx;
use crate::request::RemovalReason;
use crate::signals::PurchaseState;
use crate::stage::{Filter, RequestContext};

/// Marks every open slot whose row `gone` says must go with `reason`.
fn mark(
    rows: &[ItemIdx],
    removed: &mut [Option<RemovalReason>],
    reason: RemovalReason,
    gone: impl Fn(ItemIdx) -> bool,
) {
    for (&r, slot) in rows.iter().zip(removed) {
        if slot.is_none() && gone(r) {
            *slot = Some(reason);
        }
    }
}

/// The caller's `exclude` list ([`RemovalReason::Excluded`]). Required.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exclusion;

impl Filter for Exclusion {
    fn id(&self) -> &'static str {
        "exclusion"
    }
    fn required(&self) -> bool {
        true
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        !ctx.excluded.is_empty()
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        mark(rows, removed, RemovalReason::Excluded, |r| ctx.is_excluded(r));
    }
}

/// Governance gates: suspended merchants and problem products
/// ([`RemovalReason::Gated`]). Required.
#[derive(Debug, Clone, Copy, Default)]
pub struct Governance;

impl Filter for Governance {
    fn id(&self) -> &'static str {
        "governance"
    }
    fn required(&self) -> bool {
        true
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        for (&r, slot) in rows.iter().zip(removed) {
            if slot.is_none()
                && let Some(gate) = ctx.signals.gate(r)
            {
                *slot = Some(RemovalReason::Gated(gate));
            }
        }
    }
}

/// Out of stock, when the request asks for stock
/// ([`RemovalReason::OutOfStock`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stock;

impl Filter for Stock {
    fn id(&self) -> &'static str {
        "stock"
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.request.filters.in_stock
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let stocks = ctx.catalog.stocks();
        mark(rows, removed, RemovalReason::OutOfStock, |r| stocks[r.index()] == 0);
    }
}

/// The request's category and price filters
/// ([`RemovalReason::RequestFilter`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes;

impl Filter for Attributes {
    fn id(&self) -> &'static str {
        "attributes"
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        !ctx.request.filters.is_open()
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let (cats, prices) = (ctx.catalog.categories(), ctx.catalog.prices());
        let f = &ctx.request.filters;
        mark(rows, removed, RemovalReason::RequestFilter, |r| {
            !f.admits(cats[r.index()], prices[r.index()])
        });
    }
}

/// Products the user bought within the last `window` seconds that are not
/// due again ([`RemovalReason::Bought`]); 0 keeps them.
#[derive(Debug, Clone, Copy)]
pub struct Bought {
    /// Seconds.
    pub window: i64,
}

impl Filter for Bought {
    fn id(&self) -> &'static str {
        "bought"
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        self.window > 0 && ctx.profile.is_some_and(|p| p.purchases().next().is_some())
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let Some(p) = ctx.profile else { return };
        // At most `profiles.purchases` (≤ 1,024) rows: sorted once.
        let since = ctx.at.saturating_sub(self.window);
        let mut bought: Vec<ItemIdx> = p
            .purchases()
            .filter(|pur| {
                matches!(
                    ctx.signals.purchase_state(p, pur.row, ctx.at),
                    PurchaseState::Bought { at } if at >= since
                )
            })
            .map(|pur| pur.row)
            .collect();
        bought.sort_unstable();
        mark(rows, removed, RemovalReason::Bought, |r| bought.binary_search(&r).is_ok());
    }
}

/// Products shown to the user within the last `window` seconds
/// ([`RemovalReason::Seen`]); 0 keeps them.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Seconds.
    pub window: i64,
}

impl Filter for Seen {
    fn id(&self) -> &'static str {
        "seen"
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        self.window > 0 && ctx.profile.is_some()
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let Some(p) = ctx.profile else { return };
        let mut seen: Vec<ItemIdx> = p.seen_since(ctx.at.saturating_sub(self.window)).collect();
        seen.sort_unstable();
        mark(rows, removed, RemovalReason::Seen, |r| seen.binary_search(&r).is_ok());
    }
}

/// The operations team's blocklists ([`RemovalReason::Blocked`]). Required.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocked;

impl Filter for Blocked {
    fn id(&self) -> &'static str {
        "blocklist"
    }
    fn required(&self) -> bool {
        true
    }
    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.rules.has_blocks()
    }
    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let (c, cats) = (ctx.catalog, ctx.catalog.categories());
        mark(rows, removed, RemovalReason::Blocked, |r| {
            ctx.rules.is_blocked(c.product_id(r), c.merchant_of(r).id, cats[r.index()])
        });
    }
}
