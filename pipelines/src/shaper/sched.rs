//! The scheduler: classes, their buckets and queues, and the three-phase choice.

use super::bucket::TokenBucket;
use super::config::{ConfigError, ShaperConfig};
use super::counters::ClassCounters;
use super::queue::{flow_of, FlowQueue};
use super::ShapedItem;
use crate::time::Instant;

/// A class, named by its index in [`ShaperConfig::classes`].
pub type ClassId = usize;

/// Why [`Shaper::enqueue`] dropped an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No class has this index.
    UnknownClass,
    /// The class queue held its limit of items (the dropped item is the arriving one,
    /// or the head of the class's longest flow).
    QueuePackets,
    /// The class queue held its limit of bytes.
    QueueBytes,
    /// The item is larger than a burst on its path, so it could never be sent.
    TooLarge,
}

/// Which phase chose a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Priority,
    Guarantee,
    Spare,
}

#[derive(Debug)]
struct Class<T> {
    /// This class and its ancestors, those with a ceiling.
    ceiled_path: Vec<ClassId>,
    ceiling: Option<TokenBucket>,
    guarantee: Option<TokenBucket>,
    quantum: u64,
    deficit: u64,
    bytes_limit: Option<u64>,
    max_len: usize,
    queue: FlowQueue<T>,
    counters: ClassCounters,
}

/// The egress scheduler of one interface on one worker.
///
/// Call order: [`Shaper::enqueue`] items as they are routed to the interface; when the
/// port can take more, [`Shaper::dequeue`] until it returns `None`; then sleep until
/// [`Shaper::next_ready`]. `now` must not go backwards (an earlier `now` counts as no
/// time passing).
#[derive(Debug)]
pub struct Shaper<T> {
    root: TokenBucket,
    classes: Vec<Class<T>>,
    /// Priority classes, by level then index.
    priority: Vec<ClassId>,
    /// Weighted classes with a guarantee.
    guaranteed: Vec<ClassId>,
    /// Weighted classes, the deficit round robin ring.
    weighted: Vec<ClassId>,
    guarantee_cursor: usize,
    drr_cursor: usize,
    drr_fresh: bool,
    unknown_class_drops: u64,
}

impl<T: ShapedItem> Shaper<T> {
    /// A shaper for `config`, with every queue allocated now.
    pub fn new(config: &ShaperConfig) -> Result<Shaper<T>, ConfigError> {
        config.validate()?;
        let mut classes: Vec<Class<T>> = Vec::with_capacity(config.classes.len());
        for (i, c) in config.classes.iter().enumerate() {
            let mut ceiled_path = Vec::new();
            let mut max_len = config.root_burst_bytes.min(u32::MAX as u64);
            if let Some(b) = c.queue_bytes {
                max_len = max_len.min(b);
            }
            let mut at = Some(i);
            while let Some(a) = at {
                let ac = &config.classes[a];
                if ac.ceiling_bps.is_some() {
                    ceiled_path.push(a);
                    max_len = max_len.min(ac.burst_bytes);
                }
                at = ac.parent;
            }
            classes.push(Class {
                ceiled_path,
                ceiling: c.ceiling_bps.map(|r| TokenBucket::new(r, c.burst_bytes)),
                guarantee: c.guaranteed_bps.map(|r| TokenBucket::new(r, c.burst_bytes)),
                quantum: c.weight as u64 * config.quantum_bytes as u64,
                deficit: 0,
                bytes_limit: c.queue_bytes,
                max_len: max_len as usize,
                queue: FlowQueue::new(c.queue_packets),
                counters: ClassCounters::default(),
            });
        }
        let mut priority: Vec<ClassId> = (0..config.classes.len())
            .filter(|&i| config.classes[i].priority.is_some())
            .collect();
        priority.sort_by_key(|&i| (config.classes[i].priority, i));
        let weighted: Vec<ClassId> = (0..config.classes.len())
            .filter(|&i| config.classes[i].priority.is_none())
            .collect();
        let guaranteed = weighted
            .iter()
            .copied()
            .filter(|&i| config.classes[i].guaranteed_bps.is_some())
            .collect();
        Ok(Shaper {
            root: TokenBucket::new(config.root_bps, config.root_burst_bytes),
            classes,
            priority,
            guaranteed,
            weighted,
            guarantee_cursor: 0,
            drr_cursor: 0,
            drr_fresh: true,
            unknown_class_drops: 0,
        })
    }

