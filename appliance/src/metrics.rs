//! Prometheus metrics: `GET /metrics` in the Prometheus text format (0.0.4), encoded by
//! the `prometheus-client` crate from the very figures `rouge show … --json` reports
//! (the [`crate::views`] module), read at scrape time from the workers'
//! single-writer counters and published snapshots. A scrape costs the workers nothing:
//! the management thread does all the reading and encoding.
//!
//! Names follow the Prometheus conventions: a `rouge_` prefix, `_total` on counters,
//! base units (bytes, seconds), and the labels `interface`, `worker`, `reason`,
//! `virtual`, `pool`, `member`, `monitor`, `class`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;

use crate::shared::Shared;
use crate::views;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels of one sample: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// The collector that reads the running appliance on every scrape.
struct Figures {
    shared: Arc<Shared>,
    /// The idle time last reported per worker: uptime and on-CPU time are read a moment
    /// apart, so their difference may step back by microseconds; a counter must not.
    idle_reported: std::sync::Mutex<Vec<f64>>,
}

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Figures")
    }
}

/// A registry holding the appliance's collector.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut r = Registry::with_prefix("rouge");
    r.register_collector(Box::new(Figures {
        shared,
        idle_reported: std::sync::Mutex::new(Vec::new()),
    }));
    r
}

/// Encodes every metric of `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// One sample value: integer counters stay exact, the rest are floats.
#[derive(Clone, Copy)]
enum Num {
    Int(u64),
    Float(f64),
}

fn num(v: &Value) -> Num {
    match v.as_u64() {
        Some(n) => Num::Int(n),
        None => Num::Float(v.as_f64().unwrap_or(0.0)),
    }
}

/// Writes one metric family of counters or gauges.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: &[(Labels, Num)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        let mut s = m.encode_family(labels)?;
        match (kind, *v) {
            (MetricType::Counter, Num::Int(n)) => {
                s.encode_counter::<NoLabelSet, _, u64>(&n, None)?
            }
            (MetricType::Counter, Num::Float(x)) => {
                s.encode_counter::<NoLabelSet, _, f64>(&x, None)?
            }
            (_, Num::Int(n)) => s.encode_gauge(&(n as i64))?,
            (_, Num::Float(x)) => s.encode_gauge(&x)?,
        }
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: &[(Labels, Num)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, unit, MetricType::Counter, samples)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: &[(Labels, Num)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, unit, MetricType::Gauge, samples)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `(labels, value)` for every entry of a JSON object of counts (`{"reason": n}`).
fn by_key(obj: &Value, base: &Labels, key: &'static str) -> Vec<(Labels, Num)> {
    obj.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let mut l = base.clone();
            l.push((key, k.clone()));
            (l, num(v))
        })
        .collect()
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sh = &self.shared;
        let stats = views::stats(sh);
        let none = Labels::new;

        gauge(
            &mut enc,
            "uptime",
            "Time since the appliance started.",
            Some(Unit::Seconds),
            &[(none(), num(&stats["uptime_secs_exact"]))],
        )?;
        gauge(
            &mut enc,
            "config_generation",
            "Generation of the running configuration snapshot.",
            None,
            &[(none(), num(&stats["generation"]))],
        )?;
        interfaces(&mut enc, &views::interfaces(sh))?;
        pipeline(&mut enc, &stats)?;
        {
            // Management threads only: the workers never take this lock.
            let mut floor = self.idle_reported.lock().unwrap_or_else(|e| e.into_inner());
            workers(&mut enc, &stats, &mut floor)?;
        }
        tcp(&mut enc, &stats["tcp"])?;
        let vs = views::virtuals(sh);
        virtuals(&mut enc, &vs)?;
        http(&mut enc, &vs)?;
        tls(&mut enc, &views::tls(sh))?;
        members(&mut enc, &views::pools(sh, None).unwrap_or(Value::Null))?;
        let monitor = &stats["monitor"];
        for (key, name, help) in [
            (
                "transitions",
                "monitor_transitions",
                "Member monitor status changes.",
            ),
            ("probes", "monitor_probes", "Monitor probes started."),
            (
                "failures",
                "monitor_failures",
                "Monitor probes that failed.",
            ),
        ] {
            counter(&mut enc, name, help, None, &[(none(), num(&monitor[key]))])?;
        }
        monitors(&mut enc, &views::monitors(sh, None).unwrap_or(Value::Null))?;
        classes(&mut enc, &views::classes(sh, None).unwrap_or(Value::Null))?;
        Ok(())
    }
}

