//! TCP segment view (RFC 9293 section 3.1), options (RFC 7323, RFC 2018, RFC 6691) and
//! their emission.
//!
//! [`TcpPacket::new_checked`] validates the fixed header and the data offset once, so no
//! accessor can panic afterwards. [`TcpRepr`] is the parsed, owned form of the header
//! and its options (no payload); [`TcpRepr::emit`] writes it back with the checksum.

use std::net::IpAddr;

use super::checksum;

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// TCP flag bits (the low byte of the flags field).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);

    /// True if every bit of `o` is set.
    #[inline]
    pub fn contains(self, o: Flags) -> bool {
        self.0 & o.0 == o.0
    }

    /// True if FIN is set.
    #[inline]
    pub fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }
    /// True if SYN is set.
    #[inline]
    pub fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }
    /// True if RST is set.
    #[inline]
    pub fn rst(self) -> bool {
        self.contains(Flags::RST)
    }
    /// True if ACK is set.
    #[inline]
    pub fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }
    /// True if PSH is set.
    #[inline]
    pub fn psh(self) -> bool {
        self.contains(Flags::PSH)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0;
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (0x02, "S"),
            (0x10, "."),
            (0x08, "P"),
            (0x01, "F"),
            (0x04, "R"),
            (0x20, "U"),
        ];
        for (bit, n) in names {
            if self.0 & bit != 0 {
                f.write_str(n)?;
            }
        }
        Ok(())
    }
}

/// Why a segment was rejected by [`TcpPacket::new_checked`] or [`TcpRepr::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the fixed header or than its data offset.
    Truncated,
    /// Data offset below 5.
    BadOffset,
    /// An option's length runs past the header or is too small.
    BadOption,
    /// The checksum does not match.
    BadChecksum,
}

/// A read-only or writable view of a TCP segment (header, options and payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buf` without checking it; only [`TcpPacket::check_len`] makes accessors safe.
    pub fn new_unchecked(buf: T) -> Self {
        TcpPacket { buf }
    }

    /// Wraps `buf` after checking that the fixed header and the options fit.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let p = TcpPacket { buf };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed header and the data offset fit in the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = ((b[field::OFF] >> 4) as usize) * 4;
        if hl < HEADER_LEN {
            return Err(WireError::BadOffset);
        }
        if b.len() < hl {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buf.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32_at(&self, r: std::ops::Range<usize>) -> u32 {
        let b = &self.buf.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }
    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }
    /// Header length in bytes (data offset times four).
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::OFF] >> 4) as usize) * 4
    }
    /// The flag bits.
    pub fn flags(&self) -> Flags {
        Flags(self.buf.as_ref()[field::FLAGS] & 0x3f)
    }
    /// Window field (not scaled).
    pub fn window(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.u16_at(field::URGENT)
    }
    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
    /// Sequence space the segment occupies (payload plus one for SYN and for FIN).
    pub fn seg_len(&self) -> usize {
        let f = self.flags();
        self.payload().len() + f.syn() as usize + f.fin() as usize
    }

    /// True if the checksum over the pseudo header and the whole segment is right.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buf.as_ref();
        checksum::finish(checksum::sum(pseudo_header(src, dst, b.len()), b)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Fills the checksum field for a segment sent from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        let b = self.buf.as_mut();
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let c = checksum::finish(checksum::sum(pseudo_header(src, dst, b.len()), b));
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buf.as_mut()[hl..]
    }

    /// Sets the source port (the checksum is the caller's: see [`TcpPacket::set_checksum`]).
    /// Needs only the first four bytes, as in the quote of an ICMP error.
    pub fn set_src_port(&mut self, p: u16) {
        self.buf.as_mut()[field::SRC_PORT].copy_from_slice(&p.to_be_bytes());
    }

    /// Sets the destination port (the checksum is the caller's).
    pub fn set_dst_port(&mut self, p: u16) {
        self.buf.as_mut()[field::DST_PORT].copy_from_slice(&p.to_be_bytes());
    }

    /// Sets the checksum field as given (for incremental updates, RFC 1624).
    pub fn set_checksum(&mut self, c: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// The pseudo-header sum (IPv4 per RFC 9293, IPv6 per RFC 8200 section 8.1). Mixed
/// families sum both addresses as they are, which never verifies.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum::pseudo_header_v4(s.octets(), d.octets(), PROTO_TCP, len as u16)
        }
        (s, d) => {
            let mut acc = 0;
            for a in [s, d] {
                acc = match a {
                    IpAddr::V4(a) => checksum::sum(acc, &a.octets()),
                    IpAddr::V6(a) => checksum::sum(acc, &a.octets()),
                };
            }
            acc + PROTO_TCP as u32 + (len as u32 & 0xffff) + (len as u32 >> 16)
        }
    }
}

