//! `afxdp`: a [`Port`] on one queue of a Linux interface through an AF_XDP socket.
//!
//! One [`AfXdpPort`] is one `AF_XDP` socket bound to one receive/transmit queue of an
//! interface, in the network namespace of the thread that opens it, with its own UMEM
//! (the frame memory the kernel and user space share) and its four rings:
//!
//! - the **fill** ring hands empty UMEM frames to the kernel for receiving, the **RX**
//!   ring hands back the filled ones. [`Port::rx_burst`] copies each received frame
//!   into a [`Packet`] of the caller's pool (one copy, see below) and puts the frame
//!   straight back on the fill ring, so the kernel never runs out of frames while the
//!   worker keeps up;
//! - the **TX** ring takes frames to send, the **completion** ring returns them once
//!   sent. [`Port::tx_burst`] copies each packet into a free TX frame, queues the whole
//!   burst, and makes at most one `sendto` call ("kick") for it;
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
//! # The receive copy
//!
//! The pipelines work on [`Packet`]s from a per-worker [`PacketPool`], so a received
//! frame is copied once from UMEM into a pool buffer (like the AF_PACKET driver's copy
//! out of its ring) and its UMEM frame is recycled at once. Forwarding in place (a UMEM
//! frame transmitted without a user-space copy) needs a `Packet` that can be backed by
//! a UMEM frame; that is left to a later step.
//!
//! What the copy costs, measured on veth (copy mode, kernel 6.18, 2 busy cores, release
//! build; the ignored test `receive_copy_cost` in `drivers/tests/afxdp.rs`, bursts of
//! 32, three runs, typical value with the spread):
//!
//! | frame   | `rx_burst` per frame | the copy alone | send + kernel + receive per frame |
//! |---------|----------------------|----------------|-----------------------------------|
//! | 64 B    | 13 ns (10-15)        | 7 ns (6-8)     | 1.4 µs (AF_PACKET: 2.1 µs)        |
//! | 1514 B  | 40 ns (37-40)        | 30 ns          | 2.1 µs (AF_PACKET: 2.2 µs)        |
//!
//! (one run in six saw both doubled by a neighbour's load.) The copy is most of what
//! the driver does per frame in user space, but about 1.5 % of a frame's whole cost on
//! veth, where the kernel's copy-mode receive and transmit dominate; on a zero-copy
//! NIC, where the kernel's share shrinks, forwarding in place is worth more.
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
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

pub use prog::{AttachMode, XdpProgram};
pub use sys::XdpStatistics;

#[cfg(doc)]
use crate::buf::Packet;
use crate::buf::{PacketPool, MAX_FRAME};
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

/// An AF_XDP port: one socket with its UMEM and rings on one queue of an interface.
/// See the [module documentation](self).
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
    umem: sys::Mmap,
    program: Arc<XdpProgram>,
    frame_size: u64,
    /// UMEM addresses of the TX frames neither queued nor in flight (capacity:
    /// `tx_frames`, never grown).
    tx_free: Vec<u64>,
    max_tx_len: usize,
    counters: Arc<PortCounters>,
    tx_kick_errors: Counter,
    fill_wakeups: Counter,
    rx_invalid: Counter,
    /// The last kick left frames in the TX ring, or a burst found no free frame: kick
    /// again on the next burst even if it queues nothing.
    tx_kick_pending: bool,
    kernel: XdpStatistics,
    stats_interval: u32,
    calls_since_stats: u32,
}

// SAFETY: the port exclusively owns its socket, UMEM and ring mappings; the raw
// pointers into them are only used through `&mut self` (ring words atomically), so
// moving the port to another thread is sound. The shared `XdpProgram` is `Sync` (it
// only holds file descriptors). The port is not `Sync`.
unsafe impl Send for AfXdpPort {}

impl AfXdpPort {
    /// Opens queue 0 of `ifname` (in the calling thread's network namespace).
    pub fn open(ifname: &str, config: &AfXdpConfig) -> Result<AfXdpPort, AfXdpError> {
        let mut v = Self::open_queues(ifname, 1, config)?;
        Ok(v.remove(0))
    }

