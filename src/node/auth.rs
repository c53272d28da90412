//! Authentication of peer messages between processes: a keyed MAC over
//! every message, with replay protection.
//!
//! In one process peers talk over `inproc://`, which nothing outside can
//! reach, and this is not used. Across processes the peer port is TCP, and
//! anyone who can reach it could send envelopes; ZeroMQ's CURVE would need
//! libzmq built with libsodium, which the `zmq` crate's bundled build is
//! not. So every message on a TCP peer port carries, after the
//! [`crate::node::transport::INTERNAL_MARKER`], a 16-byte header (the
//! sender's session and a sequence number) and ends with a 32-byte BLAKE3
//! keyed hash, keyed by a key derived from the cluster secret. The hash
//! covers both routing identities and sessions (sender's and receiver's),
//! the sequence number and every envelope frame, length-prefixed, so a
//! message cannot be forged, altered, redirected to another peer, or
//! replayed to a later life of its receiver.
//!
//! A session is what names one life of a component: a node's incarnation,
//! or the view leader's election number. Sequence numbers grow within a
//! session; the receiver keeps the highest (session, sequence) it accepted
//! from each sender and refuses anything not above it, so a recorded
//! message cannot be played again, and a message from an earlier life of
//! the sender is refused once a later one has spoken.

use crate::node::message::Address;
use std::collections::HashMap;

/// Bytes of the header frame: session, then sequence, little-endian.
pub const HEADER_LEN: usize = 16;
/// Bytes of the MAC frame.
pub const MAC_LEN: usize = 32;

/// The MAC key derived from a cluster secret (any bytes, at least 16).
///
/// The context names the peer protocol's version, which changes whenever
/// peer messages or their meaning change: v2 when resync chunks and
/// digests began to name ranges in the store's hash order
/// ([`crate::node::store::Place`]) rather than key order. Processes of two
/// versions derive different keys (and handshake keys), so they cannot
/// connect: a cluster of mixed builds is refused at the handshake rather
/// than left to apply ranges the other way round.
pub fn derive_key(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key("kvsh 2026 peer envelope mac v2", secret)
}

/// One component's signing and checking state.
#[derive(Debug)]
pub struct PeerAuth {
    key: [u8; 32],
    /// This component's session (its incarnation, or the leader's
    /// election number).
    session: u64,
    seq: u64,
    /// The highest (session, sequence) accepted from each sender.
    seen: HashMap<Address, (u64, u64)>,
}

/// Why a message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too few frames, or a header of the wrong size.
    Malformed,
    /// The MAC does not match: not from a holder of the key, or altered,
    /// or meant for another peer or another life of this one.
    BadMac,
    /// A node's session disagrees with the incarnation its identity names.
    WrongSession,
    /// Not newer than a message already accepted from this sender.
    Replayed,
}

impl PeerAuth {
    /// Signing and checking with `key` as the component whose life is
    /// `session`.
    pub fn new(key: [u8; 32], session: u64) -> Self {
        PeerAuth {
            key,
            session,
            seq: 0,
            seen: HashMap::new(),
        }
    }

    /// The MAC key (the handshake's key is derived from it).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// This side's session.
    pub fn session(&self) -> u64 {
        self.session
    }

