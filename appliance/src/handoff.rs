//! Handing frames to the worker that owns their flow, for port drivers that cannot steer
//! in the kernel or the NIC.
//!
//! Each worker owns its flows (fastl4 entries, TCP connections, monitor probes), so
//! every packet of a flow must reach one worker. AF_PACKET steers in the kernel: its
//! fanout program sends a flow's frames to one socket of the group
//! ([`Steering::FanoutXor`]). AF_XDP and DPDK cannot on the machines Rouge is tested on:
//! the NIC (or veth) picks the receive queue, an XSKMAP redirect reaches only the
//! socket of the queue the frame came in on, and DPDK's vdevs spread frames by their
//! own hash; such ports report [`Steering::Opaque`]. With several workers, the worker
//! that receives a frame on such a port therefore computes the frame's owner in
//! software, with the very formula of the AF_PACKET program
//! ([`fanout_xor_frame`]), and the pipeline chooses its source ports (SNAT, monitors)
//! under the same description, `FanoutXor` over the workers: [`plan`] decides this
//! once, from the ports' own descriptions.
//!
//! A frame another worker owns goes to that worker's inbox, one hop at most: the owner
//! processes what it takes from its inbox and never hands it on.
//!
//! - **Inboxes**: per worker, two bounded lock-free queues (crossbeam's `ArrayQueue`) of
//!   [`HandedFrame`] slots allocated at start ([`INBOX_SLOTS`]): `full` frames waiting
//!   for the owner and `empty` slots waiting for senders. A sender takes an empty slot
//!   and swaps its packet's buffer into it ([`Packet::hand_over`], no copy; a packet
//!   backed by an AF_XDP frame, which belongs to the sender's ports, is copied); the owner
//!   adopts the frame into its own pool ([`PacketPool::adopt`], another swap) and
//!   returns the slot. Nothing is allocated or locked per frame, and no thread touches
//!   another's pool.
//! - **Counted**: `handoffs` (frames a worker handed on) and `handoff_drops` (no empty
//!   slot in the owner's inbox, counted by the sender; no free buffer in the owner's
//!   pool, counted by the owner) in the pipeline counters (`rouge show stats`,
//!   `/metrics`).
//! - **Waking**: an owner that sleeps (adaptive idle policy) says so in its inbox
//!   first ([`Courier::may_sleep`]) and looks at its inbox once more; a sender that
//!   queued frames for it rings its waker once per burst ([`Courier::wake_owners`]),
//!   never per frame and never when the owner is awake.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use rouge_drivers::steer::{fanout_xor_frame, Steering};
use rouge_drivers::wait::Waker;
use rouge_drivers::{Burst, HandedFrame, Packet, PacketPool};
use rouge_pipelines::counters::PipelineCounters;

/// Frames a worker's inbox holds (slots allocated at start, 2 KiB each).
pub const INBOX_SLOTS: usize = 512;

/// How frames reach their owners with `workers` workers whose ports describe their
/// steering as `ports` (in interface order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steering the pipeline chooses source ports under (where a flow's frames are
    /// processed, after any hand-off).
    pub steering: Steering,
    /// Per port: true when its frames are handed to their owner in software.
    pub hand_off: Vec<bool>,
}

impl Plan {
    /// True when any port's frames are handed over.
    pub fn any(&self) -> bool {
        self.hand_off.iter().any(|&h| h)
    }
}

/// Decides the steering of a worker's pipeline and which ports hand frames over:
///
/// - one worker: the ports' description (or `Opaque`), nothing handed over;
/// - every port describes the same spread over exactly `workers` workers (AF_PACKET's
///   fanout, or symmetric RSS programmed into a NIC): that, nothing handed over;
/// - otherwise `FanoutXor` over the workers, and every port that does not already
///   spread its frames so hands them over in software.
pub fn plan(workers: usize, ports: &[Steering]) -> Plan {
    let none = vec![false; ports.len()];
    if workers <= 1 {
        return Plan {
            steering: ports.first().copied().unwrap_or(Steering::Opaque),
            hand_off: none,
        };
    }
    if let Some(&first) = ports.first() {
        if first.workers() == Some(workers) && ports.iter().all(|&s| s == first) {
            return Plan {
                steering: first,
                hand_off: none,
            };
        }
    }
    let software = Steering::FanoutXor {
        workers: workers as u32,
    };
    Plan {
        steering: software,
        hand_off: ports.iter().map(|&s| s != software).collect(),
    }
}

