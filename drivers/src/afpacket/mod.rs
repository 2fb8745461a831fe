//! `afpacket`: a [`Port`] on a Linux interface through memory-mapped AF_PACKET rings.
//!
//! One [`AfPacketPort`] is one `AF_PACKET` socket bound to one interface, in the
//! network namespace of the thread that opens it, with:
//!
//! - a memory-mapped receive ring (`PACKET_RX_RING`), TPACKET_V2 by default or
//!   TPACKET_V3 ([`RxRing`]). On a V2 ring [`Port::rx_burst`] lends each slot to the
//!   pipelines as a [`Packet`] without a copy (a region of the worker's pool, as
//!   AF_XDP lends UMEM frames): the slot goes back to the kernel when the packet goes,
//!   so a forwarded frame is copied once, from the receive slot to the transmit slot
//!   or (on a veth) into the kernel's buffer. At most half the ring is lent at a time;
//!   past that, and for 802.1Q-tagged frames (whose tag the driver puts back), for
//!   other pools than the first and on V3 rings, a frame is copied into a packet of
//!   the pool and its slot handed back at once. A packet held longer than a turn (an
//!   ARP or shaping queue) is copied out of its slot ([`Packet::detached`]);
//! - a transmit path ([`TxPath`]), one system call per burst either way:
//!   - a memory-mapped transmit ring (`PACKET_TX_RING`): [`Port::tx_burst`] copies each
//!     packet into a free slot, marks it for sending, and then makes a single
//!     `sendto(fd, NULL, 0, MSG_DONTWAIT)` call for the whole burst. The kernel sends
//!     the slot's pages without a copy, which a NIC's DMA can use;
//!   - or one `sendmmsg` of the packets where they lie, which the kernel copies into
//!     its buffers. This is the path on a veth (the default, [`TxPath::Auto`]): a veth
//!     hands every frame to another namespace, and the kernel then copies ring pages
//!     anyway (`skb_copy_ubufs`, a page allocation and a copy per frame, 15 % of the
//!     proxy's CPU in a 1 MiB transfer measured with `perf record`), after Rouge's own
//!     copy into the slot. With `sendmmsg` each frame is copied once, by the kernel;
//! - `PACKET_QDISC_BYPASS` (frames go straight to the driver, as on a NIC queue),
//!   `PACKET_LOSS` (a malformed slot is skipped instead of stalling the ring) and
//!   `PACKET_IGNORE_OUTGOING` (the socket never sees frames leaving the interface, ours
//!   or the kernel's; on kernels without it, frames marked `PACKET_OUTGOING` are skipped
//!   in user space);
//! - optional fanout ([`Fanout`]): several workers each open their own port on the
//!   same interface and join one group; the kernel picks the socket for each frame,
//!   by its symmetric flow hash or by a classic BPF program
//!   ([`steer_by_flow_program`]).
//!
//! # Receive ring versions and latency
//!
//! With **TPACKET_V2** every frame slot has its own status word: a frame is visible to
//! the worker as soon as the kernel has copied it, so the ring adds microseconds.
//!
//! With **TPACKET_V3** the kernel fills whole blocks and hands a block to user space
//! only when it is full or when its retire timer (`tp_retire_blk_tov`,
//! [`RxRing::V3::retire_timeout_ms`]) fires. The last frames of a quiet block therefore
//! wait up to that many milliseconds (the kernel's default for a link of unknown speed
//! is 8 ms), which a request-response flow pays on every round trip. V3 packs frames
//! tightly and costs fewer cache misses at high rates, but V2 is the default because
//! an ADC's latency must not depend on load. Measured on veth (kernel 6.18, one frame
//! bounced 1,000 times between two ports, busy polling; the ignored test
//! `latency_v2_vs_v3` in `drivers/tests/afpacket.rs`): V2 round trip p50 7 µs, p99
//! 14 µs; V3 with a 1 ms retire timeout p50 1.0 ms, p99 5 ms; V3 with 8 ms p50 8 ms.
//!
//! # Frames and metadata
//!
//! Every frame gets a receive timestamp ([`PacketMeta::rx_time`](crate::buf::PacketMeta))
//! from its ring header (`tp_sec`/`tp_nsec`, written by the kernel as it copies the
//! frame into the ring), so the time a frame waits in the ring for the worker counts.
//! The kernel stamps ring frames with `CLOCK_REALTIME` (the skb's software receive
//! stamp or the time of the copy) and AF_PACKET has no option to choose another clock:
//! `PACKET_TIMESTAMP` only selects hardware stamps, which virtual NICs lack, and
//! `SO_TIMESTAMPING` affects control messages, not the ring. The driver therefore
//! converts to `CLOCK_MONOTONIC`, the data plane's time base, with one pair of clock
//! reads per receive burst that delivered frames ([`crate::clock::RealtimeToMonotonic`]):
//! two vDSO calls per burst instead of a monotonic stamp per frame, and a wall-clock
//! step or slew cannot skew more than one burst.
//!
//! The kernel moves a received 802.1Q tag into the ring's metadata; the driver puts it
//! back in front of the EtherType while copying, so the pipelines see the frame as it
//! was on the wire. A frame whose checksum the sender left to offload
//! (`TP_STATUS_CSUMNOTREADY`, common on veth pairs with a kernel peer) gets
//! [`PacketMeta::l4_csum_partial`](crate::buf::PacketMeta) set and is counted in
//! [`AfPacketPort::csum_partial_frames`]. Kernel drops because the receive ring was
//! full (`PACKET_STATISTICS`) are read every [`AfPacketConfig::stats_interval`] receive
//! calls and counted as [`PortDrop::RxRingFull`].
//!
//! # Example: two workers sharing an interface
//!
//! ```no_run
//! use rouge_drivers::afpacket::{steer_by_flow_program, AfPacketConfig, AfPacketPort, Fanout, FanoutMode};
//!
//! let config = AfPacketConfig {
//!     fanout: Some(Fanout { group_id: 1, mode: FanoutMode::Cbpf(steer_by_flow_program(2)) }),
//!     ..AfPacketConfig::default()
//! };
//! // Worker i must be the i-th socket to join (open them in order, then move each
//! // port to its worker thread).
//! let worker0 = AfPacketPort::open("lb-c", &config)?;
//! let worker1 = AfPacketPort::open("lb-c", &config)?;
//! # Ok::<(), rouge_drivers::afpacket::AfPacketError>(())
//! ```
//!
//! # Privileges
//!
//! Opening a port needs `CAP_NET_RAW` (root in the test bed) and an existing
//! interface; frames flow once the interface is up.

