//! Golden feeds: the exact output (items, scores to the bit, explanations
//! and traces) of fixed requests on the shipped `data/` and on a seeded
//! synthetic world, under the default config and under a config that turns
//! on every stage option (MMR, quotas, an A/B arm, pins, boosts, blocks).
//!
//! The expected digests live in `tests/golden/feeds.txt`, one line per
//! request. A structural change must leave every line as it is; a change
//! that means to alter feeds regenerates the file with
//! `OMNIFEED_BLESS=1 cargo test --release --test integration golden` and
//! says why in its commit. On a mismatch the actual feeds are written as
//! JSON under `target/golden-actual/` for a diff.

use omnifeed::index::{ExactIndex, VectorIndex};
use omnifeed::load::read_dataset;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{
    Catalog, Clock, Event, FeedRequest, ItemIdx, Recommender, RequestFilters, SearchQuery,
    ServiceConfig, ServingState, SignalStore, Surface, UserId,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Every stage option on: MMR and a bigger pool in an A/B arm that half the
/// users get, quotas on Omni, a pin, boosts of each kind and blocks.
const FULL_CONFIG: &str = r#"
[recommender]
rerank_pool = 150

[recommender.rerank.feed]
diversity = { kind = "dpp", theta = 3.0 }

[recommender.rerank.omni]
category_cap = 3
merchant_cap = 2
exploration_slots = 1
exploration_every = 10
live_every = 8

[[recommender.rerank.omni.quotas]]
source = "search"
min_share = 0.2
max_share = 0.6

[[experiments]]
name = "golden_arm"

[[experiments.variants]]
name = "pool300_mmr07"
share = 0.5
config = { rerank_pool = 300, rerank = { feed = { diversity = { kind = "mmr", lambda = 0.7 } } } }

[index]
kind = "ivf"
"#;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/feeds.txt")
}

/// The service config with rules that name products of this catalog: a pin,
/// one boost per target kind and one block per list.
fn full_config(catalog: &Catalog) -> ServiceConfig {
    let p = |r: u32| catalog.product(ItemIdx(r));
    let (a, b, c) = (p(3), p(11), p(17));
    let rules = format!(
        r#"
[rules]
pins = [{{ product = {}, surface = "feed", position = 2 }}]
boosts = [
  {{ target = {{ product = {} }}, factor = 2.5 }},
  {{ target = {{ merchant = {} }}, factor = 0.5 }},
  {{ target = {{ category = {} }}, factor = 1.5 }},
]
[rules.blocks]
products = [{}]
merchants = []
categories = []
"#,
        a.id.0,
        b.id.0,
        c.merchant.0,
        b.category.0,
        p(29).id.0
    );
    ServiceConfig::from_toml_str(&format!("{FULL_CONFIG}{rules}")).unwrap()
}

fn requests(catalog: &Catalog, events: &[Event]) -> Vec<(String, FeedRequest)> {
    let mut users: Vec<UserId> = Vec::new();
    for e in events {
        if !users.contains(&e.user) {
            users.push(e.user);
        }
        if users.len() == 6 {
            break;
        }
    }
    users.push(UserId(987_654_321)); // never seen: cold start
    // Search words from the catalog's own titles, and a product's vector
    // as a query embedding.
    let word = |r: u32| {
        catalog
            .title(ItemIdx(r))
            .and_then(|t| t.split_whitespace().last())
            .unwrap_or("tea")
            .to_string()
    };
    let vector = catalog.embeddings().row(ItemIdx(5)).to_vec();
    let mut out = Vec::new();
    for (i, &user) in users.iter().enumerate() {
        let u = user.0;
        out.push((format!("feed/{u}"), FeedRequest::new(user).k(20)));
        out.push((format!("omni/{u}"), FeedRequest::new(user).surface(Surface::Omni).k(20)));
        out.push((
            format!("search-text/{u}"),
            FeedRequest::new(user).surface(Surface::Search).search_text(word(i as u32 * 7)).k(15),
        ));
        if i % 2 == 0 {
            let cheap = RequestFilters { max_price: Some(60.0), ..RequestFilters::default() };
            out.push((
                format!("search-hybrid/{u}"),
                FeedRequest::new(user)
                    .surface(Surface::Search)
                    .query(SearchQuery {
                        text: Some(format!("{} {}", word(1), word(2))),
                        embedding: Some(vector.clone()),
                    })
                    .filters(cheap)
                    .k(12),
            ));
            out.push((
                format!("feed-excl-skip/{u}"),
                FeedRequest::new(user)
                    .k(25)
                    .seed(7)
                    .exclude([catalog.product(ItemIdx(0)).id, catalog.product(ItemIdx(1)).id])
                    .skip("popular"),
            ));
        }
    }
    out
}

