//! Fastl4 driven frame by frame through the L2/L3 pipeline: full NAT both ways with
//! every rewritten field and checksum checked against a recomputation, SNAT modes,
//! idle timeouts per state, the table limit, SNAT ports under the steering formula,
//! ICMP errors and fragments following their flow, members going down, malformed input.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use rouge_drivers::steer::Steering;
use rouge_drivers::{MacAddr, Packet, PacketPool};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::dataplane::{Dataplane, Fastl4Protocol, Fastl4Vs, LbBinding, Snat};
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::testing;
use rouge_pipelines::verdict::{DropReason, Verdict};
use rouge_pipelines::wire::arp::{ArpRepr, Operation};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::wire::ethernet::{self as eth};
use rouge_pipelines::wire::ipv4::Ipv4Repr;
use rouge_pipelines::Instant;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const SELF_C: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const SELF_S: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
const SNAT_POOL: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 200);

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

fn member(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, 11 + i)
}
fn mac_lb(port: u16) -> MacAddr {
    MacAddr::local(100 + port as u32)
}
fn mac_client() -> MacAddr {
    MacAddr::local(1)
}
fn mac_member(i: u8) -> MacAddr {
    MacAddr::local(10 + i as u32)
}

fn vs(proto: Fastl4Protocol, port: u16, snat: Snat, workers: usize) -> Fastl4Vs {
    let members: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::new(IpAddr::V4(member(i)), port))
        .collect();
    Fastl4Vs::new(
        "web",
        proto,
        IpAddr::V4(VIP),
        Some(port),
        snat,
        &members,
        workers,
    )
}

struct Bed {
    l2: L2L3,
    pool: PacketPool,
    out: Vec<(u16, Packet)>,
    now: Instant,
}

impl Bed {
    fn new(vss: Vec<Fastl4Vs>) -> Bed {
        Bed::many(1, vss, |_| {}).pop().unwrap()
    }

    fn many(n: usize, vss: Vec<Fastl4Vs>, tune: impl Fn(&mut Dataplane)) -> Vec<Bed> {
        let steering = Steering::FanoutXor { workers: n as u32 };
        Bed::steered(n, steering, vss, tune)
    }

    /// `n` workers whose ports spread frames as `steering` says.
    fn steered(
        n: usize,
        steering: Steering,
        vss: Vec<Fastl4Vs>,
        tune: impl Fn(&mut Dataplane),
    ) -> Vec<Bed> {
        let mut dp = testing::dataplane(n).with_fastl4(vss);
        tune(&mut dp);
        let dp = Arc::new(dp);
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
                )
                .with_steering(steering);
                let mut b = Bed {
                    l2,
                    pool,
                    out: Vec::new(),
                    now: Instant::from_secs(1),
                };
                b.learn(0, CLIENT, mac_client(), SELF_C);
                for i in 0..4 {
                    b.learn(1, member(i), mac_member(i), SELF_S);
                }
                // Gratuitous announcements of the first poll.
                b.poll();
                b.take();
                b
            })
            .collect()
    }

    /// Makes the pipeline learn a neighbour (an ARP request from it to a self IP).
    fn learn(&mut self, port: u16, ip: Ipv4Addr, mac: MacAddr, target: Ipv4Addr) {
        let mut b = vec![0u8; 60];
        let hl = eth::emit_header(&mut b, MacAddr::BROADCAST, mac, None, eth::ETHERTYPE_ARP);
        ArpRepr {
            op: Operation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        }
        .emit(&mut b[hl..]);
        assert_eq!(self.rx(port, &b), Verdict::Answered);
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

    /// Exactly one frame out, on `port`.
    fn one(&mut self, port: u16) -> Vec<u8> {
        let mut o = self.take();
        assert_eq!(o.len(), 1, "expected one frame");
        let (p, f) = o.pop().unwrap();
        assert_eq!(p, port);
        f
    }

    fn dropped(&self, r: DropReason) -> u64 {
        self.l2.counters().dropped(r)
    }

    fn flows(&self) -> usize {
        self.l2.fastl4().map_or(0, |f| f.flows().len())
    }

    fn vs(&self) -> Arc<Fastl4Vs> {
        self.l2.dataplane().fastl4[0].clone()
    }

    fn advance(&mut self, ms: u64) {
        self.now += std::time::Duration::from_millis(ms);
        self.poll();
    }
}

#[allow(clippy::too_many_arguments)]
fn ip_frame(
    smac: MacAddr,
    dmac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ident: u16,
    frag: u16,
    l4: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8; 14 + 20 + l4.len()];
    eth::emit_header(&mut b, dmac, smac, None, eth::ETHERTYPE_IPV4);
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len: l4.len(),
        ttl: 64,
        ident,
        dont_frag: true,
    }
    .emit(&mut b[14..]);
    if frag != 0 {
        // Flags and offset replace DF; fix the header checksum.
        b[20..22].copy_from_slice(&frag.to_be_bytes());
        b[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&b[14..34]);
        b[24..26].copy_from_slice(&c.to_be_bytes());
    }
    b[34..].copy_from_slice(l4);
    if b.len() < 60 {
        b.resize(60, 0);
    }
    b
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let acc = checksum::pseudo_header_v4(src.octets(), dst.octets(), proto, seg.len() as u16);
    checksum::finish(checksum::sum(acc, seg))
}

