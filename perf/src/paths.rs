//! Rouge's real data plane over `pipe` ports, one path at a time, for instructions per
//! packet (`perf/run callgrind`, the `rouge-bench-paths` binary).
//!
//! A [`Rig`] is what one worker owns: the L2/L3 pipeline ([`L2L3`]: Ethernet, ARP,
//! IPv4, ICMP, forwarding virtual servers, fastl4, the TCP stack and its services), its
//! `pipe` ports and, on a shaped port, a [`Shaper`]; the "hosts" at the far ends of the
//! wires are plain frames written and read by the harness. The clock is injected (10 µs
//! per turn), so a run executes the same instructions every time.
//!
//! Each [`Path`] first sets itself up (neighbours learned, flows established, the TCP
//! connection opened and its window grown), then runs its measured packets. Only
//! [`worker_turn`] is the worker's work (receive a burst on every port, run each packet
//! through the pipeline, the pipeline's timers, the shaper, transmit): `perf/run
//! callgrind` counts instructions inside that function only (callgrind's
//! `--toggle-collect`), runs each path with N and 2N packets and divides the difference
//! by the difference of the packets counted, so neither the set-up nor the harness's
//! hosts (frame generation, the far ends' receive) are in the figure.
//!
//! Every run checks that each measured packet ended the way its path says (answered,
//! forwarded, a flow created, a segment delivered); a path that stops doing its work
//! fails instead of reporting a figure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use rouge_drivers::pipe::{self, PipePort};
use rouge_drivers::{Burst, MacAddr, Packet, PacketPool, Port, BURST_SIZE};
use rouge_pipelines::addr::Prefix;
use rouge_pipelines::arp::ArpConfig;
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::dataplane::{Dataplane, Interface, SelfIp, Vlan, VsCounters};
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::route::{NextHop, Route, RouteTable};
use rouge_pipelines::services::{ServiceKind, ServiceSpec};
use rouge_pipelines::shaper::policy::{ClassRules, NamedClass, Root};
use rouge_pipelines::shaper::share::worker_config;
use rouge_pipelines::shaper::{ClassConfig, Shaper, ShapingPolicy};
use rouge_pipelines::tcp::{ConnHandle, ProfileId, TcpError};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::wire::ethernet as eth;
use rouge_pipelines::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use rouge_pipelines::{testing, Instant};

use crate::frame::{arp_request, Endpoints, Kind};
use crate::gen::{flows, Generator, Sizes};

/// A path through the data plane, with one instruction figure each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// ARP requests for the self IP 198.18.1.1, answered in place.
    Arp,
    /// ICMP echo requests to the self IP 198.18.1.1, answered in place.
    Echo,
    /// UDP 198.18.1.2 → 198.18.2.11 routed by the forwarding virtual server.
    Forward,
    /// TCP SYNs to the fastl4 VIP 198.18.1.100:80, each from a tuple not seen before in
    /// the run: a flow created, a member chosen, SNAT, the SYN translated and sent.
    Fastl4New,
    /// Data segments of 64 established fastl4 flows (client to member), translated.
    Fastl4Established,
    /// One connection between two Rouge pipelines (two TCP stacks): the chargen service
    /// of one sends bulk data, the other reads it. A packet is one data segment out of
    /// the sender and into the receiver, with its share of the ACKs back.
    Tcp,
    /// [`Path::Forward`] with the egress port shaped: every forwarded packet is enqueued
    /// in its class and dequeued by the [`Shaper`] before it is sent.
    Shaper,
}

impl Path {
    /// Every path, in table order.
    pub const ALL: [Path; 7] = [
        Path::Arp,
        Path::Echo,
        Path::Forward,
        Path::Fastl4New,
        Path::Fastl4Established,
        Path::Tcp,
        Path::Shaper,
    ];

    /// The path's name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Path::Arp => "arp",
            Path::Echo => "echo",
            Path::Forward => "forward",
            Path::Fastl4New => "fastl4-new",
            Path::Fastl4Established => "fastl4-established",
            Path::Tcp => "tcp",
            Path::Shaper => "shaper",
        }
    }

    /// The path named `name`.
    pub fn from_name(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PathReport {
    /// The path.
    pub path: Path,
    /// Packets of the measured part (for [`Path::Tcp`]: data segments).
    pub packets: u64,
    /// Worker turns of the measured part.
    pub turns: u64,
    /// Wall-clock nanoseconds of the measured part (harness included; not a figure to
    /// compare, the instruction count is).
    pub nanos: u64,
}

/// Why a run failed: the path did not do its work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct PathError {
    path: &'static str,
    what: String,
}

