//! The L2/L3 pipeline driven frame by frame: ARP, ICMP echo, forwarding with next-hop
//! resolution, ICMP errors, VLANs, malformed input, and neighbour sharing between workers.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use rouge_drivers::{MacAddr, Packet, PacketPool};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::testing;
use rouge_pipelines::verdict::{DropReason, Verdict};
use rouge_pipelines::wire::arp::{ArpRepr, Operation};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::wire::ethernet::{self as eth, EthernetFrame};
use rouge_pipelines::wire::icmp::{self, IcmpPacket};
use rouge_pipelines::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use rouge_pipelines::Instant;

/// Buffers in each bed's pool: room for a next hop's whole ARP queue and more.
const POOL: usize = 128;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const SELF_C: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const SELF_S: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
const SELF_V: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);

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
    fn new() -> Bed {
        let mut beds = Bed::many(1);
        beds.pop().unwrap()
    }

    fn many(n: usize) -> Vec<Bed> {
        Bed::many_with(testing::dataplane(n), n)
    }

    /// One bed on `dp` (one worker).
    fn with(dp: rouge_pipelines::dataplane::Dataplane) -> Bed {
        Bed::many_with(dp, 1).pop().unwrap()
    }

    fn many_with(dp: rouge_pipelines::dataplane::Dataplane, n: usize) -> Vec<Bed> {
        let dp = Arc::new(dp);
        NeighbourBus::new(n)
            .into_iter()
            .enumerate()
            .map(|(w, bus)| {
                let pool = PacketPool::new(POOL);
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
            .collect()
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
}

fn arp_frame(
    op: Operation,
    smac: MacAddr,
    sip: Ipv4Addr,
    dmac: MacAddr,
    tip: Ipv4Addr,
    vlan: Option<u16>,
) -> Vec<u8> {
    let mut b = vec![0u8; 60];
    let hl = eth::emit_header(&mut b, dmac, smac, vlan, eth::ETHERTYPE_ARP);
    ArpRepr {
        op,
        sender_mac: smac,
        sender_ip: sip,
        target_mac: MacAddr::ZERO,
        target_ip: tip,
    }
    .emit(&mut b[hl..]);
    b
}

#[allow(clippy::too_many_arguments)]
fn ip_frame(
    dmac: MacAddr,
    smac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    payload: &[u8],
    vlan: Option<u16>,
) -> Vec<u8> {
    let mut b = vec![0u8; 18 + 20 + payload.len()];
    let hl = eth::emit_header(&mut b, dmac, smac, vlan, eth::ETHERTYPE_IPV4);
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl,
        ident: 9,
        dont_frag: true,
    }
    .emit(&mut b[hl..]);
    b[hl + 20..hl + 20 + payload.len()].copy_from_slice(payload);
    b.truncate(hl + 20 + payload.len());
    b
}

fn echo_request(len: usize) -> Vec<u8> {
    let mut m = vec![0u8; 8 + len];
    m[0] = icmp::ECHO_REQUEST;
    m[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    m[6..8].copy_from_slice(&7u16.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn parse_ip(frame: &[u8]) -> (EthernetFrame<&[u8]>, Ipv4Packet<&[u8]>) {
    let e = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(&frame[e.header_len()..]).unwrap();
    (e, ip)
}

#[test]
fn arp_requests_for_self_ips_and_vips_are_answered() {
    let mut bed = Bed::new();
    for target in [SELF_C, VIP] {
        let v = bed.rx(
            0,
            &arp_frame(
                Operation::Request,
                mac_client(),
                CLIENT,
                MacAddr::BROADCAST,
                target,
                None,
            ),
        );
        assert_eq!(v, Verdict::Answered);
        let out = bed.take();
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        assert_eq!(*port, 0);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src()), (mac_client(), mac_lb(0)));
        let r = ArpRepr::parse(e.payload()).unwrap();
        assert_eq!(r.op, Operation::Reply);
        assert_eq!((r.sender_ip, r.sender_mac), (target, mac_lb(0)));
        assert_eq!((r.target_ip, r.target_mac), (CLIENT, mac_client()));
        assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
    }
    // The server-side self IP is not answered on the client VLAN.
    let v = bed.rx(
        0,
        &arp_frame(
            Operation::Request,
            mac_client(),
            CLIENT,
            MacAddr::BROADCAST,
            SELF_S,
            None,
        ),
    );
    assert_eq!(v, Verdict::Dropped(DropReason::ArpNotForUs));
    let v = bed.rx(
        0,
        &arp_frame(
            Operation::Request,
            mac_client(),
            CLIENT,
            MacAddr::BROADCAST,
            Ipv4Addr::new(198, 18, 1, 9),
            None,
        ),
    );
    assert_eq!(v, Verdict::Dropped(DropReason::ArpNotForUs));
    assert!(bed.take().is_empty());
    assert_eq!(bed.l2.counters().arp_replies_sent.get(), 2);
}

#[test]
fn echo_requests_are_answered_with_valid_checksums() {
    let mut bed = Bed::new();
    for dst in [SELF_C, VIP] {
        let req = ip_frame(
            mac_lb(0),
            mac_client(),
            CLIENT,
            dst,
            1,
            64,
            &echo_request(56),
            None,
        );
        assert_eq!(bed.rx(0, &req), Verdict::Answered);
        let out = bed.take();
        let (port, f) = &out[0];
        assert_eq!(*port, 0);
        let (e, ip) = parse_ip(f);
        assert_eq!(
            (e.dst(), e.src()),
            (mac_client(), mac_lb(0)),
            "back to the last hop"
        );
        assert_eq!((ip.src(), ip.dst()), (dst, CLIENT));
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(m.msg_type(), icmp::ECHO_REPLY);
        assert_eq!(m.echo_ident(), 0x4242);
        assert_eq!(&ip.payload()[8..], &echo_request(56)[8..], "payload echoed");
    }
    assert_eq!(bed.l2.counters().icmp_echo_replies.get(), 2);
}

#[test]
fn malformed_frames_are_counted_by_reason_and_never_answered() {
    let mut bed = Bed::new();
    let good = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo_request(8),
        None,
    );
    assert_eq!(
        bed.rx(0, &good[..10]),
        Verdict::Dropped(DropReason::EthTruncated)
    );
    assert_eq!(
        bed.rx(0, &good[..30]),
        Verdict::Dropped(DropReason::Ipv4Truncated)
    );
    let mut bad = good.clone();
    bad[14 + 11] ^= 0xff;
    assert_eq!(
        bed.rx(0, &bad),
        Verdict::Dropped(DropReason::Ipv4BadChecksum)
    );
    let mut bad = good.clone();
    bad[14] = 0x43;
    assert_eq!(
        bed.rx(0, &bad),
        Verdict::Dropped(DropReason::Ipv4BadHeaderLength)
    );
    let mut bad = good.clone();
    bad[14] = 0x65;
    assert_eq!(
        bed.rx(0, &bad),
        Verdict::Dropped(DropReason::Ipv4BadVersion)
    );
    let mut bad = good.clone();
    bad[14 + 2..14 + 4].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(
        bed.rx(0, &bad),
        Verdict::Dropped(DropReason::Ipv4BadTotalLength)
    );
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    assert_eq!(
        bed.rx(0, &bad),
        Verdict::Dropped(DropReason::IcmpBadChecksum)
    );
    let mut arp = arp_frame(
        Operation::Request,
        mac_client(),
        CLIENT,
        MacAddr::BROADCAST,
        SELF_C,
        None,
    );
    arp[14 + 7] = 7;
    assert_eq!(bed.rx(0, &arp), Verdict::Dropped(DropReason::ArpMalformed));
    assert_eq!(
        bed.rx(0, &arp[..30]),
        Verdict::Dropped(DropReason::ArpMalformed)
    );
    let other_mac = ip_frame(
        MacAddr::local(77),
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo_request(8),
        None,
    );
    assert_eq!(
        bed.rx(0, &other_mac),
        Verdict::Dropped(DropReason::EthNotForUs)
    );
    let tagged = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo_request(8),
        Some(7),
    );
    assert_eq!(
        bed.rx(0, &tagged),
        Verdict::Dropped(DropReason::UnknownVlan)
    );
    let spoof = ip_frame(
        mac_lb(0),
        mac_client(),
        Ipv4Addr::new(127, 0, 0, 1),
        SELF_C,
        1,
        64,
        &echo_request(8),
        None,
    );
    assert_eq!(
        bed.rx(0, &spoof),
        Verdict::Dropped(DropReason::Ipv4BadSource)
    );
    let udp = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SELF_C,
        17,
        64,
        &[0; 8],
        None,
    );
    assert_eq!(bed.rx(0, &udp), Verdict::Dropped(DropReason::NoListener));
    let conflict = arp_frame(
        Operation::Reply,
        mac_client(),
        SELF_C,
        mac_lb(0),
        CLIENT,
        None,
    );
    assert_eq!(
        bed.rx(0, &conflict),
        Verdict::Dropped(DropReason::ArpConflict)
    );
    assert!(bed.take().is_empty(), "nothing answered");
    assert_eq!(bed.l2.counters().dropped_total(), 14);
    assert_eq!(bed.dropped(DropReason::Ipv4BadChecksum), 1);
    assert_eq!(bed.pool.available(), POOL, "every dropped buffer returned");
}