/// Option kinds.
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Most SACK blocks a header carries (four fit without timestamps, three with).
pub const MAX_SACK_BLOCKS: usize = 4;

/// A parsed TCP header with the options this stack understands; the payload is not part
/// of it. Unknown options are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with ACK).
    pub ack: u32,
    /// Flag bits.
    pub flags: Flags,
    /// Window field as carried (not scaled).
    pub window: u16,
    /// Maximum segment size option.
    pub mss: Option<u16>,
    /// Window scale option (shift count).
    pub wscale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// Timestamps option: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks `[left, right)`, the first `sack_len` are valid.
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    /// Number of valid SACK blocks.
    pub sack_len: u8,
}

impl TcpRepr {
    /// Parses the header and options of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> Result<TcpRepr, WireError> {
        let mut r = TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            ..TcpRepr::default()
        };
        let mut o = p.options();
        while let Some(&k) = o.first() {
            match k {
                kind::END => break,
                kind::NOP => {
                    o = &o[1..];
                    continue;
                }
                _ => {}
            }
            let len = *o.get(1).ok_or(WireError::BadOption)? as usize;
            if len < 2 || len > o.len() {
                return Err(WireError::BadOption);
            }
            let v = &o[2..len];
            match (k, v.len()) {
                (kind::MSS, 2) => r.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                (kind::WSCALE, 1) => r.wscale = Some(v[0]),
                (kind::SACK_PERMITTED, 0) => r.sack_permitted = true,
                (kind::TIMESTAMPS, 8) => {
                    r.timestamps = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                    ))
                }
                (kind::SACK, n) if n % 8 == 0 => {
                    for b in v.chunks_exact(8).take(MAX_SACK_BLOCKS) {
                        r.sack[r.sack_len as usize] = (
                            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                        );
                        r.sack_len += 1;
                    }
                }
                (
                    kind::MSS | kind::WSCALE | kind::SACK_PERMITTED | kind::TIMESTAMPS | kind::SACK,
                    _,
                ) => return Err(WireError::BadOption),
                _ => {}
            }
            o = &o[len..];
        }
        Ok(r)
    }

    /// The valid SACK blocks.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }

    /// Length of the options as [`TcpRepr::emit`] writes them (padded to four bytes).
    pub fn options_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 4; // NOP + 3
        }
        if self.timestamps.is_some() {
            n += 12; // NOP NOP + 10, or SACK-permitted + 10
        } else if self.sack_permitted {
            n += 4; // NOP NOP + 2
        }
        if self.sack_len > 0 {
            n += 4 + 8 * self.sack_len as usize; // NOP NOP + 2 + blocks
        }
        n
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Writes the header into the front of `buf`, whose length must be the header length
    /// plus the payload already placed after it, then fills the checksum. Returns the
    /// header length, or `None` when `buf` is too short or the options too long.
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) -> Option<usize> {
        let hl = self.header_len();
        if hl > MAX_HEADER_LEN || buf.len() < hl {
            return None;
        }
        buf[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        buf[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        buf[field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        buf[field::OFF] = ((hl / 4) as u8) << 4;
        buf[field::FLAGS] = self.flags.0;
        buf[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::URGENT].copy_from_slice(&[0, 0]);
        let mut i = HEADER_LEN;
        let mut put = |bytes: &[u8]| {
            buf[i..i + bytes.len()].copy_from_slice(bytes);
            i += bytes.len();
        };
        if let Some(m) = self.mss {
            put(&[kind::MSS, 4]);
            put(&m.to_be_bytes());
        }
        if let Some(w) = self.wscale {
            put(&[kind::NOP, kind::WSCALE, 3, w]);
        }
        if let Some((v, e)) = self.timestamps {
            if self.sack_permitted {
                put(&[kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10]);
            } else {
                put(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
            }
            put(&v.to_be_bytes());
            put(&e.to_be_bytes());
        } else if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
        }
        if self.sack_len > 0 {
            put(&[kind::NOP, kind::NOP, kind::SACK, 2 + 8 * self.sack_len]);
            for &(l, r) in self.sack_blocks() {
                put(&l.to_be_bytes());
                put(&r.to_be_bytes());
            }
        }
        let mut p = TcpPacket::new_unchecked(&mut *buf);
        p.fill_checksum(src, dst);
        Some(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn emit_then_parse_round_trips_every_option() {
        let mut r = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: 0xdead_beef,
            ack: 7,
            flags: Flags::SYN | Flags::ACK,
            window: 29200,
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 2)),
            ..TcpRepr::default()
        };
        r.sack[0] = (100, 200);
        r.sack_len = 1;
        let mut buf = [0u8; 80];
        let hl = r.header_len();
        assert_eq!(hl % 4, 0);
        buf[hl..hl + 3].copy_from_slice(b"abc");
        let (src, dst) = (v4("198.18.1.2"), v4("198.18.1.1"));
        assert_eq!(r.emit(&mut buf[..hl + 3], src, dst), Some(hl));
        let p = TcpPacket::new_checked(&buf[..hl + 3]).unwrap();
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, v4("198.18.1.3")));
        assert_eq!(p.payload(), b"abc");
        assert_eq!(p.seg_len(), 4);
        assert_eq!(TcpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn malformed_headers_are_rejected() {
        assert_eq!(
            TcpPacket::new_checked(&[0u8; 19][..]).err(),
            Some(WireError::Truncated)
        );
        let mut b = [0u8; 24];
        b[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).err(),
            Some(WireError::BadOffset)
        );
        b[12] = 7 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).err(),
            Some(WireError::Truncated)
        );
        b[12] = 6 << 4;
        b[20] = kind::MSS;
        b[21] = 9; // runs past the header
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p).err(), Some(WireError::BadOption));
        b[21] = 3; // wrong length for MSS
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p).err(), Some(WireError::BadOption));
        b[20..24].copy_from_slice(&[99, 4, 0, 0]); // unknown option skipped
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p).unwrap().mss, None);
    }

    #[test]
    fn the_fast_sum_matches_the_reference_sum() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for acc in [0u32, 0x1234, 0xffff_0000 - 1] {
                assert_eq!(
                    checksum::finish(checksum::sum(acc, &data)),
                    checksum::finish(checksum::sum_pairs(acc, &data)),
                    "len {len} acc {acc:#x}"
                );
            }
        }
        let ones = vec![0xffu8; 1500];
        assert_eq!(
            checksum::finish(checksum::sum(0, &ones)),
            checksum::finish(checksum::sum_pairs(0, &ones))
        );
    }

    #[test]
    fn ipv6_pseudo_header_verifies() {
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            flags: Flags::ACK,
            ..TcpRepr::default()
        };
        let mut buf = [0u8; 20];
        let (s, d) = (v4("2001:db8::1"), v4("2001:db8::2"));
        r.emit(&mut buf, s, d).unwrap();
        assert!(TcpPacket::new_checked(&buf[..])
            .unwrap()
            .verify_checksum(s, d));
    }
}
