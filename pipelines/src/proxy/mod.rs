//! The full proxy of `standard` virtual servers (F5's "standard" virtual server): the
//! client's TCP connection ends on the appliance; the worker that accepted it opens its
//! own connection to a member of the pool, from the SNAT address with a source port
//! whose replies come back to this worker; bytes are relayed both ways with
//! backpressure.
//!
//! A host application over [`TcpStack`]: every connection of a flow carries the flow's
//! slot as its [`Owner`] tag, so events reach the flow without a lookup. Nothing exists
//! for a client before its handshake completes (the listener answers SYN floods with
//! cookies): the flow, its member and its server-side connection are made on `Accepted`.
//!
//! - **Reselect**: a member that refuses (RST) or does not answer within
//!   `connect_timeout` is replaced by the next candidate of the pool's method, up to
//!   `reselect_tries` attempts; the client sees nothing of it, and a RST only when every
//!   attempt failed.
//! - **Backpressure**: bytes move from one side's receive buffer into the other side's
//!   send buffer ([`TcpStack::relay`], one copy) only while that send buffer holds less
//!   than `buffer_high`; above it the proxy stops reading, so the sending peer's window
//!   closes, until the buffer drains to `buffer_low` (a `Writable` event). A flow holds
//!   at most its two receive buffers and two send buffers, whatever the peers do.
//! - **Half-close** is carried across (a FIN is sent after the data before it), a RST on
//!   one side resets the other, a member gone down resets its flows on both sides;
//!   `disabled` and `forced-offline` members keep their flows to the end.

mod vs;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrayvec::ArrayVec;

use crate::dataplane::{Dataplane, Snat};
use crate::host::{app, AppTimers, Fired};
use crate::lb::{MemberId, MonitorStatus, PoolCursor};
use crate::monitor::InUse;
use crate::ports::PortAllocator;
use crate::tcp::{
    ConnHandle, Event, ListenerHandle, Owner, ProfileId, ResetReason, TcpError, TcpStack,
};
use crate::time::Instant;
use crate::timer_wheel::TimerId;

pub use vs::{
    ProxyCounters, ProxyShard, ResetCause, SideShard, SideTotals, StandardVs, TlsShard, TlsTotals,
    DEFAULT_BUFFER_HIGH, DEFAULT_BUFFER_LOW, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESELECT_TRIES,
    TLS_SUITES,
};

/// Accept queue (and SYN queue) of each virtual server's listener on a worker.
const BACKLOG: usize = 4096;
/// The owner tag of the proxy's listeners (flows use their slot index).
const LISTENER_TAG: u32 = u32::MAX;
/// The owner tag of the member-down sweep timer.
const SWEEP_TAG: u32 = u32::MAX - 1;
/// Timer word: the server-side handshake took too long.
const TIMER_CONNECT: u32 = 1;
/// Timer word: look for flows whose member went down.
const TIMER_SWEEP: u32 = 2;
/// How often flows are checked for members gone down.
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
/// Most members one flow tries.
const MAX_TRIES: usize = 8;

/// Where a flow stands, as `show connections` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// The server-side handshake is under way.
    Connecting,
    /// Both sides are open; bytes flow.
    Established,
    /// One side sent FIN; the other direction still flows.
    HalfClosed,
    /// Both sides sent FIN; waiting for the last acknowledgements.
    Closing,
}

impl FlowState {
    /// Name in `show connections`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Connecting => "connecting",
            FlowState::Established => "established",
            FlowState::HalfClosed => "half-closed",
            FlowState::Closing => "closing",
        }
    }
}

/// One proxied flow, for `show connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowView {
    /// The virtual server's name.
    pub virtual_name: String,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The member (the current attempt while connecting).
    pub server: Option<SocketAddr>,
    /// The server-side connection's local address and port.
    pub snat: Option<SocketAddr>,
    /// Where it stands.
    pub state: FlowState,
    /// Milliseconds since the client's handshake completed.
    pub age_ms: u64,
    /// Bytes received from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
}

