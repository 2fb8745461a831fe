//! The `Port` trait: burst receive and transmit of packets on one interface queue,
//! with counters any thread can read.
//!
//! Drivers are generic parameters of the worker loop, not trait objects, so the hot
//! path is monomorphised per driver.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrayvec::ArrayVec;

use crate::buf::{Packet, PacketPool};
use crate::steer::Steering;

/// Most packets moved by one receive or transmit call.
pub const BURST_SIZE: usize = 32;

/// A burst of packets: a fixed array, never allocated per packet.
pub type Burst = ArrayVec<Packet, BURST_SIZE>;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address, used as "unknown" in ARP requests.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// A locally administered unicast address derived from `seed` (for in-memory ports).
    pub fn local(seed: u32) -> MacAddr {
        let s = seed.to_be_bytes();
        MacAddr([0x02, 0x52, s[0], s[1], s[2], s[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (expected six hex pairs such as 02:00:00:00:00:01)")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(MacParseError)?;
            if p.len() != 2 {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

/// A counter written by exactly one thread (its owner) and read by any.
///
/// Increments are a relaxed load and store, which on x86-64 compile to plain moves:
/// no locked instruction on the data path. Only the owning thread may call [`Counter::add`].
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (owner thread only).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one (owner thread only).
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// Sets the value (owner thread only), for figures copied from elsewhere.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }

    /// Reads the current value (any thread).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// Why a port dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum PortDrop {
    /// The worker's packet pool was empty on receive.
    RxNoBuffer,
    /// A received frame was larger than a packet buffer.
    RxTooBig,
    /// The kernel dropped frames because the receive ring was full.
    RxRingFull,
    /// The transmit ring (or the wire's queue) was full.
    TxRingFull,
    /// A frame to transmit was larger than the port's frame size.
    TxTooBig,
    /// The driver's transmit call failed.
    TxError,
}

impl PortDrop {
    /// Every reason, in counter order.
    pub const ALL: [PortDrop; 6] = [
        PortDrop::RxNoBuffer,
        PortDrop::RxTooBig,
        PortDrop::RxRingFull,
        PortDrop::TxRingFull,
        PortDrop::TxTooBig,
        PortDrop::TxError,
    ];

    /// The reason's name as shown by the CLI.
    pub fn name(self) -> &'static str {
        match self {
            PortDrop::RxNoBuffer => "rx_no_buffer",
            PortDrop::RxTooBig => "rx_too_big",
            PortDrop::RxRingFull => "rx_ring_full",
            PortDrop::TxRingFull => "tx_ring_full",
            PortDrop::TxTooBig => "tx_too_big",
            PortDrop::TxError => "tx_error",
        }
    }
}

/// Counters of one port queue.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames transmitted.
    pub tx_packets: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Receive or transmit calls that moved at least one frame (bursts).
    pub rx_bursts: Counter,
    /// System calls made to have the kernel transmit (AF_PACKET and AF_XDP `sendto`
    /// kicks); 0 for drivers that transmit without one.
    pub tx_kicks: Counter,
    /// Frames transmitted from where they were received, without a copy (AF_XDP: a
    /// frame of the UMEM the receiving and transmitting sockets share).
    pub tx_in_place: Counter,
    /// Frames received without a copy: lent to the pipelines where the kernel put them
    /// (an AF_PACKET V2 ring slot, an AF_XDP UMEM frame).
    pub rx_in_place: Counter,
    /// Frames dropped by the port, by reason (indexed by `PortDrop as usize`).
    pub drops: [Counter; PortDrop::ALL.len()],
}

impl PortCounters {
    /// A fresh, shareable set of counters.
    pub fn new_shared() -> Arc<PortCounters> {
        Arc::new(PortCounters::default())
    }

    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn count_drop(&self, reason: PortDrop, n: u64) {
        self.drops[reason as usize].add(n)
    }

    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: PortDrop) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Counts one received frame of `bytes` bytes.
    #[inline]
    pub fn rx(&self, bytes: usize) {
        self.rx_packets.inc();
        self.rx_bytes.add(bytes as u64);
    }

    /// Counts one transmitted frame of `bytes` bytes.
    #[inline]
    pub fn tx(&self, bytes: usize) {
        self.tx_packets.inc();
        self.tx_bytes.add(bytes as u64);
    }
}

/// One queue of a network interface, as a worker sees it.
pub trait Port {
    /// Interface name (e.g. `lb-c`).
    fn name(&self) -> &str;

    /// The interface's MAC address.
    fn mac(&self) -> MacAddr;

    /// Largest IP packet (L3 MTU) the interface carries.
    fn mtu(&self) -> usize;

    /// Receives up to `out`'s remaining capacity of frames, with buffers from `pool`.
    /// Returns how many were added to `out`.
    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize;

    /// Transmits every packet in `pkts`, leaving it empty. Frames that cannot be sent
    /// are dropped and counted by reason. Returns how many were sent. A driver makes at
    /// most one system call per burst.
    fn tx_burst(&mut self, pkts: &mut Burst) -> usize;

    /// Waits up to `timeout` for frames to arrive (the adaptive idle policy). Drivers
    /// with a file descriptor block on it; the default sleeps.
    fn wait_rx(&mut self, timeout: Duration) {
        std::thread::sleep(timeout)
    }

    /// Frames accepted by [`Port::tx_burst`] that are not on the wire yet. A driver that
    /// queues frames for the kernel (an AF_PACKET TX ring whose last kick found the
    /// socket's send buffer full) asks it to send them again here. Drivers that transmit
    /// synchronously keep the default, 0.
    fn tx_pending(&mut self) -> usize {
        0
    }

    /// This port's counters, shareable with the control thread.
    fn counters(&self) -> &Arc<PortCounters>;

    /// A file descriptor that becomes readable when frames arrive, if the driver has
    /// one; the worker waits on all of them at once when idle.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// How the driver spreads received frames over the workers that share the
    /// interface, so the data plane can choose source ports whose replies come back
    /// to it. The default, [`Steering::Opaque`], says nothing (a port no other worker
    /// shares, or a spread software cannot predict).
    fn steering(&self) -> Steering {
        Steering::Opaque
    }

    /// How frames leave, for operators (`show interfaces`): `ring` or `copy` for
    /// AF_PACKET (see [`crate::afpacket::TxPath`]), `umem` for AF_XDP, `pmd` for DPDK.
    /// The default, `memory`, is an in-process port.
    fn tx_path(&self) -> &'static str {
        "memory"
    }
}

