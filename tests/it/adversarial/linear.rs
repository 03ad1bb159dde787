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
