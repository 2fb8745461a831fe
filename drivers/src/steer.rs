//! The Toeplitz hash that NICs use for receive-side scaling (RSS), as a pure function,
//! with the standard key and a symmetric one.
//!
//! A NIC computes `toeplitz(key, input)` over a frame's addresses and ports and picks
//! the receive queue from the low bits of the result (through its indirection table).
//! Software that must agree with the NIC (choosing a source port so that the replies of
//! a new connection land on the worker that opened it, as mTCP and F-Stack do) computes
//! the same hash with the same key.
//!
//! With [`SYMMETRIC_RSS_KEY`] (`0x6d5a` repeated) the key is periodic with a period of
//! 16 bits, and every field of the input (32-bit IPv4 addresses, 128-bit IPv6
//! addresses, 16-bit ports) starts at a multiple of 16 bits, so swapping source and
//! destination does not change the hash: both directions of a flow reach one queue.
//!
//! The input layouts are Microsoft's: source address, destination address, then (for
//! the TCP/UDP variants) source port and destination port, all in network byte order.
//!
//! [`Steering`] is the description a port driver gives of how it spreads received
//! frames over workers: which worker a flow's packets reach and, for a chosen local
//! address, which local ports bring a connection's replies back to a given worker. The
//! data plane chooses source ports with it (SNAT, health monitors, proxy connections)
//! and never needs to know which driver it runs on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

/// How a port driver spreads received frames over the workers (worker `i` owns the
/// `i`-th socket of a fanout group, or receive queue `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// The driver does not say where a frame goes (a single worker, or a spread no
    /// software can predict): every worker accepts every local port.
    Opaque,
    /// AF_PACKET's classic BPF fanout program (`afpacket::steer_by_flow_program`):
    /// `(src ^ dst ^ sport ^ dport) % workers` over an IPv4 TCP/UDP packet's addresses
    /// (big-endian words) and ports; everything else (IPv6, other protocols, non-first
    /// fragments) reaches worker 0. See [`fanout_xor`].
    FanoutXor {
        /// Sockets in the fanout group (at least 1).
        workers: u32,
    },
    /// Receive-side scaling with the Toeplitz hash under [`SYMMETRIC_RSS_KEY`] over the
    /// 4-tuple, an indirection table of `reta_size` entries filled round robin over
    /// `queues` receive queues: queue `(hash % reta_size) % queues` (as F-Stack's
    /// `ff_rss_check`). For AF_XDP and DPDK ports whose NIC is programmed so.
    SymmetricRss {
        /// Receive queues, one per worker (at least 1).
        queues: u32,
        /// Entries of the NIC's redirection table (at least 1).
        reta_size: u32,
    },
}

/// The AF_PACKET fanout formula: the worker of `n_workers` that an IPv4 TCP/UDP packet
/// reaches, `(src ^ dst ^ sport ^ dport) % n_workers` with the addresses read as
/// big-endian words. Symmetric: both directions of an un-translated flow agree.
/// `n_workers` of 0 counts as 1.
#[inline]
pub fn fanout_xor(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, n_workers: u32) -> u32 {
    (u32::from_be_bytes(src) ^ u32::from_be_bytes(dst) ^ sport as u32 ^ dport as u32)
        % n_workers.max(1)
}

