//! Frame templates: built once at start, patched per packet.
//!
//! A [`Template`] holds a complete Ethernet/IPv4 or Ethernet/IPv6 frame of one size and
//! kind with every per-packet field zeroed, and the one's-complement sums of its IPv4
//! header and of its L4 checksum coverage (the pseudo-header included) over the constant
//! bytes. Writing a packet copies the template and patches the source address and port
//! (or ICMP identifier and sequence), the probe, and the checksums, each finished from the
//! precomputed sum plus the few words that changed: about a dozen additions per packet,
//! whatever the frame size. IPv6 has no header checksum; its L4 checksums cover the
//! 16-byte source address, added per packet as eight words.
//!
//! Frame sizes follow RFC 2544: a "64-byte frame" is 64 bytes on the wire including the
//! 4-byte FCS, which the NIC (or the veth) adds, so the buffer holds 60 bytes. An IPv6
//! frame needs at least 82 bytes to carry UDP and the 16-byte probe (RFC 5180's 78 bytes
//! carry a 12-byte signature), 94 for a TCP SYN: smaller sizes are raised to that.

use std::net::{IpAddr, Ipv4Addr};

use rouge_drivers::MacAddr;
use rouge_pipelines::wire::checksum;

use crate::probe::{Probe, PROBE_LEN};

/// Length of the Ethernet FCS, counted in frame sizes but not carried in buffers.
pub const FCS_LEN: usize = 4;
/// Smallest Ethernet frame (with FCS).
pub const MIN_FRAME: usize = 64;
/// Largest untagged Ethernet frame (with FCS) for a 1500-byte MTU.
pub const MAX_FRAME: usize = 1518;

const ETH_LEN: usize = 14;
const IP_OFF: usize = ETH_LEN;
const IP_LEN: usize = 20;
const IP6_LEN: usize = 40;
const L4_OFF: usize = IP_OFF + IP_LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ICMPv6's next-header value.
const PROTO_ICMPV6: u8 = 58;
/// TCP initial sequence number of generated SYNs.
const TCP_ISN: u32 = 0x5247_0000;

/// What kind of packet a template carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// UDP datagrams.
    Udp,
    /// TCP segments with only SYN set (connection attempts, no handshake follows).
    TcpSyn,
    /// ICMP (ICMPv6 for IPv6) echo requests; the receiver counts the echo replies.
    IcmpEcho,
    /// ARP requests for the destination address (broadcast, 64-byte frames); the
    /// receiver counts the ARP replies (they carry no probe: no latency, no sequence).
    /// IPv4 only.
    ArpRequest,
}

impl Kind {
    /// IP protocol number (0 for ARP) in an IPv4 frame.
    pub fn proto(self) -> u8 {
        match self {
            Kind::Udp => 17,
            Kind::TcpSyn => 6,
            Kind::IcmpEcho => 1,
            Kind::ArpRequest => 0,
        }
    }

    /// IPv6 next-header value of the kind (ICMPv6 for echo).
    fn proto6(self) -> u8 {
        match self {
            Kind::IcmpEcho => PROTO_ICMPV6,
            k => k.proto(),
        }
    }

    /// Length of the L4 header in generated frames (for ARP: the ARP body after the
    /// 20 bytes an IPv4 header would take, so the probe lands in the padding).
    pub fn l4_header_len(self) -> usize {
        match self {
            Kind::Udp | Kind::IcmpEcho | Kind::ArpRequest => 8,
            Kind::TcpSyn => 20,
        }
    }

    /// Offset of the probe in a generated frame (IPv6 when `v6`).
    pub fn probe_offset(self, v6: bool) -> usize {
        l4_off(v6) + self.l4_header_len()
    }

    /// Smallest frame size (with FCS) that carries this kind and its probe (over IPv6
    /// when `v6`).
    pub fn min_frame(self, v6: bool) -> usize {
        (self.probe_offset(v6) + PROBE_LEN + FCS_LEN).max(MIN_FRAME)
    }
}