impl<P: Port + ?Sized> Port for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn mac(&self) -> MacAddr {
        (**self).mac()
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        (**self).rx_burst(pool, out)
    }
    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        (**self).tx_burst(pkts)
    }
    fn wait_rx(&mut self, timeout: Duration) {
        (**self).wait_rx(timeout)
    }
    fn tx_pending(&mut self) -> usize {
        (**self).tx_pending()
    }
    fn counters(&self) -> &Arc<PortCounters> {
        (**self).counters()
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        (**self).raw_fd()
    }
    fn steering(&self) -> Steering {
        (**self).steering()
    }
    fn tx_path(&self) -> &'static str {
        (**self).tx_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_and_print() {
        let m: MacAddr = "02:52:0a:0B:0c:0d".parse().unwrap();
        assert_eq!(m.to_string(), "02:52:0a:0b:0c:0d");
        assert!("02:52:0a:0b:0c".parse::<MacAddr>().is_err());
        assert!("02:52:0a:0b:0c:0d:0e".parse::<MacAddr>().is_err());
        assert!("zz:52:0a:0b:0c:0d".parse::<MacAddr>().is_err());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::local(1).is_multicast());
    }

    #[test]
    fn counters_count() {
        let c = PortCounters::default();
        c.rx(100);
        c.rx(60);
        c.count_drop(PortDrop::TxRingFull, 3);
        assert_eq!(c.rx_packets.get(), 2);
        assert_eq!(c.rx_bytes.get(), 160);
        assert_eq!(c.dropped(PortDrop::TxRingFull), 3);
        assert_eq!(c.dropped(PortDrop::RxNoBuffer), 0);
    }
}
