//! Rouge's TCP sender against a model of the Linux kernel's receiver, on a virtual clock:
//! what the Rouge-to-Rouge harness could not show (issue 13).
//!
//! The model receiver ([`LinuxRx`]) acknowledges as Linux 6.x does: a delayed ACK every
//! second full segment or after 40 ms (or every `stretch` segments, as GRO makes it);
//! out-of-order data answered at once for the first three duplicates, then compressed
//! (`tcp_comp_sack_*`: one ACK per 1 ms or per 44 segments); an immediate ACK when a hole
//! fills; up to three SACK blocks (with timestamps), most recent first; a D-SACK for
//! data received twice. The links between the two have a fixed one-way delay and drop
//! data segments and ACKs by a script or at random (seeded), or hold one segment back
//! (reordering).
//!
//! Each case asserts what the sender's counters say about how it recovered (fast
//! recovery, RACK, TLP, RTOs, undo), never a throughput; every byte is checked against
//! the pattern at its offset.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rouge_pipelines::tcp::{
    CongestionAlgo, ConnHandle, Event, ProfileId, StackConfig, TcpCounters, TcpProfile, TcpStack,
};
use rouge_pipelines::wire::tcp::{Flags, TcpPacket, TcpRepr};
use rouge_pipelines::Instant;

const ROUGE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const LINUX: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const MSS: usize = 1448;
const PEER_ISS: u32 = 7_000_000;
const MS: u64 = 1_000_000;

fn pattern(off: u64) -> u8 {
    (off.wrapping_mul(31) ^ (off >> 9)) as u8
}

/// A little xorshift for seeded loss.
struct Rng(u64);

impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The Linux receiver model.
struct LinuxRx {
    /// Our ISN and the sender's first data byte's sequence.
    irs: u32,
    rcv_nxt: u32,
    /// Out-of-order ranges, by start.
    ooo: BTreeMap<u32, u32>,
    /// SACK blocks by recency (most recent first).
    recent: Vec<(u32, u32)>,
    dsack: Option<(u32, u32)>,
    /// Full segments received since the last ACK.
    unacked: usize,
    /// ACK every this many in-order segments (2: Linux's default; more: GRO's stretch).
    stretch: usize,
    delack_at: Option<u64>,
    comp_at: Option<u64>,
    compressed: usize,
    dupacks_at_nxt: (u32, usize),
    ts_recent: u32,
    /// ACKs to send (reprs).
    out: Vec<TcpRepr>,
    /// Counters of what it saw.
    dup_segments: u64,
    sent_acks: u64,
}

impl LinuxRx {
    fn new(stretch: usize) -> Self {
        LinuxRx {
            irs: 0,
            rcv_nxt: 0,
            ooo: BTreeMap::new(),
            recent: Vec::new(),
            dsack: None,
            unacked: 0,
            stretch,
            delack_at: None,
            comp_at: None,
            compressed: 0,
            dupacks_at_nxt: (0, 0),
            ts_recent: 0,
            out: Vec::new(),
            dup_segments: 0,
            sent_acks: 0,
        }
    }

    fn delivered(&self) -> u64 {
        self.rcv_nxt.wrapping_sub(self.irs) as u64
    }

