//! `afxdp`: a [`Port`] on one queue of a Linux interface through an AF_XDP socket.
//!
//! One [`AfXdpPort`] is one `AF_XDP` socket bound to one receive/transmit queue of an
//! interface, in the network namespace of the thread that opens it, with its own UMEM
//! (the frame memory the kernel and user space share) and its four rings:
//!
//! - the **fill** ring hands empty UMEM frames to the kernel for receiving, the **RX**
//!   ring hands back the filled ones. [`Port::rx_burst`] lends each received frame to
//!   the pipelines as a [`Packet`] backed by the frame itself (no copy), and tops the
//!   fill ring up with free frames of the worker's pool (see below);
//! - the **TX** ring takes frames to send, the **completion** ring returns them once
//!   sent. [`Port::tx_burst`] queues the whole burst and makes at most one `sendto`
//!   call ("kick") for it;
//! - `XDP_USE_NEED_WAKEUP`: the kernel says (a flag in the ring) when it needs a system
//!   call to make progress, so a kick is only made when asked for (always for TX in copy
//!   mode, where the kernel sends from inside `sendto`). A kick that left frames in the
//!   ring (`EAGAIN`, `EBUSY`, `ENOBUFS`) or a burst that found no free TX frame is kicked
//!   again on the next burst even if that burst queues nothing, and
//!   [`Port::tx_pending`] kicks while frames wait.
//!
//! The frames of one interface reach the sockets through Rouge's own XDP program
//! ([`XdpProgram`], six eBPF instructions loaded with the raw `bpf()` system call):
//! `bpf_redirect_map(xskmap, ctx->rx_queue_index, XDP_PASS)`. Every queue that has a
//! socket in the map delivers to it; a queue without one passes its frames to the
//! kernel's stack. The program is attached with a BPF link (`BPF_LINK_CREATE`) that the
//! ports of the interface share: when the last of them is dropped (or the process
//! exits) the link closes and the program is detached.
//!
//! # Copy and zero-copy
//!
//! [`BindMode::Auto`] binds with `XDP_ZEROCOPY` first (the NIC DMAs straight into the
//! UMEM) and falls back to `XDP_COPY` when the driver does not offer it (`EOPNOTSUPP`,
//! as on veth). [`AfXdpPort::zero_copy`] tells which one was used. In copy mode the
//! kernel copies each frame into the UMEM after a 256-byte headroom.
//!
//! # Forwarding in place
//!
//! [`AfXdpPort::open_group`] opens queue `q` of several interfaces on one UMEM
//! (`XDP_SHARED_UMEM`; each socket keeps its own fill and completion rings). The UMEM
//! is cut into shares, one per socket: the frames on its fill ring, frames of its own
//! for transmitting copies, and spares. At its first receive call with a pool, a port
//! registers the UMEM with that pool as a region (`PacketPool`'s crate-internal region
//! API) and gives it its spares; from then on the pool keeps the free frames:
//!
//! - a received frame becomes a packet backed by its UMEM frame; dropping the packet
//!   gives the frame back to the pool, and each receive call takes as many free frames
//!   from the pool for the fill ring as the kernel took from it;
//! - [`Port::tx_burst`] puts a packet backed by a frame of its own UMEM (received on any
//!   socket of the group) on the TX ring where it lies (`tx_in_place` in the port's
//!   counters); the kernel returns it on the completion ring, and the next receive call
//!   gives it back to the pool. Any other packet (made by the pipelines, received on
//!   another driver or group) is copied into one of the socket's own TX frames;
//! - when the worker holds every free frame (packets queued in the pipelines), the fill
//!   ring runs dry and the kernel drops what arrives (counted, below, and in
//!   [`AfXdpPort::fill_short`]) until frames come back. The spares (as many as the fill
//!   ring's depth per socket) are what the pipelines can hold without that happening.
//!
//! A frame handed to another worker is copied into the hand-off slot (a UMEM frame
//! belongs to the ports of one worker). A port serves one pool: frames it took back
//! from the kernel go to the pool of its receive calls.
//!
//! What it saves, measured on veth (copy mode, kernel 6.18, 2 busy cores, release
//! build; the ignored test `receive_copy_cost` in `drivers/tests/afxdp.rs`, bursts of
//! 32, three runs each, typical value):
//!
//! | frame   | `rx_burst` per frame, copying / in place | a copy alone | send + kernel + receive per frame |
//! |---------|------------------------------------------|--------------|-----------------------------------|
//! | 64 B    | 13 ns / 7.5 ns                           | 9 ns         | 1.2 µs (AF_PACKET: 1.8 µs)        |
//! | 1514 B  | 40 ns / 8 ns                             | 32 ns        | 1.5 µs (AF_PACKET: 2.0 µs)        |
//!
//! Forwarding saves the transmit copy too. Both copies were most of what the driver did
//! per frame in user space, but a few percent of a frame's whole cost on veth, where
//! the kernel's copy-mode receive and transmit dominate; on a zero-copy NIC, where the
//! kernel's share shrinks, forwarding in place is worth more.
//!
//! # Statistics
//!
//! The kernel's per-socket counters (`XDP_STATISTICS`, cumulative) are read every
//! [`AfXdpConfig::stats_interval`] receive calls and their growth is counted in the
//! port's drop counters: frames dropped because the RX ring was full, or because the
//! fill ring was empty (which, as every frame not on the fill ring is on the RX ring
//! or in the worker's hands for the length of one burst, also means the worker is
//! behind), as [`PortDrop::RxRingFull`]; TX descriptors the kernel refused as
//! [`PortDrop::TxError`]. [`AfXdpPort::poll_kernel_stats`] reads them on demand.
//!
//! # Several queues
//!
//! [`AfXdpPort::open_queues`] opens queues `0..n` of an interface at once (one socket
//! and one UMEM each, one program and map for all); each port then moves to its
//! worker. The kernel (or NIC) decides which queue a frame arrives on; steering frames
//! to the worker that owns their flow is not this driver's job.
//!
//! # Privileges
//!
//! Opening a port needs `CAP_NET_ADMIN`, `CAP_BPF` and `CAP_NET_RAW` (root in the test
//! bed) and a kernel with `CONFIG_XDP_SOCKETS`.

