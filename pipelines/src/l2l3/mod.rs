//! The L2/L3 pipeline of one worker: every received frame passes through here and
//! ends with a [`Verdict`].
//!
//! Ethernet and 802.1Q demultiplexing → ARP (answers for self IPs and virtual
//! addresses, learns neighbours) → IPv4 validation → fastl4 virtual servers and their
//! flows (full NAT, see [`crate::fastl4`]) → local delivery (ICMP echo) or
//! transit through a `forwarding` virtual server (route lookup, TTL, MTU, next-hop
//! resolution, MAC rewrite). Replies reuse the received buffer in place where they
//! can; ICMP errors take a buffer from the worker's pool. Output goes through an
//! `emit(port, packet)` callback so the worker decides how to batch transmission.
//!
//! Replies to the appliance's own addresses go back to the MAC they came from
//! (F5's auto-lasthop), so answering never waits for ARP.
//!
//! IPv6 takes the same path (module `ipv6`): Neighbour Discovery instead of ARP, ICMPv6,
//! hop limit and packet too big instead of TTL and fragmentation needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use rouge_drivers::steer::Steering;
use rouge_drivers::{MacAddr, Packet, PacketPool};

use crate::arp::{ArpCache, ArpEntryView, ArpTimerEvent, Hold, Lookup, NdCache, NeighbourUpdate};
use crate::counters::PipelineCounters;
use crate::dataplane::{Dataplane, LocalKind};
use crate::fastl4::{Classified, Fastl4, Kind as Fastl4Kind, Plan};
use crate::host::Host;
use crate::monitor::{Monitors, Transition};
use crate::shaper::room::ShapingRoom;
use crate::tcp::{StackConfig, TcpProfile, TcpStack};
use crate::time::Instant;
use crate::verdict::{DropReason, Verdict};
use crate::wire::arp::{self as arpw, ArpRepr, Operation};
use crate::wire::ethernet::{self as eth, EthError, EthernetFrame};
use crate::wire::icmp::{self, IcmpError, IcmpPacket};
use crate::wire::ipv4::{self, Ipv4Error, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{self as tcpw, Flags, TcpRepr};

mod bus;
mod mld;
mod rate;

pub use bus::{NeighbourBus, NEIGHBOUR_INBOX};
use rate::TokenBucket;

mod ipv6;
pub use self::ipv6::NdWork;

/// Most TCP segments sent per loop turn (the worker flushes its transmit queues after
/// every turn, so this bounds their depth).
pub const TCP_TX_BUDGET: usize = 64;

/// The pipeline state of one worker.
pub struct L2L3 {
    worker: usize,
    dp: Arc<Dataplane>,
    macs: Vec<MacAddr>,
    mtus: Vec<usize>,
    arp: ArpCache,
    counters: Arc<PipelineCounters>,
    icmp_bucket: TokenBucket,
    bus: NeighbourBus,
    ident: u16,
    announce: Vec<(Ipv4Addr, u16)>,
    /// The IPv6 neighbour cache.
    nd: NdCache,
    /// Pending duplicate address detection probes, MLD reports and unsolicited
    /// advertisements (worker 0).
    nd_work: Vec<NdWork>,
    /// The bound on MLD reports answering queries, per VLAN.
    mld: mld::MldLimiter,
    /// The solicited-node groups of each VLAN (what its MLD report joins).
    mld_groups: Vec<ipv6::MldGroups>,
    /// The link-local address of each port (from its MAC).
    link_locals: Vec<Ipv6Addr>,
    pool: PacketPool,
    /// The TCP stack and its applications.
    host: Host,
    fastl4: Option<Fastl4>,
    /// The last [`L2L3::poll`] stopped at [`TCP_TX_BUDGET`] with segments left to send.
    tcp_backlog: bool,
    /// What each shaping class can still take, per port (see [`L2L3::shaping_room_mut`]).
    shaping_room: ShapingRoom,
}

/// Where a packet leaves: the port and the header to put on it.
struct Egress {
    port: u16,
    vlan_tag: Option<u16>,
    src_mac: MacAddr,
}

impl L2L3 {
    /// A pipeline for worker `worker` with ports of the given MACs and MTUs (in the
    /// order of `dp.interfaces`). Worker 0 announces the addresses with gratuitous ARP.
    pub fn new(
        worker: usize,
        dp: Arc<Dataplane>,
        macs: Vec<MacAddr>,
        mtus: Vec<usize>,
        counters: Arc<PipelineCounters>,
        bus: NeighbourBus,
        pool: PacketPool,
    ) -> L2L3 {
        let announce = if worker == 0 {
            dp.announcements()
        } else {
            Vec::new()
        };
        let nd_work = if worker == 0 {
            ipv6::start_work(&dp, &[], macs.len())
        } else {
            Vec::new()
        };
        let link_locals: Vec<Ipv6Addr> = macs
            .iter()
            .map(|m| crate::wire::ipv6::link_local(*m))
            .collect();
        let mld_groups = ipv6::mld_groups(&dp, &link_locals);
        let host = Host::new(worker, &dp, counters.clone());
        let fastl4 = (!dp.fastl4.is_empty()).then(|| {
            let mut f = Fastl4::new(worker, dp.fastl4_limits, counters.clone());
            f.set_dataplane(&dp);
            f
        });
        L2L3 {
            worker,
            fastl4,
            arp: ArpCache::new(dp.arp),
            nd: NdCache::new(dp.arp),
            nd_work,
            mld: mld::MldLimiter::new(dp.vlans.len()),
            mld_groups,
            link_locals,
            icmp_bucket: TokenBucket::new(dp.icmp_error_rate),
            dp,
            macs,
            mtus,
            counters,
            bus,
            ident: 1,
            announce,
            pool,
            host,
            tcp_backlog: false,
            shaping_room: ShapingRoom::default(),
        }
    }

    /// Tells the pipeline how its ports spread received frames over the workers (the
    /// port driver's [`Steering`]; [`Steering::Opaque`] until then): fastl4 SNAT and
    /// the health monitors choose source ports whose replies come back to this worker.
    pub fn with_steering(mut self, steering: Steering) -> L2L3 {
        self.host.set_steering(steering);
        self
    }

    /// Replaces the TCP stack (before any traffic): limits, the secret keying ISNs and
    /// SYN cookies (random per start in the appliance), and the default profile.
    pub fn with_tcp(mut self, cfg: StackConfig, profile: TcpProfile) -> L2L3 {
        self.host.set_tcp(&self.dp, cfg, profile);
        self
    }

    /// Runs the health monitors on this worker (one worker per appliance does): probes
    /// use source ports whose replies the steering (see [`L2L3::with_steering`]) brings
    /// back to this worker.
    pub fn with_monitors(mut self) -> L2L3 {
        self.host.start_monitors(&self.dp);
        self
    }

    /// Status changes found by the monitors since the last call (already applied to
    /// the pools' shared states), for the log.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        self.host.take_transitions()
    }

    /// The monitor engine, when this worker runs it.
    pub fn monitors(&self) -> Option<&Monitors> {
        self.host.monitors()
    }

    /// The worker's TCP stack (its counters, connection counts).
    pub fn tcp(&self) -> &TcpStack {
        self.host.tcp()
    }

    /// The worker's host: its TCP stack and the applications over it.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The worker's TCP stack, to open or drive connections from beside the pipeline.
    /// What they send leaves with the next [`L2L3::poll`], which
    /// [`L2L3::poll_timeout`] then asks for at once.
    pub fn tcp_mut(&mut self) -> &mut TcpStack {
        self.tcp_backlog = true;
        self.host.tcp_mut()
    }

    /// The current snapshot.
    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dp
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Arc<PipelineCounters> {
        &self.counters
    }

    /// Takes a new configuration snapshot. Addresses that were not in the old one are
    /// announced (by worker 0). The neighbour cache is kept.
    pub fn set_dataplane(&mut self, dp: Arc<Dataplane>) {
        if self.worker == 0 {
            let old = self.dp.announcements();
            self.announce
                .extend(dp.announcements().into_iter().filter(|a| !old.contains(a)));
            let old6 = self.dp.nd_announcements();
            self.nd_work
                .extend(ipv6::start_work(&dp, &old6, self.macs.len()));
        }
        self.icmp_bucket = TokenBucket::new(dp.icmp_error_rate);
        self.mld_groups = ipv6::mld_groups(&dp, &self.link_locals);
        self.host.set_dataplane(&dp);
        if self.fastl4.is_none() && !dp.fastl4.is_empty() {
            self.fastl4 = Some(Fastl4::new(
                self.worker,
                dp.fastl4_limits,
                self.counters.clone(),
            ));
        }
        if let Some(f) = self.fastl4.as_mut() {
            f.set_dataplane(&dp);
        }
        self.dp = dp;
    }

    /// This worker's fastl4 state (connection table), once a fastl4 virtual server exists.
    pub fn fastl4(&self) -> Option<&Fastl4> {
        self.fastl4.as_ref()
    }

    /// The room of each shaping class on each port, to be filled by the worker from its
    /// shapers before [`L2L3::poll`]: shaped TCP connections (the proxy's) send new data
    /// only within it, so the shapers never drop their segments. Left empty, nothing is
    /// limited.
    pub fn shaping_room_mut(&mut self) -> &mut ShapingRoom {
        &mut self.shaping_room
    }

    /// True when shaped connections hold data back for want of room: poll again once the
    /// shapers have released something.
    pub fn shaped_waiting(&self) -> bool {
        self.host.tcp().shaped_waiting()
    }

    /// The neighbour cache as rows for display.
    pub fn arp_view(&self, now: Instant) -> Vec<ArpEntryView> {
        self.arp.view(now)
    }

    /// True once after the neighbour cache changed.
    pub fn arp_changed(&mut self) -> bool {
        self.arp.take_changed() | self.nd.take_changed()
    }

    /// The IPv6 neighbour cache as rows for display.
    pub fn nd_view(&self, now: Instant) -> Vec<ArpEntryView<Ipv6Addr>> {
        self.nd.view(now)
    }

    /// Handles one received packet. Packets to send are handed to `emit`.
    pub fn process(
        &mut self,
        now: Instant,
        pkt: Packet,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        self.counters.rx_packets.inc();
        let (port, len) = (pkt.meta.port, pkt.len());
        let v = self.classify(now, pkt, emit);
        self.counters.verdict(v);
        self.counters.port_verdict(port, v, len);
        v
    }

    fn classify(
        &mut self,
        now: Instant,
        pkt: Packet,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let port = pkt.meta.port;
        let (vlan_tag, ethertype, l3_off, dst_mac, src_mac) =
            match EthernetFrame::new_checked(pkt.data()) {
                Ok(f) => (f.vlan(), f.ethertype(), f.header_len(), f.dst(), f.src()),
                Err(EthError::Truncated) => return Verdict::Dropped(DropReason::EthTruncated),
                Err(EthError::StackedVlan) => return Verdict::Dropped(DropReason::EthStackedVlan),
            };
        let Some(vlan) = self.dp.vlan_of(port, vlan_tag) else {
            return Verdict::Dropped(DropReason::UnknownVlan);
        };
        let my_mac = self.macs.get(port as usize).copied().unwrap_or_default();
        if dst_mac != my_mac && !dst_mac.is_multicast() {
            return Verdict::Dropped(DropReason::EthNotForUs);
        }
        match ethertype {
            eth::ETHERTYPE_ARP => self.handle_arp(now, pkt, vlan, l3_off, emit),
            eth::ETHERTYPE_IPV4 => {
                if dst_mac.is_multicast() {
                    return Verdict::Dropped(DropReason::Ipv4Broadcast);
                }
                self.handle_ipv4(now, pkt, vlan, l3_off, src_mac, emit)
            }
            eth::ETHERTYPE_IPV6 if self.dp.has_ipv6() => {
                let multicast = dst_mac.is_multicast();
                self.handle_ipv6(now, pkt, vlan, l3_off, src_mac, multicast, emit)
            }
            _ => Verdict::Dropped(DropReason::EthUnsupportedType),
        }
    }

    fn handle_arp(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        vlan: u16,
        l3_off: usize,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let Ok(req) = ArpRepr::parse(&pkt.data()[l3_off..]) else {
            return Verdict::Dropped(DropReason::ArpMalformed);
        };
        if let Some(LocalKind::SelfIp { .. }) = self.dp.local(req.sender_ip) {
            // Someone else claims our address (a probe with sender 0.0.0.0 never matches).
            return Verdict::Dropped(DropReason::ArpConflict);
        }
        let for_us = self.dp.answers_arp(req.target_ip, vlan);
        let on_link = self.on_link(req.sender_ip, vlan);
        if on_link && req.sender_ip != Ipv4Addr::UNSPECIFIED {
            self.learn(now, req.sender_ip, req.sender_mac, vlan, for_us, emit);
        }
        if !for_us {
            return if req.op == Operation::Reply || req.is_gratuitous() {
                Verdict::Consumed
            } else {
                Verdict::Dropped(DropReason::ArpNotForUs)
            };
        }
        if req.op == Operation::Reply {
            return Verdict::Consumed;
        }
        let port = pkt.meta.port;
        let my_mac = self.macs[port as usize];
        let reply = ArpRepr {
            op: Operation::Reply,
            sender_mac: my_mac,
            sender_ip: req.target_ip,
            target_mac: req.sender_mac,
            target_ip: req.sender_ip,
        };
        let d = pkt.data_mut();
        eth::set_macs(d, req.sender_mac, my_mac);
        reply.emit(&mut d[l3_off..]);
        pkt.truncate(l3_off + arpw::PACKET_LEN);
        pad_to_min(&mut pkt);
        self.counters.arp_replies_sent.inc();
        emit(port, pkt);
        Verdict::Answered
    }

    fn on_link(&self, ip: Ipv4Addr, vlan: u16) -> bool {
        self.dp
            .self_ips
            .iter()
            .any(|s| s.vlan == vlan && s.addr.network().contains(IpAddr::V4(ip)))
    }

    fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: MacAddr,
        vlan: u16,
        create: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) {
        let mut released: arrayvec::ArrayVec<(Packet, MacAddr, u16), { crate::arp::MAX_PENDING }> =
            arrayvec::ArrayVec::new();
        let known = self.arp.learn(ip, mac, vlan, now, create, |p, m, v| {
            released.push((p, m, v));
        });
        if known {
            self.bus.publish(NeighbourUpdate {
                ip: IpAddr::V4(ip),
                mac,
                vlan,
            });
        }
        for (p, m, v) in released {
            let verdict = self.send_resolved(p, m, v, emit);
            self.counters.verdict(verdict);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_ipv4(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let (src, dst, proto, total, frag) = match Ipv4Packet::new_checked(&pkt.data()[l3_off..]) {
            Ok(ip) => (
                ip.src(),
                ip.dst(),
                ip.protocol(),
                ip.total_len(),
                ip.is_fragment(),
            ),
            Err(e) => {
                return Verdict::Dropped(match e {
                    Ipv4Error::Truncated => DropReason::Ipv4Truncated,
                    Ipv4Error::BadVersion => DropReason::Ipv4BadVersion,
                    Ipv4Error::BadHeaderLength => DropReason::Ipv4BadHeaderLength,
                    Ipv4Error::BadTotalLength => DropReason::Ipv4BadTotalLength,
                    Ipv4Error::BadChecksum => DropReason::Ipv4BadChecksum,
                })
            }
        };
        if src.is_multicast() || src.is_broadcast() || src.is_unspecified() || src.is_loopback() {
            return Verdict::Dropped(DropReason::Ipv4BadSource);
        }
        if dst.is_multicast() || dst.is_broadcast() {
            return Verdict::Dropped(DropReason::Ipv4Broadcast);
        }
        // Drop Ethernet padding so lengths below are the IP packet's.
        pkt.truncate(l3_off + total);
        if let Some(f) = self.fastl4.as_mut() {
            let ports = self.host.source_ports();
            let c = f.classify(now, &self.dp, &pkt.data()[l3_off..], ports);
            self.send_resets(now, emit);
            match c {
                Classified::NotOurs => {}
                Classified::Drop(r) => return Verdict::Dropped(r),
                Classified::Translate(plan) => {
                    return self.fastl4_forward(now, pkt, vlan, l3_off, src_mac, plan, emit)
                }
            }
        }
        if let Some(kind) = self.dp.local(dst) {
            if frag {
                return Verdict::Dropped(DropReason::Ipv4FragmentToLocal);
            }
            return match proto {
                ipv4::PROTO_ICMP => self.local_icmp(pkt, kind, l3_off, src_mac, emit),
                // The appliance's own TCP stack serves its self IPs (services, monitor
                // and proxy server-side replies) and the standard virtual servers; TCP
                // to a virtual address that no virtual server takes is dropped.
                ipv4::PROTO_TCP
                    if matches!(kind, LocalKind::SelfIp { .. })
                        || self.dp.is_proxy_endpoint(dst, tcp_ports(&pkt, l3_off).1) =>
                {
                    let hl = Ipv4Packet::new_unchecked(&pkt.data()[l3_off..]).header_len();
                    let seg = &pkt.data()[l3_off + hl..];
                    let trusted = pkt.meta.l4_csum_partial;
                    self.host
                        .handle_segment(now, src.into(), dst.into(), seg, trusted);
                    Verdict::Consumed
                }
                _ => Verdict::Dropped(DropReason::NoListener),
            };
        }
        if self.dp.transparent_proxy && proto == ipv4::PROTO_TCP && !frag {
            // A member's reply to a proxied flow without SNAT: addressed to the client.
            let (sport, dport) = tcp_ports(&pkt, l3_off);
            let (local, remote) = (
                SocketAddr::from((dst, dport)),
                SocketAddr::from((src, sport)),
            );
            if self.host.in_use(local, remote) {
                let hl = Ipv4Packet::new_unchecked(&pkt.data()[l3_off..]).header_len();
                let trusted = pkt.meta.l4_csum_partial;
                let seg = &pkt.data()[l3_off + hl..];
                self.host
                    .handle_segment(now, src.into(), dst.into(), seg, trusted);
                return Verdict::Consumed;
            }
        }
        let Some(vs) = self.dp.forwarding_for(dst) else {
            return Verdict::Dropped(DropReason::NoVirtual);
        };
        let shard = vs.counters.shard(self.worker);
        shard.packets.inc();
        shard.bytes.add(total as u64);
        #[cfg(feature = "perf-canary")]
        perf_canary();
        let hop = match self.transit(now, &pkt, vlan, l3_off, src_mac, dst, true, emit) {
            Ok(hop) => hop,
            Err(v) => return v,
        };
        if let Some(policy) = &self.dp.shaping {
            // Forwarded traffic is not classified by rules: it takes the default class.
            pkt.meta.class = Some(policy.default_class() as u16);
            pkt.meta.flow_hash = forwarded_flow_hash(&pkt.data()[l3_off..]);
        }
        Ipv4Packet::new_unchecked(&mut pkt.data_mut()[l3_off..]).decrement_ttl();
        // Leave only the IP packet; the egress header is written when the MAC is known.
        pkt.pull_front(l3_off);
        let neighbour = hop.neighbour(dst);
        self.route_out(now, pkt, neighbour, hop.vlan, emit)
    }

    /// The checks every transit packet passes before it leaves: TTL, a route to `dst`,
    /// the egress MTU. On failure the packet's verdict, with an ICMP error to its sender
    /// when `errors` (time exceeded, net unreachable for routed traffic, fragmentation
    /// needed with the MTU).
    #[allow(clippy::too_many_arguments)]
    fn transit(
        &mut self,
        now: Instant,
        pkt: &Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        dst: Ipv4Addr,
        errors: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Result<crate::route::NextHop, Verdict> {
        let (ttl, total, df) = {
            let ip = Ipv4Packet::new_unchecked(&pkt.data()[l3_off..]);
            (ip.ttl(), ip.total_len(), ip.dont_frag())
        };
        let mut fail = |me: &mut Self, t: u8, c: u8, rest: [u8; 4], why: DropReason| {
            if errors {
                me.icmp_error(now, pkt, vlan, l3_off, src_mac, t, c, rest, emit);
            }
            Err(Verdict::Dropped(why))
        };
        if ttl <= 1 {
            return fail(
                self,
                icmp::TIME_EXCEEDED,
                0,
                [0; 4],
                DropReason::TtlExceeded,
            );
        }
        let Some(route) = self.dp.routes.lookup_v4(dst) else {
            return fail(
                self,
                icmp::DEST_UNREACHABLE,
                icmp::CODE_NET_UNREACHABLE,
                [0; 4],
                DropReason::NoRoute,
            );
        };
        let hop = route.next_hop;
        let out_iface = self.dp.vlans[hop.vlan as usize].iface as usize;
        let mtu = self.mtus.get(out_iface).copied().unwrap_or(1500);
        if total > mtu {
            if !df {
                return Err(Verdict::Dropped(DropReason::MtuExceeded));
            }
            let rest = [0, 0, (mtu >> 8) as u8, mtu as u8];
            return fail(
                self,
                icmp::DEST_UNREACHABLE,
                icmp::CODE_FRAG_NEEDED,
                rest,
                DropReason::MtuExceeded,
            );
        }
        Ok(hop)
    }

    /// Forwards a packet of a fastl4 flow: TTL, route and MTU are checked on the packet as
    /// received (ICMP errors quote it as its sender sent it), then it is translated.
    #[allow(clippy::too_many_arguments)]
    fn fastl4_forward(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        plan: Plan,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let IpAddr::V4(next_dst) = plan.next_dst else {
            // A flow keeps its family: an IPv4 packet is never planned to IPv6.
            return Verdict::Dropped(DropReason::NoRoute);
        };
        // ICMP errors are never sent about ICMP errors.
        let is_error = plan.kind == Fastl4Kind::IcmpError;
        let hop = match self.transit(now, &pkt, vlan, l3_off, src_mac, next_dst, !is_error, emit) {
            Ok(hop) => hop,
            Err(v) => return v,
        };
        if let Some(f) = self.fastl4.as_mut() {
            f.apply(now, &plan, &mut pkt.data_mut()[l3_off..]);
            if let Some((class, hash)) = f.shaping_class(plan.flow, &self.dp) {
                pkt.meta.class = Some(class);
                pkt.meta.flow_hash = hash;
            }
        }
        Ipv4Packet::new_unchecked(&mut pkt.data_mut()[l3_off..]).decrement_ttl();
        pkt.pull_front(l3_off);
        let neighbour = hop.neighbour(next_dst);
        self.route_out(now, pkt, neighbour, hop.vlan, emit)
    }

    /// Sends the RSTs the fastl4 engine asks for (flows whose member went down, SYNs
    /// that found no SNAT port).
    fn send_resets(&mut self, now: Instant, emit: &mut impl FnMut(u16, Packet)) {
        while let Some(r) = self.fastl4.as_mut().and_then(Fastl4::pop_reset) {
            let (SocketAddr::V4(from), SocketAddr::V4(to)) = (r.from, r.to) else {
                self.send_reset6(now, &r, emit);
                continue;
            };
            let Some(mut out) = self.pool.alloc() else {
                self.counters.drops[DropReason::NoBuffer as usize].inc();
                continue;
            };
            let Some(route) = self.dp.routes.lookup_v4(*to.ip()) else {
                self.counters.drops[DropReason::NoRoute as usize].inc();
                continue;
            };
            let hop = route.next_hop;
            out.set_len(ipv4::MIN_HEADER_LEN + tcpw::HEADER_LEN);
            let d = out.data_mut();
            self.ident = self.ident.wrapping_add(1);
            Ipv4Repr {
                src: *from.ip(),
                dst: *to.ip(),
                protocol: ipv4::PROTO_TCP,
                payload_len: tcpw::HEADER_LEN,
                ttl: 64,
                ident: self.ident,
                dont_frag: true,
            }
            .emit(d);
            let rst = TcpRepr {
                src_port: r.from.port(),
                dst_port: r.to.port(),
                seq: r.seq,
                ack: r.ack,
                flags: Flags::RST | Flags::ACK,
                ..TcpRepr::default()
            };
            let l4 = &mut d[ipv4::MIN_HEADER_LEN..ipv4::MIN_HEADER_LEN + tcpw::HEADER_LEN];
            rst.emit(l4, r.from.ip(), r.to.ip());
            self.counters.fastl4_rsts_sent.inc();
            let v = self.route_out(now, out, hop.neighbour(*to.ip()), hop.vlan, emit);
            if let Verdict::Dropped(reason) = v {
                self.counters.drops[reason as usize].inc();
            }
        }
    }

    /// Sends an IP packet (no Ethernet header) to `neighbour` on `vlan`, resolving it first.
    fn route_out(
        &mut self,
        now: Instant,
        pkt: Packet,
        neighbour: Ipv4Addr,
        vlan: u16,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        match self.arp.lookup(neighbour, now) {
            Lookup::Hit(mac) => self.send_resolved(pkt, mac, vlan, emit),
            Lookup::HitRefresh(mac) => {
                self.send_arp_request(neighbour, vlan, emit);
                self.send_resolved(pkt, mac, vlan, emit)
            }
            Lookup::Failed => Verdict::Dropped(DropReason::ArpUnresolved),
            Lookup::Miss => match self.arp.hold(neighbour, vlan, pkt, now) {
                Hold::QueuedSendRequest => {
                    self.send_arp_request(neighbour, vlan, emit);
                    Verdict::Held
                }
                Hold::Queued => Verdict::Held,
                Hold::QueueFull(_) => Verdict::Dropped(DropReason::ArpQueueFull),
                Hold::TableFull(_) => Verdict::Dropped(DropReason::ArpTableFull),
            },
        }
    }

    fn egress(&self, vlan: u16) -> Egress {
        let v = &self.dp.vlans[vlan as usize];
        Egress {
            port: v.iface,
            vlan_tag: v.tag,
            src_mac: self.macs.get(v.iface as usize).copied().unwrap_or_default(),
        }
    }

    /// Puts the Ethernet header on an IP packet and sends it. Counted as forwarded.
    fn send_resolved(
        &mut self,
        mut pkt: Packet,
        mac: MacAddr,
        vlan: u16,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let e = self.egress(vlan);
        let hl = if e.vlan_tag.is_some() { 18 } else { 14 };
        if pkt.push_front(hl).is_none() {
            return Verdict::Dropped(DropReason::NoBuffer);
        }
        let ethertype = if pkt.data().get(hl).is_some_and(|b| b >> 4 == 6) {
            eth::ETHERTYPE_IPV6
        } else {
            eth::ETHERTYPE_IPV4
        };
        eth::emit_header(pkt.data_mut(), mac, e.src_mac, e.vlan_tag, ethertype);
        pad_to_min(&mut pkt);
        emit(e.port, pkt);
        Verdict::Forwarded
    }

    fn local_icmp(
        &mut self,
        mut pkt: Packet,
        kind: LocalKind,
        l3_off: usize,
        src_mac: MacAddr,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let hl = Ipv4Packet::new_unchecked(&pkt.data()[l3_off..]).header_len();
        let icmp_off = l3_off + hl;
        match IcmpPacket::new_checked(&pkt.data()[icmp_off..]) {
            Err(IcmpError::Truncated) => return Verdict::Dropped(DropReason::IcmpMalformed),
            Err(IcmpError::BadChecksum) => return Verdict::Dropped(DropReason::IcmpBadChecksum),
            Ok(m) if m.msg_type() != icmp::ECHO_REQUEST || m.code() != 0 => {
                return Verdict::Dropped(DropReason::IcmpUnsupported)
            }
            Ok(_) => {}
        }
        if let LocalKind::Virtual {
            icmp_echo: false, ..
        } = kind
        {
            return Verdict::Dropped(DropReason::IcmpUnsupported);
        }
        let port = pkt.meta.port;
        let my_mac = self.macs[port as usize];
        let d = pkt.data_mut();
        eth::set_macs(d, src_mac, my_mac);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut d[l3_off..]);
            let (s, t) = (ip.src(), ip.dst());
            ip.set_src(t);
            ip.set_dst(s);
        }
        d[l3_off + 8] = 64;
        Ipv4Packet::new_unchecked(&mut d[l3_off..]).fill_checksum();
        IcmpPacket::new_unchecked(&mut d[icmp_off..]).make_echo_reply();
        self.counters.icmp_echo_replies.inc();
        emit(port, pkt);
        Verdict::Answered
    }

    /// Sends an ICMP error about `orig` back toward its sender (the last hop it came from).
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Instant,
        orig: &Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        emit: &mut impl FnMut(u16, Packet),
    ) {
        let ip = Ipv4Packet::new_unchecked(&orig.data()[l3_off..]);
        let Some(me) = self.dp.source_for(vlan, ip.src()) else {
            return;
        };
        if !self.icmp_bucket.take(now) {
            self.counters.icmp_errors_rate_limited.inc();
            return;
        }
        let Some(mut out) = self.pool.alloc() else {
            self.counters.drops[DropReason::NoBuffer as usize].inc();
            return;
        };
        let quoted_len = (ip.header_len() + 8).min(ip.total_len());
        let quoted = &orig.data()[l3_off..l3_off + quoted_len];
        let e = self.egress(vlan);
        let icmp_len = icmp::HEADER_LEN + quoted_len;
        out.set_len(18 + ipv4::MIN_HEADER_LEN + icmp_len);
        let d = out.data_mut();
        let hl = eth::emit_header(d, src_mac, e.src_mac, e.vlan_tag, eth::ETHERTYPE_IPV4);
        self.ident = self.ident.wrapping_add(1);
        Ipv4Repr {
            src: me,
            dst: ip.src(),
            protocol: ipv4::PROTO_ICMP,
            payload_len: icmp_len,
            ttl: 64,
            ident: self.ident,
            dont_frag: false,
        }
        .emit(&mut d[hl..]);
        icmp::emit_error(&mut d[hl + 20..], msg_type, code, rest, quoted);
        out.truncate(hl + 20 + icmp_len);
        pad_to_min(&mut out);
        self.counters.icmp_errors_sent.inc();
        emit(e.port, out);
    }

    fn send_arp_request(
        &mut self,
        target: Ipv4Addr,
        vlan: u16,
        emit: &mut impl FnMut(u16, Packet),
    ) {
        let Some(src) = self.dp.source_for(vlan, target) else {
            return;
        };
        if self.send_arp(ArpFrame::Request { src, target }, vlan, emit) {
            self.counters.arp_requests_sent.inc();
        }
    }

    fn send_arp(&mut self, what: ArpFrame, vlan: u16, emit: &mut impl FnMut(u16, Packet)) -> bool {
        let Some(mut out) = self.pool.alloc() else {
            self.counters.drops[DropReason::NoBuffer as usize].inc();
            return false;
        };
        let e = self.egress(vlan);
        out.set_len(18 + arpw::PACKET_LEN);
        let d = out.data_mut();
        let hl = eth::emit_header(
            d,
            MacAddr::BROADCAST,
            e.src_mac,
            e.vlan_tag,
            eth::ETHERTYPE_ARP,
        );
        let (src, target) = match what {
            ArpFrame::Request { src, target } => (src, target),
            ArpFrame::Gratuitous { addr } => (addr, addr),
        };
        ArpRepr {
            op: Operation::Request,
            sender_mac: e.src_mac,
            sender_ip: src,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        }
        .emit(&mut d[hl..]);
        out.truncate(hl + arpw::PACKET_LEN);
        pad_to_min(&mut out);
        emit(e.port, out);
        true
    }

    /// Runs timers: neighbour updates from other workers, ARP retries and expiry,
    /// pending gratuitous announcements. Call once per loop turn.
    pub fn poll(&mut self, now: Instant, emit: &mut impl FnMut(u16, Packet)) {
        while let Some(u) = self.bus.pop() {
            let mut released: arrayvec::ArrayVec<
                (Packet, MacAddr, u16),
                { crate::arp::MAX_PENDING },
            > = arrayvec::ArrayVec::new();
            let release = |p, m, v| released.push((p, m, v));
            match u.ip {
                IpAddr::V4(ip) => self.arp.learn(ip, u.mac, u.vlan, now, false, release),
                IpAddr::V6(ip) => self.nd.learn(ip, u.mac, u.vlan, now, false, release),
            };
            for (p, m, v) in released {
                let verdict = self.send_resolved(p, m, v, emit);
                self.counters.verdict(verdict);
            }
        }
        let mut events: arrayvec::ArrayVec<ArpTimerEvent, 64> = arrayvec::ArrayVec::new();
        let counters = &self.counters;
        self.arp.poll(now, |ev| match ev {
            ArpTimerEvent::Unresolved(_) => {
                counters.verdict(Verdict::Dropped(DropReason::ArpUnresolved))
            }
            req => {
                // Requests beyond this turn's budget are retried at the next sweep.
                let _ = events.try_push(req);
            }
        });
        for ev in events {
            if let ArpTimerEvent::Request { ip, vlan } = ev {
                self.send_arp_request(ip, vlan, emit);
            }
        }
        self.poll_nd(now, emit);
        if let Some(f) = self.fastl4.as_mut() {
            f.poll(now);
            self.send_resets(now, emit);
        }
        while let Some((addr, vlan)) = self.announce.pop() {
            if self.send_arp(ArpFrame::Gratuitous { addr }, vlan, emit) {
                self.counters.arp_gratuitous_sent.inc();
            }
        }
        // A probe must not take the server-side pair of a fastl4 TCP flow.
        let fastl4 = self.fastl4.as_ref();
        let other = |local: SocketAddr, remote: SocketAddr| {
            fastl4.is_some_and(|f| f.port_in_use(ipv4::PROTO_TCP, local, remote))
        };
        self.host.poll(now, &self.dp, &other);
        self.drain_tcp(now, emit);
    }

    /// When [`L2L3::poll`] must run next: the earliest deadline of every engine (the
    /// neighbour cache's retries and holds, fastl4's flow timers and member-down sweep,
    /// the TCP stack's retransmission, delayed-ACK, keepalive and TIME-WAIT timers, the
    /// health monitors' probes), or a time already past when work is waiting (updates
    /// from other workers, gratuitous announcements, TCP segments beyond this turn's
    /// budget). `None`: nothing is scheduled, only a packet can make work. An idle
    /// worker sleeps until this instant or until a frame arrives, whichever is first.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.bus.pending() || !self.announce.is_empty() || self.tcp_backlog {
            return Some(Instant::ZERO);
        }
        crate::time::earliest([
            self.arp.next_deadline(),
            self.nd.next_deadline(),
            self.nd_work_due(),
            self.fastl4.as_mut().and_then(Fastl4::next_deadline),
            self.host.poll_timeout(),
        ])
    }

    /// Sends what the TCP stack has to send, at most [`TCP_TX_BUDGET`] segments a turn.
    fn drain_tcp(&mut self, now: Instant, emit: &mut impl FnMut(u16, Packet)) {
        // Cleared when the stack has nothing left (or no buffer is free: buffers come
        // back as frames leave, and the stack's own timers retry).
        self.tcp_backlog = true;
        if self.host.tcp().shaped_waiting() {
            self.host.tcp_mut().requeue_shaped();
        }
        for _ in 0..TCP_TX_BUDGET {
            let Some(mut pkt) = self.pool.alloc() else {
                self.counters.drops[DropReason::NoBuffer as usize].inc();
                self.tcp_backlog = false;
                return;
            };
            pkt.set_len(rouge_drivers::buf::MAX_FRAME);
            // Room for either header: an IPv4 segment gives back the 20 bytes it
            // does not use.
            let off = crate::wire::ipv6::HEADER_LEN;
            let room = &self.shaping_room;
            let Some(t) =
                self.host
                    .poll_transmit_shaped(now, &mut pkt.data_mut()[off..], &mut |sh, len| {
                        room.has_room(sh.port, sh.class, len)
                    })
            else {
                self.tcp_backlog = false;
                return;
            };
            let (src, dst) = match (t.src, t.dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (s, d),
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    self.send_segment6(now, pkt, s, d, t.len, emit);
                    continue;
                }
                _ => {
                    self.counters.drops[DropReason::NoRoute as usize].inc();
                    continue;
                }
            };
            pkt.pull_front(off - ipv4::MIN_HEADER_LEN);
            self.ident = self.ident.wrapping_add(1);
            Ipv4Repr {
                src,
                dst,
                protocol: ipv4::PROTO_TCP,
                payload_len: t.len,
                ttl: 64,
                ident: self.ident,
                dont_frag: true,
            }
            .emit(pkt.data_mut());
            pkt.truncate(ipv4::MIN_HEADER_LEN + t.len);
            if let Some(sh) = t.shaping {
                pkt.meta.class = Some(sh.class);
                pkt.meta.flow_hash = sh.hash;
                self.shaping_room.take(sh.port, sh.class, pkt.len() + 18);
            }
            self.counters.tcp_segments_out.inc();
            let Some(route) = self.dp.routes.lookup_v4(dst) else {
                self.counters.drops[DropReason::NoRoute as usize].inc();
                continue;
            };
            let hop = route.next_hop;
            if let Verdict::Dropped(r) =
                self.route_out(now, pkt, hop.neighbour(dst), hop.vlan, emit)
            {
                self.counters.drops[r as usize].inc();
            }
        }
    }
}

