//! Ranking: the kernels every stage's hot loop is made of.

pub mod kernels;
