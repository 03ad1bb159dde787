//! Class 5: strict configuration. Every serde config type rejects unknown
//! fields, TOML errors name the key path; unknown quota sources, duplicate
//! source ids and empty log periods are typed errors at build time.

use super::*;
use omnifeed::ErrorKind;
use omnifeed::load::{LogOptions, OutOfPeriod, read_events};
use omnifeed::stage::{CandidateBuf, CandidateSource, RequestContext};
use proptest::prelude::*;

fn toml_err(text: &str) -> String {
    let e = RecommenderConfig::from_toml_str(text).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "toml", .. }), "{text}: {e}");
    e.to_string()
}

#[test]
fn misspelled_toml_keys_are_errors_naming_the_path() {
    for (text, path) in [
        ("sourcs = 1", "sourcs"),
        ("[sources]\nintrest = 400", "sources.intrest"),
        ("[fusion.feed]\nctrr = 1.0", "fusion.feed.ctrr"),
        ("[rerank.feed]\nwindw = 3", "rerank.feed.windw"),
        ("[rerank.mall]\nwindow = 3", "rerank.mall"),
        (
            "[[rerank.omni.quotas]]\nsorce = \"search\"\nmin_share = 0.1\nmax_share = 0.2",
            "rerank.omni.quotas",
        ),
        ("[scorer]\nbiass = [0.0, 0.0, 0.0]", "scorer.biass"),
        ("[sources]\nsearch_fusion = { kind = \"rrf\", kk = 3.0 }", "sources.search_fusion"),
        (
            "[rerank.feed]\ndiversity = { kind = \"dpp\", theta = 2.0, lambda = 0.5 }",
            "rerank.feed.diversity",
        ),
    ] {
        let msg = toml_err(text);
        assert!(msg.contains(path), "{text}: {msg}");
    }
}

#[test]
fn a_tagged_choice_in_toml_replaces_the_default_kind() {
    let cfg = RecommenderConfig::from_toml_str(
        "[rerank.feed]\ndiversity = { kind = \"dpp\", theta = 2.0 }",
    )
    .unwrap();
    assert_eq!(cfg.rerank.feed.diversity, omnifeed::rerank::Diversity::Dpp { theta: 2.0 });
}

/// Deserializing `json` as `T` fails with serde's "unknown field".
fn unknown<T: serde::de::DeserializeOwned>(what: &str, json: &str) {
    let e = serde_json::from_str::<T>(json).map(drop).expect_err(what);
    assert!(e.to_string().contains("unknown field"), "{what}: {e}");
}

