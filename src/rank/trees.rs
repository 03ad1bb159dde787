//! Gradient-boosted trees trained elsewhere: LightGBM's text dump and
//! XGBoost's JSON dump, loaded into one flat layout and evaluated without
//! allocating.
//!
//! Each tree is a run of nodes in one array: an inner node holds its
//! feature, threshold, children and where a missing value goes; a leaf its
//! value. A row's raw score (the margin, before any sigmoid) is the base
//! plus the leaves it reaches, as each library predicts with
//! `raw_score=True` / `output_margin=True`. `scripts/train_tree_models.py`
//! trains one model with each library; `tests/it/trees.rs` checks the
//! scores here against the libraries' own.

use crate::error::{Error, Result};
use crate::features::{F, FeatureMatrix, HEADS};
use crate::rank::scorer::LogisticScorer;

/// How a node compares: LightGBM sends `x <= t` left, XGBoost `x < t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    LessEqual,
    Less,
}

/// What counts as missing at a node (LightGBM's missing types; XGBoost
/// has NaN only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// NaN is read as 0.
    None,
    /// 0 (and NaN, read as 0) goes the default way.
    Zero,
    /// NaN goes the default way.
    Nan,
}

/// One node; a leaf has `feature == u32::MAX`. 20 bytes: the walk reads
/// nodes only, a leaf's value sits in its own array.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u32,
    /// In `f32`, rounded so that `x <= threshold` (`x < threshold` for
    /// XGBoost) decides as the library's own comparison of an `f32` row
    /// value does.
    threshold: f32,
    /// Indices in the tree's node run.
    left: u32,
    right: u32,
    default_left: bool,
    missing: Missing,
}

const LEAF: u32 = u32::MAX;

/// A boosted tree ensemble (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    nodes: Vec<Node>,
    /// Per node, its value if a leaf.
    values: Vec<f64>,
    /// Where each tree's nodes start in `nodes`.
    roots: Vec<u32>,
    compare: Compare,
    base: f64,
    features: usize,
}

