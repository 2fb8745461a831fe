//! Congestion control: the window that limits how much may be in flight.
//!
//! One [`Congestion`] per connection holds `cwnd` and `ssthresh` and the state of the
//! algorithm the profile chose ([`CongestionAlgo`]): NewReno (RFC 5681, RFC 6582) or
//! CUBIC (RFC 9438). Enum dispatch keeps it allocation-free and inlinable. Loss
//! detection and recovery (fast retransmit, SACK recovery, RTO) live in the connection;
//! this module only answers "how big may the window be".

mod cubic;
mod newreno;

use std::time::Duration;

use crate::time::Instant;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// Which congestion control a profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgo {
    /// RFC 5681 slow start and congestion avoidance with RFC 6582 recovery.
    NewReno,
    /// RFC 9438: a cubic window growth function, friendlier to long fat pipes.
    #[default]
    Cubic,
}

#[derive(Debug, Clone, Copy)]
enum Algo {
    NewReno(NewReno),
    Cubic(Cubic),
}

/// The congestion state of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Congestion {
    cwnd: usize,
    ssthresh: usize,
    mss: usize,
    algo: Algo,
}

impl Congestion {
    /// A fresh window of `initial_segments` segments of `mss` (RFC 6928 suggests 10).
    pub fn new(algo: CongestionAlgo, mss: usize, initial_segments: usize) -> Self {
        Congestion {
            cwnd: mss * initial_segments.max(1),
            ssthresh: usize::MAX,
            mss,
            algo: match algo {
                CongestionAlgo::NewReno => Algo::NewReno(NewReno::default()),
                CongestionAlgo::Cubic => Algo::Cubic(Cubic::default()),
            },
        }
    }

    /// Which algorithm this is.
    pub fn algo(&self) -> CongestionAlgo {
        match self.algo {
            Algo::NewReno(_) => CongestionAlgo::NewReno,
            Algo::Cubic(_) => CongestionAlgo::Cubic,
        }
    }

    /// The congestion window in bytes.
    #[inline]
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// The slow-start threshold in bytes.
    #[inline]
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// Sets the segment size (after the handshake fixed it), keeping the window in segments.
    pub fn set_mss(&mut self, mss: usize) {
        if mss > 0 && mss != self.mss {
            self.cwnd = self.cwnd / self.mss * mss;
            self.mss = mss;
        }
    }

    /// Adds to the window for `acked` newly acknowledged bytes, outside recovery.
    pub fn on_ack(&mut self, now: Instant, acked: usize, srtt: Duration) {
        if self.cwnd < self.ssthresh {
            // Slow start counts every byte acknowledged, also on stretch ACKs (as
            // Linux counts segments), bounded by one window per ACK.
            self.cwnd += acked.min(self.cwnd);
            return;
        }
        let (mss, cwnd) = (self.mss, self.cwnd);
        self.cwnd = match &mut self.algo {
            Algo::NewReno(r) => r.on_ack(cwnd, mss, acked),
            Algo::Cubic(c) => c.on_ack(now, cwnd, mss, acked, srtt),
        };
    }

    /// A loss was detected by duplicate ACKs or SACK: reduce and return the new window
    /// (RFC 5681 section 3.2 step 2, RFC 9438 section 4.6).
    pub fn on_loss(&mut self, now: Instant, flight: usize) {
        let (mss, cwnd) = (self.mss, self.cwnd);
        self.ssthresh = match &mut self.algo {
            Algo::NewReno(_) => (flight / 2).max(2 * mss),
            Algo::Cubic(c) => c.on_loss(now, cwnd, mss),
        };
        self.cwnd = self.ssthresh;
    }

    /// The retransmission timer fired: one segment of window (RFC 5681 section 3.1).
    pub fn on_rto(&mut self, now: Instant, flight: usize) {
        let (mss, cwnd) = (self.mss, self.cwnd);
        self.ssthresh = match &mut self.algo {
            Algo::NewReno(_) => (flight / 2).max(2 * mss),
            Algo::Cubic(c) => c.on_loss(now, cwnd, mss),
        };
        self.cwnd = mss;
    }

    /// Sets the window directly (recovery inflation, deflation and exit).
    pub fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.mss);
    }

    /// Undoes a reduction found unnecessary (RFC 3708): the window and threshold go back
    /// to at least what they were before it.
    pub fn undo(&mut self, prior_cwnd: usize, prior_ssthresh: usize) {
        self.cwnd = self.cwnd.max(prior_cwnd);
        self.ssthresh = self.ssthresh.max(prior_ssthresh);
        if let Algo::Cubic(c) = &mut self.algo {
            c.reset_epoch();
        }
    }

    /// After an idle period longer than an RTO, restart from the initial window
    /// (RFC 5681 section 4.1).
    pub fn on_idle_restart(&mut self, initial: usize) {
        self.cwnd = self.cwnd.min(initial.max(self.mss));
        if let Algo::Cubic(c) = &mut self.algo {
            c.reset_epoch();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_halving() {
        let now = Instant::ZERO;
        let rtt = Duration::from_millis(10);
        let mut c = Congestion::new(CongestionAlgo::NewReno, 1000, 10);
        assert_eq!(c.cwnd(), 10_000);
        c.on_ack(now, 1000, rtt);
        assert_eq!(c.cwnd(), 11_000);
        c.on_ack(now, 5000, rtt);
        assert_eq!(c.cwnd(), 16_000, "a stretch ACK counts every byte");
        c.on_loss(now, 16_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (8000, 8000));
        // Congestion avoidance: about one MSS per window.
        for _ in 0..8 {
            c.on_ack(now, 1000, rtt);
        }
        assert_eq!(c.cwnd(), 9000);
        c.on_rto(now, 4000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 2000));
    }
}