#[test]
fn forwarding_resolves_the_next_hop_then_routes() {
    let mut bed = Bed::new();
    let pkt = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        64,
        &[1, 2, 3, 4, 5, 6, 7, 8],
        None,
    );
    assert_eq!(bed.rx(0, &pkt), Verdict::Held);
    assert_eq!(bed.rx(0, &pkt), Verdict::Held);
    let out = bed.take();
    assert_eq!(out.len(), 1, "one ARP request for two held packets");
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    let r = ArpRepr::parse(&f[14..]).unwrap();
    assert_eq!(
        (r.op, r.sender_ip, r.target_ip, r.sender_mac),
        (Operation::Request, SELF_S, SERVER, mac_lb(1))
    );
    // The server answers: both packets leave on the server port, rewritten.
    let reply = arp_frame(
        Operation::Reply,
        mac_server(),
        SERVER,
        mac_lb(1),
        SELF_S,
        None,
    );
    assert_eq!(bed.rx(1, &reply), Verdict::Consumed);
    let out = bed.take();
    assert_eq!(out.len(), 2);
    for (port, f) in &out {
        assert_eq!(*port, 1);
        let (e, ip) = parse_ip(f);
        assert_eq!((e.dst(), e.src()), (mac_server(), mac_lb(1)));
        assert_eq!((ip.src(), ip.dst(), ip.ttl()), (CLIENT, SERVER, 63));
        assert_eq!(ip.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
    // Now resolved: forwarded at once.
    assert_eq!(bed.rx(0, &pkt), Verdict::Forwarded);
    assert_eq!(bed.take().len(), 1);
    assert_eq!(bed.l2.counters().forwarded.get(), 3);
    let vs = bed
        .l2
        .dataplane()
        .forwarding
        .iter()
        .find(|f| f.name == "to-servers")
        .unwrap();
    assert_eq!(vs.counters.packets(), 3);
}

#[test]
fn forwarding_between_untagged_and_tagged_vlans_rewrites_the_header() {
    let mut bed = Bed::new();
    let host = Ipv4Addr::new(198, 18, 3, 5);
    let learn = arp_frame(
        Operation::Request,
        mac_server(),
        host,
        MacAddr::BROADCAST,
        SELF_V,
        Some(42),
    );
    assert_eq!(bed.rx(1, &learn), Verdict::Answered);
    let out = bed.take();
    assert_eq!(
        EthernetFrame::new_checked(&out[0].1[..]).unwrap().vlan(),
        Some(42),
        "answer keeps the tag"
    );
    let pkt = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        host,
        17,
        64,
        &[9; 20],
        None,
    );
    assert_eq!(bed.rx(0, &pkt), Verdict::Forwarded);
    let out = bed.take();
    let (e, ip) = parse_ip(&out[0].1);
    assert_eq!(e.vlan(), Some(42));
    assert_eq!(
        (out[0].0, e.dst(), ip.dst(), ip.ttl()),
        (1, mac_server(), host, 63)
    );
    // And back: tagged in, untagged out.
    bed.rx(
        0,
        &arp_frame(
            Operation::Request,
            mac_client(),
            CLIENT,
            MacAddr::BROADCAST,
            SELF_C,
            None,
        ),
    );
    bed.take();
    let back = ip_frame(
        mac_lb(1),
        mac_server(),
        host,
        CLIENT,
        17,
        64,
        &[8; 20],
        Some(42),
    );
    assert_eq!(bed.rx(1, &back), Verdict::Forwarded);
    let out = bed.take();
    let (e, ip) = parse_ip(&out[0].1);
    assert_eq!(
        (out[0].0, e.vlan(), e.dst(), ip.src()),
        (0, None, mac_client(), host)
    );
}

