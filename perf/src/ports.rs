//! Opening a real interface as a [`Port`] by name, in the current thread's namespace.
//!
//! With the `afpacket` feature this is Rouge's own TPACKET driver
//! ([`rouge_drivers::afpacket::AfPacketPort`]), the same one the appliance uses. Until
//! that driver lands, a stop-gap [`SockPort`] sends and receives through a plain
//! AF_PACKET socket (`pnet_datalink`): one system call per frame, so its rates are a
//! floor, not the generator's ceiling.

use rouge_drivers::Port;

/// Which driver [`open_port`] uses, for result files.
pub const DRIVER: &str = if cfg!(feature = "afpacket") {
    "afpacket (TPACKET rings)"
} else {
    "socket stop-gap (pnet_datalink, one system call per frame)"
};

/// Error opening a port.
#[derive(Debug, thiserror::Error)]
#[error("opening interface `{ifname}`: {reason}")]
pub struct OpenError {
    /// The interface.
    pub ifname: String,
    /// What went wrong.
    pub reason: String,
}

/// Opens `ifname` with Rouge's AF_PACKET driver (TPACKET rings, qdisc bypass).
#[cfg(feature = "afpacket")]
pub fn open_port(ifname: &str) -> Result<impl Port, OpenError> {
    let cfg = rouge_drivers::afpacket::AfPacketConfig::default();
    rouge_drivers::afpacket::AfPacketPort::open(ifname, &cfg).map_err(|e| OpenError {
        ifname: ifname.to_string(),
        reason: e.to_string(),
    })
}

/// Opens `ifname` with the stop-gap AF_PACKET socket port.
#[cfg(not(feature = "afpacket"))]
pub fn open_port(ifname: &str) -> Result<impl Port, OpenError> {
    SockPort::open(ifname)
}

#[cfg(not(feature = "afpacket"))]
pub use sock::SockPort;

#[cfg(not(feature = "afpacket"))]
mod sock {
    use std::sync::Arc;
    use std::time::Duration;

    use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};
    use rouge_drivers::{Burst, MacAddr, PacketPool, Port, PortCounters, PortDrop};

    use super::OpenError;

    /// A port on a plain AF_PACKET socket: `send` and `recv` per frame.
    pub struct SockPort {
        name: String,
        mac: MacAddr,
        tx: Box<dyn DataLinkSender>,
        rx: Box<dyn DataLinkReceiver>,
        counters: Arc<PortCounters>,
    }

    impl SockPort {
        /// Opens `ifname` in the current thread's network namespace.
        pub fn open(ifname: &str) -> Result<SockPort, OpenError> {
            let err = |reason: String| OpenError {
                ifname: ifname.to_string(),
                reason,
            };
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .ok_or_else(|| err("no such interface in this network namespace".into()))?;
            let mac = iface
                .mac
                .map(|m| MacAddr(m.octets()))
                .ok_or_else(|| err("interface has no MAC address".into()))?;
            let cfg = Config {
                read_timeout: Some(Duration::ZERO),
                write_buffer_size: 1 << 16,
                read_buffer_size: 1 << 16,
                promiscuous: false,
                ..Config::default()
            };
            match pnet_datalink::channel(&iface, cfg) {
                Ok(Channel::Ethernet(tx, rx)) => Ok(SockPort {
                    name: ifname.to_string(),
                    mac,
                    tx,
                    rx,
                    counters: PortCounters::new_shared(),
                }),
                Ok(_) => Err(err("not an Ethernet channel".into())),
                Err(e) => Err(err(format!("{e} (needs root or CAP_NET_RAW)"))),
            }
        }
    }

    impl Port for SockPort {
        fn name(&self) -> &str {
            &self.name
        }

        fn mac(&self) -> MacAddr {
            self.mac
        }

        fn mtu(&self) -> usize {
            1500
        }

        fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
            let mut n = 0;
            while !out.is_full() {
                let Ok(frame) = self.rx.next() else { break };
                match pool.alloc_from(frame) {
                    Some(p) => {
                        self.counters.rx(p.len());
                        out.push(p);
                        n += 1;
                    }
                    None => self.counters.count_drop(PortDrop::RxNoBuffer, 1),
                }
            }
            if n > 0 {
                self.counters.rx_bursts.inc();
            }
            n
        }

        fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
            let mut sent = 0;
            for p in pkts.drain(..) {
                match self.tx.send_to(p.data(), None) {
                    Some(Ok(())) => {
                        self.counters.tx(p.len());
                        sent += 1;
                    }
                    _ => self.counters.count_drop(PortDrop::TxError, 1),
                }
            }
            sent
        }

        fn wait_rx(&mut self, timeout: Duration) {
            std::thread::sleep(timeout.min(Duration::from_micros(100)));
        }

        fn counters(&self) -> &Arc<PortCounters> {
            &self.counters
        }
    }
}
