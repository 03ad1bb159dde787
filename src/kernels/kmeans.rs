//! One weighted spherical k-means, used by the IVF index (lists over the
//! catalog's embeddings) and by user profiles (interest clusters over a
//! user's recent engagements).
//!
//! Points are rows of a row-major unit-vector matrix. Each iteration
//! assigns every point to its nearest centroid by inner product, then
//! moves each centroid to the normalized weighted sum of its points (a
//! centroid whose points sum to ~zero keeps its place); it stops early
//! once no assignment changes, which is a fixed point. Seeding is the
//! caller's: [`farthest_first`] for profiles, seeded sample rows for IVF.

use super::dot;
use rayon::prelude::*;

/// How points find their nearest centroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assign {
    /// One dot product per (point, centroid), highest first, ties to the
    /// lower centroid by total order: for a few points and centroids.
    Scalar,
    /// Blocks of points times the centroid matrix (sgemm) in parallel,
    /// ties to the lower centroid: for many points ([`assign_blocked`]).
    Blocked,
}

/// What a run ends with besides the centroids: each point's centroid and
/// each centroid's weight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clusters {
    /// The centroid of each point.
    pub(crate) assign: Vec<u32>,
    /// The weight of each centroid's points (0: empty).
    pub(crate) mass: Vec<f32>,
}

