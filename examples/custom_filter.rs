//! Extension point 2: a custom filter. A compliance filter keeps
//! age-restricted categories away from minors; it says what it removed, the
//! trace counts it, and it can be switched off for a surface or skipped by a
//! request (a required filter, such as governance, cannot be).
//!
//! ```text
//! cargo run --release --example custom_filter
//! ```

use omnifeed::load::read_dataset;
use omnifeed::stage::Filter;
use omnifeed::stage::RequestContext;
use omnifeed::{
    CategoryId, FeedRequest, ItemIdx, RemovalReason, ServiceConfig, ServingState, Signals, UserId,
};
use std::collections::HashSet;
use std::sync::Arc;

/// Removes products of restricted categories for users known to be minors.
#[derive(Debug)]
struct AgeRestricted {
    categories: HashSet<CategoryId>,
    minors: HashSet<UserId>,
}

impl Filter for AgeRestricted {
    fn id(&self) -> &'static str {
        "age_restricted"
    }

    fn enabled(&self, ctx: &RequestContext<'_>) -> bool {
        self.minors.contains(&ctx.request.user)
    }

    fn filter(
        &self,
        ctx: &RequestContext<'_>,
        rows: &[ItemIdx],
        removed: &mut [Option<RemovalReason>],
    ) {
        let cats = ctx.catalog.categories();
        for (r, slot) in rows.iter().zip(removed) {
            if slot.is_none() && self.categories.contains(&cats[r.index()]) {
                *slot = Some(RemovalReason::Custom("age_restricted"));
            }
        }
    }
}

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "custom_filter",
    about = "One extension point: a custom filter, on the shipped data"
)]
struct Cli {
    /// The data directory it reads.
    #[arg(long, value_name = "DIR", default_value = "data")]
    data: String,
}

fn main() -> Result<(), omnifeed::Error> {
    let cli = <Cli as clap::Parser>::parse();
    let data = read_dataset(&cli.data)?;
    let catalog = Arc::new(data.catalog);
    // Every part from the service config (the defaults here; a service
    // reads its file: `ServiceConfig::from_file`).
    let service = ServiceConfig::default();
    let (signals, _) = Signals::from_events(Arc::clone(&catalog), &data.events, &service.signals)?;
    let index = service.index.build(catalog.shared_embeddings())?;
    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals))?;
    let user = data.events.iter().map(|e| e.user).min().expect("events");

    let plain = service.recommender(state.clone()).clock(omnifeed::Clock::SignalsAsOf).build()?;
    let before = plain.recommend(&FeedRequest::new(user).k(20))?;
    // Restrict the two categories this user's feed shows most.
    let mut counts: Vec<(CategoryId, usize)> = Vec::new();
    for item in &before.items {
        let c = catalog.categories()[catalog.row(item.product).expect("known").index()];
        match counts.iter_mut().find(|x| x.0 == c) {
            Some(x) => x.1 += 1,
            None => counts.push((c, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let restricted: HashSet<CategoryId> = counts.iter().take(2).map(|c| c.0).collect();
    let rec = service
        .recommender(state)
        .clock(omnifeed::Clock::SignalsAsOf)
        .filter(Box::new(AgeRestricted {
            categories: restricted.clone(),
            minors: HashSet::from([user]),
        }))
        .build()?;
    println!("filters, in order: {:?}", rec.filter_ids());

    let after = rec.recommend(&FeedRequest::new(user).k(20))?;
    let shown = |feed: &omnifeed::Feed| {
        feed.items
            .iter()
            .filter(|i| {
                restricted
                    .contains(&catalog.categories()[catalog.row(i.product).expect("known").index()])
            })
            .count()
    };
    println!("restricted categories {restricted:?}");
    println!("before: {} of {} items restricted", shown(&before), before.items.len());
    println!("after:  {} of {} items restricted", shown(&after), after.items.len());
    println!("removed per filter: {:?}", after.trace.filters);
    println!("removed per reason: {:?}", after.trace.removed);
    assert!(shown(&before) > 0 && shown(&after) == 0);
    let removed = after.trace.filters.iter().find(|f| f.0 == "age_restricted").map_or(0, |f| f.1);
    assert!(removed > 0, "the filter counted what it removed");

    // An adult: the filter does not run.
    let adult = data.events.iter().map(|e| e.user).find(|&u| u != user).expect("two users");
    let feed = rec.recommend(&FeedRequest::new(adult).k(20))?;
    assert!(feed.trace.filters.iter().all(|f| f.0 != "age_restricted"));
    // Governance cannot be skipped by a request.
    let err = rec.recommend(&FeedRequest::new(user).skip("governance")).unwrap_err();
    println!("skipping governance: {err}");
    Ok(())
}
