//! IPv4 headers (RFC 791): a checked view, in-place edits with incremental checksums,
//! and header emission.

use std::net::Ipv4Addr;

use super::checksum;

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Why an IPv4 packet was refused; each is a named drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Shorter than the minimum header or than its own header length.
    Truncated,
    /// Version field not 4.
    BadVersion,
    /// Header length below 20 bytes.
    BadHeaderLength,
    /// Total length below the header length or beyond the frame.
    BadTotalLength,
    /// Header checksum mismatch.
    BadChecksum,
}

/// A checked view of an IPv4 packet. The buffer may be longer than the packet
/// (Ethernet padding); [`Ipv4Packet::total_len`] is authoritative.
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates version, lengths and header checksum.
    pub fn new_checked(buf: T) -> Result<Self, Ipv4Error> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Ipv4Error::BadVersion);
        }
        let hl = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Ipv4Error::BadHeaderLength);
        }
        if b.len() < hl {
            return Err(Ipv4Error::Truncated);
        }
        let total = u16::from_be_bytes([b[2], b[3]]) as usize;
        if total < hl || total > b.len() {
            return Err(Ipv4Error::BadTotalLength);
        }
        if checksum::checksum(&b[..hl]) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        Ok(Ipv4Packet { buf })
    }

    /// Wraps a buffer already checked (used after in-place edits).
    pub fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }

    /// Version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    /// Total length in bytes (header and payload).
    pub fn total_len(&self) -> usize {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[2], b[3]]) as usize
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[field::IDENT.start], b[field::IDENT.start + 1]])
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buf.as_ref()[field::FLAGS_FRAG.start] & 0x40 != 0
    }

    /// True if this is a fragment (more-fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        let b = self.buf.as_ref();
        let v = u16::from_be_bytes([b[6], b[7]]);
        v & 0x3fff != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buf.as_ref()[field::FLAGS_FRAG.start] & 0x20 != 0
    }

    /// Fragment offset in units of 8 bytes (0 for a whole packet or a first fragment).
    pub fn frag_offset(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[field::FLAGS_FRAG.start], b[field::FLAGS_FRAG.start + 1]]) & 0x1fff
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTOCOL]
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The payload (up to the total length, excluding padding).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }

    /// The header bytes.
    pub fn header(&self) -> &[u8] {
        &self.buf.as_ref()[..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_checksum(&mut self, c: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    fn checksum_field(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[10], b[11]])
    }

    /// Decrements the TTL by one, updating the checksum incrementally.
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_ref();
        let old = u16::from_be_bytes([b[field::TTL], b[field::PROTOCOL]]);
        let ttl = b[field::TTL].saturating_sub(1);
        let new = u16::from_be_bytes([ttl, b[field::PROTOCOL]]);
        let c = checksum::update16(self.checksum_field(), old, new);
        self.buf.as_mut()[field::TTL] = ttl;
        self.set_checksum(c);
    }

    /// Sets the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum_field(), u32::from(self.src()), u32::from(a));
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Sets the destination address, updating the header checksum incrementally.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum_field(), u32::from(self.dst()), u32::from(a));
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buf.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[h..t]
    }
}

/// Fields of a header to emit (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Set the don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Writes a 20-byte header with a correct checksum at the start of `b`.
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = 0x45;
        b[1] = 0;
        b[field::TOTAL_LEN]
            .copy_from_slice(&((MIN_HEADER_LEN + self.payload_len) as u16).to_be_bytes());
        b[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        b[field::FLAGS_FRAG]
            .copy_from_slice(&(if self.dont_frag { 0x4000u16 } else { 0 }).to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::SRC].copy_from_slice(&self.src.octets());
        b[field::DST].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(&b[..MIN_HEADER_LEN]);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut b = [0u8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 1, 2),
            dst: Ipv4Addr::new(198, 18, 2, 11),
            protocol: PROTO_UDP,
            payload_len: 8,
            ttl: 64,
            ident: 7,
            dont_frag: true,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn emitted_header_validates_and_reads_back() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src(), Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 2, 11));
        assert_eq!(
            (p.ttl(), p.protocol(), p.total_len(), p.header_len()),
            (64, 17, 28, 20)
        );
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let b = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).unwrap_err(),
            Ipv4Error::Truncated
        );
        let mut v = b;
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::BadVersion
        );
        let mut v = b;
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::BadHeaderLength
        );
        let mut v = b;
        v[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::Truncated
        );
        let mut v = b;
        v[3] = 200;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::BadTotalLength
        );
        let mut v = b;
        v[3] = 10;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::BadTotalLength
        );
        let mut v = b;
        v[15] ^= 1;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            Ipv4Error::BadChecksum
        );
    }

    #[test]
    fn edits_keep_the_checksum_valid() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.decrement_ttl();
        p.set_dst(Ipv4Addr::new(198, 18, 2, 14));
        p.set_src(Ipv4Addr::new(198, 18, 2, 1));
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 2, 14));
    }
}
