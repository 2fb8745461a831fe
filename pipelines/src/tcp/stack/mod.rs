//! [`TcpStack`]: one worker's connections, listeners, timers and TIME-WAIT table.

use crate::hashing::{self, FastMap};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::config::{StackConfig, TcpProfile};
use super::congestion::Congestion;
use super::counters::{TcpCounters, TcpDrop};
use super::input::Segment;
use super::isn::{self, SipKey};
use super::listener::{Listener, TimeWaitEntry, TimeWaitTable};
use super::ring::RingBuffer;
use super::seq;
use super::state::{flag, ConnKey, Connection, Notify, State};
use super::timers::{ms, RttEstimator, Timer};
use crate::time::Instant;
use crate::timer_wheel::TimerWheel;
use crate::wire::tcp::{Flags, TcpPacket, TcpRepr};

mod buffers;
mod lifecycle;
mod passive;

/// A handle on a connection. Stale handles (of connections that are gone) are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    idx: u32,
    gen: u32,
}

/// A handle on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerHandle(u32);

/// Who a connection or listener belongs to: the application that gets its events.
/// The stack never interprets it; it travels with every event (also with
/// [`Event::Reset`], whose handle is already released), so the host hands each event
/// to its owner without any lookup. Connections accepted from a listener inherit the
/// listener's owner; [`TcpStack::set_owner`] changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Owner {
    /// Which application (numbering chosen by the host; 0 = nobody).
    pub app: u16,
    /// The application's own reference (a slot of its flow table, a service index).
    pub tag: u32,
}

impl Owner {
    /// Nobody: events of unowned connections are delivered with this owner.
    pub const NONE: Owner = Owner { app: 0, tag: 0 };

    /// The owner `tag` of application `app`.
    pub const fn new(app: u16, tag: u32) -> Owner {
        Owner { app, tag }
    }
}

/// Where a connection's segments are shaped (lossless shaping of proxied TCP): the
/// egress port, the shaping class and the flow hash that keeps its segments in one flow
/// queue of the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shaping {
    /// Egress port.
    pub port: u16,
    /// Shaping class.
    pub class: u16,
    /// Flow hash within the class.
    pub hash: u32,
}

/// A profile registered with [`TcpStack::add_profile`]; `ProfileId::DEFAULT` is the one
/// given to [`TcpStack::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProfileId(pub u16);

impl ProfileId {
    /// The stack's default profile.
    pub const DEFAULT: ProfileId = ProfileId(0);
}

/// Why a connection was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The peer sent a RST.
    Peer,
    /// The peer refused the connection (RST answering our SYN).
    Refused,
    /// Retransmissions or keepalive probes went unanswered.
    TimedOut,
}

/// What the application is told, from [`TcpStack::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection completed its handshake and waits in this listener's accept queue;
    /// take it with [`TcpStack::accept`]. One event per connection: an application that
    /// drains the queue on the first event finds it empty on the later ones.
    Accepted(ListenerHandle),
    /// An active open completed.
    Connected(ConnHandle),
    /// Data can be read (edge-triggered: read until `WouldBlock` to re-arm).
    Readable(ConnHandle),
    /// Send buffer space opened after a short write.
    Writable(ConnHandle),
    /// The peer sent FIN: reads end after the data already received.
    PeerClosed(ConnHandle),
    /// Both directions closed cleanly; call [`TcpStack::close`] to release the handle.
    Closed(ConnHandle),
    /// The connection was reset; the handle is already released.
    Reset(ConnHandle, ResetReason),
}

/// Why an application command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// The handle is stale or was never valid.
    #[error("no such connection (it was closed or reset)")]
    InvalidHandle,
    /// Nothing to read yet.
    #[error("no data yet; wait for a Readable event")]
    WouldBlock,
    /// Writing after shutdown or close, or on a connection that is gone.
    #[error("the connection is closed for sending")]
    NotWritable,
    /// The 4-tuple or listening address is in use.
    #[error("address and port already in use")]
    AddressInUse,
    /// The connection limit of the worker is reached.
    #[error("connection limit reached; raise max_connections or wait for connections to close")]
    ConnectionLimit,
    /// The buffer memory limit of the worker is reached.
    #[error("buffer memory limit reached; raise max_buffer_bytes or use smaller buffers")]
    MemoryLimit,
}

