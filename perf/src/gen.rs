//! The generator (flows, frame-size schedule) and the receiver (per-flow accounting and
//! latency).
//!
//! Both allocate everything at construction; their per-packet methods only write into
//! buffers and counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hdrhistogram::Histogram;
use rouge_drivers::{Burst, PacketPool};

use crate::frame::{
    is_arp_reply, locate_probe, Endpoints, Flow, Kind, Template, MAX_FRAME, MIN_FRAME,
};
use crate::probe::Probe;

/// Most flows a run can have (the probe's flow id is 16 bits).
pub const MAX_FLOWS: usize = 1 << 16;

/// Frame sizes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// Every frame this size (with FCS), 64..=1518.
    Fixed(usize),
    /// Simple IMIX: 64, 570 and 1518-byte frames in the ratio 7:4:1, interleaved.
    Imix,
}

impl std::str::FromStr for Sizes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Sizes::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("frame size `{s}`: write a number of bytes or `imix`"))?;
        if !(MIN_FRAME..=MAX_FRAME).contains(&n) {
            return Err(format!(
                "frame size {n}: write {MIN_FRAME} to {MAX_FRAME} (bytes with FCS) or `imix`"
            ));
        }
        Ok(Sizes::Fixed(n))
    }
}

impl serde::Serialize for Sizes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Sizes::Fixed(n) => s.serialize_u64(*n as u64),
            Sizes::Imix => s.serialize_str("imix"),
        }
    }
}

/// IMIX order: 7 small, 4 medium, 1 large frame per 12, spread out.
const IMIX_SIZES: [usize; 3] = [64, 570, 1518];
const IMIX_ORDER: [u8; 12] = [0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 0, 1];

