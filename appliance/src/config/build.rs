//! Turns a validated [`Config`] into the data plane's immutable snapshot.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rouge_pipelines::addr::Prefix;
use rouge_pipelines::arp::ArpConfig;
use rouge_pipelines::dataplane::{
    Dataplane, ForwardingVs, Interface, SelfIp, VirtualAddress, Vlan, VsCounters,
};
use rouge_pipelines::route::{NextHop, Route, RouteTable};
use rouge_pipelines::services::{ServiceKind, ServiceSpec};

use super::model::{Config, VirtualType};

/// Builds snapshot number `generation` for `workers` workers. Counters of virtual
/// servers that exist in `previous` (same name) are carried over, so figures survive
/// a configuration change.
pub fn dataplane(
    cfg: &Config,
    generation: u64,
    workers: usize,
    previous: Option<&Dataplane>,
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
            Some(ServiceSpec {
                name: v.name.clone(),
                kind,
                addr,
                counters,
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
    Dataplane::new(
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
}

/// Addresses a worker answers on, for logs: (address, what).
pub fn owned_addresses(dp: &Arc<Dataplane>) -> Vec<(IpAddr, &'static str)> {
    let mut v: Vec<(IpAddr, &'static str)> =
        dp.self_ips.iter().map(|s| (s.addr.addr, "self")).collect();
    v.extend(dp.virtual_addresses.iter().map(|a| (a.addr, "virtual")));
    v
}
