//! The token bucket that limits the ICMP errors one worker sends.

use crate::time::Instant;

/// A token bucket for ICMP error generation (per worker).
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: u32) -> Self {
        let burst = (rate as f64 / 10.0).max(1.0);
        TokenBucket {
            tokens: burst,
            rate: rate as f64,
            burst,
            last: Instant::ZERO,
        }
    }

    pub(super) fn take(&mut self, now: Instant) -> bool {
        let dt = (now - self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