pub mod bpf;
pub(crate) mod sys;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use bpf::{flow_program_steering, op, steer_by_flow_program, steer_flow, SockFilter};

use crate::buf::{Packet, PacketPool, RegionId, MAX_FRAME};
use crate::clock::RealtimeToMonotonic;
use crate::port::{Burst, Counter, MacAddr, Port, PortCounters, PortDrop, BURST_SIZE};
use crate::steer::Steering;

/// Which TPACKET version the receive ring uses (the transmit ring follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxRing {
    /// TPACKET_V2: one status word per frame slot; frames are visible at once.
    #[default]
    V2,
    /// TPACKET_V3: frames packed into blocks that reach user space when full or when
    /// the retire timer fires.
    V3 {
        /// Bytes per block: a multiple of the page size and of the frame size.
        block_size: u32,
        /// Block retire timeout in milliseconds (`tp_retire_blk_tov`): the most a frame
        /// in a quiet block waits before the worker can see it. 0 lets the kernel choose
        /// from the link speed (8 ms on veth).
        retire_timeout_ms: u32,
    },
}

/// How [`Port::tx_burst`] hands frames to the kernel (one system call per burst either
/// way; see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxPath {
    /// [`TxPath::Copy`] on a veth, [`TxPath::Ring`] on any other interface.
    #[default]
    Auto,
    /// A memory-mapped transmit ring (`PACKET_TX_RING`), kicked once per burst: the
    /// frame is copied into a slot, whose pages the kernel sends without a copy.
    Ring,
    /// One `sendmmsg` per burst from the packets' own buffers: the kernel copies each
    /// frame once into its own buffer.
    Copy,
}

/// How the kernel spreads frames over the sockets of a fanout group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanoutMode {
    /// `PACKET_FANOUT_HASH`: the kernel's symmetric flow hash.
    Hash,
    /// `PACKET_FANOUT_CBPF`: a classic BPF program returns the index of the socket
    /// (in join order) that receives the frame; see [`steer_by_flow_program`].
    Cbpf(Vec<SockFilter>),
}

/// Membership of a port in a fanout group: every worker opens its own port on the
/// interface with the same group id and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    /// Group id, unique per interface and network namespace.
    pub group_id: u16,
    /// How frames are spread.
    pub mode: FanoutMode,
}

/// How to open an [`AfPacketPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Receive ring version (V2 by default, see the module doc on latency).
    pub rx_ring: RxRing,
    /// Bytes per frame slot in both rings: a power of two, at least 256. Frames longer
    /// than a slot minus its header (about 1,980 bytes for 2,048) are dropped as
    /// [`PortDrop::RxTooBig`] / [`PortDrop::TxTooBig`].
    pub frame_size: u32,
    /// Bytes of the receive ring (rounded down to whole blocks).
    pub rx_ring_bytes: usize,
    /// Bytes of the transmit ring (rounded down to whole blocks); with
    /// [`TxPath::Copy`], the socket's send buffer.
    pub tx_ring_bytes: usize,
    /// Join a fanout group after binding.
    pub fanout: Option<Fanout>,
    /// Send with `PACKET_QDISC_BYPASS` (straight to the driver's queue).
    pub qdisc_bypass: bool,
    /// Receive calls between two reads of the kernel's drop counter
    /// (`PACKET_STATISTICS`, a system call). At least 1.
    pub stats_interval: u32,
    /// How frames are sent.
    pub tx: TxPath,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            rx_ring: RxRing::V2,
            frame_size: 2048,
            rx_ring_bytes: 4 << 20,
            tx_ring_bytes: 4 << 20,
            fanout: None,
            qdisc_bypass: true,
            stats_interval: 1024,
            tx: TxPath::Auto,
        }
    }
}

/// Why an [`AfPacketPort`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    /// The configuration cannot describe a ring.
    #[error("{ifname}: invalid AF_PACKET configuration: {reason}")]
    Config {
        /// Interface name.
        ifname: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A system call failed.
    #[error("{ifname}: {call} failed: {source}{hint}")]
    Sys {
        /// Interface name.
        ifname: String,
        /// The call, e.g. `setsockopt(PACKET_RX_RING)`.
        call: &'static str,
        /// The operating system's error.
        source: io::Error,
        /// A hint on the usual cause (may be empty).
        hint: &'static str,
    },
}

fn hint(call: &str, err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => " (are you root? AF_PACKET needs CAP_NET_RAW)",
        Some(libc::ENODEV) | Some(libc::ENXIO) => {
            " (does the interface exist in this network namespace?)"
        }
        Some(libc::ENETDOWN) => " (is the interface up?)",
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) => {
            " (not enough memory for the rings: lower rx_ring_bytes/tx_ring_bytes)"
        }
        Some(libc::EINVAL) if call.contains("RING") => {
            " (ring geometry rejected: is the interface up? are you root? block size must be a multiple of the page size and of frame_size)"
        }
        Some(libc::EINVAL) | Some(libc::EALREADY) if call.contains("FANOUT") => {
            " (a group with this id already exists on this interface with another mode, or the program was rejected)"
        }
        Some(libc::EADDRINUSE) => " (fanout group id in use on another interface or with another mode)",
        _ => "",
    }
}

/// Ring geometry, checked once at open.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    block_size: usize,
    block_nr: usize,
    frame_size: usize,
    frame_nr: usize,
}

impl Geometry {
    fn bytes(&self) -> usize {
        self.block_size * self.block_nr
    }

    fn req(&self, retire_timeout_ms: u32) -> sys::TpacketReq3 {
        sys::TpacketReq3 {
            tp_block_size: self.block_size as u32,
            tp_block_nr: self.block_nr as u32,
            tp_frame_size: self.frame_size as u32,
            tp_frame_nr: self.frame_nr as u32,
            tp_retire_blk_tov: retire_timeout_ms,
            ..Default::default()
        }
    }

    /// Offset of frame slot `i` from the start of its ring.
    #[inline]
    fn frame_offset(&self, i: usize) -> usize {
        let per_block = self.block_size / self.frame_size;
        (i / per_block) * self.block_size + (i % per_block) * self.frame_size
    }

    /// The slot whose offset is `off` (the inverse of [`Geometry::frame_offset`]).
    #[inline]
    fn frame_index(&self, off: usize) -> usize {
        let per_block = self.block_size / self.frame_size;
        (off / self.block_size) * per_block + (off % self.block_size) / self.frame_size
    }
}

