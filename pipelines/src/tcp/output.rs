//! What a connection sends next: SYN / SYN-ACK, retransmissions (NewReno, SACK holes
//! per RFC 6675 NextSeg, go-back-N after a timeout), new data within the peer's and the
//! congestion window with Nagle and sender SWS avoidance, FIN, probes and ACKs.

use super::config::TcpProfile;
use super::counters::TcpCounters;
use super::seq;
use super::state::{flag, Connection, State};
use super::timers::{ms, Timer};
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpRepr, MAX_SACK_BLOCKS};

/// Which rule picked a data segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Retransmission that leaves `snd_nxt` alone (fast retransmit, SACK hole).
    Repair,
    /// From `snd_nxt` (new data, or go-back-N after a timeout).
    Next,
}

impl Connection {
    /// Writes the next segment this connection wants to send into `buf` (a whole TCP
    /// segment with the checksum filled) and returns its length, or `None`.
    pub fn poll_segment(
        &mut self,
        now: Instant,
        p: &TcpProfile,
        c: &mut TcpCounters,
        buf: &mut [u8],
    ) -> Option<usize> {
        let mut r = TcpRepr {
            src_port: self.key.local.port(),
            dst_port: self.key.remote.port(),
            ..TcpRepr::default()
        };
        match self.state {
            State::Closed | State::TimeWait => return None,
            State::SynSent | State::SynReceived => {
                if !self.has(flag::SEND_SYN) {
                    return None;
                }
                let synack = self.state == State::SynReceived;
                r.flags = Flags::SYN;
                r.seq = self.iss;
                if synack {
                    r.flags |= Flags::ACK;
                    r.ack = self.rcv_nxt;
                }
                self.syn_options(&mut r, p, now, synack);
                let wnd = self.rx_free();
                r.window = wnd.min(65535) as u16;
                self.rcv_adv = self.rcv_nxt.wrapping_add(r.window as u32);
                let len = r.emit(
                    buf.get_mut(..r.header_len())?,
                    self.ip_local(),
                    self.ip_remote(),
                )?;
                self.clear(flag::SEND_SYN | flag::ACK_NOW);
                if self.snd_max != self.iss {
                    c.retransmits += 1;
                } else {
                    self.rtt_timing = true;
                    self.rtt_seq = self.iss;
                    self.rtt_sent_ms = ms(now);
                }
                self.snd_nxt = self.iss.wrapping_add(1);
                self.snd_max = self.snd_nxt;
                if !self.timers.armed(Timer::Rto) {
                    self.arm_rto(now, p);
                }
                c.segments_out += 1;
                return Some(len);
            }
            _ => {}
        }

        let picked = self.pick(now, p);
        let (s, mut len, fin, how) = match picked {
            Some(x) => x,
            None => {
                if self.has(flag::KEEPALIVE) {
                    self.clear(flag::KEEPALIVE);
                    // Keepalive: one byte before snd_una, answered with an ACK.
                    (self.snd_una.wrapping_sub(1), 0, false, Pick::Repair)
                } else if self.has(flag::ACK_NOW) {
                    (self.snd_max, 0, false, Pick::Repair)
                } else {
                    self.maybe_arm_persist(now, p);
                    return None;
                }
            }
        };
        r.seq = s;
        r.ack = self.rcv_nxt;
        r.flags = Flags::ACK;
        if fin {
            r.flags |= Flags::FIN;
        }
        r.window = self.adv_window();
        if self.ts_ok {
            r.timestamps = Some((self.tsval(now), self.ts_recent));
        }
        if self.sack_ok && !self.assembler.is_empty() {
            let max = if self.ts_ok {
                MAX_SACK_BLOCKS - 1
            } else {
                MAX_SACK_BLOCKS
            };
            for &b in self.assembler.ranges().iter().take(max) {
                r.sack[r.sack_len as usize] = b;
                r.sack_len += 1;
            }
        }
        let hl = r.header_len();
        // Options beyond timestamps (SACK blocks) come out of the payload, so the
        // segment never exceeds the negotiated size.
        let ts_len = if self.ts_ok { 12 } else { 0 };
        let room = (self.mss as usize + ts_len).saturating_sub(r.options_len());
        let cut = len.min(room).min(buf.len().saturating_sub(hl));
        if cut < len {
            len = cut;
            r.flags = Flags::ACK;
        }
        if len > 0 && s.wrapping_add(len as u32) == self.data_end() {
            r.flags |= Flags::PSH;
        }
        let off = seq::dist(self.data_start(), s);
        let copied = self.tx.peek(off, &mut buf[hl..hl + len]);
        debug_assert_eq!(copied, len);
        let total = r.emit(buf.get_mut(..hl + len)?, self.ip_local(), self.ip_remote())? + len;

        // Book-keeping for what was just sent.
        let fin = r.flags.fin();
        let end = s.wrapping_add(len as u32 + fin as u32);
        let retx = seq::lt(s, self.snd_max) && (len > 0 || fin);
        if how == Pick::Repair && len > 0 {
            self.high_rxt = seq::max(self.high_rxt, s.wrapping_add(len as u32));
        }
        if how == Pick::Next && seq::gt(end, self.snd_nxt) {
            self.snd_nxt = end;
        }
        if seq::gt(end, self.snd_max) {
            self.snd_max = end;
        }
        if len > 0 || fin {
            if retx {
                c.retransmits += 1;
            } else if !self.rtt_timing && !self.ts_ok {
                self.rtt_timing = true;
                self.rtt_seq = s;
                self.rtt_sent_ms = ms(now);
            }
            if !self.timers.armed(Timer::Rto) {
                self.arm_rto(now, p);
            }
            self.last_tx_ms = ms(now);
        }
        c.segments_out += 1;
        c.bytes_out += len as u64;
        self.clear(flag::ACK_NOW);
        self.acks_owed = self.acks_owed.saturating_sub(1);
        if self.acks_owed > 0 {
            self.set(flag::ACK_NOW);
        }
        self.timers.stop(Timer::DelayedAck);
        self.unacked_segs = 0;
        self.last_ack_sent = self.rcv_nxt;
        Some(total)
    }

