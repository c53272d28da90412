//! The view leader's operator commands from a shell attached with
//! `--coord` (issue #12): `remove`, `rebalance`, `repair`, `placement` and
//! `set auto-rebalance`.
//!
//! In one process the shell hands a [`LeaderControl`] to the leader thread
//! over a channel. Attached, the leader thread runs in whichever node
//! process holds the leader role, so the command travels there as a
//! [`LeaderCommand`] inside the MACed control request of `admin.rs`:
//!
//! - **finding the leader**: the shell reads the [`LeaderRecord`] the
//!   elected process announced in ZooKeeper (its node id and election
//!   number), and that node's registered control port;
//! - **one leader, by election number**: the request names the election
//!   it was meant for. The process answers [`AdminReply::NotLeader`] if it
//!   does not lead, or leads under another number, so a command never
//!   reaches a leader the shell did not pick;
//! - **a leader change mid-request**: on `NotLeader`, or no answer while
//!   ZooKeeper already names another leader, the shell waits for the new
//!   record (within the session timeout plus slack: a dead process's
//!   session expires, and the next candidate announces itself) and sends
//!   the command again, to at most three leaders. Every command here is safe to repeat: a node already leaving
//!   stays leaving, and the rest set a state or start work that a second
//!   request finds done. No answer, while ZooKeeper still names the same
//!   leader a session timeout later (a process alive but not answering),
//!   is one line saying so: the command may yet run when it wakes, within
//!   the request's freshness.
//!
//! The answers are those of the in-process leader, errors included (the
//! error travels as itself), so the shell prints the same lines either way.

use super::admin::{self, AdminReply, AdminRequest};
use super::{LeaderRecord, Membership};
use crate::cluster::leader::Plan;
use crate::cluster::runtime::LeaderControl;
use crate::error::{Error, Result};
use crate::node::wake::ControlSender;
use crate::view::placement::{Placement, Strategy};
use crate::view::{node_name, Epoch, NodeId, PartitionId};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the leader's process waits for its leader thread's answer.
const THREAD_ANSWER: Duration = Duration::from_secs(2);
/// How long the shell waits for the leader's process to answer: the
/// thread's answer plus the network.
const PROCESS_ANSWER: Duration = Duration::from_secs(4);
/// Beyond the session timeouts, how long the shell waits for a new leader.
const ELECTION_SLACK: Duration = Duration::from_secs(5);
/// Leaders a command is sent to, at most.
const ATTEMPTS: usize = 3;

/// A view leader's operator command, as it travels to the leader's process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LeaderCommand {
    /// Decommission a node, or remove a dead one (`remove [--force]`).
    Decommission {
        /// The node.
        node: NodeId,
        /// Allow fewer than R copies.
        force: bool,
    },
    /// Switch placement and rebalance (`placement STRATEGY`).
    SetPlacement {
        /// The strategy.
        strategy: Strategy,
        /// Virtual nodes per node, for the ring.
        vnodes: u32,
    },
    /// Turn automatic rebalancing on or off.
    SetAutoRebalance(bool),
    /// Rebalance to the current target.
    Rebalance,
    /// Resync the secondaries of one partition, or of all (`repair`).
    Resync(Option<PartitionId>),
    /// What a rebalance would do (`rebalance --dry-run`, and before any
    /// `rebalance`).
    Plan,
}

/// This process's leader thread while it leads: its election number and
/// its control channel. Empty while it does not lead.
pub type LeaderSlot = Arc<Mutex<Option<(u64, ControlSender<LeaderControl>)>>>;

