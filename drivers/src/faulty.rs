//! `faulty`: wraps any port and damages what it transmits, reproducibly.
//!
//! Loss, duplication, reordering, corruption (one flipped bit) and delay with jitter,
//! each drawn from a seeded generator so a failing test replays exactly; optionally a
//! bottleneck (a link rate with a drop-tail queue in bytes) before the delay, so
//! congestion control meets a real bandwidth limit. Faults apply
//! on transmit; wrap both ends of a wire to damage both directions. Time is injected
//! with [`Faulty::advance_to`]: held frames leave when the clock passes their due time,
//! never by reading a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use crate::buf::{Packet, PacketPool};
use crate::port::{Burst, MacAddr, Port, PortCounters};

/// What to do to transmitted frames. Probabilities are in 0.0..=1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Seed of the generator; the same seed and traffic give the same faults.
    pub seed: u64,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is sent twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay_ns` extra, so later frames pass it.
    pub reorder: f64,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// Fixed delay added to every frame, in nanoseconds.
    pub delay_ns: u64,
    /// Random extra delay, uniform in 0..jitter_ns.
    pub jitter_ns: u64,
    /// Extra delay of a reordered frame, in nanoseconds.
    pub reorder_delay_ns: u64,
    /// Most frames held at once; more are dropped and counted.
    pub max_held: usize,
    /// Bottleneck rate in bits per second (0: none): frames are serialised one after the
    /// other at this rate before the delay.
    pub rate_bps: u64,
    /// Bytes the bottleneck queue holds (frames waiting to be serialised); a frame that
    /// does not fit is dropped (counted as `queue_drops`). Only with `rate_bps`.
    pub queue_bytes: usize,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay_ns: 0,
            jitter_ns: 0,
            reorder_delay_ns: 100_000,
            max_held: 4096,
            rate_bps: 0,
            queue_bytes: 0,
        }
    }
}

/// What the wrapper did, for test assertions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames thrown away on purpose.
    pub lost: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Frames held back so others pass them.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames dropped because too many were held.
    pub overflow: u64,
    /// Frames dropped by the full bottleneck queue.
    pub queue_drops: u64,
}

/// SplitMix64: small, fast and good enough for fault injection.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

struct Held {
    due: u64,
    seq: u64,
    pkt: Packet,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// A port that damages what it transmits.
pub struct Faulty<P: Port> {
    inner: P,
    cfg: FaultConfig,
    rng: SplitMix64,
    held: BinaryHeap<Reverse<Held>>,
    seq: u64,
    now_ns: u64,
    stats: FaultStats,
    /// When the bottleneck finishes serialising the last frame queued (ns).
    link_free_ns: u64,
}

impl<P: Port> Faulty<P> {
    /// Wraps `inner` with the faults of `cfg`.
    pub fn new(inner: P, cfg: FaultConfig) -> Self {
        let rng = SplitMix64::new(cfg.seed);
        let held = BinaryHeap::with_capacity(cfg.max_held);
        Faulty {
            inner,
            cfg,
            rng,
            held,
            seq: 0,
            now_ns: 0,
            stats: FaultStats::default(),
            link_free_ns: 0,
        }
    }

    /// What has been done so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutable.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Frames held back right now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The due time of the earliest held frame, if any.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.held.peek().map(|h| h.0.due)
    }

    /// Moves the clock to `now_ns` and sends every held frame that is due.
    pub fn advance_to(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.release();
    }

    fn release(&mut self) {
        let mut out = Burst::new();
        while let Some(top) = self.held.peek() {
            if top.0.due > self.now_ns {
                break;
            }
            if out.is_full() {
                self.inner.tx_burst(&mut out);
            }
            if let Some(Reverse(h)) = self.held.pop() {
                out.push(h.pkt);
            }
        }
        if !out.is_empty() {
            self.inner.tx_burst(&mut out);
        }
    }

    fn hold(&mut self, pkt: Packet, extra_ns: u64) {
        if self.held.len() >= self.cfg.max_held {
            self.stats.overflow += 1;
            return;
        }
        let mut depart = self.now_ns;
        if self.cfg.rate_bps > 0 {
            let ns_for =
                |bytes: u64, rate: u64| (bytes as u128 * 8_000_000_000 / rate as u128) as u64;
            let start = self.link_free_ns.max(self.now_ns);
            // Bytes still waiting before this frame: the backlog of the link.
            let backlog = ((start - self.now_ns) as u128 * self.cfg.rate_bps as u128
                / 8_000_000_000) as usize;
            if backlog + pkt.len() > self.cfg.queue_bytes {
                self.stats.queue_drops += 1;
                return;
            }
            depart = start + ns_for(pkt.len() as u64, self.cfg.rate_bps);
            self.link_free_ns = depart;
        }
        self.seq += 1;
        let due = depart + self.cfg.delay_ns + self.rng.below(self.cfg.jitter_ns) + extra_ns;
        self.held.push(Reverse(Held {
            due,
            seq: self.seq,
            pkt,
        }));
    }
}

impl<P: Port> Port for Faulty<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mac(&self) -> MacAddr {
        self.inner.mac()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        self.inner.rx_burst(pool, out)
    }

    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        let n = pkts.len();
        for mut pkt in pkts.drain(..) {
            if self.rng.chance(self.cfg.loss) {
                self.stats.lost += 1;
                continue;
            }
            if self.rng.chance(self.cfg.corrupt) && !pkt.is_empty() {
                let bit = self.rng.below(pkt.len() as u64 * 8);
                pkt.data_mut()[(bit / 8) as usize] ^= 1 << (bit % 8);
                self.stats.corrupted += 1;
            }
            if self.rng.chance(self.cfg.duplicate) {
                if let Some(copy) = pkt.try_clone() {
                    self.stats.duplicated += 1;
                    self.hold(copy, 0);
                }
            }
            let extra = if self.rng.chance(self.cfg.reorder) {
                self.stats.reordered += 1;
                self.cfg.reorder_delay_ns
            } else {
                0
            };
            self.hold(pkt, extra);
        }
        self.release();
        n
    }

    fn wait_rx(&mut self, timeout: Duration) {
        self.inner.wait_rx(timeout)
    }

    fn tx_pending(&mut self) -> usize {
        // Frames held for a delay are pending too: they leave when the clock moves on.
        self.held.len() + self.inner.tx_pending()
    }

    fn counters(&self) -> &Arc<PortCounters> {
        self.inner.counters()
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_fd()
    }
    fn steering(&self) -> crate::steer::Steering {
        self.inner.steering()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe;

    fn send(port: &mut impl Port, pool: &PacketPool, n: u8) {
        for i in 0..n {
            let mut b = Burst::new();
            b.push(pool.alloc_from(&[i; 64]).unwrap());
            port.tx_burst(&mut b);
        }
    }

    fn drain(port: &mut impl Port, pool: &PacketPool) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let mut b = Burst::new();
            if port.rx_burst(pool, &mut b) == 0 {
                return got;
            }
            got.extend(b.iter().map(|p| p.data()[0]));
        }
    }

    #[test]
    fn loss_is_seeded_and_near_its_rate() {
        let run = |seed| {
            let pool = PacketPool::new(256);
            let (a, mut b) = pipe::pair("a", "b", 1, 256);
            let cfg = FaultConfig {
                seed,
                loss: 0.25,
                ..Default::default()
            };
            let mut f = Faulty::new(a, cfg);
            send(&mut f, &pool, 200);
            (drain(&mut b, &pool), f.stats())
        };
        let (got1, s1) = run(7);
        let (got2, _) = run(7);
        assert_eq!(got1, got2, "same seed, same faults");
        assert_eq!(got1.len() as u64 + s1.lost, 200);
        assert!((30..70).contains(&s1.lost), "lost {}", s1.lost);
    }

    #[test]
    fn delay_holds_frames_until_the_clock_passes() {
        let pool = PacketPool::new(16);
        let (a, mut b) = pipe::pair("a", "b", 1, 16);
        let cfg = FaultConfig {
            delay_ns: 1000,
            ..Default::default()
        };
        let mut f = Faulty::new(a, cfg);
        send(&mut f, &pool, 3);
        assert!(drain(&mut b, &pool).is_empty());
        f.advance_to(999);
        assert!(drain(&mut b, &pool).is_empty());
        f.advance_to(1000);
        assert_eq!(drain(&mut b, &pool), vec![0, 1, 2]);
    }

    #[test]
    fn reordering_lets_later_frames_pass() {
        let pool = PacketPool::new(64);
        let (a, mut b) = pipe::pair("a", "b", 1, 64);
        let cfg = FaultConfig {
            reorder: 0.3,
            reorder_delay_ns: 10,
            ..Default::default()
        };
        let mut f = Faulty::new(a, cfg);
        send(&mut f, &pool, 40);
        f.advance_to(100);
        let got = drain(&mut b, &pool);
        assert_eq!(got.len(), 40);
        assert!(f.stats().reordered > 0);
        assert!(got.windows(2).any(|w| w[0] > w[1]), "some frame overtaken");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..40).collect::<Vec<u8>>());
    }

    #[test]
    fn a_bottleneck_serialises_at_its_rate_and_drops_beyond_its_queue() {
        let pool = PacketPool::new(64);
        let (a, mut b) = pipe::pair("a", "b", 1, 64);
        let cfg = FaultConfig {
            rate_bps: 8_000_000,
            queue_bytes: 3000,
            ..Default::default()
        };
        let mut f = Faulty::new(a, cfg);
        // Ten 1000-byte frames at once into 8 Mbit/s (1 ms each) and a 3000-byte queue.
        for i in 0..10u8 {
            let mut burst = Burst::new();
            burst.push(pool.alloc_from(&[i; 1000]).unwrap());
            f.tx_burst(&mut burst);
        }
        assert_eq!(f.stats().queue_drops, 7);
        assert!(
            drain(&mut b, &pool).is_empty(),
            "nothing before its serialisation"
        );
        f.advance_to(1_000_000);
        assert_eq!(drain(&mut b, &pool), vec![0]);
        f.advance_to(2_999_999);
        assert_eq!(drain(&mut b, &pool), vec![1]);
        f.advance_to(3_000_000);
        assert_eq!(drain(&mut b, &pool), vec![2]);
        // The queue has drained: the next frame goes after its own serialisation.
        let mut burst = Burst::new();
        burst.push(pool.alloc_from(&[42; 1000]).unwrap());
        f.tx_burst(&mut burst);
        assert_eq!(f.next_due_ns(), Some(4_000_000));
    }

    #[test]
    fn duplication_and_corruption_are_counted() {
        let pool = PacketPool::new(128);
        let (a, mut b) = pipe::pair("a", "b", 1, 128);
        let cfg = FaultConfig {
            duplicate: 0.5,
            corrupt: 0.5,
            ..Default::default()
        };
        let mut f = Faulty::new(a, cfg);
        send(&mut f, &pool, 40);
        let got = drain(&mut b, &pool);
        let s = f.stats();
        assert!(s.duplicated > 0 && s.corrupted > 0);
        assert_eq!(got.len() as u64, 40 + s.duplicated);
    }
}