/// A segment written by [`TcpStack::poll_transmit`]: send `len` bytes of the buffer as
/// the payload of an IP packet from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Source IP address.
    pub src: IpAddr,
    /// Destination IP address.
    pub dst: IpAddr,
    /// Length of the TCP segment in the buffer.
    pub len: usize,
    /// Its shaping, when its connection has one.
    pub shaping: Option<Shaping>,
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    conn: Option<Connection>,
}

#[derive(Debug, Clone, Copy)]
struct Reply {
    src: IpAddr,
    dst: IpAddr,
    repr: TcpRepr,
    rst: bool,
}

/// Segments one connection sends before the next queued connection gets a turn.
const TX_TURN: u32 = 16;

/// Most spare buffers kept for reuse, per size.
const SPARE_BUFFERS: usize = 256;

/// Which buffer of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    Rx,
    Tx,
}

/// A per-worker, sans-I/O TCP stack.
///
/// # Call order (one worker loop turn)
///
/// 1. For every received TCP segment: [`TcpStack::handle_segment`].
/// 2. [`TcpStack::handle_timeout`] with the current time (cheap when nothing is due).
/// 3. Drain [`TcpStack::poll_event`] and act on it with the application commands
///    ([`TcpStack::accept`], [`TcpStack::read`], [`TcpStack::write`], ...).
/// 4. Drain [`TcpStack::poll_transmit`] into the transmit burst.
/// 5. Sleep (or poll the NIC) no later than [`TcpStack::poll_timeout`].
///
/// Nothing here reads a clock or performs I/O; `now` must not go backwards.
///
/// # Example
///
/// Two stacks wired back to back in memory: a client sends "hello" to a listener.
///
/// ```
/// use rouge_pipelines::tcp::{Event, ProfileId, StackConfig, TcpProfile, TcpStack};
/// use rouge_pipelines::Instant;
///
/// let mut client = TcpStack::new(StackConfig::default(), TcpProfile::default());
/// let mut server = TcpStack::new(StackConfig::default(), TcpProfile::default());
/// let l = server.listen("198.18.1.1:7".parse().unwrap(), 16, ProfileId::DEFAULT).unwrap();
/// let now = Instant::from_millis(1);
/// let c = client
///     .connect(now, "198.18.1.2:40000".parse().unwrap(), "198.18.1.1:7".parse().unwrap(), ProfileId::DEFAULT)
///     .unwrap();
/// client.write(c, b"hello").unwrap(); // queued until the handshake completes
/// let mut seg = [0u8; 1600];
/// let mut got = Vec::new();
/// for _ in 0..4 {
///     while let Some(t) = client.poll_transmit(now, &mut seg) {
///         server.handle_segment(now, t.src, t.dst, &seg[..t.len]);
///     }
///     while let Some(t) = server.poll_transmit(now, &mut seg) {
///         client.handle_segment(now, t.src, t.dst, &seg[..t.len]);
///     }
///     while let Some(e) = server.poll_event() {
///         if let Event::Accepted(l) = e {
///             let h = server.accept(l).unwrap();
///             let mut buf = [0u8; 64];
///             if let Ok(n) = server.read(h, &mut buf) {
///                 got.extend_from_slice(&buf[..n]);
///             }
///         }
///     }
/// }
/// assert_eq!(got, b"hello");
/// ```
#[derive(Debug)]
pub struct TcpStack {
    cfg: StackConfig,
    profiles: Vec<TcpProfile>,
    key: SipKey,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    live: usize,
    map: FastMap<ConnKey, u32>,
    listeners: Vec<Option<Listener>>,
    listen_map: FastMap<(IpAddr, u16), u32>,
    wheel: TimerWheel<ConnHandle>,
    expired: Vec<ConnHandle>,
    txq: VecDeque<u32>,
    tx_streak: u32,
    replies: VecDeque<Reply>,
    /// Replies on behalf of connections (final ACK into TIME-WAIT, RST of an abort):
    /// at most one per connection ending, so bounded by the connection limit.
    conn_replies: VecDeque<Reply>,
    events: VecDeque<(Owner, Event)>,
    time_wait: TimeWaitTable,
    buffer_bytes: usize,
    /// Released buffers kept for reuse, by size (profiles use few sizes).
    spare: Vec<(usize, Vec<Box<[u8]>>)>,
    counters: TcpCounters,
    challenge_window: (u64, u32),
    /// Shaped connections holding new data back until their class has room.
    shaped_wait: Vec<u32>,
    /// Paced connections holding data back: (when it may go (ns), slot, generation).
    /// Each connection is in it at most once (`paced_wait`).
    paced: BinaryHeap<Reverse<(u64, u32, u32)>>,
}