/// In the leader's process: carries out `command` on the leader thread in
/// `slot`, if it leads under `election`.
pub fn carry_out(slot: &LeaderSlot, election: u64, command: LeaderCommand) -> AdminReply {
    let control = match &*slot.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((e, control)) if *e == election => control.clone(),
        Some((e, _)) => return AdminReply::NotLeader(format!("it leads under election {e}")),
        None => return AdminReply::NotLeader("it does not hold the leader role".into()),
    };
    let gone = || AdminReply::NotLeader("its leader thread has stopped".into());
    let late = || {
        AdminReply::Failed(format!(
            "the leader thread did not answer within {} s",
            THREAD_ANSWER.as_secs()
        ))
    };
    match command {
        LeaderCommand::Decommission { node, force } => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if control
                .send(LeaderControl::Decommission(node, force, tx))
                .is_err()
            {
                return gone();
            }
            match rx.recv_timeout(THREAD_ANSWER) {
                Ok(Ok(epoch)) => AdminReply::Epoch(epoch),
                Ok(Err(e)) => AdminReply::Refused(e),
                Err(_) => late(),
            }
        }
        LeaderCommand::Plan => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if control.send(LeaderControl::Plan(tx)).is_err() {
                return gone();
            }
            match rx.recv_timeout(THREAD_ANSWER) {
                Ok(plan) => AdminReply::Plan(plan),
                Err(_) => late(),
            }
        }
        LeaderCommand::SetPlacement { strategy, vnodes } => order(
            &control,
            LeaderControl::SetPlacement(Placement::new(strategy, vnodes)),
        ),
        LeaderCommand::SetAutoRebalance(on) => order(&control, LeaderControl::SetAutoRebalance(on)),
        LeaderCommand::Rebalance => order(&control, LeaderControl::Rebalance),
        LeaderCommand::Resync(p) => order(&control, LeaderControl::Resync(p)),
    }
}

/// Hands the leader thread a command that has no answer.
fn order(control: &ControlSender<LeaderControl>, c: LeaderControl) -> AdminReply {
    match control.send(c) {
        Ok(()) => AdminReply::Done,
        Err(_) => AdminReply::NotLeader("its leader thread has stopped".into()),
    }
}

/// The shell's side: sends operator commands to whichever process leads.
pub struct LeaderLink<'a> {
    /// The coordination service, to find the leader.
    pub membership: &'a dyn Membership,
    /// For the request sockets.
    pub ctx: &'a zmq::Context,
    /// The control requests' MAC key.
    pub key: [u8; 32],
}