#[allow(clippy::too_many_arguments)]
fn tcp_seg(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    t[0..2].copy_from_slice(&src.port().to_be_bytes());
    t[2..4].copy_from_slice(&dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    let c = l4_checksum(*src.ip(), *dst.ip(), 6, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn udp_dgram(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], with_csum: bool) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src.port().to_be_bytes());
    u[2..4].copy_from_slice(&dst.port().to_be_bytes());
    let n = u.len() as u16;
    u[4..6].copy_from_slice(&n.to_be_bytes());
    u[8..].copy_from_slice(payload);
    if with_csum {
        let mut c = l4_checksum(*src.ip(), *dst.ip(), 17, &u);
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

fn from_client(src: SocketAddrV4, dst: SocketAddrV4, seg: &[u8], proto: u8) -> Vec<u8> {
    ip_frame(
        mac_client(),
        mac_lb(0),
        *src.ip(),
        *dst.ip(),
        proto,
        7,
        0,
        seg,
    )
}

fn from_member(i: u8, src: SocketAddrV4, dst: SocketAddrV4, seg: &[u8], proto: u8) -> Vec<u8> {
    ip_frame(
        mac_member(i),
        mac_lb(1),
        *src.ip(),
        *dst.ip(),
        proto,
        9,
        0,
        seg,
    )
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A parsed outgoing frame, with every checksum recomputed from scratch.
#[derive(Debug)]
struct Out {
    dmac: MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    proto: u8,
    ttl: u8,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
    l4: Vec<u8>,
}

fn parse(f: &[u8]) -> Out {
    let ip = &f[14..];
    let hl = ((ip[0] & 0xf) as usize) * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let ip = &ip[..total];
    assert_eq!(checksum::checksum(&ip[..hl]), 0, "IPv4 header checksum");
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    let l4 = &ip[hl..];
    let (sp, dp) = (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    );
    let r32 = |o: usize| u32::from_be_bytes([l4[o], l4[o + 1], l4[o + 2], l4[o + 3]]);
    let (seq, ack, flags, payload) = match proto {
        6 => {
            assert_eq!(l4_checksum(src, dst, 6, l4), 0, "TCP checksum");
            let doff = ((l4[12] >> 4) as usize) * 4;
            (r32(4), r32(8), l4[13], l4[doff..].to_vec())
        }
        17 => {
            if l4[6..8] != [0, 0] {
                assert_eq!(l4_checksum(src, dst, 17, l4), 0, "UDP checksum");
            }
            (0, 0, 0, l4[8..].to_vec())
        }
        _ => {
            assert_eq!(checksum::checksum(l4), 0, "ICMP checksum");
            (0, 0, 0, l4.to_vec())
        }
    };
    Out {
        dmac: MacAddr(f[0..6].try_into().unwrap()),
        src: sa(src, sp),
        dst: sa(dst, dp),
        proto,
        ttl: ip[8],
        seq,
        ack,
        flags,
        payload,
        l4: l4.to_vec(),
    }
}

fn member_index(ip: Ipv4Addr) -> u8 {
    ip.octets()[3] - 11
}

#[test]
fn tcp_handshake_data_and_fin_through_the_vip_and_back() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let c = sa(CLIENT, 40000);
    let v = sa(VIP, 80);

    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1000, 0, SYN, b""), 6)),
        Verdict::Forwarded
    );
    let o = parse(&b.one(1));
    assert_eq!(*o.dst.ip(), member(0));
    assert_eq!(o.dst.port(), 80);
    assert_eq!(*o.src.ip(), SELF_S, "automap uses the egress self IP");
    assert_ne!(o.src.port(), 0);
    assert_eq!(o.dmac, mac_member(0));
    assert_eq!((o.seq, o.flags, o.ttl), (1000, SYN, 63));
    let snat = o.src;
    let m = o.dst;

    // SYN-ACK back from the member to the SNAT address.
    assert_eq!(
        b.rx(
            1,
            &from_member(0, m, snat, &tcp_seg(m, snat, 5000, 1001, SYN | ACK, b""), 6)
        ),
        Verdict::Forwarded
    );
    let o = parse(&b.one(0));
    assert_eq!((o.src, o.dst), (v, c));
    assert_eq!((o.seq, o.ack, o.flags, o.ttl), (5000, 1001, SYN | ACK, 63));
    assert_eq!(o.dmac, mac_client());

    // Data both ways.
    b.rx(
        0,
        &from_client(
            c,
            v,
            &tcp_seg(c, v, 1001, 5001, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n"),
            6,
        ),
    );
    let o = parse(&b.one(1));
    assert_eq!((o.src, o.dst), (snat, m));
    assert_eq!(o.payload, b"GET / HTTP/1.0\r\n\r\n");
    b.rx(
        1,
        &from_member(
            0,
            m,
            snat,
            &tcp_seg(m, snat, 5001, 1019, ACK | PSH, b"HTTP/1.0 200 OK\r\n"),
            6,
        ),
    );
    let o = parse(&b.one(0));
    assert_eq!(
        (o.src, o.dst, o.payload.as_slice()),
        (v, c, &b"HTTP/1.0 200 OK\r\n"[..])
    );

    // FIN both ways.
    b.rx(
        0,
        &from_client(c, v, &tcp_seg(c, v, 1019, 5018, ACK | FIN, b""), 6),
    );
    assert_eq!(parse(&b.one(1)).flags, ACK | FIN);
    b.rx(
        1,
        &from_member(0, m, snat, &tcp_seg(m, snat, 5018, 1020, ACK | FIN, b""), 6),
    );
    assert_eq!(parse(&b.one(0)).flags, ACK | FIN);
    b.rx(
        0,
        &from_client(c, v, &tcp_seg(c, v, 1020, 5019, ACK, b""), 6),
    );
    assert_eq!(parse(&b.one(1)).flags, ACK);

    let vs = b.vs();
    assert_eq!(vs.counters.packets(), 7);
    assert_eq!(
        (vs.counters.conns_total(), vs.counters.conns_current()),
        (1, 1)
    );
    assert_eq!(vs.members[0].counters.conns_current(), 1);
    assert_eq!(vs.members[0].counters.packets(), 7);
    // Closing: the 10 s timeout applies, not the 300 s one.
    b.advance(9_000);
    assert_eq!(b.flows(), 1);
    b.advance(1_500);
    assert_eq!(b.flows(), 0);
    assert_eq!(vs.counters.conns_current(), 0);
    assert_eq!(vs.members[0].counters.conns_current(), 0);
    // A late segment finds no flow.
    assert_eq!(
        b.rx(
            0,
            &from_client(c, v, &tcp_seg(c, v, 1020, 5019, ACK, b""), 6)
        ),
        Verdict::Dropped(DropReason::Fastl4NoFlow)
    );
}

