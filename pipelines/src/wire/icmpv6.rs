//! ICMPv6 (RFC 4443): echo, the error messages a router sends (destination
//! unreachable, packet too big, time exceeded, parameter problem), the Neighbour
//! Discovery messages (RFC 4861: neighbour solicitation and advertisement with their
//! link-layer address options) and MLDv2 reports (RFC 3810) for the solicited-node
//! groups.
//!
//! The checksum covers the IPv6 pseudo header, so a view is checked against the
//! addresses of the packet that carries it.

use std::net::Ipv6Addr;

use rouge_drivers::MacAddr;

use super::checksum;
use super::ipv6::{self, NH_ICMPV6};

/// Type of "destination unreachable".
pub const DEST_UNREACHABLE: u8 = 1;
/// Type of "packet too big".
pub const PACKET_TOO_BIG: u8 = 2;
/// Type of "time exceeded".
pub const TIME_EXCEEDED: u8 = 3;
/// Type of "parameter problem".
pub const PARAM_PROBLEM: u8 = 4;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Type of a router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// Type of a router advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Type of a neighbour solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Type of a neighbour advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Type of an MLDv2 listener report.
pub const MLD2_REPORT: u8 = 143;
/// Type of MLD queries (MLDv1, RFC 2710, and MLDv2, RFC 3810: told apart by length).
pub const MLD_QUERY: u8 = 130;
/// Code of "no route to destination".
pub const CODE_NO_ROUTE: u8 = 0;
/// Code of "address unreachable".
pub const CODE_ADDR_UNREACHABLE: u8 = 3;
/// Code of "port unreachable".
pub const CODE_PORT_UNREACHABLE: u8 = 4;
/// Length of the fixed ICMPv6 header.
pub const HEADER_LEN: usize = 8;
/// Length of a neighbour solicitation or advertisement without options.
pub const ND_LEN: usize = 24;
/// Length of a link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;
/// The hop limit of every Neighbour Discovery message (RFC 4861 section 7.1).
pub const ND_HOP_LIMIT: u8 = 255;

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// Why an ICMPv6 message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Error {
    /// Shorter than the 8-byte header.
    Truncated,
    /// Checksum over the pseudo header and the message does not verify.
    BadChecksum,
}