/// What the proxy needs from its host for one call.
pub struct ProxyCtx<'a> {
    /// The current time.
    pub now: Instant,
    /// The worker's TCP stack.
    pub tcp: &'a mut TcpStack,
    /// Source ports for server-side connections.
    pub ports: &'a mut PortAllocator,
    /// Application timers.
    pub timers: &'a mut AppTimers,
    /// Pairs held outside the stack (fastl4 flows).
    pub other: InUse<'a>,
    /// The configuration snapshot (routes for SNAT automap).
    pub dp: &'a Dataplane,
}

struct VsSlot {
    vs: Arc<StandardVs>,
    listener: Option<ListenerHandle>,
    server_profile: ProfileId,
    cursor: PoolCursor,
}

/// One direction's relay state.
#[derive(Debug, Default, Clone, Copy)]
struct Direction {
    /// Bytes moved.
    bytes: u64,
    /// The FIN was passed on.
    fin_sent: bool,
}

struct Flow {
    vs: Arc<StandardVs>,
    vs_index: usize,
    client: ConnHandle,
    client_addr: SocketAddr,
    client_open: bool,
    /// Both directions of the client side ended (its handle is released once every
    /// byte it brought has been relayed).
    client_closed: bool,
    server: Option<ConnHandle>,
    /// As `client_closed`, for the server side.
    server_closed: bool,
    server_addr: Option<SocketAddr>,
    snat: Option<SocketAddr>,
    server_open: bool,
    connected: bool,
    member: Option<MemberId>,
    tried: ArrayVec<MemberId, MAX_TRIES>,
    timer: Option<TimerId>,
    started: Instant,
    up: Direction,
    down: Direction,
    /// Segment counts of each connection already added to the counters.
    seen: [(u64, u64); 2],
}

struct Slot {
    flow: Option<Flow>,
}

/// The proxy of one worker.
pub struct Proxy {
    worker: usize,
    vss: Vec<VsSlot>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    sweep: Option<TimerId>,
    last_snat: Option<SocketAddr>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("worker", &self.worker)
            .field("virtuals", &self.vss.len())
            .field("flows", &self.live)
            .finish()
    }
}

impl Proxy {
    /// A proxy with no virtual servers, for worker `worker`.
    pub fn new(worker: usize) -> Proxy {
        Proxy {
            worker,
            vss: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            sweep: None,
            last_snat: None,
        }
    }

    /// Flows open on this worker.
    pub fn flow_count(&self) -> usize {
        self.live
    }

    /// The local address of the last server-side connection opened (for tests and
    /// diagnostics).
    pub fn last_snat(&self) -> Option<SocketAddr> {
        self.last_snat
    }

    /// Listens for exactly the standard virtual servers of `dp`. A virtual server that
    /// stays (same name and address) keeps its listener; its flows keep the settings
    /// they started with. Removed ones stop listening; their flows run to their end.
    pub fn configure(&mut self, tcp: &mut TcpStack, now: Instant, dp: &Dataplane) {
        let mut old = std::mem::take(&mut self.vss);
        for vs in &dp.standard {
            let kept = old
                .iter()
                .position(|o| o.vs.name == vs.name && o.vs.vip == vs.vip)
                .map(|i| old.swap_remove(i));
            let listener = match kept.as_ref().and_then(|k| k.listener) {
                Some(l) => Some(l),
                None => {
                    let pid = tcp.add_profile(vs.client_profile.clone());
                    match tcp.listen(vs.vip, BACKLOG, pid) {
                        Ok(l) => {
                            tcp.set_listener_owner(l, Owner::new(app::PROXY, LISTENER_TAG));
                            Some(l)
                        }
                        Err(_) => None,
                    }
                }
            };
            let server_profile = tcp.add_profile(vs.server_profile.clone());
            self.vss.push(VsSlot {
                vs: vs.clone(),
                listener,
                server_profile,
                cursor: vs.lb.pool.cursor(self.worker),
            });
        }
        for o in old {
            if let Some(l) = o.listener {
                tcp.unlisten(now, l);
            }
        }
        for s in self.slots.iter_mut() {
            if let Some(f) = s.flow.as_mut() {
                f.vs_index = self
                    .vss
                    .iter()
                    .position(|v| v.vs.name == f.vs.name)
                    .unwrap_or(usize::MAX);
            }
        }
    }