impl TcpStack {
    /// A stack with limits `cfg` and default profile `profile`.
    pub fn new(cfg: StackConfig, profile: TcpProfile) -> Self {
        let cap = cfg.max_connections.min(1 << 16);
        TcpStack {
            key: SipKey(cfg.secret.0, cfg.secret.1),
            profiles: vec![profile],
            slots: Vec::with_capacity(cap),
            free_slots: Vec::with_capacity(cap),
            live: 0,
            map: hashing::with_capacity(cap),
            listeners: Vec::new(),
            listen_map: hashing::with_capacity(0),
            wheel: TimerWheel::new(cfg.timer_tick, 4096, cap),
            expired: Vec::with_capacity(256),
            txq: VecDeque::with_capacity(cap),
            tx_streak: 0,
            replies: VecDeque::with_capacity(cfg.max_pending_replies),
            conn_replies: VecDeque::with_capacity(256),
            events: VecDeque::with_capacity(cap),
            time_wait: TimeWaitTable::new(cfg.max_time_wait),
            buffer_bytes: 0,
            spare: Vec::with_capacity(4),
            counters: TcpCounters::default(),
            challenge_window: (u64::MAX, 0),
            shaped_wait: Vec::new(),
            paced: BinaryHeap::with_capacity(256),
            cfg,
        }
    }

    // ----- getters -----

    /// The counters.
    pub fn counters(&self) -> &TcpCounters {
        &self.counters
    }

    /// Connections held (any state but TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// True when a connection or a TIME-WAIT entry holds the pair `local`–`remote`:
    /// [`TcpStack::connect`] between them would fail with `AddressInUse`. The source-port
    /// allocator asks this before handing a port out.
    pub fn in_use(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let key = ConnKey { local, remote };
        self.map.contains_key(&key) || self.time_wait.get(&key).is_some()
    }

    /// Entries in the TIME-WAIT table.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    /// Buffer bytes allocated to connections.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Connections by state (TIME-WAIT from the TIME-WAIT table), in [`State::ALL`] order.
    pub fn connections_by_state(&self) -> [usize; 10] {
        let mut out = [0; 10];
        for s in &self.slots {
            if let Some(c) = &s.conn {
                if let Some(i) = State::ALL.iter().position(|&x| x == c.state) {
                    out[i] += 1;
                }
            }
        }
        out[8] += self.time_wait.len();
        out
    }

    /// The control block of a connection, for inspection.
    pub fn connection(&self, h: ConnHandle) -> Option<&Connection> {
        self.slots
            .get(h.idx as usize)
            .filter(|s| s.gen == h.gen)
            .and_then(|s| s.conn.as_ref())
    }

    /// The state of a connection.
    pub fn state(&self, h: ConnHandle) -> Option<State> {
        self.connection(h).map(|c| c.state)
    }

    /// Our address and the peer's, as (local, remote).
    pub fn addresses(&self, h: ConnHandle) -> Option<(SocketAddr, SocketAddr)> {
        self.connection(h).map(|c| (c.key.local, c.key.remote))
    }

    /// A listener, for inspection.
    pub fn listener(&self, l: ListenerHandle) -> Option<&Listener> {
        self.listeners.get(l.0 as usize).and_then(|x| x.as_ref())
    }

    /// The profile with id `p`.
    pub fn profile(&self, p: ProfileId) -> Option<&TcpProfile> {
        self.profiles.get(p.0 as usize)
    }

    // ----- configuration and application commands -----

    /// Registers another profile; one equal to a registered profile gets that one's id
    /// (configuration changes re-register their profiles without growing the table).
    pub fn add_profile(&mut self, p: TcpProfile) -> ProfileId {
        if let Some(i) = self.profiles.iter().position(|x| *x == p) {
            return ProfileId(i as u16);
        }
        self.profiles.push(p);
        ProfileId((self.profiles.len() - 1) as u16)
    }

    /// Listens on `local` (an unspecified IP matches every address) with an accept queue
    /// of `backlog` and a SYN queue of the same size.
    pub fn listen(
        &mut self,
        local: SocketAddr,
        backlog: usize,
        profile: ProfileId,
    ) -> Result<ListenerHandle, TcpError> {
        let k = (local.ip(), local.port());
        if self.listen_map.contains_key(&k) {
            return Err(TcpError::AddressInUse);
        }
        let p = if (profile.0 as usize) < self.profiles.len() {
            profile.0
        } else {
            0
        };
        let backlog = backlog.max(1);
        let l = Listener::new(local, p, backlog, backlog);
        let idx = match self.listeners.iter().position(|x| x.is_none()) {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        } as u32;
        self.listen_map.insert(k, idx);
        Ok(ListenerHandle(idx))
    }

