//! The IPv6 side of the L2/L3 pipeline driven frame by frame: Neighbour Discovery
//! (answers, resolution, announcements, conflicts), ICMPv6 echo and errors, forwarding
//! with the hop limit, fastl4 over IPv6 (NAT both ways, a packet too big translated),
//! the TCP stack's segments over IPv6, and malformed IPv6 counted and never answered.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use rouge_drivers::{MacAddr, Packet, PacketPool};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::dataplane::{Dataplane, Fastl4Protocol, Fastl4Vs, Snat};
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::testing;
use rouge_pipelines::verdict::{DropReason, Verdict};
use rouge_pipelines::wire::ethernet::{self as eth, EthernetFrame};
use rouge_pipelines::wire::icmpv6::{self, Icmpv6Packet, NdRepr};
use rouge_pipelines::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use rouge_pipelines::wire::tcp::{Flags, TcpPacket, TcpRepr};
use rouge_pipelines::wire::udp;
use rouge_pipelines::Instant;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn client() -> Ipv6Addr {
    a("2001:2:0:1::2")
}
fn self_c() -> Ipv6Addr {
    a("2001:2:0:1::1")
}
fn self_s() -> Ipv6Addr {
    a("2001:2:0:2::1")
}
fn server() -> Ipv6Addr {
    a("2001:2:0:2::11")
}
fn vip() -> Ipv6Addr {
    a("2001:2:0:1::100")
}
fn mac_lb(port: u16) -> MacAddr {
    MacAddr::local(100 + port as u32)
}
fn mac_client() -> MacAddr {
    MacAddr::local(1)
}
fn mac_server() -> MacAddr {
    MacAddr::local(2)
}

struct Bed {
    l2: L2L3,
    pool: PacketPool,
    out: Vec<(u16, Packet)>,
    now: Instant,
}

impl Bed {
    /// A worker-0 pipeline on `dp` with port MTUs `mtus`, its start-up announcements
    /// already taken.
    fn with(dp: Dataplane, mtus: [usize; 2]) -> Bed {
        let pool = PacketPool::new(64);
        let bus = NeighbourBus::new(1).pop().unwrap();
        let l2 = L2L3::new(
            0,
            Arc::new(dp),
            vec![mac_lb(0), mac_lb(1)],
            mtus.to_vec(),
            PipelineCounters::new_shared(),
            bus,
            pool.clone(),
        );
        let mut bed = Bed {
            l2,
            pool,
            out: Vec::new(),
            now: Instant::from_secs(1),
        };
        bed.poll();
        bed.take();
        bed
    }

    fn new() -> Bed {
        Bed::with(testing::dual_stack_dataplane(1), [1500, 1500])
    }

    fn rx(&mut self, port: u16, frame: &[u8]) -> Verdict {
        let mut p = self.pool.alloc_from(frame).unwrap();
        p.meta.port = port;
        let out = &mut self.out;
        self.l2
            .process(self.now, p, &mut |port, pkt| out.push((port, pkt)))
    }

    fn poll(&mut self) {
        let out = &mut self.out;
        self.l2
            .poll(self.now, &mut |port, pkt| out.push((port, pkt)));
    }

    fn take(&mut self) -> Vec<(u16, Vec<u8>)> {
        self.out
            .drain(..)
            .map(|(p, pkt)| (p, pkt.data().to_vec()))
            .collect()
    }

    fn dropped(&self, r: DropReason) -> u64 {
        self.l2.counters().dropped(r)
    }

    /// Makes `ip` at `mac` on `port` known: it solicits one of our addresses, which
    /// teaches us its own; the advertisement is thrown away.
    fn introduce(&mut self, port: u16, mac: MacAddr, ip: Ipv6Addr, ours: Ipv6Addr) {
        let v = self.rx(port, &ns_frame(mac, ip, ours, Some(mac), 255));
        assert_eq!(v, Verdict::Answered);
        self.take();
    }
}

/// An Ethernet frame carrying an IPv6 packet with `payload` after the fixed header.
fn ip6_frame(
    dmac: MacAddr,
    smac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8; 14 + 40 + payload.len()];
    eth::emit_header(&mut b, dmac, smac, None, eth::ETHERTYPE_IPV6);
    Ipv6Repr {
        src,
        dst,
        next_header: next,
        payload_len: payload.len(),
        hop_limit,
    }
    .emit(&mut b[14..]);
    b[54..].copy_from_slice(payload);
    b
}

fn ns_frame(
    smac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
    sll: Option<MacAddr>,
    hop_limit: u8,
) -> Vec<u8> {
    let group = ipv6::solicited_node(target);
    let mut m = [0u8; 32];
    let n = NdRepr::Solicit {
        target,
        source_lladdr: sll,
    }
    .emit(&mut m, src, group);
    ip6_frame(
        ipv6::multicast_mac(group),
        smac,
        src,
        group,
        ipv6::NH_ICMPV6,
        hop_limit,
        &m[..n],
    )
}

fn na_frame(smac: MacAddr, dmac: MacAddr, target: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut m = [0u8; 32];
    let n = NdRepr::Advert {
        router: false,
        solicited: true,
        override_: true,
        target,
        target_lladdr: Some(smac),
    }
    .emit(&mut m, target, dst);
    ip6_frame(dmac, smac, target, dst, ipv6::NH_ICMPV6, 255, &m[..n])
}