    /// The proxied flows of this worker, for `show connections`.
    pub fn flows(&self, now: Instant) -> Vec<FlowView> {
        self.slots
            .iter()
            .filter_map(|s| s.flow.as_ref())
            .map(|f| FlowView {
                virtual_name: f.vs.name.clone(),
                client: f.client_addr,
                server: f.server_addr,
                snat: f.snat,
                state: f.state(),
                age_ms: (now - f.started).as_millis() as u64,
                bytes_in: f.up.bytes,
                bytes_out: f.down.bytes,
            })
            .collect()
    }

    /// A stack event of one of the proxy's listeners or connections.
    pub fn on_event(&mut self, cx: &mut ProxyCtx<'_>, owner: Owner, ev: Event) {
        match ev {
            Event::Accepted(l) => self.accept(cx, l),
            Event::Connected(h) => {
                let Some(i) = self.flow_of(owner, h) else {
                    return;
                };
                let f = self.flow_mut(i);
                if let Some(t) = f.timer.take() {
                    cx.timers.cancel(t);
                }
                f.connected = true;
                f.server_open = true;
                let vs = f.vs.clone();
                vs.counters.shard(self.worker).server.open();
                let _ = cx.tcp.arm_writable(h, vs.buffer_low);
                self.pump(cx, i);
            }
            Event::Readable(h) | Event::Writable(h) | Event::PeerClosed(h) => {
                if let Some(i) = self.flow_of(owner, h) {
                    self.pump(cx, i);
                }
            }
            Event::Closed(h) => {
                let Some(i) = self.flow_of(owner, h) else {
                    let _ = cx.tcp.close(cx.now, h);
                    return;
                };
                let f = self.flow_mut(i);
                if f.client == h {
                    f.client_closed = true;
                } else {
                    f.server_closed = true;
                }
                self.pump(cx, i);
            }
            Event::Reset(h, why) => {
                let Some(i) = self.flow_of(owner, h) else {
                    return;
                };
                let f = self.flow_mut(i);
                if f.client == h {
                    f.client_open = false;
                    let cause = match why {
                        ResetReason::TimedOut => ResetCause::Timeout,
                        _ => ResetCause::ClientReset,
                    };
                    self.end(cx, i, Some(cause));
                } else if !f.connected {
                    f.server = None;
                    self.retry(cx, i);
                } else {
                    f.server = None;
                    f.server_open = false;
                    let cause = match why {
                        ResetReason::TimedOut => ResetCause::Timeout,
                        _ => ResetCause::ServerReset,
                    };
                    self.end(cx, i, Some(cause));
                }
            }
        }
    }

    /// A fired timer of the proxy's.
    pub fn on_timer(&mut self, cx: &mut ProxyCtx<'_>, fired: Fired) {
        match fired.what {
            TIMER_SWEEP if fired.owner.tag == SWEEP_TAG => {
                self.sweep = None;
                self.sweep_members_down(cx);
                self.publish_buffers(cx.tcp);
                self.schedule_sweep(cx);
            }
            TIMER_CONNECT => {
                let i = fired.owner.tag as usize;
                let Some(f) = self.slots.get_mut(i).and_then(|s| s.flow.as_mut()) else {
                    return;
                };
                f.timer = None;
                if f.connected {
                    return;
                }
                if let Some(s) = f.server.take() {
                    let _ = cx.tcp.abort(cx.now, s);
                }
                self.retry(cx, i);
            }
            _ => {}
        }
    }

