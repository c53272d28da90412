//! The shell in a real terminal: `kvsh` runs in a tmux pane, keys go in
//! with `send-keys` and `paste-buffer`, and the screen comes back with
//! `capture-pane`. These cover what `Shell::execute` cannot see: the line
//! editor, the terminal's modes, signals and the exit status.
//!
//! Each test waits for text to appear on the screen, with a generous
//! deadline, rather than sleeping. The tests skip, saying so, where tmux is
//! not installed (`.ci/run` installs it).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long to wait for the screen to show something. Long, because the
/// machine may be busy; a passing test waits only as long as it must.
const DEADLINE: Duration = Duration::from_secs(60);

/// A tmux server of its own, with one pane running a command.
struct Term {
    socket: String,
    dir: PathBuf,
}

impl Term {
    /// Starts `kvsh ARGS` in a 200x50 pane; the pane prints `[exit N]` when
    /// kvsh ends. None (after saying why) if tmux is not installed.
    fn start(name: &str, args: &str) -> Option<Term> {
        Term::start_sized(name, args, 200, 50)
    }

    /// Starts `kvsh ARGS` in a pane of `width` x `height`.
    fn start_sized(name: &str, args: &str, width: u16, height: u16) -> Option<Term> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("skipping {name}: tmux is not installed (apt-get install tmux)");
            return None;
        }
        let socket = format!("kvsh-test-{}-{name}", std::process::id());
        let dir = std::env::temp_dir().join(&socket);
        std::fs::create_dir_all(&dir).unwrap();
        let history = dir.join("history");
        let cmd = format!(
            "{} {args} --history {}; echo \"[exit $?]\"; sleep 600",
            shell_words::quote(env!("CARGO_BIN_EXE_kvsh")),
            shell_words::quote(&history.display().to_string()),
        );
        let term = Term { socket, dir };
        let out = term.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &cmd,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        Some(term)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .env_remove("TMUX")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Sends keys with one `send-keys`: words are typed as they are, and
    /// key names (`Enter`, `C-c`) are pressed.
    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// Pastes text as a terminal does when it supports bracketed paste.
    fn paste(&self, text: &str) {
        let file = self.dir.join("paste");
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        assert!(self
            .tmux(&["load-buffer", "-b", "kvsh", &file])
            .status
            .success());
        assert!(self
            .tmux(&["paste-buffer", "-p", "-d", "-b", "kvsh", "-t", "0"])
            .status
            .success());
    }

    /// Everything on the screen and in its scrollback, wrapped lines joined.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-J", "-S", "-"]).stdout)
            .into_owned()
    }

    /// Waits until `text` shows `count` times; returns the screen.
    fn wait_for_n(&self, text: &str, count: usize) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= count {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{text:?} did not show {count} times in {DEADLINE:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `text` shows; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_for_n(text, 1)
    }

    /// Waits for the first prompt.
    fn ready(&self) {
        self.wait_for(" up)> ");
    }

    /// The screen as the terminal shows it: lines it wrapped stay apart.
    fn rows(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-S", "-"]).stdout).into_owned()
    }

    /// Waits until the screen ends with a prompt.
    fn prompt(&self) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            let last = screen.lines().rev().find(|l| !l.trim().is_empty());
            if last.is_some_and(|l| l.trim_end().ends_with(")>")) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no prompt in {DEADLINE:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The history file kvsh saved on exit, one entry a line.
    fn history(&self) -> String {
        std::fs::read_to_string(self.dir.join("history")).unwrap_or_default()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Lines typed ahead arrive together; each runs, and the last one's Enter
/// needs no further key (kkawakam/rustyline#976 stalled at the first
/// character until another key came).
#[test]
fn typed_ahead_lines_run_at_once() {
    let Some(t) = Term::start("ahead", "-n 2 -p 16") else {
        return;
    };
    t.ready();
    t.send(&[
        "put ahead one",
        "Enter",
        "get ahead",
        "Enter",
        "put ahead two",
        "Enter",
        "get ahead",
        "Enter",
    ]);
    let screen = t.wait_for("\"two\"");
    assert!(screen.contains("\"one\""), "{screen}");
    assert!(!screen.contains("Error"), "{screen}");
}

/// A bracketed paste of several lines runs them one by one when Enter is
/// pressed, and each goes into the history on its own.
#[test]
fn pasted_lines_run_one_by_one() {
    let Some(t) = Term::start("paste", "-n 2 -p 16") else {
        return;
    };
    t.ready();
    t.paste("put pasted:1 one\nput pasted:2 two\nget pasted:1\nget pasted:2\n");
    t.wait_for("get pasted:2");
    t.send(&["Enter"]);
    let screen = t.wait_for("\"two\"");
    assert_eq!(screen.matches("OK").count(), 2, "{screen}");
    assert!(screen.contains("\"one\""), "{screen}");
    assert!(!screen.contains("Error"), "{screen}");
    t.send(&["quit", "Enter"]);
    t.wait_for("[exit 0]");
    let history = t.history();
    for line in ["put pasted:1 one", "get pasted:2"] {
        assert!(
            history.lines().any(|l| l == line),
            "{line:?} is a history entry of its own:\n{history}"
        );
    }
}

/// Mistakes along the way do not make an interactive session fail: it
/// exits 0 after `quit`, and after Ctrl-D. `quit now` is a mistake, not a
/// way out.
#[test]
fn an_interactive_session_with_mistakes_exits_0() {
    let Some(t) = Term::start("quit", "-n 2 -p 16") else {
        return;
    };
    t.ready();
    t.send(&["frobnicate", "Enter", "get", "Enter", "quit now", "Enter"]);
    let screen = t.wait_for("Error: usage: quit");
    assert!(
        !screen.contains("[exit"),
        "quit now did not quit:\n{screen}"
    );
    assert!(
        screen.contains("unknown command \"frobnicate\""),
        "{screen}"
    );
    t.send(&["quit", "Enter"]);
    t.wait_for("[exit 0]");

    let Some(t) = Term::start("eof", "-n 2 -p 16") else {
        return;
    };
    t.ready();
    t.send(&["put", "Enter"]);
    t.wait_for("Error: usage: put KEY VALUE");
    t.send(&["C-d"]);
    t.wait_for("[exit 0]");
}

/// Ctrl-C stops a `get` that is waiting on nodes that cannot answer (it
/// would otherwise wait for the client's 5 s timeout and fail as
/// unavailable), and the shell carries on.
#[test]
fn ctrl_c_stops_a_get_waiting_on_an_unavailable_node() {
    let Some(t) = Term::start("interrupt", "-n 2 -p 16") else {
        return;
    };
    t.ready();
    t.send(&["kill n1", "Enter", "kill n2", "Enter"]);
    t.wait_for("killed n2");
    t.send(&["get k", "Enter"]);
    t.wait_for("> get k");
    // A Ctrl-C that lands before the line editor has handed the line over
    // is read as a key at the next prompt, not as a signal: if the get has
    // not ended a while after a press, press again. Not sooner: a spare
    // Ctrl-C at the prompt discards what is typed with it, as a terminal's
    // own Ctrl-C does.
    let start = Instant::now();
    let mut pressed: Option<Instant> = None;
    let screen = loop {
        if pressed.is_none_or(|p| p.elapsed() > Duration::from_secs(2)) {
            t.send(&["C-c"]);
            pressed = Some(Instant::now());
        }
        let screen = t.screen();
        if screen.contains("Error: cancelled") || screen.contains("Error: unavailable") {
            break screen;
        }
        assert!(start.elapsed() < DEADLINE, "the get did not end:\n{screen}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(screen.contains("Error: cancelled"), "{screen}");
    assert!(!screen.contains("Error: unavailable"), "{screen}");
    t.prompt();
    t.send(&["heal", "Enter"]);
    t.wait_for("healed");
}

/// In script mode the first Ctrl-C stops the command running, which fails,
/// and the script goes on; the second stops the script. The exit status
/// counts the failures.
#[test]
fn script_mode_stops_at_the_second_ctrl_c() {
    let dir = std::env::temp_dir().join(format!("kvsh-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("stuck.kvsh");
    std::fs::write(
        &script,
        "kill n1\nkill n2\nget a\nget b\nput c never\nget d\n",
    )
    .unwrap();
    let args = format!(
        "-n 2 -p 16 -f {}",
        shell_words::quote(&script.display().to_string())
    );
    let Some(t) = Term::start("script", &args) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    // Script mode prints each command's output, and nothing between
    // commands: Ctrl-C after `killed n2` lands during `get a`.
    t.wait_for("killed n2");
    t.send(&["C-c"]);
    let screen = t.wait_for("line 3: Error:");
    assert!(screen.contains("line 3: Error: cancelled"), "{screen}");
    t.send(&["C-c"]);
    let screen = t.wait_for("[exit ");
    assert!(screen.contains("line 4: Error: cancelled"), "{screen}");
    assert!(screen.contains("script stopped"), "{screen}");
    assert!(!screen.contains("line 5"), "{screen}");
    assert!(screen.contains("[exit 2]"), "{screen}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tab completes commands, flags and node names, and the hint shows the
/// arguments still to come as they are typed.
#[test]
fn completion_and_hints_in_the_terminal() {
    let Some(t) = Term::start("complete", "-n 3 -p 16") else {
        return;
    };
    t.ready();
    t.send(&["kill n2", "Enter"]);
    t.wait_for("killed n2");
    // Only n2 is killed, so `restart` completes to it.
    t.send(&["resta", "Tab", "Tab"]);
    t.wait_for("> restart n2");
    t.send(&["C-u", "check --dur", "Tab"]);
    t.wait_for("> check --duration 10s [--clients 4]");
    t.send(&["1s --cl"]);
    t.wait_for("> check --duration 1s --clients 4 [--keys 20]");
    t.send(&["C-u", "put k"]);
    t.wait_for("> put k VALUE");
}

/// Notices that arrive while a command runs are one line each, and the
/// command's result starts a line of its own (they used to run together:
/// `...at its targethealthy (waited 0.78 s)`).
#[test]
fn notices_during_a_command_are_one_line_each() {
    let Some(t) = Term::start("notices", "-p 256") else {
        return;
    };
    t.ready();
    t.send(&["pause n3 2s", "Enter", "wait healthy 60s", "Enter"]);
    t.wait_for("healthy (waited");
    t.prompt();
    let screen = t.screen();
    let result = screen
        .lines()
        .find(|l| l.contains("healthy (waited"))
        .unwrap();
    assert!(result.starts_with("healthy (waited"), "{screen}");
    let notices: Vec<&str> = screen.lines().filter(|l| l.contains(" epoch ")).collect();
    assert!(notices.len() >= 3, "{screen}");
    for n in &notices {
        assert!(
            n.starts_with('['),
            "a notice starts its line: {n:?}\n{screen}"
        );
        assert_eq!(n.matches(" epoch ").count(), 1, "one notice a line: {n:?}");
    }
    // A pause at 256 partitions is a few lines, not hundreds.
    assert!(notices.len() < 20, "{screen}");
    assert!(screen.contains("all done"), "{screen}");
}

/// The prompt shows how many nodes are up and is redrawn when that
/// changes, with no key pressed: by the notice, or with events off, by
/// itself.
#[test]
fn the_prompt_follows_the_cluster() {
    let Some(t) = Term::start("prompt", "-p 64") else {
        return;
    };
    t.ready();
    t.wait_for("kvsh (4/4 up)> ");
    t.send(&["kill n2", "Enter"]);
    t.wait_for("killed n2");
    // Nothing more is typed: the prompt changes on its own.
    t.wait_for("kvsh (3/4 up)> ");
    t.send(&["set events off", "Enter"]);
    t.wait_for("events off");
    t.prompt();
    t.send(&["kill n3", "Enter"]);
    t.wait_for("killed n3");
    t.wait_for("kvsh (2/4 up)> ");
    t.send(&["restart n2", "Enter"]);
    t.wait_for("kvsh (3/4 up)> ");
}

/// At 80 columns nothing is cut by the terminal: every line fits, and
/// endpoints and hash ranges stay whole.
#[test]
fn everything_fits_80_columns() {
    let Some(t) = Term::start_sized("narrow", "-p 1024", 80, 50) else {
        return;
    };
    t.ready();
    t.send(&["put order:1 pending", "Enter"]);
    t.wait_for("OK");
    t.send(&["nodes", "Enter"]);
    t.wait_for("process");
    t.send(&["where order:1", "Enter"]);
    t.wait_for("hash range");
    t.send(&["table --all --limit 5", "Enter"]);
    t.wait_for("table --all");
    t.send(&["help", "Enter"]);
    t.wait_for("Type `help COMMAND`");
    t.send(&["help check", "Enter"]);
    t.wait_for("example: check");
    t.prompt();
    let rows = t.rows();
    let joined = t.screen();
    // capture-pane -J joins the lines the terminal wrapped: if none was,
    // every line fit in 80 columns.
    let wrapped: Vec<&str> = joined.lines().filter(|l| l.chars().count() > 80).collect();
    assert!(
        wrapped.is_empty(),
        "lines wider than 80 columns: {wrapped:#?}"
    );
    let endpoint = regex::Regex::new(r"tcp://127\.0\.0\.1:\d+").unwrap();
    let range = regex::Regex::new(r"[0-9a-f]{16}-[0-9a-f]{16}").unwrap();
    let found = |re: &regex::Regex, text: &str| -> Vec<String> {
        let mut v: Vec<String> = re.find_iter(text).map(|m| m.as_str().to_string()).collect();
        v.sort();
        v
    };
    // n1 to n4 in the banner and in `nodes`; `where` and five rows of
    // `table --all`: all whole.
    assert!(found(&endpoint, &rows).len() >= 8, "{rows}");
    assert!(found(&range, &rows).len() >= 6, "{rows}");
    assert_eq!(found(&endpoint, &rows), found(&endpoint, &joined), "{rows}");
    assert_eq!(found(&range, &rows), found(&range, &joined), "{rows}");
}

impl Term {
    /// The visible screen only (no scrollback), with its escape sequences.
    fn visible_styled(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-e"]).stdout).into_owned()
    }

    /// Waits until the visible screen, styles included, holds `text`.
    fn wait_for_styled(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.visible_styled();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{text:?} did not show in {DEADLINE:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reverse video: how `--watch` marks a cell that changed.
const HIGHLIGHT: &str = "\x1b[7m";

/// Asserts a `--watch` frame is whole on a 80x24 screen: its first line
/// and its footer both show, so nothing scrolled away, and no line is
/// wider than the pane.
fn whole_frame(t: &Term, first: &str) {
    let screen = t.rows();
    let visible: Vec<&str> = screen.lines().collect();
    let top = visible.iter().rposition(|l| l.contains(first));
    let foot = visible.iter().rposition(|l| l.contains("Ctrl-C to stop"));
    assert!(
        top.zip(foot).is_some_and(|(a, b)| a < b && b - a < 24),
        "the frame from {first:?} to its footer fits 24 rows:\n{screen}"
    );
    let joined = t.screen();
    let wide: Vec<&str> = joined.lines().filter(|l| l.chars().count() > 80).collect();
    assert!(wide.is_empty(), "lines wider than 80 columns: {wide:#?}");
}

/// `table --watch` on a 80x24 terminal: the frame fits the height even at
/// 1,024 partitions, a pause's promotions show highlighted, and Ctrl-C
/// ends the watch (here, and so the script).
#[test]
fn table_watch_fits_and_highlights_changes() {
    let Some(t) = Term::start_sized(
        "table-watch",
        "-p 1024 -c 'pause n3 3s; table --watch 0.2'",
        80,
        24,
    ) else {
        return;
    };
    t.wait_for("Ctrl-C to stop");
    // n3's partitions get new primaries while the watch runs.
    let styled = t.wait_for_styled(HIGHLIGHT);
    assert!(styled.contains("partitions:"), "{styled}");
    whole_frame(&t, "partitions:");
    t.send(&["C-c"]);
    t.wait_for("[exit");
}

/// `table --all --watch` lists partitions only as far as the screen
/// allows, and says how many more there are.
#[test]
fn table_all_watch_fits_the_height() {
    let Some(t) = Term::start_sized(
        "table-all-watch",
        "-p 1024 -c 'table --all --watch 0.2'",
        80,
        24,
    ) else {
        return;
    };
    t.wait_for("Ctrl-C to stop");
    whole_frame(&t, "partitions:");
    let rows = t.rows();
    assert!(rows.contains("more"), "the cut is said:\n{rows}");
    t.send(&["C-c"]);
    t.wait_for("[exit");
}

/// `stats --watch` on a 80-column terminal: every column fits, and a node
/// whose state changes (a pause) shows highlighted.
#[test]
fn stats_watch_fits_and_highlights_changes() {
    let Some(t) = Term::start_sized("stats-watch", "-c 'pause n3 3s; stats --watch 0.2'", 80, 24)
    else {
        return;
    };
    t.wait_for("Ctrl-C to stop");
    t.wait_for_styled(HIGHLIGHT);
    whole_frame(&t, "node");
    t.send(&["C-c"]);
    t.wait_for("[exit");
}

/// `stats --watch` with more nodes than a 24-row screen holds shows what
/// fits, says how many more there are, and keeps the frame whole.
#[test]
fn stats_watch_fits_many_nodes() {
    let Some(t) = Term::start_sized("stats-many", "-n 31 -p 64 -c 'stats --watch 0.3'", 80, 24)
    else {
        return;
    };
    t.wait_for("Ctrl-C to stop");
    whole_frame(&t, "partitions:");
    let rows = t.rows();
    assert!(
        rows.contains("more below the screen"),
        "the cut is said:\n{rows}"
    );
    t.send(&["C-c"]);
    t.wait_for("[exit");
}