    fn mac(
        &self,
        (from_rid, from_session): (&[u8], u64),
        (to_rid, to_session): (&[u8], u64),
        seq: u64,
        frames: &[Vec<u8>],
    ) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for part in [from_rid, to_rid] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(&from_session.to_le_bytes());
        h.update(&to_session.to_le_bytes());
        h.update(&seq.to_le_bytes());
        h.update(&(frames.len() as u64).to_le_bytes());
        for f in frames {
            h.update(&(f.len() as u64).to_le_bytes());
            h.update(f);
        }
        *h.finalize().as_bytes()
    }

    /// Seals the envelope frames of one message from `me` (routing
    /// identity) to the peer `to` (its identity and session): returns the
    /// header to put before them and the MAC to put after them.
    pub fn seal(
        &mut self,
        me: &[u8],
        to: (&[u8], u64),
        frames: &[Vec<u8>],
    ) -> ([u8; HEADER_LEN], [u8; MAC_LEN]) {
        self.seq += 1;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&self.session.to_le_bytes());
        header[8..].copy_from_slice(&self.seq.to_le_bytes());
        let mac = self.mac((me, self.session), to, self.seq, frames);
        (header, mac)
    }

    /// Checks one message received by `me` from the sender `from`, named by
    /// its routing identity `from_rid` (with the incarnation it names, for
    /// a node): `frames` are the header, the envelopes and the MAC. Returns
    /// the envelopes if it is authentic and new.
    pub fn open(
        &mut self,
        me: &[u8],
        (from, from_rid, rid_incarnation): (Address, &[u8], u64),
        mut frames: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, Refusal> {
        if frames.len() < 3 || frames[0].len() != HEADER_LEN {
            return Err(Refusal::Malformed);
        }
        let mac = frames.pop().ok_or(Refusal::Malformed)?;
        let header = frames.remove(0);
        let session = u64::from_le_bytes(header[..8].try_into().expect("16 bytes"));
        let seq = u64::from_le_bytes(header[8..].try_into().expect("16 bytes"));
        let expected = self.mac((from_rid, session), (me, self.session), seq, &frames);
        let got: [u8; MAC_LEN] = mac.try_into().map_err(|_| Refusal::BadMac)?;
        // blake3's Hash compares in constant time.
        if blake3::Hash::from(expected) != blake3::Hash::from(got) {
            return Err(Refusal::BadMac);
        }
        if matches!(from, Address::Node(_)) && session != rid_incarnation {
            return Err(Refusal::WrongSession);
        }
        if self
            .seen
            .get(&from)
            .is_some_and(|last| (session, seq) <= *last)
        {
            return Err(Refusal::Replayed);
        }
        self.seen.insert(from, (session, seq));
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PeerAuth, PeerAuth) {
        let key = derive_key(b"a cluster secret of some length");
        (PeerAuth::new(key, 7), PeerAuth::new(key, 3))
    }

    fn message(a: &mut PeerAuth, body: &[u8]) -> Vec<Vec<u8>> {
        let frames = vec![body.to_vec()];
        let (h, m) = a.seal(b"n1.7", (b"n2.3", 3), &frames);
        vec![h.to_vec(), body.to_vec(), m.to_vec()]
    }

    #[test]
    fn a_sealed_message_opens_once() {
        let (mut a, mut b) = pair();
        let msg = message(&mut a, b"hello");
        let from = (Address::Node(1), &b"n1.7"[..], 7);
        assert_eq!(
            b.open(b"n2.3", from, msg.clone()),
            Ok(vec![b"hello".to_vec()])
        );
        assert_eq!(b.open(b"n2.3", from, msg), Err(Refusal::Replayed));
        let next = message(&mut a, b"again");
        assert!(b.open(b"n2.3", from, next).is_ok());
    }

    #[test]
    fn forgeries_are_refused() {
        let (mut a, mut b) = pair();
        let from = (Address::Node(1), &b"n1.7"[..], 7);
        // Altered body.
        let mut msg = message(&mut a, b"hello");
        msg[1] = b"HELLO".to_vec();
        assert_eq!(b.open(b"n2.3", from, msg), Err(Refusal::BadMac));
        // Meant for another life of the receiver.
        let msg = message(&mut a, b"hello");
        let mut later = PeerAuth::new(derive_key(b"a cluster secret of some length"), 4);
        assert_eq!(later.open(b"n2.4", from, msg.clone()), Err(Refusal::BadMac));
        // Claimed by another sender.
        let other = (Address::Node(5), &b"n5.7"[..], 7);
        assert_eq!(b.open(b"n2.3", other, msg), Err(Refusal::BadMac));
        // Wrong key.
        let mut stranger = PeerAuth::new(derive_key(b"another secret entirely"), 7);
        let msg = message(&mut stranger, b"hello");
        assert_eq!(b.open(b"n2.3", from, msg), Err(Refusal::BadMac));
        // No MAC at all, or a short header.
        assert_eq!(
            b.open(b"n2.3", from, vec![vec![0; 16], b"x".to_vec()]),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            b.open(b"n2.3", from, vec![vec![0; 3], b"x".to_vec(), vec![0; 32]]),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn an_earlier_life_of_the_sender_is_refused_after_a_later_one() {
        let key = derive_key(b"a cluster secret of some length");
        let mut old = PeerAuth::new(key, 1);
        let mut new = PeerAuth::new(key, 2);
        let mut me = PeerAuth::new(key, 9);
        let seal = |a: &mut PeerAuth| {
            let f = vec![b"v".to_vec()];
            let (h, m) = a.seal(b"L", (b"n2.9", 9), &f);
            vec![h.to_vec(), f[0].clone(), m.to_vec()]
        };
        let old_msg = seal(&mut old);
        let new_msg = seal(&mut new);
        let from = (Address::Leader, &b"L"[..], 0);
        assert!(me.open(b"n2.9", from, new_msg).is_ok());
        assert_eq!(me.open(b"n2.9", from, old_msg), Err(Refusal::Replayed));
    }
}
