//! Class 4: cost linear in input size. Search text is bounded in bytes and
//! terms, term de-duplication and the BM25 merge are `O(n log n)`, content
//! link checks sort, exclusion lists are sorted once. The bounds are proved
//! on the amount of work kept (terms, bytes), never by timing; the 1 MB
//! search text has a criterion bench (`benches/input.rs`).

use super::*;
use omnifeed::index::{LexicalIndex, query_terms, tokenize};
use omnifeed::limits::{MAX_QUERY_BYTES, MAX_QUERY_TERMS};
use omnifeed::{
    Content, ContentId, ContentKind, ErrorKind, Event, FeedRequest, SearchQuery, Surface, UserId,
};
use proptest::prelude::*;

fn distinct_words(n: usize) -> String {
    (0..n).map(|i| format!("w{i} ")).collect()
}

#[test]
fn a_megabyte_of_text_keeps_at_most_the_bounded_terms() {
    let mb = 1 << 20;
    let same = "mug ".repeat(mb / 4);
    assert_eq!(query_terms(&same), ["mug"]);
    let many = distinct_words(200_000);
    assert!(many.len() >= mb);
    let t = query_terms(&many);
    assert_eq!(t.len(), MAX_QUERY_TERMS);
    assert_eq!(t[0], "w0");
    assert_eq!(t[MAX_QUERY_TERMS - 1], format!("w{}", MAX_QUERY_TERMS - 1));
    let seps = ",.;!? ".repeat(mb / 6);
    assert!(query_terms(&seps).is_empty());
    // Multi-byte characters straddling the cut: cut at a char boundary.
    let wide = "ü".repeat(mb);
    let t = query_terms(&wide);
    assert_eq!(t.len(), 1);
    assert!(t[0].len() <= MAX_QUERY_BYTES && t[0].chars().all(|c| c == 'ü'));
}

#[test]
fn a_megabyte_search_request_is_served_with_bounded_terms() {
    let text = format!("{}{}", distinct_words(150_000), "headphones ".repeat(10_000));
    assert!(text.len() > 1 << 20);
    let req = FeedRequest::new(user()).surface(Surface::Search).search_text(text).k(10);
    let feed = recommender().recommend(&req).unwrap();
    assert!(feed.trace.query_terms <= MAX_QUERY_TERMS);
    assert_eq!(feed.trace.query_terms, MAX_QUERY_TERMS);
    assert_feed_finite(&feed);
}

#[test]
fn a_megabyte_search_event_stores_at_most_the_byte_bound() {
    let mut s = store();
    let at = s.watermark().unwrap();
    let text = "x".repeat(1 << 20);
    let q = SearchQuery { text: Some(text), embedding: None };
    s.ingest(&Event::search(at, UserId(77), q)).unwrap();
    let signals = s.publish();
    let stored =
        signals.profile(UserId(77)).unwrap().searches().last().unwrap().text.clone().unwrap();
    assert_eq!(stored.len(), MAX_QUERY_BYTES);
}

#[test]
fn repeated_terms_score_as_one() {
    let catalog = small_catalog(30, |i| vec![1.0, i as f32]);
    let idx = LexicalIndex::build(&catalog);
    let (mut acc, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    idx.search(&tokenize("mug 7"), 10, &|_| true, &mut acc, &mut one);
    let repeated: Vec<String> =
        std::iter::repeat_n(["mug".to_string(), "7".to_string()], 100_000).flatten().collect();
    idx.search(&repeated, 10, &|_| true, &mut acc, &mut many);
    assert_eq!(one, many);
    assert_eq!(one[0].0, catalog.row(ProductId(7)).unwrap());
    // At most MAX_QUERY_TERMS lists are merged, whatever is passed.
    assert!(acc.len() <= MAX_QUERY_TERMS);
}

#[test]
fn content_with_many_links_is_checked_by_sorting() {
    let n = 60_000u64;
    let build = |dup: bool| {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 0.5,
            status: MerchantStatus::Active,
        });
        for i in 0..n {
            b.add_product(product(i, 1.0));
            b.add_embedding(ProductId(i), &[1.0, (i % 97) as f32]);
        }
        let mut products: Vec<ProductId> = (0..n).map(ProductId).collect();
        if dup {
            products.push(ProductId(n / 2));
        }
        b.add_content(Content {
            id: ContentId(1),
            kind: ContentKind::ShortVideo,
            creator: UserId(1),
            starts_at: 0,
            ends_at: None,
            products,
        });
        b.build()
    };
    let c = build(false).unwrap();
    assert_eq!(c.content(ContentId(1)).unwrap().products.len(), n as usize);
    let e = build(true).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { field: "content.products", .. }));
    assert!(e.to_string().contains(&format!("product {} is linked twice", n / 2)), "{e}");
}