fn fail(path: Path, what: impl Into<String>) -> PathError {
    PathError {
        path: path.name(),
        what: what.into(),
    }
}

/// Most packets a measured run takes.
pub const MAX_PACKETS: u64 = 100_000_000;

/// Most packets of a [`Path::Fastl4New`] run: every SYN a new tuple, and every flow
/// within one worker's flow table and SNAT ports.
pub const MAX_NEW_FLOWS: u64 = 30_000;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const SELF_C: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const SELF_S: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x52, 0, 0, 0, 1]);
const TURN: Duration = Duration::from_micros(10);

fn member(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, 11 + i)
}

fn member_mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0x52, 0, 0, 1, i])
}

/// One worker's pipeline and ports.
struct Node {
    l2: L2L3,
    ports: Vec<PipePort>,
    /// Packets the pipeline emitted this turn, by port (capacity kept across turns).
    out: Vec<Vec<Packet>>,
    /// The shaper of one egress port: (port, scheduler).
    shaper: Option<(usize, Shaper<Packet>)>,
    shaper_drops: u64,
    rx: Burst,
    tx: Burst,
}

impl Node {
    fn new(dp: Dataplane, ports: Vec<PipePort>, pool: &PacketPool) -> Node {
        let macs = ports.iter().map(Port::mac).collect();
        let mtus = ports.iter().map(Port::mtu).collect();
        let bus = NeighbourBus::new(1)
            .pop()
            .expect("one bus end for one worker");
        let l2 = L2L3::new(
            0,
            Arc::new(dp),
            macs,
            mtus,
            PipelineCounters::new_shared(),
            bus,
            pool.clone(),
        );
        let out = ports.iter().map(|_| Vec::with_capacity(1024)).collect();
        Node {
            l2,
            ports,
            out,
            shaper: None,
            shaper_drops: 0,
            rx: Burst::new(),
            tx: Burst::new(),
        }
    }

    /// The worker loop's turn: every port's receive burst through the pipeline, the
    /// pipeline's timers, the shaper (what the appliance's egress does: classified
    /// packets wait in their class, the rest is charged to the root and goes at once),
    /// then transmission in bursts.
    #[inline]
    fn turn(&mut self, now: Instant, pool: &PacketPool) {
        let out = &mut self.out;
        for (i, port) in self.ports.iter_mut().enumerate() {
            port.rx_burst(pool, &mut self.rx);
            for mut p in self.rx.drain(..) {
                p.meta.port = i as u16;
                self.l2
                    .process(now, p, &mut |port, pkt| out[port as usize].push(pkt));
            }
        }
        self.l2
            .poll(now, &mut |port, pkt| out[port as usize].push(pkt));
        for (i, port) in self.ports.iter_mut().enumerate() {
            let queue = &mut self.out[i];
            match self.shaper.as_mut() {
                Some((sp, shaper)) if *sp == i => {
                    for pkt in queue.drain(..) {
                        match pkt.meta.class {
                            Some(class) => {
                                let hash = pkt.meta.flow_hash as u64;
                                if shaper.enqueue(now, class as usize, hash, pkt).is_err() {
                                    self.shaper_drops += 1;
                                }
                            }
                            None => {
                                shaper.charge(now, pkt.len());
                                send(port, &mut self.tx, pkt);
                            }
                        }
                    }
                    while let Some((_, pkt)) = shaper.dequeue(now) {
                        send(port, &mut self.tx, pkt);
                    }
                }
                _ => {
                    for pkt in queue.drain(..) {
                        send(port, &mut self.tx, pkt);
                    }
                }
            }
            if !self.tx.is_empty() {
                port.tx_burst(&mut self.tx);
            }
        }
    }
}

#[inline]
fn send(port: &mut PipePort, tx: &mut Burst, pkt: Packet) {
    tx.push(pkt);
    if tx.is_full() {
        port.tx_burst(tx);
    }
}

/// The application of the TCP path: reads what arrives on its connection.
struct Reader {
    conn: ConnHandle,
    buf: Box<[u8]>,
    bytes: u64,
}

