//! Rates across workers: each worker's [`Shaper`] enforces a *share* of the
//! appliance-wide policy, and a [`Rebalancer`] moves the shares to where the demand is.
//!
//! Sans-I/O like the scheduler: nothing here reads a clock, spawns a thread or touches a
//! worker. A control thread builds each worker's shaper from [`worker_config`], then
//! every [`PERIOD`] collects one [`WorkerSample`] per worker (read from its counters),
//! calls [`Rebalancer::update`] and hands each worker its [`WorkerRates`], which the
//! worker applies between bursts with [`WorkerRates::apply`]. The scheme itself is
//! described in the module documentation of [`crate::shaper`] ("Rates across workers").

use std::time::Duration;

use super::config::ShaperConfig;
use super::counters::ClassCounters;
use super::sched::Shaper;
use super::ShapedItem;
use crate::time::Instant;

/// The rebalancing period the scheme is designed and tested for.
pub const PERIOD: Duration = Duration::from_millis(5);

/// The smallest rate a per-worker bucket starts at or is floored to, in bits/s, unless
/// the configured rate itself is smaller.
pub const MIN_RATE_BPS: u64 = 8_000;

/// Knobs of the [`Rebalancer`]; [`Tuning::default`] is what the scheme is tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Rate granted on top of a demand, in percent: on top of the measured rate of a
    /// worker that keeps up, and on top of the current allocation of a backlogged class,
    /// so that demand held back by its own share can still show itself and grow.
    pub headroom_percent: u64,
    /// How fast a worker's rate estimate falls when its measured rate drops: by
    /// `1 / 2^decay_shift` of the gap per update (it rises at once).
    pub decay_shift: u32,
    /// Floor kept by each worker for each class, in per-mille: at least this fraction of
    /// the class's allocation divided by the number of workers, and at least this
    /// fraction of the root rate divided by workers × classes (or [`MIN_RATE_BPS`]).
    pub floor_permille: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            headroom_percent: 25,
            decay_shift: 1,
            floor_permille: 10,
        }
    }
}

/// `rate / workers`, but at least [`MIN_RATE_BPS`] (or `rate` when that is smaller).
fn split_rate(rate: u64, workers: usize) -> u64 {
    (rate / workers as u64).max(rate.min(MIN_RATE_BPS)).max(1)
}

/// The initial per-worker rates: root, guarantees and ceilings divided evenly (a class
/// without a ceiling gets the root rate as its ceiling).
fn initial_rates(config: &ShaperConfig, workers: usize) -> WorkerRates {
    let classes: Vec<(Option<u64>, u64)> = config
        .classes
        .iter()
        .map(|c| {
            let g = c.guaranteed_bps.map(|g| (g / workers as u64).max(1));
            let ceiling = split_rate(c.ceiling_bps.unwrap_or(config.root_bps), workers);
            (g, ceiling.max(g.unwrap_or(0)))
        })
        .collect();
    let guaranteed: u64 = classes.iter().filter_map(|&(g, _)| g).sum();
    WorkerRates {
        root_bps: split_rate(config.root_bps, workers).max(guaranteed),
        classes,
    }
}

/// Per-worker policy derived from the appliance-wide one: every class gets a ceiling
/// bucket (configured ceiling, or the root rate when none) so the rebalancer can change
/// it; root, guarantees and ceilings start at 1/workers of the configured values (at
/// least a floor: [`MIN_RATE_BPS`], or the configured rate when smaller; the root at
/// least the sum of the guarantees, so the result is valid whenever `config` is).
///
/// Bursts are kept as configured, so the appliance as a whole may burst `workers` times
/// a class's burst. A class given a ceiling bucket here gets a burst of at least the
/// root burst, so the new bucket does not lower the largest item it accepts.
pub fn worker_config(config: &ShaperConfig, workers: usize) -> ShaperConfig {
    let workers = workers.max(1);
    let rates = initial_rates(config, workers);
    let mut out = config.clone();
    out.root_bps = rates.root_bps;
    for (c, &(g, ceiling)) in out.classes.iter_mut().zip(rates.classes.iter()) {
        if c.ceiling_bps.is_none() {
            c.burst_bytes = c.burst_bytes.max(config.root_burst_bytes);
        }
        c.guaranteed_bps = g;
        c.ceiling_bps = Some(ceiling);
    }
    out
}

/// What one worker measured for one egress interface: per class, cumulative offered
/// bytes (`ClassCounters::enqueued_bytes + dropped_bytes`) and bytes queued now.
#[derive(Debug, Clone, Default)]
pub struct WorkerSample {
    /// Per class: bytes offered so far (accepted plus dropped), a cumulative counter.
    pub offered_bytes: Vec<u64>,
    /// Per class: bytes queued at the time of the sample.
    pub queued_bytes: Vec<u64>,
    /// Per class: bytes dropped so far, a cumulative counter (optional: an empty or
    /// short vector counts as no drops). Drops during a period mark the class backlogged.
    pub dropped_bytes: Vec<u64>,
}

impl WorkerSample {
    /// Fill this sample from one class's counters per item of `counters`, in class
    /// order (reuses the vectors).
    pub fn fill<'a>(&mut self, counters: impl IntoIterator<Item = &'a ClassCounters>) {
        self.offered_bytes.clear();
        self.queued_bytes.clear();
        self.dropped_bytes.clear();
        for c in counters {
            self.offered_bytes.push(c.enqueued_bytes + c.dropped_bytes);
            self.queued_bytes.push(c.queue_bytes);
            self.dropped_bytes.push(c.dropped_bytes);
        }
    }

    /// Fill this sample from `shaper`'s counters (reuses the vectors).
    pub fn read<T: ShapedItem>(&mut self, shaper: &Shaper<T>) {
        self.fill((0..shaper.class_count()).filter_map(|c| shaper.counters(c)));
    }
}

