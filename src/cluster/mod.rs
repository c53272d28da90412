//! The cluster: placement, the view, the view leader and the client.

pub mod client;
pub mod event;
pub mod handle;
pub mod leader;
pub mod placement;
pub mod runtime;
pub mod status;
pub mod view;
pub mod watch;

pub use client::Client;
pub use handle::{Cluster, ClusterConfig, Process};