enum ArpFrame {
    Request { src: Ipv4Addr, target: Ipv4Addr },
    Gratuitous { addr: Ipv4Addr },
}

/// The source and destination ports of the TCP segment in an IPv4 packet at `l3_off`
/// (zeros when it is too short to hold them).
fn tcp_ports(pkt: &Packet, l3_off: usize) -> (u16, u16) {
    let l3 = &pkt.data()[l3_off..];
    let hl = ((l3.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
    match l3.get(hl..hl + 4) {
        Some(p) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        None => (0, 0),
    }
}

/// Pads a frame with zeros to the Ethernet minimum of 60 bytes (before the FCS).
fn pad_to_min(pkt: &mut Packet) {
    const MIN: usize = 60;
    if pkt.len() < MIN {
        let n = pkt.len();
        pkt.set_len(MIN);
        pkt.data_mut()[n..].fill(0);
    }
}

/// Iterations of the loop the test-only feature `perf-canary` adds to the forwarding
/// virtual server path (see `perf/tests/callgrind_canary.rs`).
pub const PERF_CANARY_ROUNDS: u64 = 1000;

/// Test-only (feature `perf-canary`, never in a release): a fixed loop of
/// [`PERF_CANARY_ROUNDS`] opaque iterations on the forwarding virtual server path, so a
/// test can prove that `perf/run callgrind`'s `forward` figure counts this code.
#[cfg(feature = "perf-canary")]
#[inline(never)]
fn perf_canary() {
    let mut acc = 0u64;
    for i in 0..std::hint::black_box(PERF_CANARY_ROUNDS) {
        acc = std::hint::black_box(acc.wrapping_add(i));
    }
    std::hint::black_box(acc);
}

/// A hash of a forwarded IPv4 packet's addresses and, for an unfragmented packet, the
/// first four bytes of its transport header (the ports of TCP and UDP): keeps a flow's
/// packets in one flow queue of their shaping class.
fn forwarded_flow_hash(l3: &[u8]) -> u32 {
    let word = |o: usize| {
        l3.get(o..o + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let hl = ((l3.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
    let unfragmented = l3.get(6..8).is_some_and(|f| f[0] & 0x3f == 0 && f[1] == 0);
    let ports = if unfragmented { word(hl) } else { 0 };
    (word(12) ^ word(16).rotate_left(16) ^ ports).wrapping_mul(0x9E37_79B9)
}

#[cfg(test)]
mod tests;
