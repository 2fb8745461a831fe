//! Semantic checks of a parsed configuration: references resolve, names and addresses
//! are unique, values are in range, and features this build lacks are refused.

use std::collections::HashSet;
use std::net::IpAddr;

use rouge_pipelines::addr::Prefix;

use super::model::{Config, MonitorType, VirtualType};
use super::FieldPath;

/// One problem, before it is located in the file.
pub struct Problem {
    pub path: FieldPath,
    pub problem: String,
    pub fix: String,
}

pub(super) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn err(
        &mut self,
        table: &'static str,
        index: Option<usize>,
        field: &'static str,
        problem: String,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path: FieldPath {
                table,
                index,
                field: Some(field),
            },
            problem,
            fix: fix.into(),
        });
    }

    pub(super) fn unique<'a>(
        &mut self,
        table: &'static str,
        field: &'static str,
        names: impl Iterator<Item = &'a str>,
    ) {
        let mut seen = HashSet::new();
        for (i, n) in names.enumerate() {
            if n.is_empty() {
                self.err(
                    table,
                    Some(i),
                    field,
                    "is empty".into(),
                    format!("give every {table} a name"),
                );
            } else if !seen.insert(n) {
                self.err(
                    table,
                    Some(i),
                    field,
                    format!("`{n}` is used twice"),
                    format!("give each {table} a different {field}"),
                );
            }
        }
    }
}

/// What `rouge check` warns about without refusing the file: a fastl4 or standard
/// virtual server whose address is on no self IP's network of its family (IPv6 or
/// IPv4). Such an address belongs to no VLAN: Rouge answers neighbour discovery (or ARP)
/// for it on every VLAN, and with no self IP of its family at all none of its frames
/// has a source of that family to resolve neighbours from.
pub fn warnings(cfg: &Config) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    for (i, v) in cfg.virtuals.iter().enumerate() {
        if !matches!(v.kind, VirtualType::Fastl4 | VirtualType::Standard) {
            continue;
        }
        let Some((ip, _)) = super::build::parse_vs_destination(&v.destination) else {
            continue; // refused by validate()
        };
        let family = if ip.is_ipv6() { "IPv6" } else { "IPv4" };
        let same: Vec<_> = cfg
            .self_ips
            .iter()
            .filter(|s| s.address.addr.is_ipv6() == ip.is_ipv6())
            .collect();
        if same.iter().any(|s| s.address.network().contains(ip)) {
            continue;
        }
        let example = if ip.is_ipv6() {
            "address = \"2001:2:0:1::1/64\""
        } else {
            "address = \"198.18.1.1/24\""
        };
        let (problem, fix) = if same.is_empty() {
            (
                format!("{ip} is {family} but no VLAN has an {family} self IP: its VLAN is unknown and the appliance has no {family} address to answer or resolve neighbours from"),
                format!("add a [[self_ip]] of the clients' {family} network on their VLAN ({example}, vlan = \"...\"), or use an {} virtual address", if ip.is_ipv6() { "IPv4" } else { "IPv6" }),
            )
        } else {
            (
                format!("{ip} is on no {family} self IP's network ({}): it belongs to no VLAN, and neighbours are answered for it on every VLAN", list(same.iter().map(|s| s.name.as_str()))),
                format!("use an address inside the {family} network of the self IP on the clients' VLAN, or add a [[self_ip]] of its network on that VLAN ({example})"),
            )
        };
        c.err("virtual", Some(i), "destination", problem, fix);
    }
    c.problems.extend(super::http::warnings(cfg));
    c.problems
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "(none defined)".into()
    } else {
        v.join(", ")
    }
}

pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let s = &cfg.system;
    if let Some(cores) = &s.cores {
        if cores.is_empty() {
            c.err(
                "system",
                None,
                "cores",
                "is an empty list".into(),
                "list at least one core, e.g. cores = [1], or remove the line for the default",
            );
        }
        let mut seen = HashSet::new();
        if let Some(dup) = cores.iter().find(|k| !seen.insert(**k)) {
            c.err(
                "system",
                None,
                "cores",
                format!("core {dup} is listed twice"),
                "list each core once; one worker runs per core",
            );
        }
    }
    if let Some(p) = s.realtime_priority {
        if !(1..=rouge_drivers::sched::MAX_FIFO_PRIORITY).contains(&p) {
            c.err(
                "system",
                None,
                "realtime_priority",
                format!("{p} is out of range"),
                "use a SCHED_FIFO priority from 1 to 99 (e.g. 50), or remove the field for normal scheduling",
            );
        }
    }
    if !(256..=1 << 20).contains(&s.pool_size) {
        c.err(
            "system",
            None,
            "pool_size",
            format!("{} is out of range", s.pool_size),
            "use 256 to 1048576 buffers per worker (default 8192)",
        );
    }

    if let Some(addr) = cfg.management.http {
        if addr.port() == 0 {
            c.err(
                "management",
                None,
                "http",
                format!("{addr} has no port"),
                "give the port to serve on, e.g. http = \"127.0.0.1:9400\"",
            );
        }
    }

    if cfg.interfaces.is_empty() {
        c.problems.push(Problem {
            path: FieldPath {
                table: "interface",
                index: None,
                field: None,
            },
            problem: "no data interface is configured".into(),
            fix: "add [[interface]] with name = \"lb-c\" (one table per port)".into(),
        });
    }
    c.unique(
        "interface",
        "name",
        cfg.interfaces.iter().map(|i| i.name.as_str()),
    );
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        if itf.name.len() > 15 {
            c.err(
                "interface",
                Some(i),
                "name",
                format!("`{}` is longer than 15 characters", itf.name),
                "use the kernel's interface name (ip link shows it)",
            );
        }
    }

    super::drivers::check(&mut c, cfg);

    c.unique("vlan", "name", cfg.vlans.iter().map(|v| v.name.as_str()));
    let mut tags = HashSet::new();
    for (i, v) in cfg.vlans.iter().enumerate() {
        if !cfg.interfaces.iter().any(|x| x.name == v.interface) {
            c.err(
                "vlan",
                Some(i),
                "interface",
                format!("no interface named `{}`", v.interface),
                format!(
                    "use one of: {}",
                    list(cfg.interfaces.iter().map(|x| x.name.as_str()))
                ),
            );
        }
        if let Some(t) = v.tag {
            if !(1..=4094).contains(&t) {
                c.err(
                    "vlan",
                    Some(i),
                    "tag",
                    format!("{t} is not a VLAN ID"),
                    "use 1-4094, or remove `tag` for untagged frames",
                );
            }
        }
        if !tags.insert((v.interface.as_str(), v.tag)) {
            let what = v
                .tag
                .map(|t| format!("tag {t}"))
                .unwrap_or_else(|| "untagged frames".into());
            c.err(
                "vlan",
                Some(i),
                "tag",
                format!("another VLAN already takes {what} on `{}`", v.interface),
                "give each VLAN of an interface its own tag (at most one untagged)",
            );
        }
    }

    c.unique(
        "self_ip",
        "name",
        cfg.self_ips.iter().map(|s| s.name.as_str()),
    );
    let mut addrs = HashSet::new();
    for (i, sip) in cfg.self_ips.iter().enumerate() {
        if !cfg.vlans.iter().any(|v| v.name == sip.vlan) {
            c.err(
                "self_ip",
                Some(i),
                "vlan",
                format!("no VLAN named `{}`", sip.vlan),
                format!(
                    "define it under [[vlan]] or use one of: {}",
                    list(cfg.vlans.iter().map(|v| v.name.as_str()))
                ),
            );
        }
        match sip.address.addr {
            IpAddr::V6(a) => {
                let net = sip.address.network();
                let special = a.is_multicast()
                    || a.is_unspecified()
                    || a.is_loopback()
                    || a.segments()[0] & 0xffc0 == 0xfe80;
                if special {
                    c.err(
                        "self_ip",
                        Some(i),
                        "address",
                        format!("{a} is multicast, link-local, loopback or unspecified"),
                        "use a global or unique-local address such as 2001:2:0:1::1/64 (link-local addresses are derived from each interface's MAC)",
                    );
                } else if sip.address.len > 126 {
                    c.err(
                        "self_ip",
                        Some(i),
                        "address",
                        format!("/{} leaves no room for neighbours", sip.address.len),
                        "give the connected network's length, e.g. /64",
                    );
                } else if IpAddr::V6(a) == net.addr() {
                    c.err(
                        "self_ip",
                        Some(i),
                        "address",
                        format!("{a} is the subnet-router anycast address of {net}"),
                        "use a host address inside the network, e.g. ::1",
                    );
                }
            }
            IpAddr::V4(a) => {
                let net = sip.address.network();
                if sip.address.len > 30 {
                    c.err(
                        "self_ip",
                        Some(i),
                        "address",
                        format!("/{} leaves no room for neighbours", sip.address.len),
                        "give the connected network's length, e.g. /24",
                    );
                } else if IpAddr::V4(a) == net.addr()
                    || a.octets()[3] == 255 && sip.address.len <= 24
                {
                    c.err(
                        "self_ip",
                        Some(i),
                        "address",
                        format!("{} is the network or broadcast address of {}", a, net),
                        "use a host address inside the network, e.g. .1",
                    );
                }
            }
        }
        if !addrs.insert(sip.address.addr) {
            c.err(
                "self_ip",
                Some(i),
                "address",
                format!("{} is configured twice", sip.address.addr),
                "each self IP needs its own address",
            );
        }
    }

    c.unique("route", "name", cfg.routes.iter().map(|r| r.name.as_str()));
    for (i, r) in cfg.routes.iter().enumerate() {
        if let Err(e) = r.destination.parse::<Prefix>() {
            c.err(
                "route",
                Some(i),
                "destination",
                e.to_string(),
                "write a network such as 0.0.0.0/0 or 198.18.64.0/18",
            );
        }
        if let Ok(p) = r.destination.parse::<Prefix>() {
            if p.addr().is_ipv6() != r.gateway.is_ipv6() {
                c.err(
                    "route",
                    Some(i),
                    "gateway",
                    format!("{} and {} are of different address families", r.gateway, p),
                    "give an IPv6 route an IPv6 gateway (and IPv4 an IPv4 one)",
                );
            }
        }
        let on_link = cfg
            .self_ips
            .iter()
            .any(|s| s.address.network().contains(r.gateway));
        if !on_link {
            c.err(
                "route",
                Some(i),
                "gateway",
                format!("{} is not on any self IP's network", r.gateway),
                "use a gateway address inside a connected network, e.g. 198.18.2.254",
            );
        }
    }

    let mut vas = HashSet::new();
    for (i, va) in cfg.virtual_addresses.iter().enumerate() {
        if addrs.contains(&va.address) {
            c.err(
                "virtual_address",
                Some(i),
                "address",
                format!("{} is already a self IP", va.address),
                "use a separate address, e.g. from 198.18.1.100-199",
            );
        }
        if !vas.insert(va.address) {
            c.err(
                "virtual_address",
                Some(i),
                "address",
                format!("{} is listed twice", va.address),
                "list each virtual address once",
            );
        }
    }

    check_pools_and_monitors(&mut c, cfg);
    super::shaping::check(&mut c, cfg);

    c.unique(
        "virtual",
        "name",
        cfg.virtuals.iter().map(|v| v.name.as_str()),
    );
    let mut dests = HashSet::new();
    let mut services = HashSet::new();
    let mut fastl4 = HashSet::new();
    let mut standard = HashSet::new();
    super::proxy::check_profiles(&mut c, cfg);
    super::tls::check(&mut c, cfg);
    super::http::check(&mut c, cfg);
    for (i, v) in cfg.virtuals.iter().enumerate() {
        match v.kind {
            VirtualType::Forwarding => match v.destination.parse::<Prefix>() {
                Ok(p) => {
                    if !dests.insert(p) {
                        c.err(
                            "virtual",
                            Some(i),
                            "destination",
                            format!("another forwarding virtual server already takes {p}"),
                            "give each forwarding virtual server its own network",
                        );
                    }
                }
                Err(e) => c.err(
                    "virtual",
                    Some(i),
                    "destination",
                    e.to_string(),
                    "a forwarding virtual server takes a network such as 198.18.2.0/24",
                ),
            },
            VirtualType::Echo | VirtualType::Discard | VirtualType::Chargen => match v.destination.parse::<std::net::SocketAddr>() {
                Ok(sa) if !addrs.contains(&sa.ip()) => c.err(
                    "virtual",
                    Some(i),
                    "destination",
                    format!("{} is not a self IP; built-in services listen on the appliance's own addresses", sa.ip()),
                    "use a self IP and port, e.g. 198.18.1.1:7",
                ),
                Ok(sa) if sa.port() == 0 => c.err("virtual", Some(i), "destination", "port 0 is not a port".into(), "use a port such as 7, 9 or 19"),
                Ok(sa) => {
                    if !services.insert(sa) {
                        c.err("virtual", Some(i), "destination", format!("another service already listens on {sa}"), "give each service its own port");
                    }
                    if let Some(n) = &v.tcp_profile_client {
                        if !cfg.tcp_profiles.iter().any(|p| &p.name == n) {
                            let known: Vec<&str> = cfg.tcp_profiles.iter().map(|p| p.name.as_str()).collect();
                            c.err("virtual", Some(i), "tcp_profile_client", format!("no tcp_profile named `{n}`"), format!("define it under [[tcp_profile]] (defined: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") }));
                        }
                    }
                }
                Err(_) => c.err("virtual", Some(i), "destination", format!("`{}` is not ADDRESS:PORT", v.destination), "write e.g. 198.18.1.1:7"),
            },
            VirtualType::Fastl4 => {
                match super::build::parse_vs_destination(&v.destination) {
                    Some((ip, _)) if ip.is_ipv6() && v.snat.as_deref() == Some("pool") => c.err("virtual", Some(i), "snat", "SNAT pools hold IPv4 addresses; an IPv6 virtual server translates to its egress self IP".into(), "use snat = \"automap\" (or \"none\") on an IPv6 virtual server"),
                    Some((ip, _)) if v.pool.as_ref().and_then(|p| cfg.pools.iter().find(|x| &x.name == p)).is_some_and(|p| p.members.iter().any(|m| m.address.is_ipv6() != ip.is_ipv6())) => c.err("virtual", Some(i), "destination", format!("{ip} and the members of pool `{}` are of different address families; fastl4 translates addresses, not families", v.pool.as_deref().unwrap_or_default()), "use an IPv6 virtual address in front of IPv6 members (and IPv4 in front of IPv4)"),
                    Some((ip, _)) if addrs.contains(&ip) => c.err("virtual", Some(i), "destination", format!("{ip} is a self IP"), "use a virtual address, e.g. from 198.18.1.100-199"),
                    Some((ip, port)) => {
                        let proto = v.protocol.unwrap_or_default();
                        if !fastl4.insert((ip, port, proto)) {
                            c.err("virtual", Some(i), "destination", format!("another fastl4 virtual server already takes {}", v.destination), "give each virtual server its own address, port and protocol");
                        }
                    }
                    None => c.err("virtual", Some(i), "destination", format!("`{}` is not ADDRESS:PORT", v.destination), "write e.g. 198.18.1.100:80, or 198.18.1.100:* for all ports"),
                }
                match &v.pool {
                    None => c.err("virtual", Some(i), "pool", "a fastl4 virtual server needs a pool".into(), "add pool = \"NAME\" naming a [[pool]]"),
                    Some(p) if !cfg.pools.iter().any(|x| &x.name == p) => c.err(
                        "virtual",
                        Some(i),
                        "pool",
                        format!("no pool named `{p}`"),
                        format!("define it under [[pool]] or use one of: {}", list(cfg.pools.iter().map(|x| x.name.as_str()))),
                    ),
                    Some(_) => {}
                }
                for (field, value) in [("idle_timeout", v.idle_timeout), ("syn_timeout", v.syn_timeout), ("closing_timeout", v.closing_timeout)] {
                    if let Some(t) = value {
                        if !(1..=604_800).contains(&t) {
                            c.err("virtual", Some(i), field, format!("{t} is out of range"), "use 1 to 604800 seconds");
                        }
                    }
                }
                match v.snat.as_deref().unwrap_or("automap") {
                    "automap" | "none" => {}
                    "pool" if !v.snat_addresses.is_empty() => {}
                    "pool" => c.err("virtual", Some(i), "snat_addresses", "snat = \"pool\" needs addresses".into(), "add snat_addresses = [\"198.18.2.200\"]"),
                    other => c.err("virtual", Some(i), "snat", format!("`{other}` is not a SNAT mode"), "use \"automap\" (the egress self IP), \"none\", or \"pool\" with snat_addresses"),
                }
            }
            VirtualType::Standard => {
                super::proxy::check_standard(&mut c, cfg, i, &addrs, &mut standard)
            }
        }
    }

    let a = &cfg.arp;
    if !(16..=1_000_000).contains(&a.max_entries) {
        c.err(
            "arp",
            None,
            "max_entries",
            format!("{} is out of range", a.max_entries),
            "use 16 to 1000000 (default 4096)",
        );
    }
    if !(1..=10).contains(&a.retries) {
        c.err(
            "arp",
            None,
            "retries",
            format!("{} is out of range", a.retries),
            "use 1 to 10 (default 3)",
        );
    }
    if !(10..=60_000).contains(&a.retry_ms) {
        c.err(
            "arp",
            None,
            "retry_ms",
            format!("{} is out of range", a.retry_ms),
            "use 10 to 60000 milliseconds (default 1000)",
        );
    }
    if !(1..=86_400).contains(&a.reachable_secs) {
        c.err(
            "arp",
            None,
            "reachable_secs",
            format!("{} is out of range", a.reachable_secs),
            "use 1 to 86400 seconds (default 60)",
        );
    }
    c.problems
}

