//! Address and port rewriting with incremental checksum updates (RFC 1624), the
//! translation of ICMP and ICMPv6 errors that quote a translated packet, through the
//! [`crate::wire`] views, for IPv4 and IPv6 (the family of a packet is read from its
//! version field; a flow never changes family). SNAT ports come from [`crate::ports`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use crate::wire::checksum::{update16, update32};
use crate::wire::icmp::{self, IcmpPacket};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::{self, UdpPacket};

/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;

/// Length of a TCP header up to the end of its checksum field: a quoted TCP header
/// (in an ICMP error) shorter than this carries no checksum to update.
const TCP_CHECKSUM_END: usize = 18;

/// The L4 checksum field of a TCP or UDP header at the start of `l4`, when `l4` is
/// long enough to carry it.
#[inline]
fn l4_checksum(proto: u8, l4: &[u8]) -> Option<u16> {
    if proto == TCP {
        (l4.len() >= TCP_CHECKSUM_END).then(|| TcpPacket::new_unchecked(l4).checksum())
    } else {
        (l4.len() >= udp::HEADER_LEN).then(|| UdpPacket::new_unchecked(l4).checksum_field())
    }
}

/// The ports of a TCP or UDP header at the start of `l4` (at least four bytes).
#[inline]
fn l4_ports(proto: u8, l4: &[u8]) -> (u16, u16) {
    if proto == TCP {
        let t = TcpPacket::new_unchecked(l4);
        (t.src_port(), t.dst_port())
    } else {
        let u = UdpPacket::new_unchecked(l4);
        (u.src_port(), u.dst_port())
    }
}

/// Writes the ports and, when `csum` is set, the checksum of a TCP or UDP header at the
/// start of `l4`.
#[inline]
fn set_l4(proto: u8, l4: &mut [u8], sport: u16, dport: u16, csum: Option<u16>) {
    if proto == TCP {
        let mut t = TcpPacket::new_unchecked(l4);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        if let Some(c) = csum {
            t.set_checksum(c);
        }
    } else {
        let mut u = UdpPacket::new_unchecked(l4);
        u.set_src_port(sport);
        u.set_dst_port(dport);
        if let Some(c) = csum {
            u.set_checksum_field(c);
        }
    }
}

/// Rewrites the addresses of the IPv4 header at the start of `ip` (header checksum
/// updated) and returns `l4_csum` with the pseudo-header change folded in.
#[inline]
fn rewrite_addrs(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, l4_csum: Option<u16>) -> Option<u16> {
    let mut p = Ipv4Packet::new_unchecked(ip);
    let (os, od) = (u32::from(p.src()), u32::from(p.dst()));
    p.set_src(src);
    p.set_dst(dst);
    l4_csum.map(|c| update32(update32(c, os, u32::from(src)), od, u32::from(dst)))
}

/// Rewrites the addresses and ports of an IPv4 packet carrying (the start of) a TCP or
/// UDP header, updating every checksum present incrementally. A UDP checksum of 0
/// (none) stays 0; a missing checksum (a short quote) is left alone.
fn rewrite_with_ports(ip: &mut [u8], proto: u8, src: SocketAddrV4, dst: SocketAddrV4) {
    let hl = Ipv4Packet::new_unchecked(&*ip).header_len();
    let (head, l4) = ip.split_at_mut(hl);
    let old = l4_checksum(proto, l4);
    let skip = old.is_none_or(|c| proto == UDP && c == 0);
    let c = rewrite_addrs(head, *src.ip(), *dst.ip(), Some(old.unwrap_or(0))).unwrap_or(0);
    let (osp, odp) = l4_ports(proto, l4);
    let c = update16(update16(c, osp, src.port()), odp, dst.port());
    let c = if proto == UDP && c == 0 { 0xffff } else { c };
    set_l4(proto, l4, src.port(), dst.port(), (!skip).then_some(c));
}

