//! Class 10 (issue 22): data contracts that never fail silently. What a
//! request's query became is stated in the trace; a rule naming a product
//! the catalog does not serve is an error; experiments that would bucket
//! users alike are an error.

use super::*;
use omnifeed::index::query_terms;
use omnifeed::{FeedRequest, QueryOutcome, SearchQuery, Surface};
use proptest::prelude::*;

fn search(text: &str) -> FeedRequest {
    FeedRequest::new(user()).surface(Surface::Search).search_text(text)
}

#[test]
fn the_trace_says_what_became_of_the_query() {
    let rec = recommender();
    let noun = omnifeed::synth::category_noun(world().catalog.categories()[0]);
    let vector = world().catalog.embeddings().row(ItemIdx(3)).to_vec();
    let with_vector = SearchQuery { text: Some("!!!".into()), embedding: Some(vector) };
    let cases: Vec<(&str, FeedRequest, QueryOutcome)> = vec![
        ("no query", FeedRequest::new(user()), QueryOutcome::NotSearch),
        (
            "omni, no query",
            FeedRequest::new(user()).surface(Surface::Omni),
            QueryOutcome::NotSearch,
        ),
        ("feed with text", FeedRequest::new(user()).search_text(noun), QueryOutcome::NotSearch),
        ("punctuation", search("!!!"), QueryOutcome::NoSearchableTerm),
        ("symbols", search("@#$%^&*()"), QueryOutcome::NoSearchableTerm),
        ("unknown word", search("zzqxjwv"), QueryOutcome::NoMatch),
        ("a known word", search(noun), QueryOutcome::Matched),
        ("punctuation and a vector", search("x").query(with_vector), QueryOutcome::Matched),
        ("search skipped", search(noun).skip("search"), QueryOutcome::NotSearch),
        ("omni with text", search(noun).surface(Surface::Omni), QueryOutcome::Matched),
    ];
    for (what, req, want) in cases {
        let feed = rec.recommend(&req).unwrap();
        assert_eq!(feed.trace.query, want, "{what}");
        if want != QueryOutcome::Matched {
            let from_search = feed
                .items
                .iter()
                .any(|i| i.explanation.sources.iter().any(|s| s.source == "search"));
            assert!(!from_search || req.surface == Surface::Omni, "{what}: search results claimed");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// On the Search surface every text gets a stated outcome: no
    /// searchable term exactly when tokenizing leaves none, never "not a
    /// search".
    #[test]
    fn every_search_text_gets_a_stated_outcome(text in "[a-z !?.,#]{1,24}") {
        prop_assume!(!text.trim().is_empty());
        let feed = recommender().recommend(&search(&text)).unwrap();
        let none = query_terms(&text).is_empty();
        prop_assert_ne!(feed.trace.query, QueryOutcome::NotSearch);
        prop_assert_eq!(feed.trace.query == QueryOutcome::NoSearchableTerm, none);
    }
}

/// Pins, product boosts and product blocks of products the catalog does
/// not serve, each alone in an otherwise valid rule set.
fn rules_naming(p: omnifeed::ProductId) -> Vec<(&'static str, omnifeed::business::BusinessRules)> {
    use omnifeed::business::{Blocklist, Boost, BoostTarget, BusinessRules, Pin};
    let pin = Pin { product: p, surface: Surface::Feed, position: 0, window: None };
    let boost = Boost { target: BoostTarget::Product(p), factor: 2.0, window: None };
    vec![
        ("pin", BusinessRules { pins: vec![pin], ..Default::default() }),
        ("boost", BusinessRules { boosts: vec![boost], ..Default::default() }),
        (
            "block",
            BusinessRules {
                blocks: Blocklist { products: vec![p], ..Default::default() },
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn rules_naming_an_unknown_product_are_refused_and_the_rules_in_force_stay() {
    use omnifeed::ErrorKind;
    // A recommender of its own: the suite's shared one serves other tests.
    let rec = recommender_with(store().publish(), omnifeed::RecommenderConfig::default());
    let before = rec.rules();
    for (what, rules) in rules_naming(omnifeed::ProductId(u64::MAX - 3)) {
        let e = rec.set_rules(&rules).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::UnknownId { id, .. } if *id == u64::MAX - 3),
            "{what}: {e}"
        );
        assert!(Arc::ptr_eq(&before, &rec.rules()), "{what}: the rules in force changed");
        // The builder refuses them too.
        let state = rec.state();
        let built = Recommender::builder().state((*state).clone()).rules(rules).build();
        assert!(matches!(built.unwrap_err().kind(), ErrorKind::UnknownId { .. }), "{what}");
    }
    // A known product is accepted by each kind of rule.
    for (what, rules) in rules_naming(world().catalog.product(ItemIdx(4)).id) {
        rec.set_rules(&rules).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    rec.set_rules(&Default::default()).unwrap();
}

#[test]
fn rules_naming_a_delisted_product_are_refused_except_blocks() {
    use omnifeed::{CatalogDelta, ErrorKind};
    let p = world().catalog.product(ItemIdx(7)).id;
    let (delisted, _) = world().catalog.apply(&[CatalogDelta::Delist { product: p }]).unwrap();
    for (what, rules) in rules_naming(p) {
        let out = rules.check_products(&delisted);
        match what {
            "block" => assert!(out.is_ok(), "a block holds if it is listed again"),
            _ => {
                let e = out.unwrap_err();
                assert!(matches!(e.kind(), ErrorKind::InvalidValue { .. }), "{what}: {e}");
                assert!(e.to_string().contains("delisted"), "{e}");
            }
        }
    }
}

#[test]
fn experiments_that_would_bucket_users_alike_are_refused() {
    use omnifeed::experiment::{Experiment, Variant};
    let variant =
        |name: &str| Variant { name: name.into(), share: 0.5, config: toml::Table::new() };
    let exp = |name: &str, salt: Option<&str>| Experiment {
        name: name.into(),
        salt: salt.map(str::to_string),
        variants: vec![variant("a")],
    };
    let cases = [
        ("the same salt", vec![exp("x", Some("s")), exp("y", Some("s"))], false),
        ("a salt that is another's name", vec![exp("x", None), exp("y", Some("x"))], false),
        ("the same name", vec![exp("x", Some("s1")), exp("x", Some("s2"))], false),
        ("distinct salts", vec![exp("x", Some("s1")), exp("y", Some("s2"))], true),
        ("distinct names, default salts", vec![exp("x", None), exp("y", None)], true),
    ];
    let state = (*recommender().state()).clone();
    for (what, exps, ok) in cases {
        let built = Recommender::builder().state(state.clone()).experiments(exps).build();
        match built {
            Ok(_) => assert!(ok, "{what}: accepted"),
            Err(e) => {
                assert!(!ok, "{what}: {e}");
                assert_config_field(&e, "experiments");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the names and salts, the builder accepts them exactly when
    /// the names and the effective salts are distinct and non-empty.
    #[test]
    fn salts_are_unique_or_refused(
        specs in proptest::collection::vec(("[ab]{1,2}", proptest::option::of("[ab]{1,2}")), 1..5)
    ) {
        use omnifeed::experiment::{Experiment, Variant};
        let exps: Vec<Experiment> = specs
            .iter()
            .map(|(n, s)| Experiment {
                name: n.clone(),
                salt: s.clone(),
                variants: vec![Variant { name: "v".into(), share: 0.1, config: toml::Table::new() }],
            })
            .collect();
        let names: std::collections::HashSet<&str> = exps.iter().map(|e| e.name.as_str()).collect();
        let salts: std::collections::HashSet<&str> = exps.iter().map(|e| e.salt()).collect();
        let distinct = names.len() == exps.len() && salts.len() == exps.len();
        let state = (*recommender().state()).clone();
        let built = Recommender::builder().state(state).experiments(exps).build();
        prop_assert_eq!(built.is_ok(), distinct);
    }
}

/// Log integrity: a byte changed anywhere in an entry's envelope makes the
/// entry a rejection with its offset, never a different entry, for every
/// reader alike.
#[test]
fn a_flipped_byte_in_a_log_entry_is_rejected_by_every_reader() {
    use omnifeed::live::{EventLog, LogEntry, MemoryLog, encode_entry};
    use std::time::Duration;
    let entry = LogEntry::Flag { product: omnifeed::ProductId(42), flagged: true };
    let good = encode_entry(&entry, 1_700_000_000_000).unwrap();
    let log = MemoryLog::default();
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01; // the product id's last varint byte: still decodes without a checksum
    log.append_encoded(&[good.clone(), corrupt, good]).unwrap();
    for _reader in 0..2 {
        let batch = log.read(0, 10, Duration::ZERO).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].offset, 2);
        assert!(batch.rejected[0].reason.contains("checksum"), "{}", batch.rejected[0].reason);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_single_byte_change_goes_unnoticed(
        product in any::<u64>(),
        flagged in any::<bool>(),
        at in any::<i64>(),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        use omnifeed::live::{LogEntry, decode_entry, encode_entry};
        let entry = LogEntry::Flag { product: omnifeed::ProductId(product), flagged };
        let mut bytes = encode_entry(&entry, at).unwrap();
        prop_assert_eq!(decode_entry(&bytes), Ok((at, entry)));
        let i = index.index(bytes.len());
        bytes[i] ^= mask;
        prop_assert!(decode_entry(&bytes).is_err(), "byte {} ^ {:#x} went unnoticed", i, mask);
    }
}

/// A folder with one merchant and one product, the product file's header
/// and row as given.
fn catalog_dir(name: &str, products_header: &str, products_row: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("omnifeed-contracts-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("merchants.csv"), "id,experience,status\n1,0.5,active\n").unwrap();
    std::fs::write(dir.join("products.csv"), format!("{products_header}\n{products_row}\n"))
        .unwrap();
    dir
}

#[test]
fn an_unknown_or_missing_column_is_an_error_that_names_it() {
    use omnifeed::ErrorKind;
    use omnifeed::load::{
        Columns, LogOptions, read_catalog_dir, read_catalog_dir_with, read_events,
    };
    let good = "id,category,price,merchant,stock,listed_at,title";
    let cases = [
        ("typo", "id,category,price,merchant,stock,listed_at,titel", Some("titel")),
        ("extra", "id,category,price,merchant,stock,listed_at,title,colour", Some("colour")),
        ("missing required", "id,category,merchant,stock,listed_at,title", Some("price")),
        ("good", good, None),
        ("optional title absent", "id,category,price,merchant,stock,listed_at", None),
    ];
    for (what, header, bad) in cases {
        let cols = header.split(',').count();
        let row = ["10", "1", "9.5", "1", "3", "0", "red tea", "x"];
        let row = match what {
            "missing required" => "10,1,1,3,0,red tea".to_string(),
            _ => row[..cols].join(","),
        };
        let dir = catalog_dir(what, header, &row);
        match (read_catalog_dir(&dir), bad) {
            (Ok(b), None) => assert_eq!(b.build().map(|c| c.len()).unwrap_or(1), 1, "{what}"),
            (Err(e), Some(name)) => {
                assert!(matches!(e.kind(), ErrorKind::Parse { .. }), "{what}: {e}");
                assert!(e.to_string().contains(name), "{what}: {e}");
            }
            (got, _) => panic!("{what}: {got:?}"),
        }
    }
    // Lenient: the typo is read past and reported.
    let dir = catalog_dir(
        "lenient",
        "id,category,price,merchant,stock,listed_at,titel",
        "10,1,9.5,1,3,0,tea",
    );
    let (_, ignored) = read_catalog_dir_with(&dir, Columns::Lenient).unwrap();
    assert_eq!(ignored.len(), 1);
    assert!(ignored[0].ends_with("products.csv: titel"), "{ignored:?}");
    // Events: a typo in an optional column is an error too, and reported when lenient.
    let events = dir.join("events.csv");
    std::fs::write(&events, "at,user,target,target_id,kind,value,vai\n5,1,product,10,click,,\n")
        .unwrap();
    let e = read_events(&events, &LogOptions::default()).unwrap_err();
    assert!(e.to_string().contains("vai"), "{e}");
    let lenient = LogOptions { columns: Columns::Lenient, ..LogOptions::default() };
    let (read, report) = read_events(&events, &lenient).unwrap();
    assert_eq!((read.len(), report.ignored_columns.len()), (1, 1));
    // JSON Lines: an unknown key is an unknown column.
    let jsonl = dir.join("products.jsonl");
    std::fs::remove_file(dir.join("products.csv")).unwrap();
    let line =
        r#"{"id":10,"category":1,"price":9.5,"merchant":1,"stock":3,"listed_at":0,"titel":"t"}"#;
    std::fs::write(&jsonl, format!("{line}\n")).unwrap();
    assert!(read_catalog_dir(&dir).unwrap_err().to_string().contains("titel"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any extra column is an error exactly when it is not one of the
    /// product's own, in any position.
    #[test]
    fn any_extra_product_column_is_named(extra in "[a-z_]{1,10}", at in 0usize..8) {
        use omnifeed::load::read_catalog_dir;
        let mut cols = vec!["id", "category", "price", "merchant", "stock", "listed_at", "title"];
        let mut vals = vec!["10", "1", "9.5", "1", "3", "0", "tea"];
        prop_assume!(!cols.contains(&extra.as_str()));
        let at = at.min(cols.len());
        cols.insert(at, &extra);
        vals.insert(at, "x");
        let dir = catalog_dir(&format!("prop-{extra}-{at}"), &cols.join(","), &vals.join(","));
        let e = read_catalog_dir(&dir).unwrap_err();
        prop_assert!(e.to_string().contains(&format!("{extra:?}")), "{}", e);
    }
}

/// The world's events in the order a per-user export gives them: each
/// user's events together, users one after another.
fn exported_per_user() -> Vec<omnifeed::Event> {
    let mut events = world().events.clone();
    events.sort_by_key(|e| (e.user, e.at));
    events
}

#[test]
fn rejected_events_are_visible_and_a_strict_writer_refuses_them() {
    use omnifeed::index::IndexConfig;
    use omnifeed::live::{Applied, LogEntry, ShopWriter};
    use omnifeed::load::sort_by_time;
    let w = world();
    let exported = exported_per_user();
    // Read as exported: most events are too late, and the report says so.
    let mut store =
        omnifeed::SignalStore::new(Arc::new(w.catalog.clone()), SignalConfig::default()).unwrap();
    let (first, _) = store.first_rejection(&exported).expect("an export per user has late events");
    let report = store.clone().ingest_batch(&exported);
    assert!(report.too_late > 0);
    assert!(report.applied >= first as u64, "the events before the first rejection apply");
    // Sorted by time, nothing is rejected.
    let mut sorted = exported.clone();
    sort_by_time(&mut sorted);
    assert_eq!(store.first_rejection(&sorted), None);
    assert_eq!(store.ingest_batch(&sorted).rejected(), 0);
    // A strict writer refuses the unsorted entry whole and keeps its offset.
    let new = || {
        ShopWriter::new(w.catalog.clone(), SignalConfig::default(), IndexConfig::default()).unwrap()
    };
    let mut strict = new();
    strict.set_strict_events(true);
    let e = strict.apply(1, &LogEntry::Events(exported.clone())).unwrap_err();
    assert!(
        matches!(e.kind(), omnifeed::ErrorKind::InvalidValue { field: "log entry events", .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("event {first} ")), "{e}");
    assert_eq!((strict.offset(), strict.store().report().events), (None, 0));
    assert!(
        matches!(strict.apply(1, &LogEntry::Events(sorted)).unwrap(), Applied::Events(r) if r.rejected() == 0)
    );
    // The lenient default applies what it can and counts the rest.
    let Applied::Events(r) = new().apply(1, &LogEntry::Events(exported)).unwrap() else { panic!() };
    assert_eq!(r.too_late, report.too_late);
}

#[test]
fn rejections_are_warned_about_sparingly() {
    let mut store =
        omnifeed::SignalStore::new(Arc::new(world().catalog.clone()), SignalConfig::default())
            .unwrap();
    let unknown: Vec<omnifeed::Event> = (0..1_000u64)
        .map(|i| {
            omnifeed::Event::new(
                1_700_000_000,
                omnifeed::UserId(i),
                omnifeed::Target::Product(omnifeed::ProductId(u64::MAX - i)),
                omnifeed::EventKind::Click,
            )
        })
        .collect();
    let (_, text) = crate::it::traced(|| store.ingest_batch(&unknown));
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("unknown_product")).collect();
    assert_eq!(lines.len(), 4, "warned at the 1st, 10th, 100th and 1000th: {text}");
    assert!(lines[3].contains("1000 of this kind"), "{}", lines[3]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The dry run names exactly the first event ingest rejects.
    #[test]
    fn first_rejection_is_where_ingest_first_rejects(
        times in proptest::collection::vec(0i64..20_000, 1..60),
    ) {
        let w = world();
        let p = w.catalog.product(ItemIdx(0)).id;
        let events: Vec<omnifeed::Event> = times
            .iter()
            .map(|&t| omnifeed::Event::new(1_700_000_000 + t, omnifeed::UserId(1), omnifeed::Target::Product(p), omnifeed::EventKind::Click))
            .collect();
        let mut store = omnifeed::SignalStore::new(Arc::new(w.catalog.clone()), SignalConfig::default()).unwrap();
        let dry = store.first_rejection(&events).map(|(i, _)| i);
        let real = events.iter().position(|e| store.ingest(e).is_err());
        prop_assert_eq!(dry, real);
    }
}

/// Generator parameters near the integer limits are typed errors, never a
/// wrap, a panic or a world whose events the default store rejects.
#[test]
fn synthetic_world_parameters_at_the_limits_are_checked() {
    use omnifeed::synth::{SynthConfig, generate};
    let tiny = SynthConfig::tiny;
    let cases: Vec<(&str, SynthConfig, &str)> = vec![
        ("start at i64::MAX", SynthConfig { start: i64::MAX, ..tiny() }, "synth.start"),
        ("start at i64::MIN", SynthConfig { start: i64::MIN, ..tiny() }, "synth.start"),
        ("start before listings can go back", SynthConfig { start: 0, ..tiny() }, "synth.start"),
        ("days to past 2100", SynthConfig { days: u32::MAX, ..tiny() }, "synth.start"),
        ("start in 2101", SynthConfig { start: 4_133_980_800, ..tiny() }, "synth.start"),
        ("huge dim", SynthConfig { dim: usize::MAX, ..tiny() }, "synth.dim"),
        ("huge users", SynthConfig { users: usize::MAX, ..tiny() }, "synth.users"),
        ("huge sessions", SynthConfig { sessions_per_user: usize::MAX, ..tiny() }, "synth.users"),
        ("huge interests", SynthConfig { max_interests: usize::MAX, ..tiny() }, "synth.users"),
        ("huge contents", SynthConfig { contents: usize::MAX, ..tiny() }, "synth.users"),
    ];
    for (what, cfg, field) in cases {
        let e = generate(&cfg).unwrap_err();
        assert!(
            matches!(e.kind(), omnifeed::ErrorKind::InvalidConfig { field: f, .. } if *f == field),
            "{what}: {e}"
        );
    }
    // The latest start allowed still makes a world the default store takes whole.
    let late = SynthConfig { start: 4_102_444_800 - 86_400 - 30 * 86_400, days: 30, ..tiny() };
    let world = generate(&late).unwrap();
    let mut store =
        omnifeed::SignalStore::new(Arc::new(world.catalog.clone()), SignalConfig::default())
            .unwrap();
    assert_eq!(store.first_rejection(&world.events), None);
    assert_eq!(store.ingest_batch(&world.events).rejected(), 0);
}
