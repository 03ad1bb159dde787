//! Class 11 (issue 22): cost linear in what the caller hands in, and
//! incremental equal to rebuild. Link and unlink deltas cost `O(1)` each
//! (no scan of the content's product list per delta) and leave exactly the
//! list a plain model gives, in order; `benches/input.rs` measures 10× and
//! 100× the deltas and the pins.

use super::*;
use omnifeed::{CatalogDelta, ContentId};
use proptest::prelude::*;

/// The content's product rows after `ops`, the plain way: a link appends
/// what is not there, an unlink removes what is, order kept.
fn model(start: Vec<u32>, ops: &[(bool, u32)]) -> Vec<u32> {
    let mut list = start;
    for &(link, row) in ops {
        match (link, list.iter().position(|&r| r == row)) {
            (true, None) => list.push(row),
            (false, Some(p)) => {
                list.remove(p);
            }
            _ => {}
        }
    }
    list
}

fn rows_of(c: &Catalog, id: ContentId) -> Vec<u32> {
    c.content_products(id).unwrap().map(|r| r.0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of links and unlinks, in one batch or split over two,
    /// leaves the list the model gives.
    #[test]
    fn links_and_unlinks_equal_the_plain_model(
        ops in proptest::collection::vec((any::<bool>(), 0u32..40), 1..120),
        split in any::<prop::sample::Index>(),
    ) {
        let base = &world().catalog;
        let content = base.contents().next().unwrap().id;
        let deltas: Vec<CatalogDelta> = ops
            .iter()
            .map(|&(link, r)| {
                let product = base.product(ItemIdx(r)).id;
                if link { CatalogDelta::Link { content, product } } else { CatalogDelta::Unlink { content, product } }
            })
            .collect();
        let want = model(rows_of(base, content), &ops);
        let (one, _) = base.apply(&deltas).unwrap();
        prop_assert_eq!(rows_of(&one, content), want.clone());
        let at = split.index(deltas.len() + 1);
        let (half, _) = base.apply(&deltas[..at]).unwrap();
        let (two, _) = half.apply(&deltas[at..]).unwrap();
        prop_assert_eq!(rows_of(&two, content), want);
    }
}

#[test]
fn a_big_link_batch_costs_about_linear() {
    // 20,000 links then 20,000 unlinks on one content: quadratic work would
    // be 4·10⁸ list steps; linear finishes at once. (Timing is the bench's
    // job; this pins the result.)
    let base = small_catalog(20_000, |i| vec![1.0, (i % 97) as f32 * 0.01, 0.5]);
    let mut b = base.to_builder();
    b.add_content(omnifeed::Content {
        id: ContentId(1),
        kind: omnifeed::ContentKind::ShortVideo,
        creator: omnifeed::UserId(1),
        starts_at: 0,
        ends_at: None,
        products: vec![],
    });
    let base = b.build().unwrap();
    let ids: Vec<ProductId> = base.product_ids().to_vec();
    let mut deltas: Vec<CatalogDelta> =
        ids.iter().map(|&product| CatalogDelta::Link { content: ContentId(1), product }).collect();
    deltas.extend(
        ids.iter()
            .step_by(2)
            .map(|&product| CatalogDelta::Unlink { content: ContentId(1), product }),
    );
    let (next, _) = base.apply(&deltas).unwrap();
    let rows = rows_of(&next, ContentId(1));
    assert_eq!(rows.len(), 10_000);
    assert!(rows.iter().all(|r| r % 2 == 1), "the odd rows stay, in order");
    assert!(rows.windows(2).all(|w| w[0] < w[1]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The title index updated in place equals one rebuilt from scratch,
    /// for retitles, text fields set, changed and cleared, new products at
    /// the id bounds and delistings, with titles up to past the `u16` token
    /// count.
    #[test]
    fn the_title_index_updated_equals_a_rebuild(
        edits in proptest::collection::vec((0u32..60, 0usize..8), 1..20),
        new_ids in proptest::collection::vec(prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(0u64), 1u64..1_000_000], 0..4),
    ) {
        use omnifeed::index::{LexicalIndex, query_terms};
        let base = &world().catalog;
        let titles = |kind: usize, i: u32| -> Option<String> {
            match kind {
                0 => None,
                1 => Some(String::new()),
                2 => Some(format!("renamed {i} mug")),
                3 => Some("long ".repeat(70_000) + &format!("tail{i}")),
                _ => Some(format!("{} unique{i}", "word ".repeat(300))),
            }
        };
        let mut deltas: Vec<CatalogDelta> = edits
            .iter()
            .map(|&(r, kind)| {
                let mut p = base.product(ItemIdx(r));
                p.title = titles(kind.min(4), r);
                // Text fields (BM25F): entering, changing, leaving.
                if kind >= 5 {
                    p.brand = (kind != 7).then(|| format!("acme{}", r % 3));
                    p.category_names = vec!["Tools".into(), format!("kind{kind}")];
                    p.attributes = if kind == 6 { vec!["mug rack".into(); 3] } else { vec![] };
                    p.title = (kind == 5).then(|| format!("renamed {r} mug"));
                }
                CatalogDelta::UpsertProduct { product: p, embedding: None }
            })
            .collect();
        for (k, &id) in new_ids.iter().enumerate() {
            if base.row(ProductId(id)).is_some() { continue; }
            let mut p = base.product(ItemIdx(0));
            p.id = ProductId(id);
            p.title = Some(format!("bound{k} mug"));
            let e = base.embeddings().row(ItemIdx(0)).to_vec();
            deltas.push(CatalogDelta::UpsertProduct { product: p, embedding: Some(e) });
        }
        deltas.push(CatalogDelta::Delist { product: base.product(ItemIdx(61)).id });
        let (next, changes) = match base.apply(&deltas) {
            Ok(x) => x,
            Err(_) => return Ok(()), // two new products with one id: refused, nothing to compare
        };
        let updated = LexicalIndex::build(base).updated(base, &next, &changes.retitled);
        let rebuilt = LexicalIndex::build(&next);
        prop_assert_eq!(updated.terms(), rebuilt.terms());
        let (mut acc, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for q in ["renamed mug", "long tail3", "word unique7", "bound0", "mug", "tail59", "acme1 tools", "kind6 rack"] {
            let terms = query_terms(q);
            updated.search(&terms, 30, &|_| true, &mut acc, &mut a);
            rebuilt.search(&terms, 30, &|_| true, &mut acc, &mut b);
            prop_assert_eq!(&a, &b, "{}", q);
            prop_assert!(a.iter().all(|&(r, s)| next.is_listed(r) && s.is_finite()));
        }
    }
}

// ---- Class 3: incremental equals rebuild (IVF lists, signal tables,
// co-engagement lists, price bands) ----

/// A list's rows with their codes, in row order (a rebuild need not keep
/// the updated list's order, only its contents).
fn ivf_contents(ivf: &omnifeed::index::IvfIndex, dim: usize) -> Vec<Vec<(u32, Vec<u8>)>> {
    (0..ivf.lists())
        .map(|l| {
            let (rows, codes) = (ivf.list_rows(l).unwrap(), ivf.list_codes(l).unwrap());
            let mut v: Vec<(u32, Vec<u8>)> = rows
                .iter()
                .enumerate()
                .map(|(i, &r)| (r, codes[i * dim..(i + 1) * dim].to_vec()))
                .collect();
            v.sort_unstable();
            v
        })
        .collect()
}

fn seeded_vec(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0 + 1e-3
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// IVF lists updated through any sequence of delta batches (re-embedded
    /// rows, rows named twice in a batch, new products at the id bounds,
    /// delistings) hold exactly what placing every row afresh under the
    /// same centroids and grid gives: each row once, in its nearest
    /// centroid's list, with its codes.
    #[test]
    fn ivf_lists_updated_equal_a_rebuild_under_the_same_centroids(
        batches in proptest::collection::vec(
            proptest::collection::vec((0u8..4, 0u32..240, any::<u64>()), 1..25), 1..4),
    ) {
        use omnifeed::index::{IvfIndex, IvfParams, VectorIndex};
        let dim = 6;
        let base = small_catalog(240, |i| seeded_vec(i + 1, dim));
        let params = IvfParams { lists: 8, probes: 2, ..IvfParams::default() };
        let first: Arc<dyn VectorIndex> =
            Arc::new(IvfIndex::build(base.shared_embeddings(), params).unwrap());
        let (mut cat, mut index) = (base, Arc::clone(&first));
        let bounds = [u64::MAX, u64::MAX - 1, 1 << 53, 1 << 32];
        for (b, batch) in batches.iter().enumerate() {
            let deltas: Vec<CatalogDelta> = batch
                .iter()
                .enumerate()
                .map(|(i, &(op, r, seed))| {
                    let row = ItemIdx(r % cat.len() as u32);
                    match op {
                        0 | 1 => CatalogDelta::UpsertProduct {
                            product: cat.product(row),
                            embedding: Some(seeded_vec(seed, dim)),
                        },
                        2 => {
                            let id = bounds[(b * 7 + i) % bounds.len()] - (b * 100 + i) as u64;
                            let mut p = cat.product(ItemIdx(0));
                            p.id = ProductId(id);
                            CatalogDelta::UpsertProduct { product: p, embedding: Some(seeded_vec(seed, dim)) }
                        }
                        _ => CatalogDelta::Delist { product: cat.product(row).id },
                    }
                })
                .collect();
            let (next, changes) = cat.apply(&deltas).unwrap();
            index = index.updated(&next, &changes.embedded).unwrap();
            cat = next;
        }
        let all: Vec<ItemIdx> = (0..cat.len() as u32).map(ItemIdx).collect();
        let rebuilt = first.updated(&cat, &all).unwrap();
        let (a, b) = (index.as_ivf().unwrap(), rebuilt.as_ivf().unwrap());
        let (ca, cb) = (ivf_contents(a, dim), ivf_contents(b, dim));
        let placed: usize = ca.iter().map(Vec::len).sum();
        prop_assert_eq!(placed, cat.len());
        prop_assert_eq!(ca, cb);
        // And they answer alike.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for q in 0..5u64 {
            let v = seeded_vec(q + 77, dim);
            index.search(&v, 20, None, &mut x).unwrap();
            rebuilt.search(&v, 20, None, &mut y).unwrap();
            prop_assert_eq!(&x, &y);
        }
    }
}

/// A world's log cut into entries at `cuts`, with product ids at the
/// bounds, a content linked to every product (a huge link list) and
/// events on all of them.
fn cut_log(world: &omnifeed::synth::World, cuts: &[usize]) -> Vec<omnifeed::live::LogEntry> {
    use omnifeed::live::LogEntry;
    use omnifeed::{Content, ContentId, ContentKind, Event, EventKind, Target, UserId};
    let events = &world.events;
    let mut at: Vec<usize> = cuts.iter().map(|&c| c % events.len()).collect();
    at.sort_unstable();
    at.dedup();
    let mut entries = Vec::new();
    let mut from = 0;
    for &c in at.iter().chain([events.len()].iter()) {
        if c > from {
            entries.push(LogEntry::Events(events[from..c].to_vec()));
            from = c;
        }
    }
    let last = events.last().unwrap().at;
    let c = &world.catalog;
    let mut deltas: Vec<CatalogDelta> = [u64::MAX, u64::MAX - 1, 0]
        .iter()
        .filter(|&&id| c.row(ProductId(id)).is_none())
        .map(|&id| {
            let mut p = c.product(ItemIdx(3));
            p.id = ProductId(id);
            p.price = if id == 0 { 0.0 } else { 1e9 };
            CatalogDelta::UpsertProduct {
                product: p,
                embedding: Some(c.embeddings().row(ItemIdx(3)).to_vec()),
            }
        })
        .collect();
    deltas.push(CatalogDelta::UpsertContent {
        content: Content {
            id: ContentId(u64::MAX),
            kind: ContentKind::ShortVideo,
            creator: UserId(u64::MAX),
            starts_at: last,
            ends_at: None,
            products: c.product_ids().to_vec(),
        },
    });
    entries.push(LogEntry::Delta(deltas));
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).chain([UserId(u64::MAX)]).collect();
    let hot = [ProductId(u64::MAX), ProductId(u64::MAX - 1), c.product_id(ItemIdx(1))];
    let tail: Vec<Event> = (0..60)
        .map(|i| {
            let kind = match i % 4 {
                0 => EventKind::Order { price: Some(1e9) },
                1 => EventKind::Click,
                2 => EventKind::Impression,
                _ => EventKind::View { watch_secs: 1e9 },
            };
            let target = if i % 4 == 3 {
                Target::Content(ContentId(u64::MAX))
            } else {
                Target::Product(hot[i % hot.len()])
            };
            Event::new(last + 1 + i as i64, users[i % users.len()], target, kind)
        })
        .collect();
    entries.push(LogEntry::Events(tail));
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The state published after every entry (signal tables, derived rates
    /// and lists, co-engagement lists and price bands updated in place at
    /// each publish) equals the state derived once from the whole log.
    #[test]
    fn signals_published_along_the_way_equal_one_derivation(
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        publish_after in proptest::collection::vec(any::<bool>(), 12),
    ) {
        use omnifeed::live::ShopWriter;
        use omnifeed::signals::Counter;
        let world = world();
        let entries = cut_log(world, &cuts);
        let fresh = || {
            ShopWriter::new(world.catalog.clone(), SignalConfig::default(), crate::it::live::exact()).unwrap()
        };
        let (mut along, mut once) = (fresh(), fresh());
        for (i, e) in entries.iter().enumerate() {
            along.apply(1 + i as u64, e).unwrap();
            once.apply(1 + i as u64, e).unwrap();
            if publish_after[i % publish_after.len()] {
                along.publish().unwrap();
            }
        }
        let (a, b) = (along.publish().unwrap(), once.publish().unwrap());
        let users: Vec<omnifeed::UserId> = world.users.iter().map(|u| u.id).collect();
        crate::it::live::snapshots::assert_same_state(&a, &b, &users);
        let (sa, sb) = (a.signals(), b.signals());
        let at = sa.as_of();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut co_lists = 0;
        for r in 0..a.catalog().len() as u32 {
            let row = ItemIdx(r);
            for c in [Counter::Impression, Counter::Click, Counter::Watch, Counter::Order, Counter::Revenue] {
                for half in 0..2 {
                    prop_assert_eq!(
                        sa.counter(row, c, half, at).map(f32::to_bits),
                        sb.counter(row, c, half, at).map(f32::to_bits),
                        "row {} {:?}", r, c
                    );
                }
            }
            sa.co_engaged(row, at, &mut x);
            sb.co_engaged(row, at, &mut y);
            prop_assert_eq!(&x, &y, "co-engagement of row {}", r);
            co_lists += usize::from(!x.is_empty());
        }
        prop_assert!(co_lists > 10, "only {} rows have co-engagement lists", co_lists);
        // The bound ids are there and finite.
        for id in [u64::MAX, u64::MAX - 1] {
            let row = a.catalog().row(ProductId(id)).unwrap();
            prop_assert!(sa.quality(row).is_finite());
        }
    }
}