/// Rewrites a TCP or UDP packet (`ip`: the IPv4 or IPv6 packet) to `src` → `dst`,
/// ports included when `ports` (false for non-first fragments, which carry no L4
/// header). Every checksum is updated incrementally; a UDP checksum of 0 (none) stays
/// 0. The caller has checked that the L4 header is present when `ports` is set.
/// Addresses of the other family than the packet's leave it unchanged.
pub fn rewrite(ip: &mut [u8], proto: u8, src: SocketAddr, dst: SocketAddr, ports: bool) {
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) if is_v4(ip) => {
            if ports {
                rewrite_with_ports(ip, proto, s, d);
            } else {
                rewrite_addrs(ip, *s.ip(), *d.ip(), None);
            }
        }
        (SocketAddr::V6(_), SocketAddr::V6(_)) if !is_v4(ip) => {
            let Some(l4_off) = l4_offset_v6(ip) else {
                return;
            };
            rewrite6(ip, proto, l4_off, src, dst, ports);
        }
        _ => {}
    }
}

fn is_v4(ip: &[u8]) -> bool {
    ip.first().is_some_and(|b| b >> 4 == 4)
}

/// Where the upper-layer header of an IPv6 packet (or quote) starts, from its start.
fn l4_offset_v6(ip: &[u8]) -> Option<usize> {
    if ip.len() < ipv6::HEADER_LEN {
        return None;
    }
    let p = Ipv6Packet::new_unchecked(ip);
    let up = ipv6::upper_layer(p.next_header(), &ip[ipv6::HEADER_LEN..]).ok()?;
    Some(ipv6::HEADER_LEN + up.offset)
}

/// Rewrites an IPv6 packet (or the quote of one) whose upper-layer header starts at
/// `l4_off`: addresses, and when `ports` the ports and the L4 checksum (which covers the
/// addresses through the pseudo header). A quote too short to carry the checksum has
/// its ports rewritten only.
fn rewrite6(
    ip: &mut [u8],
    proto: u8,
    l4_off: usize,
    src: SocketAddr,
    dst: SocketAddr,
    ports: bool,
) {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src.ip(), dst.ip()) else {
        return;
    };
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    let (os, od): (Ipv6Addr, Ipv6Addr) = (p.src(), p.dst());
    p.set_src(s);
    p.set_dst(d);
    if !ports || l4_off + 4 > ip.len() {
        return;
    }
    let l4 = &mut ip[l4_off..];
    let old = l4_checksum(proto, l4);
    let skip = old.is_none_or(|c| proto == UDP && c == 0);
    let c = ipv6::update_addr(ipv6::update_addr(old.unwrap_or(0), os, s), od, d);
    let (osp, odp) = l4_ports(proto, l4);
    let c = update16(update16(c, osp, src.port()), odp, dst.port());
    let c = if proto == UDP && c == 0 { 0xffff } else { c };
    set_l4(proto, l4, src.port(), dst.port(), (!skip).then_some(c));
}

/// Where the parts of an ICMP error that quotes a TCP/UDP packet lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// IP protocol of the quoted packet.
    pub proto: u8,
    /// Its source.
    pub src: SocketAddr,
    /// Its destination.
    pub dst: SocketAddr,
}

/// Parses the packet quoted by an ICMP destination-unreachable or time-exceeded error
/// (`icmp`: the ICMP message). `None` for other messages or a quote too short to carry
/// ports.
pub fn quoted(icmp: &[u8]) -> Option<Quoted> {
    if icmp.len() < icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN {
        return None;
    }
    let msg = IcmpPacket::new_unchecked(icmp);
    if !matches!(msg.msg_type(), icmp::DEST_UNREACHABLE | icmp::TIME_EXCEEDED) {
        return None;
    }
    // The quote is truncated by design, so its total length is not checked.
    let inner = Ipv4Packet::new_unchecked(&icmp[icmp::HEADER_LEN..]);
    if inner.version() != 4 {
        return None;
    }
    let ihl = inner.header_len();
    let proto = inner.protocol();
    let quote = &icmp[icmp::HEADER_LEN..];
    if ihl < ipv4::MIN_HEADER_LEN || quote.len() < ihl + 4 || !matches!(proto, TCP | UDP) {
        return None;
    }
    let (sport, dport) = l4_ports(proto, &quote[ihl..]);
    Some(Quoted {
        proto,
        src: SocketAddr::new(inner.src().into(), sport),
        dst: SocketAddr::new(inner.dst().into(), dport),
    })
}

