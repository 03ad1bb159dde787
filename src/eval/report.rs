//! What an evaluation returns: [`EvalReport`] (per method and metric, as a
//! table or JSON) and every list ([`EvalRun`]).

use super::EvalConfig;
use crate::ids::{ProductId, Timestamp, UserId};
use serde::Serialize;
use std::collections::BTreeMap;

/// A method's lists, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodLists {
    /// The method.
    pub name: String,
    /// `(user, at, list)` per request.
    pub lists: Vec<(UserId, Timestamp, Vec<ProductId>)>,
}

/// One method's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodReport {
    /// The method.
    pub name: String,
    /// Metric name (`ndcg@10`, `recall@20`, `mrr`, ...) → mean over requests
    /// (list-level metrics) or over the run (coverage, Gini).
    pub metrics: BTreeMap<String, f64>,
    /// NDCG@K for K = 1..=curve_max.
    pub ndcg_curve: Vec<f64>,
    /// Seconds spent producing the lists (fitting not included).
    pub seconds: f64,
}

/// The outcome of [`evaluate`](crate::eval::evaluate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Per method, in the order `fit` returned them.
    pub methods: Vec<MethodReport>,
    /// Requests scored (per method).
    pub requests: usize,
    /// Distinct users among them.
    pub users: usize,
    /// The config used.
    pub config: EvalConfig,
}

impl EvalReport {
    /// A method's report by name.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// A metric of a method.
    pub fn metric(&self, method: &str, metric: &str) -> Option<f64> {
        self.method(method)?.metrics.get(metric).copied()
    }

    /// The JSON report: `{"methods": {name: {metric: value}}, "ndcg_curve":
    /// {name: [NDCG@1, ...]}, "seconds": {name: s}, "requests", "users",
    /// "config"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut methods = serde_json::Map::new();
        let mut curves = serde_json::Map::new();
        let mut seconds = serde_json::Map::new();
        for m in &self.methods {
            methods.insert(m.name.clone(), serde_json::json!(m.metrics));
            curves.insert(m.name.clone(), serde_json::json!(m.ndcg_curve));
            seconds.insert(m.name.clone(), serde_json::json!(m.seconds));
        }
        serde_json::json!({
            "methods": methods,
            "ndcg_curve": curves,
            "seconds": seconds,
            "requests": self.requests,
            "users": self.users,
            "config": self.config,
        })
    }

    /// A plain-text table, one row per method, one column per metric
    /// (those of `metrics` that some method has).
    pub fn table(&self, metrics: &[&str]) -> String {
        let cols: Vec<&str> = metrics
            .iter()
            .copied()
            .filter(|c| self.methods.iter().any(|m| m.metrics.contains_key(*c)))
            .collect();
        let w = self.methods.iter().map(|m| m.name.len()).max().unwrap_or(6).max(6);
        let mut out = format!("{:w$}", "method");
        for c in &cols {
            out.push_str(&format!(" {c:>13}"));
        }
        out.push('\n');
        for m in &self.methods {
            out.push_str(&format!("{:w$}", m.name));
            for c in &cols {
                match m.metrics.get(*c) {
                    Some(v) => out.push_str(&format!(" {v:>13.4}")),
                    None => out.push_str(&format!(" {:>13}", "-")),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The result of [`evaluate`](crate::eval::evaluate): the report and every list.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    /// Scores.
    pub report: EvalReport,
    /// Each method's lists.
    pub lists: Vec<MethodLists>,
}
