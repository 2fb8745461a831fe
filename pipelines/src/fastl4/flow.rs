//! The per-worker fastl4 connection table: a slab of flows with a free list, indexed
//! by the client-side key (client → VIP) and the server-side key (member → SNAT
//! address), with idle expiry by a timer wheel.
//!
//! Everything is allocated at construction for `limit` flows; inserting and removing
//! flows afterwards does not allocate (the hash indexes are sized for twice the limit so
//! that tombstones are cleaned by rehashing in place). Expiry is lazy: a flow's timer is
//! set once for `last_seen + timeout`; when it fires, the flow is removed only if it
//! has really been idle that long, else the timer is set again for the new deadline.
//! Packets only write `last_seen`. A state change that shortens the timeout (a FIN on
//! an established flow) sets the timer again at once.

use crate::hashing::{self, FastMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::addr::FlowKey;
use crate::dataplane::Fastl4Vs;
use crate::time::Instant;
use crate::timer_wheel::{TimerId, TimerWheel};

/// Tick of the expiry wheel.
pub const TICK: Duration = Duration::from_millis(100);
/// Slots of the expiry wheel (4096 ticks of 100 ms: one revolution covers 409 s).
pub const SLOTS: usize = 4096;

/// Where a TCP flow is in its life (UDP flows stay [`FlowState::Udp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// Client SYN seen, handshake not complete.
    Syn,
    /// Handshake complete.
    Established,
    /// A FIN seen from either side.
    Closing,
    /// A UDP flow.
    Udp,
}

/// One translated flow. Addresses are as seen on the wire on each side.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The virtual server it was created by (kept across snapshot changes).
    pub vs: Arc<Fastl4Vs>,
    /// Index of the member in `vs.members`.
    pub member: usize,
    /// IP protocol (6 or 17).
    pub proto: u8,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port the client connected to.
    pub vip: SocketAddr,
    /// Member address and port.
    pub server: SocketAddr,
    /// Source address and port used toward the member.
    pub snat: SocketAddr,
    /// Life state.
    pub state: FlowState,
    /// Last packet either way.
    pub last_seen: Instant,
    /// When the flow was created.
    pub created: Instant,
    /// IP bytes from the client.
    pub bytes_in: u64,
    /// IP bytes to the client.
    pub bytes_out: u64,
    /// TCP: sequence number after the client's last segment (its `SND.NXT` as seen).
    pub client_next: u32,
    /// TCP: the client's last acknowledgement number.
    pub client_ack: u32,
    /// TCP: sequence number after the member's last segment.
    pub server_next: u32,
    /// TCP: a segment from the member has been seen.
    pub server_seen: bool,
    /// TCP: the member's SYN-ACK has been seen.
    pub syn_ack_seen: bool,
    /// Sequence-number offset applied server → client (and negated client → server).
    /// Always 0 for now; reserved for SYN-cookie translation.
    pub seq_delta: u32,
    /// Shaping class and the snapshot generation it was chosen under (chosen again when
    /// the configuration changes).
    pub class: Option<(u64, u16)>,
    timer: Option<TimerId>,
}

impl Flow {
    /// A new flow in its first state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vs: Arc<Fastl4Vs>,
        member: usize,
        proto: u8,
        client: SocketAddr,
        vip: SocketAddr,
        server: SocketAddr,
        snat: SocketAddr,
        now: Instant,
    ) -> Flow {
        Flow {
            vs,
            member,
            proto,
            client,
            vip,
            server,
            snat,
            state: if proto == 6 {
                FlowState::Syn
            } else {
                FlowState::Udp
            },
            last_seen: now,
            created: now,
            bytes_in: 0,
            bytes_out: 0,
            client_next: 0,
            client_ack: 0,
            server_next: 0,
            server_seen: false,
            syn_ack_seen: false,
            seq_delta: 0,
            class: None,
            timer: None,
        }
    }

    /// The client-side key: the flow as packets from the client carry it.
    pub fn client_key(&self) -> FlowKey {
        key(self.proto, self.client, self.vip)
    }

    /// The server-side key: the flow as packets from the member carry it.
    pub fn server_key(&self) -> FlowKey {
        key(self.proto, self.server, self.snat)
    }

    /// The idle timeout of the current state.
    pub fn timeout(&self) -> Duration {
        let t = &self.vs.timeouts;
        match self.state {
            FlowState::Syn => t.tcp_syn,
            FlowState::Established => t.tcp_established,
            FlowState::Closing => t.tcp_closing,
            FlowState::Udp => t.udp,
        }
    }
}