fn echo(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; 8 + len];
    m[0] = icmpv6::ECHO_REQUEST;
    m[4..8].copy_from_slice(&[0, 7, 0, 1]);
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(src, dst);
    m
}

fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut m = vec![0xabu8; 8 + len];
    udp::emit_v6(&mut m, src, dst, sport, dport, len);
    m
}

fn tcp6(src: SocketAddr, dst: SocketAddr, flags: Flags, seq: u32, ack: u32) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq,
        ack,
        flags,
        window: 1000,
        ..TcpRepr::default()
    }
    .emit(&mut m, src.ip(), dst.ip());
    m
}

/// The IPv6 packet of an output frame, checked.
fn ip6_of(frame: &[u8]) -> Ipv6Packet<&[u8]> {
    let f = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(f.ethertype(), eth::ETHERTYPE_IPV6);
    Ipv6Packet::new_checked(&frame[f.header_len()..]).unwrap()
}

#[test]
fn worker_zero_announces_its_addresses_at_start() {
    let pool = PacketPool::new(64);
    let mut l2 = L2L3::new(
        0,
        Arc::new(testing::dual_stack_dataplane(1)),
        vec![mac_lb(0), mac_lb(1)],
        vec![1500, 1500],
        PipelineCounters::new_shared(),
        NeighbourBus::new(1).pop().unwrap(),
        pool.clone(),
    );
    assert_eq!(l2.poll_timeout(), Some(Instant::ZERO), "work waits");
    let mut out = Vec::new();
    l2.poll(Instant::from_secs(1), &mut |p, pkt: Packet| {
        out.push((p, pkt.data().to_vec()))
    });
    let c = l2.counters();
    assert_eq!(c.mld_reports_sent.get(), 2, "one per VLAN with IPv6");
    assert_eq!(c.nd_dad_probes_sent.get(), 2, "one per IPv6 self IP");
    assert_eq!(c.nd_unsolicited_sent.get(), 3, "self IPs and the VIP");
    let v6: Vec<_> = out
        .iter()
        .filter(|(_, f)| {
            EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == eth::ETHERTYPE_IPV6
        })
        .collect();
    assert_eq!(v6.len(), 7);
    // The unsolicited advertisement for the VIP: to all nodes, our MAC, not overriding.
    let (port, vip_na) = v6
        .iter()
        .find(|(_, f)| {
            let ip = ip6_of(f);
            ip.payload()[0] == icmpv6::NEIGHBOR_ADVERT
                && NdRepr::parse(ip.payload())
                    .is_ok_and(|nd| matches!(nd, NdRepr::Advert { target, .. } if target == vip()))
        })
        .expect("an advertisement for the VIP");
    assert_eq!(*port, 0);
    let ip = ip6_of(vip_na);
    assert_eq!(ip.dst(), icmpv6::ALL_NODES);
    assert_eq!(ip.hop_limit(), 255);
    assert!(Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).is_ok());
    assert_eq!(
        NdRepr::parse(ip.payload()).unwrap(),
        NdRepr::Advert {
            router: true,
            solicited: false,
            override_: false,
            target: vip(),
            target_lladdr: Some(mac_lb(0)),
        }
    );
    // The DAD probe for the server-side self IP: from ::, to its solicited-node group.
    assert!(v6.iter().any(|(p, f)| {
        let ip = ip6_of(f);
        *p == 1
            && ip.src().is_unspecified()
            && ip.dst() == ipv6::solicited_node(self_s())
            && NdRepr::parse(ip.payload())
                == Ok(NdRepr::Solicit {
                    target: self_s(),
                    source_lladdr: None,
                })
    }));
    // The MLD report: link-local source, router alert, hop limit 1.
    let (_, mld) = v6
        .iter()
        .find(|(p, f)| *p == 0 && ip6_of(f).next_header() == ipv6::NH_HOP_BY_HOP)
        .expect("an MLD report on the client side");
    let ip = ip6_of(mld);
    assert_eq!(ip.src(), ipv6::link_local(mac_lb(0)));
    assert_eq!(ip.hop_limit(), 1);
    let up = ip.upper_layer().unwrap();
    let msg = &ip.payload()[up.offset..];
    assert!(Icmpv6Packet::new_checked(msg, ip.src(), ip.dst()).is_ok());
    assert_eq!(msg[0], icmpv6::MLD2_REPORT);
    assert_eq!(
        u16::from_be_bytes([msg[6], msg[7]]),
        3,
        "link-local, self IP, VIP groups"
    );
    assert_eq!(l2.poll_timeout(), None, "nothing more to do");
    drop(out);
    assert_eq!(pool.available(), 64);
}