    // ---- getters ----

    /// Number of classes.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Counters of `class`, `None` for an unknown class.
    pub fn counters(&self, class: ClassId) -> Option<&ClassCounters> {
        self.classes.get(class).map(|c| &c.counters)
    }

    /// Items dropped because they named no class.
    pub fn unknown_class_drops(&self) -> u64 {
        self.unknown_class_drops
    }

    /// Items queued in all classes.
    pub fn queued(&self) -> usize {
        self.classes.iter().map(|c| c.queue.len()).sum()
    }

    /// True when `class` would queue an item of `len` bytes without dropping anything:
    /// the backpressure check a lossless producer (a proxied TCP connection) makes
    /// before handing data over, waiting for [`Shaper::next_ready`] otherwise.
    pub fn has_room(&self, class: ClassId, len: usize) -> bool {
        self.classes.get(class).is_some_and(|c| {
            len <= c.max_len
                && !c.queue.is_full()
                && c.bytes_limit
                    .is_none_or(|b| c.queue.bytes() + len as u64 <= b)
        })
    }

    /// What `class` can still queue without dropping: (items, bytes). `None` for an
    /// unknown class.
    pub fn room(&self, class: ClassId) -> Option<(usize, u64)> {
        self.classes.get(class).map(|c| {
            let bytes = c
                .bytes_limit
                .map_or(u64::MAX, |b| b.saturating_sub(c.queue.bytes()));
            (c.queue.free_slots(), bytes)
        })
    }

    // ---- inputs ----

    /// Queue `item` in `class`, in the flow sub-queue of `flow_hash`.
    ///
    /// On `Err` the caller gets back the dropped item and why: the arriving item, or,
    /// when the queue is full and another flow of the class holds more bytes, the head
    /// of that flow (the arriving item is then queued). Every drop is counted.
    pub fn enqueue(
        &mut self,
        now: Instant,
        class: ClassId,
        flow_hash: u64,
        item: T,
    ) -> Result<(), (T, DropReason)> {
        let Some(c) = self.classes.get_mut(class) else {
            self.unknown_class_drops += 1;
            return Err((item, DropReason::UnknownClass));
        };
        let len = item.wire_len();
        if len > c.max_len {
            c.counters.drops_too_large += 1;
            c.counters.dropped_bytes += len as u64;
            return Err((item, DropReason::TooLarge));
        }
        if c.bytes_limit
            .is_some_and(|b| c.queue.bytes() + len as u64 > b)
        {
            c.counters.drops_queue_bytes += 1;
            c.counters.dropped_bytes += len as u64;
            return Err((item, DropReason::QueueBytes));
        }
        let f = flow_of(flow_hash);
        let mut victim = None;
        if c.queue.is_full() {
            let own = c.queue.flow_bytes(f) + len as u64;
            match c.queue.longest_flow() {
                Some(l) if l != f && c.queue.flow_bytes(l) > own => {
                    victim = c.queue.drop_head(l).map(|(v, _)| v);
                }
                _ => {}
            }
            if victim.is_none() {
                c.counters.drops_queue_packets += 1;
                c.counters.dropped_bytes += len as u64;
                return Err((item, DropReason::QueuePackets));
            }
        }
        // Delay is measured from the item's arrival (never later than now).
        let arrived = item.arrival().map_or(now, |t| t.min(now));
        let result = match c.queue.push(f, item, len, arrived) {
            Ok(()) => {
                c.counters.enqueued_packets += 1;
                c.counters.enqueued_bytes += len as u64;
                match victim {
                    Some(v) => {
                        c.counters.drops_queue_packets += 1;
                        c.counters.dropped_bytes += v.wire_len() as u64;
                        Err((v, DropReason::QueuePackets))
                    }
                    None => Ok(()),
                }
            }
            // Not reached: a slot was free or was just freed.
            Err(item) => {
                c.counters.drops_queue_packets += 1;
                c.counters.dropped_bytes += len as u64;
                Err((item, DropReason::QueuePackets))
            }
        };
        c.counters.queue_packets = c.queue.len();
        c.counters.queue_bytes = c.queue.bytes();
        result
    }

