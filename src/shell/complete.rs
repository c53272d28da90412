//! Completion and hints for the interactive shell.
//!
//! Both read the command table's usage lines through [`usage`], so a flag
//! or a choice added to a command's usage is completed and hinted with no
//! change here. What the usage cannot know comes from [`Known`]: the
//! nodes, which of them are killed, and the keys this session has typed.
//! The metavariable names a value: `KEY` completes keys, `NODE` nodes (only
//! killed ones after `restart`, paused ones after `resume`, only live ones
//! after `kill` and `pause`),
//! `A`, `B` and `NODES` nodes or `leader`, `FILE` file names, `COMMAND`
//! commands.
//!
//! Both are plain functions of the line, so the tests need no terminal;
//! [`repl`](crate::shell::repl) hands them to rustyline.
//!
//! [`usage`]: crate::shell::usage

use crate::shell::command::{lookup, COMMANDS};
use crate::shell::usage::{join, Grammar, Usage};
use rustyline::completion::{FilenameCompleter, Pair};
use std::collections::BTreeSet;

/// At most this many keys are remembered for completion; past it, new ones
/// are not, so a long session's memory stays bounded.
const MAX_KEYS: usize = 10_000;

/// What the shell knows that the usage lines do not.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Every node's name, in id order.
    pub nodes: Vec<String>,
    /// The names of killed nodes.
    pub killed: Vec<String>,
    /// The names of paused nodes.
    pub paused: Vec<String>,
    /// Keys typed in this session (`put`, `get`, `del`, `where`).
    pub keys: BTreeSet<String>,
}

impl Known {
    /// Remembers the key a line named, if its command takes a `KEY` first.
    pub fn remember(&mut self, line: &str) {
        let words = split(line);
        let Some((cmd, args)) = words.split_first() else {
            return;
        };
        let Some(spec) = lookup(cmd) else {
            return;
        };
        let takes_key = matches!(
            Grammar::new(spec.args).positional.first(),
            Some(Usage::Value(v)) if v == "KEY"
        );
        if let Some(key) = args.iter().find(|a| !a.starts_with("--")) {
            if takes_key && self.keys.len() < MAX_KEYS {
                self.keys.insert(key.clone());
            }
        }
    }
}

/// A hint shown after the cursor: the rest of what is being typed, and the
/// arguments still to come.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageHint {
    /// What is shown, dimmed.
    pub display: String,
    /// What Right-arrow inserts: only the rest of a word being typed, never
    /// a placeholder such as `KEY`.
    pub completion: Option<String>,
}

impl rustyline::hint::Hint for UsageHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        self.completion.as_deref()
    }
}

/// Splits typed text into words, shell style; an unterminated quote (the
/// user is still typing) splits on whitespace instead.
fn split(s: &str) -> Vec<String> {
    shell_words::split(s).unwrap_or_else(|_| s.split_whitespace().map(String::from).collect())
}

