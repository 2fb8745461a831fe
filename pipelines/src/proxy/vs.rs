//! A `standard` virtual server as the data plane sees it, and its counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::addr::Prefix;
use crate::counters::Counter;
use crate::dataplane::{LbBinding, Padded, Snat};
use crate::tcp::TcpProfile;

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
}

impl ResetCause {
    /// Every cause, in counter order.
    pub const ALL: [ResetCause; 9] = [
        ResetCause::ClientReset,
        ResetCause::ServerReset,
        ResetCause::NoMember,
        ResetCause::NoSourcePort,
        ResetCause::NotAllowed,
        ResetCause::ConnectionLimit,
        ResetCause::StackLimit,
        ResetCause::MemberDown,
        ResetCause::Timeout,
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
    /// Bytes the proxy holds for this virtual server's flows on this worker (receive
    /// and send buffers of both sides), as of the last update.
    pub buffer_bytes: AtomicU64,
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
