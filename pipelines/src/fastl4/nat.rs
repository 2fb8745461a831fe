//! Address and port rewriting with incremental checksum updates (RFC 1624), the
//! translation of ICMP errors that quote a translated packet, and SNAT port choice
//! under the workers' steering formula.

use std::net::{Ipv4Addr, SocketAddrV4};

use rouge_drivers::afpacket::steer_flow;

use crate::wire::checksum::{self, update16, update32};

/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;

/// Offset of the L4 checksum field for `proto`.
#[inline]
fn l4_csum_off(proto: u8) -> usize {
    if proto == TCP {
        16
    } else {
        6
    }
}

#[inline]
fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

#[inline]
fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

#[inline]
fn wr16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the addresses of the IPv4 header at the start of `ip` (header checksum
/// updated) and returns the checksum delta folded into `l4_csum` for the pseudo header.
#[inline]
fn rewrite_addrs(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, l4_csum: Option<u16>) -> Option<u16> {
    let (os, od) = (rd32(ip, 12), rd32(ip, 16));
    let (ns, nd) = (u32::from(src), u32::from(dst));
    let c = update32(update32(rd16(ip, 10), os, ns), od, nd);
    wr16(ip, 10, c);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    l4_csum.map(|c| update32(update32(c, os, ns), od, nd))
}

/// Rewrites a TCP or UDP packet (`ip`: the IPv4 packet) to `src` → `dst`, ports
/// included when `ports` (false for non-first fragments, which carry no L4 header).
/// Both checksums are updated incrementally; a UDP checksum of 0 (none) stays 0.
/// The caller has checked that the L4 header is present when `ports` is set.
pub fn rewrite(ip: &mut [u8], proto: u8, src: SocketAddrV4, dst: SocketAddrV4, ports: bool) {
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    if !ports {
        rewrite_addrs(ip, *src.ip(), *dst.ip(), None);
        return;
    }
    let co = hl + l4_csum_off(proto);
    let old = rd16(ip, co);
    let skip = proto == UDP && old == 0;
    let c = rewrite_addrs(ip, *src.ip(), *dst.ip(), Some(old)).unwrap_or(old);
    let (osp, odp) = (rd16(ip, hl), rd16(ip, hl + 2));
    let c = update16(update16(c, osp, src.port()), odp, dst.port());
    wr16(ip, hl, src.port());
    wr16(ip, hl + 2, dst.port());
    if skip {
        return;
    }
    let c = if proto == UDP && c == 0 { 0xffff } else { c };
    wr16(ip, co, c);
}

/// Where the parts of an ICMP error that quotes a TCP/UDP packet lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// IP protocol of the quoted packet.
    pub proto: u8,
    /// Its source.
    pub src: SocketAddrV4,
    /// Its destination.
    pub dst: SocketAddrV4,
}

