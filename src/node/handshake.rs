//! The handshake on a TCP peer port: no connection gets a routing identity
//! before it has shown it holds the cluster secret.
//!
//! **The hole it closes.** A ROUTER names each connection by the routing
//! identity the connecting side presents (`n2.5`), before any message is
//! read; and a port that does not hand names over (`ROUTER_HANDOVER` off,
//! as authenticated ports are) ignores a second connection presenting a
//! name in use. The MAC on every message (`auth.rs`) stops a stranger
//! from *speaking* as a member, but not from connecting first as `n2.5`,
//! or as `n2.6` before node 2's next life does: the real member's
//! connection is then ignored and the receiver's messages to it go to the
//! stranger, a denial of service that costs one connection per name.
//!
//! **Why not CURVE.** ZeroMQ's CURVE would authenticate both ends and
//! encrypt, but it needs libzmq built with libsodium, and the `zmq`
//! crate's bundled build (`zeromq-src`, no libsodium) has none:
//! `zmq::has("curve")` is false here (test below). Building libzmq
//! against libsodium means patching `zmq-sys` and shipping or requiring
//! libsodium; the handshake below needs neither.
//!
//! **How.** ZeroMQ's PLAIN mechanism with a ZAP handler ([`Gate`]), which
//! libzmq consults during the handshake, before it attaches the
//! connection to the socket, so a refused connection never holds a name:
//!
//! - a peer port is a PLAIN server with the ZAP domain naming its owner
//!   and session ([`domain`]: `n3.7`, or `L.12` for the leader of
//!   election 12); it binds before it connects anywhere, so the listener
//!   keeps the server role (libzmq copies socket options into each
//!   endpoint when it is bound or connected);
//! - before each `connect`, the connecting side sets the PLAIN user to its
//!   own routing identity and the password to [`password`]: a BLAKE3
//!   keyed hash of (user, the receiver's domain) under a key derived from
//!   the peer MAC key;
//! - the gate accepts a connection only if the password is that hash, and
//!   gives the user back as the connection's `User-Id`, which ZeroMQ
//!   attaches to every message read from it; the receiver drops any
//!   message whose `User-Id` is not the routing identity of its pipe
//!   ([`super::transport::Outbox::recv`]), so a holder of one name's
//!   password cannot present another name.
//!
//! A password is bound to one life of the receiver (its domain), so a
//! recorded one is useless once the receiver restarts or a new leader is
//! elected. PLAIN does not hide it: a stranger who records a handshake on
//! the wire can replay it to claim that one name at that one receiver
//! while the real member is disconnected. Messages stay MACed and
//! replay-protected (`auth.rs`), so it can only withhold that member's
//! traffic, as anyone on the path can by dropping packets. Nothing is
//! encrypted; CURVE would be the step for a network that is not trusted.

use crate::error::Result;
use crate::node::message::Address;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where libzmq looks for the ZAP handler of a context.
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// How often the gate checks whether to stop, ms.
const STOP_POLL_MS: i64 = 100;

/// The handshake key, derived from the peer MAC key (itself derived from
/// the cluster secret) under a context of its own.
pub fn handshake_key(mac_key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("kvsh 2026 peer handshake v1", mac_key)
}

/// The ZAP domain of a peer port: its owner's routing identity and
/// session, so a password opens one life of one port.
pub fn domain(owner: Address, session: u64) -> String {
    match owner {
        Address::Leader => format!("L.{session}"),
        Address::Node(n) => format!("n{n}.{session}"),
    }
}

fn mac(key: &[u8; 32], user: &[u8], domain: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    for part in [user, domain] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()
}

/// The PLAIN password of `user` (the connecting side's routing identity)
/// for the port of `domain`: 64 hex digits.
pub fn password(key: &[u8; 32], user: &[u8], domain: &str) -> String {
    mac(key, user, domain.as_bytes()).to_hex().to_string()
}

/// The gate's verdict on one ZAP request's frames: the user to name the
/// connection by, or why not.
pub fn check(key: &[u8; 32], request: &[Vec<u8>]) -> std::result::Result<Vec<u8>, &'static str> {
    // version, request id, domain, address, identity, mechanism, user, password
    if request.len() != 8 || request[0] != b"1.0" {
        return Err("not a ZAP 1.0 request with PLAIN credentials");
    }
    if request[5] != b"PLAIN" {
        return Err("not PLAIN");
    }
    let (domain, user, pass) = (&request[2], &request[6], &request[7]);
    let got = std::str::from_utf8(pass)
        .ok()
        .and_then(|p| blake3::Hash::from_hex(p).ok())
        .ok_or("a password that is not 64 hex digits")?;
    // blake3::Hash compares in constant time.
    if got != mac(key, user, domain) || user.is_empty() {
        return Err("a wrong password");
    }
    Ok(user.clone())
}

