//! Checkers for histories of operations.

pub mod linearizability;
