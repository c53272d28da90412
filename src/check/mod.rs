//! Checkers for histories of operations.
//!
//! Fault tests run concurrent clients against the cluster while nodes crash,
//! pause and lose messages, and afterwards ask one question: could a single
//! correct copy of the store have produced what the clients saw? The parts:
//!
//! - [`history`] defines an operation (what a client asked, when it asked,
//!   when it heard back and what it heard) and the `Recorder` client threads
//!   share to write a history down. Histories save to and load from JSON
//!   lines, so a failing run can be kept and replayed.
//! - [`linearizability`] answers the question per key, treating each key as
//!   a read/write register, and for a key that fails it returns a small
//!   sub-history that shows why.
//! - [`atomicity`] checks the same history for torn `MPUT`s: a snapshot
//!   read (`mget`) that saw some of an `MPUT`'s keys and not the others.
//! - [`html`] draws a checked history, with the faults and view changes of
//!   its run, as one self-contained HTML page (`history html`).
//! - [`load`] is the shell's background write workload (`load start`), which
//!   measures unavailability as clients see it and checks at the end that
//!   every acknowledged write reads back.

pub mod atomicity;
pub mod history;
pub mod html;
pub mod linearizability;
pub mod load;
pub mod nemesis;
pub mod run;
pub mod workload;