/// Parses the packet quoted by an ICMP destination-unreachable or time-exceeded error
/// (`icmp`: the ICMP message). `None` for other messages or a quote too short to carry
/// ports.
pub fn quoted(icmp: &[u8]) -> Option<Quoted> {
    if icmp.len() < 8 + 20 || !matches!(icmp[0], 3 | 11) {
        return None;
    }
    let inner = &icmp[8..];
    if inner[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((inner[0] & 0x0f) as usize) * 4;
    let proto = inner[9];
    if ihl < 20 || inner.len() < ihl + 4 || !matches!(proto, TCP | UDP) {
        return None;
    }
    let a = |o: usize| Ipv4Addr::from(rd32(inner, o));
    Some(Quoted {
        proto,
        src: SocketAddrV4::new(a(12), rd16(inner, ihl)),
        dst: SocketAddrV4::new(a(16), rd16(inner, ihl + 2)),
    })
}

/// Translates an ICMP error in place: the outer header becomes `outer_src` →
/// `outer_dst`, the quoted packet becomes `in_src` → `in_dst` (ports included), with the
/// quoted IP checksum and, when quoted, the quoted TCP/UDP checksum updated, and the
/// ICMP checksum recomputed. `ip` is the outer IPv4 packet, already checked by
/// [`quoted`].
pub fn rewrite_icmp_error(
    ip: &mut [u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    in_src: SocketAddrV4,
    in_dst: SocketAddrV4,
) {
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    let total = rd16(ip, 2) as usize;
    rewrite_addrs(ip, outer_src, outer_dst, None);
    let end = total.min(ip.len());
    let icmp = &mut ip[hl..end];
    {
        let inner = &mut icmp[8..];
        let ihl = ((inner[0] & 0x0f) as usize) * 4;
        let proto = inner[9];
        let co = ihl + l4_csum_off(proto);
        let has_csum = inner.len() >= co + 2;
        let old = if has_csum { rd16(inner, co) } else { 0 };
        let skip = !has_csum || (proto == UDP && old == 0);
        let c = rewrite_addrs(inner, *in_src.ip(), *in_dst.ip(), Some(old)).unwrap_or(old);
        let (osp, odp) = (rd16(inner, ihl), rd16(inner, ihl + 2));
        let c = update16(update16(c, osp, in_src.port()), odp, in_dst.port());
        wr16(inner, ihl, in_src.port());
        wr16(inner, ihl + 2, in_dst.port());
        if !skip {
            let c = if proto == UDP && c == 0 { 0xffff } else { c };
            wr16(inner, co, c);
        }
    }
    wr16(icmp, 2, 0);
    let c = checksum::checksum(icmp);
    wr16(icmp, 2, c);
}

/// A SNAT port in `min..=max` such that return packets from `server` to `snat:port`
/// are steered to `worker` of `workers` by [`steer_flow`], and `free(port)` holds (no
/// flow uses that server-side key). Starts at `*cursor` and moves it past the port
/// chosen. `None` when every port of the range is taken.
pub fn choose_port(
    server: SocketAddrV4,
    snat: Ipv4Addr,
    worker: usize,
    workers: usize,
    (min, max): (u16, u16),
    cursor: &mut u16,
    mut free: impl FnMut(u16) -> bool,
) -> Option<u16> {
    let n = workers.max(1) as u32;
    let span = (max as u32).saturating_sub(min as u32) + 1;
    let start = (*cursor as u32).saturating_sub(min as u32) % span;
    for i in 0..span {
        let port = (min as u32 + (start + i) % span) as u16;
        if steer_flow(server.ip().octets(), snat.octets(), server.port(), port, n) as usize
            != worker
        {
            continue;
        }
        if free(port) {
            *cursor = if port == max { min } else { port + 1 };
            return Some(port);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(a: [u8; 4], p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), p)
    }

    #[test]
    fn ports_follow_the_steering_formula() {
        for n in 1..=4usize {
            for w in 0..n {
                let mut cur = 1024;
                let mut seen = Vec::new();
                for _ in 0..50 {
                    let p = choose_port(
                        sa([198, 18, 2, 11], 80),
                        Ipv4Addr::new(198, 18, 2, 1),
                        w,
                        n,
                        (1024, 65535),
                        &mut cur,
                        |p| !seen.contains(&p),
                    )
                    .unwrap();
                    assert_eq!(
                        steer_flow([198, 18, 2, 11], [198, 18, 2, 1], 80, p, n as u32) as usize,
                        w
                    );
                    seen.push(p);
                }
            }
        }
    }

    #[test]
    fn exhaustion_is_reported() {
        let mut cur = 2000;
        let got = choose_port(
            sa([198, 18, 2, 11], 80),
            Ipv4Addr::new(198, 18, 2, 1),
            0,
            1,
            (2000, 2003),
            &mut cur,
            |p| p == 2003,
        );
        assert_eq!(got, Some(2003));
        assert_eq!(cur, 2000);
        let got = choose_port(
            sa([198, 18, 2, 11], 80),
            Ipv4Addr::new(198, 18, 2, 1),
            0,
            1,
            (2000, 2003),
            &mut cur,
            |_| false,
        );
        assert_eq!(got, None);
    }
}
