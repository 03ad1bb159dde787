//! Baselines to compare the pipeline with, fitted on the same history:
//! popularity, recent popularity, item-kNN by co-engagement, and matrix
//! factorization scored by a plain dot product.
//!
//! Each fills a short list with popularity (as anyone deploying it would),
//! so every method returns full lists and the comparison is of ranking, not
//! of list length.

use super::{Method, Relevance};
use crate::error::Result;
use crate::ids::ItemIdx;
use crate::ids::{ProductId, Timestamp, UserId};
use crate::kernels::{Scored, top_k_in_place};
use crate::signals::Event;
use rayon::prelude::*;
use std::collections::HashMap;

fn excluded(exclude: &[ProductId], p: ProductId) -> bool {
    exclude.binary_search(&p).is_ok()
}

/// Appends products of `ranking` (best first) to `out` until it holds `k`,
/// skipping excluded ones and ones already in it.
fn fill_from(ranking: &[ProductId], k: usize, exclude: &[ProductId], out: &mut Vec<ProductId>) {
    if out.len() >= k {
        return;
    }
    let have: std::collections::HashSet<ProductId> = out.iter().copied().collect();
    for &p in ranking {
        if out.len() >= k {
            break;
        }
        if !excluded(exclude, p) && !have.contains(&p) {
            out.push(p);
        }
    }
}

/// The best `k` of `scored` (rows index `ids`), then popularity to fill
/// the list.
fn best_then_popular(
    mut scored: Vec<Scored>,
    ids: &[ProductId],
    popular: &Popularity,
    k: usize,
    exclude: &[ProductId],
) -> Vec<ProductId> {
    top_k_in_place(&mut scored, k);
    let mut out: Vec<ProductId> = scored.iter().map(|s| ids[s.row.index()]).collect();
    fill_from(popular.ranking(), k, exclude, &mut out);
    out
}

/// Ranks `(product, score)` best first, ties by id.
fn ranking_of(scores: HashMap<ProductId, f64>) -> Vec<ProductId> {
    let mut v: Vec<(ProductId, f64)> = scores.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().map(|x| x.0).collect()
}

/// Most popular first: products by the number of distinct users with a
/// relevant-level interaction (at least a click) in the history.
#[derive(Debug, Clone)]
pub struct Popularity {
    ranking: Vec<ProductId>,
}

impl Popularity {
    /// Fits on `history`.
    pub fn fit(history: &[Event], relevance: &Relevance) -> Self {
        let counts = super::user_counts(history, relevance);
        Popularity {
            ranking: ranking_of(counts.into_iter().map(|(p, c)| (p, f64::from(c))).collect()),
        }
    }

    /// Products best first.
    pub fn ranking(&self) -> &[ProductId] {
        &self.ranking
    }
}

impl Method for Popularity {
    fn name(&self) -> &str {
        "popularity"
    }

    fn recommend(
        &self,
        _user: UserId,
        _at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>> {
        let mut out = Vec::with_capacity(k);
        fill_from(&self.ranking, k, exclude, &mut out);
        Ok(out)
    }
}

/// Popularity of late: relevant events weighted by `2^(−age / half_life)`
/// at the fit time.
#[derive(Debug, Clone)]
pub struct RecentPopularity(Popularity);

impl RecentPopularity {
    /// Fits on `history` as of `at`.
    pub fn fit(history: &[Event], at: Timestamp, half_life: i64, relevance: &Relevance) -> Self {
        let mut scores: HashMap<ProductId, f64> = HashMap::new();
        let h = half_life.max(1) as f64;
        for e in history {
            if let Some(p) = relevance.relevant_product(e) {
                let age = crate::ids::elapsed(at, e.at).max(0) as f64;
                *scores.entry(p).or_insert(0.0) += (-age / h).exp2();
            }
        }
        RecentPopularity(Popularity { ranking: ranking_of(scores) })
    }
}

impl Method for RecentPopularity {
    fn name(&self) -> &str {
        "recent_popularity"
    }

    /// The decayed ranking, served as [`Popularity`] serves its own.
    fn recommend(
        &self,
        user: UserId,
        at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>> {
        self.0.recommend(user, at, k, exclude)
    }
}

/// Item-kNN by co-engagement: two products are similar by the cosine of
/// their user sets (`|U_i ∩ U_j| / sqrt(|U_i| |U_j|)`), each product keeps
/// its `neighbours` most similar, and a user's score for a product is the
/// sum of its similarities to the products in their history.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    items: Vec<ProductId>,
    neighbours: Vec<Vec<(u32, f32)>>,
    history: HashMap<UserId, Vec<u32>>,
    popular: Popularity,
}

impl ItemKnn {
    /// Fits on `history`, keeping `neighbours` per product.
    pub fn fit(history: &[Event], relevance: &Relevance, neighbours: usize) -> Self {
        let mut ids: HashMap<ProductId, u32> = HashMap::new();
        let mut items = Vec::new();
        let mut user_items: HashMap<UserId, Vec<u32>> = HashMap::new();
        for e in history {
            if let Some(p) = relevance.relevant_product(e) {
                let i = *ids.entry(p).or_insert_with(|| {
                    items.push(p);
                    (items.len() - 1) as u32
                });
                user_items.entry(e.user).or_default().push(i);
            }
        }
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); items.len()];
        let mut users: Vec<(UserId, Vec<u32>)> = user_items.into_iter().collect();
        users.sort_by_key(|u| u.0);
        for (u, (_, list)) in users.iter_mut().enumerate() {
            list.sort_unstable();
            list.dedup();
            for &i in list.iter() {
                item_users[i as usize].push(u as u32);
            }
        }
        let n = items.len();
        let neighbours: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], Vec::new()),
                |(count, touched), i| {
                    for &u in &item_users[i] {
                        for &j in &users[u as usize].1 {
                            if j as usize != i {
                                if count[j as usize] == 0 {
                                    touched.push(j);
                                }
                                count[j as usize] += 1;
                            }
                        }
                    }
                    let ni = item_users[i].len() as f32;
                    let mut sims: Vec<Scored> = touched
                        .iter()
                        .map(|&j| {
                            let nj = item_users[j as usize].len() as f32;
                            Scored {
                                row: ItemIdx(j),
                                score: count[j as usize] as f32 / (ni * nj).sqrt(),
                            }
                        })
                        .collect();
                    for &j in touched.iter() {
                        count[j as usize] = 0;
                    }
                    touched.clear();
                    top_k_in_place(&mut sims, neighbours);
                    sims.into_iter().map(|s| (s.row.0, s.score)).collect()
                },
            )
            .collect();
        let popular = Popularity::fit(history, relevance);
        ItemKnn { items, neighbours, history: users.into_iter().collect(), popular }
    }
}

