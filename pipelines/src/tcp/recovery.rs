//! Loss detection and the recovery states of the sender: what an ACK, the RACK reorder
//! timer, the tail loss probe timer and the retransmission timer do to the
//! retransmission queue and the congestion window.
//!
//! States: open; fast recovery (`flag::RECOVERY`: RFC 6675 with PRR, entered when RACK
//! (with SACK) or three duplicate ACKs / early retransmit (without) deem a segment lost,
//! left when `recover` is acknowledged); timeout recovery (`flag::LOSS`: after an RTO
//! every segment not SACKed is lost and goes again under slow start). D-SACKs (RFC 2883)
//! count spurious retransmissions; when every retransmission of an episode proves
//! spurious the reduction is undone (RFC 3708). A tail loss probe whose retransmission
//! repaired a loss reduces the window once (RFC 8985 section 7.4).

use std::time::Duration;

use super::config::TcpProfile;
use super::congestion::bbr::{AckInput, CaState};
use super::counters::TcpCounters;
use super::rack;
use super::rtx::Delivered;
use super::seq;
use super::state::{flag, Connection, Notify, Undo};
use super::timers::Timer;
use crate::time::Instant;

/// A SACK block `[left, right)`.
pub type Block = (u32, u32);

/// Splits an ACK's SACK blocks into a D-SACK (RFC 2883 section 4: the first block, if
/// it lies below the cumulative ACK or inside the second block) and the others.
pub fn split_dsack(blocks: &[Block], ack: u32) -> (Option<Block>, &[Block]) {
    let Some(&(l, r)) = blocks.first() else {
        return (None, blocks);
    };
    let below = seq::le(r, ack);
    let inside = blocks
        .get(1)
        .is_some_and(|&(l2, r2)| seq::le(l2, l) && seq::le(r, r2));
    if seq::lt(l, r) && (below || inside) {
        (Some((l, r)), &blocks[1..])
    } else {
        (None, blocks)
    }
}