impl TreeEnsemble {
    /// Trees.
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// The number of features a row must have: one more than the highest
    /// feature index a split reads.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The raw score of `row`: the base plus every tree's leaf.
    ///
    /// Errors: a row shorter than [`features`](Self::features)
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch)).
    pub fn predict(&self, row: &[f32]) -> Result<f64> {
        if row.len() < self.features {
            return Err(Error::dimension("tree ensemble row", self.features, row.len()));
        }
        Ok(self.margin(row))
    }

    /// [`predict`](Self::predict) of a row known to be long enough.
    #[inline]
    fn margin(&self, row: &[f32]) -> f64 {
        self.roots.iter().map(|&r| self.leaf(r as usize, row)).sum::<f64>() + self.base
    }

    /// The leaf value `row` reaches in the tree whose root is at `root`.
    fn leaf(&self, root: usize, row: &[f32]) -> f64 {
        let mut i = root;
        // A tree has fewer nodes than the ensemble; the bound stops a
        // malformed cycle (loaders reject them, this is a second guard).
        for _ in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.feature == LEAF {
                return self.values[i];
            }
            let x = row[n.feature as usize];
            let left = match self.compare {
                Compare::Less => {
                    if x.is_nan() {
                        n.default_left
                    } else {
                        x < n.threshold
                    }
                }
                Compare::LessEqual => {
                    let mut v = x;
                    if v.is_nan() && n.missing != Missing::Nan {
                        v = 0.0;
                    }
                    let is_missing = match n.missing {
                        Missing::Zero => v.abs() <= 1e-35,
                        Missing::Nan => v.is_nan(),
                        Missing::None => false,
                    };
                    if is_missing { n.default_left } else { v <= n.threshold }
                }
            };
            i = root + if left { n.left } else { n.right } as usize;
        }
        0.0
    }

    /// Reads LightGBM's text model (`Booster.save_model`): numerical splits
    /// with their missing-value rules; the leaves already hold the learning
    /// rate and the initial score.
    ///
    /// Errors: a tree without its fields, a categorical split (not
    /// supported), a child or feature out of range
    /// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue),
    /// naming the tree).
    pub fn from_lightgbm_text(text: &str) -> Result<TreeEnsemble> {
        let mut e = TreeEnsemble {
            nodes: Vec::new(),
            values: Vec::new(),
            roots: Vec::new(),
            compare: Compare::LessEqual,
            base: 0.0,
            features: 0,
        };
        let mut blocks = text.split("\nTree=").skip(1).peekable();
        if blocks.peek().is_none() {
            return Err(bad("lightgbm", "the text has no `Tree=` section"));
        }
        for (t, block) in blocks.enumerate() {
            let block = block.split("\nend of trees").next().unwrap_or(block);
            let field = |name: &str| -> Option<&str> {
                block.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            };
            let at = format!("lightgbm tree {t}");
            let leaves: usize = parse_one(field("num_leaves"), &at, "num_leaves")?;
            let leaf_value: Vec<f64> = parse_list(field("leaf_value"), &at, "leaf_value")?;
            if leaf_value.len() != leaves || leaves == 0 {
                return Err(bad(&at, "leaf_value does not hold num_leaves values"));
            }
            let root = e.nodes.len() as u32;
            e.roots.push(root);
            let inner = leaves - 1;
            if inner == 0 {
                e.nodes.push(leaf_node());
                e.values.push(leaf_value[0]);
                continue;
            }
            let feature: Vec<u32> = parse_list(field("split_feature"), &at, "split_feature")?;
            let threshold: Vec<f64> = parse_list(field("threshold"), &at, "threshold")?;
            let decision: Vec<u32> = parse_list(field("decision_type"), &at, "decision_type")?;
            let left: Vec<i64> = parse_list(field("left_child"), &at, "left_child")?;
            let right: Vec<i64> = parse_list(field("right_child"), &at, "right_child")?;
            let lens = [feature.len(), threshold.len(), decision.len(), left.len(), right.len()];
            if lens.iter().any(|&l| l != inner) {
                return Err(bad(&at, "split fields do not hold num_leaves - 1 values"));
            }
            // Inner nodes first, leaves after: child c >= 0 is inner node c,
            // c < 0 is leaf !c (stored at inner + !c).
            let child = |c: i64| -> Result<u32> {
                let i = if c >= 0 { c } else { inner as i64 + !c };
                if (0..(inner + leaves) as i64).contains(&i) && i != 0 {
                    Ok(i as u32)
                } else {
                    Err(bad(&at, &format!("child {c} out of range")))
                }
            };
            for k in 0..inner {
                if decision[k] & 1 != 0 {
                    return Err(bad(&at, "categorical splits are not supported"));
                }
                let missing = match (decision[k] >> 2) & 3 {
                    0 => Missing::None,
                    1 => Missing::Zero,
                    _ => Missing::Nan,
                };
                e.features = e.features.max(feature[k] as usize + 1);
                e.nodes.push(Node {
                    feature: feature[k],
                    threshold: at_most(threshold[k]),
                    left: child(left[k])?,
                    right: child(right[k])?,
                    default_left: decision[k] & 2 != 0,
                    missing,
                });
                e.values.push(0.0);
            }
            e.nodes.extend(leaf_value.iter().map(|_| leaf_node()));
            e.values.extend_from_slice(&leaf_value);
            check_acyclic(&e.nodes[root as usize..], &at)?;
        }
        Ok(e)
    }

    /// Reads XGBoost's JSON dump (`Booster.dump_model(path,
    /// dump_format="json")`: an array of trees of `nodeid`, `split` as
    /// `f<index>`, `split_condition`, `yes`, `no`, `missing`, `children`,
    /// and `leaf`). The dump does not hold the base score: `base_margin` is
    /// it in margin space (the logit of `base_score` for `binary:logistic`).
    ///
    /// Errors: not JSON, a node without its fields, a split on a feature
    /// named other than `f<index>`, a child that is not in the tree
    /// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
    pub fn from_xgboost_json(text: &str, base_margin: f64) -> Result<TreeEnsemble> {
        let trees: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| bad("xgboost", &format!("not a JSON array of trees: {e}")))?;
        if trees.is_empty() || !base_margin.is_finite() {
            return Err(bad("xgboost", "no tree, or a base margin that is not finite"));
        }
        let mut e = TreeEnsemble {
            nodes: Vec::new(),
            values: Vec::new(),
            roots: Vec::new(),
            compare: Compare::Less,
            base: base_margin,
            features: 0,
        };
        for (t, tree) in trees.iter().enumerate() {
            let at = format!("xgboost tree {t}");
            let flat = flatten(tree, &at)?;
            let id = |n: &serde_json::Value| n.get("nodeid").and_then(|v| v.as_u64());
            let count = flat.len();
            let mut nodes = vec![leaf_node(); count];
            let mut values = vec![0.0f64; count];
            let mut seen = vec![false; count];
            for n in &flat {
                let i = id(n)
                    .filter(|&i| (i as usize) < count)
                    .ok_or_else(|| bad(&at, "a node id is missing or not below the node count"))?
                    as usize;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(bad(&at, &format!("node id {i} appears twice")));
                }
                if let Some(v) = n.get("leaf").and_then(|v| v.as_f64()) {
                    values[i] = v;
                    continue;
                }
                let get = |k: &str| n.get(k).and_then(|v| v.as_u64());
                let feature = n
                    .get("split")
                    .and_then(|s| s.as_str())
                    .and_then(|s| s.strip_prefix('f'))
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| bad(&at, "a split is not named f<index>"))?;
                let threshold = n
                    .get("split_condition")
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| bad(&at, "a split has no split_condition"))?;
                let (Some(yes), Some(no), Some(missing)) = (get("yes"), get("no"), get("missing"))
                else {
                    return Err(bad(&at, "a split lacks yes, no or missing"));
                };
                if [yes, no].iter().any(|&c| c as usize >= count || c == 0) {
                    return Err(bad(&at, "a child is not in the tree"));
                }
                e.features = e.features.max(feature as usize + 1);
                nodes[i] = Node {
                    // XGBoost's split values are f32: the dump prints them.
                    threshold: threshold as f32,
                    feature,
                    left: yes as u32,
                    right: no as u32,
                    default_left: missing == yes,
                    missing: Missing::Nan,
                };
            }
            check_acyclic(&nodes, &at)?;
            e.roots.push(e.nodes.len() as u32);
            e.nodes.extend(nodes);
            e.values.extend(values);
        }
        Ok(e)
    }
}

