//! The neighbour bus: what one worker learns about neighbours (ARP and ND answers) reaches
//! every other worker through a lock-free inbox each, so a neighbour is resolved once
//! per appliance, not once per worker.

use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::arp::NeighbourUpdate;

/// Capacity of each worker's inbox of neighbour updates.
pub const NEIGHBOUR_INBOX: usize = 1024;

/// Carries what one worker learns about neighbours to every other worker.
#[derive(Clone)]
pub struct NeighbourBus {
    inboxes: Arc<[ArrayQueue<NeighbourUpdate<IpAddr>>]>,
    me: usize,
}

impl NeighbourBus {
    /// Makes one bus end per worker.
    pub fn new(workers: usize) -> Vec<NeighbourBus> {
        let inboxes: Arc<[ArrayQueue<NeighbourUpdate<IpAddr>>]> = (0..workers)
            .map(|_| ArrayQueue::new(NEIGHBOUR_INBOX))
            .collect();
        (0..workers)
            .map(|me| NeighbourBus {
                inboxes: inboxes.clone(),
                me,
            })
            .collect()
    }

    pub(super) fn publish(&self, u: NeighbourUpdate<IpAddr>) {
        for (i, q) in self.inboxes.iter().enumerate() {
            if i != self.me {
                // A full inbox loses the update; the peer resolves by itself then.
                let _ = q.push(u);
            }
        }
    }

    /// Number of workers sharing the bus.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    pub(super) fn pop(&self) -> Option<NeighbourUpdate<IpAddr>> {
        self.inboxes[self.me].pop()
    }

    /// True when updates from other workers wait in this worker's inbox.
    pub(super) fn pending(&self) -> bool {
        !self.inboxes[self.me].is_empty()
    }
}
