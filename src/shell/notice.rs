//! Live notices and the live prompt.
//!
//! A thread of its own takes the view leader's events as they happen and
//! tells them as a [`Story`]: headlines at once, the consequences summed
//! up once the events pause (or every `LONGEST_WAIT` while they keep
//! coming). Each notice is one line with its own newline:
//!
//! - at the prompt, through rustyline's external printer, which clears the
//!   line being typed, prints the notice and draws the prompt again;
//! - while a command runs, through [`progress::println`], above any
//!   progress bar. The external printer cannot be used then: with the
//!   terminal out of raw mode it writes the text as it is, with no newline,
//!   so notices ran together and the command's result was glued to the
//!   last one.
//!
//! The same thread keeps the prompt current. The prompt shows how many
//! nodes are up (`kvsh (3/4 up)> `); [`LivePrompt`] is a rustyline
//! `Prompt` whose text is read at every redraw, from a number this thread
//! sets. Each notice redraws the prompt. A change with no notice (events
//! off) is drawn by printing a cursor-up and a newline through the
//! external printer: rustyline clears its line, the two cancel out, and it
//! draws the prompt again where it was. All the prompt's texts for one
//! line have the same width (`kvsh ( 9/10 up)> `), as rustyline measures
//! the prompt once per line.
//!
//! [`progress::println`]: crate::progress::println

use crate::cluster::leader::{Event, Status};
use crate::cluster::watch::Watch;
use crate::progress;
use crate::shell::layout;
use crate::shell::render::node_state;
use crate::shell::timeline::{Story, TimelineLine};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustyline::ExternalPrinter;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events that arrive this close together are one burst.
const BURST: Duration = Duration::from_millis(30);
/// Consequences are told once the events pause this long.
const QUIET: Duration = Duration::from_millis(400);
/// Or after this long, if the events keep coming.
const LONGEST_WAIT: Duration = Duration::from_secs(2);
/// How often the prompt's state is looked at when nothing happens.
const POLL: Duration = Duration::from_millis(250);

/// The prompt for `up` of `total` nodes up; every `up` gives the same
/// width.
pub fn prompt_text(up: usize, total: usize) -> String {
    let w = total.to_string().len();
    format!("kvsh ({up:>w$}/{total} up)> ")
}

/// How many of the nodes in the view are up.
pub fn up_count(status: &Status) -> usize {
    status
        .view
        .nodes
        .keys()
        .filter(|id| node_state(status, **id) == "up")
        .count()
}

/// What the REPL and the notice thread share.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    /// True while rustyline reads a line (the terminal is in raw mode).
    pub at_prompt: Arc<AtomicBool>,
    /// Nodes up, as the prompt shows.
    pub up: Arc<AtomicUsize>,
}

/// A prompt whose text follows [`Shared::up`] while the line is read.
#[derive(Debug)]
pub struct LivePrompt {
    texts: Vec<String>,
    up: Arc<AtomicUsize>,
}

impl LivePrompt {
    /// The prompt for a cluster of `total` nodes.
    pub fn new(total: usize, shared: &Shared) -> Self {
        LivePrompt {
            texts: (0..=total).map(|up| prompt_text(up, total)).collect(),
            up: shared.up.clone(),
        }
    }
}

impl rustyline::Prompt for LivePrompt {
    fn raw(&self) -> &str {
        let i = self.up.load(Ordering::Relaxed).min(self.texts.len() - 1);
        &self.texts[i]
    }
}

/// Starts the notice thread. It ends when the cluster shuts down and drops
/// the sending end of `events`.
pub fn spawn<P: ExternalPrinter + Send + 'static>(
    mut printer: P,
    events: Receiver<Event>,
    status: Watch<Status>,
    live: Arc<AtomicBool>,
    (shared, origin): (Shared, crate::view::Time),
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut story = Story::default();
        let mut pending_since: Option<Instant> = None;
        let mut last_event = Instant::now();
        loop {
            let mut lines: Vec<TimelineLine> = Vec::new();
            match events.recv_timeout(POLL) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while let Ok(e) = events.recv_timeout(BURST) {
                        batch.push(e);
                    }
                    for e in &batch {
                        lines.extend(story.push(e));
                    }
                    last_event = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if story.is_pending() {
                let since = *pending_since.get_or_insert_with(Instant::now);
                if last_event.elapsed() >= QUIET || since.elapsed() >= LONGEST_WAIT {
                    lines.extend(story.flush());
                    pending_since = None;
                }
            }
            // The prompt first, so the redraw after a notice shows it.
            let up = up_count(&status.get());
            let changed = shared.up.swap(up, Ordering::Relaxed) != up;
            let show = live.load(Ordering::Relaxed);
            let at_prompt = shared.at_prompt.load(Ordering::Relaxed);
            if show && !lines.is_empty() {
                let width = layout::width();
                for l in &lines {
                    // One notice is one line, unless the terminal is too
                    // narrow: then it wraps at spaces, indented, never
                    // inside an endpoint or a number.
                    let plain = format!(
                        "[{:>8.3}s epoch {}] {}",
                        crate::shell::render::seconds_from(l.at, origin),
                        l.epoch,
                        l.text
                    );
                    let line = layout::wrap(&plain, width, 4)
                        .lines()
                        .map(|part| format!("\x1b[2m{part}\x1b[0m"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    if at_prompt {
                        let _ = printer.print(format!("{line}\n"));
                    } else {
                        progress::println(&line);
                    }
                }
            } else if changed && at_prompt {
                let _ = printer.print("\x1b[A\n".to_string());
            }
        }
    })
}