#[test]
fn expiring_ttl_unrouted_and_oversized_packets_get_icmp_errors() {
    let mut bed = Bed::new();
    let expiring = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        1,
        &[0; 8],
        None,
    );
    assert_eq!(
        bed.rx(0, &expiring),
        Verdict::Dropped(DropReason::TtlExceeded)
    );
    let unrouted = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        Ipv4Addr::new(198, 19, 0, 1),
        17,
        64,
        &[0; 8],
        None,
    );
    assert_eq!(bed.rx(0, &unrouted), Verdict::Dropped(DropReason::NoRoute));
    let big = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        64,
        &[0; 1600],
        None,
    );
    assert_eq!(bed.rx(0, &big), Verdict::Dropped(DropReason::MtuExceeded));
    let nowhere = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        Ipv4Addr::new(198, 18, 9, 9),
        17,
        64,
        &[0; 8],
        None,
    );
    assert_eq!(bed.rx(0, &nowhere), Verdict::Dropped(DropReason::NoVirtual));
    let out = bed.take();
    assert_eq!(
        out.len(),
        3,
        "no error for traffic no virtual server accepts"
    );
    let expect = [
        (icmp::TIME_EXCEEDED, 0u8),
        (icmp::DEST_UNREACHABLE, icmp::CODE_NET_UNREACHABLE),
        (icmp::DEST_UNREACHABLE, icmp::CODE_FRAG_NEEDED),
    ];
    for ((port, f), (t, c)) in out.iter().zip(expect) {
        assert_eq!(*port, 0);
        let (e, ip) = parse_ip(f);
        assert_eq!(e.dst(), mac_client());
        assert_eq!((ip.src(), ip.dst()), (SELF_C, CLIENT));
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((m.msg_type(), m.code()), (t, c));
        let quoted = &ip.payload()[8..];
        assert_eq!(quoted.len(), 28, "header and 8 bytes quoted");
        assert_eq!(
            &quoted[12..16],
            &CLIENT.octets(),
            "the offending header is quoted"
        );
        if c == icmp::CODE_FRAG_NEEDED {
            assert_eq!(u16::from_be_bytes([ip.payload()[6], ip.payload()[7]]), 1500);
        }
    }
}

