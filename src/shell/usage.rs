//! The grammar of a usage line, read from the command table, so completion
//! and hints follow whatever `help` says a command takes.
//!
//! A usage line is written the way man pages write them:
//!
//! - `KEY`, `NODE`, `10s`: a value to type (a name in capitals, or an
//!   example that starts with a digit);
//! - `healthy`, `ring|hrw|modulo`: a word to type as written, or one of
//!   several; a choice with commas (`kill,pause,link`) is a list;
//! - `--name VALUE`, `--name [VALUE]`, `--name`: an option;
//! - `[...]` optional, `(...)` a group, `a | b` a choice between groups,
//!   `X ...` one or more (at the end of a group, `...` repeats the whole
//!   group: `[| NODES ...]` is any number of `| NODES`).
//!
//! One exception keeps `partition NODES [| NODES ...]` readable: a `|` with
//! nothing before it in its group is the word `|` itself.
//!
//! Options may come in any order (the shell's [`options`] parser takes them
//! anywhere), so a usage splits into its positional part, matched in order,
//! and its option groups, each used once.
//!
//! Matching typed words against the positional part takes derivatives: what
//! is left of the grammar after one more word. The leftovers are the hint,
//! and their first words are the completions.
//!
//! [`options`]: crate::shell::command::options

use std::fmt;

/// One element of a usage line.
#[derive(Clone, Debug, PartialEq)]
pub enum Usage {
    /// A word typed as written; one of these choices (`ring|hrw|modulo`).
    Literal(Vec<String>),
    /// A value: `KEY`, `NODE`, `10s`.
    Value(String),
    /// `--name`, with the value it takes, if any.
    Flag(String, Option<Box<Usage>>),
    /// Elements in order.
    Seq(Vec<Usage>),
    /// `[...]`.
    Optional(Box<Usage>),
    /// `a | b`.
    Choice(Vec<Usage>),
    /// `X ...`: one or more.
    Repeat(Box<Usage>),
}

impl Usage {
    /// Parses a usage line's arguments (`KEY [--limit N]`). Unbalanced
    /// brackets close at the end of the line: a usage is documentation, and
    /// a typo in it must not break the shell.
    pub fn parse(args: &str) -> Usage {
        let tokens = tokenize(args);
        parse_group(&tokens, &mut 0)
    }

    /// The flags in this element, in order.
    pub fn flags(&self) -> Vec<(&str, Option<&Usage>)> {
        let mut out = Vec::new();
        self.visit_flags(&mut out);
        out
    }

    fn visit_flags<'a>(&'a self, out: &mut Vec<(&'a str, Option<&'a Usage>)>) {
        match self {
            Usage::Flag(name, value) => out.push((name, value.as_deref())),
            Usage::Seq(items) | Usage::Choice(items) => {
                items.iter().for_each(|i| i.visit_flags(out))
            }
            Usage::Optional(x) | Usage::Repeat(x) => x.visit_flags(out),
            Usage::Literal(_) | Usage::Value(_) => {}
        }
    }

    /// True if the element can match no words at all.
    pub fn nullable(&self) -> bool {
        match self {
            Usage::Optional(_) => true,
            Usage::Seq(items) => items.iter().all(Usage::nullable),
            Usage::Choice(items) => items.iter().any(Usage::nullable),
            Usage::Repeat(x) => x.nullable(),
            Usage::Literal(_) | Usage::Value(_) | Usage::Flag(..) => false,
        }
    }
}

/// A command's usage split in two: the words in order, and the options.
#[derive(Clone, Debug, PartialEq)]
pub struct Grammar {
    /// The positional part, matched word by word.
    pub positional: Vec<Usage>,
    /// The top-level groups that hold options (`[--ops N | --duration D]`),
    /// each used at most once.
    pub options: Vec<Usage>,
}

impl Grammar {
    /// The grammar of a usage line's arguments.
    pub fn new(args: &str) -> Grammar {
        let items = match Usage::parse(args) {
            Usage::Seq(items) => items,
            other => vec![other],
        };
        let (options, positional) = items.into_iter().partition(|i| !i.flags().is_empty());
        Grammar {
            positional,
            options,
        }
    }

