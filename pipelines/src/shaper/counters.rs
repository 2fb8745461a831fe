//! Per-class counters and a fixed queueing-delay histogram (no allocation).

use std::time::Duration;

/// Number of histogram buckets: bucket `i` counts delays below `2^i` microseconds
/// (bucket 0: under 1 µs), the last bucket everything above.
pub const DELAY_BUCKETS: usize = 24;

/// Queueing delay of the items a class has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayStats {
    /// Items measured.
    pub count: u64,
    /// Smallest delay in nanoseconds (`u64::MAX` before the first item).
    pub min_ns: u64,
    /// Largest delay in nanoseconds.
    pub max_ns: u64,
    /// Sum of the delays in nanoseconds.
    pub sum_ns: u128,
    /// Log2 histogram in microseconds, see [`DELAY_BUCKETS`].
    pub histogram: [u64; DELAY_BUCKETS],
}

impl Default for DelayStats {
    fn default() -> Self {
        DelayStats {
            count: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            sum_ns: 0,
            histogram: [0; DELAY_BUCKETS],
        }
    }
}

impl DelayStats {
    /// Record one delay.
    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.count += 1;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += ns as u128;
        let us = ns / 1000;
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        self.histogram[bucket.min(DELAY_BUCKETS - 1)] += 1;
    }

    /// Add `other`'s measurements (e.g. another worker's) to these.
    pub fn merge(&mut self, other: &DelayStats) {
        self.count += other.count;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }

    /// Mean delay, zero before the first item.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.sum_ns / self.count as u128) as u64)
    }

    /// Quantile `q` (0.0 to 1.0), interpolated linearly inside its histogram bucket and
    /// kept within the smallest and largest delays seen; zero before the first item.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.histogram.iter().enumerate() {
            if n > 0 && seen + n >= rank {
                let lower = if i == 0 { 0 } else { 1u64 << (i - 1) } * 1000;
                let upper = (1u64 << i).saturating_mul(1000);
                let within = (rank - seen) as f64 / n as f64;
                let ns = lower as f64 + (upper - lower) as f64 * within;
                return Duration::from_nanos((ns as u64).clamp(self.min_ns, self.max_ns));
            }
            seen += n;
        }
        Duration::from_nanos(self.max_ns)
    }
}

/// What one class has done so far, and its current queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounters {
    /// Items accepted into the queue.
    pub enqueued_packets: u64,
    /// Bytes accepted into the queue.
    pub enqueued_bytes: u64,
    /// Bytes dropped, whatever the reason (with `enqueued_bytes`: the offered load).
    pub dropped_bytes: u64,
    /// Items sent.
    pub packets: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Items dropped because the queue held `queue_packets` items.
    pub drops_queue_packets: u64,
    /// Items dropped because the queue held `queue_bytes` bytes.
    pub drops_queue_bytes: u64,
    /// Items dropped because they are larger than a burst on their path.
    pub drops_too_large: u64,
    /// Items queued now.
    pub queue_packets: usize,
    /// Bytes queued now.
    pub queue_bytes: u64,
    /// Queueing delay of the items sent.
    pub delay: DelayStats,
}

impl ClassCounters {
    /// Items dropped, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.drops_queue_packets + self.drops_queue_bytes + self.drops_too_large
    }

    /// Add `other` (another worker's or interface's counters of the same class).
    pub fn merge(&mut self, other: &ClassCounters) {
        self.enqueued_packets += other.enqueued_packets;
        self.enqueued_bytes += other.enqueued_bytes;
        self.dropped_bytes += other.dropped_bytes;
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.drops_queue_packets += other.drops_queue_packets;
        self.drops_queue_bytes += other.drops_queue_bytes;
        self.drops_too_large += other.drops_too_large;
        self.queue_packets += other.queue_packets;
        self.queue_bytes += other.queue_bytes;
        self.delay.merge(&other.delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_histogram_and_quantiles() {
        let mut d = DelayStats::default();
        assert_eq!(d.quantile(0.99), Duration::ZERO);
        for _ in 0..98 {
            d.record(Duration::from_micros(3)); // bucket 2: [2, 4) µs
        }
        d.record(Duration::from_micros(100)); // bucket 7: [64, 128) µs
        d.record(Duration::from_millis(5)); // bucket 13
        assert_eq!((d.count, d.min_ns, d.max_ns), (100, 3_000, 5_000_000));
        assert_eq!(d.histogram[2], 98);
        // Inside their buckets ([2, 4) µs and [64, 128) µs), within what was seen.
        let p50 = d.quantile(0.5);
        assert!(
            p50 >= Duration::from_micros(3) && p50 < Duration::from_micros(4),
            "{p50:?}"
        );
        let p99 = d.quantile(0.99);
        assert!(
            p99 >= Duration::from_micros(64) && p99 <= Duration::from_micros(128),
            "{p99:?}"
        );
        assert_eq!(d.quantile(1.0), Duration::from_millis(5));
        assert_eq!(
            d.mean(),
            Duration::from_nanos((98 * 3_000 + 100_000 + 5_000_000) / 100)
        );
        d.record(Duration::from_secs(100_000));
        assert_eq!(d.histogram[DELAY_BUCKETS - 1], 1);
        let mut m = DelayStats::default();
        m.merge(&d);
        m.merge(&d);
        assert_eq!((m.count, m.min_ns, m.histogram[2]), (202, 3_000, 196));
        let (a, b) = (m.quantile(0.5).as_nanos(), d.quantile(0.5).as_nanos());
        assert!(a.abs_diff(b) < 100, "{a} vs {b}");
    }
}
