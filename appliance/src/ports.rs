//! Opening the data ports of the workers from the configuration, for every driver.
//!
//! Every worker drives one port of every configured interface, in configuration order,
//! as an [`AnyPort`] (one port type over every driver; see [`crate::any_port`] for why
//! an enum dispatched per burst rather than a worker loop per driver):
//!
//! - **afpacket**: each worker opens its own AF_PACKET socket on the interface, on its
//!   own core ([`open_worker_ports`]); with several workers all of them join one fanout
//!   group per interface, steered by the pipelines' classic BPF program so both
//!   directions of a flow reach the same worker.
//! - **afxdp**: the queues of an interface share one XDP program, so they are opened
//!   together before the workers start ([`open_before_workers`]): queue `w` goes to
//!   worker `w`, and queue `w` of every AF_XDP interface shares one UMEM, so worker
//!   `w` transmits a frame it received on one of them from where it lies. Which queue a frame arrives on is the NIC's choice (its RSS hash), not
//!   Rouge's: with several workers, the worker that receives a frame hands it to the
//!   worker that owns its flow (`crate::handoff`).
//! - **dpdk** (cargo feature `dpdk`): DPDK's EAL is initialised once, before the
//!   workers, with the devices of every DPDK interface and `[system] dpdk_args`; each
//!   device gets one RX/TX queue pair per worker (queue pair `w` for worker `w`, which
//!   makes itself an EAL lcore when it starts: [`register_worker`]). As with AF_XDP,
//!   the device chooses each frame's queue, and frames are handed to the worker that
//!   owns their flow (`crate::handoff`).

use crate::any_port::AnyPort;
use rouge_drivers::afpacket::{self, AfPacketConfig, AfPacketPort, Fanout, FanoutMode};
use rouge_drivers::afxdp::{AfXdpConfig, AfXdpPort};

use crate::config::drivers;
use crate::config::model::{Config, Driver, RxRing, TxPath};

/// Ports opened before the workers start (AF_XDP queues, DPDK devices), by worker and
/// by interface; AF_PACKET slots stay empty (each worker opens those itself).
pub struct Preopened {
    slots: Vec<Vec<Option<AnyPort>>>,
}

impl Preopened {
    /// Takes worker `worker`'s slots (one per interface).
    pub fn take(&mut self, worker: usize) -> Vec<Option<AnyPort>> {
        self.slots
            .get_mut(worker)
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// Opens the ports that must be opened once for all workers: the AF_XDP queues of
/// every `afxdp` interface (queue `w` for worker `w`) and, after initialising DPDK's
/// EAL, every `dpdk` device. `cores` are the workers' cores (the first one is the EAL's
/// main lcore unless `[system] dpdk_args` names lcores).
pub fn open_before_workers(cfg: &Config, cores: &[usize]) -> Result<Preopened, String> {
    let workers = cores.len();
    let mut slots: Vec<Vec<Option<AnyPort>>> = (0..workers)
        .map(|_| (0..cfg.interfaces.len()).map(|_| None).collect())
        .collect();
    // The AF_XDP interfaces with the same number of queues are opened as one group:
    // queue `w` of each shares one UMEM, so worker `w` forwards between them in place.
    let afxdp: Vec<(usize, u32)> = cfg
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, itf)| itf.driver == Driver::Afxdp)
        .map(|(i, itf)| (i, drivers::afxdp_queues(itf, workers)))
        .collect();
    let mut counts: Vec<u32> = afxdp.iter().map(|&(_, q)| q).collect();
    counts.sort_unstable();
    counts.dedup();
    for queues in counts {
        let members: Vec<usize> = afxdp
            .iter()
            .filter(|&&(_, q)| q == queues)
            .map(|&(i, _)| i)
            .collect();
        let names: Vec<&str> = members
            .iter()
            .map(|&i| cfg.interfaces[i].name.as_str())
            .collect();
        let group = AfXdpPort::open_group(&names, queues, &AfXdpConfig::default())
            .map_err(|e| format!("interfaces {} (afxdp): {e}", names.join(", ")))?;
        for (&i, ports) in members.iter().zip(group) {
            for (w, port) in ports.into_iter().enumerate() {
                tracing::info!(
                    interface = %cfg.interfaces[i].name,
                    queue = port.queue(),
                    worker = w,
                    zero_copy = port.zero_copy(),
                    "AF_XDP socket bound"
                );
                if let Some(slot) = slots.get_mut(w).and_then(|s| s.get_mut(i)) {
                    *slot = Some(port.into());
                }
            }
        }
    }
    if cfg.interfaces.iter().any(|i| i.driver == Driver::Dpdk) {
        dpdk::open(cfg, cores, &mut slots)?;
    }
    Ok(Preopened { slots })
}

/// Prepares the calling worker thread for its drivers: with DPDK ports, makes it an EAL
/// lcore (so mempool operations use a per-lcore cache).
pub fn register_worker(cfg: &Config) -> Result<(), String> {
    if cfg.interfaces.iter().any(|i| i.driver == Driver::Dpdk) {
        dpdk::register_worker()?;
    }
    Ok(())
}