#[test]
fn solicitations_for_our_addresses_are_answered_and_teach_the_asker() {
    let mut bed = Bed::new();
    let v = bed.rx(
        0,
        &ns_frame(mac_client(), client(), self_c(), Some(mac_client()), 255),
    );
    assert_eq!(v, Verdict::Answered);
    let out = bed.take();
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 0);
    let e = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (mac_client(), mac_lb(0)));
    let ip = ip6_of(f);
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (self_c(), client(), 255)
    );
    assert!(Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).is_ok());
    assert_eq!(
        NdRepr::parse(ip.payload()).unwrap(),
        NdRepr::Advert {
            router: true,
            solicited: true,
            override_: true,
            target: self_c(),
            target_lladdr: Some(mac_lb(0)),
        }
    );
    assert_eq!(bed.l2.counters().nd_adverts_sent.get(), 1);
    let view = bed.l2.nd_view(bed.now);
    assert_eq!(view.len(), 1);
    assert_eq!((view[0].ip, view[0].state), (client(), "reachable"));
    // The link-local address of the port is answered too.
    let ll = ipv6::link_local(mac_lb(0));
    let v = bed.rx(
        0,
        &ns_frame(mac_client(), client(), ll, Some(mac_client()), 255),
    );
    assert_eq!(v, Verdict::Answered);
    bed.take();
    // Not ours, not on this VLAN, from off link, someone else's DAD for our address,
    // and an advertisement claiming our address.
    let other = a("2001:2:0:1::77");
    assert_eq!(
        bed.rx(
            0,
            &ns_frame(mac_client(), client(), other, Some(mac_client()), 255)
        ),
        Verdict::Dropped(DropReason::NdNotForUs)
    );
    assert_eq!(
        bed.rx(
            0,
            &ns_frame(mac_client(), client(), self_s(), Some(mac_client()), 255)
        ),
        Verdict::Dropped(DropReason::NdNotForUs)
    );
    assert_eq!(
        bed.rx(
            0,
            &ns_frame(mac_client(), client(), self_c(), Some(mac_client()), 64)
        ),
        Verdict::Dropped(DropReason::NdMalformed)
    );
    assert!(bed.take().is_empty());
    assert_eq!(
        bed.rx(
            0,
            &ns_frame(mac_client(), Ipv6Addr::UNSPECIFIED, self_c(), None, 255)
        ),
        Verdict::Dropped(DropReason::NdConflict)
    );
    let defended = bed.take();
    assert_eq!(defended.len(), 1, "the address is defended");
    assert_eq!(ip6_of(&defended[0].1).dst(), icmpv6::ALL_NODES);
    assert_eq!(
        bed.rx(0, &na_frame(mac_client(), mac_lb(0), self_c(), client())),
        Verdict::Dropped(DropReason::NdConflict)
    );
}

#[test]
fn echo_requests_to_self_ips_and_the_vip_are_answered() {
    let mut bed = Bed::new();
    for dst in [self_c(), vip(), ipv6::link_local(mac_lb(0))] {
        let req = echo(client(), dst, 56);
        let f = ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            dst,
            ipv6::NH_ICMPV6,
            64,
            &req,
        );
        assert_eq!(bed.rx(0, &f), Verdict::Answered, "{dst}");
        let out = bed.take();
        assert_eq!(out.len(), 1);
        let ip = ip6_of(&out[0].1);
        assert_eq!((ip.src(), ip.dst()), (dst, client()));
        let m = Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).unwrap();
        assert_eq!(m.msg_type(), icmpv6::ECHO_REPLY);
        assert_eq!(&ip.payload()[8..], &req[8..], "data echoed");
    }
    assert_eq!(bed.l2.counters().icmpv6_echo_replies.get(), 3);
    // A bad checksum is counted, not answered.
    let mut req = echo(client(), self_c(), 8);
    req[9] ^= 1;
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        self_c(),
        ipv6::NH_ICMPV6,
        64,
        &req,
    );
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::Icmpv6BadChecksum)
    );
    assert!(bed.take().is_empty());
}

#[test]
fn forwarding_resolves_the_next_hop_and_decrements_the_hop_limit() {
    let mut bed = Bed::new();
    let dgram = udp6(client(), server(), 4000, 53, 20);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        server(),
        ipv6::NH_UDP,
        64,
        &dgram,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Held);
    let out = bed.take();
    assert_eq!(out.len(), 1, "a solicitation");
    let (port, ns) = &out[0];
    assert_eq!(*port, 1);
    let e = EthernetFrame::new_checked(&ns[..]).unwrap();
    assert_eq!(e.dst(), ipv6::multicast_mac(ipv6::solicited_node(server())));
    let ip = ip6_of(ns);
    assert_eq!(
        (ip.src(), ip.dst()),
        (self_s(), ipv6::solicited_node(server()))
    );
    assert_eq!(
        NdRepr::parse(ip.payload()).unwrap(),
        NdRepr::Solicit {
            target: server(),
            source_lladdr: Some(mac_lb(1)),
        }
    );
    assert_eq!(bed.l2.counters().nd_solicits_sent.get(), 1);
    // The server answers: the held datagram leaves.
    let v = bed.rx(1, &na_frame(mac_server(), mac_lb(1), server(), self_s()));
    assert_eq!(v, Verdict::Consumed);
    let out = bed.take();
    assert_eq!(out.len(), 1);
    let (port, fwd) = &out[0];
    assert_eq!(*port, 1);
    let e = EthernetFrame::new_checked(&fwd[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (mac_server(), mac_lb(1)));
    let ip = ip6_of(fwd);
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (client(), server(), 63)
    );
    let u = udp::UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(u.verify_checksum_v6(client(), server()));
    assert_eq!(bed.l2.counters().forwarded.get(), 1);
    // Now resolved: the next one goes at once.
    assert_eq!(bed.rx(0, &f), Verdict::Forwarded);
    assert_eq!(bed.take().len(), 1);
}

