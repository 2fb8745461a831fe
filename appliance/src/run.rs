//! `rouge run`: validate the configuration, open the ports, start one worker per core
//! (pinned), serve the management socket, and shut down cleanly on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rouge_drivers::pcap::PcapPort;
use rouge_pipelines::l2l3::NeighbourBus;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::model::{Driver, IdlePolicy};
use crate::config::{self, build};
use crate::handoff::{Handoff, INBOX_SLOTS};
use crate::shared::Shared;
use crate::{http, mgmt, ports, rebalance, worker};

/// Options of `rouge run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Configuration file.
    pub config: PathBuf,
    /// Cores from the command line (override the config).
    pub cores: Option<Vec<usize>>,
    /// Idle policy from the command line (overrides the config).
    pub idle: Option<IdlePolicy>,
    /// SCHED_FIFO priority of the workers from the command line (overrides the config).
    pub realtime_priority: Option<u8>,
    /// Capture directory.
    pub pcap: Option<PathBuf>,
    /// Management socket.
    pub socket: PathBuf,
}

/// The cores to run workers on: the command line, else the config, else the last core
/// (one worker; the other cores are left to the kernel and the control thread).
pub fn choose_cores(
    cli: Option<&[usize]>,
    cfg: Option<&[usize]>,
    available: &[usize],
) -> Result<Vec<usize>, String> {
    let wanted: Vec<usize> = match cli.or(cfg) {
        Some(c) => c.to_vec(),
        None => return Ok(vec![available.iter().copied().max().unwrap_or(0)]),
    };
    for c in &wanted {
        if !available.contains(c) {
            return Err(format!("core {c} is not available (this machine offers {available:?}); choose cores with --cores or [system] cores"));
        }
    }
    Ok(wanted)
}