#[test]
fn rst_ends_the_flow_after_passing_through() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 40001), sa(VIP, 80));
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    b.rx(
        1,
        &from_member(
            0,
            o.dst,
            o.src,
            &tcp_seg(o.dst, o.src, 9, 0, RST | ACK, b""),
            6,
        ),
    );
    assert_eq!(parse(&b.one(0)).flags, RST | ACK);
    assert_eq!(b.flows(), 0);
    assert_eq!(b.l2.counters().fastl4_flows_closed_by_rst.get(), 1);
    // Both keys are gone: neither side's packets find the flow any more.
    assert_eq!(
        b.rx(
            1,
            &from_member(0, o.dst, o.src, &tcp_seg(o.dst, o.src, 9, 0, ACK, b""), 6)
        ),
        // The SNAT address is the self IP: its own TCP stack takes the stray segment.
        Verdict::Consumed
    );
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 2, 0, ACK, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4NoFlow)
    );
    // The same client tuple opens a new flow.
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 50, 0, SYN, b""), 6)),
        Verdict::Forwarded
    );
    assert_eq!(b.flows(), 1);
}

#[test]
fn udp_round_trip_and_zero_checksum_stays_zero() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Udp, 53, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 5555), sa(VIP, 53));
    assert_eq!(
        b.rx(0, &from_client(c, v, &udp_dgram(c, v, b"query", true), 17)),
        Verdict::Forwarded
    );
    let o = parse(&b.one(1));
    assert_eq!((*o.src.ip(), o.dst), (SELF_S, sa(member(0), 53)));
    assert_ne!(o.l4[6..8], [0, 0]);
    assert_eq!(o.payload, b"query");
    let (m, snat) = (o.dst, o.src);
    b.rx(
        1,
        &from_member(0, m, snat, &udp_dgram(m, snat, b"answer", true), 17),
    );
    let o = parse(&b.one(0));
    assert_eq!((o.src, o.dst, o.payload.as_slice()), (v, c, &b"answer"[..]));
    // No checksum: stays none after translation.
    b.rx(0, &from_client(c, v, &udp_dgram(c, v, b"again", false), 17));
    let o = parse(&b.one(1));
    assert_eq!(o.l4[6..8], [0, 0]);
    assert_eq!(o.dst, m, "the same flow");
    // UDP idle timeout (60 s).
    b.advance(59_000);
    assert_eq!(b.flows(), 1);
    b.advance(2_000);
    assert_eq!(b.flows(), 0);
}

#[test]
fn snat_pool_and_none() {
    let mut b = Bed::new(vec![vs(
        Fastl4Protocol::Tcp,
        80,
        Snat::Pool(vec![SNAT_POOL]),
        1,
    )]);
    let (c, v) = (sa(CLIENT, 40000), sa(VIP, 80));
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    assert_eq!(*o.src.ip(), SNAT_POOL);
    // The pool address answers ARP on the server side.
    let mut arp = vec![0u8; 60];
    let hl = eth::emit_header(
        &mut arp,
        MacAddr::BROADCAST,
        mac_member(0),
        None,
        eth::ETHERTYPE_ARP,
    );
    ArpRepr {
        op: Operation::Request,
        sender_mac: mac_member(0),
        sender_ip: member(0),
        target_mac: MacAddr::ZERO,
        target_ip: SNAT_POOL,
    }
    .emit(&mut arp[hl..]);
    assert_eq!(b.rx(1, &arp), Verdict::Answered);
    b.take();
    b.rx(
        1,
        &from_member(
            0,
            o.dst,
            o.src,
            &tcp_seg(o.dst, o.src, 7, 2, SYN | ACK, b""),
            6,
        ),
    );
    assert_eq!(parse(&b.one(0)).dst, c);

    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::None, 1)]);
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    assert_eq!(o.src, c, "SNAT none keeps the client's address and port");
    b.rx(
        1,
        &from_member(0, o.dst, c, &tcp_seg(o.dst, c, 7, 2, SYN | ACK, b""), 6),
    );
    let o = parse(&b.one(0));
    assert_eq!((o.src, o.dst), (v, c));
}

#[test]
fn idle_timeouts_per_state() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let v = sa(VIP, 80);
    // SYN only: 5 s.
    let c = sa(CLIENT, 1);
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    b.take();
    b.advance(4_800);
    assert_eq!(b.flows(), 1);
    b.advance(400);
    assert_eq!(b.flows(), 0);
    // Established: 300 s, renewed by traffic (lazily).
    let c = sa(CLIENT, 2);
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    b.rx(
        1,
        &from_member(
            0,
            o.dst,
            o.src,
            &tcp_seg(o.dst, o.src, 100, 2, SYN | ACK, b""),
            6,
        ),
    );
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 2, 101, ACK, b""), 6));
    b.take();
    b.advance(200_000);
    assert_eq!(b.flows(), 1, "established flows outlive the SYN timeout");
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 2, 101, ACK, b"x"), 6));
    b.take();
    b.advance(200_000);
    assert_eq!(b.flows(), 1, "traffic renewed the timeout");
    b.advance(101_000);
    assert_eq!(b.flows(), 0);
    assert_eq!(b.l2.counters().fastl4_flows_expired.get(), 2);
}

