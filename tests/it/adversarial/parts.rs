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
            if let Some((j, d)) = change
                && j == i && d != 0.0 {
                    v[0] += d;
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

// ---- Snapshots tied to one shop identity (class 2) ----

use omnifeed::live::{LogEntry, ShopWriter};

/// The manifest of a format-2 snapshot, as the module docs lay it out.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Identity {
    shop: Option<String>,
    catalog_fingerprint: u64,
    offset: Option<u64>,
    next_version: u64,
    saved_at: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Entry {
    name: String,
    offset: u64,
    len: u64,
    crc: u32,
}

/// A snapshot file split into its identity, its entries and its bytes.
struct SnapBytes {
    identity: Identity,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

impl SnapBytes {
    fn read(dir: &std::path::Path) -> (std::path::PathBuf, SnapBytes) {
        let name = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
        let path = dir.join(name.trim()).join("state.osnap");
        let bytes = std::fs::read(&path).unwrap();
        let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let (identity, entries) = postcard::from_bytes(&bytes[24..24 + len]).unwrap();
        (path, SnapBytes { identity, entries, bytes })
    }

    fn section(&self, name: &str) -> (usize, &[u8]) {
        let e = self.entries.iter().position(|e| e.name == name).unwrap();
        let e = &self.entries[e];
        (e.offset as usize, &self.bytes[e.offset as usize..(e.offset + e.len) as usize])
    }

    /// Writes the manifest back, with a fresh manifest checksum (the space
    /// the writer left for it is enough for these edits).
    fn write(&self, path: &std::path::Path) {
        let manifest = postcard::to_allocvec(&(&self.identity, &self.entries)).unwrap();
        let mut bytes = self.bytes.clone();
        assert!(24 + manifest.len() <= self.entries[0].offset as usize);
        bytes[12..16].copy_from_slice(&(manifest.len() as u32).to_le_bytes());
        bytes[16..20].copy_from_slice(&crc32fast::hash(&manifest).to_le_bytes());
        bytes[24..24 + manifest.len()].copy_from_slice(&manifest);
        std::fs::write(path, bytes).unwrap();
    }
}

fn snap_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("omnifeed-splice-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A shop of 6 products (ids from `first`), named `shop`, with a few
/// clicks applied, saved under `dir`.
fn saved_shop(dir: &std::path::Path, shop: Option<&str>, first: u64, clicks: u64) -> ShopWriter {
    let mut w =
        ShopWriter::new(self::shop(6, first), SignalConfig::default(), crate::it::live::exact())
            .unwrap();
    if let Some(s) = shop {
        w.set_shop_id(s).unwrap();
    }
    let events = (0..clicks)
        .map(|i| {
            Event::new(
                100 + i as i64,
                UserId(i % 3),
                Target::Product(ProductId(first + i % 6)),
                EventKind::Click,
            )
        })
        .collect();
    w.apply(1, &LogEntry::Events(events)).unwrap();
    w.save(dir).unwrap();
    w
}

fn is_snapshot_error(e: &omnifeed::Error, section: &str) -> bool {
    matches!(e.kind(), ErrorKind::Snapshot { section: s, .. } if s == section)
}

/// A section spliced in from another shop's snapshot of the same shape is
/// a typed error naming the section, whether its checksum entry travels
/// with it or is recomputed as a plain CRC32; so is a manifest spliced in.
#[test]
fn a_spliced_snapshot_is_a_typed_error() {
    let (da, db) = (snap_dir("a"), snap_dir("b"));
    saved_shop(&da, Some("shop-a"), 1, 5);
    saved_shop(&db, Some("shop-b"), 1_000, 7);
    let (path, a) = SnapBytes::read(&da);
    let (_, b) = SnapBytes::read(&db);
    let mut spliced_any = 0;
    for (i, e) in a.entries.iter().enumerate() {
        let (at, ours) = a.section(&e.name);
        let (_, theirs) = b.section(&e.name);
        if ours == theirs || ours.len() != theirs.len() {
            continue;
        }
        spliced_any += 1;
        let mut bytes = a.bytes.clone();
        bytes[at..at + ours.len()].copy_from_slice(theirs);
        // Their entry's checksum, and a recomputed plain CRC32.
        for crc in [b.entries[i].crc, crc32fast::hash(theirs)] {
            let mut s = SnapBytes {
                identity: a.identity.clone(),
                entries: a.entries.clone(),
                bytes: bytes.clone(),
            };
            s.entries[i].crc = crc;
            s.write(&path);
            let err = ShopWriter::load(&da).unwrap_err();
            assert!(is_snapshot_error(&err, &e.name), "{}: {err}", e.name);
        }
    }
    assert!(spliced_any >= 3, "the two shops differ in only {spliced_any} sections");
    // Their identity on our sections: every section fails.
    let s = SnapBytes {
        identity: b.identity.clone(),
        entries: a.entries.clone(),
        bytes: a.bytes.clone(),
    };
    s.write(&path);
    assert!(matches!(ShopWriter::load(&da).unwrap_err().kind(), ErrorKind::Snapshot { .. }));
    // Untouched, it loads and keeps its shop id.
    a.write(&path);
    assert_eq!(ShopWriter::load(&da).unwrap().shop_id(), Some("shop-a"));
    let _ = (std::fs::remove_dir_all(&da), std::fs::remove_dir_all(&db));
}

/// `load_expecting` takes the shop it expects and refuses another one, one
/// that names none, and another dimension, each with its typed error.
#[test]
fn load_expecting_refuses_another_shop() {
    let (named, unnamed) = (snap_dir("named"), snap_dir("unnamed"));
    saved_shop(&named, Some("north"), 1, 3);
    saved_shop(&unnamed, None, 1, 3);
    let dim = shop(1, 1).dim();
    assert_eq!(ShopWriter::load_expecting(&named, "north", dim).unwrap().shop_id(), Some("north"));
    for (dir, want, found) in [(&named, "south", Some("north")), (&unnamed, "north", None)] {
        let e = ShopWriter::load_expecting(dir, want, dim).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::ShopMismatch { expected, found: f, .. }
                if expected == want && f.as_deref() == found),
            "{e}"
        );
    }
    let e = ShopWriter::load_expecting(&named, "north", dim + 1).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DimensionMismatch { .. }), "{e}");
    // Bad ids are refused by the writer.
    let mut w =
        ShopWriter::new(shop(2, 1), SignalConfig::default(), crate::it::live::exact()).unwrap();
    for bad in ["", "a\nb", &"x".repeat(omnifeed::live::MAX_SHOP_ID_BYTES + 1)] {
        let e = w.set_shop_id(bad).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidValue { field: "shop id", .. }), "{e}");
    }
    assert_eq!(w.shop_id(), None);
    let _ = (std::fs::remove_dir_all(&named), std::fs::remove_dir_all(&unnamed));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any section of one snapshot spliced into another snapshot of the
    /// same shape, of another shop or of the same shop at another offset,
    /// fails to load with a typed error; it never loads as a mixed state.
    #[test]
    fn any_spliced_section_is_refused(
        other_shop in any::<bool>(),
        clicks in 1u64..12,
        pick in any::<prop::sample::Index>(),
        plain in any::<bool>(),
    ) {
        let (da, db) = (snap_dir("pa"), snap_dir("pb"));
        saved_shop(&da, Some("p"), 1, 4);
        let (shop_b, first_b) = if other_shop { ("q", 500) } else { ("p", 1) };
        saved_shop(&db, Some(shop_b), first_b, 4 + clicks);
        let (path, a) = SnapBytes::read(&da);
        let (_, b) = SnapBytes::read(&db);
        let candidates: Vec<usize> = (0..a.entries.len())
            .filter(|&i| {
                let n = &a.entries[i].name;
                let (_, x) = a.section(n);
                let (_, y) = b.section(n);
                x.len() == y.len() && x != y
            })
            .collect();
        prop_assume!(!candidates.is_empty());
        let i = candidates[pick.index(candidates.len())];
        let name = a.entries[i].name.clone();
        let (at, ours) = a.section(&name);
        let (_, theirs) = b.section(&name);
        let mut s = SnapBytes { identity: a.identity.clone(), entries: a.entries.clone(), bytes: a.bytes.clone() };
        s.bytes[at..at + ours.len()].copy_from_slice(theirs);
        s.entries[i].crc = if plain { crc32fast::hash(theirs) } else { b.entries[i].crc };
        s.write(&path);
        let err = ShopWriter::load(&da).unwrap_err();
        prop_assert!(is_snapshot_error(&err, &name), "{}: {}", name, err);
        let _ = (std::fs::remove_dir_all(&da), std::fs::remove_dir_all(&db));
    }
}
