//! What a connection sends next: SYN / SYN-ACK, tail loss probes, retransmissions of the
//! segments deemed lost (RFC 6675 NextSeg, in fast recovery or after a timeout), new
//! data within the peer's and the congestion window with Nagle and sender SWS
//! avoidance, FIN, window probes and ACKs (with D-SACK and SACK blocks).
//!
//! Pacing (for a congestion control with a pacing rate, BBR): data and retransmissions
//! leave no earlier than `pace_next`; each segment sent moves it on by its length at the
//! pacing rate. A sender that was idle or woken late may catch up by at most one burst
//! ([`super::congestion::Congestion::pacing_burst`]: about a millisecond of data, at
//! most 64 KiB, as Linux sizes its TSO bursts), never more. A connection held back by
//! pacing waits in the stack's pacing queue, whose earliest time joins
//! [`super::TcpStack::poll_timeout`]. Pure ACKs, window probes and tail loss probes are
//! not paced.

use super::config::TcpProfile;
use super::counters::TcpCounters;
use super::rtx::mark;
use super::seq;
use super::state::{flag, Connection, State};
use super::timers::{ms, Timer};
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpRepr, MAX_SACK_BLOCKS};

/// Segments of window left to the peer below which a window that reading opened is
/// announced at once, in a pure ACK ([`Connection::window_update_due`]). Four: a peer
/// with at least that much room can send two full segments, which earn an immediate
/// ACK carrying the new window.
pub const WINDOW_UPDATE_BELOW: usize = 4;

/// Why a retransmission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Fast recovery: RACK, duplicate ACKs or a partial ACK deemed it lost.
    Fast,
    /// After a retransmission timeout.
    Timeout,
    /// A tail loss probe resending the last segment.
    Probe,
}

