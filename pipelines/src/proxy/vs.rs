//! A `standard` virtual server as the data plane sees it, and its counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::addr::Prefix;
use crate::counters::Counter;
use crate::dataplane::{LbBinding, Padded, Snat};
use crate::http::{HttpError, HttpProfile, Policy};
use crate::tcp::TcpProfile;
use crate::tls::{TlsClientConfig, TlsFailure, TlsServerConfig, TlsSession, TlsVersion};

/// Default `proxy_buffer_high`: bytes queued toward one side before reading the other
/// stops.
pub const DEFAULT_BUFFER_HIGH: usize = 128 * 1024;
/// Default `proxy_buffer_low`: reading resumes once the queue drains to this.
pub const DEFAULT_BUFFER_LOW: usize = 96 * 1024;
/// Default server-side connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of members a flow tries.
pub const DEFAULT_RESELECT_TRIES: u32 = 3;

/// Why the proxy reset a flow, counted per virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ResetCause {
    /// The client reset its connection (the server side is reset after it).
    ClientReset,
    /// The member reset an established server-side connection.
    ServerReset,
    /// No member accepted the connection within `reselect_tries` attempts.
    NoMember,
    /// No source port was free for the server-side connection.
    NoSourcePort,
    /// The client's address is not in the virtual server's allow-list.
    NotAllowed,
    /// The virtual server's connection limit was reached.
    ConnectionLimit,
    /// The worker's TCP stack refused the server-side connection (its connection or
    /// memory limit).
    StackLimit,
    /// The member went down (its monitor) while the flow was open.
    MemberDown,
    /// One side timed out (retransmissions, keepalive or idle timeout).
    Timeout,
    /// A TLS handshake or record failed on one side (counted by reason in the side's
    /// [`TlsShard`]); the peer got an alert.
    Tls,
}

impl ResetCause {
    /// Every cause, in counter order.
    pub const ALL: [ResetCause; 10] = [
        ResetCause::ClientReset,
        ResetCause::ServerReset,
        ResetCause::NoMember,
        ResetCause::NoSourcePort,
        ResetCause::NotAllowed,
        ResetCause::ConnectionLimit,
        ResetCause::StackLimit,
        ResetCause::MemberDown,
        ResetCause::Timeout,
        ResetCause::Tls,
    ];

    /// Name in `show` output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetCause::ClientReset => "client_reset",
            ResetCause::ServerReset => "server_reset",
            ResetCause::NoMember => "no_member",
            ResetCause::NoSourcePort => "no_source_port",
            ResetCause::NotAllowed => "not_allowed",
            ResetCause::ConnectionLimit => "connection_limit",
            ResetCause::StackLimit => "stack_limit",
            ResetCause::MemberDown => "member_down",
            ResetCause::Timeout => "timeout",
            ResetCause::Tls => "tls",
        }
    }
}

/// One side's counters in one worker's shard.
#[derive(Debug, Default)]
pub struct SideShard {
    /// Connections opened.
    pub conns_total: Counter,
    /// Connections ended.
    pub conns_closed: Counter,
    /// Most connections this worker held at once.
    pub conns_peak: AtomicU64,
    /// Payload bytes received from this side's peer.
    pub bytes_in: Counter,
    /// Payload bytes sent to this side's peer.
    pub bytes_out: Counter,
    /// Segments received from this side's peer.
    pub packets_in: Counter,
    /// Segments sent to this side's peer.
    pub packets_out: Counter,
}

impl SideShard {
    fn current(&self) -> u64 {
        self.conns_total
            .get()
            .saturating_sub(self.conns_closed.get())
    }

    /// Counts a new connection and raises the peak.
    pub fn open(&self) {
        self.conns_total.inc();
        self.conns_peak.fetch_max(self.current(), Ordering::Relaxed);
    }
}

/// One worker's share of a standard virtual server's counters.
#[derive(Debug, Default)]
pub struct ProxyShard {
    /// The client side.
    pub client: SideShard,
    /// The server side.
    pub server: SideShard,
    /// Server-side connection attempts beyond the first of a flow.
    pub reselects: Counter,
    /// Flows reset, by [`ResetCause`].
    pub resets: [Counter; ResetCause::ALL.len()],
    /// TLS toward clients (`client_tls`).
    pub client_tls: TlsShard,
    /// TLS toward members (`server_tls`).
    pub server_tls: TlsShard,
    /// Bytes the proxy holds for this virtual server's flows on this worker (receive
    /// and send buffers of both sides), as of the last update.
    pub buffer_bytes: AtomicU64,
    /// HTTP (`http_profile`).
    pub http: HttpShard,
}

/// Answers the proxy gives itself instead of a member's, counted by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum HttpAnswer {
    /// `408`: the request head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// `502`: the member failed before a response (or sent a malformed one).
    BadGateway,
    /// `503`: no member of the pool is available.
    NoMember,
    /// `504`: the member did not answer within `response_timeout`.
    GatewayTimeout,
}