#[test]
fn unanswered_next_hops_drop_their_queue_after_retries() {
    let mut bed = Bed::new();
    bed.poll();
    bed.take(); // start-up announcements
    let far = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        Ipv4Addr::new(198, 18, 100, 1),
        17,
        64,
        &[0; 8],
        None,
    );
    assert_eq!(bed.rx(0, &far), Verdict::Held);
    let first = bed.take();
    assert_eq!(
        ArpRepr::parse(&first[0].1[14..]).unwrap().target_ip,
        Ipv4Addr::new(198, 18, 2, 254),
        "gateway resolved, not the destination"
    );
    let mut requests = 1;
    for _ in 0..100 {
        bed.now += Duration::from_millis(100);
        bed.poll();
        requests += bed.take().len();
    }
    assert_eq!(requests, 3);
    assert_eq!(bed.dropped(DropReason::ArpUnresolved), 1);
    assert_eq!(bed.pool.available(), POOL);
}

#[test]
fn gratuitous_arp_announces_every_address_at_start() {
    let mut bed = Bed::new();
    bed.poll();
    let out = bed.take();
    let mut announced: Vec<(u16, Ipv4Addr)> = out
        .iter()
        .map(|(p, f)| {
            let e = EthernetFrame::new_checked(&f[..]).unwrap();
            assert_eq!(e.dst(), MacAddr::BROADCAST);
            let r = ArpRepr::parse(e.payload()).unwrap();
            assert!(r.is_gratuitous());
            (*p, r.sender_ip)
        })
        .collect();
    announced.sort();
    assert_eq!(
        announced,
        vec![(0, SELF_C), (0, VIP), (1, SELF_S), (1, SELF_V)]
    );
    bed.poll();
    assert!(bed.take().is_empty(), "announced once");
}