/// Offset of the L4 header in a generated frame.
#[inline]
fn l4_off(v6: bool) -> usize {
    if v6 {
        IP_OFF + IP6_LEN
    } else {
        L4_OFF
    }
}

/// The addresses shared by every frame of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source MAC (the transmitting port's).
    pub src_mac: MacAddr,
    /// Destination MAC (the next hop's).
    pub dst_mac: MacAddr,
    /// Destination address; its family is the frames' (IPv4 or IPv6).
    pub dst_ip: IpAddr,
    /// Destination port (UDP and TCP).
    pub dst_port: u16,
}

/// One flow: what varies between the frames of different flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source address, of the same family as [`Endpoints::dst_ip`].
    pub src_ip: IpAddr,
    /// Source port (UDP, TCP); ICMP uses the flow id as its identifier instead.
    pub src_port: u16,
}

/// The IPv4 form of `ip` (an IPv4-mapped IPv6 address is unmapped; any other IPv6
/// address gives 0.0.0.0: generators never mix families, see [`Template::write`]).
#[inline]
fn octets4(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED).octets(),
    }
}

/// The IPv6 form of `ip` (an IPv4 address is mapped).
#[inline]
fn octets6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The IPv6 pseudo-header's sum (RFC 8200 section 8.1) for `src`, `dst`, next header
/// `proto` and upper-layer length `len`, unfolded.
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], proto: u8, len: u32) -> u32 {
    let mut acc = checksum::sum(0, &src);
    acc = checksum::sum(acc, &dst);
    acc + (len >> 16) + (len & 0xffff) + proto as u32
}

/// A prebuilt frame of one kind and size.
#[derive(Debug, Clone)]
pub struct Template {
    kind: Kind,
    v6: bool,
    frame: Vec<u8>,
    ip_base: u32,
    l4_base: u32,
}

