//! Numbers and the words that go with them, in one format everywhere:
//! `39,162 keys`, `1 key`, `1 node`. Every count a person reads (the shell,
//! event notices, `check` and `bench` reports) goes through [`count`] or
//! [`group`], so `1 keys` and `39162 keys` cannot come back one call site
//! at a time.

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count and its noun, agreeing: `count(1, "key")` is `1 key`,
/// `count(39162, "key")` is `39,162 keys`. Nouns whose plural is not the
/// singular plus `s` are spelled out by [`plural`].
pub fn count(n: impl TryInto<u64>, noun: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{} {}", group(n), plural(n, noun))
}

/// The noun for `n` of it: `key`, `keys`; `replica`, `replicas`;
/// `primary`, `primaries`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    match noun {
        "primary" => "primaries".into(),
        "secondary" => "secondaries".into(),
        "copy" => "copies".into(),
        "is" => "are".into(),
        "was" => "were".into(),
        "has" => "have".into(),
        _ => format!("{noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(39162), "39,162");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn words_agree_with_numbers() {
        assert_eq!(count(1u64, "key"), "1 key");
        assert_eq!(count(0u64, "key"), "0 keys");
        assert_eq!(count(39162u64, "key"), "39,162 keys");
        assert_eq!(count(1usize, "node"), "1 node");
        assert_eq!(count(2usize, "primary"), "2 primaries");
        assert_eq!(count(1usize, "primary"), "1 primary");
    }
}