#[test]
fn table_limit_is_counted_and_existing_flows_go_on() {
    let mut b = Bed::many(
        1,
        vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)],
        |dp| dp.fastl4_limits.flows_per_worker = 2,
    )
    .pop()
    .unwrap();
    let v = sa(VIP, 80);
    for p in 1..=2 {
        let c = sa(CLIENT, p);
        assert_eq!(
            b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
            Verdict::Forwarded
        );
    }
    let c = sa(CLIENT, 3);
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4TableFull)
    );
    assert_eq!(b.dropped(DropReason::Fastl4TableFull), 1);
    let c = sa(CLIENT, 1);
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 2, 0, ACK, b""), 6)),
        Verdict::Forwarded
    );
}

/// The two steering descriptions for `n` workers: the AF_PACKET fanout formula and
/// symmetric RSS.
fn steerings(n: usize) -> [Steering; 2] {
    [
        Steering::FanoutXor { workers: n as u32 },
        Steering::SymmetricRss {
            queues: n as u32,
            reta_size: 128,
        },
    ]
}

/// The worker `s` picks for a packet from `src` to `dst`.
fn worker_of(s: Steering, src: SocketAddrV4, dst: SocketAddrV4) -> usize {
    s.worker(src.into(), dst.into())
        .expect("a described steering")
}

#[test]
fn snat_ports_satisfy_the_steering_formula() {
    for n in 1..=3usize {
        for s in steerings(n) {
            let vss = vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, n)];
            let mut beds = Bed::steered(n, s, vss, |_| {});
            for (w, b) in beds.iter_mut().enumerate() {
                let v = sa(VIP, 80);
                let mut ports = Vec::new();
                for p in 0..20u16 {
                    let c = sa(CLIENT, 30000 + p);
                    assert_eq!(
                        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
                        Verdict::Forwarded
                    );
                    let o = parse(&b.one(1));
                    assert_eq!(
                        worker_of(s, o.dst, o.src),
                        w,
                        "{s:?} w={w} port {}",
                        o.src.port()
                    );
                    ports.push((o.dst, o.src.port()));
                }
                let mut d = ports.clone();
                d.sort();
                d.dedup();
                assert_eq!(d.len(), ports.len(), "SNAT ports unique per member");
            }
        }
    }
}

#[test]
fn icmp_frag_needed_from_the_member_side_reaches_the_client_translated() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 40000), sa(VIP, 80));
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1000, 0, SYN, b""), 6));
    let sent = b.one(1);
    let o = parse(&sent);
    let (m, snat) = (o.dst, o.src);
    // The member (or a router toward it) quotes the packet it got: IP header + 8 bytes.
    let quoted = &sent[14..14 + 28];
    let mut icmpm = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0xdc];
    icmpm.extend_from_slice(quoted);
    let cs = checksum::checksum(&icmpm);
    icmpm[2..4].copy_from_slice(&cs.to_be_bytes());
    let f = ip_frame(
        mac_member(0),
        mac_lb(1),
        *m.ip(),
        *snat.ip(),
        1,
        77,
        0,
        &icmpm,
    );
    assert_eq!(b.rx(1, &f), Verdict::Forwarded);
    let o = parse(&b.one(0));
    assert_eq!((o.proto, *o.src.ip(), *o.dst.ip()), (1, VIP, CLIENT));
    let icmp = &o.l4;
    assert_eq!((icmp[0], icmp[1], &icmp[6..8]), (3, 4, &[0x05, 0xdc][..]));
    let inner = &icmp[8..];
    assert_eq!(checksum::checksum(&inner[..20]), 0, "quoted IP checksum");
    assert_eq!(&inner[12..16], &CLIENT.octets());
    assert_eq!(&inner[16..20], &VIP.octets());
    assert_eq!(u16::from_be_bytes([inner[20], inner[21]]), 40000);
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 80);
    assert_eq!(u32::from_be_bytes(inner[24..28].try_into().unwrap()), 1000);

    // The same with a full quote: the quoted TCP checksum matches the client's segment.
    let mut icmpm = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0xdc];
    icmpm.extend_from_slice(&sent[14..54]);
    let cs = checksum::checksum(&icmpm);
    icmpm[2..4].copy_from_slice(&cs.to_be_bytes());
    b.rx(
        1,
        &ip_frame(
            mac_member(0),
            mac_lb(1),
            *m.ip(),
            *snat.ip(),
            1,
            78,
            0,
            &icmpm,
        ),
    );
    let o = parse(&b.one(0));
    let orig = tcp_seg(c, v, 1000, 0, SYN, b"");
    assert_eq!(
        &o.l4[8 + 20..8 + 40],
        &orig[..],
        "quoted TCP header as the client sent it"
    );
}

#[test]
fn fragments_follow_their_flow() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Udp, 53, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 5555), sa(VIP, 53));
    let whole = udp_dgram(c, v, &[0xab; 40], true);
    // First fragment: UDP header + 16 bytes, MF set; second: the rest at offset 24/8=3.
    let f1 = ip_frame(
        mac_client(),
        mac_lb(0),
        CLIENT,
        VIP,
        17,
        4242,
        0x2000,
        &whole[..24],
    );
    let f2 = ip_frame(
        mac_client(),
        mac_lb(0),
        CLIENT,
        VIP,
        17,
        4242,
        3,
        &whole[24..],
    );
    assert_eq!(b.rx(0, &f1), Verdict::Forwarded);
    let o1 = b.one(1);
    assert_eq!(b.rx(0, &f2), Verdict::Forwarded);
    let o2 = b.one(1);
    for o in [&o1, &o2] {
        assert_eq!(checksum::checksum(&o[14..34]), 0);
        assert_eq!(&o[30..34], &member(0).octets());
        assert_eq!(&o[26..30], &SELF_S.octets());
    }
    // Reassembled, the translated datagram's UDP checksum verifies.
    let mut re = o1[34..34 + 24].to_vec();
    re.extend_from_slice(&o2[34..34 + 24]);
    assert_eq!(l4_checksum(SELF_S, member(0), 17, &re), 0);
    // A later fragment with no first fragment seen.
    let lone = ip_frame(
        mac_client(),
        mac_lb(0),
        CLIENT,
        VIP,
        17,
        999,
        3,
        &whole[24..],
    );
    assert_eq!(
        b.rx(0, &lone),
        Verdict::Dropped(DropReason::Fastl4FragmentNoFlow)
    );
}

