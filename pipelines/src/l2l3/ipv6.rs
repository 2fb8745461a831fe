//! The IPv6 side of the L2/L3 stage: the same path as IPv4 with IPv6's protocols.
//!
//! Neighbour Discovery (RFC 4861) instead of ARP: solicitations for the appliance's
//! addresses (self IPs, virtual addresses, each port's link-local address) are answered
//! with advertisements, neighbours are learned into the [`NdCache`] (the ARP cache's
//! states and bounds), next hops are resolved with multicast solicitations, and worker
//! 0 sends, at start and when addresses are added, an MLDv2 report joining the
//! solicited-node groups (RFC 3810), a duplicate address detection probe per self IP
//! (RFC 4862; optimistic, RFC 4429: the address is used at once and a conflict is
//! counted as `nd_conflict`) and an unsolicited advertisement per address. An MLD query
//! (MLDv1 or MLDv2; general, or about one of a VLAN's groups, from a link-local source)
//! is answered with the VLAN's MLDv2 report by the worker that receives it (worker 0 on
//! AF_PACKET: queries carry a hop-by-hop header, and the fanout sends IPv6 with extension
//! headers there), at most once per VLAN per the query's maximum response delay
//! (`mld_queries_answered`, the others `mld_queries_limited`).
//!
//! ICMPv6 (RFC 4443) instead of ICMP: echo answered, time exceeded, no route and packet
//! too big sent (rate-limited with the IPv4 errors, quoting at most what fits the
//! minimum MTU). Transit packets pass `forwarding` virtual servers and fastl4 flows
//! with the hop limit decremented; extension headers are walked (a bounded chain,
//! routing headers with segments left refused), each refusal with its counter.

use super::*;
use crate::route::NextHop;
use crate::wire::icmpv6::{self, Icmpv6Error, Icmpv6Packet, NdRepr};
use crate::wire::ipv6::{self as ip6, ExtError, Ipv6Error, Ipv6Packet, Ipv6Repr};

/// Work that worker 0 owes the links for the appliance's IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdWork {
    /// An MLDv2 report joining the solicited-node groups of every address on the VLAN.
    Mld {
        /// The VLAN.
        vlan: u16,
    },
    /// A duplicate address detection probe for a self IP.
    Dad {
        /// The address.
        addr: Ipv6Addr,
        /// Its VLAN.
        vlan: u16,
    },
    /// An unsolicited neighbour advertisement to all nodes.
    Unsolicited {
        /// The address.
        addr: Ipv6Addr,
        /// Its VLAN.
        vlan: u16,
    },
}

/// The work for the addresses of `dp` not in `old` (a stack: the last item goes
/// first): per VLAN an MLD report, then the probes, then the advertisements.
pub(super) fn start_work(
    dp: &Dataplane,
    old: &[(Ipv6Addr, u16, bool)],
    _ports: usize,
) -> Vec<NdWork> {
    let new: Vec<_> = dp
        .nd_announcements()
        .into_iter()
        .filter(|a| !old.contains(a))
        .collect();
    let mut work = Vec::new();
    for &(addr, vlan, _) in &new {
        work.push(NdWork::Unsolicited { addr, vlan });
    }
    for &(addr, vlan, is_self) in &new {
        if is_self {
            work.push(NdWork::Dad { addr, vlan });
        }
    }
    let mut vlans: Vec<u16> = new.iter().map(|a| a.1).collect();
    vlans.sort_unstable();
    vlans.dedup();
    work.extend(vlans.into_iter().map(|vlan| NdWork::Mld { vlan }));
    work
}

/// The solicited-node groups the appliance listens to on each VLAN of `dp`: its port's
/// link-local address's (from `link_locals`, one per port), then those of the VLAN's
/// addresses (at most [`icmpv6::MLD_MAX_GROUPS`], what one report carries). Computed
/// when the configuration changes, so answering a query allocates nothing.
pub(super) fn mld_groups(dp: &Dataplane, link_locals: &[Ipv6Addr]) -> Vec<MldGroups> {
    let announced = dp.nd_announcements();
    (0..dp.vlans.len())
        .map(|vlan| {
            let mut groups = MldGroups::new();
            if let Some(&ll) = link_locals.get(dp.vlans[vlan].iface as usize) {
                groups.push(ip6::solicited_node(ll));
            }
            for &(a, v, _) in &announced {
                let g = ip6::solicited_node(a);
                if v as usize == vlan && !groups.contains(&g) && groups.try_push(g).is_err() {
                    break;
                }
            }
            groups
        })
        .collect()
}

