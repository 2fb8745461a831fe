//! The command line: argument parsing (clap) and the tables the CLI prints. The CLI
//! only parses and prints; every command runs through the management socket or the
//! config loader, the same functions the console uses.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::config::model::IdlePolicy;
use crate::mgmt;

/// Rouge: a userspace application delivery controller.
#[derive(Debug, Parser)]
#[command(name = "rouge", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the appliance: workers on their cores, the control thread, the management socket.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Cores to run workers on (one worker per core), e.g. `--cores 1` or `--cores 0,1`.
        #[arg(long, value_delimiter = ',')]
        cores: Option<Vec<usize>>,
        /// Idle policy of the workers (overrides the config).
        #[arg(long, value_enum)]
        idle: Option<IdleArg>,
        /// Run the workers under SCHED_FIFO at this priority, 1 to 99 (overrides the
        /// config's `realtime_priority`).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
        realtime_priority: Option<u8>,
        /// Write every frame received and sent to `DIR/INTERFACE[-WORKER].pcap`.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Validate a configuration file and say what its port drivers need from this
    /// machine (root, AF_XDP, queues, hugepages, a NIC bound to vfio-pci); exit 0 when
    /// valid and nothing is missing, 1 with every problem otherwise.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Validate the file only, without the report on this machine (for a
        /// configuration meant for another machine, e.g. an image being built).
        #[arg(long)]
        config_only: bool,
        /// Accepted for uniformity; not used.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET, hide = true)]
        socket: PathBuf,
    },
    /// Show state and counters of the running appliance.
    Show {
        /// What to show.
        #[arg(value_enum)]
        what: ShowWhat,
        /// Only this one (a virtual server, pool, class, or member address / pool name).
        name: Option<String>,
        /// `connections`: only the flows of this virtual server.
        #[arg(long = "virtual")]
        virtual_name: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Work with the running configuration.
    Config {
        /// The action.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Change pool members.
    Pool {
        /// The action.
        #[command(subcommand)]
        action: PoolAction,
    },
    /// A live view in the terminal, refreshed every second: virtual servers, pool
    /// members, shaping classes and workers (for the serial console).
    Top {
        /// Row order: `rate` (throughput; default), `conns`, `bytes` or `name`.
        #[arg(long, value_enum, default_value = "rate")]
        sort: crate::top::SortKey,
        /// Draw one screen (one second after starting, so rates are filled in) and exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Draw this many screens, one per second, then exit (default: until Ctrl-C; in
        /// `rouge console`: 1).
        #[arg(long)]
        iterations: Option<u64>,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Interactive shell with help and history that takes the same commands.
    Console {
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

/// `rouge pool …` actions.
#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Set a member's admin state: `enable`, `disable` (drain: no new connections,
    /// existing ones continue) or `force-offline` (no new connections at all).
    Member {
        /// `enable`, `disable` or `force-offline`.
        #[arg(value_parser = ["enable", "disable", "force-offline"])]
        action: String,
        /// The pool.
        pool: String,
        /// The member, as ADDRESS:PORT.
        member: String,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

/// Runs a `pool member …` action against the appliance at `socket`.
pub fn pool_action(
    action: PoolAction,
    socket_override: Option<&std::path::Path>,
) -> Result<String, String> {
    let PoolAction::Member {
        action,
        pool,
        member,
        socket,
    } = action;
    let socket = socket_override.map(|p| p.to_path_buf()).unwrap_or(socket);
    let args = vec![
        "pool".into(),
        "member".into(),
        action.clone(),
        pool.clone(),
        member.clone(),
    ];
    mgmt::request(&socket, &args).map(|v| {
        format!(
            "pool {pool} member {member}: {}",
            v["state"].as_str().unwrap_or("")
        )
    })
}

/// `rouge config …` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Write the running configuration as TOML (to FILE, or to the file it was loaded from).
    Save {
        /// Where to write.
        file: Option<PathBuf>,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Replace the running configuration with FILE, without dropping established traffic.
    Apply {
        /// The new configuration (TOML).
        file: PathBuf,
        /// Management socket path.
        #[arg(long, default_value = mgmt::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

/// Runs `config save` or `config apply` against the appliance at its socket.
pub fn config_action(action: ConfigAction) -> Result<String, String> {
    match action {
        ConfigAction::Save { file, socket } => {
            let mut args = vec!["config".to_string(), "save".to_string()];
            if let Some(f) = file {
                // The appliance may run in another directory: the path as this shell
                // means it.
                args.push(std::path::absolute(&f).unwrap_or(f).display().to_string());
            }
            mgmt::request(&socket, &args)
                .map(|v| format!("saved {}", v["saved"].as_str().unwrap_or("")))
        }
        ConfigAction::Apply { file, socket } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
            // Absolute, so the appliance resolves the file's relative paths (TLS
            // certificates and keys) against its directory, wherever it runs.
            let name = std::path::absolute(&file).unwrap_or_else(|_| file.clone());
            let args = vec![
                "config".to_string(),
                "apply".to_string(),
                name.display().to_string(),
                text,
            ];
            mgmt::request(&socket, &args).map(|v| {
                let mut out = String::new();
                for w in v["warnings"].as_array().into_iter().flatten() {
                    out.push_str(w.as_str().unwrap_or_default());
                    out.push('\n');
                }
                out.push_str(&format!(
                    "applied {} (configuration generation {})",
                    file.display(),
                    v["generation"]
                ));
                out
            })
        }
    }
}

/// What `show` can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowWhat {
    /// Ports with counters, VLANs and self IPs.
    Interfaces,
    /// The neighbour (ARP) table.
    Arp,
    /// Connected and static routes.
    Routes,
    /// Data-plane counters: verdicts, drops by reason, ARP, ICMP, workers.
    Stats,
    /// Virtual servers and their traffic.
    Virtual,
    /// Pools with their members: admin state, monitor status, connections.
    Pool,
    /// Pool members as one list.
    Member,
    /// Health monitors: settings, members up/down, probes and failures by reason.
    Monitor,
    /// Traffic shaping classes: rate, packets, queue, drops, queueing delay.
    Class,
    /// Flows through the appliance: proxied (standard) and fastl4 alike.
    Connections,
    /// TLS per virtual server and side: handshakes (full, resumed) by version and suite,
    /// failures by reason, bytes, tickets, certificates.
    Tls,
    /// The running configuration as TOML.
    Config,
}

impl ShowWhat {
    /// The word used on the wire and on the command line.
    pub fn word(self) -> &'static str {
        match self {
            ShowWhat::Interfaces => "interfaces",
            ShowWhat::Arp => "arp",
            ShowWhat::Routes => "routes",
            ShowWhat::Stats => "stats",
            ShowWhat::Virtual => "virtual",
            ShowWhat::Pool => "pool",
            ShowWhat::Member => "member",
            ShowWhat::Monitor => "monitor",
            ShowWhat::Class => "class",
            ShowWhat::Config => "config",
            ShowWhat::Connections => "connections",
            ShowWhat::Tls => "tls",
        }
    }
}

/// `--idle` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdleArg {
    /// Spin forever.
    Busy,
    /// Spin, then sleep on the ports.
    Adaptive,
    /// Sleep on the ports as soon as there is nothing to do.
    Sleep,
}

impl From<IdleArg> for IdlePolicy {
    fn from(a: IdleArg) -> IdlePolicy {
        match a {
            IdleArg::Busy => IdlePolicy::Busy,
            IdleArg::Adaptive => IdlePolicy::Adaptive,
            IdleArg::Sleep => IdlePolicy::Sleep,
        }
    }
}

/// Runs a `show` and returns what to print.
pub fn show(
    socket: &std::path::Path,
    what: ShowWhat,
    name: Option<&str>,
    as_json: bool,
) -> Result<String, String> {
    let mut args = vec!["show".to_string(), what.word().to_string()];
    if let Some(n) = name {
        args.push(n.to_string());
    }
    let data = mgmt::request(socket, &args)?;
    if as_json {
        return serde_json::to_string_pretty(&data).map_err(|e| e.to_string());
    }
    Ok(match what {
        ShowWhat::Interfaces => interfaces_table(&data),
        ShowWhat::Arp => table(&data, &["address", "mac", "vlan", "state", "expires_in_ms"]),
        ShowWhat::Routes => table(&data, &["destination", "gateway", "vlan", "kind"]),
        ShowWhat::Virtual => virtuals_text(&data),
        ShowWhat::Pool => pools_text(&data),
        ShowWhat::Member => table(
            &data,
            &[
                "pool",
                "address",
                "admin",
                "monitor",
                "availability",
                "current_connections",
                "total_connections",
                "packets",
                "bytes",
            ],
        ),
        ShowWhat::Monitor => monitors_text(&data),
        ShowWhat::Stats => stats_text(&data),
        ShowWhat::Class => classes_text(&data),
        ShowWhat::Config => data.as_str().unwrap_or_default().to_string(),
        ShowWhat::Tls => tls_text(&data),
        ShowWhat::Connections => table(
            &data,
            &[
                "kind",
                "virtual",
                "client",
                "server",
                "snat",
                "state",
                "age_ms",
                "bytes_in",
                "bytes_out",
            ],
        ),
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A plain text table of the given columns of an array of objects.
pub fn table(data: &Value, cols: &[&str]) -> String {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| cols.iter().map(|c| cell(&r[*c])).collect())
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(cols.iter().map(|c| c.to_uppercase()).collect(), &mut out);
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    for r in rows {
        line(r, &mut out);
    }
    out
}

fn mbit(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |b| format!("{:.1}", b / 1e6))
}

fn classes_text(data: &Value) -> String {
    let mut out = String::new();
    let rows = data.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        return "(no shaping: no [[interface]] has a shaping_rate)\n".into();
    }
    out.push_str(&format!(
        "{:<12} {:<8} {:>6} {:>4} {:>9} {:>9} {:>10} {:>12} {:>14} {:>6} {:>8} {:>9} {:>9}\n",
        "class",
        "iface",
        "weight",
        "prio",
        "guar.Mb",
        "ceil.Mb",
        "rate.Mb",
        "packets",
        "bytes",
        "queue",
        "drops",
        "p50.us",
        "p99.us"
    ));
    let row = |out: &mut String, name: &str, iface: &str, c: &Value, f: &Value| {
        out.push_str(&format!(
            "{:<12} {:<8} {:>6} {:>4} {:>9} {:>9} {:>10} {:>12} {:>14} {:>6} {:>8} {:>9.0} {:>9.0}\n",
            name,
            iface,
            cell(&c["weight"]),
            cell(&c["priority"]),
            mbit(&c["guaranteed_bps"]),
            mbit(&c["ceiling_bps"]),
            mbit(&f["rate_bps"]),
            cell(&f["packets"]),
            cell(&f["bytes"]),
            cell(&f["queue_packets"]),
            cell(&f["drops"]),
            f["delay_us"]["p50"].as_f64().unwrap_or(0.0),
            f["delay_us"]["p99"].as_f64().unwrap_or(0.0),
        ));
    };
    for c in rows {
        let name = c["name"].as_str().unwrap_or("?");
        row(&mut out, name, "(all)", c, c);
        for f in c["interfaces"].as_array().into_iter().flatten() {
            row(
                &mut out,
                "",
                f["interface"].as_str().unwrap_or("?"),
                &Value::Null,
                f,
            );
        }
    }
    out
}

/// `show virtual`: one row per virtual server, then a line of HTTP figures for each
/// with an `http_profile`.
fn virtuals_text(data: &Value) -> String {
    let mut out = table(
        data,
        &[
            "name",
            "type",
            "destination",
            "pool",
            "packets",
            "connections",
            "bytes",
        ],
    );
    for v in data.as_array().into_iter().flatten() {
        let h = &v["http"];
        if h.is_null() {
            continue;
        }
        let r = &h["responses"];
        let sum = |o: &Value| -> u64 {
            o.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        };
        out.push_str(&format!(
            "  {} http: profile {} policy {}  requests {}  responses 2xx/3xx/4xx/5xx {}/{}/{}/{}  refused {}  own answers {}  reused/opened {}/{}  retries {}  resumes {}/{} ({} refused)  routed {}  passive down {}\n",
            cell(&v["name"]),
            cell(&h["profile"]),
            cell(&h["policy"]),
            cell(&h["requests"]),
            cell(&r["2xx"]),
            cell(&r["3xx"]),
            cell(&r["4xx"]),
            cell(&r["5xx"]),
            sum(&h["refused"]),
            sum(&h["answers"]),
            cell(&h["server_connections_reused"]),
            cell(&h["server_connections_opened"]),
            cell(&h["retries"]),
            cell(&h["resumes_succeeded"]),
            cell(&h["resumes_attempted"]),
            cell(&h["resumes_refused"]),
            cell(&h["policy_routed"]),
            cell(&h["passive_down"]),
        ));
    }
    out
}

/// `show monitor`: one row per monitor, the failures by reason as columns.
fn monitors_text(data: &Value) -> String {
    let reasons = [
        "tcp",
        "timeout",
        "certificate",
        "handshake",
        "response",
        "source_port",
    ];
    let rows: Vec<Value> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let mut r = serde_json::json!({
                "name": m["name"], "type": m["type"], "tls_profile": m["tls_profile"],
                "up": m["members"]["up"], "down": m["members"]["down"],
                "unchecked": m["members"]["unchecked"], "probes": m["probes"],
                "successes": m["successes"], "failures": m["failures"],
            });
            for k in reasons {
                r[k] = m["failures_by_reason"][k].clone();
            }
            r
        })
        .collect();
    if rows.is_empty() {
        return "(no monitors)\n".into();
    }
    let mut cols = vec![
        "name",
        "type",
        "tls_profile",
        "up",
        "down",
        "unchecked",
        "probes",
        "successes",
        "failures",
    ];
    cols.extend(reasons);
    table(&Value::Array(rows), &cols)
}

/// `show tls`: one row per virtual server and side, then the failures that happened
/// and the client sides' certificates.
fn tls_text(data: &Value) -> String {
    let mut rows = Vec::new();
    let mut notes = String::new();
    for v in data.as_array().into_iter().flatten() {
        for (side, key) in [("client", "client_side"), ("server", "server_side")] {
            let t = &v[key];
            if t.is_null() {
                continue;
            }
            let h = &t["handshakes"];
            let pair = |x: &Value| format!("{}/{}", cell(&x["1.2"]), cell(&x["1.3"]));
            rows.push(serde_json::json!({
                "virtual": v["name"], "side": side, "profile": t["profile"], "current": t["current"],
                "full_1.2/1.3": pair(&h["full"]), "resumed_1.2/1.3": pair(&h["resumed"]),
                "failures": t["failures_total"], "bytes_encrypted": t["bytes_encrypted"],
                "bytes_decrypted": t["bytes_decrypted"],
                "tickets_issued/accepted": if t["tickets"].is_null() { Value::Null } else {
                    Value::String(format!("{}/{}", cell(&t["tickets"]["issued"]), cell(&t["tickets"]["accepted"])))
                },
            }));
            let name = format!("{} {side}", cell(&v["name"]));
            let nz = |o: &Value| -> Vec<String> {
                o.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect()
            };
            let f = nz(&t["failures"]);
            if !f.is_empty() {
                notes.push_str(&format!("  {name} failures: {}\n", f.join(" ")));
            }
            let s = nz(&t["suites"]);
            if !s.is_empty() {
                notes.push_str(&format!("  {name} suites: {}\n", s.join(" ")));
            }
            for c in t["certificates"].as_array().into_iter().flatten() {
                let names: Vec<String> = c["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(cell)
                    .collect();
                notes.push_str(&format!(
                    "  {name} certificate {} ({}, {}) until {}\n",
                    cell(&c["cert"]),
                    cell(&c["key_type"]),
                    names.join(" "),
                    cell(&c["not_after"])
                ));
            }
            if let Some(r) = t["tickets"]["rotations"].as_u64() {
                notes.push_str(&format!("  {name} ticket key rotations: {r}\n"));
            }
        }
    }
    if rows.is_empty() {
        return "(no standard virtual server has client_tls or server_tls)\n".into();
    }
    let mut out = table(
        &Value::Array(rows),
        &[
            "virtual",
            "side",
            "profile",
            "current",
            "full_1.2/1.3",
            "resumed_1.2/1.3",
            "failures",
            "bytes_encrypted",
            "bytes_decrypted",
            "tickets_issued/accepted",
        ],
    );
    out.push_str(&notes);
    out
}

fn pools_text(data: &Value) -> String {
    let mut out = String::new();
    for p in data.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "pool {}  method {}  monitor {}\n",
            cell(&p["name"]),
            cell(&p["method"]),
            cell(&p["monitor"])
        ));
        out.push_str(&table(
            &p["members"],
            &[
                "address",
                "admin",
                "monitor",
                "monitor_failure",
                "availability",
                "ratio",
                "current_connections",
                "total_connections",
                "packets",
                "bytes",
            ],
        ));
    }
    if out.is_empty() {
        out.push_str("(no pools)\n");
    }
    out
}