/// One worker's inbox.
struct Inbox {
    /// Frames waiting for the owner.
    full: ArrayQueue<HandedFrame>,
    /// Slots waiting for a sender.
    empty: ArrayQueue<HandedFrame>,
    /// Set while the owner sleeps (or is about to).
    asleep: AtomicBool,
}

/// The inboxes of every worker (shared by all of them).
pub struct Handoff {
    inboxes: Box<[Inbox]>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("workers", &self.inboxes.len())
            .finish()
    }
}

impl Handoff {
    /// Inboxes for `workers` workers of `slots` frames each (allocated here, once).
    pub fn new(workers: usize, slots: usize) -> Handoff {
        let slots = slots.max(1);
        let inboxes = (0..workers)
            .map(|_| {
                let empty = ArrayQueue::new(slots);
                for _ in 0..slots {
                    // Cannot fail: the queue has room for exactly `slots`.
                    let _ = empty.push(HandedFrame::new());
                }
                Inbox {
                    full: ArrayQueue::new(slots),
                    empty,
                    asleep: AtomicBool::new(false),
                }
            })
            .collect();
        Handoff { inboxes }
    }

    /// Workers served.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }
}

/// A worker's side of the hand-off: its own inbox and the others' (see the
/// [module documentation](self)).
pub struct Courier {
    me: usize,
    handoff: Arc<Handoff>,
    counters: Arc<PipelineCounters>,
    /// Workers that were handed frames since the last [`Courier::wake_owners`].
    to_wake: Vec<bool>,
}

impl Courier {
    /// Worker `me`'s courier; its counters are `counters`.
    pub fn new(me: usize, handoff: Arc<Handoff>, counters: Arc<PipelineCounters>) -> Courier {
        let n = handoff.workers();
        Courier {
            me,
            handoff,
            counters,
            to_wake: vec![false; n],
        }
    }

    /// The worker that owns the flow of `frame` (the AF_PACKET fanout formula over
    /// every worker).
    #[inline]
    pub fn owner(&self, frame: &[u8]) -> usize {
        fanout_xor_frame(frame, self.handoff.workers() as u32) as usize
    }

    /// Returns `pkt` when this worker owns it; otherwise hands it to its owner (or
    /// drops it, counted, when the owner's inbox is full) and returns `None`.
    #[inline]
    pub fn route(&mut self, pkt: Packet) -> Option<Packet> {
        let owner = self.owner(pkt.data());
        if owner == self.me {
            return Some(pkt);
        }
        self.send(owner, pkt);
        None
    }

    /// Hands `pkt` to worker `owner`.
    fn send(&mut self, owner: usize, pkt: Packet) {
        let Some(inbox) = self.handoff.inboxes.get(owner) else {
            self.counters.handoff_drops.inc();
            return;
        };
        let Some(mut slot) = inbox.empty.pop() else {
            self.counters.handoff_drops.inc();
            return;
        };
        pkt.hand_over(&mut slot);
        match inbox.full.push(slot) {
            Ok(()) => {
                self.counters.handoffs.inc();
                self.to_wake[owner] = true;
            }
            // Cannot happen (there are as many slots as places in `full`); if it did,
            // the slot goes back and the frame is counted lost.
            Err(slot) => {
                let _ = inbox.empty.push(slot);
                self.counters.handoff_drops.inc();
            }
        }
    }

