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