fn establish(b: &mut Bed, c: SocketAddrV4) -> (SocketAddrV4, SocketAddrV4) {
    let v = sa(VIP, 80);
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1000, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    let (m, snat) = (o.dst, o.src);
    b.rx(
        1,
        &from_member(
            member_index(*m.ip()),
            m,
            snat,
            &tcp_seg(m, snat, 7000, 1001, SYN | ACK, b""),
            6,
        ),
    );
    b.rx(
        0,
        &from_client(c, v, &tcp_seg(c, v, 1001, 7001, ACK | PSH, b"hello"), 6),
    );
    b.rx(
        1,
        &from_member(
            member_index(*m.ip()),
            m,
            snat,
            &tcp_seg(m, snat, 7001, 1006, ACK | PSH, b"world!"),
            6,
        ),
    );
    assert_eq!(b.take().len(), 3);
    (m, snat)
}

#[test]
fn member_down_resets_flows_toward_the_client_and_new_flows_avoid_it() {
    let mut x = vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1);
    x.reset_on_member_down = true;
    let mut b = Bed::new(vec![x]);
    let c = sa(CLIENT, 40000);
    let (m, _) = establish(&mut b, c);
    assert_eq!(*m.ip(), member(0));
    let vs = b.vs();
    vs.set_member_available(0, false);
    // New flows avoid member 0 at once.
    for p in 0..6 {
        let c2 = sa(CLIENT, 50000 + p);
        b.rx(
            0,
            &from_client(
                c2,
                sa(VIP, 80),
                &tcp_seg(c2, sa(VIP, 80), 1, 0, SYN, b""),
                6,
            ),
        );
        assert_ne!(*parse(&b.one(1)).dst.ip(), member(0));
    }
    b.advance(20);
    let o = parse(&b.one(0));
    assert_eq!((o.src, o.dst), (sa(VIP, 80), c));
    assert_eq!(o.flags, RST | ACK);
    assert_eq!(o.seq, 7007, "the member's next sequence number");
    assert_eq!(o.ack, 1006, "the client's next sequence number");
    assert_eq!(b.flows(), 6);
    assert_eq!(vs.members[0].counters.conns_current(), 0);
    assert_eq!(b.l2.counters().fastl4_rsts_sent.get(), 1);
}

#[test]
fn member_down_on_a_packet_resets_at_once_and_without_reset_flows_stay() {
    let mut x = vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1);
    x.reset_on_member_down = true;
    let mut b = Bed::new(vec![x]);
    let c = sa(CLIENT, 40000);
    establish(&mut b, c);
    b.vs().set_member_available(0, false);
    let v = sa(VIP, 80);
    assert_eq!(
        b.rx(
            0,
            &from_client(c, v, &tcp_seg(c, v, 1006, 7007, ACK | PSH, b"more"), 6)
        ),
        Verdict::Dropped(DropReason::Fastl4MemberDown)
    );
    let o = parse(&b.one(0));
    assert_eq!((o.flags, o.seq, o.ack), (RST | ACK, 7007, 1010));

    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    establish(&mut b, c);
    b.vs().set_member_available(0, false);
    b.advance(50);
    assert!(b.take().is_empty(), "no reset when not configured");
    assert_eq!(
        b.rx(
            0,
            &from_client(c, v, &tcp_seg(c, v, 1006, 7007, ACK, b"more"), 6)
        ),
        Verdict::Forwarded
    );
    assert_eq!(*parse(&b.one(1)).dst.ip(), member(0));
}

#[test]
fn malformed_and_unmatched_packets_to_a_vip_are_dropped_by_reason() {
    let mut b = Bed::new(vec![
        vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1),
        vs(Fastl4Protocol::Udp, 53, Snat::Automap, 1),
    ]);
    let (c, v) = (sa(CLIENT, 40000), sa(VIP, 80));
    let short = &tcp_seg(c, v, 1, 0, SYN, b"")[..12];
    assert_eq!(
        b.rx(0, &from_client(c, v, short, 6)),
        Verdict::Dropped(DropReason::Fastl4TcpMalformed)
    );
    let mut bad_off = tcp_seg(c, v, 1, 0, SYN, b"");
    bad_off[12] = 15 << 4;
    assert_eq!(
        b.rx(0, &from_client(c, v, &bad_off, 6)),
        Verdict::Dropped(DropReason::Fastl4TcpMalformed)
    );
    bad_off[12] = 2 << 4;
    assert_eq!(
        b.rx(0, &from_client(c, v, &bad_off, 6)),
        Verdict::Dropped(DropReason::Fastl4TcpMalformed)
    );
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, ACK, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4NoFlow)
    );
    let u = sa(VIP, 53);
    let mut d = udp_dgram(c, u, b"abc", true);
    d[4..6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(
        b.rx(0, &from_client(c, u, &d, 17)),
        Verdict::Dropped(DropReason::Fastl4UdpMalformed)
    );
    d[4..6].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(
        b.rx(0, &from_client(c, u, &d, 17)),
        Verdict::Dropped(DropReason::Fastl4UdpMalformed)
    );
    // No member available.
    let vs = b.vs();
    for i in 0..4 {
        vs.set_member_available(i, false);
    }
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4NoMember)
    );
    // A port with no virtual server on the VIP: the normal path (no listener).
    let o = sa(VIP, 81);
    assert_eq!(
        b.rx(0, &from_client(c, o, &tcp_seg(c, o, 1, 0, SYN, b""), 6)),
        Verdict::Dropped(DropReason::NoListener)
    );
    assert!(b.take().is_empty());
}

