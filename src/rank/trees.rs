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
use serde::{Deserialize, Serialize};

/// How a node compares: LightGBM sends `x <= t` left, XGBoost `x < t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Compare {
    LessEqual,
    Less,
}

/// What counts as missing at a node (LightGBM's missing types; XGBoost
/// has NaN only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// One inner node in LightGBM's arrays ([`TreeEnsemble::push_tree`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Split {
    pub(crate) feature: u32,
    /// `x <= threshold` goes left.
    pub(crate) threshold: f32,
    /// A child `c >= 0` is inner node `c`, `c < 0` is leaf `!c`.
    pub(crate) left: i64,
    pub(crate) right: i64,
    default_left: bool,
    missing: Missing,
}

#[cfg_attr(not(feature = "train"), allow(dead_code))]
impl Split {
    /// A split of a tree trained here: NaN is read as 0, no default way.
    pub(crate) fn new(feature: u32, threshold: f32, left: i64, right: i64) -> Split {
        Split { feature, threshold, left, right, default_left: false, missing: Missing::None }
    }
}

/// A tree in LightGBM's arrays: `splits[0]` the root (none for a single
/// leaf), one more leaf value than splits.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(not(feature = "train"), allow(dead_code))]
pub(crate) struct TrainedTree {
    pub(crate) splits: Vec<Split>,
    pub(crate) leaf_value: Vec<f64>,
}

