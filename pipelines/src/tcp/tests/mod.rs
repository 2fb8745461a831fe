//! Scripted segment-level tests, after smoltcp's `socket/tcp.rs`: `send!` one segment
//! at an explicit time, then `recv!` exactly the replies expected, or `recv_nothing!`.
//!
//! The stack under test is 198.18.1.1:80 (listening, or connecting from port 80); the
//! script plays the peer 198.18.1.2:40000.

mod bbr;
mod close;
mod data;
mod handshake;
mod recovery;
mod timers;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpPacket, TcpRepr};

pub const LOCAL: &str = "198.18.1.1:80";
pub const REMOTE: &str = "198.18.1.2:40000";
/// The peer's initial sequence number in every script.
pub const PEER_ISS: u32 = 10_000;

pub fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}
pub fn remote() -> SocketAddr {
    REMOTE.parse().unwrap()
}

pub fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A profile with predictable behaviour: no timestamps (their values are clock-based),
/// no delayed ACK, small buffers and MSS.
pub fn profile() -> TcpProfile {
    TcpProfile {
        mss: 1000,
        send_buffer: 8000,
        recv_buffer: 8000,
        nagle: false,
        delayed_ack: Duration::ZERO,
        congestion: CongestionAlgo::NewReno,
        initial_cwnd: 10,
        sack: false,
        timestamps: false,
        window_scaling: false,
        min_rto: Duration::from_millis(200),
        initial_rto: Duration::from_secs(1),
        ..TcpProfile::default()
    }
}

pub fn stack_with(p: TcpProfile) -> TcpStack {
    TcpStack::new(StackConfig::default(), p)
}

/// A segment from the peer to us (ports filled in).
pub fn seg(flags: Flags, seq: u32, ack: u32) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq,
        ack,
        flags,
        window: 8000,
        ..TcpRepr::default()
    }
}

pub fn encode(r: &TcpRepr, payload: &[u8], src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let hl = r.header_len();
    let mut b = vec![0u8; hl + payload.len()];
    b[hl..].copy_from_slice(payload);
    r.emit(&mut b, src, dst).unwrap();
    b
}

pub fn send_seg(s: &mut TcpStack, now: Instant, r: &TcpRepr, payload: &[u8]) {
    let b = encode(r, payload, remote().ip(), local().ip());
    s.handle_segment(now, remote().ip(), local().ip(), &b);
}

/// One segment the stack sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub repr: TcpRepr,
    pub payload: Vec<u8>,
}

impl Out {
    pub fn flags(&self) -> Flags {
        self.repr.flags
    }
}

/// Runs due timers, then drains every segment the stack wants to send at `now`.
pub fn recv_all(s: &mut TcpStack, now: Instant) -> Vec<Out> {
    s.handle_timeout(now);
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(tx) = s.poll_transmit(now, &mut buf) {
        assert_eq!((tx.src, tx.dst), (local().ip(), remote().ip()));
        let p = TcpPacket::new_checked(&buf[..tx.len]).unwrap();
        assert!(
            p.verify_checksum(tx.src, tx.dst),
            "checksum of sent segment"
        );
        out.push(Out {
            repr: TcpRepr::parse(&p).unwrap(),
            payload: p.payload().to_vec(),
        });
        assert!(out.len() < 1000, "runaway output");
    }
    out
}

pub fn events(s: &mut TcpStack) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// `send!(stack, time_ms, repr)` or `send!(stack, time_ms, repr, payload)`.
macro_rules! send {
    ($s:expr, $t:expr, $r:expr) => {
        $crate::tcp::tests::send_seg(&mut $s, $crate::tcp::tests::t($t), &$r, &[])
    };
    ($s:expr, $t:expr, $r:expr, $p:expr) => {
        $crate::tcp::tests::send_seg(&mut $s, $crate::tcp::tests::t($t), &$r, $p)
    };
}

/// `recv!(stack, time_ms, [(flags, seq, ack, payload_len), ...])`: exactly these.
macro_rules! recv {
    ($s:expr, $t:expr, [$(($f:expr, $seq:expr, $ack:expr, $len:expr)),* $(,)?]) => {{
        let got = $crate::tcp::tests::recv_all(&mut $s, $crate::tcp::tests::t($t));
        let want: Vec<(Flags, u32, u32, usize)> = vec![$(($f, $seq, $ack, $len)),*];
        let have: Vec<(Flags, u32, u32, usize)> = got
            .iter()
            .map(|o| (o.repr.flags, o.repr.seq, if o.repr.flags.ack() { o.repr.ack } else { 0 }, o.payload.len()))
            .collect();
        assert_eq!(have, want, "segments sent at {} ms", $t);
        got
    }};
}