    fn flow_mut(&mut self, i: usize) -> &mut Flow {
        self.slots[i].flow.as_mut().expect("live flow")
    }

    /// The flow an event belongs to: the owner's slot, if it holds a flow with that
    /// connection (a stale event of a reused slot is ignored).
    fn flow_of(&self, owner: Owner, h: ConnHandle) -> Option<usize> {
        let i = owner.tag as usize;
        let f = self.slots.get(i)?.flow.as_ref()?;
        (f.client == h || f.server == Some(h)).then_some(i)
    }

    fn accept(&mut self, cx: &mut ProxyCtx<'_>, l: ListenerHandle) {
        let Some(vi) = self.vss.iter().position(|v| v.listener == Some(l)) else {
            return;
        };
        while let Some(h) = cx.tcp.accept(l) {
            let vs = self.vss[vi].vs.clone();
            let shard = vs.counters.shard(self.worker);
            let client_addr = cx.tcp.addresses(h).map(|(_, r)| r);
            let Some(client_addr) = client_addr else {
                continue;
            };
            if !vs.allows(client_addr.ip()) {
                shard.resets[ResetCause::NotAllowed as usize].inc();
                let _ = cx.tcp.abort(cx.now, h);
                continue;
            }
            if vs.connection_limit > 0 && vs.client_connections() >= vs.connection_limit as u64 {
                shard.resets[ResetCause::ConnectionLimit as usize].inc();
                let _ = cx.tcp.abort(cx.now, h);
                continue;
            }
            let i = self.insert(Flow {
                vs: vs.clone(),
                vs_index: vi,
                client: h,
                client_addr,
                client_open: true,
                client_closed: false,
                server: None,
                server_closed: false,
                server_addr: None,
                snat: None,
                server_open: false,
                connected: false,
                member: None,
                tried: ArrayVec::new(),
                timer: None,
                started: cx.now,
                up: Direction::default(),
                down: Direction::default(),
                seen: [(0, 0); 2],
            });
            shard.client.open();
            let _ = cx.tcp.set_owner(h, Owner::new(app::PROXY, i as u32));
            let _ = cx.tcp.arm_writable(h, vs.buffer_low);
            self.connect(cx, i);
            if self.sweep.is_none() {
                self.schedule_sweep(cx);
            }
        }
    }