fn interfaces(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut packets, mut bytes, mut drops) = (Vec::new(), Vec::new(), Vec::new());
    let (mut v_packets, mut v_bytes) = (Vec::new(), Vec::new());
    for i in rows(data) {
        let name = s(&i["name"]);
        if let Some(vs) = i["verdicts"].as_object() {
            for (verdict, v) in vs {
                let l: Labels = vec![("interface", name.clone()), ("verdict", verdict.clone())];
                v_packets.push((l.clone(), num(&v["packets"])));
                v_bytes.push((l, num(&v["bytes"])));
            }
        }
        for dir in ["rx", "tx"] {
            let l: Labels = vec![("interface", name.clone()), ("direction", dir.into())];
            packets.push((l.clone(), num(&i[format!("{dir}_packets")])));
            bytes.push((l, num(&i[format!("{dir}_bytes")])));
        }
        drops.extend(by_key(
            &i["drops"],
            &vec![("interface", name.clone())],
            "reason",
        ));
    }
    counter(
        enc,
        "interface_packets",
        "Frames received (rx) and sent (tx) on a data port.",
        None,
        &packets,
    )?;
    counter(
        enc,
        "interface_bytes",
        "Bytes received (rx) and sent (tx) on a data port.",
        None,
        &bytes,
    )?;
    counter(
        enc,
        "interface_drops",
        "Frames a data port's driver dropped, by reason.",
        None,
        &drops,
    )?;
    counter(
        enc,
        "interface_verdict_packets",
        "Frames received on a data port, by what the data plane did with them.",
        None,
        &v_packets,
    )?;
    counter(
        enc,
        "interface_verdict_bytes",
        "Bytes of the frames received on a data port, by what the data plane did with them.",
        None,
        &v_bytes,
    )
}

fn pipeline(enc: &mut DescriptorEncoder, stats: &Value) -> Result<(), std::fmt::Error> {
    let mut verdicts = Vec::new();
    for w in rows(&stats["workers"]) {
        for v in ["forwarded", "answered", "consumed", "dropped"] {
            verdicts.push((
                vec![("worker", s(&w["id"])), ("verdict", v.to_string())],
                num(&w[v]),
            ));
        }
    }
    counter(
        enc,
        "packets",
        "Packets through the data plane by final verdict, per worker.",
        None,
        &verdicts,
    )?;
    counter(
        enc,
        "drops",
        "Packets the data plane dropped, by reason.",
        None,
        &by_key(&stats["drops"], &Labels::new(), "reason"),
    )?;
    let mut arp = Vec::new();
    for k in ["requests", "replies", "gratuitous"] {
        let key = format!("{k}_sent");
        arp.push((vec![("kind", k.to_string())], num(&stats["arp"][&key])));
    }
    counter(enc, "arp_sent", "ARP packets sent, by kind.", None, &arp)?;
    let icmp = &stats["icmp"];
    counter(
        enc,
        "icmp_sent",
        "ICMP messages sent, by kind.",
        None,
        &[
            (
                vec![("kind", "echo_reply".into())],
                num(&icmp["echo_replies"]),
            ),
            (vec![("kind", "error".into())], num(&icmp["errors_sent"])),
        ],
    )?;
    let mut nd = Vec::new();
    for (k, key) in [
        ("solicitation", "solicits_sent"),
        ("advertisement", "adverts_sent"),
        ("unsolicited_advertisement", "unsolicited_sent"),
        ("dad_probe", "dad_probes_sent"),
        ("mld_report", "mld_reports_sent"),
    ] {
        nd.push((vec![("kind", k.to_string())], num(&stats["nd"][key])));
    }
    counter(
        enc,
        "nd_sent",
        "IPv6 Neighbour Discovery and MLD messages sent, by kind.",
        None,
        &nd,
    )?;
    let icmpv6 = &stats["icmpv6"];
    counter(
        enc,
        "icmpv6_sent",
        "ICMPv6 messages sent (besides Neighbour Discovery), by kind.",
        None,
        &[
            (
                vec![("kind", "echo_reply".into())],
                num(&icmpv6["echo_replies"]),
            ),
            (vec![("kind", "error".into())], num(&icmpv6["errors_sent"])),
        ],
    )?;
    counter(
        enc,
        "icmp_errors_rate_limited",
        "ICMP errors not sent because of the rate limit.",
        None,
        &[(Labels::new(), num(&icmp["errors_rate_limited"]))],
    )?;
    let f = &stats["fastl4"];
    let reasons = [
        ("expired", "flows_expired"),
        ("rst", "flows_closed_by_rst"),
        ("member_down", "flows_member_down"),
    ];
    counter(
        enc,
        "fastl4_flows_created",
        "Fastl4 flows created.",
        None,
        &[(Labels::new(), num(&f["flows_created"]))],
    )?;
    counter(
        enc,
        "fastl4_flows_removed",
        "Fastl4 flows removed, by reason.",
        None,
        &reasons
            .iter()
            .map(|(r, k)| (vec![("reason", r.to_string())], num(&f[*k])))
            .collect::<Vec<_>>(),
    )?;
    counter(
        enc,
        "fastl4_rsts_sent",
        "TCP resets sent toward clients (members gone down, no free SNAT port).",
        None,
        &[(Labels::new(), num(&f["rsts_sent"]))],
    )
}