/// An address as a number (IPv4 in the low 32 bits), and whether it is IPv6.
#[inline]
fn addr_num(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

/// The address `n` of a family (IPv4 from the low 32 bits).
#[inline]
fn num_addr(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// Makes the flow list: every source address of `ips` (inclusive, one family: the end
/// is taken in the start's family) with every source port of `ports` (ports vary
/// fastest), at most [`MAX_FLOWS`].
pub fn flows(ips: (IpAddr, IpAddr), ports: (u16, u16)) -> Vec<Flow> {
    let space = TupleSpace::new(ips, ports);
    (0..space.len().min(MAX_FLOWS as u64))
        .map(|i| space.get(i))
        .collect()
}

/// Every (source address, source port) pair of two ranges, in order (ports vary
/// fastest), without materialising them: for runs that must never reuse a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleSpace {
    ip_lo: u128,
    v6: bool,
    port_lo: u16,
    ports: u64,
    len: u64,
}

impl TupleSpace {
    /// The pairs of addresses `ips` (inclusive, of the start's family; an end below the
    /// start, or of the other family, gives the start alone) and ports `ports`
    /// (inclusive). At most 2^32 addresses are taken.
    pub fn new(ips: (IpAddr, IpAddr), ports: (u16, u16)) -> TupleSpace {
        let (lo, v6) = addr_num(ips.0);
        let (hi, hi6) = addr_num(ips.1);
        let n_ips = if hi6 == v6 && hi >= lo {
            ((hi - lo).min(u32::MAX as u128 - 1) + 1) as u64
        } else {
            1
        };
        let n_ports = u64::from(ports.1.saturating_sub(ports.0)) + 1;
        TupleSpace {
            ip_lo: lo,
            v6,
            port_lo: ports.0,
            ports: n_ports,
            len: n_ips * n_ports,
        }
    }

    /// How many distinct tuples there are.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a space has at least one tuple.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when the addresses are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// Tuple `i` (taken modulo [`TupleSpace::len`]).
    #[inline]
    pub fn get(&self, i: u64) -> Flow {
        let i = i % self.len;
        // The remainder is below the port count (a u16 range), so the cast does not
        // truncate; IPv4 addresses stay in the low 32 bits as the range is IPv4.
        let ip = self.ip_lo.wrapping_add((i / self.ports) as u128);
        let port = self.port_lo.wrapping_add((i % self.ports) as u16);
        Flow {
            src_ip: num_addr(ip, self.v6),
            src_port: port,
        }
    }
}

/// Builds frames for a run: round-robin over flows (or a sweep of a [`TupleSpace`] that
/// uses each tuple once), sizes from the schedule.
#[derive(Debug)]
pub struct Generator {
    templates: Vec<Template>,
    schedule: Vec<u8>,
    slot: usize,
    flows: Vec<Flow>,
    next_flow: usize,
    sweep: Option<TupleSpace>,
    swept: u64,
    seq: Vec<u32>,
    /// Frames generated.
    pub generated: u64,
    /// Bytes generated (with FCS).
    pub generated_bytes: u64,
}

impl Generator {
    /// A generator of `kind` frames to `ep` over `flows` (at least one, at most
    /// [`MAX_FLOWS`], of `ep.dst_ip`'s family except for ARP requests, which are IPv4).
    pub fn new(kind: Kind, ep: &Endpoints, sizes: Sizes, flows: Vec<Flow>) -> Generator {
        assert!(
            !flows.is_empty() && flows.len() <= MAX_FLOWS,
            "1..=65536 flows"
        );
        let v6 = ep.dst_ip.is_ipv6() && kind != Kind::ArpRequest;
        assert!(
            flows.iter().all(|f| f.src_ip.is_ipv6() == v6),
            "source and destination addresses of one family"
        );
        let (templates, schedule) = match sizes {
            Sizes::Fixed(n) => (vec![Template::new(kind, ep, n)], vec![0]),
            Sizes::Imix => (
                IMIX_SIZES
                    .iter()
                    .map(|&n| Template::new(kind, ep, n))
                    .collect(),
                IMIX_ORDER.to_vec(),
            ),
        };
        let seq = vec![0; flows.len()];
        Generator {
            templates,
            schedule,
            slot: 0,
            flows,
            next_flow: 0,
            sweep: None,
            swept: 0,
            seq,
            generated: 0,
            generated_bytes: 0,
        }
    }

    /// A generator that walks `space` in order, one frame per tuple (a run of at most
    /// `space.len()` frames never reuses a tuple). Probes carry flow ids modulo
    /// [`MAX_FLOWS`], so a [`Receiver`] of [`Generator::flow_count`] flows accounts them.
    pub fn sweeping(kind: Kind, ep: &Endpoints, sizes: Sizes, space: TupleSpace) -> Generator {
        let first = space.get(0);
        let mut g = Generator::new(kind, ep, sizes, vec![first]);
        let ids = space.len().min(MAX_FLOWS as u64) as usize;
        g.seq = vec![0; ids];
        g.sweep = Some(space);
        g
    }

    /// Takes back the last `n` frames of a sweep, which the port dropped (a burst's
    /// tail): their tuples go to the next frames, so a sweep's tuples are spent only on
    /// frames that left. Frame counters are not changed. No effect on a round-robin
    /// generator.
    pub fn rewind(&mut self, n: usize) {
        if self.sweep.is_some() {
            self.swept = self.swept.saturating_sub(n as u64);
        }
    }

    /// Distinct tuples used so far by a sweeping generator (0 otherwise).
    pub fn tuples_used(&self) -> u64 {
        match self.sweep {
            Some(space) => self.swept.min(space.len()),
            None => 0,
        }
    }

    /// The kind of frames generated.
    pub fn kind(&self) -> Kind {
        self.templates[0].kind()
    }

    /// Number of flow ids the probes carry (the flows, or for a sweep at most
    /// [`MAX_FLOWS`]).
    pub fn flow_count(&self) -> usize {
        self.seq.len()
    }

    /// Frames generated for flow `i` so far (its next sequence number).
    pub fn sent_in_flow(&self, i: usize) -> u32 {
        self.seq[i]
    }

    /// Frame sizes (with FCS) of the templates.
    pub fn sizes(&self) -> Vec<usize> {
        self.templates.iter().map(Template::wire_size).collect()
    }

    /// Appends up to `n` frames stamped `now_ns` to `burst` (bounded by its free room and
    /// the pool). Returns how many were added.
    #[inline]
    pub fn fill(&mut self, pool: &PacketPool, burst: &mut Burst, n: usize, now_ns: u64) -> usize {
        let mut added = 0;
        while added < n && !burst.is_full() {
            let Some(mut pkt) = pool.alloc() else { break };
            let t = &self.templates[self.schedule[self.slot] as usize];
            self.slot += 1;
            if self.slot == self.schedule.len() {
                self.slot = 0;
            }
            let (flow, f) = match self.sweep {
                Some(space) => {
                    let k = self.swept;
                    self.swept += 1;
                    (space.get(k), (k % self.seq.len() as u64) as usize)
                }
                None => {
                    let f = self.next_flow;
                    self.next_flow += 1;
                    if self.next_flow == self.flows.len() {
                        self.next_flow = 0;
                    }
                    (self.flows[f], f)
                }
            };
            let probe = Probe {
                flow: f as u16,
                seq: self.seq[f],
                tx_ns: now_ns,
            };
            self.seq[f] = self.seq[f].wrapping_add(1);
            pkt.set_len(t.len());
            t.write(pkt.data_mut(), &flow, &probe);
            self.generated += 1;
            self.generated_bytes += t.wire_size() as u64;
            burst.push(pkt);
            added += 1;
        }
        added
    }
}

/// What the receiver knows about one flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowRx {
    /// Distinct probes received.
    pub unique: u64,
    /// Probes received again (seen in the 128-sequence window already).
    pub duplicates: u64,
    /// Probes that arrived after a higher sequence number of the same flow.
    pub reordered: u64,
    #[serde(skip)]
    highest: Option<u32>,
    #[serde(skip)]
    window: u128,
}

