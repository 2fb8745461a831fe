//! Segment arrival on an existing connection (RFC 9293 section 3.10.7), with the RFC 5961
//! protections, PAWS (RFC 7323 section 5), SACK (RFC 2018, RFC 6675) and NewReno
//! (RFC 6582) loss detection.

use std::time::Duration;

use super::config::TcpProfile;
use super::counters::{TcpCounters, TcpDrop};
use super::options::family_mss;
use super::recovery::split_dsack;
use super::rtx::Delivered;
use super::seq;
use super::state::{flag, Connection, Notify, State};
use super::timers::{ms, Timer};
use crate::time::Instant;
use crate::wire::tcp::TcpRepr;

/// One received segment: the parsed header and the payload.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Header and options.
    pub repr: TcpRepr,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Sequence space occupied (payload, SYN and FIN).
    pub fn len(&self) -> usize {
        self.payload.len() + self.repr.flags.syn() as usize + self.repr.flags.fin() as usize
    }

    /// True if the segment occupies no sequence space.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// RTT samples above this are ignored (a bogus echoed timestamp).
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(60);

impl Connection {
    /// Processes one segment addressed to this connection.
    pub fn on_segment(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        seg: &Segment,
    ) -> Notify {
        match self.state {
            State::SynSent => self.on_syn_sent(now, p, c, seg),
            State::Closed | State::TimeWait => Notify::default(),
            _ => self.on_synchronized(now, p, c, seg),
        }
    }

    fn on_syn_sent(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        seg: &Segment,
    ) -> Notify {
        let r = &seg.repr;
        if r.flags.ack() && (seq::le(r.ack, self.iss) || seq::gt(r.ack, self.snd_max)) {
            if r.flags.rst() {
                return Notify::default();
            }
            c.drop(TcpDrop::BadAck);
            if self.has(flag::SYN_AFTER_RST) {
                return Notify(Notify::SEND_RST);
            }
            // The peer answered our SYN for an older connection on this 4-tuple: its
            // TIME-WAIT refusing a SYN whose timestamp or sequence number is not above
            // the old ones (PAWS), or a connection of a previous run of ours it still
            // believes in. The RST ends that connection (RFC 9293 section 3.10.7.3;
            // Linux ends a TIME-WAIT on it unless tcp_rfc1337 is set), and the SYN,
            // sent again at once behind it, opens ours a round trip later instead of a
            // retransmission timeout (1 s) later. Once per connection: a peer that
            // keeps its old connection gets the SYN again on the timer.
            self.set(flag::SYN_AFTER_RST | flag::SEND_SYN);
            self.snd_nxt = self.iss;
            c.syn_resent_after_rst += 1;
            return Notify(Notify::SEND_RST | Notify::OUTPUT);
        }
        if r.flags.rst() {
            if r.flags.ack() {
                c.resets_received += 1;
                self.state = State::Closed;
                return Notify(Notify::REFUSED);
            }
            c.drop(TcpDrop::InvalidRst);
            return Notify::default();
        }
        if !r.flags.syn() {
            c.drop(TcpDrop::NoAck);
            return Notify::default();
        }
        self.irs = r.seq;
        self.rcv_nxt = r.seq.wrapping_add(1);
        self.last_ack_sent = self.rcv_nxt;
        // Our SYN offered its (unscaled) window before the peer's sequence numbers were
        // known: the right edge promised starts here, not at the SYN's placeholder.
        self.rcv_adv = self.rcv_nxt.wrapping_add(self.rx_free().min(65535) as u32);
        self.negotiate(r, p);
        self.last_rx_ms = ms(now);
        if r.flags.ack() {
            self.snd_una = r.ack;
            // The window of a SYN-ACK is never scaled (RFC 7323 section 2.2).
            self.snd_wnd = r.window as u32;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = r.seq;
            self.snd_wl2 = r.ack;
            self.rtt_from_ack(now, p, r, &Delivered::default());
            self.backoff = 0;
            self.state = State::Established;
            self.timers.stop(Timer::Rto);
            self.clear(flag::SEND_SYN);
            self.set(flag::ACK_NOW);
            self.arm_keepalive(now, p);
            self.arm_idle(now, p);
            Notify(Notify::CONNECTED | Notify::OUTPUT)
        } else {
            // Simultaneous open (RFC 9293 figure 7): answer with SYN-ACK.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            self.set(flag::SEND_SYN);
            Notify(Notify::OUTPUT)
        }
    }

