//! A node: one thread that owns a ZeroMQ ROUTER socket, a store, and the
//! primary and secondary roles the view gives it.

pub mod auth;
pub mod conditional;
pub mod core;
pub mod disk;
pub mod endpoint;
pub mod faults;
pub mod handshake;
pub mod message;
pub mod pairs;
pub mod protocol;
pub mod replication;
pub mod replies;
pub mod runtime;
pub mod sched;
pub mod store;
pub mod transport;
pub mod txn;
pub mod wake;

pub use self::core::{ClientId, Node, NodeConfig, Output};