impl Method for ItemKnn {
    fn name(&self) -> &str {
        "item_knn"
    }

    fn recommend(
        &self,
        user: UserId,
        _at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>> {
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for &i in self.history.get(&user).map_or(&[][..], Vec::as_slice) {
            for &(j, s) in &self.neighbours[i as usize] {
                *scores.entry(j).or_insert(0.0) += s;
            }
        }
        let ranked = scores
            .into_iter()
            .filter(|&(j, _)| !excluded(exclude, self.items[j as usize]))
            .map(|(j, s)| Scored { row: ItemIdx(j), score: s })
            .collect();
        Ok(best_then_popular(ranked, &self.items, &self.popular, k, exclude))
    }
}

/// Matrix factorization scored as it is: `user · item` over every product,
/// exactly (the embeddings the pipeline is built on, without the pipeline).
#[derive(Debug, Clone)]
pub struct MfMethod {
    factors: crate::train::Factors,
    popular: Popularity,
}

impl MfMethod {
    /// Wraps trained factors; `popular` serves users without a factor.
    pub fn new(factors: crate::train::Factors, popular: Popularity) -> Self {
        MfMethod { factors, popular }
    }
}

impl Method for MfMethod {
    fn name(&self) -> &str {
        "als"
    }

    fn recommend(
        &self,
        user: UserId,
        _at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>> {
        let mut scored = Vec::new();
        if let Some(u) = self.factors.user_vector(user) {
            let d = self.factors.dim();
            scored.extend(
                self.factors
                    .item_matrix()
                    .chunks_exact(d)
                    .enumerate()
                    .filter(|(i, _)| !excluded(exclude, self.factors.items()[*i]))
                    .map(|(i, v)| Scored {
                        row: ItemIdx(i as u32),
                        score: crate::kernels::dot(u, v),
                    }),
            );
        }
        Ok(best_then_popular(scored, self.factors.items(), &self.popular, k, exclude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{EventKind, Target};

    fn click(at: i64, user: u64, item: u64) -> Event {
        Event::new(at, UserId(user), Target::Product(ProductId(item)), EventKind::Click)
    }

    #[test]
    fn popularity_counts_users_not_events() {
        let h = vec![
            click(1, 1, 10),
            click(2, 1, 10),
            click(3, 1, 10),
            click(4, 2, 11),
            click(5, 3, 11),
        ];
        let p = Popularity::fit(&h, &Relevance::default());
        assert_eq!(p.ranking(), &[ProductId(11), ProductId(10)]);
        let got = p.recommend(UserId(9), 0, 5, &[ProductId(11)]).unwrap();
        assert_eq!(got, vec![ProductId(10)]);
        // Recent popularity prefers the item clicked lately.
        let r = RecentPopularity::fit(
            &[click(0, 1, 10), click(0, 2, 10), click(100, 3, 11)],
            100,
            10,
            &Relevance::default(),
        );
        assert_eq!(r.recommend(UserId(1), 100, 1, &[]).unwrap(), vec![ProductId(11)]);
    }

    #[test]
    fn item_knn_scores_by_co_engagement() {
        // Users 1 and 2 both clicked 10 and 11; user 3 clicked 10 and 12.
        let h = vec![
            click(1, 1, 10),
            click(2, 1, 11),
            click(3, 2, 10),
            click(4, 2, 11),
            click(5, 3, 10),
            click(6, 3, 12),
            click(7, 4, 10),
        ];
        let knn = ItemKnn::fit(&h, &Relevance::default(), 10);
        // User 4 has 10: sim(10,11) = 2/sqrt(4·2) > sim(10,12) = 1/sqrt(4·1)·…
        let got = knn.recommend(UserId(4), 10, 2, &[]).unwrap();
        assert_eq!(got, vec![ProductId(11), ProductId(12)]);
        // Unknown users get popularity; exclusions hold.
        let cold = knn.recommend(UserId(99), 10, 2, &[ProductId(10)]).unwrap();
        assert_eq!(cold, vec![ProductId(11), ProductId(12)]);
    }
}
