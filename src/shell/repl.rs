//! The interactive shell: rustyline with history, completion and hints
//! (from [`complete`]), pasted lines run one by one, and view-change notices
//! printed above the prompt as they happen ([`notice`]: one line each,
//! summarised, and the prompt's `3/4 up` redrawn when it changes).
//!
//! [`notice`]: crate::shell::notice
//!
//! rustyline 19 or later is needed: before it, input that arrived together
//! (typed ahead, or pasted without bracketed paste) stalled after its first
//! character while an external printer was in use, and Enter did nothing
//! until another key came (kkawakam/rustyline#976).
//!
//! A bracketed paste lands in the line as it is, newlines included, and
//! runs when Enter is pressed, as in bash and psql: then each of its lines
//! runs on its own, in order, and goes into the history on its own. Ctrl-C
//! during one of them stops the rest.
//!
//! An interactive session exits 0 however many commands failed: each error
//! was shown where it happened. Script mode counts them instead.
//!
//! [`complete`]: crate::shell::complete

use crate::cluster::leader::Event;
use crate::shell::complete::{self, Known, UsageHint};
use crate::shell::render::process_state;
use crate::shell::{interrupted, notice, Shell};
use crate::units::count;
use crate::view::node_name;
use crossbeam_channel::Receiver;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter as _, Helper};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Completion and hints for the shell.
#[derive(Debug, Default)]
pub struct KvshHelper {
    /// What completion knows beyond the usage lines, refreshed before each
    /// prompt.
    pub known: Known,
}

impl Completer for KvshHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete::complete(line, pos, &self.known))
    }
}

impl Hinter for KvshHelper {
    type Hint = UsageHint;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<UsageHint> {
        complete::hint(line, pos, &self.known)
    }
}

impl Highlighter for KvshHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for KvshHelper {}
impl Helper for KvshHelper {}

/// The default history file: `~/.kvsh_history`.
pub fn default_history() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kvsh_history"))
}

/// Prints the banner: the cluster and its nodes.
pub fn banner(shell: &Shell) -> String {
    let c = shell.cluster();
    let cfg = c.config();
    let mut s = format!(
        "kvsh: {}, {} per partition, {}, placement {}\n",
        count(c.node_ids().len(), "node"),
        count(cfg.replicas, "replica"),
        count(cfg.partitions, "partition"),
        cfg.placement.strategy
    );
    for id in c.node_ids() {
        s.push_str(&format!(
            "  {:<4} {}\n",
            node_name(id),
            c.endpoint(id).unwrap_or_else(|| "?".into())
        ));
    }
    s.push_str("Type `help` for commands, Tab to complete, Ctrl-D or `quit` to leave.");
    s
}

/// Runs the interactive loop until `quit` or Ctrl-D. Returns what counts
/// against the exit status: 0, or 1 if the terminal could not be used.
pub fn run(shell: &mut Shell, history: Option<PathBuf>, events: Receiver<Event>) -> usize {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<KvshHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(KvshHelper::default()));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // Live notices: a thread prints view changes above the prompt (or above
    // a running command's progress bar), and keeps the prompt's count of
    // nodes up current. It ends when the cluster shuts down.
    let shared = notice::Shared::default();
    let printer = editor.create_external_printer().ok().map(|p| {
        notice::spawn(
            p,
            events,
            shell.cluster().status_watch(),
            shell.live_events.clone(),
            (shared.clone(), shell.cluster().time_origin()),
        )
    });
    // Notices from background work (`load`) print as the live notices do:
    // above the prompt at the prompt, above any progress bar while a
    // command runs (one line each, never glued to the command's output).
    if let Ok(mut p) = editor.create_external_printer() {
        let at_prompt = shared.at_prompt.clone();
        shell.set_notices(Box::new(move |l| {
            // Wrapped at spaces as the live notices are, never inside a
            // number.
            let line = super::layout::wrap(&l, super::layout::width(), 4)
                .lines()
                .map(|part| format!("\x1b[2m{part}\x1b[0m"))
                .collect::<Vec<_>>()
                .join("\n");
            if at_prompt.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = p.print(format!("{line}\n"));
            } else {
                crate::progress::println(&line);
            }
        }));
    }
    // Log lines print above the prompt as notices do, unless a log file
    // takes them.
    if let Ok(p) = editor.create_external_printer() {
        let at_prompt = shared.at_prompt.clone();
        let p = std::sync::Mutex::new(p);
        crate::logging::set_sink(Box::new(move |line| {
            // Wrapped at spaces, as notices are, so no field is cut.
            let line = super::layout::wrap(&line, super::layout::width(), 4);
            if at_prompt.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut p) = p.lock() {
                    let _ = p.print(format!("{line}\n"));
                }
            } else {
                crate::progress::println(&line);
            }
        }));
    }
    println!("{}", banner(shell));
    let mut status = 0;
    'session: loop {
        if let Some(h) = editor.helper_mut() {
            refresh(&mut h.known, shell);
        }
        let total = shell.cluster().node_ids().len();
        shared.up.store(
            notice::up_count(&shell.cluster().status()),
            Ordering::Relaxed,
        );
        let prompt = notice::LivePrompt::new(total, &shared);
        shared.at_prompt.store(true, Ordering::Relaxed);
        let read = editor.readline(&prompt);
        shared.at_prompt.store(false, Ordering::Relaxed);
        match read {
            Ok(text) => {
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                for (i, line) in lines.iter().enumerate() {
                    let _ = editor.add_history_entry(*line);
                    let mut out = std::io::stdout();
                    match shell.execute(line, &mut out) {
                        Ok(()) => {
                            if let Some(h) = editor.helper_mut() {
                                h.known.remember(line);
                            }
                        }
                        Err(e) => eprintln!("Error: {e}"),
                    }
                    if shell.quit_requested() {
                        break 'session;
                    }
                    let left = lines.len() - i - 1;
                    if interrupted() && left > 0 {
                        eprintln!(
                            "Error: Ctrl-C: {left} pasted line{} not run",
                            if left == 1 { "" } else { "s" }
                        );
                        break;
                    }
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                status = 1;
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    drop(editor);
    // The printer thread ends once the cluster is gone; the caller drops it.
    if let Some(t) = printer {
        std::mem::drop(t);
    }
    status
}

/// Refreshes what completion knows of the nodes.
fn refresh(known: &mut Known, shell: &Shell) {
    let cluster = shell.cluster();
    let ids = cluster.node_ids();
    known.nodes = ids.iter().map(|id| node_name(*id)).collect();
    known.killed = ids
        .iter()
        .copied()
        .filter(|id| process_state(cluster, *id) == "killed")
        .map(node_name)
        .collect();
    known.paused = ids
        .into_iter()
        .filter(|id| process_state(cluster, *id).starts_with("paused"))
        .map(node_name)
        .collect();
}