/// The rates one worker should apply: root rate and, per class, (guaranteed, ceiling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRates {
    /// The worker's root rate in bits/s.
    pub root_bps: u64,
    /// Per class: guaranteed rate (`None` for a class without a guarantee) and ceiling,
    /// in bits/s. A parent's ceiling covers its whole subtree on this worker.
    pub classes: Vec<(Option<u64>, u64)>,
}

impl WorkerRates {
    /// Apply these rates to a shaper built from [`worker_config`], from `now` on (tokens
    /// already earned are kept). Never allocates; returns false if the shaper does not
    /// have the buckets these rates name (it was built from another policy).
    pub fn apply<T: ShapedItem>(&self, now: Instant, shaper: &mut Shaper<T>) -> bool {
        shaper.set_root_rate(now, self.root_bps);
        let mut ok = shaper.class_count() == self.classes.len();
        for (c, &(g, ceiling)) in self.classes.iter().enumerate() {
            ok &= shaper.set_class_rates(now, c, g, Some(ceiling));
        }
        ok
    }
}

/// Moves per-worker shares of each class's rate to where the demand is.
///
/// Fed every few milliseconds with one [`WorkerSample`] per worker, it estimates each
/// worker's demand per class, allocates the appliance-wide rates with the policy's
/// rules (see [`allocate`]) and splits each class's allocation over the workers. Runs on
/// a control thread: it allocates only in [`Rebalancer::new`].
#[derive(Debug)]
pub struct Rebalancer {
    config: ShaperConfig,
    workers: usize,
    tuning: Tuning,
    last: Option<Instant>,
    /// Per worker × class (index `w * classes + c`): last cumulative counters.
    prev_offered: Vec<u64>,
    prev_dropped: Vec<u64>,
    /// Per worker × class: rate estimate in bits/s.
    est_bps: Vec<u64>,
    /// Per worker × class: queue not empty, or drops, at the last update.
    backlogged: Vec<bool>,
    /// Per worker × class: the class's own share on the worker in bits/s.
    share_bps: Vec<u64>,
    /// Per class: appliance-wide allocation in bits/s.
    alloc_bps: Vec<u64>,
    /// Per class: demand handed to the allocator, in bits/s.
    demand_bps: Vec<u64>,
    /// Per class: the floor each worker keeps.
    floor_bps: Vec<u64>,
    /// Scratch per worker: room left while splitting.
    room: Vec<u64>,
    /// Scratch per class: subtree sums.
    subtree: Vec<u64>,
    allocator: Allocator,
    rates: Vec<WorkerRates>,
}

impl Rebalancer {
    /// A rebalancer for `config` (valid, see [`ShaperConfig::validate`]) over `workers`
    /// workers, with [`Tuning::default`]. Until the second update it hands out the
    /// initial rates of [`worker_config`].
    pub fn new(config: &ShaperConfig, workers: usize) -> Rebalancer {
        Rebalancer::with_tuning(config, workers, Tuning::default())
    }

    /// A rebalancer with other knobs than the default ones.
    pub fn with_tuning(config: &ShaperConfig, workers: usize, tuning: Tuning) -> Rebalancer {
        let workers = workers.max(1);
        let n = config.classes.len();
        let initial = initial_rates(config, workers);
        // Until measured, every class is taken to be allowed what it starts with.
        let alloc_bps: Vec<u64> = config
            .classes
            .iter()
            .map(|c| c.ceiling_bps.unwrap_or(config.root_bps))
            .collect();
        Rebalancer {
            config: config.clone(),
            workers,
            tuning,
            last: None,
            prev_offered: vec![0; workers * n],
            prev_dropped: vec![0; workers * n],
            est_bps: vec![0; workers * n],
            backlogged: vec![false; workers * n],
            share_bps: vec![0; workers * n],
            alloc_bps,
            demand_bps: vec![0; n],
            floor_bps: vec![0; n],
            room: vec![0; workers],
            subtree: vec![0; n],
            allocator: Allocator::with_classes(n),
            rates: vec![initial; workers],
        }
    }

    /// The rates each worker should apply now (index = worker).
    pub fn rates(&self) -> &[WorkerRates] {
        &self.rates
    }

    /// The appliance-wide allocation per class in bits/s, as of the last update: a class's
    /// own traffic, summed over the workers (the sum over all classes is at most the
    /// root rate).
    pub fn allocation(&self) -> &[u64] {
        &self.alloc_bps
    }

    /// The appliance-wide demand per class in bits/s that the last update allocated
    /// from (measured rates with headroom and floors).
    pub fn demand(&self) -> &[u64] {
        &self.demand_bps
    }

    /// Feed one sample per worker taken at `now`; returns the rates each worker should
    /// apply (index = worker). Call every few milliseconds (e.g. [`PERIOD`]).
    ///
    /// The first call only records the counters. A missing sample, or a missing class in
    /// a sample, counts as no traffic; a counter that went backwards (a rebuilt shaper)
    /// counts from zero. A `now` not after the previous one changes nothing.
    pub fn update(&mut self, now: Instant, samples: &[WorkerSample]) -> &[WorkerRates] {
        let n = self.config.classes.len();
        let Some(last) = self.last else {
            for (w, s) in samples.iter().enumerate().take(self.workers) {
                for c in 0..n {
                    let i = w * n + c;
                    self.prev_offered[i] = s.offered_bytes.get(c).copied().unwrap_or(0);
                    self.prev_dropped[i] = s.dropped_bytes.get(c).copied().unwrap_or(0);
                }
            }
            self.last = Some(now);
            return &self.rates;
        };
        let dt_ns = now.as_nanos().saturating_sub(last.as_nanos());
        if dt_ns == 0 {
            return &self.rates;
        }
        self.last = Some(now);
        self.measure(dt_ns, samples);
        self.class_demand();
        self.allocator
            .allocate(&self.config, &self.demand_bps, &mut self.alloc_bps);
        self.allocator.spare(&self.config, &mut self.alloc_bps);
        for c in 0..n {
            self.split(c);
        }
        self.publish();
        &self.rates
    }

