//! Rouge's XDP redirect program on one interface: the `XSKMAP` its sockets join, the
//! loaded program, and the BPF link that keeps it attached.

use std::io;
use std::os::fd::OwnedFd;

use super::sys;

/// Where the redirect program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (in the driver) where the driver supports it, else generic.
    #[default]
    Auto,
    /// Native XDP only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): works on every interface, after the stack
    /// has built a socket buffer.
    Generic,
}

/// The redirect program attached to one interface. It stays attached while this value
/// lives: the ports of the interface share it, and dropping the last one closes the
/// link, which detaches the program (so does the process exiting).
#[derive(Debug)]
pub struct XdpProgram {
    // Drop order: the link first (detaches), then the program and the map.
    _link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    ifindex: u32,
    native: bool,
    queues: u32,
}

impl XdpProgram {
    /// Creates the map for `queues` sockets, loads the program and attaches it to
    /// `ifindex`. On failure, names the call that failed.
    pub(super) fn load_and_attach(
        ifindex: u32,
        queues: u32,
        mode: AttachMode,
    ) -> Result<XdpProgram, (&'static str, io::Error)> {
        let map = sys::xskmap_create(queues).map_err(|e| ("bpf(BPF_MAP_CREATE XSKMAP)", e))?;
        let insns = sys::redirect_program(std::os::fd::AsRawFd::as_raw_fd(&map));
        let prog = sys::prog_load_xdp(&insns).map_err(|e| ("bpf(BPF_PROG_LOAD)", e))?;
        let (link, native) = match mode {
            AttachMode::Native => (
                sys::link_create_xdp(&prog, ifindex, sys::XDP_FLAGS_DRV_MODE),
                true,
            ),
            AttachMode::Generic => (
                sys::link_create_xdp(&prog, ifindex, sys::XDP_FLAGS_SKB_MODE),
                false,
            ),
            AttachMode::Auto => match sys::link_create_xdp(&prog, ifindex, sys::XDP_FLAGS_DRV_MODE)
            {
                Ok(l) => (Ok(l), true),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                    ) =>
                {
                    (
                        sys::link_create_xdp(&prog, ifindex, sys::XDP_FLAGS_SKB_MODE),
                        false,
                    )
                }
                Err(e) => (Err(e), true),
            },
        };
        let link = link.map_err(|e| ("bpf(BPF_LINK_CREATE XDP)", e))?;
        Ok(XdpProgram {
            _link: link,
            _prog: prog,
            map,
            ifindex,
            native,
            queues,
        })
    }

    /// Directs queue `queue`'s frames to socket `xsk`.
    pub(super) fn set_socket(&self, queue: u32, xsk: &OwnedFd) -> io::Result<()> {
        sys::xskmap_set(&self.map, queue, xsk)
    }

    /// Index of the interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// True when attached in native (driver) mode, false for generic mode.
    pub fn native(&self) -> bool {
        self.native
    }

    /// Number of queues the program redirects (queues `0..n`; others pass to the kernel).
    pub fn queues(&self) -> u32 {
        self.queues
    }
}