/// The groups of one VLAN, as one MLDv2 report carries them.
pub(super) type MldGroups = arrayvec::ArrayVec<Ipv6Addr, { icmpv6::MLD_MAX_GROUPS }>;

fn ipv6_drop(e: Ipv6Error) -> DropReason {
    match e {
        Ipv6Error::Truncated => DropReason::Ipv6Truncated,
        Ipv6Error::BadVersion => DropReason::Ipv6BadVersion,
        Ipv6Error::BadPayloadLength => DropReason::Ipv6BadPayloadLength,
    }
}

fn ext_drop(e: ExtError) -> DropReason {
    match e {
        ExtError::Truncated => DropReason::Ipv6ExtTruncated,
        ExtError::Chain => DropReason::Ipv6ExtChain,
        ExtError::RoutingHeader => DropReason::Ipv6RoutingHeader,
    }
}

fn icmpv6_drop(e: Icmpv6Error) -> DropReason {
    match e {
        Icmpv6Error::Truncated => DropReason::Icmpv6Malformed,
        Icmpv6Error::BadChecksum => DropReason::Icmpv6BadChecksum,
    }
}

/// What an ICMPv6 message to send needs besides its body.
struct Icmp6Out {
    vlan: u16,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    /// Put MLD's hop-by-hop router-alert header in front.
    router_alert: bool,
}