impl HttpAnswer {
    /// Every answer, in counter order.
    pub const ALL: [HttpAnswer; 4] = [
        HttpAnswer::HeaderTimeout,
        HttpAnswer::BadGateway,
        HttpAnswer::NoMember,
        HttpAnswer::GatewayTimeout,
    ];

    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            HttpAnswer::HeaderTimeout => 408,
            HttpAnswer::BadGateway => 502,
            HttpAnswer::NoMember => 503,
            HttpAnswer::GatewayTimeout => 504,
        }
    }

    /// Name in `show` output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpAnswer::HeaderTimeout => "header_timeout",
            HttpAnswer::BadGateway => "bad_gateway",
            HttpAnswer::NoMember => "no_member",
            HttpAnswer::GatewayTimeout => "gateway_timeout",
        }
    }
}

/// One worker's HTTP counters of a virtual server.
#[derive(Debug, Default)]
pub struct HttpShard {
    /// Requests received from clients (head complete).
    pub requests: Counter,
    /// Responses passed to clients, by status class: 2xx, 3xx, 4xx and 5xx at
    /// indices 0 to 3, interim 1xx at index 4.
    pub responses: [Counter; 5],
    /// Requests refused by the engine, by [`HttpError`] (the client got its status).
    pub refused: [Counter; HttpError::ALL.len()],
    /// Answers the proxy gave itself, by [`HttpAnswer`].
    pub answers: [Counter; HttpAnswer::ALL.len()],
    /// Requests sent on a reused idle server-side connection (OneConnect).
    pub server_connections_reused: Counter,
    /// Server-side connections opened for requests.
    pub server_connections_opened: Counter,
    /// Requests sent again on a fresh connection after a reused one died before any
    /// response byte.
    pub retries: Counter,
    /// GETs continued from another member after theirs died mid-response.
    pub resumes_attempted: Counter,
    /// Resumes whose new member's bytes were spliced into the client's response.
    pub resumes_succeeded: Counter,
    /// Resumes refused (the other member's answer did not match, or none was
    /// available): the client's connection was aborted.
    pub resumes_refused: Counter,
    /// Requests routed by a policy rule (not the default pool).
    pub policy_routed: Counter,
    /// Members marked down by passive health.
    pub passive_down: Counter,
}

/// A virtual server's HTTP counters summed over the workers (`show virtual --json`
/// under `http`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpTotals {
    /// Requests received.
    pub requests: u64,
    /// Responses by status class: `2xx`, `3xx`, `4xx`, `5xx`, `1xx` (interim).
    pub responses: [u64; 5],
    /// Requests refused by the engine, indexed like [`HttpError::ALL`].
    pub refused: [u64; HttpError::ALL.len()],
    /// The proxy's own answers, indexed like [`HttpAnswer::ALL`].
    pub answers: [u64; HttpAnswer::ALL.len()],
    /// Requests sent on reused server-side connections.
    pub server_connections_reused: u64,
    /// Server-side connections opened for requests.
    pub server_connections_opened: u64,
    /// Requests retried on a fresh connection.
    pub retries: u64,
    /// Resumes attempted.
    pub resumes_attempted: u64,
    /// Resumes spliced in.
    pub resumes_succeeded: u64,
    /// Resumes refused.
    pub resumes_refused: u64,
    /// Requests routed by a policy rule.
    pub policy_routed: u64,
    /// Members marked down by passive health.
    pub passive_down: u64,
}

impl HttpTotals {
    fn add(&mut self, s: &HttpShard) {
        self.requests += s.requests.get();
        for (t, c) in self.responses.iter_mut().zip(&s.responses) {
            *t += c.get();
        }
        for (t, c) in self.refused.iter_mut().zip(&s.refused) {
            *t += c.get();
        }
        for (t, c) in self.answers.iter_mut().zip(&s.answers) {
            *t += c.get();
        }
        self.server_connections_reused += s.server_connections_reused.get();
        self.server_connections_opened += s.server_connections_opened.get();
        self.retries += s.retries.get();
        self.resumes_attempted += s.resumes_attempted.get();
        self.resumes_succeeded += s.resumes_succeeded.get();
        self.resumes_refused += s.resumes_refused.get();
        self.policy_routed += s.policy_routed.get();
        self.passive_down += s.passive_down.get();
    }
}

/// The HTTP layer of a `standard` virtual server: its profile, its policy and the
/// pools the policy's rules name.
#[derive(Debug, Clone)]
pub struct HttpVs {
    /// The `[[http_profile]]`.
    pub profile: HttpProfile,
    /// The `[[policy]]` named by the virtual server, if any.
    pub policy: Option<Policy>,
    /// The pools the policy's rules send requests to (by index), with their names.
    pub pools: Vec<(String, LbBinding)>,
}