/// The worker(s) and the hosts around them.
pub struct Rig {
    nodes: Vec<Node>,
    /// Far ends of the wires, by name of the host: (client side, server side).
    hosts: Vec<PipePort>,
    reader: Option<Reader>,
    pool: PacketPool,
    now: Instant,
    turns: u64,
}

/// One turn of every worker (and of the TCP path's reader): the only code whose
/// instructions `perf/run callgrind` counts.
#[inline(never)]
pub fn worker_turn(rig: &mut Rig) {
    rig.now += TURN;
    rig.turns += 1;
    for n in rig.nodes.iter_mut() {
        n.turn(rig.now, &rig.pool);
    }
    if let Some(r) = rig.reader.as_mut() {
        let tcp = rig.nodes[1].l2.tcp_mut();
        loop {
            match tcp.read(r.conn, &mut r.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => r.bytes += n as u64,
            }
        }
    }
}

impl Rig {
    /// One pipeline (`dp`) with `lb-c` (port 0) facing host 0 and `lb-s` (port 1)
    /// facing host 1.
    fn single(dp: Dataplane, pool_size: usize) -> Rig {
        let pool = PacketPool::new(pool_size);
        let (client, lb_c) = pipe::pair("c0", "lb-c", 1, 4096);
        let (lb_s, server) = pipe::pair("lb-s", "s0", 2, 4096);
        let node = Node::new(dp, vec![lb_c, lb_s], &pool);
        Rig {
            nodes: vec![node],
            hosts: vec![client, server],
            reader: None,
            pool,
            now: Instant::from_secs(1),
            turns: 0,
        }
    }

    fn counters(&self, node: usize) -> &PipelineCounters {
        self.nodes[node].l2.counters()
    }

    fn lb_mac(&self, port: usize) -> MacAddr {
        self.nodes[0].ports[port].mac()
    }

    /// Host `h` sends `frame`.
    fn inject(&mut self, h: usize, frame: &[u8]) {
        let mut b = Burst::new();
        if let Some(p) = self.pool.alloc_from(frame) {
            b.push(p);
        }
        self.hosts[h].tx_burst(&mut b);
    }

    /// Every host takes what reached it; returns the frames of host `keep` (others are
    /// dropped).
    fn collect(&mut self, keep: Option<usize>) -> Vec<Vec<u8>> {
        let mut kept = Vec::new();
        let mut b = Burst::new();
        for (i, h) in self.hosts.iter_mut().enumerate() {
            while h.rx_burst(&self.pool, &mut b) > 0 {
                if keep == Some(i) {
                    kept.extend(b.iter().map(|p| p.data().to_vec()));
                }
                b.clear();
            }
        }
        kept
    }

    /// A set-up turn: the worker's turn, then the hosts empty their wires.
    fn settle(&mut self) {
        worker_turn(self);
        self.collect(None);
    }
}

/// The host dataplane of the TCP path's receiving side: one port, self IP 198.18.1.2/24.
fn host_dataplane() -> Dataplane {
    Dataplane::new(
        1,
        vec![Interface { name: "h0".into() }],
        vec![Vlan {
            name: "h".into(),
            iface: 0,
            tag: None,
        }],
        vec![SelfIp {
            name: "h".into(),
            addr: "198.18.1.2/24".parse().expect("a prefix"),
            vlan: 0,
            floating: false,
        }],
        Vec::new(),
        RouteTable::new(vec![Route {
            prefix: "198.18.1.0/24".parse::<Prefix>().expect("a prefix"),
            next_hop: NextHop {
                vlan: 0,
                gateway: None,
            },
            connected: true,
        }]),
        Vec::new(),
        ArpConfig {
            max_entries: 64,
            ..Default::default()
        },
        1000,
    )
}

