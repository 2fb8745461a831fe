//! Egress traffic shaping: a sans-I/O scheduler of classes under a root line rate.
//!
//! A [`Shaper`] holds items (packets, or anything with a [`ShapedItem::wire_len`]) in
//! per-class bounded queues and hands them back in the order and at the pace the policy
//! allows. It never reads a clock: every call takes `now`, and [`Shaper::next_ready`]
//! says when the next item may leave, so the worker loop knows when to wake.
//!
//! # Policy
//!
//! Each call to [`Shaper::dequeue`] picks at most one item, in three phases:
//!
//! 1. **strict priority**: classes with a priority level, lowest level first, as long as
//!    their ceiling (and every ancestor's ceiling) allows; a priority class should have a
//!    ceiling, or it can starve everything else;
//! 2. **guarantees**: classes whose guaranteed-rate token bucket holds enough tokens for
//!    their head item (round robin between them);
//! 3. **spare capacity**: deficit round robin between the remaining backlogged classes,
//!    each with a quantum of `weight × quantum_bytes`, skipping classes whose ceiling is
//!    exhausted.
//!
//! The root token bucket (line rate, root burst) must allow every item, whatever the
//! phase, so the line rate is never exceeded. Ceilings are token buckets too and apply
//! along the class's path to the root: a child never sends faster than any ancestor's
//! ceiling. Weights and guarantees are those of the class itself (the spare capacity is
//! shared between all backlogged classes, not recursively per subtree).
//!
//! Inside a class, items are spread over [`FLOWS`] flow sub-queues by flow hash and
//! served by byte-based deficit round robin, so one elephant flow cannot starve the mice
//! sharing its class. When the class queue is full, the arriving item is dropped if its
//! own flow is the longest; otherwise the head of the longest flow is dropped instead
//! (longest-queue drop), so an elephant cannot lock the mice out of the queue either.
//!
//! All memory is allocated by [`Shaper::new`]: the per-class queues are fixed slabs of
//! `queue_packets` slots; enqueue and dequeue never allocate.
//!
//! # Rates across workers (design, not implemented here)
//!
//! Each worker runs its own `Shaper` for each egress interface. For a class's guarantee
//! and ceiling to hold for the appliance as a whole, each worker is configured with a
//! *share* of them: worker `w` gets `rate × demand_w / Σ demand`, where `demand_w` is the
//! class's bytes offered on that worker (sent plus dropped plus queued) over the last
//! period. A control thread reads the per-worker counters every few milliseconds and
//! publishes new shares as an immutable snapshot; each worker applies them between bursts
//! by changing its buckets' rates (tokens kept, capped to the new burst). A worker with
//! no demand keeps a small floor (e.g. one MTU per period) so a new flow is not stalled
//! until the next rebalancing. Errors are bounded by one period's worth of rate change.
//!
//! # Lossless shaping of proxied TCP (design, not implemented here)
//!
//! Forwarded traffic is dropped at the queue limit ([`Shaper::enqueue`] returns the item
//! with a [`DropReason`]). A proxied TCP connection owns its data, so it should be slowed
//! instead: the proxy asks the shaper before emitting a segment ([`Shaper::has_room`], or a
//! per-class credit), and when the class is backlogged it keeps
//! the data in the socket's send buffer, stops reading from the peer (so the advertised
//! receive window closes and the sender slows), and arms a timer at
//! [`Shaper::next_ready`]. Nothing is dropped; TCP's own flow control carries the
//! backpressure to the far sender.

mod bucket;
mod config;
mod counters;
pub mod policy;
mod queue;
mod sched;
pub mod share;

#[cfg(test)]
mod tests;

pub use config::{ClassConfig, ConfigError, ShaperConfig};
pub use counters::{ClassCounters, DelayStats, DELAY_BUCKETS};
pub use policy::{ShapingPolicy, QUANTUM_BYTES};
pub use sched::{ClassId, DropReason, Shaper};

/// Number of flow sub-queues inside each class.
pub const FLOWS: usize = 16;

/// Anything the shaper can queue: it only needs the item's length on the wire.
pub trait ShapedItem {
    /// Bytes this item occupies on the wire (what rates and bursts are charged).
    fn wire_len(&self) -> usize;
}

impl ShapedItem for rouge_drivers::Packet {
    fn wire_len(&self) -> usize {
        self.len()
    }
}
