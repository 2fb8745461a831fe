//! Connection timers and the RTT estimator (RFC 6298): retransmission, delayed ACK,
//! persist, keepalive, FIN-WAIT-2, idle, RACK's reorder and probe timers, and the
//! application's cork.
//!
//! Each connection keeps one deadline per [`Timer`] in a fixed array; the stack keeps a
//! single wheel entry per connection for the earliest of them, rescheduled lazily (an
//! entry that fires early finds nothing due and is re-armed), so restarting the RTO on
//! every ACK costs no wheel operation.

use std::time::Duration;

use super::config::TcpProfile;
use super::counters::TcpCounters;
use super::state::{flag, Connection, Notify, State};
use crate::time::Instant;

/// The timers of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission (also SYN and SYN-ACK retransmission).
    Rto = 0,
    /// Delayed acknowledgment.
    DelayedAck = 1,
    /// Zero-window probe (persist).
    Persist = 2,
    /// Keepalive.
    Keepalive = 3,
    /// FIN-WAIT-2 timeout of an orphaned connection.
    Linger = 4,
    /// Idle timeout: no segment either way for the profile's `idle_timeout`.
    Idle = 5,
    /// RACK reorder timer: a segment sent before a delivered one leaves the reordering
    /// window (RFC 8985 section 6.3).
    Reo = 6,
    /// Tail loss probe (RFC 8985 section 7).
    Tlp = 7,
    /// The application's cork (`TcpStack::cork`): while armed, a segment shorter than
    /// the MSS that would carry the last unsent byte is held back; when it fires, the
    /// held bytes go.
    Cork = 8,
}

const NONE: u64 = u64::MAX;

/// Deadlines in nanoseconds, `u64::MAX` when a timer is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers([u64; 9]);

impl Default for Timers {
    fn default() -> Self {
        Timers([NONE; 9])
    }
}

impl Timers {
    /// Arms `t` for `at`.
    #[inline]
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = at.as_nanos();
    }

    /// Turns `t` off.
    #[inline]
    pub fn stop(&mut self, t: Timer) {
        self.0[t as usize] = NONE;
    }

    /// True if `t` is armed.
    #[inline]
    pub fn armed(&self, t: Timer) -> bool {
        self.0[t as usize] != NONE
    }

    /// The deadline of `t`.
    pub fn deadline(&self, t: Timer) -> Option<Instant> {
        let d = self.0[t as usize];
        (d != NONE).then(|| Instant::from_nanos(d))
    }

    /// The earliest deadline, in nanoseconds.
    pub fn next(&self) -> Option<u64> {
        let m = *self.0.iter().min().unwrap_or(&NONE);
        (m != NONE).then_some(m)
    }

    /// Turns every timer off.
    pub fn stop_all(&mut self) {
        self.0 = [NONE; 9];
    }
}

/// Smoothed RTT, its variation and the retransmission timeout, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: u32,
    rttvar: u32,
    rto: u32,
    sampled: bool,
}

impl RttEstimator {
    /// Before any sample: RTO is the profile's initial value.
    pub fn new(initial_rto: Duration) -> Self {
        RttEstimator {
            srtt: 0,
            rttvar: 0,
            rto: initial_rto.as_micros().min(u32::MAX as u128) as u32,
            sampled: false,
        }
    }

    /// Takes one measurement (RFC 6298 section 2).
    pub fn sample(&mut self, rtt: Duration, min_rto: Duration, max_rto: Duration) {
        let r = rtt.as_micros().min(u32::MAX as u128 / 8) as u32;
        if !self.sampled {
            self.srtt = r;
            self.rttvar = r / 2;
            self.sampled = true;
        } else {
            let err = self.srtt.abs_diff(r);
            self.rttvar = (3 * (self.rttvar / 4)).saturating_add(err / 4);
            self.srtt = (7 * (self.srtt / 8)).saturating_add(r / 8);
        }
        let rto = self.srtt.saturating_add((4 * self.rttvar).max(1000));
        self.rto = rto.clamp(min_rto.as_micros() as u32, max_rto.as_micros() as u32);
    }

    /// The smoothed RTT (zero before a sample).
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt as u64)
    }

    /// The current RTO before back-off.
    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.rto as u64)
    }

    /// True once a sample was taken.
    pub fn sampled(&self) -> bool {
        self.sampled
    }
}

/// Milliseconds of `now`, the clock of timestamps and RTT timing.
#[inline]
pub fn ms(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000) as u32
}

impl Connection {
    /// The RTO with exponential back-off (RFC 6298 section 5.5), capped by the profile.
    pub fn rto_backed_off(&self, p: &TcpProfile) -> Duration {
        let base = self.rtt.rto();
        let d = base.saturating_mul(1u32 << self.backoff.min(16));
        d.min(p.max_rto)
    }

    /// (Re)starts the retransmission timer.
    pub fn arm_rto(&mut self, now: Instant, p: &TcpProfile) {
        self.timers.set(Timer::Rto, now + self.rto_backed_off(p));
    }

    /// Arms keepalive from the last activity, if the profile wants it.
    pub fn arm_keepalive(&mut self, now: Instant, p: &TcpProfile) {
        if let Some(k) = p.keepalive {
            if self.state.synchronized() {
                let wait = if self.probes == 0 { k.idle } else { k.interval };
                self.timers.set(Timer::Keepalive, now + wait);
            }
        }
    }

