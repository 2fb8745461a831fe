//! The worker: one per dedicated core, a run-to-completion poll loop.
//!
//! Each turn: read the clock, pick up a new configuration snapshot if there is one,
//! take the frames other workers handed over (their flows are this worker's; see
//! [`crate::handoff`]), receive a burst from every port (handing each frame whose flow
//! another worker owns to that worker, on ports that cannot steer) (reading the clock again after a burst that brought
//! frames), run each packet through the pipeline and transmit what it produced in
//! bursts (one kick per port), then run the pipeline's timers when packets came in or
//! [`L2L3::poll_timeout`] says they are due and transmit what they produced. Idle policy
//! `busy` spins; `sleep` sleeps as soon as a turn finds nothing to do; `adaptive`
//! spins after the last packet for as long as paid over the recent idle gaps (the
//! [`SpinBudget`], which the loop tells every gap and the cost of one sleep in eight) and
//! then sleeps in
//! one `ppoll` on all ports and its waker until a frame arrives, the control thread
//! wakes it (new snapshot, stop), or the earliest deadline of the pipeline, the shaper
//! and the worker's own publishing is due (see `wake_at`). The
//! port type is a generic parameter, so the loop is compiled once per port type with no
//! dynamic dispatch on the packet path (the appliance's `AnyPort` matches on its driver
//! once per burst).
//!
//! # Where a packet's time goes
//!
//! Measured on the two-core test VM with `rouge show stats`' receive-to-transmit
//! histogram (from the ring's receive stamp to the transmit burst) beside
//! `rouge-pktgen`'s round trips, 10 kpps of 64-byte frames through the forwarding
//! virtual server:
//!
//! - **Waiting for the core.** With other tasks runnable on the worker's core, a woken
//!   (or preempted) worker waits for the scheduler's next slice: receive-to-transmit
//!   p50 0.4 to 3.8 ms under normal scheduling, 0.7 to 38 µs with `realtime_priority`
//!   (`SCHED_FIFO`; 29 µs at 2 kpps, where the worker sleeps between packets). This
//!   dominated every figure on the shared machine.
//! - **The idle sleep.** A frame that reaches a sleeping worker pays the wake-up of its
//!   thread: the ring's status word is set and the socket's waiters are woken as the
//!   frame is copied (TPACKET_V2 is per frame; V3 would wait for its block to retire),
//!   so the wait adds nothing, but waking a halted vCPU and switching to the thread does
//!   (tens of microseconds). The adaptive worker's spin (time, not a count of turns)
//!   covers the gaps a sleep would cost more than: the [`SpinBudget`], learned from the
//!   gaps and the measured cost of a sleep, 2 to 200 microseconds; `busy` covers every
//!   gap.
//! - **Batching.** A frame that arrives during a turn waits for the rest of it. An empty
//!   busy turn cost about 120 ns when the pipeline's timers ran every turn and 64 ns
//!   now that they run only when due (turns per CPU-second of a busy worker).
//! - **Transmit kicks.** One `sendto` per port with frames, right after the receive
//!   bursts (before the timers run, so their work never holds back ready frames); on a
//!   veth the kernel delivers the frame to the peer inside that call, so the kick is
//!   most of the forwarding cost at low rates and is paid once per burst, never per
//!   packet.
//! - **Clock reads.** One per turn, one after each receive burst that brought frames
//!   (so `now` is never before the frames' stamps), and one per transmit flush for the
//!   histogram: vDSO reads of a TSC clock, tens of nanoseconds each.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rouge_drivers::clock::thread_cpu_ns;
use rouge_drivers::steer::Steering;
use rouge_drivers::wait::{wait_readable, MAX_WAIT_FDS};
use rouge_drivers::{Burst, Packet, PacketPool, Port, BURST_SIZE};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::shaper::DelayStats;
use rouge_pipelines::tcp::{StackConfig, TcpProfile};
use rouge_pipelines::time::{earliest, MonotonicClock};
use rouge_pipelines::Instant;

use crate::config::model::IdlePolicy;
use crate::egress::{Egress, TxSink};
use crate::handoff::{self, Courier};
use crate::idle::SpinBudget;
use crate::shared::{PortInfo, Shared};

