//! `pipe`: an in-memory back-to-back wire between two ports, for tests without root.
//!
//! A frame transmitted on one end is received, unchanged and in order, on the other.
//! Each direction holds at most `capacity` frames; more are dropped as `TxRingFull`,
//! like a full NIC ring. Both ends live on one thread (packets are per-worker objects).
//!
//! A frame is stamped ([`PacketMeta::rx_time`](crate::buf::PacketMeta)) as it enters the
//! wire, from the receiving end's [`PipeClock`] when it has one (tests drive it with
//! their virtual time) or the monotonic clock otherwise: the wire has no delay, so that
//! is when it reached the receiver's queue, and time spent waiting there counts.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use crate::buf::{Packet, PacketPool};
use crate::port::{Burst, MacAddr, Port, PortCounters, PortDrop};

/// One direction of the wire: the frames waiting for the receiving end, and the clock
/// that stamps them as they arrive.
struct Queue {
    frames: VecDeque<Packet>,
    clock: Option<PipeClock>,
}

type Wire = Rc<RefCell<Queue>>;

/// A virtual clock for pipe ports: nanoseconds in the data plane's time base, set by
/// the test that drives both ends.
#[derive(Debug, Clone, Default)]
pub struct PipeClock(Rc<Cell<u64>>);

impl PipeClock {
    /// A clock at 0.
    pub fn new() -> Self {
        PipeClock::default()
    }

    /// Sets the time, in nanoseconds.
    pub fn set(&self, ns: u64) {
        self.0.set(ns)
    }

    /// The time, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.0.get()
    }
}

/// One end of an in-memory wire.
pub struct PipePort {
    name: String,
    mac: MacAddr,
    mtu: usize,
    capacity: usize,
    rx: Wire,
    tx: Wire,
    counters: Arc<PortCounters>,
}

/// Makes a connected pair of ports named `a` and `b`, each direction holding at most
/// `capacity` frames. MAC addresses are derived from the names' order (a = 1, b = 2 of `seed`).
pub fn pair(a: &str, b: &str, seed: u32, capacity: usize) -> (PipePort, PipePort) {
    let queue = || {
        Rc::new(RefCell::new(Queue {
            frames: VecDeque::with_capacity(capacity),
            clock: None,
        }))
    };
    let (ab, ba): (Wire, Wire) = (queue(), queue());
    let end = |name: &str, mac, rx: &Wire, tx: &Wire| PipePort {
        name: name.to_string(),
        mac,
        mtu: 1500,
        capacity,
        rx: rx.clone(),
        tx: tx.clone(),
        counters: PortCounters::new_shared(),
    };
    (
        end(a, MacAddr::local(seed.wrapping_mul(2)), &ba, &ab),
        end(b, MacAddr::local(seed.wrapping_mul(2) + 1), &ab, &ba),
    )
}

impl PipePort {
    /// Sets the MAC address this end reports.
    pub fn set_mac(&mut self, mac: MacAddr) {
        self.mac = mac;
    }

    /// Stamps the frames arriving at this end with `clock` instead of the monotonic
    /// clock (for tests that drive virtual time).
    pub fn set_clock(&mut self, clock: PipeClock) {
        self.rx.borrow_mut().clock = Some(clock);
    }

    /// Frames waiting to be received on this end.
    pub fn pending(&self) -> usize {
        self.rx.borrow().frames.len()
    }
}

impl Port for PipePort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, _pool: &PacketPool, out: &mut Burst) -> usize {
        let mut rx = self.rx.borrow_mut();
        let mut n = 0;
        while !out.is_full() {
            let Some(mut p) = rx.frames.pop_front() else {
                break;
            };
            p.meta = crate::buf::PacketMeta {
                rx_time: p.meta.rx_time,
                ..Default::default()
            };
            self.counters.rx(p.len());
            out.push(p);
            n += 1;
        }
        if n > 0 {
            self.counters.rx_bursts.inc();
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        let mut tx = self.tx.borrow_mut();
        let mut sent = 0;
        let stamp = match &tx.clock {
            Some(c) => c.now(),
            None if pkts.is_empty() => 0,
            None => crate::clock::monotonic_ns(),
        };
        for mut p in pkts.drain(..) {
            p.meta.rx_time = stamp;
            if p.len() > self.mtu + 18 {
                self.counters.count_drop(PortDrop::TxTooBig, 1);
            } else if tx.frames.len() >= self.capacity {
                self.counters.count_drop(PortDrop::TxRingFull, 1);
            } else {
                self.counters.tx(p.len());
                tx.frames.push_back(p);
                sent += 1;
            }
        }
        sent
    }

    fn wait_rx(&mut self, _timeout: std::time::Duration) {}

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_in_order_and_overflow_is_counted() {
        let pool = PacketPool::new(16);
        let (mut a, mut b) = pair("a", "b", 1, 2);
        let mut burst = Burst::new();
        for i in 0..3u8 {
            burst.push(pool.alloc_from(&[i; 60]).unwrap());
        }
        assert_eq!(a.tx_burst(&mut burst), 2);
        assert!(burst.is_empty());
        assert_eq!(a.counters().dropped(PortDrop::TxRingFull), 1);
        let mut got = Burst::new();
        assert_eq!(b.rx_burst(&pool, &mut got), 2);
        assert_eq!(got[0].data()[0], 0);
        assert_eq!(got[1].data()[0], 1);
        assert_eq!(b.counters().rx_packets.get(), 2);
        assert_eq!(a.rx_burst(&pool, &mut got), 0);
        assert_ne!(a.mac(), b.mac());
    }

    #[test]
    fn frames_are_stamped_as_they_reach_the_receiver() {
        let pool = PacketPool::new(4);
        let (mut a, mut b) = pair("a", "b", 1, 4);
        let clock = PipeClock::new();
        b.set_clock(clock.clone());
        clock.set(5_000);
        let mut burst = Burst::new();
        burst.push(pool.alloc_from(&[0; 60]).unwrap());
        a.tx_burst(&mut burst);
        clock.set(9_000);
        let mut got = Burst::new();
        b.rx_burst(&pool, &mut got);
        assert_eq!(
            got[0].meta.rx_time, 5_000,
            "stamped on arrival, not on receive"
        );
        got.clear();

        // Without a clock of its own, an end stamps with the monotonic clock.
        burst.push(pool.alloc_from(&[0; 60]).unwrap());
        let before = crate::clock::monotonic_ns();
        b.tx_burst(&mut burst);
        let after = crate::clock::monotonic_ns();
        a.rx_burst(&pool, &mut got);
        let t = got[0].meta.rx_time;
        assert!(before <= t && t <= after, "{before} {t} {after}");
    }
}