impl FlowRx {
    /// Accounts for sequence number `seq`; returns false for a duplicate.
    #[inline]
    fn see(&mut self, seq: u32) -> bool {
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            self.window = 1;
            self.unique += 1;
            return true;
        };
        if seq > h {
            let shift = seq - h;
            self.window = if shift >= 128 {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.highest = Some(seq);
            self.unique += 1;
            return true;
        }
        let d = h - seq;
        if d < 128 {
            let bit = 1u128 << d;
            if self.window & bit != 0 {
                self.duplicates += 1;
                return false;
            }
            self.window |= bit;
        }
        // Too old for the window: counted as a late arrival (a duplicate cannot be told).
        self.reordered += 1;
        self.unique += 1;
        true
    }
}

/// Counts received probes per flow and their latency.
#[derive(Debug)]
pub struct Receiver {
    flows: Vec<FlowRx>,
    /// Latency of received probes, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Frames with a valid probe.
    pub received: u64,
    /// Bytes of those frames (with FCS).
    pub received_bytes: u64,
    /// ARP replies (the answers counted in ARP request mode).
    pub arp_replies: u64,
    /// Frames without a probe (neighbour traffic, replies of other kinds).
    pub other: u64,
    /// Frames with a probe whose IPv4 header checksum is wrong.
    pub bad_checksum: u64,
    /// Frames with a probe naming a flow this run does not have.
    pub unknown_flow: u64,
    /// Receive time of the last probe, in nanoseconds since the start.
    pub last_rx_ns: u64,
}

impl Receiver {
    /// A receiver for `flow_count` flows.
    pub fn new(flow_count: usize) -> Receiver {
        Receiver {
            flows: vec![FlowRx::default(); flow_count],
            // 1 ns to 60 s at 3 significant digits; the bounds are constants that
            // hdrhistogram accepts, so this cannot fail.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("constant histogram bounds are valid"),
            received: 0,
            received_bytes: 0,
            arp_replies: 0,
            other: 0,
            bad_checksum: 0,
            unknown_flow: 0,
            last_rx_ns: 0,
        }
    }

    /// Accounts for one received frame at `now_ns`.
    #[inline]
    pub fn handle(&mut self, frame: &[u8], now_ns: u64) {
        let Some((off, ip_ok)) = locate_probe(frame) else {
            if is_arp_reply(frame) {
                self.arp_replies += 1;
                self.received_bytes += (frame.len().max(60) + crate::frame::FCS_LEN) as u64;
            } else {
                self.other += 1;
            }
            return;
        };
        let Some(p) = frame.get(off..).and_then(Probe::read) else {
            self.other += 1;
            return;
        };
        if !ip_ok {
            self.bad_checksum += 1;
            return;
        }
        let Some(f) = self.flows.get_mut(p.flow as usize) else {
            self.unknown_flow += 1;
            return;
        };
        self.received += 1;
        self.received_bytes += (frame.len() + crate::frame::FCS_LEN) as u64;
        self.last_rx_ns = now_ns;
        if f.see(p.seq) {
            self.latency
                .saturating_record(now_ns.saturating_sub(p.tx_ns).max(1));
        }
    }

