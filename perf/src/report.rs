//! A run's figures: built from the generator, receiver and port counters, printed as a
//! table for people or as JSON for `perf/run`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::TxStats;
use crate::gen::{FlowRx, Generator, Receiver};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Probes measured.
    pub count: u64,
    /// Smallest.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// Receive-side figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RxFigures {
    /// Frames with a valid probe.
    pub received: u64,
    /// Distinct probes.
    pub unique: u64,
    /// Generated frames never received.
    pub lost: u64,
    /// `lost / generated`.
    pub loss_ratio: f64,
    /// Late arrivals.
    pub reordered: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// ARP replies.
    pub arp_replies: u64,
    /// Frames without a probe.
    pub other: u64,
    /// Probes with a bad IPv4 header checksum.
    pub bad_checksum: u64,
    /// Probes of unknown flows.
    pub unknown_flow: u64,
    /// Distinct probes per second of transmit time.
    pub pps: f64,
    /// Received bits per second (frames with FCS).
    pub bps: f64,
}

/// One flow's figures (in the JSON when there are few flows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlowFigures {
    /// Flow index.
    pub flow: usize,
    /// Frames generated.
    pub sent: u64,
    /// What was received.
    #[serde(flatten)]
    pub rx: FlowRx,
    /// Frames lost.
    pub lost: u64,
}

/// Everything a run reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The command's settings, as given.
    pub config: serde_json::Value,
    /// Frame sizes used (with FCS).
    pub frame_sizes: Vec<usize>,
    /// Number of flows.
    pub flows: usize,
    /// Transmit figures.
    pub tx: TxStats,
    /// Frames generated per second of transmit time.
    pub tx_pps: f64,
    /// Bits per second generated (frames with FCS).
    pub tx_bps: f64,
    /// Receive figures, when a receiver ran.
    pub rx: Option<RxFigures>,
    /// Latency, when a receiver ran and measured any.
    pub latency: Option<Latency>,
    /// Per-flow figures (only for runs of at most 64 flows).
    pub per_flow: Vec<FlowFigures>,
}

fn latency(recv: &Receiver) -> Option<Latency> {
    let h = &recv.latency;
    if h.is_empty() {
        return None;
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    Some(Latency {
        count: h.len(),
        min_us: us(h.min()),
        mean_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
    })
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(
        config: serde_json::Value,
        gen: &Generator,
        tx: TxStats,
        recv: Option<&Receiver>,
    ) -> Report {
        let secs = tx.tx_seconds.max(1e-9);
        let arp = gen.kind() == crate::frame::Kind::ArpRequest;
        let rx = recv.map(|r| {
            // ARP replies carry no probe: each counts as one distinct answer.
            let unique = if arp { r.arp_replies } else { r.unique() };
            let lost = tx.generated.saturating_sub(unique);
            RxFigures {
                received: r.received,
                unique,
                lost,
                loss_ratio: if tx.generated == 0 {
                    0.0
                } else {
                    lost as f64 / tx.generated as f64
                },
                reordered: r.reordered(),
                duplicates: r.duplicates(),
                arp_replies: r.arp_replies,
                other: r.other,
                bad_checksum: r.bad_checksum,
                unknown_flow: r.unknown_flow,
                pps: unique as f64 / secs,
                bps: r.received_bytes as f64 * 8.0 / secs,
            }
        });
        let per_flow = match recv {
            Some(r) if gen.flow_count() <= 64 && !arp => r
                .flows()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let sent = gen.sent_in_flow(i) as u64;
                    FlowFigures {
                        flow: i,
                        sent,
                        rx: *f,
                        lost: sent.saturating_sub(f.unique),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        Report {
            config,
            frame_sizes: gen.sizes(),
            flows: gen.flow_count(),
            tx_pps: tx.generated as f64 / secs,
            tx_bps: tx.generated_bytes as f64 * 8.0 / secs,
            tx,
            rx,
            latency: recv.and_then(latency),
            per_flow,
        }
    }

    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let t = &self.tx;
        let _ = writeln!(
            s,
            "frames {:?} B, {} flow(s), {:.3} s transmitting",
            self.frame_sizes, self.flows, t.tx_seconds
        );
        let _ = writeln!(
            s,
            "{:<14} {:>14} {:>14} {:>12}",
            "", "packets", "pps", "Mbit/s"
        );
        let _ = writeln!(
            s,
            "{:<14} {:>14} {:>14.0} {:>12.1}",
            "generated",
            t.generated,
            self.tx_pps,
            self.tx_bps / 1e6
        );
        let _ = writeln!(s, "{:<14} {:>14}", "sent", t.sent);
        let _ = writeln!(s, "{:<14} {:>14}", "tx dropped", t.tx_dropped);
        if let Some(r) = &self.rx {
            let _ = writeln!(
                s,
                "{:<14} {:>14} {:>14.0} {:>12.1}",
                "received",
                r.unique,
                r.pps,
                r.bps / 1e6
            );
            let _ = writeln!(
                s,
                "{:<14} {:>14} ({:.4} %)",
                "lost",
                r.lost,
                r.loss_ratio * 100.0
            );
            let _ = writeln!(s, "{:<14} {:>14}", "reordered", r.reordered);
            let _ = writeln!(s, "{:<14} {:>14}", "duplicates", r.duplicates);
            let _ = writeln!(s, "{:<14} {:>14}", "bad checksum", r.bad_checksum);
            let _ = writeln!(s, "{:<14} {:>14}", "other frames", r.other);
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "latency us     p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (min {:.1}, mean {:.1})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.min_us, l.mean_us
            );
        }
        s
    }
}