    /// Handles every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant, p: &TcpProfile, c: &mut TcpCounters) -> Notify {
        let mut n = Notify::default();
        let due = |t: Timer, s: &Self| s.timers.deadline(t).is_some_and(|d| d <= now);
        if due(Timer::DelayedAck, self) {
            self.timers.stop(Timer::DelayedAck);
            self.set(flag::ACK_NOW);
            n.set(Notify::OUTPUT);
        }
        if due(Timer::Cork, self) {
            self.timers.stop(Timer::Cork);
            c.cork_expired += 1;
            n.set(Notify::OUTPUT);
        }
        if due(Timer::Rto, self) {
            self.timers.stop(Timer::Rto);
            n.set(self.on_rto(now, p, c).0);
        }
        if due(Timer::Reo, self) {
            self.timers.stop(Timer::Reo);
            n.set(self.on_reorder_timeout(now, c).0);
        }
        if due(Timer::Tlp, self) {
            self.timers.stop(Timer::Tlp);
            n.set(self.on_probe_timeout().0);
        }
        if due(Timer::Persist, self) {
            self.timers.stop(Timer::Persist);
            // Nothing in flight and data held back: by a zero window, or by silly
            // window avoidance before a small one (RFC 9293 section 3.8.6.2.1). Either
            // way the persist timer forces a segment out.
            if self.outstanding() == 0 && self.tx.len() > seq_dist_sent(self) {
                self.set(flag::PROBE);
                self.backoff = self.backoff.saturating_add(1);
                c.window_probes += 1;
                let wait = self.rto_backed_off(p);
                self.timers.set(Timer::Persist, now + wait);
                n.set(Notify::OUTPUT);
            }
        }
        if due(Timer::Keepalive, self) {
            self.timers.stop(Timer::Keepalive);
            if let Some(k) = p.keepalive {
                let idle = Duration::from_millis(ms(now).wrapping_sub(self.last_rx_ms) as u64);
                if idle + Duration::from_millis(1) < k.idle && self.probes == 0 {
                    self.timers.set(Timer::Keepalive, now + (k.idle - idle));
                } else if self.probes >= k.probes {
                    n.set(Notify::TIMED_OUT | Notify::ABORT_RST);
                } else {
                    self.probes += 1;
                    self.set(flag::KEEPALIVE);
                    c.keepalive_probes += 1;
                    self.timers.set(Timer::Keepalive, now + k.interval);
                    n.set(Notify::OUTPUT);
                }
            }
        }
        if due(Timer::Linger, self) {
            self.timers.stop(Timer::Linger);
            if self.state == State::FinWait2 {
                self.state = State::Closed;
                n.set(Notify::CLOSED);
            }
        }
        if due(Timer::Idle, self) {
            self.timers.stop(Timer::Idle);
            if let Some(limit) = p.idle_timeout {
                let last = self.last_rx_ms.max(self.last_tx_ms);
                let idle = Duration::from_millis(ms(now).wrapping_sub(last) as u64);
                if idle >= limit {
                    n.set(Notify::TIMED_OUT | Notify::ABORT_RST);
                } else {
                    self.timers.set(Timer::Idle, now + (limit - idle));
                }
            }
        }
        n
    }

    /// Arms the idle timeout from now, if the profile has one (lazily: an earlier
    /// deadline finds the activity and moves on).
    pub fn arm_idle(&mut self, now: Instant, p: &TcpProfile) {
        if let Some(limit) = p.idle_timeout {
            if self.state.synchronized() && !self.timers.armed(Timer::Idle) {
                self.timers.set(Timer::Idle, now + limit);
            }
        }
    }

    fn on_rto(&mut self, now: Instant, p: &TcpProfile, c: &mut TcpCounters) -> Notify {
        let mut n = Notify(Notify::OUTPUT);
        match self.state {
            State::SynSent | State::SynReceived => {
                if self.backoff >= p.syn_retries {
                    self.state = State::Closed;
                    n.set(Notify::TIMED_OUT);
                    return n;
                }
                self.set(flag::SEND_SYN);
                self.snd_nxt = self.iss;
            }
            State::Closed | State::TimeWait => return Notify::default(),
            _ => {
                if self.outstanding() == 0 {
                    return Notify::default();
                }
                if self.backoff >= p.max_retries {
                    n.set(Notify::TIMED_OUT | Notify::ABORT_RST);
                    return n;
                }
                if self.snd_wnd == 0 {
                    // A lost zero-window probe: probe again, past the closed window.
                    self.set(flag::PROBE);
                }
                // Everything not SACKed goes again, in order, under slow start.
                self.enter_loss(now, c);
            }
        }
        // Karn: nothing sent before now may be timed.
        self.rtt_timing = false;
        self.backoff = self.backoff.saturating_add(1);
        self.arm_rto(now, p);
        n
    }
}

/// Data bytes already sent past `snd_una`.
fn seq_dist_sent(c: &Connection) -> usize {
    super::seq::dist(c.data_start(), c.snd_max).min(c.tx.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_estimator() {
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(60));
        let mut r = RttEstimator::new(Duration::from_secs(1));
        assert_eq!(r.rto(), Duration::from_secs(1));
        r.sample(Duration::from_millis(100), min, max);
        // srtt 100, rttvar 50: rto = 100 + 200 = 300 ms.
        assert_eq!(r.rto(), Duration::from_millis(300));
        r.sample(Duration::from_millis(100), min, max);
        // rttvar 37.5, srtt 100: 250 ms.
        assert_eq!(r.rto(), Duration::from_micros(250_000));
        for _ in 0..50 {
            r.sample(Duration::from_millis(1), min, max);
        }
        assert_eq!(r.rto(), min, "clamped to the minimum");
    }
}
