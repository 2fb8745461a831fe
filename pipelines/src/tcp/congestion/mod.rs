//! Congestion control: the window that limits how much may be in flight.
//!
//! One [`Congestion`] per connection holds `cwnd` and `ssthresh` and the state of the
//! algorithm the profile chose ([`CongestionAlgo`]): NewReno (RFC 5681, RFC 6582),
//! CUBIC (RFC 9438) or BBR v1 ([`bbr`]). Enum dispatch keeps it allocation-free and
//! inlinable. Loss detection and recovery (fast retransmit, SACK recovery, RTO) live in
//! the connection; this module answers "how big may the window be" and, for BBR, "how
//! fast may segments leave" (the pacing rate).
//!
//! NewReno and CUBIC react to loss: the window is cut on entering recovery and PRR
//! brings the flight down to it. BBR sets the window itself on every ACK from its path
//! model and a delivery rate sample ([`Congestion::on_rate_sample`]); the connection
//! then skips PRR ([`Congestion::sets_recovery_window`]).

pub mod bbr;
mod cubic;
pub mod minmax;
mod newreno;

use std::time::Duration;

use super::rate::{RateSample, RateState};
use crate::time::Instant;

pub use bbr::Bbr;
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
    /// BBR v1: a model of the path's bandwidth and round-trip time, paced; holds its
    /// rate under random loss where loss-based algorithms collapse.
    Bbr,
}

// BBR's state is kept inline: no allocation per connection and no pointer to follow on
// every ACK; the whole control block stays under 1 KiB (see the tests of `tcp`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
enum Algo {
    NewReno(NewReno),
    Cubic(Cubic),
    Bbr(Bbr),
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
        let cwnd = mss * initial_segments.max(1);
        Congestion {
            cwnd,
            ssthresh: usize::MAX,
            mss,
            algo: match algo {
                CongestionAlgo::NewReno => Algo::NewReno(NewReno::default()),
                CongestionAlgo::Cubic => Algo::Cubic(Cubic::default()),
                CongestionAlgo::Bbr => Algo::Bbr(Bbr::new(cwnd as u64)),
            },
        }
    }

    /// Seeds what the algorithm draws at random (BBR's first PROBE_BW phase).
    pub fn seed(&mut self, s: u64) {
        if let Algo::Bbr(b) = &mut self.algo {
            b.seed(s);
        }
    }

    /// Which algorithm this is.
    pub fn algo(&self) -> CongestionAlgo {
        match self.algo {
            Algo::NewReno(_) => CongestionAlgo::NewReno,
            Algo::Cubic(_) => CongestionAlgo::Cubic,
            Algo::Bbr(_) => CongestionAlgo::Bbr,
        }
    }

    /// BBR's state, when the algorithm is BBR.
    pub fn bbr(&self) -> Option<&Bbr> {
        match &self.algo {
            Algo::Bbr(b) => Some(b),
            _ => None,
        }
    }

    /// True when the algorithm sets the window itself during recovery (BBR): no PRR,
    /// no window cut on entering recovery, no `cwnd = ssthresh` on leaving it.
    #[inline]
    pub fn sets_recovery_window(&self) -> bool {
        matches!(self.algo, Algo::Bbr(_))
    }

    /// The pacing rate in bytes per second, when the algorithm paces (BBR).
    #[inline]
    pub fn pacing_rate(&self) -> Option<u64> {
        match &self.algo {
            Algo::Bbr(b) => Some(b.pacing_rate()).filter(|&r| r > 0),
            _ => None,
        }
    }

    /// The largest burst pacing lets go at once, in bytes.
    pub fn pacing_burst(&self) -> usize {
        match &self.algo {
            Algo::Bbr(b) => b.burst_bytes(self.mss as u64) as usize,
            _ => usize::MAX,
        }
    }

    /// One ACK's delivery rate sample (every algorithm gets it; only BBR uses it): BBR
    /// updates its model, pacing rate and window.
    pub fn on_rate_sample(&mut self, rs: &RateSample, st: &mut RateState, a: &bbr::AckInput) {
        if let Algo::Bbr(b) = &mut self.algo {
            let mut cwnd = self.cwnd as u64;
            let mut ssthresh = self.ssthresh as u64;
            b.on_ack(&mut cwnd, &mut ssthresh, rs, st, a);
            self.cwnd = (cwnd as usize).max(self.mss);
            self.ssthresh = ssthresh.min(usize::MAX as u64) as usize;
        }
    }

    /// A transmission with nothing in flight (BBR's restart after idle).
    pub fn on_tx_start(&mut self, now: Instant, st: &RateState, srtt: Duration) {
        if let Algo::Bbr(b) = &mut self.algo {
            let mut cwnd = self.cwnd as u64;
            b.on_tx_start(now.as_nanos(), st, &mut cwnd, srtt.as_nanos() as u64);
            self.cwnd = cwnd as usize;
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
        if let Algo::Bbr(_) = self.algo {
            // BBR's window moves with its rate samples.
            return;
        }
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
            Algo::Bbr(_) => cwnd,
        };
    }

    /// A loss was detected by duplicate ACKs or SACK: reduce and return the new window
    /// (RFC 5681 section 3.2 step 2, RFC 9438 section 4.6). BBR only remembers the
    /// window, to restore it when recovery ends.
    pub fn on_loss(&mut self, now: Instant, flight: usize) {
        let (mss, cwnd) = (self.mss, self.cwnd);
        self.ssthresh = match &mut self.algo {
            Algo::NewReno(_) => (flight / 2).max(2 * mss),
            Algo::Cubic(c) => c.on_loss(now, cwnd, mss),
            Algo::Bbr(b) => {
                b.save_cwnd(cwnd as u64);
                return;
            }
        };
        self.cwnd = self.ssthresh;
    }

    /// The retransmission timer fired: one segment of window (RFC 5681 section 3.1).
    /// BBR: see [`Congestion::on_rto_marked`].
    pub fn on_rto(&mut self, now: Instant, flight: usize) {
        let (mss, cwnd) = (self.mss, self.cwnd);
        self.ssthresh = match &mut self.algo {
            Algo::NewReno(_) => (flight / 2).max(2 * mss),
            Algo::Cubic(c) => c.on_loss(now, cwnd, mss),
            Algo::Bbr(b) => {
                b.save_cwnd(cwnd as u64);
                return;
            }
        };
        self.cwnd = mss;
    }

    /// After a timeout marked everything lost, with `flight` bytes still believed in
    /// the network: BBR's window becomes that plus one segment (Linux `tcp_enter_loss`)
    /// and its model notes the timeout.
    pub fn on_rto_marked(&mut self, flight: usize, st: &RateState) {
        if let Algo::Bbr(b) = &mut self.algo {
            self.cwnd = flight + self.mss;
            b.on_rto(st);
        }
    }

    /// Sets the window directly (recovery inflation, deflation and exit).
    pub fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.mss);
    }

    /// Undoes a reduction found unnecessary (RFC 3708): the window and threshold go back
    /// to at least what they were before it.
    pub fn undo(&mut self, prior_cwnd: usize, prior_ssthresh: usize) {
        if let Algo::Bbr(b) = &mut self.algo {
            // BBR restores its saved window when the recovery state ends; the undo
            // only restarts its bandwidth plateau detection (Linux `bbr_undo_cwnd`).
            b.on_undo();
            self.ssthresh = self.ssthresh.max(prior_ssthresh);
            return;
        }
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