/// Which rule picked a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Retransmission of the record at this index of the queue.
    Repair(usize, Why),
    /// New data from `snd_nxt` (`true`: as a tail loss probe).
    Next(bool),
    /// No data: an ACK (or a keepalive) only.
    Ack,
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

        self.pace_blocked = false;
        let picked = self.pick(now, p);
        let (s, mut len, fin, how) = match picked {
            Some(x) => x,
            None => {
                self.check_app_limited();
                if self.has(flag::KEEPALIVE) {
                    self.clear(flag::KEEPALIVE);
                    // Keepalive: one byte before snd_una, answered with an ACK.
                    (self.snd_una.wrapping_sub(1), 0, false, Pick::Ack)
                } else if self.has(flag::ACK_NOW) {
                    (self.snd_max, 0, false, Pick::Ack)
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
        if self.sack_ok && (self.dsack.is_some() || !self.assembler.is_empty()) {
            let max = if self.ts_ok {
                MAX_SACK_BLOCKS - 1
            } else {
                MAX_SACK_BLOCKS
            };
            if let Some(b) = self.dsack.take() {
                // A D-SACK goes first, once (RFC 2883 section 4).
                r.sack[0] = b;
                r.sack_len = 1;
                c.dsacks_sent += 1;
            }
            for &b in self.assembler.ranges().iter() {
                if r.sack_len as usize == max {
                    break;
                }
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
        let now_ns = now.as_nanos();
        if len > 0 || fin {
            let nothing_out = self.rtx.is_empty();
            if nothing_out {
                self.cc.on_tx_start(now, &self.rate, self.rtt.srtt());
            }
            let rate = self.rate.on_send(now_ns, nothing_out);
            self.pace_sent(now_ns, len + fin as usize, how);
            match how {
                Pick::Repair(i, why) => {
                    if self.rtx.get(i).is_some_and(|x| seq::lt(end, x.end)) {
                        // Sent shorter than the record (options took room): split it.
                        self.rtx.split(i, end);
                    }
                    self.rtx.retransmitted(i, now_ns, why != Why::Probe, rate);
                    c.retransmits += 1;
                    match why {
                        Why::Fast => c.retransmits_fast += 1,
                        Why::Timeout => c.retransmits_rto += 1,
                        Why::Probe => {
                            c.retransmits_tlp += 1;
                            c.tlp_probes += 1;
                            self.tlp.end = Some(self.snd_max);
                            self.tlp.is_retrans = true;
                            self.tlp.probes += 1;
                            self.tlp.last = Some((s, end));
                            self.arm_rto(now, p);
                            self.arm_tlp(now, p);
                        }
                    }
                    if why != Why::Probe && self.undo.active {
                        self.undo.retrans += 1;
                    }
                }
                Pick::Next(probe) => {
                    self.rtx.push(s, end, now_ns, fin, rate);
                    if seq::gt(end, self.snd_nxt) {
                        self.snd_nxt = end;
                    }
                    if seq::gt(end, self.snd_max) {
                        self.snd_max = end;
                    }
                    if probe {
                        c.tlp_probes += 1;
                        self.tlp.end = Some(self.snd_max);
                        self.tlp.is_retrans = false;
                        self.tlp.probes += 1;
                        self.arm_rto(now, p);
                        self.arm_tlp(now, p);
                    }
                }
                Pick::Ack => {}
            }
            if self.has(flag::RECOVERY) {
                self.prr.on_sent(len + fin as usize);
            }
            if !self.timers.armed(Timer::Rto) {
                self.arm_rto(now, p);
            }
            if matches!(how, Pick::Next(false) | Pick::Repair(_, Why::Fast)) {
                self.arm_tlp(now, p);
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
        self.unacked_bytes = 0;
        self.last_ack_sent = self.rcv_nxt;
        Some(total)
    }

    /// Moves the pacing clock on for `len` bytes just sent at `now` (ns): by their length
    /// at the pacing rate, from no earlier than one burst's worth before `now` (the
    /// catch-up a late sender may take). Probes do not count.
    fn pace_sent(&mut self, now: u64, len: usize, how: Pick) {
        let Some(rate) = self.cc.pacing_rate() else {
            return;
        };
        if matches!(how, Pick::Repair(_, Why::Probe) | Pick::Next(true)) {
            return;
        }
        let ns = |bytes: usize| (bytes as u128 * 1_000_000_000 / rate as u128) as u64;
        let burst = self.cc.pacing_burst();
        let credit = ns(burst.saturating_sub(self.mss as usize));
        let base = self.pace_next.max(now.saturating_sub(credit));
        self.pace_next = base + ns(len);
    }

    /// True when pacing holds data back at `now`.
    #[inline]
    fn paced_out(&self, now: Instant) -> bool {
        self.pace_next > now.as_nanos() && self.cc.pacing_rate().is_some()
    }

    /// The sender ran dry: less than a segment unsent, room in the window, nothing to
    /// repair, not held by pacing. Rate samples taken until what is in flight now is
    /// delivered say more about the application than the path (Linux
    /// `tcp_rate_check_app_limited`).
    fn check_app_limited(&mut self) {
        if self.pace_blocked || !self.state.synchronized() {
            return;
        }
        let flight = self.flight();
        if self.unsent() < self.mss as usize
            && flight < self.cc.cwnd()
            && self.rtx.next_lost().is_none()
        {
            self.rate.mark_app_limited(flight as u64);
        }
    }

    /// Most records the retransmission queue may hold: new data waits beyond it.
    pub fn rtx_limit(&self) -> usize {
        (2 * self.snd_buf as usize / (self.mss as usize).max(1)).clamp(64, 16384)
    }

    /// A tail loss probe: the last segment not SACKed, sent again; one new segment
    /// only when every segment out is SACKed (RFC 8985 section 7.3 prefers new data;
    /// see the module comment of `rack` for why a retransmission is the better probe).
    fn pick_probe(&mut self) -> Option<(u32, usize, bool, Pick)> {
        if let Some(i) = (0..self.rtx.len())
            .rev()
            .find(|&i| self.rtx.get(i).is_some_and(|r| !r.has(mark::SACKED)))
        {
            let r = *self.rtx.get(i)?;
            let fin = r.has(mark::FIN);
            return Some((
                r.start,
                r.len() - fin as usize,
                fin,
                Pick::Repair(i, Why::Probe),
            ));
        }
        let mss = self.mss as usize;
        let s = self.snd_nxt;
        let avail = seq::dist(s, self.data_end());
        let wnd_left = seq::dist(s, self.snd_una.wrapping_add(self.snd_wnd));
        let len = avail.min(mss).min(wnd_left);
        if len > 0 && self.rtx.len() < self.rtx_limit() {
            let fin = self.fin_seq() == Some(s.wrapping_add(len as u32));
            return Some((s, len, fin, Pick::Next(true)));
        }
        None
    }

    /// Chooses the next data segment: (seq, payload length, FIN, rule). Segments deemed
    /// lost go first (RFC 6675 NextSeg rule 1), then new data (rule 2), both within the
    /// congestion window (set by PRR during fast recovery).
    fn pick(&mut self, now: Instant, p: &TcpProfile) -> Option<(u32, usize, bool, Pick)> {
        let mss = self.mss as usize;
        let data_end = self.data_end();
        let fin_seq = self.fin_seq();
        let fin_at = |x: u32| fin_seq == Some(x);

        if self.has(flag::TLP_PROBE) {
            self.clear(flag::TLP_PROBE);
            if let Some(x) = self.pick_probe() {
                return Some(x);
            }
        }
        let flight = self.flight();
        if self.paced_out(now) && !self.has(flag::PROBE) {
            // Something to send? Then wait for the pacing time.
            let new_data = seq::lt(self.snd_nxt, data_end)
                || fin_seq.is_some_and(|f| seq::ge(f, self.snd_nxt));
            let has_data = (self.rtx.next_lost().is_some() || new_data) && flight < self.cc.cwnd();
            self.pace_blocked = has_data;
            return None;
        }
        if let Some(i) = self.rtx.next_lost() {
            if flight < self.cc.cwnd() || self.has(flag::PROBE) {
                let r = *self.rtx.get(i)?;
                let fin = r.has(mark::FIN);
                let why = if self.has(flag::LOSS) {
                    Why::Timeout
                } else {
                    Why::Fast
                };
                self.clear(flag::PROBE);
                return Some((r.start, r.len() - fin as usize, fin, Pick::Repair(i, why)));
            }
        }

        let s = self.snd_nxt;
        let avail = seq::dist(s, data_end);
        let probe = self.has(flag::PROBE);
        let wnd_left = if probe && self.snd_wnd == 0 {
            1
        } else {
            seq::dist(s, self.snd_una.wrapping_add(self.snd_wnd))
        };
        // Limited transmit (RFC 3042): the first two duplicate ACKs may each send one
        // new segment, so a small window still gets three duplicates back. With SACK
        // the SACKed bytes leave the pipe, which does the same.
        let limited = if self.recovering() || self.sack_ok {
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
        if self.rtx.len() >= self.rtx_limit() {
            len = 0;
        }
        let fin = fin_at(s.wrapping_add(len as u32))
            && len == avail
            && cwnd_left > 0
            && seq::ge(s, self.snd_max);
        if len == 0 && !fin {
            return None;
        }
        if !probe && !fin && len < mss {
            if len < avail && (len as u32) < self.max_snd_wnd / 2 {
                // Sender silly window avoidance (RFC 9293 section 3.8.6.2.1).
                return None;
            }
            if len == avail && p.nagle && self.outstanding() > 0 {
                return None;
            }
            if len == avail && self.timers.armed(Timer::Cork) {
                // Corked: the application has more of this message coming.
                return None;
            }
        }
        self.clear(flag::PROBE);
        if self.outstanding() == 0 {
            let idle = ms(now).wrapping_sub(self.last_tx_ms) as u64;
            if idle > self.rtt.rto().as_millis() as u64 && self.last_tx_ms != 0 {
                self.cc.on_idle_restart(p.initial_cwnd * mss);
            }
        }
        Some((s, len, fin, Pick::Next(false)))
    }

    fn maybe_arm_persist(&mut self, now: Instant, p: &TcpProfile) {
        let unsent = seq::dist(self.snd_nxt, self.data_end()) > 0;
        if unsent
            && self.outstanding() == 0
            && !self.timers.armed(Timer::Persist)
            && !self.timers.armed(Timer::Rto)
            && !self.timers.armed(Timer::Cork)
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

    /// True when reading opened the window enough to be worth announcing on its own,
    /// in a segment without data: the window grew by at least two segments (or half
    /// the buffer) and what the peer may still send is under
    /// [`WINDOW_UPDATE_BELOW`] segments. A peer with more room than that sends on, and
    /// the ACKs its data earns (every second segment) carry the wider window; only a
    /// nearly closed window (after backpressure, or a reader that fell behind) needs a
    /// segment of its own. So the read of a request that follows the handshake (whose
    /// SYN-ACK could offer at most 64 KiB) costs no extra frame: the response carries
    /// the window.
    pub fn window_update_due(&self) -> bool {
        let promised = seq::dist(self.rcv_nxt, self.rcv_adv);
        let free = self.rx_free();
        let mss = self.mss as usize;
        free > promised
            && free - promised >= (self.rcv_buf as usize / 2).min(2 * mss)
            && promised < WINDOW_UPDATE_BELOW * mss
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
        !self.has(flag::ACK_NOW | flag::TLP_PROBE | flag::PROBE | flag::KEEPALIVE | flag::SEND_SYN)
            && seq::dist(self.snd_nxt, self.data_end()) == 0
            && self.rtx.next_lost().is_none()
    }
}
