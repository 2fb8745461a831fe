//! Which flow later IPv4 and IPv6 fragments belong to: a small, bounded, direct-mapped table
//! from (source, destination, protocol, IP identification) of a first fragment to its
//! flow, with entries that expire.
//!
//! Later fragments carry no ports, so they cannot be matched by flow key. Limitation:
//! the AF_PACKET fanout steers non-first fragments to worker 0, so only fragments whose
//! flow worker 0 owns follow their flow there; on other workers they are dropped as
//! fragments without a flow (a NIC or driver that steers by the 3-tuple, or reassembly
//! on worker 0, lifts this later).

use std::net::IpAddr;
use std::time::Duration;

use super::flow::FlowId;
use crate::time::Instant;

/// How long an entry lives after its last fragment.
pub const FRAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Which way a fragment goes through its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to member.
    ToServer,
    /// Member to client.
    ToClient,
}

/// The identity of a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// IP identification (16 bits in IPv4, 32 in IPv6's fragment header).
    pub ident: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FragKey,
    flow: FlowId,
    dir: Dir,
    expires: Instant,
}

/// The table of one worker.
#[derive(Debug)]
pub struct FragTable {
    entries: Vec<Option<Entry>>,
}

impl FragTable {
    /// A table of `size` entries (at least 1), allocated now.
    pub fn new(size: usize) -> FragTable {
        FragTable {
            entries: vec![None; size.max(1)],
        }
    }

    fn slot(&self, k: &FragKey) -> usize {
        let fold = |a: IpAddr| match a {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                (x as u32) ^ ((x >> 32) as u32) ^ ((x >> 64) as u32) ^ ((x >> 96) as u32)
            }
        };
        let h = (fold(k.src).wrapping_mul(0x9e37_79b1))
            ^ fold(k.dst).rotate_left(13)
            ^ (k.ident.rotate_left(8) ^ k.proto as u32).wrapping_mul(0x85eb_ca6b);
        (h as usize) % self.entries.len()
    }

    /// Records the first fragment of a datagram. Returns true if a live entry of
    /// another datagram was overwritten.
    pub fn insert(&mut self, key: FragKey, flow: FlowId, dir: Dir, now: Instant) -> bool {
        let i = self.slot(&key);
        let evicted = matches!(self.entries[i], Some(e) if e.key != key && e.expires > now);
        self.entries[i] = Some(Entry {
            key,
            flow,
            dir,
            expires: now + FRAG_TIMEOUT,
        });
        evicted
    }

    /// The flow of a later fragment, refreshing the entry.
    pub fn lookup(&mut self, key: &FragKey, now: Instant) -> Option<(FlowId, Dir)> {
        let i = self.slot(key);
        match &mut self.entries[i] {
            Some(e) if e.key == *key && e.expires > now => {
                e.expires = now + FRAG_TIMEOUT;
                Some((e.flow, e.dir))
            }
            _ => None,
        }
    }
}
