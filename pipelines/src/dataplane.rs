//! The data plane's view of the configuration: an immutable snapshot that the control
//! thread builds from the validated config and swaps in atomically; a worker picks it
//! up once per loop turn. Derived lookups (which VLAN a tag means, which addresses are
//! local) are computed here once, not per packet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::Serialize;

use crate::addr::{IfAddr, Prefix};
use crate::arp::ArpConfig;
use crate::counters::Counter;
use crate::route::RouteTable;
use crate::services::ServiceSpec;

/// A data port, by position (its index is the port index in the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel interface name.
    pub name: String,
}

/// A layer-2 segment on an interface: untagged, or one 802.1Q tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    /// Name used by the configuration.
    pub name: String,
    /// Index of the interface it lives on.
    pub iface: u16,
    /// 802.1Q VLAN ID, or `None` for untagged frames.
    pub tag: Option<u16>,
}

/// An address the appliance owns on a VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfIp {
    /// Name used by the configuration.
    pub name: String,
    /// Address and connected network.
    pub addr: IfAddr,
    /// Index of its VLAN.
    pub vlan: u16,
    /// Owned by the active unit of an HA pair (this unit is always active for now).
    pub floating: bool,
}

/// An address on which virtual servers listen; answered for ARP and ICMP echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// Answer ARP for it.
    pub arp: bool,
    /// Answer ICMP echo on it.
    pub icmp_echo: bool,
}

/// Padding so each worker's counters sit on their own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Padded<T>(pub T);

/// Traffic counters of one virtual server, one shard per worker.
#[derive(Debug)]
pub struct VsCounters {
    shards: Box<[Padded<VsShard>]>,
}

/// One worker's share of a virtual server's counters.
#[derive(Debug, Default)]
pub struct VsShard {
    /// Packets handled.
    pub packets: Counter,
    /// Bytes handled.
    pub bytes: Counter,
}

impl VsCounters {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> Arc<VsCounters> {
        Arc::new(VsCounters {
            shards: (0..workers.max(1)).map(|_| Padded::default()).collect(),
        })
    }

    /// The shard of worker `w` (the last shard if `w` is out of range).
    #[inline]
    pub fn shard(&self, w: usize) -> &VsShard {
        &self.shards[w.min(self.shards.len() - 1)].0
    }

    /// Packets over all workers.
    pub fn packets(&self) -> u64 {
        self.shards.iter().map(|s| s.0.packets.get()).sum()
    }

    /// Bytes over all workers.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.0.bytes.get()).sum()
    }
}

/// A `forwarding` virtual server: transit traffic to `destination` is routed.
#[derive(Debug, Clone)]
pub struct ForwardingVs {
    /// Name used by the configuration.
    pub name: String,
    /// Destination network it accepts.
    pub destination: Prefix,
    /// Its counters (carried over across configuration changes by name).
    pub counters: Arc<VsCounters>,
}

/// What a local address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LocalKind {
    /// A self IP on the given VLAN.
    SelfIp {
        /// Its VLAN index.
        vlan: u16,
    },
    /// A virtual address.
    Virtual {
        /// Answer ARP.
        arp: bool,
        /// Answer ICMP echo.
        icmp_echo: bool,
    },
}

/// One configuration snapshot, as the data plane uses it.
#[derive(Debug, Clone)]
pub struct Dataplane {
    /// Increases with every applied configuration.
    pub generation: u64,
    /// Data ports, in port order.
    pub interfaces: Vec<Interface>,
    /// VLANs.
    pub vlans: Vec<Vlan>,
    /// Self IPs.
    pub self_ips: Vec<SelfIp>,
    /// Virtual addresses.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Routing table, connected networks first.
    pub routes: RouteTable,
    /// Forwarding virtual servers, most specific destination first.
    pub forwarding: Vec<ForwardingVs>,
    /// Neighbour cache tunables.
    pub arp: ArpConfig,
    /// Most ICMP errors sent per second per worker.
    pub icmp_error_rate: u32,
    /// Built-in TCP services (echo, discard, chargen) on self IPs.
    pub services: Vec<ServiceSpec>,
    vlan_by_tag: Vec<Vec<(Option<u16>, u16)>>,
    locals: HashMap<Ipv4Addr, LocalKind>,
}