/// The `tls_profile` of https monitor `i`: named, defined, and able to verify.
fn check_monitor_tls(c: &mut Checker, cfg: &Config, i: usize, profile: Option<&str>) {
    let known = list(cfg.tls_profiles.iter().map(|p| p.name.as_str()));
    let Some(n) = profile else {
        c.err(
            "monitor",
            Some(i),
            "tls_profile",
            "an https monitor needs a TLS profile saying how to verify members".into(),
            format!(
                "add tls_profile = \"NAME\" naming a [[tls_profile]] with ca = \"tls/ca.crt\" (defined: {known})"
            ),
        );
        return;
    };
    let Some(p) = cfg.tls_profiles.iter().find(|p| p.name == n) else {
        c.err(
            "monitor",
            Some(i),
            "tls_profile",
            format!("no tls_profile named `{n}`"),
            format!("define it under [[tls_profile]] (defined: {known})"),
        );
        return;
    };
    if p.verifies() && p.ca.is_none() {
        c.err(
            "monitor",
            Some(i),
            "tls_profile",
            format!("tls_profile `{n}` verifies members' certificates (verify is on by default) but names no ca"),
            format!("add ca = \"tls/ca.crt\" (the CA bundle members' certificates chain to) to tls_profile `{n}`, or write verify = false there to accept any certificate"),
        );
    }
}

