//! The byte arena a partition's records live in ([`super::partition`]).
//!
//! A record is laid out as a chunk's pair is ([`crate::node::pairs`]): the
//! key's length (ASCII, 6 bits a byte), the key, the value's length, the
//! value. Segments are `String`s, so a record is read with two boundary
//! checks and no UTF-8 validation. Records are appended to fixed-size segments of [`SEGMENT`] bytes
//! (the first few smaller, for small partitions), never to one growing
//! buffer: a buffer grown by `realloc` left every outgrown copy behind as a
//! hole in the heap, and a million keys over 1,024 partitions took 219
//! bytes a pair of RSS where the records and index needed 145
//! (`examples/store_layout.rs`). Segments of one size reuse each other's
//! space. A record's offset is its segment's number and its place in it,
//! in a `u32`.

use crate::node::pairs::{put_len, take_str};

/// The size of a full segment.
pub const SEGMENT: usize = 1 << SEGMENT_BITS;
const SEGMENT_BITS: u32 = 13;

/// The largest record kept in the arena; a bigger pair goes to the
/// partition's side map, where its value is a block of its own.
pub const MAX_RECORD: usize = SEGMENT / 2;

/// Segments an arena may have: offsets are `u32`s, and `u32::MAX` is not
/// one (4 GiB less a segment).
const MAX_SEGMENTS: usize = if cfg!(test) {
    8
} else {
    (1 << (32 - SEGMENT_BITS)) - 1
};

/// Records in segments.
#[derive(Debug, Default)]
pub struct Arena {
    segments: Vec<String>,
    /// Bytes of records, live or dead.
    used: usize,
    /// Bytes of dead records.
    dead: usize,
}

impl Arena {
    /// Appends a record, returning its offset, or `None` if it is larger
    /// than [`MAX_RECORD`] or the arena is full.
    pub fn append(&mut self, key: &str, value: &str) -> Option<u32> {
        let size = len_bytes(key.len()) + len_bytes(value.len()) + key.len() + value.len();
        if size > MAX_RECORD {
            return None;
        }
        let fits = self
            .segments
            .last()
            .is_some_and(|s| s.capacity() - s.len() >= size);
        if !fits {
            if self.segments.len() >= MAX_SEGMENTS {
                return None;
            }
            // A small partition's first segments double from 512 bytes.
            let capacity = (self.used.next_power_of_two()).clamp(512, SEGMENT);
            self.segments
                .push(String::with_capacity(capacity.max(size)));
        }
        let n = self.segments.len() - 1;
        let segment = &mut self.segments[n];
        let off = ((n as u32) << SEGMENT_BITS) | segment.len() as u32;
        put_len(segment, key.len());
        segment.push_str(key);
        put_len(segment, value.len());
        segment.push_str(value);
        self.used += size;
        Some(off)
    }

    /// The key, the value and the size of the record at `off` (empty
    /// strings for an offset that names no record, which would be a bug).
    pub fn record(&self, off: u32) -> (&str, &str, usize) {
        let segment = self
            .segments
            .get((off >> SEGMENT_BITS) as usize)
            .map_or("", String::as_str);
        let start = (off as usize) & (SEGMENT - 1);
        let read = || {
            let at = segment.get(start..)?;
            let (key, rest) = take_str(at)?;
            let (value, rest) = take_str(rest)?;
            Some((key, value, at.len() - rest.len()))
        };
        let record = read();
        debug_assert!(record.is_some(), "no record at {off}");
        record.unwrap_or_default()
    }

    /// Writes `value` over the value of the record at `off`, whose size is
    /// `size`; the two values have the same length.
    pub fn overwrite(&mut self, off: u32, size: usize, value: &str) {
        let Some(segment) = self.segments.get_mut((off >> SEGMENT_BITS) as usize) else {
            return;
        };
        let end = ((off as usize) & (SEGMENT - 1)) + size;
        let start = end - value.len();
        if segment.is_char_boundary(start) && segment.is_char_boundary(end) {
            segment.replace_range(start..end, value);
        }
    }

    /// Marks a record of `size` bytes dead.
    pub fn kill(&mut self, size: usize) {
        self.dead += size;
    }

    /// True once a quarter of the arena (and at least a segment) is dead.
    pub fn wants_compaction(&self) -> bool {
        self.dead >= SEGMENT && self.dead * 4 >= self.used
    }

    /// Bytes held by the arena's segments (live, dead and spare).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.segments.iter().map(String::capacity).sum()
    }

    /// Bytes of dead records.
    #[cfg(test)]
    pub fn dead(&self) -> usize {
        self.dead
    }

    /// Bytes of records, live or dead.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }
}

/// The bytes [`put_len`] writes for `n`.
fn len_bytes(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x40 {
        n >>= 6;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bytes_match_what_is_written() {
        for n in [0, 1, 63, 64, 300, 4095, 4096, 1 << 20, u32::MAX as usize] {
            let mut b = String::new();
            put_len(&mut b, n);
            assert_eq!(b.len(), len_bytes(n));
        }
    }

    #[test]
    fn records_fill_segments_and_big_ones_stay_out() {
        let mut a = Arena::default();
        let offs: Vec<u32> = (0..100)
            .map(|i| a.append(&format!("k{i}"), &"v".repeat(i)).unwrap())
            .collect();
        for (i, off) in offs.iter().enumerate() {
            let (k, v, _) = a.record(*off);
            assert_eq!((k, v.len()), (format!("k{i}").as_str(), i));
        }
        assert!(a.append("big", &"x".repeat(MAX_RECORD)).is_none());
        assert!(a.capacity() < a.used() + SEGMENT, "one partial segment");
    }

    #[test]
    fn a_full_arena_refuses() {
        let mut a = Arena::default();
        let v = "x".repeat(MAX_RECORD - 8);
        let stored = (0..1000)
            .take_while(|_| a.append("k", &v).is_some())
            .count();
        assert!(
            (MAX_SEGMENTS..=2 * MAX_SEGMENTS).contains(&stored),
            "{stored}"
        );
    }
}