fn interfaces_table(data: &Value) -> String {
    let mut out = table(
        data,
        &[
            "name",
            "driver",
            "mac",
            "mtu",
            "rx_packets",
            "rx_bytes",
            "tx_packets",
            "tx_bytes",
        ],
    );
    for itf in data.as_array().into_iter().flatten() {
        for v in itf["vlans"].as_array().into_iter().flatten() {
            let ips: Vec<String> = v["self_ips"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| cell(&s["address"]))
                .collect();
            out.push_str(&format!(
                "  {}: vlan {} tag {} self {}\n",
                cell(&itf["name"]),
                cell(&v["name"]),
                cell(&v["tag"]),
                if ips.is_empty() {
                    "-".into()
                } else {
                    ips.join(", ")
                }
            ));
        }
        if let Some(d) = itf["drops"].as_object() {
            let nz: Vec<String> = d
                .iter()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            if !nz.is_empty() {
                out.push_str(&format!(
                    "  {} drops: {}\n",
                    cell(&itf["name"]),
                    nz.join(" ")
                ));
            }
        }
    }
    out
}

fn stats_text(d: &Value) -> String {
    let mut out = format!(
        "uptime {}s  config generation {}\npackets: received {}  forwarded {}  answered {}  consumed {}  dropped {}  transmit queue overflow {}\n",
        d["uptime_secs"], d["generation"], d["rx_packets"], d["forwarded"], d["answered"], d["consumed"], d["dropped"],
        d["tx_queue_overflow"]
    );
    out.push_str(&format!(
        "hand-offs to the owning worker: {}  dropped {}\n",
        d["handoffs"], d["handoff_drops"]
    ));
    let t = &d["transit_us"];
    out.push_str(&format!(
        "receive to transmit (us): samples {}  p50 {}  p99 {}  p99.9 {}  max {}\n",
        t["samples"], t["p50"], t["p99"], t["p999"], t["max"]
    ));
    out.push_str(&format!(
        "arp: requests sent {}  replies sent {}  gratuitous sent {}\nicmp: echo replies {}  errors sent {}  errors rate-limited {}\n",
        d["arp"]["requests_sent"], d["arp"]["replies_sent"], d["arp"]["gratuitous_sent"],
        d["icmp"]["echo_replies"], d["icmp"]["errors_sent"], d["icmp"]["errors_rate_limited"]
    ));
    let drops: Vec<String> = d["drops"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(k, n)| format!("  {k:<24} {n}"))
        .collect();
    let t = &d["tcp"];
    out.push_str(&format!(
        "tcp: connections {}  segments in {} out {}  retransmits {}  resets sent {} received {}  syn cookies sent {} validated {}\n",
        t["connections"], t["segments_in"], t["segments_out"], t["retransmits"], t["resets_sent"], t["resets_received"],
        t["syn_cookies_sent"], t["syn_cookies_validated"]
    ));
    out.push_str(&format!(
        "tcp loss recovery: episodes {}  retransmits fast/RACK {} TLP {} RTO {}  timeouts {}  probes {} (repaired {})  lost retransmits {}  D-SACKs in {} out {}  spurious {}  undone {}  pacing waits {}\n",
        t["fast_recoveries"], t["retransmits_fast"], t["retransmits_tlp"], t["retransmits_rto"], t["timeouts"],
        t["tlp_probes"], t["tlp_recoveries"], t["lost_retransmits"], t["dsacks_received"], t["dsacks_sent"],
        t["spurious_retransmits"], t["undos"], t["pacing_waits"]
    ));
    let tcp_drops: Vec<String> = t["drops"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if !tcp_drops.is_empty() {
        out.push_str(&format!("tcp drops: {}\n", tcp_drops.join(" ")));
    }
    out.push_str(&format!(
        "fastl4: flows created {}  expired {}  closed by rst {}  member down {}  rsts sent {} (no snat port {})\nsource ports: exhausted {}\nmonitors: probes {}  failures {}  status changes {}\n",
        d["fastl4"]["flows_created"], d["fastl4"]["flows_expired"], d["fastl4"]["flows_closed_by_rst"],
        d["fastl4"]["flows_member_down"], d["fastl4"]["rsts_sent"], d["fastl4"]["snat_exhausted_rsts"],
        d["source_ports"]["exhausted"],
        d["monitor"]["probes"], d["monitor"]["failures"], d["monitor"]["transitions"]
    ));
    out.push_str("drops by reason:\n");
    if drops.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&drops.join("\n"));
        out.push('\n');
    }
    out.push_str(&table(
        &d["workers"],
        &[
            "id",
            "core",
            "running",
            "rx_packets",
            "loop_turns",
            "idle_turns",
            "sleeps",
            "spin_us",
            "tx_queue_overflow",
            "handoffs",
            "handoff_drops",
        ],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_missing_values() {
        let t = table(
            &json!([{"a": "x", "b": 1}, {"a": "longer", "b": null}]),
            &["a", "b"],
        );
        assert_eq!(t, "A       B\nx       1\nlonger  -\n");
        assert_eq!(table(&json!([]), &["a"]), "A\n(none)\n");
    }

    #[test]
    fn virtual_servers_with_http_get_a_line_of_http_figures() {
        let data = json!([
            {"name": "s3", "type": "standard", "destination": "198.18.1.100:443", "pool": "s3",
             "packets": 10, "connections": 2, "bytes": 300,
             "http": {"profile": "s3", "policy": "s3-routing", "requests": 9,
                      "responses": {"1xx": 1, "2xx": 6, "3xx": 0, "4xx": 2, "5xx": 1},
                      "refused": {"malformed": 1, "smuggling": 2}, "answers": {"no_member": 1},
                      "server_connections_reused": 7, "server_connections_opened": 2,
                      "retries": 1, "resumes_attempted": 3, "resumes_succeeded": 2,
                      "resumes_refused": 1, "policy_routed": 4, "passive_down": 0}},
            {"name": "web", "type": "fastl4", "destination": "198.18.1.100:80", "pool": "web",
             "packets": 1, "connections": 1, "bytes": 60},
        ]);
        let t = virtuals_text(&data);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[1].starts_with("s3 "), "{t}");
        assert_eq!(
            lines[3],
            "  s3 http: profile s3 policy s3-routing  requests 9  responses 2xx/3xx/4xx/5xx 6/0/2/1  refused 3  own answers 1  reused/opened 7/2  retries 1  resumes 2/3 (1 refused)  routed 4  passive down 0"
        );
    }

    #[test]
    fn monitors_show_failures_by_reason_as_columns() {
        let data = json!([{
            "name": "https-get", "type": "https", "tls_profile": "members-https",
            "members": {"up": 3, "down": 1, "unchecked": 0},
            "probes": 16, "successes": 12, "failures": 4,
            "failures_by_reason": {"certificate": 4, "handshake": 0, "response": 0,
                                   "source_port": 0, "tcp": 0, "timeout": 0},
        }]);
        let t = monitors_text(&data);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "TYPE",
                "TLS_PROFILE",
                "UP",
                "DOWN",
                "UNCHECKED",
                "PROBES",
                "SUCCESSES",
                "FAILURES",
                "TCP",
                "TIMEOUT",
                "CERTIFICATE",
                "HANDSHAKE",
                "RESPONSE",
                "SOURCE_PORT"
            ],
            "{t}"
        );
        assert_eq!(
            lines[1],
            [
                "https-get",
                "https",
                "members-https",
                "3",
                "1",
                "0",
                "16",
                "12",
                "4",
                "0",
                "0",
                "4",
                "0",
                "0",
                "0"
            ],
            "{t}"
        );
        assert_eq!(monitors_text(&json!([])), "(no monitors)\n");
    }

    #[test]
    fn the_tls_table_has_a_row_per_side_and_the_failures_that_happened() {
        let side = |tickets: bool| {
            let mut v = json!({"profile": "p", "current": 1,
                "handshakes": {"full": {"1.2": 2, "1.3": 3}, "resumed": {"1.2": 0, "1.3": 4}},
                "suites": {"TLS13_AES_128_GCM_SHA256": 7, "TLS13_AES_256_GCM_SHA384": 0},
                "failures": {"not-tls": 5, "decode": 0}, "failures_total": 5,
                "bytes_encrypted": 100, "bytes_decrypted": 50});
            if tickets {
                v["tickets"] = json!({"issued": 9, "accepted": 4, "rotations": 1});
            }
            v
        };
        let t = tls_text(
            &json!([{"name": "web-tls", "client_side": side(true), "server_side": null},
                                 {"name": "re", "client_side": null, "server_side": side(false)}]),
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("VIRTUAL  SIDE    PROFILE"), "{t}");
        assert!(
            lines[1].starts_with("web-tls  client  p        1        2/3           0/4"),
            "{t}"
        );
        assert!(lines[1].ends_with("9/4"), "{t}");
        assert!(
            lines[2].starts_with("re       server") && lines[2].ends_with("-"),
            "{t}"
        );
        assert!(t.contains("  web-tls client failures: not-tls=5\n"), "{t}");
        assert!(t.contains("suites: TLS13_AES_128_GCM_SHA256=7\n"), "{t}");
        assert!(!t.contains("decode"), "{t}");
        assert!(tls_text(&json!([])).starts_with("(no standard virtual server"));
    }

    #[test]
    fn every_command_parses() {
        for line in [
            "rouge run --config f.toml --cores 0,1 --idle busy --pcap /tmp/x --socket /tmp/s",
            "rouge check --config f.toml",
            "rouge check --config f.toml --config-only",
            "rouge show interfaces --json --socket /tmp/s",
            "rouge show stats",
            "rouge config save /tmp/out.toml",
            "rouge config apply new.toml --socket /tmp/s",
            "rouge show pool web --json",
            "rouge show tls",
            "rouge show tls web-tls --json",
            "rouge show member",
            "rouge show monitor https-get --json",
            "rouge pool member disable web 198.18.2.11:80 --socket /tmp/s",
            "rouge console --socket /tmp/s",
            "rouge top",
            "rouge top --sort conns --iterations 3 --socket /tmp/s",
            "rouge top --once --sort name",
        ] {
            Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        assert!(Cli::try_parse_from("rouge show nonsense".split_whitespace()).is_err());
        assert!(Cli::try_parse_from("rouge top --sort colour".split_whitespace()).is_err());
        assert!(Cli::try_parse_from("rouge top --once --iterations 2".split_whitespace()).is_err());
    }
}
