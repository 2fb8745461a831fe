//! `rouge-dpdk`: a [`Port`] over one RX/TX queue pair of a DPDK ethdev (feature `dpdk`;
//! without it this crate is empty).
//!
//! [`Eal::init`] initialises DPDK's EAL once per process; [`DpdkPort::open`] then
//! configures one ethdev (a PCI NIC bound to `vfio-pci`, or a virtual device such as
//! `net_ring0`, `net_af_packet0,iface=lb-c` or `net_af_xdp0,iface=lb-c`) with one
//! receive and one transmit queue, an mbuf pool of its own, and starts it;
//! [`DpdkPort::open_queues`] configures `n` queue pairs and returns one port per pair
//! (one per worker), sharing the device and its pool. Dropping the last port of a
//! device stops and closes it and frees the pool. Which queue a frame arrives on is the
//! device's choice (a NIC's RSS hash, `net_af_packet`'s fanout with `qpairs=N`): the
//! ports describe their steering as [`Steering::Opaque`](rouge_drivers::steer::Steering), and
//! the appliance hands each frame to the worker that owns its flow.
//!
//! # Copies
//!
//! [`Port::rx_burst`] copies each received mbuf into a [`Packet`] of the caller's pool
//! and frees the mbufs in bulk; [`Port::tx_burst`] copies each packet into a fresh
//! mbuf. The AF_XDP driver lends its UMEM frames to the pipelines as packets (a
//! region of the worker's pool, see `rouge_drivers::buf`); the same for mbufs needs the region
//! to be a DPDK mempool whose objects the pool hands out and frees with
//! `rte_pktmbuf_free`, which is not done yet. Measured, the copy was about 1.5 % of a
//! frame's cost through a veth with AF_XDP (`rouge_drivers::afxdp`), where the kernel's work
//! dominates, as it does for DPDK's `net_af_packet` and `net_af_xdp` vdevs on the test
//! bed; on a NIC's PMD it is worth more. Chained (multi-segment) mbufs are dropped as
//! [`PortDrop::RxTooBig`].
//!
//! # Counters
//!
//! The port counts what it moves itself; `rte_eth_stats` are read every
//! [`DpdkConfig::stats_interval`] receive calls (and by [`DpdkPort::poll_stats`]):
//! growth of `imissed` (the NIC's receive queue was full) is counted as
//! [`PortDrop::RxRingFull`], growth of `rx_nombuf` (the PMD found the mbuf pool empty)
//! as [`PortDrop::RxNoBuffer`]. Frames the PMD refused on transmit are counted by
//! `tx_burst` as [`PortDrop::TxRingFull`] (not again from `oerrors`).
//!
//! # Threads
//!
//! The fast-path calls are made from whichever thread owns the port. From a thread that
//! is not an EAL lcore, mempool operations skip the per-lcore cache (correct, a little
//! slower); a worker makes itself an lcore with [`Eal::register_thread`] when it starts.

// Without the feature the crate is empty and the links above have nothing to name.
#![cfg_attr(not(feature = "dpdk"), allow(rustdoc::broken_intra_doc_links))]
#![cfg(feature = "dpdk")]

mod eal;

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rouge_dpdk_sys as sys;

pub use eal::Eal;

#[cfg(doc)]
use rouge_drivers::buf::Packet;
use rouge_drivers::buf::{PacketPool, MAX_FRAME};
use rouge_drivers::port::{Burst, MacAddr, Port, PortCounters, PortDrop, BURST_SIZE};

/// Why the EAL or a DPDK port could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// [`Eal::init`] was already called in this process.
    #[error("the DPDK EAL is initialised once per process and already was")]
    AlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("DPDK EAL initialisation with arguments `{args}` failed: {reason}")]
    Eal {
        /// The EAL arguments given.
        args: String,
        /// DPDK's error and a hint.
        reason: String,
    },
    /// No ethdev of that name exists.
    #[error("{device}: no DPDK port of that name (give the PCI address or the vdev name, e.g. net_ring0, and make sure the EAL arguments create or allow it)")]
    NoSuchPort {
        /// The name looked up.
        device: String,
    },
    /// The configuration is invalid.
    #[error("{device}: invalid DPDK port configuration: {reason}")]
    Config {
        /// The device.
        device: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A DPDK call failed.
    #[error("{device}: {call} failed: {reason}")]
    Call {
        /// The device.
        device: String,
        /// The DPDK function.
        call: &'static str,
        /// DPDK's error text.
        reason: String,
    },
}

