//! The shell: the operator's interface to a cluster.
//!
//! - [`command`] holds the command table (names, usage, help, examples) and
//!   parses lines into words;
//! - [`usage`] reads a usage line as a grammar, and [`complete`] uses it for
//!   completion and hints;
//! - [`execute`] holds the [`Shell`], whose `execute(line, out)` runs one
//!   line; the REPL, script mode and the script tests all call it;
//! - [`render`] draws tables (comfy-table) and their JSON twins;
//! - [`repl`] is the interactive loop (rustyline): prompt, history,
//!   completion, hints, and live event notices above the prompt;
//! - [`script`] runs commands from a file, stdin or `-c`.
//!
//! Ctrl-C sets a process-wide flag that long commands poll; at the prompt,
//! rustyline reads it as a key and clears the line.

pub mod command;
pub mod complete;
pub mod execute;
pub mod render;
pub mod repl;
pub mod script;
pub mod usage;

pub use execute::{Reply, Shell};

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True if Ctrl-C was pressed since the current command started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Clears the Ctrl-C flag; done before each command.
pub fn reset_interrupt() {
    INTERRUPTED.store(false, Ordering::Relaxed);
}

/// Installs the Ctrl-C handler that sets the flag. Safe to call twice.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed));
}