    fn insert(&mut self, f: Flow) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].flow = Some(f);
                i as usize
            }
            None => {
                self.slots.push(Slot { flow: Some(f) });
                self.slots.len() - 1
            }
        }
    }

    /// Opens the server-side connection of flow `i` to the next member not tried yet;
    /// ends the flow (RST to the client) when there is none.
    fn connect(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        loop {
            let f = self.slots[i].flow.as_ref().expect("live flow");
            let vs = f.vs.clone();
            let shard = vs.counters.shard(self.worker);
            if f.tried.len() >= (vs.reselect_tries as usize).clamp(1, MAX_TRIES) {
                self.end(cx, i, Some(ResetCause::NoMember));
                return;
            }
            let client = f.client_addr;
            let tried = f.tried.clone();
            let b = &vs.lb;
            let cursor = match self.vss.get_mut(f.vs_index) {
                Some(v) if Arc::ptr_eq(&v.vs, &vs) => &mut v.cursor,
                _ => {
                    // The virtual server was reconfigured: its flows finish, none start.
                    self.end(cx, i, Some(ResetCause::NoMember));
                    return;
                }
            };
            let member = b
                .pool
                .candidates(cursor, client.ip(), &b.states, &b.counts)
                .find(|id| !tried.contains(id) && b.counts.try_acquire(*id));
            let Some(member) = member else {
                self.end(cx, i, Some(ResetCause::NoMember));
                return;
            };
            if !tried.is_empty() {
                shard.reselects.inc();
            }
            let server_addr = b.pool.member(member).addr;
            let vi = self.flow_mut(i).vs_index;
            let server_profile = self.vss[vi].server_profile;
            let f = self.flow_mut(i);
            f.tried.push(member);
            f.member = Some(member);
            f.server_addr = Some(server_addr);
            let Some(local) = source(cx, &vs.snat, client, server_addr) else {
                self.release_member(i);
                self.end(cx, i, Some(ResetCause::NoSourcePort));
                return;
            };
            match cx.tcp.connect(cx.now, local, server_addr, server_profile) {
                Ok(s) => {
                    let _ = cx.tcp.set_owner(s, Owner::new(app::PROXY, i as u32));
                    let c = self.flow_mut(i).client;
                    shape(cx, &vs, i, c, s, client, server_addr);
                    let deadline = cx.now + vs.connect_timeout;
                    let t =
                        cx.timers
                            .set(deadline, Owner::new(app::PROXY, i as u32), TIMER_CONNECT);
                    self.last_snat = Some(local);
                    let f = self.flow_mut(i);
                    f.server = Some(s);
                    f.snat = Some(local);
                    f.timer = Some(t);
                    return;
                }
                Err(TcpError::AddressInUse) => {
                    // Another member may still have a free pair.
                    self.release_member(i);
                }
                Err(_) => {
                    self.release_member(i);
                    self.end(cx, i, Some(ResetCause::StackLimit));
                    return;
                }
            }
        }
    }

    /// The server-side attempt of flow `i` failed before connecting: try another member.
    fn retry(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        if let Some(t) = f.timer.take() {
            cx.timers.cancel(t);
        }
        self.release_member(i);
        self.connect(cx, i);
    }

    fn release_member(&mut self, i: usize) {
        let f = self.flow_mut(i);
        if let Some(m) = f.member.take() {
            f.vs.lb.counts.release(m);
        }
    }

    /// Moves bytes both ways as far as buffers and windows allow, passes FINs on, and
    /// releases sides that ended once everything they brought was relayed; ends the
    /// flow when both are released.
    fn pump(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        self.relay_both(cx, i);
        let f = self.flow_mut(i);
        if f.client_open && f.client_closed && cx.tcp.readable_bytes(f.client) == 0 {
            let _ = cx.tcp.close(cx.now, f.client);
            f.client_open = false;
        }
        if let Some(s) = f.server {
            if f.server_closed && cx.tcp.readable_bytes(s) == 0 {
                let _ = cx.tcp.close(cx.now, s);
                f.server = None;
                f.server_open = false;
            }
        }
        if !f.client_open && f.server.is_none() && f.connected {
            self.end(cx, i, None);
        }
    }

    fn relay_both(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let worker = self.worker;
        let f = self.flow_mut(i);
        if !f.connected {
            return;
        }
        let Some(s) = f.server else {
            return;
        };
        let c = f.client;
        let (high, low) = (f.vs.buffer_high.max(1), f.vs.buffer_low);
        let up = relay(cx, c, s, high, low, &mut f.up);
        let down = relay(cx, s, c, high, low, &mut f.down);
        let shard = f.vs.counters.shard(worker);
        shard.client.bytes_in.add(up);
        shard.server.bytes_out.add(up);
        shard.server.bytes_in.add(down);
        shard.client.bytes_out.add(down);
        count_segments(cx.tcp, c, &mut f.seen[0], &shard.client);
        count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
    }

    /// Checks every flow's member; resets both sides of flows whose member is down.
    fn sweep_members_down(&mut self, cx: &mut ProxyCtx<'_>) {
        for i in 0..self.slots.len() {
            let down = self.slots[i].flow.as_ref().is_some_and(|f| {
                f.connected
                    && f.member
                        .is_some_and(|m| f.vs.lb.states.monitor(m) == MonitorStatus::Down)
            });
            if down {
                self.end(cx, i, Some(ResetCause::MemberDown));
            }
        }
    }

    fn schedule_sweep(&mut self, cx: &mut ProxyCtx<'_>) {
        if self.live > 0 && self.sweep.is_none() {
            let owner = Owner::new(app::PROXY, SWEEP_TAG);
            self.sweep = Some(cx.timers.set(cx.now + SWEEP_INTERVAL, owner, TIMER_SWEEP));
        }
    }

    /// Ends flow `i`: with a cause, both connections still open are reset and the cause
    /// counted; without, it ended cleanly. Gives the member's connection slot back.
    fn end(&mut self, cx: &mut ProxyCtx<'_>, i: usize, cause: Option<ResetCause>) {
        let Some(mut f) = self.slots[i].flow.take() else {
            return;
        };
        self.free.push(i as u32);
        self.live -= 1;
        if let Some(t) = f.timer.take() {
            cx.timers.cancel(t);
        }
        let shard = f.vs.counters.shard(self.worker);
        count_segments(cx.tcp, f.client, &mut f.seen[0], &shard.client);
        if let Some(s) = f.server {
            count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
        }
        if let Some(cause) = cause {
            shard.resets[cause as usize].inc();
            let _ = cx.tcp.abort(cx.now, f.client);
            if let Some(s) = f.server {
                let _ = cx.tcp.abort(cx.now, s);
            }
        } else {
            // Both sides ended cleanly; give the handles back if not done yet.
            let _ = cx.tcp.close(cx.now, f.client);
            if let Some(s) = f.server {
                let _ = cx.tcp.close(cx.now, s);
            }
        }
        shard.client.conns_closed.inc();
        if f.connected {
            shard.server.conns_closed.inc();
        }
        if let Some(m) = f.member.take() {
            f.vs.lb.counts.release(m);
        }
        if self.live == 0 {
            self.publish_buffers(cx.tcp);
        }
    }

    /// Updates the virtual servers' buffer-memory gauges for this worker.
    pub fn publish_buffers(&self, tcp: &TcpStack) {
        for v in &self.vss {
            let mut bytes = 0u64;
            for f in self.slots.iter().filter_map(|s| s.flow.as_ref()) {
                if Arc::ptr_eq(&f.vs, &v.vs) {
                    for h in [Some(f.client), f.server].into_iter().flatten() {
                        bytes += tcp.connection_buffer_bytes(h) as u64;
                    }
                }
            }
            v.vs.counters
                .shard(self.worker)
                .buffer_bytes
                .store(bytes, Ordering::Relaxed);
        }
    }
}