/// The candidates for the word under the cursor, and where that word
/// starts. Only the last line of a multi-line (pasted) buffer counts.
pub fn complete(line: &str, pos: usize, known: &Known) -> (usize, Vec<Pair>) {
    let line_start = line[..pos].rfind('\n').map_or(0, |i| i + 1);
    let before = &line[line_start..pos];
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let current = &before[start..];
    let words = split(&before[..start]);
    let at = line_start + start;
    let Some((cmd, args)) = words.split_first() else {
        let names = COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()));
        return (at, words_from(names, current));
    };
    let Some(spec) = lookup(cmd) else {
        return (at, Vec::new());
    };
    let g = Grammar::new(spec.args);
    let reading = g.read(args);
    let unused_flags = || {
        g.options
            .iter()
            .zip(&reading.used)
            .filter(|(_, used)| !**used)
            .flat_map(|(o, _)| o.flags())
            .map(|(name, _)| format!("--{name}"))
            .collect::<Vec<_>>()
    };
    // A value for the flag just typed?
    if let Some(value) = args
        .last()
        .and_then(|w| w.strip_prefix("--"))
        .and_then(|f| g.flag(f).flatten())
    {
        match value {
            Usage::Optional(v) => {
                let mut c = values(v, current, spec.name, known);
                c.extend(words_from(unused_flags(), current));
                return (at, c);
            }
            v => {
                if let Usage::Value(name) = v {
                    if name == "FILE" {
                        return files(line, pos);
                    }
                }
                return (at, values(v, current, spec.name, known));
            }
        }
    }
    if current.starts_with('-') {
        return (at, words_from(unused_flags(), current));
    }
    let next = reading.next();
    if next
        .iter()
        .any(|u| matches!(u, Usage::Value(name) if name == "FILE"))
    {
        return files(line, pos);
    }
    let mut candidates: Vec<Pair> = next
        .into_iter()
        .flat_map(|u| values(u, current, spec.name, known))
        .collect();
    if current.is_empty() && reading.may_end() {
        candidates.extend(words_from(unused_flags(), current));
    }
    let mut seen = BTreeSet::new();
    candidates.retain(|p| seen.insert(p.replacement.clone()));
    (at, candidates)
}

/// Candidates among fixed words: those that start with what is typed (in
/// any case), each followed by a space.
fn words_from<S: AsRef<str>>(words: impl IntoIterator<Item = S>, current: &str) -> Vec<Pair> {
    let mut out: Vec<String> = words
        .into_iter()
        .map(|w| w.as_ref().to_string())
        .filter(|w| starts_with(w, current))
        .collect();
    out.sort();
    out.dedup();
    out.into_iter()
        .map(|w| Pair {
            replacement: format!("{w} "),
            display: w,
        })
        .collect()
}

