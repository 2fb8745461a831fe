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
//! - **TLS** (`client_tls`, `server_tls`): a side may speak TLS ([`crate::tls`]); the
//!   relay then carries plaintext between the sessions (see `proxy/relay.rs`). With
//!   `client_tls` the member is chosen only once the client's handshake finished (a
//!   handshake flood opens no server-side connections); a member whose TLS handshake
//!   fails is replaced as one that refused. Handshake work is bounded per loop turn
//!   ([`HANDSHAKES_PER_TURN`]): flows beyond it wait for the next turn, so a storm of
//!   handshakes never stalls established flows on the same core. A TLS failure sends
//!   the peer its alert, counts the reason, and ends the flow; a client whose handshake
//!   finished gets `close_notify` and a FIN, never a bare RST, when the flow ends for
//!   a reason on the server side.

mod http_flow;
mod oneconnect;
mod relay;
mod vs;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrayvec::ArrayVec;

use crate::dataplane::{Dataplane, LbBinding, Snat};
use crate::host::{app, AppTimers, Fired};
use crate::lb::{MemberId, MonitorStatus, PoolCursor};
use crate::monitor::InUse;
use crate::ports::PortAllocator;
use crate::tcp::{
    ConnHandle, Event, ListenerHandle, Owner, ProfileId, ResetReason, TcpError, TcpStack,
};
use crate::time::Instant;
use crate::timer_wheel::TimerId;
use crate::tls::{TlsClientConfig, TlsServerConfig, TlsSession};

use http_flow::{HttpFlow, TIMER_HTTP};
use oneconnect::{IdleConn, IDLE_TAG};
use relay::{carry, flush, ingest, Direction, Side};

pub use vs::{
    HttpAnswer, HttpShard, HttpTotals, HttpVs, ProxyCounters, ProxyShard, ResetCause, SideShard,
    SideTotals, StandardVs, TlsShard, TlsTotals, DEFAULT_BUFFER_HIGH, DEFAULT_BUFFER_LOW,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESELECT_TRIES, TLS_SUITES,
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
/// Timer word: a TLS handshake deadline of the flow.
const TIMER_TLS: u32 = 3;
/// Most members one flow tries.
const MAX_TRIES: usize = 8;
/// TLS handshake steps (a flight of the peer's handshake messages processed: key
/// exchange, signature, verification) one worker does per loop turn; the rest wait for
/// the next turn.
pub const HANDSHAKES_PER_TURN: u32 = 8;

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
    /// A server-side connection kept for reuse (OneConnect), no client on it.
    Idle,
}

impl FlowState {
    /// Name in `show connections`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Connecting => "connecting",
            FlowState::Established => "established",
            FlowState::HalfClosed => "half-closed",
            FlowState::Closing => "closing",
            FlowState::Idle => "idle",
        }
    }
}

/// One proxied flow, for `show connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowView {
    /// The virtual server's name.
    pub virtual_name: String,
    /// The client's address and port (none for an idle server-side connection).
    pub client: Option<SocketAddr>,
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
    /// Cursors of the pools an HTTP policy routes to (indexed like `HttpVs::pools`).
    route_cursors: Vec<PoolCursor>,
    /// This worker's copy of the client TLS configuration (its own session cache).
    client_tls: Option<TlsServerConfig>,
    /// This worker's copy of the server TLS configuration (its own session cache).
    server_tls: Option<TlsClientConfig>,
}