/// The ZAP handler of one ZeroMQ context: a thread answering libzmq's
/// handshake requests. Dropping it stops the thread, which must happen
/// before the context is dropped (the context waits for its sockets).
#[derive(Debug)]
pub struct Gate {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Gate {
    /// Starts the gate of `ctx`, checking passwords under `key` (from
    /// [`handshake_key`]). Until a gate runs, PLAIN handshakes fail: a
    /// port is closed, never open, without it.
    pub fn start(ctx: &zmq::Context, key: [u8; 32]) -> Result<Gate> {
        let socket = ctx.socket(zmq::REP)?;
        socket.set_linger(0)?;
        socket.bind(ZAP_ENDPOINT)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kvsh-gate".into())
            .spawn(move || serve(&socket, &key, &flag))?;
        Ok(Gate {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &zmq::Socket, key: &[u8; 32], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, STOP_POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok(request) = socket.recv_multipart(zmq::DONTWAIT) else {
            continue;
        };
        let id = request.get(1).cloned().unwrap_or_default();
        let (code, text, user) = match check(key, &request) {
            Ok(user) => ("200", "OK", user),
            Err(why) => {
                tracing::debug!("peer handshake refused: {why}");
                ("400", why, Vec::new())
            }
        };
        let reply: [&[u8]; 6] = [b"1.0", &id, code.as_bytes(), text.as_bytes(), &user, b""];
        if socket.send_multipart(reply, 0).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn request(domain: &str, user: &str, pass: &str) -> Vec<Vec<u8>> {
        ["1.0", "1", domain, "127.0.0.1", "", "PLAIN", user, pass]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn the_bundled_libzmq_has_no_curve() {
        // The reason for this module; if this fails, CURVE is available
        // and may replace it.
        assert_eq!(zmq::has("curve"), Some(false));
    }

    #[test]
    fn a_password_opens_one_name_at_one_life_of_one_port() {
        let pass = password(&KEY, b"n2.5", "n3.7");
        assert_eq!(
            check(&KEY, &request("n3.7", "n2.5", &pass)),
            Ok(b"n2.5".to_vec())
        );
        assert!(check(&KEY, &request("n3.8", "n2.5", &pass)).is_err());
        assert!(check(&KEY, &request("n3.7", "n2.6", &pass)).is_err());
        assert!(check(&[8; 32], &request("n3.7", "n2.5", &pass)).is_err());
        assert!(check(&KEY, &request("n3.7", "n2.5", "zz")).is_err());
        assert!(check(&KEY, &request("n3.7", "n2.5", "")).is_err());
        let mut short = request("n3.7", "n2.5", &pass);
        short.pop();
        assert!(check(&KEY, &short).is_err());
    }

    /// A real handshake over TCP: a ROUTER that is a PLAIN server with a
    /// gate; a connection with the password is named and its messages
    /// carry the user, one without gets nothing through.
    #[test]
    fn only_a_connection_with_the_password_reaches_the_port() {
        let ctx = zmq::Context::new();
        let _gate = Gate::start(&ctx, KEY).unwrap();
        let server = ctx.socket(zmq::ROUTER).unwrap();
        server.set_linger(0).unwrap();
        server.set_plain_server(true).unwrap();
        server.set_zap_domain("n3.7").unwrap();
        server.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = server.get_last_endpoint().unwrap().unwrap();
        let outside = zmq::Context::new();
        let connect = |user: &str, pass: &str, body: &str| {
            let s = outside.socket(zmq::DEALER).unwrap();
            s.set_linger(0).unwrap();
            s.set_identity(user.as_bytes()).unwrap();
            s.set_plain_username(Some(user)).unwrap();
            s.set_plain_password(Some(pass)).unwrap();
            s.connect(&endpoint).unwrap();
            s.send(body, 0).unwrap();
            s
        };
        let _squatter = connect("n2.5", "0000", "squat");
        let _good = connect("n2.5", &password(&KEY, b"n2.5", "n3.7"), "hello");
        server.set_rcvtimeo(10_000).unwrap();
        let rid = server.recv_bytes(0).unwrap();
        assert_eq!(rid, b"n2.5");
        let mut body = server.recv_msg(0).unwrap();
        assert_eq!(body.gets("User-Id"), Some("n2.5"));
        assert_eq!(&body[..], b"hello");
        // Nothing from the squatter, which connected first.
        server.set_rcvtimeo(300).unwrap();
        assert!(server.recv_bytes(0).is_err());
    }
}