impl Connection {
    /// The loss-related part of ACK processing, after the queue has taken the ACK's
    /// cumulative and selective acknowledgments (`d`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_ack(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        acked: usize,
        data_acked: usize,
        d: &Delivered,
        dsack: Option<(u32, u32)>,
        n: &mut Notify,
    ) {
        let mss = self.mss as usize;
        if let Some(b) = dsack {
            self.on_dsack(b, c);
        }
        self.rack.on_delivered(d, now.as_nanos());
        self.tlp_on_ack(now, acked, d, dsack, c);
        let was_fast = self.has(flag::RECOVERY);
        let model = self.cc.sets_recovery_window();
        if self.recovering() && seq::ge(self.snd_una, self.recover) {
            if self.has(flag::RECOVERY) && !model {
                // RFC 6937: leave with the window at ssthresh.
                self.cc.set_cwnd(self.cc.ssthresh());
            }
            self.clear(flag::RECOVERY | flag::LOSS);
            self.rack.on_recovery_exit();
        }
        let newly_lost = if self.sack_ok {
            self.rack_detect(now, c)
        } else {
            let before = self.rtx.lost_bytes();
            self.dupack_detect(acked);
            self.rtx.lost_bytes().saturating_sub(before)
        };
        if !self.recovering() && self.rtx.lost_bytes() > 0 {
            self.enter_recovery(now, c);
        }
        // The delivery rate sample of this ACK (every algorithm; BBR steers by it).
        let now_ns = now.as_nanos();
        let mut rs = self.rate.on_ack(
            now_ns,
            d.bytes as u64,
            newly_lost as u64,
            &d.src,
            self.rack.min_rtt(),
        );
        rs.prior_in_flight = d.prior_flight as u64;
        rs.rtt = d.rtt_sent.map(|t| now_ns.saturating_sub(t));
        if model {
            let a = AckInput {
                now: now_ns,
                mss: mss as u64,
                flight: self.flight() as u64,
                ca_state: self.ca_state(),
                srtt: self.rtt.srtt().as_nanos() as u64,
                pace_next: self.pace_next,
            };
            self.cc.on_rate_sample(&rs, &mut self.rate, &a);
            if d.bytes > 0 || self.rtx.next_lost().is_some() {
                n.set(Notify::OUTPUT);
            }
        } else if self.has(flag::RECOVERY) {
            let w = self
                .prr
                .on_ack(d.bytes, self.flight(), self.cc.ssthresh(), mss);
            self.cc.set_cwnd(w);
            n.set(Notify::OUTPUT);
        } else if data_acked > 0 && !was_fast {
            // Open, or slow start after a timeout (not on the ACK ending fast recovery).
            self.cc.on_ack(now, data_acked, self.rtt.srtt());
        }
        if self.rtx.next_lost().is_some() {
            n.set(Notify::OUTPUT);
        }
        if acked > 0 || (self.has(flag::RECOVERY) && d.bytes > 0) {
            self.arm_tlp(now, p);
        }
    }

    /// The recovery state as the congestion control sees it.
    pub(super) fn ca_state(&self) -> CaState {
        if self.has(flag::LOSS) {
            CaState::Loss
        } else if self.has(flag::RECOVERY) {
            CaState::Recovery
        } else {
            CaState::Open
        }
    }

    /// RACK loss detection (RFC 8985 section 6.2 step 5); arms the reorder timer for
    /// segments still inside the reordering window. Returns the bytes newly marked lost.
    pub(super) fn rack_detect(&mut self, now: Instant, c: &mut TcpCounters) -> usize {
        let srtt = self.rtt.srtt().as_nanos() as u64;
        // DupThresh (3) segments SACKed, counted in bytes as RFC 6675 does: more than 2 MSS.
        let sacked_3 = self.rtx.sacked_bytes() > 2 * self.mss as usize;
        let reo = self.rack.reo_wnd(self.recovering(), sacked_3, srtt);
        let (lost, lost_rxt, wait) = self.rack.detect_loss(&mut self.rtx, now.as_nanos(), reo);
        c.lost_retransmits += lost_rxt as u64;
        match wait {
            Some(w) => self.timers.set(Timer::Reo, now + Duration::from_nanos(w)),
            None => self.timers.stop(Timer::Reo),
        }
        lost
    }

    /// Without SACK: three duplicate ACKs (or fewer when fewer segments are out and
    /// nothing new may go, RFC 5827) lose the first segment; in recovery a partial ACK
    /// loses the next one (RFC 6582).
    fn dupack_detect(&mut self, acked: usize) {
        if self.rtx.is_empty() {
            return;
        }
        if self.has(flag::RECOVERY) {
            if acked > 0 && seq::lt(self.snd_una, self.recover) {
                self.rtx.mark_lost(0);
            }
            return;
        }
        if self.recovering() || seq::lt(self.snd_una, self.recover) {
            return;
        }
        let mss = self.mss as usize;
        let out = self.outstanding();
        let segs = out.div_ceil(mss);
        let unsent = seq::dist(self.snd_max, self.data_end()) > 0;
        let early = !unsent && segs < 4 && self.dupacks as usize >= segs.saturating_sub(1).max(1);
        if self.dupacks >= 3 || early {
            self.rtx.mark_lost(0);
        }
    }

    /// Enters fast recovery: the window goes to ssthresh through PRR.
    pub(super) fn enter_recovery(&mut self, now: Instant, c: &mut TcpCounters) {
        c.fast_recoveries += 1;
        self.start_undo();
        let out = self.outstanding();
        self.set(flag::RECOVERY);
        self.recover = self.snd_max;
        self.cc.on_loss(now, out);
        self.prr.start(out);
        self.tlp.end_episode();
        // Karn: the retransmitted segment must not be timed.
        self.rtt_timing = false;
    }

    /// Remembers the window to restore should the episode prove spurious.
    pub(super) fn start_undo(&mut self) {
        self.undo = Undo {
            active: true,
            marker: self.snd_una,
            retrans: 0,
            prior_cwnd: self.cc.cwnd(),
            prior_ssthresh: self.cc.ssthresh(),
        };
    }

    /// A D-SACK: the peer got something twice. If it was one of this episode's
    /// retransmissions it was spurious; when all of them were, undo the reduction.
    fn on_dsack(&mut self, (l, r): (u32, u32), c: &mut TcpCounters) {
        c.dsacks_received += 1;
        if self.tlp.covers((l, r)) {
            // A probe received twice: neither reordering nor a spurious recovery.
            return;
        }
        self.rack.on_dsack(self.snd_una, self.snd_max);
        let u = &mut self.undo;
        if !u.active || u.retrans == 0 || !seq::gt(r, u.marker) || seq::gt(l, self.snd_max) {
            return;
        }
        c.spurious_retransmits += 1;
        u.retrans -= 1;
        if u.retrans > 0 {
            return;
        }
        u.active = false;
        let (w, t) = (u.prior_cwnd, u.prior_ssthresh);
        self.cc.undo(w, t);
        c.undos += 1;
        if self.recovering() {
            // Nothing was lost after all: back to open, forgetting the loss marks
            // (RACK, with the wider window the D-SACK gave it, finds real ones again).
            self.clear(flag::RECOVERY | flag::LOSS);
            self.rtx.unmark_lost();
            self.rack.on_recovery_exit();
        }
    }

    /// RFC 8985 section 7.4: what an ACK says about the open probe episode.
    fn tlp_on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        d: &Delivered,
        dsack: Option<(u32, u32)>,
        c: &mut TcpCounters,
    ) {
        let Some(end) = self.tlp.end else {
            return;
        };
        if seq::lt(self.snd_una, end) {
            return;
        }
        if !self.tlp.is_retrans {
            // A probe of new data was acknowledged.
        } else if dsack.is_some_and(|b| self.tlp.covers(b) || seq::le(b.1, end)) {
            // The original and the probe both arrived: nothing was lost.
        } else if acked > 0 {
            // The probe repaired a loss: reduce once, as fast recovery would have
            // (unless this is a fast recovery, which already did).
            c.tlp_recoveries += 1;
            if !self.recovering() {
                let out = self.outstanding();
                self.cc.on_loss(now, out.max(self.mss as usize));
            }
        } else if d.bytes > 0 {
            // More to learn from a later ACK.
            return;
        }
        self.tlp.end_episode();
    }

    /// Arms the probe timeout when a probe may help: SACK in use, data in flight, not
    /// in timeout recovery and no probe episode open (RFC 8985 section 7.2). Unlike the
    /// RFC (and Linux), it is armed in fast recovery too: when the last ACKs of an
    /// episode are lost, or its last retransmission and everything after it, nothing
    /// else would clock the sender but the RTO.
    pub(super) fn arm_tlp(&mut self, now: Instant, p: &TcpProfile) {
        if !self.sack_ok
            || self.has(flag::LOSS)
            || self.tlp.probes >= rack::MAX_PROBES
            || self.outstanding() == 0
            || !self.state.synchronized()
        {
            self.timers.stop(Timer::Tlp);
            return;
        }
        let srtt = self.rtt.srtt().as_nanos() as u64;
        let one = self.outstanding() <= self.mss as usize;
        // A second probe waits twice as long.
        let pto = rack::pto(srtt, one, p.min_rto.as_nanos() as u64) << self.tlp.probes;
        let at = now + Duration::from_nanos(pto);
        if self
            .timers
            .deadline(Timer::Rto)
            .is_some_and(|rto| rto <= at)
        {
            self.timers.stop(Timer::Tlp);
            return;
        }
        self.timers.set(Timer::Tlp, at);
    }

    /// The reorder timer: segments left inside the window may now be lost.
    pub(super) fn on_reorder_timeout(&mut self, now: Instant, c: &mut TcpCounters) -> Notify {
        let lost = self.rack_detect(now, c);
        self.rate.lost += lost as u64;
        if lost > 0 && !self.recovering() {
            self.enter_recovery(now, c);
            if !self.cc.sets_recovery_window() {
                let w = self
                    .prr
                    .on_ack(0, self.flight(), self.cc.ssthresh(), self.mss as usize);
                self.cc.set_cwnd(w);
            }
        }
        if self.rtx.next_lost().is_some() {
            Notify(Notify::OUTPUT)
        } else {
            Notify::default()
        }
    }

    /// The probe timer: send one probe (RFC 8985 section 7.3).
    pub(super) fn on_probe_timeout(&mut self) -> Notify {
        if self.outstanding() == 0 || self.has(flag::LOSS) || self.tlp.probes >= rack::MAX_PROBES {
            return Notify::default();
        }
        self.set(flag::TLP_PROBE);
        Notify(Notify::OUTPUT)
    }

    /// The retransmission timer on a synchronised connection with data out: every
    /// segment not SACKed is lost and goes again under slow start.
    pub(super) fn enter_loss(&mut self, now: Instant, c: &mut TcpCounters) {
        c.timeouts += 1;
        if !self.recovering() {
            self.start_undo();
        }
        let flight = self.flight();
        self.cc.on_rto(now, flight);
        self.clear(flag::RECOVERY | flag::TLP_PROBE);
        self.set(flag::LOSS);
        self.recover = self.snd_max;
        self.dupacks = 0;
        let lost = self.rtx.lost_bytes();
        self.rtx.mark_all_lost();
        self.rate.lost += self.rtx.lost_bytes().saturating_sub(lost) as u64;
        self.cc.on_rto_marked(self.flight(), &self.rate);
        self.tlp.end_episode();
        self.timers.stop(Timer::Tlp);
        self.timers.stop(Timer::Reo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsack_is_the_first_block_below_the_ack_or_inside_the_second() {
        let b = [(100, 200), (300, 400)];
        assert_eq!(split_dsack(&b, 250), (Some((100, 200)), &b[1..]));
        assert_eq!(split_dsack(&b, 50), (None, &b[..]));
        let b = [(320, 340), (300, 400)];
        assert_eq!(split_dsack(&b, 50), (Some((320, 340)), &b[1..]));
        assert_eq!(split_dsack(&[], 50), (None, &[][..]));
    }
}