    fn base(&self, now: u64) -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 19,
            seq: PEER_ISS + 1,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: 32768, // << 7: 4 MiB
            timestamps: Some(((now / MS) as u32, self.ts_recent)),
            ..TcpRepr::default()
        }
    }

    fn ack_now(&mut self, now: u64) {
        let mut r = self.base(now);
        if let Some(d) = self.dsack.take() {
            r.sack[0] = d;
            r.sack_len = 1;
        }
        for &b in &self.recent {
            if r.sack_len == 3 {
                break;
            }
            r.sack[r.sack_len as usize] = b;
            r.sack_len += 1;
        }
        self.out.push(r);
        self.sent_acks += 1;
        self.unacked = 0;
        self.delack_at = None;
        self.comp_at = None;
        self.compressed = 0;
    }

    fn on_syn(&mut self, r: &TcpRepr, now: u64) {
        self.irs = r.seq.wrapping_add(1);
        self.rcv_nxt = self.irs;
        self.ts_recent = r.timestamps.map_or(0, |t| t.0);
        let mut s = self.base(now);
        s.seq = PEER_ISS;
        s.flags = Flags::SYN | Flags::ACK;
        s.window = 65535;
        s.mss = Some(MSS as u16 + 12);
        s.wscale = Some(7);
        s.sack_permitted = true;
        self.out.push(s);
    }

    fn on_data(&mut self, r: &TcpRepr, payload: &[u8], now: u64) {
        if let Some((tsval, _)) = r.timestamps {
            if !seqlt(r.seq, self.rcv_nxt) || r.seq == self.rcv_nxt {
                self.ts_recent = tsval;
            }
        }
        let start = r.seq;
        let end = r.seq.wrapping_add(payload.len() as u32);
        for (i, &b) in payload.iter().enumerate() {
            let off = start.wrapping_sub(self.irs) as u64 + i as u64;
            assert_eq!(b, pattern(off), "byte {off} corrupted");
        }
        if !seqlt(self.rcv_nxt, end) {
            // All old: a D-SACK, at once.
            self.dup_segments += 1;
            self.dsack = Some((start, end));
            self.ack_now(now);
            return;
        }
        if seqlt(self.rcv_nxt, start) {
            // Out of order.
            if self
                .ooo
                .iter()
                .any(|(&l, &e)| !seqlt(start, l) && !seqlt(e, end))
            {
                self.dup_segments += 1;
                self.dsack = Some((start, end));
            }
            self.add_ooo(start, end);
            self.ofo_ack(now);
            return;
        }
        // In order (possibly filling a hole).
        let before = self.rcv_nxt;
        self.rcv_nxt = end;
        let had_ooo = !self.ooo.is_empty();
        while let Some((&l, &e)) = self.ooo.iter().next() {
            if seqlt(self.rcv_nxt, l) {
                break;
            }
            self.ooo.remove(&l);
            if seqlt(self.rcv_nxt, e) {
                self.rcv_nxt = e;
            }
        }
        let nxt = self.rcv_nxt;
        self.recent.retain(|&(_, e)| seqlt(nxt, e));
        if had_ooo && self.ooo.is_empty() {
            // RFC 5681 4.2: a filled gap is acknowledged at once.
            self.ack_now(now);
            return;
        }
        if had_ooo {
            // Still holes: the ofo path (more than one segment advanced: at once).
            if self.rcv_nxt.wrapping_sub(before) as usize > MSS {
                self.ack_now(now);
            } else {
                self.ofo_ack(now);
            }
            return;
        }
        self.unacked += 1;
        if self.unacked >= self.stretch {
            self.ack_now(now);
        } else if self.delack_at.is_none() {
            self.delack_at = Some(now + 40 * MS);
        }
    }

    fn add_ooo(&mut self, mut l: u32, mut e: u32) {
        let keys: Vec<u32> = self.ooo.keys().copied().collect();
        for k in keys {
            let v = self.ooo[&k];
            if !seqlt(e, k) && !seqlt(v, l) {
                self.ooo.remove(&k);
                if seqlt(k, l) {
                    l = k;
                }
                if seqlt(e, v) {
                    e = v;
                }
            }
        }
        self.ooo.insert(l, e);
        self.recent.retain(|&(a, b)| seqlt(b, l) || seqlt(e, a));
        self.recent.insert(0, (l, e));
        self.recent.truncate(4);
    }

    /// `__tcp_ack_snd_check` with out-of-order data: three duplicates at once per
    /// `rcv_nxt`, then compressed (1 ms, or 44 segments).
    fn ofo_ack(&mut self, now: u64) {
        if self.dupacks_at_nxt.0 != self.rcv_nxt {
            self.dupacks_at_nxt = (self.rcv_nxt, 0);
        }
        if self.dupacks_at_nxt.1 < 3 || self.dsack.is_some() {
            self.dupacks_at_nxt.1 += 1;
            self.ack_now(now);
            return;
        }
        self.compressed += 1;
        if self.compressed >= 44 {
            self.ack_now(now);
        } else if self.comp_at.is_none() {
            self.comp_at = Some(now + MS);
        }
    }

    fn next_timer(&self) -> Option<u64> {
        match (self.delack_at, self.comp_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self, now: u64) {
        if self.delack_at.is_some_and(|t| t <= now) || self.comp_at.is_some_and(|t| t <= now) {
            self.ack_now(now);
        }
    }
}

fn seqlt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// What the forward link does to one data segment: its offset in the stream, its
/// length, and how many times that offset was sent before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    /// Deliver this much later than usual (reordering).
    Delay(u64),
}

/// A segment on the wire: (arrival time, order sent, towards Rouge, bytes).
type InFlight = (u64, u64, bool, Vec<u8>);