/// The nodes of an XGBoost tree, parents before children (node ids index
/// the tree's run: they are dense per tree).
fn flatten<'a>(tree: &'a serde_json::Value, at: &str) -> Result<Vec<&'a serde_json::Value>> {
    let mut flat: Vec<&serde_json::Value> = Vec::new();
    let mut stack = vec![tree];
    while let Some(n) = stack.pop() {
        flat.push(n);
        if let Some(children) = n.get("children").and_then(|c| c.as_array()) {
            stack.extend(children.iter());
        }
        if flat.len() > 1 << 20 {
            return Err(bad(at, "more than a million nodes"));
        }
    }
    Ok(flat)
}

fn leaf_node() -> Node {
    Node {
        feature: LEAF,
        threshold: 0.0,
        left: 0,
        right: 0,
        default_left: false,
        missing: Missing::None,
    }
}

/// The largest `f32` at most `t`: for an `f32` value `x`, `x <= t` (in
/// `f64`, as LightGBM compares) exactly when `x <= at_most(t)`.
fn at_most(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { next_down(r) } else { r }
}

/// The largest `f32` below `r` (`f32::next_down`, newer than this crate's
/// minimum Rust).
fn next_down(r: f32) -> f32 {
    if r.is_nan() || r == f32::NEG_INFINITY {
        r
    } else if r == 0.0 {
        -f32::from_bits(1)
    } else if r > 0.0 {
        f32::from_bits(r.to_bits() - 1)
    } else {
        f32::from_bits(r.to_bits() + 1)
    }
}