/// Longest sleep of an idle worker with no deadline when it has no waker (no eventfd):
/// how soon it then notices a stop request or a new configuration snapshot. With a
/// waker (the normal case) the control thread wakes it and an idle worker with no
/// deadline sleeps until a frame arrives. Timers never wait for it (see `wake_at`).
pub const CONTROL_CHECK: Duration = Duration::from_millis(10);
/// Longest nap of an idle worker while frames wait in a port's transmit queue.
const TX_RETRY: Duration = Duration::from_micros(20);
/// Sleep of an idle worker whose ports have no descriptor to wait on (in-memory ports).
const POLL_SLEEP: Duration = Duration::from_micros(200);
/// Bursts a worker takes from its hand-off inbox per turn, at most (the inbox holds
/// `handoff::INBOX_SLOTS` frames; the ports' bursts come after them).
const INBOX_BURSTS: usize = 4;
/// Packets waiting for transmission per port before the worker flushes mid-burst.
const TX_QUEUE: usize = 4 * BURST_SIZE;
/// One sleep in this many has its CPU time measured (two reads of the thread's CPU
/// clock, each a system call) for the adaptive spin budget and `show stats`.
const SLEEP_TIMING: u64 = 8;
/// Longest a packet waits in a transmit queue for others to share its port's kick.
/// Frames are handed to the ports when a turn receives nothing (the streak of work
/// ended), when a port has a full burst waiting, or when the oldest has waited this
/// long: one kick (a system call, and on a veth the kernel's softirq and IPI) carries
/// every frame of a streak instead of one per turn.
const TX_COALESCE: Duration = Duration::from_micros(10);
/// How often a changed neighbour table is republished for the CLI.
const ARP_PUBLISH: Duration = Duration::from_millis(100);
/// How often shaping figures are republished (the rebalancer reads them).
const SHAPING_PUBLISH: Duration = Duration::from_millis(2);

/// Per-port transmit queues, allocated at start.
struct TxQueues {
    queues: Vec<Vec<Packet>>,
    /// When the oldest packet now queued was pushed (`None`: every queue is empty).
    held_since: Option<Instant>,
    /// Where packets that found their queue full are counted (`tx_queue_overflow` of
    /// `show stats`).
    overflow: Arc<PipelineCounters>,
}

impl TxQueues {
    fn new(ports: usize, counters: Arc<PipelineCounters>) -> Self {
        TxQueues {
            queues: (0..ports).map(|_| Vec::with_capacity(TX_QUEUE)).collect(),
            held_since: None,
            overflow: counters,
        }
    }

    #[inline]
    fn push(&mut self, port: u16, pkt: Packet) {
        match self.queues.get_mut(port as usize) {
            // Never grow past the preallocated capacity: no allocation per packet.
            Some(q) if q.len() < q.capacity() => q.push(pkt),
            _ => self.overflow.tx_queue_overflow.inc(),
        }
    }

    fn needs_flush(&self) -> bool {
        self.queues.iter().any(|q| q.len() + 8 >= q.capacity())
    }

    /// Notes that packets were queued by a turn at `now` (for [`TxQueues::due`]).
    fn stamp(&mut self, now: Instant) {
        if self.held_since.is_none() && self.queues.iter().any(|q| !q.is_empty()) {
            self.held_since = Some(now);
        }
    }

    /// True when the queued packets should go now although work may follow: a port has
    /// a full burst waiting, or the oldest packet has waited [`TX_COALESCE`].
    fn due(&self, now: Instant) -> bool {
        self.queues.iter().any(|q| q.len() >= BURST_SIZE)
            || self
                .held_since
                .is_some_and(|t| now.saturating_since(t) >= TX_COALESCE)
    }