/// `recv_nothing!(stack, time_ms)`.
macro_rules! recv_nothing {
    ($s:expr, $t:expr) => {{
        let got = $crate::tcp::tests::recv_all(&mut $s, $crate::tcp::tests::t($t));
        assert!(
            got.is_empty(),
            "expected nothing at {} ms, got {:?}",
            $t,
            got
        );
    }};
}

pub(crate) use {recv, recv_nothing, send};

pub const SYN: Flags = Flags::SYN;
pub const ACK: Flags = Flags::ACK;
pub const SYNACK: Flags = Flags(Flags::SYN.0 | Flags::ACK.0);
pub const FINACK: Flags = Flags(Flags::FIN.0 | Flags::ACK.0);
pub const PSHACK: Flags = Flags(Flags::PSH.0 | Flags::ACK.0);
pub const RST: Flags = Flags::RST;
pub const RSTACK: Flags = Flags(Flags::RST.0 | Flags::ACK.0);

/// A stack listening on LOCAL with the scripted peer's connection established and
/// accepted. Returns the stack, the handle and our ISN.
pub fn established_with(p: TcpProfile, syn: TcpRepr) -> (TcpStack, ConnHandle, u32) {
    let mut s = stack_with(p);
    let l = s.listen(local(), 16, ProfileId::DEFAULT).unwrap();
    send!(s, 0, syn);
    let out = recv_all(&mut s, t(0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags(), SYNACK);
    let iss = out[0].repr.seq;
    send!(s, 1, seg(ACK, PEER_ISS + 1, iss.wrapping_add(1)));
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    let h = s.accept(l).unwrap();
    assert_eq!(s.state(h), Some(State::Established));
    (s, h, iss)
}

/// `established_with` for the test profile and a plain SYN announcing MSS 1000.
pub fn established() -> (TcpStack, ConnHandle, u32) {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    established_with(profile(), syn)
}

#[test]
fn idle_connection_state_is_at_most_1_kib() {
    let size = std::mem::size_of::<Connection>();
    println!("size_of::<Connection>() = {size} bytes (buffers excluded)");
    assert!(size <= 1024, "Connection is {size} bytes");
}

/// Random segments (random flags, options, sequence numbers near and far from the
/// window, payloads) into a listener and an established connection: nothing panics and
/// the stack keeps its invariants.
#[test]
fn random_segments_never_panic() {
    // ROUGE_TCP_SEED=n replays another run.
    let seed: u64 = std::env::var("ROUGE_TCP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut x: u64 = 0x1234_5678_9abc_def1 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20 {
        let mut p = profile();
        p.sack = round % 2 == 0;
        p.timestamps = round % 3 == 0;
        p.window_scaling = round % 4 == 0;
        let mut syn = seg(SYN, PEER_ISS, 0);
        syn.mss = Some(1000);
        syn.sack_permitted = true;
        syn.timestamps = Some((1, 0));
        syn.wscale = Some(3);
        let (mut s, h, iss) = established_with(p, syn);
        let _ = s.write(h, &[7u8; 3000]);
        let mut now = 10;
        for _ in 0..2000 {
            now += rnd() % 50;
            let near =
                |v: u64, base: u32| base.wrapping_add((v % 20_000) as u32).wrapping_sub(10_000);
            let mut r = seg(
                Flags((rnd() & 0x3f) as u8),
                near(rnd(), PEER_ISS),
                near(rnd(), iss),
            );
            r.window = rnd() as u16;
            if rnd() % 4 == 0 {
                r.timestamps = Some((rnd() as u32 % 1000, rnd() as u32));
            }
            if rnd() % 4 == 0 {
                let b = near(rnd(), iss);
                r.sack[0] = (b, b.wrapping_add((rnd() % 3000) as u32));
                r.sack_len = 1;
            }
            if rnd() % 8 == 0 {
                r.src_port = 40001; // not a connection: the listener answers
            }
            let len = (rnd() % 1200) as usize;
            let payload = vec![rnd() as u8; len];
            send_seg(&mut s, t(now), &r, &payload);
            // Sometimes bytes, not segments: garbage must be rejected cleanly.
            if rnd() % 16 == 0 {
                let junk: Vec<u8> = (0..(rnd() % 80)).map(|_| rnd() as u8).collect();
                s.handle_segment(t(now), remote().ip(), local().ip(), &junk);
            }
            recv_all(&mut s, t(now));
            while let Some(e) = s.poll_event() {
                if let Event::Readable(c) = e {
                    let _ = s.read(c, &mut [0u8; 4096]);
                }
            }
            if rnd() % 50 == 0 {
                let _ = s.write(h, &[1u8; 500]);
            }
        }
        assert!(s.connection_count() <= 2 + s.counters().passive_opens as usize);
    }
}