    /// Per-flow figures.
    pub fn flows(&self) -> &[FlowRx] {
        &self.flows
    }

    /// Distinct probes received over all flows.
    pub fn unique(&self) -> u64 {
        self.flows.iter().map(|f| f.unique).sum()
    }

    /// Answers received: distinct probes plus ARP replies.
    pub fn answered(&self) -> u64 {
        self.unique() + self.arp_replies
    }

    /// Duplicates over all flows.
    pub fn duplicates(&self) -> u64 {
        self.flows.iter().map(|f| f.duplicates).sum()
    }

    /// Late arrivals over all flows.
    pub fn reordered(&self) -> u64 {
        self.flows.iter().map(|f| f.reordered).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::MacAddr;

    fn v4(n: u32) -> IpAddr {
        Ipv4Addr::from(n).into()
    }

    #[test]
    fn an_ipv6_sweep_uses_every_tuple_once_with_valid_frames() {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: "2001:2:0:1::100".parse().unwrap(),
            dst_port: 80,
        };
        // 0x10..=0x100: 241 addresses, as the benchmark's IPv4 new-flow range.
        let lo: IpAddr = "2001:2:0:1::1:10".parse().unwrap();
        let hi: IpAddr = "2001:2:0:1::1:100".parse().unwrap();
        let space = TupleSpace::new((lo, hi), (1024, 1123));
        assert!(space.is_ipv6());
        assert_eq!(space.len(), 24_100);
        assert_eq!(space.get(0).src_ip, lo);
        assert_eq!(space.get(24_099).src_ip, hi);
        assert_eq!(
            space.get(100).src_ip,
            "2001:2:0:1::1:11".parse::<IpAddr>().unwrap()
        );
        let mut g = Generator::sweeping(Kind::TcpSyn, &ep, Sizes::Fixed(64), space);
        assert_eq!(g.sizes(), vec![94]);
        let pool = PacketPool::new(64);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(24_100 / 20) {
            let mut b = Burst::new();
            assert_eq!(g.fill(&pool, &mut b, 20, 0), 20);
            for p in &b {
                // Source address at 22..38, source port at 54..56 (Ethernet + IPv6).
                let d = p.data();
                let tuple = (
                    u128::from_be_bytes(d[22..38].try_into().unwrap()),
                    u16::from_be_bytes([d[54], d[55]]),
                );
                assert!(seen.insert(tuple), "tuple {tuple:?} reused");
                assert_eq!(
                    &d[38..54],
                    &"2001:2:0:1::100".parse::<Ipv6Addr>().unwrap().octets()
                );
            }
        }
        assert_eq!(seen.len(), 24_100);
        // A mixed or reversed range is the start alone.
        assert_eq!(TupleSpace::new((lo, v4(1)), (1, 1)).len(), 1);
        assert_eq!(TupleSpace::new((hi, lo), (1, 2)).len(), 2);
    }

