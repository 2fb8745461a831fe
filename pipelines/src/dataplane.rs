//! The data plane's view of the configuration: an immutable snapshot that the control
//! thread builds from the validated config and swaps in atomically; a worker picks it
//! up once per loop turn. Derived lookups (which VLAN a tag means, which addresses are
//! local) are computed here once, not per packet.

use crate::hashing::{self, FastMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::addr::{IfAddr, Prefix};
use crate::arp::ArpConfig;
use crate::counters::Counter;
use crate::route::RouteTable;
use crate::services::ServiceSpec;

/// A data port, by position (its index is the port index in the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel interface name.
    pub name: String,
}

/// A layer-2 segment on an interface: untagged, or one 802.1Q tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    /// Name used by the configuration.
    pub name: String,
    /// Index of the interface it lives on.
    pub iface: u16,
    /// 802.1Q VLAN ID, or `None` for untagged frames.
    pub tag: Option<u16>,
}

/// An address the appliance owns on a VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfIp {
    /// Name used by the configuration.
    pub name: String,
    /// Address and connected network.
    pub addr: IfAddr,
    /// Index of its VLAN.
    pub vlan: u16,
    /// Owned by the active unit of an HA pair (this unit is always active for now).
    pub floating: bool,
}

/// An address on which virtual servers listen; answered for ARP and ICMP echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// Answer ARP for it.
    pub arp: bool,
    /// Answer ICMP echo on it.
    pub icmp_echo: bool,
}

/// Padding so each worker's counters sit on their own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Padded<T>(pub T);

/// Traffic counters of one virtual server, one shard per worker.
#[derive(Debug)]
pub struct VsCounters {
    shards: Box<[Padded<VsShard>]>,
}

/// One worker's share of a virtual server's counters.
#[derive(Debug, Default)]
pub struct VsShard {
    /// Packets handled.
    pub packets: Counter,
    /// Bytes handled.
    pub bytes: Counter,
    /// Connections (flows) opened by this worker.
    pub conns_total: Counter,
    /// Connections (flows) this worker opened and has since closed.
    pub conns_closed: Counter,
}

impl VsCounters {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> Arc<VsCounters> {
        Arc::new(VsCounters {
            shards: (0..workers.max(1)).map(|_| Padded::default()).collect(),
        })
    }

    /// The shard of worker `w` (the last shard if `w` is out of range).
    #[inline]
    pub fn shard(&self, w: usize) -> &VsShard {
        &self.shards[w.min(self.shards.len() - 1)].0
    }

    /// Packets over all workers.
    pub fn packets(&self) -> u64 {
        self.shards.iter().map(|s| s.0.packets.get()).sum()
    }

    /// Bytes over all workers.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.0.bytes.get()).sum()
    }

    /// Connections opened over all workers.
    pub fn conns_total(&self) -> u64 {
        self.shards.iter().map(|s| s.0.conns_total.get()).sum()
    }

    /// Connections open now over all workers (opened minus closed).
    pub fn conns_current(&self) -> u64 {
        let closed: u64 = self.shards.iter().map(|s| s.0.conns_closed.get()).sum();
        self.conns_total().saturating_sub(closed)
    }
}

/// Transport protocol of a fastl4 virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fastl4Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Fastl4Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Fastl4Protocol::Tcp => 6,
            Fastl4Protocol::Udp => 17,
        }
    }
}

/// Source address translation of a fastl4 virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snat {
    /// The self IP of the egress VLAN toward the member (chosen by route lookup).
    Automap,
    /// An address from this list (answered for ARP like a virtual address).
    Pool(Vec<Ipv4Addr>),
    /// Keep the client's address and port (members must route back through the
    /// appliance). Replies are then steered by the client's tuple, not chosen to reach
    /// the owning worker: use with one worker until hand-off between workers exists.
    None,
}

/// One member of a fastl4 virtual server.
#[derive(Debug, Clone)]
pub struct Fastl4Member {
    /// Address and port of the member.
    pub addr: SocketAddr,
    /// Its counters: packets and bytes both ways, current and total connections.
    pub counters: Arc<VsCounters>,
}

/// Idle timeouts of a fastl4 virtual server's flows, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fastl4Timeouts {
    /// TCP flow until the handshake completes.
    pub tcp_syn: Duration,
    /// TCP flow once established.
    pub tcp_established: Duration,
    /// TCP flow after a FIN from either side.
    pub tcp_closing: Duration,
    /// UDP flow.
    pub udp: Duration,
}

