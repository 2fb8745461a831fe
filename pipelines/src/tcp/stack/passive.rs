//! Passive opens: SYNs to listeners (SYN queue, then SYN cookies), the cookie ACK,
//! TIME-WAIT tuples, and the RST for segments nobody owns.

use super::*;

impl TcpStack {
    pub(super) fn listen_input(&mut self, now: Instant, l: u32, key: ConnKey, seg: &Segment) {
        let f = seg.repr.flags;
        if f.rst() {
            return;
        }
        if f.ack() {
            if !f.syn() && self.cfg.syn_cookies {
                if let Some(idx) = self.cookie_ack(now, l, key, seg) {
                    self.deliver(now, idx, seg);
                    return;
                }
            }
            self.counters.drop(TcpDrop::NoSocket);
            self.reset_reply(key, seg);
            return;
        }
        if !f.syn() {
            self.counters.drop(TcpDrop::NoAck);
            return;
        }
        let Some(lst) = self.listeners[l as usize].as_ref() else {
            return;
        };
        let pid = lst.profile;
        if lst.accept_full() {
            self.counters.drop(TcpDrop::AcceptQueueFull);
            return;
        }
        if lst.syn_queue >= lst.syn_backlog || self.live >= self.cfg.max_connections {
            if self.cfg.syn_cookies {
                self.cookie_synack(now, l, key, seg);
            } else if self.live >= self.cfg.max_connections {
                self.counters.drop(TcpDrop::ConnectionLimit);
            } else {
                self.counters.drop(TcpDrop::SynQueueFull);
            }
            return;
        }
        let p = &self.profiles[pid as usize];
        let iss = isn::isn(&self.key, now, tuple(key.local), tuple(key.remote));
        let mut c = new_conn(&self.key, key, pid, iss, p);
        c.state = State::SynReceived;
        c.listener = l;
        c.owner = lst.owner;
        c.irs = seg.repr.seq;
        c.rcv_nxt = seg.repr.seq.wrapping_add(1);
        c.last_ack_sent = c.rcv_nxt;
        c.negotiate(&seg.repr, p);
        c.snd_wnd = seg.repr.window as u32;
        c.snd_wl1 = seg.repr.seq;
        c.last_rx_ms = ms(now);
        c.set(flag::SEND_SYN);
        if let Some(lst) = self.listeners[l as usize].as_mut() {
            lst.syn_queue += 1;
        }
        let h = self.insert(key, c);
        self.queue_output(h.idx);
    }

    pub(super) fn cookie_synack(&mut self, now: Instant, l: u32, key: ConnKey, seg: &Segment) {
        let Some(lst) = self.listeners[l as usize].as_mut() else {
            return;
        };
        lst.cookies_sent += 1;
        let p = &self.profiles[lst.profile as usize];
        let r = &seg.repr;
        let ours = crate::tcp::options::family_mss(p.mss, key.local.is_ipv6());
        let mss = r.mss.unwrap_or(crate::tcp::options::DEFAULT_MSS).min(ours);
        let cookie = isn::make_cookie(
            &self.key,
            now,
            tuple(key.local),
            tuple(key.remote),
            r.seq,
            mss,
        );
        let mut out = TcpRepr {
            src_port: key.local.port(),
            dst_port: key.remote.port(),
            seq: cookie,
            ack: r.seq.wrapping_add(1),
            flags: Flags::SYN | Flags::ACK,
            window: p.recv_buffer.min(65535) as u16,
            mss: Some(isn::COOKIE_MSS[((cookie >> 24) & 7) as usize]),
            ..TcpRepr::default()
        };
        if let (true, Some((tsval, _))) = (p.timestamps, r.timestamps) {
            // Window scale and SACK-permitted ride in the low bits of our timestamp.
            let ws = match (p.window_scaling, r.wscale) {
                (true, Some(w)) => {
                    out.wscale = Some(p.rcv_wscale());
                    w.min(14) as u32
                }
                _ => 0xf,
            };
            let sack = (p.sack && r.sack_permitted) as u32;
            out.sack_permitted = sack == 1;
            let off = isn::ts_offset(&self.key, tuple(key.local), tuple(key.remote));
            let ts = (ms(now).wrapping_add(off) & !0x1f) | ws | (sack << 4);
            out.timestamps = Some((ts, tsval));
        }
        self.counters.syn_cookies_sent += 1;
        self.push_reply(Reply {
            src: key.local.ip(),
            dst: key.remote.ip(),
            repr: out,
            rst: false,
        });
    }