fn starts_with(word: &str, prefix: &str) -> bool {
    word.len() >= prefix.len()
        && word.is_char_boundary(prefix.len())
        && word[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Candidates for one element of a usage at the cursor's word.
fn values(u: &Usage, current: &str, command: &str, known: &Known) -> Vec<Pair> {
    match u {
        Usage::Literal(choices) => {
            let (lists, words): (Vec<&String>, Vec<&String>) =
                choices.iter().partition(|c| c.contains(','));
            let mut out: Vec<Pair> = lists
                .into_iter()
                .flat_map(|c| list(c.split(','), current))
                .collect();
            out.extend(words_from(words, current));
            out
        }
        Usage::Value(name) => match name.as_str() {
            "KEY" => known
                .keys
                .iter()
                .filter(|k| k.starts_with(current))
                .map(|k| Pair {
                    display: k.clone(),
                    replacement: format!("{} ", shell_words::quote(k)),
                })
                .collect(),
            "NODE" => {
                let live = || known.nodes.iter().filter(|n| !known.killed.contains(n));
                let nodes: Vec<&String> = match command {
                    "restart" => known.killed.iter().collect(),
                    "resume" => known.paused.iter().collect(),
                    "kill" | "pause" => live().collect(),
                    _ => known.nodes.iter().collect(),
                };
                in_order(nodes, current)
            }
            "A" | "B" => {
                let mut nodes: Vec<&str> = known.nodes.iter().map(String::as_str).collect();
                nodes.push("leader");
                in_order(nodes, current)
            }
            "NODES" => {
                let mut nodes: Vec<&str> = known.nodes.iter().map(String::as_str).collect();
                nodes.push("leader");
                list(nodes, current)
            }
            "COMMAND" => words_from(COMMANDS.iter().map(|c| c.name), current),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Candidates in the given order (nodes: n2 before n10).
fn in_order<S: AsRef<str>>(words: impl IntoIterator<Item = S>, current: &str) -> Vec<Pair> {
    words
        .into_iter()
        .map(|w| w.as_ref().to_string())
        .filter(|w| starts_with(w, current))
        .map(|w| Pair {
            replacement: format!("{w} "),
            display: w,
        })
        .collect()
}

/// Candidates for the last item of a comma-separated list, leaving out the
/// items already in it. No space follows, as another item may.
fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>, current: &str) -> Vec<Pair> {
    let (done, partial) = current.rsplit_once(',').unwrap_or(("", current));
    let given: Vec<&str> = done.split(',').collect();
    items
        .into_iter()
        .map(|i| i.as_ref().to_string())
        .filter(|i| !given.contains(&i.as_str()) && starts_with(i, partial))
        .map(|i| Pair {
            replacement: if done.is_empty() {
                i.clone()
            } else {
                format!("{done},{i}")
            },
            display: i,
        })
        .collect()
}

/// File names, from rustyline's completer (which quotes as needed).
fn files(line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let ctx = rustyline::history::DefaultHistory::new();
    let ctx = rustyline::Context::new(&ctx);
    use rustyline::completion::Completer;
    FilenameCompleter::new()
        .complete(line, pos, &ctx)
        .unwrap_or((pos, Vec::new()))
}

/// The hint after the cursor (only at the end of the line): the rest of a
/// command, flag or word being typed if only one fits, then the arguments
/// still to come, as the usage writes them.
pub fn hint(line: &str, pos: usize, known: &Known) -> Option<UsageHint> {
    if pos < line.len() {
        return None;
    }
    let line = &line[line.rfind('\n').map_or(0, |i| i + 1)..];
    let typing = !line.ends_with(char::is_whitespace);
    let words = split(line);
    let (cmd, args) = words.split_first()?;
    // The command word itself.
    if args.is_empty() && typing {
        if let Some(spec) = lookup(cmd) {
            return display_only(format!(" {}", spec.args));
        }
        let matches: Vec<&str> = COMMANDS
            .iter()
            .map(|c| c.name)
            .filter(|n| starts_with(n, cmd))
            .collect();
        let [one] = matches.as_slice() else {
            return None;
        };
        let rest = one[cmd.len()..].to_string();
        let args = lookup(one).map_or("", |s| s.args);
        let display = if args.is_empty() {
            rest.clone()
        } else {
            format!("{rest} {args}")
        };
        return Some(UsageHint {
            display,
            completion: Some(rest),
        });
    }
    let spec = lookup(cmd)?;
    let g = Grammar::new(spec.args);
    if !typing {
        // A flag that wants a value: show the value, then the rest.
        if let Some(v) = args
            .last()
            .and_then(|w| w.strip_prefix("--"))
            .and_then(|f| g.flag(f).flatten())
        {
            if !matches!(v, Usage::Optional(_)) {
                let rest = remaining(&g, args);
                let text = [v.to_string(), rest].join(" ");
                return display_only(text.trim_end().to_string());
            }
        }
        return display_only(remaining(&g, args));
    }
    let (current, before) = args.split_last()?;
    let reading = g.read(before);
    // The rest of a flag or a word, if only one fits.
    let next = reading.next();
    let fits: Vec<(String, Option<String>)> = if current.starts_with("--") {
        g.options
            .iter()
            .zip(&reading.used)
            .filter(|(_, used)| !**used)
            .flat_map(|(o, _)| o.flags())
            .filter(|(name, _)| starts_with(&format!("--{name}"), current))
            .map(|(name, v)| (format!("--{name}"), v.map(|v| v.to_string())))
            .collect()
    } else {
        next.iter()
            .filter(|u| matches!(u, Usage::Literal(_) | Usage::Value(_)))
            .flat_map(|u| values(u, current, spec.name, known))
            .filter(|p| p.replacement.ends_with(' '))
            .map(|p| (p.display, None))
            .collect()
    };
    if let [(word, value)] = fits.as_slice() {
        if word.len() > current.len() && starts_with(word, current) {
            let rest = word[current.len()..].to_string();
            let mut typed = before.to_vec();
            typed.push(word.clone());
            // A flag's value comes first, then what is left.
            let tail: Vec<String> = value
                .iter()
                .cloned()
                .chain(Some(remaining(&g, &typed)))
                .filter(|t| !t.is_empty())
                .collect();
            let display = std::iter::once(rest.clone())
                .chain(tail)
                .collect::<Vec<_>>();
            return Some(UsageHint {
                display: display.join(" "),
                completion: Some(rest),
            });
        }
    }
    let rest = remaining(&g, args);
    display_only(if rest.is_empty() {
        rest
    } else {
        format!(" {rest}")
    })
}

fn display_only(display: String) -> Option<UsageHint> {
    (!display.trim().is_empty()).then_some(UsageHint {
        display,
        completion: None,
    })
}

/// What the usage still offers after these words: the positional part left
/// (if the words fit it), then the option groups not used yet.
fn remaining(g: &Grammar, args: &[String]) -> String {
    let reading = g.read(args);
    let mut parts = Vec::new();
    if let Some(seq) = reading.left.first() {
        parts.push(join(seq, " "));
    }
    for (o, used) in g.options.iter().zip(&reading.used) {
        if !used {
            parts.push(o.to_string());
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn known() -> Known {
        Known {
            nodes: ["n1", "n2", "n3", "n10"].map(String::from).to_vec(),
            killed: vec!["n2".into()],
            paused: vec!["n3".into()],
            keys: ["user:1", "user:2", "cart"].map(String::from).into(),
        }
    }

    /// The candidates shown for a line, cursor at its end.
    fn shown(line: &str) -> Vec<String> {
        complete(line, line.len(), &known())
            .1
            .into_iter()
            .map(|p| p.display)
            .collect()
    }

    #[test_case("pu", &["put"])]
    #[test_case("PU", &["put"]; "in any case")]
    #[test_case("re", &["rebalance", "remove", "repair", "restart", "resume"])]
    #[test_case("check ", &["--clients", "--duration", "--faults", "--keys", "--seed"])]
    #[test_case("check --duration 3s --s", &["--seed"])]
    #[test_case("check --seed 1 ", &["--clients", "--duration", "--faults", "--keys"];
        "a flag already given is not offered again")]
    #[test_case("check --faults ", &["kill", "pause", "partition", "link", "none"])]
    #[test_case("check --faults kill,p", &["pause", "partition"])]
    #[test_case("check --faults kill,pause,", &["partition", "link"])]
    #[test_case("bench ", &["get", "mixed", "put"])]
    #[test_case("bench get --ops 5 --", &["--batch", "--clients", "--keep", "--keys", "--pinned", "--pipeline", "--threads", "--value-size"];
        "the alternative to a given flag is not offered either")]
    #[test_case("bench put --duration ", &[]; "no guesses for a free value")]
    #[test_case("restart ", &["n2"]; "only killed nodes restart")]
    #[test_case("kill ", &["n1", "n3", "n10"])]
    #[test_case("pause n", &["n1", "n3", "n10"])]
    #[test_case("remove ", &["n1", "n2", "n3", "n10"])]
    #[test_case("link ", &["n1", "n2", "n3", "n10", "leader"])]
    #[test_case("link n1 ", &["->", "n1", "n2", "n3", "n10", "leader"])]
    #[test_case("link n1 n2 ", &["drop", "delay"])]
    #[test_case("link n1 -> n2 d", &["drop", "delay"])]
    #[test_case("partition n1,", &["n2", "n3", "n10", "leader"])]
    #[test_case("partition n1 | n", &["n1", "n2", "n3", "n10"])]
    #[test_case("get ", &["cart", "user:1", "user:2"])]
    #[test_case("del us", &["user:1", "user:2"])]
    #[test_case("where c", &["cart"])]
    #[test_case("wait ", &["healthy"])]
    #[test_case("placement ", &["hrw", "modulo", "ring"])]
    #[test_case("set ", &["auto-rebalance", "events", "log-level"])]
    #[test_case("set events ", &["off", "on"])]
    #[test_case("table --watch ", &["--all", "--by-node", "--limit"])]
    #[test_case("table --by-node ", &["--all", "--limit", "--watch"])]
    #[test_case("resume ", &["n3"]; "only paused nodes resume")]
    #[test_case("events ", &["--detail", "--limit", "--partition"])]
    #[test_case("stats ", &["--watch"])]
    #[test_case("keys ", &["--limit"])]
    #[test_case("help q", &["quit"])]
    #[test_case("history ", &["save", "html"])]
    #[test_case("put k v ", &[]; "nothing after the last argument")]
    #[test_case("frob ", &[])]
    #[test_case("get a\nput u", &["user:1", "user:2"]; "the last line of a paste")]
    fn candidates(line: &str, expected: &[&str]) {
        assert_eq!(shown(line), expected);
    }

    #[test]
    fn history_save_completes_file_names() {
        let dir = std::env::temp_dir().join(format!("kvsh-complete-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.jsonl"), "").unwrap();
        let line = format!("history save {}/ru", dir.display());
        let (start, c) = complete(&line, line.len(), &known());
        assert_eq!(start, "history save ".len());
        let c: Vec<String> = c.into_iter().map(|p| p.replacement).collect();
        assert_eq!(c, [format!("{}/run.jsonl", dir.display())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_with_spaces_are_quoted() {
        let mut k = known();
        k.remember(r#"put "two words" v"#);
        let (_, c) = complete("get tw", 6, &k);
        assert_eq!(c[0].replacement, "'two words' ");
    }

    #[test]
    fn keys_are_remembered_from_commands_that_take_one() {
        let mut k = Known::default();
        k.remember("put a 1");
        k.remember("GET b");
        k.remember("where c");
        k.remember("del d");
        k.remember("keys e");
        k.remember("pause n1 2s");
        assert_eq!(k.keys, ["a", "b", "c", "d"].map(String::from).into());
    }

    fn hinted(line: &str) -> Option<(String, Option<String>)> {
        hint(line, line.len(), &known()).map(|h| (h.display, h.completion))
    }

    #[test_case("pu", "t KEY VALUE", Some("t"))]
    #[test_case("put", " KEY VALUE", None)]
    #[test_case("put ", "KEY VALUE", None)]
    #[test_case("put k", " VALUE", None; "the remaining arguments as one is typed")]
    #[test_case("put k ", "VALUE", None)]
    #[test_case("wait h", "ealthy [TIMEOUT]", Some("ealthy"))]
    #[test_case("link n1 n2 ", "(drop PCT | delay DURATION)", None)]
    #[test_case("link n1 n2 dr", "op PCT", Some("op"))]
    #[test_case(
        "check --dur",
        "ation 10s [--clients 4] [--keys 20] [--faults kill,pause,partition,link|none] [--seed S]",
        Some("ation")
    )]
    #[test_case(
        "check --duration ",
        "10s [--clients 4] [--keys 20] [--faults kill,pause,partition,link|none] [--seed S]",
        None
    )]
    #[test_case(
        "check --duration 3s --clients 2 --keys 5 ",
        "[--faults kill,pause,partition,link|none] [--seed S]",
        None
    )]
    #[test_case(
        "bench put --ops 100 --clients 3 --pipeline 2 --batch 4 --pinned --value-size 8 --keys 9 ",
        "[--threads T] [--keep]",
        None
    )]
    #[test_case("get us", " ", None; "two keys fit: no completion")]
    #[test_case("get c", "art", Some("art"); "one key fits")]
    fn hints(line: &str, display: &str, completion: Option<&str>) {
        let expected = if display.trim().is_empty() {
            None
        } else {
            Some((display.to_string(), completion.map(String::from)))
        };
        assert_eq!(hinted(line), expected);
    }

    #[test]
    fn no_hint_when_nothing_is_left_or_the_cursor_is_inside() {
        assert_eq!(hinted("put k v "), None);
        assert_eq!(hinted("nodes "), None);
        assert_eq!(hinted(""), None);
        assert_eq!(hint("put k", 2, &known()), None);
    }
}