fn workers(
    enc: &mut DescriptorEncoder,
    stats: &Value,
    idle_floor: &mut Vec<f64>,
) -> Result<(), std::fmt::Error> {
    let uptime = stats["uptime_secs_exact"].as_f64().unwrap_or(0.0);
    let (mut busy, mut idle, mut turns, mut idle_turns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut work = Vec::new();
    let (mut handoffs, mut handoff_drops) = (Vec::new(), Vec::new());
    for w in rows(&stats["workers"]) {
        let l: Labels = vec![("worker", s(&w["id"]))];
        work.push((
            l.clone(),
            Num::Float(w["work_secs"].as_f64().unwrap_or(0.0)),
        ));
        handoffs.push((l.clone(), num(&w["handoffs"])));
        handoff_drops.push((l.clone(), num(&w["handoff_drops"])));
        turns.push((l.clone(), num(&w["loop_turns"])));
        idle_turns.push((l.clone(), num(&w["idle_turns"])));
        if let Some(cpu) = w["cpu_secs"].as_f64() {
            let id = w["id"].as_u64().unwrap_or(0) as usize;
            if idle_floor.len() <= id {
                idle_floor.resize(id + 1, 0.0);
            }
            idle_floor[id] = idle_floor[id].max(uptime - cpu);
            busy.push((l.clone(), Num::Float(cpu)));
            idle.push((l, Num::Float(idle_floor[id])));
        }
    }
    counter(
        enc,
        "worker_busy",
        "Time a worker thread was on its CPU (the kernel's account; a busy-polling worker is always on it).",
        Some(Unit::Seconds),
        &busy,
    )?;
    counter(
        enc,
        "worker_idle",
        "Time since the appliance started that a worker thread was off its CPU (sleeping while idle).",
        Some(Unit::Seconds),
        &idle,
    )?;
    counter(
        enc,
        "worker_work",
        "Time a worker spent in loop turns that did work (frames received or timers run); \
         spinning on empty rings and sleeping are not counted (DPDK telemetry's busy time).",
        Some(Unit::Seconds),
        &work,
    )?;
    counter(
        enc,
        "worker_loop_turns",
        "Turns of a worker's loop.",
        None,
        &turns,
    )?;
    counter(
        enc,
        "worker_idle_turns",
        "Turns of a worker's loop that found no packet.",
        None,
        &idle_turns,
    )?;
    counter(
        enc,
        "worker_handoffs",
        "Frames a worker received for a flow another worker owns and handed to it (ports that cannot steer).",
        None,
        &handoffs,
    )?;
    counter(
        enc,
        "worker_handoff_drops",
        "Frames lost on the way to their owning worker (its inbox full, or its packet pool empty).",
        None,
        &handoff_drops,
    )
}

fn tcp(enc: &mut DescriptorEncoder, t: &Value) -> Result<(), std::fmt::Error> {
    let none = Labels::new;
    gauge(
        enc,
        "tcp_connections",
        "Connections in the appliance's own TCP stacks.",
        None,
        &[(none(), num(&t["connections"]))],
    )?;
    let dirs = |what: &str| -> Vec<(Labels, Num)> {
        [("in", "rx"), ("out", "tx")]
            .iter()
            .map(|(k, d)| {
                (
                    vec![("direction", d.to_string())],
                    num(&t[format!("{what}_{k}")]),
                )
            })
            .collect()
    };
    counter(
        enc,
        "tcp_segments",
        "TCP segments received (rx) and sent (tx) by the appliance's own stacks.",
        None,
        &dirs("segments"),
    )?;
    counter(
        enc,
        "tcp_payload",
        "TCP payload received (rx) and sent (tx) by the appliance's own stacks.",
        Some(Unit::Bytes),
        &dirs("bytes"),
    )?;
    for (key, help) in [
        ("retransmits", "TCP segments retransmitted."),
        ("fast_recoveries", "TCP fast recoveries entered."),
        ("timeouts", "TCP retransmission timeouts."),
        ("resets_sent", "TCP resets sent."),
        ("resets_received", "TCP resets received."),
        ("challenge_acks", "TCP challenge ACKs sent (RFC 5961)."),
        (
            "syn_resent_after_rst",
            "TCP SYNs sent again at once behind a reset: the peer answered the first for an older connection on the same addresses and ports.",
        ),
        ("syn_cookies_sent", "TCP SYN cookies sent."),
        ("syn_cookies_validated", "TCP SYN cookies validated."),
        ("active_opens", "TCP connections opened by the appliance."),
        (
            "passive_opens",
            "TCP connections accepted by the appliance.",
        ),
        ("closed", "TCP connections closed."),
        ("aborted", "TCP connections aborted."),
    ] {
        counter(
            enc,
            &format!("tcp_{key}"),
            help,
            None,
            &[(none(), num(&t[key]))],
        )?;
    }
    counter(
        enc,
        "tcp_drops",
        "TCP segments the appliance's stacks dropped, by reason.",
        None,
        &by_key(&t["drops"], &none(), "reason"),
    )
}

fn virtuals(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut packets, mut bytes, mut cur, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in rows(data) {
        let l: Labels = vec![("virtual", s(&v["name"])), ("type", s(&v["type"]))];
        if !v["packets"].is_null() {
            packets.push((l.clone(), num(&v["packets"])));
        }
        bytes.push((l.clone(), num(&v["bytes"])));
        if !v["connections"].is_null() {
            total.push((l.clone(), num(&v["connections"])));
        }
        if !v["current_connections"].is_null() {
            cur.push((l, num(&v["current_connections"])));
        }
    }
    counter(
        enc,
        "virtual_packets",
        "Packets handled by a virtual server.",
        None,
        &packets,
    )?;
    counter(
        enc,
        "virtual",
        "Bytes handled by a virtual server.",
        Some(Unit::Bytes),
        &bytes,
    )?;
    counter(
        enc,
        "virtual_connections",
        "Connections (flows) a virtual server has taken.",
        None,
        &total,
    )?;
    gauge(
        enc,
        "virtual_current_connections",
        "Connections (flows) a virtual server has now.",
        None,
        &cur,
    )
}

/// HTTP per standard virtual server with an `http_profile` (`show virtual`'s `http`).
fn http(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut requests, mut responses, mut refused, mut answers) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let singles: [(&str, &str); 8] = [
        (
            "server_connections_reused",
            "Requests sent on a reused idle server-side connection (OneConnect).",
        ),
        (
            "server_connections_opened",
            "Server-side connections opened for requests.",
        ),
        (
            "retries",
            "Requests sent again on a fresh connection after a reused one died before any response byte.",
        ),
        (
            "resumes_attempted",
            "GETs continued from another member after theirs died mid-response.",
        ),
        (
            "resumes_succeeded",
            "Resumed GETs whose new member's bytes were spliced into the client's response.",
        ),
        (
            "resumes_refused",
            "Resumes refused (no matching answer or no member): the client's connection was aborted.",
        ),
        (
            "policy_routed",
            "Requests sent to a pool by a policy rule (not the default pool).",
        ),
        (
            "passive_down",
            "Members marked down by passive health.",
        ),
    ];
    let mut single: Vec<Vec<(Labels, Num)>> = vec![Vec::new(); singles.len()];
    for v in rows(data) {
        let h = &v["http"];
        if h.is_null() {
            continue;
        }
        let l: Labels = vec![("virtual", s(&v["name"]))];
        requests.push((l.clone(), num(&h["requests"])));
        responses.extend(by_key(&h["responses"], &l, "class"));
        refused.extend(by_key(&h["refused"], &l, "reason"));
        answers.extend(by_key(&h["answers"], &l, "answer"));
        for (k, (key, _)) in singles.iter().enumerate() {
            single[k].push((l.clone(), num(&h[*key])));
        }
    }
    counter(
        enc,
        "http_requests",
        "HTTP requests received from clients (head complete).",
        None,
        &requests,
    )?;
    counter(
        enc,
        "http_responses",
        "HTTP responses passed to clients, by status class (1xx: interim).",
        None,
        &responses,
    )?;
    counter(
        enc,
        "http_refused",
        "HTTP requests refused by the engine, by reason (the client got 400, 431 or 502).",
        None,
        &refused,
    )?;
    counter(
        enc,
        "http_answers",
        "Answers the proxy gave itself instead of a member's (408, 502, 503, 504).",
        None,
        &answers,
    )?;
    for ((key, help), samples) in singles.iter().zip(&single) {
        counter(enc, &format!("http_{key}"), help, None, samples)?;
    }
    Ok(())
}

