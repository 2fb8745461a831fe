//! Egress shaping on one worker: a [`Shaper`] per shaped port between the pipeline and
//! the transmit queues.
//!
//! Packets the pipeline classified (`meta.class`) wait in their class queue; everything
//! else (the appliance's own ARP, ICMP and TCP) goes straight out and is charged to the
//! root, so the line rate holds for all traffic. Each loop turn the worker pumps what
//! the shapers release into the transmit queues. A new policy (configuration apply)
//! builds new shapers and moves the queued packets into them by class name, so nothing
//! queued is lost and no flow notices. With several workers, the rates each shaper
//! enforces are the worker's shares, set by the rebalancer (see [`crate::rebalance`]).

use std::sync::Arc;

use rouge_drivers::Packet;
use rouge_pipelines::shaper::share::{worker_config, WorkerRates};
use rouge_pipelines::shaper::{ClassCounters, Shaper, ShapingPolicy};
use rouge_pipelines::Instant;

/// How often the per-class rates shown by the CLI are recomputed.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);

/// One class on one port, as a worker publishes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassSample {
    /// The class's counters on this port and worker.
    pub counters: ClassCounters,
    /// Bits/s sent over the last rate window.
    pub rate_bps: u64,
    /// The guarantee and ceiling this worker enforces now (its share).
    pub rates: (Option<u64>, Option<u64>),
}

/// One shaped port, as a worker publishes it.
#[derive(Debug, Clone)]
pub struct PortSample {
    /// Port index.
    pub port: usize,
    /// Root rate this worker enforces now (its share of the line rate).
    pub root_bps: u64,
    /// By class index of the policy.
    pub classes: Vec<ClassSample>,
}

/// What a worker publishes about its shaping.
#[derive(Debug, Clone)]
pub struct ShapingSample {
    /// The policy the figures belong to.
    pub policy: Arc<ShapingPolicy>,
    /// When it was taken (the worker's clock).
    pub at: Instant,
    /// The shaped ports.
    pub ports: Vec<PortSample>,
}

/// Rates for every worker, from the rebalancer.
#[derive(Debug, Clone)]
pub struct ShapingRates {
    /// The policy they were computed for (ignored by a worker running another one).
    pub policy: Arc<ShapingPolicy>,
    /// Increases with every publication.
    pub generation: u64,
    /// By port index: the rates of each worker (`None`: port not shaped).
    pub ports: Vec<Option<Vec<WorkerRates>>>,
}

/// Where released packets go: the worker's transmit queues.
pub trait TxSink {
    /// Packets port `port` can still take.
    fn room(&self, port: u16) -> usize;
    /// Queue `pkt` for transmission on `port`.
    fn push(&mut self, port: u16, pkt: Packet);
}

struct Rated {
    last_bytes: u64,
    rate_bps: u64,
}

/// The shapers of one worker.
pub struct Egress {
    worker: usize,
    workers: usize,
    policy: Option<Arc<ShapingPolicy>>,
    shapers: Vec<Option<Shaper<Packet>>>,
    rated: Vec<Vec<Rated>>,
    rate_at: Instant,
    rates_generation: u64,
    /// Packets dropped by the shapers (all reasons; per class in the counters).
    pub dropped: u64,
    /// Packets the shapers have released (to tell when shaped TCP may send again).
    pub released: u64,
}

impl Egress {
    /// Shapers for `ports` ports under `policy`, for worker `worker` of `workers`.
    pub fn new(
        worker: usize,
        workers: usize,
        ports: usize,
        policy: Option<&Arc<ShapingPolicy>>,
    ) -> Egress {
        let mut e = Egress {
            worker,
            workers: workers.max(1),
            policy: None,
            shapers: (0..ports).map(|_| None).collect(),
            rated: Vec::new(),
            rate_at: Instant::ZERO,
            rates_generation: 0,
            dropped: 0,
            released: 0,
        };
        e.set_policy(Instant::ZERO, policy, &mut |_, _| {});
        e
    }

    /// True when some port is shaped.
    pub fn active(&self) -> bool {
        self.policy.is_some()
    }