    /// Per worker and class: the rate estimate and whether the class is backlogged.
    fn measure(&mut self, dt_ns: u64, samples: &[WorkerSample]) {
        let n = self.config.classes.len();
        for w in 0..self.workers {
            let s = samples.get(w);
            for c in 0..n {
                let i = w * n + c;
                let counter = |v: Option<&Vec<u64>>, prev: u64| {
                    let now = v.and_then(|v| v.get(c)).copied().unwrap_or(prev);
                    // A counter that went backwards was reset: count from zero.
                    (now, if now >= prev { now - prev } else { now })
                };
                let (offered, delta) = counter(s.map(|s| &s.offered_bytes), self.prev_offered[i]);
                let (dropped, drops) = counter(s.map(|s| &s.dropped_bytes), self.prev_dropped[i]);
                self.prev_offered[i] = offered;
                self.prev_dropped[i] = dropped;
                let queued = s.and_then(|s| s.queued_bytes.get(c)).copied().unwrap_or(0);
                let inst = sat(delta as u128 * 8 * 1_000_000_000 / dt_ns as u128);
                let est = self.est_bps[i];
                self.est_bps[i] = if inst >= est {
                    inst
                } else {
                    est - ((est - inst) >> self.tuning.decay_shift.min(63))
                };
                self.backlogged[i] = queued > 0 || drops > 0;
            }
        }
    }

    /// `rate` plus the headroom.
    fn with_headroom(&self, rate: u64) -> u64 {
        sat(rate as u128 * (100 + self.tuning.headroom_percent) as u128 / 100)
    }

    /// Per class: the floor each worker keeps and the appliance-wide demand. A class
    /// backlogged on some worker demands at least its current allocation plus headroom.
    fn class_demand(&mut self) {
        let n = self.config.classes.len();
        let wk = self.workers as u128;
        let permille = self.tuning.floor_permille as u128;
        let min_floor = sat(self.config.root_bps as u128 * permille / 1000 / (wk * n as u128))
            .max(MIN_RATE_BPS);
        for c in 0..n {
            let floor = sat(self.alloc_bps[c] as u128 * permille / 1000 / wk).max(min_floor);
            self.floor_bps[c] = floor;
            let mut sum: u128 = 0;
            let mut backlogged = false;
            for w in 0..self.workers {
                let i = w * n + c;
                sum += self.with_headroom(self.est_bps[i]) as u128 + floor as u128;
                backlogged |= self.backlogged[i];
            }
            if backlogged {
                let grow = self.with_headroom(self.alloc_bps[c]) as u128 + floor as u128 * wk;
                sum = sum.max(grow);
            }
            self.demand_bps[c] = sat(sum);
        }
    }

    /// Split class `c`'s allocation over the workers: each keeps its floor (or an even
    /// part of the allocation, if smaller); the rest goes max-min fair to the workers,
    /// those that keep up capped at their measured rate plus headroom, backlogged ones
    /// uncapped; what is left when every worker is capped goes in proportion to demand.
    fn split(&mut self, c: usize) {
        let n = self.config.classes.len();
        let wk = self.workers;
        let alloc = self.alloc_bps[c];
        let base = self.floor_bps[c].min(alloc / wk as u64);
        let mut rest = alloc - base * wk as u64;
        for w in 0..wk {
            let i = w * n + c;
            self.share_bps[i] = base;
            self.room[w] = if self.backlogged[i] {
                u64::MAX
            } else {
                self.with_headroom(self.est_bps[i])
            };
        }
        // Max-min fair water-filling with equal weights.
        loop {
            let open = self.room.iter().filter(|&&r| r > 0).count() as u64;
            if open == 0 || rest == 0 {
                break;
            }
            let level = rest / open;
            if level == 0 {
                for w in 0..wk {
                    if rest > 0 && self.room[w] > 0 {
                        self.share_bps[w * n + c] += 1;
                        self.room[w] -= 1;
                        rest -= 1;
                    }
                }
                break;
            }
            let step = self
                .room
                .iter()
                .filter(|&&r| r > 0)
                .fold(level, |m, &r| m.min(r));
            for w in 0..wk {
                if self.room[w] > 0 {
                    self.share_bps[w * n + c] += step;
                    self.room[w] -= step;
                    rest -= step;
                }
            }
        }
        if rest == 0 {
            return;
        }
        // Every worker is capped: the rest in proportion to demand (evenly if none).
        let weight = |this: &Self, w: usize| {
            this.with_headroom(this.est_bps[w * n + c]) as u128 + this.floor_bps[c] as u128
        };
        let total: u128 = (0..wk).map(|w| weight(self, w)).sum::<u128>().max(1);
        let mut given = 0;
        for w in 0..wk {
            let part = (rest as u128 * weight(self, w) / total) as u64;
            self.share_bps[w * n + c] += part;
            given += part;
        }
        self.share_bps[c] += rest - given;
    }

