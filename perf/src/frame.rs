//! Frame templates: built once at start, patched per packet.
//!
//! A [`Template`] holds a complete Ethernet/IPv4 frame of one size and kind with every
//! per-packet field zeroed, and the one's-complement sums of its IPv4 header and of its
//! L4 checksum coverage over the constant bytes. Writing a packet copies the template and
//! patches the source address and port (or ICMP identifier and sequence), the probe, and
//! the checksums, each finished from the precomputed sum plus the few words that changed:
//! about a dozen additions per packet, whatever the frame size.
//!
//! Frame sizes follow RFC 2544: a "64-byte frame" is 64 bytes on the wire including the
//! 4-byte FCS, which the NIC (or the veth) adds, so the buffer holds 60 bytes.

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
const L4_OFF: usize = IP_OFF + IP_LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
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
    /// ICMP echo requests; the receiver counts the echo replies.
    IcmpEcho,
    /// ARP requests for the destination address (broadcast, 64-byte frames); the
    /// receiver counts the ARP replies (they carry no probe: no latency, no sequence).
    ArpRequest,
}

impl Kind {
    /// IP protocol number (0 for ARP).
    pub fn proto(self) -> u8 {
        match self {
            Kind::Udp => 17,
            Kind::TcpSyn => 6,
            Kind::IcmpEcho => 1,
            Kind::ArpRequest => 0,
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

    /// Offset of the probe in a generated frame.
    pub fn probe_offset(self) -> usize {
        L4_OFF + self.l4_header_len()
    }

    /// Smallest frame size (with FCS) that carries this kind and its probe.
    pub fn min_frame(self) -> usize {
        (self.probe_offset() + PROBE_LEN + FCS_LEN).max(MIN_FRAME)
    }
}

/// The addresses shared by every frame of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source MAC (the transmitting port's).
    pub src_mac: MacAddr,
    /// Destination MAC (the next hop's).
    pub dst_mac: MacAddr,
    /// Destination IPv4 address.
    pub dst_ip: [u8; 4],
    /// Destination port (UDP and TCP).
    pub dst_port: u16,
}

/// One flow: what varies between the frames of different flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source IPv4 address.
    pub src_ip: [u8; 4],
    /// Source port (UDP, TCP); ICMP uses the flow id as its identifier instead.
    pub src_port: u16,
}