/// A boosted tree ensemble (see the module docs). It serializes with
/// serde (snapshots keep it with postcard); a decoded ensemble is checked
/// by [`validate`](Self::validate) before it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Checks an ensemble that did not come from a loader here (a decoded
    /// snapshot): every tree's run of nodes is acyclic with its children
    /// inside the run, leaf values, thresholds and the base are not NaN or
    /// infinite (thresholds may be infinite), and `features` covers every
    /// split.
    ///
    /// Errors: the first fault, naming the tree
    /// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
    pub fn validate(&self) -> Result<()> {
        if self.values.len() != self.nodes.len() || !self.base.is_finite() {
            return Err(bad(
                "ensemble",
                "values do not match the nodes, or the base is not finite",
            ));
        }
        if self.roots.first() != Some(&0) || self.roots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("ensemble", "tree roots do not start at 0 and increase"));
        }
        for (t, &r) in self.roots.iter().enumerate() {
            let end = self.roots.get(t + 1).map_or(self.nodes.len(), |&e| e as usize);
            let at = format!("tree {t}");
            let run = self.nodes.get(r as usize..end).ok_or_else(|| bad(&at, "past the nodes"))?;
            check_acyclic(run, &at)?;
            for (n, v) in run.iter().zip(&self.values[r as usize..end]) {
                let inner = n.feature != LEAF;
                if (inner && (n.feature as usize >= self.features || n.threshold.is_nan()))
                    || !v.is_finite()
                {
                    return Err(bad(
                        &at,
                        "a split past `features`, a NaN threshold or a leaf not finite",
                    ));
                }
            }
        }
        Ok(())
    }

    /// An ensemble of trees built here ([`fit_lambdamart`](crate::train::fit_lambdamart)):
    /// LightGBM's layout and comparison (`x <= threshold` goes left, NaN
    /// read as 0), `base` added to every row.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn from_trained(trees: &[TrainedTree], base: f64, features: usize) -> Result<Self> {
        let mut e = TreeEnsemble {
            nodes: Vec::new(),
            values: Vec::new(),
            roots: Vec::new(),
            compare: Compare::LessEqual,
            base,
            features,
        };
        for (t, tree) in trees.iter().enumerate() {
            let at = format!("trained tree {t}");
            e.push_tree(&tree.splits, &tree.leaf_value, &at)?;
        }
        e.validate()?;
        Ok(e)
    }

    /// Appends one tree in LightGBM's arrays: `splits[k]` is inner node
    /// `k` (node 0 the root unless there is none), a child `c >= 0` is
    /// inner node `c` and `c < 0` is leaf `!c`.
    fn push_tree(&mut self, splits: &[Split], leaf_value: &[f64], at: &str) -> Result<()> {
        let (inner, leaves) = (splits.len(), leaf_value.len());
        if leaves != inner + 1 {
            return Err(bad(at, "a tree needs one more leaf than splits"));
        }
        let root = self.nodes.len();
        self.roots.push(root as u32);
        let child = |c: i64| -> Result<u32> {
            let i = if c >= 0 { c } else { inner as i64 + !c };
            if (0..(inner + leaves) as i64).contains(&i) && (i != 0 || inner == 0) {
                Ok(i as u32)
            } else {
                Err(bad(at, &format!("child {c} out of range")))
            }
        };
        for s in splits {
            self.features = self.features.max(s.feature as usize + 1);
            self.nodes.push(Node {
                feature: s.feature,
                threshold: s.threshold,
                left: child(s.left)?,
                right: child(s.right)?,
                default_left: s.default_left,
                missing: s.missing,
            });
            self.values.push(0.0);
        }
        self.nodes.extend(leaf_value.iter().map(|_| leaf_node()));
        self.values.extend_from_slice(leaf_value);
        check_acyclic(&self.nodes[root..], at)
    }

    /// Every leaf times `scale`, then `shift` added to the base: the
    /// margin becomes `scale * margin + shift` (a Platt calibration, a
    /// sampling correction).
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn rescale(&mut self, scale: f64, shift: f64) {
        self.values.iter_mut().for_each(|v| *v *= scale);
        self.base = self.base * scale + shift;
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
            let inner = leaves - 1;
            let mut splits = Vec::with_capacity(inner);
            if inner > 0 {
                let feature: Vec<u32> = parse_list(field("split_feature"), &at, "split_feature")?;
                let threshold: Vec<f64> = parse_list(field("threshold"), &at, "threshold")?;
                let decision: Vec<u32> = parse_list(field("decision_type"), &at, "decision_type")?;
                let left: Vec<i64> = parse_list(field("left_child"), &at, "left_child")?;
                let right: Vec<i64> = parse_list(field("right_child"), &at, "right_child")?;
                let lens =
                    [feature.len(), threshold.len(), decision.len(), left.len(), right.len()];
                if lens.iter().any(|&l| l != inner) {
                    return Err(bad(&at, "split fields do not hold num_leaves - 1 values"));
                }
                for k in 0..inner {
                    if decision[k] & 1 != 0 {
                        return Err(bad(&at, "categorical splits are not supported"));
                    }
                    splits.push(Split {
                        feature: feature[k],
                        threshold: at_most(threshold[k]),
                        left: left[k],
                        right: right[k],
                        default_left: decision[k] & 2 != 0,
                        missing: match (decision[k] >> 2) & 3 {
                            0 => Missing::None,
                            1 => Missing::Zero,
                            _ => Missing::Nan,
                        },
                    });
                }
            }
            e.push_tree(&splits, &leaf_value, &at)?;
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
#[derive(Debug, Clone, PartialEq)]
pub struct TreeScorer {
    heads: [Option<TreeEnsemble>; HEADS],
    /// Per head, the weight of the fallback head's margin added to the
    /// trees' (0: trees alone).
    over: [f32; HEADS],
    fallback: LogisticScorer,
    /// Per head, its trees padded to complete ones for the branch-free
    /// walk, where they allow it ([`Padded`]).
    padded: [Option<Padded>; HEADS],
}

impl TreeScorer {
    /// Heads in [`HEAD_NAMES`](crate::features::HEAD_NAMES) order (pCTR,
    /// pCVR, engagement); `None` keeps `fallback`'s head.
    ///
    /// Errors: an ensemble that reads a feature past the schema's `F`
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch)).
    pub fn new(heads: [Option<TreeEnsemble>; HEADS], fallback: LogisticScorer) -> Result<Self> {
        TreeScorer::boosted(heads, [0.0; HEADS], fallback)
    }

    /// Heads whose margin is `over[h]` times the fallback head's margin
    /// plus the trees' (trees boosted from a logistic head, as
    /// [`train_ranker`](crate::train::train_ranker) learns them); `over`
    /// 0 is [`new`](Self::new).
    ///
    /// Errors: as [`new`](Self::new), or an `over` not finite
    /// ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)).
    pub fn boosted(
        heads: [Option<TreeEnsemble>; HEADS],
        over: [f32; HEADS],
        fallback: LogisticScorer,
    ) -> Result<Self> {
        if let Some(t) = heads.iter().flatten().find(|t| t.features() > F) {
            return Err(Error::dimension("tree scorer features", F, t.features()));
        }
        if over.iter().any(|o| !o.is_finite()) {
            return Err(bad("tree scorer", "a head's weight on the logistic margin is not finite"));
        }
        let padded = std::array::from_fn(|h| heads[h].as_ref().and_then(Padded::new));
        Ok(TreeScorer { heads, over, fallback, padded })
    }
}

