//! The configuration file's shape (TOML), as an operator writes it.
//!
//! Every table rejects unknown fields, so a typo is an error that lists the fields
//! that exist instead of a setting silently ignored.

use std::net::IpAddr;

use rouge_pipelines::addr::IfAddr;
use serde::{Deserialize, Serialize};

pub use super::rate::Rate;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Appliance-wide settings.
    #[serde(default)]
    pub system: System,
    /// Data ports.
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceCfg>,
    /// Layer-2 segments on the ports.
    #[serde(default, rename = "vlan")]
    pub vlans: Vec<VlanCfg>,
    /// Addresses the appliance owns.
    #[serde(default, rename = "self_ip")]
    pub self_ips: Vec<SelfIpCfg>,
    /// Static routes.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteCfg>,
    /// Virtual addresses (answered for ARP and ICMP echo).
    #[serde(default, rename = "virtual_address")]
    pub virtual_addresses: Vec<VirtualAddressCfg>,
    /// Health monitors.
    #[serde(default, rename = "monitor", skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<MonitorCfg>,
    /// Pools of members.
    #[serde(default, rename = "pool", skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolCfg>,
    /// Virtual servers.
    #[serde(default, rename = "virtual")]
    pub virtuals: Vec<VirtualCfg>,
    /// TCP profiles of standard virtual servers.
    #[serde(default, rename = "tcp_profile", skip_serializing_if = "Vec::is_empty")]
    pub tcp_profiles: Vec<super::proxy::TcpProfileCfg>,
    /// TLS profiles of standard virtual servers.
    #[serde(default, rename = "tls_profile", skip_serializing_if = "Vec::is_empty")]
    pub tls_profiles: Vec<super::tls::TlsProfileCfg>,
    /// HTTP profiles of standard virtual servers.
    #[serde(
        default,
        rename = "http_profile",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_profiles: Vec<super::http::HttpProfileCfg>,
    /// HTTP routing policies of standard virtual servers.
    #[serde(default, rename = "policy", skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::http::PolicyCfg>,
    /// Traffic shaping classes.
    #[serde(default, rename = "class", skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassCfg>,
    /// Neighbour cache tunables.
    #[serde(default)]
    pub arp: ArpCfg,
    /// The management plane's network services.
    #[serde(default, skip_serializing_if = "ManagementCfg::is_default")]
    pub management: ManagementCfg,
    /// What the TLS profiles' files held, read with the file (never written back).
    #[serde(skip)]
    pub tls_loaded: super::tls::TlsMaterial,
}

/// The management plane's network services (`[management]`), on the host's own kernel
/// sockets, never on the data ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementCfg {
    /// Address of the HTTP server for Prometheus metrics (`/metrics`), the dashboard
    /// (`/`) and the JSON API (`/api/v1/…`), e.g. `"127.0.0.1:9400"`; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<std::net::SocketAddr>,
}

impl ManagementCfg {
    fn is_default(&self) -> bool {
        *self == ManagementCfg::default()
    }
}

/// How a worker behaves when no packet arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdlePolicy {
    /// Spin on the ports forever (lowest latency, one core at 100 %).
    Busy,
    /// Spin briefly, then sleep on the ports until a frame arrives or a timer is due.
    #[default]
    Adaptive,
    /// Sleep on the ports as soon as a turn finds nothing to do (no spin), like an
    /// event loop: the least CPU at partial load, a thread wake-up on the first frame
    /// after every quiet moment. For a core shared with other work.
    Sleep,
}

/// Appliance-wide settings (`[system]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// CPU cores to run one worker each on; default: one worker on the last core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Idle policy of the workers.
    #[serde(default)]
    pub idle: IdlePolicy,
    /// Packet buffers per worker.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Most ICMP errors (time exceeded, unreachable) sent per second per worker.
    #[serde(default = "default_icmp_rate")]
    pub icmp_error_rate: u32,
    /// Run the worker threads under the real-time `SCHED_FIFO` policy at this priority
    /// (1 to 99), so a worker woken by a frame runs at once instead of waiting behind
    /// other tasks on its core. Absent: normal scheduling. For dedicated cores only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_priority: Option<u8>,
    /// Extra arguments for DPDK's EAL (with `driver = "dpdk"`), one per element, e.g.
    /// `["--no-huge", "-m", "256"]`. Rouge adds the devices (`-a` / `--vdev`), the main
    /// lcore (`-l`, unless given here), `--in-memory` (`--no-shconf` with `--no-huge`)
    /// and `--no-telemetry`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpdk_args: Vec<String>,
}

fn default_pool_size() -> usize {
    8192
}
fn default_icmp_rate() -> u32 {
    1000
}