#[test]
fn a_long_exclusion_list_is_sorted_once_and_applied() {
    let rec = recommender();
    let first = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    let shown: Vec<ProductId> = first.items.iter().map(|i| i.product).collect();
    let mut exclude: Vec<ProductId> = (0..200_000u64).map(|i| ProductId(u64::MAX - i)).collect();
    exclude.extend(&shown);
    let feed = rec.recommend(&FeedRequest::new(user()).k(10).exclude(exclude)).unwrap();
    assert_eq!(feed.trace.stale_excludes, 200_000);
    assert!(feed.items.iter().all(|i| !shown.contains(&i.product)));
}

#[test]
fn the_largest_k_under_the_largest_sources_stays_linear_past_the_diversified_head() {
    let mut cfg = RecommenderConfig::default();
    cfg.sources.interest = 10_000;
    cfg.sources.popular = 10_000;
    cfg.sources.fresh = 10_000;
    cfg.rerank_pool = 10_000;
    let rec = recommender_with(store().publish(), cfg);
    for surface in [Surface::Feed, Surface::Omni] {
        let req = FeedRequest::new(user()).surface(surface).k(omnifeed::limits::MAX_K);
        let feed = rec.recommend(&req).unwrap();
        // Every eligible candidate is placed (the pool is the whole
        // catalog here), past the diversified head too.
        assert!(feed.items.len() > omnifeed::rerank::MAX_DIVERSE, "{surface:?}");
        assert_eq!(feed.items.len(), feed.trace.rerank_pool);
        assert_feed_finite(&feed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text: at most MAX_QUERY_TERMS distinct terms, each a term of the
    /// default analyzer over the text's first MAX_QUERY_BYTES bytes, in
    /// order of first appearance.
    #[test]
    fn query_terms_are_bounded_distinct_and_from_the_text(
        words in prop::collection::vec("[a-zA-Z0-9éü🎧]{1,8}", 0..600),
        sep in prop_oneof![Just(" "), Just(", "), Just("\t"), Just("——")],
    ) {
        let text = words.join(sep);
        let terms = query_terms(&text);
        prop_assert!(terms.len() <= MAX_QUERY_TERMS);
        let mut sorted = terms.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), terms.len());
        let mut end = text.len().min(MAX_QUERY_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        use omnifeed::index::Analyzer;
        let head = omnifeed::index::TextAnalyzer::default().terms(&text[..end]);
        let mut firsts: Vec<String> = Vec::new();
        for t in head {
            if !firsts.contains(&t) {
                firsts.push(t);
            }
        }
        firsts.truncate(MAX_QUERY_TERMS);
        prop_assert_eq!(terms, firsts);
    }
}

/// A last word that is the prefix of 20,000 vocabulary terms costs a
/// bounded prefix scan and yields at most MAX_EXPANSIONS alternatives; a
/// long misspelled word costs the automaton's reach, not the vocabulary.
#[test]
fn prefix_and_typo_lookups_are_bounded_on_a_large_vocabulary() {
    use omnifeed::index::{MAX_EXPANSIONS, MatchKind, QueryConfig};
    let mut titled = omnifeed::CatalogBuilder::new();
    titled.add_merchant(Merchant {
        id: MerchantId(1),
        experience: 0.8,
        status: MerchantStatus::Active,
    });
    for i in 0..20_000u64 {
        titled.add_product(Product { title: Some(format!("pre{i:05}x item")), ..product(i, 1.0) });
        titled.add_embedding(ProductId(i), &[1.0, (i % 97) as f32 * 0.01, 0.5]);
    }
    let catalog = titled.build().unwrap();
    let lexical = LexicalIndex::build(&catalog);
    let plan = lexical.plan("pre", &QueryConfig::default());
    assert_eq!(plan.slots().len(), 1);
    let slot = &plan.slots()[0];
    assert!(!slot.is_empty() && slot.len() <= MAX_EXPANSIONS, "{}", slot.len());
    assert!(slot.iter().all(|a| a.kind == MatchKind::Prefix));
    // Two typos in a long word: the terms within reach only.
    let plan = lexical.plan("pre12345xx", &QueryConfig::default());
    assert!(plan.slots()[0].len() <= MAX_EXPANSIONS);
}
