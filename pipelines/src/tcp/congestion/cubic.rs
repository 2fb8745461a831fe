//! CUBIC (RFC 9438): the window follows `W(t) = C (t - K)^3 + W_max` from the last
//! reduction, never below the Reno-friendly estimate `W_est`.

use std::time::Duration;

use crate::time::Instant;

const C: f64 = 0.4;
const BETA: f64 = 0.7;

/// CUBIC's own state, in segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cubic {
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    w_est: f64,
}

impl Cubic {
    /// Forgets the current epoch (after idle or a window restart).
    pub fn reset_epoch(&mut self) {
        self.epoch = None;
    }

    /// The new window after `acked` bytes in congestion avoidance (RFC 9438 section 4.2-4.4).
    pub fn on_ack(
        &mut self,
        now: Instant,
        cwnd: usize,
        mss: usize,
        acked: usize,
        srtt: Duration,
    ) -> usize {
        let m = mss as f64;
        let w = cwnd as f64 / m;
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // A new epoch starts at the first ACK after a reduction (or at start).
                if self.w_max < w {
                    self.w_max = w;
                    self.k = 0.0;
                } else {
                    self.k = ((self.w_max - w) / C).cbrt();
                }
                self.w_est = w;
                self.epoch = Some(now);
                now
            }
        };
        let t = (now - epoch).as_secs_f64();
        let rtt = srtt.as_secs_f64();
        let target = (C * (t + rtt - self.k).powi(3) + self.w_max).clamp(w, 1.5 * w);
        // Reno-friendly region (section 4.3).
        let alpha = if self.w_est < self.w_max {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        } else {
            1.0
        };
        self.w_est += alpha * (acked as f64 / m) / w;
        let next = if C * (t - self.k).powi(3) + self.w_max < self.w_est {
            self.w_est
        } else {
            w + (target - w) / w * (acked as f64 / m)
        };
        ((next * m) as usize).max(cwnd)
    }

    /// A congestion event: returns the new ssthresh (section 4.6, with fast convergence 4.7).
    pub fn on_loss(&mut self, _now: Instant, cwnd: usize, mss: usize) -> usize {
        let w = cwnd as f64 / mss as f64;
        self.w_max = if w < self.w_max {
            w * (1.0 + BETA) / 2.0
        } else {
            w
        };
        self.epoch = None;
        ((w * BETA * mss as f64) as usize).max(2 * mss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtts_to_recover(rtt_ms: u64) -> (usize, usize) {
        let mut c = Cubic::default();
        let mss = 1000;
        let rtt = Duration::from_millis(rtt_ms);
        let mut cwnd = c.on_loss(Instant::ZERO, 100_000, mss);
        assert_eq!(cwnd, 70_000);
        let mut now = Instant::ZERO;
        let mut at = 0;
        for step in 1..400 {
            now += rtt;
            // One window of ACKs per RTT.
            for _ in 0..cwnd / mss {
                cwnd = c.on_ack(now, cwnd, mss, mss, rtt);
            }
            if at == 0 && cwnd >= 99_000 {
                at = step;
            }
        }
        (at, cwnd)
    }

    #[test]
    fn cubic_region_on_long_rtt_reno_friendly_on_short() {
        // K = cbrt(30 / 0.4) = 4.2 s. With 100 ms RTT the cubic curve gets within one
        // segment of W_max about 1.4 s before K (~28 RTTs), faster than Reno's 0.53
        // segment per RTT (~56 RTTs), then grows convexly past it.
        let (at, end) = rtts_to_recover(100);
        assert!((20..40).contains(&at), "cubic region: {at} RTTs");
        assert!(end > 150_000, "convex growth past W_max: {end}");
        // With 20 ms RTT the curve needs ~200 RTTs; the Reno-friendly estimate wins.
        let (at, _) = rtts_to_recover(20);
        assert!((45..70).contains(&at), "Reno-friendly region: {at} RTTs");
    }
}