impl L2L3 {
    /// Both neighbour caches (ARP and ND) as rows for display, IPv4 first.
    pub fn neighbours_view(&self, now: Instant) -> Vec<ArpEntryView<IpAddr>> {
        fn widen<A: Into<IpAddr>>(e: ArpEntryView<A>) -> ArpEntryView<IpAddr> {
            ArpEntryView {
                ip: e.ip.into(),
                mac: e.mac,
                vlan: e.vlan,
                state: e.state,
                expires_in_ms: e.expires_in_ms,
            }
        }
        let mut v: Vec<_> = self.arp_view(now).into_iter().map(widen).collect();
        v.extend(self.nd_view(now).into_iter().map(widen));
        v
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_ipv6(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        multicast: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let (src, dst, total) = match Ipv6Packet::new_checked(&pkt.data()[l3_off..]) {
            Ok(ip) => (ip.src(), ip.dst(), ip.total_len()),
            Err(e) => return Verdict::Dropped(ipv6_drop(e)),
        };
        if src.is_multicast() || src.is_loopback() {
            return Verdict::Dropped(DropReason::Ipv6BadSource);
        }
        // Drop Ethernet padding so lengths below are the IP packet's.
        pkt.truncate(l3_off + total);
        let up = match Ipv6Packet::new_unchecked(&pkt.data()[l3_off..]).upper_layer() {
            Ok(u) => u,
            Err(e) => return Verdict::Dropped(ext_drop(e)),
        };
        let l4_off = l3_off + ip6::HEADER_LEN + up.offset;
        if up.proto == ip6::NH_ICMPV6 && up.frag.is_none() {
            let t = pkt.data().get(l4_off).copied();
            if matches!(t, Some(icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT)) {
                return self.handle_nd(now, pkt, vlan, l3_off, l4_off, src_mac, emit);
            }
        }
        if up.proto == ip6::NH_ICMPV6
            && up.frag.is_none()
            && pkt.data().get(l4_off) == Some(&icmpv6::MLD_QUERY)
        {
            return self.handle_mld_query(now, &pkt, vlan, l4_off, src, dst);
        }
        if dst.is_multicast() || multicast {
            // Router solicitations, anything else sent to a group.
            return Verdict::Dropped(DropReason::Ipv6Multicast);
        }
        if src.is_unspecified() {
            return Verdict::Dropped(DropReason::Ipv6BadSource);
        }
        if let Some(f) = self.fastl4.as_mut() {
            let ports = self.host.source_ports();
            let c = f.classify(now, &self.dp, &pkt.data()[l3_off..], ports);
            self.send_resets(now, emit);
            match c {
                Classified::NotOurs => {}
                Classified::Drop(r) => return Verdict::Dropped(r),
                Classified::Translate(plan) => {
                    return self.fastl4_forward6(now, pkt, vlan, l3_off, src_mac, plan, emit)
                }
            }
        }
        let port = pkt.meta.port as usize;
        let kind = self.dp.local_v6(dst).or_else(|| {
            (self.link_locals.get(port) == Some(&dst)).then_some(LocalKind::SelfIp { vlan })
        });
        if let Some(kind) = kind {
            if up.frag.is_some() {
                return Verdict::Dropped(DropReason::Ipv6FragmentToLocal);
            }
            return match up.proto {
                ip6::NH_ICMPV6 => self.local_icmpv6(pkt, kind, l3_off, l4_off, src_mac, emit),
                ip6::NH_TCP
                    if matches!(kind, LocalKind::SelfIp { .. })
                        || self
                            .dp
                            .is_proxy_endpoint_ip(IpAddr::V6(dst), tcp_dport(&pkt, l4_off)) =>
                {
                    let trusted = pkt.meta.l4_csum_partial;
                    let seg = &pkt.data()[l4_off..];
                    self.host
                        .handle_segment(now, src.into(), dst.into(), seg, trusted);
                    Verdict::Consumed
                }
                _ => Verdict::Dropped(DropReason::NoListener),
            };
        }
        if ip6::is_link_local(dst) || ip6::is_link_local(src) {
            // Link-local addresses never leave their link.
            return Verdict::Dropped(DropReason::NoVirtual);
        }
        let Some(vs) = self.dp.forwarding_for_v6(dst) else {
            return Verdict::Dropped(DropReason::NoVirtual);
        };
        let shard = vs.counters.shard(self.worker);
        shard.packets.inc();
        shard.bytes.add(total as u64);
        let hop = match self.transit6(now, &pkt, vlan, l3_off, src_mac, dst, true, emit) {
            Ok(hop) => hop,
            Err(v) => return v,
        };
        if let Some(policy) = &self.dp.shaping {
            // Forwarded traffic is not classified by rules: it takes the default class.
            pkt.meta.class = Some(policy.default_class() as u16);
            pkt.meta.flow_hash =
                forwarded_flow_hash6(&pkt.data()[l3_off..], up.offset, up.frag.is_some());
        }
        Ipv6Packet::new_unchecked(&mut pkt.data_mut()[l3_off..]).decrement_hop_limit();
        pkt.pull_front(l3_off);
        self.route_out6(now, pkt, hop.neighbour_v6(dst), hop.vlan, emit)
    }

    /// The checks every IPv6 transit packet passes: hop limit, a route, the egress MTU;
    /// on failure the verdict, with an ICMPv6 error to the sender when `errors`.
    #[allow(clippy::too_many_arguments)]
    fn transit6(
        &mut self,
        now: Instant,
        pkt: &Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        dst: Ipv6Addr,
        errors: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Result<NextHop, Verdict> {
        let (hop_limit, total) = {
            let ip = Ipv6Packet::new_unchecked(&pkt.data()[l3_off..]);
            (ip.hop_limit(), ip.total_len())
        };
        let mut fail = |me: &mut Self, t: u8, c: u8, rest: [u8; 4], why: DropReason| {
            if errors {
                me.icmp6_error(now, pkt, vlan, l3_off, src_mac, t, c, rest, emit);
            }
            Err(Verdict::Dropped(why))
        };
        if hop_limit <= 1 {
            return fail(
                self,
                icmpv6::TIME_EXCEEDED,
                0,
                [0; 4],
                DropReason::HopLimitExceeded,
            );
        }
        let Some(route) = self.dp.routes.lookup_v6(dst) else {
            return fail(
                self,
                icmpv6::DEST_UNREACHABLE,
                icmpv6::CODE_NO_ROUTE,
                [0; 4],
                DropReason::NoRoute,
            );
        };
        let hop = route.next_hop;
        let out_iface = self.dp.vlans[hop.vlan as usize].iface as usize;
        let mtu = self.mtus.get(out_iface).copied().unwrap_or(1500);
        if total > mtu {
            // IPv6 routers never fragment: the sender learns the path MTU.
            return fail(
                self,
                icmpv6::PACKET_TOO_BIG,
                0,
                (mtu as u32).to_be_bytes(),
                DropReason::Ipv6PacketTooBig,
            );
        }
        Ok(hop)
    }

    /// Forwards a packet of an IPv6 fastl4 flow (see `fastl4_forward`).
    #[allow(clippy::too_many_arguments)]
    fn fastl4_forward6(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        vlan: u16,
        l3_off: usize,
        src_mac: MacAddr,
        plan: Plan,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let IpAddr::V6(next_dst) = plan.next_dst else {
            return Verdict::Dropped(DropReason::NoRoute);
        };
        // ICMPv6 errors are never sent about ICMPv6 errors.
        let is_error = plan.kind == Fastl4Kind::IcmpError;
        let hop = match self.transit6(now, &pkt, vlan, l3_off, src_mac, next_dst, !is_error, emit) {
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
        Ipv6Packet::new_unchecked(&mut pkt.data_mut()[l3_off..]).decrement_hop_limit();
        pkt.pull_front(l3_off);
        self.route_out6(now, pkt, hop.neighbour_v6(next_dst), hop.vlan, emit)
    }

    /// Answers an ICMPv6 echo request to one of the appliance's addresses in place.
    fn local_icmpv6(
        &mut self,
        mut pkt: Packet,
        kind: LocalKind,
        l3_off: usize,
        l4_off: usize,
        src_mac: MacAddr,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let (src, dst) = {
            let ip = Ipv6Packet::new_unchecked(&pkt.data()[l3_off..]);
            (ip.src(), ip.dst())
        };
        match Icmpv6Packet::new_checked(&pkt.data()[l4_off..], src, dst) {
            Err(e) => return Verdict::Dropped(icmpv6_drop(e)),
            Ok(m) if m.msg_type() != icmpv6::ECHO_REQUEST || m.code() != 0 => {
                return Verdict::Dropped(DropReason::Icmpv6Unsupported)
            }
            Ok(_) => {}
        }
        if let LocalKind::Virtual {
            icmp_echo: false, ..
        } = kind
        {
            return Verdict::Dropped(DropReason::Icmpv6Unsupported);
        }
        let port = pkt.meta.port;
        let my_mac = self.macs[port as usize];
        let d = pkt.data_mut();
        eth::set_macs(d, src_mac, my_mac);
        {
            let mut ip = Ipv6Packet::new_unchecked(&mut d[l3_off..]);
            ip.set_src(dst);
            ip.set_dst(src);
            ip.set_hop_limit(64);
        }
        Icmpv6Packet::new_unchecked(&mut d[l4_off..]).make_echo_reply();
        self.counters.icmpv6_echo_replies.inc();
        emit(port, pkt);
        Verdict::Answered
    }

    /// Sends an ICMPv6 error about `orig` back toward its sender (the last hop it came
    /// from), quoting as much of it as fits the minimum MTU.
    #[allow(clippy::too_many_arguments)]
    fn icmp6_error(
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
        let ip = Ipv6Packet::new_unchecked(&orig.data()[l3_off..]);
        let to = ip.src();
        if to.is_unspecified() || to.is_multicast() {
            return;
        }
        // Never an error about an ICMPv6 error (RFC 4443 section 2.4 (e)).
        if let Ok(up) = ip.upper_layer() {
            let first = ip.payload().get(up.offset).copied();
            if up.proto == ip6::NH_ICMPV6
                && up.frag.is_none_or(|f| f.offset == 0)
                && first.is_some_and(|t| t < 128)
            {
                return;
            }
        }
        let Some(me) = self.dp.source_for_v6(vlan, to) else {
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
        let quoted_len = ip.total_len().min(icmpv6::MAX_QUOTE);
        let quoted = &orig.data()[l3_off..l3_off + quoted_len];
        let e = self.egress(vlan);
        let icmp_len = icmpv6::HEADER_LEN + quoted_len;
        out.set_len(18 + ip6::HEADER_LEN + icmp_len);
        let d = out.data_mut();
        let hl = eth::emit_header(d, src_mac, e.src_mac, e.vlan_tag, eth::ETHERTYPE_IPV6);
        Ipv6Repr {
            src: me,
            dst: to,
            next_header: ip6::NH_ICMPV6,
            payload_len: icmp_len,
            hop_limit: 64,
        }
        .emit(&mut d[hl..]);
        icmpv6::emit_error(
            &mut d[hl + ip6::HEADER_LEN..],
            me,
            to,
            msg_type,
            code,
            rest,
            quoted,
        );
        out.truncate(hl + ip6::HEADER_LEN + icmp_len);
        pad_to_min(&mut out);
        self.counters.icmpv6_errors_sent.inc();
        emit(e.port, out);
    }

    /// A neighbour solicitation or advertisement (to any address: solicited-node groups,
    /// all nodes, or unicast).
    #[allow(clippy::too_many_arguments)]
    fn handle_nd(
        &mut self,
        now: Instant,
        pkt: Packet,
        vlan: u16,
        l3_off: usize,
        l4_off: usize,
        src_mac: MacAddr,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        let (src, dst, hop_limit) = {
            let ip = Ipv6Packet::new_unchecked(&pkt.data()[l3_off..]);
            (ip.src(), ip.dst(), ip.hop_limit())
        };
        if let Err(e) = Icmpv6Packet::new_checked(&pkt.data()[l4_off..], src, dst) {
            return Verdict::Dropped(icmpv6_drop(e));
        }
        // RFC 4861 7.1: a message from off link (hop limit below 255) is not ND.
        if hop_limit != icmpv6::ND_HOP_LIMIT {
            return Verdict::Dropped(DropReason::NdMalformed);
        }
        let Ok(nd) = NdRepr::parse(&pkt.data()[l4_off..]) else {
            return Verdict::Dropped(DropReason::NdMalformed);
        };
        let port = pkt.meta.port;
        match nd {
            NdRepr::Solicit {
                target,
                source_lladdr,
            } => {
                let mine = self.owns_nd(target, vlan, port);
                if src.is_unspecified() {
                    // Duplicate address detection by another node.
                    if source_lladdr.is_some() || !dst.is_multicast() {
                        return Verdict::Dropped(DropReason::NdMalformed);
                    }
                    if !mine {
                        return Verdict::Dropped(DropReason::NdNotForUs);
                    }
                    // Someone wants one of our addresses: defend it.
                    self.send_na(target, vlan, None, false, emit);
                    return Verdict::Dropped(DropReason::NdConflict);
                }
                if !mine {
                    return Verdict::Dropped(DropReason::NdNotForUs);
                }
                let mac = source_lladdr.unwrap_or(src_mac);
                if self.on_link6(src, vlan) || ip6::is_link_local(src) {
                    self.learn6(now, src, mac, vlan, true, emit);
                }
                if self.send_na(target, vlan, Some((src, mac)), true, emit) {
                    self.counters.nd_adverts_sent.inc();
                    Verdict::Answered
                } else {
                    Verdict::Dropped(DropReason::NoBuffer)
                }
            }
            NdRepr::Advert {
                solicited,
                target,
                target_lladdr,
                ..
            } => {
                if solicited && dst.is_multicast() {
                    return Verdict::Dropped(DropReason::NdMalformed);
                }
                if self.owns_nd(target, vlan, port) {
                    return Verdict::Dropped(DropReason::NdConflict);
                }
                let mac = target_lladdr.unwrap_or(src_mac);
                // An answer to one of our solicitations creates the entry even on a
                // worker that did not ask (the fanout may bring it to any worker); the
                // others are told through the bus. Unsolicited ones only update.
                let to_us = solicited && self.owns_nd(dst, vlan, port);
                self.learn6(now, target, mac, vlan, to_us, emit);
                Verdict::Consumed
            }
        }
    }

    /// True if the appliance answers ND for `target` on `vlan` (arrived on `port`).
    fn owns_nd(&self, target: Ipv6Addr, vlan: u16, port: u16) -> bool {
        self.dp.answers_nd(target, vlan) || self.link_locals.get(port as usize) == Some(&target)
    }

    fn on_link6(&self, ip: Ipv6Addr, vlan: u16) -> bool {
        self.dp
            .self_ips
            .iter()
            .any(|s| s.vlan == vlan && s.addr.network().contains(IpAddr::V6(ip)))
    }

    fn learn6(
        &mut self,
        now: Instant,
        ip: Ipv6Addr,
        mac: MacAddr,
        vlan: u16,
        create: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) {
        let mut released: arrayvec::ArrayVec<(Packet, MacAddr, u16), { crate::arp::MAX_PENDING }> =
            arrayvec::ArrayVec::new();
        let known = self.nd.learn(ip, mac, vlan, now, create, |p, m, v| {
            released.push((p, m, v));
        });
        if known {
            self.bus.publish(NeighbourUpdate {
                ip: IpAddr::V6(ip),
                mac,
                vlan,
            });
        }
        for (p, m, v) in released {
            let verdict = self.send_resolved(p, m, v, emit);
            self.counters.verdict(verdict);
        }
    }

    /// Sends an IPv6 packet (no Ethernet header) to `neighbour` on `vlan`, resolving it
    /// with Neighbour Discovery first.
    pub(super) fn route_out6(
        &mut self,
        now: Instant,
        pkt: Packet,
        neighbour: Ipv6Addr,
        vlan: u16,
        emit: &mut impl FnMut(u16, Packet),
    ) -> Verdict {
        match self.nd.lookup(neighbour, now) {
            Lookup::Hit(mac) => self.send_resolved(pkt, mac, vlan, emit),
            Lookup::HitRefresh(mac) => {
                self.send_ns(neighbour, vlan, emit);
                self.send_resolved(pkt, mac, vlan, emit)
            }
            Lookup::Failed => Verdict::Dropped(DropReason::NdUnresolved),
            Lookup::Miss => match self.nd.hold(neighbour, vlan, pkt, now) {
                Hold::QueuedSendRequest => {
                    self.send_ns(neighbour, vlan, emit);
                    Verdict::Held
                }
                Hold::Queued => Verdict::Held,
                Hold::QueueFull(_) => Verdict::Dropped(DropReason::NdQueueFull),
                Hold::TableFull(_) => Verdict::Dropped(DropReason::NdTableFull),
            },
        }
    }

    /// Builds and sends an ICMPv6 message whose body `body` writes (it gets the room
    /// after the headers and returns the body's length, checksum included).
    fn send_icmp6(
        &mut self,
        o: Icmp6Out,
        body: impl FnOnce(&mut [u8]) -> usize,
        emit: &mut impl FnMut(u16, Packet),
    ) -> bool {
        let Some(mut out) = self.pool.alloc() else {
            self.counters.drops[DropReason::NoBuffer as usize].inc();
            return false;
        };
        let e = self.egress(o.vlan);
        out.set_len(rouge_drivers::buf::MAX_FRAME);
        let d = out.data_mut();
        let hl = eth::emit_header(d, o.dst_mac, e.src_mac, e.vlan_tag, eth::ETHERTYPE_IPV6);
        let ext = if o.router_alert {
            icmpv6::MLD_HOP_BY_HOP.len()
        } else {
            0
        };
        let at = hl + ip6::HEADER_LEN + ext;
        let n = body(&mut d[at..]);
        Ipv6Repr {
            src: o.src,
            dst: o.dst,
            next_header: if o.router_alert {
                ip6::NH_HOP_BY_HOP
            } else {
                ip6::NH_ICMPV6
            },
            payload_len: ext + n,
            hop_limit: o.hop_limit,
        }
        .emit(&mut d[hl..]);
        if o.router_alert {
            d[hl + ip6::HEADER_LEN..at].copy_from_slice(&icmpv6::MLD_HOP_BY_HOP);
        }
        out.truncate(at + n);
        pad_to_min(&mut out);
        emit(e.port, out);
        true
    }

    /// Sends a neighbour advertisement for `target` (ours): to `to` (address and MAC)
    /// when answering a solicitation, else unsolicited to all nodes.
    fn send_na(
        &mut self,
        target: Ipv6Addr,
        vlan: u16,
        to: Option<(Ipv6Addr, MacAddr)>,
        solicited: bool,
        emit: &mut impl FnMut(u16, Packet),
    ) -> bool {
        let my_mac = self.egress(vlan).src_mac;
        let (dst, dst_mac) =
            to.unwrap_or((icmpv6::ALL_NODES, ip6::multicast_mac(icmpv6::ALL_NODES)));
        // A virtual address may be anycast-like (answered on several VLANs): it does
        // not override a cached entry; self IPs and link-local addresses do.
        let override_ = !matches!(self.dp.local_v6(target), Some(LocalKind::Virtual { .. }));
        let na = NdRepr::Advert {
            router: true,
            solicited,
            override_,
            target,
            target_lladdr: Some(my_mac),
        };
        let o = Icmp6Out {
            vlan,
            dst_mac,
            src: target,
            dst,
            hop_limit: icmpv6::ND_HOP_LIMIT,
            router_alert: false,
        };
        self.send_icmp6(o, |b| na.emit(b, target, dst), emit)
    }

    /// Sends a multicast neighbour solicitation for `target` on `vlan`.
    fn send_ns(&mut self, target: Ipv6Addr, vlan: u16, emit: &mut impl FnMut(u16, Packet)) {
        let iface = self.dp.vlans[vlan as usize].iface as usize;
        let src = if ip6::is_link_local(target) {
            self.link_locals.get(iface).copied()
        } else {
            self.dp.source_for_v6(vlan, target)
        };
        let Some(src) = src else {
            return;
        };
        let my_mac = self.egress(vlan).src_mac;
        let group = ip6::solicited_node(target);
        let ns = NdRepr::Solicit {
            target,
            source_lladdr: Some(my_mac),
        };
        let o = Icmp6Out {
            vlan,
            dst_mac: ip6::multicast_mac(group),
            src,
            dst: group,
            hop_limit: icmpv6::ND_HOP_LIMIT,
            router_alert: false,
        };
        if self.send_icmp6(o, |b| ns.emit(b, src, group), emit) {
            self.counters.nd_solicits_sent.inc();
        }
    }

    /// When ND work is waiting: at once.
    pub(super) fn nd_work_due(&self) -> Option<Instant> {
        (!self.nd_work.is_empty()).then_some(Instant::ZERO)
    }

    /// Runs the ND cache's retries and expiry and the pending announcements.
    pub(super) fn poll_nd(&mut self, now: Instant, emit: &mut impl FnMut(u16, Packet)) {
        let mut events: arrayvec::ArrayVec<ArpTimerEvent<Ipv6Addr>, 64> = arrayvec::ArrayVec::new();
        let counters = &self.counters;
        self.nd.poll(now, |ev| match ev {
            ArpTimerEvent::Unresolved(_) => {
                counters.verdict(Verdict::Dropped(DropReason::NdUnresolved))
            }
            req => {
                // Solicitations beyond this turn's budget are retried at the next sweep.
                let _ = events.try_push(req);
            }
        });
        for ev in events {
            if let ArpTimerEvent::Request { ip, vlan } = ev {
                self.send_ns(ip, vlan, emit);
            }
        }
        while let Some(w) = self.nd_work.pop() {
            match w {
                NdWork::Mld { vlan } => self.send_mld_report(vlan, emit),
                NdWork::Dad { addr, vlan } => {
                    let group = ip6::solicited_node(addr);
                    let ns = NdRepr::Solicit {
                        target: addr,
                        source_lladdr: None,
                    };
                    let o = Icmp6Out {
                        vlan,
                        dst_mac: ip6::multicast_mac(group),
                        src: Ipv6Addr::UNSPECIFIED,
                        dst: group,
                        hop_limit: icmpv6::ND_HOP_LIMIT,
                        router_alert: false,
                    };
                    if self.send_icmp6(o, |b| ns.emit(b, Ipv6Addr::UNSPECIFIED, group), emit) {
                        self.counters.nd_dad_probes_sent.inc();
                    }
                }
                NdWork::Unsolicited { addr, vlan } => {
                    if self.send_na(addr, vlan, None, false, emit) {
                        self.counters.nd_unsolicited_sent.inc();
                    }
                }
            }
        }
    }

    /// An MLD query (either version) on `vlan`: a general one, or one about a group of
    /// the VLAN's, is answered with the VLAN's MLDv2 report at the next poll, at most
    /// once per VLAN per the query's maximum response delay (see [`mld::MldLimiter`]).
    /// Queries from other than a link-local source are ignored (RFC 3810 section
    /// 5.1.14), as are those about other groups.
    fn handle_mld_query(
        &mut self,
        now: Instant,
        pkt: &Packet,
        vlan: u16,
        l4_off: usize,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Verdict {
        let msg = &pkt.data()[l4_off..];
        if let Err(e) = Icmpv6Packet::new_checked(msg, src, dst) {
            return Verdict::Dropped(icmpv6_drop(e));
        }
        let Some(q) = icmpv6::MldQuery::parse(msg) else {
            return Verdict::Dropped(DropReason::Icmpv6Malformed);
        };
        if !ip6::is_link_local(src) {
            return Verdict::Dropped(DropReason::Ipv6BadSource);
        }
        let ours = self
            .mld_groups
            .get(vlan as usize)
            .is_some_and(|g| g.contains(&q.group));
        if !q.is_general() && !ours {
            return Verdict::Dropped(DropReason::Ipv6Multicast);
        }
        if self.mld.on_query(now, vlan, q.max_delay_ms) {
            self.counters.mld_queries_answered.inc();
            if !self.nd_work.contains(&NdWork::Mld { vlan }) {
                self.nd_work.push(NdWork::Mld { vlan });
            }
        } else {
            self.counters.mld_queries_limited.inc();
        }
        Verdict::Consumed
    }

    /// An MLDv2 report joining the solicited-node groups of the VLAN's addresses and of
    /// its port's link-local address, from that link-local address.
    fn send_mld_report(&mut self, vlan: u16, emit: &mut impl FnMut(u16, Packet)) {
        let iface = self.dp.vlans[vlan as usize].iface as usize;
        let Some(&ll) = self.link_locals.get(iface) else {
            return;
        };
        let Some(groups) = self.mld_groups.get(vlan as usize).cloned() else {
            return;
        };
        let o = Icmp6Out {
            vlan,
            dst_mac: ip6::multicast_mac(icmpv6::ALL_MLDV2_ROUTERS),
            src: ll,
            dst: icmpv6::ALL_MLDV2_ROUTERS,
            hop_limit: 1,
            router_alert: true,
        };
        if self.send_icmp6(o, |b| icmpv6::emit_mld2_report(b, ll, &groups), emit) {
            self.counters.mld_reports_sent.inc();
        }
    }

    /// Sends a TCP RST of a fastl4 IPv6 flow toward its client.
    pub(super) fn send_reset6(
        &mut self,
        now: Instant,
        r: &crate::fastl4::ResetSpec,
        emit: &mut impl FnMut(u16, Packet),
    ) {
        let (IpAddr::V6(from), IpAddr::V6(to)) = (r.from.ip(), r.to.ip()) else {
            return;
        };
        let Some(route) = self.dp.routes.lookup_v6(to) else {
            self.counters.drops[DropReason::NoRoute as usize].inc();
            return;
        };
        let hop = route.next_hop;
        let Some(mut out) = self.pool.alloc() else {
            self.counters.drops[DropReason::NoBuffer as usize].inc();
            return;
        };
        out.set_len(ip6::HEADER_LEN + tcpw::HEADER_LEN);
        let d = out.data_mut();
        Ipv6Repr {
            src: from,
            dst: to,
            next_header: ip6::NH_TCP,
            payload_len: tcpw::HEADER_LEN,
            hop_limit: 64,
        }
        .emit(d);
        TcpRepr {
            src_port: r.from.port(),
            dst_port: r.to.port(),
            seq: r.seq,
            ack: r.ack,
            flags: Flags::RST | Flags::ACK,
            ..TcpRepr::default()
        }
        .emit(&mut d[ip6::HEADER_LEN..], r.from.ip(), r.to.ip());
        self.counters.fastl4_rsts_sent.inc();
        if let Verdict::Dropped(reason) =
            self.route_out6(now, out, hop.neighbour_v6(to), hop.vlan, emit)
        {
            self.counters.drops[reason as usize].inc();
        }
    }

    /// Sends a segment of the TCP stack written `len` bytes long after 40 bytes of room
    /// at the start of `pkt`: the IPv6 header goes there.
    pub(super) fn send_segment6(
        &mut self,
        now: Instant,
        mut pkt: Packet,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        len: usize,
        emit: &mut impl FnMut(u16, Packet),
    ) {
        Ipv6Repr {
            src,
            dst,
            next_header: ip6::NH_TCP,
            payload_len: len,
            hop_limit: 64,
        }
        .emit(pkt.data_mut());
        pkt.truncate(ip6::HEADER_LEN + len);
        self.counters.tcp_segments_out.inc();
        let Some(route) = self.dp.routes.lookup_v6(dst) else {
            self.counters.drops[DropReason::NoRoute as usize].inc();
            return;
        };
        let hop = route.next_hop;
        if let Verdict::Dropped(r) =
            self.route_out6(now, pkt, hop.neighbour_v6(dst), hop.vlan, emit)
        {
            self.counters.drops[r as usize].inc();
        }
    }
}

/// A hash of a forwarded IPv6 packet's addresses and, unless it is a fragment, the
/// first four bytes of its upper-layer header (`l4_off` after the fixed header).
fn forwarded_flow_hash6(l3: &[u8], l4_off: usize, fragment: bool) -> u32 {
    let word = |o: usize| {
        l3.get(o..o + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut h = 0u32;
    for o in (8..40).step_by(4) {
        h = h.rotate_left(5) ^ word(o);
    }
    let ports = if fragment {
        0
    } else {
        word(ip6::HEADER_LEN + l4_off)
    };
    (h ^ ports).wrapping_mul(0x9E37_79B9)
}

/// The destination port of the TCP header at `l4_off` (0 when the segment is too short:
/// no endpoint has port 0 but SNAT pool addresses, which are IPv4).
fn tcp_dport(pkt: &Packet, l4_off: usize) -> u16 {
    pkt.data()
        .get(l4_off + 2..l4_off + 4)
        .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
}