// `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn geometry(
    ifname: &str,
    frame_size: u32,
    block_size: usize,
    ring_bytes: usize,
) -> Result<Geometry, AfPacketError> {
    let bad = |reason: String| AfPacketError::Config {
        ifname: ifname.to_string(),
        reason,
    };
    // SAFETY: sysconf has no memory arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let frame = frame_size as usize;
    if !frame.is_power_of_two() || frame < 256 {
        return Err(bad(format!(
            "frame_size {frame} must be a power of two of at least 256 (2048 fits a 1500-byte MTU)"
        )));
    }
    if block_size % page != 0 || block_size % frame != 0 || block_size == 0 {
        return Err(bad(format!(
            "block size {block_size} must be a multiple of the page size ({page}) and of frame_size ({frame})"
        )));
    }
    let block_nr = ring_bytes / block_size;
    if block_nr == 0 {
        return Err(bad(format!(
            "ring of {ring_bytes} bytes holds no block of {block_size} bytes: give at least one block"
        )));
    }
    Ok(Geometry {
        block_size,
        block_nr,
        frame_size: frame,
        frame_nr: block_nr * (block_size / frame),
    })
}

/// A ring frame's `tp_sec`/`tp_nsec` as nanoseconds since the epoch.
#[inline]
fn stamp_ns(sec: u32, nsec: u32) -> u64 {
    u64::from(sec) * 1_000_000_000 + u64::from(nsec)
}

/// Receive-ring cursor.
enum RxCursor {
    /// Next frame slot to look at.
    V2 { head: usize },
    /// Current block, and within it (when open) frames left and the next frame's offset.
    V3 {
        block: usize,
        open: bool,
        left: u32,
        next: usize,
    },
}

/// A frame slot's header fields the receive path needs, whatever the version.
struct RxFrame {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: usize,
    vlan_tci: u16,
    vlan_tpid: u16,
    pkttype: u8,
    /// The kernel's receive stamp (`CLOCK_REALTIME`), in nanoseconds since the epoch.
    stamp: u64,
}

/// An AF_PACKET port: one socket with memory-mapped receive and transmit rings on one
/// interface. See the [module documentation](self).
pub struct AfPacketPort {
    name: String,
    mac: MacAddr,
    mtu: usize,
    ifindex: i32,
    version: RxRing,
    /// The socket and its rings, shared with the pool that holds frames lent from the
    /// receive ring.
    ring: Arc<RingMemory>,
    /// The same, as the owner a pool keeps for the region it registers.
    ring_owner: Arc<dyn std::any::Any + Send + Sync>,
    /// Receive slots lent to packets (TPACKET_V2), by slot index, and how many.
    lent: Vec<bool>,
    lent_count: usize,
    /// The pool frames are lent to ([`PacketPool::key`]): the first one `rx_burst` saw.
    lend_pool: Option<usize>,
    rx_geo: Geometry,
    rx: RxCursor,
    /// The transmit path in use ([`TxPath::Auto`] resolved at open).
    tx_path: TxPath,
    tx_geo: Geometry,
    tx_head: usize,
    /// The oldest slot handed to the kernel that may not be sent yet.
    tx_tail: usize,
    /// Slots from `tx_tail` to `tx_head` handed to the kernel.
    tx_inflight: usize,
    tx_data_offset: usize,
    max_tx_len: usize,
    counters: Arc<PortCounters>,
    csum_partial: Counter,
    tx_kick_errors: Counter,
    /// The last kick left frames in the TX ring (the socket's send buffer was full, as
    /// when the receiving side completes asynchronously): the next burst kicks again
    /// even if it queues nothing, so queued frames never wait for new ones.
    tx_kick_pending: bool,
    kernel_drops: u64,
    stats_interval: u32,
    calls_since_stats: u32,
    /// How the fanout group spreads frames (see [`Port::steering`]).
    steering: Steering,
}

/// The steering of a port opened with `fanout`: the flow program's formula when the
/// group runs [`steer_by_flow_program`], [`Steering::Opaque`] otherwise (no fanout: this
/// socket sees every frame; the kernel's hash or another program: unpredictable).
fn fanout_steering(fanout: Option<&Fanout>) -> Steering {
    match fanout.map(|f| &f.mode) {
        Some(FanoutMode::Cbpf(prog)) => flow_program_steering(prog).unwrap_or(Steering::Opaque),
        _ => Steering::Opaque,
    }
}

/// An AF_PACKET socket and its ring mapping, kept alive while the port or a packet lent
/// from the receive ring needs it.
struct RingMemory {
    // Field order is drop order: the mapping goes before the socket.
    map: sys::Mmap,
    fd: OwnedFd,
}

// SAFETY: `RingMemory` is only a keep-alive: nothing reads or writes the mapping
// through it from `&self` except the port that owns it (see `AfPacketPort`'s `Send`) and
// packets of the one pool the port lends to, which never leave their worker thread
// (pools are not `Send`). Dropping it on any thread only unmaps and closes.
unsafe impl Send for RingMemory {}
// SAFETY: as above; shared references hand out the base pointer and the descriptor
// number, no interior mutability.
unsafe impl Sync for RingMemory {}

// SAFETY: the port exclusively owns its socket and the ring mapping; the raw pointers
// into the mapping are only dereferenced through `&mut self` (or `&self` for status
// reads that use atomics), so moving the port to another thread is sound. It is not
// `Sync`.
unsafe impl Send for AfPacketPort {}

