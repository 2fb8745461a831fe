//! IPv6 headers (RFC 8200): a checked view of the fixed header, a walk over extension
//! headers to the upper-layer protocol, in-place edits and header emission; the
//! address helpers Neighbour Discovery needs (solicited-node groups, their MACs, link-
//! local addresses from a MAC).
//!
//! IPv6 has no header checksum: edits change the bytes only, and the upper-layer
//! checksums (TCP, UDP, ICMPv6) cover the addresses through the pseudo header
//! ([`pseudo_header`]).

use std::net::Ipv6Addr;

use rouge_drivers::MacAddr;

use super::checksum;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Next header: hop-by-hop options (only directly after the fixed header).
pub const NH_HOP_BY_HOP: u8 = 0;
/// Next header: TCP.
pub const NH_TCP: u8 = 6;
/// Next header: UDP.
pub const NH_UDP: u8 = 17;
/// Next header: routing header.
pub const NH_ROUTING: u8 = 43;
/// Next header: fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Next header: ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Next header: no next header.
pub const NH_NONE: u8 = 59;
/// Next header: destination options.
pub const NH_DEST_OPTS: u8 = 60;
/// Length of a fragment header.
pub const FRAG_HEADER_LEN: usize = 8;
/// Most extension headers walked before a packet is refused (a chain this long is an
/// attack or a loop, not traffic).
pub const MAX_EXT_HEADERS: usize = 8;
/// The IPv6 minimum link MTU (RFC 8200 section 5): ICMPv6 errors never exceed it.
pub const MIN_MTU: usize = 1280;

mod field {
    use std::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Why an IPv6 packet was refused; each is a named drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Shorter than the fixed header.
    Truncated,
    /// Version field not 6.
    BadVersion,
    /// Payload length beyond the frame (or zero: jumbograms are not supported).
    BadPayloadLength,
}

/// Why the extension-header chain of a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtError {
    /// An extension header runs past the end of the packet.
    Truncated,
    /// More than [`MAX_EXT_HEADERS`] extension headers, or hop-by-hop options after
    /// the first position.
    Chain,
    /// A routing header with segments left (the appliance is no source-route hop).
    RoutingHeader,
}