#[test]
fn transit_errors_are_icmpv6_errors_to_the_sender() {
    let mut bed = Bed::with(testing::dual_stack_dataplane(1), [1500, 1280]);
    bed.introduce(1, mac_server(), server(), self_s());
    // Hop limit 1: time exceeded.
    let dgram = udp6(client(), server(), 4000, 53, 20);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        server(),
        ipv6::NH_UDP,
        1,
        &dgram,
    );
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::HopLimitExceeded)
    );
    let out = bed.take();
    assert_eq!(out.len(), 1);
    let ip = ip6_of(&out[0].1);
    assert_eq!((ip.src(), ip.dst()), (self_c(), client()));
    let m = Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (icmpv6::TIME_EXCEEDED, 0));
    assert_eq!(&m.payload()[..40], &f[14..54], "the packet quoted as sent");
    // Too big for the 1280-byte server link: packet too big with the MTU.
    let big = udp6(client(), server(), 4000, 53, 1300);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        server(),
        ipv6::NH_UDP,
        64,
        &big,
    );
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::Ipv6PacketTooBig)
    );
    let out = bed.take();
    let ip = ip6_of(&out[0].1);
    let m = Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).unwrap();
    assert_eq!(m.msg_type(), icmpv6::PACKET_TOO_BIG);
    assert_eq!(u32::from_be_bytes(m.rest()), 1280);
    assert!(ip.total_len() <= 1280, "an error fits the minimum MTU");
    // Forwarded but unrouted: no route.
    let far = a("2001:2:0:ff::1");
    let dgram = udp6(client(), far, 4000, 53, 20);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        far,
        ipv6::NH_UDP,
        64,
        &dgram,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Dropped(DropReason::NoRoute));
    let out = bed.take();
    let ip = ip6_of(&out[0].1);
    let m = Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code()),
        (icmpv6::DEST_UNREACHABLE, icmpv6::CODE_NO_ROUTE)
    );
    assert_eq!(bed.l2.counters().icmpv6_errors_sent.get(), 3);
    // An ICMPv6 error that cannot go on gets no error of its own.
    let mut err = vec![0u8; 8 + 48];
    icmpv6::emit_error(
        &mut err,
        client(),
        server(),
        icmpv6::DEST_UNREACHABLE,
        4,
        [0; 4],
        &[0x60; 48],
    );
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        server(),
        ipv6::NH_ICMPV6,
        1,
        &err,
    );
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::HopLimitExceeded)
    );
    assert!(bed.take().is_empty(), "no error about an error");
    assert_eq!(bed.l2.counters().icmpv6_errors_sent.get(), 3);
    // Not accepted by any forwarding virtual server: dropped quietly.
    let other = a("2001:2:0:3::1");
    let dgram = udp6(client(), other, 4000, 53, 20);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        other,
        ipv6::NH_UDP,
        64,
        &dgram,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Dropped(DropReason::NoVirtual));
    assert!(bed.take().is_empty());
}

#[test]
fn malformed_ipv6_is_counted_and_never_answered() {
    let mut bed = Bed::new();
    let req = echo(client(), self_c(), 8);
    let good = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        self_c(),
        ipv6::NH_ICMPV6,
        64,
        &req,
    );
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((good[..14 + 39].to_vec(), DropReason::Ipv6Truncated));
    let mut v = good.clone();
    v[14] = 0x40;
    cases.push((v, DropReason::Ipv6BadVersion));
    let mut v = good.clone();
    v[14 + 5] = 200;
    cases.push((v, DropReason::Ipv6BadPayloadLength));
    // Twenty destination-options headers chained: a loop in all but name.
    let mut chain: Vec<u8> = (0..20)
        .flat_map(|_| [ipv6::NH_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0])
        .collect();
    chain.extend_from_slice(&req);
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            self_c(),
            ipv6::NH_DEST_OPTS,
            64,
            &chain,
        ),
        DropReason::Ipv6ExtChain,
    ));
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            self_c(),
            ipv6::NH_DEST_OPTS,
            64,
            &[ipv6::NH_ICMPV6, 3, 1, 4, 0, 0, 0, 0],
        ),
        DropReason::Ipv6ExtTruncated,
    ));
    let mut rh = vec![ipv6::NH_ICMPV6, 0, 0, 2, 0, 0, 0, 0];
    rh.extend_from_slice(&req);
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            self_c(),
            ipv6::NH_ROUTING,
            64,
            &rh,
        ),
        DropReason::Ipv6RoutingHeader,
    ));
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            a("ff02::1"),
            self_c(),
            ipv6::NH_ICMPV6,
            64,
            &req,
        ),
        DropReason::Ipv6BadSource,
    ));
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            self_c(),
            ipv6::NH_ICMPV6,
            64,
            &req[..6],
        ),
        DropReason::Icmpv6Malformed,
    ));
    let mut frag = vec![ipv6::NH_ICMPV6, 0, 0, 1, 0, 0, 0, 9];
    frag.extend_from_slice(&req);
    cases.push((
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            self_c(),
            ipv6::NH_FRAGMENT,
            64,
            &frag,
        ),
        DropReason::Ipv6FragmentToLocal,
    ));
    for (f, why) in &cases {
        assert_eq!(bed.rx(0, f), Verdict::Dropped(*why), "{why:?}");
        assert_eq!(bed.dropped(*why), 1, "{why:?}");
    }
    assert!(bed.take().is_empty(), "nothing answered");
    assert_eq!(bed.l2.counters().answered.get(), 0);
    assert_eq!(bed.pool.available(), 64);
    // Still healthy.
    assert_eq!(bed.rx(0, &good), Verdict::Answered);
}