impl Default for Fastl4Timeouts {
    fn default() -> Self {
        Fastl4Timeouts {
            tcp_syn: Duration::from_secs(5),
            tcp_established: Duration::from_secs(300),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(60),
        }
    }
}

/// A `fastl4` virtual server: packet-by-packet full NAT from `vip:port` to its members.
#[derive(Debug, Clone)]
pub struct Fastl4Vs {
    /// Name used by the configuration.
    pub name: String,
    /// TCP or UDP.
    pub protocol: Fastl4Protocol,
    /// The virtual address (answered for ARP and ICMP echo).
    pub vip: IpAddr,
    /// The destination port, or `None` for all ports (the member port 0 then means
    /// "same port as the client asked for").
    pub port: Option<u16>,
    /// Source address translation toward members.
    pub snat: Snat,
    /// Members, in configuration order (indices are stable within a snapshot).
    pub members: Vec<Fastl4Member>,
    /// One flag per member: `true` when it may take new flows (monitor up and admin
    /// enabled). Shared with the control plane, which flips it; workers see a change at
    /// the next packet. Carry it over (like `counters`) when a new snapshot keeps the
    /// member, so flows created under the old snapshot see the same flag.
    pub available: Arc<[AtomicBool]>,
    /// Idle timeouts by state.
    pub timeouts: Fastl4Timeouts,
    /// Reset (TCP RST toward the client) and remove flows whose member became unavailable,
    /// instead of letting them time out.
    pub reset_on_member_down: bool,
    /// Counters of the virtual server (carried over across configuration changes by name).
    pub counters: Arc<VsCounters>,
    /// The pool that chooses members (methods, priority groups, admin and monitor states,
    /// appliance-wide connection counts); `None` = round robin over `available` flags.
    /// Its members are `members`, in the same order.
    pub lb: Option<LbBinding>,
}

/// A pool as a fastl4 virtual server uses it: the immutable pool and the live state
/// shared by every worker and the control plane.
#[derive(Debug, Clone)]
pub struct LbBinding {
    /// Members, method, Maglev table.
    pub pool: Arc<crate::lb::Pool>,
    /// Admin state and monitor status per member.
    pub states: Arc<crate::lb::MemberStates>,
    /// Current connections per member, appliance-wide.
    pub counts: Arc<crate::lb::ConnCounts>,
}

impl Fastl4Vs {
    /// True when flows to member `i` should be treated as broken: its monitor says
    /// down (with a pool), or it is not available (without one). Disabled and
    /// forced-offline members are not down: their flows continue to their end.
    #[inline]
    pub fn member_down(&self, i: usize) -> bool {
        match &self.lb {
            Some(b) => {
                b.states.monitor(crate::lb::MemberId(i as u16)) == crate::lb::MonitorStatus::Down
            }
            None => !self.member_available(i),
        }
    }

    /// A virtual server with every member available, default timeouts and fresh counters.
    pub fn new(
        name: &str,
        protocol: Fastl4Protocol,
        vip: IpAddr,
        port: Option<u16>,
        snat: Snat,
        members: &[SocketAddr],
        workers: usize,
    ) -> Fastl4Vs {
        Fastl4Vs {
            name: name.into(),
            protocol,
            vip,
            port,
            snat,
            members: members
                .iter()
                .map(|&addr| Fastl4Member {
                    addr,
                    counters: VsCounters::new(workers),
                })
                .collect(),
            available: members.iter().map(|_| AtomicBool::new(true)).collect(),
            timeouts: Fastl4Timeouts::default(),
            reset_on_member_down: false,
            counters: VsCounters::new(workers),
            lb: None,
        }
    }

    /// True when member `i` may take new flows.
    #[inline]
    pub fn member_available(&self, i: usize) -> bool {
        self.available
            .get(i)
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }

    /// Marks member `i` available or not (control plane: monitor status, admin state).
    pub fn set_member_available(&self, i: usize, up: bool) {
        if let Some(a) = self.available.get(i) {
            a.store(up, Ordering::Relaxed);
        }
    }

