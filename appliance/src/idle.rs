//! The adaptive idle policy's spin budget: how long a worker that found nothing to do
//! keeps polling before it sleeps.
//!
//! Polling through a gap between packets costs the gap; a sleep costs about the same
//! CPU whatever the gap (the `ppoll` set-up on every port, the switch away and back, the
//! wake-up). Polling for as long as one sleep costs, then sleeping, is the ski-rental
//! rule of spin-then-block (Karlin, Li, Manasse and Owicki, SOSP 1991): whatever the
//! traffic, it never spends more than twice the CPU of the better choice made in
//! hindsight. A fixed spin long enough to cover every gap of a steady stream (200 us,
//! before) charges a worker its whole core at any rate above a few thousand packets per
//! second, which is what a per-CPU-second comparison must not measure.
//!
//! Traffic is not an adversary, though: the same paper's randomised and "known
//! distribution" variants do better by looking at the gaps that came before. The worker
//! reports every idle gap it sees (from the last packet of a busy turn to the receive
//! stamp of the next packet, so a gap it slept through is measured without its wake-up),
//! and the budget is the spin that would have cost least over the recent gaps: each gap
//! shorter than the spin costs itself, each longer one the whole spin plus a sleep.
//! Under request/response traffic whose gaps mostly outlast a sleep's cost (a proxy
//! between clients and members a round trip apart) that is a short spin; under a
//! stream whose gaps are a few microseconds it covers them. With too few gaps seen
//! (a quiet worker) the budget is the ski-rental one.
//!
//! The cost of a sleep is measured by the worker on its own thread (its CPU time across
//! the wait) and averaged here, so the budget follows the machine (about 16 us a sleep
//! on the two-core test VM under 18 k HTTP requests/s). Sans-I/O: the worker passes the
//! measurements in.

use std::time::Duration;

/// Shortest spin budget, whatever sleeps cost: a handful of empty turns, so a burst
/// that arrives in pieces is taken without a sleep between them.
pub const MIN_SPIN: Duration = Duration::from_micros(2);
/// Longest spin budget: a sleep that seems to cost more (a measurement disturbed by a
/// page fault or preemption) counts as this much.
pub const MAX_SPIN: Duration = Duration::from_micros(200);
/// Budget before the first sleep has been measured.
const INITIAL: Duration = Duration::from_micros(20);
/// Weight of a new measurement in the average: 1 / 2^`SHIFT`.
const SHIFT: u32 = 3;

/// Upper edges of the gap histogram's buckets, nanoseconds; the last bucket holds the
/// gaps beyond [`MAX_SPIN`]. Each edge from [`MIN_SPIN`] up is a candidate budget.
const EDGES_NS: [u64; 9] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 200_000,
];
/// Buckets: one per edge, and one for the gaps beyond the last.
const BUCKETS: usize = EDGES_NS.len() + 1;
/// Gaps recorded between two choices of the budget.
const CHOOSE_EVERY: u32 = 64;
/// Gaps the histogram must hold before it chooses (fewer: the ski-rental budget).
const MIN_GAPS: u32 = 128;
/// When the histogram holds this many gaps, every count is halved: the choice follows
/// the last few thousand gaps, not the worker's whole life.
const DECAY_AT: u32 = 4_096;

/// The running estimate of what a sleep costs, the recent idle gaps, and so how long to
/// spin.
#[derive(Debug, Clone)]
pub struct SpinBudget {
    /// Average CPU cost of a sleep, nanoseconds.
    average_ns: u64,
    /// Recent idle gaps by bucket (see [`EDGES_NS`]), decayed.
    gaps: [u32; BUCKETS],
    /// Gaps in `gaps`.
    total: u32,
    /// Gaps recorded since the budget was last chosen.
    since_choice: u32,
    /// The budget in force.
    budget: Duration,
}