    /// Opens queues `0..queues` of `ifname`, one port each, sharing one XDP program.
    pub fn open_queues(
        ifname: &str,
        queues: u32,
        config: &AfXdpConfig,
    ) -> Result<Vec<AfXdpPort>, AfXdpError> {
        check_config(ifname, config)?;
        if queues == 0 || queues > 256 {
            return Err(AfXdpError::Config {
                ifname: ifname.into(),
                reason: format!("queues {queues} must be 1 to 256"),
            });
        }
        let err = |call: &'static str| {
            let ifname = ifname.to_string();
            move |source: io::Error| AfXdpError::Sys {
                ifname,
                call,
                hint: hint(call, &source),
                source,
            }
        };
        let ifindex = crate::afpacket::sys::ifindex(ifname).map_err(err("if_nametoindex"))? as u32;
        let (mac, mtu) = {
            let ctl = crate::afpacket::sys::packet_socket().map_err(err("socket(AF_PACKET)"))?;
            (
                MacAddr(
                    crate::afpacket::sys::hwaddr(&ctl, ifname)
                        .map_err(err("ioctl(SIOCGIFHWADDR)"))?,
                ),
                crate::afpacket::sys::mtu(&ctl, ifname).map_err(err("ioctl(SIOCGIFMTU)"))?,
            )
        };
        // A received frame starts after the kernel's 256-byte headroom and must fit the
        // rest of its UMEM frame (no multi-buffer frames), with a possible VLAN tag.
        let room = config.frame_size as usize - 256;
        if mtu + 18 > room {
            return Err(AfXdpError::Config {
                ifname: ifname.into(),
                reason: format!(
                    "the interface's MTU {mtu} needs frames of {} bytes but frame_size {} leaves {room} after the kernel's 256-byte headroom: use frame_size 4096 (MTU up to {}) or lower the MTU",
                    mtu + 18 + 256,
                    config.frame_size,
                    4096 - 256 - 18
                ),
            });
        }
        let program = Arc::new(
            XdpProgram::load_and_attach(ifindex, queues, config.attach)
                .map_err(|(call, e)| err(call)(e))?,
        );
        let mut ports = Vec::with_capacity(queues as usize);
        for q in 0..queues {
            let port = Self::open_socket(ifname, ifindex, q, config, mac, mtu, &program)?;
            program
                .set_socket(q, &port.fd)
                .map_err(err("bpf(BPF_MAP_UPDATE_ELEM XSKMAP)"))?;
            ports.push(port);
        }
        Ok(ports)
    }

    /// Creates, sets up and binds the socket of queue `q`.
    fn open_socket(
        ifname: &str,
        ifindex: u32,
        q: u32,
        c: &AfXdpConfig,
        mac: MacAddr,
        mtu: usize,
        program: &Arc<XdpProgram>,
    ) -> Result<AfXdpPort, AfXdpError> {
        let err = |call: &'static str| {
            let ifname = ifname.to_string();
            move |source: io::Error| AfXdpError::Sys {
                ifname,
                call,
                hint: hint(call, &source),
                source,
            }
        };
        let frames = (c.rx_frames + c.tx_frames) as usize;
        let frame_size = c.frame_size as usize;
        let umem = sys::Mmap::anonymous(frames * frame_size).map_err(err("mmap(UMEM)"))?;
        let fd = sys::xdp_socket().map_err(err("socket(AF_XDP)"))?;
        let reg = sys::XdpUmemReg {
            addr: umem.base() as u64,
            len: umem.len() as u64,
            chunk_size: c.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::setsockopt(&fd, sys::XDP_UMEM_REG, &reg).map_err(err("setsockopt(XDP_UMEM_REG)"))?;
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

        // Frames 0..rx_frames receive (all on the fill ring), the rest transmit.
        for i in 0..c.rx_frames as u64 {
            fill.push(i * frame_size as u64);
        }
        fill.submit();
        let tx_free: Vec<u64> = (c.rx_frames as u64..frames as u64)
            .rev()
            .map(|i| i * frame_size as u64)
            .collect();

        let wake = if c.need_wakeup {
            sys::XDP_USE_NEED_WAKEUP
        } else {
            0
        };
        let zero_copy = match c.bind {
            BindMode::Copy => {
                sys::bind(&fd, ifindex, q, sys::XDP_COPY | wake)
                    .map_err(err("bind(AF_XDP, XDP_COPY)"))?;
                false
            }
            BindMode::ZeroCopy => {
                sys::bind(&fd, ifindex, q, sys::XDP_ZEROCOPY | wake)
                    .map_err(err("bind(AF_XDP, XDP_ZEROCOPY)"))?;
                true
            }
            BindMode::Auto => match sys::bind(&fd, ifindex, q, sys::XDP_ZEROCOPY | wake) {
                Ok(()) => true,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                    ) =>
                {
                    sys::bind(&fd, ifindex, q, sys::XDP_COPY | wake)
                        .map_err(err("bind(AF_XDP, XDP_COPY)"))?;
                    false
                }
                Err(e) => return Err(err("bind(AF_XDP, XDP_ZEROCOPY)")(e)),
            },
        };
        let max_tx_len = (mtu + 14 + 4).min(frame_size);
        Ok(AfXdpPort {
            name: ifname.to_string(),
            mac,
            mtu,
            queue: q,
            zero_copy,
            need_wakeup: c.need_wakeup,
            rx,
            fill,
            tx,
            comp,
            fd,
            umem,
            program: program.clone(),
            frame_size: frame_size as u64,
            tx_free,
            max_tx_len,
            counters: PortCounters::new_shared(),
            tx_kick_errors: Counter::default(),
            fill_wakeups: Counter::default(),
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

    /// Returns transmitted frames to the free list.
    fn reap_completions(&mut self) {
        let n = self.comp.available(u32::MAX);
        for _ in 0..n {
            let addr = self.comp.pop();
            // The free list holds at most tx_frames addresses and was allocated with
            // that capacity, so this never reallocates.
            if self.tx_free.len() < self.tx_free.capacity() {
                self.tx_free.push(addr & !(self.frame_size - 1));
            }
        }
        if n > 0 {
            self.comp.release();
        }
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
        let before = out.len();
        let n = self.rx.available((out.capacity() - out.len()) as u32);
        if n > 0 {
            // Every frame taken off the RX ring goes back on the fill ring below; the
            // fill ring has an entry for every receive frame, so there is room.
            let mut room = self.fill.free(n);
            debug_assert!(room >= n);
            let umem_len = self.umem.len() as u64;
            for _ in 0..n {
                let d = self.rx.pop();
                let len = d.len as usize;
                let chunk = d.addr & !(self.frame_size - 1);
                if d.addr + len as u64 > chunk + self.frame_size || chunk >= umem_len {
                    self.rx_invalid.inc();
                } else if len > MAX_FRAME {
                    self.counters.count_drop(PortDrop::RxTooBig, 1);
                } else if let Some(mut pkt) = pool.alloc() {
                    pkt.set_len(len);
                    // SAFETY: `addr .. addr + len` lies inside one frame of the UMEM
                    // (checked above) that the kernel handed to user space through the
                    // RX ring and does not touch until it is back on the fill ring;
                    // `pkt` has room for `len <= MAX_FRAME` bytes.
                    unsafe {
                        ptr::copy_nonoverlapping(
                            self.umem.base().add(d.addr as usize),
                            pkt.data_mut().as_mut_ptr(),
                            len,
                        );
                    }
                    self.counters.rx(len);
                    out.push(pkt);
                } else {
                    self.counters.count_drop(PortDrop::RxNoBuffer, 1);
                }
                if chunk < umem_len && room > 0 {
                    self.fill.push(chunk);
                    room -= 1;
                }
            }
            self.rx.release();
            self.fill.submit();
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
            let Some(addr) = self.tx_free.pop() else {
                self.counters.count_drop(PortDrop::TxRingFull, 1);
                ring_full = true;
                continue;
            };
            // SAFETY: `addr` is the start of a TX frame of the UMEM that is on the free
            // list, so the kernel neither reads nor writes it until the descriptor is
            // published below; `len <= max_tx_len <= frame_size`.
            unsafe {
                ptr::copy_nonoverlapping(
                    p.data().as_ptr(),
                    self.umem.base().add(addr as usize),
                    len,
                );
            }
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
