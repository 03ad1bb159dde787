//! Every kind of bad input is a typed error naming what and where.

use omnifeed::index::{ExactIndex, HnswIndex, HnswParams, VectorIndex};
use omnifeed::{
    CatalogBuilder, CategoryId, Content, ContentId, ContentKind, ErrorKind, IdKind, Merchant,
    MerchantId, MerchantStatus, Product, ProductId, UserId,
};

fn merchant(id: u64) -> Merchant {
    Merchant { id: MerchantId(id), experience: 0.7, status: MerchantStatus::Active }
}

fn product(id: u64) -> Product {
    Product {
        id: ProductId(id),
        category: CategoryId(1),
        price: 9.9,
        merchant: MerchantId(1),
        stock: 3,
        listed_at: 0,
        title: None,
        ..Product::default()
    }
}

/// Two valid products with 2-d embeddings, one merchant.
fn valid() -> CatalogBuilder {
    let mut b = CatalogBuilder::new();
    b.add_merchant(merchant(1));
    b.add_product(product(10)).add_product(product(11));
    b.add_embedding(ProductId(10), &[1.0, 0.0]).add_embedding(ProductId(11), &[0.0, 1.0]);
    b
}

#[test]
fn valid_catalog_builds() {
    assert_eq!(valid().build().unwrap().len(), 2);
}

#[test]
fn empty_catalog() {
    let e = CatalogBuilder::new().build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::EmptyCatalog { .. }), "{e}");
}

#[test]
fn nan_in_embedding_names_the_product() {
    let mut b = CatalogBuilder::new();
    b.add_merchant(merchant(1)).add_product(product(10));
    b.add_embedding(ProductId(10), &[f32::NAN, 1.0]);
    let e = b.build().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidValue { field: "product.embedding", at, .. } if at == "product 10"),
        "{e}"
    );
}

#[test]
fn infinite_embedding_is_rejected() {
    let mut b = CatalogBuilder::new();
    b.add_merchant(merchant(1)).add_product(product(10));
    b.add_embedding(ProductId(10), &[f32::INFINITY, 1.0]);
    assert!(matches!(b.build().unwrap_err().kind(), ErrorKind::InvalidValue { .. }));
}

#[test]
fn zero_embedding_is_rejected() {
    let mut b = CatalogBuilder::new();
    b.add_merchant(merchant(1)).add_product(product(10));
    b.add_embedding(ProductId(10), &[0.0, 0.0]);
    let e = b.build().unwrap_err();
    assert!(e.to_string().contains("zero vector"), "{e}");
}

#[test]
fn embedding_of_wrong_dimension() {
    let mut b = valid();
    b.add_product(product(12)).add_embedding(ProductId(12), &[1.0, 2.0, 3.0]);
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DimensionMismatch { expected: 2, got: 3, .. }), "{e}");
}

#[test]
fn embedding_block_of_wrong_length() {
    let mut b = CatalogBuilder::new();
    b.add_merchant(merchant(1)).add_product(product(10));
    b.add_embeddings(&[ProductId(10)], 2, &[1.0, 2.0, 3.0]);
    assert!(matches!(b.build().unwrap_err().kind(), ErrorKind::InvalidValue { .. }));
}

#[test]
fn product_without_embedding() {
    let mut b = valid();
    b.add_product(product(12));
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { at, .. } if at == "product 12"), "{e}");
}

#[test]
fn embedding_for_unknown_product() {
    let mut b = valid();
    b.add_embedding(ProductId(99), &[1.0, 1.0]);
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { kind: IdKind::Product, id: 99, .. }), "{e}");
}

#[test]
fn duplicate_product_id() {
    let mut b = valid();
    b.add_product(product(10));
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DuplicateId { kind: IdKind::Product, id: 10 }), "{e}");
}

#[test]
fn duplicate_merchant_id() {
    let mut b = valid();
    b.add_merchant(merchant(1));
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DuplicateId { kind: IdKind::Merchant, id: 1 }), "{e}");
}

#[test]
fn duplicate_content_id() {
    let mut b = valid();
    let c = Content {
        id: ContentId(5),
        kind: ContentKind::ShortVideo,
        creator: UserId(1),
        starts_at: 0,
        ends_at: None,
        products: vec![ProductId(10)],
    };
    b.add_content(c.clone()).add_content(c);
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DuplicateId { kind: IdKind::Content, id: 5 }), "{e}");
}