    /// Switch to `policy` (a configuration change). Nothing happens when it is the same
    /// policy; otherwise new shapers take the queued packets, class by class name (to the
    /// default class when a class is gone); packets for a port no longer shaped go to
    /// `send`. Counters of classes that keep their name carry over.
    pub fn set_policy(
        &mut self,
        now: Instant,
        policy: Option<&Arc<ShapingPolicy>>,
        send: &mut dyn FnMut(u16, Packet),
    ) {
        let same = match (&self.policy, policy) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
            _ => false,
        };
        if same {
            if let Some(p) = policy {
                self.policy = Some(p.clone());
            }
            return;
        }
        let old_policy = self.policy.take();
        let mut old_shapers: Vec<Option<Shaper<Packet>>> =
            self.shapers.iter_mut().map(Option::take).collect();
        self.policy = policy.cloned();
        self.rates_generation = 0;
        if let Some(p) = &self.policy {
            for (port, slot) in self.shapers.iter_mut().enumerate() {
                *slot = p
                    .shaper_config(port)
                    .map(|cfg| worker_config(&cfg, self.workers))
                    .and_then(|cfg| match Shaper::new(&cfg) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            // The configuration was validated; a refusal here is a bug.
                            tracing::error!(port, error = %e, "shaping policy refused");
                            None
                        }
                    });
            }
        }
        self.rated = self
            .shapers
            .iter()
            .map(|s| {
                let n = s.as_ref().map_or(0, |s| s.class_count());
                (0..n)
                    .map(|_| Rated {
                        last_bytes: 0,
                        rate_bps: 0,
                    })
                    .collect()
            })
            .collect();
        let Some(old_policy) = old_policy else {
            return;
        };
        for (port, old) in old_shapers.iter_mut().enumerate() {
            let Some(old) = old.as_mut() else { continue };
            let map = |c: usize| -> Option<usize> {
                let p = self.policy.as_ref()?;
                let name = &old_policy.classes().get(c)?.name;
                Some(p.class_by_name(name).unwrap_or(p.default_class()))
            };
            let mut moved: Vec<(usize, Packet)> = Vec::new();
            old.drain(|c, pkt| moved.push((c, pkt)));
            for (c, mut pkt) in moved {
                match (map(c), self.shapers[port].as_mut()) {
                    (Some(nc), Some(new)) => {
                        pkt.meta.class = Some(nc as u16);
                        let hash = pkt.meta.flow_hash as u64;
                        if new.enqueue(now, nc, hash, pkt).is_err() {
                            self.dropped += 1;
                        }
                    }
                    _ => send(port as u16, pkt),
                }
            }
            if let (Some(p), Some(new)) = (&self.policy, self.shapers[port].as_mut()) {
                for (c, k) in old_policy.classes().iter().enumerate() {
                    if let (Some(nc), Some(counters)) = (p.class_by_name(&k.name), old.counters(c))
                    {
                        new.carry_totals(nc, counters);
                    }
                }
            }
        }
    }

    /// Hands `pkt`, routed out of `port`, to its class queue; returns it when it is to
    /// be sent at once (not shaped). A dropped packet is counted and freed.
    #[inline]
    pub fn admit(&mut self, now: Instant, port: u16, pkt: Packet) -> Option<Packet> {
        let Some(shaper) = self.shapers.get_mut(port as usize).and_then(Option::as_mut) else {
            return Some(pkt);
        };
        match pkt.meta.class {
            Some(class) => {
                let hash = pkt.meta.flow_hash as u64;
                // A shaped packet may wait long: a frame a driver lent goes back to it.
                let pkt = pkt.detached();
                if shaper.enqueue(now, class as usize, hash, pkt).is_err() {
                    self.dropped += 1;
                }
                None
            }
            None => {
                shaper.charge(now, pkt.len());
                Some(pkt)
            }
        }
    }

    /// Copies what each class of each shaped port can still queue into `room`, for the
    /// pipeline's shaped TCP connections (lossless shaping of proxied flows).
    pub fn fill_room(&self, room: &mut rouge_pipelines::shaper::room::ShapingRoom) {
        room.clear();
        for (port, shaper) in self.shapers.iter().enumerate() {
            let Some(shaper) = shaper.as_ref() else {
                continue;
            };
            for class in 0..shaper.class_count() {
                if let Some((items, bytes)) = shaper.room(class) {
                    room.set(port as u16, class as u16, items, bytes);
                }
            }
        }
    }

    /// Moves what the shapers release at `now` into `tx`, as far as its queues have room.
    pub fn pump(&mut self, now: Instant, tx: &mut impl TxSink) {
        for (port, shaper) in self.shapers.iter_mut().enumerate() {
            let Some(shaper) = shaper.as_mut() else {
                continue;
            };
            let mut room = tx.room(port as u16);
            while room > 0 {
                let Some((_, pkt)) = shaper.dequeue(now) else {
                    break;
                };
                tx.push(port as u16, pkt);
                self.released += 1;
                room -= 1;
            }
        }
    }

    /// When the shapers next release something (`None`: nothing queued).
    pub fn next_ready(&mut self, now: Instant) -> Option<Instant> {
        self.shapers
            .iter_mut()
            .filter_map(|s| s.as_mut()?.next_ready(now))
            .min()
    }

    /// Packets queued in all shapers.
    pub fn queued(&self) -> usize {
        self.shapers.iter().flatten().map(|s| s.queued()).sum()
    }

    /// Applies this worker's rates from `rates` if they are new and for this policy.
    pub fn apply_rates(&mut self, now: Instant, rates: &ShapingRates) {
        let Some(policy) = &self.policy else { return };
        if rates.generation == self.rates_generation || !Arc::ptr_eq(policy, &rates.policy) {
            return;
        }
        self.rates_generation = rates.generation;
        for (port, shaper) in self.shapers.iter_mut().enumerate() {
            let (Some(shaper), Some(Some(per_worker))) = (shaper.as_mut(), rates.ports.get(port))
            else {
                continue;
            };
            let Some(mine) = per_worker.get(self.worker) else {
                continue;
            };
            if !mine.apply(now, shaper) {
                tracing::warn!(port, "shaping rates do not fit this worker's shapers");
            }
        }
    }

    /// The figures to publish, `None` when nothing is shaped. Recomputes the per-class
    /// rates when the rate window has passed.
    pub fn sample(&mut self, now: Instant) -> Option<ShapingSample> {
        let policy = self.policy.clone()?;
        let window = now.saturating_since(self.rate_at);
        let rerate = window >= RATE_WINDOW;
        let mut ports = Vec::new();
        for (port, shaper) in self.shapers.iter().enumerate() {
            let Some(shaper) = shaper else { continue };
            let rated = &mut self.rated[port];
            let classes = (0..shaper.class_count())
                .map(|c| {
                    let counters = shaper.counters(c).copied().unwrap_or_default();
                    if rerate {
                        let sent = counters.bytes.saturating_sub(rated[c].last_bytes);
                        rated[c].rate_bps =
                            (sent as u128 * 8 * 1_000_000_000 / window.as_nanos().max(1)) as u64;
                        rated[c].last_bytes = counters.bytes;
                    }
                    ClassSample {
                        counters,
                        rate_bps: rated[c].rate_bps,
                        rates: shaper.class_rates(c).unwrap_or_default(),
                    }
                })
                .collect();
            ports.push(PortSample {
                port,
                root_bps: shaper.root_rate(),
                classes,
            });
        }
        if rerate {
            self.rate_at = now;
        }
        Some(ShapingSample {
            policy,
            at: now,
            ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::PacketPool;
    use rouge_pipelines::shaper::policy::{ClassRules, NamedClass, Root};
    use rouge_pipelines::shaper::ClassConfig;

    struct Sink(Vec<(u16, usize)>);
    impl TxSink for Sink {
        fn room(&self, _port: u16) -> usize {
            64
        }
        fn push(&mut self, port: u16, pkt: Packet) {
            self.0.push((port, pkt.len()));
        }
    }

    fn policy(names: &[&str], rate_bps: u64) -> Arc<ShapingPolicy> {
        let classes = names
            .iter()
            .map(|n| NamedClass {
                name: n.to_string(),
                config: ClassConfig::weighted(1),
            })
            .collect();
        let root = Root {
            rate_bps,
            burst_bytes: 3000,
        };
        Arc::new(ShapingPolicy::new(
            classes,
            vec![Some(root), None],
            names.len() - 1,
            ClassRules::default(),
        ))
    }

    fn packet(pool: &PacketPool, class: Option<u16>) -> Packet {
        let mut p = pool.alloc_from(&[0u8; 1000]).expect("buffer");
        p.meta.class = class;
        p
    }

    #[test]
    fn classified_packets_wait_for_the_rate_and_the_rest_pass() {
        let pool = PacketPool::new(256);
        // 8 Mbit/s: one byte per microsecond, 3000-byte burst.
        let mut e = Egress::new(0, 1, 2, Some(&policy(&["gold", "default"], 8_000_000)));
        let t0 = Instant::ZERO;
        for _ in 0..5 {
            assert!(e.admit(t0, 0, packet(&pool, Some(0))).is_none());
        }
        // Unclassified traffic and unshaped ports go straight out.
        assert!(e.admit(t0, 0, packet(&pool, None)).is_some());
        assert!(e.admit(t0, 1, packet(&pool, Some(0))).is_some());
        let mut tx = Sink(Vec::new());
        e.pump(t0, &mut tx);
        // The 1000 bytes of control traffic were charged: 2 of the burst's 3 are left.
        assert_eq!(tx.0.len(), 2);
        let next = e.next_ready(t0).expect("more queued");
        assert_eq!(next, Instant::from_nanos(1_000_000));
        e.pump(Instant::from_millis(10), &mut tx);
        assert_eq!(tx.0.len(), 5);
        assert_eq!(e.queued(), 0);
        let s = e.sample(Instant::from_millis(300)).expect("shaping on");
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.ports[0].classes[0].counters.packets, 5);
        assert!(s.ports[0].classes[0].rate_bps > 0);
    }

    #[test]
    fn a_new_policy_takes_the_queued_packets_by_class_name() {
        let pool = PacketPool::new(256);
        let mut e = Egress::new(
            0,
            1,
            2,
            Some(&policy(&["gold", "bronze", "default"], 8_000)),
        );
        for class in [0, 1, 1, 2] {
            assert!(e
                .admit(Instant::ZERO, 0, packet(&pool, Some(class)))
                .is_none());
        }
        let mut tx = Sink(Vec::new());
        e.pump(Instant::ZERO, &mut tx);
        let sent = tx.0.len();
        let queued = e.queued();
        assert_eq!(sent + queued, 4);
        // Same policy again: nothing moves.
        let same = policy(&["gold", "bronze", "default"], 8_000);
        let mut direct = Vec::new();
        e.set_policy(Instant::ZERO, Some(&same), &mut |p, _| direct.push(p));
        assert_eq!(e.queued(), queued);
        // `bronze` is gone: its packets go to the default class; nothing is lost.
        let new = policy(&["default", "gold"], 8_000);
        e.set_policy(Instant::ZERO, Some(&new), &mut |p, _| direct.push(p));
        assert!(direct.is_empty());
        assert_eq!(e.queued(), queued);
        assert_eq!(e.dropped, 0);
        e.pump(Instant::from_secs(10), &mut tx);
        assert_eq!(tx.0.len(), 4);
        let s = e.sample(Instant::from_secs(10)).expect("on");
        // gold kept its totals under its new index.
        assert!(s.ports[0].classes[1].counters.packets >= 1);
        // Shaping off: whatever is queued leaves at once.
        for _ in 0..3 {
            e.admit(Instant::from_secs(10), 0, packet(&pool, Some(1)));
        }
        let left = e.queued();
        e.set_policy(Instant::from_secs(10), None, &mut |p, _| direct.push(p));
        assert_eq!(direct.len(), left);
        assert!(!e.active());
    }
}