    /// Turn the shares into per-worker rates: ceilings are subtree sums, guarantees the
    /// class's guarantee split like its allocation, roots the sum of the shares.
    fn publish(&mut self) {
        let n = self.config.classes.len();
        for w in 0..self.workers {
            let shares = &self.share_bps[w * n..(w + 1) * n];
            self.subtree.copy_from_slice(shares);
            // A parent comes before its children: walking backwards, every subtree is
            // complete by the time it is added to its parent.
            for c in (0..n).rev() {
                if let Some(p) = self.config.classes[c].parent {
                    self.subtree[p] += self.subtree[c];
                }
            }
            let rates = &mut self.rates[w];
            rates.root_bps = shares.iter().sum::<u64>().max(1);
            for (c, class) in self.config.classes.iter().enumerate() {
                let share = shares[c];
                let g = class.guaranteed_bps.map(|g| {
                    let alloc = self.alloc_bps[c].max(1) as u128;
                    sat(g as u128 * share as u128 / alloc).min(share).max(1)
                });
                rates.classes[c] = (g, self.subtree[c].max(1));
            }
        }
    }
}

/// Clamp to `u64`.
fn sat(x: u128) -> u64 {
    x.min(u64::MAX as u128) as u64
}

/// Appliance-wide fluid allocation: given each class's demand in bits/s, the rate each
/// class gets: strict-priority classes first (by level, up to demand and ceiling), then
/// guarantees (up to demand), then the spare capacity water-filled by weight among
/// classes whose demand is not yet met, never above a class's ceiling (and parent
/// ceilings bound the sum of their subtree), never above the root in total.
///
/// A class's demand and allocation are for its own items; a missing demand counts as
/// zero. Priority classes are served in (level, index) order, as the scheduler does;
/// guarantees that the root or a parent ceiling cannot all cover are cut evenly.
/// Rounding leaves at most a few bits/s per class unallocated.
pub fn allocate(config: &ShaperConfig, demand_bps: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    Allocator::default().allocate(config, demand_bps, &mut out);
    out
}

/// The allocator's scratch space, reused across updates.
#[derive(Debug, Default)]
struct Allocator {
    /// Per class: more it may take in the current phase.
    cap: Vec<u64>,
    /// Per class: weight in the current phase (0: not taking part).
    weight: Vec<u64>,
    /// Per class: room left under its own ceiling (`u64::MAX` without one).
    ceiling_room: Vec<u64>,
    /// Per class: weight of the taking classes in its subtree.
    subtree_weight: Vec<u64>,
    /// Root room left.
    root_room: u64,
    /// Priority classes in service order.
    order: Vec<usize>,
}

impl Allocator {
    /// Scratch space sized for `n` classes.
    fn with_classes(n: usize) -> Allocator {
        Allocator {
            cap: Vec::with_capacity(n),
            weight: Vec::with_capacity(n),
            ceiling_room: Vec::with_capacity(n),
            subtree_weight: Vec::with_capacity(n),
            root_room: 0,
            order: Vec::with_capacity(n),
        }
    }

    /// The allocation for `demand_bps` into `out` (resized to the number of classes).
    fn allocate(&mut self, config: &ShaperConfig, demand_bps: &[u64], out: &mut Vec<u64>) {
        let n = config.classes.len();
        out.clear();
        out.resize(n, 0);
        self.reset(config, out);
        let demand = |c: usize| demand_bps.get(c).copied().unwrap_or(0);
        // 1. Strict priority, in the scheduler's order.
        self.order.clear();
        self.order
            .extend((0..n).filter(|&c| config.classes[c].priority.is_some()));
        self.order.sort_by_key(|&c| (config.classes[c].priority, c));
        for k in 0..self.order.len() {
            let c = self.order[k];
            let x = demand(c).min(self.room(config, c));
            self.give(config, out, c, x);
        }
        // 2. Guarantees, up to demand, cut evenly if they do not all fit.
        for (c, class) in config.classes.iter().enumerate() {
            let want = match (class.priority, class.guaranteed_bps) {
                (None, Some(g)) => g.min(demand(c)),
                _ => 0,
            };
            self.cap[c] = want.saturating_sub(out[c]);
            self.weight[c] = 1;
        }
        self.water_fill(config, out);
        // 3. Spare capacity by weight, up to demand.
        for (c, class) in config.classes.iter().enumerate() {
            self.cap[c] = match class.priority {
                None => demand(c).saturating_sub(out[c]),
                Some(_) => 0,
            };
            self.weight[c] = class.weight.max(1) as u64;
        }
        self.water_fill(config, out);
    }

    /// Hand out what the root and ceilings leave of `out` to every class by weight,
    /// whatever its demand (so capacity nobody asked for is ready where it lands).
    fn spare(&mut self, config: &ShaperConfig, out: &mut [u64]) {
        self.reset(config, out);
        for (c, class) in config.classes.iter().enumerate() {
            self.cap[c] = u64::MAX;
            self.weight[c] = class.weight.max(1) as u64;
        }
        self.water_fill(config, out);
    }

    /// Size the scratch space and compute the room left given `out`.
    fn reset(&mut self, config: &ShaperConfig, out: &[u64]) {
        let n = config.classes.len();
        self.cap.clear();
        self.cap.resize(n, 0);
        self.weight.clear();
        self.weight.resize(n, 0);
        self.subtree_weight.clear();
        self.subtree_weight.resize(n, 0);
        self.ceiling_room.clear();
        self.ceiling_room.extend(
            config
                .classes
                .iter()
                .map(|c| c.ceiling_bps.unwrap_or(u64::MAX)),
        );
        self.root_room = config.root_bps;
        for (c, &given) in out.iter().enumerate().take(n) {
            self.root_room = self.root_room.saturating_sub(given);
            let mut at = Some(c);
            while let Some(a) = at {
                if self.ceiling_room[a] != u64::MAX {
                    self.ceiling_room[a] = self.ceiling_room[a].saturating_sub(given);
                }
                at = config.classes[a].parent;
            }
        }
    }