    /// The flag named `name` (without `--`), and its value.
    pub fn flag(&self, name: &str) -> Option<Option<&Usage>> {
        self.options
            .iter()
            .flat_map(Usage::flags)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Reads typed words: which option groups they used, and what is left
    /// of the positional part after them, as alternatives (none if the
    /// words do not fit). A flag's value is the word after it; an optional
    /// value (`--watch [INTERVAL]`) only if that word is not a flag.
    pub fn read(&self, words: &[String]) -> Reading {
        let mut used = vec![false; self.options.len()];
        let mut left = vec![self.positional.clone()];
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            if let Some(name) = w.strip_prefix("--") {
                if let Some(g) = self
                    .options
                    .iter()
                    .position(|g| g.flags().iter().any(|(n, _)| *n == name))
                {
                    used[g] = true;
                    let takes = match self.flag(name).flatten() {
                        Some(Usage::Optional(_)) => {
                            words.get(i + 1).is_some_and(|next| !next.starts_with("--"))
                        }
                        Some(_) => true,
                        None => false,
                    };
                    i += 1 + usize::from(takes);
                    continue;
                }
            }
            left = left.iter().flat_map(|seq| derive(seq, w)).collect();
            dedup(&mut left);
            i += 1;
        }
        Reading { used, left }
    }
}

/// What typed words made of a [`Grammar`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// For each option group, whether one of its flags was given.
    pub used: Vec<bool>,
    /// What may still follow, positionally: each a sequence to match in
    /// order. Empty if the words did not fit.
    pub left: Vec<Vec<Usage>>,
}

impl Reading {
    /// True if the positional part may end here.
    pub fn may_end(&self) -> bool {
        self.left.iter().any(|seq| seq.iter().all(Usage::nullable))
    }

    /// The words that may come next, positionally: literals and values.
    pub fn next(&self) -> Vec<&Usage> {
        let mut out = Vec::new();
        for seq in &self.left {
            first(seq, &mut out);
        }
        let mut seen = Vec::new();
        out.retain(|u| {
            let new = !seen.contains(u);
            seen.push(*u);
            new
        });
        out
    }
}

/// What is left of `seq` after the word `w`, as alternatives.
fn derive(seq: &[Usage], w: &str) -> Vec<Vec<Usage>> {
    let Some((head, rest)) = seq.split_first() else {
        return Vec::new();
    };
    let then = |x: &Usage| {
        let mut s = vec![x.clone()];
        s.extend_from_slice(rest);
        derive(&s, w)
    };
    match head {
        Usage::Literal(choices) if literal_matches(choices, w) => vec![rest.to_vec()],
        Usage::Value(_) if w.chars().any(char::is_alphanumeric) => vec![rest.to_vec()],
        Usage::Literal(_) | Usage::Value(_) | Usage::Flag(..) => Vec::new(),
        Usage::Seq(items) => {
            let mut s = items.clone();
            s.extend_from_slice(rest);
            derive(&s, w)
        }
        Usage::Optional(x) => {
            let mut out = then(x);
            out.extend(derive(rest, w));
            out
        }
        Usage::Choice(xs) => xs.iter().flat_map(then).collect(),
        Usage::Repeat(x) => {
            let mut s = vec![(**x).clone(), Usage::Optional(Box::new(head.clone()))];
            s.extend_from_slice(rest);
            derive(&s, w)
        }
    }
}

/// The literals and values that can start `seq`.
fn first<'a>(seq: &'a [Usage], out: &mut Vec<&'a Usage>) {
    let Some((head, rest)) = seq.split_first() else {
        return;
    };
    match head {
        Usage::Literal(_) | Usage::Value(_) => out.push(head),
        Usage::Flag(..) => {}
        Usage::Seq(items) => {
            first(items, out);
            if items.iter().all(Usage::nullable) {
                first(rest, out);
            }
        }
        Usage::Optional(x) => {
            first(std::slice::from_ref(x), out);
            first(rest, out);
        }
        Usage::Choice(xs) => {
            for x in xs {
                first(std::slice::from_ref(x), out);
            }
            if head.nullable() {
                first(rest, out);
            }
        }
        Usage::Repeat(x) => first(std::slice::from_ref(x), out),
    }
}

/// True if `w` is one of the choices; for a list choice (`a,b,c`), if every
/// item of `w` is in it.
pub fn literal_matches(choices: &[String], w: &str) -> bool {
    choices.iter().any(|c| {
        if c.contains(',') {
            let items: Vec<&str> = c.split(',').collect();
            !w.is_empty() && w.split(',').all(|x| items.contains(&x))
        } else {
            c.eq_ignore_ascii_case(w)
        }
    })
}