impl TreeScorer {
    /// Whether head `h` is a tree ensemble (else the fallback's head).
    pub fn has_tree(&self, h: usize) -> bool {
        self.heads.get(h).is_some_and(Option::is_some)
    }

    /// Head `h`'s ensemble, if it has one.
    pub fn head(&self, h: usize) -> Option<&TreeEnsemble> {
        self.heads.get(h).and_then(Option::as_ref)
    }

    /// The logistic heads used where a head has no trees.
    pub fn fallback(&self) -> &LogisticScorer {
        &self.fallback
    }

    /// The trees of the heads `keep` marks, over `fallback` for the rest (a
    /// kept head boosted from its own logistic head keeps that head).
    ///
    /// Errors: as [`new`](Self::new).
    pub fn keeping(&self, keep: [bool; HEADS], fallback: LogisticScorer) -> Result<TreeScorer> {
        let heads = std::array::from_fn(|h| if keep[h] { self.heads[h].clone() } else { None });
        let over = std::array::from_fn(|h| if keep[h] { self.over[h] } else { 0.0 });
        // A kept head boosted from its logistic head keeps that head.
        let mut w = Vec::with_capacity(fallback.matrix().len());
        for (h, (&k, &o)) in keep.iter().zip(&self.over).enumerate() {
            let own = k && o != 0.0;
            w.extend_from_slice(if own { self.fallback.head(h) } else { fallback.head(h) });
        }
        TreeScorer::boosted(heads, over, LogisticScorer::from_matrix(w)?)
    }
}

/// What a snapshot keeps of a [`TreeScorer`] (postcard): the heads'
/// ensembles, their weights on the logistic margin, the fallback's matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TreeScorerRecord {
    heads: Vec<Option<TreeEnsemble>>,
    over: Vec<f32>,
    fallback: Vec<f32>,
}

impl TreeScorer {
    /// The record a snapshot saves.
    pub(crate) fn to_record(&self) -> TreeScorerRecord {
        TreeScorerRecord {
            heads: self.heads.to_vec(),
            over: self.over.to_vec(),
            fallback: self.fallback.matrix().to_vec(),
        }
    }

    /// A scorer from a decoded record, every part checked.
    ///
    /// Errors: a head count other than three, an ensemble that does not
    /// validate, a fallback matrix of the wrong shape.
    pub(crate) fn from_record(r: TreeScorerRecord) -> Result<TreeScorer> {
        let (Ok(heads), Ok(over)) =
            (<[Option<TreeEnsemble>; HEADS]>::try_from(r.heads), <[f32; HEADS]>::try_from(r.over))
        else {
            return Err(bad("tree scorer", "not three heads"));
        };
        for t in heads.iter().flatten() {
            t.validate()?;
        }
        TreeScorer::boosted(heads, over, LogisticScorer::from_matrix(r.fallback)?)
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
        // Blocks of rows: each tree's nodes stay in cache while the block
        // walks it, and the block's margins stay on the stack.
        let rows = features.as_slice();
        for (h, t) in self.heads.iter().enumerate() {
            let Some(t) = t else { continue };
            for (b, block) in rows.chunks(BLOCK * F).enumerate() {
                let n = block.len() / F;
                let mut margin = [t.base; BLOCK];
                let margin = &mut margin[..n];
                if self.over[h] != 0.0 {
                    let w = self.fallback.head(h);
                    let o = f64::from(self.over[h]);
                    for (m, x) in margin.iter_mut().zip(block.chunks_exact(F)) {
                        let dot: f32 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                        *m += o * f64::from(dot + w[F]);
                    }
                }
                // The padded walk reads a NaN as going right; such a block
                // walks node by node with the trees' own missing rules.
                let finite = block.iter().fold(true, |a, v| a & v.is_finite());
                match &self.padded[h] {
                    Some(p) if finite => p.add(block, margin),
                    _ => {
                        for &root in &t.roots {
                            for (m, x) in margin.iter_mut().zip(block.chunks_exact(F)) {
                                *m += t.leaf(root as usize, x);
                            }
                        }
                    }
                }
                for (o, m) in out[b * BLOCK * HEADS..].chunks_exact_mut(HEADS).zip(margin.iter()) {
                    o[h] = crate::rank::scorer::sigmoid(*m as f32);
                }
            }
        }
    }
}

