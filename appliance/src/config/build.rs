//! Turns a validated [`Config`] into the data plane's immutable snapshot.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rouge_pipelines::addr::Prefix;
use rouge_pipelines::arp::ArpConfig;
use rouge_pipelines::dataplane::{
    Dataplane, Fastl4Protocol, Fastl4Vs, ForwardingVs, Interface, LbBinding, SelfIp, Snat,
    VirtualAddress, Vlan, VsCounters,
};
use rouge_pipelines::lb::{
    AdminState, ConnCounts, Member, MemberStates, Method, MonitorStatus, Pool, PoolConfig,
};
use rouge_pipelines::monitor::{MonitorSpec, ProbeKind, ProbeTls, Target};
use rouge_pipelines::route::{NextHop, Route, RouteTable};
use rouge_pipelines::services::{ServiceKind, ServiceSpec};

use super::model::{Config, L4Protocol, LbMethod, MemberState, MonitorType, VirtualType};
use super::tls::TlsRuntime;

/// Builds snapshot number `generation` for `workers` workers. Counters of virtual
/// servers that exist in `previous` (same name) are carried over, so figures survive
/// a configuration change. TLS profiles get fresh ticket keys and a clock of their own:
/// a running appliance uses [`dataplane_with`] and its [`TlsRuntime`].
pub fn dataplane(
    cfg: &Config,
    generation: u64,
    workers: usize,
    previous: Option<&Dataplane>,
) -> Dataplane {
    dataplane_with(cfg, generation, workers, previous, &TlsRuntime::new())
}

/// As [`dataplane`], with the appliance's TLS state: its wall clock, and the ticket
/// keys of each profile kept from earlier snapshots.
pub fn dataplane_with(
    cfg: &Config,
    generation: u64,
    workers: usize,
    previous: Option<&Dataplane>,
    tls: &TlsRuntime,
) -> Dataplane {
    let interfaces: Vec<Interface> = cfg
        .interfaces
        .iter()
        .map(|i| Interface {
            name: i.name.clone(),
        })
        .collect();
    let iface_index = |name: &str| {
        cfg.interfaces
            .iter()
            .position(|i| i.name == name)
            .unwrap_or(0) as u16
    };
    let vlans: Vec<Vlan> = cfg
        .vlans
        .iter()
        .map(|v| Vlan {
            name: v.name.clone(),
            iface: iface_index(&v.interface),
            tag: v.tag,
        })
        .collect();
    let vlan_index = |name: &str| cfg.vlans.iter().position(|v| v.name == name).unwrap_or(0) as u16;
    let self_ips: Vec<SelfIp> = cfg
        .self_ips
        .iter()
        .map(|s| SelfIp {
            name: s.name.clone(),
            addr: s.address,
            vlan: vlan_index(&s.vlan),
            floating: s.floating,
        })
        .collect();
    let mut routes: Vec<Route> = self_ips
        .iter()
        .map(|s| Route {
            prefix: s.addr.network(),
            next_hop: NextHop {
                vlan: s.vlan,
                gateway: None,
            },
            connected: true,
        })
        .collect();
    for r in &cfg.routes {
        let Ok(prefix) = r.destination.parse::<Prefix>() else {
            continue;
        };
        let vlan = self_ips
            .iter()
            .find(|s| s.addr.network().contains(r.gateway))
            .map(|s| s.vlan)
            .unwrap_or(0);
        routes.push(Route {
            prefix,
            next_hop: NextHop {
                vlan,
                gateway: Some(r.gateway),
            },
            connected: false,
        });
    }
    let virtual_addresses = cfg
        .virtual_addresses
        .iter()
        .map(|v| VirtualAddress {
            addr: v.address,
            arp: v.arp,
            icmp_echo: v.icmp_echo,
        })
        .collect();
    let forwarding = cfg
        .virtuals
        .iter()
        .filter(|v| v.kind == VirtualType::Forwarding)
        .filter_map(|v| {
            let destination: Prefix = v.destination.parse().ok()?;
            let counters = previous
                .and_then(|p| p.forwarding.iter().find(|f| f.name == v.name))
                .map(|f| f.counters.clone())
                .unwrap_or_else(|| VsCounters::new(workers));
            Some(ForwardingVs {
                name: v.name.clone(),
                destination,
                counters,
            })
        })
        .collect();
    let services = cfg
        .virtuals
        .iter()
        .filter_map(|v| {
            let kind = match v.kind {
                VirtualType::Echo => ServiceKind::Echo,
                VirtualType::Discard => ServiceKind::Discard,
                VirtualType::Chargen => ServiceKind::Chargen,
                _ => return None,
            };
            let addr = v.destination.parse().ok()?;
            let counters = previous
                .and_then(|p| p.services.iter().find(|s| s.name == v.name))
                .map(|s| s.counters.clone())
                .unwrap_or_else(|| VsCounters::new(workers));
            // The profile of the connections clients open to the service.
            let profile = v.tcp_profile_client.as_ref().and_then(|n| {
                cfg.tcp_profiles
                    .iter()
                    .find(|p| &p.name == n)
                    .map(|p| p.profile())
            });
            Some(ServiceSpec {
                name: v.name.clone(),
                kind,
                addr,
                counters,
                profile,
            })
        })
        .collect();
    let arp = ArpConfig {
        max_entries: cfg.arp.max_entries,
        reachable: Duration::from_secs(cfg.arp.reachable_secs),
        retry: Duration::from_millis(cfg.arp.retry_ms),
        retries: cfg.arp.retries,
        ..ArpConfig::default()
    };
    let mut built_tls = super::tls::Built::new(cfg, tls);
    let (pools, targets) = pools_and_monitors(cfg, previous, &self_ips, &routes, &mut built_tls);
    let fastl4 = fastl4_servers(cfg, workers, previous, &pools);
    let standard = super::proxy::standard_servers(cfg, workers, previous, &pools, &mut built_tls);
    let dp = Dataplane::new(
        generation,
        interfaces,
        vlans,
        self_ips,
        virtual_addresses,
        RouteTable::new(routes),
        forwarding,
        arp,
        cfg.system.icmp_error_rate,
    )
    .with_services(services)
    .with_pools(pools, targets)
    .with_fastl4(fastl4)
    .with_standard(standard);
    match super::shaping::policy(cfg) {
        Some(policy) => dp.with_shaping(policy),
        None => dp,
    }
}

