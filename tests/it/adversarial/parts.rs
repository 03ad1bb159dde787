//! Class 6: consistency of parts. A serving state refuses an index or
//! signals built over another catalog, even one of the same size and
//! dimension; it accepts parts built over an equal catalog.

use super::*;
use omnifeed::index::{ExactIndex, HnswIndex, HnswParams, IvfIndex, IvfParams, VectorIndex};
use omnifeed::{ErrorKind, Event, EventKind, Target, UserId};
use proptest::prelude::*;

fn emb_a(i: u64) -> Vec<f32> {
    vec![1.0, i as f32 * 0.1, 0.3]
}

fn emb_b(i: u64) -> Vec<f32> {
    vec![0.3, 1.0, i as f32 * 0.1]
}

fn signals_of(c: &Arc<Catalog>) -> Arc<Signals> {
    let e = Event::new(1_790_000_000, UserId(1), Target::Product(ProductId(1)), EventKind::Click);
    Arc::new(Signals::from_events(Arc::clone(c), &[e], &SignalConfig::default()).unwrap().0)
}

fn mismatch(e: &omnifeed::Error, want: &str) -> bool {
    matches!(e.kind(), ErrorKind::CatalogMismatch { part, .. } if *part == want)
}

#[test]
fn an_index_over_another_catalog_of_the_same_shape_is_refused() {
    let a = Arc::new(small_catalog(40, emb_a));
    let b = Arc::new(small_catalog(40, emb_b));
    let eb = b.shared_embeddings();
    let others: Vec<Arc<dyn VectorIndex>> = vec![
        Arc::new(ExactIndex::new(Arc::clone(&eb))),
        Arc::new(
            IvfIndex::build(
                Arc::clone(&eb),
                IvfParams { lists: 4, probes: 2, ..Default::default() },
            )
            .unwrap(),
        ),
        Arc::new(HnswIndex::build(eb, HnswParams::default()).unwrap()),
    ];
    for index in others {
        let e = ServingState::new(Arc::clone(&a), Arc::clone(&index), signals_of(&a)).unwrap_err();
        assert!(mismatch(&e, "index"), "{}: {e}", index.id());
    }
}

#[test]
fn signals_over_another_catalog_of_the_same_shape_are_refused() {
    let a = Arc::new(small_catalog(40, emb_a));
    let b = Arc::new(small_catalog(40, emb_b));
    let index = Arc::new(ExactIndex::new(a.shared_embeddings()));
    let e = ServingState::new(Arc::clone(&a), index, signals_of(&b)).unwrap_err();
    assert!(mismatch(&e, "signals"), "{e}");
}

#[test]
fn parts_over_an_equal_catalog_are_accepted() {
    let a = Arc::new(small_catalog(40, emb_a));
    let twin = Arc::new(small_catalog(40, emb_a));
    assert_eq!(a.fingerprint(), twin.fingerprint());
    // Signals over the twin, an index over a copy of the embeddings.
    let copy = Arc::new(a.embeddings().clone());
    let index = Arc::new(ExactIndex::new(copy));
    ServingState::new(Arc::clone(&a), index, signals_of(&twin)).unwrap();
}

#[test]
fn size_and_dimension_mismatches_stay_dimension_errors() {
    let a = Arc::new(small_catalog(40, emb_a));
    let fewer = small_catalog(39, emb_a).shared_embeddings();
    let e = ServingState::new(Arc::clone(&a), Arc::new(ExactIndex::new(fewer)), signals_of(&a))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::CountMismatch { what: "index rows", .. }), "{e}");
    let wider = small_catalog(40, |i| vec![1.0, i as f32, 0.0, 1.0]).shared_embeddings();
    let e = ServingState::new(Arc::clone(&a), Arc::new(ExactIndex::new(wider)), signals_of(&a))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DimensionMismatch { what: "index", .. }), "{e}");
}

