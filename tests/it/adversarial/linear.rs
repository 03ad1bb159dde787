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
    /// for retitles, new products at the id bounds and delistings, with
    /// titles up to past the `u16` token count.
    #[test]
    fn the_title_index_updated_equals_a_rebuild(
        edits in proptest::collection::vec((0u32..60, 0usize..5), 1..20),
        new_ids in proptest::collection::vec(prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(0u64), 1u64..1_000_000], 0..4),
    ) {
        use omnifeed::index::{LexicalIndex, tokenize};
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
                p.title = titles(kind, r);
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
        for q in ["renamed mug", "long tail3", "word unique7", "bound0", "mug", "tail59"] {
            let terms = tokenize(q);
            updated.search(&terms, 30, &|_| true, &mut acc, &mut a);
            rebuilt.search(&terms, 30, &|_| true, &mut acc, &mut b);
            prop_assert_eq!(&a, &b, "{}", q);
            prop_assert!(a.iter().all(|&(r, s)| next.is_listed(r) && s.is_finite()));
        }
    }
}