    /// Hands every queued packet to its port, a burst per call, and records in
    /// `transit` how long each packet with a receive stamp has been in the appliance
    /// (one clock read per flush that sends anything).
    fn flush<P: Port>(&mut self, ports: &mut [P], transit: &mut DelayStats) {
        self.held_since = None;
        let mut sent_at = None;
        for (q, port) in self.queues.iter_mut().zip(ports.iter_mut()) {
            while !q.is_empty() {
                let now = *sent_at.get_or_insert_with(rouge_drivers::clock::monotonic_ns);
                let mut burst = Burst::new();
                let take = q.len().min(BURST_SIZE);
                burst.extend(q.drain(..take));
                for p in burst.iter().filter(|p| p.meta.rx_time != 0) {
                    transit.record(Duration::from_nanos(now.saturating_sub(p.meta.rx_time)));
                }
                port.tx_burst(&mut burst);
            }
        }
    }
}

impl TxSink for TxQueues {
    fn room(&self, port: u16) -> usize {
        self.queues
            .get(port as usize)
            .map_or(0, |q| q.capacity() - q.len())
    }

    fn push(&mut self, port: u16, pkt: Packet) {
        TxQueues::push(self, port, pkt)
    }
}

/// Runs `pkt` through the pipeline and queues what it produced (through the shaper),
/// flushing the transmit queues to the ports when they fill up.
#[inline]
fn process<P: Port>(
    l2: &mut L2L3,
    now: Instant,
    pkt: Packet,
    egress: &mut Egress,
    tx: &mut TxQueues,
    ports: &mut [P],
    transit: &mut DelayStats,
) {
    l2.process(now, pkt, &mut |port, out| {
        if let Some(out) = egress.admit(now, port, out) {
            tx.push(port, out)
        }
    });
    if tx.needs_flush() {
        tx.flush(ports, transit);
    }
}