    /// Rings the waker of every sleeping worker that was handed frames since the last
    /// call (`wakers(i)`: worker `i`'s). Called once per receive burst.
    pub fn wake_owners<'w>(&mut self, wakers: impl Fn(usize) -> Option<&'w Waker>) {
        for (owner, flag) in self.to_wake.iter_mut().enumerate() {
            if !std::mem::take(flag) {
                continue;
            }
            // Pairs with the fence in `may_sleep`: either the owner sees the frame in
            // its inbox before sleeping, or this sees its `asleep`.
            fence(Ordering::SeqCst);
            if self.handoff.inboxes[owner].asleep.load(Ordering::SeqCst) {
                if let Some(w) = wakers(owner) {
                    w.wake();
                }
            }
        }
    }

    /// Takes frames handed to this worker into `out` (up to its free room), as packets
    /// of `pool`. Returns how many were added. A frame the pool has no buffer for is
    /// dropped and counted.
    pub fn receive(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        let inbox = &self.handoff.inboxes[self.me];
        let before = out.len();
        while out.len() < out.capacity() {
            let Some(mut slot) = inbox.full.pop() else {
                break;
            };
            match pool.adopt(&mut slot) {
                Some(pkt) => out.push(pkt),
                None => self.counters.handoff_drops.inc(),
            }
            // Cannot fail: a slot popped from `full` has its place in `empty`.
            let _ = inbox.empty.push(slot);
        }
        out.len() - before
    }

    /// Frames waiting in this worker's inbox.
    pub fn waiting(&self) -> usize {
        self.handoff.inboxes[self.me].full.len()
    }

    /// Announces that this worker is about to sleep. Returns false (and stays awake)
    /// when frames arrived meanwhile; after a sleep, call [`Courier::awake`].
    pub fn may_sleep(&self) -> bool {
        let inbox = &self.handoff.inboxes[self.me];
        inbox.asleep.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if inbox.full.is_empty() {
            return true;
        }
        inbox.asleep.store(false, Ordering::Relaxed);
        false
    }

    /// Announces that this worker is awake again (senders stop ringing its waker).
    pub fn awake(&self) {
        self.handoff.inboxes[self.me]
            .asleep
            .store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::steer::fanout_xor;

    const RSS: Steering = Steering::SymmetricRss {
        queues: 2,
        reta_size: 128,
    };

    #[test]
    fn the_plan_hands_over_only_what_no_one_else_steers() {
        let xor2 = Steering::FanoutXor { workers: 2 };
        let p = plan(1, &[Steering::Opaque, Steering::Opaque]);
        assert_eq!((p.steering, p.any()), (Steering::Opaque, false));
        let p = plan(2, &[xor2, xor2]);
        assert_eq!((p.steering, p.any()), (xor2, false), "AF_PACKET fanout");
        let p = plan(2, &[RSS, RSS]);
        assert_eq!(
            (p.steering, p.any()),
            (RSS, false),
            "a NIC with symmetric RSS"
        );
        let p = plan(2, &[Steering::Opaque, Steering::Opaque]);
        assert_eq!((p.steering, p.hand_off), (xor2, vec![true, true]));
        // AF_PACKET beside AF_XDP: the fanout already agrees, the other hands over.
        let p = plan(2, &[xor2, Steering::Opaque]);
        assert_eq!((p.steering, p.hand_off), (xor2, vec![false, true]));
        // RSS beside AF_PACKET: two formulas cannot both hold; software decides.
        let p = plan(2, &[RSS, xor2]);
        assert_eq!((p.steering, p.hand_off), (xor2, vec![true, false]));
        // A spread over another number of workers is not this one.
        let p = plan(3, &[xor2]);
        assert_eq!(
            (p.steering, p.hand_off),
            (Steering::FanoutXor { workers: 3 }, vec![true])
        );
    }

    /// An IPv4 UDP frame from `src:sport` to `dst:dport`.
    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn frames_reach_their_owner_in_one_hop_and_pools_keep_their_size() {
        let handoff = Arc::new(Handoff::new(3, 8));
        let counters: Vec<_> = (0..3).map(|_| PipelineCounters::new_shared()).collect();
        let mut c: Vec<_> = (0..3)
            .map(|w| Courier::new(w, handoff.clone(), counters[w].clone()))
            .collect();
        let pools: Vec<_> = (0..3).map(|_| PacketPool::new(16)).collect();
        let (src, dst) = ([198, 18, 1, 2], [198, 18, 1, 100]);
        let mut kept = Vec::new();
        let mut handed = [0usize; 3];
        // Worker 0 receives 6 flows; each lands where the formula says.
        for sport in 40000..40006u16 {
            let frame = udp(src, dst, sport, 80);
            let owner = fanout_xor(src, dst, sport, 80, 3) as usize;
            assert_eq!(c[0].owner(&frame), owner);
            let mut pkt = pools[0].alloc_from(&frame).unwrap();
            pkt.meta.port = 1;
            match c[0].route(pkt) {
                Some(p) => {
                    assert_eq!(owner, 0);
                    kept.push(p);
                }
                None => handed[owner] += 1,
            }
        }
        assert!(
            handed[1] > 0 && handed[2] > 0 && !kept.is_empty(),
            "{handed:?}"
        );
        assert_eq!(
            counters[0].handoffs.get() as usize,
            handed[1] + handed[2],
            "counted by the sender"
        );
        assert_eq!(
            pools[0].available(),
            16 - kept.len(),
            "no buffer left pool 0"
        );
        for w in 1..3 {
            assert_eq!(c[w].waiting(), handed[w]);
            let mut out = Burst::new();
            assert_eq!(c[w].receive(&pools[w], &mut out), handed[w]);
            for p in out.iter() {
                let sport = u16::from_be_bytes([p.data()[34], p.data()[35]]);
                assert_eq!(fanout_xor(src, dst, sport, 80, 3) as usize, w);
                assert_eq!(p.meta.port, 1, "the metadata travels");
                // One hop: the owner keeps what it owns.
                assert_eq!(c[w].owner(p.data()), w);
            }
            assert_eq!(pools[w].available(), 16 - handed[w]);
            assert_eq!(c[w].waiting(), 0);
        }
        assert_eq!(
            counters.iter().map(|c| c.handoff_drops.get()).sum::<u64>(),
            0
        );
    }

    #[test]
    fn a_full_inbox_and_an_empty_pool_drop_and_count() {
        let handoff = Arc::new(Handoff::new(2, 4));
        let (c0, c1) = (
            PipelineCounters::new_shared(),
            PipelineCounters::new_shared(),
        );
        let mut a = Courier::new(0, handoff.clone(), c0.clone());
        let mut b = Courier::new(1, handoff, c1.clone());
        let pool = PacketPool::new(16);
        // Flows of worker 1 (src ^ dst ^ ports odd).
        let frames: Vec<_> = (0..64u16)
            .map(|p| udp([198, 18, 1, 2], [198, 18, 1, 100], 40000 + p, 80))
            .filter(|f| a.owner(f) == 1)
            .take(6)
            .collect();
        for f in &frames {
            assert!(a.route(pool.alloc_from(f).unwrap()).is_none());
        }
        assert_eq!((c0.handoffs.get(), c0.handoff_drops.get()), (4, 2));
        assert_eq!(
            pool.available(),
            16,
            "dropped or handed, every buffer is back"
        );
        // The owner's pool has room for 3 of the 4.
        let small = PacketPool::new(3);
        let mut out = Burst::new();
        assert_eq!(b.receive(&small, &mut out), 3);
        assert_eq!(c1.handoff_drops.get(), 1);
        assert_eq!(b.waiting(), 0, "the slot of the lost frame came back");
        drop(out);
        // Every slot is free again: four more frames fit.
        for f in frames.iter().take(4) {
            assert!(a.route(pool.alloc_from(f).unwrap()).is_none());
        }
        assert_eq!(c0.handoffs.get(), 8);
    }

    #[test]
    fn a_sleeping_owner_is_woken_once_and_an_awake_one_never() {
        let handoff = Arc::new(Handoff::new(2, 8));
        let mut a = Courier::new(0, handoff.clone(), PipelineCounters::new_shared());
        let b = Courier::new(1, handoff, PipelineCounters::new_shared());
        let waker = Waker::new().unwrap();
        let pool = PacketPool::new(8);
        let frame = (0..64u16)
            .map(|p| udp([198, 18, 1, 2], [198, 18, 1, 100], 40000 + p, 80))
            .find(|f| a.owner(f) == 1)
            .unwrap();
        let readable = |w: &Waker| {
            rouge_drivers::wait::wait_readable(&[w.fd()], Some(std::time::Duration::ZERO)) != 0
        };
        // Awake owner: no ring.
        assert!(a.route(pool.alloc_from(&frame).unwrap()).is_none());
        a.wake_owners(|i| (i == 1).then_some(&waker));
        assert!(!readable(&waker));
        // Frames waiting: the owner may not sleep.
        assert!(!b.may_sleep());
        let mut out = Burst::new();
        let mut b = b;
        b.receive(&pool, &mut out);
        drop(out);
        // Asleep: the next burst rings once.
        assert!(b.may_sleep());
        assert!(a.route(pool.alloc_from(&frame).unwrap()).is_none());
        assert!(a.route(pool.alloc_from(&frame).unwrap()).is_none());
        a.wake_owners(|i| (i == 1).then_some(&waker));
        assert!(readable(&waker));
        waker.clear();
        a.wake_owners(|i| (i == 1).then_some(&waker));
        assert!(!readable(&waker), "nothing new handed over: no ring");
        b.awake();
    }
}