/// Folds a running sum to 16 bits, without complementing it.
#[inline]
fn fold(mut acc: u32) -> u32 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// One's-complement sum of `data` (a multiple of 4 bytes long) taken 32 bits at a time:
/// the same folded result as 16-bit words, in half the additions.
#[inline]
fn sum32(data: &[u8]) -> u32 {
    let mut acc = 0u64;
    for c in data.chunks_exact(4) {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

#[inline]
fn addr_words(a: [u8; 4]) -> u32 {
    u16::from_be_bytes([a[0], a[1]]) as u32 + u16::from_be_bytes([a[2], a[3]]) as u32
}

impl Template {
    /// Builds a template of `kind` whose frame is `size` bytes with FCS (clamped to
    /// `kind.min_frame(v6)..=MAX_FRAME`), of `ep.dst_ip`'s family. ARP requests are IPv4
    /// only (rouge-pktgen refuses them for an IPv6 destination).
    pub fn new(kind: Kind, ep: &Endpoints, size: usize) -> Template {
        let v6 = ep.dst_ip.is_ipv6() && kind != Kind::ArpRequest;
        if kind == Kind::ArpRequest {
            let mut f = arp_request(ep.src_mac, [0; 4], octets4(ep.dst_ip)).to_vec();
            f[0..6].copy_from_slice(&ep.dst_mac.0);
            return Template {
                kind,
                v6,
                frame: f,
                ip_base: 0,
                l4_base: 0,
            };
        }
        let size = size.clamp(kind.min_frame(v6), MAX_FRAME);
        let len = size - FCS_LEN;
        let l4_off = l4_off(v6);
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&ep.dst_mac.0);
        f[6..12].copy_from_slice(&ep.src_mac.0);
        let l4_len = (len - l4_off) as u16;
        let (ip_base, pseudo) = if v6 {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let dst = octets6(ep.dst_ip);
            let ip = &mut f[IP_OFF..l4_off];
            ip[0] = 0x60; // version 6, traffic class and flow label 0
            ip[4..6].copy_from_slice(&l4_len.to_be_bytes()); // payload length
            ip[6] = kind.proto6();
            ip[7] = 64; // hop limit
            ip[24..40].copy_from_slice(&dst);
            let pseudo = pseudo_header_v6([0; 16], dst, kind.proto6(), l4_len as u32);
            (0, pseudo)
        } else {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let dst = octets4(ep.dst_ip);
            let ip = &mut f[IP_OFF..L4_OFF];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64; // TTL
            ip[9] = kind.proto();
            ip[16..20].copy_from_slice(&dst);
            let ip_base = fold(checksum::sum(0, ip));
            let pseudo = match kind {
                Kind::Udp | Kind::TcpSyn => {
                    checksum::pseudo_header_v4([0; 4], dst, kind.proto(), l4_len)
                }
                // ICMPv4's checksum has no pseudo-header.
                Kind::IcmpEcho | Kind::ArpRequest => 0,
            };
            (ip_base, pseudo)
        };
        let l4 = &mut f[l4_off..];
        match kind {
            Kind::Udp => {
                l4[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
                l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
            }
            Kind::TcpSyn => {
                l4[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
                l4[4..8].copy_from_slice(&TCP_ISN.to_be_bytes());
                l4[12] = 5 << 4; // data offset: 5 words
                l4[13] = 0x02; // SYN
                l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            }
            Kind::IcmpEcho => {
                l4[0] = if v6 { 128 } else { 8 }; // echo request
            }
            Kind::ArpRequest => {} // built above; never reached
        }
        let l4_base = fold(checksum::sum(pseudo, l4));
        Template {
            kind,
            v6,
            frame: f,
            ip_base,
            l4_base,
        }
    }

    /// The kind of packet.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// True for an IPv6 template.
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// Frame length in the buffer (without FCS).
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Always false: a template holds at least a minimum frame.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Frame size on the wire, with FCS.
    pub fn wire_size(&self) -> usize {
        self.frame.len() + FCS_LEN
    }

    /// Writes a frame into `out` (exactly [`Template::len`] bytes long) for `flow`
    /// (whose index is `flow_id`) with `probe`'s sequence number and timestamp. The
    /// flow's source address is written in the template's family (generators check at
    /// construction that their flows are of it).
    #[inline]
    pub fn write(&self, out: &mut [u8], flow: &Flow, probe: &Probe) {
        out.copy_from_slice(&self.frame);
        if self.kind == Kind::ArpRequest {
            out[28..32].copy_from_slice(&octets4(flow.src_ip)); // sender protocol address
            probe.write(&mut out[42..42 + PROBE_LEN]);
            return;
        }
        let l4 = l4_off(self.v6);
        let src = if self.v6 {
            let a = octets6(flow.src_ip);
            out[IP_OFF + 8..IP_OFF + 24].copy_from_slice(&a);
            sum32(&a)
        } else {
            let a = octets4(flow.src_ip);
            out[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&a);
            let src = addr_words(a);
            let ip_csum = checksum::finish(self.ip_base + src);
            out[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&ip_csum.to_be_bytes());
            src
        };
        let po = self.kind.probe_offset(self.v6);
        probe.write(&mut out[po..po + PROBE_LEN]);
        let psum = sum32(&out[po..po + PROBE_LEN]);
        match self.kind {
            Kind::Udp => {
                out[l4..l4 + 2].copy_from_slice(&flow.src_port.to_be_bytes());
                let mut c = checksum::finish(self.l4_base + src + flow.src_port as u32 + psum);
                if c == 0 {
                    c = 0xffff; // zero means "no checksum" in UDP
                }
                out[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
            }
            Kind::TcpSyn => {
                out[l4..l4 + 2].copy_from_slice(&flow.src_port.to_be_bytes());
                let c = checksum::finish(self.l4_base + src + flow.src_port as u32 + psum);
                out[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
            }
            Kind::ArpRequest => {}
            Kind::IcmpEcho => {
                let seq16 = probe.seq as u16;
                out[l4 + 4..l4 + 6].copy_from_slice(&probe.flow.to_be_bytes());
                out[l4 + 6..l4 + 8].copy_from_slice(&seq16.to_be_bytes());
                // ICMPv6 covers the pseudo-header (the source address); ICMPv4 does not.
                let addr = if self.v6 { src } else { 0 };
                let c =
                    checksum::finish(self.l4_base + addr + probe.flow as u32 + seq16 as u32 + psum);
                out[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
            }
        }
    }
}

/// Where a received IPv4 or IPv6 frame keeps its probe, and whether its IPv4 header
/// checksum holds (always true for IPv6, which has none). `None` when the frame is not
/// IP carrying an L4 header of a generated kind (for ICMP and ICMPv6: an echo reply)
/// right after the IP header (an IPv6 extension header is not followed).
#[inline]
pub fn locate_probe(frame: &[u8]) -> Option<(usize, bool)> {
    if frame.len() < L4_OFF {
        return None;
    }
    let (l4, proto, ip_ok) = if frame[12..14] == ETHERTYPE_IPV4.to_be_bytes() {
        let ihl = ((frame[IP_OFF] & 0x0f) as usize) * 4;
        if frame[IP_OFF] >> 4 != 4 || ihl < IP_LEN || frame.len() < IP_OFF + ihl + 8 {
            return None;
        }
        let ip_ok = sum32(&frame[IP_OFF..IP_OFF + ihl]) == 0xffff;
        (IP_OFF + ihl, frame[IP_OFF + 9], ip_ok)
    } else if frame[12..14] == ETHERTYPE_IPV6.to_be_bytes() {
        let l4 = IP_OFF + IP6_LEN;
        if frame[IP_OFF] >> 4 != 6 || frame.len() < l4 + 8 {
            return None;
        }
        (l4, frame[IP_OFF + 6], true)
    } else {
        return None;
    };
    let off = match proto {
        17 => l4 + 8,
        6 => l4 + ((frame.get(l4 + 12)? >> 4) as usize) * 4,
        1 if frame[l4] == 0 => l4 + 8,              // echo reply
        PROTO_ICMPV6 if frame[l4] == 129 => l4 + 8, // echo reply
        _ => return None,
    };
    Some((off, ip_ok))
}

/// Builds an ARP request from `src_mac`/`src_ip` asking for `target_ip` (60 bytes).
pub fn arp_request(src_mac: MacAddr, src_ip: [u8; 4], target_ip: [u8; 4]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&src_mac.0);
    f[28..32].copy_from_slice(&src_ip);
    f[38..42].copy_from_slice(&target_ip);
    f
}

/// True when `frame` is an ARP reply.
#[inline]
pub fn is_arp_reply(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 2]
}

/// The sender MAC of `frame` when it is an ARP reply from `ip`.
pub fn arp_reply_from(frame: &[u8], ip: [u8; 4]) -> Option<MacAddr> {
    if !is_arp_reply(frame) || frame[28..32] != ip {
        return None;
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&frame[22..28]);
    Some(MacAddr(m))
}

/// Builds an IPv6 neighbour solicitation (RFC 4861 section 4.3) from `src_mac`/`src_ip`
/// for `target`, to its solicited-node group, with the source link-layer address
/// option (86 bytes).
pub fn neighbour_solicitation(src_mac: MacAddr, src_ip: [u8; 16], target: [u8; 16]) -> [u8; 86] {
    let mut f = [0u8; 86];
    let mut group = [0u8; 16];
    group[..2].copy_from_slice(&[0xff, 0x02]);
    group[11..13].copy_from_slice(&[0x01, 0xff]);
    group[13..].copy_from_slice(&target[13..]);
    f[0..6].copy_from_slice(&[0x33, 0x33, 0xff, target[13], target[14], target[15]]);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&32u16.to_be_bytes());
    f[20] = PROTO_ICMPV6;
    f[21] = 255; // hop limit: ND is only accepted with 255
    f[22..38].copy_from_slice(&src_ip);
    f[38..54].copy_from_slice(&group);
    f[54] = 135;
    f[62..78].copy_from_slice(&target);
    f[78] = 1; // source link-layer address, 1 unit of 8 bytes
    f[79] = 1;
    f[80..86].copy_from_slice(&src_mac.0);
    let ps = pseudo_header_v6(src_ip, group, PROTO_ICMPV6, 32);
    let c = checksum::finish(checksum::sum(ps, &f[54..]));
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f
}

/// The link-layer address of `target` when `frame` is a neighbour advertisement for it:
/// its target link-layer address option, else the frame's Ethernet source.
pub fn neighbour_advert_from(frame: &[u8], target: [u8; 16]) -> Option<MacAddr> {
    if frame.len() < 78
        || frame[12..14] != ETHERTYPE_IPV6.to_be_bytes()
        || frame[20] != PROTO_ICMPV6
        || frame[54] != 136
        || frame[62..78] != target
    {
        return None;
    }
    let mut m = [0u8; 6];
    // Options follow the target; a target link-layer address is type 2, length 1.
    let mut o = 78;
    while o + 8 <= frame.len() && frame[o + 1] != 0 {
        if frame[o] == 2 && frame[o + 1] == 1 {
            m.copy_from_slice(&frame[o + 2..o + 8]);
            return Some(MacAddr(m));
        }
        o += frame[o + 1] as usize * 8;
    }
    m.copy_from_slice(&frame[6..12]);
    Some(MacAddr(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: [198, 18, 2, 11].into(),
            dst_port: 9,
        }
    }

    fn ep6() -> Endpoints {
        Endpoints {
            dst_ip: "2001:2:0:2::11".parse().unwrap(),
            ..ep()
        }
    }

    /// Verifies the IPv4 and L4 checksums of a frame by recomputing them from scratch.
    fn checksums_hold(f: &[u8]) -> (bool, bool) {
        if f[12..14] == ETHERTYPE_IPV6.to_be_bytes() {
            return (true, checksums_hold_v6(f));
        }
        let ip = &f[IP_OFF..L4_OFF];
        let ip_ok = checksum::checksum(ip) == 0;
        let l4 = &f[L4_OFF..];
        let l4_ok = match f[IP_OFF + 9] {
            1 => checksum::checksum(l4) == 0,
            p => {
                let src = [ip[12], ip[13], ip[14], ip[15]];
                let dst = [ip[16], ip[17], ip[18], ip[19]];
                let ps = checksum::pseudo_header_v4(src, dst, p, l4.len() as u16);
                checksum::finish(checksum::sum(ps, l4)) == 0
            }
        };
        (ip_ok, l4_ok)
    }

    /// Verifies an IPv6 frame's L4 checksum (pseudo-header included) and its payload
    /// length, from scratch.
    fn checksums_hold_v6(f: &[u8]) -> bool {
        let ip = &f[IP_OFF..IP_OFF + IP6_LEN];
        let l4 = &f[IP_OFF + IP6_LEN..];
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]) as usize, l4.len());
        let src: [u8; 16] = ip[8..24].try_into().unwrap();
        let dst: [u8; 16] = ip[24..40].try_into().unwrap();
        let ps = pseudo_header_v6(src, dst, ip[6], l4.len() as u32);
        checksum::finish(checksum::sum(ps, l4)) == 0
    }

    #[test]
    fn every_kind_size_and_family_gives_valid_checksums() {
        let v4: [(IpAddr, u16); 2] = [
            ([198, 18, 1, 2].into(), 1024),
            ([198, 18, 1, 254].into(), 65535),
        ];
        let v6: [(IpAddr, u16); 2] = [
            ("2001:2:0:1::2".parse().unwrap(), 1024),
            ("2001:2:0:1:ffff:ffff:ffff:ffff".parse().unwrap(), 65535),
        ];
        for (ep, srcs, v6) in [(ep(), v4, false), (ep6(), v6, true)] {
            for kind in [Kind::Udp, Kind::TcpSyn, Kind::IcmpEcho] {
                for size in [64, 65, 570, 1518] {
                    let t = Template::new(kind, &ep, size);
                    assert_eq!(t.is_ipv6(), v6);
                    assert_eq!(t.wire_size(), size.max(kind.min_frame(v6)));
                    let mut out = vec![0u8; t.len()];
                    for (i, (ip, port)) in srcs.into_iter().enumerate() {
                        let flow = Flow {
                            src_ip: ip,
                            src_port: port,
                        };
                        let probe = Probe {
                            flow: i as u16 * 4097,
                            seq: 0xffff_fff0 + i as u32,
                            tx_ns: 0x0123_4567_89ab_cdef,
                        };
                        t.write(&mut out, &flow, &probe);
                        assert_eq!(checksums_hold(&out), (true, true), "{kind:?} {size} {ip}");
                        let l4 = l4_off(v6);
                        if kind == Kind::IcmpEcho {
                            // A reply is the request with the reply type (the
                            // checksum is not fixed: the receiver does not check it).
                            out[l4] = if v6 { 129 } else { 0 };
                        }
                        let (off, ip_ok) = locate_probe(&out).unwrap();
                        assert!(ip_ok);
                        assert_eq!(off, kind.probe_offset(v6));
                        assert_eq!(Probe::read(&out[off..]), Some(probe));
                        match ip {
                            IpAddr::V4(a) => assert_eq!(&out[26..30], &a.octets()),
                            IpAddr::V6(a) => assert_eq!(&out[22..38], &a.octets()),
                        }
                        if kind != Kind::IcmpEcho {
                            assert_eq!(&out[l4..l4 + 2], &port.to_be_bytes());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ipv6_frames_have_their_minimum_sizes_and_headers() {
        assert_eq!(Kind::Udp.min_frame(true), 82);
        assert_eq!(Kind::TcpSyn.min_frame(true), 94);
        assert_eq!(Kind::Udp.min_frame(false), 64);
        let t = Template::new(Kind::Udp, &ep6(), 64);
        let mut out = vec![0u8; t.len()];
        let flow = Flow {
            src_ip: "2001:2:0:1::2".parse().unwrap(),
            src_port: 7,
        };
        t.write(
            &mut out,
            &flow,
            &Probe {
                flow: 0,
                seq: 0,
                tx_ns: 0,
            },
        );
        assert_eq!(out.len(), 78);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        assert_eq!(out[14] >> 4, 6);
        assert_eq!(out[20], 17); // next header: UDP
        assert_eq!(out[21], 64); // hop limit
        assert_eq!(&out[38..54], &octets6(ep6().dst_ip));
        // An IPv6 frame through a router: the hop limit changes, the probe is found.
        out[21] -= 1;
        assert_eq!(locate_probe(&out), Some((62, true)));
        // Behind an extension header (hop-by-hop options) the probe is not looked for.
        out[20] = 0;
        assert_eq!(locate_probe(&out), None);
        // Truncated below the L4 header.
        out[20] = 17;
        assert_eq!(locate_probe(&out[..60]), None);
    }

    #[test]
    fn thirty_two_bit_sums_equal_sixteen_bit_sums() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for len in [4usize, 16, 20, 60] {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert_eq!(sum32(&data), fold(checksum::sum(0, &data)), "{data:?}");
            }
        }
        assert_eq!(sum32(&[0xff; 20]), 0xffff);
    }

    #[test]
    fn a_udp_checksum_of_zero_is_sent_as_all_ones() {
        // Search the source port for one whose checksum would be zero.
        let t = Template::new(Kind::Udp, &ep(), 64);
        let mut out = vec![0u8; t.len()];
        let probe = Probe {
            flow: 0,
            seq: 0,
            tx_ns: 0,
        };
        let mut found = false;
        for port in 0..=u16::MAX {
            let flow = Flow {
                src_ip: [198, 18, 1, 2].into(),
                src_port: port,
            };
            t.write(&mut out, &flow, &probe);
            if out[40..42] == [0xff, 0xff] {
                found = true;
                assert_eq!(checksums_hold(&out), (true, true));
            }
            assert_ne!(out[40..42], [0, 0]);
        }
        assert!(found);
    }

    #[test]
    fn foreign_and_damaged_frames_are_told_apart() {
        let t = Template::new(Kind::Udp, &ep(), 64);
        let mut out = vec![0u8; t.len()];
        let flow = Flow {
            src_ip: [198, 18, 1, 2].into(),
            src_port: 1,
        };
        t.write(
            &mut out,
            &flow,
            &Probe {
                flow: 0,
                seq: 1,
                tx_ns: 2,
            },
        );
        out[IP_OFF + 8] -= 1; // TTL decremented without fixing the checksum
        assert_eq!(locate_probe(&out), Some((42, false)));
        assert_eq!(locate_probe(&out[..30]), None);
        let arp = arp_request(MacAddr::local(1), [198, 18, 1, 2], [198, 18, 1, 1]);
        assert_eq!(locate_probe(&arp), None);
        // An echo request is not counted as a reply.
        let icmp = Template::new(Kind::IcmpEcho, &ep(), 64);
        let mut req = vec![0u8; icmp.len()];
        icmp.write(
            &mut req,
            &flow,
            &Probe {
                flow: 0,
                seq: 1,
                tx_ns: 2,
            },
        );
        assert_eq!(locate_probe(&req), None);
    }

    #[test]
    fn arp_request_templates_carry_the_flow_as_sender() {
        let mut e = ep();
        e.dst_mac = MacAddr::BROADCAST;
        e.dst_ip = [198, 18, 1, 1].into();
        let t = Template::new(Kind::ArpRequest, &e, 1518);
        assert_eq!(t.wire_size(), 64);
        let mut out = vec![0u8; t.len()];
        let flow = Flow {
            src_ip: [198, 18, 1, 7].into(),
            src_port: 0,
        };
        t.write(
            &mut out,
            &flow,
            &Probe {
                flow: 3,
                seq: 9,
                tx_ns: 1,
            },
        );
        let mut want = arp_request(MacAddr::local(1), [198, 18, 1, 7], [198, 18, 1, 1]);
        Probe {
            flow: 3,
            seq: 9,
            tx_ns: 1,
        }
        .write(&mut want[42..58]);
        assert_eq!(out, want.to_vec());
        assert!(!is_arp_reply(&out));
    }

    #[test]
    fn arp_replies_are_recognised_by_sender() {
        let mut reply = arp_request(MacAddr::local(7), [198, 18, 1, 1], [198, 18, 1, 2]);
        assert_eq!(arp_reply_from(&reply, [198, 18, 1, 1]), None); // a request
        reply[21] = 2;
        assert_eq!(
            arp_reply_from(&reply, [198, 18, 1, 1]),
            Some(MacAddr::local(7))
        );
        assert_eq!(arp_reply_from(&reply, [198, 18, 1, 9]), None);
    }

    #[test]
    fn neighbour_solicitations_are_valid_and_advertisements_found() {
        let me: [u8; 16] = "2001:2:0:1::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let target: [u8; 16] = "2001:2:0:1::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let ns = neighbour_solicitation(MacAddr::local(1), me, target);
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
        assert!(checksums_hold_v6(&ns));
        assert_eq!(
            &ns[38..54],
            &"ff02::1:ff00:1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        // An advertisement: the solicitation turned around, with a target option.
        let mut na = ns;
        na[54] = 136;
        na[78] = 2;
        na[80..86].copy_from_slice(&MacAddr::local(7).0);
        assert_eq!(neighbour_advert_from(&na, target), Some(MacAddr::local(7)));
        assert_eq!(neighbour_advert_from(&na, me), None);
        assert_eq!(neighbour_advert_from(&ns, target), None);
        // Without the option, the Ethernet source.
        na[6..12].copy_from_slice(&MacAddr::local(8).0);
        assert_eq!(
            neighbour_advert_from(&na[..78], target),
            Some(MacAddr::local(8))
        );
        // A zero-length option ends the walk (no loop).
        na[79] = 0;
        assert_eq!(neighbour_advert_from(&na, target), Some(MacAddr::local(8)));
    }
}