/// An ensemble laid out for a walk without branches: each tree's nodes in
/// breadth-first order with a node's two children side by side, so a step
/// is `at = child + (x > threshold)`; a leaf is its own child with a
/// threshold of +inf, so a row that reached it stays, and every row takes
/// the tree's depth in steps. XGBoost's `x < t` is `x <= next_down(t)` for
/// a finite `f32`. Only finite rows take it (a NaN would go right), and an
/// ensemble that sends a zero its default way (LightGBM's zero-as-missing)
/// keeps the node walk.
#[derive(Debug, Clone, PartialEq)]
struct Padded {
    /// Per tree: its first node, its depth.
    trees: Vec<(u32, u32)>,
    nodes: Vec<FlatNode>,
    /// Per node, its value if a leaf.
    values: Vec<f64>,
}

/// A node of [`Padded`]: 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FlatNode {
    feature: u32,
    threshold: f32,
    /// The left child, relative to the tree's first node; the right one is
    /// next to it. A leaf's is itself.
    child: u32,
}

impl Padded {
    fn new(e: &TreeEnsemble) -> Option<Padded> {
        if e.nodes.iter().any(|n| n.feature != LEAF && n.missing == Missing::Zero) {
            return None;
        }
        let mut p = Padded { trees: Vec::new(), nodes: Vec::new(), values: Vec::new() };
        let mut queue: Vec<(usize, u32)> = Vec::new();
        for &root in &e.roots {
            let (root, first) = (root as usize, p.nodes.len());
            // Breadth first: (original node, depth); a node's position is
            // its index in the queue.
            queue.clear();
            queue.push((0, 0));
            let mut depth = 0;
            let mut k = 0;
            while k < queue.len() {
                let (i, d) = queue[k];
                let n = &e.nodes[root + i];
                depth = depth.max(d);
                if n.feature == LEAF {
                    p.nodes.push(FlatNode {
                        feature: 0,
                        threshold: f32::INFINITY,
                        child: k as u32,
                    });
                } else {
                    p.nodes.push(FlatNode {
                        feature: n.feature,
                        threshold: match e.compare {
                            Compare::LessEqual => n.threshold,
                            Compare::Less => next_down(n.threshold),
                        },
                        child: queue.len() as u32,
                    });
                    queue.push((n.left as usize, d + 1));
                    queue.push((n.right as usize, d + 1));
                }
                p.values.push(e.values[root + i]);
                k += 1;
            }
            p.trees.push((first as u32, depth));
        }
        Some(p)
    }

    /// Adds every tree's leaf to each row's margin; `rows` are finite.
    fn add(&self, rows: &[f32], margin: &mut [f64]) {
        const LANES: usize = 8;
        for &(first, depth) in &self.trees {
            let first = first as usize;
            let nodes = &self.nodes[first..];
            let values = &self.values[first..];
            for (c, m) in rows.chunks(LANES * F).zip(margin.chunks_mut(LANES)) {
                // Independent walks in lockstep: their loads overlap.
                let mut at = [0u32; LANES];
                for _ in 0..depth {
                    for (k, a) in at.iter_mut().enumerate().take(m.len()) {
                        let n = nodes[*a as usize];
                        let x = c[k * F + n.feature as usize];
                        *a = n.child + u32::from(x > n.threshold);
                    }
                }
                for (m, a) in m.iter_mut().zip(at) {
                    *m += values[a as usize];
                }
            }
        }
    }
}

