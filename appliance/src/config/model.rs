//! The configuration file's shape (TOML), as an operator writes it.
//!
//! Every table rejects unknown fields, so a typo is an error that lists the fields
//! that exist instead of a setting silently ignored.

use std::net::IpAddr;

use rouge_pipelines::addr::IfAddr;
use serde::{Deserialize, Serialize};

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
    /// Virtual servers.
    #[serde(default, rename = "virtual")]
    pub virtuals: Vec<VirtualCfg>,
    /// Neighbour cache tunables.
    #[serde(default)]
    pub arp: ArpCfg,
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

/// Which driver runs a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Linux AF_PACKET with memory-mapped rings.
    #[default]
    Afpacket,
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

/// A virtual server (`[[virtual]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualCfg {
    /// Name shown by the CLI.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: VirtualType,
    /// Destination: a network for `forwarding` (e.g. `198.18.2.0/24`); a self IP and
    /// port for `echo`, `discard` and `chargen` (e.g. `198.18.1.1:7`).
    pub destination: String,
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