impl Default for SpinBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl SpinBudget {
    /// A budget with no measurement yet.
    pub fn new() -> Self {
        SpinBudget {
            average_ns: INITIAL.as_nanos() as u64,
            gaps: [0; BUCKETS],
            total: 0,
            since_choice: 0,
            budget: INITIAL,
        }
    }

    /// How long to keep polling after the last packet before sleeping.
    #[inline]
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The average CPU cost of one sleep.
    pub fn sleep_cost(&self) -> Duration {
        Duration::from_nanos(self.average_ns)
    }

    /// Takes the CPU time one sleep cost the worker's thread into the average.
    pub fn record_sleep(&mut self, cpu: Duration) {
        let sample = cpu.min(MAX_SPIN).as_nanos() as u64;
        // Exponentially weighted: average += (sample - average) / 2^SHIFT.
        self.average_ns = self.average_ns - (self.average_ns >> SHIFT) + (sample >> SHIFT);
        self.choose();
    }

    /// Takes one idle gap: the time from the last packet of a busy turn to the arrival
    /// of the next packet, whether the worker spun or slept through it.
    pub fn record_gap(&mut self, gap: Duration) {
        let ns = gap.as_nanos().min(u64::MAX as u128) as u64;
        let bucket = EDGES_NS
            .iter()
            .position(|&edge| ns <= edge)
            .unwrap_or(BUCKETS - 1);
        self.gaps[bucket] += 1;
        self.total += 1;
        if self.total >= DECAY_AT {
            self.total = 0;
            for g in &mut self.gaps {
                *g /= 2;
                self.total += *g;
            }
        }
        self.since_choice += 1;
        if self.since_choice >= CHOOSE_EVERY {
            self.choose();
        }
    }