/// Parses the packet quoted by an ICMPv6 error (destination unreachable, packet too
/// big, time exceeded, parameter problem; `icmp`: the ICMPv6 message), walking the
/// quote's extension headers. `None` for other messages, a quote of a later fragment,
/// or a quote too short to carry ports.
pub fn quoted6(icmp: &[u8]) -> Option<Quoted> {
    if icmp.len() < icmpv6::HEADER_LEN + ipv6::HEADER_LEN {
        return None;
    }
    if !matches!(
        icmp[0],
        icmpv6::DEST_UNREACHABLE
            | icmpv6::PACKET_TOO_BIG
            | icmpv6::TIME_EXCEEDED
            | icmpv6::PARAM_PROBLEM
    ) {
        return None;
    }
    let quote = &icmp[icmpv6::HEADER_LEN..];
    let inner = Ipv6Packet::new_unchecked(quote);
    if inner.version() != 6 {
        return None;
    }
    let up = ipv6::upper_layer(inner.next_header(), &quote[ipv6::HEADER_LEN..]).ok()?;
    if up.frag.is_some_and(|f| f.offset != 0) || !matches!(up.proto, TCP | UDP) {
        return None;
    }
    let l4 = quote.get(ipv6::HEADER_LEN + up.offset..)?;
    if l4.len() < 4 {
        return None;
    }
    let (sport, dport) = l4_ports(up.proto, l4);
    Some(Quoted {
        proto: up.proto,
        src: SocketAddr::new(inner.src().into(), sport),
        dst: SocketAddr::new(inner.dst().into(), dport),
    })
}

/// Translates an ICMP error in place: the outer header becomes `outer_src` →
/// `outer_dst`, the quoted packet becomes `in_src` → `in_dst` (ports included), with the
/// quoted IP checksum and, when quoted, the quoted TCP/UDP checksum updated, and the
/// ICMP checksum recomputed. `ip` is the outer IPv4 packet, already checked by
/// [`quoted`].
pub fn rewrite_icmp_error(
    ip: &mut [u8],
    outer_src: IpAddr,
    outer_dst: IpAddr,
    in_src: SocketAddr,
    in_dst: SocketAddr,
) {
    match (outer_src, outer_dst, in_src, in_dst) {
        (IpAddr::V4(os), IpAddr::V4(od), SocketAddr::V4(s), SocketAddr::V4(d)) if is_v4(ip) => {
            rewrite_icmp4_error(ip, os, od, s, d)
        }
        (IpAddr::V6(os), IpAddr::V6(od), SocketAddr::V6(_), SocketAddr::V6(_)) if !is_v4(ip) => {
            rewrite_icmp6_error(ip, os, od, in_src, in_dst)
        }
        _ => {}
    }
}

