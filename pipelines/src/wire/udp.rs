//! UDP headers (RFC 768).

use super::checksum;

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

/// Why a UDP datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// Shorter than its header or its length field.
    Truncated,
    /// Length field below 8.
    BadLength,
}

/// A checked view of a UDP datagram.
#[derive(Debug)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Checks the header and the length field.
    pub fn new_checked(buf: T) -> Result<Self, UdpError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(UdpError::Truncated);
        }
        let len = u16::from_be_bytes([b[4], b[5]]) as usize;
        if len < HEADER_LEN {
            return Err(UdpError::BadLength);
        }
        if len > b.len() {
            return Err(UdpError::Truncated);
        }
        Ok(UdpPacket { buf })
    }

    /// Wraps `buf` without checking it: only the accessors of fields inside `buf` are
    /// safe (ports need 4 bytes, the checksum 8).
    pub fn new_unchecked(buf: T) -> Self {
        UdpPacket { buf }
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Length field (header and payload).
    pub fn len(&self) -> usize {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[4], b[5]]) as usize
    }

    /// True when the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    /// Checksum field (0 means none was computed).
    pub fn checksum_field(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// Verifies the checksum given the IPv4 addresses; a zero field passes (RFC 768).
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum_field() == 0 {
            return true;
        }
        let b = &self.buf.as_ref()[..self.len()];
        let acc = checksum::pseudo_header_v4(src, dst, 17, b.len() as u16);
        checksum::finish(checksum::sum(acc, b)) == 0
    }

    /// Verifies the checksum given the IPv6 addresses; a zero field fails (RFC 8200
    /// section 8.1: the checksum is mandatory over IPv6).
    pub fn verify_checksum_v6(&self, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> bool {
        if self.checksum_field() == 0 {
            return false;
        }
        let b = &self.buf.as_ref()[..self.len()];
        let acc = super::ipv6::pseudo_header(src, dst, 17, b.len());
        checksum::finish(checksum::sum(acc, b)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (the checksum is the caller's).
    pub fn set_src_port(&mut self, p: u16) {
        self.buf.as_mut()[0..2].copy_from_slice(&p.to_be_bytes());
    }

    /// Sets the destination port (the checksum is the caller's).
    pub fn set_dst_port(&mut self, p: u16) {
        self.buf.as_mut()[2..4].copy_from_slice(&p.to_be_bytes());
    }

    /// Sets the checksum field as given (0 means none, RFC 768).
    pub fn set_checksum_field(&mut self, c: u16) {
        self.buf.as_mut()[6..8].copy_from_slice(&c.to_be_bytes());
    }
}

/// Writes a UDP header for `payload_len` bytes of payload already in `b[8..]` and fills
/// the checksum with the IPv4 pseudo header. Returns the datagram length.
pub fn emit_v4(
    b: &mut [u8],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> usize {
    let len = HEADER_LEN + payload_len;
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    let acc = checksum::pseudo_header_v4(src, dst, 17, len as u16);
    let mut c = checksum::finish(checksum::sum(acc, &b[..len]));
    if c == 0 {
        c = 0xffff;
    }
    b[6..8].copy_from_slice(&c.to_be_bytes());
    len
}

/// Writes a UDP header for `payload_len` bytes of payload already in `b[8..]` and fills
/// the checksum with the IPv6 pseudo header. Returns the datagram length.
pub fn emit_v6(
    b: &mut [u8],
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> usize {
    let len = HEADER_LEN + payload_len;
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    let acc = super::ipv6::pseudo_header(src, dst, 17, len);
    let mut c = checksum::finish(checksum::sum(acc, &b[..len]));
    if c == 0 {
        c = 0xffff;
    }
    b[6..8].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emitted_datagrams_verify() {
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"ping");
        let n = emit_v4(&mut b, [198, 18, 1, 2], [198, 18, 2, 11], 1000, 53, 4);
        let u = UdpPacket::new_checked(&b[..n]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (1000, 53, 12));
        assert!(u.verify_checksum_v4([198, 18, 1, 2], [198, 18, 2, 11]));
        assert!(!u.verify_checksum_v4([198, 18, 1, 3], [198, 18, 2, 11]));
        let (s6, d6) = (
            "2001:2:0:1::2".parse().unwrap(),
            "2001:2:0:2::11".parse().unwrap(),
        );
        let n = emit_v6(&mut b, s6, d6, 1000, 53, 4);
        let u = UdpPacket::new_checked(&b[..n]).unwrap();
        assert!(u.verify_checksum_v6(s6, d6));
        assert!(!u.verify_checksum_v6(d6, "2001:2:0:2::12".parse().unwrap()));
        b[6..8].copy_from_slice(&[0, 0]);
        let u = UdpPacket::new_checked(&b[..n]).unwrap();
        assert!(
            !u.verify_checksum_v6(s6, d6),
            "no checksum is invalid over IPv6"
        );
        b[5] = 4;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            UdpError::BadLength
        );
        b[5] = 40;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            UdpError::Truncated
        );
    }
}