/// A shaping policy with classes of every kind (as `rouge-bench-shaper`) and a root of
/// 1 Tbit/s on port 1, so the scheduler's bookkeeping is measured, never waiting.
fn shaping_policy() -> ShapingPolicy {
    let named = |name: &str, config: ClassConfig| NamedClass {
        name: name.into(),
        config,
    };
    let mut guaranteed = ClassConfig::weighted(1);
    guaranteed.guaranteed_bps = Some(10_000_000_000);
    let mut ceiled = ClassConfig::weighted(3);
    ceiled.ceiling_bps = Some(500_000_000_000);
    let mut priority = ClassConfig::weighted(1);
    priority.priority = Some(0);
    priority.ceiling_bps = Some(500_000_000_000);
    ShapingPolicy::new(
        vec![
            named("gold", ClassConfig::weighted(3)),
            named("bronze", ClassConfig::weighted(1)),
            named("guaranteed", guaranteed),
            named("ceiled", ceiled),
            named("priority", priority),
        ],
        vec![
            None,
            Some(Root {
                rate_bps: 1_000_000_000_000,
                burst_bytes: 1 << 20,
            }),
        ],
        0,
        ClassRules::default(),
    )
}

/// An ARP request from `(mac, ip)` for `target`.
fn learn_frame(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    arp_request(mac, ip.octets(), target.octets())
}

