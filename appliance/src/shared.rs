//! State shared between the control thread and the workers: the current configuration
//! snapshot (swapped atomically), the stop flag, and each worker's counters and
//! published views. Workers write only their own parts; nothing here is locked on the
//! packet path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use rouge_drivers::wait::Waker;
use rouge_drivers::{MacAddr, PortCounters};
use rouge_pipelines::arp::ArpEntryView;
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::dataplane::Dataplane;
use rouge_pipelines::monitor::{MonitorStats, ProbeFailure};
use rouge_pipelines::shaper::DelayStats;
use rouge_pipelines::tcp::TcpCounters;

use crate::config::Config;

/// A member that is not up and why its last probe failed: ((pool index, member index),
/// address, reason).
pub type MemberFailure = ((u32, u32), std::net::SocketAddr, ProbeFailure);

/// What one worker shares.
#[derive(Debug)]
pub struct WorkerShared {
    /// Worker index.
    pub id: usize,
    /// Core it is pinned to.
    pub core: Option<usize>,
    /// Pipeline counters.
    pub pipeline: Arc<PipelineCounters>,
    /// Port counters, in interface order (set once the ports are open).
    pub ports: Mutex<Vec<PortInfo>>,
    /// The worker's neighbour table, republished when it changes (at most every 100 ms).
    pub arp: ArcSwap<Vec<ArpEntryView<std::net::IpAddr>>>,
    /// The worker's TCP stack counters, republished when they change (at most every 100 ms).
    pub tcp: ArcSwap<TcpCounters>,
    /// Connections in the worker's TCP stack.
    pub tcp_connections: AtomicU64,
    /// Monitor status changes found by this worker.
    pub monitor_transitions: AtomicU64,
    /// Monitor probes started by this worker.
    pub monitor_probes: AtomicU64,
    /// Monitor probes that failed.
    pub monitor_failures: AtomicU64,
    /// The counts of each monitor this worker probes for (probes, successes,
    /// failures by reason), republished when they change (at most every 100 ms).
    pub monitor_stats: ArcSwap<Vec<MonitorStats>>,
    /// Members not up whose last probe failed, with the reason: ((pool index in the
    /// snapshot, member index), address, reason); republished when it changes.
    pub monitor_failing: ArcSwap<Vec<MemberFailure>>,
    /// The worker's shaping figures, republished every few milliseconds while shaping.
    pub shaping: ArcSwapOption<crate::egress::ShapingSample>,
    /// Packets the worker's shapers dropped.
    pub shaping_drops: AtomicU64,
    /// How long the packets the worker sent had been in the appliance, from their
    /// receive stamp (receive ring, pipeline, shaper) to their transmit burst;
    /// republished when it changes (at most every 100 ms).
    pub transit: ArcSwap<DelayStats>,
    /// Configuration generation the worker runs.
    pub generation: AtomicU64,
    /// `show connections`: the number of the latest request; the worker answers a
    /// request it has not answered yet at its next loop turn.
    pub connections_request: AtomicU64,
    /// The worker's answer: the request it answers and its flows (proxied and fastl4),
    /// one JSON object each.
    pub connections: ArcSwap<(u64, Vec<serde_json::Value>)>,
    /// Set once the worker has opened its ports and entered its loop.
    pub running: AtomicBool,
    /// Ends the worker's idle sleep (`None` if no eventfd could be made: the worker
    /// then looks at the control plane every `worker::CONTROL_CHECK`).
    pub waker: Option<Waker>,
}

/// A port as the control thread sees it.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: usize,
    /// How frames leave ([`rouge_drivers::Port::tx_path`]).
    pub tx_path: &'static str,
    /// Live counters.
    pub counters: Arc<PortCounters>,
}