    pub(super) fn cookie_ack(
        &mut self,
        now: Instant,
        l: u32,
        key: ConnKey,
        seg: &Segment,
    ) -> Option<u32> {
        let lst = self.listeners[l as usize].as_ref()?;
        if lst.cookies_sent == 0 {
            return None;
        }
        let r = &seg.repr;
        let Some(info) = isn::check_cookie(
            &self.key,
            now,
            tuple(key.local),
            tuple(key.remote),
            r.seq,
            r.ack,
        ) else {
            self.counters.drop(TcpDrop::BadCookie);
            return None;
        };
        if lst.accept_full() {
            self.counters.drop(TcpDrop::AcceptQueueFull);
            return None;
        }
        if self.live >= self.cfg.max_connections {
            self.counters.drop(TcpDrop::ConnectionLimit);
            return None;
        }
        let pid = lst.profile;
        let p = &self.profiles[pid as usize];
        let mut c = new_conn(&self.key, key, pid, info.iss, p);
        // Rebuild the SYN the cookie stands for, then negotiate as usual.
        let mut syn = TcpRepr {
            mss: Some(info.mss),
            ..TcpRepr::default()
        };
        if let Some((tsval, tsecr)) = r.timestamps {
            syn.timestamps = Some((tsval, 0));
            let ws = tsecr & 0xf;
            syn.wscale = (ws != 0xf).then_some(ws as u8);
            syn.sack_permitted = tsecr & 0x10 != 0;
        }
        c.negotiate(&syn, p);
        c.state = State::SynReceived;
        c.listener = l;
        c.owner = lst.owner;
        c.irs = info.irs;
        c.rcv_nxt = info.irs.wrapping_add(1);
        c.last_ack_sent = c.rcv_nxt;
        c.rcv_adv = c.rcv_nxt.wrapping_add(p.recv_buffer.min(65535) as u32);
        c.snd_nxt = info.iss.wrapping_add(1);
        c.snd_max = c.snd_nxt;
        c.snd_wl1 = info.irs;
        c.set(flag::FROM_COOKIE);
        self.counters.syn_cookies_validated += 1;
        let h = self.insert(key, c);
        Some(h.idx)
    }

    /// Handles a segment for a TIME-WAIT tuple; returns true if it should go on to the
    /// listener (a new SYN reusing the tuple, RFC 6191).
    pub(super) fn time_wait_input(&mut self, now: Instant, key: ConnKey, seg: &Segment) -> bool {
        let Some(&e) = self.time_wait.get(&key) else {
            return true;
        };
        let f = seg.repr.flags;
        if f.rst() {
            // RFC 1337: ignore RSTs in TIME-WAIT.
            return false;
        }
        if f.syn() && !f.ack() {
            let newer_ts = match (e.ts_recent, seg.repr.timestamps) {
                (Some(old), Some((v, _))) => seq::gt(v, old),
                _ => false,
            };
            if seq::gt(seg.repr.seq, e.rcv_nxt) || newer_ts {
                self.time_wait.remove(&key);
                return true;
            }
        }
        if f.fin() || !seg.payload.is_empty() || f.syn() {
            let d = self.profiles[e.profile as usize].time_wait;
            if f.fin() {
                self.time_wait.restart(&key, now + d);
            }
            let mut r = TcpRepr {
                src_port: key.local.port(),
                dst_port: key.remote.port(),
                seq: e.snd_nxt,
                ack: e.rcv_nxt,
                flags: Flags::ACK,
                ..TcpRepr::default()
            };
            if let Some(ts) = e.ts_recent {
                r.timestamps = Some((ms(now).wrapping_add(e.ts_offset), ts));
            }
            self.push_reply(Reply {
                src: key.local.ip(),
                dst: key.remote.ip(),
                repr: r,
                rst: false,
            });
        }
        false
    }

    pub(super) fn reset_reply(&mut self, key: ConnKey, seg: &Segment) {
        let r = &seg.repr;
        if r.flags.rst() {
            return;
        }
        let mut out = TcpRepr {
            src_port: key.local.port(),
            dst_port: key.remote.port(),
            flags: Flags::RST,
            ..TcpRepr::default()
        };
        if r.flags.ack() {
            out.seq = r.ack;
        } else {
            out.flags |= Flags::ACK;
            out.ack = r.seq.wrapping_add(seg.len() as u32);
        }
        self.push_reply(Reply {
            src: key.local.ip(),
            dst: key.remote.ip(),
            repr: out,
            rst: true,
        });
    }
}
