//! RACK-TLP (RFC 8985): time-based loss detection and tail loss probes.
//!
//! RACK deems a segment lost once a segment sent after it was delivered and more than
//! an RTT plus a reordering window has passed since it was sent. So a lost
//! retransmission, a second hole and a lost segment at the end of a burst are found as
//! soon as anything later gets through, without counting duplicate ACKs. The reordering
//! window starts at a quarter of the minimum RTT, is zero while no reordering has been
//! seen and recovery is under way, and grows with each D-SACK (section 6.2 step 4).
//!
//! TLP sends one probe two RTTs after the last transmission when no ACK came, so a lost
//! tail is reported by SACK and repaired by fast recovery instead of waiting for the
//! retransmission timeout (section 7).
//!
//! The probe is the last segment sent again, not new data as section 7.3 prefers: a
//! duplicate draws an immediate ACK (with a D-SACK) from any receiver, while new
//! in-order data may sit in the receiver's delayed-ACK path. Linux does exactly that
//! when the application does not read between two segments (it only ACKs every second
//! segment at once if its window moves): on the test bed at 5 % loss a new-data probe
//! drew no ACK for 200 ms and the RTO fired anyway. The cost is one duplicate segment
//! per probe; probes only go when ACKs stop.

use super::rtx::{mark, Delivered, RtxQueue};
use super::seq;

/// Nanoseconds in a millisecond.
const MS: u64 = 1_000_000;

/// The RACK state of one connection (RFC 8985 section 6.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rack {
    /// Send time of the most recently sent segment delivered (RACK.xmit_ts, ns).
    xmit: u64,
    /// Its end (RACK.end_seq).
    end: u32,
    /// RTT of that segment (RACK.rtt, ns); 0 before any.
    rtt: u64,
    /// The minimum RTT seen (ns); 0 before any sample.
    min_rtt: u64,
    /// A segment was delivered out of order (RACK.reordering_seen).
    reordering_seen: bool,
    /// Multiplier of the reordering window (RACK.reo_wnd_mult).
    reo_wnd_mult: u8,
    /// Recoveries left before the multiplier resets (RACK.reo_wnd_persist).
    reo_wnd_persist: u8,
    /// `snd_nxt` when the last D-SACK grew the window (RACK.dsack_round), if any.
    dsack_round: Option<u32>,
    /// Whether `xmit`/`end` are set.
    valid: bool,
}

impl Rack {
    /// RACK.rtt in nanoseconds (0 before any delivery).
    pub fn rtt(&self) -> u64 {
        self.rtt
    }

    /// The minimum RTT in nanoseconds.
    pub fn min_rtt(&self) -> u64 {
        self.min_rtt
    }

    /// True once reordering was seen on this connection.
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    /// Takes an unambiguous RTT sample (ns) for the minimum RTT.
    pub fn sample_min_rtt(&mut self, rtt: u64) {
        if self.min_rtt == 0 || rtt < self.min_rtt {
            self.min_rtt = rtt.max(1);
        }
    }

    /// Section 6.2 steps 2 and 3: the most recently sent segment among those this ACK
    /// delivered becomes RACK's reference.
    pub fn on_delivered(&mut self, d: &Delivered, now: u64) {
        if d.reordered {
            self.reordering_seen = true;
        }
        let Some((sent, end, retransmitted)) = d.latest else {
            return;
        };
        let rtt = now.saturating_sub(sent);
        // A retransmitted segment delivered sooner than the minimum RTT after its
        // retransmission was the original's delivery: not a usable sample.
        if retransmitted && self.min_rtt != 0 && rtt < self.min_rtt {
            return;
        }
        self.rtt = rtt;
        if !self.valid || sent > self.xmit || (sent == self.xmit && seq::gt(end, self.end)) {
            self.xmit = sent;
            self.end = end;
            self.valid = true;
        }
    }

    /// Section 6.2 step 4 on a D-SACK: widen the reordering window for 16 recoveries,
    /// at most once per round trip.
    pub fn on_dsack(&mut self, snd_una: u32, snd_nxt: u32) {
        if self.dsack_round.is_some_and(|r| seq::ge(snd_una, r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1).max(2);
            self.reo_wnd_persist = 16;
        }
        self.reordering_seen = true;
    }