impl Dataplane {
    /// Builds a snapshot and its derived lookups. The caller has validated the parts
    /// (indices in range, names unique).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        generation: u64,
        interfaces: Vec<Interface>,
        vlans: Vec<Vlan>,
        self_ips: Vec<SelfIp>,
        virtual_addresses: Vec<VirtualAddress>,
        routes: RouteTable,
        mut forwarding: Vec<ForwardingVs>,
        arp: ArpConfig,
        icmp_error_rate: u32,
    ) -> Dataplane {
        let mut vlan_by_tag = vec![Vec::new(); interfaces.len()];
        for (i, v) in vlans.iter().enumerate() {
            if let Some(slot) = vlan_by_tag.get_mut(v.iface as usize) {
                slot.push((v.tag, i as u16));
            }
        }
        let mut locals = HashMap::new();
        for va in &virtual_addresses {
            if let IpAddr::V4(a) = va.addr {
                locals.insert(
                    a,
                    LocalKind::Virtual {
                        arp: va.arp,
                        icmp_echo: va.icmp_echo,
                    },
                );
            }
        }
        for s in &self_ips {
            if let IpAddr::V4(a) = s.addr.addr {
                locals.insert(a, LocalKind::SelfIp { vlan: s.vlan });
            }
        }
        forwarding.sort_by_key(|f| std::cmp::Reverse(f.destination.bits()));
        Dataplane {
            generation,
            interfaces,
            vlans,
            self_ips,
            virtual_addresses,
            routes,
            forwarding,
            arp,
            icmp_error_rate,
            services: Vec::new(),
            vlan_by_tag,
            locals,
        }
    }

    /// The same snapshot with these built-in services.
    pub fn with_services(mut self, services: Vec<ServiceSpec>) -> Dataplane {
        self.services = services;
        self
    }

    /// The VLAN index of a frame received on `iface` with `tag`.
    #[inline]
    pub fn vlan_of(&self, iface: u16, tag: Option<u16>) -> Option<u16> {
        self.vlan_by_tag
            .get(iface as usize)?
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
    }

    /// What `ip` is to the appliance, if it is local.
    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<LocalKind> {
        self.locals.get(&ip).copied()
    }

    /// The IPv4 self IP to use as source on `vlan` toward `peer`: one whose network
    /// contains the peer, else the first on the VLAN.
    pub fn source_for(&self, vlan: u16, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        let mut first = None;
        for s in self.self_ips.iter().filter(|s| s.vlan == vlan) {
            if let IpAddr::V4(a) = s.addr.addr {
                if s.addr.network().contains(IpAddr::V4(peer)) {
                    return Some(a);
                }
                first.get_or_insert(a);
            }
        }
        first
    }

    /// True if the appliance answers ARP for `ip` on `vlan`: a self IP of that VLAN,
    /// or a virtual address with ARP on whose network is on that VLAN (or on no
    /// VLAN's network at all).
    pub fn answers_arp(&self, ip: Ipv4Addr, vlan: u16) -> bool {
        match self.local(ip) {
            Some(LocalKind::SelfIp { vlan: v }) => v == vlan,
            Some(LocalKind::Virtual { arp: true, .. }) => {
                let on = |s: &&SelfIp| s.addr.network().contains(IpAddr::V4(ip));
                match self.self_ips.iter().find(on) {
                    Some(s) => s.vlan == vlan,
                    None => true,
                }
            }
            _ => false,
        }
    }

    /// The forwarding virtual server accepting `dst`, most specific first.
    #[inline]
    pub fn forwarding_for(&self, dst: Ipv4Addr) -> Option<&ForwardingVs> {
        self.forwarding
            .iter()
            .find(|f| f.destination.contains(IpAddr::V4(dst)))
    }

    /// Addresses to announce with gratuitous ARP: (address, VLAN) pairs.
    pub fn announcements(&self) -> Vec<(Ipv4Addr, u16)> {
        let mut out = Vec::new();
        for s in &self.self_ips {
            if let IpAddr::V4(a) = s.addr.addr {
                out.push((a, s.vlan));
            }
        }
        for va in self.virtual_addresses.iter().filter(|v| v.arp) {
            if let IpAddr::V4(a) = va.addr {
                for v in 0..self.vlans.len() as u16 {
                    if self.answers_arp(a, v) {
                        out.push((a, v));
                    }
                }
            }
        }
        out
    }
}
