//! Progress bars and the lines printed above them.
//!
//! Every bar in the process belongs to one [`MultiProgress`] on stderr, and
//! every line printed while a bar may be showing (the shell's live notices)
//! goes through [`println()`], which lifts the bars, prints the line and its
//! newline, and draws the bars again below it. So a notice is always one
//! line of its own, and a bar stays one redrawn line under the notices,
//! never torn by them. Writing to the terminal directly while a bar is
//! drawn would leave half a bar above the notice and the notice glued to
//! whatever came next.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::io::Write;
use std::sync::OnceLock;

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A bar of `len` steps, drawn at once (on stderr, if it is a terminal).
pub fn bar(len: u64) -> ProgressBar {
    multi().add(ProgressBar::new(len))
}

/// A bar of `len` steps that draws nothing until [`show`] is called: for
/// waits that show a bar only once they last.
pub fn hidden_bar(len: u64) -> ProgressBar {
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden())
}

/// Starts drawing a bar made by [`hidden_bar`].
pub fn show(bar: &ProgressBar) {
    if bar.is_hidden() {
        multi().add(bar.clone());
    }
}

/// Clears a bar away for good.
pub fn done(bar: ProgressBar) {
    bar.finish_and_clear();
    multi().remove(&bar);
}

/// Prints one line on stdout, above any bars. The line ends with its own
/// newline, so what comes next starts on a line of its own.
pub fn println(line: &str) {
    multi().suspend(|| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
}