/// [`rewrite_icmp_error`] for ICMPv6: the outer addresses, the quoted packet's
/// addresses, ports and (when quoted) L4 checksum, then the ICMPv6 checksum over the
/// new pseudo header. `ip` was checked by [`quoted6`] (through the caller).
fn rewrite_icmp6_error(
    ip: &mut [u8],
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    in_src: SocketAddr,
    in_dst: SocketAddr,
) {
    let Some(icmp_off) = l4_offset_v6(ip) else {
        return;
    };
    let total = Ipv6Packet::new_unchecked(&*ip).total_len().min(ip.len());
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    p.set_src(outer_src);
    p.set_dst(outer_dst);
    if icmp_off + icmpv6::HEADER_LEN > total {
        return;
    }
    let msg = &mut ip[icmp_off..total];
    let inner = &mut msg[icmpv6::HEADER_LEN..];
    if let Some(l4_off) = l4_offset_v6(inner) {
        let proto = {
            let q = Ipv6Packet::new_unchecked(&*inner);
            ipv6::upper_layer(q.next_header(), &inner[ipv6::HEADER_LEN..]).map_or(0, |u| u.proto)
        };
        rewrite6(inner, proto, l4_off, in_src, in_dst, true);
    }
    Icmpv6Packet::new_unchecked(msg).fill_checksum(outer_src, outer_dst);
}

