//! Per-worker data-plane counters, written by their worker only and read by the
//! control thread at any time without locks (see [`Counter`]).

use std::sync::Arc;

pub use rouge_drivers::port::Counter;

use crate::verdict::{DropReason, Verdict};

/// Counters of one worker's L2/L3 pipeline.
#[derive(Debug, Default)]
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
    /// Loop turns of the worker.
    pub loop_turns: Counter,
    /// Loop turns that found no packet.
    pub idle_turns: Counter,
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

    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Drops of every reason added up.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}