#[test]
fn product_of_unknown_merchant() {
    let mut b = valid();
    b.add_product(Product { merchant: MerchantId(77), ..product(12) });
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { kind: IdKind::Merchant, id: 77, .. }), "{e}");
}

#[test]
fn content_linking_a_missing_product() {
    let mut b = valid();
    b.add_content(Content {
        id: ContentId(5),
        kind: ContentKind::LiveStream,
        creator: UserId(1),
        starts_at: 0,
        ends_at: Some(10),
        products: vec![ProductId(10), ProductId(404)],
    });
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { kind: IdKind::Product, id: 404, .. }), "{e}");
}

#[test]
fn live_stream_ending_before_it_starts() {
    let mut b = valid();
    b.add_content(Content {
        id: ContentId(5),
        kind: ContentKind::LiveStream,
        creator: UserId(1),
        starts_at: 100,
        ends_at: Some(50),
        products: vec![ProductId(10)],
    });
    let e = b.build().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { field: "content.ends_at", .. }), "{e}");
}

#[test]
fn negative_price() {
    let mut b = valid();
    b.add_product(Product { price: -1.0, ..product(12) });
    b.add_embedding(ProductId(12), &[1.0, 1.0]);
    let e = b.build().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidValue { field: "product.price", at, .. } if at == "product 12"),
        "{e}"
    );
}

#[test]
fn nan_price() {
    let mut b = valid();
    b.add_product(Product { price: f32::NAN, ..product(12) });
    b.add_embedding(ProductId(12), &[1.0, 1.0]);
    assert!(matches!(b.build().unwrap_err().kind(), ErrorKind::InvalidValue { .. }));
}

#[test]
fn experience_out_of_range() {
    let mut b = valid();
    b.add_merchant(Merchant { experience: 1.5, ..merchant(2) });
    let e = b.build().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidValue { field: "merchant.experience", .. }),
        "{e}"
    );
}

#[test]
fn queries_of_wrong_dimension_nan_zero_and_k0_on_both_indexes() {
    let catalog = valid().build().unwrap();
    let exact = ExactIndex::new(catalog.shared_embeddings());
    let hnsw = HnswIndex::build(catalog.shared_embeddings(), HnswParams::default()).unwrap();
    let indexes: [&dyn VectorIndex; 2] = [&exact, &hnsw];
    let mut out = Vec::new();
    for idx in indexes {
        let e = idx.search(&[1.0, 0.0, 0.0], 1, None, &mut out).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::DimensionMismatch { expected: 2, got: 3, .. }));
        let e = idx.search(&[1.0, f32::NAN], 1, None, &mut out).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::NonFinite { index: 1, .. }));
        let e = idx.search(&[f32::NEG_INFINITY, 0.0], 1, None, &mut out).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::NonFinite { index: 0, .. }));
        let e = idx.search(&[0.0, 0.0], 1, None, &mut out).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::ZeroVector { .. }));
        let e = idx.search(&[1.0, 0.0], 0, None, &mut out).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidK { k: 0, .. }));
        // A valid query still works after all that.
        idx.search(&[1.0, 0.1], 1, None, &mut out).unwrap();
        assert_eq!(out[0].row.0, 0);
    }
}

#[test]
fn hnsw_parameters_that_would_exit_the_process() {
    let catalog = valid().build().unwrap();
    let p = HnswParams { max_connections: 257, ..Default::default() };
    let e = HnswIndex::build(catalog.shared_embeddings(), p).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "hnsw.max_connections", .. }));
}

#[test]
fn corrupt_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("omnifeed-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("merchants.csv"), "id,experience,status\n1,0.5,active\n").unwrap();
    std::fs::write(
        dir.join("products.csv"),
        "id,category,price,merchant,stock,listed_at,title\n10,1,oops,1,3,0,mug\n",
    )
    .unwrap();
    let e = omnifeed::load::read_catalog_dir(&dir).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Parse { line: Some(2), .. }), "{e}");
    std::fs::write(dir.join("embeddings.npy"), b"\x93NUMPY garbage").unwrap();
    assert!(omnifeed::load::read_npy_matrix(dir.join("embeddings.npy")).is_err());
    let e = omnifeed::load::read_dataset(dir.join("missing")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Io { .. }), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