    /// Stops listening; connections already accepted are unaffected, queued and half-open
    /// ones are reset. (Walks the connection table: a configuration-time operation.)
    pub fn unlisten(&mut self, now: Instant, l: ListenerHandle) {
        if let Some(Some(x)) = self.listeners.get_mut(l.0 as usize).map(|x| x.take()) {
            self.listen_map.remove(&(x.local.ip(), x.local.port()));
            for h in x.accept_queue {
                let _ = self.abort(now, h);
            }
            // Half-open connections still point at the listener slot, which a new
            // listener may reuse: reset them too.
            let half_open: Vec<ConnHandle> = (0..self.slots.len() as u32)
                .filter(|&i| {
                    self.slots[i as usize]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.listener == l.0)
                })
                .map(|i| self.handle_of(i))
                .collect();
            for h in half_open {
                let _ = self.abort(now, h);
            }
        }
    }

    /// Takes the next established connection from a listener's accept queue.
    pub fn accept(&mut self, l: ListenerHandle) -> Option<ConnHandle> {
        loop {
            let h = self
                .listeners
                .get_mut(l.0 as usize)?
                .as_mut()?
                .accept_queue
                .pop_front()?;
            let Some(c) = self.conn_mut(h) else { continue };
            c.set(flag::APP_OWNED);
            let readable = !c.rx.is_empty();
            let peer_fin = c.has(flag::PEER_FIN);
            let closed = c.state == State::Closed;
            let o = c.owner;
            if readable {
                c.clear(flag::READ_ARMED);
                self.events.push_back((o, Event::Readable(h)));
            }
            if peer_fin {
                self.events.push_back((o, Event::PeerClosed(h)));
            }
            if closed {
                self.events.push_back((o, Event::Closed(h)));
            }
            return Some(h);
        }
    }

    /// Opens a connection from `local` to `remote` (active open). `Connected` follows.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        profile: ProfileId,
    ) -> Result<ConnHandle, TcpError> {
        let key = ConnKey { local, remote };
        if self.map.contains_key(&key) || self.time_wait.get(&key).is_some() {
            return Err(TcpError::AddressInUse);
        }
        if self.live >= self.cfg.max_connections {
            self.counters.drop(TcpDrop::ConnectionLimit);
            return Err(TcpError::ConnectionLimit);
        }
        let pid = if (profile.0 as usize) < self.profiles.len() {
            profile.0
        } else {
            0
        };
        let p = &self.profiles[pid as usize];
        let iss = isn::isn(
            &self.key,
            now,
            (local.ip(), local.port()),
            (remote.ip(), remote.port()),
        );
        let mut c = new_conn(&self.key, key, pid, iss, p);
        c.state = State::SynSent;
        c.set(flag::SEND_SYN | flag::APP_OWNED);
        self.counters.active_opens += 1;
        let h = self.insert(key, c);
        self.queue_output(h.idx);
        Ok(h)
    }

    /// Reads received data. `Ok(0)` means end of stream (the peer closed and everything
    /// was read); `WouldBlock` re-arms the `Readable` event.
    pub fn read(&mut self, h: ConnHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if c.rx.is_empty() {
            if c.has(flag::PEER_FIN) {
                return Ok(0);
            }
            c.set(flag::READ_ARMED);
            return Err(TcpError::WouldBlock);
        }
        let n = c.rx.read(buf);
        self.after_read(h);
        Ok(n)
    }

    /// Bytes waiting to be read.
    pub fn readable_bytes(&self, h: ConnHandle) -> usize {
        self.connection(h).map_or(0, |c| c.rx.len())
    }

    /// Queues data to send; returns how much the send buffer took (0 when full: wait for
    /// `Writable`).
    pub fn write(&mut self, h: ConnHandle, data: &[u8]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if !c.state.can_send() || c.has(flag::FIN_QUEUED) {
            return Err(TcpError::NotWritable);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if !self.ensure_buffer(h.idx, Buf::Tx) {
            self.counters.drop(TcpDrop::MemoryLimit);
            return Err(TcpError::MemoryLimit);
        }
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        let n = c.tx.write(data);
        if n < data.len() {
            c.set(flag::WRITE_ARMED);
        }
        if n > 0 {
            self.queue_output(h.idx);
        }
        Ok(n)
    }

    /// Corks connection `h` until `until` at the latest: a segment shorter than the MSS
    /// that would carry the last unsent byte waits, so what the application writes next
    /// (the rest of a message it knows is coming) leaves in the same segment. Full
    /// segments, retransmissions, ACKs and a FIN go as always. [`TcpStack::uncork`]
    /// lifts it; at `until` it lifts itself and the held bytes go (`cork_expired`).
    /// Like Linux's `TCP_CORK`, with a deadline the caller chooses.
    pub fn cork(&mut self, now: Instant, h: ConnHandle, until: Instant) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if c.timers.armed(Timer::Cork) {
            return Ok(());
        }
        c.timers.set(Timer::Cork, until.max(now));
        self.counters.corks += 1;
        self.sync_timer(h.idx);
        Ok(())
    }

    /// Lifts the cork of connection `h` (if any); held bytes go at the next transmit.
    pub fn uncork(&mut self, h: ConnHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if !c.timers.armed(Timer::Cork) {
            return Ok(());
        }
        c.timers.stop(Timer::Cork);
        self.queue_output(h.idx);
        self.sync_timer(h.idx);
        Ok(())
    }

    /// True while connection `h` is corked.
    pub fn corked(&self, h: ConnHandle) -> bool {
        self.connection(h)
            .is_some_and(|c| c.timers.armed(Timer::Cork))
    }

    /// Room left in the send buffer.
    pub fn send_capacity(&self, h: ConnHandle) -> usize {
        self.connection(h).map_or(0, |c| c.tx_free())
    }

    /// Half-close: send FIN after the queued data; reading continues.
    pub fn shutdown(&mut self, now: Instant, h: ConnHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        if c.has(flag::FIN_QUEUED) {
            return Ok(());
        }
        match c.state {
            State::SynSent => {
                c.state = State::Closed;
                self.finish(now, h.idx, Notify::default());
                return Ok(());
            }
            State::Established => c.state = State::FinWait1,
            State::CloseWait => c.state = State::LastAck,
            State::SynReceived => {}
            _ => return Ok(()),
        }
        c.set(flag::FIN_QUEUED);
        self.queue_output(h.idx);
        Ok(())
    }

    /// Closes the connection and releases the handle: a FIN goes after the queued data
    /// (a RST instead if received data was left unread, as RFC 9293 section 3.10.4
    /// allows); no more events are delivered for it.
    pub fn close(&mut self, now: Instant, h: ConnHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        c.set(flag::APP_CLOSED);
        c.clear(flag::APP_OWNED);
        if c.state == State::Closed {
            self.release(h.idx);
            return Ok(());
        }
        if !c.rx.is_empty() {
            return self.abort(now, h);
        }
        self.shutdown(now, h)?;
        if let Some(c) = self.slots[h.idx as usize].conn.as_mut() {
            if c.state == State::FinWait2 {
                let d = self.profiles[c.profile as usize].fin_wait2_timeout;
                c.timers.set(super::timers::Timer::Linger, now + d);
                self.sync_timer(h.idx);
            }
        }
        Ok(())
    }

    /// Resets the connection at once (RST to the peer) and releases the handle.
    pub fn abort(&mut self, now: Instant, h: ConnHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h).ok_or(TcpError::InvalidHandle)?;
        c.clear(flag::APP_OWNED);
        c.set(flag::APP_CLOSED);
        if c.state.synchronized() || c.state == State::SynReceived {
            let r = rst_for(c);
            self.conn_replies.push_back(r);
        }
        if let Some(c) = self.conn_mut(h) {
            c.state = State::Closed;
        }
        self.counters.aborted += 1;
        self.finish(now, h.idx, Notify::default());
        Ok(())
    }

    // ----- input -----

    /// Handles one received TCP segment (`tcp` starts at the TCP header) carried in an IP
    /// packet from `src` to `dst`.
    pub fn handle_segment(&mut self, now: Instant, src: IpAddr, dst: IpAddr, tcp: &[u8]) {
        self.input(now, src, dst, tcp, true);
    }

    /// As [`TcpStack::handle_segment`] for a segment whose checksum needs no check: the
    /// NIC verified it, or the sender left it to offload (`l4_csum_partial` on a veth).
    pub fn handle_segment_trusted(&mut self, now: Instant, src: IpAddr, dst: IpAddr, tcp: &[u8]) {
        self.input(now, src, dst, tcp, false);
    }

    fn input(&mut self, now: Instant, src: IpAddr, dst: IpAddr, tcp: &[u8], verify: bool) {
        self.counters.segments_in += 1;
        let Ok(pkt) = TcpPacket::new_checked(tcp) else {
            self.counters.drop(TcpDrop::Malformed);
            return;
        };
        if verify && !pkt.verify_checksum(src, dst) {
            self.counters.drop(TcpDrop::BadChecksum);
            return;
        }
        let Ok(repr) = TcpRepr::parse(&pkt) else {
            self.counters.drop(TcpDrop::Malformed);
            return;
        };
        let seg = Segment {
            repr,
            payload: pkt.payload(),
        };
        let key = ConnKey {
            local: SocketAddr::new(dst, repr.dst_port),
            remote: SocketAddr::new(src, repr.src_port),
        };
        if let Some(&idx) = self.map.get(&key) {
            self.deliver(now, idx, &seg);
            return;
        }
        if self.time_wait.get(&key).is_some() && !self.time_wait_input(now, key, &seg) {
            return;
        }
        let l = self
            .listen_map
            .get(&(dst, repr.dst_port))
            .or_else(|| {
                let any = if dst.is_ipv4() {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                };
                self.listen_map.get(&(any, repr.dst_port))
            })
            .copied();
        match l {
            Some(l) => self.listen_input(now, l, key, &seg),
            None => {
                self.counters.drop(TcpDrop::NoSocket);
                self.reset_reply(key, &seg);
            }
        }
    }

    fn deliver(&mut self, now: Instant, idx: u32, seg: &Segment) {
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        let f = seg.repr.flags;
        if c.state == State::SynReceived && f.ack() && !f.rst() && !f.syn() {
            // The handshake may complete now: it needs room in the accept queue.
            let full = self
                .listeners
                .get(c.listener as usize)
                .and_then(|l| l.as_ref())
                .is_some_and(|l| l.accept_full());
            if full {
                self.counters.drop(TcpDrop::AcceptQueueFull);
                return;
            }
        }
        // Data needs the receive buffer; without memory it is dropped (and resent by
        // the peer later), the rest of the segment still counts.
        if !seg.payload.is_empty() && c.rx.capacity() == 0 && !self.ensure_buffer(idx, Buf::Rx) {
            self.counters.drop(TcpDrop::MemoryLimit);
        }
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        c.segs_in += 1;
        let p = &self.profiles[c.profile as usize];
        let n = c.on_segment(now, p, &mut self.counters, seg);
        if n.has(Notify::SEND_RST) {
            let r = Reply {
                src: c.ip_local(),
                dst: c.ip_remote(),
                repr: TcpRepr {
                    src_port: c.key.local.port(),
                    dst_port: c.key.remote.port(),
                    seq: seg.repr.ack,
                    flags: Flags::RST,
                    ..TcpRepr::default()
                },
                rst: true,
            };
            self.push_reply(r);
        }
        self.finish(now, idx, n);
    }

    fn push_reply(&mut self, r: Reply) {
        if self.replies.len() >= self.cfg.max_pending_replies {
            self.counters.drop(TcpDrop::ReplyQueueFull);
            return;
        }
        self.replies.push_back(r);
    }

    // ----- output, events, timers -----

    /// Writes the next segment to send into `buf` (at least 60 bytes plus the largest
    /// MSS for full segments), returning its addresses and length; `None` when nothing
    /// is left to send.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.poll_transmit_shaped(now, buf, &mut |_, _| true)
    }

    /// Gives connection `h` a shaping (or takes it away): from then on it sends any
    /// segment only when [`TcpStack::poll_transmit_shaped`]'s `room` says its class has room.
    pub fn set_shaping(&mut self, h: ConnHandle, shaping: Option<Shaping>) -> Result<(), TcpError> {
        self.conn_mut(h).ok_or(TcpError::InvalidHandle)?.shaping = shaping;
        Ok(())
    }

    /// True when shaped connections hold data back for want of room; call
    /// [`TcpStack::requeue_shaped`] once the shaper has released something.
    pub fn shaped_waiting(&self) -> bool {
        !self.shaped_wait.is_empty()
    }

    /// Puts the shaped connections that held data back in line to send again.
    pub fn requeue_shaped(&mut self) {
        let mut wait = std::mem::take(&mut self.shaped_wait);
        for idx in wait.drain(..) {
            self.queue_output(idx);
        }
        self.shaped_wait = wait;
    }

    /// As [`TcpStack::poll_transmit`], but a shaped connection (see
    /// [`TcpStack::set_shaping`]) sends a segment (data, retransmission, FIN or ACK) only
    /// if `room(shaping, len)` says its class can take a full one; otherwise it waits, out of line, until
    /// [`TcpStack::requeue_shaped`] (counted in `shaping_deferrals`). Nothing it holds is
    /// lost: the data stays in its send buffer.
    pub fn poll_transmit_shaped(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        room: &mut dyn FnMut(Shaping, usize) -> bool,
    ) -> Option<Transmit> {
        while let Some(r) = self
            .conn_replies
            .pop_front()
            .or_else(|| self.replies.pop_front())
        {
            let hl = r.repr.header_len();
            let Some(b) = buf.get_mut(..hl) else { continue };
            if let Some(len) = r.repr.emit(b, r.src, r.dst) {
                self.counters.segments_out += 1;
                if r.rst {
                    self.counters.resets_sent += 1;
                }
                return Some(Transmit {
                    src: r.src,
                    dst: r.dst,
                    len,
                    shaping: None,
                });
            }
        }
        while let Some(&idx) = self.txq.front() {
            let gen = self.slots[idx as usize].gen;
            let Some(c) = self.slots[idx as usize].conn.as_mut() else {
                self.txq.pop_front();
                continue;
            };
            // Every segment of a shaped connection (new data, a retransmission, a FIN,
            // an ACK) goes through its class: each waits for room, or the class would
            // have to drop it.
            if let Some(sh) = c.shaping {
                if !room(sh, c.mss as usize + 80) {
                    c.clear(flag::TX_QUEUED);
                    self.txq.pop_front();
                    self.tx_streak = 0;
                    self.shaped_wait.push(idx);
                    self.counters.shaping_deferrals += 1;
                    continue;
                }
            }
            let p = &self.profiles[c.profile as usize];
            match c.poll_segment(now, p, &mut self.counters, buf) {
                Some(len) => {
                    c.segs_out += 1;
                    // Sending drained it below the mark the application waits for.
                    let writable = c.below_low_water().then_some(c.owner);
                    if writable.is_some() {
                        c.clear(flag::WRITE_ARMED);
                    }
                    let t = Transmit {
                        src: c.ip_local(),
                        dst: c.ip_remote(),
                        len,
                        shaping: c.shaping,
                    };
                    self.sync_timer(idx);
                    if let Some(owner) = writable {
                        let h = self.handle_of(idx);
                        self.events.push_back((owner, Event::Writable(h)));
                    }
                    // Take turns: a connection with a large window yields after a
                    // burst so the others are not held behind it.
                    self.tx_streak += 1;
                    if self.tx_streak >= TX_TURN && self.txq.len() > 1 {
                        self.tx_streak = 0;
                        self.txq.pop_front();
                        self.txq.push_back(idx);
                    }
                    return Some(t);
                }
                None => {
                    c.clear(flag::TX_QUEUED);
                    if c.pace_blocked && !c.paced_wait {
                        // Held by pacing: back in line when its time comes.
                        c.paced_wait = true;
                        self.counters.pacing_waits += 1;
                        let at = c.pace_next;
                        self.paced.push(Reverse((at, idx, gen)));
                    }
                    self.txq.pop_front();
                    self.tx_streak = 0;
                    self.sync_timer(idx);
                }
            }
        }
        None
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().map(|(_, e)| e)
    }

    /// The next event with the owner of its connection or listener.
    pub fn poll_owned_event(&mut self) -> Option<(Owner, Event)> {
        self.events.pop_front()
    }

    /// True when events wait for [`TcpStack::poll_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Gives connection `h` to `owner`: its later events carry it.
    pub fn set_owner(&mut self, h: ConnHandle, owner: Owner) -> Result<(), TcpError> {
        self.conn_mut(h).ok_or(TcpError::InvalidHandle)?.owner = owner;
        Ok(())
    }

    /// Gives listener `l` to `owner`: its `Accepted` events and the connections it
    /// creates carry it.
    pub fn set_listener_owner(&mut self, l: ListenerHandle, owner: Owner) {
        if let Some(Some(x)) = self.listeners.get_mut(l.0 as usize) {
            x.owner = owner;
        }
    }

    /// When [`TcpStack::handle_timeout`] should be called next: the earliest timer, and
    /// the time the first paced connection may send again.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let w = self.wheel.next_deadline();
        let t = self.time_wait.next_expiry();
        let p = self.paced.peek().map(|Reverse(e)| Instant::from_nanos(e.0));
        crate::time::earliest([w, t, p])
    }

    /// Runs every timer due at `now`, and puts the paced connections whose time has come
    /// back in line for [`TcpStack::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, idx, gen))) = self.paced.peek() {
            if at > now.as_nanos() {
                break;
            }
            self.paced.pop();
            let Some(slot) = self.slots.get_mut(idx as usize) else {
                continue;
            };
            if slot.gen != gen {
                continue;
            }
            if let Some(c) = slot.conn.as_mut() {
                c.paced_wait = false;
                self.queue_output(idx);
            }
        }
        self.time_wait.expire(now);
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        self.wheel.expire(now, &mut expired);
        for h in expired.drain(..) {
            let Some(c) = self
                .slots
                .get_mut(h.idx as usize)
                .filter(|s| s.gen == h.gen)
                .and_then(|s| s.conn.as_mut())
            else {
                continue;
            };
            c.wheel = None;
            let p = &self.profiles[c.profile as usize];
            let n = c.on_timeout(now, p, &mut self.counters);
            self.finish(now, h.idx, n);
        }
        self.expired = expired;
    }

    // ----- internals -----

    fn handle_of(&self, idx: u32) -> ConnHandle {
        ConnHandle {
            idx,
            gen: self.slots[idx as usize].gen,
        }
    }

    fn conn_mut(&mut self, h: ConnHandle) -> Option<&mut Connection> {
        self.slots
            .get_mut(h.idx as usize)
            .filter(|s| s.gen == h.gen)
            .and_then(|s| s.conn.as_mut())
    }

    fn insert(&mut self, key: ConnKey, c: Connection) -> ConnHandle {
        let idx = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize].conn = Some(c);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    conn: Some(c),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        self.map.insert(key, idx);
        self.handle_of(idx)
    }

    fn queue_output(&mut self, idx: u32) {
        if let Some(c) = self.slots[idx as usize].conn.as_mut() {
            if !c.has(flag::TX_QUEUED) {
                c.set(flag::TX_QUEUED);
                self.txq.push_back(idx);
            }
        }
    }

    fn sync_timer(&mut self, idx: u32) {
        let h = self.handle_of(idx);
        let Some(c) = self.slots[idx as usize].conn.as_mut() else {
            return;
        };
        match (c.wheel, c.timers.next()) {
            (None, Some(d)) => {
                let id = self.wheel.schedule(Instant::from_nanos(d), h);
                c.wheel = Some((id, d));
            }
            (Some((id, at)), Some(d)) if d < at => {
                self.wheel.cancel(id);
                let id = self.wheel.schedule(Instant::from_nanos(d), h);
                c.wheel = Some((id, d));
            }
            (Some((id, _)), None) => {
                self.wheel.cancel(id);
                c.wheel = None;
            }
            _ => {}
        }
    }

    fn challenge_allowed(&mut self, now: Instant) -> bool {
        let sec = now.as_nanos() / 1_000_000_000;
        if self.challenge_window.0 != sec {
            self.challenge_window = (sec, 0);
        }
        if self.challenge_window.1 < self.cfg.challenge_ack_limit {
            self.challenge_window.1 += 1;
            true
        } else {
            false
        }
    }
}

