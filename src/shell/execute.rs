//! Executing commands: the [`Shell`] holds the cluster and the settings, and
//! [`Shell::execute`] runs one line. The REPL, script mode and the script
//! tests all call it, so what a test checks is what a user gets.

use crate::check::history::History;
use crate::cluster::handle::Cluster;
use crate::error::{Error, Result};
use crate::shell::client::ShellClient;
use crate::shell::command::{lookup, unknown_command, words};
use crate::shell::render::{self, Style};
use crate::shell::reset_interrupt;
use crate::view::NodeId;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

mod atomic;
mod checking;
mod data;
mod faults;
mod load;
mod membership;
mod narration;
mod settings;
mod stats;
mod views;

use settings::help;

/// What a command produced: text for people, JSON for scripts.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Text output (may be empty).
    pub text: String,
    /// The one JSON value `--json` prints.
    pub json: Value,
    /// Set when the command printed a report but failed (a check that found
    /// problems).
    pub failure: Option<Error>,
}

impl Reply {
    pub(super) fn new(text: impl Into<String>, json: Value) -> Self {
        Reply {
            text: text.into(),
            json,
            failure: None,
        }
    }
}

/// How long `add`, `remove`, `rebalance` and friends wait for data to move.
const MOVE_TIMEOUT: Duration = Duration::from_secs(600);

/// The shell's state.
pub struct Shell {
    cluster: Cluster,
    client: ShellClient,
    /// Print JSON instead of text.
    pub json: bool,
    /// Running a script (no terminal).
    pub script: bool,
    style: Style,
    /// Whether live event notices print above the prompt.
    pub live_events: Arc<AtomicBool>,
    quit: bool,
    last_history: Option<History>,
    /// Locks this shell took: name → (owner, token), for `unlock NAME`.
    held: std::collections::BTreeMap<String, (String, u64)>,
    /// What `history html` draws besides the history: the last check's
    /// faults, view changes and violations.
    last_check: Option<crate::check::html::Timeline>,
    /// The background workload of `load start`, while it runs.
    load: Option<crate::check::load::Load>,
    /// Where notices from background work (`load`) go: above the prompt in
    /// the REPL, stdout in an echoing script, nowhere otherwise.
    notices: Option<Notices>,
}

/// A sink for one-line notices, shared with background threads.
pub type Notices = Arc<std::sync::Mutex<Box<dyn FnMut(String) + Send>>>;

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("json", &self.json)
            .field("script", &self.script)
            .finish()
    }
}

impl Shell {
    /// A shell driving `cluster`.
    pub fn new(cluster: Cluster, json: bool, script: bool, tty: bool) -> Self {
        let client = ShellClient::new(cluster.client());
        Shell {
            cluster,
            client,
            json,
            script,
            style: Style { tty },
            live_events: Arc::new(AtomicBool::new(true)),
            quit: false,
            last_history: None,
            held: std::collections::BTreeMap::new(),
            last_check: None,
            load: None,
            notices: None,
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Sends notices from background work (`load`'s status lines) to
    /// `print`, one line per call.
    pub fn set_notices(&mut self, print: Box<dyn FnMut(String) + Send>) {
        self.notices = Some(Arc::new(std::sync::Mutex::new(print)));
    }

    /// True once `quit` ran.
    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    /// The prompt: how many of the cluster's nodes are up (`kvsh (3/4 up)> `).
    pub fn prompt(&self) -> String {
        let up = crate::shell::notice::up_count(&self.cluster.status());
        crate::shell::notice::prompt_text(up, self.cluster.node_ids().len())
    }

    /// Runs one line and writes its output. Blank lines and `#` comments do
    /// nothing. Errors are returned, for the caller to show in its mode.
    pub fn execute(&mut self, line: &str, out: &mut dyn Write) -> Result<()> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        reset_interrupt();
        let reply = self.run(line)?;
        if self.json {
            writeln!(out, "{}", reply.json)?;
        } else if !reply.text.is_empty() {
            let text = reply.text.trim_end_matches('\n');
            if self.style.tty && !self.script {
                // On a terminal, a line too long for it wraps at a space,
                // so no endpoint, hash range or number is cut in two.
                writeln!(
                    out,
                    "{}",
                    crate::shell::layout::fit(text, self.text_width())
                )?;
            } else {
                writeln!(out, "{text}")?;
            }
        }
        match reply.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn run(&mut self, line: &str) -> Result<Reply> {
        let words = words(line)?;
        let Some((name, args)) = words.split_first() else {
            return Ok(Reply::new("", Value::Null));
        };
        let spec = lookup(name).ok_or_else(|| unknown_command(name))?;
        match spec.name {
            "put" => self.put(args),
            "get" => self.get(args),
            "del" => self.del(args),
            "keys" => self.keys(args),
            "where" => self.where_(args),
            "cas" => self.cas(args),
            "lock" => self.lock(args),
            "unlock" => self.unlock(args),
            "locks" => self.locks(args),
            "nodes" => self.nodes(args),
            "table" => self.table(args),
            "add" => self.add(args),
            "remove" => self.remove(args),
            "kill" => self.kill(args),
            "pause" => self.pause(args),
            "resume" => self.resume(args),
            "stats" => self.stats(args),
            "restart" => self.restart(args),
            "rebalance" => self.rebalance(args),
            "placement" => self.placement(args),
            "wait" => self.wait(args),
            "events" => self.events(args),
            "verify" => self.verify(args),
            "repair" => self.repair(args),
            "set" => self.set(args),
            "partition" => self.partition(args),
            "link" => self.link(args),
            "heal" => self.heal(args),
            "faults" => self.faults(args),
            "check" => self.check(args),
            "history" => self.history(args),
            "bench" => self.bench(args),
            "help" => help(args, self.text_width()),
            "load" => self.load(args),
            "mget" => self.mget(args),
            "mput" => self.mput(args),
            "echo" => self.echo(args),
            "sleep" => self.sleep(args),

            "quit" if !args.is_empty() => Err(self.usage("quit")),
            "quit" => {
                self.quit = true;
                Ok(Reply::new("", json!({"ok": true})))
            }
            other => Err(Error::Internal(format!("command {other} has no handler"))),
        }
    }

    /// The width text is fitted to: the terminal's, or 80 columns in a
    /// script, so scripts' output does not depend on where they ran.
    pub(super) fn text_width(&self) -> usize {
        if self.style.tty && !self.script {
            crate::shell::layout::width()
        } else {
            80
        }
    }

    /// Key counts asked of the nodes, waiting at most 200 ms for each.
    pub(super) fn counts(&self) -> render::KeyCounts {
        self.cluster.key_counts(Duration::from_millis(200))
    }

    pub(super) fn usage(&self, name: &str) -> Error {
        lookup(name).map_or_else(
            || Error::BadInput(format!("usage: {name}")),
            |s| s.usage_error(),
        )
    }

    pub(super) fn node_arg(&self, args: &[String], name: &str) -> Result<NodeId> {
        match args {
            [n] => self.cluster.resolve(n),
            _ => Err(self.usage(name)),
        }
    }
}