struct Sim {
    stack: TcpStack,
    h: ConnHandle,
    rx: LinuxRx,
    now: u64,
    /// One-way delay (ns).
    delay: u64,
    wire: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    written: u64,
    total: u64,
    sent_times: BTreeMap<u32, u32>,
    rng: Rng,
    ack_loss: f64,
    data_loss: f64,
    script: Box<dyn FnMut(u64, usize, u32) -> Fate>,
    buf: Vec<u8>,
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

impl Sim {
    fn new(total: u64, stretch: usize, seed: u64) -> Sim {
        Sim::with_cc(total, stretch, seed, CongestionAlgo::Cubic)
    }

    fn with_cc(total: u64, stretch: usize, seed: u64, congestion: CongestionAlgo) -> Sim {
        let profile = TcpProfile {
            mss: 1460,
            send_buffer: 512 * 1024,
            recv_buffer: 256 * 1024,
            congestion,
            ..TcpProfile::default()
        };
        let mut stack = TcpStack::new(StackConfig::default(), profile);
        let h = stack
            .connect(
                Instant::ZERO,
                addr(ROUGE, 19),
                addr(LINUX, 40000),
                ProfileId::DEFAULT,
            )
            .unwrap();
        Sim {
            stack,
            h,
            rx: LinuxRx::new(stretch),
            now: 0,
            delay: 50_000, // 100 µs RTT, as on the test bed
            wire: BinaryHeap::new(),
            order: 0,
            written: 0,
            total,
            sent_times: BTreeMap::new(),
            rng: Rng(seed | 1),
            ack_loss: 0.0,
            data_loss: 0.0,
            script: Box::new(|_, _, _| Fate::Deliver),
            buf: vec![0u8; 2048],
        }
    }

    fn put(&mut self, at: u64, to_rouge: bool, b: Vec<u8>) {
        self.order += 1;
        self.wire.push(Reverse((at, self.order, to_rouge, b)));
    }

    fn pump_stack(&mut self) {
        // The application: keep the send buffer full with the pattern.
        while self.written < self.total {
            let room = self.stack.send_capacity(self.h);
            if room == 0 {
                break;
            }
            let n = room
                .min((self.total - self.written) as usize)
                .min(64 * 1024);
            let chunk: Vec<u8> = (0..n as u64).map(|i| pattern(self.written + i)).collect();
            let w = self.stack.write(self.h, &chunk).unwrap_or(0);
            self.written += w as u64;
            if w == 0 {
                break;
            }
        }
        let now = Instant::from_nanos(self.now);
        while let Some(t) = self.stack.poll_transmit(now, &mut self.buf) {
            let seg = self.buf[..t.len].to_vec();
            let p = TcpPacket::new_checked(&seg[..]).unwrap();
            let r = TcpRepr::parse(&p).unwrap();
            let len = p.payload().len();
            let mut fate = Fate::Deliver;
            if len > 0 && self.rx.irs != 0 {
                let off = r.seq.wrapping_sub(self.rx.irs) as u64;
                let n = self.sent_times.entry(r.seq).or_insert(0);
                let times = *n;
                *n += 1;
                fate = (self.script)(off, len, times);
                if fate == Fate::Deliver && self.data_loss > 0.0 && self.rng.chance(self.data_loss)
                {
                    fate = Fate::Drop;
                }
            }
            match fate {
                Fate::Deliver => self.put(self.now + self.delay, false, seg),
                Fate::Delay(d) => self.put(self.now + self.delay + d, false, seg),
                Fate::Drop => {}
            }
        }
        while let Some(ev) = self.stack.poll_event() {
            if let Event::Reset(..) = ev {
                panic!("connection reset: {ev:?}");
            }
        }
    }

    fn pump_rx(&mut self) {
        for r in std::mem::take(&mut self.rx.out) {
            if r.flags.syn() || !self.rng.chance(self.ack_loss) || self.ack_loss == 0.0 {
                let mut b = vec![0u8; r.header_len()];
                r.emit(&mut b, IpAddr::V4(LINUX), IpAddr::V4(ROUGE))
                    .unwrap();
                self.put(self.now + self.delay, true, b);
            }
        }
    }