    /// Chooses the next data segment: (seq, payload length, FIN, rule).
    fn pick(&mut self, now: Instant, p: &TcpProfile) -> Option<(u32, usize, bool, Pick)> {
        let mss = self.mss as usize;
        let data_end = self.data_end();
        let fin_seq = self.fin_seq();
        let fin_at = |x: u32| fin_seq == Some(x);

        if self.has(flag::RETX_UNA) {
            self.clear(flag::RETX_UNA);
            if self.outstanding() > 0 {
                let s = self.snd_una;
                let mut len = seq::dist(s, data_end).min(mss);
                if let Some(b) = self.scoreboard.next_sacked(s) {
                    len = len.min(seq::dist(s, b));
                }
                let fin = fin_at(s.wrapping_add(len as u32)) && seq::gt(self.snd_max, data_end);
                if len > 0 || fin {
                    return Some((s, len, fin, Pick::Repair));
                }
            }
        }

        if self.has(flag::RECOVERY) && self.sack_ok {
            let room = self.cc.cwnd().saturating_sub(self.flight());
            if room > 0 {
                let from = seq::max(self.snd_una, self.high_rxt);
                match self.scoreboard.next_hole(from) {
                    Some((hs, he)) => {
                        let len = seq::dist(hs, he).min(mss).min(seq::dist(hs, data_end));
                        if len > 0 {
                            return Some((hs, len, false, Pick::Repair));
                        }
                    }
                    None if !self.has(flag::RXT_PASS_DONE) => {
                        self.set(flag::RXT_PASS_DONE);
                        self.rxt_pass_end = self.snd_max;
                    }
                    None => {}
                }
            }
        }

        // Going back N after a timeout skips what the peer SACKed.
        while seq::lt(self.snd_nxt, self.snd_max) {
            match self.scoreboard.sacked_end(self.snd_nxt) {
                Some(e) => self.snd_nxt = e,
                None => break,
            }
        }
        let s = self.snd_nxt;
        let retx = seq::lt(s, self.snd_max);
        let avail = seq::dist(s, data_end);
        let probe = self.has(flag::PROBE);
        let wnd_left = if probe && self.snd_wnd == 0 {
            1
        } else {
            seq::dist(s, self.snd_una.wrapping_add(self.snd_wnd))
        };
        let flight = self.flight();
        // Limited transmit (RFC 3042): the first two duplicate ACKs may each send one
        // new segment, so a small window still gets three duplicates back.
        let limited = if self.has(flag::RECOVERY) {
            0
        } else {
            self.dupacks.min(2) as usize * mss
        };
        let cwnd_left = if probe {
            mss
        } else {
            (self.cc.cwnd() + limited).saturating_sub(flight)
        };
        let mut len = avail.min(mss).min(wnd_left).min(cwnd_left);
        if retx {
            if let Some(b) = self.scoreboard.next_sacked(s) {
                len = len.min(seq::dist(s, b));
            }
        }
        let fin = fin_at(s.wrapping_add(len as u32)) && len == avail && cwnd_left > 0;
        if len == 0 && !fin {
            return None;
        }
        if !retx && !probe && !fin && len < mss {
            if len < avail && (len as u32) < self.max_snd_wnd / 2 {
                // Sender silly window avoidance (RFC 9293 section 3.8.6.2.1).
                return None;
            }
            if len == avail && p.nagle && self.outstanding() > 0 {
                return None;
            }
        }
        self.clear(flag::PROBE);
        if !retx && self.outstanding() == 0 {
            let idle = ms(now).wrapping_sub(self.last_tx_ms) as u64;
            if idle > self.rtt.rto().as_millis() as u64 && self.last_tx_ms != 0 {
                self.cc.on_idle_restart(p.initial_cwnd * mss);
            }
        }
        Some((s, len, fin, Pick::Next))
    }

