//! Extension point 1: a custom candidate source. A "followed merchants"
//! source proposes the best-converting products of the shops a user
//! follows; its normalized score reaches the ranker as the `src_other`
//! feature, and its id shows in every explanation it contributed to.
//!
//! ```text
//! cargo run --release --example custom_source
//! ```

use omnifeed::load::read_dataset;
use omnifeed::rank::col;
use omnifeed::stage::{CandidateBuf, CandidateSource, RequestContext};
use omnifeed::{FeedRequest, ItemIdx, MerchantId, ServiceConfig, ServingState, Signals, UserId};
use std::collections::HashMap;
use std::sync::Arc;

/// Who follows which shops (in a service: a follow table or graph store).
#[derive(Debug)]
struct FollowedMerchants {
    follows: HashMap<UserId, Vec<MerchantId>>,
    per_merchant: usize,
}

impl CandidateSource for FollowedMerchants {
    fn id(&self) -> &'static str {
        "followed"
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> omnifeed::Result<()> {
        let Some(shops) = self.follows.get(&ctx.request.user) else { return Ok(()) };
        let rate = ctx.signals.rate_scores();
        for &m in shops {
            let Some(mrow) = ctx.catalog.merchant_row(m) else { continue };
            // The shop's products, best expected conversion first.
            let mut rows: Vec<ItemIdx> = (0..ctx.catalog.len() as u32)
                .map(ItemIdx)
                .filter(|&r| ctx.catalog.merchant_row_of(r) == mrow && ctx.admits(r))
                .collect();
            rows.sort_by(|a, b| rate[b.index()].total_cmp(&rate[a.index()]));
            for r in rows.into_iter().take(self.per_merchant) {
                out.push(r, rate[r.index()]);
            }
        }
        Ok(())
    }
}

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "custom_source",
    about = "One extension point: a custom candidate source, on the shipped data"
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

    // Every user follows the three shops of the products they clicked most
    // recently (a stand-in for the service's follow table).
    let mut follows: HashMap<UserId, Vec<MerchantId>> = HashMap::new();
    for e in data.events.iter().rev() {
        if let omnifeed::Target::Product(p) = e.target {
            let Some(row) = catalog.row(p) else { continue };
            let m = catalog.merchant_of(row).id;
            let list = follows.entry(e.user).or_default();
            if list.len() < 3 && !list.contains(&m) {
                list.push(m);
            }
        }
    }
    let user = *follows.keys().min().expect("a user with history");
    let shops = follows[&user].clone();
    let rec = service
        .recommender(state)
        .clock(omnifeed::Clock::SignalsAsOf)
        .source(Box::new(FollowedMerchants { follows, per_merchant: 10 }))
        .build()?;

    let feed = rec.recommend(&FeedRequest::new(user).k(20))?;
    let followed = feed.trace.sources.iter().find(|s| s.source == "followed").expect("traced");
    println!(
        "user {user} follows shops {shops:?}; the source proposed {} products",
        followed.candidates
    );
    println!("{:>3} {:>8} {:>7} {:>9}  sources", "pos", "product", "score", "src_other");
    let mut from_followed = 0;
    for (pos, item) in feed.items.iter().enumerate() {
        let srcs: Vec<&str> = item.explanation.sources.iter().map(|s| s.source).collect();
        let other = item.explanation.features[col::SRC_OTHER].value;
        if srcs.contains(&"followed") {
            from_followed += 1;
            assert!(other > 0.0, "a followed product carries its source score");
        }
        println!(
            "{pos:>3} {:>8} {:>7.4} {other:>9.3}  {}",
            item.product,
            item.score,
            srcs.join(",")
        );
    }
    println!("{from_followed} of {} items came (also) from followed shops", feed.items.len());
    assert!(followed.candidates > 0 && from_followed > 0, "the custom source reached the feed");
    Ok(())
}