/// Every node of a tree is reached once from its root, and a walk ends.
fn check_acyclic(nodes: &[Node], at: &str) -> Result<()> {
    let mut reached = vec![false; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        let Some(r) = reached.get_mut(i) else {
            return Err(bad(at, "a child is out of range"));
        };
        if std::mem::replace(r, true) {
            return Err(bad(at, "a node is reached twice (a cycle or a shared child)"));
        }
        if nodes[i].feature != LEAF {
            stack.push(nodes[i].left as usize);
            stack.push(nodes[i].right as usize);
        }
    }
    Ok(())
}

fn bad(at: &str, why: &str) -> Error {
    Error::invalid_value("tree model", at.to_string(), why.to_string())
}

fn parse_list<T: std::str::FromStr>(field: Option<&str>, at: &str, name: &str) -> Result<Vec<T>> {
    let field = field.ok_or_else(|| bad(at, &format!("no `{name}`")))?;
    field
        .split_whitespace()
        .map(|v| v.parse::<T>().map_err(|_| bad(at, &format!("`{name}` value {v:?}"))))
        .collect()
}

fn parse_one<T: std::str::FromStr>(field: Option<&str>, at: &str, name: &str) -> Result<T> {
    let v = field.ok_or_else(|| bad(at, &format!("no `{name}`")))?.trim();
    v.parse::<T>().map_err(|_| bad(at, &format!("`{name}` value {v:?}")))
}

/// A [`Scorer`](crate::stage::Scorer) whose heads are tree ensembles over
/// the ranking features (a head without one is the fallback logistic
/// head): each head is the sigmoid of its ensemble's margin.
#[derive(Debug, Clone)]
pub struct TreeScorer {
    heads: [Option<TreeEnsemble>; HEADS],
    fallback: LogisticScorer,
}

impl TreeScorer {
    /// Heads in [`HEAD_NAMES`](crate::features::HEAD_NAMES) order (pCTR,
    /// pCVR, engagement); `None` keeps `fallback`'s head.
    ///
    /// Errors: an ensemble that reads a feature past the schema's `F`
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch)).
    pub fn new(heads: [Option<TreeEnsemble>; HEADS], fallback: LogisticScorer) -> Result<Self> {
        if let Some(t) = heads.iter().flatten().find(|t| t.features() > F) {
            return Err(Error::dimension("tree scorer features", F, t.features()));
        }
        Ok(TreeScorer { heads, fallback })
    }
}

impl crate::stage::Scorer for TreeScorer {
    fn id(&self) -> &'static str {
        "trees"
    }

    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        // The fallback fills every head first; trees overwrite theirs.
        if self.heads.iter().any(Option::is_none) {
            self.fallback.score(features, out);
        }
        // Tree by tree over all rows: one tree's nodes stay in cache while
        // every row walks it.
        let rows = features.as_slice();
        let mut margin = vec![0.0f64; rows.len() / F];
        for (h, t) in self.heads.iter().enumerate() {
            let Some(t) = t else { continue };
            margin.iter_mut().for_each(|m| *m = t.base);
            for &root in &t.roots {
                for (m, x) in margin.iter_mut().zip(rows.chunks_exact(F)) {
                    *m += t.leaf(root as usize, x);
                }
            }
            for (o, m) in out.chunks_exact_mut(HEADS).zip(&margin) {
                o[h] = crate::rank::scorer::sigmoid(*m as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x <= t` in f64 decides as `x <= at_most(t)` for every f32 `x` near
    /// `t`, whatever side the nearest f32 rounds to.
    #[test]
    fn rounded_thresholds_keep_the_comparison() {
        for t in [0.1f64, -0.1, 0.48358255624771124, 1e-40, -1e-40, 0.0, 3.0, 1e300, -1e300] {
            let r = at_most(t);
            assert!(f64::from(r) <= t, "{t}");
            let mut x = next_down(next_down(r));
            for _ in 0..5 {
                assert_eq!(f64::from(x) <= t, x <= r, "t {t} x {x}");
                x = -next_down(-x);
            }
        }
        assert_eq!(next_down(1.0), f32::from_bits(1.0f32.to_bits() - 1));
        assert!(next_down(0.0) < 0.0 && next_down(-1.0) < -1.0);
    }
}