#[test]
fn ipv6_is_refused_as_before_without_an_ipv6_self_ip() {
    let mut bed = Bed::with(testing::dataplane(1), [1500, 1500]);
    let req = echo(client(), self_c(), 8);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        self_c(),
        ipv6::NH_ICMPV6,
        64,
        &req,
    );
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::EthUnsupportedType)
    );
}

fn fastl4_v6() -> Dataplane {
    let members: Vec<SocketAddr> = (0x11..=0x12)
        .map(|i| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, i)), 80))
        .collect();
    testing::dual_stack_dataplane(1).with_fastl4(vec![Fastl4Vs::new(
        "web6",
        Fastl4Protocol::Tcp,
        IpAddr::V6(vip()),
        Some(80),
        Snat::Automap,
        &members,
        1,
    )])
}

#[test]
fn fastl4_translates_ipv6_flows_and_their_packet_too_big() {
    let mut bed = Bed::with(fastl4_v6(), [1500, 1500]);
    bed.introduce(0, mac_client(), client(), self_c());
    bed.introduce(1, mac_server(), server(), self_s());
    let c = SocketAddr::new(client().into(), 40_001);
    let v = SocketAddr::new(vip().into(), 80);
    let syn = tcp6(c, v, Flags::SYN, 1000, 0);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        vip(),
        ipv6::NH_TCP,
        64,
        &syn,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Forwarded);
    let out = bed.take();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    let ip = ip6_of(&out[0].1);
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (self_s(), server(), 63)
    );
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        t.verify_checksum(ip.src().into(), ip.dst().into()),
        "TCP checksum"
    );
    assert_eq!(t.dst_port(), 80);
    let snat = SocketAddr::new(self_s().into(), t.src_port());
    let m = SocketAddr::new(server().into(), 80);
    assert_eq!(bed.l2.counters().fastl4_flows_created.get(), 1);
    // The member's SYN-ACK goes back to the client from the VIP.
    let synack = tcp6(m, snat, Flags::SYN | Flags::ACK, 5000, 1001);
    let f = ip6_frame(
        mac_lb(1),
        mac_server(),
        server(),
        self_s(),
        ipv6::NH_TCP,
        64,
        &synack,
    );
    assert_eq!(bed.rx(1, &f), Verdict::Forwarded);
    let out = bed.take();
    assert_eq!(out[0].0, 0);
    let e = EthernetFrame::new_checked(&out[0].1[..]).unwrap();
    assert_eq!(e.dst(), mac_client());
    let ip = ip6_of(&out[0].1);
    assert_eq!((ip.src(), ip.dst()), (vip(), client()));
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum(ip.src().into(), ip.dst().into()));
    assert_eq!((t.src_port(), t.dst_port()), (80, 40_001));
    // A router on the server side says the member's link is smaller: its packet too
    // big quotes SNAT → member and reaches the client quoting VIP ← client's packet.
    let data = tcp6(snat, m, Flags::ACK | Flags::PSH, 1001, 5001);
    let mut quote = vec![0u8; 40 + data.len()];
    Ipv6Repr {
        src: self_s(),
        dst: server(),
        next_header: ipv6::NH_TCP,
        payload_len: data.len(),
        hop_limit: 63,
    }
    .emit(&mut quote);
    quote[40..].copy_from_slice(&data);
    let router = a("2001:2:0:2::fe");
    let mut ptb = vec![0u8; 8 + quote.len()];
    icmpv6::emit_error(
        &mut ptb,
        router,
        self_s(),
        icmpv6::PACKET_TOO_BIG,
        0,
        1400u32.to_be_bytes(),
        &quote,
    );
    let f = ip6_frame(
        mac_lb(1),
        mac_server(),
        router,
        self_s(),
        ipv6::NH_ICMPV6,
        64,
        &ptb,
    );
    assert_eq!(bed.rx(1, &f), Verdict::Forwarded);
    let out = bed.take();
    assert_eq!(out.len(), 1);
    let ip = ip6_of(&out[0].1);
    assert_eq!((ip.src(), ip.dst()), (vip(), client()));
    let msg = Icmpv6Packet::new_checked(ip.payload(), ip.src(), ip.dst()).expect("ICMPv6 checksum");
    assert_eq!(msg.msg_type(), icmpv6::PACKET_TOO_BIG);
    assert_eq!(
        u32::from_be_bytes(msg.rest()),
        1400,
        "the MTU passes unchanged"
    );
    let inner = Ipv6Packet::new_unchecked(msg.payload());
    assert_eq!((inner.src(), inner.dst()), (client(), vip()));
    let it = TcpPacket::new_checked(&msg.payload()[40..]).unwrap();
    assert_eq!((it.src_port(), it.dst_port()), (40_001, 80));
    assert!(
        it.verify_checksum(client().into(), vip().into()),
        "the quoted segment's checksum follows its new addresses"
    );
    // A segment of no flow and no SYN is dropped by its reason.
    let stray = tcp6(
        SocketAddr::new(client().into(), 40_002),
        v,
        Flags::ACK,
        1,
        1,
    );
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        vip(),
        ipv6::NH_TCP,
        64,
        &stray,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Dropped(DropReason::Fastl4NoFlow));
}

