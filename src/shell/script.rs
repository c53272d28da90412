//! Script mode: commands from a file, stdin or `-c`, with no banner and no
//! prompt. Each failure is reported on stderr as `line N: Error: ...`, and
//! the caller turns the failure count into the exit status.
//!
//! Ctrl-C stops the command running, which fails, and the script goes on;
//! a second Ctrl-C stops the script after that command, as a stuck script
//! needs one way out that does not skip the cluster's clean shutdown.
//!
//! **Echo.** A script that tells a story (a demo) can be shown as it runs:
//! each command is printed after a `kvsh> ` prompt before its output, and
//! its `#` narration and blank lines as they are, so the output reads like
//! a session and the file is not needed to follow it. `--echo` turns this
//! on; a script turns it on for itself with a line `#!echo` (the examples
//! do), and `--no-echo` overrides both. `--json` never echoes: its stdout
//! is one JSON value per command. A pragma in the file, rather than "every
//! file under examples/", because it travels with the file when copied.

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
    run_echoing(shell, lines, out, err, stop_on_error, None)
}

/// The pragma line that turns echo on for a script.
pub const ECHO_PRAGMA: &str = "#!echo";

/// Whether a script asks to be echoed: it has a line `#!echo`.
pub fn wants_echo(text: &str) -> bool {
    text.lines().any(|l| l.trim() == ECHO_PRAGMA)
}

/// How echoed lines look: plain, or with the terminal's dim and bold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Use colours (stdout is a terminal).
    pub tty: bool,
}

/// Like [`run`], and with `echo`, prints each line before running it (see
/// the module docs).
pub fn run_echoing(
    shell: &mut Shell,
    lines: impl IntoIterator<Item = (usize, String)>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop_on_error: bool,
    echo: Option<Echo>,
) -> usize {
    let mut failures = 0;
    let pressed_before = presses();
    let mut blank = true;
    for (n, line) in lines {
        if let Some(echo) = echo {
            echo_line(&line, echo, &mut blank, out);
        }
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

/// Prints one script line as a session would show it: narration as is
/// (dim on a terminal), a command after a prompt (bold), blank lines
/// collapsed to one. The pragma itself is not shown.
fn echo_line(line: &str, echo: Echo, blank: &mut bool, out: &mut dyn Write) {
    let t = line.trim();
    let (dim, bold, reset) = if echo.tty {
        ("\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    if t == ECHO_PRAGMA || (t.is_empty() && *blank) {
        return;
    }
    *blank = t.is_empty();
    let _ = if t.is_empty() {
        writeln!(out)
    } else if t.starts_with('#') {
        writeln!(out, "{dim}{t}{reset}")
    } else {
        writeln!(out, "{bold}kvsh> {t}{reset}")
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn echoed(lines: &[&str]) -> String {
        let mut out = Vec::new();
        let mut blank = true;
        for l in lines {
            echo_line(l, Echo { tty: false }, &mut blank, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn echo_shows_narration_and_commands_like_a_session() {
        assert_eq!(
            echoed(&[
                "#!echo",
                "",
                "# 1. Load keys.",
                "put a 1",
                "",
                "",
                "  get a  "
            ]),
            "# 1. Load keys.\nkvsh> put a 1\n\nkvsh> get a\n"
        );
    }

    #[test]
    fn the_pragma_turns_echo_on() {
        assert!(wants_echo("# demo\n#!echo\nput a 1\n"));
        assert!(!wants_echo(
            "# demo\n# #!echo is not a pragma here\nput a 1\n"
        ));
    }
}
