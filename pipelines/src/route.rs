//! The routing table: longest-prefix match over connected networks and static routes.
//!
//! Built once per configuration snapshot and never changed in place, so lookups take no
//! lock and allocate nothing. IPv4 prefixes live in one hash map per prefix length, and
//! a lookup tries only the lengths present, longest first. IPv6 routes are kept in the
//! same shape (dual-stack from the start) and are looked up the same way.

use crate::hashing::{self, FastMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::Prefix;

/// Where a route sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Index of the egress VLAN.
    pub vlan: u16,
    /// The gateway to hand the packet to, or `None` for a directly connected network.
    pub gateway: Option<IpAddr>,
}

impl NextHop {
    /// The address to resolve with ARP for a packet to `dst`.
    pub fn neighbour(&self, dst: Ipv4Addr) -> Ipv4Addr {
        match self.gateway {
            Some(IpAddr::V4(g)) => g,
            _ => dst,
        }
    }

    /// The address to resolve with Neighbour Discovery for a packet to `dst`.
    pub fn neighbour_v6(&self, dst: Ipv6Addr) -> Ipv6Addr {
        match self.gateway {
            Some(IpAddr::V6(g)) => g,
            _ => dst,
        }
    }
}

/// One configured or connected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub prefix: Prefix,
    /// Where matching packets go.
    pub next_hop: NextHop,
    /// True for a network attached through a self IP.
    pub connected: bool,
}

/// An immutable longest-prefix-match table.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    v4: Vec<(u8, FastMap<u32, usize>)>,
    v6: Vec<(u8, FastMap<u128, usize>)>,
}

impl RouteTable {
    /// Builds the table. When two routes have the same prefix, the first one wins
    /// (connected routes are passed first by the configuration).
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let mut v4: Vec<(u8, FastMap<u32, usize>)> = Vec::new();
        let mut v6: Vec<(u8, FastMap<u128, usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match r.prefix.addr() {
                IpAddr::V4(a) => {
                    let len = r.prefix.bits();
                    let slot = match v4.iter().position(|(l, _)| *l == len) {
                        Some(p) => p,
                        None => {
                            v4.push((len, hashing::with_capacity(0)));
                            v4.len() - 1
                        }
                    };
                    v4[slot].1.entry(u32::from(a)).or_insert(i);
                }
                IpAddr::V6(a) => {
                    let len = r.prefix.bits();
                    let slot = match v6.iter().position(|(l, _)| *l == len) {
                        Some(p) => p,
                        None => {
                            v6.push((len, hashing::with_capacity(0)));
                            v6.len() - 1
                        }
                    };
                    v6[slot].1.entry(u128::from(a)).or_insert(i);
                }
            }
        }
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        RouteTable { routes, v4, v6 }
    }

    /// The most specific route to `dst`.
    #[inline]
    pub fn lookup_v4(&self, dst: Ipv4Addr) -> Option<&Route> {
        let d = u32::from(dst);
        for (len, map) in &self.v4 {
            let m = if *len == 0 {
                0
            } else {
                u32::MAX << (32 - *len as u32)
            };
            if let Some(&i) = map.get(&(d & m)) {
                return self.routes.get(i);
            }
        }
        None
    }

    /// The most specific IPv6 route to `dst`.
    #[inline]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<&Route> {
        let d = u128::from(dst);
        for (len, map) in &self.v6 {
            let m = if *len == 0 {
                0
            } else {
                u128::MAX << (128 - *len as u32)
            };
            if let Some(&i) = map.get(&(d & m)) {
                return self.routes.get(i);
            }
        }
        None
    }

    /// The most specific route to `dst`, either family.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        match dst {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// Every route, in the order given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, vlan: u16, gw: Option<&str>) -> Route {
        Route {
            prefix: p.parse().unwrap(),
            next_hop: NextHop {
                vlan,
                gateway: gw.map(|g| g.parse().unwrap()),
            },
            connected: gw.is_none(),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new(vec![
            r("198.18.1.0/24", 0, None),
            r("198.18.2.0/24", 1, None),
            r("0.0.0.0/0", 1, Some("198.18.2.254")),
            r("198.18.128.0/17", 0, Some("198.18.1.254")),
            r("198.18.200.0/24", 1, Some("198.18.2.253")),
            r("2001:db8::/32", 1, None),
        ]);
        let hop = |a: &str| t.lookup_v4(a.parse().unwrap()).unwrap().next_hop;
        assert_eq!(hop("198.18.1.77").vlan, 0);
        assert_eq!(
            hop("198.18.1.77")
                .neighbour("198.18.1.77".parse().unwrap())
                .to_string(),
            "198.18.1.77"
        );
        assert_eq!(hop("198.18.2.11").gateway, None);
        assert_eq!(
            hop("198.18.130.1").gateway,
            Some("198.18.1.254".parse().unwrap())
        );
        assert_eq!(
            hop("198.18.200.9").gateway,
            Some("198.18.2.253".parse().unwrap())
        );
        assert_eq!(
            hop("203.0.113.1").gateway,
            Some("198.18.2.254".parse().unwrap())
        );
        assert_eq!(
            t.lookup("2001:db8::5".parse().unwrap())
                .unwrap()
                .next_hop
                .vlan,
            1
        );
        assert!(t.lookup("2001:db9::5".parse().unwrap()).is_none());
    }

    #[test]
    fn ipv6_longest_prefix_and_gateways() {
        let t = RouteTable::new(vec![
            r("2001:2:0:1::/64", 0, None),
            r("2001:2:0:2::/64", 1, None),
            r("2001:2:0:80::/57", 1, Some("2001:2:0:2::fe")),
            r("::/0", 0, Some("2001:2:0:1::fe")),
            r("198.18.0.0/15", 0, None),
        ]);
        let hop = |a: &str| t.lookup_v6(a.parse().unwrap()).unwrap().next_hop;
        let d: Ipv6Addr = "2001:2:0:2::11".parse().unwrap();
        assert_eq!(
            (
                hop("2001:2:0:2::11").vlan,
                hop("2001:2:0:2::11").neighbour_v6(d)
            ),
            (1, d)
        );
        let far: Ipv6Addr = "2001:2:0:90::1".parse().unwrap();
        assert_eq!(
            hop("2001:2:0:90::1").neighbour_v6(far),
            "2001:2:0:2::fe".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            hop("2001:db8::1").gateway,
            Some("2001:2:0:1::fe".parse().unwrap()),
            "the IPv6 default route"
        );
        // The IPv4 default does not catch IPv6 and the other way round.
        assert!(t.lookup_v4("203.0.113.1".parse().unwrap()).is_none());
    }

    #[test]
    fn no_default_means_no_route() {
        let t = RouteTable::new(vec![r("198.18.1.0/24", 0, None)]);
        assert!(t.lookup_v4("198.18.3.1".parse().unwrap()).is_none());
    }

    #[test]
    fn first_of_equal_prefixes_wins() {
        let t = RouteTable::new(vec![
            r("198.18.1.0/24", 0, None),
            r("198.18.1.0/24", 3, Some("198.18.1.9")),
        ]);
        assert!(
            t.lookup_v4("198.18.1.5".parse().unwrap())
                .unwrap()
                .connected
        );
    }
}