/// Runs at most `iterations` rounds over the points `rows` of `matrix`
/// (`dim` columns), weighted by `weights` (1 each when `None`), from the
/// seeds in `centroids` (`k × dim`, updated in place).
pub(crate) fn spherical_kmeans(
    (matrix, dim): (&[f32], usize),
    rows: &[u32],
    weights: Option<&[f32]>,
    centroids: &mut [f32],
    iterations: usize,
    assign: Assign,
) -> Clusters {
    let k = centroids.len() / dim.max(1);
    let row = |r: u32| &matrix[r as usize * dim..(r as usize + 1) * dim];
    let mut out = Clusters { assign: vec![u32::MAX; rows.len()], mass: vec![0.0; k] };
    for _ in 0..iterations {
        let next = match assign {
            Assign::Scalar => rows.iter().map(|&r| nearest_total(centroids, dim, row(r))).collect(),
            Assign::Blocked => assign_blocked(centroids, dim, matrix, rows),
        };
        let changed = next != out.assign;
        out.assign = next;
        let mut sums = vec![0.0f32; k * dim];
        out.mass.iter_mut().for_each(|m| *m = 0.0);
        for (i, (&c, &r)) in out.assign.iter().zip(rows).enumerate() {
            let (c, w) = (c as usize, weights.map_or(1.0, |w| w[i]));
            out.mass[c] += w;
            for (s, &y) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(r)) {
                *s += w * y;
            }
        }
        for (c, s) in centroids.chunks_exact_mut(dim).zip(sums.chunks_exact(dim)) {
            let norm = dot(s, s).sqrt();
            if norm > 1e-12 {
                c.iter_mut().zip(s).for_each(|(c, &x)| *c = x / norm);
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// Deterministic seeds for at most `k` clusters: the heaviest point, then
/// repeatedly the point farthest (weighted) from every seed so far; stops
/// early when every point coincides with a seed. `k' × dim` values.
pub(crate) fn farthest_first(
    (matrix, dim): (&[f32], usize),
    rows: &[u32],
    weights: &[f32],
    k: usize,
) -> Vec<f32> {
    let n = rows.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let row = |r: u32| &matrix[r as usize * dim..(r as usize + 1) * dim];
    let mut seeds: Vec<f32> = Vec::with_capacity(k * dim);
    let heaviest = (0..n).max_by(|&a, &b| weights[a].total_cmp(&weights[b]).then(b.cmp(&a)));
    seeds.extend_from_slice(row(rows[heaviest.unwrap_or(0)]));
    let mut best_sim: Vec<f32> = rows.iter().map(|&r| dot(row(r), &seeds[..dim])).collect();
    while seeds.len() < k * dim {
        let (far, gap) = (0..n)
            .map(|i| (i, weights[i] * (1.0 - best_sim[i])))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .unwrap_or((0, 0.0));
        if gap <= 1e-6 {
            break;
        }
        let c = row(rows[far]);
        seeds.extend_from_slice(c);
        for (s, &r) in best_sim.iter_mut().zip(rows) {
            *s = s.max(dot(row(r), c));
        }
    }
    seeds
}

/// The centroid with the highest inner product with `x`, ties to the lower
/// index by total order.
fn nearest_total(centroids: &[f32], dim: usize, x: &[f32]) -> u32 {
    centroids
        .chunks_exact(dim)
        .enumerate()
        .map(|(c, v)| (c, dot(x, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |b| b.0 as u32)
}

/// The centroid with the highest inner product with `x` (strictly higher
/// wins, so ties go to the lower index).
pub(crate) fn nearest(centroids: &[f32], dim: usize, x: &[f32]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (l, c) in centroids.chunks_exact(dim).enumerate() {
        let s = dot(c, x);
        if s > best.1 {
            best = (l as u32, s);
        }
    }
    best.0
}

/// The nearest centroid of each of `rows` of `m` (ties to the lower
/// centroid), as [`nearest`] gives it, computed a block of rows at a time
/// as one matrix product (`matrixmultiply`'s SIMD sgemm through ndarray) in
/// parallel: `rows × centroids × dim` multiply-adds, which the
/// row-at-a-time loop did at a fifth of the speed.
pub(crate) fn assign_blocked(centroids: &[f32], dim: usize, m: &[f32], rows: &[u32]) -> Vec<u32> {
    use ndarray::{ArrayView2, linalg::general_mat_mul};
    const BLOCK: usize = 256;
    let lists = centroids.len() / dim;
    let Ok(c) = ArrayView2::from_shape((lists, dim), centroids) else {
        return rows
            .iter()
            .map(|&r| nearest(centroids, dim, &m[r as usize * dim..][..dim]))
            .collect();
    };
    let mut out = vec![0u32; rows.len()];
    out.par_chunks_mut(BLOCK).zip(rows.par_chunks(BLOCK)).for_each_init(
        || (Vec::<f32>::new(), Vec::<f32>::new()),
        |(block, scores), (out, rows)| {
            block.clear();
            for &r in rows {
                block.extend_from_slice(&m[r as usize * dim..(r as usize + 1) * dim]);
            }
            scores.clear();
            scores.resize(rows.len() * lists, 0.0);
            let (Ok(b), Ok(mut s)) = (
                ArrayView2::from_shape((rows.len(), dim), &block[..]),
                ndarray::ArrayViewMut2::from_shape((rows.len(), lists), &mut scores[..]),
            ) else {
                return;
            };
            general_mat_mul(1.0, &b, &c.t(), 0.0, &mut s);
            for (o, row) in out.iter_mut().zip(scores.chunks_exact(lists)) {
                let mut best = (0u32, f32::NEG_INFINITY);
                for (l, &v) in row.iter().enumerate() {
                    if v > best.1 {
                        best = (l as u32, v);
                    }
                }
                *o = best.0;
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points around three axes of R^4, a little off them.
    fn three_groups() -> (Vec<f32>, Vec<u32>) {
        let mut m = Vec::new();
        for i in 0..30 {
            let axis = i % 3;
            let mut v = [0.05f32 * (i % 5) as f32, 0.03, 0.02, 0.01];
            v[axis] = 1.0;
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            m.extend(v.iter().map(|x| x / n));
        }
        (m, (0..30).collect())
    }

    #[test]
    fn both_assignments_find_the_same_clusters_and_stop_at_a_fixed_point() {
        let (m, rows) = three_groups();
        let weights = vec![1.0; rows.len()];
        let seeds = farthest_first((&m, 4), &rows, &weights, 3);
        assert_eq!(seeds.len(), 12);
        let (mut a, mut b) = (seeds.clone(), seeds);
        let ca = spherical_kmeans((&m, 4), &rows, Some(&weights), &mut a, 50, Assign::Scalar);
        let cb = spherical_kmeans((&m, 4), &rows, None, &mut b, 50, Assign::Blocked);
        assert_eq!(ca.assign, cb.assign);
        assert_eq!(ca.mass, vec![10.0; 3]);
        for (i, &c) in ca.assign.iter().enumerate() {
            assert_eq!(c, ca.assign[i % 3], "point {i} joins its axis' cluster");
        }
        // One more round from the result changes nothing.
        let again = spherical_kmeans((&m, 4), &rows, None, &mut b.clone(), 1, Assign::Blocked);
        assert_eq!(again.assign, cb.assign);
        for c in a.chunks_exact(4) {
            assert!((dot(c, c) - 1.0).abs() < 1e-5, "unit centroids");
        }
    }

    #[test]
    fn seeds_stop_when_every_point_is_a_seed() {
        let m = vec![1.0f32, 0.0, 1.0, 0.0];
        assert_eq!(farthest_first((&m, 2), &[0, 1], &[1.0, 1.0], 2).len(), 2, "one seed, dim 2");
        assert!(farthest_first((&m, 2), &[], &[], 2).is_empty());
    }
}