    /// Count `len` bytes sent on the interface without going through a class (control
    /// traffic such as ARP, ICMP or the appliance's own TCP) against the root's line
    /// rate, so shaped classes leave room for it. Never delays anything.
    pub fn charge(&mut self, now: Instant, len: usize) {
        self.root.charge(now, len);
    }

    // ---- rates (the cross-worker rebalancer's knobs) ----

    /// Set the root's rate from `now` on (tokens earned so far are kept).
    pub fn set_root_rate(&mut self, now: Instant, bps: u64) {
        self.root.set_rate(now, bps);
    }

    /// The root's current rate in bits/s.
    pub fn root_rate(&self) -> u64 {
        self.root.rate()
    }

    /// Set `class`'s guaranteed rate and ceiling from `now` on. Only buckets the class
    /// was configured with can be changed (`None` leaves a rate as it is); returns false
    /// for an unknown class or a rate on a bucket the class does not have.
    pub fn set_class_rates(
        &mut self,
        now: Instant,
        class: ClassId,
        guaranteed_bps: Option<u64>,
        ceiling_bps: Option<u64>,
    ) -> bool {
        let Some(c) = self.classes.get_mut(class) else {
            return false;
        };
        let mut ok = true;
        match (guaranteed_bps, c.guarantee.as_mut()) {
            (Some(r), Some(b)) => b.set_rate(now, r),
            (Some(_), None) => ok = false,
            _ => {}
        }
        match (ceiling_bps, c.ceiling.as_mut()) {
            (Some(r), Some(b)) => b.set_rate(now, r),
            (Some(_), None) => ok = false,
            _ => {}
        }
        ok
    }

    /// `class`'s current guaranteed rate and ceiling in bits/s.
    pub fn class_rates(&self, class: ClassId) -> Option<(Option<u64>, Option<u64>)> {
        self.classes.get(class).map(|c| {
            (
                c.guarantee.as_ref().map(|b| b.rate()),
                c.ceiling.as_ref().map(|b| b.rate()),
            )
        })
    }

    /// Take every queued item out, class by class, without sending it (to move them
    /// into a shaper built for a new policy). Counters are left as they are.
    pub fn drain(&mut self, mut out: impl FnMut(ClassId, T)) {
        for (i, c) in self.classes.iter_mut().enumerate() {
            while let Some((item, _, _)) = c.queue.pop() {
                out(i, item);
            }
            c.deficit = 0;
            c.counters.queue_packets = 0;
            c.counters.queue_bytes = 0;
        }
    }

    /// Carry `class`'s running totals over from a shaper this one replaces (after a
    /// configuration change), keeping this shaper's own queue depth.
    pub fn carry_totals(&mut self, class: ClassId, old: &ClassCounters) {
        if let Some(c) = self.classes.get_mut(class) {
            let (packets, bytes) = (c.counters.queue_packets, c.counters.queue_bytes);
            c.counters = *old;
            c.counters.queue_packets = packets;
            c.counters.queue_bytes = bytes;
        }
    }

    // ---- outputs ----

