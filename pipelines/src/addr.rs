//! Dual-stack address types: prefixes and flow keys hold IPv4 or IPv6 from day one,
//! even while only IPv4 packets are handled, so nothing is retyped when IPv6 arrives.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IP prefix (network address and length), IPv4 or IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The address part is not an IP address.
    #[error("`{0}` is not an IP address (write e.g. 198.18.1.0/24)")]
    BadAddress(String),
    /// The length is missing, not a number, or too long for the family.
    #[error("`{0}` is not a valid prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    BadLength(String),
}

impl Prefix {
    /// A prefix of `len` bits of `addr`; host bits are cleared. `None` if `len` is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        Some(Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn bits(&self) -> u8 {
        self.len
    }

    /// True for the zero-length (default) prefix.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// True if `ip` is inside this prefix (always false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// The IPv4 network as a host-order integer and length, for IPv4 prefixes.
    pub fn v4(&self) -> Option<(u32, u8)> {
        match self.addr {
            IpAddr::V4(a) => Some((u32::from(a), self.len)),
            IpAddr::V6(_) => None,
        }
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .map_err(|_| PrefixError::BadLength(l.to_string()))?,
            None => max,
        };
        Prefix::new(addr, len).ok_or_else(|| PrefixError::BadLength(len.to_string()))
    }
}

impl TryFrom<String> for Prefix {
    type Error = PrefixError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.to_string()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An address with its prefix length, as written for a self IP (`198.18.1.1/24`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfAddr {
    /// The address itself.
    pub addr: IpAddr,
    /// The length of the connected network.
    pub len: u8,
}

impl IfAddr {
    /// The connected network of this address.
    pub fn network(&self) -> Prefix {
        // `len` was checked against the family when the value was made.
        Prefix::new(self.addr, self.len).unwrap_or(Prefix {
            addr: self.addr,
            len: 0,
        })
    }
}

impl FromStr for IfAddr {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| PrefixError::BadLength(format!("{s} (missing /LEN)")))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?;
        let len: u8 = l
            .parse()
            .map_err(|_| PrefixError::BadLength(l.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(PrefixError::BadLength(l.to_string()));
        }
        Ok(IfAddr { addr, len })
    }
}

impl TryFrom<String> for IfAddr {
    type Error = PrefixError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<IfAddr> for String {
    fn from(a: IfAddr) -> String {
        a.to_string()
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The five-tuple identifying a flow, in the direction it was seen.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP: identifier).
    pub sport: u16,
    /// Destination port (ICMP: 0).
    pub dport: u16,
}

impl FlowKey {
    /// The same flow seen from the other side.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_mask_and_contain() {
        let p: Prefix = "198.18.1.77/24".parse().unwrap();
        assert_eq!(p.to_string(), "198.18.1.0/24");
        assert!(p.contains("198.18.1.200".parse().unwrap()));
        assert!(!p.contains("198.18.2.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let d: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(d.is_default() && d.contains("8.8.8.8".parse().unwrap()));
        let h: Prefix = "198.18.1.1".parse().unwrap();
        assert_eq!(h.bits(), 32);
        let v6: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::".parse().unwrap()));
        assert!("198.18.1.0/33".parse::<Prefix>().is_err());
        assert!("198.18.1/24".parse::<Prefix>().is_err());
        assert!("198.18.1.0/x".parse::<Prefix>().is_err());
    }

    #[test]
    fn interface_addresses_keep_their_host_part() {
        let a: IfAddr = "198.18.1.1/24".parse().unwrap();
        assert_eq!(a.addr.to_string(), "198.18.1.1");
        assert_eq!(a.network().to_string(), "198.18.1.0/24");
        assert!("198.18.1.1".parse::<IfAddr>().is_err());
        assert!("198.18.1.1/40".parse::<IfAddr>().is_err());
    }

    #[test]
    fn flow_keys_reverse() {
        let k = FlowKey {
            proto: 6,
            src: "198.18.1.2".parse().unwrap(),
            dst: "198.18.1.100".parse().unwrap(),
            sport: 40000,
            dport: 80,
        };
        assert_eq!(k.reversed().reversed(), k);
        assert_eq!(k.reversed().dport, 40000);
    }
}