    /// Runs until every byte is delivered (or a virtual-time limit, which fails).
    fn run(&mut self, limit_s: u64) -> TcpCounters {
        self.pump_stack();
        // Until every byte is delivered and acknowledged and the wire is quiet.
        while self.rx.irs == 0
            || self.rx.delivered() < self.total
            || !self.wire.is_empty()
            || self
                .stack
                .connection(self.h)
                .is_some_and(|c| c.outstanding() > 0)
        {
            assert!(
                self.now < limit_s * 1_000_000_000,
                "stuck at {} of {} bytes: {:?}",
                self.rx.delivered(),
                self.total,
                self.stack.counters()
            );
            let next = [
                self.wire.peek().map(|Reverse(e)| e.0),
                self.stack.poll_timeout().map(|i| i.as_nanos()),
                self.rx.next_timer(),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something must be pending");
            self.now = self.now.max(next);
            let now = Instant::from_nanos(self.now);
            while self.wire.peek().is_some_and(|Reverse(e)| e.0 <= self.now) {
                let Reverse((_, _, to_rouge, b)) = self.wire.pop().unwrap();
                if to_rouge {
                    self.stack
                        .handle_segment(now, IpAddr::V4(LINUX), IpAddr::V4(ROUGE), &b);
                } else {
                    let p = TcpPacket::new_checked(&b[..]).unwrap();
                    let r = TcpRepr::parse(&p).unwrap();
                    if r.flags.syn() {
                        self.rx.on_syn(&r, self.now);
                    } else if !p.payload().is_empty() {
                        self.rx.on_data(&r, p.payload(), self.now);
                    }
                }
            }
            self.rx.on_timer(self.now);
            self.stack.handle_timeout(now);
            self.pump_rx();
            self.pump_stack();
        }
        self.stack.counters().clone()
    }
}

fn seg_off(n: u64) -> u64 {
    n * MSS as u64
}

#[test]
fn single_loss_is_repaired_by_fast_recovery() {
    let mut sim = Sim::new(4 << 20, 2, 1);
    sim.script = Box::new(|off, _, times| {
        if off == seg_off(1000) && times == 0 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let c = sim.run(30);
    assert_eq!(
        (c.fast_recoveries, c.retransmits, c.timeouts),
        (1, 1, 0),
        "{c:?}"
    );
}

#[test]
fn burst_loss_is_repaired_in_one_episode() {
    let mut sim = Sim::new(4 << 20, 2, 2);
    sim.script = Box::new(|off, _, times| {
        if (seg_off(1000)..seg_off(1008)).contains(&off) && times == 0 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let c = sim.run(30);
    assert_eq!(
        (c.fast_recoveries, c.retransmits_fast, c.timeouts),
        (1, 8, 0),
        "{c:?}"
    );
}

#[test]
fn a_lost_retransmission_is_resent_without_a_timeout() {
    let mut sim = Sim::new(4 << 20, 2, 3);
    sim.script = Box::new(|off, _, times| {
        if off == seg_off(1000) && times < 2 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let c = sim.run(30);
    assert_eq!(c.timeouts, 0, "{c:?}");
    assert!(c.lost_retransmits >= 1, "{c:?}");
    assert_eq!(c.retransmits, 2, "{c:?}");
}

#[test]
fn a_lost_tail_is_repaired_by_a_probe_without_a_timeout() {
    // A whole number of segments, the last three lost: the probe resends the last.
    let total = 1500 * MSS as u64;
    let mut sim = Sim::new(total, 2, 4);
    sim.script = Box::new(move |off, _, times| {
        if off + 3 * MSS as u64 >= total && times == 0 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let c = sim.run(30);
    assert_eq!(c.timeouts, 0, "{c:?}");
    assert_eq!((c.tlp_probes, c.retransmits_tlp), (1, 1), "{c:?}");
    assert_eq!((c.fast_recoveries, c.retransmits_fast), (1, 2), "{c:?}");
}

#[test]
fn reordering_mistaken_for_loss_is_undone_by_dsack() {
    let mut sim = Sim::new(4 << 20, 2, 5);
    // Segment 1000 arrives 3 ms late (30 RTTs): taken for lost, resent, then both arrive.
    sim.script = Box::new(|off, _, times| {
        if off == seg_off(1000) && times == 0 {
            Fate::Delay(3 * MS)
        } else {
            Fate::Deliver
        }
    });
    let c = sim.run(30);
    assert_eq!(c.timeouts, 0, "{c:?}");
    assert_eq!((c.spurious_retransmits, c.undos), (1, 1), "{c:?}");
    assert!(sim.rx.dup_segments >= 1);
}

#[test]
fn lost_acks_alone_never_cause_a_timeout() {
    let mut sim = Sim::new(4 << 20, 2, 6);
    sim.ack_loss = 0.3;
    let c = sim.run(60);
    assert_eq!(c.timeouts, 0, "{c:?}");
    assert_eq!(c.fast_recoveries, 0, "nothing was lost: {c:?}");
}

fn random_loss(loss: f64, stretch: usize, seed: u64) -> TcpCounters {
    let mut sim = Sim::new(16 << 20, stretch, seed);
    sim.data_loss = loss;
    sim.ack_loss = loss;
    let c = sim.run(600);
    eprintln!(
        "{:.1} % loss, ACK every {stretch}: {} episodes, {} fast/RACK, {} TLP, {} RTO retransmits, {} RTOs, {} lost retransmits, {} undos, {:.3} s virtual",
        loss * 100.0,
        c.fast_recoveries,
        c.retransmits_fast,
        c.retransmits_tlp,
        c.retransmits_rto,
        c.timeouts,
        c.lost_retransmits,
        c.undos,
        sim.now as f64 / 1e9
    );
    assert!(c.fast_recoveries > 0, "{c:?}");
    c
}

#[test]
fn random_loss_is_recovered_by_fast_recovery_not_timeouts() {
    // (loss each way, ACK every n segments, seed, most RTOs per 100 recovery episodes)
    for (loss, stretch, seed, per_100) in [
        (0.005, 2, 11, 1),
        (0.02, 2, 12, 1),
        (0.05, 2, 13, 1),
        (0.02, 8, 14, 2),
    ] {
        let c = random_loss(loss, stretch, seed);
        // Timeouts are for when everything in flight is lost, ACKs included: rare.
        // At 5 % each way the window is a few segments, so that happens now and then.
        assert!(
            c.timeouts * 100 <= c.fast_recoveries * per_100,
            "{} % loss: {} RTOs for {} recoveries: {c:?}",
            loss * 100.0,
            c.timeouts,
            c.fast_recoveries
        );
        assert!(
            c.retransmits_rto * 10 <= c.retransmits_fast,
            "{} % loss: most retransmissions by fast recovery: {c:?}",
            loss * 100.0
        );
    }
}

#[test]
fn receiver_model_acks_like_linux() {
    // The model itself: a delayed ACK every second segment, the first three
    // out-of-order segments answered at once, then one compressed ACK.
    let mut rx = LinuxRx::new(2);
    let syn = TcpRepr {
        seq: 99,
        flags: Flags::SYN,
        ..TcpRepr::default()
    };
    rx.on_syn(&syn, 0);
    rx.out.clear();
    let d = |s: u32| TcpRepr {
        seq: 100 + s * MSS as u32,
        flags: Flags::ACK,
        ..TcpRepr::default()
    };
    let data: Vec<u8> = (0..MSS as u64).map(pattern).collect();
    rx.on_data(&d(0), &data, 0);
    assert!(rx.out.is_empty());
    let second: Vec<u8> = (MSS as u64..2 * MSS as u64).map(pattern).collect();
    rx.on_data(&d(1), &second, 0);
    assert_eq!(rx.out.len(), 1);
    rx.out.clear();
    for s in 3..9u32 {
        let p: Vec<u8> = (s as u64 * MSS as u64..(s as u64 + 1) * MSS as u64)
            .map(pattern)
            .collect();
        rx.on_data(&d(s), &p, 0);
    }
    assert_eq!(rx.out.len(), 3, "three duplicates at once, then compressed");
    assert_eq!(rx.out[2].sack_blocks().len(), 1);
    rx.on_timer(MS);
    assert_eq!(rx.out.len(), 4);
}

/// BBR against the Linux receiver model (delayed, stretched and compressed ACKs, lost
/// ACKs) at 2 % and 5 % random loss each way: every byte arrives, recovery is by RACK
/// and fast recovery rather than timeouts, and it is paced.
#[test]
fn bbr_recovers_random_loss_against_the_linux_receiver() {
    for (loss, stretch, seed) in [(0.02, 2, 21), (0.05, 2, 22), (0.05, 8, 23)] {
        let mut sim = Sim::with_cc(16 << 20, stretch, seed, CongestionAlgo::Bbr);
        sim.data_loss = loss;
        sim.ack_loss = loss;
        let c = sim.run(600);
        let bbr_secs = sim.now as f64 / 1e9;
        eprintln!(
            "BBR {:.0} % loss, ACK every {stretch}: {} episodes, {} fast, {} TLP, {} RTOs, {} pacing waits, {bbr_secs:.3} s virtual",
            loss * 100.0,
            c.fast_recoveries,
            c.retransmits_fast,
            c.retransmits_tlp,
            c.timeouts,
            c.pacing_waits,
        );
        assert_eq!(sim.rx.delivered(), 16 << 20);
        assert!(c.pacing_waits > 0, "{c:?}");
        // BBR keeps its flight through recovery, so its episodes are few and long:
        // timeouts are counted against the losses repaired, not the episodes.
        assert!(c.timeouts * 50 <= c.retransmits_fast, "{c:?}");
        assert!(c.retransmits_rto * 10 <= c.retransmits_fast, "{c:?}");
        eprintln!("{c:?}");
    }
}