fn check_pools_and_monitors(c: &mut Checker, cfg: &Config) {
    c.unique(
        "monitor",
        "name",
        cfg.monitors.iter().map(|m| m.name.as_str()),
    );
    for (i, m) in cfg.monitors.iter().enumerate() {
        if !(m.interval.is_finite() && (0.1..=3600.0).contains(&m.interval)) {
            c.err(
                "monitor",
                Some(i),
                "interval",
                format!("{} is out of range", m.interval),
                "use 0.1 to 3600 seconds, e.g. interval = 1",
            );
        }
        if !(m.timeout.is_finite() && m.timeout > m.interval && m.timeout <= 86_400.0) {
            c.err(
                "monitor",
                Some(i),
                "timeout",
                format!(
                    "{} must be longer than the interval ({})",
                    m.timeout, m.interval
                ),
                "use about three intervals, e.g. interval = 1 with timeout = 3",
            );
        }
        if !(1..=100).contains(&m.up_after) {
            c.err(
                "monitor",
                Some(i),
                "up_after",
                format!("{} is out of range", m.up_after),
                "use 1 to 100 consecutive successes",
            );
        }
        if !matches!(m.kind, MonitorType::Https | MonitorType::S3) && m.tls_profile.is_some() {
            c.err(
                "monitor",
                Some(i),
                "tls_profile",
                "only an https monitor or an s3 monitor speaks TLS".into(),
                "use type = \"https\" (or \"s3\"), or remove tls_profile",
            );
        }
        match m.kind {
            MonitorType::Http | MonitorType::Https => {
                if m.receive.as_deref().unwrap_or("").is_empty() {
                    c.err(
                        "monitor",
                        Some(i),
                        "receive",
                        format!(
                            "an {} monitor needs text to look for in the response",
                            m.kind.as_str()
                        ),
                        "add receive = \"200\"",
                    );
                }
                if m.kind == MonitorType::Https {
                    check_monitor_tls(c, cfg, i, m.tls_profile.as_deref());
                }
            }
            MonitorType::S3 => {
                if m.receive.is_some() {
                    c.err(
                        "monitor",
                        Some(i),
                        "receive",
                        "an s3 monitor takes any well-formed HTTP status line as alive (an S3 server answers 403 without credentials)".into(),
                        "remove receive, or use type = \"http\" to look for a text",
                    );
                }
                if m.send.as_deref().is_some_and(|s| {
                    !s.starts_with(|c: char| c.is_ascii_uppercase()) || !s.ends_with("\r\n\r\n")
                }) {
                    c.err(
                        "monitor",
                        Some(i),
                        "send",
                        "is not an HTTP request ending with an empty line".into(),
                        "write e.g. send = \"GET / HTTP/1.1\\r\\nHost: s3.rouge.test\\r\\nConnection: close\\r\\n\\r\\n\", or remove it for that request with the member's address as Host",
                    );
                }
                if m.tls_profile.is_some() {
                    check_monitor_tls(c, cfg, i, m.tls_profile.as_deref());
                }
            }
            MonitorType::Tcp => {
                if m.send.is_some() || m.receive.is_some() {
                    c.err(
                        "monitor",
                        Some(i),
                        "send",
                        "a tcp monitor only checks the handshake; send and receive are for http and https"
                            .into(),
                        "use type = \"http\" or remove send and receive",
                    );
                }
            }
        }
    }
    c.unique("pool", "name", cfg.pools.iter().map(|p| p.name.as_str()));
    for (i, p) in cfg.pools.iter().enumerate() {
        if let Some(m) = &p.monitor {
            if !cfg.monitors.iter().any(|x| &x.name == m) {
                c.err(
                    "pool",
                    Some(i),
                    "monitor",
                    format!("no monitor named `{m}`"),
                    format!(
                        "define it under [[monitor]] or use one of: {}",
                        list(cfg.monitors.iter().map(|x| x.name.as_str()))
                    ),
                );
            }
        }
        if p.members.is_empty() {
            c.err(
                "pool",
                Some(i),
                "members",
                "a pool needs at least one member".into(),
                "add members = [{ address = \"198.18.2.11:80\" }]",
            );
        }
        let mut seen = HashSet::new();
        for m in &p.members {
            if !seen.insert(m.address) {
                c.err(
                    "pool",
                    Some(i),
                    "members",
                    format!("{} is listed twice", m.address),
                    "list each member address once",
                );
            }
            if m.ratio == 0 {
                c.err(
                    "pool",
                    Some(i),
                    "members",
                    format!("member {} has ratio 0", m.address),
                    "use a ratio of 1 or more (or disable the member)",
                );
            }
        }
    }
}