impl LeaderLink<'_> {
    /// Sends `command` to the leader's process and returns its answer,
    /// following a leader change (see the module docs).
    pub fn send(&self, command: &LeaderCommand) -> Result<AdminReply> {
        let session = Duration::from_millis(self.membership.session_ms());
        let mut tried: Option<LeaderRecord> = None;
        let mut last_refusal = String::new();
        // Each attempt follows one leader change; three cover a change
        // during the change.
        for _ in 0..ATTEMPTS {
            let rec = self
                .next_leader(
                    tried.as_ref(),
                    Instant::now() + 2 * session + ELECTION_SLACK,
                )
                .map_err(|e| match last_refusal.as_str() {
                    "" => e,
                    last => Error::Unavailable(format!("{e}; the last leader tried: {last}")),
                })?;
            let who = format!("the view leader ({}'s process)", node_name(rec.node));
            if let Some(old) = &tried {
                tracing::warn!(
                    "the view leader changed during the request ({} to {}): sent again",
                    node_name(old.node),
                    node_name(rec.node)
                );
            }
            let control = self
                .membership
                .members()?
                .into_iter()
                .find(|m| m.id == rec.node)
                .map(|m| m.control)
                .unwrap_or_default();
            let request = AdminRequest::Leader {
                election: rec.session,
                command: command.clone(),
            };
            let answer = if control.is_empty() {
                // Announced, but its member record is gone: it is dying.
                Err(Error::Timeout(format!("{who} is not registered")))
            } else {
                admin::ask(self.ctx, &control, &self.key, request, PROCESS_ANSWER)
            };
            match answer {
                Ok(AdminReply::NotLeader(why)) => last_refusal = format!("{who}: {why}"),
                Ok(AdminReply::Failed(why)) => {
                    return Err(Error::Unavailable(format!("{who}: {why}")))
                }
                Ok(AdminReply::Refused(e)) => return Err(e),
                Ok(reply) => return Ok(reply),
                Err(Error::Timeout(_)) => {
                    // A process that died loses its session within the
                    // session timeout, and ZooKeeper then names another
                    // leader; one that still holds the role is alive but
                    // not answering.
                    let changed =
                        self.next_leader(Some(&rec), Instant::now() + session + ELECTION_SLACK);
                    if changed.is_err() {
                        return Err(Error::Timeout(format!(
                            "{who} did not answer within {:.0} s and still holds the role: it may \
                             be paused or overloaded, and the command may still run when it \
                             wakes (a wrong {} also gets no answer)",
                            PROCESS_ANSWER.as_secs_f64(),
                            super::process::SECRET_VAR
                        )));
                    }
                    last_refusal = format!("{who} did not answer, and lost the role");
                }
                Err(e) => return Err(e),
            }
            tried = Some(rec);
        }
        Err(Error::Unavailable(format!(
            "the view leader changed {ATTEMPTS} times during the request; the last: {last_refusal}"
        )))
    }

    /// The announced leader, other than `tried`, waiting for one until
    /// `deadline`.
    fn next_leader(&self, tried: Option<&LeaderRecord>, deadline: Instant) -> Result<LeaderRecord> {
        loop {
            if let Some(rec) = self.membership.leader()? {
                if tried != Some(&rec) {
                    return Ok(rec);
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "no view leader {} in ZooKeeper",
                    if tried.is_some() {
                        "took over"
                    } else {
                        "is announced"
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Decommissions `node`; the epoch of the view with the change.
    pub fn decommission(&self, node: NodeId, force: bool) -> Result<Epoch> {
        match self.send(&LeaderCommand::Decommission { node, force })? {
            AdminReply::Epoch(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }

    /// What a rebalance would do.
    pub fn plan(&self) -> Result<Plan> {
        match self.send(&LeaderCommand::Plan)? {
            AdminReply::Plan(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// A command answered with `Done`.
    pub fn order(&self, command: LeaderCommand) -> Result<()> {
        match self.send(&command)? {
            AdminReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

impl std::fmt::Debug for LeaderLink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the key.
        f.debug_struct("LeaderLink").finish_non_exhaustive()
    }
}

fn unexpected(reply: AdminReply) -> Error {
    Error::Io(format!("unexpected answer from the view leader: {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader thread stand-in: answers plans and decommissions.
    fn leader_thread() -> (ControlSender<LeaderControl>, std::thread::JoinHandle<usize>) {
        let (tx, rx) = crate::node::wake::channel().unwrap();
        let thread = std::thread::spawn(move || {
            let mut seen = 0;
            loop {
                while let Some(c) = rx.try_recv() {
                    seen += 1;
                    match c {
                        LeaderControl::Plan(reply) => {
                            let _ = reply.send(Plan {
                                partitions: 3,
                                ..Plan::default()
                            });
                        }
                        LeaderControl::Decommission(9, _, reply) => {
                            let _ =
                                reply.send(Err(Error::UnknownNode("n9 is not in the view".into())));
                        }
                        LeaderControl::Decommission(_, _, reply) => {
                            let _ = reply.send(Ok(7));
                        }
                        LeaderControl::Stop => return seen,
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        (tx, thread)
    }

    #[test]
    fn only_the_named_election_carries_out_a_command_and_errors_travel_as_themselves() {
        let slot = LeaderSlot::default();
        let plan = LeaderCommand::Plan;
        assert!(matches!(
            carry_out(&slot, 4, plan.clone()),
            AdminReply::NotLeader(_)
        ));
        let (control, thread) = leader_thread();
        *slot.lock().unwrap() = Some((4, control.clone()));
        assert!(
            matches!(carry_out(&slot, 3, plan.clone()), AdminReply::NotLeader(why) if why.contains("election 4")),
            "an earlier election's request is refused"
        );
        assert!(matches!(carry_out(&slot, 4, plan), AdminReply::Plan(p) if p.partitions == 3));
        let remove = |node| LeaderCommand::Decommission { node, force: false };
        assert_eq!(carry_out(&slot, 4, remove(2)), AdminReply::Epoch(7));
        assert_eq!(
            carry_out(&slot, 4, remove(9)),
            AdminReply::Refused(Error::UnknownNode("n9 is not in the view".into()))
        );
        assert_eq!(
            carry_out(&slot, 4, LeaderCommand::Rebalance),
            AdminReply::Done
        );
        control.send(LeaderControl::Stop).unwrap();
        assert_eq!(
            thread.join().unwrap(),
            5,
            "the refused requests never reached it"
        );
        assert!(
            matches!(
                carry_out(&slot, 4, LeaderCommand::Rebalance),
                AdminReply::NotLeader(_)
            ),
            "a stopped leader thread"
        );
    }
}