/// An Ethernet/IPv4/TCP frame with valid checksums.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    dmac: MacAddr,
    smac: MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload.len()];
    let hl = eth::emit_header(&mut f, dmac, smac, None, eth::ETHERTYPE_IPV4);
    Ipv4Repr {
        src: *src.ip(),
        dst: *dst.ip(),
        protocol: 6,
        payload_len: 20 + payload.len(),
        ttl: 64,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut f[hl..]);
    let t = &mut f[hl + 20..];
    t[0..2].copy_from_slice(&src.port().to_be_bytes());
    t[2..4].copy_from_slice(&dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    let len = t.len() as u16;
    let acc = checksum::pseudo_header_v4(src.ip().octets(), dst.ip().octets(), 6, len);
    let c = checksum::finish(checksum::sum(acc, t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// The TCP source and destination of an Ethernet/IPv4/TCP frame.
fn tcp_ends(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
    if ip.protocol() != 6 {
        return None;
    }
    let t = ip.payload();
    let port = |o: usize| u16::from_be_bytes([t[o], t[o + 1]]);
    (t.len() >= 20).then(|| {
        (
            SocketAddrV4::new(ip.src(), port(0)),
            SocketAddrV4::new(ip.dst(), port(2)),
        )
    })
}

/// Where the measured packets come from.
enum Source {
    /// A generator of frames (unique tuples where the path needs them), sent by host 0.
    Gen(Generator),
    /// Fixed frames sent by host 0 in turn.
    Frames(Vec<Vec<u8>>, usize),
    /// The TCP connection: the data segments come from the sending stack itself.
    Tcp,
}

/// Which counter must rise by one per measured packet.
fn done(rig: &Rig, path: Path) -> u64 {
    let c = rig.counters(0);
    match path {
        Path::Arp => c.arp_replies_sent.get(),
        Path::Echo => c.icmp_echo_replies.get(),
        Path::Forward | Path::Fastl4Established | Path::Shaper => c.forwarded.get(),
        Path::Fastl4New => c.fastl4_flows_created.get(),
        Path::Tcp => c.tcp_segments_out.get(),
    }
}

/// Builds `path`'s rig and runs its set-up.
fn prepare(path: Path, packets: u64) -> Result<(Rig, Source), PathError> {
    match path {
        Path::Arp | Path::Echo | Path::Forward | Path::Shaper => {
            let mut dp = testing::dataplane(1);
            if path == Path::Shaper {
                dp = dp.with_shaping(shaping_policy());
            }
            let mut rig = Rig::single(dp, 4096);
            if path == Path::Shaper {
                let cfg = shaping_policy()
                    .shaper_config(1)
                    .map(|c| worker_config(&c, 1))
                    .ok_or_else(|| fail(path, "port 1 not shaped"))?;
                let s = Shaper::new(&cfg).map_err(|e| fail(path, e.to_string()))?;
                rig.nodes[0].shaper = Some((1, s));
            }
            // Start-up announcements, then the server learned (so forwarding never
            // waits for ARP) and the client too.
            rig.settle();
            rig.inject(1, &learn_frame(member_mac(0), SERVER, SELF_S));
            rig.inject(0, &learn_frame(CLIENT_MAC, CLIENT, SELF_C));
            rig.settle();
            let (kind, dst, dst_mac) = match path {
                Path::Arp => (Kind::ArpRequest, SELF_C, MacAddr::BROADCAST),
                Path::Echo => (Kind::IcmpEcho, SELF_C, rig.lb_mac(0)),
                _ => (Kind::Udp, SERVER, rig.lb_mac(0)),
            };
            let ep = Endpoints {
                src_mac: CLIENT_MAC,
                dst_mac,
                dst_ip: dst.into(),
                dst_port: 9,
            };
            let fl = flows((CLIENT.into(), CLIENT.into()), (1024, 1024 + 63));
            Ok((
                rig,
                Source::Gen(Generator::new(kind, &ep, Sizes::Fixed(64), fl)),
            ))
        }
        Path::Fastl4New | Path::Fastl4Established => {
            let mut rig = Rig::single(testing::fastl4_dataplane(1), 4096);
            rig.settle();
            rig.inject(0, &learn_frame(CLIENT_MAC, CLIENT, SELF_C));
            for i in 0..4 {
                rig.inject(1, &learn_frame(member_mac(i), member(i), SELF_S));
            }
            rig.settle();
            let ep = Endpoints {
                src_mac: CLIENT_MAC,
                dst_mac: rig.lb_mac(0),
                dst_ip: VIP.into(),
                dst_port: 80,
            };
            if path == Path::Fastl4New {
                // Source addresses 198.18.1.2.. with every port from 1024: each SYN of
                // the run is a tuple the table has not seen.
                let first = CLIENT;
                let fl = flows(
                    (first.into(), Ipv4Addr::from(u32::from(first) + 1).into()),
                    (1024, u16::MAX),
                );
                if packets > MAX_NEW_FLOWS || packets + BURST_SIZE as u64 > fl.len() as u64 {
                    return Err(fail(
                        path,
                        format!("at most {MAX_NEW_FLOWS} packets (unique tuples, one flow table)"),
                    ));
                }
                return Ok((
                    rig,
                    Source::Gen(Generator::new(Kind::TcpSyn, &ep, Sizes::Fixed(64), fl)),
                ));
            }
            // 64 flows through the handshake; then data segments of each in turn.
            let vip = SocketAddrV4::new(VIP, 80);
            let lb = (rig.lb_mac(0), rig.lb_mac(1));
            let mut data = Vec::new();
            for k in 0..64u16 {
                let c = SocketAddrV4::new(CLIENT, 2000 + k);
                rig.inject(0, &tcp_frame(lb.0, CLIENT_MAC, c, vip, 1000, 0, 0x02, b""));
                worker_turn(&mut rig);
                let out = rig.collect(Some(1));
                let (snat, m) = out
                    .iter()
                    .find_map(|f| tcp_ends(f))
                    .ok_or_else(|| fail(path, "the SYN was not forwarded to a member"))?;
                let i = m.ip().octets()[3] - 11;
                rig.inject(
                    1,
                    &tcp_frame(lb.1, member_mac(i), m, snat, 7000, 1001, 0x12, b""),
                );
                rig.inject(
                    0,
                    &tcp_frame(lb.0, CLIENT_MAC, c, vip, 1001, 7001, 0x10, b""),
                );
                rig.settle();
                data.push(tcp_frame(
                    lb.0, CLIENT_MAC, c, vip, 1001, 7001, 0x18, b"rouge!",
                ));
            }
            let flows_now = rig.l2_flows();
            if flows_now != 64 {
                return Err(fail(path, format!("{flows_now} flows established, not 64")));
            }
            Ok((rig, Source::Frames(data, 0)))
        }
        Path::Tcp => {
            let pool = PacketPool::new(8192);
            let (a0, b0) = pipe::pair("lb-c", "h0", 1, 4096);
            let (a1, idle) = pipe::pair("lb-s", "s0", 2, 64);
            let chargen = ServiceSpec {
                name: "chargen".into(),
                kind: ServiceKind::Chargen,
                addr: SocketAddr::new(IpAddr::V4(SELF_C), 19),
                counters: VsCounters::new(1),
                profile: None,
            };
            let sender = Node::new(
                testing::dataplane(1).with_services(vec![chargen]),
                vec![a0, a1],
                &pool,
            );
            let receiver = Node::new(host_dataplane(), vec![b0], &pool);
            let mut rig = Rig {
                nodes: vec![sender, receiver],
                hosts: vec![idle],
                reader: None,
                pool,
                now: Instant::from_secs(1),
                turns: 0,
            };
            let now = rig.now;
            let conn = rig.nodes[1]
                .l2
                .tcp_mut()
                .connect(
                    now,
                    SocketAddr::new(IpAddr::V4(CLIENT), 40_000),
                    SocketAddr::new(IpAddr::V4(SELF_C), 19),
                    ProfileId::DEFAULT,
                )
                .map_err(|e: TcpError| fail(path, format!("connect: {e}")))?;
            rig.reader = Some(Reader {
                conn,
                buf: vec![0u8; 256 * 1024].into_boxed_slice(),
                bytes: 0,
            });
            // The handshake, ARP both ways, slow start: until 4 MiB have arrived.
            for _ in 0..100_000 {
                rig.settle();
                if rig.reader.as_ref().is_some_and(|r| r.bytes >= 4 << 20) {
                    return Ok((rig, Source::Tcp));
                }
            }
            Err(fail(path, "the connection did not reach 4 MiB"))
        }
    }
}

impl Rig {
    fn l2_flows(&self) -> usize {
        self.nodes[0].l2.fastl4().map_or(0, |f| f.flows().len())
    }
}

/// Runs `path` with `packets` measured packets (at most [`MAX_PACKETS`]) after its
/// set-up, and checks that every one of them did the path's work.
pub fn run(path: Path, packets: u64) -> Result<PathReport, PathError> {
    let packets = packets.clamp(1, MAX_PACKETS);
    let (mut rig, mut source) = prepare(path, packets)?;
    let before = done(&rig, path);
    let created = rig.counters(0).fastl4_flows_created.get();
    let drops = rig.counters(0).dropped_total();
    let turns = rig.turns;
    let wall = std::time::Instant::now();
    let mut sent = 0u64;
    let mut burst = Burst::new();
    loop {
        match &mut source {
            Source::Gen(g) => {
                if sent == packets {
                    break;
                }
                let n = (packets - sent).min(BURST_SIZE as u64) as usize;
                sent += g.fill(&rig.pool, &mut burst, n, 0) as u64;
                rig.hosts[0].tx_burst(&mut burst);
            }
            Source::Frames(frames, next) => {
                if sent == packets {
                    break;
                }
                while sent < packets && !burst.is_full() {
                    match rig.pool.alloc_from(&frames[*next]) {
                        Some(p) => burst.push(p),
                        None => return Err(fail(path, "packet pool exhausted")),
                    }
                    *next = (*next + 1) % frames.len();
                    sent += 1;
                }
                rig.hosts[0].tx_burst(&mut burst);
            }
            Source::Tcp => {
                if done(&rig, path) - before >= packets {
                    break;
                }
                if rig.turns - turns > 100 * packets {
                    return Err(fail(path, "data segments stopped flowing"));
                }
            }
        }
        worker_turn(&mut rig);
        rig.collect(None);
    }
    let nanos = wall.elapsed().as_nanos() as u64;
    let measured = done(&rig, path) - before;
    let expect = if path == Path::Tcp {
        measured.max(packets)
    } else {
        packets
    };
    if measured != expect {
        return Err(fail(
            path,
            format!("{measured} of {packets} packets did the path's work"),
        ));
    }
    let new_drops = rig.counters(0).dropped_total() - drops;
    if new_drops != 0 {
        return Err(fail(path, format!("{new_drops} packets dropped")));
    }
    let new_flows = rig.counters(0).fastl4_flows_created.get() - created;
    if path == Path::Fastl4Established && new_flows != 0 {
        return Err(fail(
            path,
            format!("{new_flows} flows created on established flows"),
        ));
    }
    if let Some((_, s)) = &rig.nodes[0].shaper {
        if s.queued() != 0 || rig.nodes[0].shaper_drops != 0 {
            return Err(fail(path, "the shaper held back or dropped packets"));
        }
    }
    Ok(PathReport {
        path,
        packets: measured,
        turns: rig.turns - turns,
        nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_does_its_work() {
        for path in Path::ALL {
            let r = run(path, 300).unwrap_or_else(|e| panic!("{e}"));
            assert!(r.packets >= 300, "{path:?}: {r:?}");
            assert!(r.turns > 0);
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Path::ALL {
            assert_eq!(Path::from_name(p.name()), Some(p));
        }
        assert_eq!(Path::from_name("nope"), None);
    }
}