    /// A recovery ended: the widened window decays after 16 of them.
    pub fn on_recovery_exit(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// The reordering window (ns): zero while no reordering was seen and the sender is
    /// in recovery or already has three segments' worth SACKed; else a quarter of the
    /// minimum RTT times the multiplier, at most the smoothed RTT.
    pub fn reo_wnd(&self, in_recovery: bool, sacked_3: bool, srtt: u64) -> u64 {
        if !self.reordering_seen && (in_recovery || sacked_3) {
            return 0;
        }
        let w = self.min_rtt / 4 * self.reo_wnd_mult.max(1) as u64;
        if srtt > 0 {
            w.min(srtt)
        } else {
            w
        }
    }

    /// Section 6.2 step 5: marks lost every segment not delivered that was sent before
    /// RACK's reference more than RACK.rtt + `reo_wnd` ago. Returns (bytes newly marked
    /// lost, retransmissions among them that were lost, when to check again (ns from
    /// now) for those still within the window).
    pub fn detect_loss(
        &self,
        q: &mut RtxQueue,
        now: u64,
        reo_wnd: u64,
    ) -> (usize, u32, Option<u64>) {
        if !self.valid {
            return (0, 0, None);
        }
        let mut lost = 0;
        let mut lost_rxt = 0;
        let mut wait: Option<u64> = None;
        let mut i = 0;
        while let Some(r) = q.get(i).copied() {
            i += 1;
            if r.has(mark::SACKED) {
                continue;
            }
            let before = r.sent < self.xmit || (r.sent == self.xmit && seq::lt(r.end, self.end));
            if !before {
                if !r.has(mark::EVER_RETRANS) {
                    // Records never resent are in sending order: none later qualifies,
                    // and every resent one after it was resent later still.
                    break;
                }
                continue;
            }
            if r.has(mark::LOST) && !r.has(mark::RETRANS) {
                continue;
            }
            let deadline = r.sent + self.rtt + reo_wnd;
            if deadline <= now {
                if q.mark_lost(i - 1) {
                    lost_rxt += 1;
                }
                lost += r.len();
            } else {
                let left = deadline - now;
                wait = Some(wait.map_or(left, |w: u64| w.max(left)));
            }
        }
        (lost, lost_rxt, wait)
    }
}

/// Most probes sent before the RTO is left to fire (RFC 8985 sends one; a second, after
/// twice the timeout, covers the probe or its ACK being lost too).
pub const MAX_PROBES: u8 = 2;

/// The tail loss probe state (RFC 8985 section 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tlp {
    /// `snd_max` after the probe went out (TLP.end_seq), while an episode is open.
    pub end: Option<u32>,
    /// The probe was a retransmission (TLP.is_retrans).
    pub is_retrans: bool,
    /// Probes sent in this episode.
    pub probes: u8,
    /// The range of the last retransmitted probe: a D-SACK for it is about the probe,
    /// not reordering and not a spurious recovery.
    pub last: Option<(u32, u32)>,
}

impl Tlp {
    /// True if the D-SACK block `(l, r)` reports the last probe received twice.
    pub fn covers(&self, (l, r): (u32, u32)) -> bool {
        self.last
            .is_some_and(|(a, b)| seq::le(a, l) && seq::le(r, b))
    }

    /// Ends the episode (keeping the last probe's range for late D-SACKs).
    pub fn end_episode(&mut self) {
        *self = Tlp {
            last: self.last,
            ..Tlp::default()
        };
    }
}

/// The probe timeout (section 7.2): two smoothed RTTs, plus the peer's worst-case
/// delayed-ACK time (`min_rto`, as Linux) when only one segment is out; one second
/// before any RTT sample; never below two milliseconds (the timer's granularity).
pub fn pto(srtt: u64, one_segment: bool, min_rto: u64) -> u64 {
    if srtt == 0 {
        return 1000 * MS;
    }
    let extra = if one_segment { min_rto } else { 2 * MS };
    2 * srtt + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_older_segments_lost_after_rtt_and_window() {
        let mut q = RtxQueue::default();
        // Four segments sent 1 ms apart; the third is SACKed 10 ms after it was sent.
        for i in 0..4u32 {
            q.push(
                i * 100,
                i * 100 + 100,
                i as u64 * MS,
                false,
                Default::default(),
            );
        }
        let mut d = Delivered::default();
        q.sack(0, 400, &[(200, 300)], &mut d);
        let mut r = Rack::default();
        r.sample_min_rtt(8 * MS);
        r.on_delivered(&d, 12 * MS);
        assert_eq!(r.rtt(), 10 * MS);
        // Window: min_rtt / 4 = 2 ms. Segment 0 deadline 0+10+2 = 12 ms, segment 1 13 ms.
        let (lost, _, wait) = r.detect_loss(&mut q, 12 * MS, r.reo_wnd(false, false, 0));
        assert_eq!(lost, 100);
        assert_eq!(wait, Some(MS));
        assert_eq!(q.next_lost(), Some(0));
        // In recovery with no reordering seen the window is zero.
        assert_eq!(r.reo_wnd(true, false, 0), 0);
        let (lost, _, wait) = r.detect_loss(&mut q, 13 * MS, 0);
        assert_eq!((lost, wait), (100, None));
        // A D-SACK widens the window.
        r.on_dsack(0, 400);
        assert_eq!(r.reo_wnd(true, false, 0), 4 * MS);
    }

    #[test]
    fn a_lost_retransmission_is_found_by_a_later_delivery() {
        let mut q = RtxQueue::default();
        q.push(0, 100, 0, false, Default::default());
        q.push(100, 200, MS, false, Default::default());
        q.mark_lost(0);
        q.retransmitted(0, 5 * MS, true, Default::default());
        q.push(200, 300, 6 * MS, false, Default::default());
        let mut d = Delivered::default();
        q.sack(0, 300, &[(100, 300)], &mut d);
        let mut r = Rack::default();
        r.sample_min_rtt(MS);
        r.on_delivered(&d, 7 * MS);
        assert_eq!(r.rtt(), MS);
        let (lost, lost_rxt, _) = r.detect_loss(&mut q, 7 * MS, 0);
        assert_eq!((lost, lost_rxt), (100, 1));
        assert_eq!(q.next_lost(), Some(0), "to be sent again");
    }

    #[test]
    fn probe_timeout() {
        assert_eq!(pto(0, false, 200 * MS), 1000 * MS);
        assert_eq!(pto(10 * MS, false, 200 * MS), 22 * MS);
        assert_eq!(pto(10 * MS, true, 200 * MS), 220 * MS);
    }
}