#[test]
fn a_neighbour_learned_by_one_worker_releases_packets_held_by_another() {
    let mut beds = Bed::many(2);
    let pkt = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        64,
        &[5; 8],
        None,
    );
    assert_eq!(beds[1].rx(0, &pkt), Verdict::Held);
    beds[1].take();
    // The ARP reply reaches worker 0 only (fanout): worker 0 does not know the entry,
    // but it is addressed to us, so it learns and tells worker 1.
    let reply = arp_frame(
        Operation::Reply,
        mac_server(),
        SERVER,
        mac_lb(1),
        SELF_S,
        None,
    );
    assert_eq!(beds[0].rx(1, &reply), Verdict::Answered.min_consumed());
    beds[1].poll();
    let out: Vec<_> = beds[1]
        .take()
        .into_iter()
        .filter(|(_, f)| {
            EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == eth::ETHERTYPE_IPV4
        })
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(parse_ip(&out[0].1).0.dst(), mac_server());
}

trait ConsumedHelper {
    fn min_consumed(self) -> Verdict;
}
impl ConsumedHelper for Verdict {
    fn min_consumed(self) -> Verdict {
        Verdict::Consumed
    }
}

// ---- every drop reason and rate limit that no other test reaches (issue 12, Found 8) ----

/// Sets an IPv4 frame's flags and fragment offset word and fixes its header checksum.
fn set_frag(frame: &mut [u8], word: u16) {
    frame[14 + 6..14 + 8].copy_from_slice(&word.to_be_bytes());
    frame[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&frame[14..34]);
    frame[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
}

/// A bed past its start-up announcements, with nothing emitted yet.
fn quiet_bed() -> Bed {
    let mut bed = Bed::new();
    bed.poll();
    bed.take();
    bed
}

#[test]
fn frames_of_other_ethertypes_are_dropped_as_unsupported() {
    let mut bed = quiet_bed();
    let mut ipv6 = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo_request(8),
        None,
    );
    ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_eq!(
        bed.rx(0, &ipv6),
        Verdict::Dropped(DropReason::EthUnsupportedType)
    );
    // LLDP to a multicast MAC, and an unknown type behind a VLAN tag of ours.
    let mut lldp = vec![0u8; 60];
    eth::emit_header(
        &mut lldp,
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
        mac_client(),
        None,
        0x88cc,
    );
    assert_eq!(
        bed.rx(0, &lldp),
        Verdict::Dropped(DropReason::EthUnsupportedType)
    );
    let mut tagged = vec![0u8; 60];
    eth::emit_header(&mut tagged, mac_lb(1), mac_server(), Some(42), 0x88b5);
    assert_eq!(
        bed.rx(1, &tagged),
        Verdict::Dropped(DropReason::EthUnsupportedType)
    );
    assert_eq!(bed.dropped(DropReason::EthUnsupportedType), 3);
    assert_eq!(bed.l2.counters().dropped_total(), 3);
    assert!(bed.take().is_empty(), "nothing answered");
    assert_eq!(bed.pool.available(), POOL);
}