#[test]
fn the_fingerprint_sees_ids_order_and_vectors() {
    let base = small_catalog(20, emb_a).fingerprint();
    assert_eq!(base, small_catalog(20, emb_a).fingerprint());
    // One id changed.
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.8, status: MerchantStatus::Active });
    for i in 0..20u64 {
        let id = if i == 7 { 1_000 } else { i };
        b.add_product(Product { id: ProductId(id), ..product(i, 10.0) });
        b.add_embedding(ProductId(id), &emb_a(i));
    }
    assert_ne!(base, b.build().unwrap().fingerprint());
    // Same products, other order.
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.8, status: MerchantStatus::Active });
    for i in (0..20u64).rev() {
        b.add_product(product(i, 10.0));
        b.add_embedding(ProductId(i), &emb_a(i));
    }
    assert_ne!(base, b.build().unwrap().fingerprint());
    // One vector nudged.
    let nudged = small_catalog(20, |i| {
        let mut v = emb_a(i);
        if i == 3 {
            v[2] += 1e-3;
        }
        v
    });
    assert_ne!(base, nudged.fingerprint());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A state accepts an index exactly when it indexes the same vectors.
    #[test]
    fn a_state_accepts_exactly_the_same_vectors(
        n in 2u64..30,
        change in prop::option::of((0u64..30, -1.0f32..1.0)),
    ) {
        let a = Arc::new(small_catalog(n, emb_a));
        let other = small_catalog(n, |i| {
            let mut v = emb_a(i);
            if let Some((j, d)) = change {
                if j == i && d != 0.0 {
                    v[0] += d;
                }
            }
            v
        });
        let same = a.embeddings().as_slice() == other.embeddings().as_slice();
        let index = Arc::new(ExactIndex::new(other.shared_embeddings()));
        let got = ServingState::new(Arc::clone(&a), index, signals_of(&a));
        prop_assert_eq!(got.is_ok(), same);
    }
}

/// A catalog of `n` products with ids `offset..offset + n`.
fn shop(n: u64, offset: u64) -> Catalog {
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.8, status: MerchantStatus::Active });
    for i in 0..n {
        b.add_product(product(offset + i, 10.0));
        b.add_embedding(ProductId(offset + i), &emb_a(i));
    }
    b.build().unwrap()
}

fn state_of(c: &Arc<Catalog>) -> ServingState {
    let index = Arc::new(ExactIndex::new(c.shared_embeddings()));
    ServingState::new(Arc::clone(c), index, signals_of(c)).unwrap()
}

/// `with_delta` takes a successor by identity (each of the old rows holds
/// the same product, the version does not go back), not by row count.
#[test]
fn a_successor_state_is_checked_by_identity() {
    use omnifeed::CatalogDelta;
    let base = Arc::new(shop(30, 1));
    let old = state_of(&base);
    let (next, changes) = base
        .apply(&[CatalogDelta::UpsertProduct {
            product: product(999, 3.0),
            embedding: Some(emb_a(7)),
        }])
        .unwrap();
    let next = Arc::new(next);
    let index = Arc::new(ExactIndex::new(next.shared_embeddings()));
    assert!(old.with_delta(Arc::clone(&next), index, signals_of(&next), &changes).is_ok());
    // Another shop with as many rows (or more), and the old state of this one.
    let other_shop = Arc::new(shop(30, 1_000));
    let bigger_other = Arc::new(shop(31, 1_000));
    let reordered = Arc::new(shop(30, 2));
    for (what, c) in [
        ("another shop", &other_shop),
        ("another, bigger", &bigger_other),
        ("shifted ids", &reordered),
    ] {
        let index = Arc::new(ExactIndex::new(c.shared_embeddings()));
        let e =
            old.with_delta(Arc::clone(c), index, signals_of(c), &Default::default()).unwrap_err();
        assert!(mismatch(&e, "successor catalog"), "{what}: {e}");
    }
    let newer = state_of(&next);
    let index = Arc::new(ExactIndex::new(base.shared_embeddings()));
    let e = newer
        .with_delta(Arc::clone(&base), index, signals_of(&base), &Default::default())
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::CountMismatch { .. } | ErrorKind::CatalogMismatch { .. }),
        "{e}"
    );
}
