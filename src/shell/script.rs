//! Script mode: commands from a file, stdin or `-c`, with no banner and no
//! prompt. Each failure is reported on stderr as `line N: Error: ...`, and
//! the caller turns the failure count into the exit status.
//!
//! Ctrl-C stops the command running, which fails, and the script goes on;
//! a second Ctrl-C stops the script after that command, as a stuck script
//! needs one way out that does not skip the cluster's clean shutdown.

use crate::error::Error;
use crate::shell::{presses, Shell};
use serde_json::json;
use std::io::Write;

/// Runs numbered lines; returns how many failed. Stops at `quit`, at the
/// second Ctrl-C (which counts as a failure), and at the first failure if
/// `stop_on_error`.
pub fn run(
    shell: &mut Shell,
    lines: impl IntoIterator<Item = (usize, String)>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop_on_error: bool,
) -> usize {
    let mut failures = 0;
    let pressed_before = presses();
    for (n, line) in lines {
        if let Err(e) = shell.execute(&line, out) {
            failures += 1;
            report(shell, n, &e, out, err);
            if stop_on_error {
                break;
            }
        }
        let _ = out.flush();
        if shell.quit_requested() {
            break;
        }
        if presses() - pressed_before >= 2 {
            let _ = writeln!(err, "line {n}: Error: script stopped: Ctrl-C pressed twice");
            failures = failures.max(1);
            break;
        }
    }
    failures
}

/// Reports one failed line: on stderr, and under `--json` also as the
/// command's one JSON value on stdout (unless the command already printed
/// its report).
pub fn report(shell: &Shell, line: usize, e: &Error, out: &mut dyn Write, err: &mut dyn Write) {
    if shell.json && !matches!(e, Error::CheckFailed(_)) {
        let _ = writeln!(out, "{}", json!({"error": e.to_string()}));
    }
    let _ = writeln!(err, "line {line}: Error: {e}");
}
