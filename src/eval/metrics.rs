//! Ranking and exposure metrics over one recommended list, and over all of
//! a run's lists.
//!
//! Per-list metrics take the list best first and the relevant items as a
//! **sorted, deduplicated** slice (membership by binary search); a list must
//! not repeat an item (the [runner](super::evaluate) keeps the first copy).
//! Relevance is binary. Definitions, for a list `L`, relevant set `R` and
//! cut-off `K`:
//!
//! - `recall@K = |L[..K] ∩ R| / |R|`
//! - `hit@K = 1` if `L[..K] ∩ R` is not empty
//! - `ndcg@K = DCG / IDCG`, `DCG = Σ_{i < K, L[i] ∈ R} 1 / log2(i + 2)`,
//!   `IDCG` the same sum over `min(|R|, K)` hits in a row
//! - `rr = 1 / (1 + rank of the first hit)` over the whole list, 0 without
//!   one (its mean is MRR)
//!
//! All of them are 0 when `R` is empty.

use crate::ids::ProductId;

fn is_relevant(relevant: &[ProductId], p: ProductId) -> bool {
    relevant.binary_search(&p).is_ok()
}

/// The discount of 0-based rank `i`: `1 / log2(i + 2)`.
pub fn discount(i: usize) -> f64 {
    1.0 / ((i + 2) as f64).log2()
}

/// Relevant items among the first `k` of `list`.
pub fn hits_at(list: &[ProductId], relevant: &[ProductId], k: usize) -> usize {
    list.iter().take(k).filter(|&&p| is_relevant(relevant, p)).count()
}

/// `recall@k`: the share of the relevant items found in the top `k`.
///
/// ```
/// use omnifeed::ProductId as P;
/// use omnifeed::eval::metrics::recall_at;
/// let rel = [P(2), P(5), P(9), P(11)];
/// assert_eq!(recall_at(&[P(5), P(1), P(9)], &rel, 2), 0.25);
/// assert_eq!(recall_at(&[P(5), P(1), P(9)], &rel, 3), 0.5);
/// ```
pub fn recall_at(list: &[ProductId], relevant: &[ProductId], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hits_at(list, relevant, k) as f64 / relevant.len() as f64
}

/// `hit@k`: 1 if any relevant item is in the top `k`, else 0.
pub fn hit_at(list: &[ProductId], relevant: &[ProductId], k: usize) -> f64 {
    if list.iter().take(k).any(|&p| is_relevant(relevant, p)) { 1.0 } else { 0.0 }
}

/// `ndcg@k` with binary relevance.
///
/// ```
/// use omnifeed::ProductId as P;
/// use omnifeed::eval::metrics::ndcg_at;
/// // One relevant item at rank 1 (0-based) of two relevant:
/// // DCG = 1/log2(3), IDCG = 1 + 1/log2(3).
/// let v = ndcg_at(&[P(1), P(7), P(3)], &[P(7), P(8)], 3);
/// let want = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
/// assert!((v - want).abs() < 1e-12);
/// ```
pub fn ndcg_at(list: &[ProductId], relevant: &[ProductId], k: usize) -> f64 {
    if relevant.is_empty() || k == 0 {
        return 0.0;
    }
    let dcg: f64 = list
        .iter()
        .take(k)
        .enumerate()
        .filter(|&(_, &p)| is_relevant(relevant, p))
        .map(|(i, _)| discount(i))
        .sum();
    let idcg: f64 = (0..relevant.len().min(k)).map(discount).sum();
    dcg / idcg
}

/// The reciprocal rank of the first relevant item in the whole list, 0
/// without one.
pub fn reciprocal_rank(list: &[ProductId], relevant: &[ProductId]) -> f64 {
    list.iter().position(|&p| is_relevant(relevant, p)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// The Gini coefficient of exposure counts (0: every item shown equally
/// often, towards 1: all exposure on one item). Counts include the items
/// never shown (zeros). 0 for an empty slice or no exposure at all.
///
/// ```
/// use omnifeed::eval::metrics::gini;
/// assert_eq!(gini(&[3, 3, 3]), 0.0);
/// assert_eq!(gini(&[0, 0, 0, 4]), 0.75);
/// ```
pub fn gini(counts: &[u64]) -> f64 {
    let n = counts.len();
    let total: u64 = counts.iter().sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    // G = Σ (2i − n − 1) x_i / (n Σ x), i 1-based over ascending x.
    let num: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| (2.0 * (i + 1) as f64 - n as f64 - 1.0) * x as f64)
        .sum();
    num / (n as f64 * total as f64)
}

/// Intra-list diversity: the share of pairs in the list whose keys differ
/// (keys are categories by default). `None` for fewer than two items.
///
/// ```
/// use omnifeed::eval::metrics::intra_list_diversity;
/// // Pairs: (1,1) same, (1,2) and (1,2) differ: 2 of 3.
/// assert_eq!(intra_list_diversity(&[1, 1, 2]), Some(2.0 / 3.0));
/// ```
pub fn intra_list_diversity<T: PartialEq>(keys: &[T]) -> Option<f64> {
    let n = keys.len();
    if n < 2 {
        return None;
    }
    let mut differ = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            differ += usize::from(keys[i] != keys[j]);
        }
    }
    Some(differ as f64 / (n * (n - 1) / 2) as f64)
}