#[test]
fn round_robin_spreads_flows_over_members() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let v = sa(VIP, 80);
    let mut per = [0usize; 4];
    for p in 0..40 {
        let c = sa(CLIENT, 20000 + p);
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
        per[member_index(*parse(&b.one(1)).dst.ip()) as usize] += 1;
    }
    assert_eq!(per, [10; 4]);
    let vs = b.vs();
    for m in &vs.members {
        assert_eq!(m.counters.conns_total(), 10);
    }
}

#[test]
fn random_bytes_after_a_valid_header_never_panic() {
    let mut b = Bed::new(vec![
        vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1),
        vs(Fastl4Protocol::Udp, 53, Snat::Automap, 1),
    ]);
    let (m, snat) = establish(&mut b, sa(CLIENT, 40000));
    let mut forwarded = 0;
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..20_000u32 {
        let len = (next() % 120) as usize;
        let mut l4: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 4 && i % 2 == 0 {
            // Aim at the virtual servers' ports half the time.
            l4[2..4].copy_from_slice(&(if i % 4 == 0 { 80u16 } else { 53 }).to_be_bytes());
        }
        if len >= 14 && i % 3 == 0 {
            l4[13] = SYN;
        }
        let proto = [6u8, 17, 1][(next() % 3) as usize];
        if i % 5 == 4 && len >= 4 && i % 2 == 1 {
            // Aim at the established flow from the member side.
            l4[0..2].copy_from_slice(&m.port().to_be_bytes());
            l4[2..4].copy_from_slice(&snat.port().to_be_bytes());
        }
        if proto == 1 && len >= 36 && i % 2 == 1 {
            // An ICMP error quoting a packet of the flow, the rest random.
            l4[0] = 3;
            l4[8] = 0x45;
            l4[17] = 6;
            l4[20..24].copy_from_slice(&snat.ip().octets());
            l4[24..28].copy_from_slice(&m.ip().octets());
            l4[28..30].copy_from_slice(&snat.port().to_be_bytes());
            l4[30..32].copy_from_slice(&m.port().to_be_bytes());
            l4[2..4].copy_from_slice(&[0, 0]);
            let cs = checksum::checksum(&l4);
            l4[2..4].copy_from_slice(&cs.to_be_bytes());
        }
        let frag = [0u16, 0, 0x2000, 3, 0x2001][(next() % 5) as usize];
        let (port, smac, dmac, src, dst) = if i % 5 == 4 {
            (1, mac_member(0), mac_lb(1), member(0), SELF_S)
        } else {
            (0, mac_client(), mac_lb(0), CLIENT, VIP)
        };
        let f = ip_frame(smac, dmac, src, dst, proto, (next() % 8) as u16, frag, &l4);
        if let Verdict::Forwarded = b.rx(port, &f) {
            forwarded += 1;
        }
        if i % 1000 == 0 {
            b.advance(700);
        }
        b.take();
    }
    // The aimed packets do reach the translation path.
    assert!(forwarded > 100, "only {forwarded} forwarded");
}

#[test]
fn the_example_configuration_maps_dns_to_port_5353() {
    let dp = Arc::new(testing::fastl4_dataplane(1));
    assert_eq!(dp.fastl4.len(), 2);
    let mut b = Bed::new(Vec::new());
    b.l2.set_dataplane(dp);
    let (c, v) = (sa(CLIENT, 5555), sa(VIP, 53));
    assert_eq!(
        b.rx(0, &from_client(c, v, &udp_dgram(c, v, b"q", true), 17)),
        Verdict::Forwarded
    );
    let o = parse(&b.one(1));
    assert_eq!(o.dst, sa(member(0), 5353));
    assert_eq!(*o.src.ip(), SELF_S);
}

#[test]
fn a_fin_on_an_old_established_flow_shortens_its_timeout_at_once() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let c = sa(CLIENT, 40000);
    let v = sa(VIP, 80);
    establish(&mut b, c);
    // Past the SYN timer: the flow's timer now sits at the 300 s deadline.
    b.advance(6_000);
    assert_eq!(b.flows(), 1);
    b.rx(
        0,
        &from_client(c, v, &tcp_seg(c, v, 1006, 7007, ACK | FIN, b""), 6),
    );
    b.take();
    b.advance(9_000);
    assert_eq!(b.flows(), 1);
    b.advance(1_500);
    assert_eq!(
        b.flows(),
        0,
        "closing timeout (10 s), not the established one"
    );
}

#[test]
fn snat_port_exhaustion_is_counted() {
    let mut b = Bed::many(
        1,
        vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)],
        |dp| {
            dp.source_ports = (2000, 2003);
        },
    )
    .pop()
    .unwrap();
    let vs = b.vs();
    for i in 1..4 {
        vs.set_member_available(i, false);
    }
    let v = sa(VIP, 80);
    let mut ports = Vec::new();
    for p in 0..4 {
        let c = sa(CLIENT, 10000 + p);
        assert_eq!(
            b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
            Verdict::Forwarded
        );
        ports.push(parse(&b.one(1)).src.port());
    }
    ports.sort();
    assert_eq!(ports, [2000, 2001, 2002, 2003]);
    let c = sa(CLIENT, 10004);
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4SnatExhausted)
    );
    assert_eq!(b.dropped(DropReason::Fastl4SnatExhausted), 1);
    assert_eq!(b.l2.counters().source_ports_exhausted.get(), 1);
    // The client is refused at once: a RST from the VIP acknowledging its SYN.
    let rst = parse(&b.one(0));
    assert_eq!((rst.src, rst.dst), (v, c));
    assert_eq!(rst.flags, RST | ACK);
    assert_eq!((rst.seq, rst.ack), (0, 2));
    assert_eq!(b.l2.counters().fastl4_snat_exhausted_rsts.get(), 1);
    assert_eq!(b.l2.counters().fastl4_rsts_sent.get(), 1);
    // Another member has its own port space.
    vs.set_member_available(1, true);
    assert_eq!(
        b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
        Verdict::Forwarded
    );
}