/// The cipher suites Rouge negotiates, in counter order (TLS 1.3 first).
pub const TLS_SUITES: [&str; 9] = [
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// One side's TLS counters in one worker's shard.
#[derive(Debug, Default)]
pub struct TlsShard {
    /// Full handshakes completed, by version: [TLS 1.2, TLS 1.3].
    pub full: [Counter; 2],
    /// Resumed handshakes completed, by version: [TLS 1.2, TLS 1.3].
    pub resumed: [Counter; 2],
    /// Handshakes completed, by suite (indexed like [`TLS_SUITES`]).
    pub by_suite: [Counter; TLS_SUITES.len()],
    /// Failures, indexed like [`TlsFailure::ALL`].
    pub failures: [Counter; TlsFailure::ALL.len()],
    /// Connections that started a handshake.
    pub started: Counter,
    /// Connections that ended (after a handshake or not).
    pub ended: Counter,
    /// Application bytes decrypted.
    pub bytes_decrypted: Counter,
    /// Application bytes encrypted.
    pub bytes_encrypted: Counter,
}

impl TlsShard {
    /// Counts the completed handshake of `s`.
    pub fn handshake(&self, s: &TlsSession) {
        let v = usize::from(s.version() == Some(TlsVersion::V1_3));
        if s.resumed() {
            self.resumed[v].inc();
        } else {
            self.full[v].inc();
        }
        if let Some(i) = s
            .suite()
            .and_then(|n| TLS_SUITES.iter().position(|x| *x == n))
        {
            self.by_suite[i].inc();
        }
    }

    /// Counts a failure.
    pub fn failure(&self, reason: TlsFailure) {
        self.failures[reason as usize].inc();
    }
}

/// One side's TLS counters summed over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsTotals {
    /// TLS connections open now.
    pub current: u64,
    /// Full handshakes: [TLS 1.2, TLS 1.3].
    pub full: [u64; 2],
    /// Resumed handshakes: [TLS 1.2, TLS 1.3].
    pub resumed: [u64; 2],
    /// Handshakes by suite, indexed like [`TLS_SUITES`].
    pub by_suite: [u64; TLS_SUITES.len()],
    /// Failures, indexed like [`TlsFailure::ALL`].
    pub failures: [u64; TlsFailure::ALL.len()],
    /// Application bytes decrypted.
    pub bytes_decrypted: u64,
    /// Application bytes encrypted.
    pub bytes_encrypted: u64,
}

impl TlsTotals {
    fn add(&mut self, s: &TlsShard) {
        self.current += s.started.get().saturating_sub(s.ended.get());
        for (t, c) in self.full.iter_mut().zip(&s.full) {
            *t += c.get();
        }
        for (t, c) in self.resumed.iter_mut().zip(&s.resumed) {
            *t += c.get();
        }
        for (t, c) in self.by_suite.iter_mut().zip(&s.by_suite) {
            *t += c.get();
        }
        for (t, c) in self.failures.iter_mut().zip(&s.failures) {
            *t += c.get();
        }
        self.bytes_decrypted += s.bytes_decrypted.get();
        self.bytes_encrypted += s.bytes_encrypted.get();
    }

    /// Failures of one reason.
    pub fn failed(&self, reason: TlsFailure) -> u64 {
        self.failures[reason as usize]
    }
}

/// A side's counters summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SideTotals {
    /// Connections open now.
    pub current: u64,
    /// Connections opened.
    pub total: u64,
    /// Most connections held at once (the sum of each worker's peak: exact with one
    /// worker, an upper bound with more).
    pub maximum: u64,
    /// Payload bytes received from the peer.
    pub bytes_in: u64,
    /// Payload bytes sent to the peer.
    pub bytes_out: u64,
    /// Segments received from the peer.
    pub packets_in: u64,
    /// Segments sent to the peer.
    pub packets_out: u64,
}

/// The counters of one standard virtual server, one shard per worker.
#[derive(Debug)]
pub struct ProxyCounters {
    shards: Box<[Padded<ProxyShard>]>,
}

impl ProxyCounters {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> Arc<ProxyCounters> {
        Arc::new(ProxyCounters {
            shards: (0..workers.max(1)).map(|_| Padded::default()).collect(),
        })
    }

    /// The shard of worker `w` (the last one if out of range).
    #[inline]
    pub fn shard(&self, w: usize) -> &ProxyShard {
        &self.shards[w.min(self.shards.len() - 1)].0
    }

    fn side(&self, pick: impl Fn(&ProxyShard) -> &SideShard) -> SideTotals {
        let mut t = SideTotals::default();
        for s in self.shards.iter() {
            let s = pick(&s.0);
            t.total += s.conns_total.get();
            t.current += s.current();
            t.maximum += s.conns_peak.load(Ordering::Relaxed);
            t.bytes_in += s.bytes_in.get();
            t.bytes_out += s.bytes_out.get();
            t.packets_in += s.packets_in.get();
            t.packets_out += s.packets_out.get();
        }
        t
    }