mod prog;
mod ring;
mod sys;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

pub use prog::{AttachMode, XdpProgram};
pub use sys::XdpStatistics;

#[cfg(doc)]
use crate::buf::Packet;
use crate::buf::{PacketPool, RegionId, MAX_FRAME};
use crate::port::{Burst, Counter, MacAddr, Port, PortCounters, PortDrop};

/// How a socket binds to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy where the driver offers it, else copy mode.
    #[default]
    Auto,
    /// Copy mode only (`XDP_COPY`).
    Copy,
    /// Zero-copy only (`XDP_ZEROCOPY`); opening fails where the driver lacks it.
    ZeroCopy,
}

/// How to open [`AfXdpPort`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Copy or zero-copy.
    pub bind: BindMode,
    /// Native or generic XDP for the redirect program.
    pub attach: AttachMode,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// UMEM frames for receiving; also the size of the fill and RX rings (a power of
    /// two, at least 8).
    pub rx_frames: u32,
    /// UMEM frames for transmitting; also the size of the TX and completion rings (a
    /// power of two, at least 8).
    pub tx_frames: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP` and make system calls only when the kernel asks.
    /// Without it every transmit burst is kicked.
    pub need_wakeup: bool,
    /// Receive calls between two reads of the kernel's counters (`XDP_STATISTICS`, a
    /// system call). At least 1.
    pub stats_interval: u32,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            bind: BindMode::Auto,
            attach: AttachMode::Auto,
            frame_size: 2048,
            rx_frames: 2048,
            tx_frames: 2048,
            need_wakeup: true,
            stats_interval: 1024,
        }
    }
}

/// Why an [`AfXdpPort`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The configuration cannot describe a socket.
    #[error("{ifname}: invalid AF_XDP configuration: {reason}")]
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
        /// The call, e.g. `bind(AF_XDP)`.
        call: &'static str,
        /// The operating system's error.
        source: io::Error,
        /// A hint on the usual cause (may be empty).
        hint: &'static str,
    },
}

fn hint(call: &str, err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (are you root? AF_XDP needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)"
        }
        Some(libc::EAFNOSUPPORT) => " (the kernel lacks CONFIG_XDP_SOCKETS)",
        Some(libc::ENODEV) | Some(libc::ENXIO) => {
            " (does the interface exist in this network namespace?)"
        }
        Some(libc::EINVAL) if call.starts_with("bind") => {
            " (is the queue id below the interface's number of queues? `ethtool -l`)"
        }
        Some(libc::EOPNOTSUPP) if call.starts_with("bind") => {
            " (the driver offers no zero-copy: use bind mode auto or copy)"
        }
        Some(libc::EBUSY) | Some(libc::EEXIST) if call.contains("LINK") => {
            " (another XDP program is attached to the interface: detach it with `ip link set dev IF xdp off`)"
        }
        Some(libc::EBUSY) => " (another socket is bound to this queue)",
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) => {
            " (not enough locked memory for the UMEM: lower rx_frames/tx_frames or raise RLIMIT_MEMLOCK)"
        }
        _ => "",
    }
}

/// Maps a failed system call on `ifname` to an [`AfXdpError::Sys`] with its hint.
fn sys_err(ifname: &str) -> impl Fn(&'static str) -> Box<dyn FnOnce(io::Error) -> AfXdpError> {
    let ifname = ifname.to_string();
    move |call: &'static str| {
        let ifname = ifname.clone();
        Box::new(move |source: io::Error| AfXdpError::Sys {
            ifname,
            call,
            hint: hint(call, &source),
            source,
        })
    }
}

fn check_config(ifname: &str, c: &AfXdpConfig) -> Result<(), AfXdpError> {
    let bad = |reason: String| AfXdpError::Config {
        ifname: ifname.to_string(),
        reason,
    };
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(bad(format!(
            "interface names are 1 to {} bytes",
            libc::IFNAMSIZ - 1
        )));
    }
    if c.frame_size != 2048 && c.frame_size != 4096 {
        return Err(bad(format!(
            "frame_size {} must be 2048 or 4096",
            c.frame_size
        )));
    }
    for (what, n) in [("rx_frames", c.rx_frames), ("tx_frames", c.tx_frames)] {
        if !n.is_power_of_two() || !(8..=1 << 16).contains(&n) {
            return Err(bad(format!(
                "{what} {n} must be a power of two from 8 to 65536"
            )));
        }
    }
    if c.stats_interval == 0 {
        return Err(bad("stats_interval must be at least 1".into()));
    }
    Ok(())
}

/// The frame memory of one AF_XDP socket or of a group of them (queue `q` of several
/// interfaces, see [`AfXdpPort::open_group`]), shared with the kernel, and registered
/// with the pool of the worker that drives the sockets.
struct Umem {
    mmap: sys::Mmap,
}

// SAFETY: the mapping is plain memory; which thread may touch which frame is decided by
// frame ownership (the kernel's rings, the pool of one worker, the port that holds a
// frame), never by sharing: the `Umem` itself is only read for its address and length.
unsafe impl Send for Umem {}
// SAFETY: as above: `&Umem` gives access to nothing but the address and length.
unsafe impl Sync for Umem {}

/// An AF_XDP port: one socket with its rings on one queue of an interface, and the UMEM
/// it receives into and transmits from (its own, or shared with the same queue of other
/// interfaces). See the [module documentation](self).
pub struct AfXdpPort {
    name: String,
    mac: MacAddr,
    mtu: usize,
    queue: u32,
    zero_copy: bool,
    need_wakeup: bool,
    // Field order is drop order: rings, then the socket, then the UMEM, then the
    // program (detached when its last port goes).
    rx: ring::Ring<sys::XdpDesc>,
    fill: ring::Ring<u64>,
    tx: ring::Ring<sys::XdpDesc>,
    comp: ring::Ring<u64>,
    fd: OwnedFd,
    umem: Arc<Umem>,
    /// The same UMEM, as the owner a pool keeps for the region it registers.
    umem_owner: Arc<dyn std::any::Any + Send + Sync>,
    program: Arc<XdpProgram>,
    frame_size: u64,
    /// This socket's own transmit frames (the UMEM offsets `tx_reserve`), for packets
    /// that are not UMEM frames and must be copied: those neither queued nor in flight
    /// (capacity: `tx_frames`, never grown).
    tx_free: Vec<u64>,
    tx_reserve: std::ops::Range<u64>,
    /// Frames of the shared pool (received frames transmitted in place) the kernel has
    /// sent, to give back to the pool at the next receive call (capacity: `tx_frames`).
    tx_returned: Vec<u64>,
    /// Frames this port brings to the pool when it first registers the UMEM with it.
    spare: Vec<u64>,
    /// Entries the fill ring lacks (taken by the kernel, not yet replaced).
    fill_owed: u32,
    max_tx_len: usize,
    counters: Arc<PortCounters>,
    tx_kick_errors: Counter,
    fill_wakeups: Counter,
    fill_short: Counter,
    rx_invalid: Counter,
    /// The last kick left frames in the TX ring, or a burst found no free frame: kick
    /// again on the next burst even if it queues nothing.
    tx_kick_pending: bool,
    kernel: XdpStatistics,
    stats_interval: u32,
    calls_since_stats: u32,
}

// SAFETY: the port exclusively owns its socket and ring mappings, and the frames of its
// UMEM that are on its rings or in its lists; the raw pointers into them are only used
// through `&mut self` (ring words atomically), so moving the port to another thread is
// sound. It holds no handle on a pool (frames reach the pool only through the `&PacketPool`
// of a receive call). The shared `XdpProgram` is `Sync` (it only holds file descriptors).
// The port is not `Sync`.
unsafe impl Send for AfXdpPort {}

/// What one socket of a group is opened with.
struct SocketPlan<'a> {
    ifname: &'a str,
    ifindex: u32,
    mac: MacAddr,
    mtu: usize,
    program: &'a Arc<XdpProgram>,
}

impl AfXdpPort {
    /// Opens queue 0 of `ifname` (in the calling thread's network namespace).
    pub fn open(ifname: &str, config: &AfXdpConfig) -> Result<AfXdpPort, AfXdpError> {
        let mut v = Self::open_queues(ifname, 1, config)?;
        Ok(v.remove(0))
    }

    /// Opens queues `0..queues` of `ifname`, one port each (each with a UMEM of its
    /// own), sharing one XDP program.
    pub fn open_queues(
        ifname: &str,
        queues: u32,
        config: &AfXdpConfig,
    ) -> Result<Vec<AfXdpPort>, AfXdpError> {
        let mut v = Self::open_group(&[ifname], queues, config)?;
        Ok(v.remove(0))
    }

    /// Opens queues `0..queues` of every interface of `ifnames`: `result[i][q]` is queue
    /// `q` of interface `i`. The sockets of one queue index share one UMEM
    /// (`XDP_SHARED_UMEM`), so a worker that drives queue `q` of every interface
    /// forwards a frame from one to another without copying it: the frame it received
    /// is the frame it transmits.
    pub fn open_group(
        ifnames: &[&str],
        queues: u32,
        config: &AfXdpConfig,
    ) -> Result<Vec<Vec<AfXdpPort>>, AfXdpError> {
        let Some(first) = ifnames.first() else {
            return Ok(Vec::new());
        };
        for ifname in ifnames {
            check_config(ifname, config)?;
        }
        if queues == 0 || queues > 256 {
            return Err(AfXdpError::Config {
                ifname: first.to_string(),
                reason: format!("queues {queues} must be 1 to 256"),
            });
        }
        let mut plans = Vec::with_capacity(ifnames.len());
        let mut programs = Vec::with_capacity(ifnames.len());
        for ifname in ifnames {
            let err = sys_err(ifname);
            let ifindex =
                crate::afpacket::sys::ifindex(ifname).map_err(err("if_nametoindex"))? as u32;
            let (mac, mtu) = {
                let ctl =
                    crate::afpacket::sys::packet_socket().map_err(err("socket(AF_PACKET)"))?;
                (
                    MacAddr(
                        crate::afpacket::sys::hwaddr(&ctl, ifname)
                            .map_err(err("ioctl(SIOCGIFHWADDR)"))?,
                    ),
                    crate::afpacket::sys::mtu(&ctl, ifname).map_err(err("ioctl(SIOCGIFMTU)"))?,
                )
            };
            // A received frame starts after the kernel's 256-byte headroom and must fit
            // the rest of its UMEM frame (no multi-buffer frames), with a possible VLAN tag.
            let room = config.frame_size as usize - 256;
            if mtu + 18 > room {
                return Err(AfXdpError::Config {
                    ifname: ifname.to_string(),
                    reason: format!(
                        "the interface's MTU {mtu} needs frames of {} bytes but frame_size {} leaves {room} after the kernel's 256-byte headroom: use frame_size 4096 (MTU up to {}) or lower the MTU",
                        mtu + 18 + 256,
                        config.frame_size,
                        4096 - 256 - 18
                    ),
                });
            }
            programs.push(Arc::new(
                XdpProgram::load_and_attach(ifindex, queues, config.attach)
                    .map_err(|(call, e)| err(call)(e))?,
            ));
            plans.push((ifname, ifindex, mac, mtu));
        }
        let mut out: Vec<Vec<AfXdpPort>> = ifnames
            .iter()
            .map(|_| Vec::with_capacity(queues as usize))
            .collect();
        let sockets = ifnames.len() as u64;
        let (rx, tx) = (config.rx_frames as u64, config.tx_frames as u64);
        for q in 0..queues {
            // Per socket: `rx` frames on its fill ring, `tx` frames of its own for
            // copies, and `rx` spare frames for the pool (frames on the RX ring, in the
            // worker's hands, or on a TX ring in place while the fill ring is full).
            let frames = sockets * (2 * rx + tx);
            let mmap = sys::Mmap::anonymous((frames * config.frame_size as u64) as usize)
                .map_err(sys_err(first)("mmap(UMEM)"))?;
            let umem = Arc::new(Umem { mmap });
            let mut group: Vec<AfXdpPort> = Vec::with_capacity(plans.len());
            for (i, (&(ifname, ifindex, mac, mtu), program)) in
                plans.iter().zip(&programs).enumerate()
            {
                let plan = SocketPlan {
                    ifname,
                    ifindex,
                    mac,
                    mtu,
                    program,
                };
                let base = i as u64 * (2 * rx + tx);
                let owner = group.first().map(|p| &p.fd);
                let mut port = Self::open_socket(&plan, q, config, &umem, base, owner)?;
                // A socket sharing the UMEM runs in the mode its owner was bound in.
                port.zero_copy = group.first().map_or(port.zero_copy, |p| p.zero_copy);
                program
                    .set_socket(q, &port.fd)
                    .map_err(sys_err(ifname)("bpf(BPF_MAP_UPDATE_ELEM XSKMAP)"))?;
                group.push(port);
            }
            for (i, port) in group.into_iter().enumerate() {
                out[i].push(port);
            }
        }
        Ok(out)
    }

    /// Creates, sets up and binds the socket of queue `q`: frames `base ..` of `umem`
    /// are its share (fill ring, own TX frames, spares). With `owner`, the socket that
    /// registered `umem`, it binds to that UMEM; without, it registers it.
    fn open_socket(
        plan: &SocketPlan<'_>,
        q: u32,
        c: &AfXdpConfig,
        umem: &Arc<Umem>,
        base: u64,
        owner: Option<&OwnedFd>,
    ) -> Result<AfXdpPort, AfXdpError> {
        let err = sys_err(plan.ifname);
        let frame_size = c.frame_size as u64;
        let fd = sys::xdp_socket().map_err(err("socket(AF_XDP)"))?;
        if owner.is_none() {
            let reg = sys::XdpUmemReg {
                addr: umem.mmap.base() as u64,
                len: umem.mmap.len() as u64,
                chunk_size: c.frame_size,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            sys::setsockopt(&fd, sys::XDP_UMEM_REG, &reg)
                .map_err(err("setsockopt(XDP_UMEM_REG)"))?;
        }
        sys::setsockopt(&fd, sys::XDP_UMEM_FILL_RING, &c.rx_frames)
            .map_err(err("setsockopt(XDP_UMEM_FILL_RING)"))?;
        sys::setsockopt(&fd, sys::XDP_UMEM_COMPLETION_RING, &c.tx_frames)
            .map_err(err("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
        sys::setsockopt(&fd, sys::XDP_RX_RING, &c.rx_frames)
            .map_err(err("setsockopt(XDP_RX_RING)"))?;
        sys::setsockopt(&fd, sys::XDP_TX_RING, &c.tx_frames)
            .map_err(err("setsockopt(XDP_TX_RING)"))?;
        let off: sys::XdpMmapOffsets = sys::getsockopt(&fd, sys::XDP_MMAP_OFFSETS)
            .map_err(err("getsockopt(XDP_MMAP_OFFSETS)"))?;
        let rx = ring::Ring::map(&fd, &off.rx, c.rx_frames, sys::XDP_PGOFF_RX_RING, false)
            .map_err(err("mmap(XDP_RX_RING)"))?;
        let mut fill = ring::Ring::map(
            &fd,
            &off.fr,
            c.rx_frames,
            sys::XDP_UMEM_PGOFF_FILL_RING,
            true,
        )
        .map_err(err("mmap(XDP_UMEM_FILL_RING)"))?;
        let tx = ring::Ring::map(&fd, &off.tx, c.tx_frames, sys::XDP_PGOFF_TX_RING, true)
            .map_err(err("mmap(XDP_TX_RING)"))?;
        let comp = ring::Ring::map(
            &fd,
            &off.cr,
            c.tx_frames,
            sys::XDP_UMEM_PGOFF_COMPLETION_RING,
            false,
        )
        .map_err(err("mmap(XDP_UMEM_COMPLETION_RING)"))?;

        // This socket's share of the UMEM: `rx_frames` on the fill ring, then its own
        // `tx_frames` for copies, then `rx_frames` spares for the pool.
        let (rx_n, tx_n) = (c.rx_frames as u64, c.tx_frames as u64);
        for i in base..base + rx_n {
            fill.push(i * frame_size);
        }
        fill.submit();
        let tx_reserve = (base + rx_n) * frame_size..(base + rx_n + tx_n) * frame_size;
        let tx_free: Vec<u64> = (base + rx_n..base + rx_n + tx_n)
            .rev()
            .map(|i| i * frame_size)
            .collect();
        let spare: Vec<u64> = (base + rx_n + tx_n..base + 2 * rx_n + tx_n)
            .map(|i| i * frame_size)
            .collect();

        let zero_copy = if let Some(owner) = owner {
            // The UMEM's owner decided copy or zero-copy and need_wakeup for all.
            sys::bind(&fd, plan.ifindex, q, 0, Some(owner))
                .map_err(err("bind(AF_XDP, XDP_SHARED_UMEM)"))?;
            None
        } else {
            let wake = if c.need_wakeup {
                sys::XDP_USE_NEED_WAKEUP
            } else {
                0
            };
            Some(match c.bind {
                BindMode::Copy => {
                    sys::bind(&fd, plan.ifindex, q, sys::XDP_COPY | wake, None)
                        .map_err(err("bind(AF_XDP, XDP_COPY)"))?;
                    false
                }
                BindMode::ZeroCopy => {
                    sys::bind(&fd, plan.ifindex, q, sys::XDP_ZEROCOPY | wake, None)
                        .map_err(err("bind(AF_XDP, XDP_ZEROCOPY)"))?;
                    true
                }
                BindMode::Auto => {
                    match sys::bind(&fd, plan.ifindex, q, sys::XDP_ZEROCOPY | wake, None) {
                        Ok(()) => true,
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                            ) =>
                        {
                            sys::bind(&fd, plan.ifindex, q, sys::XDP_COPY | wake, None)
                                .map_err(err("bind(AF_XDP, XDP_COPY)"))?;
                            false
                        }
                        Err(e) => return Err(err("bind(AF_XDP, XDP_ZEROCOPY)")(e)),
                    }
                }
            })
        };
        let max_tx_len = (plan.mtu + 14 + 4).min(frame_size as usize);
        Ok(AfXdpPort {
            name: plan.ifname.to_string(),
            mac: plan.mac,
            mtu: plan.mtu,
            queue: q,
            zero_copy: zero_copy.unwrap_or(false),
            need_wakeup: c.need_wakeup,
            rx,
            fill,
            tx,
            comp,
            fd,
            umem: umem.clone(),
            umem_owner: umem.clone(),
            program: plan.program.clone(),
            frame_size,
            tx_free,
            tx_reserve,
            tx_returned: Vec::with_capacity(c.tx_frames as usize),
            spare,
            fill_owed: 0,
            max_tx_len,
            counters: PortCounters::new_shared(),
            tx_kick_errors: Counter::default(),
            fill_wakeups: Counter::default(),
            fill_short: Counter::default(),
            rx_invalid: Counter::default(),
            tx_kick_pending: false,
            kernel: XdpStatistics::default(),
            stats_interval: c.stats_interval,
            calls_since_stats: 0,
        })
    }

    /// Checks that this process can use AF_XDP at all: the kernel has
    /// `CONFIG_XDP_SOCKETS` and lets it create an AF_XDP socket and an `XSKMAP` (root, or
    /// `CAP_NET_RAW` and `CAP_BPF`). Opens nothing on any interface; for `rouge check`.
    /// The error says what is missing.
    pub fn check_support() -> Result<(), String> {
        if let Err(e) = sys::xdp_socket() {
            return Err(format!(
                "AF_XDP sockets are unavailable: socket(AF_XDP) failed: {e}{}",
                hint("socket(AF_XDP)", &e)
            ));
        }
        if let Err(e) = sys::xskmap_create(1) {
            return Err(format!(
                "BPF maps for AF_XDP are unavailable: bpf(BPF_MAP_CREATE XSKMAP) failed: {e}{}",
                hint("bpf(BPF_MAP_CREATE XSKMAP)", &e)
            ));
        }
        Ok(())
    }

    /// The queue this port is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// True when the socket is bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The XDP program (and link) this port's interface shares.
    pub fn program(&self) -> &Arc<XdpProgram> {
        &self.program
    }

    /// Largest frame [`Port::tx_burst`] sends (MTU + Ethernet header + one tag).
    pub fn max_tx_len(&self) -> usize {
        self.max_tx_len
    }

    /// Transmit kicks (`sendto`) made so far.
    pub fn tx_kicks(&self) -> u64 {
        self.counters.tx_kicks.get()
    }

    /// Transmit kicks that failed with an unexpected error.
    pub fn tx_kick_errors(&self) -> u64 {
        self.tx_kick_errors.get()
    }

    /// Wake-ups made because the kernel flagged the fill ring.
    pub fn fill_wakeups(&self) -> u64 {
        self.fill_wakeups.get()
    }

    /// RX descriptors that pointed outside the UMEM (dropped; a kernel bug if ever).
    pub fn rx_invalid(&self) -> u64 {
        self.rx_invalid.get()
    }

    /// Reads the kernel's counters (`XDP_STATISTICS`) now, counts their growth in the
    /// port's drop counters and returns them (cumulative since the socket opened).
    pub fn poll_kernel_stats(&mut self) -> XdpStatistics {
        self.calls_since_stats = 0;
        let Ok(now) = sys::getsockopt::<XdpStatistics>(&self.fd, sys::XDP_STATISTICS) else {
            return self.kernel;
        };
        let was = self.kernel;
        let grew = |now: u64, was: u64| now.saturating_sub(was);
        let rx_full =
            grew(now.rx_ring_full, was.rx_ring_full) + grew(now.rx_dropped, was.rx_dropped);
        self.counters.count_drop(PortDrop::RxRingFull, rx_full);
        self.counters.count_drop(
            PortDrop::TxError,
            grew(now.tx_invalid_descs, was.tx_invalid_descs),
        );
        self.kernel = now;
        now
    }

    /// Takes back the frames the kernel has sent: this socket's own copy frames to
    /// `tx_free`, frames transmitted in place to `tx_returned` (for the pool).
    fn reap_completions(&mut self) {
        // `tx_free` has room for every frame of the reserve, but `tx_returned` only
        // empties at a receive call: take no more than it can hold (the rest waits on
        // the completion ring, and a full one holds the kernel's sending back, losing
        // nothing).
        let room = (self.tx_returned.capacity() - self.tx_returned.len()) as u32;
        let n = self.comp.available(room);
        for _ in 0..n {
            let frame = self.comp.pop() & !(self.frame_size - 1);
            let list = if self.tx_reserve.contains(&frame) {
                &mut self.tx_free
            } else {
                &mut self.tx_returned
            };
            // Neither list grows past the capacity it was allocated with.
            if list.len() < list.capacity() {
                list.push(frame);
            }
        }
        if n > 0 {
            self.comp.release();
        }
    }

    /// Registers the UMEM with `pool` (once per pool; this port's spare frames join the
    /// pool's free frames the first time) and gives the pool the frames sent in place.
    fn region(&mut self, pool: &PacketPool) -> RegionId {
        let base = NonNull::new(self.umem.mmap.base()).expect("a mapping is never null");
        // SAFETY: the UMEM stays mapped while `umem_owner` lives, which the pool keeps;
        // the spare frames are this port's alone (on no ring, backing no packet) and are
        // handed over once (the list is emptied below); every one is a frame start.
        let r = unsafe {
            pool.register_region(
                base,
                self.umem.mmap.len(),
                self.frame_size as usize,
                &self.spare,
                &self.umem_owner,
            )
        };
        self.spare.clear();
        for f in self.tx_returned.drain(..) {
            pool.give_frame(r, f);
        }
        r
    }

    /// Frames of this port's UMEM in `pool`'s hands and free (for tests and the curious).
    pub fn pool_frames_free(&mut self, pool: &PacketPool) -> usize {
        let r = self.region(pool);
        pool.frames_free(r)
    }

    /// Times the fill ring could not be topped up because the pool had no free frame
    /// (the worker holds them all; the kernel drops frames meanwhile).
    pub fn fill_short(&self) -> u64 {
        self.fill_short.get()
    }

    /// Asks the kernel to send the TX ring's frames (one system call).
    fn kick_tx(&mut self) {
        self.counters.tx_kicks.inc();
        // SAFETY: a null buffer of length 0 with no address asks an AF_XDP socket to
        // process its TX ring; no memory is passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        self.tx_kick_pending = false;
        if rc < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)
                | Some(libc::EINTR) | Some(libc::ENETDOWN) => self.tx_kick_pending = true,
                _ => self.tx_kick_errors.inc(),
            }
        }
    }

    /// Wakes the kernel up to refill from the fill ring (zero-copy drivers ask for it).
    fn wake_fill(&mut self) {
        self.fill_wakeups.inc();
        // SAFETY: a zero-length receive with null buffers makes the kernel run the
        // socket's receive path; no memory is passed.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
                ptr::null_mut(),
            );
        }
    }
}

impl Port for AfXdpPort {
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
        if self.calls_since_stats >= self.stats_interval {
            self.poll_kernel_stats();
        }
        self.reap_completions();
        let r = self.region(pool);
        let before = out.len();
        let n = self.rx.available((out.capacity() - out.len()) as u32);
        let umem_len = self.umem.mmap.len() as u64;
        for _ in 0..n {
            let d = self.rx.pop();
            let len = d.len as usize;
            let chunk = d.addr & !(self.frame_size - 1);
            self.fill_owed += 1;
            if d.addr + len as u64 > chunk + self.frame_size || chunk >= umem_len {
                // Never seen: a kernel bug. The frame (if one) is lost rather than reused.
                self.rx_invalid.inc();
            } else if len > MAX_FRAME {
                self.counters.count_drop(PortDrop::RxTooBig, 1);
                pool.give_frame(r, chunk);
            } else {
                // SAFETY: the kernel handed `chunk` back through the RX ring: it is a
                // frame of this UMEM (checked above) that the port put on its fill ring,
                // now on no ring and backing no packet; the frame's bytes `addr - chunk
                // .. + len` lie inside it (checked above).
                let pkt = unsafe { pool.frame_packet(r, chunk, (d.addr - chunk) as usize, len) };
                self.counters.rx(len);
                self.counters.rx_in_place.inc();
                out.push(pkt);
            }
        }
        if n > 0 {
            self.rx.release();
        }
        // Top the fill ring up with free frames of the pool, as many as the kernel took.
        if self.fill_owed > 0 {
            let room = self.fill.free(self.fill_owed).min(self.fill_owed);
            let mut pushed = 0;
            while pushed < room {
                let Some(f) = pool.take_frame(r) else {
                    self.fill_short.inc();
                    break;
                };
                self.fill.push(f);
                pushed += 1;
            }
            if pushed > 0 {
                self.fill.submit();
                self.fill_owed -= pushed;
            }
        }
        if self.need_wakeup && self.fill.needs_wakeup() {
            self.wake_fill();
        }
        let got = out.len() - before;
        if got > 0 {
            self.counters.rx_bursts.inc();
        }
        got
    }

    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        self.reap_completions();
        let base = NonNull::new(self.umem.mmap.base()).expect("a mapping is never null");
        let mut queued = 0;
        let mut ring_full = false;
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
            if self.tx.free(1) == 0 {
                self.counters.count_drop(PortDrop::TxRingFull, 1);
                ring_full = true;
                continue;
            }
            let addr = if p.frame_of(base).is_some() {
                // A frame of this UMEM (received on any socket sharing it): sent where it
                // lies. The kernel gives it back on the completion ring.
                match p.release_frame() {
                    Ok((frame, start, _)) => {
                        self.counters.tx_in_place.inc();
                        frame + start as u64
                    }
                    Err(_) => continue,
                }
            } else {
                let Some(addr) = self.tx_free.pop() else {
                    self.counters.count_drop(PortDrop::TxRingFull, 1);
                    ring_full = true;
                    continue;
                };
                // SAFETY: `addr` is the start of one of this socket's own TX frames that
                // is on the free list, so the kernel neither reads nor writes it until
                // the descriptor is published below; `len <= max_tx_len <= frame_size`.
                unsafe {
                    ptr::copy_nonoverlapping(
                        p.data().as_ptr(),
                        self.umem.mmap.base().add(addr as usize),
                        len,
                    );
                }
                addr
            };
            self.tx.push(sys::XdpDesc {
                addr,
                len: len as u32,
                options: 0,
            });
            self.counters.tx(len);
            queued += 1;
        }
        if queued > 0 {
            self.tx.submit();
        }
        // A full ring or a kick that left frames behind means frames wait for the
        // kernel: kick even when this burst queued none, or they wait forever.
        let waiting = queued > 0 || ring_full;
        if self.tx_kick_pending || (waiting && (!self.need_wakeup || self.tx.needs_wakeup())) {
            self.kick_tx();
        }
        queued
    }

    fn tx_pending(&mut self) -> usize {
        self.reap_completions();
        let pending = self.tx.unconsumed() as usize;
        if pending > 0 {
            self.kick_tx();
        }
        pending
    }

    fn wait_rx(&mut self, timeout: Duration) {
        if self.rx.available(1) > 0 {
            return;
        }
        // One ppoll on the socket (errors are reported whatever the events asked).
        crate::wait::wait_readable(&[self.fd.as_raw_fd()], Some(timeout));
    }

    fn tx_path(&self) -> &'static str {
        "umem"
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .field("zero_copy", &self.zero_copy)
            .field("rx_frames", &self.rx.size())
            .field("tx_frames", &self.tx.size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        let ok = AfXdpConfig::default();
        assert!(check_config("lb-c", &ok).is_ok());
        let e = check_config(
            "lb-c",
            &AfXdpConfig {
                rx_frames: 1000,
                ..ok.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("lb-c: invalid AF_XDP configuration: rx_frames 1000"),
            "{e}"
        );
        assert!(check_config(
            "lb-c",
            &AfXdpConfig {
                frame_size: 1024,
                ..ok.clone()
            }
        )
        .is_err());
        assert!(check_config(
            "lb-c",
            &AfXdpConfig {
                tx_frames: 4,
                ..ok.clone()
            }
        )
        .is_err());
        assert!(check_config("a-name-far-too-long", &ok).is_err());
        let e = AfXdpPort::open_queues("lo", 0, &ok)
            .unwrap_err()
            .to_string();
        assert!(e.contains("queues 0 must be 1 to 256"), "{e}");
    }

    #[test]
    fn missing_interfaces_are_named() {
        let e = AfXdpPort::open("rgt-no-such0", &AfXdpConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rgt-no-such0: if_nametoindex failed"), "{e}");
    }

    #[test]
    fn support_is_reported_as_root_and_explained_otherwise() {
        // SAFETY: geteuid has no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(AfXdpPort::check_support(), Ok(()));
        } else if let Err(e) = AfXdpPort::check_support() {
            assert!(e.contains("(are you root?"), "{e}");
        }
    }

    #[test]
    fn errors_carry_a_hint() {
        let e = io::Error::from_raw_os_error(libc::EBUSY);
        assert!(hint("bpf(BPF_LINK_CREATE)", &e).contains("another XDP program"));
        assert!(hint("bind(AF_XDP, XDP_COPY)", &e).contains("another socket"));
    }
}