    #[test]
    fn the_receiver_counts_ipv6_probes() {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: "2001:2:0:2::11".parse().unwrap(),
            dst_port: 9,
        };
        let src: IpAddr = "2001:2:0:1::2".parse().unwrap();
        let mut g = Generator::new(
            Kind::Udp,
            &ep,
            Sizes::Fixed(64),
            flows((src, src), (1024, 1027)),
        );
        let mut r = Receiver::new(g.flow_count());
        let pool = PacketPool::new(64);
        let mut b = Burst::new();
        assert_eq!(g.fill(&pool, &mut b, 8, 10), 8);
        for p in &b {
            r.handle(p.data(), 30);
        }
        assert_eq!(
            (r.received, r.unique(), r.bad_checksum, r.other),
            (8, 8, 0, 0)
        );
        assert_eq!(r.received_bytes, 8 * 82);
        assert_eq!(r.latency.value_at_quantile(0.5), 20);
    }

    #[test]
    #[should_panic(expected = "one family")]
    fn families_are_not_mixed() {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: "2001:2:0:2::11".parse().unwrap(),
            dst_port: 9,
        };
        Generator::new(
            Kind::Udp,
            &ep,
            Sizes::Fixed(64),
            flows((v4(1), v4(1)), (1, 1)),
        );
    }

    #[test]
    fn sequence_accounting_tells_duplicates_from_reordering() {
        let mut f = FlowRx::default();
        for s in [0, 1, 3, 2, 2, 10, 4, 200, 5, 199, 200] {
            f.see(s);
        }
        // unique: 0 1 3 2 10 4 200 5(too old: late) 199 = 9; dup: 2, 200.
        assert_eq!(f.unique, 9);
        assert_eq!(f.duplicates, 2);
        // late: 2, 4, 5, 199.
        assert_eq!(f.reordered, 4);
    }

    #[test]
    fn a_sweep_uses_every_tuple_once_in_order() {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: [198, 18, 1, 100].into(),
            dst_port: 80,
        };
        // 3 addresses x 40,000 ports = 120,000 tuples: more than the probe's flow ids.
        let space = TupleSpace::new((v4(0xc612_010a), v4(0xc612_010c)), (1024, 41_023));
        assert_eq!(space.len(), 120_000);
        let mut g = Generator::sweeping(Kind::TcpSyn, &ep, Sizes::Fixed(64), space);
        assert_eq!(g.flow_count(), MAX_FLOWS);
        let pool = PacketPool::new(64);
        let mut seen = std::collections::HashSet::new();
        let mut last = None;
        for _ in 0..(120_000 / 32) {
            let mut b = Burst::new();
            assert_eq!(g.fill(&pool, &mut b, 32, 0), 32);
            for p in &b {
                // Source address at 26..30, source port at 34..36 (Ethernet + IPv4).
                let d = p.data();
                let tuple = (
                    u32::from_be_bytes([d[26], d[27], d[28], d[29]]),
                    u16::from_be_bytes([d[34], d[35]]),
                );
                assert!(seen.insert(tuple), "tuple {tuple:?} reused");
                last = Some(tuple);
            }
        }
        assert_eq!(seen.len(), 120_000);
        assert_eq!(g.tuples_used(), 120_000);
        // Frames the port dropped give their tuples back to the next ones.
        let mut b = Burst::new();
        g.rewind(5);
        assert_eq!(g.fill(&pool, &mut b, 5, 0), 5);
        let d = b[0].data();
        assert_eq!(
            (
                u32::from_be_bytes([d[26], d[27], d[28], d[29]]),
                u16::from_be_bytes([d[34], d[35]])
            ),
            (0xc612_010c, 41_019)
        );
        assert_eq!(last, Some((0xc612_010c, 41_023)));
        assert!(seen.contains(&(0xc612_010a, 1024)));
    }

    #[test]
    fn imix_keeps_its_ratio_and_flows_round_robin() {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: [198, 18, 2, 11].into(),
            dst_port: 9,
        };
        let fl = flows((v4(0xc612_0102), v4(0xc612_0103)), (1000, 1002));
        assert_eq!(fl.len(), 6);
        let mut g = Generator::new(Kind::Udp, &ep, Sizes::Imix, fl);
        let pool = PacketPool::new(64);
        let mut counts = [0usize; 3];
        for _ in 0..2 {
            let mut b = Burst::new();
            assert_eq!(g.fill(&pool, &mut b, 24, 0), 24);
            for p in &b {
                let i = [60, 566, 1514].iter().position(|&l| l == p.len()).unwrap();
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [28, 16, 4]);
        assert_eq!(g.generated, 48);
        assert_eq!(g.sent_in_flow(0), 8);
        assert_eq!(g.sent_in_flow(5), 8);
    }

    #[test]
    fn arp_replies_are_answers_and_requests_are_not() {
        use crate::frame::arp_request;
        let mut r = Receiver::new(1);
        let req = arp_request(MacAddr::local(1), [198, 18, 1, 2], [198, 18, 1, 1]);
        let mut reply = arp_request(MacAddr::local(2), [198, 18, 1, 1], [198, 18, 1, 2]);
        reply[21] = 2;
        r.handle(&req, 5);
        r.handle(&reply, 6);
        r.handle(&reply, 7);
        assert_eq!(
            (r.arp_replies, r.other, r.answered(), r.unique()),
            (2, 1, 2, 0)
        );
        assert!(r.latency.is_empty());
    }

    #[test]
    fn sizes_parse_with_helpful_errors() {
        assert_eq!("imix".parse::<Sizes>(), Ok(Sizes::Imix));
        assert_eq!("128".parse::<Sizes>(), Ok(Sizes::Fixed(128)));
        assert!("63".parse::<Sizes>().unwrap_err().contains("64 to 1518"));
        assert!("big".parse::<Sizes>().is_err());
    }
}