    /// The next item allowed to leave at `now`, with its class; `None` when nothing is
    /// queued or the rates hold everything back until [`Shaper::next_ready`].
    pub fn dequeue(&mut self, now: Instant) -> Option<(ClassId, T)> {
        let (class, phase) = self.candidate(now)?;
        let len = self.classes[class].queue.peek_len()?;
        if !self.root.conforms(now, len) {
            return None;
        }
        let (item, len, enqueued) = self.classes[class].queue.pop()?;
        self.root.take(now, len);
        for i in 0..self.classes[class].ceiled_path.len() {
            let a = self.classes[class].ceiled_path[i];
            if let Some(b) = self.classes[a].ceiling.as_mut() {
                b.take(now, len);
            }
        }
        let c = &mut self.classes[class];
        match phase {
            Phase::Priority => {}
            Phase::Guarantee => {
                if let Some(g) = c.guarantee.as_mut() {
                    g.take(now, len);
                }
                if let Some(pos) = self.guaranteed.iter().position(|&g| g == class) {
                    self.guarantee_cursor = (pos + 1) % self.guaranteed.len();
                }
            }
            Phase::Spare => {
                c.deficit = c.deficit.saturating_sub(len as u64);
                if c.queue.len() == 0 {
                    c.deficit = 0;
                    self.drr_advance();
                }
            }
        }
        let c = &mut self.classes[class];
        c.counters.packets += 1;
        c.counters.bytes += len as u64;
        c.counters.queue_packets = c.queue.len();
        c.counters.queue_bytes = c.queue.bytes();
        c.counters.delay.record(now - enqueued);
        Some((class, item))
    }

    /// When [`Shaper::dequeue`] will next have something: `now` (or earlier) if it has
    /// something now, `None` if nothing is queued.
    pub fn next_ready(&mut self, now: Instant) -> Option<Instant> {
        if let Some((class, _)) = self.candidate(now) {
            let len = self.classes[class].queue.peek_len()?;
            return Some(self.root.ready_at(now, len));
        }
        // Every backlogged class is held by a ceiling: the earliest one released.
        self.classes
            .iter()
            .filter_map(|c| {
                let len = c.queue.peek_len()?;
                let mut t = self.root.ready_at(now, len);
                for &a in &c.ceiled_path {
                    if let Some(b) = &self.classes[a].ceiling {
                        t = t.max(b.ready_at(now, len));
                    }
                }
                Some(t)
            })
            .min()
    }

    // ---- selection ----

    /// True when every ceiling on `class`'s path lets `len` bytes pass at `now`.
    fn ceilings_allow(&self, class: ClassId, len: usize, now: Instant) -> bool {
        self.classes[class].ceiled_path.iter().all(|&a| {
            self.classes[a]
                .ceiling
                .as_ref()
                .is_none_or(|b| b.conforms(now, len))
        })
    }

    /// The class that goes next if the root allows its head, ignoring the root.
    /// Advances the deficit round robin to that class (stable until it sends).
    fn candidate(&mut self, now: Instant) -> Option<(ClassId, Phase)> {
        for &c in &self.priority {
            if let Some(len) = self.classes[c].queue.peek_len() {
                if self.ceilings_allow(c, len, now) {
                    return Some((c, Phase::Priority));
                }
            }
        }
        let n = self.guaranteed.len();
        for k in 0..n {
            let c = self.guaranteed[(self.guarantee_cursor + k) % n];
            if let Some(len) = self.classes[c].queue.peek_len() {
                let under = self.classes[c]
                    .guarantee
                    .as_ref()
                    .is_some_and(|g| g.conforms(now, len));
                if under && self.ceilings_allow(c, len, now) {
                    return Some((c, Phase::Guarantee));
                }
            }
        }
        self.drr_candidate(now).map(|c| (c, Phase::Spare))
    }

    /// Deficit round robin: the class at the cursor once its deficit covers its head.
    fn drr_candidate(&mut self, now: Instant) -> Option<ClassId> {
        let n = self.weighted.len();
        let mut skipped = 0;
        while skipped < n {
            let c = self.weighted[self.drr_cursor];
            let Some(len) = self.classes[c].queue.peek_len() else {
                self.classes[c].deficit = 0;
                self.drr_advance();
                skipped += 1;
                continue;
            };
            if !self.ceilings_allow(c, len, now) {
                self.classes[c].deficit = 0;
                self.drr_advance();
                skipped += 1;
                continue;
            }
            let class = &mut self.classes[c];
            if self.drr_fresh {
                class.deficit += class.quantum;
                self.drr_fresh = false;
            }
            if class.deficit >= len as u64 {
                return Some(c);
            }
            self.drr_advance();
            skipped = 0;
        }
        None
    }

    fn drr_advance(&mut self) {
        self.drr_cursor = (self.drr_cursor + 1) % self.weighted.len().max(1);
        self.drr_fresh = true;
    }
}