/// Rows scored at once (their margins and padded copies on the stack).
const BLOCK: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    /// A random tree over `features` columns whose thresholds are from
    /// `values` (so rows hit them exactly), up to `leaves` leaves.
    fn random_tree(seed: &mut u64, features: u32, values: &[f32], leaves: usize) -> TrainedTree {
        let mut next = |m: usize| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 33) as usize) % m
        };
        // Grow by splitting a random leaf; leaf codes are renumbered at the end.
        let mut splits: Vec<Split> = Vec::new();
        let mut open: Vec<(Option<(usize, bool)>,)> = vec![(None,)];
        while open.len() < leaves {
            let (parent,) = open.swap_remove(next(open.len()));
            let k = splits.len();
            splits.push(Split::new(
                next(features as usize) as u32,
                values[next(values.len())],
                0,
                0,
            ));
            if let Some((p, left)) = parent {
                if left { splits[p].left = k as i64 } else { splits[p].right = k as i64 }
            }
            open.push((Some((k, true)),));
            open.push((Some((k, false)),));
        }
        let mut leaf_value = Vec::new();
        for (i, (parent,)) in open.iter().enumerate() {
            leaf_value.push(next(1000) as f64 / 100.0 - 5.0);
            if let Some((p, left)) = *parent {
                if left { splits[p].left = !(i as i64) } else { splits[p].right = !(i as i64) }
            }
        }
        TrainedTree { splits, leaf_value }
    }

    /// The branch-free walk adds exactly the leaves the node walk reaches,
    /// for both comparisons, rows equal to thresholds, leaves at every
    /// depth.
    #[test]
    fn the_padded_walk_equals_the_node_walk() {
        let values = [-1.0f32, 0.0, 0.5, 1.0, 2.0, f32::MAX];
        let mut seed = 7u64;
        let mut padded = 0;
        for (round, leaves) in [2usize, 3, 7, 15, 40].iter().cycle().take(20).enumerate() {
            let trees: Vec<TrainedTree> =
                (0..5).map(|_| random_tree(&mut seed, 4, &values, *leaves)).collect();
            let mut e = TreeEnsemble::from_trained(&trees, 0.5, 4).unwrap();
            if round % 2 == 1 {
                e.compare = Compare::Less;
            }
            let p = Padded::new(&e).unwrap();
            padded += 1;
            let mut rows = Vec::new();
            for i in 0..100 {
                for f in 0..4 {
                    rows.push(
                        values[(i * 7 + f * 3 + round) % values.len()]
                            + if i % 3 == 0 { 0.25 } else { 0.0 },
                    );
                }
            }
            let mut margin = vec![0.0; 100];
            // The padded walk reads rows of the schema's width.
            let wide: Vec<f32> = rows
                .chunks_exact(4)
                .flat_map(|r| {
                    let mut w = vec![0.0f32; F];
                    w[..4].copy_from_slice(r);
                    w
                })
                .collect();
            p.add(&wide, &mut margin);
            for (r, m) in rows.chunks_exact(4).zip(&margin) {
                assert!((e.margin(r) - 0.5 - m).abs() < 1e-9, "round {round}");
            }
        }
        assert_eq!(padded, 20);
        // A deep tree: a chain of 12 splits, leaves at every depth.
        let chain = TrainedTree {
            splits: (0..12)
                .map(|k| {
                    Split::new(0, k as f32, !(k as i64), if k < 11 { k as i64 + 1 } else { -13 })
                })
                .collect(),
            leaf_value: (0..13).map(f64::from).collect(),
        };
        let deep = TreeEnsemble::from_trained(&[chain], 0.0, 1).unwrap();
        let p = Padded::new(&deep).unwrap();
        let rows: Vec<f32> = (0..14)
            .flat_map(|i| {
                let mut w = vec![0.0f32; F];
                w[0] = i as f32 - 0.5;
                w
            })
            .collect();
        let mut margin = vec![0.0; 14];
        p.add(&rows, &mut margin);
        for (i, m) in margin.iter().enumerate() {
            assert_eq!(*m, deep.margin(&rows[i * F..(i + 1) * F]));
        }
    }

    /// A decoded ensemble or scorer (a snapshot's) is checked before use.
    #[test]
    fn decoded_models_are_checked() {
        let stump =
            TrainedTree { splits: vec![Split::new(0, 0.5, -1, -2)], leaf_value: vec![1.0, -1.0] };
        let good = TreeEnsemble::from_trained(&[stump.clone(), stump], 0.25, 1).unwrap();
        assert_eq!(good.predict(&[0.0]).unwrap(), 2.25);
        let back: TreeEnsemble =
            postcard::from_bytes(&postcard::to_allocvec(&good).unwrap()).unwrap();
        assert_eq!(back, good);
        back.validate().unwrap();
        let broken: [fn(&mut TreeEnsemble); 6] = [
            |e| e.nodes[0].left = 0,
            |e| e.nodes[3].right = 9,
            |e| e.nodes[0].feature = 1,
            |e| e.values[1] = f64::INFINITY,
            |e| e.roots = vec![0, 0],
            |e| e.base = f64::NAN,
        ];
        for (i, f) in broken.iter().enumerate() {
            let mut e = good.clone();
            f(&mut e);
            assert!(e.validate().is_err(), "fault {i} passed");
        }
        let fallback = LogisticScorer::from_weights(&Default::default()).unwrap();
        let scorer = TreeScorer::new([Some(good.clone()), None, None], fallback).unwrap();
        assert_eq!(TreeScorer::from_record(scorer.to_record()).unwrap(), scorer);
        let mut two = scorer.to_record();
        two.heads.pop();
        assert!(TreeScorer::from_record(two).is_err());
        let mut bad_tree = scorer.to_record();
        bad_tree.heads[0].as_mut().unwrap().nodes[0].left = 0;
        assert!(TreeScorer::from_record(bad_tree).is_err());
    }

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
