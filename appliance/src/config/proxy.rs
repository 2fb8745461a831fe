//! The full-proxy part of the configuration: `[[tcp_profile]]` tables, the checks of
//! `type = "standard"` virtual servers, and the [`StandardVs`] built from them.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rouge_pipelines::addr::Prefix;
use rouge_pipelines::dataplane::{Dataplane, LbBinding, Snat};
use rouge_pipelines::proxy::{ProxyCounters, StandardVs, DEFAULT_BUFFER_HIGH, DEFAULT_BUFFER_LOW};
use rouge_pipelines::tcp::{CongestionAlgo, Keepalive, TcpProfile};

use super::model::{Config, VirtualType};
use super::validate::Checker;

/// A TCP profile (`[[tcp_profile]]`), named by standard virtual servers'
/// `tcp_profile_client` and `tcp_profile_server`. Unset fields keep the built-in
/// defaults (given in each field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProfileCfg {
    /// Name the virtual servers use.
    pub name: String,
    /// Receive buffer per connection in bytes (default 262144): the largest window offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_buffer: Option<usize>,
    /// Send buffer per connection in bytes (default 262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_buffer: Option<usize>,
    /// Bytes waiting unsent toward this side above which the proxy stops reading the
    /// other side (default 131072).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_buffer_high: Option<usize>,
    /// Bytes waiting unsent toward this side below which reading the other side
    /// resumes (default 98304).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_buffer_low: Option<usize>,
    /// Offer window scaling (RFC 7323) (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_scaling: Option<bool>,
    /// Nagle's algorithm (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nagle: Option<bool>,
    /// Delayed ACK in milliseconds, 0 = off (default 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed_ack_ms: Option<u64>,
    /// Congestion control: `newreno`, `cubic` or `bbr` (BBR v1, paced) (default cubic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion: Option<String>,
    /// Largest segment payload offered and sent (default 1460).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss: Option<u16>,
    /// Seconds without a segment either way before the connection is reset (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Seconds of idleness before keepalive probes start, then one per 75 s, 9 probes
    /// (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u64>,
    /// Seconds a closed connection stays in TIME-WAIT (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<u64>,
}

impl TcpProfileCfg {
    /// The stack profile this table describes.
    pub fn profile(&self) -> TcpProfile {
        let d = TcpProfile::default();
        TcpProfile {
            recv_buffer: self.rx_buffer.unwrap_or(d.recv_buffer),
            send_buffer: self.tx_buffer.unwrap_or(d.send_buffer),
            window_scaling: self.window_scaling.unwrap_or(d.window_scaling),
            nagle: self.nagle.unwrap_or(d.nagle),
            delayed_ack: self
                .delayed_ack_ms
                .map_or(d.delayed_ack, Duration::from_millis),
            congestion: match self.congestion.as_deref() {
                Some("newreno") => CongestionAlgo::NewReno,
                Some("cubic") => CongestionAlgo::Cubic,
                Some("bbr") => CongestionAlgo::Bbr,
                _ => d.congestion,
            },
            mss: self.mss.unwrap_or(d.mss),
            idle_timeout: self.idle_timeout.map(Duration::from_secs),
            keepalive: self.keepalive.map(|s| Keepalive {
                idle: Duration::from_secs(s),
                interval: Duration::from_secs(75),
                probes: 9,
            }),
            time_wait: self.time_wait.map_or(d.time_wait, Duration::from_secs),
            ..d
        }
    }

    /// The proxy buffer marks (high, low).
    pub fn proxy_buffer(&self) -> (usize, usize) {
        (
            self.proxy_buffer_high.unwrap_or(DEFAULT_BUFFER_HIGH),
            self.proxy_buffer_low.unwrap_or(DEFAULT_BUFFER_LOW),
        )
    }
}

