//! The Rouge data plane.
//!
//! Layers, each with one home (after smoltcp):
//!
//! - [`wire`]: zero-copy views of packet headers (Ethernet, 802.1Q, ARP, IPv4, ICMP,
//!   IPv6 with its extension headers, ICMPv6 and Neighbour Discovery, TCP, UDP) that
//!   validate once and then cannot panic, and the checksums;
//! - [`addr`], [`time`]: dual-stack prefixes and flow keys; the injected clock;
//! - [`arp`], [`route`]: the neighbour cache (ARP and IPv6 Neighbour Discovery) and the
//!   longest-prefix-match table (both families);
//! - [`fastl4`]: per-worker connection table and full NAT for `fastl4` virtual servers;
//! - [`ports`]: the per-worker source-port allocator (SNAT, probes) under the port
//!   driver's steering;
//! - [`l2l3`]: the per-worker pipeline that takes a received burst and gives every
//!   packet a [`verdict::Verdict`]: forwarded, answered, consumed or dropped by reason;
//! - [`host`]: the TCP stack of a worker and the applications over it (services,
//!   monitors, the proxy), each connection's events going to its owner, with the
//!   applications' timers;
//! - [`tcp`], [`timer_wheel`]: the sans-I/O userspace TCP stack and its timers;
//! - [`http`]: the HTTP/1.1 engine of `http_profile` virtual servers (heads, body
//!   framing, routing policies), sans-I/O;
//! - [`tls`]: TLS termination and origination over rustls (ring), sans-I/O.
//!
//! Nothing here performs I/O or reads a clock: ports come from `rouge-drivers` and are
//! driven by the worker loop in the appliance, which passes `now` in.

pub mod addr;
pub mod arp;
pub mod counters;
pub mod dataplane;
pub mod fastl4;
pub mod hashing;
pub mod host;
pub mod http;
pub mod l2l3;
pub mod lb;
pub mod monitor;
pub mod ports;
pub mod proxy;
pub mod route;
pub mod services;
pub mod shaper;
pub mod tcp;
pub mod testing;
pub mod time;
pub mod timer_wheel;
pub mod tls;
pub mod verdict;
pub mod wire;

pub use time::Instant;