/// Builds every pool (keeping the live state of pools that exist in `previous`) and the
/// monitor targets of their members (probed from the self IP toward each member); https
/// monitors take the server side of their `tls_profile` from `tls`.
fn pools_and_monitors(
    cfg: &Config,
    previous: Option<&Dataplane>,
    self_ips: &[SelfIp],
    routes: &[Route],
    tls: &mut super::tls::Built<'_>,
) -> (Vec<(String, LbBinding)>, Vec<Target>) {
    let table = RouteTable::new(routes.to_vec());
    let mut pools = Vec::new();
    let mut targets = Vec::new();
    for p in &cfg.pools {
        let members: Vec<Member> = p
            .members
            .iter()
            .map(|m| {
                Member::new(m.address)
                    .with_ratio(m.ratio.max(1))
                    .with_priority(m.priority_group)
                    .with_conn_limit(m.connection_limit)
                    .with_admin(match m.state {
                        MemberState::Enabled => AdminState::Enabled,
                        MemberState::Disabled => AdminState::Disabled,
                        MemberState::ForcedOffline => AdminState::ForcedOffline,
                    })
            })
            .collect();
        let method = match p.method {
            LbMethod::RoundRobin => Method::RoundRobin,
            LbMethod::Ratio => Method::Ratio,
            LbMethod::LeastConnections => Method::LeastConnections,
            LbMethod::WeightedLeastConnections => Method::WeightedLeastConnections,
            LbMethod::ConsistentHash => Method::ConsistentHash,
        };
        let mut pc = PoolConfig::new(method, members);
        pc.min_active_members = p.min_active_members;
        // Validation refused what Pool::new would (duplicates, ratio 0).
        let Ok(pool) = Pool::new(pc) else { continue };
        let old = previous
            .and_then(|d| d.pools.iter().find(|(n, _)| *n == p.name))
            .map(|(_, b)| b);
        let (states, counts) = match old {
            Some(b) => (
                MemberStates::carry_over(&pool, &b.pool, &b.states),
                ConnCounts::carry_over(&pool, &b.pool, &b.counts),
            ),
            None => (pool.member_states(), pool.conn_counts()),
        };
        if p.monitor.is_none() {
            // Without a monitor every member stays `unchecked`.
            for id in pool.ids() {
                states.set_monitor(id, MonitorStatus::Unchecked);
            }
        }
        let pi = pools.len() as u32;
        if let Some(m) = p
            .monitor
            .as_ref()
            .and_then(|n| cfg.monitors.iter().find(|x| &x.name == n))
        {
            let send = || {
                m.send
                    .clone()
                    .unwrap_or_else(|| "GET / HTTP/1.0\r\n\r\n".into())
            };
            let kind = match m.kind {
                MonitorType::Tcp => ProbeKind::Tcp,
                MonitorType::Http => ProbeKind::Http {
                    send: send(),
                    receive: m.receive.clone().unwrap_or_default(),
                },
                // The request is set per member below (its address is the Host).
                MonitorType::S3 if m.tls_profile.is_none() => ProbeKind::S3 {
                    send: m.send.clone().unwrap_or_default(),
                    tls: None,
                },
                MonitorType::Https | MonitorType::S3 => {
                    let profile = m.tls_profile.clone().unwrap_or_default();
                    let Some((config, _)) = tls.client(&profile) else {
                        // Validation refuses this; a profile that still cannot be built
                        // (logged by the builder) must not leave members up unprobed.
                        tracing::error!(monitor = %m.name, profile, "monitor with TLS but without a usable tls_profile: its members are down");
                        for id in pool.ids() {
                            states.set_monitor(id, MonitorStatus::Down);
                        }
                        pools.push((
                            p.name.clone(),
                            LbBinding {
                                pool: Arc::new(pool),
                                states: Arc::new(states),
                                counts: Arc::new(counts),
                            },
                        ));
                        continue;
                    };
                    let tls = ProbeTls { profile, config };
                    match m.kind {
                        MonitorType::S3 => ProbeKind::S3 {
                            send: m.send.clone().unwrap_or_default(),
                            tls: Some(tls),
                        },
                        _ => ProbeKind::Https {
                            send: send(),
                            receive: m.receive.clone().unwrap_or_default(),
                            tls,
                        },
                    }
                }
            };
            let spec = MonitorSpec {
                name: m.name.clone(),
                kind,
                interval: Duration::from_secs_f64(m.interval),
                timeout: Duration::from_secs_f64(m.timeout),
                up_after: m.up_after,
            };
            for (mi, member) in p.members.iter().enumerate() {
                let mut spec = spec.clone();
                if let ProbeKind::S3 { send, .. } = &mut spec.kind {
                    if m.send.is_none() {
                        *send = s3_request(member.address);
                    }
                }
                let ip = member.address.ip();
                let Some(route) = table.lookup(ip) else {
                    continue;
                };
                let source = self_ips
                    .iter()
                    .filter(|s| {
                        s.vlan == route.next_hop.vlan && s.addr.addr.is_ipv4() == ip.is_ipv4()
                    })
                    .map(|s| s.addr.addr)
                    .next();
                if let Some(source) = source {
                    targets.push(Target {
                        key: (pi, mi as u32),
                        addr: member.address,
                        source,
                        spec,
                    });
                }
            }
        }
        pools.push((
            p.name.clone(),
            LbBinding {
                pool: Arc::new(pool),
                states: Arc::new(states),
                counts: Arc::new(counts),
            },
        ));
    }
    (pools, targets)
}

