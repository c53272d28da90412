//! The cluster: placement, the view, the view leader and the client.

pub mod placement;
pub mod view;