#[test]
fn the_tcp_stack_talks_over_ipv6_after_resolving_its_peer() {
    use rouge_pipelines::tcp::ProfileId;
    let mut bed = Bed::new();
    let local = SocketAddr::new(self_s().into(), 40_000);
    let remote = SocketAddr::new(server().into(), 80);
    let now = bed.now;
    bed.l2
        .tcp_mut()
        .connect(now, local, remote, ProfileId::DEFAULT)
        .unwrap();
    bed.poll();
    let out = bed.take();
    assert_eq!(out.len(), 1, "a solicitation first");
    let ip = ip6_of(&out[0].1);
    assert_eq!(ip.payload()[0], icmpv6::NEIGHBOR_SOLICIT);
    bed.rx(1, &na_frame(mac_server(), mac_lb(1), server(), self_s()));
    let out = bed.take();
    assert_eq!(out.len(), 1, "then the SYN");
    let ip = ip6_of(&out[0].1);
    assert_eq!(
        (ip.src(), ip.dst(), ip.next_header()),
        (self_s(), server(), ipv6::NH_TCP)
    );
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.flags().syn() && t.verify_checksum(local.ip(), remote.ip()));
    assert_eq!(
        TcpRepr::parse(&t).unwrap().mss,
        Some(1440),
        "the profile's 1460 less IPv6's 20 more header bytes"
    );
    assert_eq!(bed.l2.counters().tcp_segments_out.get(), 1);
    // The SYN-ACK is taken by the stack, which acknowledges it.
    let synack = tcp6(
        remote,
        local,
        Flags::SYN | Flags::ACK,
        9000,
        t.seq().wrapping_add(1),
    );
    let f = ip6_frame(
        mac_lb(1),
        mac_server(),
        server(),
        self_s(),
        ipv6::NH_TCP,
        64,
        &synack,
    );
    assert_eq!(bed.rx(1, &f), Verdict::Consumed);
    bed.poll();
    let out = bed.take();
    let ip = ip6_of(&out.last().unwrap().1);
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.flags().ack() && !t.flags().syn());
    assert_eq!(t.ack(), 9001);
}

#[test]
fn ipv6_fragments_follow_their_fastl4_flow() {
    let members: Vec<SocketAddr> = vec![SocketAddr::new(server().into(), 5353)];
    let dp = testing::dual_stack_dataplane(1).with_fastl4(vec![Fastl4Vs::new(
        "dns6",
        Fastl4Protocol::Udp,
        IpAddr::V6(vip()),
        Some(53),
        Snat::Automap,
        &members,
        1,
    )]);
    let mut bed = Bed::with(dp, [1500, 1500]);
    bed.introduce(1, mac_server(), server(), self_s());
    // A 100-byte datagram in two fragments: the first carries the UDP header (its
    // checksum covers the whole datagram), the second only data.
    let whole = udp6(client(), vip(), 5000, 53, 92);
    let frag = |offset: u16, more: bool, data: &[u8]| {
        let mut p = vec![ipv6::NH_UDP, 0];
        p.extend_from_slice(&((offset << 3) | more as u16).to_be_bytes());
        p.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
        p.extend_from_slice(data);
        ip6_frame(
            mac_lb(0),
            mac_client(),
            client(),
            vip(),
            ipv6::NH_FRAGMENT,
            64,
            &p,
        )
    };
    // A later fragment before its first one has no flow.
    assert_eq!(
        bed.rx(0, &frag(7, false, &whole[56..])),
        Verdict::Dropped(DropReason::Fastl4FragmentNoFlow)
    );
    assert_eq!(bed.rx(0, &frag(0, true, &whole[..56])), Verdict::Forwarded);
    assert_eq!(bed.rx(0, &frag(7, false, &whole[56..])), Verdict::Forwarded);
    let out = bed.take();
    assert_eq!(out.len(), 2);
    let mut datagram = Vec::new();
    let mut sport = 0;
    for (port, f) in &out {
        assert_eq!(*port, 1);
        let ip = ip6_of(f);
        assert_eq!((ip.src(), ip.dst()), (self_s(), server()));
        let up = ip.upper_layer().unwrap();
        let fi = up.frag.expect("still a fragment");
        assert_eq!(fi.ident, 0x0bad_cafe);
        assert_eq!(fi.offset as usize * 8, datagram.len());
        datagram.extend_from_slice(&ip.payload()[up.offset..]);
        if fi.offset == 0 {
            sport = udp::UdpPacket::new_unchecked(&ip.payload()[up.offset..]).src_port();
        }
    }
    // Reassembled, the translated datagram is whole and its checksum right.
    let u = udp::UdpPacket::new_checked(&datagram[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.len()), (sport, 5353, 100));
    assert!(u.verify_checksum_v6(self_s(), server()));
    assert_eq!(&datagram[8..], &whole[8..], "payload unchanged");
}

