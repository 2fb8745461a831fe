//! Ready-made data-plane snapshots for tests, fuzz targets and benchmarks (not used by
//! the appliance itself).

use std::net::Ipv4Addr;

use crate::addr::Prefix;
use crate::arp::ArpConfig;
use crate::dataplane::*;
use crate::route::{NextHop, Route, RouteTable};

/// The test bed's data plane: `lb-c` (port 0, VLAN `client`, 198.18.1.1/24), `lb-s`
/// (port 1, VLAN `server` 198.18.2.1/24 and VLAN `tagged` 42 with 198.18.3.1/24),
/// virtual address 198.18.1.100, a route to 198.18.64.0/18 via 198.18.2.254, and
/// forwarding virtual servers for 198.18.1/24, 198.18.2/24, 198.18.3/24,
/// 198.18.96.0/20 (routed) and 198.19.0.0/16 (no route).
pub fn dataplane(workers: usize) -> Dataplane {
    let route = |p: &str, vlan, gw: Option<Ipv4Addr>| Route {
        prefix: p.parse().unwrap(),
        next_hop: NextHop {
            vlan,
            gateway: gw.map(Into::into),
        },
        connected: gw.is_none(),
    };
    Dataplane::new(
        1,
        vec![
            Interface {
                name: "lb-c".into(),
            },
            Interface {
                name: "lb-s".into(),
            },
        ],
        vec![
            Vlan {
                name: "client".into(),
                iface: 0,
                tag: None,
            },
            Vlan {
                name: "server".into(),
                iface: 1,
                tag: None,
            },
            Vlan {
                name: "tagged".into(),
                iface: 1,
                tag: Some(42),
            },
        ],
        vec![
            SelfIp {
                name: "c".into(),
                addr: "198.18.1.1/24".parse().unwrap(),
                vlan: 0,
                floating: false,
            },
            SelfIp {
                name: "s".into(),
                addr: "198.18.2.1/24".parse().unwrap(),
                vlan: 1,
                floating: true,
            },
            SelfIp {
                name: "v".into(),
                addr: "198.18.3.1/24".parse().unwrap(),
                vlan: 2,
                floating: false,
            },
        ],
        vec![VirtualAddress {
            addr: Ipv4Addr::new(198, 18, 1, 100).into(),
            arp: true,
            icmp_echo: true,
        }],
        RouteTable::new(vec![
            route("198.18.1.0/24", 0, None),
            route("198.18.2.0/24", 1, None),
            route("198.18.3.0/24", 2, None),
            route("198.18.64.0/18", 1, Some(Ipv4Addr::new(198, 18, 2, 254))),
        ]),
        vec![
            ForwardingVs {
                name: "to-servers".into(),
                destination: "198.18.2.0/24".parse().unwrap(),
                counters: VsCounters::new(workers),
            },
            ForwardingVs {
                name: "to-clients".into(),
                destination: "198.18.1.0/24".parse().unwrap(),
                counters: VsCounters::new(workers),
            },
            ForwardingVs {
                name: "to-tagged".into(),
                destination: "198.18.3.0/24".parse().unwrap(),
                counters: VsCounters::new(workers),
            },
            ForwardingVs {
                name: "far".into(),
                destination: "198.18.96.0/20".parse::<Prefix>().unwrap(),
                counters: VsCounters::new(workers),
            },
            ForwardingVs {
                name: "unrouted".into(),
                destination: "198.19.0.0/16".parse().unwrap(),
                counters: VsCounters::new(workers),
            },
        ],
        ArpConfig {
            max_entries: 64,
            ..Default::default()
        },
        1000,
    )
}

/// [`dataplane`] with the example fastl4 virtual servers: `web`, TCP
/// 198.18.1.100:80 with SNAT automap in front of 198.18.2.11–14:80, and `dns`, UDP
/// 198.18.1.100:53 in front of 198.18.2.11–14:5353.
pub fn fastl4_dataplane(workers: usize) -> Dataplane {
    use std::net::{IpAddr, SocketAddr};
    let members = |port: u16| -> Vec<SocketAddr> {
        (11..=14)
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 2, i)), port))
            .collect()
    };
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 100));
    dataplane(workers).with_fastl4(vec![
        Fastl4Vs::new(
            "web",
            Fastl4Protocol::Tcp,
            vip,
            Some(80),
            Snat::Automap,
            &members(80),
            workers,
        ),
        Fastl4Vs::new(
            "dns",
            Fastl4Protocol::Udp,
            vip,
            Some(53),
            Snat::Automap,
            &members(5353),
            workers,
        ),
    ])
}

