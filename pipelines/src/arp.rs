//! The neighbour (ARP) cache of one worker: bounded, with reachability timeouts,
//! request retries, and a small queue of packets per unresolved next hop.
//!
//! States: `Incomplete` (request sent, packets held) → `Reachable` (reply seen) →
//! after `reachable` time `Stale` (still used, one refresh request sent) → removed if
//! the refresh goes unanswered after all retries. An unanswered `Incomplete` entry drops
//! its queued packets as `arp_unresolved` and turns `Failed` for a while, so traffic to
//! a dead next hop is dropped at once instead of piling up.
//!
//! The cache is generic over the address family: [`ArpCache`] (IPv4, the default) and
//! [`NdCache`] (IPv6 Neighbour Discovery, RFC 4861) share the states and bounds; the
//! protocols only differ in the messages the pipeline sends for them.
//!
//! Packets waiting for a next hop are held in one queue per cache, preallocated
//! ([`MAX_HELD`]), at most [`MAX_PENDING`] per next hop: enough for a burst of new
//! connections to members nobody has talked to since the appliance started (Linux holds
//! about 100 frames per neighbour), without a queue of that size in every entry.
//!
//! Workers learn neighbours independently; what one worker learns is shared with the
//! others as [`NeighbourUpdate`] messages (see `l2l3`), since an ARP reply reaches only
//! one worker. Housekeeping runs at most every [`SWEEP_INTERVAL`], never per packet.

use crate::hashing::{self, FastMap};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rouge_drivers::{MacAddr, Packet};
use serde::Serialize;

use crate::time::Instant;

/// Packets held per unresolved next hop.
pub const MAX_PENDING: usize = 64;
/// Packets held for all unresolved next hops of one cache together.
pub const MAX_HELD: usize = 256;
/// How often expired entries and retries are looked at.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Tunables of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// How long a reply keeps an entry reachable.
    pub reachable: Duration,
    /// Time between requests for an unresolved address.
    pub retry: Duration,
    /// Requests sent before giving up.
    pub retries: u8,
    /// How long a failed address stays failed (packets to it dropped at once).
    pub failed_hold: Duration,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            max_entries: 4096,
            reachable: Duration::from_secs(60),
            retry: Duration::from_secs(1),
            retries: 3,
            failed_hold: Duration::from_secs(3),
        }
    }
}

/// An address a neighbour cache can hold: IPv4 (ARP) or IPv6 (Neighbour Discovery).
pub trait NeighbourAddr: Copy + Eq + Hash + Ord + Debug + Serialize {}
impl NeighbourAddr for Ipv4Addr {}
impl NeighbourAddr for Ipv6Addr {}

/// The IPv6 neighbour cache (Neighbour Discovery): the same states and bounds as ARP's.
pub type NdCache = ArpCache<Ipv6Addr>;

/// A learned address, passed from the worker that saw it to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourUpdate<A = Ipv4Addr> {
    /// The neighbour's address.
    pub ip: A,
    /// Its MAC.
    pub mac: MacAddr,
    /// The VLAN it was seen on.
    pub vlan: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Incomplete { tries: u8, next: Instant },
    Reachable { until: Instant },
    Stale { tries: u8, next: Instant },
    Failed { until: Instant },
}

impl State {
    /// When a sweep has something to do with an entry in this state.
    fn deadline(&self) -> Option<Instant> {
        match *self {
            State::Incomplete { next, .. } | State::Stale { next, .. } => Some(next),
            State::Failed { until } => Some(until),
            State::Reachable { .. } => None,
        }
    }
}

struct Entry {
    mac: MacAddr,
    vlan: u16,
    state: State,
    /// Packets held for this next hop in the cache's queue.
    pending: u16,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Use this MAC.
    Hit(MacAddr),
    /// Use this MAC, and send a refresh request (the entry just went stale).
    HitRefresh(MacAddr),
    /// Not known (or being resolved): hold the packet with [`ArpCache::hold`].
    Miss,
    /// The address did not answer recently: drop.
    Failed,
}

