//! A token bucket counted exactly in bit-nanoseconds (no rounding drift).

use crate::time::Instant;

/// Nanoseconds per second.
const NS: u128 = 1_000_000_000;

/// Tokens are bits × 1e9, so `elapsed_ns × rate_bps` adds exactly.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate_bps: u64,
    cap: u128,
    tokens: u128,
    last: Instant,
}

/// Cost of `len` bytes in bucket units.
fn cost(len: usize) -> u128 {
    len as u128 * 8 * NS
}

impl TokenBucket {
    /// A full bucket: `rate_bps` > 0 and a burst of `burst_bytes`.
    pub(crate) fn new(rate_bps: u64, burst_bytes: u64) -> TokenBucket {
        let cap = cost(burst_bytes as usize);
        TokenBucket {
            rate_bps,
            cap,
            tokens: cap,
            last: Instant::ZERO,
        }
    }

    /// Tokens available at `now` (a `now` before the last update counts as no time).
    fn tokens_at(&self, now: Instant) -> u128 {
        let dt = now.as_nanos().saturating_sub(self.last.as_nanos()) as u128;
        self.tokens
            .saturating_add(dt.saturating_mul(self.rate_bps as u128))
            .min(self.cap)
    }

    /// True when `len` bytes may pass at `now`.
    pub(crate) fn conforms(&self, now: Instant, len: usize) -> bool {
        self.tokens_at(now) >= cost(len)
    }

    /// Charge `len` bytes at `now` (call only after [`TokenBucket::conforms`]).
    pub(crate) fn take(&mut self, now: Instant, len: usize) {
        self.tokens = self.tokens_at(now).saturating_sub(cost(len));
        if now > self.last {
            self.last = now;
        }
    }

    /// Charge `len` bytes that were sent without asking (tokens floor at zero, no debt).
    pub(crate) fn charge(&mut self, now: Instant, len: usize) {
        self.take(now, len);
    }

    /// Change the rate from `now` on: tokens earned so far are kept at the old rate.
    pub(crate) fn set_rate(&mut self, now: Instant, rate_bps: u64) {
        self.tokens = self.tokens_at(now);
        if now > self.last {
            self.last = now;
        }
        self.rate_bps = rate_bps.max(1);
    }

    /// The rate in bits/s.
    pub(crate) fn rate(&self) -> u64 {
        self.rate_bps
    }

    /// The earliest instant at or after `now` when `len` bytes conform.
    pub(crate) fn ready_at(&self, now: Instant, len: usize) -> Instant {
        let have = self.tokens_at(now);
        let need = cost(len);
        if have >= need {
            return now;
        }
        let rate = self.rate_bps.max(1) as u128;
        let wait = (need - have).div_ceil(rate);
        Instant::from_nanos(
            now.as_nanos()
                .max(self.last.as_nanos())
                .saturating_add(wait as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_rate_and_caps_at_burst() {
        // 8 Mbit/s = 1 byte per microsecond; burst 1000 bytes.
        let mut b = TokenBucket::new(8_000_000, 1000);
        let t0 = Instant::ZERO;
        assert!(b.conforms(t0, 1000));
        assert!(!b.conforms(t0, 1001));
        b.take(t0, 1000);
        assert!(!b.conforms(t0, 1));
        let t = Instant::from_nanos(500_000);
        assert!(b.conforms(t, 500));
        assert!(!b.conforms(t, 501));
        assert_eq!(b.ready_at(t0, 500), t);
        // Long idle never banks more than the burst.
        assert!(!b.conforms(Instant::from_secs(10), 1001));
        assert!(b.conforms(Instant::from_secs(10), 1000));
    }

    #[test]
    fn rate_change_keeps_earned_tokens() {
        let mut b = TokenBucket::new(8_000_000, 1000);
        b.take(Instant::ZERO, 1000);
        // 100 µs at 1 byte/µs earns 100 bytes; then 4 bytes/µs.
        b.set_rate(Instant::from_nanos(100_000), 32_000_000);
        assert_eq!(b.rate(), 32_000_000);
        assert!(b.conforms(Instant::from_nanos(100_000), 100));
        assert!(!b.conforms(Instant::from_nanos(100_000), 101));
        assert!(b.conforms(Instant::from_nanos(150_000), 300));
        assert!(!b.conforms(Instant::from_nanos(150_000), 301));
        b.charge(Instant::from_nanos(150_000), 5000);
        assert!(!b.conforms(Instant::from_nanos(150_000), 1));
    }
}