#[test]
fn every_serde_config_type_denies_unknown_fields() {
    unknown::<SignalConfig>("SignalConfig", r#"{"latenes": 5}"#);
    unknown::<SignalConfig>("SignalConfig.weights", r#"{"weights": {"clik": 1}}"#);
    unknown::<SignalConfig>("SignalConfig.profiles", r#"{"profiles": {"intrests": 2}}"#);
    unknown::<SignalConfig>("SignalConfig.time_window", r#"{"time_window": {"maxx": 2}}"#);
    unknown::<SignalConfig>("SignalConfig.priors", r#"{"priors": {"x": 2}}"#);
    unknown::<SignalConfig>("SignalConfig.live", r#"{"live": {"x": 2}}"#);
    unknown::<SignalConfig>("SignalConfig.repurchase", r#"{"repurchase": {"x": 2}}"#);
    unknown::<SignalConfig>("SignalConfig.governance", r#"{"governance": {"x": 2}}"#);
    unknown::<omnifeed::index::HnswParams>("HnswParams", r#"{"m": 16}"#);
    unknown::<omnifeed::train::AlsConfig>("AlsConfig", r#"{"factor": 16}"#);
    unknown::<omnifeed::synth::SynthConfig>("SynthConfig", r#"{"product": 16}"#);
    unknown::<LogOptions>("LogOptions", r#"{"periode": null, "out_of_period": "drop"}"#);
    unknown::<omnifeed::eval::Relevance>("Relevance", r#"{"min": "click", "x": 1}"#);
    unknown::<omnifeed::rerank::Quota>(
        "Quota",
        r#"{"source": "a", "min_share": 0, "max_share": 1, "x": 0}"#,
    );
    unknown::<omnifeed::rerank::Diversity>(
        "Diversity",
        r#"{"kind": "mmr", "lambda": 0.5, "theta": 1}"#,
    );
    unknown::<omnifeed::rerank::RerankConfig>("RerankConfig", r#"{"windw": 3}"#);
    unknown::<omnifeed::rank::Fusion>("Fusion", r#"{"ctrr": 3}"#);
    unknown::<omnifeed::rank::HeadWeights>("HeadWeights", r#"{"biass": 3}"#);
}

#[derive(Debug)]
struct Named(&'static str);

impl CandidateSource for Named {
    fn id(&self) -> &'static str {
        self.0
    }
    fn retrieve(&self, _: &RequestContext<'_>, _: &mut CandidateBuf) -> omnifeed::Result<()> {
        Ok(())
    }
}

#[test]
fn quotas_and_source_ids_are_checked_at_build() {
    let state = || (*recommender().state()).clone();
    let mut cfg = RecommenderConfig::default();
    cfg.rerank.omni.quotas[0].source = "serch".into();
    let e = Recommender::builder().config(cfg).state(state()).build().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field: "rerank.omni.quotas", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("serch"));
    // A quota naming a custom source is fine.
    let mut cfg = RecommenderConfig::default();
    cfg.rerank.feed.quotas.push(omnifeed::rerank::Quota {
        source: "followed".into(),
        min_share: 0.0,
        max_share: 0.5,
    });
    Recommender::builder()
        .config(cfg)
        .state(state())
        .source(Box::new(Named("followed")))
        .build()
        .unwrap();
    for extra in [vec![Named("popular")], vec![Named("mine"), Named("mine")]] {
        let mut b = Recommender::builder().state(state());
        for s in extra {
            b = b.source(Box::new(s));
        }
        let e = b.build().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "sources", .. }), "{e}");
    }
}

#[test]
fn an_empty_log_period_is_an_error() {
    let dir = std::env::temp_dir().join(format!("omnifeed-adv-period-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("events.csv");
    omnifeed::load::write_events(&p, &world().events[..10]).unwrap();
    for period in [(5, 5), (6, 5), (i64::MAX, i64::MIN)] {
        let opts = LogOptions {
            period: Some(period),
            out_of_period: OutOfPeriod::Clamp,
            ..LogOptions::default()
        };
        let e = read_events(&p, &opts).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field: "log.period", .. }),
            "{period:?}"
        );
    }
    let ok = LogOptions {
        period: Some((i64::MIN, i64::MAX)),
        out_of_period: OutOfPeriod::Clamp,
        ..LogOptions::default()
    };
    assert_eq!(read_events(&p, &ok).unwrap().0.len(), 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// An unknown key put at any table of a valid config is an error whose
    /// message names the key.
    #[test]
    fn an_unknown_key_anywhere_is_named(
        table in prop::sample::select(vec![
            "", "sources", "scorer", "fusion.feed", "fusion.search", "fusion.omni",
            "rerank.feed", "rerank.search", "rerank.omni",
        ]),
        key in "zz[a-z]{1,8}",
    ) {
        let text = if table.is_empty() {
            format!("{key} = 1")
        } else {
            format!("[{table}]\n{key} = 1")
        };
        let msg = toml_err(&text);
        prop_assert!(msg.contains(&key), "{text}: {msg}");
    }
}

/// Every integer key of a config, as a TOML key path, found by walking the
/// default config's own serialization (a new field is audited without
/// being listed here).
fn integer_keys(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Integer(_) => out.push(path.to_string()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                integer_keys(v, &p, out);
            }
        }
        _ => {}
    }
}

/// `text` with the key at `path` set to `v`.
fn with_key(text: &str, path: &str, v: i64) -> String {
    let mut doc: toml::Value = toml::from_str(text).unwrap();
    let mut at = &mut doc;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = at.get_mut(*p).unwrap();
    }
    at.as_table_mut().unwrap().insert(parts[parts.len() - 1].to_string(), toml::Value::Integer(v));
    toml::to_string(&doc).unwrap()
}

/// `e` is an `InvalidConfig` whose message names the key's last part.
fn assert_refused_by_name(e: &omnifeed::Error, key: &str, v: i64) {
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{key} = {v}: {e}");
    let leaf = key.rsplit('.').next().unwrap();
    assert!(e.to_string().contains(leaf), "{key} = {v}: the error does not name it: {e}");
}

const EXTREMES: [i64; 8] =
    [i64::MIN, -1, 0, 1, u32::MAX as i64, u32::MAX as i64 + 1, i64::MAX / 2, i64::MAX];

/// Class 5: every integer parameter of the recommender config, at every
/// extreme a TOML file can hold, is an `InvalidConfig` naming its key or
/// a config that builds and serves Feed, Search and Omni requests with no
/// panic, wrap (the debug run) or non-finite score.
#[test]
fn every_integer_config_parameter_at_the_limits_is_checked_or_served() {
    let default = toml::to_string(&RecommenderConfig::default()).unwrap();
    let mut keys = Vec::new();
    integer_keys(&toml::from_str(&default).unwrap(), "", &mut keys);
    assert!(keys.len() >= 15, "found only {keys:?}");
    let w = world();
    let user = w.users[0].id;
    let requests = [
        omnifeed::FeedRequest::new(user).k(50),
        omnifeed::FeedRequest::new(user)
            .surface(omnifeed::Surface::Search)
            .k(50)
            .query(omnifeed::SearchQuery { text: Some("mug".into()), ..Default::default() }),
        omnifeed::FeedRequest::new(user).surface(omnifeed::Surface::Omni).k(50),
    ];
    let state = {
        let signals = store().publish();
        let catalog = Arc::clone(signals.catalog());
        let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
        ServingState::new(catalog, index, Arc::new(signals)).unwrap()
    };
    let mut served = 0;
    for key in &keys {
        for v in EXTREMES {
            let text = with_key(&default, key, v);
            let cfg = match RecommenderConfig::from_toml_str(&text) {
                Err(e) => {
                    assert_refused_by_name(&e, key, v);
                    continue;
                }
                Ok(cfg) => cfg,
            };
            let rec = match Recommender::builder().config(cfg).state(state.clone()).build() {
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::InvalidConfig { .. }),
                        "{key} = {v}: {e}"
                    );
                    continue;
                }
                Ok(r) => r,
            };
            for req in &requests {
                let feed = rec.recommend(req).unwrap_or_else(|e| panic!("{key} = {v}: {e}"));
                assert_feed_finite(&feed);
            }
            served += 1;
        }
    }
    assert!(served > keys.len(), "served only {served} configs");
}

/// The signal config's integer parameters likewise: refused by name, or a
/// store that ingests the world's log and publishes finite signals.
#[test]
fn every_integer_signal_parameter_at_the_limits_is_checked_or_applied() {
    let default = toml::to_string(&SignalConfig::default()).unwrap();
    let mut keys = Vec::new();
    integer_keys(&toml::from_str(&default).unwrap(), "", &mut keys);
    assert!(keys.len() >= 10, "found only {keys:?}");
    let w = world();
    let catalog = Arc::new(w.catalog.clone());
    for key in &keys {
        for v in EXTREMES {
            let text = with_key(&default, key, v);
            let cfg: SignalConfig = match toml::from_str(&text) {
                Err(_) => continue, // out of the field's integer type: serde refuses it
                Ok(c) => c,
            };
            match Signals::from_events(Arc::clone(&catalog), &w.events[..2_000], &cfg) {
                Err(e) => {
                    assert_refused_by_name(&e, key, v);
                }
                Ok((s, _)) => assert_signals_finite(&s),
            }
        }
    }
}