/// The request of an s3 monitor without `send`: `GET /` naming the member (its
/// address and port) as `Host`, closing after the answer.
pub fn s3_request(member: SocketAddr) -> String {
    format!("GET / HTTP/1.1\r\nHost: {member}\r\nConnection: close\r\n\r\n")
}

/// Builds the fastl4 virtual servers, each bound to its pool.
fn fastl4_servers(
    cfg: &Config,
    workers: usize,
    previous: Option<&Dataplane>,
    pools: &[(String, LbBinding)],
) -> Vec<Fastl4Vs> {
    let mut out = Vec::new();
    for v in cfg
        .virtuals
        .iter()
        .filter(|v| v.kind == VirtualType::Fastl4)
    {
        let Some((ip, port)) = parse_vs_destination(&v.destination) else {
            continue;
        };
        let Some((_, binding)) = v
            .pool
            .as_ref()
            .and_then(|n| pools.iter().find(|(p, _)| p == n))
        else {
            continue;
        };
        let protocol = match v.protocol.unwrap_or_default() {
            L4Protocol::Tcp => Fastl4Protocol::Tcp,
            L4Protocol::Udp => Fastl4Protocol::Udp,
        };
        let snat = match v.snat.as_deref().unwrap_or("automap") {
            "none" => Snat::None,
            "pool" => Snat::Pool(v.snat_addresses.clone()),
            _ => Snat::Automap,
        };
        let addrs: Vec<SocketAddr> = binding.pool.members().iter().map(|m| m.addr).collect();
        let mut vs = Fastl4Vs::new(&v.name, protocol, ip, port, snat, &addrs, workers);
        let old = previous.and_then(|d| d.fastl4.iter().find(|f| f.name == v.name));
        if let Some(old) = old {
            vs.counters = old.counters.clone();
            for m in vs.members.iter_mut() {
                if let Some(o) = old.members.iter().find(|o| o.addr == m.addr) {
                    m.counters = o.counters.clone();
                }
            }
        }
        if let Some(t) = v.idle_timeout {
            vs.timeouts.tcp_established = Duration::from_secs(t);
            vs.timeouts.udp = Duration::from_secs(t);
        }
        if let Some(t) = v.syn_timeout {
            vs.timeouts.tcp_syn = Duration::from_secs(t);
        }
        if let Some(t) = v.closing_timeout {
            vs.timeouts.tcp_closing = Duration::from_secs(t);
        }
        vs.reset_on_member_down = v.reset_on_member_down.unwrap_or(true);
        vs.lb = Some(binding.clone());
        out.push(vs);
    }
    out
}

/// `198.18.1.100:80` or `198.18.1.100:*` (all ports).
pub fn parse_vs_destination(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(ip) = s.strip_suffix(":*") {
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        return Some((ip.parse().ok()?, None));
    }
    let sa: SocketAddr = s.parse().ok()?;
    Some((sa.ip(), Some(sa.port())))
}

/// Addresses a worker answers on, for logs: (address, what).
pub fn owned_addresses(dp: &Arc<Dataplane>) -> Vec<(IpAddr, &'static str)> {
    let mut v: Vec<(IpAddr, &'static str)> =
        dp.self_ips.iter().map(|s| (s.addr.addr, "self")).collect();
    v.extend(dp.virtual_addresses.iter().map(|a| (a.addr, "virtual")));
    v
}
