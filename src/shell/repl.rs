//! The interactive shell: rustyline with history, completion of commands,
//! node ids and arguments, usage hints as you type, and view-change notices
//! printed above the prompt as they happen (through rustyline's external
//! printer, so the line being typed is not garbled).
//!
//! rustyline 19 or later is needed: before it, input that arrived together
//! (typed ahead, or pasted without bracketed paste) stalled after its first
//! character while an external printer was in use, and Enter did nothing
//! until another key came (kkawakam/rustyline#976).

use crate::cluster::leader::Event;
use crate::cluster::view::node_name;
use crate::shell::command::{lookup, COMMANDS};
use crate::shell::Shell;
use crossbeam_channel::Receiver;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Completion and hints for the shell.
#[derive(Debug, Default)]
pub struct KvshHelper {
    /// Node names to complete, refreshed before each prompt.
    pub nodes: Arc<Mutex<Vec<String>>>,
}

impl KvshHelper {
    fn candidates(&self, words: &[&str], current: &str) -> Vec<String> {
        let mut all: Vec<String> = match words {
            [] => COMMANDS
                .iter()
                .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
                .map(String::from)
                .collect(),
            [cmd, rest @ ..] => {
                let Some(spec) = lookup(cmd) else {
                    return Vec::new();
                };
                let nodes = || self.nodes.lock().map(|n| n.clone()).unwrap_or_default();
                match (spec.name, rest.len()) {
                    ("kill" | "pause" | "restart" | "remove", 0) => nodes(),
                    ("wait", 0) => vec!["healthy".into()],
                    ("placement", 0) => vec!["ring".into(), "hrw".into(), "modulo".into()],
                    ("set", 0) => vec!["auto-rebalance".into(), "events".into()],
                    ("set", 1) => vec!["on".into(), "off".into()],
                    ("help", 0) => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
                    ("table", _) => vec!["--by-node".into(), "--watch".into(), "--limit".into()],
                    ("rebalance", _) => vec!["--dry-run".into()],
                    ("keys" | "events", _) => vec!["--limit".into()],
                    _ => Vec::new(),
                }
            }
        };
        all.retain(|c| c.starts_with(current));
        all.sort();
        all.dedup();
        all
    }
}

impl Completer for KvshHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let words: Vec<&str> = before[..start].split_whitespace().collect();
        let pairs = self
            .candidates(&words, &before[start..])
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for KvshHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        if pos < line.len() || line.is_empty() {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // A command typed, then a space: show its arguments.
            [cmd] if line.ends_with(' ') => lookup(cmd)
                .map(|s| s.args.to_string())
                .filter(|a| !a.is_empty()),
            // A unique prefix of a command: show the rest of it.
            [partial] if !line.ends_with(' ') => {
                let matches: Vec<&str> = COMMANDS
                    .iter()
                    .map(|c| c.name)
                    .filter(|n| n.starts_with(partial))
                    .collect();
                match matches.as_slice() {
                    [one] if one.len() > partial.len() => Some(one[partial.len()..].to_string()),
                    _ => None,
                }
            }
            _ => None,
        }
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
        "kvsh: {} nodes, {} replicas per partition, {} partitions, placement {}\n",
        c.node_ids().len(),
        cfg.replicas,
        cfg.partitions,
        cfg.placement.strategy
    );
    for id in c.node_ids() {
        s.push_str(&format!(
            "  {:<4} {}\n",
            node_name(id),
            c.endpoint(id).unwrap_or("?")
        ));
    }
    s.push_str("Type `help` for commands, Tab to complete, Ctrl-D or `quit` to leave.");
    s
}

/// Runs the interactive loop until `quit` or Ctrl-D. Returns the number of
/// failed commands.
pub fn run(shell: &mut Shell, history: Option<PathBuf>, events: Receiver<Event>) -> usize {
    let config = Config::builder()
        .auto_add_history(true)
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<KvshHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return 1;
        }
    };
    let helper = KvshHelper::default();
    let nodes = helper.nodes.clone();
    editor.set_helper(Some(helper));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // Live notices: a thread prints view changes above the prompt. It ends
    // when the cluster shuts down and drops the sending end.
    let live = shell.live_events.clone();
    let printer = editor.create_external_printer().ok().map(|mut p| {
        std::thread::spawn(move || {
            // Take what arrives together (a failure is a burst), group it,
            // and print one line per group.
            while let Ok(first) = events.recv() {
                let mut batch = vec![first];
                while let Ok(e) = events.recv_timeout(std::time::Duration::from_millis(30)) {
                    batch.push(e);
                }
                if live.load(Ordering::Relaxed) {
                    for l in crate::shell::render::timeline(&batch) {
                        let line = format!(
                            "\x1b[2m[{:>8.3}s epoch {}] {}\x1b[0m",
                            l.at as f64 / 1000.0,
                            l.epoch,
                            l.text
                        );
                        let _ = p.print(line);
                    }
                }
            }
        })
    });
    println!("{}", banner(shell));
    let mut failures = 0;
    loop {
        if let Ok(mut n) = nodes.lock() {
            *n = shell
                .cluster()
                .node_ids()
                .into_iter()
                .map(node_name)
                .collect();
        }
        match editor.readline(&shell.prompt()) {
            Ok(line) => {
                let mut out = std::io::stdout();
                if let Err(e) = shell.execute(&line, &mut out) {
                    failures += 1;
                    eprintln!("Error: {e}");
                }
                if shell.quit_requested() {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
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
    failures
}