fn tuple(a: SocketAddr) -> (IpAddr, u16) {
    (a.ip(), a.port())
}

fn new_conn(key: &SipKey, k: ConnKey, pid: u16, iss: u32, p: &TcpProfile) -> Connection {
    let mut cc = Congestion::new(p.congestion, p.mss as usize, p.initial_cwnd);
    cc.seed(u64::from(iss) << 1);
    let mut c = Connection::new(k, pid, iss, cc, RttEstimator::new(p.initial_rto));
    c.ts_offset = isn::ts_offset(key, tuple(k.local), tuple(k.remote));
    c.rcv_buf = p.recv_buffer.min(u32::MAX as usize / 2) as u32;
    c.snd_buf = p.send_buffer.min(u32::MAX as usize / 2) as u32;
    c.rcv_wscale = if p.window_scaling { p.rcv_wscale() } else { 0 };
    c
}

fn rst_for(c: &Connection) -> Reply {
    Reply {
        src: c.ip_local(),
        dst: c.ip_remote(),
        repr: TcpRepr {
            src_port: c.key.local.port(),
            dst_port: c.key.remote.port(),
            seq: c.snd_max,
            ack: c.rcv_nxt,
            flags: Flags::RST | Flags::ACK,
            ..TcpRepr::default()
        },
        rst: true,
    }
}