#[test]
fn an_address_added_by_a_new_snapshot_is_announced_alone() {
    use rouge_pipelines::dataplane::VirtualAddress;
    let mut bed = Bed::new();
    let d = testing::dual_stack_dataplane(1);
    let mut vas = d.virtual_addresses.clone();
    let added = a("2001:2:0:1::200");
    vas.push(VirtualAddress {
        addr: added.into(),
        arp: true,
        icmp_echo: true,
    });
    let next = Dataplane::new(
        2,
        d.interfaces.clone(),
        d.vlans.clone(),
        d.self_ips.clone(),
        vas,
        d.routes.clone(),
        d.forwarding.clone(),
        d.arp,
        d.icmp_error_rate,
    );
    bed.l2.set_dataplane(Arc::new(next));
    assert_eq!(bed.l2.poll_timeout(), Some(Instant::ZERO));
    bed.poll();
    let out = bed.take();
    let targets: Vec<Ipv6Addr> = out
        .iter()
        .filter_map(|(_, f)| match NdRepr::parse(ip6_of(f).payload()) {
            Ok(NdRepr::Advert { target, .. }) => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec![added], "only the new address");
    let c = bed.l2.counters();
    assert_eq!(c.nd_unsolicited_sent.get(), 3 + 1);
    assert_eq!(c.mld_reports_sent.get(), 2 + 1, "the VLAN's groups again");
    assert_eq!(
        c.nd_dad_probes_sent.get(),
        2,
        "a virtual address is not probed"
    );
}

#[test]
fn what_one_worker_learns_reaches_the_other() {
    let dp = Arc::new(testing::dual_stack_dataplane(2));
    let mut beds: Vec<Bed> = NeighbourBus::new(2)
        .into_iter()
        .enumerate()
        .map(|(w, bus)| {
            let pool = PacketPool::new(64);
            let l2 = L2L3::new(
                w,
                dp.clone(),
                vec![mac_lb(0), mac_lb(1)],
                vec![1500, 1500],
                PipelineCounters::new_shared(),
                bus,
                pool.clone(),
            );
            Bed {
                l2,
                pool,
                out: Vec::new(),
                now: Instant::from_secs(1),
            }
        })
        .collect();
    for b in beds.iter_mut() {
        b.poll();
        b.take();
    }
    // Worker 0 holds a datagram for the server and asks; the answer reaches worker 1
    // (fanout), which tells worker 0: the held datagram leaves.
    let dgram = udp6(client(), server(), 4000, 53, 20);
    let f = ip6_frame(
        mac_lb(0),
        mac_client(),
        client(),
        server(),
        ipv6::NH_UDP,
        64,
        &dgram,
    );
    assert_eq!(beds[0].rx(0, &f), Verdict::Held);
    assert_eq!(beds[0].take().len(), 1, "the solicitation");
    let v = beds[1].rx(1, &na_frame(mac_server(), mac_lb(1), server(), self_s()));
    assert_eq!(v, Verdict::Consumed);
    let w0 = &mut beds[0];
    assert_eq!(w0.l2.poll_timeout(), Some(Instant::ZERO), "an update waits");
    w0.poll();
    let out = w0.take();
    assert_eq!(out.len(), 1, "the held datagram");
    assert_eq!(
        EthernetFrame::new_checked(&out[0].1[..]).unwrap().dst(),
        mac_server()
    );
    assert_eq!(ip6_of(&out[0].1).dst(), server());
    assert_eq!(w0.l2.counters().forwarded.get(), 1);
}

/// An MLD query (MLDv1 when `v2` is false) from a link-local router about `group`
/// (`::` for a general query) with a maximum response code `code`, behind the
/// hop-by-hop router alert, to all nodes (general) or to the group.
fn mld_query(src: Ipv6Addr, group: Ipv6Addr, code: u16, v2: bool) -> Vec<u8> {
    let mut m = vec![0u8; if v2 { 28 } else { 24 }];
    m[0] = icmpv6::MLD_QUERY;
    m[4..6].copy_from_slice(&code.to_be_bytes());
    m[8..24].copy_from_slice(&group.octets());
    let dst = if group.is_unspecified() {
        icmpv6::ALL_NODES
    } else {
        group
    };
    Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(src, dst);
    let mut payload = icmpv6::MLD_HOP_BY_HOP.to_vec();
    payload.extend_from_slice(&m);
    ip6_frame(
        ipv6::multicast_mac(dst),
        MacAddr::local(9),
        src,
        dst,
        ipv6::NH_HOP_BY_HOP,
        1,
        &payload,
    )
}

/// The MLDv2 reports among output frames: (port, groups joined).
fn mld_reports(out: &[(u16, Vec<u8>)]) -> Vec<(u16, Vec<Ipv6Addr>)> {
    out.iter()
        .filter(|(_, f)| {
            EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == eth::ETHERTYPE_IPV6
                && ip6_of(f).next_header() == ipv6::NH_HOP_BY_HOP
        })
        .map(|(p, f)| {
            let ip = ip6_of(f);
            let up = ip.upper_layer().unwrap();
            let msg = &ip.payload()[up.offset..];
            assert!(Icmpv6Packet::new_checked(msg, ip.src(), ip.dst()).is_ok());
            assert_eq!(msg[0], icmpv6::MLD2_REPORT);
            assert_eq!(ip.dst(), icmpv6::ALL_MLDV2_ROUTERS);
            let n = u16::from_be_bytes([msg[6], msg[7]]) as usize;
            let groups = (0..n)
                .map(|i| {
                    let r = &msg[8 + 20 * i..8 + 20 * (i + 1)];
                    Ipv6Addr::from(<[u8; 16]>::try_from(&r[4..20]).unwrap())
                })
                .collect();
            (*p, groups)
        })
        .collect()
}

#[test]
fn mld_queries_are_answered_with_the_vlans_report_at_most_once_per_delay() {
    let mut bed = Bed::new();
    let router = a("fe80::9");
    let c = bed.l2.counters().clone();
    let reports0 = c.mld_reports_sent.get();
    // An MLDv2 general query on the client side (max response 10 s): answered at the
    // next poll with the client VLAN's groups, on its port.
    assert_eq!(
        bed.rx(0, &mld_query(router, Ipv6Addr::UNSPECIFIED, 10_000, true)),
        Verdict::Consumed
    );
    bed.poll();
    let r = mld_reports(&bed.take());
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, 0);
    for g in [
        ipv6::solicited_node(ipv6::link_local(mac_lb(0))),
        ipv6::solicited_node(self_c()),
        ipv6::solicited_node(vip()),
    ] {
        assert!(r[0].1.contains(&g), "{g} in {r:?}");
    }
    // Not the server side's own: its port's link-local address's group.
    let server_ll = ipv6::solicited_node(ipv6::link_local(mac_lb(1)));
    assert!(!r[0].1.contains(&server_ll), "{r:?}");
    assert_eq!(c.mld_queries_answered.get(), 1);
    // Within the 10 s: a second query (MLDv1 this time) is counted, not answered.
    bed.now += std::time::Duration::from_millis(9_999);
    assert_eq!(
        bed.rx(0, &mld_query(router, Ipv6Addr::UNSPECIFIED, 10_000, false)),
        Verdict::Consumed
    );
    bed.poll();
    assert!(mld_reports(&bed.take()).is_empty());
    assert_eq!(c.mld_queries_limited.get(), 1);
    // The server side has its own bound: an MLDv1 query about its port's link-local
    // group is answered there.
    let g = server_ll;
    assert_eq!(
        bed.rx(1, &mld_query(router, g, 1000, false)),
        Verdict::Consumed
    );
    bed.poll();
    let r = mld_reports(&bed.take());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 1);
    assert!(r[0].1.contains(&g));
    // After the delay, the client side answers again.
    bed.now += std::time::Duration::from_millis(1);
    bed.rx(0, &mld_query(router, Ipv6Addr::UNSPECIFIED, 10_000, true));
    bed.poll();
    assert_eq!(mld_reports(&bed.take()).len(), 1);
    assert_eq!(c.mld_queries_answered.get(), 3);
    assert_eq!(c.mld_reports_sent.get(), reports0 + 3);
}

