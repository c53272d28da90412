//! Coverage-guided fuzzing of the node core with libFuzzer: arbitrary
//! bytes as internal frames from any sender, through the same harness the
//! test suite runs (`kvsh::sim::fuzz::node_input`).
//!
//! Run (nightly, from the repository root):
//! `cargo +nightly fuzz run node_input -- -runs=1000000`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kvsh::sim::fuzz::node_input(data);
});
