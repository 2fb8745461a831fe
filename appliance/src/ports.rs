//! Opening the data ports of one worker from the configuration.
//!
//! With several workers, each worker opens its own AF_PACKET socket on every interface
//! and all of them join one fanout group per interface, steered by the pipelines'
//! classic BPF program so both directions of a flow reach the same worker.

use rouge_drivers::afpacket::{self, AfPacketConfig, AfPacketPort, Fanout, FanoutMode};

use crate::config::model::{Config, RxRing};

/// Opens worker `worker`'s ports (one per configured interface, in order).
pub fn open_worker_ports(
    cfg: &Config,
    worker: usize,
    workers: usize,
) -> Result<Vec<AfPacketPort>, String> {
    let mut ports = Vec::with_capacity(cfg.interfaces.len());
    for (i, itf) in cfg.interfaces.iter().enumerate() {
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
        let pc = AfPacketConfig {
            rx_ring,
            fanout,
            ..AfPacketConfig::default()
        };
        let port = AfPacketPort::open(&itf.name, &pc)
            .map_err(|e| format!("worker {worker}: interface `{}`: {e}", itf.name))?;
        ports.push(port);
    }
    Ok(ports)
}

/// A fanout group id unique to this process and interface.
fn fanout_group(iface: usize) -> u16 {
    ((std::process::id() as u16) << 4) ^ iface as u16
}