/// A pool of `members` (round robin, no monitor: every member `unchecked`) with fresh
/// shared state.
pub fn pool_binding(members: &[std::net::SocketAddr]) -> LbBinding {
    use crate::lb::{Member, Method, MonitorStatus, Pool, PoolConfig};
    let pool = Pool::new(PoolConfig::new(
        Method::RoundRobin,
        members.iter().map(|&a| Member::new(a)).collect(),
    ))
    .expect("a valid pool");
    let states = pool.member_states();
    for id in pool.ids() {
        states.set_monitor(id, MonitorStatus::Unchecked);
    }
    let counts = pool.conn_counts();
    LbBinding {
        pool: std::sync::Arc::new(pool),
        states: std::sync::Arc::new(states),
        counts: std::sync::Arc::new(counts),
    }
}

/// The standard virtual server of the example: `web-proxy` on
/// 198.18.1.100:8080 with SNAT automap in front of 198.18.2.11–14:80.
pub fn web_proxy(workers: usize) -> crate::proxy::StandardVs {
    use std::net::{IpAddr, SocketAddr};
    let members: Vec<SocketAddr> = (11..=14)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 2, i)), 80))
        .collect();
    crate::proxy::StandardVs::new(
        "web-proxy",
        "198.18.1.100:8080".parse().unwrap(),
        pool_binding(&members),
        Snat::Automap,
        workers,
    )
}

/// [`fastl4_dataplane`] with [`web_proxy`] too: fastl4, standard and forwarding
/// virtual servers in one snapshot (the `frame` fuzz target's).
pub fn proxy_dataplane(workers: usize) -> Dataplane {
    fastl4_dataplane(workers).with_standard(vec![web_proxy(workers)])
}

/// [`dataplane`] made dual stack as the test bed is: self IPs 2001:2:0:1::1/64 (VLAN
/// `client`) and 2001:2:0:2::1/64 (VLAN `server`), virtual address 2001:2:0:1::100, a
/// route to 2001:2:0:40::/58 via 2001:2:0:2::fe, and forwarding virtual servers for
/// 2001:2:0:1::/64, 2001:2:0:2::/64, 2001:2:0:40::/58 (routed) and 2001:2:0:ff::/64
/// (no route).
pub fn dual_stack_dataplane(workers: usize) -> Dataplane {
    let d = dataplane(workers);
    let mut self_ips = d.self_ips.clone();
    self_ips.push(SelfIp {
        name: "c6".into(),
        addr: "2001:2:0:1::1/64".parse().unwrap(),
        vlan: 0,
        floating: false,
    });
    self_ips.push(SelfIp {
        name: "s6".into(),
        addr: "2001:2:0:2::1/64".parse().unwrap(),
        vlan: 1,
        floating: false,
    });
    let mut vas = d.virtual_addresses.clone();
    vas.push(VirtualAddress {
        addr: "2001:2:0:1::100".parse().unwrap(),
        arp: true,
        icmp_echo: true,
    });
    let mut routes = d.routes.routes().to_vec();
    let r6 = |p: &str, vlan, gw: Option<&str>| Route {
        prefix: p.parse().unwrap(),
        next_hop: NextHop {
            vlan,
            gateway: gw.map(|g| g.parse().unwrap()),
        },
        connected: gw.is_none(),
    };
    routes.push(r6("2001:2:0:1::/64", 0, None));
    routes.push(r6("2001:2:0:2::/64", 1, None));
    routes.push(r6("2001:2:0:40::/58", 1, Some("2001:2:0:2::fe")));
    let mut fwd = d.forwarding.clone();
    for (name, dst) in [
        ("to-servers6", "2001:2:0:2::/64"),
        ("to-clients6", "2001:2:0:1::/64"),
        ("far6", "2001:2:0:40::/58"),
        ("unrouted6", "2001:2:0:ff::/64"),
    ] {
        fwd.push(ForwardingVs {
            name: name.into(),
            destination: dst.parse().unwrap(),
            counters: VsCounters::new(workers),
        });
    }
    Dataplane::new(
        d.generation,
        d.interfaces.clone(),
        d.vlans.clone(),
        self_ips,
        vas,
        RouteTable::new(routes),
        fwd,
        d.arp,
        d.icmp_error_rate,
    )
}

