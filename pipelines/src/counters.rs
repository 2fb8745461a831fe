//! Per-worker data-plane counters, written by their worker only and read by the
//! control thread at any time without locks (see [`Counter`]).

use std::sync::Arc;

pub use rouge_drivers::port::Counter;

use crate::verdict::{DropReason, Verdict};

/// Counters of one worker's L2/L3 pipeline.
#[derive(Debug)]
pub struct PipelineCounters {
    /// Packets handed to the pipeline.
    pub rx_packets: Counter,
    /// Packets forwarded.
    pub forwarded: Counter,
    /// Packets answered by the appliance.
    pub answered: Counter,
    /// Packets absorbed on purpose.
    pub consumed: Counter,
    /// Packets dropped, by reason (indexed by `DropReason as usize`).
    pub drops: [Counter; DropReason::COUNT],
    /// ARP requests sent to resolve next hops.
    pub arp_requests_sent: Counter,
    /// ARP replies sent for the appliance's addresses.
    pub arp_replies_sent: Counter,
    /// Gratuitous ARP announcements sent.
    pub arp_gratuitous_sent: Counter,
    /// ICMP echo replies sent.
    pub icmp_echo_replies: Counter,
    /// ICMP errors sent (time exceeded, unreachable, fragmentation needed).
    pub icmp_errors_sent: Counter,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_errors_rate_limited: Counter,
    /// TCP segments sent by the appliance's own stack.
    pub tcp_segments_out: Counter,
    /// Neighbour solicitations sent to resolve IPv6 next hops.
    pub nd_solicits_sent: Counter,
    /// Solicited neighbour advertisements sent for the appliance's IPv6 addresses.
    pub nd_adverts_sent: Counter,
    /// Unsolicited neighbour advertisements sent (at start and when an address is added).
    pub nd_unsolicited_sent: Counter,
    /// Duplicate address detection probes sent for the appliance's IPv6 self IPs.
    pub nd_dad_probes_sent: Counter,
    /// MLDv2 reports sent for the solicited-node groups of the appliance's addresses.
    pub mld_reports_sent: Counter,
    /// MLD queries (general, or about one of the appliance's groups) answered with a
    /// report.
    pub mld_queries_answered: Counter,
    /// MLD queries not answered: a report went out on their VLAN within the maximum
    /// response delay of an earlier one.
    pub mld_queries_limited: Counter,
    /// ICMPv6 echo replies sent.
    pub icmpv6_echo_replies: Counter,
    /// ICMPv6 errors sent (time exceeded, unreachable, packet too big).
    pub icmpv6_errors_sent: Counter,
    /// Fastl4 flows created.
    pub fastl4_flows_created: Counter,
    /// Fastl4 flows removed by idle timeout.
    pub fastl4_flows_expired: Counter,
    /// Fastl4 flows removed after a TCP RST passed through.
    pub fastl4_flows_closed_by_rst: Counter,
    /// Fastl4 flows removed because their member went down.
    pub fastl4_flows_member_down: Counter,
    /// TCP RSTs sent toward clients: flows whose member went down, SYNs that found no
    /// SNAT port.
    pub fastl4_rsts_sent: Counter,
    /// Fragment-table entries overwritten before they expired (table too small).
    pub fastl4_frag_evicted: Counter,
    /// Requests for a source port (fastl4 SNAT, monitor probes) that found none free
    /// whose replies reach this worker (see [`crate::ports`]).
    pub source_ports_exhausted: Counter,
    /// TCP RSTs queued toward clients whose SYN found no free SNAT port (part of
    /// `fastl4_rsts_sent`).
    pub fastl4_snat_exhausted_rsts: Counter,
    /// Loop turns of the worker.
    pub loop_turns: Counter,
    /// Loop turns that found no packet.
    pub idle_turns: Counter,
    /// Times the worker slept (adaptive idle policy) until a frame or a deadline.
    pub sleeps: Counter,
    /// CPU time the worker's thread spent in the sleeps it timed (entering the wait,
    /// switching away and back), nanoseconds: what sleeping costs, against polling.
    /// Reading the thread's CPU clock is a system call, so only one sleep in
    /// several is timed (`sleeps_timed`).
    pub sleep_cpu_ns: Counter,
    /// Sleeps whose CPU time was measured (into `sleep_cpu_ns`).
    pub sleeps_timed: Counter,
    /// The adaptive idle policy's current spin budget (a gauge, nanoseconds): how long
    /// the worker polls after the last packet before it sleeps (`rouge_appliance`'s
    /// `idle::SpinBudget`).
    pub spin_ns: Counter,
    /// Packets dropped because the worker's transmit queue of their port was full
    /// (or the port unknown): the ports did not drain as fast as the pipeline produced.
    pub tx_queue_overflow: Counter,
    /// Nanoseconds the worker spent in loop turns that did work (received frames or ran
    /// due timers), as DPDK's telemetry counts a poll-mode core busy: spinning on empty
    /// rings and sleeping are not counted.
    pub work_ns: Counter,
    /// Frames this worker received for a flow another worker owns and handed to that
    /// worker (drivers that cannot steer in the kernel or NIC; see the appliance's
    /// `handoff` module).
    pub handoffs: Counter,
    /// Frames lost on the way to their owner: its inbox was full (counted by the
    /// sender), or its packet pool had no buffer to take the frame (by the owner).
    pub handoff_drops: Counter,
    /// Packets and bytes received per port (in interface order), by verdict.
    pub by_port: [PortVerdicts; MAX_COUNTED_PORTS],
}