impl Default for System {
    fn default() -> Self {
        System {
            cores: None,
            idle: IdlePolicy::default(),
            pool_size: default_pool_size(),
            icmp_error_rate: default_icmp_rate(),
            realtime_priority: None,
            dpdk_args: Vec::new(),
        }
    }
}

/// The receive ring layout of an AF_PACKET port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RxRing {
    /// TPACKET_V2: per-frame status, frames visible at once (microsecond latency).
    #[default]
    V2,
    /// TPACKET_V3: block-based, fewer wake-ups under load; a quiet block waits for its
    /// retire timeout (1 ms) before user space sees it.
    V3,
}

/// How an AF_PACKET port hands frames to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxPath {
    /// `copy` on a veth, `ring` on any other interface.
    #[default]
    Auto,
    /// A memory-mapped transmit ring whose pages the kernel sends without a copy (a
    /// NIC's DMA reads them).
    Ring,
    /// One `sendmmsg` per burst, copied once by the kernel: cheaper where the kernel
    /// would copy the ring's pages anyway, as when a veth hands frames to another
    /// namespace.
    Copy,
}

impl TxPath {
    /// Whether this is the default (`auto`), which a saved configuration leaves out.
    pub fn is_auto(&self) -> bool {
        *self == TxPath::Auto
    }
}

/// Which driver runs a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Linux AF_PACKET with memory-mapped rings (any interface; several workers share
    /// it through a fanout group).
    #[default]
    Afpacket,
    /// AF_XDP sockets with Rouge's own XDP redirect program, one per queue and worker
    /// (zero-copy where the NIC's driver offers it, copy mode on veth).
    Afxdp,
    /// A DPDK poll-mode driver on a NIC bound to vfio-pci (`pci`) or a virtual device
    /// (`vdev`); needs a `rouge` built with cargo feature `dpdk`.
    Dpdk,
}

impl Driver {
    /// Every driver, in the order the documentation lists them.
    pub const ALL: [Driver; 3] = [Driver::Afpacket, Driver::Afxdp, Driver::Dpdk];

    /// The name the configuration writes.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Afpacket => "afpacket",
            Driver::Afxdp => "afxdp",
            Driver::Dpdk => "dpdk",
        }
    }
}

/// A data port (`[[interface]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceCfg {
    /// Kernel interface name (e.g. `lb-c`).
    pub name: String,
    /// Driver.
    #[serde(default)]
    pub driver: Driver,
    /// AF_PACKET receive ring layout.
    #[serde(default)]
    pub rx_ring: RxRing,
    /// AF_PACKET transmit path (`auto`, `ring` or `copy`).
    #[serde(default, skip_serializing_if = "TxPath::is_auto")]
    pub tx_path: TxPath,
    /// AF_XDP: queues of the interface to bind, queue `w` for worker `w`; DPDK: RX/TX
    /// queue pairs of the device, pair `w` for worker `w` (default for both: one per
    /// worker). Not for AF_PACKET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// DPDK: the PCI address of a NIC bound to vfio-pci, e.g. `0000:00:04.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<String>,
    /// DPDK: a virtual device, e.g. `net_af_packet0,iface=lb-c` or
    /// `net_af_xdp0,iface=lb-c,start_queue=0,queue_count=1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdev: Option<String>,
    /// Line rate of the shaping root on this interface's egress (e.g. "200Mbit");
    /// without it, traffic leaving here is not shaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping_rate: Option<Rate>,
    /// Burst of the shaping root in bytes (default: 2 ms of `shaping_rate`, at least
    /// 16384).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping_burst: Option<u64>,
}

/// A VLAN (`[[vlan]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanCfg {
    /// Name referred to by self IPs.
    pub name: String,
    /// Interface it lives on.
    pub interface: String,
    /// 802.1Q VLAN ID (1-4094); absent for untagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
}

/// A self IP (`[[self_ip]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfIpCfg {
    /// Name shown by the CLI.
    pub name: String,
    /// Address with the connected network's length, e.g. `198.18.1.1/24`.
    pub address: IfAddr,
    /// VLAN the address lives on.
    pub vlan: String,
    /// Owned by the active unit of an HA pair.
    #[serde(default)]
    pub floating: bool,
}

/// A static route (`[[route]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    /// Name shown by the CLI.
    pub name: String,
    /// Destination network, e.g. `0.0.0.0/0`.
    pub destination: String,
    /// Next-hop gateway on a connected network.
    pub gateway: IpAddr,
}

/// A virtual address (`[[virtual_address]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualAddressCfg {
    /// The address.
    pub address: IpAddr,
    /// Answer ARP for it.
    #[serde(default = "yes")]
    pub arp: bool,
    /// Answer ICMP echo on it.
    #[serde(default = "yes")]
    pub icmp_echo: bool,
}

fn yes() -> bool {
    true
}