/// The key of packets from `src` to `dst`.
#[inline]
pub fn key(proto: u8, src: SocketAddr, dst: SocketAddr) -> FlowKey {
    FlowKey {
        proto,
        src: src.ip(),
        dst: dst.ip(),
        sport: src.port(),
        dport: dst.port(),
    }
}

/// A flow slot handle: index and generation (stale handles are recognised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowId {
    /// Slot index.
    pub idx: u32,
    /// Generation of the slot when the handle was made.
    pub gen: u32,
}

struct Slot {
    gen: u32,
    flow: Option<Flow>,
}

/// Why a flow could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds `limit` flows.
    Full,
    /// A flow with the same client- or server-side key exists.
    Exists,
}

/// The connection table of one worker.
pub struct FlowTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_client: FastMap<FlowKey, u32>,
    by_server: FastMap<FlowKey, u32>,
    wheel: TimerWheel<FlowId>,
    fired: Vec<FlowId>,
    len: usize,
}

impl FlowTable {
    /// A table for at most `limit` flows, all memory allocated now.
    pub fn new(limit: usize) -> FlowTable {
        let limit = limit.max(1);
        FlowTable {
            slots: (0..limit).map(|_| Slot { gen: 0, flow: None }).collect(),
            free: (0..limit as u32).rev().collect(),
            by_client: hashing::with_capacity(limit * 2),
            by_server: hashing::with_capacity(limit * 2),
            wheel: TimerWheel::new(TICK, SLOTS, limit),
            fired: Vec::with_capacity(limit),
            len: 0,
        }
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most flows the table holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Inserts a flow and sets its idle timer.
    pub fn insert(&mut self, mut flow: Flow) -> Result<FlowId, InsertError> {
        let (ck, sk) = (flow.client_key(), flow.server_key());
        if self.by_client.contains_key(&ck) || self.by_server.contains_key(&sk) {
            return Err(InsertError::Exists);
        }
        let Some(idx) = self.free.pop() else {
            return Err(InsertError::Full);
        };
        let slot = &mut self.slots[idx as usize];
        let id = FlowId { idx, gen: slot.gen };
        flow.timer = Some(self.wheel.schedule(flow.last_seen + flow.timeout(), id));
        slot.flow = Some(flow);
        self.by_client.insert(ck, idx);
        self.by_server.insert(sk, idx);
        self.len += 1;
        Ok(id)
    }

    /// The flow whose client-side key is `k`.
    #[inline]
    pub fn find_client(&self, k: &FlowKey) -> Option<FlowId> {
        self.by_client.get(k).map(|&i| self.id(i))
    }

    /// The flow whose server-side key is `k`.
    #[inline]
    pub fn find_server(&self, k: &FlowKey) -> Option<FlowId> {
        self.by_server.get(k).map(|&i| self.id(i))
    }

    /// True when a flow uses server-side key `k` (SNAT port collision check).
    #[inline]
    pub fn server_key_taken(&self, k: &FlowKey) -> bool {
        self.by_server.contains_key(k)
    }

    fn id(&self, idx: u32) -> FlowId {
        FlowId {
            idx,
            gen: self.slots[idx as usize].gen,
        }
    }

    /// The flow behind a handle, if it is still the same flow.
    #[inline]
    pub fn get(&self, id: FlowId) -> Option<&Flow> {
        let s = self.slots.get(id.idx as usize)?;
        if s.gen == id.gen {
            s.flow.as_ref()
        } else {
            None
        }
    }

    /// The flow behind a handle, writable. Changing `state` to one with a shorter
    /// timeout must be followed by [`FlowTable::rearm`].
    #[inline]
    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut Flow> {
        let s = self.slots.get_mut(id.idx as usize)?;
        if s.gen == id.gen {
            s.flow.as_mut()
        } else {
            None
        }
    }

    /// The flow in slot `idx` (for sweeps), with its handle.
    pub fn slot(&self, idx: usize) -> Option<(FlowId, &Flow)> {
        let s = self.slots.get(idx)?;
        s.flow.as_ref().map(|f| {
            (
                FlowId {
                    idx: idx as u32,
                    gen: s.gen,
                },
                f,
            )
        })
    }

    /// Every flow in the table (for display: `show connections`).
    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.slots.iter().filter_map(|s| s.flow.as_ref())
    }

