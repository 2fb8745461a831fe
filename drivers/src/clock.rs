//! The time base of packet receive timestamps: `CLOCK_MONOTONIC`, in nanoseconds.
//!
//! [`PacketMeta::rx_time`](crate::buf::PacketMeta::rx_time) is a reading of this clock,
//! and the data plane's `Instant` (in `rouge-pipelines`) counts in the same base, so a
//! packet's receive time and the worker's `now` compare directly. Both reads go through
//! the vDSO (no system call on a TSC clock source).

/// Nanoseconds of `clock_id` (0 if the clock cannot be read, which Linux never does for
/// the clocks used here).
#[inline]
fn read(clock_id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock_id, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (since boot).
#[inline]
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CPU time the calling thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
/// Unlike the other clocks here this is a system call, not a vDSO read: for use once
/// per sleep, never per packet.
#[inline]
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// `CLOCK_REALTIME` now, in nanoseconds since the Unix epoch.
#[inline]
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// Converts `CLOCK_REALTIME` stamps (what the kernel writes into AF_PACKET ring
/// frames) into `CLOCK_MONOTONIC`, with one offset read when it is first needed: a
/// driver makes one per receive burst, so a step or slew of the wall clock moves at
/// most the stamps of one burst. Converted stamps are never later than the monotonic
/// time read with the offset (a frame cannot arrive after it is looked at).
#[derive(Debug, Default)]
pub struct RealtimeToMonotonic {
    /// (monotonic now, realtime now), read on first use.
    at: Option<(u64, u64)>,
}

impl RealtimeToMonotonic {
    /// A converter that has not read the clocks yet.
    pub fn new() -> Self {
        RealtimeToMonotonic { at: None }
    }

    /// A converter with the clock readings given (for tests).
    pub fn with_readings(monotonic_ns: u64, realtime_ns: u64) -> Self {
        RealtimeToMonotonic {
            at: Some((monotonic_ns, realtime_ns)),
        }
    }

    /// The monotonic time of the realtime stamp `realtime` (nanoseconds since the
    /// epoch); 0 (no stamp) for a zero stamp.
    #[inline]
    pub fn convert(&mut self, realtime: u64) -> u64 {
        if realtime == 0 {
            return 0;
        }
        let (mono, real) = *self.at.get_or_insert_with(|| {
            let r = realtime_ns();
            (monotonic_ns(), r)
        });
        // How long ago the frame was stamped, as the wall clock says; a stamp "after"
        // the reading (clock stepped back) counts as now.
        mono.saturating_sub(real.saturating_sub(realtime)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_grows_with_work_done_on_the_thread() {
        let before = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let after = thread_cpu_ns();
        assert!(before > 0 && after > before, "{before} {after}");
    }

    #[test]
    fn realtime_stamps_map_onto_the_monotonic_clock() {
        let mut c = RealtimeToMonotonic::with_readings(5_000_000_000, 1_700_000_000_000_000_000);
        assert_eq!(
            c.convert(1_700_000_000_000_000_000 - 30_000),
            5_000_000_000 - 30_000
        );
        assert_eq!(c.convert(0), 0, "no stamp stays no stamp");
        assert_eq!(
            c.convert(1_700_000_000_000_000_000 + 1_000),
            5_000_000_000,
            "a stamp after the reading is clamped to it"
        );
    }

    #[test]
    fn live_conversion_lands_between_two_monotonic_reads() {
        let before = monotonic_ns();
        let stamp = realtime_ns();
        let mut c = RealtimeToMonotonic::new();
        let t = c.convert(stamp);
        let after = monotonic_ns();
        // The stamp was taken between `before` and the converter's own reading.
        assert!(
            t + 1_000_000 >= before && t <= after,
            "{before} {t} {after}"
        );
    }
}