/// Each monitor's successful probes, and its failed ones by `reason` (tcp, timeout,
/// certificate, handshake, response, source_port).
fn monitors(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut successes, mut failures) = (Vec::new(), Vec::new());
    for m in rows(data) {
        let l: Labels = vec![("monitor", s(&m["name"]))];
        successes.push((l.clone(), num(&m["successes"])));
        failures.extend(by_key(&m["failures_by_reason"], &l, "reason"));
    }
    counter(
        enc,
        "monitor_probe_successes",
        "Probes that succeeded, per monitor.",
        None,
        &successes,
    )?;
    counter(
        enc,
        "monitor_probe_failures",
        "Probes that failed, per monitor and reason.",
        None,
        &failures,
    )
}

/// TLS per virtual server and side (`show tls`), ticket keys per profile.
fn tls(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut hs, mut suites, mut fails, mut bytes, mut cur) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut issued, mut accepted, mut rotations, mut expiry) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut profiles = std::collections::BTreeSet::new();
    for v in rows(data) {
        for (side, key) in [("client", "client_side"), ("server", "server_side")] {
            let t = &v[key];
            if t.is_null() {
                continue;
            }
            let l: Labels = vec![("virtual", s(&v["name"])), ("side", side.to_string())];
            for kind in ["full", "resumed"] {
                for version in ["1.2", "1.3"] {
                    let mut x = l.clone();
                    x.push(("version", version.to_string()));
                    x.push(("kind", kind.to_string()));
                    hs.push((x, num(&t["handshakes"][kind][version])));
                }
            }
            suites.extend(by_key(&t["suites"], &l, "suite"));
            fails.extend(by_key(&t["failures"], &l, "reason"));
            for (direction, k) in [
                ("encrypted", "bytes_encrypted"),
                ("decrypted", "bytes_decrypted"),
            ] {
                let mut x = l.clone();
                x.push(("direction", direction.to_string()));
                bytes.push((x, num(&t[k])));
            }
            cur.push((l, num(&t["current"])));
            let profile = s(&t["profile"]);
            if side == "client" && profiles.insert(profile.clone()) {
                let p: Labels = vec![("profile", profile.clone())];
                issued.push((p.clone(), num(&t["tickets"]["issued"])));
                accepted.push((p.clone(), num(&t["tickets"]["accepted"])));
                rotations.push((p, num(&t["tickets"]["rotations"])));
                for c in rows(&t["certificates"]) {
                    if !c["not_after_unix"].is_null() {
                        expiry.push((
                            vec![("profile", profile.clone()), ("cert", s(&c["cert"]))],
                            num(&c["not_after_unix"]),
                        ));
                    }
                }
            }
        }
    }
    counter(
        enc,
        "tls_handshakes",
        "TLS handshakes completed, by side, version and kind (full or resumed).",
        None,
        &hs,
    )?;
    counter(
        enc,
        "tls_suite_handshakes",
        "TLS handshakes completed, by cipher suite.",
        None,
        &suites,
    )?;
    counter(
        enc,
        "tls_failures",
        "TLS connections that failed (handshake or record), by reason.",
        None,
        &fails,
    )?;
    counter(
        enc,
        "tls",
        "Application bytes encrypted and decrypted by TLS.",
        Some(Unit::Bytes),
        &bytes,
    )?;
    gauge(
        enc,
        "tls_current_connections",
        "TLS connections open now.",
        None,
        &cur,
    )?;
    counter(
        enc,
        "tls_tickets_issued",
        "Session tickets sealed with a client side profile's keys (all workers).",
        None,
        &issued,
    )?;
    counter(
        enc,
        "tls_tickets_accepted",
        "Session tickets opened: resumptions the profile's keys allowed.",
        None,
        &accepted,
    )?;
    counter(
        enc,
        "tls_ticket_rotations",
        "Ticket key rotations of a client side profile.",
        None,
        &rotations,
    )?;
    gauge(
        enc,
        "tls_certificate_not_after",
        "When a client side profile's certificate expires (UNIX time).",
        Some(Unit::Seconds),
        &expiry,
    )
}