/// [`fanout_xor`] over a whole Ethernet frame, exactly as the AF_PACKET fanout program
/// (`afpacket::steer_by_flow_program`) computes it in the kernel, for drivers that
/// cannot run that program and hand frames to their owner in software instead: for an
/// IPv4 TCP or UDP frame (optionally behind one 802.1Q tag) that is not a later
/// fragment, `(src ^ dst ^ sport ^ dport) % n_workers`; for everything else (ARP,
/// IPv6, other protocols, later fragments, frames too short to hold the fields) 0.
/// Like the program, the IP header length is taken as written, unchecked (a malformed
/// packet is dropped by whichever worker gets it).
#[inline]
pub fn fanout_xor_frame(frame: &[u8], n_workers: u32) -> u32 {
    let ethertype = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let l3 = match ethertype(12) {
        Some(0x8100) if ethertype(16) == Some(0x0800) => 18,
        Some(0x0800) => 14,
        _ => return 0,
    };
    let Some(ip) = frame.get(l3..) else {
        return 0;
    };
    let word = |at: usize| ip.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
    let half = |at: usize| ip.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match ip.get(9) {
        Some(6 | 17) => {}
        _ => return 0,
    }
    match half(6) {
        Some(f) if f & 0x1fff == 0 => {}
        _ => return 0,
    }
    let (Some(src), Some(dst)) = (word(12), word(16)) else {
        return 0;
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    match (half(ihl), half(ihl + 2)) {
        (Some(sport), Some(dport)) => fanout_xor(src, dst, sport, dport, n_workers),
        _ => 0,
    }
}

impl Steering {
    /// Workers the frames are spread over (`None` when the driver does not say).
    pub fn workers(&self) -> Option<usize> {
        match *self {
            Steering::Opaque => None,
            Steering::FanoutXor { workers } => Some(workers.max(1) as usize),
            Steering::SymmetricRss { queues, .. } => Some(queues.max(1) as usize),
        }
    }

    /// The worker that a TCP or UDP packet from `src` to `dst` reaches, `None` when
    /// the driver does not say. Mixed address families reach worker 0.
    pub fn worker(&self, src: SocketAddr, dst: SocketAddr) -> Option<usize> {
        match *self {
            Steering::Opaque => None,
            Steering::FanoutXor { workers } => Some(match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    fanout_xor(s.octets(), d.octets(), src.port(), dst.port(), workers) as usize
                }
                _ => 0,
            }),
            Steering::SymmetricRss { queues, reta_size } => {
                let k = &SYMMETRIC_RSS_KEY;
                let hash = match (src.ip(), dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        hash_ipv4_ports(k, s, d, src.port(), dst.port())
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        hash_ipv6_ports(k, s, d, src.port(), dst.port())
                    }
                    _ => return Some(0),
                };
                Some(((hash % reta_size.max(1)) % queues.max(1)) as usize)
            }
        }
    }

    /// True when the replies of a connection from `local` to `remote` (packets from
    /// `remote` to `local`) reach `worker`; always true when the driver does not say.
    pub fn replies_reach(&self, local: SocketAddr, remote: SocketAddr, worker: usize) -> bool {
        self.worker(remote, local).is_none_or(|w| w == worker)
    }

    /// The ports of `range`, in order, that bring the replies of a connection from
    /// `local_ip` to `remote` back to `worker`.
    pub fn reply_ports(
        self,
        local_ip: IpAddr,
        remote: SocketAddr,
        worker: usize,
        range: RangeInclusive<u16>,
    ) -> impl Iterator<Item = u16> {
        range.filter(move |&p| self.replies_reach(SocketAddr::new(local_ip, p), remote, worker))
    }
}

/// The 40-byte key of Microsoft's RSS specification, the default of most NICs.
pub const MS_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// A 40-byte symmetric key: `0x6d5a` repeated (Woo and Park, "Scalable TCP Session
/// Monitoring with Symmetric Receive-side Scaling"). Both directions of a flow hash
/// the same.
pub const SYMMETRIC_RSS_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The Toeplitz hash of `input` under `key`. For every set bit `i` of the input (most
/// significant bit of the first byte first), the 32 key bits starting at bit `i` are
/// XORed into the result. Key bits past the end of `key` count as zero, so the key
/// should be at least `input.len() + 4` bytes long (40 bytes covers IPv6 with ports).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |p: usize| -> u32 {
        key.get(p / 8)
            .map_or(0, |&b| u32::from(b >> (7 - p % 8)) & 1)
    };
    // The window of 32 key bits aligned with the current input bit.
    let mut window = (0..32).fold(0u32, |w, p| (w << 1) | key_bit(p));
    let mut hash = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                hash ^= window;
            }
            window = (window << 1) | key_bit(32 + i * 8 + b);
        }
    }
    hash
}