/// A prebuilt frame of one kind and size.
#[derive(Debug, Clone)]
pub struct Template {
    kind: Kind,
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
    /// `kind.min_frame()..=MAX_FRAME`).
    pub fn new(kind: Kind, ep: &Endpoints, size: usize) -> Template {
        if kind == Kind::ArpRequest {
            let mut f = arp_request(ep.src_mac, [0; 4], ep.dst_ip).to_vec();
            f[0..6].copy_from_slice(&ep.dst_mac.0);
            return Template {
                kind,
                frame: f,
                ip_base: 0,
                l4_base: 0,
            };
        }
        let size = size.clamp(kind.min_frame(), MAX_FRAME);
        let len = size - FCS_LEN;
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&ep.dst_mac.0);
        f[6..12].copy_from_slice(&ep.src_mac.0);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[IP_OFF..L4_OFF];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64; // TTL
        ip[9] = kind.proto();
        ip[16..20].copy_from_slice(&ep.dst_ip);
        let ip_base = fold(checksum::sum(0, ip));
        let l4_len = (len - L4_OFF) as u16;
        let l4 = &mut f[L4_OFF..];
        let pseudo = match kind {
            Kind::Udp => {
                l4[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
                l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
                checksum::pseudo_header_v4([0; 4], ep.dst_ip, 17, l4_len)
            }
            Kind::TcpSyn => {
                l4[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
                l4[4..8].copy_from_slice(&TCP_ISN.to_be_bytes());
                l4[12] = 5 << 4; // data offset: 5 words
                l4[13] = 0x02; // SYN
                l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
                checksum::pseudo_header_v4([0; 4], ep.dst_ip, 6, l4_len)
            }
            Kind::IcmpEcho => {
                l4[0] = 8; // echo request
                0
            }
            Kind::ArpRequest => 0, // built above; never reached
        };
        let l4_base = fold(checksum::sum(pseudo, l4));
        Template {
            kind,
            frame: f,
            ip_base,
            l4_base,
        }
    }

    /// The kind of packet.
    pub fn kind(&self) -> Kind {
        self.kind
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
    /// (whose index is `flow_id`) with `probe`'s sequence number and timestamp.
    #[inline]
    pub fn write(&self, out: &mut [u8], flow: &Flow, probe: &Probe) {
        out.copy_from_slice(&self.frame);
        if self.kind == Kind::ArpRequest {
            out[28..32].copy_from_slice(&flow.src_ip); // sender protocol address
            probe.write(&mut out[42..42 + PROBE_LEN]);
            return;
        }
        out[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&flow.src_ip);
        let src = addr_words(flow.src_ip);
        let ip_csum = checksum::finish(self.ip_base + src);
        out[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&ip_csum.to_be_bytes());
        let po = self.kind.probe_offset();
        probe.write(&mut out[po..po + PROBE_LEN]);
        let psum = sum32(&out[po..po + PROBE_LEN]);
        match self.kind {
            Kind::Udp => {
                out[L4_OFF..L4_OFF + 2].copy_from_slice(&flow.src_port.to_be_bytes());
                let mut c = checksum::finish(self.l4_base + src + flow.src_port as u32 + psum);
                if c == 0 {
                    c = 0xffff; // zero means "no checksum" in UDP
                }
                out[L4_OFF + 6..L4_OFF + 8].copy_from_slice(&c.to_be_bytes());
            }
            Kind::TcpSyn => {
                out[L4_OFF..L4_OFF + 2].copy_from_slice(&flow.src_port.to_be_bytes());
                let c = checksum::finish(self.l4_base + src + flow.src_port as u32 + psum);
                out[L4_OFF + 16..L4_OFF + 18].copy_from_slice(&c.to_be_bytes());
            }
            Kind::ArpRequest => {}
            Kind::IcmpEcho => {
                let seq16 = probe.seq as u16;
                out[L4_OFF + 4..L4_OFF + 6].copy_from_slice(&probe.flow.to_be_bytes());
                out[L4_OFF + 6..L4_OFF + 8].copy_from_slice(&seq16.to_be_bytes());
                let c = checksum::finish(self.l4_base + probe.flow as u32 + seq16 as u32 + psum);
                out[L4_OFF + 2..L4_OFF + 4].copy_from_slice(&c.to_be_bytes());
            }
        }
    }
}

/// Where a received IPv4 frame keeps its probe, and whether its IPv4 header checksum
/// holds. `None` when the frame is not IPv4 carrying an L4 header of a generated kind
/// (for ICMP: an echo reply).
#[inline]
pub fn locate_probe(frame: &[u8]) -> Option<(usize, bool)> {
    if frame.len() < L4_OFF || frame[12..14] != ETHERTYPE_IPV4.to_be_bytes() {
        return None;
    }
    let ihl = ((frame[IP_OFF] & 0x0f) as usize) * 4;
    if frame[IP_OFF] >> 4 != 4 || ihl < IP_LEN || frame.len() < IP_OFF + ihl + 8 {
        return None;
    }
    let ip_ok = sum32(&frame[IP_OFF..IP_OFF + ihl]) == 0xffff;
    let l4 = IP_OFF + ihl;
    let off = match frame[IP_OFF + 9] {
        17 => l4 + 8,
        6 => l4 + ((frame.get(l4 + 12)? >> 4) as usize) * 4,
        1 if frame[l4] == 0 => l4 + 8, // echo reply
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: [198, 18, 2, 11],
            dst_port: 9,
        }
    }

    /// Verifies the IPv4 and L4 checksums of a frame by recomputing them from scratch.
    fn checksums_hold(f: &[u8]) -> (bool, bool) {
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

    #[test]
    fn every_kind_and_size_gives_valid_checksums() {
        for kind in [Kind::Udp, Kind::TcpSyn, Kind::IcmpEcho] {
            for size in [64, 65, 570, 1518] {
                let t = Template::new(kind, &ep(), size);
                assert_eq!(t.wire_size(), size.max(kind.min_frame()));
                let mut out = vec![0u8; t.len()];
                for (i, (ip, port)) in [([198, 18, 1, 2], 1024), ([198, 18, 1, 254], 65535)]
                    .into_iter()
                    .enumerate()
                {
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
                    assert_eq!(checksums_hold(&out), (true, true), "{kind:?} {size}");
                    let (off, ip_ok) = match kind {
                        Kind::IcmpEcho => {
                            // A reply is the request with type 0 (and a fixed checksum).
                            out[L4_OFF] = 0;
                            locate_probe(&out).unwrap()
                        }
                        _ => locate_probe(&out).unwrap(),
                    };
                    assert!(ip_ok);
                    assert_eq!(Probe::read(&out[off..]), Some(probe));
                    assert_eq!(&out[26..30], &ip);
                    if kind != Kind::IcmpEcho {
                        assert_eq!(&out[34..36], &port.to_be_bytes());
                    }
                }
            }
        }
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
                src_ip: [198, 18, 1, 2],
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
            src_ip: [198, 18, 1, 2],
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
        e.dst_ip = [198, 18, 1, 1];
        let t = Template::new(Kind::ArpRequest, &e, 1518);
        assert_eq!(t.wire_size(), 64);
        let mut out = vec![0u8; t.len()];
        let flow = Flow {
            src_ip: [198, 18, 1, 7],
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
}