fn members(enc: &mut DescriptorEncoder, pools: &Value) -> Result<(), std::fmt::Error> {
    let mut admin = Vec::new();
    let mut monitor = Vec::new();
    let mut available = Vec::new();
    let (mut cur, mut total, mut packets, mut bytes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in rows(pools) {
        for m in rows(&p["members"]) {
            let l: Labels = vec![("pool", s(&p["name"])), ("member", s(&m["address"]))];
            for state in ["enabled", "disabled", "forced-offline"] {
                let mut x = l.clone();
                x.push(("state", state.into()));
                admin.push((x, Num::Int(u64::from(m["admin"] == state))));
            }
            for status in ["up", "down", "unchecked"] {
                let mut x = l.clone();
                x.push(("status", status.into()));
                monitor.push((x, Num::Int(u64::from(m["monitor"] == status))));
            }
            available.push((
                l.clone(),
                Num::Int(u64::from(m["availability"] == "available")),
            ));
            cur.push((l.clone(), num(&m["current_connections"])));
            total.push((l.clone(), num(&m["total_connections"])));
            packets.push((l.clone(), num(&m["packets"])));
            bytes.push((l, num(&m["bytes"])));
        }
    }
    gauge(
        enc,
        "member_admin_state",
        "A pool member's admin state (1 for the current one).",
        None,
        &admin,
    )?;
    gauge(
        enc,
        "member_monitor_status",
        "A pool member's monitor status (1 for the current one).",
        None,
        &monitor,
    )?;
    gauge(
        enc,
        "member_available",
        "1 when a pool member takes new connections.",
        None,
        &available,
    )?;
    gauge(
        enc,
        "member_current_connections",
        "Connections on a pool member now (appliance-wide).",
        None,
        &cur,
    )?;
    counter(
        enc,
        "member_connections",
        "Connections ever sent to a pool member.",
        None,
        &total,
    )?;
    counter(
        enc,
        "member_packets",
        "Packets through fastl4 to and from a pool member.",
        None,
        &packets,
    )?;
    counter(
        enc,
        "member",
        "Bytes through fastl4 to and from a pool member.",
        Some(Unit::Bytes),
        &bytes,
    )
}

fn classes(enc: &mut DescriptorEncoder, data: &Value) -> Result<(), std::fmt::Error> {
    let (mut rate, mut packets, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut qp, mut qb, mut drops) = (Vec::new(), Vec::new(), Vec::new());
    let mut delays = Vec::new();
    for c in rows(data) {
        for f in rows(&c["interfaces"]) {
            let l: Labels = vec![("class", s(&c["name"])), ("interface", s(&f["interface"]))];
            rate.push((
                l.clone(),
                Num::Float(f["rate_bps"].as_f64().unwrap_or(0.0) / 8.0),
            ));
            packets.push((l.clone(), num(&f["packets"])));
            bytes.push((l.clone(), num(&f["bytes"])));
            qp.push((l.clone(), num(&f["queue_packets"])));
            qb.push((l.clone(), num(&f["queue_bytes"])));
            drops.extend(by_key(&f["drops_by_reason"], &l, "reason"));
            delays.push((l, f["delay_histogram"].clone()));
        }
    }
    gauge(
        enc,
        "class_rate",
        "Rate a shaping class sends at, measured over the last interval.",
        Some(Unit::Other("bytes_per_second".into())),
        &rate,
    )?;
    counter(
        enc,
        "class_packets",
        "Packets a shaping class has sent.",
        None,
        &packets,
    )?;
    counter(
        enc,
        "class",
        "Bytes a shaping class has sent.",
        Some(Unit::Bytes),
        &bytes,
    )?;
    gauge(
        enc,
        "class_queue_packets",
        "Packets waiting in a shaping class's queue.",
        None,
        &qp,
    )?;
    gauge(
        enc,
        "class_queue",
        "Bytes waiting in a shaping class's queue.",
        Some(Unit::Bytes),
        &qb,
    )?;
    counter(
        enc,
        "class_drops",
        "Packets a shaping class dropped, by reason.",
        None,
        &drops,
    )?;
    if delays.is_empty() {
        return Ok(());
    }
    let unit = Unit::Seconds;
    let mut m = enc.encode_descriptor(
        "class_queue_delay",
        "Time packets waited in a shaping class's queue.",
        Some(&unit),
        MetricType::Histogram,
    )?;
    for (labels, h) in &delays {
        let buckets: Vec<(f64, u64)> = rows(&h["buckets"])
            .iter()
            .map(|b| (b[0].as_f64().unwrap_or(0.0), b[1].as_u64().unwrap_or(0)))
            .collect();
        let count = h["count"].as_u64().unwrap_or(0);
        // The crate takes per-bucket counts, accumulates them itself and adds the
        // `+Inf` bucket from `count`.
        let mut prev = 0;
        let per_bucket: Vec<(f64, u64)> = buckets
            .into_iter()
            .map(|(le, cum)| {
                let n = cum.saturating_sub(prev);
                prev = cum;
                (le, n)
            })
            .collect();
        let sum = h["sum_secs"].as_f64().unwrap_or(0.0);
        m.encode_family(labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &per_bucket, None)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A running appliance's shared state without ports or workers: the test bed's
    /// configuration with a shaped client side.
    pub(crate) fn shared() -> Arc<Shared> {
        let text = include_str!("../configs/testbed.toml")
            .replacen(
                "name = \"lb-c\"           # toward the clients\n",
                "name = \"lb-c\"\nshaping_rate = \"100Mbit\"\n",
                1,
            )
            .replacen(
                "[arp]",
                "[[class]]\nname = \"gold\"\nvirtuals = [\"web\"]\n\n[arp]",
                1,
            );
        let cfg = crate::config::parse(
            concat!(env!("CARGO_MANIFEST_DIR"), "/configs/t.toml"),
            &text,
        )
        .unwrap();
        let dp = crate::config::build::dataplane(&cfg, 1, 1, None);
        Shared::new(cfg, "t.toml".into(), dp, &[None], None)
    }

    #[test]
    fn names_follow_the_conventions_and_carry_the_figures() {
        let text = render(&registry(shared())).unwrap();
        let mut families = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut w = line.split_whitespace().skip(2);
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            assert!(name.starts_with("rouge_"), "{line}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
            families += 1;
        }
        assert!(families > 40, "{families} families");
        for sample in [
            "rouge_config_generation 1",
            "rouge_member_admin_state{pool=\"web\",member=\"198.18.2.11:80\",state=\"enabled\"} 1",
            "rouge_member_admin_state{pool=\"web\",member=\"198.18.2.11:80\",state=\"disabled\"} 0",
            "rouge_member_monitor_status{pool=\"web\",member=\"198.18.2.11:80\",status=\"unchecked\"} 1",
            "rouge_virtual_connections_total{virtual=\"web\",type=\"fastl4\"} 0",
            "rouge_drops_total{reason=\"eth_unsupported_type\"} 0",
            "rouge_class_queue_delay_seconds_bucket{class=\"gold\",interface=\"lb-c\",le=\"+Inf\"} 0",
            "rouge_class_queue_delay_seconds_count{class=\"gold\",interface=\"lb-c\"} 0",
            "rouge_worker_handoffs_total{worker=\"0\"} 0",
            "rouge_worker_handoff_drops_total{worker=\"0\"} 0",
            "rouge_tls_handshakes_total{virtual=\"web-tls\",side=\"client\",version=\"1.3\",kind=\"full\"} 0",
            "rouge_tls_failures_total{virtual=\"web-tls\",side=\"client\",reason=\"not-tls\"} 0",
            "rouge_tls_bytes_total{virtual=\"web-tls\",side=\"client\",direction=\"encrypted\"} 0",
            "rouge_tls_current_connections{virtual=\"web-tls\",side=\"client\"} 0",
            "rouge_tls_tickets_issued_total{profile=\"s3-client\"} 0",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample} missing");
        }
        let rate = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "rouge_class_rate_bytes_per_second{class=\"default\",interface=\"lb-c\"} ",
                )
            })
            .expect("the default class's rate on lb-c");
        assert_eq!(rate.parse::<f64>().unwrap(), 0.0);
        // One family per name: a name written twice would be refused by Prometheus.
        let mut names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE "))
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate metric families");
    }

    #[test]
    fn monitor_failures_carry_the_monitor_and_the_reason() {
        use rouge_pipelines::monitor::{MonitorStats, ProbeFailure};
        let sh = shared();
        let mut st = MonitorStats {
            name: "http-get".into(),
            probes: 9,
            successes: 4,
            ..MonitorStats::default()
        };
        st.failures[ProbeFailure::Certificate as usize] = 3;
        st.failures[ProbeFailure::Timeout as usize] = 2;
        sh.workers[0].monitor_stats.store(Arc::new(vec![st]));
        let text = render(&registry(sh.clone())).unwrap();
        for sample in [
            "rouge_monitor_probe_failures_total{monitor=\"http-get\",reason=\"certificate\"} 3",
            "rouge_monitor_probe_failures_total{monitor=\"http-get\",reason=\"timeout\"} 2",
            "rouge_monitor_probe_failures_total{monitor=\"http-get\",reason=\"handshake\"} 0",
            "rouge_monitor_probe_successes_total{monitor=\"http-get\"} 4",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample} missing");
        }
        // The same figures in `show monitor` and `show stats`.
        let m = views::monitors(&sh, Some("http-get")).unwrap();
        assert_eq!(m[0]["failures"], 5);
        assert_eq!(m[0]["failures_by_reason"]["certificate"], 3);
        // Pools web and web6, four members each, nothing probed yet.
        assert_eq!(m[0]["members"]["unchecked"], 8);
        assert_eq!(m[0]["type"], "http");
        let stats = views::stats(&sh);
        assert_eq!(stats["monitor"]["failures_by_reason"]["timeout"], 2);
        assert!(views::monitors(&sh, Some("nope")).is_err());
        // `show pool` names why a member that is not up failed.
        let web = sh
            .dataplane
            .load()
            .pools
            .iter()
            .position(|(n, _)| n == "web")
            .unwrap() as u32;
        let addr = "198.18.2.12:80".parse().unwrap();
        sh.workers[0].monitor_failing.store(Arc::new(vec![(
            (web, 1),
            addr,
            ProbeFailure::Certificate,
        )]));
        let pool = views::pools(&sh, Some("web")).unwrap();
        let members = pool[0]["members"].as_array().unwrap();
        for m in members {
            let want = if m["address"] == "198.18.2.12:80" {
                Value::from("certificate")
            } else {
                Value::Null
            };
            assert_eq!(m["monitor_failure"], want, "{m}");
        }
    }
}