/// How to open a [`DpdkPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Receive descriptors (adjusted by the PMD to its limits).
    pub rx_desc: u16,
    /// Transmit descriptors (adjusted by the PMD to its limits).
    pub tx_desc: u16,
    /// Mbufs in the port's pool: more than `rx_desc + tx_desc` (a power of two minus
    /// one fits the ring underneath best).
    pub mbufs: u32,
    /// Per-lcore mbuf cache size.
    pub mbuf_cache: u32,
    /// Receive calls between two reads of `rte_eth_stats`. At least 1.
    pub stats_interval: u32,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 4095,
            mbuf_cache: 256,
            stats_interval: 1024,
        }
    }
}

/// The device's own counters (`rte_eth_stats`), cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames dropped because the receive queue was full.
    pub imissed: u64,
    /// Frames received with errors.
    pub ierrors: u64,
    /// Frames that failed to send.
    pub oerrors: u64,
    /// Receive mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured ethdev and its mbuf pool, shared by the ports of its queue pairs. The
/// last one to go stops and closes the device and frees the pool.
struct Device {
    port_id: u16,
    pool: ptr::NonNull<sys::rte_mempool>,
}

// SAFETY: a `Device` is only touched on drop (stop, close, free), which happens once,
// after every port of its queues is gone; DPDK's mempool is safe for concurrent use by
// the queues' threads (each queue is used by one thread at a time).
unsafe impl Send for Device {}
// SAFETY: see `Send`: shared references give access to nothing but the pool pointer,
// whose mempool operations are thread-safe.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the device was configured by `open_queues`; stopping and closing
        // release its queues and the mbufs they hold, after which nothing references
        // the pool, which is freed last. Failures leave nothing else to do.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
            sys::rte_mempool_free(self.pool.as_ptr());
        }
    }
}

/// One RX/TX queue pair of a DPDK ethdev. See the [module documentation](self).
pub struct DpdkPort {
    name: String,
    port_id: u16,
    queue: u16,
    mac: MacAddr,
    mtu: usize,
    max_tx_len: usize,
    pool: ptr::NonNull<sys::rte_mempool>,
    /// Keeps the device (and the pool) open while this port lives.
    _device: Arc<Device>,
    counters: Arc<PortCounters>,
    dev: DpdkStats,
    stats_interval: u32,
    calls_since_stats: u32,
}

// SAFETY: the port exclusively owns its queue pair of the ethdev; DPDK's burst and
// mbuf functions may be called from any one thread at a time per queue, the shared
// pool is thread-safe, and the port is only used through `&mut self` (not `Sync`).
unsafe impl Send for DpdkPort {}

/// Configures `dev` with `queues` RX/TX queue pairs over its pool, starts it, and
/// returns its MAC address and MTU.
fn start(
    name: &str,
    dev: &Device,
    queues: u16,
    config: &DpdkConfig,
    socket: i32,
) -> Result<(MacAddr, usize), DpdkError> {
    let id = dev.port_id;
    let conf = sys::rte_eth_conf::default();
    // SAFETY: `conf` is a valid, zeroed (default) configuration that outlives the call.
    let rc = unsafe { sys::rte_eth_dev_configure(id, queues, queues, &conf) };
    if rc < 0 {
        let hint = if queues > 1 {
            " (does the device offer that many queue pairs? a vdev says so in its arguments, e.g. net_af_packet0,iface=lb-c,qpairs=2)"
        } else {
            ""
        };
        return Err(DpdkError::Call {
            device: name.into(),
            call: "rte_eth_dev_configure",
            reason: format!("{}{hint}", eal::strerror(rc)),
        });
    }
    for q in 0..queues {
        // SAFETY: the port is configured with `queues` queues and `q` is below; null
        // configs ask for the PMD's defaults; the pool outlives the queue (freed after
        // the device is closed).
        let rc = unsafe {
            sys::rte_eth_rx_queue_setup(
                id,
                q,
                config.rx_desc,
                socket as u32,
                ptr::null(),
                dev.pool.as_ptr(),
            )
        };
        if rc < 0 {
            return Err(call_err(name, "rte_eth_rx_queue_setup", rc));
        }
        // SAFETY: as above, for the transmit queue.
        let rc = unsafe {
            sys::rte_eth_tx_queue_setup(id, q, config.tx_desc, socket as u32, ptr::null())
        };
        if rc < 0 {
            return Err(call_err(name, "rte_eth_tx_queue_setup", rc));
        }
    }
    // SAFETY: the port is configured with its queues set up.
    let rc = unsafe { sys::rte_eth_dev_start(id) };
    if rc < 0 {
        return Err(call_err(name, "rte_eth_dev_start", rc));
    }
    // Not every PMD has a promiscuous mode (net_ring has not); an ADC port on a
    // NIC needs it only for VIP MACs it does not own, so a failure is not fatal.
    // SAFETY: the port is started.
    let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };
    let mut mac = sys::rte_ether_addr::default();
    // SAFETY: `mac` is a writable address that outlives the call.
    let rc = unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
    if rc < 0 {
        return Err(call_err(name, "rte_eth_macaddr_get", rc));
    }
    let mut mtu = 0u16;
    // SAFETY: `mtu` is a writable u16 that outlives the call.
    let rc = unsafe { sys::rte_eth_dev_get_mtu(id, &mut mtu) };
    if rc < 0 {
        return Err(call_err(name, "rte_eth_dev_get_mtu", rc));
    }
    let mac = MacAddr(mac.addr_bytes);
    Ok((mac, mtu as usize))
}

