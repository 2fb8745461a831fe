//! ICMPv4 (RFC 792): echo request/reply and the error messages the router sends.

use super::checksum;

/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type of "destination unreachable".
pub const DEST_UNREACHABLE: u8 = 3;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Type of "time exceeded".
pub const TIME_EXCEEDED: u8 = 11;
/// Code of "network unreachable".
pub const CODE_NET_UNREACHABLE: u8 = 0;
/// Code of "host unreachable".
pub const CODE_HOST_UNREACHABLE: u8 = 1;
/// Code of "fragmentation needed and DF set".
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Length of the fixed ICMP header.
pub const HEADER_LEN: usize = 8;

/// Why an ICMP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Shorter than the 8-byte header.
    Truncated,
    /// Checksum over the message does not verify.
    BadChecksum,
}

/// A checked view of an ICMP message.
#[derive(Debug)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Checks the length and the checksum over the whole message.
    pub fn new_checked(buf: T) -> Result<Self, IcmpError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(IcmpError::Truncated);
        }
        if checksum::checksum(b) != 0 {
            return Err(IcmpError::BadChecksum);
        }
        Ok(IcmpPacket { buf })
    }

    /// Wraps a message already checked.
    pub fn new_unchecked(buf: T) -> Self {
        IcmpPacket { buf }
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Echo identifier (echo messages only).
    pub fn echo_ident(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Turns an echo request into its reply in place (type 8 to 0, checksum updated).
    pub fn make_echo_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = u16::from_be_bytes([b[0], b[1]]);
        let csum = u16::from_be_bytes([b[2], b[3]]);
        b[0] = ECHO_REPLY;
        let new = u16::from_be_bytes([b[0], b[1]]);
        let c = checksum::update16(csum, old, new);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }

    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        let b = self.buf.as_mut();
        b[2..4].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }

    /// The bytes after the 8-byte header (for an error, the quoted packet), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

/// Writes an ICMP error message (`msg_type`, `code`, the 4-byte `rest` field, then
/// `quoted`: the offending IP header and the first 8 bytes of its payload) into `b`,
/// returning its length. `b` must hold `8 + quoted.len()` bytes.
pub fn emit_error(b: &mut [u8], msg_type: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> usize {
    let len = HEADER_LEN + quoted.len();
    b[0] = msg_type;
    b[1] = code;
    b[2] = 0;
    b[3] = 0;
    b[4..8].copy_from_slice(&rest);
    b[8..len].copy_from_slice(quoted);
    let c = checksum::checksum(&b[..len]);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_becomes_a_valid_reply() {
        let mut m = [ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0x1234);
        p.make_echo_reply();
        let p = IcmpPacket::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REPLY);
    }

    #[test]
    fn bad_messages_are_refused_and_errors_verify() {
        assert_eq!(
            IcmpPacket::new_checked(&[8u8, 0, 0][..]).unwrap_err(),
            IcmpError::Truncated
        );
        assert_eq!(
            IcmpPacket::new_checked(&[8u8, 0, 0, 0, 0, 0, 0, 1][..]).unwrap_err(),
            IcmpError::BadChecksum
        );
        let mut b = [0u8; 36];
        let n = emit_error(&mut b, TIME_EXCEEDED, 0, [0; 4], &[0x45; 28]);
        assert_eq!(n, 36);
        assert!(IcmpPacket::new_checked(&b[..n]).is_ok());
    }
}
