//! The life of a connection around its inputs: applying what it reported (events,
//! queues, TIME-WAIT, release) and its buffers, allocated with data and given back
//! when drained.

use super::*;

impl TcpStack {
    /// Applies what an input or timer reported: events, queues, state moves, release.
    pub(super) fn finish(&mut self, now: Instant, idx: u32, n: Notify) {
        let h = self.handle_of(idx);
        if n.has(Notify::CHALLENGE) && self.challenge_allowed(now) {
            self.counters.challenge_acks += 1;
            if let Some(c) = self.conn_mut(h) {
                c.set(flag::ACK_NOW);
            }
            self.queue_output(idx);
        }
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        if n.has(Notify::ABORT_RST) {
            let r = rst_for(c);
            c.state = State::Closed;
            self.conn_replies.push_back(r);
        }
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        let owned = c.has(flag::APP_OWNED);
        let o = c.owner;
        if n.has(Notify::ESTABLISHED) {
            if let Some(Some(l)) = self.listeners.get_mut(c.listener as usize) {
                if !c.has(flag::FROM_COOKIE) {
                    l.syn_queue = l.syn_queue.saturating_sub(1);
                }
                l.accept_queue.push_back(h);
                self.events
                    .push_back((l.owner, Event::Accepted(ListenerHandle(c.listener))));
            }
            c.listener = u32::MAX;
            self.counters.passive_opens += 1;
        }
        if c.has(flag::FIN_QUEUED) && c.state == State::Established {
            // Shut down before the handshake completed: the FIN goes now.
            c.state = State::FinWait1;
        }
        if c.has(flag::APP_CLOSED) && n.has(Notify::READABLE) {
            // Data for an application that closed: reset (RFC 9293 section 3.10.4).
            let r = rst_for(c);
            c.state = State::Closed;
            self.conn_replies.push_back(r);
            self.counters.aborted += 1;
        }
        let reset = if n.has(Notify::RESET) {
            Some(ResetReason::Peer)
        } else if n.has(Notify::REFUSED) {
            Some(ResetReason::Refused)
        } else if n.has(Notify::TIMED_OUT) {
            Some(ResetReason::TimedOut)
        } else {
            None
        };
        if owned {
            if n.has(Notify::CONNECTED) {
                self.events.push_back((o, Event::Connected(h)));
            }
            if n.has(Notify::READABLE) {
                self.events.push_back((o, Event::Readable(h)));
            }
            if n.has(Notify::WRITABLE) {
                self.events.push_back((o, Event::Writable(h)));
            }
            if n.has(Notify::PEER_CLOSED) {
                self.events.push_back((o, Event::PeerClosed(h)));
            }
        }
        if let Some(why) = reset {
            self.counters.aborted += 1;
            if owned {
                self.events.push_back((o, Event::Reset(h, why)));
            }
        } else if n.has(Notify::CLOSED) {
            self.counters.closed += 1;
            if owned {
                self.events.push_back((o, Event::Closed(h)));
            }
        }
        if n.has(Notify::OUTPUT) {
            self.queue_output(idx);
        }
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        match c.state {
            State::TimeWait => {
                let p = &self.profiles[c.profile as usize];
                let e = TimeWaitEntry {
                    snd_nxt: c.snd_max,
                    rcv_nxt: c.rcv_nxt,
                    ts_recent: c.ts_ok.then_some(c.ts_recent),
                    ts_offset: c.ts_offset,
                    profile: c.profile,
                    expires: now + p.time_wait,
                };
                let key = c.key;
                // The final ACK must still go out: the TIME-WAIT table answers from now on.
                let mut ack = TcpRepr {
                    src_port: key.local.port(),
                    dst_port: key.remote.port(),
                    seq: c.snd_max,
                    ack: c.rcv_nxt,
                    flags: Flags::ACK,
                    window: c.adv_window(),
                    ..TcpRepr::default()
                };
                if c.ts_ok {
                    ack.timestamps = Some((c.tsval(now), c.ts_recent));
                }
                let need_ack = c.has(flag::ACK_NOW);
                c.state = State::Closed;
                if need_ack {
                    self.conn_replies.push_back(Reply {
                        src: key.local.ip(),
                        dst: key.remote.ip(),
                        repr: ack,
                        rst: false,
                    });
                }
                if self.time_wait.insert(key, e) {
                    self.counters.time_wait_recycled += 1;
                }
                self.finish_closed(idx, reset.is_some());
            }
            State::Closed => self.finish_closed(idx, reset.is_some()),
            _ => {
                self.release_idle_buffers(idx);
                self.sync_timer(idx);
            }
        }
    }