/// The kind of a virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtualType {
    /// Route transit traffic to the destination network (F5's Forwarding (IP)).
    Forwarding,
    /// Packet-by-packet L4 NAT load balancing.
    Fastl4,
    /// Full proxy (client-side and server-side TCP).
    Standard,
    /// Built-in TCP echo service (RFC 862) on a self IP, served by Rouge's own TCP stack.
    Echo,
    /// Built-in TCP discard service (RFC 863).
    Discard,
    /// Built-in TCP character generator (RFC 864).
    Chargen,
}

/// The kind of a health monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorType {
    /// The TCP handshake completes.
    Tcp,
    /// An HTTP request is answered with a response containing `receive`.
    Http,
    /// As `http`, inside TLS verified as the `tls_profile`'s server side says.
    Https,
    /// For S3 storage nodes: an HTTP request (inside TLS with `tls_profile`) answered
    /// by any well-formed HTTP/1.x status line (`403` to a request without
    /// credentials is alive).
    S3,
}

impl MonitorType {
    /// The word in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorType::Tcp => "tcp",
            MonitorType::Http => "http",
            MonitorType::Https => "https",
            MonitorType::S3 => "s3",
        }
    }
}

/// A health monitor (`[[monitor]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorCfg {
    /// Name referred to by pools.
    pub name: String,
    /// What it checks.
    #[serde(rename = "type")]
    pub kind: MonitorType,
    /// Request to send (http, https, s3), e.g. `GET / HTTP/1.0\r\n\r\n`; for s3 by
    /// default `GET / HTTP/1.1` with `Host: <member address>` and `Connection: close`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Text the response must contain (http, https), e.g. `200`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<String>,
    /// https, and s3 toward https members: the `[[tls_profile]]` whose server side (`ca`, `verify`, `server_name`,
    /// `min_version`, `alpn`, `certificate`, `handshake_timeout_ms`) the probes use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_profile: Option<String>,
    /// Seconds between probes.
    #[serde(default = "default_interval")]
    pub interval: f64,
    /// Seconds without a successful probe before the member is marked down.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Consecutive successes before a member is marked up.
    #[serde(default = "default_up_after")]
    pub up_after: u32,
}

fn default_interval() -> f64 {
    5.0
}
fn default_timeout() -> f64 {
    16.0
}
fn default_up_after() -> u32 {
    1
}

/// Load-balancing method of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LbMethod {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// In proportion to the members' ratios.
    Ratio,
    /// The member with the fewest connections.
    LeastConnections,
    /// The fewest connections relative to the ratio.
    WeightedLeastConnections,
    /// Consistent hash (Maglev) of the client address.
    ConsistentHash,
}

/// A member's administrative state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberState {
    /// Takes new connections.
    #[default]
    Enabled,
    /// Drain: no new connections; existing ones continue.
    Disabled,
    /// No new connections at all; existing ones end at their pace.
    ForcedOffline,
}

/// A pool member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCfg {
    /// Address and port, e.g. `198.18.2.11:80`.
    pub address: std::net::SocketAddr,
    /// Share for ratio methods.
    #[serde(default = "default_ratio")]
    pub ratio: u32,
    /// Priority group (higher is preferred).
    #[serde(default)]
    pub priority_group: u32,
    /// Most connections at once (0 = no limit).
    #[serde(default)]
    pub connection_limit: u32,
    /// Administrative state.
    #[serde(default)]
    pub state: MemberState,
}

fn default_ratio() -> u32 {
    1
}

/// A pool (`[[pool]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolCfg {
    /// Name referred to by virtual servers.
    pub name: String,
    /// Load-balancing method.
    #[serde(default)]
    pub method: LbMethod,
    /// Health monitor (a `[[monitor]]` name); none = members are `unchecked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// Priority group activation: use lower groups while fewer than this many members
    /// of the higher groups are available (0 = off).
    #[serde(default)]
    pub min_active_members: u32,
    /// The members.
    pub members: Vec<MemberCfg>,
}