/// Opens worker `worker`'s ports (one per configured interface, in order): its
/// AF_PACKET sockets, and the ports [`open_before_workers`] opened for it (`opened`,
/// from [`Preopened::take`]).
pub fn open_worker_ports(
    cfg: &Config,
    worker: usize,
    workers: usize,
    mut opened: Vec<Option<AnyPort>>,
) -> Result<Vec<AnyPort>, String> {
    let mut ports = Vec::with_capacity(cfg.interfaces.len());
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        if itf.driver != Driver::Afpacket {
            let port = opened.get_mut(i).and_then(Option::take).ok_or_else(|| {
                format!(
                    "worker {worker}: interface `{}` ({}): no port was opened for this worker; fix: give the interface one queue per worker (queues = {workers}) or run fewer workers",
                    itf.name,
                    itf.driver.name()
                )
            })?;
            ports.push(port);
            continue;
        }
        let rx_ring = match itf.rx_ring {
            RxRing::V2 => afpacket::RxRing::V2,
            RxRing::V3 => afpacket::RxRing::V3 {
                block_size: 1 << 16,
                retire_timeout_ms: 1,
            },
        };
        let fanout = (workers > 1).then(|| Fanout {
            group_id: fanout_group(i),
            mode: FanoutMode::Cbpf(afpacket::steer_by_flow_program(workers as u32)),
        });
        let tx = match itf.tx_path {
            TxPath::Auto => afpacket::TxPath::Auto,
            TxPath::Ring => afpacket::TxPath::Ring,
            TxPath::Copy => afpacket::TxPath::Copy,
        };
        let pc = AfPacketConfig {
            rx_ring,
            fanout,
            tx,
            ..AfPacketConfig::default()
        };
        let port = AfPacketPort::open(&itf.name, &pc)
            .map_err(|e| format!("worker {worker}: interface `{}`: {e}", itf.name))?;
        ports.push(port.into());
    }
    Ok(ports)
}

/// A fanout group id unique to this process and interface.
fn fanout_group(iface: usize) -> u16 {
    ((std::process::id() as u16) << 4) ^ iface as u16
}

/// DPDK: the EAL and the devices (cargo feature `dpdk`; without it, validation has
/// already refused `driver = "dpdk"` with the fix).
#[cfg(feature = "dpdk")]
mod dpdk {
    use crate::any_port::AnyPort;
    use rouge_dpdk::{DpdkConfig, DpdkPort, Eal};

    use crate::config::drivers;
    use crate::config::model::{Config, Driver};

    pub(super) fn open(
        cfg: &Config,
        cores: &[usize],
        slots: &mut [Vec<Option<AnyPort>>],
    ) -> Result<(), String> {
        let args = drivers::eal_args(cfg, cores.first().copied().unwrap_or(0));
        tracing::info!(args = %args.join(" "), "initialising DPDK's EAL");
        // rte_eal_init pins the calling thread to the main lcore's core: a short-lived
        // thread of its own takes that, so the control thread (and every thread it
        // starts later) keeps its affinity.
        let eal = std::thread::scope(|s| {
            s.spawn(|| {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                Eal::init(&refs)
            })
            .join()
        })
        .map_err(|_| "DPDK's EAL initialisation panicked".to_string())?
        .map_err(|e| {
            format!(
                "system.dpdk_args: {e}; fix: correct the EAL arguments, or give the EAL what it needs (`rouge check` says what is missing: hugepages or dpdk_args = [\"--no-huge\"], a NIC bound to vfio-pci)"
            )
        })?;
        for (i, itf) in cfg.interfaces.iter().enumerate() {
            if itf.driver != Driver::Dpdk {
                continue;
            }
            let device = drivers::dpdk_device(itf).ok_or_else(|| {
                format!("interface `{}` (dpdk): no pci or vdev is given", itf.name)
            })?;
            let queues = drivers::dpdk_queues(itf, cores.len()).min(u32::from(u16::MAX)) as u16;
            let ports = DpdkPort::open_queues(eal, &device, queues, &DpdkConfig::default())
                .map_err(|e| format!("interface `{}` (dpdk): {e}", itf.name))?;
            for (w, mut port) in ports.into_iter().enumerate() {
                port.set_name(&itf.name);
                tracing::info!(interface = %itf.name, %device, port_id = port.port_id(), queue = port.queue(), worker = w, "DPDK port started");
                if let Some(slot) = slots.get_mut(w).and_then(|s| s.get_mut(i)) {
                    *slot = Some(port.into());
                }
            }
        }
        Ok(())
    }

    pub(super) fn register_worker() -> Result<(), String> {
        let eal = Eal::get().ok_or("DPDK's EAL is not initialised")?;
        eal.register_thread().map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Without DPDK support, validation refuses `driver = "dpdk"`; these only say so again.
#[cfg(not(feature = "dpdk"))]
mod dpdk {
    use crate::any_port::AnyPort;

    use crate::config::model::Config;

    const NOT_BUILT: &str = "driver `dpdk` needs a rouge built with DPDK support (cargo build --release -p rouge-appliance --features dpdk)";

    pub(super) fn open(
        _cfg: &Config,
        _cores: &[usize],
        _slots: &mut [Vec<Option<AnyPort>>],
    ) -> Result<(), String> {
        Err(NOT_BUILT.into())
    }

    pub(super) fn register_worker() -> Result<(), String> {
        Err(NOT_BUILT.into())
    }
}
