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
        let dp = Arc::new(testing::dataplane(n));
        NeighbourBus::new(n)
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
    assert_eq!(bed.pool.available(), 64, "every dropped buffer returned");
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
    assert_eq!(bed.pool.available(), 64);
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