    /// Sets the budget: the ski-rental one (the cost of a sleep) until enough gaps were
    /// seen, then the candidate spin that would have cost least over them.
    fn choose(&mut self) {
        self.since_choice = 0;

        let ski_rental = Duration::from_nanos(self.average_ns).clamp(MIN_SPIN, MAX_SPIN);
        if self.total < MIN_GAPS {
            self.budget = ski_rental;
            return;
        }
        let sleep = self.average_ns;
        let mut best: Option<(u64, u64)> = None;
        for (i, &spin) in EDGES_NS.iter().enumerate() {
            if spin < MIN_SPIN.as_nanos() as u64 {
                continue;
            }
            // Gaps up to `spin` are spun through (each costs about its bucket's middle);
            // longer ones cost the whole spin and then a sleep.
            let mut cost = 0u64;
            let mut lower = 0u64;
            for (j, &n) in self.gaps.iter().enumerate() {
                let n = u64::from(n);
                if j <= i {
                    cost += n * (lower + EDGES_NS[j]) / 2;
                    lower = EDGES_NS[j];
                } else {
                    cost += n * (spin + sleep);
                }
            }
            // Ties go to the shorter spin: the same CPU over these gaps, and less
            // spent on the first long gaps when the traffic changes.
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, spin));
            }
        }
        self.budget = best.map_or(ski_rental, |(_, spin)| Duration::from_nanos(spin));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn without_gaps_the_budget_follows_what_sleeps_cost() {
        let mut b = SpinBudget::new();
        assert_eq!(b.budget(), INITIAL);
        for _ in 0..100 {
            b.record_sleep(us(7));
        }
        let got = b.budget().as_nanos() as i64;
        assert!(
            (got - 7_000).abs() < 100,
            "budget {got} ns after sleeps of 7 us"
        );
        for _ in 0..100 {
            b.record_sleep(us(40));
        }
        let got = b.budget().as_nanos() as i64;
        assert!(
            (got - 40_000).abs() < 500,
            "budget {got} ns after sleeps of 40 us"
        );
    }

    #[test]
    fn the_budget_stays_within_its_bounds() {
        let mut b = SpinBudget::new();
        for _ in 0..200 {
            b.record_sleep(Duration::ZERO);
        }
        assert_eq!(b.budget(), MIN_SPIN, "free sleeps still spin a little");
        for _ in 0..200 {
            b.record_sleep(Duration::from_secs(1));
        }
        assert!(b.budget() <= MAX_SPIN && b.budget() > MAX_SPIN * 9 / 10);
        for _ in 0..1_000 {
            b.record_gap(Duration::from_secs(1));
        }
        assert_eq!(b.budget(), MIN_SPIN, "no gap ever ends in a spin");
        for _ in 0..10_000 {
            b.record_gap(Duration::ZERO);
        }
        assert!(b.budget() >= MIN_SPIN && b.budget() <= MAX_SPIN);
    }

    #[test]
    fn one_disturbed_measurement_moves_the_budget_by_a_bounded_step() {
        let mut b = SpinBudget::new();
        for _ in 0..100 {
            b.record_sleep(us(5));
        }
        let before = b.budget();
        b.record_sleep(Duration::from_millis(50));
        let after = b.budget();
        assert!(
            after - before <= MAX_SPIN / 8,
            "{before:?} -> {after:?}: one outlier counts as MAX_SPIN at 1/8 weight"
        );
    }

    /// Sleeps cost 16 us. Returns the budget after `gaps` were seen (cycled).
    fn budget_after(gaps: &[Duration]) -> Duration {
        let mut b = SpinBudget::new();
        for _ in 0..50 {
            b.record_sleep(us(16));
        }
        for g in gaps.iter().cycle().take(2_000) {
            b.record_gap(*g);
        }
        b.budget()
    }

    #[test]
    fn gaps_a_sleep_would_cost_more_than_are_spun_through() {
        // A stream: every gap 3 us; spinning 4 us costs 3, a sleep 16.
        assert_eq!(budget_after(&[us(3)]), us(4));
        // Mostly 10 us gaps, some long ones: covering the 10 us gaps pays.
        let b = budget_after(&[us(10), us(10), us(10), us(500)]);
        assert_eq!(b, us(16));
    }

    #[test]
    fn gaps_longer_than_any_spin_sleep_at_once() {
        // Request/response a round trip apart: gaps of 40-90 us, a sleep costs 16. The
        // ski-rental rule spins 16 us before every sleep; spinning is never paid back.
        assert_eq!(budget_after(&[us(40), us(60), us(90)]), MIN_SPIN);
        // Gaps of 20-30 us: a 32 us spin would catch them at 25 on average, more than
        // the 16 a sleep costs.
        assert_eq!(budget_after(&[us(20), us(30)]), MIN_SPIN);
    }

    #[test]
    fn a_mix_is_weighed_not_counted() {
        // Half the gaps 1.5 us (spun for 1.5), half 100 us (slept): a 2 us spin catches
        // the short ones and costs the long ones 2 us more than sleeping at once.
        assert_eq!(
            budget_after(&[us(1) + Duration::from_nanos(500), us(100)]),
            us(2)
        );
        // A quarter at 6 us, the rest long. Per four gaps, an 8 us spin costs
        // 6 + 3 x (8 + 16) = 78, a 2 us spin 4 x (2 + 16) = 72.
        assert_eq!(budget_after(&[us(6), us(100), us(100), us(100)]), us(2));
        // Half at 6 us: 8 us spin: 2 x 6 + 2 x 24 = 60; 2 us: 4 x 18 = 72.
        assert_eq!(budget_after(&[us(6), us(100)]), us(8));
    }

    #[test]
    fn the_choice_follows_the_traffic_as_it_changes() {
        let mut b = SpinBudget::new();
        for _ in 0..50 {
            b.record_sleep(us(16));
        }
        for _ in 0..5_000 {
            b.record_gap(us(3));
        }
        assert_eq!(b.budget(), us(4));
        // The traffic turns into long gaps: within a few thousand gaps the old ones have
        // decayed away.
        for _ in 0..12_000 {
            b.record_gap(us(80));
        }
        assert_eq!(b.budget(), MIN_SPIN);
    }
}