    /// Most class `c` can be given now: root room and room under every ceiling on its path.
    fn room(&self, config: &ShaperConfig, c: usize) -> u64 {
        let mut room = self.root_room;
        let mut at = Some(c);
        while let Some(a) = at {
            room = room.min(self.ceiling_room[a]);
            at = config.classes[a].parent;
        }
        room
    }

    /// Give `x` (at most [`Allocator::room`]) to class `c`.
    fn give(&mut self, config: &ShaperConfig, out: &mut [u64], c: usize, x: u64) {
        out[c] += x;
        self.root_room -= x;
        let mut at = Some(c);
        while let Some(a) = at {
            if self.ceiling_room[a] != u64::MAX {
                self.ceiling_room[a] -= x;
            }
            at = config.classes[a].parent;
        }
    }

    /// True when class `a` is `c` or one of its ancestors.
    fn on_path(config: &ShaperConfig, c: usize, a: usize) -> bool {
        let mut at = Some(c);
        while let Some(x) = at {
            if x == a {
                return true;
            }
            at = config.classes[x].parent;
        }
        false
    }

    /// Progressive filling: raise every taking class (weight > 0, cap > 0) at a speed
    /// proportional to its weight until its cap, the root or a ceiling on its path stops
    /// it. Every round stops at least one class, so it ends after at most n rounds.
    fn water_fill(&mut self, config: &ShaperConfig, out: &mut [u64]) {
        let n = config.classes.len();
        // A class with weight 0 is not (or no longer) taking.
        let mut taking: u64 = 0;
        for c in 0..n {
            if self.cap[c] == 0 {
                self.weight[c] = 0;
            }
            taking += (self.weight[c] > 0) as u64;
        }
        while taking > 0 {
            // Weight of the taking classes, in all and under each ceiling.
            let mut total: u64 = 0;
            self.subtree_weight.iter_mut().for_each(|s| *s = 0);
            for c in 0..n {
                let w = self.weight[c];
                if w == 0 {
                    continue;
                }
                total += w;
                let mut at = Some(c);
                while let Some(a) = at {
                    self.subtree_weight[a] += w;
                    at = config.classes[a].parent;
                }
            }
            // The level every taking class can rise by (per unit of weight).
            let mut level = self.root_room / total;
            for a in 0..n {
                if self.subtree_weight[a] > 0 && self.ceiling_room[a] != u64::MAX {
                    level = level.min(self.ceiling_room[a] / self.subtree_weight[a]);
                }
            }
            for c in 0..n {
                if let Some(l) = self.cap[c].checked_div(self.weight[c]) {
                    level = level.min(l);
                }
            }
            if level > 0 {
                for c in 0..n {
                    let x = self.weight[c] * level;
                    if x > 0 {
                        self.give(config, out, c, x);
                        self.cap[c] -= x;
                    }
                }
            }
            // Stop the classes that cannot rise by one more unit, handing out the
            // crumbs (less than one unit of weight each) first.
            for c in 0..n {
                let w = self.weight[c];
                if w == 0 {
                    continue;
                }
                let capped = self.cap[c] < w;
                let held = self.root_room < total
                    || (0..n).any(|a| {
                        self.ceiling_room[a] != u64::MAX
                            && self.ceiling_room[a] < self.subtree_weight[a]
                            && Self::on_path(config, c, a)
                    });
                if capped || held {
                    let x = self.cap[c].min(w).min(self.room(config, c));
                    self.give(config, out, c, x);
                    self.cap[c] -= x;
                    self.weight[c] = 0;
                    taking -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ClassConfig;
    use super::*;

    const M: u64 = 1_000_000;

    fn cfg(root: u64, classes: Vec<ClassConfig>) -> ShaperConfig {
        let c = ShaperConfig {
            root_bps: root,
            root_burst_bytes: 3000,
            quantum_bytes: 1514,
            classes,
        };
        c.validate().expect("valid test policy");
        c
    }

    fn class(weight: u32, f: impl FnOnce(&mut ClassConfig)) -> ClassConfig {
        let mut c = ClassConfig::weighted(weight);
        f(&mut c);
        c
    }

    /// Within `slack` bits/s of `want`.
    fn near(got: u64, want: u64, slack: u64) -> bool {
        got.abs_diff(want) <= slack
    }

    #[test]
    fn allocate_serves_priority_first_up_to_its_ceiling() {
        let prio = class(1, |c| {
            c.priority = Some(0);
            c.ceiling_bps = Some(20 * M);
        });
        let low = class(1, |c| c.priority = Some(1));
        let c = cfg(100 * M, vec![ClassConfig::weighted(10), low, prio]);
        // The level-0 class takes its ceiling, the level-1 class what it asks for
        // before any weighted class, the weighted class the rest.
        assert_eq!(
            allocate(&c, &[500 * M, 50 * M, 500 * M]),
            [30 * M, 50 * M, 20 * M]
        );
        // Below its ceiling a priority class gets exactly its demand.
        assert_eq!(allocate(&c, &[500 * M, 0, 7 * M]), [93 * M, 0, 7 * M]);
        // A priority class without a ceiling can take the whole root.
        assert_eq!(
            allocate(&c, &[500 * M, 500 * M, 500 * M]),
            [0, 80 * M, 20 * M]
        );
    }

    #[test]
    fn allocate_meets_guarantees_then_shares_by_weight() {
        let gold = class(1, |c| c.guaranteed_bps = Some(30 * M));
        let c = cfg(100 * M, vec![gold, ClassConfig::weighted(20)]);
        let a = allocate(&c, &[u64::MAX, u64::MAX]);
        // 30 guaranteed + 1/21 of the 70 spare.
        assert!(near(a[0], 30 * M + 70 * M / 21, 2), "{a:?}");
        assert!(near(a[1], 70 * M * 20 / 21, 2), "{a:?}");
        assert!(a[0] + a[1] <= 100 * M);
        // A guarantee is only given up to demand.
        assert_eq!(allocate(&c, &[10 * M, u64::MAX]), [10 * M, 90 * M]);
        // Guarantees come after priority and are cut evenly if the root is short.
        let g = |r| class(1, move |c| c.guaranteed_bps = Some(r));
        let prio = class(1, |c| c.priority = Some(0));
        let c = cfg(100 * M, vec![prio, g(40 * M), g(40 * M)]);
        assert_eq!(
            allocate(&c, &[50 * M, 100 * M, 100 * M]),
            [50 * M, 25 * M, 25 * M]
        );
    }

    #[test]
    fn allocate_splits_spare_3_to_1_by_weight() {
        let c = cfg(
            100 * M,
            vec![ClassConfig::weighted(3), ClassConfig::weighted(1)],
        );
        assert_eq!(allocate(&c, &[u64::MAX, u64::MAX]), [75 * M, 25 * M]);
        let c = cfg(
            200 * M,
            vec![ClassConfig::weighted(3), ClassConfig::weighted(1)],
        );
        assert_eq!(allocate(&c, &[250 * M, 250 * M]), [150 * M, 50 * M]);
    }

    #[test]
    fn allocate_caps_at_ceiling_and_gives_the_leftover_to_others() {
        let capped = class(10, |c| c.ceiling_bps = Some(20 * M));
        let c = cfg(
            100 * M,
            vec![capped, ClassConfig::weighted(1), ClassConfig::weighted(3)],
        );
        assert_eq!(
            allocate(&c, &[u64::MAX, u64::MAX, u64::MAX]),
            [20 * M, 20 * M, 60 * M]
        );
    }

    #[test]
    fn allocate_bounds_a_subtree_by_its_parent_ceiling() {
        let parent = class(1, |c| c.ceiling_bps = Some(30 * M));
        let child = |w| class(w, |c| c.parent = Some(0));
        let grandchild = class(1, |c| {
            c.parent = Some(1);
            c.ceiling_bps = Some(4 * M);
        });
        let c = cfg(
            100 * M,
            vec![
                parent,
                child(5),
                child(5),
                ClassConfig::weighted(1),
                grandchild,
            ],
        );
        let a = allocate(&c, &[u64::MAX; 5]);
        assert!(a[0] + a[1] + a[2] + a[4] <= 30 * M, "{a:?}");
        assert!(a[0] + a[1] + a[2] + a[4] >= 30 * M - 10, "{a:?}");
        assert!(a[4] <= 4 * M, "{a:?}");
        assert!(near(a[1], a[2], 10), "equal weights, equal parts: {a:?}");
        // The parent's sibling is not held by the parent's ceiling.
        assert!(near(a[3], 70 * M, 10), "{a:?}");
        // A child asking little leaves the parent's room to its sibling.
        let a = allocate(&c, &[0, 2 * M, u64::MAX, 0, 0]);
        assert_eq!(a, [0, 2 * M, 28 * M, 0, 0]);
    }

    #[test]
    fn allocate_never_exceeds_root_demand_or_ceilings() {
        // A small deterministic random walk over policies and demands.
        let mut seed: u64 = 0x5eed;
        let mut rnd = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..500 {
            let root = (1 + rnd(1000)) * M;
            let n = 1 + rnd(7) as usize;
            let mut classes = Vec::new();
            let mut guaranteed = 0;
            for i in 0..n {
                let mut c = ClassConfig::weighted(1 + rnd(8) as u32);
                if i > 0 && rnd(3) == 0 {
                    c.parent = Some(rnd(i as u64) as usize);
                }
                if rnd(4) == 0 {
                    c.priority = Some(rnd(3) as u8);
                    c.ceiling_bps = Some(1 + rnd(root / 2));
                }
                if rnd(3) == 0 {
                    c.ceiling_bps = Some(1 + rnd(root));
                }
                if rnd(3) == 0 {
                    let g = (1 + rnd(root / 4)).min(c.ceiling_bps.unwrap_or(u64::MAX));
                    if guaranteed + g <= root {
                        guaranteed += g;
                        c.guaranteed_bps = Some(g);
                    }
                }
                classes.push(c);
            }
            let c = cfg(root, classes);
            let demand: Vec<u64> = (0..n)
                .map(|_| match rnd(4) {
                    0 => 0,
                    1 => u64::MAX,
                    _ => rnd(root),
                })
                .collect();
            let a = allocate(&c, &demand);
            assert!(a.iter().sum::<u64>() <= root, "{c:?} {demand:?} {a:?}");
            for (i, class) in c.classes.iter().enumerate() {
                assert!(a[i] <= demand[i], "{c:?} {demand:?} {a:?}");
                if let Some(ceiling) = class.ceiling_bps {
                    let sub: u64 = (0..n)
                        .filter(|&j| Allocator::on_path(&c, j, i))
                        .map(|j| a[j])
                        .sum();
                    assert!(sub <= ceiling, "class {i}: {c:?} {demand:?} {a:?}");
                }
            }
            // Nobody is left wanting while capacity is free on its whole path.
            let mut al = Allocator::default();
            al.reset(&c, &a);
            for i in 0..n {
                if a[i] < demand[i] {
                    assert!(
                        al.room(&c, i) <= 64,
                        "class {i} starved: {c:?} {demand:?} {a:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn allocate_gives_nothing_to_zero_demand() {
        let gold = class(5, |c| c.guaranteed_bps = Some(30 * M));
        let prio = class(1, |c| c.priority = Some(0));
        let c = cfg(100 * M, vec![gold, prio, ClassConfig::weighted(1)]);
        assert_eq!(allocate(&c, &[0, 0, u64::MAX]), [0, 0, 100 * M]);
        assert_eq!(allocate(&c, &[0, 0, 0]), [0, 0, 0]);
        assert_eq!(allocate(&c, &[]), [0, 0, 0]);
    }

    #[test]
    fn allocate_leaves_what_a_small_demand_does_not_use_to_others() {
        let c = cfg(
            100 * M,
            vec![
                ClassConfig::weighted(1),
                ClassConfig::weighted(1),
                ClassConfig::weighted(2),
            ],
        );
        // Fair share of class 0 would be 25: it asks 10, the rest is split 1:2.
        assert_eq!(
            allocate(&c, &[10 * M, u64::MAX, u64::MAX]),
            [10 * M, 30 * M, 60 * M]
        );
        // Everyone below the fair share: everyone gets their demand, the rest is unused.
        assert_eq!(
            allocate(&c, &[10 * M, 20 * M, 30 * M]),
            [10 * M, 20 * M, 30 * M]
        );
    }

    #[test]
    fn worker_config_divides_rates_and_adds_ceilings() {
        let gold = class(3, |c| {
            c.guaranteed_bps = Some(30 * M);
            c.burst_bytes = 1000;
        });
        let capped = class(1, |c| c.ceiling_bps = Some(20 * M));
        let tiny = class(1, |c| c.ceiling_bps = Some(10_000));
        let c = cfg(200 * M, vec![gold, capped, tiny]);
        let w = worker_config(&c, 4);
        assert_eq!(w.validate(), Ok(()));
        assert_eq!(w.root_bps, 50 * M);
        assert_eq!(w.classes[0].guaranteed_bps, Some(7_500_000));
        assert_eq!(w.classes[0].ceiling_bps, Some(50 * M));
        // The new ceiling bucket does not lower the largest item the class accepts.
        assert_eq!(w.classes[0].burst_bytes, 3000);
        assert_eq!(w.classes[1].ceiling_bps, Some(5 * M));
        assert_eq!(w.classes[1].burst_bytes, c.classes[1].burst_bytes);
        // Floored: 10 kbit/s over 4 workers would be 2.5 kbit/s each.
        assert_eq!(w.classes[2].ceiling_bps, Some(MIN_RATE_BPS));
        assert_eq!(worker_config(&c, 1).classes[1].ceiling_bps, Some(20 * M));
        // The rebalancer starts from the same rates.
        let r = Rebalancer::new(&c, 4);
        assert_eq!(r.rates().len(), 4);
        assert_eq!(r.rates()[3].root_bps, 50 * M);
        assert_eq!(
            r.rates()[0].classes,
            [
                (Some(7_500_000), 50 * M),
                (None, 5 * M),
                (None, MIN_RATE_BPS)
            ]
        );
    }

    fn sample(offered: &[u64], queued: &[u64]) -> WorkerSample {
        WorkerSample {
            offered_bytes: offered.to_vec(),
            queued_bytes: queued.to_vec(),
            dropped_bytes: Vec::new(),
        }
    }

    #[test]
    fn rebalancer_moves_shares_to_the_busy_worker_and_keeps_floors() {
        // Two classes 3:1 behind 200 Mbit/s, 2 workers; gold busy on 0, bronze on 1.
        let c = cfg(
            200 * M,
            vec![ClassConfig::weighted(3), ClassConfig::weighted(1)],
        );
        let mut r = Rebalancer::new(&c, 2);
        let t = |ms| Instant::from_millis(ms);
        let first = r.update(t(0), &[sample(&[0, 0], &[0, 0]), sample(&[0, 0], &[0, 0])]);
        assert_eq!(first[0].root_bps, 100 * M, "the first update only records");
        // 5 ms at 100 Mbit/s = 62 500 bytes, both backlogged.
        let mut off = [0u64, 0];
        for k in 1..=4 {
            off[0] += r.rates()[0].classes[0].1 * 5 / 8000;
            off[1] += r.rates()[1].classes[1].1 * 5 / 8000;
            let rates = r.update(
                t(5 * k),
                &[
                    sample(&[off[0], 0], &[9000, 0]),
                    sample(&[0, off[1]], &[0, 9000]),
                ],
            );
            let roots = rates[0].root_bps + rates[1].root_bps;
            assert!(roots <= 200 * M, "roots {roots}");
        }
        let a = r.allocation();
        assert_eq!(a.iter().sum::<u64>(), 200 * M);
        assert!(near(a[0], 150 * M, 10) && near(a[1], 50 * M, 10), "{a:?}");
        let rates = r.rates();
        // The idle worker of each class keeps a floor: 1 % of the allocation / 2 (gold),
        // at least 1 % of the root / (2 workers × 2 classes) (bronze).
        assert_eq!(rates[1].classes[0].1, 750_000);
        assert_eq!(rates[0].classes[1].1, 500_000);
        assert_eq!(rates[0].classes[0].1, 150 * M - 750_000);
        assert_eq!(rates[0].root_bps, 150 * M - 750_000 + 500_000);
    }

    #[test]
    fn rebalancer_follows_measured_demand_and_splits_guarantees() {
        let gold = class(1, |c| {
            c.guaranteed_bps = Some(40 * M);
            c.ceiling_bps = Some(60 * M);
        });
        let c = cfg(100 * M, vec![gold, ClassConfig::weighted(1)]);
        let mut r = Rebalancer::new(&c, 2);
        let t = |ms| Instant::from_millis(ms);
        r.update(t(0), &[]);
        // Gold: 10 Mbit/s on worker 0, 20 on worker 1, keeping up (nothing queued).
        // Class 1: nothing anywhere.
        let mut off = [0u64, 0];
        for k in 1..=6 {
            off[0] += 10 * M * 5 / 8000;
            off[1] += 20 * M * 5 / 8000;
            r.update(
                t(5 * k),
                &[sample(&[off[0], 0], &[0, 0]), sample(&[off[1], 0], &[0, 0])],
            );
        }
        let rates = r.rates();
        // Each worker gets its rate plus 25 % headroom plus its floor; the rest of the
        // allocation (spare nobody asked for) is spread 1:2 in proportion to demand.
        let (g0, c0) = rates[0].classes[0];
        let (g1, c1) = rates[1].classes[0];
        assert!(c0 >= 12_500_000 && c1 >= 25 * M, "{rates:?}");
        assert!(c0 + c1 <= 60 * M, "ceiling split: {rates:?}");
        assert!(near(c1, 2 * c0, M), "{rates:?}");
        // The guarantee is split like the allocation and never above a worker's share.
        let (g0, g1) = (g0.unwrap_or(0), g1.unwrap_or(0));
        assert!(g0 <= c0 && g1 <= c1 && g0 + g1 <= 40 * M, "{rates:?}");
        assert!(g0 + g1 >= 40 * M - 10, "{rates:?}");
        // Class 1 has no demand: spare capacity, spread evenly over both workers.
        assert!(
            near(rates[0].classes[1].1, rates[1].classes[1].1, 10),
            "{rates:?}"
        );
        let roots = rates[0].root_bps + rates[1].root_bps;
        assert!((100 * M - 100..=100 * M).contains(&roots), "roots {roots}");
        // Gold stops on worker 0: its estimate halves every update.
        let before = r.rates()[0].classes[0].1;
        off[1] += 20 * M * 5 / 8000;
        r.update(
            t(35),
            &[sample(&[off[0], 0], &[0, 0]), sample(&[off[1], 0], &[0, 0])],
        );
        let est0 = r.est_bps[0];
        assert!(near(est0, 5 * M, 10_000), "estimate {est0}");
        assert!(r.rates()[0].classes[0].1 < before);
    }

    #[test]
    fn rebalancer_gives_a_parent_the_sum_of_its_subtree() {
        // A parent capped at 30 Mbit/s with child a busy on worker 0 and child b on
        // worker 1; another class busy on both.
        let parent = class(1, |c| c.ceiling_bps = Some(30 * M));
        let child = || class(1, |c| c.parent = Some(0));
        let c = cfg(
            100 * M,
            vec![parent, child(), child(), ClassConfig::weighted(1)],
        );
        let mut r = Rebalancer::new(&c, 2);
        let t = |ms| Instant::from_millis(ms);
        r.update(t(0), &[]);
        let mut off = [[0u64; 4]; 2];
        for k in 1..=5 {
            for (w, busy) in [(0, 1), (1, 2)] {
                off[w][busy] += r.rates()[w].classes[busy].1 * 5 / 8000;
                off[w][3] += r.rates()[w].classes[3].1 * 5 / 8000;
            }
            let q = |w: usize| {
                if w == 0 {
                    [0, 9000, 0, 9000]
                } else {
                    [0, 0, 9000, 9000]
                }
            };
            r.update(t(5 * k), &[sample(&off[0], &q(0)), sample(&off[1], &q(1))]);
        }
        let a = r.allocation();
        assert!(a[0] + a[1] + a[2] <= 30 * M, "{a:?}");
        assert!(near(a[1], a[2], 10) && a[1] > 14 * M, "{a:?}");
        assert!(near(a[3], 70 * M, 10), "{a:?}");
        let rates = r.rates();
        let mut parent_total = 0;
        for (w, busy) in [(0, 1), (1, 2)] {
            let ws = &rates[w].classes;
            // The parent's bucket is charged by its children: its ceiling on a worker
            // is the parent's own share plus its children's there.
            assert!(ws[0].1 >= ws[1].1 + ws[2].1, "{rates:?}");
            assert_eq!(ws[0].1 + ws[3].1, rates[w].root_bps, "{rates:?}");
            assert!(ws[busy].1 > 14 * M, "{rates:?}");
            parent_total += ws[0].1;
        }
        assert!(parent_total <= 30 * M, "{rates:?}");
    }

    #[test]
    fn rebalancer_survives_counter_resets_missing_samples_and_time_standing_still() {
        let c = cfg(100 * M, vec![ClassConfig::weighted(1)]);
        let mut r = Rebalancer::new(&c, 2);
        let t = |ms| Instant::from_millis(ms);
        r.update(t(0), &[sample(&[1_000_000], &[0])]);
        // Worker 0's shaper was rebuilt: its counter restarted at 6250 bytes (10 Mbit/s
        // over 5 ms); worker 1 sent no sample.
        r.update(t(5), &[sample(&[6250], &[0])]);
        assert_eq!(r.est_bps[0], 10 * M);
        assert_eq!(r.est_bps[1], 0);
        let before = r.rates().to_vec();
        assert_eq!(r.update(t(5), &[sample(&[99_999_999], &[0])]), &before[..]);
        let roots: u64 = r.rates().iter().map(|w| w.root_bps).sum();
        assert!(roots <= 100 * M);
    }
}
