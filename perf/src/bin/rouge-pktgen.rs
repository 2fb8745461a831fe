//! `rouge-pktgen`: a bounded packet generator and receiver on Rouge's ports.
//!
//! Example (on the test bed, forwarding through the appliance):
//!
//! ```text
//! ip netns exec rg-client rouge-pktgen --tx c0 --rx s0 --rx-netns rg-srv \
//!     --dst 198.18.2.11 --sport 1024-1087 --size 64 --rate max --duration 5
//! ip netns exec rg-client rouge-pktgen --tx c0 --dst 2001:2:0:2::11 --duration 5
//! ```
//!
//! The destination's family is the frames' family: an IPv6 `--dst` sends IPv6 (from
//! 2001:2:0:1::2 unless `--src` says otherwise).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rouge_drivers::{MacAddr, PacketPool, Port};
use rouge_perf::engine::{self, RunLimits, RxSide, MAX_DURATION};
use rouge_perf::frame::{Endpoints, Kind};
use rouge_perf::gen::{flows, Generator, Receiver, Sizes, TupleSpace};
use rouge_perf::report::Report;
use rouge_perf::{netns, ports};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to send.
#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// UDP datagrams, received on `--rx` after forwarding.
    Udp,
    /// TCP SYNs, received on `--rx` after forwarding.
    TcpSyn,
    /// ICMP (ICMPv6) echo requests; the replies are received on `--tx` itself.
    IcmpEcho,
    /// ARP requests for --dst (broadcast unless --dst-mac); replies received on `--tx`.
    /// IPv4 only.
    ArpRequest,
}

/// Generate Ethernet/IPv4 or Ethernet/IPv6 traffic on an interface, receive it on another (or the replies
/// on the same one), and report rate, loss, reordering and latency. Every run is bounded:
/// give --duration or --count (or both); --duration is capped at 60 s.
#[derive(Debug, Parser, serde::Serialize)]
#[command(name = "rouge-pktgen", version)]
struct Args {
    /// Interface to transmit on (in the current network namespace, or --tx-netns).
    #[arg(long)]
    tx: String,
    /// Network namespace to open --tx in.
    #[arg(long)]
    tx_netns: Option<String>,
    /// Interface to receive on (default: none for udp/tcp-syn, --tx for icmp-echo).
    #[arg(long)]
    rx: Option<String>,
    /// Network namespace to open --rx in.
    #[arg(long)]
    rx_netns: Option<String>,
    /// Kind of traffic.
    #[arg(long, value_enum, default_value = "udp")]
    mode: Mode,
    /// Source addresses: one address or a range A-B, of --dst's family (default
    /// 198.18.1.2, or 2001:2:0:1::2 for an IPv6 --dst: the test bed's client).
    #[arg(long)]
    src: Option<String>,
    /// Source ports: one port or a range A-B; flows = addresses x ports (at most 65536).
    #[arg(long, default_value = "1024")]
    sport: String,
    /// Destination address (IPv4 or IPv6: the frames' family).
    #[arg(long, default_value = "198.18.2.11")]
    dst: IpAddr,
    /// Destination port (udp, tcp-syn).
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Frame size in bytes with FCS (64 to 1518), or `imix` (64/570/1518 in 7:4:1).
    #[arg(long, default_value = "64")]
    size: Sizes,
    /// Packets per second, or `max`.
    #[arg(long, default_value = "max")]
    rate: String,
    /// Seconds to transmit (at most 60).
    #[arg(long)]
    duration: Option<f64>,
    /// Packets to transmit.
    #[arg(long)]
    count: Option<u64>,
    /// Destination MAC; when absent, resolved by ARP (IPv6: neighbour discovery) for
    /// --next-hop.
    #[arg(long)]
    #[serde(skip)]
    dst_mac: Option<MacAddr>,
    /// Address whose MAC to resolve (default: --dst when it is on the first source
    /// address's /24 (IPv6: /64), else that prefix's ::1 / .1).
    #[arg(long)]
    next_hop: Option<IpAddr>,
    /// How long to wait for an ARP reply (or neighbour advertisement), in milliseconds.
    #[arg(long, default_value_t = 1000)]
    arp_timeout_ms: u64,
    /// How long to keep receiving after the last transmit, in milliseconds.
    #[arg(long, default_value_t = 200)]
    drain_ms: u64,
    /// Packet buffers in the pool.
    #[arg(long, default_value_t = 8192)]
    pool: usize,
    /// Use every (source address, source port) tuple at most once: the run walks the
    /// --src x --sport space in order and stops when it is used up (new-flow benchmarks).
    #[arg(long)]
    unique: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_range<T: std::str::FromStr + PartialOrd + Copy>(
    s: &str,
    what: &str,
) -> Result<(T, T), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<T>()
            .map_err(|_| format!("{what} `{s}`: write one value or a range A-B"))
    };
    let (a, b) = (p(a)?, p(b)?);
    if b < a {
        return Err(format!("{what} `{s}`: the range's end is below its start"));
    }
    Ok((a, b))
}