/// Transport protocol of a fastl4 virtual server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A virtual server (`[[virtual]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualCfg {
    /// Name shown by the CLI.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: VirtualType,
    /// fastl4: transport protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<L4Protocol>,
    /// fastl4: the pool of members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// fastl4: source translation: `automap` (the egress self IP), `none`, or a list
    /// of addresses in `snat_addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat: Option<String>,
    /// fastl4: addresses for `snat = "pool"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snat_addresses: Vec<std::net::Ipv4Addr>,
    /// fastl4: idle timeout of established TCP flows and of UDP flows, in seconds
    /// (default 300 for TCP, 60 for UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// fastl4: seconds a TCP flow may wait for its handshake to complete (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_timeout: Option<u64>,
    /// fastl4: seconds a TCP flow lingers after a FIN (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing_timeout: Option<u64>,
    /// fastl4: when a member goes down, reset its flows toward the clients (default)
    /// or let them time out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_on_member_down: Option<bool>,
    /// standard, echo, discard, chargen: the `[[tcp_profile]]` of client-side
    /// connections (default: built-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_profile_client: Option<String>,
    /// standard: the `[[tcp_profile]]` of server-side connections (default: built-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_profile_server: Option<String>,
    /// standard: the `[[tls_profile]]` toward clients: TLS is terminated here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<String>,
    /// standard: the `[[tls_profile]]` toward members: connections to them are TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tls: Option<String>,
    /// standard: the `[[http_profile]]`: requests are parsed, routed and passed on one
    /// by one (HTTP/1.1, keep-alive, connection reuse toward members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_profile: Option<String>,
    /// standard, with `http_profile`: the `[[policy]]` routing requests to pools by
    /// host, path, method, header or S3 bucket (others go to `pool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// standard: most client connections open at once, appliance-wide (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<u32>,
    /// standard: client networks allowed to connect (others get a RST); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// standard: members tried per connection before the client is reset (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reselect_tries: Option<u32>,
    /// standard: milliseconds a member may take to answer the server-side handshake
    /// before the next one is tried (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Destination: a network for `forwarding` (e.g. `198.18.2.0/24`); a self IP and
    /// port for `echo`, `discard` and `chargen` (e.g. `198.18.1.1:7`); a virtual address
    /// and port for `fastl4` (e.g. `198.18.1.100:80`, or `198.18.1.100:*` for all ports).
    pub destination: String,
}

/// The name of the class that takes traffic no class claims; defined implicitly (weight
/// 1) unless the configuration defines a class of that name.
pub const DEFAULT_CLASS: &str = "default";

/// A traffic shaping class (`[[class]]`).
///
/// A class is defined once and applies on every interface with a `shaping_rate` that its
/// traffic leaves by. Traffic is assigned by the most specific rule that matches, in this
/// order: `members`, then `virtuals`, then `pools`, then `clients` (longest prefix);
/// everything else goes to the class named `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassCfg {
    /// Name shown by the CLI.
    pub name: String,
    /// Parent class (defined earlier); default: a child of the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Share of the spare capacity relative to other classes (1 to 1000, default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Strict priority level (0 is served first, up to 7); a priority class should have
    /// a ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Rate the class gets before spare capacity is shared (e.g. "30Mbit").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guaranteed: Option<Rate>,
    /// Rate the class never exceeds (e.g. "20Mbit").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Rate>,
    /// Burst of the guarantee and ceiling in bytes (default 16384, at least 1514).
    #[serde(default = "default_class_burst")]
    pub burst: u64,
    /// Queue limit in packets, per interface and worker (default 256).
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Optional queue limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_bytes: Option<u64>,
    /// Virtual servers whose traffic this class takes (both directions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtuals: Vec<String>,
    /// Pools whose traffic this class takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// Pool members (ADDRESS:PORT) whose traffic this class takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<std::net::SocketAddr>,
    /// Client networks (e.g. "198.18.1.0/25") whose traffic this class takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
}

fn default_weight() -> u32 {
    1
}
fn default_class_burst() -> u64 {
    16 * 1024
}
fn default_queue_limit() -> usize {
    256
}

impl ClassCfg {
    /// A weighted class with defaults and no rules (the implicit `default` class).
    pub fn named(name: &str) -> ClassCfg {
        ClassCfg {
            name: name.to_string(),
            parent: None,
            weight: default_weight(),
            priority: None,
            guaranteed: None,
            ceiling: None,
            burst: default_class_burst(),
            queue_limit: default_queue_limit(),
            queue_bytes: None,
            virtuals: Vec::new(),
            pools: Vec::new(),
            members: Vec::new(),
            clients: Vec::new(),
        }
    }
}

/// Neighbour cache tunables (`[arp]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpCfg {
    /// Most neighbour entries per worker.
    #[serde(default = "default_arp_entries")]
    pub max_entries: usize,
    /// Seconds an answered entry stays reachable.
    #[serde(default = "default_reachable")]
    pub reachable_secs: u64,
    /// Milliseconds between requests for an unanswered address.
    #[serde(default = "default_retry_ms")]
    pub retry_ms: u64,
    /// Requests sent before an address is marked failed.
    #[serde(default = "default_retries")]
    pub retries: u8,
}

fn default_arp_entries() -> usize {
    4096
}
fn default_reachable() -> u64 {
    60
}
fn default_retry_ms() -> u64 {
    1000
}
fn default_retries() -> u8 {
    3
}

impl Default for ArpCfg {
    fn default() -> Self {
        ArpCfg {
            max_entries: default_arp_entries(),
            reachable_secs: default_reachable(),
            retry_ms: default_retry_ms(),
            retries: default_retries(),
        }
    }
}