/// A checked view of an IPv6 packet. The buffer may be longer than the packet
/// (Ethernet padding); [`Ipv6Packet::total_len`] is authoritative.
#[derive(Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Validates the version and that the payload length fits the buffer.
    pub fn new_checked(buf: T) -> Result<Self, Ipv6Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Ipv6Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Ipv6Error::BadVersion);
        }
        let pl = u16::from_be_bytes([b[4], b[5]]) as usize;
        if HEADER_LEN + pl > b.len() || (pl == 0 && b[field::NEXT_HEADER] == NH_HOP_BY_HOP) {
            return Err(Ipv6Error::BadPayloadLength);
        }
        Ok(Ipv6Packet { buf })
    }

    /// Wraps a buffer already checked (used after in-place edits), or a quoted header
    /// of at least [`HEADER_LEN`] bytes.
    pub fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }

    /// Version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[0] >> 4
    }

    /// Payload length field (extension headers and upper layer).
    pub fn payload_len(&self) -> usize {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[field::PAYLOAD_LEN.start], b[field::PAYLOAD_LEN.start + 1]]) as usize
    }

    /// Length of the whole packet: fixed header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        addr_at(self.buf.as_ref(), field::SRC.start)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        addr_at(self.buf.as_ref(), field::DST.start)
    }

    /// The payload after the fixed header (up to the payload length, excluding padding).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walks the extension headers to the upper layer (see [`upper_layer`]).
    pub fn upper_layer(&self) -> Result<UpperLayer, ExtError> {
        upper_layer(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Decrements the hop limit by one (saturating at zero).
    pub fn decrement_hop_limit(&mut self) {
        let b = self.buf.as_mut();
        b[field::HOP_LIMIT] = b[field::HOP_LIMIT].saturating_sub(1);
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address (upper-layer checksums are the caller's).
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address (upper-layer checksums are the caller's).
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// The payload after the fixed header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buf.as_mut()[HEADER_LEN..t]
    }
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// The fragment header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Fragment offset in units of 8 bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification (32 bits in IPv6).
    pub ident: u32,
}

/// Where the upper-layer header of a packet starts, after its extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol (6 TCP, 17 UDP, 58 ICMPv6, 59 none, …).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 payload (the bytes
    /// after the fixed header).
    pub offset: usize,
    /// The fragment header, if the packet carries one.
    pub frag: Option<FragInfo>,
}

/// Walks the extension headers of a payload whose first header is `next` (hop-by-hop,
/// routing, fragment and destination options are skipped; any other value is the
/// upper layer). A routing header with segments left is refused: the appliance is not
/// a source-route hop. Bounded by [`MAX_EXT_HEADERS`]. After a fragment header with a
/// non-zero offset the walk stops: the rest is not a header.
pub fn upper_layer(mut next: u8, payload: &[u8]) -> Result<UpperLayer, ExtError> {
    let mut off = 0usize;
    let mut frag = None;
    for i in 0..=MAX_EXT_HEADERS {
        match next {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_FRAGMENT => {
                if i == MAX_EXT_HEADERS || (next == NH_HOP_BY_HOP && i != 0) {
                    return Err(ExtError::Chain);
                }
                let h = payload.get(off..off + 8).ok_or(ExtError::Truncated)?;
                let len = if next == NH_FRAGMENT {
                    if frag.is_some() {
                        return Err(ExtError::Chain);
                    }
                    let v = u16::from_be_bytes([h[2], h[3]]);
                    let info = FragInfo {
                        offset: v >> 3,
                        more: v & 1 != 0,
                        ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    };
                    frag = Some(info);
                    FRAG_HEADER_LEN
                } else {
                    if next == NH_ROUTING && h[3] != 0 {
                        return Err(ExtError::RoutingHeader);
                    }
                    (h[1] as usize + 1) * 8
                };
                if off + len > payload.len() {
                    return Err(ExtError::Truncated);
                }
                next = h[0];
                off += len;
                if frag.is_some_and(|f| f.offset != 0) {
                    return Ok(UpperLayer {
                        proto: next,
                        offset: off,
                        frag,
                    });
                }
            }
            proto => {
                return Ok(UpperLayer {
                    proto,
                    offset: off,
                    frag,
                })
            }
        }
    }
    Err(ExtError::Chain)
}

/// Fields of a fixed header to emit (no extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header (the upper-layer protocol).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Writes the 40-byte fixed header at the start of `b` (traffic class and flow
    /// label zero).
    pub fn emit(&self, b: &mut [u8]) {
        b[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        b[field::PAYLOAD_LEN].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        b[field::NEXT_HEADER] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC].copy_from_slice(&self.src.octets());
        b[field::DST].copy_from_slice(&self.dst.octets());
    }
}

/// The IPv6 pseudo-header sum (RFC 8200 section 8.1) for an upper-layer packet of
/// `len` bytes and protocol `next_header`.
#[inline]
pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let acc = checksum::sum(0, &src.octets());
    let acc = checksum::sum(acc, &dst.octets());
    acc + next_header as u32 + (len as u32 & 0xffff) + (len as u32 >> 16)
}

/// Folds an address change into a checksum that covers it through the pseudo header
/// (RFC 1624, eight 16-bit words).
#[inline]
pub fn update_addr(mut csum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    let (o, n) = (old.segments(), new.segments());
    for i in 0..8 {
        if o[i] != n[i] {
            csum = checksum::update16(csum, o[i], n[i]);
        }
    }
    csum
}