    /// Sets the flow's timer again for `last_seen + timeout` (after a state change).
    pub fn rearm(&mut self, id: FlowId) {
        let Some(s) = self.slots.get_mut(id.idx as usize) else {
            return;
        };
        if s.gen != id.gen {
            return;
        }
        if let Some(f) = s.flow.as_mut() {
            if let Some(t) = f.timer.take() {
                self.wheel.cancel(t);
            }
            f.timer = Some(self.wheel.schedule(f.last_seen + f.timeout(), id));
        }
    }

    /// Removes a flow; returns it.
    pub fn remove(&mut self, id: FlowId) -> Option<Flow> {
        let s = self.slots.get_mut(id.idx as usize)?;
        if s.gen != id.gen {
            return None;
        }
        let mut f = s.flow.take()?;
        s.gen = s.gen.wrapping_add(1);
        if let Some(t) = f.timer.take() {
            self.wheel.cancel(t);
        }
        self.by_client.remove(&f.client_key());
        self.by_server.remove(&f.server_key());
        self.free.push(id.idx);
        self.len -= 1;
        Some(f)
    }

    /// Removes flows idle past their timeout, handing each to `gone`; flows that saw
    /// traffic since their timer was set get a new timer.
    pub fn expire(&mut self, now: Instant, mut gone: impl FnMut(Flow)) {
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.expire(now, &mut fired);
        for &id in &fired {
            let Some(s) = self.slots.get_mut(id.idx as usize) else {
                continue;
            };
            if s.gen != id.gen {
                continue;
            }
            let Some(f) = s.flow.as_mut() else {
                continue;
            };
            f.timer = None;
            let deadline = f.last_seen + f.timeout();
            if deadline <= now {
                if let Some(f) = self.remove(id) {
                    gone(f);
                }
            } else {
                f.timer = Some(self.wheel.schedule(deadline, id));
            }
        }
        self.fired = fired;
    }

    /// The earliest time a timer is due.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.wheel.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{Fastl4Protocol, Snat};
    use std::net::Ipv4Addr;

    fn flow(vs: &Arc<Fastl4Vs>, port: u16, now: Instant) -> Flow {
        let a = |d, p| SocketAddr::new(Ipv4Addr::new(198, 18, 1, d).into(), p);
        Flow::new(
            vs.clone(),
            0,
            17,
            a(2, port),
            a(100, 53),
            a(11, 53),
            a(1, port),
            now,
        )
    }

    fn vs() -> Arc<Fastl4Vs> {
        Arc::new(Fastl4Vs::new(
            "t",
            Fastl4Protocol::Udp,
            Ipv4Addr::new(198, 18, 1, 100).into(),
            Some(53),
            Snat::Automap,
            &["198.18.1.11:53".parse().unwrap()],
            1,
        ))
    }

    #[test]
    fn slots_are_reused_and_stale_handles_refused() {
        let vs = vs();
        let mut t = FlowTable::new(2);
        let a = t.insert(flow(&vs, 1, Instant::ZERO)).unwrap();
        let b = t.insert(flow(&vs, 2, Instant::ZERO)).unwrap();
        assert_eq!(
            t.insert(flow(&vs, 3, Instant::ZERO)).unwrap_err(),
            InsertError::Full
        );
        assert!(t.remove(a).is_some());
        assert!(t.get(a).is_none() && t.remove(a).is_none());
        assert_eq!(
            t.insert(flow(&vs, 2, Instant::ZERO)).unwrap_err(),
            InsertError::Exists
        );
        let c = t.insert(flow(&vs, 3, Instant::ZERO)).unwrap();
        assert_eq!(c.idx, a.idx);
        assert_ne!(c.gen, a.gen);
        assert_eq!(
            t.find_client(&flow(&vs, 3, Instant::ZERO).client_key()),
            Some(c)
        );
        assert_eq!(
            t.find_server(&flow(&vs, 2, Instant::ZERO).server_key()),
            Some(b)
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn expiry_is_lazy_and_exact() {
        let vs = vs();
        let mut t = FlowTable::new(4);
        let id = t.insert(flow(&vs, 1, Instant::ZERO)).unwrap();
        let mut gone = 0;
        t.get_mut(id).unwrap().last_seen = Instant::from_secs(50);
        t.expire(Instant::from_secs(61), |_| gone += 1);
        assert_eq!((gone, t.len()), (0, 1), "touched at 50 s: lives to 110 s");
        t.expire(Instant::from_secs(109), |_| gone += 1);
        assert_eq!(gone, 0);
        t.expire(Instant::from_secs(111), |_| gone += 1);
        assert_eq!((gone, t.len()), (1, 0));
    }
}