/// Novelty of one item: its self-information `−log2(p)`, where `p` is the
/// share of training users who interacted with it; an item nobody touched
/// counts as touched by one (`p = 1 / users`).
pub fn self_information(users_touched: u32, users: usize) -> f64 {
    let users = users.max(1) as f64;
    let p = f64::from(users_touched.max(1)) / users;
    -p.min(1.0).log2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(v: &[u64]) -> Vec<ProductId> {
        v.iter().map(|&x| ProductId(x)).collect()
    }

    #[test]
    fn hand_computed_cases() {
        let list = p(&[4, 1, 9, 7, 2]);
        let rel = p(&[2, 7, 8]);
        // Hits at ranks 3 and 4 (0-based).
        assert_eq!(hits_at(&list, &rel, 5), 2);
        assert_eq!(recall_at(&list, &rel, 3), 0.0);
        assert!((recall_at(&list, &rel, 5) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(hit_at(&list, &rel, 3), 0.0);
        assert_eq!(hit_at(&list, &rel, 4), 1.0);
        assert_eq!(reciprocal_rank(&list, &rel), 0.25);
        let dcg = 1.0 / 5f64.log2() + 1.0 / 6f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((ndcg_at(&list, &rel, 5) - dcg / idcg).abs() < 1e-12);
        // K smaller than |R| caps the ideal: one hit at rank 0 of K = 1.
        assert_eq!(ndcg_at(&p(&[8, 2]), &rel, 1), 1.0);
        assert_eq!(ndcg_at(&list, &[], 5), 0.0);
        assert_eq!(recall_at(&list, &[], 5), 0.0);
        assert_eq!(reciprocal_rank(&list, &p(&[100])), 0.0);
    }

    #[test]
    fn gini_cases() {
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0, 0]), 0.0);
        assert_eq!(gini(&[5]), 0.0);
        // Two items, all on one: (2·2 − 3)·1 / (2·1) = 0.5.
        assert_eq!(gini(&[0, 1]), 0.5);
        assert!((gini(&[1, 2, 3]) - 2.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn novelty_cases() {
        assert_eq!(self_information(4, 8), 1.0);
        assert_eq!(self_information(0, 8), 3.0);
        assert_eq!(self_information(8, 8), 0.0);
    }

    fn list_and_relevant() -> impl Strategy<Value = (Vec<ProductId>, Vec<ProductId>, usize)> {
        (
            proptest::collection::hash_set(0u64..60, 0..30),
            proptest::collection::btree_set(0u64..60, 0..20),
            1usize..40,
        )
            .prop_map(|(l, r, k)| {
                (p(&l.into_iter().collect::<Vec<_>>()), p(&r.into_iter().collect::<Vec<_>>()), k)
            })
    }

    proptest! {
        #[test]
        fn ndcg_is_in_unit_interval((list, rel, k) in list_and_relevant()) {
            let v = ndcg_at(&list, &rel, k);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{v}");
            let r = recall_at(&list, &rel, k);
            prop_assert!((0.0..=1.0).contains(&r));
            prop_assert!(hit_at(&list, &rel, k) >= r.min(1.0).ceil());
        }

        #[test]
        fn ideal_order_scores_one((list, rel, k) in list_and_relevant()) {
            prop_assume!(!rel.is_empty());
            // Relevant items first, then the rest: the ideal list.
            let mut ideal = rel.clone();
            ideal.extend(list.iter().filter(|p| !rel.contains(p)));
            prop_assert!((ndcg_at(&ideal, &rel, k) - 1.0).abs() < 1e-12);
            prop_assert_eq!(hit_at(&ideal, &rel, k), 1.0);
        }

        #[test]
        fn items_below_k_do_not_matter((list, rel, k) in list_and_relevant(), tail in proptest::collection::vec(0u64..200, 0..10)) {
            let head: Vec<ProductId> = list.iter().take(k).copied().collect();
            let mut other = head.clone();
            other.extend(tail.into_iter().map(|x| ProductId(x + 1000)));
            prop_assert_eq!(ndcg_at(&list, &rel, k), ndcg_at(&head, &rel, k));
            prop_assert_eq!(ndcg_at(&other, &rel, k), ndcg_at(&head, &rel, k));
            prop_assert_eq!(recall_at(&other, &rel, k), recall_at(&head, &rel, k));
        }

        #[test]
        fn gini_is_in_unit_interval(counts in proptest::collection::vec(0u64..50, 0..40)) {
            let g = gini(&counts);
            prop_assert!((0.0..1.0).contains(&g) || g == 0.0, "{g}");
        }
    }
}