    fn acceptable(&self, seg: &Segment) -> bool {
        let wnd = self.rcv_wnd();
        let len = seg.len() as u32;
        let s = seg.repr.seq;
        let in_wnd =
            |x: u32| seq::le(self.rcv_nxt, x) && seq::lt(x, self.rcv_nxt.wrapping_add(wnd));
        match (len, wnd) {
            (0, 0) => s == self.rcv_nxt,
            (0, _) => in_wnd(s),
            (_, 0) => false,
            _ => in_wnd(s) || in_wnd(s.wrapping_add(len - 1)),
        }
    }

    fn on_synchronized(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        seg: &Segment,
    ) -> Notify {
        let r = &seg.repr;
        let mut n = Notify::default();
        // PAWS (RFC 7323 section 5.3) comes before the window check.
        if self.ts_ok && !r.flags.rst() {
            if let Some((tsval, _)) = r.timestamps {
                if seq::lt(tsval, self.ts_recent) {
                    c.drop(TcpDrop::Paws);
                    self.set(flag::ACK_NOW);
                    return Notify(Notify::OUTPUT);
                }
            }
        }
        let mut trim_all = false;
        if self.state == State::SynReceived
            && r.flags.syn()
            && r.flags.ack()
            && !r.flags.rst()
            && r.seq == self.irs
            && seq::lt(self.snd_una, r.ack)
            && seq::le(r.ack, self.snd_max)
        {
            // Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK completes ours.
            self.snd_una = r.ack;
            self.snd_wnd = r.window as u32;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = r.seq;
            self.snd_wl2 = r.ack;
            self.state = State::Established;
            self.timers.stop(Timer::Rto);
            self.backoff = 0;
            self.clear(flag::SEND_SYN);
            self.set(flag::ACK_NOW);
            return Notify(Notify::CONNECTED | Notify::OUTPUT);
        }
        if self.state == State::SynReceived && r.flags.syn() && !r.flags.ack() && r.seq == self.irs
        {
            // The peer did not see our SYN-ACK: send it again.
            self.snd_nxt = self.iss;
            self.set(flag::SEND_SYN);
            return Notify(Notify::OUTPUT);
        }
        if !self.acceptable(seg) {
            if r.flags.rst() {
                c.drop(TcpDrop::InvalidRst);
                return n;
            }
            // A zero window still takes the ACK of a segment at rcv_nxt (a window probe).
            if self.rcv_wnd() == 0 && r.seq == self.rcv_nxt && !r.flags.syn() {
                trim_all = true;
                c.drop(TcpDrop::BeyondWindow);
                self.set(flag::ACK_NOW);
                n.set(Notify::OUTPUT);
            } else {
                c.drop(TcpDrop::OutOfWindow);
                if self.sack_ok && !seg.payload.is_empty() && seq::lt(r.seq, self.rcv_nxt) {
                    // Data we already hold: report it with a D-SACK (RFC 2883).
                    let end = seq::min(r.seq.wrapping_add(seg.payload.len() as u32), self.rcv_nxt);
                    self.dsack = Some((r.seq, end));
                }
                self.set(flag::ACK_NOW);
                return Notify(Notify::OUTPUT);
            }
        }
        if r.flags.rst() {
            // RFC 5961 section 3.2: only an exact match resets; others get a challenge.
            if r.seq == self.rcv_nxt {
                c.resets_received += 1;
                self.state = State::Closed;
                return Notify(Notify::RESET);
            }
            c.drop(TcpDrop::InvalidRst);
            return Notify(Notify::CHALLENGE);
        }
        if r.flags.syn() {
            // RFC 5961 section 4.2.
            c.drop(TcpDrop::UnexpectedSyn);
            return Notify(Notify::CHALLENGE);
        }
        if !r.flags.ack() {
            c.drop(TcpDrop::NoAck);
            return n;
        }
        self.last_rx_ms = ms(now);
        self.probes = 0;
        // RFC 7323 section 4.3: remember the timestamp to echo.
        if let (true, Some((tsval, _))) = (self.ts_ok, r.timestamps) {
            if seq::ge(tsval, self.ts_recent) && seq::le(r.seq, self.last_ack_sent) {
                self.ts_recent = tsval;
            }
        }
        if self.state == State::SynReceived {
            if seq::lt(self.snd_una, r.ack) && seq::le(r.ack, self.snd_max) {
                self.state = State::Established;
                self.snd_wnd = (r.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = r.seq;
                self.snd_wl2 = r.ack;
                self.clear(flag::SEND_SYN);
                self.timers.stop(Timer::Rto);
                self.backoff = 0;
                self.arm_keepalive(now, p);
                // Passive opens go to the accept queue; a simultaneous open is ours.
                n.set(if self.listener == u32::MAX {
                    Notify::CONNECTED
                } else {
                    Notify::ESTABLISHED
                });
            } else {
                c.drop(TcpDrop::BadAck);
                return Notify(Notify::SEND_RST);
            }
        }
        // RFC 5961 section 5.2: the ACK must lie in [snd_una - max window, snd_max].
        if seq::gt(r.ack, self.snd_max) {
            c.drop(TcpDrop::BadAck);
            self.set(flag::ACK_NOW);
            return Notify(n.0 | Notify::OUTPUT);
        }
        if seq::lt(r.ack, self.snd_una.wrapping_sub(self.max_snd_wnd.max(1))) {
            c.drop(TcpDrop::BadAck);
            return Notify(n.0 | Notify::CHALLENGE);
        }
        self.on_ack(now, p, c, seg, &mut n);
        if self.state == State::Closed {
            return n;
        }
        if self.state.can_receive() && !trim_all {
            self.on_data(now, p, c, seg, &mut n);
        } else if seg.repr.flags.fin() || !seg.payload.is_empty() {
            // A retransmitted FIN (or data after it): acknowledge again.
            self.set(flag::ACK_NOW);
            n.set(Notify::OUTPUT);
        }
        if p.keepalive.is_some() {
            self.arm_keepalive(now, p);
        }
        self.arm_idle(now, p);
        n
    }

    fn rtt_from_ack(&mut self, now: Instant, p: &TcpProfile, r: &TcpRepr, d: &Delivered) {
        // The send time of a segment never retransmitted is the most precise sample
        // (Karn's rule holds by construction); timestamps (millisecond ticks) and the
        // timed segment are the fallback.
        let sample = match (d.rtt_sent, self.ts_ok, r.timestamps) {
            (Some(sent), _, _) => Some(Duration::from_nanos(now.as_nanos().saturating_sub(sent))),
            (None, true, Some((_, tsecr))) if tsecr != 0 => {
                let d = self.tsval(now).wrapping_sub(tsecr);
                Some(Duration::from_millis(d as u64))
            }
            _ if self.rtt_timing && seq::gt(r.ack, self.rtt_seq) => {
                self.rtt_timing = false;
                Some(Duration::from_millis(
                    ms(now).wrapping_sub(self.rtt_sent_ms) as u64,
                ))
            }
            _ => None,
        };
        if let Some(s) = sample.filter(|s| *s < MAX_RTT_SAMPLE) {
            self.rtt.sample(s, p.min_rto, p.max_rto);
            if d.rtt_sent.is_some() {
                self.rack.sample_min_rtt(s.as_nanos() as u64);
            }
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        seg: &Segment,
        n: &mut Notify,
    ) {
        let r = &seg.repr;
        let ack = r.ack;
        let acked = seq::dist(self.snd_una, ack);
        let mut window_changed = false;
        let mut d = Delivered {
            prior_flight: self.flight(),
            ..Delivered::default()
        };
        let (dsack, blocks) = if self.sack_ok {
            split_dsack(r.sack_blocks(), ack)
        } else {
            (None, &[][..])
        };
        let mut data_acked = 0;
        if acked > 0 {
            data_acked = seq::dist(self.data_start(), ack).min(self.tx.len());
            let fin_was_acked = self.fin_acked();
            // The FIN's position moves with the data: note it before discarding.
            let fin = self.fin_seq();
            self.tx.discard(data_acked);
            self.snd_una = ack;
            if seq::lt(self.snd_nxt, self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            self.rtx.ack(ack, &mut d);
            self.backoff = 0;
            let low_water = self.send_low_water as usize;
            let drained = if low_water > 0 {
                self.unsent() <= low_water && self.tx_free() > 0
            } else {
                self.tx_free() >= self.snd_buf as usize / 4
            };
            if self.has(flag::WRITE_ARMED) && drained {
                self.clear(flag::WRITE_ARMED);
                n.set(Notify::WRITABLE);
            }
            if !fin_was_acked && fin.is_some_and(|f| seq::gt(ack, f)) {
                self.set(flag::FIN_ACKED);
                match self.state {
                    State::FinWait1 => {
                        self.state = State::FinWait2;
                        if self.has(flag::APP_CLOSED) {
                            self.timers.set(Timer::Linger, now + p.fin_wait2_timeout);
                        }
                    }
                    State::Closing => {
                        self.state = State::TimeWait;
                        n.set(Notify::CLOSED);
                    }
                    State::LastAck => {
                        self.state = State::Closed;
                        n.set(Notify::CLOSED);
                        return;
                    }
                    _ => {}
                }
            }
            n.set(Notify::OUTPUT);
        }
        if !blocks.is_empty() {
            self.rtx.sack(self.snd_una, self.snd_max, blocks, &mut d);
        }
        if acked > 0 || d.rtt_sent.is_some() {
            self.rtt_from_ack(now, p, r, &d);
        }
        if seq::lt(self.snd_wl1, r.seq) || (self.snd_wl1 == r.seq && seq::le(self.snd_wl2, ack)) {
            let w = (r.window as u32) << self.snd_wscale;
            window_changed = w != self.snd_wnd;
            if window_changed && self.snd_wnd == 0 {
                // The window reopened: leave persist.
                self.timers.stop(Timer::Persist);
                self.clear(flag::PROBE);
                self.backoff = 0;
                if self.outstanding() <= 1 && !self.rtx.is_empty() {
                    // Only a window probe was out (and was dropped): take it back and
                    // send from snd_una.
                    self.rtx.clear();
                    self.snd_nxt = self.snd_una;
                    self.snd_max = self.snd_una;
                }
            }
            self.snd_wnd = w;
            self.max_snd_wnd = self.max_snd_wnd.max(w);
            self.snd_wl1 = r.seq;
            self.snd_wl2 = ack;
            if window_changed {
                n.set(Notify::OUTPUT);
            }
        }
        let outstanding = self.outstanding() > 0;
        if acked > 0 {
            self.dupacks = 0;
        }
        // A duplicate ACK (RFC 5681 section 2), or with SACK any ACK that SACKs new data
        // (RFC 6675 section 2: the window may change as the peer reads).
        let plain_dup = seg.payload.is_empty() && !r.flags.fin() && !window_changed;
        if acked == 0 && outstanding && ack == self.snd_una && (plain_dup || d.sacked > 0) {
            self.dupacks = self.dupacks.saturating_add(1);
            if !self.recovering() {
                // Limited transmit may send new data.
                n.set(Notify::OUTPUT);
            }
        }
        self.after_ack(now, p, c, acked, data_acked, &d, dsack, n);
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Rto);
            self.timers.stop(Timer::Tlp);
            self.timers.stop(Timer::Reo);
        } else if acked > 0 {
            self.arm_rto(now, p);
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        seg: &Segment,
        n: &mut Notify,
    ) {
        let r = &seg.repr;
        let mut s = r.seq;
        let mut data = seg.payload;
        if r.flags.fin() && !self.has(flag::PEER_FIN) && !self.has_rcv_fin {
            self.rcv_fin = s.wrapping_add(data.len() as u32);
            self.has_rcv_fin = true;
        }
        if seq::lt(s, self.rcv_nxt) {
            let skip = seq::dist(s, self.rcv_nxt).min(data.len());
            if self.sack_ok && skip > 0 {
                // Its first bytes we held already: a D-SACK for them (RFC 2883 4.1.1).
                self.dsack = Some((s, s.wrapping_add(skip as u32)));
            }
            data = &data[skip..];
            s = self.rcv_nxt;
        }
        if !data.is_empty() {
            let off = seq::dist(self.rcv_nxt, s);
            let room = self.rx.free().saturating_sub(off);
            if data.len() > room {
                c.drop(TcpDrop::BeyondWindow);
                data = &data[..room];
            }
            if off == 0 {
                let w = self.rx.write_at(0, data);
                self.rx.commit(w);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(w as u32);
                c.bytes_in += w as u64;
                if !self.assembler.is_empty() {
                    if let Some(end) = self.assembler.advance(self.rcv_nxt) {
                        let extra = seq::dist(self.rcv_nxt, end);
                        self.rx.commit(extra);
                        self.rcv_nxt = end;
                        c.bytes_in += extra as u64;
                    }
                    // Filling a hole is acknowledged at once (RFC 5681 section 4.2).
                    self.set(flag::ACK_NOW);
                }
                self.unacked_bytes = self.unacked_bytes.saturating_add(w as u32);
                let full = u32::from(family_mss(p.mss, self.key.local.is_ipv6()));
                if self.unacked_bytes > full || p.delayed_ack.is_zero() {
                    self.set(flag::ACK_NOW);
                } else if !self.timers.armed(Timer::DelayedAck) {
                    self.timers.set(Timer::DelayedAck, now + p.delayed_ack);
                }
                if self.has(flag::READ_ARMED) && !self.rx.is_empty() {
                    self.clear(flag::READ_ARMED);
                    n.set(Notify::READABLE);
                }
            } else {
                let end = s.wrapping_add(data.len() as u32);
                if self.sack_ok && self.assembler.covers(s, end) {
                    // An out-of-order duplicate: a D-SACK for it, then the SACK block
                    // that holds it (RFC 2883 section 4.1.2).
                    self.dsack = Some((s, end));
                }
                let w = self.rx.write_at(off, data);
                if w > 0 && !self.assembler.add(s, s.wrapping_add(w as u32)) {
                    c.drop(TcpDrop::ReassemblyFull);
                }
                // Out of order: a duplicate ACK with SACK blocks, at once, one each.
                self.set(flag::ACK_NOW);
                self.acks_owed = self.acks_owed.saturating_add(1).min(8);
            }
        }
        if self.has_rcv_fin && !self.has(flag::PEER_FIN) && self.rcv_nxt == self.rcv_fin {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.set(flag::PEER_FIN | flag::ACK_NOW);
            n.set(Notify::PEER_CLOSED);
            match self.state {
                State::Established => self.state = State::CloseWait,
                State::FinWait1 => {
                    if self.fin_acked() {
                        self.state = State::TimeWait;
                        n.set(Notify::CLOSED);
                    } else {
                        self.state = State::Closing;
                    }
                }
                State::FinWait2 => {
                    self.state = State::TimeWait;
                    n.set(Notify::CLOSED);
                }
                _ => {}
            }
        }
        if self.has(flag::ACK_NOW) {
            n.set(Notify::OUTPUT);
        }
    }
}
