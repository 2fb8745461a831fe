//! [`AnyPort`]: one port type for every driver the configuration can name, so one
//! worker loop can drive interfaces of different drivers.
//!
//! The worker loop is generic over [`Port`] and takes a `Vec` of one port type. The
//! appliance chooses the driver per interface at run time (`driver = "afpacket" |
//! "afxdp" | "dpdk"`), so its ports need one type. Two ways were weighed:
//!
//! - **instantiate the worker per driver** and refuse configurations that mix drivers:
//!   no branch at all on the data path, but three copies of the whole worker loop and
//!   pipeline in the binary, and an appliance that cannot put its client side on
//!   AF_XDP and its server side on AF_PACKET (or a DPDK NIC beside a veth);
//! - **an enum that dispatches by `match`** (this type): every [`Port`] method is one
//!   `match` on the variant and a direct, inlinable call into the driver. The worker
//!   calls [`Port::rx_burst`] and [`Port::tx_burst`] once per *burst* (up to
//!   [`BURST_SIZE`](rouge_drivers::BURST_SIZE) packets); everything per packet happens inside
//!   the driver's own monomorphic code, so the cost is one well-predicted branch per
//!   burst, no virtual call and no allocation.
//!
//! The enum was chosen: mixing drivers is allowed, and the hot path stays
//! monomorphised below the burst.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "dpdk")]
use rouge_dpdk::DpdkPort;
use rouge_drivers::afpacket::AfPacketPort;
use rouge_drivers::afxdp::AfXdpPort;
use rouge_drivers::buf::PacketPool;
use rouge_drivers::port::{Burst, MacAddr, Port, PortCounters};

/// A port of any driver (see the [module documentation](self)).
// The variants differ in size (a few hundred bytes), but a worker holds one port per
// interface for its whole life: boxing the larger ones would only add a pointer chase
// per burst.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyPort {
    /// Linux AF_PACKET rings.
    AfPacket(AfPacketPort),
    /// An AF_XDP socket on one queue.
    AfXdp(AfXdpPort),
    /// A DPDK ethdev (cargo feature `dpdk`).
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkPort),
}

impl AnyPort {
    /// The driver's name as the configuration writes it: `afpacket`, `afxdp`, `dpdk`.
    pub fn driver(&self) -> &'static str {
        match self {
            AnyPort::AfPacket(_) => "afpacket",
            AnyPort::AfXdp(_) => "afxdp",
            #[cfg(feature = "dpdk")]
            AnyPort::Dpdk(_) => "dpdk",
        }
    }
}

impl From<AfPacketPort> for AnyPort {
    fn from(p: AfPacketPort) -> Self {
        AnyPort::AfPacket(p)
    }
}

impl From<AfXdpPort> for AnyPort {
    fn from(p: AfXdpPort) -> Self {
        AnyPort::AfXdp(p)
    }
}

#[cfg(feature = "dpdk")]
impl From<DpdkPort> for AnyPort {
    fn from(p: DpdkPort) -> Self {
        AnyPort::Dpdk(p)
    }
}

/// Calls `$call` on the port inside whichever variant `$self` is.
macro_rules! dispatch {
    ($self:expr, $p:ident => $call:expr) => {
        match $self {
            AnyPort::AfPacket($p) => $call,
            AnyPort::AfXdp($p) => $call,
            #[cfg(feature = "dpdk")]
            AnyPort::Dpdk($p) => $call,
        }
    };
}

impl Port for AnyPort {
    #[inline]
    fn name(&self) -> &str {
        dispatch!(self, p => p.name())
    }

    #[inline]
    fn mac(&self) -> MacAddr {
        dispatch!(self, p => p.mac())
    }

    #[inline]
    fn mtu(&self) -> usize {
        dispatch!(self, p => p.mtu())
    }