    /// The client side over all workers.
    pub fn client_side(&self) -> SideTotals {
        self.side(|s| &s.client)
    }

    /// The server side over all workers.
    pub fn server_side(&self) -> SideTotals {
        self.side(|s| &s.server)
    }

    /// Reselects over all workers.
    pub fn reselects(&self) -> u64 {
        self.shards.iter().map(|s| s.0.reselects.get()).sum()
    }

    /// Resets of one cause over all workers.
    pub fn resets(&self, cause: ResetCause) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.resets[cause as usize].get())
            .sum()
    }

    /// The client side's TLS over all workers.
    pub fn client_tls(&self) -> TlsTotals {
        let mut t = TlsTotals::default();
        for s in self.shards.iter() {
            t.add(&s.0.client_tls);
        }
        t
    }

    /// The server side's TLS over all workers.
    pub fn server_tls(&self) -> TlsTotals {
        let mut t = TlsTotals::default();
        for s in self.shards.iter() {
            t.add(&s.0.server_tls);
        }
        t
    }

    /// HTTP counters over all workers.
    pub fn http(&self) -> HttpTotals {
        let mut t = HttpTotals::default();
        for s in self.shards.iter() {
            t.add(&s.0.http);
        }
        t
    }

    /// Buffer bytes held over all workers.
    pub fn buffer_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.buffer_bytes.load(Ordering::Relaxed))
            .sum()
    }
}

/// A `standard` virtual server: a full proxy from `vip` to the members of its pool.
#[derive(Debug, Clone)]
pub struct StandardVs {
    /// Name used by the configuration.
    pub name: String,
    /// The virtual address and port clients connect to.
    pub vip: SocketAddr,
    /// The pool: members, method, shared states and connection counts.
    pub lb: LbBinding,
    /// Source address of server-side connections.
    pub snat: Snat,
    /// TCP profile of client-side connections.
    pub client_profile: TcpProfile,
    /// TCP profile of server-side connections.
    pub server_profile: TcpProfile,
    /// Bytes queued toward one side above which the proxy stops reading the other.
    pub buffer_high: usize,
    /// Bytes queued toward one side below which reading the other resumes.
    pub buffer_low: usize,
    /// How long a server-side handshake may take before another member is tried.
    pub connect_timeout: Duration,
    /// Server-side connection attempts per flow (the first included).
    pub reselect_tries: u32,
    /// Most client-side connections open at once, appliance-wide (0: no limit).
    pub connection_limit: u32,
    /// Client networks allowed (empty: everyone).
    pub allow: Vec<Prefix>,
    /// TLS toward clients: the `[[tls_profile]]` named by `client_tls` (its name and
    /// the configuration built from it; each worker takes its own copy with
    /// [`TlsServerConfig::for_worker`]).
    pub client_tls: Option<(String, Arc<TlsServerConfig>)>,
    /// TLS toward members: the `[[tls_profile]]` named by `server_tls`, and the size
    /// of each worker's session cache ([`TlsClientConfig::for_worker`]).
    pub server_tls: Option<(String, Arc<TlsClientConfig>, usize)>,
    /// HTTP (`http_profile`, `policy`): requests are parsed, routed and passed on one
    /// by one; without it bytes are relayed as they come.
    pub http: Option<Arc<HttpVs>>,
    /// Counters (carried over across configuration changes by name).
    pub counters: Arc<ProxyCounters>,
}

impl StandardVs {
    /// A virtual server with default settings: default TCP profiles both sides, proxy
    /// buffer 128 KiB high / 96 KiB low, 2 s server-side connect timeout, 3 tries, no
    /// connection limit, no allow-list, fresh counters.
    pub fn new(name: &str, vip: SocketAddr, lb: LbBinding, snat: Snat, workers: usize) -> Self {
        StandardVs {
            name: name.into(),
            vip,
            lb,
            snat,
            client_profile: TcpProfile::default(),
            server_profile: TcpProfile::default(),
            buffer_high: DEFAULT_BUFFER_HIGH,
            buffer_low: DEFAULT_BUFFER_LOW,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reselect_tries: DEFAULT_RESELECT_TRIES,
            connection_limit: 0,
            allow: Vec::new(),
            client_tls: None,
            server_tls: None,
            http: None,
            counters: ProxyCounters::new(workers),
        }
    }

    /// True when `client` may connect.
    pub fn allows(&self, client: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|p| p.contains(client))
    }

    /// Client-side connections open now over all workers.
    pub fn client_connections(&self) -> u64 {
        self.counters.client_side().current
    }
}