impl AfPacketPort {
    /// Opens a port on interface `ifname` in the calling thread's network namespace.
    pub fn open(ifname: &str, config: &AfPacketConfig) -> Result<AfPacketPort, AfPacketError> {
        let name = ifname.to_string();
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(AfPacketError::Config {
                ifname: name,
                reason: format!("interface names are 1 to {} bytes", libc::IFNAMSIZ - 1),
            });
        }
        let sys_err = |call: &'static str| {
            let ifname = name.clone();
            move |source: io::Error| AfPacketError::Sys {
                ifname,
                call,
                hint: hint(call, &source),
                source,
            }
        };

        if let Some(Fanout {
            mode: FanoutMode::Cbpf(prog),
            ..
        }) = &config.fanout
        {
            // BPF_MAXINSNS: the kernel refuses longer classic programs.
            if prog.is_empty() || prog.len() > 4096 {
                return Err(AfPacketError::Config {
                    ifname: name,
                    reason: "a fanout BPF program has 1 to 4096 instructions".into(),
                });
            }
        }
        let frame_block = (64 << 10).max(config.frame_size as usize);
        let (version, rx_geo, tov) = match config.rx_ring {
            RxRing::V2 => (
                sys::TPACKET_V2,
                geometry(ifname, config.frame_size, frame_block, config.rx_ring_bytes)?,
                0,
            ),
            RxRing::V3 {
                block_size,
                retire_timeout_ms,
            } => (
                sys::TPACKET_V3,
                geometry(
                    ifname,
                    config.frame_size,
                    block_size as usize,
                    config.rx_ring_bytes,
                )?,
                retire_timeout_ms,
            ),
        };
        let tx_data_offset = match config.rx_ring {
            RxRing::V2 => sys::TX_DATA_OFFSET_V2,
            RxRing::V3 { .. } => sys::TX_DATA_OFFSET_V3,
        };

        let ifindex = sys::ifindex(ifname).map_err(sys_err("if_nametoindex"))?;
        let fd = sys::packet_socket().map_err(sys_err("socket(AF_PACKET)"))?;
        let tx_path = match config.tx {
            // An interface whose driver cannot be asked keeps the ring.
            TxPath::Auto => match sys::driver_name(&fd, ifname).as_deref() {
                Ok("veth") => TxPath::Copy,
                _ => TxPath::Ring,
            },
            other => other,
        };
        let ring_tx = tx_path == TxPath::Ring;
        // The copy path has no TX ring: `tx_ring_bytes` only sizes its send buffer.
        let tx_geo = if ring_tx {
            geometry(ifname, config.frame_size, frame_block, config.tx_ring_bytes)?
        } else {
            Geometry {
                block_size: frame_block,
                block_nr: 0,
                frame_size: config.frame_size as usize,
                frame_nr: 0,
            }
        };
        sys::setsockopt(&fd, sys::PACKET_VERSION, &version)
            .map_err(sys_err("setsockopt(PACKET_VERSION)"))?;
        sys::setsockopt(&fd, sys::PACKET_LOSS, &1i32)
            .map_err(sys_err("setsockopt(PACKET_LOSS)"))?;
        if config.qdisc_bypass {
            sys::setsockopt(&fd, sys::PACKET_QDISC_BYPASS, &1i32)
                .map_err(sys_err("setsockopt(PACKET_QDISC_BYPASS)"))?;
        }
        let ignore_outgoing = match sys::setsockopt(&fd, sys::PACKET_IGNORE_OUTGOING, &1i32) {
            // Kernels before 4.20 lack it; outgoing frames are then skipped by type.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => false,
            r => {
                r.map_err(sys_err("setsockopt(PACKET_IGNORE_OUTGOING)"))?;
                true
            }
        };
        // TPACKET_V2 reads a `tpacket_req`, the first four fields of `tpacket_req3`.
        let rx_req = rx_geo.req(tov);
        if version == sys::TPACKET_V2 {
            let req: [u32; 4] = [
                rx_req.tp_block_size,
                rx_req.tp_block_nr,
                rx_req.tp_frame_size,
                rx_req.tp_frame_nr,
            ];
            sys::setsockopt(&fd, sys::PACKET_RX_RING, &req)
                .map_err(sys_err("setsockopt(PACKET_RX_RING)"))?;
            let t = tx_geo.req(0);
            let req: [u32; 4] = [
                t.tp_block_size,
                t.tp_block_nr,
                t.tp_frame_size,
                t.tp_frame_nr,
            ];
            if ring_tx {
                sys::setsockopt(&fd, sys::PACKET_TX_RING, &req)
                    .map_err(sys_err("setsockopt(PACKET_TX_RING)"))?;
            }
        } else {
            sys::setsockopt(&fd, sys::PACKET_RX_RING, &rx_req)
                .map_err(sys_err("setsockopt(PACKET_RX_RING)"))?;
            // A V3 transmit ring is frame based and must not ask for block features.
            if ring_tx {
                sys::setsockopt(&fd, sys::PACKET_TX_RING, &tx_geo.req(0))
                    .map_err(sys_err("setsockopt(PACKET_TX_RING)"))?;
            }
        }
        if !ring_tx {
            // The send buffer holds what a TX ring would: frames the kernel has not
            // finished with yet (a veth in the same namespace releases them only when
            // the peer has received them). Beyond it a burst's tail is dropped and
            // counted. SO_SNDBUFFORCE passes the system's limit with CAP_NET_ADMIN.
            let bytes = config.tx_ring_bytes.min(i32::MAX as usize) as i32;
            if sys::setsockopt_at(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &bytes).is_err() {
                sys::setsockopt_at(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &bytes)
                    .map_err(sys_err("setsockopt(SO_SNDBUF)"))?;
            }
        }
        // With a TX ring every send goes through it, so the copy path has none.
        let tx_bytes = if ring_tx { tx_geo.bytes() } else { 0 };
        let map = sys::Mmap::rings(&fd, rx_geo.bytes() + tx_bytes)
            .map_err(sys_err("mmap(PACKET_RX_RING + PACKET_TX_RING)"))?;
        sys::bind(&fd, ifindex).map_err(sys_err("bind"))?;
        if let Some(f) = &config.fanout {
            let kind = match f.mode {
                FanoutMode::Hash => sys::PACKET_FANOUT_HASH,
                FanoutMode::Cbpf(_) => sys::PACKET_FANOUT_CBPF,
            };
            let flags = if ignore_outgoing {
                sys::PACKET_FANOUT_FLAG_IGNORE_OUTGOING
            } else {
                0
            };
            let arg: u32 = u32::from(f.group_id) | ((kind | flags) << 16);
            sys::setsockopt(&fd, sys::PACKET_FANOUT, &arg)
                .map_err(sys_err("setsockopt(PACKET_FANOUT)"))?;
            if let FanoutMode::Cbpf(prog) = &f.mode {
                let fprog = libc::sock_fprog {
                    len: prog.len() as u16,
                    filter: prog.as_ptr() as *mut libc::sock_filter,
                };
                // The kernel copies the program during the call; `prog` outlives it.
                sys::setsockopt(&fd, sys::PACKET_FANOUT_DATA, &fprog)
                    .map_err(sys_err("setsockopt(PACKET_FANOUT_DATA)"))?;
            }
        }
        let mac = MacAddr(sys::hwaddr(&fd, ifname).map_err(sys_err("ioctl(SIOCGIFHWADDR)"))?);
        let mtu = sys::mtu(&fd, ifname).map_err(sys_err("ioctl(SIOCGIFMTU)"))?;
        let ring = Arc::new(RingMemory { map, fd });
        let max_tx_len = if ring_tx {
            (mtu + 14 + 4).min(tx_geo.frame_size - tx_data_offset)
        } else {
            (mtu + 14 + 4).min(MAX_FRAME)
        };

        Ok(AfPacketPort {
            name,
            mac,
            mtu,
            ifindex,
            version: config.rx_ring,
            ring_owner: ring.clone(),
            ring,
            lent: vec![
                false;
                if version == sys::TPACKET_V2 {
                    rx_geo.frame_nr
                } else {
                    0
                }
            ],
            lent_count: 0,
            lend_pool: None,
            rx_geo,
            rx: match config.rx_ring {
                RxRing::V2 => RxCursor::V2 { head: 0 },
                RxRing::V3 { .. } => RxCursor::V3 {
                    block: 0,
                    open: false,
                    left: 0,
                    next: 0,
                },
            },
            tx_path,
            tx_geo,
            tx_head: 0,
            tx_tail: 0,
            tx_inflight: 0,
            tx_data_offset,
            max_tx_len,
            counters: PortCounters::new_shared(),
            csum_partial: Counter::default(),
            tx_kick_errors: Counter::default(),
            tx_kick_pending: false,
            kernel_drops: 0,
            stats_interval: config.stats_interval.max(1),
            calls_since_stats: 0,
            steering: fanout_steering(config.fanout.as_ref()),
        })
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The receive ring version in use.
    pub fn rx_ring(&self) -> RxRing {
        self.version
    }

    /// Frames received with `TP_STATUS_CSUMNOTREADY` (L4 checksum left to offload).
    pub fn csum_partial_frames(&self) -> u64 {
        self.csum_partial.get()
    }

    /// Transmit kicks (`sendto`) that failed with something other than "try again";
    /// the frames stay queued in the ring and leave with the next kick.
    pub fn tx_kick_errors(&self) -> u64 {
        self.tx_kick_errors.get()
    }

    /// Longest frame [`Port::tx_burst`] sends: MTU plus an Ethernet header and one
    /// 802.1Q tag (4 bytes less for an untagged frame), or the transmit slot's room if
    /// smaller.
    pub fn max_tx_len(&self) -> usize {
        self.max_tx_len
    }

    /// Reads the kernel's drop counter now (normally done every
    /// [`AfPacketConfig::stats_interval`] receive calls) and adds new drops to
    /// [`PortDrop::RxRingFull`]. Returns the total of kernel drops so far.
    pub fn poll_kernel_stats(&mut self) -> u64 {
        self.calls_since_stats = 0;
        // The kernel resets its figures on every read, so each read is a delta.
        if let Ok(st) = sys::packet_statistics(&self.ring.fd) {
            if st.tp_drops > 0 {
                self.kernel_drops += u64::from(st.tp_drops);
                self.counters
                    .count_drop(PortDrop::RxRingFull, u64::from(st.tp_drops));
            }
        }
        self.kernel_drops
    }

    /// The status word of the receive-ring slot or block header at `offset`.
    #[inline]
    fn rx_status(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= self.rx_geo.bytes() && offset & 3 == 0);
        debug_assert!(self.rx_geo.bytes() <= self.ring.map.len());
        // SAFETY: `offset` is inside the RX ring (checked by construction of the
        // cursor, which only walks slot and block starts) and 4-aligned (slots and
        // blocks are 16-aligned, status words sit at 0 or 8). The kernel accesses the
        // word concurrently, which is why it is only ever used as an atomic.
        unsafe { &*(self.ring.map.base().add(offset) as *const AtomicU32) }
    }

    /// Reads the header of the V2 frame slot at `off` (its status is TP_STATUS_USER).
    #[inline]
    fn rx_frame_v2(&self, off: usize) -> RxFrame {
        // SAFETY: the slot at `off` lies inside the RX ring, is 16-aligned, and is owned
        // by user space (status USER, read with Acquire), so the kernel does not write
        // its header or the `sockaddr_ll` after it while we read.
        let (h, pkttype) = unsafe {
            let p = self.ring.map.base().add(off);
            let h = ptr::read_volatile(p as *const sys::Tpacket2Hdr);
            let sll = sys::tpacket_align(std::mem::size_of::<sys::Tpacket2Hdr>());
            (h, ptr::read_volatile(p.add(sll + sys::SLL_PKTTYPE_OFFSET)))
        };
        RxFrame {
            status: h.tp_status,
            len: h.tp_len,
            snaplen: h.tp_snaplen,
            mac: off + h.tp_mac as usize,
            vlan_tci: h.tp_vlan_tci,
            vlan_tpid: h.tp_vlan_tpid,
            pkttype,
            stamp: stamp_ns(h.tp_sec, h.tp_nsec),
        }
    }

    /// Reads the header of the V3 frame at `off` inside an open (user-owned) block.
    #[inline]
    fn rx_frame_v3(&self, off: usize) -> (RxFrame, u32) {
        // SAFETY: `off` points at a frame header inside a block whose status is USER
        // (read with Acquire), checked by the caller to leave room for the header; the
        // kernel does not touch the block until we hand it back.
        let (h, pkttype) = unsafe {
            let p = self.ring.map.base().add(off);
            let h = ptr::read_unaligned(p as *const sys::Tpacket3Hdr);
            let sll = sys::tpacket_align(std::mem::size_of::<sys::Tpacket3Hdr>());
            (h, ptr::read_volatile(p.add(sll + sys::SLL_PKTTYPE_OFFSET)))
        };
        (
            RxFrame {
                status: h.tp_status,
                len: h.tp_len,
                snaplen: h.tp_snaplen,
                mac: off + h.tp_mac as usize,
                vlan_tci: h.tp_vlan_tci as u16,
                vlan_tpid: h.tp_vlan_tpid,
                pkttype,
                stamp: stamp_ns(h.tp_sec, h.tp_nsec),
            },
            h.tp_next_offset,
        )
    }

    /// Copies one received frame (ending before `hi` in the mapping) into a packet from
    /// `pool`, or counts why not.
    #[inline]
    fn deliver(
        &self,
        f: &RxFrame,
        hi: usize,
        pool: &PacketPool,
        clock: &mut RealtimeToMonotonic,
        out: &mut Burst,
    ) {
        if f.pkttype == sys::PACKET_OUTGOING {
            return;
        }
        let snap = f.snaplen as usize;
        let tagged = f.status & sys::TP_STATUS_VLAN_VALID != 0;
        let total = snap + if tagged { 4 } else { 0 };
        if f.snaplen < f.len || total > MAX_FRAME || f.mac + snap > hi || (tagged && snap < 12) {
            self.counters.count_drop(PortDrop::RxTooBig, 1);
            return;
        }
        let Some(mut pkt) = pool.alloc() else {
            self.counters.count_drop(PortDrop::RxNoBuffer, 1);
            return;
        };
        pkt.set_len(total);
        let dst = pkt.data_mut();
        // SAFETY: `f.mac .. f.mac + snap` lies inside the mapping (checked against `hi`,
        // the end of the slot or block) in a slot user space owns; `dst` has `total`
        // bytes, which is `snap` (+ 4 for the tag, written by hand in between).
        unsafe {
            let src = self.ring.map.base().add(f.mac);
            if tagged {
                ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), 12);
                let tpid = if f.status & sys::TP_STATUS_VLAN_TPID_VALID != 0 && f.vlan_tpid != 0 {
                    f.vlan_tpid
                } else {
                    0x8100
                };
                dst[12..14].copy_from_slice(&tpid.to_be_bytes());
                dst[14..16].copy_from_slice(&f.vlan_tci.to_be_bytes());
                ptr::copy_nonoverlapping(src.add(12), dst.as_mut_ptr().add(16), snap - 12);
            } else {
                ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), snap);
            }
        }
        pkt.meta.rx_time = clock.convert(f.stamp);
        if f.status & sys::TP_STATUS_CSUMNOTREADY != 0 {
            pkt.meta.l4_csum_partial = true;
            self.csum_partial.inc();
        }
        self.counters.rx(total);
        out.push(pkt);
    }

    /// The pool region of the receive ring when its frames may be lent to `pool`: the
    /// first pool this port received into (lending to one pool only, so every lent
    /// slot comes back through it). Hands the slots whose packets are gone back to the
    /// kernel.
    fn lend_region(&mut self, pool: &PacketPool) -> Option<RegionId> {
        if self.lent.is_empty() || *self.lend_pool.get_or_insert(pool.key()) != pool.key() {
            return None;
        }
        let base = NonNull::new(self.ring.map.base())?;
        // SAFETY: the RX ring (the mapping's first `rx_geo.bytes()`) stays mapped while
        // `ring_owner` lives, which the pool keeps. Its frames are the slots past their
        // headers (`TPACKET2_HDRLEN`), each ending where its slot ends; none is given as
        // free: a slot is lent (`frame_packet`) only while user space owns it, and
        // comes back through the free list when its packet goes.
        let r = unsafe {
            pool.register_region(
                base,
                self.rx_geo.bytes(),
                self.rx_geo.frame_size - sys::TPACKET2_HDRLEN,
                &[],
                &self.ring_owner,
            )
        };
        while let Some(frame) = pool.take_frame(r) {
            let slot = frame as usize - sys::TPACKET2_HDRLEN;
            let i = self.rx_geo.frame_index(slot);
            if self.lent.get(i) == Some(&true) {
                self.lent[i] = false;
                self.lent_count -= 1;
                self.rx_status(slot)
                    .store(sys::TP_STATUS_KERNEL, Ordering::Release);
            }
        }
        Some(r)
    }

    /// Lends the V2 slot `head` at `off`, holding frame `f`, to `pool` as a packet (no
    /// copy); the slot goes back to the kernel when the packet goes. False for a frame
    /// that must be copied or skipped instead (outgoing, re-tagged, truncated).
    #[allow(clippy::too_many_arguments)]
    fn lend(
        &mut self,
        r: RegionId,
        f: &RxFrame,
        off: usize,
        head: usize,
        pool: &PacketPool,
        clock: &mut RealtimeToMonotonic,
        out: &mut Burst,
    ) -> bool {
        let snap = f.snaplen as usize;
        let mac = f.mac - off;
        if f.pkttype == sys::PACKET_OUTGOING
            || f.status & sys::TP_STATUS_VLAN_VALID != 0
            || f.snaplen < f.len
            || snap > MAX_FRAME
            || mac < sys::TPACKET2_HDRLEN
            || mac + snap > self.rx_geo.frame_size
        {
            return false;
        }
        // SAFETY: the slot is user space's (status USER) and not lent (checked by the
        // caller), so no packet backs it; its frame starts at the slot's
        // `TPACKET2_HDRLEN` and the frame's bytes lie within the slot (checked above).
        let mut pkt = unsafe {
            pool.frame_packet(
                r,
                (off + sys::TPACKET2_HDRLEN) as u64,
                mac - sys::TPACKET2_HDRLEN,
                snap,
            )
        };
        pkt.meta.rx_time = clock.convert(f.stamp);
        if f.status & sys::TP_STATUS_CSUMNOTREADY != 0 {
            pkt.meta.l4_csum_partial = true;
            self.csum_partial.inc();
        }
        self.counters.rx(snap);
        self.counters.rx_in_place.inc();
        self.lent[head] = true;
        self.lent_count += 1;
        out.push(pkt);
        true
    }

    fn rx_v2(&mut self, mut head: usize, pool: &PacketPool, out: &mut Burst) -> usize {
        let before = out.len();
        let mut clock = RealtimeToMonotonic::new();
        let region = self.lend_region(pool);
        // Frames skipped (outgoing, too big, no buffer) also consume the budget so one
        // call stays bounded.
        for _ in 0..out.capacity() - out.len() {
            if self.lent[head] {
                // Our own frame, still held: the kernel cannot fill this slot either.
                break;
            }
            let off = self.rx_geo.frame_offset(head);
            let status = self.rx_status(off);
            if status.load(Ordering::Acquire) & sys::TP_STATUS_USER == 0 {
                break;
            }
            let f = self.rx_frame_v2(off);
            // At most half the ring is lent: past that (packets held somewhere), frames
            // are copied and their slots go back at once, so the kernel keeps room.
            let lent = match region {
                Some(r) if self.lent_count < self.rx_geo.frame_nr / 2 => {
                    self.lend(r, &f, off, head, pool, &mut clock, out)
                }
                _ => false,
            };
            if !lent {
                self.deliver(&f, off + self.rx_geo.frame_size, pool, &mut clock, out);
                self.rx_status(off)
                    .store(sys::TP_STATUS_KERNEL, Ordering::Release);
            }
            head = (head + 1) % self.rx_geo.frame_nr;
            if out.is_full() {
                break;
            }
        }
        self.rx = RxCursor::V2 { head };
        out.len() - before
    }

    fn rx_v3(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        let RxCursor::V3 {
            mut block,
            mut open,
            mut left,
            mut next,
        } = self.rx
        else {
            return 0;
        };
        let before = out.len();
        let mut clock = RealtimeToMonotonic::new();
        let bs = self.rx_geo.block_size;
        let mut budget = out.capacity() - out.len();
        while budget > 0 && !out.is_full() {
            let start = block * bs;
            if !open {
                if self.rx_status(start + 8).load(Ordering::Acquire) & sys::TP_STATUS_USER == 0 {
                    break;
                }
                // SAFETY: the block at `start` is user-owned (status USER, Acquire) and
                // begins with a `tpacket_block_desc`.
                let bd = unsafe {
                    ptr::read_volatile(self.ring.map.base().add(start) as *const sys::BlockDesc)
                };
                open = true;
                left = bd.num_pkts;
                next = bd.offset_to_first_pkt as usize;
            }
            if left > 0 && next + std::mem::size_of::<sys::Tpacket3Hdr>() <= bs {
                let (f, step) = self.rx_frame_v3(start + next);
                self.deliver(&f, start + bs, pool, &mut clock, out);
                budget -= 1;
                left -= 1;
                next += step as usize;
            } else {
                left = 0;
            }
            if left == 0 {
                self.rx_status(start + 8)
                    .store(sys::TP_STATUS_KERNEL, Ordering::Release);
                open = false;
                block = (block + 1) % self.rx_geo.block_nr;
            }
        }
        self.rx = RxCursor::V3 {
            block,
            open,
            left,
            next,
        };
        out.len() - before
    }

    /// True when the next receive slot or block holds frames.
    fn rx_ready(&self) -> bool {
        match self.rx {
            RxCursor::V2 { head } => {
                !self.lent[head]
                    && self
                        .rx_status(self.rx_geo.frame_offset(head))
                        .load(Ordering::Acquire)
                        & sys::TP_STATUS_USER
                        != 0
            }
            RxCursor::V3 { block, open, .. } => {
                open || self
                    .rx_status(block * self.rx_geo.block_size + 8)
                    .load(Ordering::Acquire)
                    & sys::TP_STATUS_USER
                    != 0
            }
        }
    }

    /// Receive slots lent to packets now (TPACKET_V2; slots whose packets are gone
    /// count until the next [`Port::rx_burst`] hands them back).
    pub fn lent_frames(&self) -> usize {
        self.lent_count
    }

    /// The transmit path in use: [`TxPath::Ring`] or [`TxPath::Copy`], never `Auto`.
    pub fn transmit_path(&self) -> TxPath {
        self.tx_path
    }

    /// Asks the kernel to send the TX ring's pending slots (one system call).
    fn kick_tx(&mut self) {
        self.counters.tx_kicks.inc();
        // SAFETY: a null buffer of length 0 with no address is the documented way to
        // make the kernel send the TX ring's pending slots; no memory is passed.
        let rc = unsafe {
            libc::sendto(
                self.ring.fd.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        self.tx_kick_pending = false;
        if rc < 0 {
            let e = io::Error::last_os_error().raw_os_error();
            if matches!(
                e,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR)
            ) {
                self.tx_kick_pending = true;
            } else {
                self.tx_kick_errors.inc();
            }
        }
    }

    /// The status word of transmit slot `i`, and the slot's offset in the mapping.
    #[inline]
    fn tx_slot(&self, i: usize) -> (&AtomicU32, usize) {
        let off = self.rx_geo.bytes() + self.tx_geo.frame_offset(i);
        let status_at = match self.version {
            RxRing::V2 => std::mem::offset_of!(sys::Tpacket2Hdr, tp_status),
            RxRing::V3 { .. } => std::mem::offset_of!(sys::Tpacket3Hdr, tp_status),
        };
        // SAFETY: slot `i < frame_nr` lies inside the TX ring, which follows the RX ring
        // in the mapping; the status word is 4-aligned in a 16-aligned slot and shared
        // with the kernel, so it is only accessed atomically.
        let status = unsafe { &*(self.ring.map.base().add(off + status_at) as *const AtomicU32) };
        (status, off)
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn steering(&self) -> Steering {
        self.steering
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        self.calls_since_stats += 1;
        if self.calls_since_stats >= self.stats_interval {
            self.poll_kernel_stats();
        }
        let n = match self.rx {
            RxCursor::V2 { head } => self.rx_v2(head, pool, out),
            RxCursor::V3 { .. } => self.rx_v3(pool, out),
        };
        if n > 0 {
            self.counters.rx_bursts.inc();
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        match self.tx_path {
            TxPath::Copy => self.tx_copy(pkts),
            _ => self.tx_ring(pkts),
        }
    }

    fn tx_path(&self) -> &'static str {
        match self.tx_path {
            TxPath::Copy => "copy",
            _ => "ring",
        }
    }

    fn tx_pending(&mut self) -> usize {
        if self.tx_path == TxPath::Copy {
            // `sendmmsg` returns once the kernel holds its copies: nothing waits here.
            return 0;
        }
        self.tx_ring_pending()
    }

    fn wait_rx(&mut self, timeout: Duration) {
        if self.rx_ready() {
            return;
        }
        // One ppoll on the socket (errors are reported whatever the events asked).
        crate::wait::wait_readable(&[self.ring.fd.as_raw_fd()], Some(timeout));
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.ring.fd.as_raw_fd())
    }
}