    #[inline]
    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        dispatch!(self, p => p.rx_burst(pool, out))
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        dispatch!(self, p => p.tx_burst(pkts))
    }

    #[inline]
    fn wait_rx(&mut self, timeout: Duration) {
        dispatch!(self, p => p.wait_rx(timeout))
    }

    #[inline]
    fn tx_pending(&mut self) -> usize {
        dispatch!(self, p => p.tx_pending())
    }

    #[inline]
    fn counters(&self) -> &Arc<PortCounters> {
        dispatch!(self, p => p.counters())
    }

    #[inline]
    fn raw_fd(&self) -> Option<RawFd> {
        dispatch!(self, p => p.raw_fd())
    }

    fn steering(&self) -> rouge_drivers::steer::Steering {
        dispatch!(self, p => p.steering())
    }

    fn tx_path(&self) -> &'static str {
        dispatch!(self, p => p.tx_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouge_drivers::afpacket::AfPacketConfig;
    use rouge_drivers::afxdp::AfXdpConfig;
    use rouge_drivers::netns;
    use std::process::Command;

    /// Root only: a private namespace with a veth pair, an AF_PACKET port on one end
    /// and an AF_XDP port on the other, both driven as `AnyPort`s: frames cross both
    /// ways, and every method reaches the right driver.
    #[test]
    fn frames_cross_between_an_afpacket_and_an_afxdp_any_port() {
        if !netns::is_root() {
            eprintln!("SKIPPED: needs root for its namespace");
            return;
        }
        let ns = format!("rga-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().map(|s| s.success());
            assert_eq!(ok.ok(), Some(true), "ip {}", args.join(" "));
        };
        ip(&["netns", "add", &ns]);
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _del = Del(ns.clone());
        ip(&[
            "-n", &ns, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        for dev in ["va", "vb"] {
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        }
        let (mut a, mut b): (AnyPort, AnyPort) = netns::run_in(&ns, || {
            (
                AfPacketPort::open("va", &AfPacketConfig::default())
                    .expect("afpacket va")
                    .into(),
                AfXdpPort::open("vb", &AfXdpConfig::default())
                    .expect("afxdp vb")
                    .into(),
            )
        })
        .expect("enter namespace");
        assert_eq!((a.driver(), a.name()), ("afpacket", "va"));
        assert_eq!((b.driver(), b.name()), ("afxdp", "vb"));
        assert!(a.raw_fd().is_some() && b.raw_fd().is_some());
        assert_eq!(a.mtu(), 1500);
        // A single port on each side: the drivers say nothing of steering.
        assert_eq!(
            (a.steering(), b.steering()),
            (
                rouge_drivers::steer::Steering::Opaque,
                rouge_drivers::steer::Steering::Opaque
            )
        );
        let pool = PacketPool::new(64);
        cross(&mut a, &mut b, &pool);
        cross(&mut b, &mut a, &pool);
    }

    /// Sends five frames from `from` and checks `to` receives them in order.
    fn cross(from: &mut AnyPort, to: &mut AnyPort, pool: &PacketPool) {
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&to.mac().0);
        frame[6..12].copy_from_slice(&from.mac().0);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        let (tx0, rx0) = (
            from.counters().tx_packets.get(),
            to.counters().rx_packets.get(),
        );
        let mut burst = Burst::new();
        for i in 0..5u8 {
            frame[14] = i;
            burst.push(pool.alloc_from(&frame).unwrap());
        }
        assert_eq!(from.tx_burst(&mut burst), 5, "{} sends", from.driver());
        let mut got = Vec::new();
        let end = std::time::Instant::now() + Duration::from_secs(3);
        while got.len() < 5 && std::time::Instant::now() < end {
            let mut out = Burst::new();
            if to.rx_burst(pool, &mut out) == 0 {
                to.wait_rx(Duration::from_millis(5));
            }
            // Only the test's own frames (the kernel may send others on a new link).
            got.extend(
                out.iter()
                    .filter(|p| p.data().get(12..14) == Some(&[0x88, 0xb5]))
                    .map(|p| p.data()[14]),
            );
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4], "{} receives", to.driver());
        assert_eq!(from.counters().tx_packets.get() - tx0, 5);
        assert!(to.counters().rx_packets.get() - rx0 >= 5);
    }
}