#[cfg(test)]
mod warning_tests {
    const TESTBED: &str = include_str!("../../configs/testbed.toml");

    /// The address warnings of `text`, read as if it were the test bed's file (its TLS
    /// paths resolve there).
    fn warnings(text: &str) -> Vec<String> {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/testbed.toml");
        let cfg = super::super::parse(file, text).expect("valid");
        super::super::located("t.toml", text, super::warnings(&cfg))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_testbed_config_has_no_warnings() {
        assert_eq!(warnings(TESTBED), Vec::<String>::new());
    }

    #[test]
    fn an_ipv6_virtual_address_without_an_ipv6_self_ip_is_warned_about() {
        // Without the IPv6 self IPs, web6 and dns6 have no VLAN of their family.
        let text = TESTBED
            .replace(
                "address = \"2001:2:0:1::1/64\"",
                "address = \"198.18.3.1/24\"",
            )
            .replace(
                "address = \"2001:2:0:2::1/64\"",
                "address = \"198.18.4.1/24\"",
            )
            // Forwarding to IPv6 networks is fine without self IPs; keep the file valid.
            .replace(
                "snat = \"automap\"\n\n# UDP over IPv6",
                "snat = \"none\"\n\n# UDP over IPv6",
            );
        let w = warnings(&text);
        assert!(!w.is_empty());
        let web6 = w
            .iter()
            .find(|m| m.contains("2001:2:0:1::100"))
            .expect("web6 warned about");
        assert!(web6.starts_with("t.toml:"), "{web6}");
        assert!(web6.contains(".destination: "), "{web6}");
        assert!(web6.contains("no VLAN has an IPv6 self IP"), "{web6}");
        assert!(web6.contains("fix: add a [[self_ip]]"), "{web6}");
        assert!(w.iter().all(|m| !m.contains("198.18.1.100")), "{w:?}");
    }

    #[test]
    fn a_virtual_address_off_every_self_ip_network_is_warned_about_in_both_families() {
        let text = TESTBED
            .replace(
                "destination = \"[2001:2:0:1::100]:80\"",
                "destination = \"[2001:2:0:9::100]:80\"",
            )
            .replace(
                "destination = \"198.18.1.100:53\"",
                "destination = \"198.18.9.100:53\"",
            );
        let w = warnings(&text);
        assert_eq!(w.len(), 2, "{w:?}");
        let line = |needle: &str| {
            TESTBED
                .lines()
                .position(|l| l.contains(needle))
                .map(|n| n + 1)
                .unwrap()
        };
        let v6 = w.iter().find(|m| m.contains("2001:2:0:9::100")).unwrap();
        assert!(
            v6.starts_with(&format!(
                "t.toml:{}: virtual[",
                line("[2001:2:0:1::100]:80")
            )),
            "{v6}"
        );
        assert!(v6.contains("on no IPv6 self IP's network (client-self6, server-self6)"));
        let v4 = w.iter().find(|m| m.contains("198.18.9.100")).unwrap();
        assert!(v4.contains("on no IPv4 self IP's network (client-self, server-self)"));
        assert!(v4.contains("fix: use an address inside the IPv4 network"));
    }
}
