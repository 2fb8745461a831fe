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
//! # Rates across workers
//!
//! Each worker runs its own `Shaper` for each egress interface. For the root rate and a
//! class's guarantee and ceiling to hold for the appliance as a whole, each worker
//! enforces a *share* of them, and a [`Rebalancer`] (sans-I/O, driven by a control
//! thread; see `share.rs`) moves the shares to where the demand is:
//!
//! 1. **Per-worker policy.** [`worker_config`] gives every class a ceiling bucket (its
//!    ceiling, or the root rate when it has none) so its share can be set, and starts
//!    root, guarantees and ceilings at 1/workers of the configured values.
//! 2. **Measure.** Every [`PERIOD`] (5 ms) the control thread takes one
//!    [`WorkerSample`] per worker from its counters. Per worker and class, the offered
//!    bytes (accepted plus dropped) over the period give a rate estimate, which rises at
//!    once and falls halfway per period; the class is *backlogged* on that worker if
//!    bytes are queued or were dropped.
//! 3. **Demand.** A class's appliance-wide demand is Σ over workers of (estimate + 25 %
//!    headroom + a floor). A shaped TCP flow only offers what it is allowed, so a
//!    class backlogged on any worker demands at least its current allocation + 25 % +
//!    the floors: held back by its own share, it can still grow by a quarter a period.
//! 4. **Allocate.** [`allocate`] computes the fluid allocation of the whole appliance:
//!    priority classes by level up to demand and ceiling, then guarantees up to demand,
//!    then the spare water-filled by weight among classes that want more, with every
//!    ceiling bounding its class's subtree and the root bounding the total. Capacity
//!    nobody asked for is then spread by weight anyway (up to the ceilings), so a class
//!    whose demand jumps finds room before the next period.
//! 5. **Split.** Each class's allocation is split over the workers: every worker keeps
//!    a floor (1 % of the allocation / workers, at least 1 % of the root / (workers ×
//!    classes)) so a new flow there is not stalled until the next period; the rest goes
//!    max-min fair across workers, a worker that keeps up being capped at its estimate
//!    plus 25 %, a backlogged one uncapped; what remains when all are capped goes in
//!    proportion to demand.
//! 6. **Apply.** A worker's class ceiling is its share (a parent's: the sum of its
//!    subtree's shares), its guarantee the class's guarantee × share / allocation (at
//!    most the share), its root the sum of its shares. Each worker applies its
//!    [`WorkerRates`] between bursts ([`WorkerRates::apply`]: tokens earned are kept,
//!    capped at the burst; nothing is allocated).
//!
//! Weights matter only in [`allocate`]: locally every class is held to its share by its
//! ceiling, and the local root is the sum of the shares, so each backlogged class gets
//! exactly its share. Strict priority still works locally (a priority class is served
//! first on its worker, up to its share).
//!
//! **What holds.** The shares always add up to at most the configured rates: Σ over
//! workers of the roots ≤ the root rate, of a class's ceilings (subtree included) ≤
//! its ceiling, of its guarantees ≤ its guarantee. So if all workers apply a round at
//! the same time, over any interval of length T a class (or the root) sends at most
//! rate × T + workers × burst (each worker's bucket holds at most one burst). Workers
//! apply a round up to δ < one period apart; a worker raising its share before another
//! lowers its own adds at most Σ over workers of the raises × δ, i.e. at most one
//! period's worth of the rate that moved. A guarantee is met once the demand has been
//! measured: one or two periods for a new class, a few (the old worker's queue drains,
//! its estimate decays) when demand moves between workers.
//!
//! **What it costs.** A worker that keeps up with a class holds 25 % headroom above its
//! rate and every idle (worker, class) pair a floor; that capacity is not lent to other
//! classes until the class uses it or the next period reclaims it (0.6 % of the root in
//! the two-worker 3:1 test). And each worker may burst its own bucket: the appliance
//! bursts up to workers × the configured burst.
//!
//! # Lossless shaping of proxied TCP
//!
//! Forwarded traffic is dropped at the queue limit ([`Shaper::enqueue`] returns the item
//! with a [`DropReason`]). A proxied TCP connection owns its data, so it should be slowed
//! instead: the proxy asks the shaper before emitting a segment ([`Shaper::has_room`], or a
//! per-class credit), and when the class is backlogged it keeps
//! the data in the socket's send buffer, stops reading from the peer (so the advertised
//! receive window closes and the sender slows), and arms a timer at
//! [`Shaper::next_ready`]. Nothing is dropped; TCP's own flow control carries the
//! backpressure to the far sender.
//!
//! As built: before the pipeline drains its TCP stack, the worker copies each class's
//! room ([`Shaper::room`]) into a [`room::ShapingRoom`]; a connection the proxy tagged
//! with a class (`TcpStack::set_shaping`) sends new data only while its class has room
//! for a full segment on its egress port, and waits in the stack otherwise (counted as
//! a deferral) until the shaper has released something. Its send buffer fills, the
//! proxy's relay stops at `proxy_buffer_high`, and the far sender's window closes.

mod bucket;
mod config;
mod counters;
pub mod policy;
mod queue;
pub mod room;
mod sched;
pub mod share;

#[cfg(test)]
mod share_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use config::{ClassConfig, ConfigError, ShaperConfig};
pub use counters::{ClassCounters, DelayStats, DELAY_BUCKETS};
pub use policy::{ShapingPolicy, QUANTUM_BYTES};
pub use sched::{ClassId, DropReason, Shaper};
pub use share::{
    allocate, worker_config, Rebalancer, Tuning, WorkerRates, WorkerSample, MIN_RATE_BPS, PERIOD,
};

/// Number of flow sub-queues inside each class.
pub const FLOWS: usize = 16;

/// Anything the shaper can queue: it needs the item's length on the wire, and may
/// say when the item arrived.
pub trait ShapedItem {
    /// Bytes this item occupies on the wire (what rates and bursts are charged).
    fn wire_len(&self) -> usize;

    /// When the item reached the appliance, if known (a packet's receive stamp): its
    /// queueing delay is measured from then, so time spent before the shaper (in the
    /// receive ring, in the pipeline) counts. `None`: from the enqueue.
    fn arrival(&self) -> Option<crate::Instant> {
        None
    }
}

impl ShapedItem for rouge_drivers::Packet {
    fn wire_len(&self) -> usize {
        self.len()
    }

    fn arrival(&self) -> Option<crate::Instant> {
        (self.meta.rx_time != 0).then(|| crate::Instant::from_nanos(self.meta.rx_time))
    }
}