/// What became of a packet given to [`ArpCache::hold`].
#[derive(Debug)]
pub enum Hold {
    /// Queued; a first request must be sent now.
    QueuedSendRequest,
    /// Queued behind a request already sent.
    Queued,
    /// The address's share of the queue ([`MAX_PENDING`]) or the whole queue
    /// ([`MAX_HELD`]) is full: the packet is given back to be dropped.
    QueueFull(Packet),
    /// The table is full: the packet is given back to be dropped.
    TableFull(Packet),
}

/// Work found by [`ArpCache::poll`].
#[derive(Debug)]
pub enum ArpTimerEvent<A = Ipv4Addr> {
    /// Send (again) a request for `ip` on `vlan`.
    Request {
        /// Address to resolve.
        ip: A,
        /// VLAN to ask on.
        vlan: u16,
    },
    /// A queued packet whose next hop never answered: drop it.
    Unresolved(Packet),
}

/// One row of `rouge show arp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArpEntryView<A = Ipv4Addr> {
    /// Neighbour address.
    pub ip: A,
    /// Its MAC (zero while unresolved).
    pub mac: String,
    /// VLAN index.
    pub vlan: u16,
    /// `reachable`, `stale`, `incomplete` or `failed`.
    pub state: &'static str,
    /// Seconds until the state changes.
    pub expires_in_ms: u64,
}

/// The neighbour cache of one worker.
pub struct ArpCache<A = Ipv4Addr> {
    cfg: ArpConfig,
    entries: FastMap<A, Entry>,
    /// Packets waiting for their next hop to resolve, in arrival order.
    held: VecDeque<(A, Packet)>,
    next_sweep: Instant,
    /// The earliest retry, refresh or end of a failed hold of any entry (never later
    /// than the true one; exact after each sweep).
    due: Option<Instant>,
    changed: bool,
}

impl<A: NeighbourAddr> ArpCache<A> {
    /// An empty cache with room for `cfg.max_entries` (allocated now, never grown).
    pub fn new(cfg: ArpConfig) -> ArpCache<A> {
        ArpCache {
            cfg,
            entries: hashing::with_capacity(cfg.max_entries),
            held: VecDeque::with_capacity(MAX_HELD),
            next_sweep: Instant::ZERO,
            due: None,
            changed: false,
        }
    }