impl AfPacketPort {
    /// Whether the kernel will take frame `p`; counts the drop if not.
    fn tx_len_ok(&self, p: &Packet) -> bool {
        let len = p.len();
        // The kernel allows the 4 extra bytes only to frames carrying an 802.1Q tag.
        let tagged = p.data().get(12..14) == Some(&[0x81, 0x00]);
        if len > self.max_tx_len - if tagged { 0 } else { 4 } {
            self.counters.count_drop(PortDrop::TxTooBig, 1);
            return false;
        }
        if len < 14 {
            // Shorter than an Ethernet header: the kernel would refuse it.
            self.counters.count_drop(PortDrop::TxError, 1);
            return false;
        }
        true
    }

    /// [`TxPath::Copy`]: one `sendmmsg` for the burst, from the packets' buffers.
    fn tx_copy(&mut self, pkts: &mut Burst) -> usize {
        let mut iov: [libc::iovec; BURST_SIZE] = [libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        }; BURST_SIZE];
        let mut n = 0;
        pkts.retain(|p| {
            if !self.tx_len_ok(p) {
                return false;
            }
            iov[n] = libc::iovec {
                iov_base: p.data().as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
            true
        });
        if n == 0 {
            return 0;
        }
        // SAFETY: an all-zero `mmsghdr` is a valid value of this plain C struct (no
        // address, no control data).
        let mut msgs: [libc::mmsghdr; BURST_SIZE] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()).take(n) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        self.counters.tx_kicks.inc();
        // SAFETY: `msgs[..n]` each point at one iovec of `iov`, which points at the
        // data of a packet still held in `pkts`; all of them outlive the call, and the
        // kernel only reads them. A bound packet socket needs no address.
        let rc = unsafe {
            libc::sendmmsg(
                self.ring.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = if rc < 0 { 0 } else { rc as usize };
        if sent < n {
            // The kernel stops at the first frame it refuses; the tail is dropped, as
            // on a full ring, so frames never overtake each other.
            let e = if rc < 0 {
                io::Error::last_os_error().raw_os_error()
            } else {
                None
            };
            let why = match e {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | None => PortDrop::TxRingFull,
                _ => {
                    self.tx_kick_errors.inc();
                    PortDrop::TxError
                }
            };
            self.counters.count_drop(why, (n - sent) as u64);
        }
        for p in pkts.drain(..).take(sent) {
            self.counters.tx(p.len());
        }
        pkts.clear();
        sent
    }

    /// [`TxPath::Ring`]: copies the burst into the TX ring and kicks it once.
    fn tx_ring(&mut self, pkts: &mut Burst) -> usize {
        let mut queued = 0;
        let mut ring_full = false;
        for p in pkts.drain(..) {
            if !self.tx_len_ok(&p) {
                continue;
            }
            let len = p.len();
            let (status, off) = self.tx_slot(self.tx_head);
            // Once the ring is full the rest of the burst is dropped too, even if a slot
            // frees meanwhile: what is dropped is always the burst's tail, so frames
            // never overtake each other and a sender knows which ones did not go.
            if ring_full || status.load(Ordering::Acquire) != sys::TP_STATUS_AVAILABLE {
                self.counters.count_drop(PortDrop::TxRingFull, 1);
                ring_full = true;
                continue;
            }
            // SAFETY: the slot at `off` is inside the TX ring and AVAILABLE, so the kernel
            // does not read it until we set SEND_REQUEST below (with Release ordering,
            // after these writes); `len` fits after the header (checked against
            // `max_tx_len`, at most the slot size minus the data offset).
            unsafe {
                let slot = self.ring.map.base().add(off);
                ptr::copy_nonoverlapping(p.data().as_ptr(), slot.add(self.tx_data_offset), len);
                match self.version {
                    RxRing::V2 => {
                        let h = slot as *mut sys::Tpacket2Hdr;
                        ptr::write_volatile(ptr::addr_of_mut!((*h).tp_len), len as u32);
                        ptr::write_volatile(ptr::addr_of_mut!((*h).tp_snaplen), len as u32);
                    }
                    RxRing::V3 { .. } => {
                        let h = slot as *mut sys::Tpacket3Hdr;
                        ptr::write_volatile(ptr::addr_of_mut!((*h).tp_next_offset), 0);
                        ptr::write_volatile(ptr::addr_of_mut!((*h).tp_len), len as u32);
                        ptr::write_volatile(ptr::addr_of_mut!((*h).tp_snaplen), len as u32);
                    }
                }
            }
            status.store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx_head = (self.tx_head + 1) % self.tx_geo.frame_nr;
            self.tx_inflight += 1;
            self.counters.tx(len);
            queued += 1;
        }
        // A full ring or a kick that left frames behind means queued frames are waiting
        // for the kernel: kick even when this burst added none, or they wait forever.
        if queued > 0 || ring_full || self.tx_kick_pending {
            self.kick_tx();
        }
        queued
    }

    /// Frames of the TX ring not sent yet (kicks the ring again if any).
    fn tx_ring_pending(&mut self) -> usize {
        // The kernel sends the ring's frames in order: the slots handed to it that are
        // available again are the oldest ones; only those from the oldest still busy to
        // the head are looked at (not the whole ring, at every nap of the worker).
        while self.tx_inflight > 0
            && self.tx_slot(self.tx_tail).0.load(Ordering::Acquire) == sys::TP_STATUS_AVAILABLE
        {
            self.tx_tail = (self.tx_tail + 1) % self.tx_geo.frame_nr;
            self.tx_inflight -= 1;
        }
        let pending = (0..self.tx_inflight)
            .filter(|&k| {
                let i = (self.tx_tail + k) % self.tx_geo.frame_nr;
                self.tx_slot(i).0.load(Ordering::Acquire) != sys::TP_STATUS_AVAILABLE
            })
            .count();
        if pending > 0 {
            self.kick_tx();
        }
        pending
    }
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .field("rx_ring", &self.version)
            .field("rx_frames", &self.rx_geo.frame_nr)
            .field("tx_frames", &self.tx_geo.frame_nr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked() {
        let g = geometry("x", 2048, 64 << 10, 4 << 20).unwrap();
        assert_eq!((g.block_nr, g.frame_nr), (64, 2048));
        assert_eq!(g.frame_offset(33), 64 << 10 | 2048);
        assert!(geometry("x", 2000, 64 << 10, 4 << 20).is_err());
        assert!(geometry("x", 2048, 3000, 4 << 20).is_err());
        let e = geometry("lb-c", 2048, 64 << 10, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lb-c: invalid AF_PACKET configuration"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_interface_the_call_and_a_hint() {
        let e = AfPacketError::Sys {
            ifname: "lb-c".into(),
            call: "setsockopt(PACKET_RX_RING)",
            hint: hint(
                "setsockopt(PACKET_RX_RING)",
                &io::Error::from_raw_os_error(libc::EPERM),
            ),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("lb-c: setsockopt(PACKET_RX_RING) failed: "),
            "{s}"
        );
        assert!(
            s.ends_with("(are you root? AF_PACKET needs CAP_NET_RAW)"),
            "{s}"
        );
    }

    #[test]
    fn missing_interfaces_are_named() {
        let e = AfPacketPort::open("rgt-no-such0", &AfPacketConfig::default()).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("rgt-no-such0: if_nametoindex failed"), "{s}");
        let e = AfPacketPort::open("a-name-far-too-long", &AfPacketConfig::default()).unwrap_err();
        assert!(matches!(e, AfPacketError::Config { .. }), "{e}");
        let empty = AfPacketConfig {
            fanout: Some(Fanout {
                group_id: 1,
                mode: FanoutMode::Cbpf(Vec::new()),
            }),
            ..AfPacketConfig::default()
        };
        let e = AfPacketPort::open("lo", &empty).unwrap_err().to_string();
        assert!(e.contains("1 to 4096 instructions"), "{e}");
    }
}