/// Hash of an IPv4 address pair (the NIC's `IPV4` hash type).
pub fn hash_ipv4(key: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    let mut input = [0u8; 8];
    input[..4].copy_from_slice(&src.octets());
    input[4..].copy_from_slice(&dst.octets());
    toeplitz(key, &input)
}

/// Hash of an IPv4 TCP or UDP 4-tuple (`IPV4_TCP` / `IPV4_UDP`).
pub fn hash_ipv4_ports(key: &[u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input)
}

/// Hash of an IPv6 address pair (`IPV6`).
pub fn hash_ipv6(key: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
    let mut input = [0u8; 32];
    input[..16].copy_from_slice(&src.octets());
    input[16..].copy_from_slice(&dst.octets());
    toeplitz(key, &input)
}

/// Hash of an IPv6 TCP or UDP 4-tuple (`IPV6_TCP` / `IPV6_UDP`).
pub fn hash_ipv6_ports(key: &[u8], src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; 36];
    input[..16].copy_from_slice(&src.octets());
    input[16..32].copy_from_slice(&dst.octets());
    input[32..34].copy_from_slice(&sport.to_be_bytes());
    input[34..].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Microsoft's "Verifying the RSS Hash Calculation": (destination, destination
    /// port, source, source port, IPv4 hash, IPv4 with TCP hash).
    const MS_IPV4: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    /// The same suite's IPv6 part.
    const MS_IPV6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:3::1",
            1766,
            "3ffe:2501:200:1fff::7",
            2794,
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            "ff02::1",
            4739,
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            "fe80::200:f8ff:fe21:67cf",
            38024,
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    #[test]
    fn microsoft_ipv4_verification_suite() {
        for (dst, dport, src, sport, ip, tcp) in MS_IPV4 {
            assert_eq!(
                hash_ipv4(&MS_RSS_KEY, v4(src), v4(dst)),
                ip,
                "{src} -> {dst}"
            );
            assert_eq!(
                hash_ipv4_ports(&MS_RSS_KEY, v4(src), v4(dst), sport, dport),
                tcp,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn microsoft_ipv6_verification_suite() {
        for (dst, dport, src, sport, ip, tcp) in MS_IPV6 {
            assert_eq!(
                hash_ipv6(&MS_RSS_KEY, v6(src), v6(dst)),
                ip,
                "{src} -> {dst}"
            );
            assert_eq!(
                hash_ipv6_ports(&MS_RSS_KEY, v6(src), v6(dst), sport, dport),
                tcp,
                "[{src}]:{sport} -> [{dst}]:{dport}"
            );
        }
    }

    /// A small deterministic generator for many test tuples.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 16
    }

    #[test]
    fn the_symmetric_key_hashes_both_directions_of_a_flow_the_same() {
        assert_eq!(&SYMMETRIC_RSS_KEY[..4], &[0x6d, 0x5a, 0x6d, 0x5a]);
        let mut s = 17;
        for _ in 0..2000 {
            let (a, b) = (
                Ipv4Addr::from(lcg(&mut s) as u32),
                Ipv4Addr::from(lcg(&mut s) as u32),
            );
            let (p, q) = (lcg(&mut s) as u16, lcg(&mut s) as u16);
            let k = &SYMMETRIC_RSS_KEY;
            assert_eq!(hash_ipv4(k, a, b), hash_ipv4(k, b, a));
            assert_eq!(
                hash_ipv4_ports(k, a, b, p, q),
                hash_ipv4_ports(k, b, a, q, p)
            );
            let (c, d) = (
                Ipv6Addr::from(u128::from(lcg(&mut s)) << 64 | u128::from(lcg(&mut s))),
                Ipv6Addr::from(u128::from(lcg(&mut s)) << 64 | u128::from(lcg(&mut s))),
            );
            assert_eq!(hash_ipv6(k, c, d), hash_ipv6(k, d, c));
            assert_eq!(
                hash_ipv6_ports(k, c, d, p, q),
                hash_ipv6_ports(k, d, c, q, p)
            );
        }
    }

    #[test]
    fn the_standard_key_is_not_symmetric_and_the_symmetric_key_still_spreads() {
        let (a, b) = (v4("198.18.0.1"), v4("198.18.1.2"));
        assert_ne!(
            hash_ipv4_ports(&MS_RSS_KEY, a, b, 40000, 80),
            hash_ipv4_ports(&MS_RSS_KEY, b, a, 80, 40000)
        );
        // Source ports 1024..3072 of one client to one server spread over 8 queues
        // (the low 3 bits) with every queue used and none holding twice its share.
        let mut queues = [0u32; 8];
        for port in 1024..3072u16 {
            let h = hash_ipv4_ports(&SYMMETRIC_RSS_KEY, a, b, port, 80);
            queues[(h & 7) as usize] += 1;
        }
        assert!(
            queues.iter().all(|&n| n > 0 && n < 2 * 2048 / 8),
            "{queues:?}"
        );
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn steering_descriptions_agree_with_their_formulas() {
        let (c, v) = (sock("198.18.1.7:40001"), sock("198.18.1.100:80"));
        let x = Steering::FanoutXor { workers: 3 };
        let want = fanout_xor([198, 18, 1, 7], [198, 18, 1, 100], 40001, 80, 3) as usize;
        assert_eq!(x.worker(c, v), Some(want));
        assert_eq!(x.worker(v, c), Some(want), "symmetric");
        assert_eq!(
            x.worker(sock("[2001:2::1]:1"), sock("[2001:2::2]:2")),
            Some(0)
        );
        let r = Steering::SymmetricRss {
            queues: 3,
            reta_size: 128,
        };
        let h = hash_ipv4_ports(
            &SYMMETRIC_RSS_KEY,
            v4("198.18.1.7"),
            v4("198.18.1.100"),
            40001,
            80,
        );
        assert_eq!(r.worker(c, v), Some(((h % 128) % 3) as usize));
        assert_eq!(r.worker(v, c), r.worker(c, v), "symmetric");
        let (a, b) = (sock("[2001:2::1]:443"), sock("[2001:2::9]:50000"));
        assert_eq!(r.worker(a, b), r.worker(b, a));
        assert_eq!(Steering::Opaque.worker(c, v), None);
        assert!(Steering::Opaque.replies_reach(c, v, 5));
        assert_eq!(x.workers(), Some(3));
        assert_eq!(r.workers(), Some(3));
        assert_eq!(Steering::Opaque.workers(), None);
    }

    #[test]
    fn reply_ports_bring_replies_back_and_cover_every_worker() {
        let local = IpAddr::V4(v4("198.18.2.1"));
        let member = sock("198.18.2.11:80");
        for s in [
            Steering::FanoutXor { workers: 4 },
            Steering::SymmetricRss {
                queues: 4,
                reta_size: 128,
            },
        ] {
            let mut total = 0;
            for w in 0..4 {
                let ports: Vec<u16> = s.reply_ports(local, member, w, 1024..=5119).collect();
                assert!(ports.len() > 4096 / 8, "{s:?} worker {w}: {}", ports.len());
                for &p in &ports {
                    assert_eq!(s.worker(member, SocketAddr::new(local, p)), Some(w));
                }
                total += ports.len();
            }
            assert_eq!(
                total, 4096,
                "{s:?}: every port belongs to exactly one worker"
            );
        }
    }

    #[test]
    fn a_short_key_counts_missing_bits_as_zero() {
        assert_eq!(toeplitz(&[], &[0xff; 4]), 0);
        assert_eq!(toeplitz(&[0x80, 0, 0, 0], &[0x80]), 0x8000_0000);
        assert_eq!(toeplitz(&[0x80, 0, 0, 0], &[0x40]), 0);
    }
}
