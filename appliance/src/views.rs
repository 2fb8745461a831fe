//! What `rouge show …` reports, built from shared state as JSON values. The CLI's
//! tables are drawn from the same values, so `--json` and the tables always agree.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use rouge_drivers::PortDrop;
use rouge_pipelines::monitor::{MonitorStats, ProbeFailure};
use rouge_pipelines::shaper::DelayStats;
use rouge_pipelines::verdict::DropReason;
use serde_json::{json, Value};

use crate::shared::Shared;

/// CPU time a worker's sleeps took, in seconds: measured on the timed ones and scaled
/// to all of them (each sleep is alike: a wait entered, the thread switched away and
/// back).
fn sleep_cpu_secs(c: &rouge_pipelines::counters::PipelineCounters) -> f64 {
    let timed = c.sleeps_timed.get();
    if timed == 0 {
        return 0.0;
    }
    c.sleep_cpu_ns.get() as f64 / 1e9 * c.sleeps.get() as f64 / timed as f64
}

/// `show interfaces`: every port with its counters summed over the workers.
pub fn interfaces(s: &Shared) -> Value {
    let dp = s.dataplane.load();
    let cfg = s.config.load();
    let mut out = Vec::new();
    for (i, itf) in dp.interfaces.iter().enumerate() {
        let mut rx = [0u64; 2];
        let mut tx = [0u64; 2];
        let mut tx_kicks = 0u64;
        let mut tx_in_place = 0u64;
        let mut rx_in_place = 0u64;
        let mut drops = BTreeMap::new();
        let mut mac = String::new();
        let mut mtu = 0;
        let mut tx_path = "";
        for w in &s.workers {
            let ports = w.ports.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = ports.get(i).filter(|p| p.name == itf.name) {
                mac = p.mac.to_string();
                mtu = p.mtu;
                tx_path = p.tx_path;
                rx[0] += p.counters.rx_packets.get();
                rx[1] += p.counters.rx_bytes.get();
                tx[0] += p.counters.tx_packets.get();
                tx[1] += p.counters.tx_bytes.get();
                tx_kicks += p.counters.tx_kicks.get();
                tx_in_place += p.counters.tx_in_place.get();
                rx_in_place += p.counters.rx_in_place.get();
                for r in PortDrop::ALL {
                    *drops.entry(r.name()).or_insert(0u64) += p.counters.dropped(r);
                }
            }
        }
        let vlans: Vec<Value> = dp
            .vlans
            .iter()
            .enumerate()
            .filter(|(_, v)| v.iface as usize == i)
            .map(|(vi, v)| {
                json!({
                    "name": v.name,
                    "tag": v.tag,
                    "self_ips": dp.self_ips.iter().filter(|x| x.vlan as usize == vi)
                        .map(|x| json!({"name": x.name, "address": x.addr.to_string(), "floating": x.floating}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let driver = cfg
            .interfaces
            .iter()
            .find(|c| c.name == itf.name)
            .map_or("", |c| c.driver.name());
        // What the pipelines did with the frames received here, summed over workers.
        let mut verdicts = BTreeMap::new();
        for (k, name) in rouge_pipelines::counters::VERDICT_KINDS.iter().enumerate() {
            let (mut packets, mut bytes) = (0u64, 0u64);
            for w in &s.workers {
                if let Some(p) = w.pipeline.by_port.get(i) {
                    packets += p.packets[k].get();
                    bytes += p.bytes[k].get();
                }
            }
            verdicts.insert(*name, json!({"packets": packets, "bytes": bytes}));
        }
        out.push(json!({
            "name": itf.name,
            "driver": driver,
            "mac": mac,
            "mtu": mtu,
            "rx_packets": rx[0], "rx_bytes": rx[1],
            "tx_packets": tx[0], "tx_bytes": tx[1], "tx_kicks": tx_kicks,
            "tx_in_place": tx_in_place,
            "rx_in_place": rx_in_place,
            "tx_path": tx_path,
            "drops": drops,
            "verdicts": verdicts,
            "vlans": vlans,
        }));
    }
    Value::Array(out)
}

/// `show arp`: the neighbour tables (ARP and IPv6 Neighbour Discovery) of all workers,
/// merged by address.
pub fn arp(s: &Shared) -> Value {
    let dp = s.dataplane.load();
    let mut rows: BTreeMap<std::net::IpAddr, Value> = BTreeMap::new();
    for w in &s.workers {
        for e in w.arp.load().iter() {
            let vlan = dp
                .vlans
                .get(e.vlan as usize)
                .map(|v| v.name.clone())
                .unwrap_or_default();
            let row = json!({"address": e.ip.to_string(), "mac": e.mac, "vlan": vlan, "state": e.state, "expires_in_ms": e.expires_in_ms});
            let better = match rows.get(&e.ip) {
                Some(old) => old["state"] != "reachable" && e.state == "reachable",
                None => true,
            };
            if better {
                rows.insert(e.ip, row);
            }
        }
    }
    Value::Array(rows.into_values().collect())
}

/// `show routes`: connected and static routes.
pub fn routes(s: &Shared) -> Value {
    let dp = s.dataplane.load();
    Value::Array(
        dp.routes
            .routes()
            .iter()
            .map(|r| {
                json!({
                    "destination": r.prefix.to_string(),
                    "gateway": r.next_hop.gateway.map(|g| g.to_string()),
                    "vlan": dp.vlans.get(r.next_hop.vlan as usize).map(|v| v.name.clone()),
                    "kind": if r.connected { "connected" } else { "static" },
                })
            })
            .collect(),
    )
}

/// `show virtual`: virtual servers with their traffic.
pub fn virtuals(s: &Shared) -> Value {
    let dp = s.dataplane.load();
    let mut out: Vec<Value> = dp
        .forwarding
        .iter()
        .map(|f| {
            json!({"name": f.name, "type": "forwarding", "destination": f.destination.to_string(),
                   "packets": f.counters.packets(), "bytes": f.counters.bytes()})
        })
        .collect();
    for f in &dp.fastl4 {
        let dest = match f.port {
            Some(p) => format!("{}:{p}", f.vip),
            None => format!("{}:*", f.vip),
        };
        let pool = dp
            .pools
            .iter()
            .find(|(_, b)| {
                f.lb.as_ref()
                    .is_some_and(|l| std::sync::Arc::ptr_eq(&l.pool, &b.pool))
            })
            .map(|(n, _)| n.clone());
        out.push(json!({"name": f.name, "type": "fastl4", "destination": dest,
            "protocol": match f.protocol { rouge_pipelines::dataplane::Fastl4Protocol::Tcp => "tcp", _ => "udp" },
            "pool": pool, "packets": f.counters.packets(), "bytes": f.counters.bytes(),
            "connections": f.counters.conns_total(), "current_connections": f.counters.conns_current()}));
    }
    for v in &dp.standard {
        let pool = dp
            .pools
            .iter()
            .find(|(_, b)| std::sync::Arc::ptr_eq(&v.lb.pool, &b.pool))
            .map(|(n, _)| n.clone());
        let c = &v.counters;
        let (cs, ss) = (c.client_side(), c.server_side());
        let resets: BTreeMap<&str, u64> = rouge_pipelines::proxy::ResetCause::ALL
            .iter()
            .map(|r| (r.as_str(), c.resets(*r)))
            .collect();
        out.push(
            json!({"name": v.name, "type": "standard", "destination": v.vip.to_string(),
            "pool": pool, "packets": cs.packets_in + cs.packets_out,
            "bytes": cs.bytes_in + cs.bytes_out, "connections": cs.total,
            "current_connections": cs.current,
            "client_side": cs, "server_side": ss, "reselects": c.reselects(),
            "resets": resets, "buffer_bytes": c.buffer_bytes(), "tls": tls_sides(v),
            "http": http_figures(v)}),
        );
    }
    for sv in &dp.services {
        let kind = match sv.kind {
            rouge_pipelines::services::ServiceKind::Echo => "echo",
            rouge_pipelines::services::ServiceKind::Discard => "discard",
            rouge_pipelines::services::ServiceKind::Chargen => "chargen",
        };
        out.push(
            json!({"name": sv.name, "type": kind, "destination": sv.addr.to_string(),
                        "connections": sv.counters.packets(), "bytes": sv.counters.bytes()}),
        );
    }
    Value::Array(out)
}

/// One side's TLS figures: the profile, connections now, handshakes (full and resumed
/// by version), by suite, failures by reason, bytes, and on the client side the ticket
/// keys' figures (shared by every virtual server of the profile) and the certificates
/// (paths, names, expiry: never key material).
fn tls_side(
    profile: &str,
    t: &rouge_pipelines::proxy::TlsTotals,
    server: Option<&rouge_pipelines::tls::TlsServerConfig>,
) -> Value {
    use rouge_pipelines::proxy::TLS_SUITES;
    use rouge_pipelines::tls::TlsFailure;
    let by_version = |v: &[u64; 2]| json!({"1.2": v[0], "1.3": v[1]});
    let suites: BTreeMap<&str, u64> = TLS_SUITES.iter().copied().zip(t.by_suite).collect();
    let failures: BTreeMap<&str, u64> = TlsFailure::ALL
        .iter()
        .map(|f| (f.as_str(), t.failed(*f)))
        .collect();
    let mut side = json!({
        "profile": profile,
        "current": t.current,
        "handshakes": {
            "full": by_version(&t.full),
            "resumed": by_version(&t.resumed),
            "total": t.full.iter().chain(&t.resumed).sum::<u64>(),
        },
        "suites": suites,
        "failures": failures,
        "failures_total": t.failures.iter().sum::<u64>(),
        "bytes_encrypted": t.bytes_encrypted,
        "bytes_decrypted": t.bytes_decrypted,
    });
    if let Some(s) = server {
        let k = s.ticket_keys();
        side["tickets"] =
            json!({"issued": k.issued(), "accepted": k.accepted(), "rotations": k.rotations()});
        side["certificates"] = s
            .identities()
            .iter()
            .map(|id| {
                json!({
                    "cert": id.label(),
                    "names": id.names(),
                    "key_type": if id.is_rsa() { "rsa" } else { "ecdsa" },
                    "not_after": id.validity().map(|(_, na)| crate::config::tls::date(na)),
                    "not_after_unix": id.validity().map(|(_, na)| na),
                })
            })
            .collect();
    }
    side
}

/// The TLS figures of a standard virtual server, `client_side` and `server_side`
/// (`null` for a side without TLS); `null` without TLS at all.
pub fn tls_sides(v: &rouge_pipelines::proxy::StandardVs) -> Value {
    if v.client_tls.is_none() && v.server_tls.is_none() {
        return Value::Null;
    }
    let client = v
        .client_tls
        .as_ref()
        .map(|(n, c)| tls_side(n, &v.counters.client_tls(), Some(c)));
    let server = v
        .server_tls
        .as_ref()
        .map(|(n, _, _)| tls_side(n, &v.counters.server_tls(), None));
    json!({"client_side": client, "server_side": server})
}

/// The HTTP figures of a standard virtual server with an `http_profile` (`null`
/// without): its profile and policy, requests, responses by status class, requests
/// refused by reason, the proxy's own answers, server-side connections reused and
/// opened, retries, resumes, requests routed by the policy, members marked down by
/// passive health.
pub fn http_figures(v: &rouge_pipelines::proxy::StandardVs) -> Value {
    use rouge_pipelines::http::HttpError;
    use rouge_pipelines::proxy::HttpAnswer;
    let Some(h) = &v.http else {
        return Value::Null;
    };
    let t = v.counters.http();
    // HttpTotals::responses is [2xx, 3xx, 4xx, 5xx, 1xx].
    let r = &t.responses;
    let refused: BTreeMap<&str, u64> = HttpError::ALL
        .iter()
        .zip(t.refused)
        .map(|(e, n)| (e.as_str(), n))
        .collect();
    let answers: BTreeMap<&str, u64> = HttpAnswer::ALL
        .iter()
        .zip(t.answers)
        .map(|(a, n)| (a.as_str(), n))
        .collect();
    json!({
        "profile": h.profile.name,
        "policy": h.policy.as_ref().map(|p| p.name.clone()),
        "requests": t.requests,
        "responses": {"1xx": r[4], "2xx": r[0], "3xx": r[1], "4xx": r[2], "5xx": r[3]},
        "refused": refused,
        "answers": answers,
        "server_connections_reused": t.server_connections_reused,
        "server_connections_opened": t.server_connections_opened,
        "retries": t.retries,
        "resumes_attempted": t.resumes_attempted,
        "resumes_succeeded": t.resumes_succeeded,
        "resumes_refused": t.resumes_refused,
        "policy_routed": t.policy_routed,
        "passive_down": t.passive_down,
    })
}

/// `show tls`: every standard virtual server with TLS on a side, with both sides'
/// figures.
pub fn tls(s: &Shared) -> Value {
    let dp = s.dataplane.load();
    Value::Array(
        dp.standard
            .iter()
            .filter_map(|v| {
                let sides = tls_sides(v);
                (!sides.is_null()).then(|| {
                    json!({"name": v.name, "destination": v.vip.to_string(),
                           "client_side": sides["client_side"], "server_side": sides["server_side"]})
                })
            })
            .collect(),
    )
}

/// A delay histogram as microsecond figures (log2 buckets, interpolated).
fn delay_json(d: &DelayStats) -> Value {
    let us = |t: std::time::Duration| (t.as_secs_f64() * 1e7).round() / 10.0;
    json!({"samples": d.count, "p50": us(d.quantile(0.5)), "p99": us(d.quantile(0.99)),
           "p999": us(d.quantile(0.999)), "max": (d.max_ns as f64 / 100.0).round() / 10.0})
}

/// `show stats`: pipeline counters summed over workers, and per worker.
pub fn stats(s: &Shared) -> Value {
    let sum = |f: &dyn Fn(&rouge_pipelines::counters::PipelineCounters) -> u64| -> u64 {
        s.workers.iter().map(|w| f(&w.pipeline)).sum()
    };
    let mut drops = BTreeMap::new();
    for r in DropReason::ALL {
        drops.insert(r.name(), sum(&|c| c.dropped(*r)));
    }
    let workers: Vec<Value> = s
        .workers
        .iter()
        .map(|w| {
            let c = &w.pipeline;
            // Thread names are cut to 15 bytes by the kernel.
            let mut thread = format!("rouge-worker-{}", w.id);
            thread.truncate(15);
            let cpu = crate::cputime::thread_cpu_time(&thread).map(|d| d.as_secs_f64());
            json!({"id": w.id, "core": w.core, "running": w.running.load(Ordering::Relaxed),
                   "generation": w.generation.load(Ordering::Relaxed),
                   "rx_packets": c.rx_packets.get(), "forwarded": c.forwarded.get(),
                   "answered": c.answered.get(), "consumed": c.consumed.get(),
                   "dropped": c.dropped_total(),
                   "loop_turns": c.loop_turns.get(), "idle_turns": c.idle_turns.get(),
                   "work_secs": c.work_ns.get() as f64 / 1e9,
                   "sleeps": c.sleeps.get(),
                   "sleeps_timed": c.sleeps_timed.get(),
                   "sleep_cpu_secs": sleep_cpu_secs(c),
                   "spin_us": c.spin_ns.get() as f64 / 1e3,
                   "tx_queue_overflow": c.tx_queue_overflow.get(),
                   "handoffs": c.handoffs.get(), "handoff_drops": c.handoff_drops.get(),
                   "fastl4_flows_created": c.fastl4_flows_created.get(),
                   "transit_us": delay_json(&w.transit.load()),
                   "cpu_secs": cpu})
        })
        .collect();
    json!({
        "uptime_secs": s.started.elapsed().as_secs(),
        "uptime_secs_exact": s.started.elapsed().as_secs_f64(),
        "generation": s.dataplane.load().generation,
        "rx_packets": sum(&|c| c.rx_packets.get()),
        "forwarded": sum(&|c| c.forwarded.get()),
        "answered": sum(&|c| c.answered.get()),
        "consumed": sum(&|c| c.consumed.get()),
        "dropped": sum(&|c| c.dropped_total()),
        "drops": drops,
        "tx_queue_overflow": sum(&|c| c.tx_queue_overflow.get()),
        "handoffs": sum(&|c| c.handoffs.get()),
        "handoff_drops": sum(&|c| c.handoff_drops.get()),
        "transit_us": delay_json(&s.workers.iter().fold(DelayStats::default(), |mut all, w| {
            all.merge(&w.transit.load());
            all
        })),
        "arp": {
            "requests_sent": sum(&|c| c.arp_requests_sent.get()),
            "replies_sent": sum(&|c| c.arp_replies_sent.get()),
            "gratuitous_sent": sum(&|c| c.arp_gratuitous_sent.get()),
        },
        "icmp": {
            "echo_replies": sum(&|c| c.icmp_echo_replies.get()),
            "errors_sent": sum(&|c| c.icmp_errors_sent.get()),
            "errors_rate_limited": sum(&|c| c.icmp_errors_rate_limited.get()),
        },
        "nd": {
            "solicits_sent": sum(&|c| c.nd_solicits_sent.get()),
            "adverts_sent": sum(&|c| c.nd_adverts_sent.get()),
            "unsolicited_sent": sum(&|c| c.nd_unsolicited_sent.get()),
            "dad_probes_sent": sum(&|c| c.nd_dad_probes_sent.get()),
            "mld_reports_sent": sum(&|c| c.mld_reports_sent.get()),
            "mld_queries_answered": sum(&|c| c.mld_queries_answered.get()),
            "mld_queries_limited": sum(&|c| c.mld_queries_limited.get()),
        },
        "icmpv6": {
            "echo_replies": sum(&|c| c.icmpv6_echo_replies.get()),
            "errors_sent": sum(&|c| c.icmpv6_errors_sent.get()),
        },
        "tcp": tcp_stats(s),
        "fastl4": {
            "flows_created": sum(&|c| c.fastl4_flows_created.get()),
            "flows_expired": sum(&|c| c.fastl4_flows_expired.get()),
            "flows_closed_by_rst": sum(&|c| c.fastl4_flows_closed_by_rst.get()),
            "flows_member_down": sum(&|c| c.fastl4_flows_member_down.get()),
            "rsts_sent": sum(&|c| c.fastl4_rsts_sent.get()),
            "snat_exhausted_rsts": sum(&|c| c.fastl4_snat_exhausted_rsts.get()),
        },
        "source_ports": {
            "exhausted": sum(&|c| c.source_ports_exhausted.get()),
        },
        "monitor": {
            "transitions": s.workers.iter().map(|w| w.monitor_transitions.load(Ordering::Relaxed)).sum::<u64>(),
            "probes": s.workers.iter().map(|w| w.monitor_probes.load(Ordering::Relaxed)).sum::<u64>(),
            "failures": s.workers.iter().map(|w| w.monitor_failures.load(Ordering::Relaxed)).sum::<u64>(),
            "failures_by_reason": failures_json(&monitor_stats(s, None).failures),
        },
        "workers": workers,
    })
}

/// A queueing-delay histogram as cumulative buckets: `{"sum_secs", "count", "buckets":
/// [[upper bound in seconds, items at or below it], …]}`; the last bucket (everything
/// above the largest bound) is only in `count`.
fn delay_histogram(d: &rouge_pipelines::shaper::DelayStats) -> Value {
    use rouge_pipelines::shaper::DELAY_BUCKETS;
    let mut seen = 0;
    let buckets: Vec<Value> = d.histogram[..DELAY_BUCKETS - 1]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            seen += n;
            // Bucket i holds delays below 2^i microseconds.
            json!([(1u64 << i) as f64 * 1e-6, seen])
        })
        .collect();
    json!({"sum_secs": d.sum_ns as f64 / 1e9, "count": d.count, "buckets": buckets})
}

/// The TCP stacks' counters summed over the workers.
fn tcp_stats(s: &Shared) -> Value {
    let mut total = rouge_pipelines::tcp::TcpCounters::default();
    let mut connections = 0;
    for w in &s.workers {
        let c = w.tcp.load();
        total.add(&c);
        connections += w.tcp_connections.load(Ordering::Relaxed);
    }
    let drops: BTreeMap<&str, u64> = rouge_pipelines::tcp::TcpDrop::ALL
        .iter()
        .map(|d| (d.name(), total.dropped(*d)))
        .collect();
    json!({
        "connections": connections,
        "segments_in": total.segments_in, "segments_out": total.segments_out,
        "bytes_in": total.bytes_in, "bytes_out": total.bytes_out,
        "retransmits": total.retransmits, "retransmits_fast": total.retransmits_fast,
        "retransmits_tlp": total.retransmits_tlp, "retransmits_rto": total.retransmits_rto,
        "fast_recoveries": total.fast_recoveries, "timeouts": total.timeouts,
        "tlp_probes": total.tlp_probes, "tlp_recoveries": total.tlp_recoveries,
        "lost_retransmits": total.lost_retransmits,
        "dsacks_received": total.dsacks_received, "dsacks_sent": total.dsacks_sent,
        "spurious_retransmits": total.spurious_retransmits, "undos": total.undos,
        "resets_sent": total.resets_sent, "resets_received": total.resets_received,
        "challenge_acks": total.challenge_acks, "syn_resent_after_rst": total.syn_resent_after_rst,
        "syn_cookies_sent": total.syn_cookies_sent, "syn_cookies_validated": total.syn_cookies_validated,
        "active_opens": total.active_opens, "passive_opens": total.passive_opens,
        "closed": total.closed, "aborted": total.aborted,
        "bytes_relayed": total.bytes_relayed, "buffer_bytes": total.buffer_bytes,
        "shaping_deferrals": total.shaping_deferrals, "pacing_waits": total.pacing_waits,
        "corks": total.corks, "cork_expired": total.cork_expired,
        "drops": drops,
    })
}

/// `show pool`: every pool with its members: admin state and monitor status side by
/// side (and `monitor_failure`, the reason of the last failed probe of a member that is
/// not up), availability, connections (appliance-wide) and traffic through fastl4.
pub fn pools(s: &Shared, name: Option<&str>) -> Result<Value, String> {
    let dp = s.dataplane.load();
    let mut out = Vec::new();
    let failing: Vec<_> = s
        .workers
        .iter()
        .flat_map(|w| w.monitor_failing.load().to_vec())
        .collect();
    for (pi, (pname, b)) in dp
        .pools
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| name.is_none_or(|x| x == n))
    {
        let cfg = s.config.load();
        let pc = cfg.pools.iter().find(|p| &p.name == pname);
        let members: Vec<Value> = b
            .pool
            .view(&b.states, &b.counts)
            .into_iter()
            .map(|m| {
                let (mut packets, mut bytes) = (0, 0);
                for f in dp.fastl4.iter().filter(|f| f.lb.as_ref().is_some_and(|l| std::sync::Arc::ptr_eq(&l.pool, &b.pool))) {
                    if let Some(fm) = f.members.iter().find(|x| x.addr == m.addr) {
                        packets += fm.counters.packets();
                        bytes += fm.counters.bytes();
                    }
                }
                // Why the member is not up (its last probe's failure), when a probe failed.
                let failure = failing
                    .iter()
                    .find(|(k, a, _)| k.0 as usize == pi && *a == m.addr)
                    .map(|(_, _, f)| f.as_str());
                json!({"address": m.addr.to_string(), "admin": m.admin, "monitor": m.monitor,
                       "monitor_failure": failure,
                       "availability": m.availability, "ratio": m.ratio, "priority_group": m.priority,
                       "connection_limit": m.conn_limit, "current_connections": m.current_conns,
                       "total_connections": m.total_conns, "packets": packets, "bytes": bytes})
            })
            .collect();
        out.push(json!({"name": pname, "method": b.pool.method().as_str(),
            "monitor": pc.and_then(|p| p.monitor.clone()), "members": members}));
    }
    if let (Some(n), true) = (name, out.is_empty()) {
        return Err(format!("no pool named `{n}`; `rouge show pool` lists them"));
    }
    Ok(Value::Array(out))
}

/// The counts of monitor `name` (or of every monitor) summed over the workers.
fn monitor_stats(s: &Shared, name: Option<&str>) -> MonitorStats {
    let mut all = MonitorStats::default();
    for w in &s.workers {
        for m in w.monitor_stats.load().iter() {
            if name.is_none_or(|n| n == m.name) {
                all.probes += m.probes;
                all.successes += m.successes;
                for (a, b) in all.failures.iter_mut().zip(m.failures) {
                    *a += b;
                }
            }
        }
    }
    all
}

/// Failures by reason as `{"tcp": n, "timeout": n, …}`, every reason present.
fn failures_json(f: &[u64]) -> Value {
    let m: BTreeMap<&str, u64> = ProbeFailure::ALL
        .iter()
        .zip(f)
        .map(|(r, n)| (r.as_str(), *n))
        .collect();
    json!(m)
}

/// `show monitor`: every `[[monitor]]` (or the one named) with its settings, the
/// status of the members it watches, and its probes, successes and failures by reason
/// (tcp, timeout, certificate, handshake, response, source_port), summed over workers.
pub fn monitors(s: &Shared, name: Option<&str>) -> Result<Value, String> {
    let cfg = s.config.load();
    let dp = s.dataplane.load();
    let mut out = Vec::new();
    for m in cfg
        .monitors
        .iter()
        .filter(|m| name.is_none_or(|n| n == m.name))
    {
        let mut status: BTreeMap<&str, u64> = ["up", "down", "unchecked"]
            .iter()
            .map(|k| (*k, 0))
            .collect();
        for p in cfg
            .pools
            .iter()
            .filter(|p| p.monitor.as_ref() == Some(&m.name))
        {
            if let Some((_, b)) = dp.pools.iter().find(|(n, _)| *n == p.name) {
                for v in b.pool.view(&b.states, &b.counts) {
                    *status.entry(v.monitor).or_default() += 1;
                }
            }
        }
        let st = monitor_stats(s, Some(&m.name));
        let mut row = json!({
            "name": m.name, "type": m.kind.as_str(), "interval_secs": m.interval,
            "timeout_secs": m.timeout, "up_after": m.up_after,
            "members": status, "probes": st.probes, "successes": st.successes,
            "failures": st.failures_total(), "failures_by_reason": failures_json(&st.failures),
        });
        if let Some(t) = &m.tls_profile {
            row["tls_profile"] = json!(t);
        }
        out.push(row);
    }
    if let (Some(n), true) = (name, out.is_empty()) {
        return Err(format!(
            "no monitor named `{n}`; `rouge show monitor` lists them"
        ));
    }
    Ok(Value::Array(out))
}

/// `show member`: every member of every pool as one flat list.
pub fn members(s: &Shared, name: Option<&str>) -> Result<Value, String> {
    let pools = pools(s, None)?;
    let mut out = Vec::new();
    for p in pools.as_array().into_iter().flatten() {
        for m in p["members"].as_array().into_iter().flatten() {
            if name.is_none_or(|n| m["address"] == n || p["name"] == n) {
                let mut m = m.clone();
                m["pool"] = p["name"].clone();
                out.push(m);
            }
        }
    }
    Ok(Value::Array(out))
}

/// `show class`: every shaping class (or the one named) with its settings and, summed
/// over workers and shaped interfaces, rate, packets, bytes, queue depth, drops by reason
/// and queueing-delay percentiles; `interfaces` has the same per egress interface.
pub fn classes(s: &Shared, name: Option<&str>) -> Result<Value, String> {
    use rouge_pipelines::shaper::ClassCounters;
    let dp = s.dataplane.load();
    let Some(policy) = dp.shaping.clone() else {
        return match name {
            Some(n) => Err(format!(
                "no class named `{n}`: shaping is off (no [[interface]] has a shaping_rate)"
            )),
            None => Ok(Value::Array(Vec::new())),
        };
    };
    let samples: Vec<_> = s
        .workers
        .iter()
        .filter_map(|w| w.shaping.load_full())
        .filter(|x| std::sync::Arc::ptr_eq(&x.policy, &policy) || *x.policy == *policy)
        .collect();
    let figures = |c: &ClassCounters, rate: u64| {
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        json!({
            "rate_bps": rate, "packets": c.packets, "bytes": c.bytes,
            "queue_packets": c.queue_packets, "queue_bytes": c.queue_bytes,
            "drops": c.drops(),
            "drops_by_reason": {"queue_full": c.drops_queue_packets, "queue_bytes": c.drops_queue_bytes, "too_large": c.drops_too_large},
            "delay_us": {"samples": c.delay.count, "mean": us(c.delay.mean()), "p50": us(c.delay.quantile(0.5)),
                          "p99": us(c.delay.quantile(0.99)), "max": c.delay.max_ns as f64 / 1e3},
            "delay_histogram": delay_histogram(&c.delay),
        })
    };
    let mut out = Vec::new();
    for (ci, class) in policy.classes().iter().enumerate() {
        if name.is_some_and(|n| n != class.name) {
            continue;
        }
        let mut total = ClassCounters::default();
        let mut total_rate = 0;
        let mut per_iface = Vec::new();
        for (port, iface) in dp.interfaces.iter().enumerate() {
            let Some(root) = policy.root(port) else {
                continue;
            };
            let mut c = ClassCounters::default();
            let mut rate = 0;
            for p in samples
                .iter()
                .flat_map(|x| x.ports.iter())
                .filter(|p| p.port == port)
            {
                if let Some(k) = p.classes.get(ci) {
                    c.merge(&k.counters);
                    rate += k.rate_bps;
                }
            }
            total.merge(&c);
            total_rate += rate;
            let mut f = figures(&c, rate);
            f["interface"] = json!(iface.name);
            f["root_bps"] = json!(root.rate_bps);
            per_iface.push(f);
        }
        let k = &class.config;
        let mut v = figures(&total, total_rate);
        v["name"] = json!(class.name);
        v["parent"] = json!(k
            .parent
            .and_then(|p| policy.classes().get(p))
            .map(|p| p.name.clone()));
        v["weight"] = json!(k.weight);
        v["priority"] = json!(k.priority);
        v["guaranteed_bps"] = json!(k.guaranteed_bps);
        v["ceiling_bps"] = json!(k.ceiling_bps);
        v["queue_limit"] = json!(k.queue_packets);
        v["default"] = json!(ci == policy.default_class());
        v["interfaces"] = Value::Array(per_iface);
        out.push(v);
    }
    if let (Some(n), true) = (name, out.is_empty()) {
        return Err(format!(
            "no class named `{n}`; `rouge show class` lists them"
        ));
    }
    Ok(Value::Array(out))
}