fn dedup(v: &mut Vec<Vec<Usage>>) {
    let mut seen: Vec<Vec<Usage>> = Vec::new();
    v.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(x.clone());
            true
        }
    });
}

/// Splits a usage line into words and the brackets `[`, `]`, `(`, `)`.
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '[' | ']' | '(' | ')' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses up to the closing bracket (or the end): choices of sequences.
fn parse_group(tokens: &[String], at: &mut usize) -> Usage {
    let mut choices: Vec<Vec<Usage>> = vec![Vec::new()];
    while let Some(t) = tokens.get(*at) {
        *at += 1;
        let current = choices.last_mut().expect("one choice at least");
        match t.as_str() {
            "]" | ")" => break,
            "[" => {
                let inner = parse_group(tokens, at);
                current.push(Usage::Optional(Box::new(inner)));
            }
            "(" => current.push(parse_group(tokens, at)),
            "|" if current.is_empty() => current.push(Usage::Literal(vec!["|".into()])),
            "|" => choices.push(Vec::new()),
            // At the end of a group, `...` repeats the whole group:
            // `[| NODES ...]` is any number of `| NODES`.
            "..." if matches!(tokens.get(*at).map(String::as_str), None | Some("]" | ")")) => {
                let all = attach_values(std::mem::take(current));
                current.push(Usage::Repeat(Box::new(seq(all))));
            }
            "..." => {
                if let Some(last) = current.pop() {
                    current.push(Usage::Repeat(Box::new(last)));
                }
            }
            word => current.push(parse_word(word)),
        }
    }
    let mut choices: Vec<Usage> = choices.into_iter().map(attach_values).map(seq).collect();
    if choices.len() == 1 {
        choices.pop().expect("one choice")
    } else {
        Usage::Choice(choices)
    }
}

/// A word: a flag, literals, or a value.
fn parse_word(word: &str) -> Usage {
    if let Some(name) = word.strip_prefix("--") {
        return Usage::Flag(name.to_string(), None);
    }
    let literal = |w: &str| {
        w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            || (!w.is_empty() && !w.chars().any(char::is_alphanumeric))
    };
    if word.split('|').all(literal) {
        Usage::Literal(word.split('|').map(String::from).collect())
    } else {
        Usage::Value(word.to_string())
    }
}

/// Gives each flag the value written after it (`--limit N`,
/// `--watch [INTERVAL]`).
fn attach_values(items: Vec<Usage>) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    for item in items {
        let is_value = match &item {
            Usage::Literal(_) | Usage::Value(_) => true,
            Usage::Optional(x) => matches!(**x, Usage::Literal(_) | Usage::Value(_)),
            _ => false,
        };
        if let (true, Some(Usage::Flag(_, value @ None))) = (is_value, out.last_mut()) {
            *value = Some(Box::new(item));
            continue;
        }
        out.push(item);
    }
    out
}

fn seq(mut items: Vec<Usage>) -> Usage {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Usage::Seq(items)
    }
}

impl fmt::Display for Usage {
    /// Writes the element back as a usage line would show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Usage::Literal(choices) => write!(f, "{}", choices.join("|")),
            Usage::Value(name) => write!(f, "{name}"),
            Usage::Flag(name, None) => write!(f, "--{name}"),
            Usage::Flag(name, Some(v)) => write!(f, "--{name} {v}"),
            Usage::Seq(items) => write!(f, "{}", join(items, " ")),
            Usage::Optional(x) => match &**x {
                Usage::Choice(xs) => write!(f, "[{}]", join(xs, " | ")),
                x => write!(f, "[{x}]"),
            },
            Usage::Choice(xs) => write!(f, "({})", join(xs, " | ")),
            Usage::Repeat(x) => write!(f, "{x} ..."),
        }
    }
}

