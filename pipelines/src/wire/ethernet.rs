//! Ethernet II frames with an optional 802.1Q VLAN tag.

use rouge_drivers::MacAddr;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthError {
    /// Shorter than an Ethernet header (or its VLAN tag).
    Truncated,
    /// More than one VLAN tag (QinQ is not supported).
    StackedVlan,
}

/// A checked view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
    vlan: Option<u16>,
    header_len: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the header (and tag, if any) is present.
    pub fn new_checked(buf: T) -> Result<Self, EthError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(EthError::Truncated);
        }
        let outer = u16::from_be_bytes([b[12], b[13]]);
        let (vlan, header_len) = if outer == ETHERTYPE_VLAN {
            if b.len() < HEADER_LEN + VLAN_TAG_LEN {
                return Err(EthError::Truncated);
            }
            let inner = u16::from_be_bytes([b[16], b[17]]);
            if inner == ETHERTYPE_VLAN || inner == 0x88a8 {
                return Err(EthError::StackedVlan);
            }
            let tci = u16::from_be_bytes([b[14], b[15]]);
            (Some(tci & 0x0fff), HEADER_LEN + VLAN_TAG_LEN)
        } else {
            (None, HEADER_LEN)
        };
        Ok(EthernetFrame {
            buf,
            vlan,
            header_len,
        })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        mac_at(self.buf.as_ref(), field::DST.start)
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        mac_at(self.buf.as_ref(), field::SRC.start)
    }

    /// VLAN ID of the 802.1Q tag, if tagged.
    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }

    /// EtherType of the payload (after any VLAN tag).
    pub fn ethertype(&self) -> u16 {
        let b = self.buf.as_ref();
        let r = if self.vlan.is_some() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        u16::from_be_bytes([b[r.start], b[r.start + 1]])
    }

    /// Length of the header including any tag: where the payload starts.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len..]
    }
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

/// Writes an Ethernet header (with a tag when `vlan` is set) at the start of `buf` and
/// returns its length. `buf` must hold at least 18 bytes.
pub fn emit_header(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    vlan: Option<u16>,
    ethertype: u16,
) -> usize {
    buf[field::DST].copy_from_slice(&dst.0);
    buf[field::SRC].copy_from_slice(&src.0);
    match vlan {
        Some(id) => {
            buf[field::ETHERTYPE].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            buf[field::VLAN_TCI].copy_from_slice(&(id & 0x0fff).to_be_bytes());
            buf[field::INNER_ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
            HEADER_LEN + VLAN_TAG_LEN
        }
        None => {
            buf[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
            HEADER_LEN
        }
    }
}

/// Rewrites the MAC addresses of a frame in place (the frame is at least 12 bytes long).
#[inline]
pub fn set_macs(buf: &mut [u8], dst: MacAddr, src: MacAddr) {
    buf[field::DST].copy_from_slice(&dst.0);
    buf[field::SRC].copy_from_slice(&src.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged_frames_parse() {
        let mut buf = [0u8; 64];
        let n = emit_header(
            &mut buf,
            MacAddr::BROADCAST,
            MacAddr::local(1),
            None,
            ETHERTYPE_ARP,
        );
        assert_eq!(n, 14);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr::local(1));
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.vlan(), None);
        let n = emit_header(
            &mut buf,
            MacAddr::local(2),
            MacAddr::local(1),
            Some(42),
            ETHERTYPE_IPV4,
        );
        assert_eq!(n, 18);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.vlan(), Some(42));
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.payload().len(), 64 - 18);
    }

    #[test]
    fn short_and_stacked_frames_are_refused() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            EthError::Truncated
        );
        let mut buf = [0u8; 16];
        buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(
            EthernetFrame::new_checked(&buf[..]).unwrap_err(),
            EthError::Truncated
        );
        let mut buf = [0u8; 30];
        buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        buf[16..18].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(
            EthernetFrame::new_checked(&buf[..]).unwrap_err(),
            EthError::StackedVlan
        );
    }
}