    /// The cache's tunables.
    pub fn config(&self) -> &ArpConfig {
        &self.cfg
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True once since the last call if entries were added, changed or removed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Looks up the MAC of `ip`.
    #[inline]
    pub fn lookup(&mut self, ip: A, now: Instant) -> Lookup {
        let Some(e) = self.entries.get_mut(&ip) else {
            return Lookup::Miss;
        };
        match e.state {
            State::Reachable { until } if now < until => Lookup::Hit(e.mac),
            State::Reachable { .. } => {
                let next = now + self.cfg.retry;
                e.state = State::Stale { tries: 1, next };
                self.due = crate::time::earliest([self.due, Some(next)]);
                self.changed = true;
                Lookup::HitRefresh(e.mac)
            }
            State::Stale { .. } => Lookup::Hit(e.mac),
            State::Incomplete { .. } => Lookup::Miss,
            State::Failed { until } if now < until => Lookup::Failed,
            State::Failed { .. } => Lookup::Miss,
        }
    }

    /// Queues `pkt` until `ip` (on `vlan`) resolves.
    pub fn hold(&mut self, ip: A, vlan: u16, pkt: Packet, now: Instant) -> Hold {
        // Resolution takes a round trip or more: a frame a driver lent goes back to it.
        let pkt = pkt.detached();
        let full = self.entries.len() >= self.cfg.max_entries;
        let queue_full = self.held.len() >= MAX_HELD;
        let next = now + self.cfg.retry;
        let due = crate::time::earliest([self.due, Some(next)]);
        match self.entries.get_mut(&ip) {
            Some(e) => {
                if queue_full || usize::from(e.pending) >= MAX_PENDING {
                    return Hold::QueueFull(pkt);
                }
                e.pending += 1;
                self.held.push_back((ip, pkt));
                if matches!(e.state, State::Incomplete { .. }) {
                    return Hold::Queued;
                }
                // Failed entry whose hold expired (or a stale race): start again.
                e.state = State::Incomplete { tries: 1, next };
                self.due = due;
                e.vlan = vlan;
                self.changed = true;
                Hold::QueuedSendRequest
            }
            None if full => Hold::TableFull(pkt),
            None if queue_full => Hold::QueueFull(pkt),
            None => {
                self.held.push_back((ip, pkt));
                self.entries.insert(
                    ip,
                    Entry {
                        mac: MacAddr::ZERO,
                        vlan,
                        state: State::Incomplete { tries: 1, next },
                        pending: 1,
                    },
                );
                self.due = due;
                self.changed = true;
                Hold::QueuedSendRequest
            }
        }
    }

    /// Packets held for all unresolved next hops together.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the packets held for `ip` out of the queue, in arrival order, keeping the
    /// others' order.
    fn take_held(held: &mut VecDeque<(A, Packet)>, ip: A, mut each: impl FnMut(Packet)) {
        for _ in 0..held.len() {
            let Some((addr, p)) = held.pop_front() else {
                break;
            };
            if addr == ip {
                each(p);
            } else {
                held.push_back((addr, p));
            }
        }
    }

    /// Records that `ip` is at `mac`. With `create` false, only an existing entry is
    /// updated (RFC 826's merge rule for packets not addressed to us). Packets that
    /// were waiting for this address are handed to `release` with the MAC to use.
    pub fn learn(
        &mut self,
        ip: A,
        mac: MacAddr,
        vlan: u16,
        now: Instant,
        create: bool,
        mut release: impl FnMut(Packet, MacAddr, u16),
    ) -> bool {
        let until = now + self.cfg.reachable;
        let room = self.entries.len() < self.cfg.max_entries;
        match self.entries.get_mut(&ip) {
            Some(e) => {
                if e.mac != mac || !matches!(e.state, State::Reachable { .. }) {
                    self.changed = true;
                }
                e.mac = mac;
                e.vlan = vlan;
                e.state = State::Reachable { until };
                if std::mem::take(&mut e.pending) > 0 {
                    Self::take_held(&mut self.held, ip, |p| release(p, mac, vlan));
                }
                true
            }
            None if create && room => {
                self.entries.insert(
                    ip,
                    Entry {
                        mac,
                        vlan,
                        state: State::Reachable { until },
                        pending: 0,
                    },
                );
                self.changed = true;
                true
            }
            None => false,
        }
    }

    /// Runs retries and expiry when due; cheap to call every loop turn.
    pub fn poll(&mut self, now: Instant, mut on: impl FnMut(ArpTimerEvent<A>)) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let cfg = self.cfg;
        let mut changed = false;
        let held = &mut self.held;
        self.entries.retain(|&ip, e| match e.state {
            State::Incomplete { tries, next } | State::Stale { tries, next } if now >= next => {
                let stale = matches!(e.state, State::Stale { .. });
                if tries >= cfg.retries {
                    changed = true;
                    if std::mem::take(&mut e.pending) > 0 {
                        Self::take_held(held, ip, |p| on(ArpTimerEvent::Unresolved(p)));
                    }
                    if stale {
                        return false;
                    }
                    e.state = State::Failed {
                        until: now + cfg.failed_hold,
                    };
                    return true;
                }
                let next = now + cfg.retry;
                e.state = if stale {
                    State::Stale {
                        tries: tries + 1,
                        next,
                    }
                } else {
                    State::Incomplete {
                        tries: tries + 1,
                        next,
                    }
                };
                on(ArpTimerEvent::Request { ip, vlan: e.vlan });
                true
            }
            State::Failed { until } if now >= until => {
                changed = true;
                false
            }
            _ => true,
        });
        self.changed |= changed;
        // The sweep walked the table anyway: one more pass makes `due` exact.
        self.due = self
            .entries
            .values()
            .filter_map(|e| e.state.deadline())
            .min();
    }