/// Writes elements with a separator.
pub fn join(items: &[Usage], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::command::COMMANDS;
    use test_case::test_case;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// What a hint would show after these words: the positional leftovers,
    /// then the unused option groups.
    fn left(args: &str, typed: &str) -> String {
        let g = Grammar::new(args);
        let r = g.read(&words(typed));
        let mut parts = Vec::new();
        if let Some(seq) = r.left.first() {
            parts.push(join(seq, " "));
        } else {
            parts.push("(no fit)".to_string());
        }
        for (o, used) in g.options.iter().zip(&r.used) {
            if !used {
                parts.push(o.to_string());
            }
        }
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    #[test]
    fn every_usage_reads_back_as_written() {
        for c in COMMANDS {
            assert_eq!(Usage::parse(c.args).to_string(), c.args, "{}", c.name);
        }
    }

    #[test_case("KEY VALUE", "", "KEY VALUE")]
    #[test_case("KEY VALUE", "k", "VALUE")]
    #[test_case("KEY VALUE", "k v", "")]
    #[test_case("KEY VALUE", "k v w", "(no fit)")]
    #[test_case("healthy [TIMEOUT]", "healthy", "[TIMEOUT]")]
    #[test_case("healthy [TIMEOUT]", "sick", "(no fit)")]
    #[test_case("[PREFIX] [--limit N]", "--limit 5", "[PREFIX]")]
    #[test_case("[PREFIX] [--limit N]", "user:", "[--limit N]")]
    #[test_case(
        "A [->] B (drop PCT | delay DURATION)",
        "n1",
        "[->] B (drop PCT | delay DURATION)"
    )]
    #[test_case(
        "A [->] B (drop PCT | delay DURATION)",
        "n1 n2",
        "(drop PCT | delay DURATION)"
    )]
    #[test_case("A [->] B (drop PCT | delay DURATION)", "n1 -> n2 delay", "DURATION")]
    #[test_case("A [->] B (drop PCT | delay DURATION)", "n1 n2 drop 5%", "")]
    #[test_case("NODES [| NODES ...]", "n1,n2 | n3", "[| NODES ...]")]
    #[test_case("NODES [| NODES ...]", "n1 | n2 | n3", "[| NODES ...]")]
    #[test_case(
        "put|get|mixed [--ops N | --duration D] [--clients C]",
        "get --clients 3",
        "[--ops N | --duration D]"
    )]
    #[test_case(
        "put|get|mixed [--ops N | --duration D] [--clients C]",
        "--duration 2s put",
        "[--clients C]"
    )]
    #[test_case(
        "[--by-node] [--watch [INTERVAL]] [--limit N]",
        "--watch 2s --by-node",
        "[--limit N]"
    )]
    #[test_case("[--watch [INTERVAL]] [--limit N]", "--watch --limit 3", "")]
    fn leftovers(args: &str, typed: &str, expected: &str) {
        assert_eq!(left(args, typed), expected);
    }

    #[test]
    fn flags_know_their_values() {
        let g = Grammar::new(lookup_args("check"));
        assert_eq!(
            g.flag("faults").flatten(),
            Some(&Usage::Literal(vec![
                "kill,pause,partition,link".into(),
                "none".into()
            ]))
        );
        assert_eq!(g.flag("seed").flatten(), Some(&Usage::Value("S".into())));
        assert_eq!(g.flag("nosuch"), None);
        let t = Grammar::new(lookup_args("table"));
        assert_eq!(t.flag("by-node"), Some(None));
        assert!(matches!(
            t.flag("watch").flatten(),
            Some(Usage::Optional(_))
        ));
    }

    #[test]
    fn lists_match_any_subset_of_their_items() {
        let c = vec!["kill,pause,link".to_string(), "none".to_string()];
        assert!(literal_matches(&c, "kill"));
        assert!(literal_matches(&c, "link,kill"));
        assert!(literal_matches(&c, "none"));
        assert!(!literal_matches(&c, "kill,none"));
        assert!(!literal_matches(&c, "fire"));
    }

    #[test]
    fn next_words_come_from_every_alternative() {
        let g = Grammar::new("A [->] B (drop PCT | delay DURATION)");
        let r = g.read(&words("n1"));
        let next: Vec<String> = r.next().iter().map(|u| u.to_string()).collect();
        assert_eq!(next, ["->", "B"]);
        let r = g.read(&words("n1 n2"));
        let next: Vec<String> = r.next().iter().map(|u| u.to_string()).collect();
        assert_eq!(next, ["drop", "delay"]);
        assert!(!r.may_end());
        assert!(g.read(&words("n1 n2 drop 1")).may_end());
    }

    fn lookup_args(name: &str) -> &'static str {
        crate::shell::command::lookup(name).unwrap().args
    }
}