#[test]
fn mld_queries_for_others_or_forged_are_not_answered() {
    let mut bed = Bed::new();
    let router = a("fe80::9");
    let c = bed.l2.counters().clone();
    // About a group that is not ours (a server's group, on the client side).
    let v = bed.rx(
        0,
        &mld_query(router, ipv6::solicited_node(server()), 1000, true),
    );
    assert_eq!(v, Verdict::Dropped(DropReason::Ipv6Multicast));
    // From a global address (RFC 3810 5.1.14: ignored).
    let v = bed.rx(0, &mld_query(client(), Ipv6Addr::UNSPECIFIED, 1000, true));
    assert_eq!(v, Verdict::Dropped(DropReason::Ipv6BadSource));
    // A bad checksum, and a length of neither version.
    let mut f = mld_query(router, Ipv6Addr::UNSPECIFIED, 1000, true);
    let n = f.len();
    f[n - 1] ^= 1;
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::Icmpv6BadChecksum)
    );
    let mut m = vec![0u8; 26];
    m[0] = icmpv6::MLD_QUERY;
    Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(router, icmpv6::ALL_NODES);
    let f = ip6_frame(
        ipv6::multicast_mac(icmpv6::ALL_NODES),
        MacAddr::local(9),
        router,
        icmpv6::ALL_NODES,
        ipv6::NH_ICMPV6,
        1,
        &m,
    );
    assert_eq!(bed.rx(0, &f), Verdict::Dropped(DropReason::Icmpv6Malformed));
    bed.poll();
    assert!(mld_reports(&bed.take()).is_empty());
    assert_eq!(
        c.mld_queries_answered.get() + c.mld_queries_limited.get(),
        0
    );
}