/// Ports whose received traffic is counted by verdict (an appliance has a few data
/// ports; beyond this many, ports are counted only in the totals).
pub const MAX_COUNTED_PORTS: usize = 16;

/// The verdict kinds of [`PortVerdicts`], in counter order.
pub const VERDICT_KINDS: [&str; 5] = ["forwarded", "answered", "consumed", "held", "dropped"];

/// One port's received packets and bytes by verdict kind (see [`VERDICT_KINDS`]).
#[derive(Debug, Default)]
pub struct PortVerdicts {
    /// Packets, by verdict kind.
    pub packets: [Counter; 5],
    /// Bytes (frames as received), by verdict kind.
    pub bytes: [Counter; 5],
}

impl Default for PipelineCounters {
    fn default() -> Self {
        PipelineCounters {
            rx_packets: Counter::default(),
            forwarded: Counter::default(),
            answered: Counter::default(),
            consumed: Counter::default(),
            drops: std::array::from_fn(|_| Counter::default()),
            arp_requests_sent: Counter::default(),
            arp_replies_sent: Counter::default(),
            arp_gratuitous_sent: Counter::default(),
            icmp_echo_replies: Counter::default(),
            icmp_errors_sent: Counter::default(),
            icmp_errors_rate_limited: Counter::default(),
            tcp_segments_out: Counter::default(),
            nd_solicits_sent: Counter::default(),
            nd_adverts_sent: Counter::default(),
            nd_unsolicited_sent: Counter::default(),
            nd_dad_probes_sent: Counter::default(),
            mld_reports_sent: Counter::default(),
            mld_queries_answered: Counter::default(),
            mld_queries_limited: Counter::default(),
            icmpv6_echo_replies: Counter::default(),
            icmpv6_errors_sent: Counter::default(),
            fastl4_flows_created: Counter::default(),
            fastl4_flows_expired: Counter::default(),
            fastl4_flows_closed_by_rst: Counter::default(),
            fastl4_flows_member_down: Counter::default(),
            fastl4_rsts_sent: Counter::default(),
            fastl4_frag_evicted: Counter::default(),
            source_ports_exhausted: Counter::default(),
            fastl4_snat_exhausted_rsts: Counter::default(),
            loop_turns: Counter::default(),
            idle_turns: Counter::default(),
            sleeps: Counter::default(),
            sleep_cpu_ns: Counter::default(),
            sleeps_timed: Counter::default(),
            spin_ns: Counter::default(),
            tx_queue_overflow: Counter::default(),
            work_ns: Counter::default(),
            by_port: std::array::from_fn(|_| PortVerdicts::default()),
            handoffs: Counter::default(),
            handoff_drops: Counter::default(),
        }
    }
}

impl PipelineCounters {
    /// A fresh, shareable set.
    pub fn new_shared() -> Arc<PipelineCounters> {
        Arc::new(PipelineCounters::default())
    }

    /// Counts a final verdict.
    #[inline]
    pub fn verdict(&self, v: Verdict) {
        match v {
            Verdict::Forwarded => self.forwarded.inc(),
            Verdict::Answered => self.answered.inc(),
            Verdict::Consumed => self.consumed.inc(),
            Verdict::Held => {}
            Verdict::Dropped(r) => self.drops[r as usize].inc(),
        }
    }

    /// Counts the verdict of a frame of `len` bytes received on `port`.
    #[inline]
    pub fn port_verdict(&self, port: u16, v: Verdict, len: usize) {
        let kind = match v {
            Verdict::Forwarded => 0,
            Verdict::Answered => 1,
            Verdict::Consumed => 2,
            Verdict::Held => 3,
            Verdict::Dropped(_) => 4,
        };
        if let Some(p) = self.by_port.get(port as usize) {
            p.packets[kind].inc();
            p.bytes[kind].add(len as u64);
        }
    }

    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Drops of every reason added up.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}