impl Flow {
    fn state(&self) -> FlowState {
        if !self.connected {
            FlowState::Connecting
        } else if self.up.fin_sent && self.down.fin_sent {
            FlowState::Closing
        } else if self.up.fin_sent || self.down.fin_sent {
            FlowState::HalfClosed
        } else {
            FlowState::Established
        }
    }
}

/// Moves bytes from `from`'s receive buffer to `to`'s send buffer while `to` holds less
/// than `high`; above it, waits for `to` to drain to `low`. Passes the FIN on after
/// the last byte. Returns the bytes moved.
fn relay(
    cx: &mut ProxyCtx<'_>,
    from: ConnHandle,
    to: ConnHandle,
    high: usize,
    low: usize,
    dir: &mut Direction,
) -> u64 {
    let mut moved = 0u64;
    loop {
        let queued = cx.tcp.send_unsent(to);
        if queued >= high {
            let _ = cx.tcp.arm_writable(to, low);
            break;
        }
        match cx.tcp.relay(from, to, high - queued) {
            Ok(0) => {
                if cx.tcp.read_closed(from) && !dir.fin_sent {
                    dir.fin_sent = true;
                    let _ = cx.tcp.shutdown(cx.now, to);
                }
                break;
            }
            Ok(n) => moved += n as u64,
            Err(TcpError::NotWritable) => {
                // `to` no longer sends (its peer reset it, or the FIN went already):
                // what `from` still sends cannot be delivered; leave it unread so its
                // window closes, the flow ends with the other side's events.
                break;
            }
            Err(_) => break,
        }
    }
    dir.bytes += moved;
    moved
}