/// The solicited-node multicast group of `a` (RFC 4291 section 2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast MAC of IPv6 group `a` (RFC 2464 section 7): 33:33 and the
/// group's last four bytes.
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The link-local address of an interface with `mac` (fe80::/64 and the modified
/// EUI-64 interface identifier, RFC 4291 appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// True for a link-local unicast address (fe80::/10).
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn sample(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        Ipv6Repr {
            src: a("2001:2:0:1::2"),
            dst: a("2001:2:0:2::11"),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 64,
        }
        .emit(&mut b);
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    #[test]
    fn emitted_header_validates_and_reads_back() {
        let mut b = sample(NH_UDP, &[1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend_from_slice(&[0; 6]); // Ethernet padding
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src(), a("2001:2:0:1::2"));
        assert_eq!(p.dst(), a("2001:2:0:2::11"));
        assert_eq!((p.version(), p.next_header(), p.hop_limit()), (6, 17, 64));
        assert_eq!(
            (p.payload_len(), p.total_len(), p.payload().len()),
            (8, 48, 8)
        );
        let u = p.upper_layer().unwrap();
        assert_eq!((u.proto, u.offset, u.frag), (NH_UDP, 0, None));
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let b = sample(NH_UDP, &[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Ipv6Error::Truncated
        );
        let mut v = b.clone();
        v[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Ipv6Error::BadVersion
        );
        let mut v = b.clone();
        v[5] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Ipv6Error::BadPayloadLength
        );
        // A jumbogram (payload length 0 with hop-by-hop options) is refused.
        let v = sample(NH_HOP_BY_HOP, &[]);
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Ipv6Error::BadPayloadLength
        );
    }

    #[test]
    fn extension_headers_are_walked_bounded_and_refused_by_rule() {
        // hop-by-hop (8) → destination options (16) → fragment → TCP.
        let mut p = vec![NH_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[NH_FRAGMENT, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[NH_TCP, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        p.extend_from_slice(&[0; 20]);
        let u = upper_layer(NH_HOP_BY_HOP, &p).unwrap();
        assert_eq!((u.proto, u.offset), (NH_TCP, 32));
        assert_eq!(
            u.frag,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        // A later fragment: the walk stops at its header.
        let frag = [NH_UDP, 0, 0x05, 0x30, 0, 0, 0, 7, 9, 9, 9];
        let u = upper_layer(NH_FRAGMENT, &frag).unwrap();
        assert_eq!((u.proto, u.offset), (NH_UDP, 8));
        assert_eq!(u.frag.unwrap().offset, 0x530 >> 3);
        // Truncated, looping, misplaced hop-by-hop, routing with segments left.
        assert_eq!(
            upper_layer(NH_DEST_OPTS, &[NH_TCP, 1, 0, 0, 0, 0, 0, 0]),
            Err(ExtError::Truncated)
        );
        assert_eq!(
            upper_layer(NH_DEST_OPTS, &[NH_TCP]),
            Err(ExtError::Truncated)
        );
        let looped: Vec<u8> = (0..20)
            .flat_map(|_| [NH_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0])
            .collect();
        assert_eq!(upper_layer(NH_DEST_OPTS, &looped), Err(ExtError::Chain));
        let mut hbh_late = vec![NH_HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0];
        hbh_late.extend_from_slice(&[NH_TCP, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(upper_layer(NH_DEST_OPTS, &hbh_late), Err(ExtError::Chain));
        let rh = [NH_TCP, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(upper_layer(NH_ROUTING, &rh), Err(ExtError::RoutingHeader));
        let rh0 = [NH_TCP, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(upper_layer(NH_ROUTING, &rh0).unwrap().offset, 8);
        // Two fragment headers.
        let two = [
            NH_FRAGMENT,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
            NH_TCP,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
        ];
        assert_eq!(upper_layer(NH_FRAGMENT, &two), Err(ExtError::Chain));
    }

    #[test]
    fn edits_and_address_checksum_updates() {
        let mut b = sample(NH_TCP, &[0; 20]);
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.decrement_hop_limit();
        p.set_src(a("2001:2:0:2::1"));
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.hop_limit(), p.src()), (63, a("2001:2:0:2::1")));
        // A checksum over data including an address follows the address change.
        let (old, new) = (a("2001:2:0:1::2"), a("2001:2:0:2::1"));
        let data = |x: Ipv6Addr| {
            let mut d = x.octets().to_vec();
            d.extend_from_slice(b"rest");
            d
        };
        let c = checksum::checksum(&data(old));
        assert_eq!(update_addr(c, old, new), checksum::checksum(&data(new)));
        let ph = pseudo_header(old, new, NH_TCP, 20);
        let mut manual = old.octets().to_vec();
        manual.extend_from_slice(&new.octets());
        manual.extend_from_slice(&[0, 0, 0, 20, 0, 0, 0, NH_TCP]);
        assert_eq!(checksum::finish(ph), checksum::checksum(&manual));
    }

    #[test]
    fn neighbour_discovery_addresses() {
        assert_eq!(solicited_node(a("2001:2:0:1::1")), a("ff02::1:ff00:1"));
        assert_eq!(
            solicited_node(a("2001:2:0:2::abcd:1234")),
            a("ff02::1:ffcd:1234")
        );
        assert_eq!(
            multicast_mac(a("ff02::1:ff00:1")),
            MacAddr([0x33, 0x33, 0xff, 0, 0, 1])
        );
        let ll = link_local(MacAddr([0x02, 0x52, 0, 0, 0, 7]));
        assert_eq!(ll, a("fe80::52:ff:fe00:7"));
        assert!(is_link_local(ll) && !is_link_local(a("2001:2::1")));
    }
}