/// Checks the `[[tcp_profile]]` tables.
pub(super) fn check_profiles(c: &mut Checker, cfg: &Config) {
    c.unique(
        "tcp_profile",
        "name",
        cfg.tcp_profiles.iter().map(|p| p.name.as_str()),
    );
    for (i, p) in cfg.tcp_profiles.iter().enumerate() {
        let t = "tcp_profile";
        for (field, v) in [("rx_buffer", p.rx_buffer), ("tx_buffer", p.tx_buffer)] {
            if let Some(v) = v {
                if !(4096..=64 << 20).contains(&v) {
                    c.err(
                        t,
                        Some(i),
                        field,
                        format!("{v} is out of range"),
                        "use 4096 to 67108864 bytes, e.g. 262144",
                    );
                }
            }
        }
        let (high, low) = p.proxy_buffer();
        if !(1024..=64 << 20).contains(&high) {
            c.err(
                t,
                Some(i),
                "proxy_buffer_high",
                format!("{high} is out of range"),
                "use 1024 to 67108864 bytes, e.g. 131072",
            );
        } else if low >= high {
            c.err(
                t,
                Some(i),
                "proxy_buffer_low",
                format!("{low} is not below proxy_buffer_high ({high})"),
                "use about three quarters of proxy_buffer_high",
            );
        }
        if let Some(ms) = p.delayed_ack_ms {
            if ms > 500 {
                c.err(
                    t,
                    Some(i),
                    "delayed_ack_ms",
                    format!("{ms} is out of range"),
                    "use 0 (off) to 500 milliseconds (RFC 9293 allows at most 500)",
                );
            }
        }
        if let Some(cc) = p.congestion.as_deref() {
            if !["newreno", "cubic", "bbr"].contains(&cc) {
                c.err(
                    t,
                    Some(i),
                    "congestion",
                    format!("`{cc}` is not a congestion control"),
                    "use \"newreno\", \"cubic\" or \"bbr\"",
                );
            }
        }
        if let Some(m) = p.mss {
            if !(536..=9000).contains(&m) {
                c.err(
                    t,
                    Some(i),
                    "mss",
                    format!("{m} is out of range"),
                    "use 536 to 9000 bytes, e.g. 1460",
                );
            }
        }
        for (field, v, max) in [
            ("idle_timeout", p.idle_timeout, 604_800),
            ("keepalive", p.keepalive, 86_400),
            ("time_wait", p.time_wait, 600),
        ] {
            if let Some(v) = v {
                if !(1..=max).contains(&v) {
                    c.err(
                        t,
                        Some(i),
                        field,
                        format!("{v} is out of range"),
                        format!("use 1 to {max} seconds"),
                    );
                }
            }
        }
    }
}