    pub(super) fn finish_closed(&mut self, idx: u32, reset: bool) {
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        let key = c.key;
        if self.map.get(&key) == Some(&idx) {
            self.map.remove(&key);
        }
        if c.listener != u32::MAX {
            // Died half-open.
            if let Some(Some(l)) = self.listeners.get_mut(c.listener as usize) {
                if !c.has(flag::FROM_COOKIE) {
                    l.syn_queue = l.syn_queue.saturating_sub(1);
                }
            }
            c.listener = u32::MAX;
        }
        c.timers.stop_all();
        if let Some((id, _)) = c.wheel.take() {
            self.wheel.cancel(id);
        }
        if reset || !c.has(flag::APP_OWNED) {
            self.release(idx);
        }
    }

    pub(super) fn release(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let Some(mut c) = slot.conn.take() else {
            return;
        };
        slot.gen = slot.gen.wrapping_add(1);
        if self.map.get(&c.key) == Some(&idx) {
            self.map.remove(&c.key);
        }
        if let Some((id, _)) = c.wheel.take() {
            self.wheel.cancel(id);
        }
        for b in [c.tx.take_storage(), c.rx.take_storage()] {
            self.put_spare(b);
        }
        self.live -= 1;
        self.free_slots.push(idx);
    }

    /// Allocates a connection's receive or send ring if it has none; false when the
    /// memory limit forbids it.
    pub(super) fn ensure_buffer(&mut self, idx: u32, which: Buf) -> bool {
        let Some(c) = self.slots[idx as usize].conn.as_ref() else {
            return false;
        };
        let (have, n) = match which {
            Buf::Rx => (c.rx.capacity(), c.rcv_buf as usize),
            Buf::Tx => (c.tx.capacity(), c.snd_buf as usize),
        };
        if have > 0 {
            return true;
        }
        if n == 0 || self.buffer_bytes + n > self.cfg.max_buffer_bytes {
            return false;
        }
        let ring = match self
            .spare
            .iter_mut()
            .find(|(size, _)| *size == n)
            .and_then(|(_, v)| v.pop())
        {
            Some(b) => RingBuffer::from_storage(b),
            None => RingBuffer::new(n),
        };
        self.buffer_bytes += n;
        self.counters.buffer_bytes = self.buffer_bytes as u64;
        if let Some(c) = self.slots[idx as usize].conn.as_mut() {
            match which {
                Buf::Rx => c.rx = ring,
                Buf::Tx => {
                    c.tx = ring;
                    // The retransmission queue's records come with the send buffer, so
                    // sending never allocates.
                    let n = c.rtx_limit() + 8;
                    c.rtx.reserve(n);
                }
            }
        }
        true
    }

    /// Gives back the rings of a connection that holds no data in them, so an idle
    /// connection costs only its control block.
    pub(super) fn release_idle_buffers(&mut self, idx: u32) {
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        let rx = (c.rx.capacity() > 0 && c.rx.is_empty() && c.assembler.is_empty())
            .then(|| c.rx.take_storage());
        let tx = (c.tx.capacity() > 0 && c.tx.is_empty()).then(|| c.tx.take_storage());
        if tx.is_some() {
            c.rtx.shrink();
        }
        for b in [rx, tx].into_iter().flatten() {
            self.put_spare(b);
        }
    }

    pub(super) fn put_spare(&mut self, b: Box<[u8]>) {
        if b.is_empty() {
            return;
        }
        self.buffer_bytes -= b.len();
        self.counters.buffer_bytes = self.buffer_bytes as u64;
        let n = b.len();
        match self.spare.iter_mut().find(|(size, _)| *size == n) {
            Some((_, v)) => {
                if v.len() < SPARE_BUFFERS {
                    v.push(b);
                }
            }
            None => self.spare.push((n, vec![b])),
        }
    }
}