    fn maybe_arm_persist(&mut self, now: Instant, p: &TcpProfile) {
        let unsent = seq::dist(self.snd_nxt, self.data_end()) > 0;
        if unsent
            && self.outstanding() == 0
            && !self.timers.armed(Timer::Persist)
            && !self.timers.armed(Timer::Rto)
            && self.state.synchronized()
        {
            let wait = self.rto_backed_off(p);
            self.timers.set(Timer::Persist, now + wait);
        }
    }

    /// The window field to send, avoiding silly window advertisements (RFC 9293
    /// section 3.8.6.2.2) and never moving the right edge back; records the new edge.
    pub fn adv_window(&mut self) -> u16 {
        let promised = seq::dist(self.rcv_nxt, self.rcv_adv);
        let free = self.rx_free();
        let step = (self.rcv_buf as usize / 2).min(self.mss as usize).max(1);
        let w = if free > promised && free - promised < step {
            promised
        } else {
            free.max(promised)
        };
        let scaled = (w >> self.rcv_wscale).min(65535);
        let edge = self
            .rcv_nxt
            .wrapping_add((scaled << self.rcv_wscale) as u32);
        if seq::gt(edge, self.rcv_adv) {
            self.rcv_adv = edge;
        }
        scaled as u16
    }

    /// True when reading opened the window enough to be worth announcing.
    pub fn window_update_due(&self) -> bool {
        let promised = seq::dist(self.rcv_nxt, self.rcv_adv);
        let free = self.rx_free();
        free > promised && free - promised >= (self.rcv_buf as usize / 2).min(2 * self.mss as usize)
    }

    /// Our IP address.
    pub fn ip_local(&self) -> std::net::IpAddr {
        self.key.local.ip()
    }

    /// The peer's IP address.
    pub fn ip_remote(&self) -> std::net::IpAddr {
        self.key.remote.ip()
    }

    /// True if the connection has nothing it could send right now without new input.
    pub fn idle_output(&self) -> bool {
        !self.has(flag::ACK_NOW | flag::RETX_UNA | flag::PROBE | flag::KEEPALIVE | flag::SEND_SYN)
            && seq::dist(self.snd_nxt, self.data_end()) == 0
    }
}
