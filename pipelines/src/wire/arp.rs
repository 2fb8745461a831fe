//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use rouge_drivers::MacAddr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Who has TPA? Tell SPA.
    Request,
    /// SPA is at SHA.
    Reply,
}

/// Why an ARP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than 28 bytes.
    Truncated,
    /// Not Ethernet/IPv4 (hardware or protocol type or lengths).
    Unsupported,
    /// Operation neither request nor reply.
    BadOperation,
    /// Sender hardware address is a group address.
    BadSender,
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub op: Operation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses and validates an ARP packet.
    pub fn parse(b: &[u8]) -> Result<ArpRepr, ArpError> {
        if b.len() < PACKET_LEN {
            return Err(ArpError::Truncated);
        }
        if b[field::HTYPE] != [0, 1]
            || b[field::PTYPE] != [8, 0]
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(ArpError::Unsupported);
        }
        let op = match u16::from_be_bytes([b[6], b[7]]) {
            1 => Operation::Request,
            2 => Operation::Reply,
            _ => return Err(ArpError::BadOperation),
        };
        let mac = |r: std::ops::Range<usize>| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[r]);
            MacAddr(m)
        };
        let ip = |r: std::ops::Range<usize>| {
            Ipv4Addr::new(b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3])
        };
        let repr = ArpRepr {
            op,
            sender_mac: mac(field::SHA),
            sender_ip: ip(field::SPA),
            target_mac: mac(field::THA),
            target_ip: ip(field::TPA),
        };
        if repr.sender_mac.is_multicast() {
            return Err(ArpError::BadSender);
        }
        Ok(repr)
    }

    /// Writes the packet into `b` (at least [`PACKET_LEN`] bytes).
    pub fn emit(&self, b: &mut [u8]) {
        b[field::HTYPE].copy_from_slice(&[0, 1]);
        b[field::PTYPE].copy_from_slice(&[8, 0]);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        let op: u16 = match self.op {
            Operation::Request => 1,
            Operation::Reply => 2,
        };
        b[field::OPER].copy_from_slice(&op.to_be_bytes());
        b[field::SHA].copy_from_slice(&self.sender_mac.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_mac.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
    }

    /// True for a gratuitous announcement (sender and target address equal).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let r = ArpRepr {
            op: Operation::Request,
            sender_mac: MacAddr::local(5),
            sender_ip: Ipv4Addr::new(198, 18, 1, 2),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(198, 18, 1, 1),
        };
        let mut b = [0u8; PACKET_LEN];
        r.emit(&mut b);
        assert_eq!(ArpRepr::parse(&b), Ok(r));
        assert_eq!(ArpRepr::parse(&b[..27]), Err(ArpError::Truncated));
        let mut bad = b;
        bad[7] = 9;
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::BadOperation));
        let mut bad = b;
        bad[4] = 8;
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::Unsupported));
        let mut bad = b;
        bad[8] = 1;
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::BadSender));
    }
}
