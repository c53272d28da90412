//! Key-value pairs packed into one shared buffer: the pairs of a resync
//! chunk ([`crate::node::message::StreamEntry::Chunk`]).
//!
//! A chunk of 2,000 pairs held as `(String, String)`s was 4,000 heap blocks
//! on the primary (cut from the store), 4,000 more on the secondary (decoded
//! from the frame), and as many frees on each side; glibc's allocator was
//! about three quarters of a rebalance's CPU (docs/performance.md,
//! "Rebalance"). Packed, a chunk is one buffer the primary writes the
//! store's pairs into, sends as one byte string, and keeps (shared, not
//! copied) until it is acknowledged; the secondary decodes it as one buffer
//! and copies each pair straight into its store.
//!
//! The buffer is one UTF-8 string: for each pair in order, the key's
//! length, the key, the value's length, the value. A length is written in
//! ASCII bytes (6 bits to a byte, `0x40` set on every byte but the last),
//! so every key and value starts and ends on a character boundary of the
//! whole, and the wire form is a plain string that the decoder checks as
//! UTF-8 in one pass. A buffer that comes off the wire is also walked once
//! when it is decoded, every length checked to stay inside it, so a
//! malformed one is a decode error and never reaches the store; reading
//! pairs afterwards needs no further check.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Key-value pairs packed into one buffer, cheap to clone (shared).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    buf: Arc<String>,
    len: usize,
}

impl Pairs {
    /// Pairs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed size in bytes.
    pub fn packed_len(&self) -> usize {
        self.buf.len()
    }

    /// The pairs, in the order they were pushed.
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.buf }
    }

    /// Checks a packed buffer and counts its pairs.
    fn check(buf: String) -> Result<Pairs, &'static str> {
        let mut rest = &buf[..];
        let mut len = 0;
        while !rest.is_empty() {
            for _ in 0..2 {
                rest = take_str(rest).ok_or("malformed packed pairs")?.1;
            }
            len += 1;
        }
        Ok(Pairs {
            buf: Arc::new(buf),
            len,
        })
    }
}

impl std::fmt::Debug for Pairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pairs({} pairs, {} bytes)", self.len, self.buf.len())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Pairs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut b = PairsBuilder::default();
        for (k, v) in iter {
            b.push(k.as_ref(), v.as_ref());
        }
        b.finish()
    }
}

/// Builds [`Pairs`] one pair at a time.
#[derive(Debug, Default)]
pub struct PairsBuilder {
    buf: String,
    len: usize,
}

impl PairsBuilder {
    /// An empty builder with room for `bytes` of packed pairs.
    pub fn with_capacity(bytes: usize) -> Self {
        PairsBuilder {
            buf: String::with_capacity(bytes),
            len: 0,
        }
    }

    /// Appends a pair.
    pub fn push(&mut self, key: &str, value: &str) {
        for s in [key, value] {
            put_len(&mut self.buf, s.len());
            self.buf.push_str(s);
        }
        self.len += 1;
    }

    /// The pairs.
    pub fn finish(self) -> Pairs {
        Pairs {
            buf: Arc::new(self.buf),
            len: self.len,
        }
    }
}

/// The pairs of a [`Pairs`], as string slices into its buffer.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The buffer was built by `push` or passed `Pairs::check`, so
        // neither step fails; if one did, the iteration would end rather
        // than panic.
        let (k, rest) = take_str(self.rest)?;
        let (v, rest) = take_str(rest)?;
        self.rest = rest;
        Some((k, v))
    }
}

/// Appends `n` in ASCII bytes: 6 bits each, low bits first, `0x40` on
/// every byte but the last.
pub(crate) fn put_len(buf: &mut String, mut n: usize) {
    while n >= 0x40 {
        buf.push(char::from((n & 0x3f) as u8 | 0x40));
        n >>= 6;
    }
    buf.push(char::from(n as u8));
}

/// A length-prefixed string off the front of `buf`, and what follows:
/// `None` if the length is malformed, runs past the end, or does not end
/// on a character boundary.
pub(crate) fn take_str(buf: &str) -> Option<(&str, &str)> {
    let mut n: usize = 0;
    // At most 6 bytes: lengths up to 2^36, beyond any frame.
    for (i, &b) in buf.as_bytes().iter().enumerate().take(6) {
        if b >= 0x80 {
            return None;
        }
        n |= ((b & 0x3f) as usize) << (6 * i);
        if b & 0x40 == 0 {
            let end = (i + 1).checked_add(n)?;
            return Some((buf.get(i + 1..end)?, buf.get(end..)?));
        }
    }
    None
}

impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.buf)
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("packed key-value pairs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pairs, E> {
                Pairs::check(v.to_owned()).map_err(E::custom)
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Pairs, E> {
                Pairs::check(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever pairs go in come out, in order, through the wire form.
        #[test]
        fn pairs_round_trip(pairs in proptest::collection::vec((".{0,40}", ".{0,300}"), 0..50)) {
            let packed: Pairs = pairs.iter().map(|(k, v)| (k, v)).collect();
            prop_assert_eq!(packed.len(), pairs.len());
            let wire = postcard::to_stdvec(&packed).unwrap();
            let back: Pairs = postcard::from_bytes(&wire).unwrap();
            prop_assert_eq!(&back, &packed);
            let out: Vec<(String, String)> =
                back.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            prop_assert_eq!(out, pairs);
        }

        /// No string decodes into pairs that cannot be read back whole: it
        /// is either an error or pairs whose every byte is accounted for.
        #[test]
        fn any_string_decodes_to_an_error_or_whole_pairs(
            text in prop_oneof![".{0,200}", "[\\x00-\\x05\\x3f-\\x42aé]{0,40}"],
        ) {
            let wire = postcard::to_stdvec(&text).unwrap();
            if let Ok(p) = postcard::from_bytes::<Pairs>(&wire) {
                prop_assert_eq!(p.iter().count(), p.len());
                let size: usize = p.iter().map(|(k, v)| k.len() + v.len()).sum();
                prop_assert_eq!(size + 2 * p.len() <= text.len(), true);
            }
        }
    }

    #[test]
    fn malformed_buffers_are_errors() {
        for bad in [
            "\x05a",                    // a key longer than the buffer
            "\x01a",                    // a key with no value
            "\x01é\x00",                // a key that ends inside a character
            "\x40\x40\x40\x40\x40\x40", // a length that never ends
        ] {
            let wire = postcard::to_stdvec(bad).unwrap();
            assert!(postcard::from_bytes::<Pairs>(&wire).is_err(), "{bad:?}");
        }
        let long = "v".repeat(5000);
        let good: Pairs = [("k", long.as_str()), ("", "")].into_iter().collect();
        let wire = postcard::to_stdvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<Pairs>(&wire).unwrap(), good);
    }
}