    /// When [`ArpCache::poll`] next has work: the first retry, refresh or end of a
    /// failed hold, taken at the sweep that follows it (sweeps run at most every
    /// [`SWEEP_INTERVAL`]). `None` while every entry is simply reachable: a reachable
    /// entry goes stale on the lookup that finds it expired, not on a timer. Cheap (a
    /// cached value), so it can be asked every loop turn. After a reply made an entry
    /// reachable it may be early until the next sweep, never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        Some(self.due?.max(self.next_sweep))
    }

    /// The entries, for display.
    pub fn view(&self, now: Instant) -> Vec<ArpEntryView<A>> {
        let mut v: Vec<ArpEntryView<A>> = self
            .entries
            .iter()
            .map(|(ip, e)| {
                let (state, at) = match e.state {
                    State::Incomplete { next, .. } => ("incomplete", next),
                    State::Reachable { until } if now < until => ("reachable", until),
                    State::Reachable { until } => ("stale", until),
                    State::Stale { next, .. } => ("stale", next),
                    State::Failed { until } => ("failed", until),
                };
                ArpEntryView {
                    ip: *ip,
                    mac: e.mac.to_string(),
                    vlan: e.vlan,
                    state,
                    expires_in_ms: (at - now).as_millis() as u64,
                }
            })
            .collect();
        v.sort_by_key(|e| e.ip);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::PacketPool;

    const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);

    fn cache() -> ArpCache {
        ArpCache::new(ArpConfig {
            max_entries: 2,
            ..Default::default()
        })
    }

    #[test]
    fn miss_queue_resolve_release() {
        let pool = PacketPool::new(8);
        let mut c = cache();
        let t0 = Instant::from_secs(1);
        assert_eq!(c.lookup(IP, t0), Lookup::Miss);
        assert!(matches!(
            c.hold(IP, 1, pool.alloc().unwrap(), t0),
            Hold::QueuedSendRequest
        ));
        assert!(matches!(
            c.hold(IP, 1, pool.alloc().unwrap(), t0),
            Hold::Queued
        ));
        assert_eq!(c.lookup(IP, t0), Lookup::Miss);
        let mac = MacAddr::local(9);
        let mut released = 0;
        assert!(c.learn(IP, mac, 1, t0, false, |_, m, v| {
            assert_eq!((m, v), (mac, 1));
            released += 1;
        }));
        assert_eq!(released, 2);
        assert_eq!(c.lookup(IP, t0), Lookup::Hit(mac));
    }

    #[test]
    fn next_deadline_follows_retries_failure_and_expiry() {
        let pool = PacketPool::new(4);
        let mut c = cache();
        let s = Duration::from_secs(1);
        let t0 = Instant::from_secs(10);
        assert_eq!(c.next_deadline(), None);
        c.hold(IP, 0, pool.alloc().unwrap(), t0);
        assert_eq!(c.next_deadline(), Some(t0 + s), "first retry");
        c.poll(t0, |_| panic!("nothing due yet"));
        assert_eq!(c.next_deadline(), Some(t0 + s));
        let mut requests = 0;
        for k in 1..=2 {
            let t = Instant::from_secs(10 + k);
            c.poll(t, |ev| {
                requests += matches!(ev, ArpTimerEvent::Request { .. }) as u32
            });
            assert_eq!(c.next_deadline(), Some(t + s), "retry {k}");
        }
        assert_eq!(requests, 2);
        let t3 = Instant::from_secs(13);
        let mut unresolved = 0;
        c.poll(t3, |ev| {
            unresolved += matches!(ev, ArpTimerEvent::Unresolved(_)) as u32
        });
        assert_eq!(unresolved, 1);
        assert_eq!(
            c.next_deadline(),
            Some(t3 + ArpConfig::default().failed_hold),
            "the failed hold ends"
        );
        c.poll(t3 + ArpConfig::default().failed_hold, |_| {});
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);

        // A deadline is never before the next sweep; a reachable entry has none.
        let t = Instant::from_secs(20);
        c.poll(t, |_| {});
        c.hold(IP, 0, pool.alloc().unwrap(), t);
        c.learn(IP, MacAddr::local(1), 0, t, false, |_, _, _| {});
        assert!(c.next_deadline().is_some_and(|d| d >= t + SWEEP_INTERVAL));
        c.poll(t + s, |_| {});
        assert_eq!(c.next_deadline(), None, "exact again after a sweep");
    }

    #[test]
    fn queue_and_table_are_bounded() {
        let pool = PacketPool::new(MAX_PENDING + 4);
        let mut c = cache();
        let t = Instant::ZERO;
        for _ in 0..MAX_PENDING {
            c.hold(IP, 0, pool.alloc().unwrap(), t);
        }
        assert!(matches!(
            c.hold(IP, 0, pool.alloc().unwrap(), t),
            Hold::QueueFull(_)
        ));
        c.hold(Ipv4Addr::new(198, 18, 2, 12), 0, pool.alloc().unwrap(), t);
        assert!(matches!(
            c.hold(Ipv4Addr::new(198, 18, 2, 13), 0, pool.alloc().unwrap(), t),
            Hold::TableFull(_)
        ));
        assert!(!c.learn(
            Ipv4Addr::new(198, 18, 2, 14),
            MacAddr::local(1),
            0,
            t,
            true,
            |_, _, _| {}
        ));
        assert_eq!(c.held(), MAX_PENDING + 1);
    }

    /// A burst of new connections to members nobody has talked to yet (32 clients
    /// spread over 4 members right after a start): every SYN waits for its member's
    /// reply and none is lost; each member's packets leave in the order they came.
    #[test]
    fn a_burst_to_several_new_next_hops_is_held_whole() {
        let pool = PacketPool::new(MAX_HELD + 8);
        let mut c: ArpCache = ArpCache::new(ArpConfig::default());
        let t = Instant::ZERO;
        let hop = |i: usize| Ipv4Addr::new(198, 18, 2, 11 + (i % 4) as u8);
        for i in 0..32 {
            let mut p = pool.alloc().unwrap();
            assert!(p.extend_from_slice(&[i as u8]));
            let first = i < 4;
            assert!(
                matches!(
                    (c.hold(hop(i), 0, p, t), first),
                    (Hold::QueuedSendRequest, true) | (Hold::Queued, false)
                ),
                "packet {i}"
            );
        }
        for m in 0..4 {
            let mut order = Vec::new();
            assert!(c.learn(
                hop(m),
                MacAddr::local(m as u32),
                0,
                t,
                false,
                |p, mac, _| {
                    assert_eq!(mac, MacAddr::local(m as u32));
                    order.push(p.data()[0]);
                }
            ));
            let want: Vec<u8> = (0..32u8).filter(|i| usize::from(*i) % 4 == m).collect();
            assert_eq!(order, want, "member {m}: all of its packets, in order");
        }
        assert_eq!(c.held(), 0);
        assert_eq!(pool.available(), MAX_HELD + 8);

        // The whole queue is bounded too: beyond MAX_HELD, new packets are refused.
        let mut c: ArpCache = ArpCache::new(ArpConfig::default());
        let mut refused = 0;
        for i in 0..MAX_HELD + 4 {
            let ip = Ipv4Addr::new(198, 18, 3, (i / MAX_PENDING) as u8);
            if let Hold::QueueFull(_) = c.hold(ip, 0, pool.alloc().unwrap(), t) {
                refused += 1;
            }
        }
        assert_eq!((c.held(), refused), (MAX_HELD, 4));
    }

    /// A next hop that never answers drops only its own packets; the others' stay held.
    #[test]
    fn an_unanswered_next_hop_drops_only_its_own_packets() {
        let pool = PacketPool::new(16);
        let mut c = cache();
        let mut t = Instant::from_secs(10);
        let other = Ipv4Addr::new(198, 18, 2, 12);
        c.hold(IP, 0, pool.alloc().unwrap(), t);
        c.hold(IP, 0, pool.alloc().unwrap(), t);
        t += Duration::from_millis(1_500);
        c.hold(other, 0, pool.alloc().unwrap(), t);
        let mut dropped = 0;
        for _ in 0..30 {
            t += Duration::from_millis(100);
            c.poll(t, |ev| {
                dropped += matches!(ev, ArpTimerEvent::Unresolved(_)) as u32
            });
            if dropped > 0 {
                break;
            }
        }
        assert_eq!(
            (dropped, c.held()),
            (2, 1),
            "IP's two dropped, other's one held"
        );
        let mut released = 0;
        c.learn(other, MacAddr::local(2), 0, t, false, |_, _, _| {
            released += 1
        });
        assert_eq!(released, 1);
        assert_eq!(pool.available(), 16);
    }

    #[test]
    fn unanswered_requests_retry_then_fail_then_clear() {
        let pool = PacketPool::new(4);
        let mut c = cache();
        let mut t = Instant::from_secs(10);
        c.hold(IP, 0, pool.alloc().unwrap(), t);
        let mut requests = 1;
        let mut dropped = 0;
        for _ in 0..100 {
            t += Duration::from_millis(100);
            c.poll(t, |ev| match ev {
                ArpTimerEvent::Request { .. } => requests += 1,
                ArpTimerEvent::Unresolved(_) => dropped += 1,
            });
            if dropped > 0 {
                break;
            }
        }
        assert_eq!(requests, 3, "first request plus two retries");
        assert_eq!(dropped, 1);
        assert_eq!(pool.available(), 4, "queued packet freed");
        assert_eq!(c.lookup(IP, t), Lookup::Failed);
        t += Duration::from_secs(4);
        c.poll(t, |_| {});
        assert_eq!(c.lookup(IP, t), Lookup::Miss);
        assert!(c.is_empty());
    }

    #[test]
    fn reachable_goes_stale_then_refreshes_or_expires() {
        let mut c = cache();
        let mut t = Instant::from_secs(1);
        let mac = MacAddr::local(3);
        c.learn(IP, mac, 0, t, true, |_, _, _| {});
        t += Duration::from_secs(61);
        assert_eq!(c.lookup(IP, t), Lookup::HitRefresh(mac));
        assert_eq!(c.lookup(IP, t), Lookup::Hit(mac));
        let mut asked = 0;
        for _ in 0..100 {
            t += Duration::from_millis(100);
            c.poll(t, |ev| {
                if let ArpTimerEvent::Request { .. } = ev {
                    asked += 1
                }
            });
        }
        assert_eq!(asked, 2);
        assert_eq!(
            c.lookup(IP, t),
            Lookup::Miss,
            "unanswered refresh removes the entry"
        );
        let view = c.view(t);
        assert!(view.is_empty());
    }

    #[test]
    fn the_ipv6_cache_keeps_the_same_states() {
        let pool = PacketPool::new(4);
        let mut c = NdCache::new(ArpConfig::default());
        let ip: Ipv6Addr = "2001:2:0:2::11".parse().unwrap();
        let mut t = Instant::from_secs(1);
        assert_eq!(c.lookup(ip, t), Lookup::Miss);
        assert!(matches!(
            c.hold(ip, 1, pool.alloc().unwrap(), t),
            Hold::QueuedSendRequest
        ));
        let mut asked = Vec::new();
        t += Duration::from_secs(1);
        c.poll(t, |ev| {
            if let ArpTimerEvent::Request { ip, vlan } = ev {
                asked.push((ip, vlan));
            }
        });
        assert_eq!(asked, vec![(ip, 1)], "a retry for the IPv6 address");
        let mac = MacAddr::local(4);
        let mut released = 0;
        c.learn(ip, mac, 1, t, false, |_, m, _| {
            assert_eq!(m, mac);
            released += 1
        });
        assert_eq!(released, 1);
        assert_eq!(c.lookup(ip, t), Lookup::Hit(mac));
        assert_eq!(c.view(t)[0].state, "reachable");
        assert_eq!(pool.available(), 4);
    }
}
