//! The shell: the operator's interface to a cluster.
//!
//! - [`command`] holds the command table (names, usage, help, examples) and
//!   parses lines into words;
//! - [`usage`] reads a usage line as a grammar, and [`complete`] uses it for
//!   completion and hints;
//! - [`execute`] holds the [`Shell`], whose `execute(line, out)` runs one
//!   line; the REPL, script mode and the script tests all call it. Its
//!   commands live in files by what they are about (`execute/data.rs`,
//!   `views.rs`, `membership.rs`, `faults.rs`, `checking.rs`, `load.rs`,
//!   `narration.rs`, `settings.rs`), with `execute.rs` as the dispatcher;
//! - [`client`] runs the shell's cluster client on a thread of its own, so
//!   Ctrl-C can stop waiting for it;
//! - [`render`] draws tables (comfy-table) and their JSON twins;
//! - [`timeline`] tells the events as a story: a fault and its
//!   consequences in a few lines (`events`, live notices);
//! - [`layout`] fits text to the terminal (word wrap, width, height);
//! - [`notice`] prints live notices (one line each, above any progress
//!   bar) and keeps the prompt's `3/4 up` current;
//! - [`repl`] is the interactive loop (rustyline): prompt, history,
//!   completion, hints, pasted lines, and live event notices above the
//!   prompt;
//! - [`script`] runs commands from a file, stdin or `-c`.
//!
//! Ctrl-C sets a process-wide flag that long commands poll, and counts the
//! presses so that script mode can stop at the second. At the prompt,
//! rustyline reads it as a key and clears the line.

pub mod client;
pub mod command;
pub mod complete;
pub mod execute;
pub mod layout;
pub mod notice;
pub mod render;
pub mod repl;
pub mod script;
pub mod timeline;
pub mod usage;

pub use execute::{Reply, Shell};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static PRESSES: AtomicUsize = AtomicUsize::new(0);

/// True if Ctrl-C was pressed since the current command started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Clears the Ctrl-C flag; done before each command.
pub fn reset_interrupt() {
    INTERRUPTED.store(false, Ordering::Relaxed);
}

/// How many times Ctrl-C was pressed (outside the line editor) since the
/// process started. Never reset: callers compare two readings.
pub fn presses() -> usize {
    PRESSES.load(Ordering::Relaxed)
}

/// Records a Ctrl-C press, as the handler does.
pub fn interrupt() {
    PRESSES.fetch_add(1, Ordering::Relaxed);
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Installs the Ctrl-C handler that sets the flag. Safe to call twice.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(interrupt);
}