/// [`dual_stack_dataplane`] with [`fastl4_dataplane`]'s virtual servers and `web6`, TCP
/// `[2001:2:0:1::100]:80` with SNAT automap in front of `[2001:2:0:2::11–14]:80`.
pub fn dual_stack_fastl4_dataplane(workers: usize) -> Dataplane {
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    let v4 = fastl4_dataplane(workers);
    let members: Vec<SocketAddr> = (0x11..=0x14)
        .map(|i| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, i)), 80))
        .collect();
    let mut vss: Vec<Fastl4Vs> = v4.fastl4.iter().map(|vs| (**vs).clone()).collect();
    vss.push(Fastl4Vs::new(
        "web6",
        Fastl4Protocol::Tcp,
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x100)),
        Some(80),
        Snat::Automap,
        &members,
        workers,
    ));
    dual_stack_dataplane(workers).with_fastl4(vss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_are_local_answered_and_sourced_per_vlan() {
        let d = dual_stack_dataplane(1);
        assert!(d.has_ipv6() && !dataplane(1).has_ipv6());
        assert_eq!(
            d.local_v6(a("2001:2:0:1::1")),
            Some(LocalKind::SelfIp { vlan: 0 })
        );
        assert!(matches!(
            d.local_v6(a("2001:2:0:1::100")),
            Some(LocalKind::Virtual { .. })
        ));
        assert_eq!(d.local_v6(a("2001:2:0:1::2")), None);
        // A self IP is answered on its own VLAN only; the VIP on its network's VLAN.
        assert!(d.answers_nd(a("2001:2:0:2::1"), 1));
        assert!(!d.answers_nd(a("2001:2:0:2::1"), 0));
        assert!(d.answers_nd(a("2001:2:0:1::100"), 0));
        assert!(!d.answers_nd(a("2001:2:0:1::100"), 1));
        assert!(!d.answers_nd(a("2001:2:0:1::7"), 0));
        assert_eq!(
            d.source_for_v6(1, a("2001:2:0:2::11")),
            Some(a("2001:2:0:2::1"))
        );
        assert_eq!(d.source_for_v6(2, a("2001:2:0:2::11")), None);
        assert_eq!(
            d.forwarding_for_v6(a("2001:2:0:2::11")).unwrap().name,
            "to-servers6"
        );
        assert!(d.forwarding_for_v6(a("2001:2:0:3::1")).is_none());
        let ann = d.nd_announcements();
        assert!(ann.contains(&(a("2001:2:0:1::1"), 0, true)));
        assert!(ann.contains(&(a("2001:2:0:1::100"), 0, false)));
        assert_eq!(ann.len(), 3);
        // The IPv4 view is unchanged.
        assert_eq!(d.announcements(), dataplane(1).announcements());
    }

    #[test]
    fn ipv6_fastl4_vips_become_virtual_addresses() {
        use std::net::{IpAddr, SocketAddr};
        let vip: IpAddr = "2001:2:0:1::200".parse().unwrap();
        let m: SocketAddr = "[2001:2:0:2::11]:80".parse().unwrap();
        let d = dual_stack_dataplane(1).with_fastl4(vec![Fastl4Vs::new(
            "web6",
            Fastl4Protocol::Tcp,
            vip,
            Some(80),
            Snat::Automap,
            &[m],
            1,
        )]);
        assert!(d.answers_nd(a("2001:2:0:1::200"), 0));
        assert!(d.is_fastl4_vip_ip(6, vip) && !d.is_fastl4_vip_ip(17, vip));
        assert_eq!(d.fastl4_for_ip(6, vip, 80).map(|(i, _)| i), Some(0));
        assert!(d.fastl4_for_ip(6, vip, 81).is_none());
    }
}