/// Runs the appliance until a signal asks it to stop.
pub fn run(opts: RunOptions) -> Result<(), String> {
    let (cfg, warnings) = config::load_with_warnings(&opts.config).map_err(|e| e.to_string())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let available: Vec<usize> = core_affinity::get_core_ids()
        .map(|v| v.into_iter().map(|c| c.id).collect())
        .unwrap_or_else(|| vec![0]);
    let cores = choose_cores(
        opts.cores.as_deref(),
        cfg.system.cores.as_deref(),
        &available,
    )?;
    let idle = opts.idle.unwrap_or(cfg.system.idle);
    let realtime = opts.realtime_priority.or(cfg.system.realtime_priority);
    let n = cores.len();
    let file = opts.config.display().to_string();
    config::check_workers(&file, &cfg, n).map_err(|e| e.to_string())?;
    // Ports other than AF_PACKET cannot steer a flow to its worker: with several
    // workers, frames are handed to their owner through the workers' inboxes.
    let handoff = (n > 1 && cfg.interfaces.iter().any(|i| i.driver != Driver::Afpacket))
        .then(|| Handoff::new(n, INBOX_SLOTS));
    // AF_XDP queues and DPDK devices are opened once for all workers, before them.
    let mut preopened = ports::open_before_workers(&cfg, &cores)?;
    // The TLS clock is set from the system clock before the first build; the
    // management thread keeps it current.
    let tls = config::tls::TlsRuntime::new();
    let dp = build::dataplane_with(&cfg, 1, n, None, &tls);
    let pool_size = cfg.system.pool_size;
    let shared = Shared::new_with_tls(
        cfg.clone(),
        opts.config.display().to_string(),
        dp,
        &cores.iter().map(|c| Some(*c)).collect::<Vec<_>>(),
        handoff,
        tls,
    );

    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    let mgmt_thread = mgmt::serve(&opts.socket, shared.clone())
        .map_err(|e| format!("management socket {}: {e}", opts.socket.display()))?;
    let http_thread = match cfg.management.http {
        Some(addr) => match http::serve(addr, shared.clone()) {
            Ok(h) => {
                tracing::info!(%addr, "management http: /metrics, / (dashboard), /api/v1/");
                Some(h)
            }
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                let _ = mgmt_thread.join();
                let _ = std::fs::remove_file(&opts.socket);
                return Err(format!(
                    "{}: management.http: cannot listen on {addr}: {e}; fix: choose a free local address or remove the field",
                    opts.config.display()
                ));
            }
        },
        None => None,
    };

    // Each worker opens its own ports on its own core (ring memory is touched first
    // there) and reports back, so a missing interface or a permission problem stops
    // the start with one clear error.
    // Workers open their ports one after another, in worker order: the fanout program
    // returns a socket's position in its group, so worker i must join every group i-th.
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::new();
    for (w, (core, bus)) in cores.iter().zip(NeighbourBus::new(n)).enumerate() {
        let shared = shared.clone();
        let core = *core;
        let pcap = opts.pcap.clone();
        let cfg = cfg.clone();
        let ready = ready_tx.clone();
        let turn = turn.clone();
        let opened = preopened.take(w);
        let h = std::thread::Builder::new()
            .name(format!("rouge-worker-{w}"))
            .spawn(move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                    tracing::warn!(worker = w, core, "could not pin the worker to its core");
                }
                if let Some(priority) = realtime {
                    match rouge_drivers::sched::set_fifo(priority) {
                        Ok(()) => tracing::info!(worker = w, priority, "worker runs under SCHED_FIFO"),
                        Err(e) => tracing::warn!(worker = w, priority, error = %e, "could not switch the worker to SCHED_FIFO (needs CAP_SYS_NICE); it runs with normal scheduling"),
                    }
                }
                while turn.load(Ordering::Acquire) != w {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let opened = ports::register_worker(&cfg)
                    .map_err(|e| format!("worker {w}: {e}"))
                    .and_then(|()| ports::open_worker_ports(&cfg, w, n, opened));
                turn.fetch_add(1, Ordering::Release);
                let ports = match opened {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                match pcap {
                    Some(dir) => {
                        let suffix = (n > 1).then(|| w.to_string());
                        let wrapped: Result<Vec<_>, _> = ports
                            .into_iter()
                            .map(|p| PcapPort::new(p, &dir, suffix.as_deref()))
                            .collect();
                        match wrapped {
                            Ok(p) => {
                                let _ = ready.send(Ok(()));
                                worker::run(w, shared, p, bus, idle, pool_size)
                            }
                            Err(e) => {
                                let _ = ready.send(Err(format!(
                                    "cannot write captures in {}: {e}",
                                    dir.display()
                                )));
                            }
                        }
                    }
                    None => {
                        let _ = ready.send(Ok(()));
                        worker::run(w, shared, ports, bus, idle, pool_size)
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a worker ended during start-up".into()),
        }
    }
    if let Some(e) = failure {
        shared.request_stop();
        for h in handles {
            let _ = h.join();
        }
        let _ = mgmt_thread.join();
        if let Some(h) = http_thread {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&opts.socket);
        return Err(e);
    }
    log_started(&shared, &opts.socket);
    let rebalancer = rebalance::spawn(shared.clone());

    let stop = shared.clone();
    let signals_handle = signals.handle();
    let waiter = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "stopping");
        }
        stop.request_stop();
    });
    for h in handles {
        let _ = h.join();
    }
    shared.request_stop();
    signals_handle.close();
    let _ = waiter.join();
    if let Some(r) = rebalancer {
        let _ = r.join();
    }
    let _ = mgmt_thread.join();
    if let Some(h) = http_thread {
        let _ = h.join();
    }
    let _ = std::fs::remove_file(&opts.socket);
    tracing::info!("rouge stopped");
    Ok(())
}

fn log_started(shared: &Arc<Shared>, socket: &Path) {
    for _ in 0..100 {
        if shared
            .workers
            .iter()
            .all(|w| w.running.load(Ordering::Acquire))
            || shared.stopping()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let dp = shared.dataplane.load_full();
    for (addr, what) in build::owned_addresses(&dp) {
        tracing::info!(%addr, what, "serving address");
    }
    tracing::info!(workers = shared.workers.len(), socket = %socket.display(), "rouge running");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_come_from_cli_then_config_then_default() {
        let avail = [0, 1];
        assert_eq!(choose_cores(None, None, &avail).unwrap(), vec![1]);
        assert_eq!(choose_cores(None, Some(&[0]), &avail).unwrap(), vec![0]);
        assert_eq!(
            choose_cores(Some(&[0, 1]), Some(&[0]), &avail).unwrap(),
            vec![0, 1]
        );
        let e = choose_cores(Some(&[7]), None, &avail).unwrap_err();
        assert!(e.contains("core 7") && e.contains("--cores"), "{e}");
    }
}