#[test]
fn ipv4_to_broadcast_or_multicast_is_dropped() {
    let mut bed = quiet_bed();
    let echo = echo_request(8);
    // A broadcast MAC carrying IPv4 (even to our own address), the limited broadcast
    // address and a multicast group behind our MAC.
    let to_bcast_mac = ip_frame(
        MacAddr::BROADCAST,
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo,
        None,
    );
    let to_bcast_ip = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        Ipv4Addr::BROADCAST,
        1,
        64,
        &echo,
        None,
    );
    let to_group = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        Ipv4Addr::new(224, 0, 0, 1),
        17,
        64,
        &[0; 8],
        None,
    );
    for f in [&to_bcast_mac, &to_bcast_ip, &to_group] {
        assert_eq!(bed.rx(0, f), Verdict::Dropped(DropReason::Ipv4Broadcast));
    }
    assert_eq!(bed.dropped(DropReason::Ipv4Broadcast), 3);
    assert_eq!(bed.l2.counters().dropped_total(), 3);
    assert_eq!(bed.l2.counters().icmp_echo_replies.get(), 0);
    assert!(bed.take().is_empty(), "nothing answered");
}

#[test]
fn fragments_to_the_appliance_are_dropped_not_answered() {
    let mut bed = quiet_bed();
    let whole = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SELF_C,
        1,
        64,
        &echo_request(16),
        None,
    );
    // First fragment (more fragments), a later one (offset 8 × 8 bytes), the last one.
    for word in [0x2000u16, 0x2008, 0x0010] {
        let mut f = whole.clone();
        set_frag(&mut f, word);
        assert_eq!(
            bed.rx(0, &f),
            Verdict::Dropped(DropReason::Ipv4FragmentToLocal)
        );
    }
    // To the virtual address too.
    let mut f = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        VIP,
        1,
        64,
        &echo_request(16),
        None,
    );
    set_frag(&mut f, 0x2000);
    assert_eq!(
        bed.rx(0, &f),
        Verdict::Dropped(DropReason::Ipv4FragmentToLocal)
    );
    assert_eq!(bed.dropped(DropReason::Ipv4FragmentToLocal), 4);
    assert_eq!(bed.l2.counters().dropped_total(), 4);
    assert!(bed.take().is_empty(), "no echo reply for a fragment");
    // The unfragmented request is still answered.
    assert_eq!(bed.rx(0, &whole), Verdict::Answered);
    assert_eq!(bed.take().len(), 1);
}

#[test]
fn truncated_and_unsupported_icmp_to_the_appliance_is_dropped_by_reason() {
    let mut bed = quiet_bed();
    let to_self =
        |icmp: &[u8]| ip_frame(mac_lb(0), mac_client(), CLIENT, SELF_C, 1, 64, icmp, None);
    // Shorter than an ICMP header (4 of 8 bytes), and empty.
    assert_eq!(
        bed.rx(0, &to_self(&[8, 0, 0xf7, 0xff])),
        Verdict::Dropped(DropReason::IcmpMalformed)
    );
    assert_eq!(
        bed.rx(0, &to_self(&[])),
        Verdict::Dropped(DropReason::IcmpMalformed)
    );
    // Valid checksums, but a timestamp request, an echo reply and an echo request
    // with a non-zero code.
    let with_type = |t: u8, code: u8| {
        let mut m = echo_request(8);
        m[0] = t;
        m[1] = code;
        m[2..4].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    };
    for (t, code) in [(13, 0), (icmp::ECHO_REPLY, 0), (icmp::ECHO_REQUEST, 1)] {
        assert_eq!(
            bed.rx(0, &to_self(&with_type(t, code))),
            Verdict::Dropped(DropReason::IcmpUnsupported),
            "type {t} code {code}"
        );
    }
    assert_eq!(bed.dropped(DropReason::IcmpMalformed), 2);
    assert_eq!(bed.dropped(DropReason::IcmpUnsupported), 3);
    assert_eq!(bed.l2.counters().dropped_total(), 5);
    assert_eq!(bed.l2.counters().icmp_echo_replies.get(), 0);
    assert!(bed.take().is_empty(), "nothing answered");
}