    /// The member for a new flow from `client` on worker `worker`: the seam where the
    /// pool's load-balancing method plugs in. For now plain round robin over available
    /// members; `cursor` is the worker's round-robin position for this virtual server.
    pub fn choose_member(
        &self,
        client: IpAddr,
        worker: usize,
        cursor: &mut usize,
    ) -> Option<usize> {
        let _ = (client, worker);
        let n = self.members.len();
        for i in 0..n {
            let m = (*cursor + i) % n;
            if self.member_available(m) {
                *cursor = (m + 1) % n;
                return Some(m);
            }
        }
        None
    }
}

/// Per-worker sizes of the fastl4 tables (allocated once when the first fastl4 virtual
/// server appears; later snapshots do not resize them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fastl4Limits {
    /// Most flows one worker tracks; new flows beyond it are dropped and counted.
    pub flows_per_worker: usize,
    /// Entries of the per-worker fragment table (first fragment to flow).
    pub fragments_per_worker: usize,
    /// Most RSTs sent for members gone down per poll.
    pub resets_per_poll: usize,
    /// Flow slots examined per sweep for flows of members gone down.
    pub sweep_per_poll: usize,
}

impl Default for Fastl4Limits {
    fn default() -> Self {
        Fastl4Limits {
            flows_per_worker: 65_536,
            fragments_per_worker: 1024,
            resets_per_poll: 32,
            sweep_per_poll: 4096,
        }
    }
}

/// A `forwarding` virtual server: transit traffic to `destination` is routed.
#[derive(Debug, Clone)]
pub struct ForwardingVs {
    /// Name used by the configuration.
    pub name: String,
    /// Destination network it accepts.
    pub destination: Prefix,
    /// Its counters (carried over across configuration changes by name).
    pub counters: Arc<VsCounters>,
}

/// What a local address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LocalKind {
    /// A self IP on the given VLAN.
    SelfIp {
        /// Its VLAN index.
        vlan: u16,
    },
    /// A virtual address.
    Virtual {
        /// Answer ARP.
        arp: bool,
        /// Answer ICMP echo.
        icmp_echo: bool,
    },
}

/// One configuration snapshot, as the data plane uses it.
#[derive(Debug, Clone)]
pub struct Dataplane {
    /// Increases with every applied configuration.
    pub generation: u64,
    /// Data ports, in port order.
    pub interfaces: Vec<Interface>,
    /// VLANs.
    pub vlans: Vec<Vlan>,
    /// Self IPs.
    pub self_ips: Vec<SelfIp>,
    /// Virtual addresses.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Routing table, connected networks first.
    pub routes: RouteTable,
    /// Forwarding virtual servers, most specific destination first.
    pub forwarding: Vec<ForwardingVs>,
    /// Neighbour cache tunables.
    pub arp: ArpConfig,
    /// Most ICMP errors sent per second per worker.
    pub icmp_error_rate: u32,
    /// Built-in TCP services (echo, discard, chargen) on self IPs.
    pub services: Vec<ServiceSpec>,
    /// Pools by name, with the live state shared by workers and the control plane.
    pub pools: Vec<(String, LbBinding)>,
    /// Members to watch with health monitors; `key` is (index in `pools`, member index).
    pub monitor_targets: Vec<crate::monitor::Target>,
    /// Fastl4 virtual servers (see [`Dataplane::with_fastl4`]).
    pub fastl4: Vec<Arc<Fastl4Vs>>,
    /// Sizes of the per-worker fastl4 tables.
    pub fastl4_limits: Fastl4Limits,
    /// Source ports the appliance's own connections and SNAT take from (every user
    /// shares the range, see [`crate::ports`]).
    pub source_ports: (u16, u16),
    /// Traffic shaping classes, roots and rules; `None` when nothing is shaped.
    pub shaping: Option<Arc<crate::shaper::ShapingPolicy>>,
    /// Standard (full proxy) virtual servers (see [`Dataplane::with_standard`]).
    pub standard: Vec<Arc<crate::proxy::StandardVs>>,
    /// Addresses and ports the proxy listens on, and SNAT pool addresses (port 0) its
    /// server-side connections use: TCP to them goes to the host.
    proxy_endpoints: std::collections::HashSet<(IpAddr, u16), crate::hashing::FastState>,
    /// A standard virtual server connects to members from the client's own address
    /// (`snat = none`): their replies, addressed to clients, are looked up in the host.
    pub transparent_proxy: bool,
    vlan_by_tag: Vec<Vec<(Option<u16>, u16)>>,
    locals: FastMap<Ipv4Addr, LocalKind>,
    locals6: FastMap<Ipv6Addr, LocalKind>,
}