#[test]
fn member_down_resets_are_bounded_per_poll() {
    let mut x = vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1);
    x.reset_on_member_down = true;
    let mut b = Bed::many(1, vec![x], |dp| dp.fastl4_limits.resets_per_poll = 2)
        .pop()
        .unwrap();
    let vs = b.vs();
    for i in 1..4 {
        vs.set_member_available(i, false);
    }
    for p in 0..5 {
        establish(&mut b, sa(CLIENT, 40000 + p));
    }
    vs.set_member_available(0, false);
    b.advance(20);
    assert_eq!(b.take().len(), 2);
    assert_eq!(b.flows(), 3);
    b.advance(5);
    assert!(b.take().is_empty(), "the next sweep waits for its interval");
    b.advance(10);
    assert_eq!(b.take().len(), 2);
    b.advance(10);
    assert_eq!(b.take().len(), 1);
    assert_eq!(b.flows(), 0);
    assert_eq!(vs.counters.conns_current(), 0);
    assert_eq!(vs.counters.conns_total(), 5);
}

#[test]
fn icmp_errors_from_the_client_side_reach_the_member_translated() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 40000), sa(VIP, 80));
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1000, 0, SYN, b""), 6));
    let o = parse(&b.one(1));
    let (m, snat) = (o.dst, o.src);
    b.rx(
        1,
        &from_member(0, m, snat, &tcp_seg(m, snat, 5000, 1001, SYN | ACK, b""), 6),
    );
    let back = b.one(0);
    // A router near the client says the VIP → client packet was too big.
    let mut icmpm = vec![3u8, 4, 0, 0, 0, 0, 0x04, 0x00];
    icmpm.extend_from_slice(&back[14..54]);
    let cs = checksum::checksum(&icmpm);
    icmpm[2..4].copy_from_slice(&cs.to_be_bytes());
    let f = ip_frame(mac_client(), mac_lb(0), CLIENT, VIP, 1, 5, 0, &icmpm);
    assert_eq!(b.rx(0, &f), Verdict::Forwarded);
    let o = parse(&b.one(1));
    assert_eq!(
        (o.proto, *o.src.ip(), *o.dst.ip()),
        (1, *snat.ip(), *m.ip())
    );
    let inner = &o.l4[8..];
    assert_eq!(checksum::checksum(&inner[..20]), 0, "quoted IP checksum");
    let orig = tcp_seg(m, snat, 5000, 1001, SYN | ACK, b"");
    assert_eq!(
        &inner[20..40],
        &orig[..],
        "quoted TCP header as the member sent it"
    );
    assert_eq!(&inner[12..16], &m.ip().octets());
    assert_eq!(&inner[16..20], &snat.ip().octets());
}

#[test]
fn an_all_ports_vip_of_its_own_answers_arp_and_keeps_the_port() {
    let vip = Ipv4Addr::new(198, 18, 1, 101);
    let members: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::new(IpAddr::V4(member(i)), 0))
        .collect();
    let x = Fastl4Vs::new(
        "any",
        Fastl4Protocol::Tcp,
        IpAddr::V4(vip),
        None,
        Snat::Automap,
        &members,
        1,
    );
    let mut b = Bed::new(vec![x]);
    let mut arp = vec![0u8; 60];
    let hl = eth::emit_header(
        &mut arp,
        MacAddr::BROADCAST,
        mac_client(),
        None,
        eth::ETHERTYPE_ARP,
    );
    ArpRepr {
        op: Operation::Request,
        sender_mac: mac_client(),
        sender_ip: CLIENT,
        target_mac: MacAddr::ZERO,
        target_ip: vip,
    }
    .emit(&mut arp[hl..]);
    assert_eq!(b.rx(0, &arp), Verdict::Answered);
    b.take();
    for port in [22u16, 8443] {
        let (c, v) = (sa(CLIENT, 40000), sa(vip, port));
        assert_eq!(
            b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
            Verdict::Forwarded
        );
        assert_eq!(parse(&b.one(1)).dst.port(), port);
    }
}

#[test]
fn replies_are_steered_to_the_worker_that_owns_the_flow() {
    for n in 2..=3usize {
        for s in steerings(n) {
            let vss = vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, n)];
            let mut beds = Bed::steered(n, s, vss, |_| {});
            let v = sa(VIP, 80);
            for p in 0..12u16 {
                let c = sa(CLIENT, 33000 + p);
                // The driver's choice for the client's packet.
                let w = worker_of(s, c, v);
                let b = &mut beds[w];
                assert_eq!(
                    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6)),
                    Verdict::Forwarded
                );
                let o = parse(&b.one(1));
                let (m, snat) = (o.dst, o.src);
                // The driver's choice for the member's reply.
                let r = worker_of(s, m, snat);
                assert_eq!(r, w, "{s:?}");
                let b = &mut beds[r];
                b.rx(
                    1,
                    &from_member(
                        member_index(*m.ip()),
                        m,
                        snat,
                        &tcp_seg(m, snat, 9, 2, SYN | ACK, b""),
                        6,
                    ),
                );
                assert_eq!(parse(&b.one(0)).dst, c);
            }
        }
    }
}

