//! In-place access to a connection's buffers, for applications that relay bytes or
//! decrypt and encrypt them where they lie (the proxy, TLS): the received bytes as
//! slices and [`TcpStack::consume`], the send buffer's free space as a slice and
//! [`TcpStack::send_commit`], and [`TcpStack::relay`], which moves bytes from one
//! connection's receive buffer into another's send buffer with a single copy.
//!
//! Each has the same effects as [`TcpStack::read`] / [`TcpStack::write`] (window
//! updates, `Readable` / `Writable` re-arming, buffers given back when idle, the memory
//! limit), so applications can mix them freely.

use super::*;
use crate::tcp::ring;

impl TcpStack {
    /// The received in-order bytes not consumed yet, without copying: the second slice
    /// is non-empty only when they wrap. Follow with [`TcpStack::consume`].
    pub fn recv_slices(&self, h: ConnHandle) -> Result<(&[u8], &[u8]), TcpError> {
        let c = self.connection(h).ok_or(TcpError::InvalidHandle)?;
        Ok(c.rx.as_slices())
    }

    /// Removes `n` bytes seen through [`TcpStack::recv_slices`], as a read of them
    /// would; returns the count (at most what is held). Consuming everything re-arms
    /// the `Readable` event.
    pub fn consume(&mut self, h: ConnHandle, n: usize) -> Result<usize, TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        let n = c.rx.consume(n);
        self.after_read(h);
        Ok(n)
    }

    /// Up to `n` contiguous bytes of free send-buffer space, writable in place; fill a
    /// prefix and queue it with [`TcpStack::send_commit`]. Shorter than `n` when the
    /// space wraps or runs short (then `Writable` is armed, as for a short write).
    pub fn send_reserve(&mut self, h: ConnHandle, n: usize) -> Result<&mut [u8], TcpError> {
        self.writable(h)?;
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if c.tx.free() < n {
            c.set(flag::WRITE_ARMED);
        }
        Ok(c.tx.reserve(n))
    }

    /// Queues `n` bytes written through [`TcpStack::send_reserve`]; returns the count
    /// (at most the free space).
    pub fn send_commit(&mut self, h: ConnHandle, n: usize) -> Result<usize, TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        let n = n.min(c.tx.free());
        c.tx.commit(n);
        if n > 0 {
            self.queue_output(h.idx);
        }
        Ok(n)
    }

    /// Moves up to `max` received bytes of `from` into the send buffer of `to`, with
    /// one copy; returns the count. `Ok(0)` when `to` has no room (its `Writable` is
    /// armed) or when `from`'s peer closed and everything was moved (end of stream, as
    /// for [`TcpStack::read`]); `WouldBlock` when `from` has nothing yet (its `Readable`
    /// is armed).
    pub fn relay(
        &mut self,
        from: ConnHandle,
        to: ConnHandle,
        max: usize,
    ) -> Result<usize, TcpError> {
        if from.idx == to.idx {
            return Err(TcpError::InvalidHandle);
        }
        // Nothing to move: no send buffer is allocated for it.
        let f = self.conn_mut(from).ok_or(TcpError::InvalidHandle)?;
        if f.rx.is_empty() {
            if f.has(flag::PEER_FIN) {
                return Ok(0);
            }
            f.set(flag::READ_ARMED);
            return Err(TcpError::WouldBlock);
        }
        self.writable(to)?;
        let (fi, ti) = (from.idx as usize, to.idx as usize);
        let (lo, hi) = (fi.min(ti), fi.max(ti));
        let (head, tail) = self.slots.split_at_mut(hi);
        let (a, b) = (&mut head[lo], &mut tail[0]);
        let (fs, ts) = if fi < ti { (a, b) } else { (b, a) };
        let (Some(fc), Some(tc)) = (fs.conn.as_mut(), ts.conn.as_mut()) else {
            return Err(TcpError::InvalidHandle);
        };
        let want = fc.rx.len().min(max);
        let n = ring::move_bytes(&mut fc.rx, &mut tc.tx, max);
        if n < want {
            tc.set(flag::WRITE_ARMED);
        }
        self.counters.bytes_relayed += n as u64;
        if n > 0 {
            self.queue_output(to.idx);
        }
        self.after_read(from);
        Ok(n)
    }

    /// True when `h`'s peer closed its direction and every byte it sent was consumed:
    /// the end of the stream (a relay passes the FIN on then).
    pub fn read_closed(&self, h: ConnHandle) -> bool {
        self.connection(h)
            .is_some_and(|c| c.has(flag::PEER_FIN) && c.rx.is_empty())
    }

    /// Buffer memory held by `h` (receive and send buffers as allocated).
    pub fn connection_buffer_bytes(&self, h: ConnHandle) -> usize {
        self.connection(h)
            .map_or(0, |c| c.rx.capacity() + c.tx.capacity())
    }

    /// Bytes queued to send on `h` (sent and not acknowledged, or not sent yet).
    pub fn send_queued(&self, h: ConnHandle) -> usize {
        self.connection(h).map_or(0, |c| c.tx.len())
    }

    /// Bytes on `h` never sent yet (what a relay holds back for the peer; the bytes in
    /// flight are bounded by the send buffer and the windows).
    pub fn send_unsent(&self, h: ConnHandle) -> usize {
        self.connection(h).map_or(0, |c| c.unsent())
    }

    /// Asks for a `Writable` event once at most `low_water` bytes on `h` wait to be sent
    /// for the first time and its send buffer has room (a relay holding back at its
    /// high-water mark waits for this). `low_water` 0 means the default: a quarter of
    /// the send buffer free.
    pub fn arm_writable(&mut self, h: ConnHandle, low_water: usize) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        c.send_low_water = low_water.min(u32::MAX as usize) as u32;
        c.set(flag::WRITE_ARMED);
        Ok(())
    }

    /// Checks that `h` can take data to send and gives it a send buffer if it has
    /// none (refused at the memory limit, counted).
    fn writable(&mut self, h: ConnHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if !c.state.can_send() || c.has(flag::FIN_QUEUED) {
            return Err(TcpError::NotWritable);
        }
        if !self.ensure_buffer(h.idx, Buf::Tx) {
            self.counters.drop(TcpDrop::MemoryLimit);
            return Err(TcpError::MemoryLimit);
        }
        Ok(())
    }

    /// What follows taking bytes out of `h`'s receive buffer: re-arm `Readable` when it
    /// is empty, send a window update when one is due, give idle buffers back.
    pub(super) fn after_read(&mut self, h: ConnHandle) {
        let Some(c) = self.conn_mut(h) else {
            return;
        };
        if c.rx.is_empty() {
            c.set(flag::READ_ARMED);
        }
        let update = c.state.can_receive() && c.window_update_due();
        if update {
            c.set(flag::ACK_NOW);
            self.queue_output(h.idx);
        }
        self.release_idle_buffers(h.idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{ProfileId, StackConfig, TcpProfile};

    const CLIENT: &str = "198.18.1.7:40000";
    const VIP: &str = "198.18.1.100:80";
    const SNAT: &str = "198.18.2.1:5000";
    const SERVER: &str = "198.18.2.11:80";

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A client, a relaying stack in the middle and a server, in memory.
    struct Bed {
        client: TcpStack,
        mid: TcpStack,
        server: TcpStack,
        now: Instant,
    }

    impl Bed {
        fn new(mid_buffer: usize, mid_limit: usize) -> Bed {
            let cfg = |s, limit| StackConfig {
                secret: (s, s),
                max_buffer_bytes: limit,
                ..StackConfig::default()
            };
            let small = TcpProfile {
                send_buffer: mid_buffer,
                recv_buffer: mid_buffer,
                ..TcpProfile::default()
            };
            Bed {
                client: TcpStack::new(cfg(1, 1 << 24), TcpProfile::default()),
                mid: TcpStack::new(cfg(2, mid_limit), small.clone()),
                server: TcpStack::new(cfg(3, 1 << 24), small),
                now: Instant::from_secs(1),
            }
        }

        /// Carries every queued segment until all three stacks are quiet.
        fn pump(&mut self) {
            let mut seg = [0u8; 2048];
            let now = self.now;
            for _ in 0..64 {
                let mut moved = false;
                while let Some(t) = self.client.poll_transmit(now, &mut seg) {
                    self.mid.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                    moved = true;
                }
                while let Some(t) = self.server.poll_transmit(now, &mut seg) {
                    self.mid.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                    moved = true;
                }
                while let Some(t) = self.mid.poll_transmit(now, &mut seg) {
                    if t.dst == sock(SERVER).ip() {
                        self.server.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                    } else {
                        self.client.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                    }
                    moved = true;
                }
                if !moved {
                    return;
                }
            }
        }

        /// Connects client → mid (accepted) and mid → server (accepted): the handles
        /// (client side, mid's client side, mid's server side, server side).
        fn connect(&mut self) -> [ConnHandle; 4] {
            let now = self.now;
            let lm = self.mid.listen(sock(VIP), 4, ProfileId::DEFAULT).unwrap();
            let ls = self
                .server
                .listen(sock(SERVER), 4, ProfileId::DEFAULT)
                .unwrap();
            let c = self
                .client
                .connect(now, sock(CLIENT), sock(VIP), ProfileId::DEFAULT)
                .unwrap();
            let ms = self
                .mid
                .connect(now, sock(SNAT), sock(SERVER), ProfileId::DEFAULT)
                .unwrap();
            self.pump();
            let mc = self.mid.accept(lm).expect("client side accepted");
            let s = self.server.accept(ls).expect("server side accepted");
            [c, mc, ms, s]
        }
    }

    #[test]
    fn relay_moves_a_stream_through_small_buffers_intact() {
        let mut bed = Bed::new(4096, 1 << 20);
        let [c, mc, ms, s] = bed.connect();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = [0u8; 1500];
        for _ in 0..10_000 {
            if sent < data.len() {
                sent += bed.client.write(c, &data[sent..]).unwrap();
            }
            bed.pump();
            match bed.mid.relay(mc, ms, usize::MAX) {
                Ok(_) | Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("relay: {e}"),
            }
            assert!(bed.mid.buffer_bytes() <= 4 * 4096, "bounded by the buffers");
            bed.pump();
            while let Ok(n) = bed.server.read(s, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            if got.len() == data.len() {
                break;
            }
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes relayed in order");
        assert_eq!(bed.mid.counters().bytes_relayed, data.len() as u64);
        // Nothing left to move: WouldBlock, and the Readable event is armed again.
        assert_eq!(bed.mid.relay(mc, ms, 10), Err(TcpError::WouldBlock));
        assert_eq!(bed.mid.relay(mc, mc, 10), Err(TcpError::InvalidHandle));
    }

    #[test]
    fn relay_takes_what_fits_and_nothing_more() {
        let mut bed = Bed::new(4096, 1 << 20);
        let [c, mc, ms, _s] = bed.connect();
        // The server reads nothing: its window and then mid's send buffer fill.
        let block = vec![0x5a; 64 * 1024];
        for _ in 0..200 {
            let _ = bed.client.write(c, &block);
            bed.pump();
            let _ = bed.mid.relay(mc, ms, usize::MAX);
            bed.pump();
            if bed.mid.send_capacity(ms) == 0 && bed.mid.readable_bytes(mc) > 0 {
                break;
            }
        }
        let held = bed.mid.readable_bytes(mc);
        assert!(held > 0, "data waits on the client side");
        assert_eq!(bed.mid.send_capacity(ms), 0, "server side full");
        assert_eq!(bed.mid.relay(mc, ms, usize::MAX), Ok(0), "zero room");
        assert_eq!(bed.mid.readable_bytes(mc), held, "nothing lost");
        // In-place views agree with the counts.
        let (a, b) = bed.mid.recv_slices(mc).unwrap();
        assert_eq!(a.len() + b.len(), held);
        assert!(a.iter().chain(b).all(|&x| x == 0x5a));
        assert_eq!(bed.mid.consume(mc, 10).unwrap(), 10);
        assert_eq!(bed.mid.readable_bytes(mc), held - 10);
    }

    #[test]
    fn reserve_and_commit_send_in_place_and_the_memory_limit_holds() {
        // Room for one 4 KiB ring (and its 72 retransmission records of 32 bytes) only.
        let mut bed = Bed::new(4096, 4096 + 2560);
        let [_c, mc, ms, s] = bed.connect();
        assert_eq!(bed.mid.buffer_bytes(), 0, "idle connections hold no rings");
        let room = bed.mid.send_reserve(ms, 100).unwrap();
        assert_eq!(room.len(), 100);
        room[..5].copy_from_slice(b"hello");
        assert_eq!(bed.mid.send_commit(ms, 5).unwrap(), 5);
        let held = 4096 + bed.mid.connection(ms).unwrap().rtx_accounted as usize;
        assert!(held > 4096);
        assert_eq!(bed.mid.buffer_bytes(), held);
        assert_eq!(bed.mid.counters().buffer_bytes, held as u64);
        // A second ring would pass the limit: refused and counted.
        let before = bed.mid.counters().dropped(TcpDrop::MemoryLimit);
        assert_eq!(
            bed.mid.send_reserve(mc, 10).map(|r| r.len()),
            Err(TcpError::MemoryLimit)
        );
        assert_eq!(bed.mid.counters().dropped(TcpDrop::MemoryLimit), before + 1);
        assert_eq!(bed.mid.buffer_bytes(), held);
        bed.pump();
        let mut buf = [0u8; 16];
        assert_eq!(bed.server.read(s, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        // Asking for more than the free space gives what there is.
        let free = bed.mid.send_capacity(ms);
        let got = bed.mid.send_reserve(ms, 1 << 20).unwrap().len();
        assert!(got > 0 && got <= free, "{got} of {free}");
    }
}