/// Which side of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Client,
    Server,
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
    /// The client side's TLS session (`client_tls`).
    client_tls: Option<Box<TlsSession>>,
    /// The server side's TLS session (`server_tls`), once the member answered.
    server_tls: Option<Box<TlsSession>>,
    /// The TLS handshake deadline timer.
    tls_timer: Option<TimerId>,
    /// TLS bytes (encrypted, decrypted) of each side already added to the counters.
    tls_seen: [(u64, u64); 2],
    /// Waits in the proxy's deferred list for handshake budget.
    deferred: bool,
    /// HTTP (`http_profile`): requests one by one, each with its own server side.
    http: Option<Box<HttpFlow>>,
    /// The pool the current request was routed to (index in `HttpVs::pools`; `None`:
    /// the virtual server's own pool).
    route: Option<usize>,
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
    /// Handshake steps left this turn.
    budget: u32,
    /// Flows whose handshake waits for the next turn's budget.
    deferred: Vec<u32>,
    /// Idle server-side connections kept for reuse (OneConnect).
    idle: Vec<IdleConn>,
    /// Passive health: failed connections in a row per member (keyed by its pool's
    /// shared states and its index), on this worker.
    failures: crate::hashing::FastMap<(usize, u16), u32>,
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
            budget: HANDSHAKES_PER_TURN,
            deferred: Vec::new(),
            idle: Vec::new(),
            failures: crate::hashing::with_capacity(0),
        }
    }

    /// Starts a loop turn: a fresh handshake budget, spent first on the flows that
    /// waited for it.
    pub fn begin_turn(&mut self, cx: &mut ProxyCtx<'_>) {
        self.budget = HANDSHAKES_PER_TURN;
        let waiting = std::mem::take(&mut self.deferred);
        for &i in &waiting {
            let i = i as usize;
            if let Some(f) = self.slots.get_mut(i).and_then(|s| s.flow.as_mut()) {
                f.deferred = false;
                self.pump(cx, i);
            }
        }
        // Keep the allocation (flows deferred again pushed theirs meanwhile).
        let mut waiting = waiting;
        waiting.clear();
        if self.deferred.is_empty() {
            self.deferred = waiting;
        }
    }

    /// True when flows wait for the next turn's handshake budget (the worker must
    /// turn again at once).
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
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
                route_cursors: vs.http.as_ref().map_or_else(Vec::new, |h| {
                    h.pools
                        .iter()
                        .map(|(_, b)| b.pool.cursor(self.worker))
                        .collect()
                }),
                client_tls: vs.client_tls.as_ref().map(|(_, c)| c.for_worker()),
                server_tls: vs.server_tls.as_ref().map(|(_, c, n)| c.for_worker(*n)),
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

    /// The proxied flows of this worker and its idle server-side connections, for
    /// `show connections`.
    pub fn flows(&self, now: Instant) -> Vec<FlowView> {
        let mut out: Vec<FlowView> = self
            .slots
            .iter()
            .filter_map(|s| s.flow.as_ref())
            .map(|f| FlowView {
                virtual_name: f.vs.name.clone(),
                client: Some(f.client_addr),
                server: f.server_addr,
                snat: f.snat,
                state: f.state(),
                age_ms: (now - f.started).as_millis() as u64,
                bytes_in: f.up.bytes,
                bytes_out: f.down.bytes,
            })
            .collect();
        out.extend(self.idle_views(now));
        out
    }

    /// A stack event of one of the proxy's listeners or connections.
    pub fn on_event(&mut self, cx: &mut ProxyCtx<'_>, owner: Owner, ev: Event) {
        if owner.tag == IDLE_TAG {
            self.on_idle_event(cx, ev);
            return;
        }
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
                if vs.server_tls.is_some() && !self.start_server_tls(cx, i, h) {
                    return;
                }
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
                } else if !f.connected || f.server_handshaking() {
                    f.server = None;
                    f.connected = false;
                    self.retry(cx, i);
                } else if f.is_http() {
                    self.http_server_failed(cx, i);
                    self.pump(cx, i);
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
                self.expire_idle(cx);
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
            TIMER_TLS => {
                let i = fired.owner.tag as usize;
                let Some(f) = self.slots.get_mut(i).and_then(|s| s.flow.as_mut()) else {
                    return;
                };
                f.tls_timer = None;
                for t in [f.client_tls.as_deref_mut(), f.server_tls.as_deref_mut()]
                    .into_iter()
                    .flatten()
                {
                    let _ = t.handle_timeout(cx.now);
                }
                self.pump(cx, i);
            }
            TIMER_HTTP => {
                self.http_timeout(cx, fired.owner.tag as usize);
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
                client_tls: None,
                server_tls: None,
                tls_timer: None,
                tls_seen: [(0, 0); 2],
                deferred: false,
                http: vs.http.is_some().then(|| Box::new(HttpFlow::new())),
                route: None,
            });
            shard.client.open();
            let _ = cx.tcp.set_owner(h, Owner::new(app::PROXY, i as u32));
            let _ = cx.tcp.arm_writable(h, vs.buffer_low);
            if vs.http.is_some() {
                self.http_start(cx, i);
            }
            match self.vss[vi].client_tls.as_ref() {
                Some(cfg) => match TlsSession::server(cfg, cx.now) {
                    Ok(t) => {
                        shard.client_tls.started.inc();
                        let f = self.flow_mut(i);
                        f.client_tls = Some(Box::new(t));
                        self.arm_tls_timer(cx, i);
                        // The ClientHello may be here already.
                        self.pump(cx, i);
                    }
                    Err(e) => {
                        shard.client_tls.failure(e.reason);
                        self.end(cx, i, Some(ResetCause::Tls));
                    }
                },
                None if vs.http.is_some() => self.pump(cx, i),
                None => self.connect(cx, i),
            }
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

    /// Opens the server-side connection of flow `i` to the next member not tried yet
    /// (an HTTP flow first takes an idle connection to it, if one is kept); gives up
    /// when there is none (`give_up`).
    fn connect(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        loop {
            let f = self.slots[i].flow.as_ref().expect("live flow");
            let vs = f.vs.clone();
            let shard = vs.counters.shard(self.worker);
            if f.tried.len() >= (vs.reselect_tries as usize).clamp(1, MAX_TRIES) {
                self.give_up(cx, i, ResetCause::NoMember);
                return;
            }
            let client = f.client_addr;
            let tried = f.tried.clone();
            let route = f.route;
            let fresh_only = f.http.as_ref().is_some_and(|h| h.fresh_only());
            let b = f.binding().clone();
            let cursor = match self.vss.get_mut(f.vs_index) {
                Some(v) if Arc::ptr_eq(&v.vs, &vs) => match route {
                    Some(r) => v.route_cursors.get_mut(r),
                    None => Some(&mut v.cursor),
                },
                _ => None,
            };
            let Some(cursor) = cursor else {
                // The virtual server was reconfigured: its flows finish, none start.
                self.give_up(cx, i, ResetCause::NoMember);
                return;
            };
            let member = b
                .pool
                .candidates(cursor, client.ip(), &b.states, &b.counts)
                .find(|id| !tried.contains(id) && b.counts.try_acquire(*id));
            let Some(member) = member else {
                self.give_up(cx, i, ResetCause::NoMember);
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
            if f.http.is_some() && !fresh_only && self.take_idle(cx, i, member) {
                shard.http.server_connections_reused.inc();
                let f = self.flow_mut(i);
                if let Some(h) = f.http.as_deref_mut() {
                    h.mark_reused(true);
                }
                if let Some(s) = f.server {
                    let c = f.client;
                    shape(cx, &vs, i, c, s, client, server_addr);
                }
                return;
            }
            let f = self.flow_mut(i);
            if let Some(h) = f.http.as_deref_mut() {
                h.mark_reused(false);
            }
            f.server_addr = Some(server_addr);
            let Some(local) = source(cx, &vs.snat, client, server_addr) else {
                self.release_member(i);
                self.give_up(cx, i, ResetCause::NoSourcePort);
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
                    if f.http.is_some() {
                        shard.http.server_connections_opened.inc();
                    }
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
                    self.give_up(cx, i, ResetCause::StackLimit);
                    return;
                }
            }
        }
    }

    /// No server side could be had for flow `i`: a plain flow is reset (counted by
    /// `cause`); an HTTP flow's client gets an answer.
    fn give_up(&mut self, cx: &mut ProxyCtx<'_>, i: usize, cause: ResetCause) {
        if self.flow_mut(i).is_http() {
            self.http_no_member(cx, i);
        } else {
            self.end(cx, i, Some(cause));
        }
    }

    /// The server-side attempt of flow `i` failed before connecting: try another member.
    fn retry(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let worker = self.worker;
        self.passive_result(i, false);
        let f = self.flow_mut(i);
        if let Some(t) = f.timer.take() {
            cx.timers.cancel(t);
        }
        if let Some(t) = f.server_tls.take() {
            f.end_tls_side(worker, Which::Server, &t);
        }
        self.release_member(i);
        self.connect(cx, i);
        if self.slots[i].flow.as_ref().is_some_and(|f| f.is_http()) {
            self.pump(cx, i);
        }
    }

    fn release_member(&mut self, i: usize) {
        let f = self.flow_mut(i);
        if let Some(m) = f.member.take() {
            f.binding().counts.release(m);
        }
    }

    /// Moves bytes both ways as far as buffers and windows allow, passes FINs on, and
    /// releases sides that ended once everything they brought was relayed; ends the
    /// flow when both are released.
    fn pump(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        if self.slots[i].flow.is_none() {
            return;
        }
        if !self.handshake(cx, i) {
            return;
        }
        if self.flow_mut(i).is_http() {
            self.http_pump(cx, i);
            if self.slots[i].flow.is_some() {
                self.check_tls(cx, i);
            }
            return;
        }
        self.relay_both(cx, i);
        if !self.check_tls(cx, i) {
            return;
        }
        self.close_when_done(cx, i);
    }

    /// Releases the sides of flow `i` that ended once everything they brought went
    /// on; ends the flow when both are released.
    fn close_when_done(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        let held =
            |t: &Option<Box<TlsSession>>| t.as_ref().is_some_and(|t| !t.plaintext().is_empty());
        // A side is released once everything it brought went on: nothing unread, no
        // plaintext held, and, toward a TLS peer, its end passed on (the records and
        // `close_notify` written out, which may wait for send-buffer room).
        let up_done = f.server_tls.is_none() || f.up.fin_sent || f.server.is_none();
        let down_done = f.client_tls.is_none() || f.down.fin_sent || !f.client_open;
        if f.client_open
            && f.client_closed
            && cx.tcp.readable_bytes(f.client) == 0
            && !held(&f.client_tls)
            && up_done
        {
            let _ = cx.tcp.close(cx.now, f.client);
            f.client_open = false;
        }
        if let Some(s) = f.server {
            if f.server_closed && cx.tcp.readable_bytes(s) == 0 && !held(&f.server_tls) && down_done
            {
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
        let marks = (f.vs.buffer_high.max(1), f.vs.buffer_low);
        let up = carry(
            cx.tcp,
            cx.now,
            side(c, &mut f.client_tls),
            side(s, &mut f.server_tls),
            marks,
            &mut f.up,
        );
        let down = carry(
            cx.tcp,
            cx.now,
            side(s, &mut f.server_tls),
            side(c, &mut f.client_tls),
            marks,
            &mut f.down,
        );
        let shard = f.vs.counters.shard(worker);
        shard.client.bytes_in.add(up);
        shard.server.bytes_out.add(up);
        shard.server.bytes_in.add(down);
        shard.client.bytes_out.add(down);
        count_segments(cx.tcp, c, &mut f.seen[0], &shard.client);
        count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
        f.count_tls_bytes(worker);
    }

    /// Runs the TLS handshakes of flow `i` as far as the turn's budget allows: the
    /// peers' handshake flights taken in, the answers written out, handshakes that
    /// finished counted; with `client_tls`, the member is chosen once the client's
    /// handshake finished. False when the flow ended (a failure) or waits for budget.
    fn handshake(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let worker = self.worker;
        let mut budget = self.budget;
        let f = self.flow_mut(i);
        let mut starved = false;
        let sides = [
            (Some(f.client), f.client_tls.as_deref_mut(), Which::Client),
            (f.server, f.server_tls.as_deref_mut(), Which::Server),
        ];
        for (conn, tls, which) in sides {
            let (Some(h), Some(t)) = (conn, tls) else {
                continue;
            };
            if !t.is_handshaking() || t.error().is_some() {
                continue;
            }
            if cx.tcp.readable_bytes(h) > 0 {
                if budget == 0 {
                    starved = true;
                    continue;
                }
                budget -= 1;
                ingest(cx.tcp, h, t);
            }
            flush(cx.tcp, h, t);
            if t.take_handshake_done() {
                let shard = f.vs.counters.shard(worker);
                match which {
                    Which::Client => shard.client_tls.handshake(t),
                    Which::Server => shard.server_tls.handshake(t),
                }
            }
        }
        let defer = starved && !f.deferred;
        f.deferred |= starved;
        self.budget = budget;
        if defer {
            self.deferred.push(i as u32);
        }
        if !self.check_tls(cx, i) {
            return false;
        }
        let f = self.flow_mut(i);
        let client_ready = f.client_tls.as_ref().is_some_and(|t| !t.is_handshaking());
        if client_ready && f.tried.is_empty() && f.server.is_none() && !f.is_http() {
            // The client's handshake finished: now choose its member.
            self.connect(cx, i);
            return self.slots[i].flow.is_some();
        }
        !starved || self.flow_mut(i).connected
    }

    /// Ends flow `i` if one of its TLS sessions failed: counted by reason, the alert
    /// sent to that side's peer before its FIN. A member whose handshake failed is
    /// replaced as one that refused. False when the flow ended or moved on.
    fn check_tls(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let shard = f.vs.counters.shard(worker);
        if let Some(e) = f.client_tls.as_ref().and_then(|t| t.error()).cloned() {
            shard.client_tls.failure(e.reason);
            if let Some(t) = f.client_tls.as_deref_mut() {
                flush(cx.tcp, f.client, t);
            }
            // What the client sent after the failure is discarded (closing with unread
            // bytes would reset); the alert leaves before the FIN, and the stack
            // releases the handle.
            let unread = cx.tcp.readable_bytes(f.client);
            let _ = cx.tcp.consume(f.client, unread);
            let _ = cx.tcp.close(cx.now, f.client);
            f.client_open = false;
            self.end(cx, i, Some(ResetCause::Tls));
            return false;
        }
        let Some(e) = f.server_tls.as_ref().and_then(|t| t.error()).cloned() else {
            return true;
        };
        shard.server_tls.failure(e.reason);
        let handshaking = f.server_handshaking();
        let t = f.server_tls.take();
        if let Some(t) = t.as_deref() {
            f.end_tls_side(worker, Which::Server, t);
        }
        if let (Some(s), Some(mut t)) = (f.server, t) {
            flush(cx.tcp, s, &mut t);
            let unread = cx.tcp.readable_bytes(s);
            let _ = cx.tcp.consume(s, unread);
            let _ = cx.tcp.close(cx.now, s);
        }
        f.server = None;
        f.server_open = false;
        if handshaking {
            // As a member that refused: the next one is tried.
            f.connected = false;
            self.retry(cx, i);
        } else {
            self.end(cx, i, Some(ResetCause::Tls));
        }
        false
    }

    /// Starts the TLS session toward the member of flow `i` (connection `h` just
    /// connected); false when the flow ended or moved on.
    fn start_server_tls(&mut self, cx: &mut ProxyCtx<'_>, i: usize, h: ConnHandle) -> bool {
        let f = self.flow_mut(i);
        let vs = f.vs.clone();
        let server = f.server_addr.map(|a| a.ip());
        let vs_index = f.vs_index;
        let cfg = self
            .vss
            .get(vs_index)
            .filter(|v| Arc::ptr_eq(&v.vs, &vs))
            .and_then(|v| v.server_tls.as_ref());
        let (Some(cfg), Some(server)) = (cfg, server) else {
            // Reconfigured meanwhile: this flow starts nothing new.
            self.end(cx, i, Some(ResetCause::NoMember));
            return false;
        };
        let shard = vs.counters.shard(self.worker);
        match TlsSession::client(cfg, server, cx.now) {
            Ok(mut t) => {
                shard.server_tls.started.inc();
                flush(cx.tcp, h, &mut t);
                self.flow_mut(i).server_tls = Some(Box::new(t));
                self.arm_tls_timer(cx, i);
                true
            }
            Err(e) => {
                shard.server_tls.failure(e.reason);
                self.end(cx, i, Some(ResetCause::Tls));
                false
            }
        }
    }

    /// Arms the flow's timer at its earliest TLS handshake deadline.
    fn arm_tls_timer(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        let deadline = crate::time::earliest([
            f.client_tls.as_ref().and_then(|t| t.poll_timeout()),
            f.server_tls.as_ref().and_then(|t| t.poll_timeout()),
        ]);
        if let Some(t) = f.tls_timer.take() {
            cx.timers.cancel(t);
        }
        if let Some(d) = deadline {
            let owner = Owner::new(app::PROXY, i as u32);
            f.tls_timer = Some(cx.timers.set(d, owner, TIMER_TLS));
        }
    }

    /// Checks every flow's member; resets both sides of flows whose member is down.
    fn sweep_members_down(&mut self, cx: &mut ProxyCtx<'_>) {
        for i in 0..self.slots.len() {
            let down = self.slots[i].flow.as_ref().is_some_and(|f| {
                f.connected
                    && f.member
                        .is_some_and(|m| f.binding().states.monitor(m) == MonitorStatus::Down)
            });
            if !down {
                continue;
            }
            if self.flow_mut(i).is_http() {
                self.http_server_failed(cx, i);
                self.pump(cx, i);
            } else {
                self.end(cx, i, Some(ResetCause::MemberDown));
            }
        }
    }

    fn schedule_sweep(&mut self, cx: &mut ProxyCtx<'_>) {
        if (self.live > 0 || !self.idle.is_empty()) && self.sweep.is_none() {
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
        if f.deferred {
            self.deferred.retain(|&d| d as usize != i);
        }
        let http_timer = f.http.as_deref_mut().and_then(|h| h.take_timer());
        for t in [f.timer.take(), f.tls_timer.take(), http_timer]
            .into_iter()
            .flatten()
        {
            cx.timers.cancel(t);
        }
        let vs = f.vs.clone();
        let shard = vs.counters.shard(self.worker);
        count_segments(cx.tcp, f.client, &mut f.seen[0], &shard.client);
        if let Some(s) = f.server {
            count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
        }
        let client_tls = f.client_tls.take();
        if let Some(t) = client_tls.as_deref() {
            f.end_tls_side(self.worker, Which::Client, t);
        }
        if let Some(t) = f.server_tls.take() {
            f.end_tls_side(self.worker, Which::Server, &t);
        }
        if let Some(cause) = cause {
            shard.resets[cause as usize].inc();
            match client_tls {
                // A client whose handshake finished hears of the end in TLS terms:
                // `close_notify`, then the FIN.
                Some(mut t) if f.client_open && !t.is_handshaking() && t.error().is_none() => {
                    let _ = t.close();
                    flush(cx.tcp, f.client, &mut t);
                    let _ = cx.tcp.close(cx.now, f.client);
                }
                _ if f.client_open => {
                    let _ = cx.tcp.abort(cx.now, f.client);
                }
                _ => {}
            }
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
            f.binding().counts.release(m);
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
                    for t in [&f.client_tls, &f.server_tls].into_iter().flatten() {
                        bytes += t.buffer_bytes() as u64;
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
    /// The pool binding the flow's member comes from: the policy's pool for the
    /// current HTTP request, else the virtual server's.
    fn binding(&self) -> &LbBinding {
        match (self.route, self.vs.http.as_deref()) {
            (Some(r), Some(h)) => h.pools.get(r).map_or(&self.vs.lb, |(_, b)| b),
            _ => &self.vs.lb,
        }
    }

    /// True while the member's TLS handshake runs (the member counts as connecting).
    fn server_handshaking(&self) -> bool {
        self.server_tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Adds the TLS bytes of both sides not counted yet.
    fn count_tls_bytes(&mut self, worker: usize) {
        let shard = self.vs.counters.shard(worker);
        if let Some(t) = self.client_tls.as_deref() {
            tls_bytes(&shard.client_tls, &mut self.tls_seen[0], t);
        }
        if let Some(t) = self.server_tls.as_deref() {
            tls_bytes(&shard.server_tls, &mut self.tls_seen[1], t);
        }
    }

    /// Counts the end of one side's TLS session `t` (taken out of the flow): its last
    /// bytes, and one connection fewer.
    fn end_tls_side(&mut self, worker: usize, which: Which, t: &TlsSession) {
        let shard = self.vs.counters.shard(worker);
        let (tls, seen) = match which {
            Which::Client => (&shard.client_tls, &mut self.tls_seen[0]),
            Which::Server => (&shard.server_tls, &mut self.tls_seen[1]),
        };
        tls_bytes(tls, seen, t);
        *seen = (0, 0);
        tls.ended.inc();
    }

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

/// One side of a flow for the relay.
fn side(conn: ConnHandle, tls: &mut Option<Box<TlsSession>>) -> Side<'_> {
    Side {
        conn,
        tls: tls.as_deref_mut(),
    }
}

/// Adds the bytes `t` encrypted and decrypted since `seen` to `tls`.
fn tls_bytes(tls: &TlsShard, seen: &mut (u64, u64), t: &TlsSession) {
    let (enc, dec) = t.bytes();
    tls.bytes_encrypted.add(enc.saturating_sub(seen.0));
    tls.bytes_decrypted.add(dec.saturating_sub(seen.1));
    *seen = (enc, dec);
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
