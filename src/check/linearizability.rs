//! Linearizability checker (to be written).
