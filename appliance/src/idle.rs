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
//! The cost of a sleep is measured by the worker on its own thread (its CPU time across
//! the wait) and averaged here, so the budget follows the machine (about 16 us a sleep,
//! a budget near 20 us, on the two-core test VM under 18 k HTTP requests/s). Sans-I/O:
//! the worker passes the measurements in.

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

/// The running estimate of what a sleep costs and so how long to spin.
#[derive(Debug, Clone)]
pub struct SpinBudget {
    /// Average CPU cost of a sleep, nanoseconds.
    average_ns: u64,
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
        }
    }

    /// How long to keep polling after the last packet before sleeping.
    pub fn budget(&self) -> Duration {
        Duration::from_nanos(self.average_ns).clamp(MIN_SPIN, MAX_SPIN)
    }

    /// Takes the CPU time one sleep cost the worker's thread into the average.
    pub fn record_sleep(&mut self, cpu: Duration) {
        let sample = cpu.min(MAX_SPIN).as_nanos() as u64;
        // Exponentially weighted: average += (sample - average) / 2^SHIFT.
        self.average_ns = self.average_ns - (self.average_ns >> SHIFT) + (sample >> SHIFT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_what_sleeps_cost() {
        let mut b = SpinBudget::new();
        assert_eq!(b.budget(), INITIAL);
        for _ in 0..100 {
            b.record_sleep(Duration::from_micros(7));
        }
        let got = b.budget().as_nanos() as i64;
        assert!(
            (got - 7_000).abs() < 100,
            "budget {got} ns after sleeps of 7 us"
        );
        for _ in 0..100 {
            b.record_sleep(Duration::from_micros(40));
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
    }

    #[test]
    fn one_disturbed_measurement_moves_the_budget_by_a_bounded_step() {
        let mut b = SpinBudget::new();
        for _ in 0..100 {
            b.record_sleep(Duration::from_micros(5));
        }
        let before = b.budget();
        b.record_sleep(Duration::from_millis(50));
        let after = b.budget();
        assert!(
            after - before <= MAX_SPIN / 8,
            "{before:?} -> {after:?}: one outlier counts as MAX_SPIN at 1/8 weight"
        );
    }
}