/// True for 198.18.0.0/15 and 2001:2::/48, the benchmarking ranges (RFC 2544, 5180).
fn in_benchmark_range(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] == 198 && (o[1] & 0xfe) == 18
        }
        IpAddr::V6(a) => a.segments()[..3] == [0x2001, 2, 0],
    }
}

/// The default next hop from `src` toward `dst`: `dst` itself when on the source's
/// /24 (IPv6: /64), else that prefix's first address (.1, ::1), as the test bed's
/// appliance.
fn default_next_hop(src: IpAddr, dst: IpAddr) -> IpAddr {
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (s, d) = (s.segments(), d.segments());
            if s[..4] == d[..4] {
                dst
            } else {
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 1))
            }
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (s, d) = (s.octets(), d.octets());
            if d[..3] == s[..3] {
                dst
            } else {
                IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], 1))
            }
        }
        _ => dst,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rouge-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.duration.is_none() && args.count.is_none() {
        return Err("give --duration SECONDS or --count PACKETS (every run is bounded)".into());
    }
    let duration = match args.duration {
        Some(d) if d.is_nan() || d <= 0.0 => return Err("--duration must be positive".into()),
        Some(d) if d > MAX_DURATION.as_secs_f64() => {
            eprintln!(
                "rouge-pktgen: --duration capped at {} s",
                MAX_DURATION.as_secs()
            );
            MAX_DURATION
        }
        Some(d) => Duration::from_secs_f64(d),
        None => MAX_DURATION,
    };
    let rate_pps = match args.rate.as_str() {
        "max" => None,
        r => match r.parse::<f64>() {
            Ok(v) if v > 0.0 => Some(v),
            _ => return Err(format!("--rate `{r}`: write packets per second or `max`")),
        },
    };
    let v6 = args.dst.is_ipv6();
    let default_src = if v6 { "2001:2:0:1::2" } else { "198.18.1.2" };
    let src_arg = args.src.as_deref().unwrap_or(default_src);
    let (src_lo, src_hi) = parse_range::<IpAddr>(src_arg, "--src")?;
    let (sp_lo, sp_hi) = parse_range::<u16>(&args.sport, "--sport")?;
    for a in [src_lo, src_hi, args.dst] {
        if !in_benchmark_range(a) {
            return Err(format!(
                "{a}: only addresses in 198.18.0.0/15 or 2001:2::/48 (the benchmarking ranges)"
            ));
        }
        if a.is_ipv6() != v6 {
            return Err(format!(
                "{a}: --src is of another family than --dst {}: give both IPv4 or both IPv6",
                args.dst
            ));
        }
    }
    if let Some(h) = args.next_hop {
        if h.is_ipv6() != v6 {
            return Err(format!("--next-hop {h}: of another family than --dst"));
        }
    }
    if v6 && matches!(args.mode, Mode::ArpRequest) {
        return Err("--mode arp-request: ARP is IPv4 only; give an IPv4 --dst".into());
    }
    let kind = match args.mode {
        Mode::Udp => Kind::Udp,
        Mode::TcpSyn => Kind::TcpSyn,
        Mode::IcmpEcho => Kind::IcmpEcho,
        Mode::ArpRequest => Kind::ArpRequest,
    };
    let flow_list = flows((src_lo, src_hi), (sp_lo, sp_hi));

    let pool = PacketPool::new(args.pool.max(256));
    if let Some(ns) = &args.tx_netns {
        netns::enter(ns).map_err(|e| e.to_string())?;
    }
    let mut tx = ports::open_port(&args.tx).map_err(|e| e.to_string())?;
    let rx_name = match (&args.rx, args.mode) {
        (Some(r), _) => Some(r.clone()),
        (None, Mode::IcmpEcho | Mode::ArpRequest) => Some(args.tx.clone()),
        (None, _) => None,
    };
    let same = rx_name.as_deref() == Some(args.tx.as_str()) && args.rx_netns == args.tx_netns;
    let mut rx_port = match &rx_name {
        Some(name) if !same => {
            if let Some(ns) = &args.rx_netns {
                netns::enter(ns).map_err(|e| e.to_string())?;
            }
            Some(ports::open_port(name).map_err(|e| e.to_string())?)
        }
        _ => None,
    };

    let dst_mac = match args.dst_mac {
        Some(m) => m,
        None if kind == Kind::ArpRequest => MacAddr::BROADCAST,
        None => {
            let hop = args
                .next_hop
                .unwrap_or_else(|| default_next_hop(src_lo, args.dst));
            engine::resolve_mac(
                &mut tx,
                &pool,
                src_lo,
                hop,
                Duration::from_millis(args.arp_timeout_ms),
            )
            .map_err(|e| e.to_string())?
        }
    };
    let ep = Endpoints {
        src_mac: tx.mac(),
        dst_mac,
        dst_ip: args.dst,
        dst_port: args.dport,
    };
    let space = TupleSpace::new((src_lo, src_hi), (sp_lo, sp_hi));
    let mut gen = if args.unique {
        Generator::sweeping(kind, &ep, args.size, space)
    } else {
        Generator::new(kind, &ep, args.size, flow_list)
    };
    let mut recv = Receiver::new(gen.flow_count());
    // A unique run never sends more frames than there are tuples.
    let count = match (args.unique, args.count) {
        (true, Some(c)) => Some(c.min(space.len())),
        (true, None) => Some(space.len()),
        (false, c) => c,
    };
    let limits = RunLimits {
        rate_pps,
        count,
        duration,
        drain: Duration::from_millis(args.drain_ms),
    };
    let receiving = rx_name.is_some();
    let start = Instant::now();
    let stats = match (&mut rx_port, receiving) {
        (Some(r), _) => engine::run(
            &mut tx,
            RxSide::Other(r),
            &mut gen,
            &mut recv,
            &pool,
            &limits,
            start,
        ),
        (None, true) => engine::run(
            &mut tx,
            RxSide::<Box<dyn Port>>::Same,
            &mut gen,
            &mut recv,
            &pool,
            &limits,
            start,
        ),
        (None, false) => engine::run(
            &mut tx,
            RxSide::<Box<dyn Port>>::None,
            &mut gen,
            &mut recv,
            &pool,
            &limits,
            start,
        ),
    };
    let mut config = serde_json::to_value(args).map_err(|e| e.to_string())?;
    config["dst_mac_used"] = serde_json::Value::String(dst_mac.to_string());
    config["kind"] = serde_json::to_value(kind).map_err(|e| e.to_string())?;
    config["family"] = serde_json::Value::from(if v6 { 6 } else { 4 });
    config["src"] = serde_json::Value::from(src_arg);
    config["port_driver"] = serde_json::Value::from(ports::DRIVER);
    if args.unique {
        config["tuples_used"] = serde_json::Value::from(gen.tuples_used());
        config["tuple_space"] = serde_json::Value::from(space.len());
    }
    let report = Report::new(config, &gen, stats, receiving.then_some(&recv));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