/// Everything shared.
pub struct Shared {
    /// The current data-plane snapshot.
    pub dataplane: ArcSwap<Dataplane>,
    /// The running configuration (what `config save` writes).
    pub config: ArcSwap<Config>,
    /// Path of the file the configuration came from.
    pub config_path: String,
    /// Set to stop the workers.
    pub stop: AtomicBool,
    /// Per-worker state.
    pub workers: Vec<WorkerShared>,
    /// When the appliance started.
    pub started: std::time::Instant,
    /// Each worker's share of the shaping rates, from the rebalancer (several workers).
    pub shaping_rates: ArcSwapOption<crate::egress::ShapingRates>,
    /// Serialises configuration changes (control plane only, never the packet path).
    pub change: Mutex<()>,
    /// The workers' inboxes for frames handed to the worker that owns their flow
    /// (several workers on ports that cannot steer; see [`crate::handoff`]).
    pub handoff: Option<Arc<crate::handoff::Handoff>>,
    /// TLS state that outlives snapshots: the wall clock (set by the management thread)
    /// and the ticket keys of each profile.
    pub tls: Arc<crate::config::tls::TlsRuntime>,
}

impl Shared {
    /// Shared state for `cores.len()` workers, with inboxes for handed-over frames when
    /// `handoff` is given, and a TLS runtime of its own.
    pub fn new(
        cfg: Config,
        config_path: String,
        dp: Dataplane,
        cores: &[Option<usize>],
        handoff: Option<crate::handoff::Handoff>,
    ) -> Arc<Shared> {
        Self::new_with_tls(
            cfg,
            config_path,
            dp,
            cores,
            handoff,
            crate::config::tls::TlsRuntime::new(),
        )
    }

    /// As [`Shared::new`], with the TLS runtime `dp` was built with.
    pub fn new_with_tls(
        cfg: Config,
        config_path: String,
        dp: Dataplane,
        cores: &[Option<usize>],
        handoff: Option<crate::handoff::Handoff>,
        tls: Arc<crate::config::tls::TlsRuntime>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            dataplane: ArcSwap::from_pointee(dp),
            config: ArcSwap::from_pointee(cfg),
            config_path,
            stop: AtomicBool::new(false),
            workers: cores
                .iter()
                .enumerate()
                .map(|(id, core)| WorkerShared {
                    id,
                    core: *core,
                    pipeline: PipelineCounters::new_shared(),
                    ports: Mutex::new(Vec::new()),
                    arp: ArcSwap::from_pointee(Vec::new()),
                    tcp: ArcSwap::from_pointee(TcpCounters::default()),
                    tcp_connections: AtomicU64::new(0),
                    monitor_transitions: AtomicU64::new(0),
                    monitor_probes: AtomicU64::new(0),
                    monitor_failures: AtomicU64::new(0),
                    monitor_stats: ArcSwap::from_pointee(Vec::new()),
                    monitor_failing: ArcSwap::from_pointee(Vec::new()),
                    shaping: ArcSwapOption::empty(),
                    shaping_drops: AtomicU64::new(0),
                    transit: ArcSwap::from_pointee(DelayStats::default()),
                    generation: AtomicU64::new(0),
                    connections_request: AtomicU64::new(0),
                    connections: ArcSwap::from_pointee((0, Vec::new())),
                    running: AtomicBool::new(false),
                    waker: Waker::new()
                        .inspect_err(|e| {
                            tracing::warn!(worker = id, error = %e, "no eventfd: idle workers poll the control plane")
                        })
                        .ok(),
                })
                .collect(),
            started: std::time::Instant::now(),
            shaping_rates: ArcSwapOption::empty(),
            change: Mutex::new(()),
            handoff: handoff.map(Arc::new),
            tls,
        })
    }

    /// True once a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Wakes every sleeping worker, so it looks at the stop flag and the current
    /// snapshot at once.
    pub fn wake_workers(&self) {
        for w in self.workers.iter().filter_map(|w| w.waker.as_ref()) {
            w.wake();
        }
    }

    /// Asks the workers (and the control threads) to stop, and wakes the workers.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake_workers();
    }
}
