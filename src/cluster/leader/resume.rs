//! Taking over a view another leader stored: the view leader of a cluster
//! of node processes (issue #12, `src/coord/`) may die, and the process
//! elected after it carries on from the view in the coordination service.

use super::ViewLeader;
use crate::cluster::status::{LeaseState, MemberStatus};
use crate::view::{NodeState, Time, View};

impl ViewLeader {
    /// A leader that carries on from `view`, stored by an earlier leader,
    /// at `now`.
    ///
    /// It has heard from nobody yet, so it counts every live node of the
    /// view as last heard now: a node that never heartbeats to it is
    /// declared dead a failure timeout from now, and one that does carries
    /// on. Every lease the earlier leader granted came from an ack sent
    /// before now (that leader's coordination session ended before this
    /// one was elected, and it stops acknowledging before then), so
    /// counting `granted_from` from now keeps the promotion rule of
    /// docs/architecture.md §6: no partition fails over until every lease
    /// the earlier leader could have granted has run out.
    pub fn resume(cfg: super::LeaderConfig, view: View, now: Time) -> Self {
        let mut leader = ViewLeader::new(cfg);
        for (id, info) in &view.nodes {
            if info.state == NodeState::Dead {
                continue;
            }
            leader.members.insert(
                *id,
                MemberStatus {
                    incarnation: info.incarnation,
                    endpoint: info.endpoint.clone(),
                    peer_endpoint: info.peer_endpoint.clone(),
                    last_heard: now,
                    reported_epoch: 0,
                    stats: Default::default(),
                    stats_at: 0,
                    suspect: false,
                    lease: LeaseState {
                        held_until: now,
                        granted_from: now,
                        ..LeaseState::default()
                    },
                },
            );
        }
        leader.view = view;
        leader.now = now;
        leader.last_seen = Some(now);
        leader
    }
}