impl Dataplane {
    /// Builds a snapshot and its derived lookups. The caller has validated the parts
    /// (indices in range, names unique).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        generation: u64,
        interfaces: Vec<Interface>,
        vlans: Vec<Vlan>,
        self_ips: Vec<SelfIp>,
        virtual_addresses: Vec<VirtualAddress>,
        routes: RouteTable,
        mut forwarding: Vec<ForwardingVs>,
        arp: ArpConfig,
        icmp_error_rate: u32,
    ) -> Dataplane {
        let mut vlan_by_tag = vec![Vec::new(); interfaces.len()];
        for (i, v) in vlans.iter().enumerate() {
            if let Some(slot) = vlan_by_tag.get_mut(v.iface as usize) {
                slot.push((v.tag, i as u16));
            }
        }
        let mut locals = hashing::with_capacity(0);
        let mut locals6 = hashing::with_capacity(0);
        for va in &virtual_addresses {
            let kind = LocalKind::Virtual {
                arp: va.arp,
                icmp_echo: va.icmp_echo,
            };
            match va.addr {
                IpAddr::V4(a) => locals.insert(a, kind),
                IpAddr::V6(a) => locals6.insert(a, kind),
            };
        }
        for s in &self_ips {
            let kind = LocalKind::SelfIp { vlan: s.vlan };
            match s.addr.addr {
                IpAddr::V4(a) => locals.insert(a, kind),
                IpAddr::V6(a) => locals6.insert(a, kind),
            };
        }
        forwarding.sort_by_key(|f| std::cmp::Reverse(f.destination.bits()));
        Dataplane {
            generation,
            interfaces,
            vlans,
            self_ips,
            virtual_addresses,
            routes,
            forwarding,
            arp,
            icmp_error_rate,
            services: Vec::new(),
            pools: Vec::new(),
            monitor_targets: Vec::new(),
            fastl4: Vec::new(),
            fastl4_limits: Fastl4Limits::default(),
            source_ports: crate::ports::DEFAULT_RANGE,
            shaping: None,
            standard: Vec::new(),
            proxy_endpoints: Default::default(),
            transparent_proxy: false,
            vlan_by_tag,
            locals,
            locals6,
        }
    }

    /// The same snapshot with these pools and monitor targets.
    pub fn with_pools(
        mut self,
        pools: Vec<(String, LbBinding)>,
        targets: Vec<crate::monitor::Target>,
    ) -> Dataplane {
        self.pools = pools;
        self.monitor_targets = targets;
        self
    }

    /// The same snapshot with this shaping policy.
    pub fn with_shaping(mut self, policy: crate::shaper::ShapingPolicy) -> Dataplane {
        self.shaping = Some(Arc::new(policy));
        self
    }

    /// The same snapshot with these built-in services.
    pub fn with_services(mut self, services: Vec<ServiceSpec>) -> Dataplane {
        self.services = services;
        self
    }

    /// Makes `addr` a virtual address answered for ARP/ND (and ICMP echo when
    /// `icmp_echo`), unless it is local already (a self IP or an earlier virtual address).
    fn add_virtual_address(&mut self, addr: IpAddr, icmp_echo: bool) {
        use std::collections::hash_map::Entry;
        let kind = LocalKind::Virtual {
            arp: true,
            icmp_echo,
        };
        let added = match addr {
            IpAddr::V4(a) => match self.locals.entry(a) {
                Entry::Vacant(e) => e.insert(kind) == &kind,
                Entry::Occupied(_) => false,
            },
            IpAddr::V6(a) => match self.locals6.entry(a) {
                Entry::Vacant(e) => e.insert(kind) == &kind,
                Entry::Occupied(_) => false,
            },
        };
        if added {
            self.virtual_addresses.push(VirtualAddress {
                addr,
                arp: true,
                icmp_echo,
            });
        }
    }

    /// Adds fastl4 virtual servers. Their VIPs become virtual addresses (ARP and ICMP
    /// echo answered) unless already local, and SNAT pool addresses are answered for
    /// ARP (not for echo).
    pub fn with_fastl4(mut self, vss: Vec<Fastl4Vs>) -> Dataplane {
        for vs in &vss {
            self.add_virtual_address(vs.vip, true);
            if let Snat::Pool(list) = &vs.snat {
                for a in list {
                    self.add_virtual_address(IpAddr::V4(*a), false);
                }
            }
        }
        self.fastl4.extend(vss.into_iter().map(Arc::new));
        self
    }

    /// The same snapshot with these standard virtual servers: their virtual addresses
    /// and SNAT pool addresses become local (answered for ARP; ICMP echo on the VIP).
    pub fn with_standard(mut self, vss: Vec<crate::proxy::StandardVs>) -> Dataplane {
        for vs in &vss {
            self.add_virtual_address(vs.vip.ip(), true);
            self.proxy_endpoints.insert((vs.vip.ip(), vs.vip.port()));
            match &vs.snat {
                Snat::Pool(list) => {
                    for a in list {
                        self.add_virtual_address(IpAddr::V4(*a), false);
                        self.proxy_endpoints.insert((IpAddr::V4(*a), 0));
                    }
                }
                Snat::None => self.transparent_proxy = true,
                Snat::Automap => {}
            }
        }
        self.standard.extend(vss.into_iter().map(Arc::new));
        self
    }

    /// True when TCP to `dst:dport` belongs to the proxy: a standard virtual server's
    /// address and port, or a SNAT pool address of one.
    #[inline]
    pub fn is_proxy_endpoint(&self, dst: Ipv4Addr, dport: u16) -> bool {
        self.is_proxy_endpoint_ip(IpAddr::V4(dst), dport)
    }

    /// [`Dataplane::is_proxy_endpoint`] for either family (an IPv6 standard virtual
    /// server may front IPv4 members).
    #[inline]
    pub fn is_proxy_endpoint_ip(&self, dst: IpAddr, dport: u16) -> bool {
        !self.proxy_endpoints.is_empty()
            && (self.proxy_endpoints.contains(&(dst, dport))
                || self.proxy_endpoints.contains(&(dst, 0)))
    }

    /// The fastl4 virtual server for `proto` to `dst:dport` and its index: one with that
    /// exact port first, else one listening on all ports.
    #[inline]
    pub fn fastl4_for(
        &self,
        proto: u8,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Option<(usize, &Arc<Fastl4Vs>)> {
        self.fastl4_for_ip(proto, IpAddr::V4(dst), dport)
    }

    /// [`Dataplane::fastl4_for`] for either family.
    #[inline]
    pub fn fastl4_for_ip(
        &self,
        proto: u8,
        dst: IpAddr,
        dport: u16,
    ) -> Option<(usize, &Arc<Fastl4Vs>)> {
        let mut any = None;
        for (i, vs) in self.fastl4.iter().enumerate() {
            if vs.protocol.number() == proto && vs.vip == dst {
                match vs.port {
                    Some(p) if p == dport => return Some((i, vs)),
                    None => any = any.or(Some((i, vs))),
                    _ => {}
                }
            }
        }
        any
    }

    /// True when `dst` is the VIP of a fastl4 virtual server for `proto`.
    #[inline]
    pub fn is_fastl4_vip(&self, proto: u8, dst: Ipv4Addr) -> bool {
        self.is_fastl4_vip_ip(proto, IpAddr::V4(dst))
    }

    /// [`Dataplane::is_fastl4_vip`] for either family.
    #[inline]
    pub fn is_fastl4_vip_ip(&self, proto: u8, dst: IpAddr) -> bool {
        self.fastl4
            .iter()
            .any(|vs| vs.protocol.number() == proto && vs.vip == dst)
    }

    /// The VLAN index of a frame received on `iface` with `tag`.
    #[inline]
    pub fn vlan_of(&self, iface: u16, tag: Option<u16>) -> Option<u16> {
        self.vlan_by_tag
            .get(iface as usize)?
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
    }

    /// What `ip` is to the appliance, if it is local.
    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<LocalKind> {
        self.locals.get(&ip).copied()
    }

    /// What the IPv6 address `ip` is to the appliance, if it is local.
    #[inline]
    pub fn local_v6(&self, ip: Ipv6Addr) -> Option<LocalKind> {
        self.locals6.get(&ip).copied()
    }

    /// The IPv6 self IP to use as source on `vlan` toward `peer`: one whose network
    /// contains the peer, else the first on the VLAN.
    pub fn source_for_v6(&self, vlan: u16, peer: Ipv6Addr) -> Option<Ipv6Addr> {
        match self.source_on(vlan, IpAddr::V6(peer)) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        }
    }

    /// A self IP of `peer`'s family on `vlan`: one whose network contains the peer, else
    /// the first of that family on the VLAN.
    fn source_on(&self, vlan: u16, peer: IpAddr) -> Option<IpAddr> {
        let mut first = None;
        let same = |s: &&SelfIp| s.vlan == vlan && s.addr.addr.is_ipv4() == peer.is_ipv4();
        for s in self.self_ips.iter().filter(same) {
            if s.addr.network().contains(peer) {
                return Some(s.addr.addr);
            }
            first.get_or_insert(s.addr.addr);
        }
        first
    }

    /// Whether the appliance answers a neighbour request (ARP or ND) for `ip`, which is
    /// `kind` to it, on `vlan`: a self IP of that VLAN, or a virtual address with ARP on
    /// whose network is on that VLAN (or on no VLAN's network at all).
    fn answers_neighbour(&self, ip: IpAddr, kind: Option<LocalKind>, vlan: u16) -> bool {
        match kind {
            Some(LocalKind::SelfIp { vlan: v }) => v == vlan,
            Some(LocalKind::Virtual { arp: true, .. }) => {
                match self.self_ips.iter().find(|s| s.addr.network().contains(ip)) {
                    Some(s) => s.vlan == vlan,
                    None => true,
                }
            }
            _ => false,
        }
    }

    /// True if the appliance answers Neighbour Discovery for `ip` on `vlan` (the IPv6
    /// twin of [`Dataplane::answers_arp`]).
    pub fn answers_nd(&self, ip: Ipv6Addr, vlan: u16) -> bool {
        self.answers_neighbour(IpAddr::V6(ip), self.local_v6(ip), vlan)
    }

    /// The forwarding virtual server accepting the IPv6 `dst`, most specific first.
    #[inline]
    pub fn forwarding_for_v6(&self, dst: Ipv6Addr) -> Option<&ForwardingVs> {
        self.forwarding
            .iter()
            .find(|f| f.destination.contains(IpAddr::V6(dst)))
    }

    /// IPv6 addresses to announce with unsolicited neighbour advertisements (and to
    /// check with duplicate address detection): (address, VLAN, is a self IP) triples.
    pub fn nd_announcements(&self) -> Vec<(Ipv6Addr, u16, bool)> {
        let mut out = Vec::new();
        for s in &self.self_ips {
            if let IpAddr::V6(a) = s.addr.addr {
                out.push((a, s.vlan, true));
            }
        }
        for va in self.virtual_addresses.iter().filter(|v| v.arp) {
            if let IpAddr::V6(a) = va.addr {
                for v in 0..self.vlans.len() as u16 {
                    if self.answers_nd(a, v) {
                        out.push((a, v, false));
                    }
                }
            }
        }
        out
    }

    /// True when some VLAN has an IPv6 self IP (the IPv6 data path is on).
    pub fn has_ipv6(&self) -> bool {
        self.self_ips.iter().any(|s| s.addr.addr.is_ipv6())
    }

    /// The IPv4 self IP to use as source on `vlan` toward `peer`: one whose network
    /// contains the peer, else the first on the VLAN.
    pub fn source_for(&self, vlan: u16, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        match self.source_on(vlan, IpAddr::V4(peer)) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        }
    }

    /// True if the appliance answers ARP for `ip` on `vlan`: a self IP of that VLAN,
    /// or a virtual address with ARP on whose network is on that VLAN (or on no
    /// VLAN's network at all).
    pub fn answers_arp(&self, ip: Ipv4Addr, vlan: u16) -> bool {
        self.answers_neighbour(IpAddr::V4(ip), self.local(ip), vlan)
    }

    /// The forwarding virtual server accepting `dst`, most specific first.
    #[inline]
    pub fn forwarding_for(&self, dst: Ipv4Addr) -> Option<&ForwardingVs> {
        self.forwarding
            .iter()
            .find(|f| f.destination.contains(IpAddr::V4(dst)))
    }

    /// Addresses to announce with gratuitous ARP: (address, VLAN) pairs.
    pub fn announcements(&self) -> Vec<(Ipv4Addr, u16)> {
        let mut out = Vec::new();
        for s in &self.self_ips {
            if let IpAddr::V4(a) = s.addr.addr {
                out.push((a, s.vlan));
            }
        }
        for va in self.virtual_addresses.iter().filter(|v| v.arp) {
            if let IpAddr::V4(a) = va.addr {
                for v in 0..self.vlans.len() as u16 {
                    if self.answers_arp(a, v) {
                        out.push((a, v));
                    }
                }
            }
        }
        out
    }
}
