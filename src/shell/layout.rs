//! Fitting text to the terminal: its size, and wrapping at word
//! boundaries, so that an endpoint, a hash range or a number is never cut
//! in two by the terminal's own wrapping.

/// The terminal's width in columns; 80 when stdout is not a terminal.
pub fn width() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(80, |(_, cols)| cols as usize)
        .max(20)
}

/// The terminal's height in rows; 24 when stdout is not a terminal.
pub fn height() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(24, |(rows, _)| rows as usize)
        .max(5)
}

/// The visible width of `s`: its characters, ANSI escapes left out.
pub fn visible(s: &str) -> usize {
    console::measure_text_width(s)
}

/// Wraps `text` to `width` columns at spaces; lines after the first start
/// with `indent` spaces. A word longer than a line stays whole on a line
/// of its own (the terminal wraps it, but nothing else is cut).
pub fn wrap(text: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    for (n, para) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            let w = visible(word);
            if col > indent && col + 1 + w > width {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
            } else if col > 0 && !(col == indent && out.ends_with(' ')) {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += w;
        }
    }
    out
}

/// Every line of `text` longer than `width` wrapped at spaces, indented
/// by 2 after its first line; lines that fit are left alone.
pub fn fit(text: &str, width: usize) -> String {
    text.lines()
        .map(|l| {
            if visible(l) > width {
                wrap(l, width, 2)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `prefix` then `text` wrapped to `width` columns, continuation lines
/// indented to line up under the text's first word (a hanging indent).
pub fn hang(prefix: &str, text: &str, width: usize) -> String {
    let indent = visible(prefix);
    let room = width.saturating_sub(indent).max(10);
    let body = wrap(text, room, 0);
    let pad = " ".repeat(indent);
    let mut out = String::from(prefix);
    for (i, line) in body.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_never_cuts_a_word() {
        let text = "n3 declared dead: silent for 601 ms at tcp://127.0.0.1:45191 range 5300000000000000-533fffffffffffff";
        let wrapped = wrap(text, 40, 4);
        for line in wrapped.lines() {
            assert!(
                visible(line) <= 40 || !line.trim().contains(' '),
                "{line:?}"
            );
        }
        let words: Vec<&str> = wrapped.split_whitespace().collect();
        assert_eq!(words, text.split(' ').collect::<Vec<_>>());
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("    ")));
    }

    #[test]
    fn a_hanging_indent_lines_up() {
        let out = hang(
            "  put KEY VALUE  ",
            "write a value, replicated to every replica",
            40,
        );
        assert_eq!(
            out,
            "  put KEY VALUE  write a value,\n                 replicated to every\n                 replica"
        );
    }

    #[test]
    fn short_text_is_left_alone() {
        assert_eq!(wrap("put KEY VALUE", 80, 2), "put KEY VALUE");
    }
}