fn feeds(world: &str, catalog: Arc<Catalog>, events: &[Event]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let indexes: [(&str, Option<Arc<dyn VectorIndex>>); 2] =
        [("exact", Some(Arc::new(ExactIndex::new(catalog.shared_embeddings())))), ("ivf", None)];
    for (cfg_name, service) in
        [("default", ServiceConfig::default()), ("full", full_config(&catalog))]
    {
        for (index_name, index) in &indexes {
            let mut store =
                SignalStore::new(Arc::clone(&catalog), service.signals.clone()).unwrap();
            store.ingest_batch(events);
            let signals = Arc::new(store.publish());
            let index = match index {
                Some(i) => Arc::clone(i),
                None => service.index.build(catalog.shared_embeddings()).unwrap(),
            };
            let state = ServingState::new(Arc::clone(&catalog), index, signals).unwrap();
            let rec = Recommender::builder()
                .service(&service)
                .clock(Clock::SignalsAsOf)
                .state(state)
                .build()
                .unwrap();
            for (name, req) in requests(&catalog, events) {
                let json = match rec.recommend(&req) {
                    Ok(feed) => serde_json::to_string_pretty(&feed).unwrap(),
                    Err(e) => format!("error: {e}"),
                };
                out.insert(format!("{world}/{cfg_name}/{index_name}/{name}"), json);
            }
        }
    }
    out
}

fn all_feeds() -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = read_dataset(&dir).unwrap();
    let mut all = feeds("data", Arc::new(data.catalog), &data.events);
    let world = generate(&SynthConfig::tiny()).unwrap();
    all.extend(feeds("synth", Arc::new(world.catalog), &world.events));
    all
}

#[test]
fn golden_feeds_are_unchanged() {
    let all = all_feeds();
    let mut text = String::new();
    for (name, json) in &all {
        writeln!(text, "{name} {:016x}", fnv1a(json.as_bytes())).unwrap();
    }
    let path = golden_path();
    if std::env::var_os("OMNIFEED_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("tests/golden/feeds.txt");
    let want: BTreeMap<&str, &str> = expected.lines().filter_map(|l| l.split_once(' ')).collect();
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/golden-actual");
    let mut wrong = Vec::new();
    for (name, json) in &all {
        let got = format!("{:016x}", fnv1a(json.as_bytes()));
        if want.get(name.as_str()) != Some(&got.as_str()) {
            wrong.push(name.clone());
        }
        if std::env::var_os("OMNIFEED_GOLDEN_DUMP").is_some()
            || want.get(name.as_str()) != Some(&got.as_str())
        {
            let file = out_dir.join(format!("{}.json", name.replace('/', "__")));
            std::fs::create_dir_all(&out_dir).unwrap();
            std::fs::write(file, json).unwrap();
        }
    }
    assert_eq!(want.len(), all.len(), "the golden file lists other requests than the test makes");
    assert!(all.values().filter(|j| j.starts_with("error")).count() < all.len() / 10);
    assert!(
        wrong.is_empty(),
        "{} of {} feeds changed (actual JSON in target/golden-actual/): {wrong:?}",
        wrong.len(),
        all.len()
    );
}