/// Checks one `type = "standard"` virtual server (index `i`); `addrs` are the self IPs,
/// `taken` the (address, port) pairs already used by standard virtual servers.
pub(super) fn check_standard(
    c: &mut Checker,
    cfg: &Config,
    i: usize,
    addrs: &HashSet<IpAddr>,
    taken: &mut HashSet<SocketAddr>,
) {
    let v = &cfg.virtuals[i];
    let t = "virtual";
    match v.destination.parse::<SocketAddr>() {
        Ok(sa)
            if v.snat.as_deref() == Some("none")
                && v.pool
                    .as_ref()
                    .and_then(|p| cfg.pools.iter().find(|x| &x.name == p))
                    .is_some_and(|p| p.members.iter().any(|m| m.address.is_ipv6() != sa.is_ipv6())) =>
        {
            c.err(
                t,
                Some(i),
                "snat",
                format!(
                    "{} and members of pool `{}` are of different address families: without SNAT the member would see the client's address",
                    sa.ip(),
                    v.pool.as_deref().unwrap_or_default()
                ),
                "use snat = \"automap\" to put an IPv6 virtual server in front of IPv4 members (or the other way round)",
            )
        }
        Ok(sa) if addrs.contains(&sa.ip()) => c.err(
            t,
            Some(i),
            "destination",
            format!("{} is a self IP", sa.ip()),
            "use a virtual address, e.g. 198.18.1.100:8080",
        ),
        Ok(sa) if sa.port() == 0 => c.err(
            t,
            Some(i),
            "destination",
            "port 0 is not a port".into(),
            "use a port such as 80 or 8080",
        ),
        Ok(sa) => {
            let fastl4_same = cfg.virtuals.iter().any(|o| {
                o.kind == VirtualType::Fastl4
                    && super::build::parse_vs_destination(&o.destination).is_some_and(
                        |(ip, port)| {
                            ip == sa.ip()
                                && port.is_none_or(|p| p == sa.port())
                                && o.protocol.unwrap_or_default() == super::model::L4Protocol::Tcp
                        },
                    )
            });
            if fastl4_same || !taken.insert(sa) {
                c.err(
                    t,
                    Some(i),
                    "destination",
                    format!("another virtual server already takes TCP {sa}"),
                    "give each virtual server its own address and port",
                );
            }
        }
        Err(_) => c.err(
            t,
            Some(i),
            "destination",
            format!("`{}` is not ADDRESS:PORT", v.destination),
            "write e.g. 198.18.1.100:8080",
        ),
    }
    match &v.pool {
        None => c.err(
            t,
            Some(i),
            "pool",
            "a standard virtual server needs a pool".into(),
            "add pool = \"NAME\" naming a [[pool]]",
        ),
        Some(p) if !cfg.pools.iter().any(|x| &x.name == p) => c.err(
            t,
            Some(i),
            "pool",
            format!("no pool named `{p}`"),
            "define it under [[pool]]",
        ),
        Some(_) => {}
    }
    for (field, name) in [
        ("tcp_profile_client", &v.tcp_profile_client),
        ("tcp_profile_server", &v.tcp_profile_server),
    ] {
        if let Some(n) = name {
            if !cfg.tcp_profiles.iter().any(|p| &p.name == n) {
                let known: Vec<&str> = cfg.tcp_profiles.iter().map(|p| p.name.as_str()).collect();
                c.err(
                    t,
                    Some(i),
                    field,
                    format!("no tcp_profile named `{n}`"),
                    format!(
                        "define it under [[tcp_profile]] (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
    }
    match v.snat.as_deref().unwrap_or("automap") {
        "automap" | "none" => {}
        "pool" if !v.snat_addresses.is_empty() => {}
        "pool" => c.err(
            t,
            Some(i),
            "snat_addresses",
            "snat = \"pool\" needs addresses".into(),
            "add snat_addresses = [\"198.18.2.200\"]",
        ),
        other => c.err(
            t,
            Some(i),
            "snat",
            format!("`{other}` is not a SNAT mode"),
            "use \"automap\" (the egress self IP), \"none\", or \"pool\" with snat_addresses",
        ),
    }
    for (k, a) in v.allow.iter().enumerate() {
        if a.parse::<Prefix>().is_err() {
            c.err(
                t,
                Some(i),
                "allow",
                format!("entry {k}, `{a}`, is not a network"),
                "write networks such as \"198.18.1.0/24\"",
            );
        }
    }
    if let Some(n) = v.reselect_tries {
        if !(1..=8).contains(&n) {
            c.err(
                t,
                Some(i),
                "reselect_tries",
                format!("{n} is out of range"),
                "use 1 to 8 (default 3)",
            );
        }
    }
    if let Some(ms) = v.connect_timeout_ms {
        if !(10..=60_000).contains(&ms) {
            c.err(
                t,
                Some(i),
                "connect_timeout_ms",
                format!("{ms} is out of range"),
                "use 10 to 60000 milliseconds (default 2000)",
            );
        }
    }
    for (field, used) in [
        ("protocol", v.protocol.is_some()),
        ("idle_timeout", v.idle_timeout.is_some()),
        ("syn_timeout", v.syn_timeout.is_some()),
        ("closing_timeout", v.closing_timeout.is_some()),
        ("reset_on_member_down", v.reset_on_member_down.is_some()),
    ] {
        if used {
            c.err(t, Some(i), field, "is a fastl4 setting; a standard virtual server takes its timeouts from its tcp_profile".into(), "remove it, or set idle_timeout in the [[tcp_profile]]");
        }
    }
}

/// The standard virtual servers of `cfg`, bound to `pools`; counters carried over from
/// `previous` by name.
pub(super) fn standard_servers(
    cfg: &Config,
    workers: usize,
    previous: Option<&Dataplane>,
    pools: &[(String, LbBinding)],
    tls: &mut super::tls::Built<'_>,
) -> Vec<StandardVs> {
    let profile = |n: &Option<String>| {
        n.as_ref()
            .and_then(|n| cfg.tcp_profiles.iter().find(|p| &p.name == n))
            .cloned()
            .unwrap_or_default()
    };
    cfg.virtuals
        .iter()
        .filter(|v| v.kind == VirtualType::Standard)
        .filter_map(|v| {
            let vip: SocketAddr = v.destination.parse().ok()?;
            let lb = v
                .pool
                .as_ref()
                .and_then(|n| pools.iter().find(|(p, _)| p == n))?
                .1
                .clone();
            let snat = match v.snat.as_deref().unwrap_or("automap") {
                "none" => Snat::None,
                "pool" => Snat::Pool(v.snat_addresses.clone()),
                _ => Snat::Automap,
            };
            let client = profile(&v.tcp_profile_client);
            let server = profile(&v.tcp_profile_server);
            // The buffer toward the client is the client profile's, and so on: reading
            // the server stops when the client side's queue passes the client's mark.
            let (high, low) = client.proxy_buffer();
            let counters = previous
                .and_then(|d| d.standard.iter().find(|s| s.name == v.name))
                .map(|s| s.counters.clone())
                .unwrap_or_else(|| ProxyCounters::new(workers));
            let mut vs = StandardVs::new(&v.name, vip, lb, snat, workers);
            vs.client_profile = client.profile();
            vs.server_profile = server.profile();
            vs.buffer_high = high;
            vs.buffer_low = low;
            vs.connection_limit = v.connection_limit.unwrap_or(0);
            vs.allow = v.allow.iter().filter_map(|a| a.parse().ok()).collect();
            if let Some(n) = v.reselect_tries {
                vs.reselect_tries = n;
            }
            if let Some(ms) = v.connect_timeout_ms {
                vs.connect_timeout = Duration::from_millis(ms);
            }
            vs.counters = counters;
            // A virtual server whose TLS cannot be built is left out, never served
            // in the clear (validation read the same files, so this is logged only
            // when something changed between the two).
            if let Some(n) = &v.client_tls {
                vs.client_tls = Some((n.clone(), tls.server(n)?));
            }
            if let Some(n) = &v.server_tls {
                let (c, cache) = tls.client(n)?;
                vs.server_tls = Some((n.clone(), c, cache));
            }
            vs.http = super::http::http_vs(cfg, v, pools);
            Some(vs)
        })
        .collect()
}