/// Runs worker `id` on `ports` until the stop flag is set.
pub fn run<P: Port>(
    id: usize,
    shared: Arc<Shared>,
    mut ports: Vec<P>,
    bus: NeighbourBus,
    idle: IdlePolicy,
    pool_size: usize,
) {
    let me = &shared.workers[id];
    let pool = PacketPool::new(pool_size);
    *me.ports.lock().unwrap_or_else(|e| e.into_inner()) = ports
        .iter()
        .map(|p| PortInfo {
            name: p.name().to_string(),
            mac: p.mac(),
            mtu: p.mtu(),
            tx_path: p.tx_path(),
            counters: p.counters().clone(),
        })
        .collect();
    // A port without a descriptor (DPDK) can only be polled: with one, the worker never
    // blocks on the other ports' descriptors but naps between polls (POLL_SLEEP).
    let mut fds: Vec<_> = ports
        .iter()
        .map(|p| p.raw_fd())
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    let port_fds = fds.len();
    // The waker is waited on after the ports (when they leave it room).
    let waker = me.waker.as_ref().filter(|_| port_fds < MAX_WAIT_FDS);
    if let Some(w) = waker {
        fds.push(w.fd());
    }
    let dp = shared.dataplane.load_full();
    let mut generation = dp.generation;
    me.generation.store(generation, Ordering::Relaxed);
    let macs = ports.iter().map(|p| p.mac()).collect();
    let mtus = ports.iter().map(|p| p.mtu()).collect();
    let tcp_cfg = StackConfig {
        // One key per machine boot, so a restart numbers connections above the last run's.
        secret: crate::tcp_secret::machine_secret(),
        ..StackConfig::default()
    };
    // The port drivers say how frames are spread over the workers; frames of ports
    // that cannot steer are handed to the worker that owns their flow, and the
    // pipeline chooses source ports under the steering that then holds (see
    // `handoff::plan`).
    let plan = handoff::plan(
        shared.workers.len(),
        &ports.iter().map(|p| p.steering()).collect::<Vec<_>>(),
    );
    let mut courier = match (&shared.handoff, plan.any()) {
        (Some(h), true) => Some(Courier::new(id, h.clone(), me.pipeline.clone())),
        (None, true) => {
            tracing::warn!(
                worker = id,
                "ports that cannot steer, and no hand-off inboxes: frames are processed where they arrive"
            );
            None
        }
        _ => None,
    };
    let (steering, hand_off) = if courier.is_some() || !plan.any() {
        (plan.steering, plan.hand_off)
    } else {
        (Steering::Opaque, vec![false; ports.len()])
    };
    let mut l2 = L2L3::new(id, dp, macs, mtus, me.pipeline.clone(), bus, pool.clone())
        .with_tcp(tcp_cfg, TcpProfile::default())
        .with_steering(steering);
    if id == 0 {
        // Worker 0 probes the members, from source ports whose replies reach it.
        l2 = l2.with_monitors();
    }
    let mut tx = TxQueues::new(ports.len(), me.pipeline.clone());
    // Receive-to-transmit delay of the packets this worker sent (published for the CLI).
    let mut transit = DelayStats::default();
    let clock = MonotonicClock::new();
    let mut egress = Egress::new(
        id,
        shared.workers.len(),
        ports.len(),
        shared.dataplane.load().shaping.as_ref(),
    );
    let mut last_packet = clock.now();
    // A turn since `last_packet` found nothing: the next packet ends an idle gap.
    let mut idled = false;
    let mut spin = SpinBudget::new();
    me.pipeline.spin_ns.set(spin.budget().as_nanos() as u64);
    let mut next_arp_publish = Instant::ZERO;
    let mut next_shaping_publish = Instant::ZERO;
    // Something changed since the views were last published (they are republished at
    // most every ARP_PUBLISH, so a sleeping worker wakes once more to publish them).
    let mut unpublished = true;
    // The shapers' release count when the pipeline last polled (see `Egress::released`).
    let mut released_seen = 0u64;
    me.running.store(true, Ordering::Release);
    tracing::info!(worker = id, core = ?me.core, ports = ports.len(), "worker running");

    while !shared.stopping() {
        let mut now = clock.now();
        let turn_start = now;
        me.pipeline.loop_turns.inc();
        let current = shared.dataplane.load();
        let mut timers_due = false;
        if current.generation != generation {
            generation = current.generation;
            egress.set_policy(now, current.shaping.as_ref(), &mut |port, out| {
                tx.push(port, out)
            });
            l2.set_dataplane(arc_swap::Guard::into_inner(current));
            me.generation.store(generation, Ordering::Relaxed);
            timers_due = true;
        }
        if egress.active() {
            if let Some(rates) = shared.shaping_rates.load().as_ref() {
                egress.apply_rates(now, rates);
            }
        }
        let mut received = 0;
        // When the first packet of this turn arrived (its receive stamp, or the clock).
        let mut arrival = None;
        // Frames other workers handed over (this worker owns their flows): processed
        // here, never handed on.
        if let Some(c) = courier.as_mut() {
            for _ in 0..INBOX_BURSTS {
                let mut burst = Burst::new();
                let n = c.receive(&pool, &mut burst);
                if n == 0 {
                    break;
                }
                now = clock.now();
                received += n;
                arrival = arrival.or(burst.first().map(|p| Instant::received(p, now)));
                for pkt in burst.drain(..) {
                    process(
                        &mut l2,
                        now,
                        pkt,
                        &mut egress,
                        &mut tx,
                        &mut ports,
                        &mut transit,
                    );
                }
            }
        }
        for i in 0..ports.len() {
            let mut burst = Burst::new();
            let n = ports[i].rx_burst(&pool, &mut burst);
            if n > 0 {
                // One more clock read per burst: `now` is then no earlier than the
                // receive stamps of the burst, so a packet released in this turn records
                // the time it spent in the receive ring, not zero.
                now = clock.now();
                arrival = arrival.or(burst.first().map(|p| Instant::received(p, now)));
            }
            received += n;
            for mut pkt in burst.drain(..) {
                pkt.meta.port = i as u16;
                // A frame whose flow another worker owns goes to that worker.
                let pkt = match courier.as_mut().filter(|_| hand_off[i]) {
                    Some(c) => match c.route(pkt) {
                        Some(p) => p,
                        None => continue,
                    },
                    None => pkt,
                };
                process(
                    &mut l2,
                    now,
                    pkt,
                    &mut egress,
                    &mut tx,
                    &mut ports,
                    &mut transit,
                );
            }
        }
        if let Some(c) = courier.as_mut() {
            c.wake_owners(|w| shared.workers.get(w).and_then(|x| x.waker.as_ref()));
        }
        // The pipeline's timers run when packets may have made work for them (TCP
        // events, held packets) or when its earliest deadline has come.
        timers_due |= received > 0 || l2.poll_timeout().is_some_and(|t| t <= now);
        // Shaped TCP waiting for room goes again once the shapers released something.
        timers_due |= l2.shaped_waiting() && egress.released != released_seen;
        if egress.active() {
            released_seen = egress.released;
            egress.fill_room(l2.shaping_room_mut());
        }
        if timers_due {
            l2.poll(now, &mut |port, out| {
                if let Some(out) = egress.admit(now, port, out) {
                    tx.push(port, out)
                }
            });
            unpublished = true;
        }
        if egress.active() {
            egress.pump(now, &mut tx);
        }
        // While frames keep arriving, what this turn produced waits for the next turns'
        // (TX_COALESCE): one kick per streak, not one per turn.
        tx.stamp(now);
        if received == 0 || tx.due(now) {
            tx.flush(&mut ports, &mut transit);
        }
        for t in l2.take_transitions() {
            let status = t.status.as_str();
            if t.status == rouge_pipelines::lb::MonitorStatus::Down {
                // `failure`: the last failed probe's reason (tcp, timeout, certificate,
                // handshake, response, source_port); never key material.
                let failure = t.failure.map_or("none", |f| f.as_str());
                tracing::warn!(member = %t.addr, status, failure, reason = %t.reason, "monitor status change");
            } else {
                tracing::info!(member = %t.addr, status, reason = %t.reason, "monitor status change");
            }
            me.monitor_transitions.fetch_add(1, Ordering::Relaxed);
        }
        let asked = me.connections_request.load(Ordering::Acquire);
        if asked != me.connections.load().0 {
            me.connections
                .store(Arc::new((asked, crate::connections::rows(&l2, now))));
        }
        if egress.active() && now >= next_shaping_publish {
            me.shaping.store(egress.sample(now).map(Arc::new));
            me.shaping_drops.store(egress.dropped, Ordering::Relaxed);
            next_shaping_publish = now + SHAPING_PUBLISH;
        }
        if unpublished && now >= next_arp_publish {
            if l2.arp_changed() {
                me.arp.store(Arc::new(l2.neighbours_view(now)));
            }
            let tcp = l2.tcp();
            if *tcp.counters() != **me.tcp.load() {
                me.tcp.store(Arc::new(tcp.counters().clone()));
            }
            me.tcp_connections
                .store(tcp.connection_count() as u64, Ordering::Relaxed);
            if transit.count != me.transit.load().count {
                me.transit.store(Arc::new(transit));
            }
            if let Some(m) = l2.monitors() {
                let c = m.counters();
                me.monitor_probes.store(c.probes, Ordering::Relaxed);
                me.monitor_failures.store(c.failures, Ordering::Relaxed);
                if m.monitor_stats() != me.monitor_stats.load().as_slice() {
                    me.monitor_stats.store(Arc::new(m.monitor_stats().to_vec()));
                }
                let failing = m.failing();
                if failing != **me.monitor_failing.load() {
                    me.monitor_failing.store(Arc::new(failing));
                }
            }
            next_arp_publish = now + ARP_PUBLISH;
            unpublished = false;
        }
        if received > 0 || timers_due {
            me.pipeline
                .work_ns
                .add(clock.now().saturating_since(turn_start).as_nanos() as u64);
        }
        if received > 0 {
            if idled {
                // Spun or slept through: the spin budget learns from both.
                let gap = arrival.unwrap_or(now).saturating_since(last_packet);
                spin.record_gap(gap);
                me.pipeline.spin_ns.set(spin.budget().as_nanos() as u64);
                idled = false;
            }
            last_packet = now;
            continue;
        }
        idled = true;
        me.pipeline.idle_turns.inc();
        let spinning = match idle {
            IdlePolicy::Busy => true,
            IdlePolicy::Adaptive => now.saturating_since(last_packet) < spin.budget(),
            IdlePolicy::Sleep => false,
        };
        if spinning {
            continue;
        }
        if l2.shaped_waiting() && egress.released != released_seen {
            // The shapers made room for shaped TCP: no sleeping before it goes.
            continue;
        }
        let publish = [
            egress.active().then_some(next_shaping_publish),
            unpublished.then_some(next_arp_publish),
        ];
        let wake = wake_at(&mut l2, &mut egress, now, publish.into_iter().flatten());
        let mut sleep = wake.map(|t| t.saturating_since(now));
        if waker.is_none() {
            sleep = Some(sleep.map_or(CONTROL_CHECK, |s| s.min(CONTROL_CHECK)));
        }
        // Frames still waiting in a port's transmit queue (a kick that found the send
        // buffer full) are kicked again by `tx_pending`; while any wait, the worker
        // naps briefly instead of sleeping until the next packet, so they never wait
        // for one.
        // (Every port is asked, not only up to the first with frames waiting.)
        if ports.iter_mut().map(|p| p.tx_pending()).sum::<usize>() > 0 {
            sleep = Some(sleep.map_or(TX_RETRY, |s| s.min(TX_RETRY)));
        }
        if sleep.is_some_and(|s| s.is_zero()) {
            continue;
        }
        // A worker that receives handed-over frames says it sleeps, so their senders
        // wake it; frames that came meanwhile keep it awake.
        if courier.as_ref().is_some_and(|c| !c.may_sleep()) {
            continue;
        }
        me.pipeline.sleeps.inc();
        // Reading the thread's CPU clock is a system call: one sleep in SLEEP_TIMING
        // is timed, which the spin budget's average needs, not every one.
        let timed = me.pipeline.sleeps.get().is_multiple_of(SLEEP_TIMING);
        let cpu_before = if timed { thread_cpu_ns() } else { 0 };
        if port_fds == 0 {
            std::thread::sleep(sleep.map_or(POLL_SLEEP, |s| s.min(POLL_SLEEP)));
        } else if wait_readable(&fds, sleep) & 1 << port_fds != 0 {
            // Woken by the control thread (the waker is the last descriptor): clear it
            // so the next sleep is not cut short; the turn looks at what changed.
            if let Some(w) = waker {
                w.clear();
            }
        }
        if timed {
            let cost = Duration::from_nanos(thread_cpu_ns().saturating_sub(cpu_before));
            me.pipeline.sleep_cpu_ns.add(cost.as_nanos() as u64);
            me.pipeline.sleeps_timed.inc();
            spin.record_sleep(cost);
            me.pipeline.spin_ns.set(spin.budget().as_nanos() as u64);
        }
        if let Some(c) = &courier {
            c.awake();
        }
    }
    let overflow = me.pipeline.tx_queue_overflow.get();
    if overflow > 0 {
        tracing::warn!(worker = id, dropped = overflow, "transmit queue overflowed");
    }
    tracing::info!(worker = id, "worker stopped");
}