#[test]
fn too_big_for_the_member_side_gets_frag_needed_quoting_the_clients_packet() {
    let mut b = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let (c, v) = (sa(CLIENT, 40000), sa(VIP, 80));
    b.rx(0, &from_client(c, v, &tcp_seg(c, v, 1, 0, SYN, b""), 6));
    b.take();
    let big = tcp_seg(c, v, 2, 0, ACK, &[7u8; 1600]);
    assert_eq!(
        b.rx(0, &from_client(c, v, &big, 6)),
        Verdict::Dropped(DropReason::MtuExceeded)
    );
    let o = parse(&b.one(0));
    assert_eq!((o.proto, *o.src.ip(), *o.dst.ip()), (1, SELF_C, CLIENT));
    assert_eq!((o.l4[0], o.l4[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([o.l4[6], o.l4[7]]), 1500);
    assert_eq!(
        &o.l4[8 + 16..8 + 20],
        &VIP.octets(),
        "quotes the packet as sent"
    );
    // Echo to the fastl4 VIP is still answered by the normal path.
    let mut echo = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
    let cs = checksum::checksum(&echo);
    echo[2..4].copy_from_slice(&cs.to_be_bytes());
    let f = ip_frame(mac_client(), mac_lb(0), CLIENT, VIP, 1, 3, 0, &echo);
    assert_eq!(b.rx(0, &f), Verdict::Answered);
}

/// A virtual server whose members come from an `lb::Pool` (ratio 3:1, the third member
/// disabled), sharing live states and connection counts with the control plane.
fn pooled_vs() -> (Fastl4Vs, LbBinding) {
    use rouge_pipelines::lb::{AdminState, Member, Method, Pool, PoolConfig};
    let mut v = vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1);
    v.members.truncate(3);
    let members = vec![
        Member::new(v.members[0].addr).with_ratio(3),
        Member::new(v.members[1].addr),
        Member::new(v.members[2].addr).with_admin(AdminState::Disabled),
    ];
    let pool = Arc::new(Pool::new(PoolConfig::new(Method::Ratio, members)).unwrap());
    let b = LbBinding {
        states: Arc::new(pool.member_states()),
        counts: Arc::new(pool.conn_counts()),
        pool,
    };
    v.lb = Some(b.clone());
    v.reset_on_member_down = true;
    (v, b)
}

#[test]
fn pool_methods_states_and_counts_drive_member_choice() {
    use rouge_pipelines::lb::{AdminState, MonitorStatus};
    let (v, b) = pooled_vs();
    let mut bed = Bed::new(vec![v]);
    let mut chosen = [0usize; 3];
    let mut flows = Vec::new();
    for i in 0..40u16 {
        let (c, vip) = (sa(CLIENT, 20000 + i), sa(VIP, 80));
        assert_eq!(
            bed.rx(0, &from_client(c, vip, &tcp_seg(c, vip, 1, 0, SYN, b""), 6)),
            Verdict::Forwarded
        );
        let o = parse(&bed.one(1));
        let m = (0..3)
            .find(|&m| *o.dst.ip() == member(m))
            .expect("a pool member");
        chosen[m as usize] += 1;
        flows.push((c, o));
    }
    assert_eq!(
        chosen,
        [30, 10, 0],
        "ratio 3:1, the disabled member gets nothing"
    );
    let ids: Vec<_> = b.pool.ids().collect();
    assert_eq!(
        b.counts.current(ids[0]),
        30,
        "appliance-wide counts follow the flows"
    );
    // Draining member 1 (disabled): no new flows, existing ones keep flowing.
    b.states.set_admin(ids[1], AdminState::Disabled);
    let (c, odst) = flows
        .iter()
        .find(|(_, o)| *o.dst.ip() == member(1))
        .map(|(c, o)| (*c, o.dst))
        .unwrap();
    let vip = sa(VIP, 80);
    assert_eq!(
        bed.rx(
            0,
            &from_client(c, vip, &tcp_seg(c, vip, 2, 1, ACK, b"more"), 6)
        ),
        Verdict::Forwarded
    );
    assert_eq!(
        parse(&bed.one(1)).dst,
        odst,
        "existing flow still reaches the disabled member"
    );
    for i in 0..8u16 {
        let c = sa(CLIENT, 30000 + i);
        bed.rx(0, &from_client(c, vip, &tcp_seg(c, vip, 1, 0, SYN, b""), 6));
        assert_eq!(*parse(&bed.one(1)).dst.ip(), member(0));
    }
    // Member 0's monitor goes down: its flows are reset toward the clients and their
    // connection slots released; nothing is left to choose.
    b.states.set_monitor(ids[0], MonitorStatus::Down);
    for _ in 0..20 {
        bed.now += std::time::Duration::from_millis(20);
        bed.poll();
    }
    let resets = bed
        .take()
        .iter()
        .filter(|(p, f)| *p == 0 && parse(f).flags & RST != 0)
        .count();
    assert_eq!(
        resets, 38,
        "every flow of the down member reset toward its client"
    );
    assert_eq!(b.counts.current(ids[0]), 0, "slots released");
    let c = sa(CLIENT, 40000);
    assert_eq!(
        bed.rx(0, &from_client(c, vip, &tcp_seg(c, vip, 1, 0, SYN, b""), 6)),
        Verdict::Dropped(DropReason::Fastl4NoMember)
    );
    assert_eq!(
        b.counts.current(ids[1]),
        10,
        "the disabled member's flows continue"
    );
}

#[test]
fn a_new_syn_on_a_closing_flow_is_a_new_connection() {
    let mut bed = Bed::new(vec![vs(Fastl4Protocol::Tcp, 80, Snat::Automap, 1)]);
    let (c, vip) = (sa(CLIENT, 41000), sa(VIP, 80));
    bed.rx(0, &from_client(c, vip, &tcp_seg(c, vip, 1, 0, SYN, b""), 6));
    let first = parse(&bed.one(1));
    bed.rx(
        0,
        &from_client(c, vip, &tcp_seg(c, vip, 2, 1, FIN | ACK, b""), 6),
    );
    bed.take();
    assert_eq!(bed.flows(), 1);
    // The client reuses its port at once (TIME-WAIT on the client allows it).
    assert_eq!(
        bed.rx(
            0,
            &from_client(c, vip, &tcp_seg(c, vip, 9000, 0, SYN, b""), 6)
        ),
        Verdict::Forwarded
    );
    let second = parse(&bed.one(1));
    assert_ne!(
        second.dst, first.dst,
        "balanced again (round robin moves on)"
    );
    assert_eq!(bed.flows(), 1, "the old flow ended");
    assert_eq!(bed.vs().counters.conns_total(), 2);
}
