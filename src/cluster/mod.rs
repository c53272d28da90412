//! The cluster: the view leader, the in-process runtime that runs nodes and
//! leader together, and the client. The view and placement live below it, in
//! [`crate::view`].

pub mod client;
pub mod event;
pub mod handle;
pub mod leader;
pub mod remote;
pub mod runtime;
pub mod status;
pub mod watch;

pub use client::Client;
pub use handle::{Cluster, ClusterConfig, DataDir, Process};