#[test]
fn echo_to_an_address_that_does_not_answer_echo_is_unsupported() {
    use rouge_pipelines::dataplane::{Fastl4Protocol, Fastl4Vs, Snat};
    use std::net::{IpAddr, SocketAddr};
    // A SNAT pool address answers ARP but not echo.
    let pool_addr = Ipv4Addr::new(198, 18, 2, 200);
    let member = [SocketAddr::new(IpAddr::V4(SERVER), 80)];
    let dp = testing::dataplane(1).with_fastl4(vec![Fastl4Vs::new(
        "web",
        Fastl4Protocol::Tcp,
        IpAddr::V4(VIP),
        Some(80),
        Snat::Pool(vec![pool_addr]),
        &member,
        1,
    )]);
    let mut bed = Bed::with(dp);
    bed.poll();
    bed.take();
    let req = ip_frame(
        mac_lb(1),
        mac_server(),
        SERVER,
        pool_addr,
        1,
        64,
        &echo_request(8),
        None,
    );
    assert_eq!(
        bed.rx(1, &req),
        Verdict::Dropped(DropReason::IcmpUnsupported)
    );
    assert_eq!(bed.dropped(DropReason::IcmpUnsupported), 1);
    assert_eq!(bed.l2.counters().icmp_echo_replies.get(), 0);
    assert!(bed.take().is_empty());
}

#[test]
fn a_full_queue_for_an_unresolved_next_hop_drops_the_extra_packet() {
    let mut bed = quiet_bed();
    let pkt = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        64,
        &[1; 8],
        None,
    );
    for _ in 0..rouge_pipelines::arp::MAX_PENDING {
        assert_eq!(bed.rx(0, &pkt), Verdict::Held);
    }
    assert_eq!(bed.rx(0, &pkt), Verdict::Dropped(DropReason::ArpQueueFull));
    assert_eq!(bed.rx(0, &pkt), Verdict::Dropped(DropReason::ArpQueueFull));
    assert_eq!(bed.dropped(DropReason::ArpQueueFull), 2);
    assert_eq!(bed.l2.counters().dropped_total(), 2);
    let out = bed.take();
    assert_eq!(out.len(), 1, "one ARP request, nothing forwarded");
    assert_eq!(ArpRepr::parse(&out[0].1[14..]).unwrap().target_ip, SERVER);
    assert_eq!(
        bed.pool.available(),
        POOL - rouge_pipelines::arp::MAX_PENDING,
        "only the held packets keep buffers"
    );
    // The answer releases exactly the held packets.
    let reply = arp_frame(
        Operation::Reply,
        mac_server(),
        SERVER,
        mac_lb(1),
        SELF_S,
        None,
    );
    assert_eq!(bed.rx(1, &reply), Verdict::Consumed);
    assert_eq!(bed.take().len(), rouge_pipelines::arp::MAX_PENDING);
    assert_eq!(
        bed.l2.counters().forwarded.get(),
        rouge_pipelines::arp::MAX_PENDING as u64
    );
}

#[test]
fn a_full_neighbour_table_drops_packets_to_new_next_hops() {
    let mut bed = quiet_bed();
    // testing::dataplane holds 64 neighbours: 64 hosts on the server VLAN ask for us.
    let host = |i: u8| Ipv4Addr::new(198, 18, 2, 100 + i);
    for i in 0..64 {
        let ask = arp_frame(
            Operation::Request,
            MacAddr::local(1000 + i as u32),
            host(i),
            MacAddr::BROADCAST,
            SELF_S,
            None,
        );
        assert_eq!(bed.rx(1, &ask), Verdict::Answered);
        bed.take();
    }
    let to = |dst: Ipv4Addr| ip_frame(mac_lb(0), mac_client(), CLIENT, dst, 17, 64, &[2; 8], None);
    let unknown = Ipv4Addr::new(198, 18, 2, 200);
    assert_eq!(
        bed.rx(0, &to(unknown)),
        Verdict::Dropped(DropReason::ArpTableFull)
    );
    assert_eq!(bed.dropped(DropReason::ArpTableFull), 1);
    assert_eq!(bed.l2.counters().dropped_total(), 1);
    assert_eq!(bed.l2.counters().arp_requests_sent.get(), 0);
    assert!(
        bed.take().is_empty(),
        "no ARP request for a neighbour that cannot be held"
    );
    // Known neighbours are still reached.
    assert_eq!(bed.rx(0, &to(host(63))), Verdict::Forwarded);
    assert_eq!(bed.take().len(), 1);
    assert_eq!(bed.pool.available(), POOL);
}