fn count_segments(tcp: &TcpStack, h: ConnHandle, seen: &mut (u64, u64), side: &SideShard) {
    if let Some(c) = tcp.connection(h) {
        side.packets_in.add(c.segs_in.saturating_sub(seen.0));
        side.packets_out.add(c.segs_out.saturating_sub(seen.1));
        *seen = (c.segs_in, c.segs_out);
    }
}

/// Tags both connections of flow `i` with the shaping class the policy gives its
/// virtual server, member and client, on the port each side's traffic leaves by, so
/// the shapers slow them without dropping (see `crate::shaper`).
fn shape(
    cx: &mut ProxyCtx<'_>,
    vs: &StandardVs,
    i: usize,
    client_conn: ConnHandle,
    server_conn: ConnHandle,
    client: SocketAddr,
    member: SocketAddr,
) {
    let Some(policy) = cx.dp.shaping.as_ref() else {
        return;
    };
    let class = policy.classify(&vs.name, member, client.ip()) as u16;
    let hash = (i as u32).wrapping_mul(0x9E37_79B9);
    for (h, peer) in [(client_conn, client.ip()), (server_conn, member.ip())] {
        let Some(route) = cx.dp.routes.lookup(peer) else {
            continue;
        };
        let Some(vlan) = cx.dp.vlans.get(route.next_hop.vlan as usize) else {
            continue;
        };
        let shaping = crate::tcp::Shaping {
            port: vlan.iface,
            class,
            hash,
        };
        let _ = cx.tcp.set_shaping(h, Some(shaping));
    }
}

/// The local address and port of a server-side connection from `client` to `member`:
/// the egress self IP (automap), an address of the SNAT pool, or the client's own
/// address and port (no SNAT); a port whose replies reach this worker and that nothing
/// on it holds.
fn source(
    cx: &mut ProxyCtx<'_>,
    snat: &Snat,
    client: SocketAddr,
    member: SocketAddr,
) -> Option<SocketAddr> {
    let tcp = &*cx.tcp;
    let other = cx.other;
    let pick = |ports: &mut PortAllocator, ip: IpAddr, count: bool| {
        let taken = |p: u16| {
            let local = SocketAddr::new(ip, p);
            tcp.in_use(local, member) || other(local, member)
        };
        if count {
            ports.allocate(ip, member, taken)
        } else {
            ports.find(ip, member, taken)
        }
        .map(|p| SocketAddr::new(ip, p))
    };
    match snat {
        Snat::Automap => {
            // The member's family, whatever the client's: an IPv6 virtual server may
            // front IPv4 members.
            let route = cx.dp.routes.lookup(member.ip())?;
            let vlan = route.next_hop.vlan;
            let ip = match member.ip() {
                IpAddr::V4(m) => IpAddr::V4(cx.dp.source_for(vlan, m)?),
                IpAddr::V6(m) => IpAddr::V6(cx.dp.source_for_v6(vlan, m)?),
            };
            pick(cx.ports, ip, true)
        }
        Snat::Pool(_) if member.is_ipv6() => None,
        Snat::None if member.is_ipv6() != client.is_ipv6() => None,
        Snat::Pool(list) => {
            for a in list {
                if let Some(sa) = pick(cx.ports, IpAddr::V4(*a), false) {
                    return Some(sa);
                }
            }
            cx.ports.count_exhausted();
            None
        }
        Snat::None => (!tcp.in_use(client, member)).then_some(client),
    }
}

#[cfg(test)]
mod tests;
