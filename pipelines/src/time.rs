//! Time as the data plane sees it: an [`Instant`] passed in by the caller.
//!
//! No protocol engine reads a clock. The worker loop reads the monotonic clock once
//! per turn and hands the value down; tests make up any time they like.
//!
//! The worker's clock counts nanoseconds of `CLOCK_MONOTONIC`, the time base of the
//! drivers' packet receive stamps ([`rouge_drivers::clock`]), so a packet's
//! [`Instant::received`] and the turn's `now` compare directly.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since an arbitrary origin (for the worker's
/// [`MonotonicClock`]: the boot, as `CLOCK_MONOTONIC` counts).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }

    /// An instant `s` seconds after the origin.
    pub const fn from_secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// When `pkt` was received: its driver's stamp
    /// ([`PacketMeta::rx_time`](rouge_drivers::buf::PacketMeta)), or `now` when it has
    /// none or claims a time after `now`.
    #[inline]
    pub fn received(pkt: &rouge_drivers::Packet, now: Instant) -> Instant {
        match pkt.meta.rx_time {
            0 => now,
            t => Instant(t).min(now),
        }
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, o: Instant) -> Duration {
        self.saturating_since(o)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// The earliest of several optional deadlines (`None` when there is none): how the
/// pipeline folds the wake-up times of its engines into one.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// Reads `CLOCK_MONOTONIC` (the time base of packet receive stamps); used only by the
/// worker loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// The clock.
    pub fn new() -> Self {
        MonotonicClock
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        Instant(rouge_drivers::clock::monotonic_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(3)).as_nanos(), 8_000_000);
        assert_eq!(Instant::from_secs(1) - t, Duration::from_millis(995));
        assert_eq!(t - Instant::from_secs(1), Duration::ZERO);
    }

    #[test]
    fn receive_stamps_are_used_unless_missing_or_later_than_now() {
        let pool = rouge_drivers::PacketPool::new(1);
        let mut p = pool.alloc_from(&[0; 60]).unwrap();
        let now = Instant::from_millis(10);
        assert_eq!(Instant::received(&p, now), now);
        p.meta.rx_time = 9_000_000;
        assert_eq!(Instant::received(&p, now), Instant::from_millis(9));
        p.meta.rx_time = 11_000_000;
        assert_eq!(Instant::received(&p, now), now);
    }

    #[test]
    fn the_worker_clock_shares_the_drivers_time_base() {
        let a = rouge_drivers::clock::monotonic_ns();
        let t = MonotonicClock::new().now().as_nanos();
        let b = rouge_drivers::clock::monotonic_ns();
        assert!(a <= t && t <= b);
    }
}
