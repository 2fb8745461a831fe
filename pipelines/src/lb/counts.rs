//! Connection counts per member for the whole appliance, shared by all workers.
//!
//! # Why exact atomics, and why compare-and-swap
//!
//! Least connections and connection limits must hold for the appliance as a whole, and
//! one client's flows may land on different workers, so a per-worker count is not
//! enough. Two designs were weighed:
//!
//! - per-worker shards folded by the control thread every millisecond or so: no
//!   shared writes, but a limit could be exceeded by every flow opened in one fold
//!   interval on every worker, which is unbounded at high new-flow rates;
//! - one atomic counter per member, which is what this module does. The counter is
//!   written once when a flow is assigned and once when it ends, i.e. at the new-flow
//!   rate, never per packet, so contention stays low; each member's counter sits on its
//!   own cache line so members do not slow each other down.
//!
//! [`ConnCounts::try_acquire`] takes a slot with a compare-and-swap loop that only
//! succeeds while the count is below the limit, so the limit is **exact**: no
//! interleaving of workers ever lets the count exceed it, not even for an instant. The
//! simpler `fetch_add` then "undo if over" would also never admit more than the limit,
//! but it lets the count overshoot transiently, so a concurrent worker could see a
//! full member that is not full and refuse a flow it should have taken; the CAS loop
//! has no such false refusals and costs the same when uncontended. Relaxed ordering is
//! enough because each counter is a single location and publishes nothing else.
//!
//! Reads for least connections ([`ConnCounts::current`]) are plain loads: a choice made
//! on a count that changes a moment later is still a good choice.
//!
//! # Across configuration snapshots
//!
//! A configuration change builds a new [`Pool`]; flows opened before it
//! keep the old pool and the old `ConnCounts` until they end, and release their slot
//! there. [`ConnCounts::carry_over`] builds the new pool's counts so that every member
//! present in both pools (same address and port) **shares its counter** with the old
//! one: old flows ending still decrement it, least connections still sees them, and
//! the limit still counts them. Members new to the pool start at zero.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::member::{Member, MemberId};
use super::pool::Pool;

/// One member's counters, on its own cache line.
#[derive(Debug)]
#[repr(align(64))]
struct CountSlot {
    current: AtomicU32,
    limit: AtomicU32,
    total: AtomicU64,
}

impl CountSlot {
    fn new(limit: u32) -> Self {
        Self {
            current: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            total: AtomicU64::new(0),
        }
    }
}

/// Current and total connections of every member of one pool, shared by all workers
/// through an `Arc`.
///
/// Every successful [`try_acquire`](Self::try_acquire) (also done by
/// [`Pool::select`](super::Pool::select) and
/// [`Pool::select_persisted`](super::Pool::select_persisted)) must be matched by
/// exactly one [`release`](Self::release) when the flow ends or is abandoned.
#[derive(Debug)]
pub struct ConnCounts {
    slots: Box<[Arc<CountSlot>]>,
}

impl ConnCounts {
    /// Zero counts for `members`, with their configured connection limits.
    pub fn new(members: &[Member]) -> Self {
        Self {
            slots: members
                .iter()
                .map(|m| Arc::new(CountSlot::new(m.conn_limit)))
                .collect(),
        }
    }

    /// Counts for the pool `new` (a new configuration snapshot) that share the counter
    /// of every member also in `old` (same address), so that flows still counted in
    /// `old_counts` go on counting for least connections and limits, and release into
    /// the same counter. Limits come from the new configuration. Allocates; call it on
    /// the control thread when the snapshot is built.
    pub fn carry_over(new: &Pool, old: &Pool, old_counts: &ConnCounts) -> Self {
        Self {
            slots: new
                .members()
                .iter()
                .map(|m| match old.find(m.addr) {
                    Some(id) if id.index() < old_counts.slots.len() => {
                        let slot = old_counts.slots[id.index()].clone();
                        slot.limit.store(m.conn_limit, Ordering::Relaxed);
                        slot
                    }
                    _ => Arc::new(CountSlot::new(m.conn_limit)),
                })
                .collect(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, id: MemberId) -> &CountSlot {
        &self.slots[id.index()]
    }

    /// Flows currently assigned to `id`.
    ///
    /// # Panics
    /// If `id` does not belong to this pool (also for the other methods).
    pub fn current(&self, id: MemberId) -> u32 {
        self.slot(id).current.load(Ordering::Relaxed)
    }

    /// Flows ever assigned to `id`.
    pub fn total(&self, id: MemberId) -> u64 {
        self.slot(id).total.load(Ordering::Relaxed)
    }

    /// The connection limit of `id` (0 = none).
    pub fn limit(&self, id: MemberId) -> u32 {
        self.slot(id).limit.load(Ordering::Relaxed)
    }

    /// Changes the connection limit of `id` (0 = none). Flows above a lowered limit
    /// are not ended; new ones wait until the count is below it.
    pub fn set_limit(&self, id: MemberId, limit: u32) {
        self.slot(id).limit.store(limit, Ordering::Relaxed);
    }

    /// Whether `id` is below its limit right now (a hint: only
    /// [`try_acquire`](Self::try_acquire) is exact).
    pub fn has_room(&self, id: MemberId) -> bool {
        let s = self.slot(id);
        let limit = s.limit.load(Ordering::Relaxed);
        limit == 0 || s.current.load(Ordering::Relaxed) < limit
    }

    /// Counts one more flow on `id` if that keeps it within its limit. Exact under any
    /// number of concurrent callers: the count never exceeds the limit.
    pub fn try_acquire(&self, id: MemberId) -> bool {
        let s = self.slot(id);
        let limit = s.limit.load(Ordering::Relaxed);
        let ok = s
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                if (limit == 0 || c < limit) && c < u32::MAX {
                    Some(c + 1)
                } else {
                    None
                }
            })
            .is_ok();
        if ok {
            s.total.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Counts one flow on `id` as ended. Returns `false` (and changes nothing) if the
    /// count was already zero, which means a release without an acquire: a bug in the
    /// caller, reported rather than wrapped around to four billion.
    pub fn release(&self, id: MemberId) -> bool {
        self.slot(id)
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_exact_and_release_does_not_underflow() {
        let m = Member::new("198.18.2.11:80".parse().unwrap()).with_conn_limit(2);
        let c = ConnCounts::new(&[m]);
        let id = MemberId(0);
        assert!(c.try_acquire(id));
        assert!(c.try_acquire(id));
        assert!(!c.try_acquire(id));
        assert!(!c.has_room(id));
        assert_eq!((c.current(id), c.total(id)), (2, 2));
        assert!(c.release(id));
        assert!(c.try_acquire(id));
        assert!(c.release(id) && c.release(id));
        assert!(!c.release(id));
        assert_eq!(c.current(id), 0);
        c.set_limit(id, 0);
        for _ in 0..10 {
            assert!(c.try_acquire(id));
        }
        assert_eq!((c.current(id), c.total(id)), (10, 13));
    }
}