/// A checked view of an ICMPv6 message.
#[derive(Debug)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Checks the length and the checksum of a message sent from `src` to `dst`.
    pub fn new_checked(buf: T, src: Ipv6Addr, dst: Ipv6Addr) -> Result<Self, Icmpv6Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Icmpv6Error::Truncated);
        }
        let acc = ipv6::pseudo_header(src, dst, NH_ICMPV6, b.len());
        if checksum::finish(checksum::sum(acc, b)) != 0 {
            return Err(Icmpv6Error::BadChecksum);
        }
        Ok(Icmpv6Packet { buf })
    }

    /// Wraps a message already checked (or at least [`HEADER_LEN`] bytes long).
    pub fn new_unchecked(buf: T) -> Self {
        Icmpv6Packet { buf }
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum_field(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The 4 bytes after the checksum (echo identifier and sequence, the MTU of a
    /// packet too big, the pointer of a parameter problem).
    pub fn rest(&self) -> [u8; 4] {
        let b = self.buf.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// The bytes after the 8-byte header (for an error, the quoted packet).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }

    /// True for the error messages (types below 128).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Turns an echo request into its reply in place (type 128 to 129, checksum
    /// updated; the pseudo-header sum is unchanged when the addresses are swapped).
    pub fn make_echo_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = u16::from_be_bytes([b[0], b[1]]);
        let csum = u16::from_be_bytes([b[2], b[3]]);
        b[0] = ECHO_REPLY;
        let new = u16::from_be_bytes([b[0], b[1]]);
        let c = checksum::update16(csum, old, new);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }

    /// Recomputes the checksum for a message sent from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buf.as_mut();
        b[2..4].copy_from_slice(&[0, 0]);
        let acc = ipv6::pseudo_header(src, dst, NH_ICMPV6, b.len());
        let c = checksum::finish(checksum::sum(acc, b));
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }

    /// Sets the checksum field as given (for incremental updates).
    pub fn set_checksum_field(&mut self, c: u16) {
        self.buf.as_mut()[2..4].copy_from_slice(&c.to_be_bytes());
    }

    /// The bytes after the 8-byte header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

/// Writes an ICMPv6 error (`msg_type`, `code`, the 4-byte `rest` field, then `quoted`:
/// as much of the offending packet as fits in the minimum MTU) from `src` to `dst`
/// into `b`, returning its length. `b` must hold `8 + quoted.len()` bytes.
pub fn emit_error(
    b: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> usize {
    let len = HEADER_LEN + quoted.len();
    b[0] = msg_type;
    b[1] = code;
    b[4..8].copy_from_slice(&rest);
    b[8..len].copy_from_slice(quoted);
    Icmpv6Packet::new_unchecked(&mut b[..len]).fill_checksum(src, dst);
    len
}

/// The longest quote an ICMPv6 error may carry so the whole error (IPv6 header, ICMPv6
/// header, quote) fits in the minimum MTU (RFC 4443 section 2.4 (c)).
pub const MAX_QUOTE: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;

/// A Neighbour Discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdRepr {
    /// Neighbour solicitation: who has `target`?
    Solicit {
        /// The address asked for.
        target: Ipv6Addr,
        /// The asker's MAC (absent in duplicate address detection).
        source_lladdr: Option<MacAddr>,
    },
    /// Neighbour advertisement: `target` is at `target_lladdr`.
    Advert {
        /// Sent by a router.
        router: bool,
        /// An answer to a solicitation.
        solicited: bool,
        /// Replace a cached address.
        override_: bool,
        /// The address advertised.
        target: Ipv6Addr,
        /// Its MAC.
        target_lladdr: Option<MacAddr>,
    },
}

/// Why a Neighbour Discovery message was refused (RFC 4861 sections 7.1.1 and 7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdError {
    /// Not a solicitation or an advertisement.
    NotNd,
    /// Shorter than the message, non-zero code, an option of length 0 or beyond the
    /// message, or a multicast target.
    Malformed,
}

impl NdRepr {
    /// Parses a neighbour solicitation or advertisement (`msg`: the ICMPv6 message,
    /// checksum already verified).
    pub fn parse(msg: &[u8]) -> Result<NdRepr, NdError> {
        let Some(&t) = msg.first() else {
            return Err(NdError::Malformed);
        };
        if t != NEIGHBOR_SOLICIT && t != NEIGHBOR_ADVERT {
            return Err(NdError::NotNd);
        }
        if msg.len() < ND_LEN || msg[1] != 0 {
            return Err(NdError::Malformed);
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&msg[8..24]);
        let target = Ipv6Addr::from(a);
        if target.is_multicast() {
            return Err(NdError::Malformed);
        }
        let mut lladdr = None;
        let mut opts = &msg[ND_LEN..];
        let wanted = if t == NEIGHBOR_SOLICIT {
            OPT_SOURCE_LLADDR
        } else {
            OPT_TARGET_LLADDR
        };
        while !opts.is_empty() {
            if opts.len() < 2 {
                return Err(NdError::Malformed);
            }
            let len = opts[1] as usize * 8;
            if len == 0 || len > opts.len() {
                return Err(NdError::Malformed);
            }
            if opts[0] == wanted && len >= LLADDR_OPT_LEN {
                let mut m = [0u8; 6];
                m.copy_from_slice(&opts[2..8]);
                lladdr = Some(MacAddr(m));
            }
            opts = &opts[len..];
        }
        Ok(if t == NEIGHBOR_SOLICIT {
            NdRepr::Solicit {
                target,
                source_lladdr: lladdr,
            }
        } else {
            let f = msg[4];
            NdRepr::Advert {
                router: f & 0x80 != 0,
                solicited: f & 0x40 != 0,
                override_: f & 0x20 != 0,
                target,
                target_lladdr: lladdr,
            }
        })
    }

    /// Length of the message when emitted.
    pub fn buffer_len(&self) -> usize {
        let opt = match self {
            NdRepr::Solicit { source_lladdr, .. } => source_lladdr.is_some(),
            NdRepr::Advert { target_lladdr, .. } => target_lladdr.is_some(),
        };
        ND_LEN + if opt { LLADDR_OPT_LEN } else { 0 }
    }

    /// Writes the message with its checksum for a packet from `src` to `dst` into `b`
    /// (at least [`NdRepr::buffer_len`] bytes) and returns its length.
    pub fn emit(&self, b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> usize {
        let len = self.buffer_len();
        let b = &mut b[..len];
        b.fill(0);
        let (t, target, opt) = match *self {
            NdRepr::Solicit {
                target,
                source_lladdr,
            } => (
                NEIGHBOR_SOLICIT,
                target,
                source_lladdr.map(|m| (OPT_SOURCE_LLADDR, m)),
            ),
            NdRepr::Advert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                b[4] = (router as u8) << 7 | (solicited as u8) << 6 | (override_ as u8) << 5;
                (
                    NEIGHBOR_ADVERT,
                    target,
                    target_lladdr.map(|m| (OPT_TARGET_LLADDR, m)),
                )
            }
        };
        b[0] = t;
        b[8..24].copy_from_slice(&target.octets());
        if let Some((kind, mac)) = opt {
            b[24] = kind;
            b[25] = 1;
            b[26..32].copy_from_slice(&mac.0);
        }
        Icmpv6Packet::new_unchecked(&mut *b).fill_checksum(src, dst);
        len
    }
}

/// The all-MLDv2-capable-routers group, where MLDv2 reports go.
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
/// The all-nodes group (unsolicited advertisements go there).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The hop-by-hop header MLD messages carry (RFC 3810 section 5): next header ICMPv6,
/// a router alert option (value 0, MLD) and two bytes of padding.
pub const MLD_HOP_BY_HOP: [u8; 8] = [NH_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
/// Most groups in one report built by [`emit_mld2_report`].
pub const MLD_MAX_GROUPS: usize = 32;

/// Writes an MLDv2 report (RFC 3810 section 5.2) from `src` joining every group of
/// `groups` (each a CHANGE_TO_EXCLUDE_MODE record with no sources) into `b` and
/// returns its length: 8 bytes and 20 per group.
pub fn emit_mld2_report(b: &mut [u8], src: Ipv6Addr, groups: &[Ipv6Addr]) -> usize {
    let n = groups.len().min(MLD_MAX_GROUPS);
    let len = HEADER_LEN + 20 * n;
    let b = &mut b[..len];
    b.fill(0);
    b[0] = MLD2_REPORT;
    b[6..8].copy_from_slice(&(n as u16).to_be_bytes());
    for (i, g) in groups[..n].iter().enumerate() {
        let r = &mut b[HEADER_LEN + 20 * i..HEADER_LEN + 20 * (i + 1)];
        r[0] = 4; // CHANGE_TO_EXCLUDE_MODE
        r[4..20].copy_from_slice(&g.octets());
    }
    Icmpv6Packet::new_unchecked(&mut *b).fill_checksum(src, ALL_MLDV2_ROUTERS);
    len
}

/// An MLD query (RFC 2710 section 3, RFC 3810 section 5.1): general when its group is
/// unspecified, else about one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MldQuery {
    /// The group asked about (`::` for a general query).
    pub group: Ipv6Addr,
    /// The longest a listener may wait before it reports, in milliseconds.
    pub max_delay_ms: u32,
    /// True for an MLDv2 query (28 bytes or more), false for MLDv1 (24 bytes).
    pub v2: bool,
}

impl MldQuery {
    /// Reads a query from an ICMPv6 message whose checksum was verified. `None` when it
    /// is not a query or has a length of neither version (RFC 3810 section 8.1: such
    /// queries are ignored).
    pub fn parse(msg: &[u8]) -> Option<MldQuery> {
        if msg.first() != Some(&MLD_QUERY) {
            return None;
        }
        let v2 = match msg.len() {
            24 => false,
            n if n >= 28 => true,
            _ => return None,
        };
        let code = u16::from_be_bytes([msg[4], msg[5]]);
        // MLDv2's Maximum Response Code is a float from 32768 on (section 5.1.3).
        let max_delay_ms = if v2 && code >= 0x8000 {
            let mant = u32::from(code & 0x0fff);
            let exp = u32::from((code >> 12) & 0x7);
            (mant | 0x1000) << (exp + 3)
        } else {
            u32::from(code)
        };
        let mut g = [0u8; 16];
        g.copy_from_slice(&msg[8..24]);
        Some(MldQuery {
            group: Ipv6Addr::from(g),
            max_delay_ms,
            v2,
        })
    }

    /// True for a general query (about every group).
    pub fn is_general(&self) -> bool {
        self.group.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mld_queries_of_both_versions_parse() {
        // MLDv1 general query, 10 s.
        let mut v1 = [0u8; 24];
        v1[0] = MLD_QUERY;
        v1[4..6].copy_from_slice(&10_000u16.to_be_bytes());
        let q = MldQuery::parse(&v1).unwrap();
        assert_eq!(
            (q.is_general(), q.max_delay_ms, q.v2),
            (true, 10_000, false)
        );
        // MLDv2 query about one group, with the float form: mant 0x234, exp 1.
        let mut v2 = [0u8; 28];
        v2[0] = MLD_QUERY;
        v2[4..6].copy_from_slice(&0x9234u16.to_be_bytes());
        v2[8..24].copy_from_slice(&a("ff02::1:ff00:1").octets());
        let q = MldQuery::parse(&v2).unwrap();
        assert_eq!(q.group, a("ff02::1:ff00:1"));
        assert_eq!(q.max_delay_ms, (0x234 | 0x1000) << 4);
        assert!(q.v2 && !q.is_general());
        // The largest code: (0xfff | 0x1000) << 10 ms, about 8.4 minutes.
        v2[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(MldQuery::parse(&v2).unwrap().max_delay_ms, 0x1fff << 10);
        // Below 32768 the code is milliseconds in MLDv2 too.
        v2[4..6].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(MldQuery::parse(&v2).unwrap().max_delay_ms, 1000);
        // Other lengths and other types are not queries.
        assert_eq!(MldQuery::parse(&v2[..25]), None);
        assert_eq!(MldQuery::parse(&v1[..20]), None);
        v1[0] = MLD2_REPORT;
        assert_eq!(MldQuery::parse(&v1), None);
        assert_eq!(MldQuery::parse(&[]), None);
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn echo_request_becomes_a_valid_reply() {
        let (c, s) = (a("2001:2:0:1::2"), a("2001:2:0:1::1"));
        let mut m = [ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(c, s);
        let mut p = Icmpv6Packet::new_checked(&mut m[..], c, s).unwrap();
        assert_eq!((p.msg_type(), p.rest()), (ECHO_REQUEST, [0x12, 0x34, 0, 1]));
        p.make_echo_reply();
        let p = Icmpv6Packet::new_checked(&m[..], s, c).unwrap();
        assert_eq!(p.msg_type(), ECHO_REPLY);
        // The checksum covers the addresses.
        assert_eq!(
            Icmpv6Packet::new_checked(&m[..], s, a("2001:2:0:1::3")).unwrap_err(),
            Icmpv6Error::BadChecksum
        );
        assert_eq!(
            Icmpv6Packet::new_checked(&m[..7], s, c).unwrap_err(),
            Icmpv6Error::Truncated
        );
    }

    #[test]
    fn errors_verify_and_quote() {
        let (r, c) = (a("2001:2:0:1::1"), a("2001:2:0:1::2"));
        let mut b = [0u8; 64];
        let n = emit_error(
            &mut b,
            r,
            c,
            PACKET_TOO_BIG,
            0,
            1400u32.to_be_bytes(),
            &[0x60; 48],
        );
        assert_eq!(n, 56);
        let p = Icmpv6Packet::new_checked(&b[..n], r, c).unwrap();
        assert!(p.is_error());
        assert_eq!(u32::from_be_bytes(p.rest()), 1400);
        assert_eq!(p.payload(), &[0x60; 48]);
        assert_eq!(MAX_QUOTE + 48, 1280);
    }

    #[test]
    fn neighbour_messages_round_trip() {
        let me = a("2001:2:0:1::1");
        let peer = a("2001:2:0:1::2");
        let mac = MacAddr::local(7);
        let mut b = [0u8; 64];
        let ns = NdRepr::Solicit {
            target: me,
            source_lladdr: Some(mac),
        };
        let n = ns.emit(&mut b, peer, ipv6::solicited_node(me));
        assert_eq!(n, 32);
        assert!(Icmpv6Packet::new_checked(&b[..n], peer, ipv6::solicited_node(me)).is_ok());
        assert_eq!(NdRepr::parse(&b[..n]), Ok(ns));
        let na = NdRepr::Advert {
            router: true,
            solicited: true,
            override_: true,
            target: me,
            target_lladdr: Some(MacAddr::local(9)),
        };
        let n = na.emit(&mut b, me, peer);
        assert_eq!(b[4], 0xe0);
        assert_eq!(NdRepr::parse(&b[..n]), Ok(na));
        // DAD probe: no source link-layer option.
        let dad = NdRepr::Solicit {
            target: me,
            source_lladdr: None,
        };
        assert_eq!(dad.buffer_len(), 24);
        let n = dad.emit(&mut b, Ipv6Addr::UNSPECIFIED, ipv6::solicited_node(me));
        assert_eq!(NdRepr::parse(&b[..n]), Ok(dad));
    }

    #[test]
    fn malformed_neighbour_messages_are_refused() {
        let mut b = [0u8; 64];
        let ns = NdRepr::Solicit {
            target: a("2001:2:0:1::1"),
            source_lladdr: Some(MacAddr::local(1)),
        };
        let n = ns.emit(&mut b, a("::"), a("ff02::1"));
        assert_eq!(NdRepr::parse(&b[..23]), Err(NdError::Malformed));
        let mut v = b;
        v[1] = 1;
        assert_eq!(NdRepr::parse(&v[..n]), Err(NdError::Malformed));
        let mut v = b;
        v[25] = 0; // option length 0 would loop forever
        assert_eq!(NdRepr::parse(&v[..n]), Err(NdError::Malformed));
        let mut v = b;
        v[25] = 2; // option beyond the message
        assert_eq!(NdRepr::parse(&v[..n]), Err(NdError::Malformed));
        let mut v = b;
        v[8] = 0xff; // multicast target
        assert_eq!(NdRepr::parse(&v[..n]), Err(NdError::Malformed));
        let mut v = b;
        v[0] = ECHO_REQUEST;
        assert_eq!(NdRepr::parse(&v[..n]), Err(NdError::NotNd));
        assert_eq!(NdRepr::parse(&[]), Err(NdError::Malformed));
    }

    #[test]
    fn mld_reports_list_their_groups() {
        let src = a("fe80::52:ff:fe00:7");
        let groups = [a("ff02::1:ff00:1"), a("ff02::1:ff00:100")];
        let mut b = [0u8; 64];
        let n = emit_mld2_report(&mut b, src, &groups);
        assert_eq!(n, 48);
        assert!(Icmpv6Packet::new_checked(&b[..n], src, ALL_MLDV2_ROUTERS).is_ok());
        assert_eq!((b[0], u16::from_be_bytes([b[6], b[7]])), (MLD2_REPORT, 2));
        assert_eq!(&b[8 + 20 + 4..8 + 40], &groups[1].octets());
    }
}