/// When an idle worker must wake even if no frame arrives: the earliest of the
/// pipeline's [`L2L3::poll_timeout`] (ARP, fastl4, the TCP stack, monitors), the
/// shaper's next release ([`Egress::next_ready`]) and the worker's own publishing
/// deadlines (`extra`). `None`: only a frame (or the control plane) can make work.
fn wake_at(
    l2: &mut L2L3,
    egress: &mut Egress,
    now: Instant,
    extra: impl IntoIterator<Item = Instant>,
) -> Option<Instant> {
    earliest(
        [l2.poll_timeout(), egress.next_ready(now)]
            .into_iter()
            .chain(extra.into_iter().map(Some)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::pipe;

    #[test]
    fn an_idle_worker_wakes_for_the_earliest_of_the_pipeline_and_its_own_deadlines() {
        use rouge_pipelines::tcp::ProfileId;
        let pool = PacketPool::new(64);
        let mut bus = NeighbourBus::new(2);
        let mut l2 = L2L3::new(
            1,
            Arc::new(rouge_pipelines::testing::dataplane(2)),
            vec![rouge_drivers::MacAddr::local(1); 2],
            vec![1500; 2],
            PipelineCounters::new_shared(),
            bus.remove(1),
            pool,
        );
        let mut egress = Egress::new(1, 2, 2, None);
        let t0 = Instant::from_secs(100);
        l2.poll(t0, &mut |_, _| {});
        assert_eq!(wake_at(&mut l2, &mut egress, t0, []), None, "frames only");
        let publish = t0 + ARP_PUBLISH;
        assert_eq!(wake_at(&mut l2, &mut egress, t0, [publish]), Some(publish));
        // A connection attempt puts the TCP stack's SYN retransmission (1 s; the ARP
        // retry for the member is due then too) into the fold: earlier than a
        // publishing deadline 2 s away, later than one 100 ms away.
        l2.tcp_mut()
            .connect(
                t0,
                "198.18.2.1:40000".parse().unwrap(),
                "198.18.2.11:80".parse().unwrap(),
                ProfileId::DEFAULT,
            )
            .unwrap();
        assert_eq!(
            wake_at(&mut l2, &mut egress, t0, [publish]),
            Some(Instant::ZERO),
            "the SYN is to be sent at once"
        );
        l2.poll(t0, &mut |_, _| {});
        let rto = l2.poll_timeout().expect("a retransmission deadline");
        assert!(rto > t0 && rto < t0 + Duration::from_secs(2), "{rto:?}");
        let far = t0 + Duration::from_secs(2);
        assert_eq!(wake_at(&mut l2, &mut egress, t0, [far]), Some(rto));
        assert_eq!(wake_at(&mut l2, &mut egress, t0, [publish]), Some(publish));
    }

    #[test]
    fn tx_queues_are_bounded_and_flush_in_bursts() {
        let pool = PacketPool::new(512);
        let (a, mut b) = pipe::pair("a", "b", 1, 1024);
        let mut ports = vec![a];
        let counters = PipelineCounters::new_shared();
        let mut tx = TxQueues::new(1, counters.clone());
        for _ in 0..TX_QUEUE + 5 {
            tx.push(0, pool.alloc_from(&[0; 60]).unwrap());
        }
        tx.push(3, pool.alloc_from(&[0; 60]).unwrap());
        assert_eq!(
            counters.tx_queue_overflow.get(),
            6,
            "past capacity and unknown port are counted"
        );
        assert!(tx.needs_flush());
        let mut transit = DelayStats::default();
        tx.flush(&mut ports, &mut transit);
        assert_eq!(b.pending(), TX_QUEUE);
        assert_eq!(transit.count, 0, "no receive stamps, nothing measured");
        assert_eq!(ports[0].counters().tx_packets.get(), TX_QUEUE as u64);
        let mut got = Burst::new();
        assert_eq!(b.rx_burst(&pool, &mut got), BURST_SIZE);
    }

    #[test]
    fn queued_frames_wait_for_a_full_burst_or_their_deadline_and_a_flush_resets_it() {
        let pool = PacketPool::new(64);
        let (a, b) = pipe::pair("a", "b", 1, 64);
        let mut ports = vec![a];
        let mut tx = TxQueues::new(1, PipelineCounters::new_shared());
        let t0 = Instant::from_secs(10);
        tx.stamp(t0);
        assert!(!tx.due(t0 + TX_COALESCE), "nothing queued, nothing due");
        tx.push(0, pool.alloc_from(&[1; 60]).unwrap());
        tx.stamp(t0);
        tx.push(0, pool.alloc_from(&[2; 60]).unwrap());
        tx.stamp(t0 + Duration::from_micros(4));
        assert!(
            !tx.due(t0 + Duration::from_micros(9)),
            "two frames, 9 us old"
        );
        assert!(
            tx.due(t0 + TX_COALESCE),
            "the oldest frame's wait is bounded"
        );
        let mut transit = DelayStats::default();
        tx.flush(&mut ports, &mut transit);
        assert_eq!(b.pending(), 2, "both went in one flush");
        assert!(!tx.due(t0 + Duration::from_secs(1)), "empty after a flush");
        // A full burst goes at once, however young.
        for _ in 0..BURST_SIZE {
            tx.push(0, pool.alloc_from(&[3; 60]).unwrap());
        }
        tx.stamp(t0 + Duration::from_secs(2));
        assert!(tx.due(t0 + Duration::from_secs(2)));
    }
}