#[test]
fn an_empty_pool_is_counted_as_no_buffer_and_recovers() {
    let mut bed = quiet_bed();
    let expiring = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        1,
        &[0; 8],
        None,
    );
    // Every buffer but the received packet's is taken: the ICMP error has none.
    let hog: Vec<Packet> = (0..POOL - 1).map(|_| bed.pool.alloc().unwrap()).collect();
    assert_eq!(
        bed.rx(0, &expiring),
        Verdict::Dropped(DropReason::TtlExceeded)
    );
    assert_eq!(bed.dropped(DropReason::NoBuffer), 1);
    assert_eq!(bed.l2.counters().icmp_errors_sent.get(), 0);
    // The ARP request for an unresolved next hop has none either: the packet waits.
    let forward = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        64,
        &[3; 8],
        None,
    );
    assert_eq!(bed.rx(0, &forward), Verdict::Held);
    assert_eq!(bed.dropped(DropReason::NoBuffer), 2);
    assert_eq!(bed.l2.counters().arp_requests_sent.get(), 0);
    assert!(bed.take().is_empty(), "nothing could be built");
    drop(hog);
    // With buffers back, the error is sent and the request goes out at the retry.
    assert_eq!(
        bed.rx(0, &expiring),
        Verdict::Dropped(DropReason::TtlExceeded)
    );
    assert_eq!(bed.l2.counters().icmp_errors_sent.get(), 1);
    bed.now += Duration::from_secs(1);
    bed.poll();
    let out = bed.take();
    assert_eq!(out.len(), 2, "the ICMP error and the retried ARP request");
    assert_eq!(ArpRepr::parse(&out[1].1[14..]).unwrap().target_ip, SERVER);
    assert_eq!(bed.dropped(DropReason::NoBuffer), 2);
    assert_eq!(bed.dropped(DropReason::TtlExceeded), 2);
}

#[test]
fn icmp_errors_are_rate_limited_per_worker() {
    let mut bed = quiet_bed();
    let expiring = ip_frame(
        mac_lb(0),
        mac_client(),
        CLIENT,
        SERVER,
        17,
        1,
        &[0; 8],
        None,
    );
    // testing::dataplane allows 1000 errors/s with a burst of a tenth of that: 100.
    let mut errors = 0;
    for _ in 0..101 {
        assert_eq!(
            bed.rx(0, &expiring),
            Verdict::Dropped(DropReason::TtlExceeded)
        );
        errors += bed.take().len();
    }
    let c = bed.l2.counters().clone();
    assert_eq!(errors, 100);
    assert_eq!(c.icmp_errors_sent.get(), 100);
    assert_eq!(c.icmp_errors_rate_limited.get(), 1);
    // 2 ms later, two tokens: two errors, then the limit again.
    bed.now += Duration::from_millis(2);
    for _ in 0..3 {
        bed.rx(0, &expiring);
        errors += bed.take().len();
    }
    assert_eq!(errors, 102);
    assert_eq!(c.icmp_errors_sent.get(), 102);
    assert_eq!(c.icmp_errors_rate_limited.get(), 2);
    assert_eq!(bed.dropped(DropReason::TtlExceeded), 104);
}

#[test]
fn ipv6_segments_without_an_ipv6_route_are_dropped_and_counted() {
    use rouge_pipelines::tcp::ProfileId;
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    // The IPv4-only snapshot has no IPv6 route: the stack's SYN goes nowhere.
    let mut bed = quiet_bed();
    let local = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
        40_000,
    );
    let remote = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)), 80);
    let now = bed.now;
    bed.l2
        .tcp_mut()
        .connect(now, local, remote, ProfileId::DEFAULT)
        .unwrap();
    bed.poll();
    assert_eq!(bed.dropped(DropReason::NoRoute), 1, "the SYN");
    assert_eq!(bed.l2.counters().dropped_total(), 1);
    assert!(bed.take().is_empty(), "nothing sent");
    assert_eq!(bed.pool.available(), POOL);
    // The retransmitted SYN is counted too.
    bed.now += Duration::from_secs(5);
    bed.poll();
    assert!(bed.dropped(DropReason::NoRoute) >= 2);
    assert!(bed.take().is_empty());
}