fn rewrite_icmp4_error(
    ip: &mut [u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    in_src: SocketAddrV4,
    in_dst: SocketAddrV4,
) {
    let outer = Ipv4Packet::new_unchecked(&*ip);
    let (hl, total) = (outer.header_len(), outer.total_len());
    rewrite_addrs(ip, outer_src, outer_dst, None);
    let end = total.min(ip.len());
    let mut msg = IcmpPacket::new_unchecked(&mut ip[hl..end]);
    let inner = msg.payload_mut();
    let proto = Ipv4Packet::new_unchecked(&*inner).protocol();
    rewrite_with_ports(inner, proto, in_src, in_dst);
    msg.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use crate::wire::ipv4::Ipv4Repr;
    use crate::wire::tcp::{Flags, TcpRepr};
    use std::net::IpAddr;

    /// An IPv4 packet from `src` to `dst` carrying a TCP segment (or a UDP datagram)
    /// with `payload`, every checksum right.
    fn packet(proto: u8, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        let l4 = if proto == TCP { 20 } else { 8 };
        let mut b = vec![0u8; 20 + l4 + payload.len()];
        Ipv4Repr {
            src: *src.ip(),
            dst: *dst.ip(),
            protocol: proto,
            payload_len: l4 + payload.len(),
            ttl: 64,
            ident: 7,
            dont_frag: true,
        }
        .emit(&mut b);
        b[20 + l4..].copy_from_slice(payload);
        if proto == TCP {
            let t = TcpRepr {
                src_port: src.port(),
                dst_port: dst.port(),
                seq: 0x0102_0304,
                ack: 0xa0b0_c0d0,
                flags: Flags::ACK | Flags::PSH,
                window: 1000,
                ..TcpRepr::default()
            };
            t.emit(&mut b[20..], IpAddr::V4(*src.ip()), IpAddr::V4(*dst.ip()));
        } else {
            udp::emit_v4(
                &mut b[20..],
                src.ip().octets(),
                dst.ip().octets(),
                src.port(),
                dst.port(),
                payload.len(),
            );
        }
        b
    }

    /// True when the IPv4 header and the TCP/UDP checksum of `b` verify.
    fn checksums_ok(proto: u8, b: &[u8]) -> bool {
        let Ok(ip) = Ipv4Packet::new_checked(b) else {
            return false;
        };
        let (s, d) = (ip.src(), ip.dst());
        if proto == TCP {
            TcpPacket::new_checked(ip.payload())
                .is_ok_and(|t| t.verify_checksum(IpAddr::V4(s), IpAddr::V4(d)))
        } else {
            UdpPacket::new_checked(ip.payload())
                .is_ok_and(|u| u.verify_checksum_v4(s.octets(), d.octets()))
        }
    }

    #[test]
    fn rewrite_keeps_every_checksum_right() {
        let (c, v) = (sa([198, 18, 1, 7], 40001), sa([198, 18, 1, 100], 80));
        let (snat, m) = (sa([198, 18, 2, 1], 2345), sa([198, 18, 2, 11], 8080));
        for proto in [TCP, UDP] {
            for payload in [&b""[..], b"x", b"hello, world", &[0xff; 33]] {
                let mut b = packet(proto, c, v, payload);
                assert!(checksums_ok(proto, &b));
                rewrite(&mut b, proto, snat.into(), m.into(), true);
                assert!(checksums_ok(proto, &b), "proto {proto} {payload:?}");
                assert_eq!(b, packet(proto, snat, m, payload), "as if built so");
            }
        }
        // No UDP checksum stays none.
        let mut b = packet(UDP, c, v, b"abc");
        b[26..28].copy_from_slice(&[0, 0]);
        rewrite(&mut b, UDP, snat.into(), m.into(), true);
        assert_eq!(&b[26..28], &[0, 0]);
        assert_eq!(l4_ports(UDP, &b[20..]), (snat.port(), m.port()));
        // Without ports only the addresses change.
        let mut b = packet(TCP, c, v, b"abc");
        rewrite(&mut b, TCP, snat.into(), m.into(), false);
        let ip = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (*snat.ip(), *m.ip()));
        assert_eq!(l4_ports(TCP, &b[20..]), (c.port(), v.port()));
    }

    #[test]
    fn icmp_errors_are_parsed_and_translated_with_their_quote() {
        let (c, v) = (sa([198, 18, 1, 7], 40001), sa([198, 18, 1, 100], 80));
        let (snat, m) = (sa([198, 18, 2, 1], 2345), sa([198, 18, 2, 11], 8080));
        let router = Ipv4Addr::new(198, 18, 2, 254);
        for (proto, quote_len) in [(TCP, 28), (TCP, 40), (UDP, 28)] {
            // The member side's packet SNAT -> member, quoted by a router's error.
            let inner = packet(proto, snat, m, b"payload bytes");
            let quote = &inner[..quote_len.min(inner.len())];
            let mut b = vec![0u8; 20 + 8 + quote.len()];
            Ipv4Repr {
                src: router,
                dst: *snat.ip(),
                protocol: ipv4::PROTO_ICMP,
                payload_len: 8 + quote.len(),
                ttl: 64,
                ident: 1,
                dont_frag: false,
            }
            .emit(&mut b);
            icmp::emit_error(
                &mut b[20..],
                icmp::DEST_UNREACHABLE,
                4,
                [0, 0, 5, 220],
                quote,
            );
            let q = quoted(&b[20..]).expect("a quote with ports");
            assert_eq!((q.proto, q.src, q.dst), (proto, snat.into(), m.into()));
            rewrite_icmp_error(
                &mut b,
                (*v.ip()).into(),
                (*c.ip()).into(),
                c.into(),
                v.into(),
            );
            let ip = Ipv4Packet::new_checked(&b[..]).expect("outer header checksum");
            assert_eq!((ip.src(), ip.dst()), (*v.ip(), *c.ip()));
            assert!(
                IcmpPacket::new_checked(ip.payload()).is_ok(),
                "ICMP checksum"
            );
            let q = quoted(ip.payload()).unwrap();
            assert_eq!((q.src, q.dst), (c.into(), v.into()));
            let inner = Ipv4Packet::new_unchecked(&ip.payload()[8..]);
            assert_eq!(
                checksum::checksum(inner.header()),
                0,
                "quoted header checksum"
            );
        }
        // Not an error, or too short a quote: nothing to translate.
        let mut b = vec![0u8; 8 + 20 + 3];
        b[0] = icmp::DEST_UNREACHABLE;
        b[8] = 0x45;
        b[8 + 9] = TCP;
        assert_eq!(quoted(&b), None);
        b[0] = icmp::ECHO_REQUEST;
        b.extend_from_slice(&[0; 8]);
        assert_eq!(quoted(&b), None);
    }

    fn sa(a: [u8; 4], p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), p)
    }
}