fn call_err(device: &str, call: &'static str, rc: i32) -> DpdkError {
    DpdkError::Call {
        device: device.into(),
        call,
        reason: eal::strerror(rc),
    }
}

impl DpdkPort {
    /// Opens and starts the ethdev named `device` (a PCI address as the EAL names it,
    /// or a vdev name such as `net_ring0`) with one queue pair.
    pub fn open(eal: Eal, device: &str, config: &DpdkConfig) -> Result<DpdkPort, DpdkError> {
        let mut v = Self::open_queues(eal, device, 1, config)?;
        v.pop().ok_or_else(|| DpdkError::NoSuchPort {
            device: device.into(),
        })
    }

    /// Opens and starts the ethdev named `device` with `queues` RX/TX queue pairs and
    /// one mbuf pool (`config.mbufs` per queue), and returns one port per pair, in
    /// queue order. The device must offer that many queues (a vdev says so in its
    /// arguments: `net_af_packet0,iface=lb-c,qpairs=2`).
    pub fn open_queues(
        _eal: Eal,
        device: &str,
        queues: u16,
        config: &DpdkConfig,
    ) -> Result<Vec<DpdkPort>, DpdkError> {
        if queues == 0 {
            return Err(DpdkError::Config {
                device: device.into(),
                reason: "queues must be at least 1".into(),
            });
        }
        if config.stats_interval == 0
            || config.mbufs <= u32::from(config.rx_desc) + u32::from(config.tx_desc)
        {
            return Err(DpdkError::Config {
                device: device.into(),
                reason: format!(
                    "mbufs ({}) must exceed rx_desc + tx_desc ({}) and stats_interval must be at least 1",
                    config.mbufs,
                    u32::from(config.rx_desc) + u32::from(config.tx_desc)
                ),
            });
        }
        let cname = CString::new(device).map_err(|_| DpdkError::NoSuchPort {
            device: device.into(),
        })?;
        let mut port_id = 0u16;
        // SAFETY: the EAL is initialised (the token exists); `cname` is a valid string
        // and `port_id` a writable u16, both live across the call.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port_id) };
        if rc != 0 {
            return Err(DpdkError::NoSuchPort {
                device: device.into(),
            });
        }
        // SAFETY: `port_id` names a valid ethdev.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 {
            // SAFETY: plain query of the calling thread's NUMA socket.
            (unsafe { sys::rte_socket_id() }) as i32
        } else {
            socket
        };

        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pool_name = CString::new(format!(
            "rouge_mp{}_{}",
            port_id,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ))
        .expect("no NUL in a formatted name");
        // SAFETY: the name is a valid string the EAL copies; sizes are plain numbers.
        let pool = unsafe {
            sys::rte_pktmbuf_pool_create(
                pool_name.as_ptr(),
                config.mbufs.saturating_mul(u32::from(queues)),
                config.mbuf_cache,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        let Some(pool) = ptr::NonNull::new(pool) else {
            // SAFETY: reads DPDK's thread-local error number, set by the failed call.
            let code = unsafe { sys::rouge_errno() };
            return Err(DpdkError::Call {
                device: device.into(),
                call: "rte_pktmbuf_pool_create",
                reason: format!(
                    "{} (not enough EAL memory: raise -m or reserve hugepages, or lower mbufs)",
                    eal::strerror(code)
                ),
            });
        };
        // From here on, dropping `dev` (also when `start` fails) stops and closes the
        // device and frees the pool.
        let dev = Arc::new(Device { port_id, pool });
        let (mac, mtu) = start(device, &dev, queues, config, socket)?;
        Ok((0..queues)
            .map(|queue| DpdkPort {
                name: device.to_string(),
                port_id,
                queue,
                mac,
                mtu,
                max_tx_len: (mtu + 18).min(MAX_FRAME),
                pool,
                _device: dev.clone(),
                counters: PortCounters::new_shared(),
                dev: DpdkStats::default(),
                stats_interval: config.stats_interval,
                calls_since_stats: 0,
            })
            .collect())
    }

    /// Sets the name [`Port::name`] reports (default: the device name), e.g. the
    /// interface's name in the appliance's configuration.
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    /// The ethdev's port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue pair this port drives.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Largest frame [`Port::tx_burst`] sends (MTU + Ethernet header + one tag).
    pub fn max_tx_len(&self) -> usize {
        self.max_tx_len
    }

    /// Mbufs free in the port's pool.
    pub fn mbufs_available(&self) -> u32 {
        // SAFETY: the pool is valid while the port lives.
        unsafe { sys::rte_mempool_avail_count(self.pool.as_ptr()) }
    }

    /// Reads `rte_eth_stats` now, counts the growth of the drop figures in the port's
    /// counters (see the module documentation) and returns them.
    pub fn poll_stats(&mut self) -> DpdkStats {
        self.calls_since_stats = 0;
        let mut st = sys::rte_eth_stats::default();
        // SAFETY: `st` is a writable stats struct that outlives the call.
        let rc = unsafe { sys::rte_eth_stats_get(self.port_id, &mut st) };
        if rc != 0 {
            return self.dev;
        }
        let now = DpdkStats {
            ipackets: st.ipackets,
            opackets: st.opackets,
            ibytes: st.ibytes,
            obytes: st.obytes,
            imissed: st.imissed,
            ierrors: st.ierrors,
            oerrors: st.oerrors,
            rx_nombuf: st.rx_nombuf,
        };
        count_growth(&self.counters, &self.dev, &now);
        self.dev = now;
        now
    }
}

/// Counts the growth of the device's drop figures from `was` to `now` in `counters`
/// (a counter reset by the device counts as no growth).
fn count_growth(counters: &PortCounters, was: &DpdkStats, now: &DpdkStats) {
    counters.count_drop(
        PortDrop::RxRingFull,
        now.imissed.saturating_sub(was.imissed),
    );
    counters.count_drop(
        PortDrop::RxNoBuffer,
        now.rx_nombuf.saturating_sub(was.rx_nombuf),
    );
}

impl Port for DpdkPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        self.calls_since_stats += 1;
        // The device's figures are the device's: queue 0 reads and counts them.
        if self.queue == 0 && self.calls_since_stats >= self.stats_interval {
            self.poll_stats();
        }
        let mut mbufs = [ptr::null_mut::<sys::rte_mbuf>(); BURST_SIZE];
        let room = (out.capacity() - out.len()) as u16;
        // SAFETY: the port is started with RX queue `self.queue`, which only this port
        // uses; `mbufs` has room for `room` pointers, which the PMD fills with mbufs we
        // now own.
        let n =
            unsafe { sys::rouge_eth_rx_burst(self.port_id, self.queue, mbufs.as_mut_ptr(), room) }
                as usize;
        let before = out.len();
        for &m in &mbufs[..n] {
            // SAFETY: `m` is a valid mbuf the PMD handed over.
            let (segs, len) = unsafe {
                (
                    sys::rouge_pktmbuf_nb_segs(m),
                    sys::rouge_pktmbuf_data_len(m),
                )
            };
            let len = len as usize;
            if segs != 1 || len > MAX_FRAME {
                self.counters.count_drop(PortDrop::RxTooBig, 1);
                continue;
            }
            let Some(mut pkt) = pool.alloc() else {
                self.counters.count_drop(PortDrop::RxNoBuffer, 1);
                continue;
            };
            pkt.set_len(len);
            // SAFETY: a single-segment mbuf holds `data_len` bytes at `mtod`; `pkt` has
            // room for `len <= MAX_FRAME` bytes.
            unsafe {
                ptr::copy_nonoverlapping(
                    sys::rouge_pktmbuf_mtod(m) as *const u8,
                    pkt.data_mut().as_mut_ptr(),
                    len,
                );
            }
            self.counters.rx(len);
            out.push(pkt);
        }
        if n > 0 {
            // SAFETY: the `n` mbufs are ours and not used again.
            unsafe { sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), n as u32) };
        }
        let got = out.len() - before;
        if got > 0 {
            self.counters.rx_bursts.inc();
        }
        got
    }

    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        let mut mbufs = [ptr::null_mut::<sys::rte_mbuf>(); BURST_SIZE];
        let mut lens = [0usize; BURST_SIZE];
        let mut k = 0;
        for p in pkts.drain(..) {
            let len = p.len();
            let tagged = p.data().get(12..14) == Some(&[0x81, 0x00]);
            if len > self.max_tx_len - if tagged { 0 } else { 4 } {
                self.counters.count_drop(PortDrop::TxTooBig, 1);
                continue;
            }
            if len < 14 {
                self.counters.count_drop(PortDrop::TxError, 1);
                continue;
            }
            // SAFETY: the pool is valid while the port lives.
            let m = unsafe { sys::rouge_pktmbuf_alloc(self.pool.as_ptr()) };
            if m.is_null() {
                // Every mbuf is on the device's rings: transmit is backed up.
                self.counters.count_drop(PortDrop::TxRingFull, 1);
                continue;
            }
            // SAFETY: `m` is a fresh mbuf of ours; append returns room for `len` bytes
            // (or null when the data room is too small).
            let dst = unsafe { sys::rouge_pktmbuf_append(m, len as u16) } as *mut u8;
            if dst.is_null() {
                // SAFETY: `m` is ours and not used again.
                unsafe { sys::rouge_pktmbuf_free(m) };
                self.counters.count_drop(PortDrop::TxTooBig, 1);
                continue;
            }
            // SAFETY: `dst` has room for `len` bytes inside `m`'s data room.
            unsafe { ptr::copy_nonoverlapping(p.data().as_ptr(), dst, len) };
            mbufs[k] = m;
            lens[k] = len;
            k += 1;
        }
        if k == 0 {
            return 0;
        }
        // SAFETY: the port is started with TX queue `self.queue`, which only this port
        // uses; the first `k` entries are valid mbufs; the PMD takes ownership of the
        // first `sent` of them.
        let sent = unsafe {
            sys::rouge_eth_tx_burst(self.port_id, self.queue, mbufs.as_mut_ptr(), k as u16)
        } as usize;
        for &len in &lens[..sent] {
            self.counters.tx(len);
        }
        if sent < k {
            self.counters
                .count_drop(PortDrop::TxRingFull, (k - sent) as u64);
            // SAFETY: the PMD did not take these mbufs; they are ours and unused.
            unsafe { sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr().add(sent), (k - sent) as u32) };
        }
        sent
    }

    fn tx_path(&self) -> &'static str {
        "pmd"
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("name", &self.name)
            .field("port_id", &self.port_id)
            .field("queue", &self.queue)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_drop_figures_are_counted_by_their_growth() {
        let c = PortCounters::default();
        let mut was = DpdkStats::default();
        let now = DpdkStats {
            imissed: 5,
            rx_nombuf: 2,
            oerrors: 7,
            ..DpdkStats::default()
        };
        count_growth(&c, &was, &now);
        was = now;
        let later = DpdkStats {
            imissed: 8,
            rx_nombuf: 2,
            ..now
        };
        count_growth(&c, &was, &later);
        assert_eq!(c.dropped(PortDrop::RxRingFull), 8);
        assert_eq!(c.dropped(PortDrop::RxNoBuffer), 2);
        // Transmit refusals are counted by tx_burst itself, not again from oerrors.
        assert_eq!(c.dropped(PortDrop::TxRingFull), 0);
        assert_eq!(c.dropped(PortDrop::TxError), 0);
        // A device that reset its figures does not make the counters jump.
        count_growth(&c, &later, &DpdkStats::default());
        assert_eq!(c.dropped(PortDrop::RxRingFull), 8);
    }
}
