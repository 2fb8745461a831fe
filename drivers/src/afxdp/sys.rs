//! The kernel ABI of AF_XDP sockets (`linux/if_xdp.h`) and of the few `bpf(2)` commands
//! the driver uses (`linux/bpf.h`), mirrored here so the driver needs neither libbpf nor
//! a particular `libc` release, plus owned wrappers for the UMEM and ring mappings.
//! Struct layouts are checked by the `layout` test below.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

pub const AF_XDP: libc::c_int = 44;
pub const SOL_XDP: libc::c_int = 283;

pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;

pub const XDP_SHARED_UMEM: u16 = 1;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

pub const XDP_RING_NEED_WAKEUP: u32 = 1;

pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// `struct xdp_umem_reg` (kernel 6.8+ layout; older kernels read the first 28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// `struct xdp_desc`: one RX or TX ring entry.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_statistics`: cumulative per-socket counters kept by the kernel.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped on receive for other reasons than a full RX ring (an empty fill
    /// ring in copy mode, a frame too large for a UMEM frame).
    pub rx_dropped: u64,
    /// Invalid descriptors found on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found on the TX ring (refused by the kernel).
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when woken.
    pub tx_ring_empty_descs: u64,
}

/// Creates an `AF_XDP` socket.
pub fn xdp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; no memory is passed.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_XDP, opt, value)` for any plain-data value.
pub fn setsockopt<T: Copy>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` of `size_of::<T>()` bytes which
    // the kernel only reads during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt(fd, SOL_XDP, opt)` into a plain-data `T`.
pub fn getsockopt<T: Copy + Default>(fd: &OwnedFd, opt: libc::c_int) -> io::Result<T> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a writable `T` of `len` bytes; the kernel writes at most `len`
    // bytes and stores the length it wrote into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// Binds the socket to queue `queue_id` of `ifindex` with `flags` (`XDP_COPY`, ...),
/// or, with `shared_umem` (the descriptor of a bound socket that registered a UMEM),
/// to that socket's UMEM (`XDP_SHARED_UMEM`; the mode flags then come from it and
/// `flags` must be 0).
pub fn bind(
    fd: &OwnedFd,
    ifindex: u32,
    queue_id: u32,
    flags: u16,
    shared_umem: Option<&OwnedFd>,
) -> io::Result<()> {
    let sa = SockaddrXdp {
        sxdp_family: AF_XDP as u16,
        sxdp_flags: flags
            | if shared_umem.is_some() {
                XDP_SHARED_UMEM
            } else {
                0
            },
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue_id,
        sxdp_shared_umem_fd: shared_umem.map_or(0, |f| f.as_raw_fd() as u32),
    };
    // SAFETY: `sa` is a valid `sockaddr_xdp` whose size is passed with it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const SockaddrXdp).cast(),
            std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A read-write memory mapping, unmapped on drop: the UMEM (anonymous, private) or
/// one of a socket's rings (shared with the kernel).
pub struct Mmap {
    base: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Anonymous, populated memory of `len` bytes for a UMEM (page-aligned).
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        let m = Self::checked(p, len)?;
        // The kernel pins the UMEM's pages; a child process (the appliance runs tools)
        // must not share them copy-on-write. Advisory: failure changes nothing else.
        // SAFETY: `m` describes a mapping this value owns.
        unsafe {
            libc::madvise(m.base().cast(), m.len(), libc::MADV_DONTFORK);
        }
        Ok(m)
    }

    /// The ring of `fd` at page offset `pgoff`, `len` bytes.
    pub fn ring(fd: &OwnedFd, len: usize, pgoff: libc::off_t) -> io::Result<Mmap> {
        // SAFETY: a fresh shared mapping (null hint) of the socket's ring; it aliases no
        // Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        Self::checked(p, len)
    }

    fn checked(p: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mmap { base, len })
    }

    /// Start of the mapping.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe a mapping this value owns; no reference into it
        // outlives the port that owns this value.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

// ---- bpf(2) ----------------------------------------------------------------------

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value `BPF_XDP`.
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`: generic XDP (in the stack, any driver).
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Size of the `union bpf_attr` prefix the driver fills (the kernel accepts a shorter
/// attribute than its own as long as the rest would be zero).
const ATTR_LEN: usize = 128;

/// A zeroed `union bpf_attr`, filled by byte offset (every field is a u32 or u64 at a
/// fixed offset of the command's struct).
#[repr(C, align(8))]
struct Attr([u8; ATTR_LEN]);

impl Attr {
    fn new() -> Attr {
        Attr([0; ATTR_LEN])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

/// `bpf(cmd, attr, size)`, returning a new file descriptor.
///
/// # Safety
///
/// Every pointer stored in `attr` must be valid for what `cmd` reads or writes through
/// it for the duration of the call.
unsafe fn bpf_fd(cmd: libc::c_long, attr: &mut Attr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid, writable attribute of ATTR_LEN bytes; the caller
    // guarantees the pointers inside it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, ATTR_LEN as u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the command returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Creates an `XSKMAP` with `entries` slots (key: queue index, value: socket fd).
pub fn xskmap_create(entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    // struct { map_type, key_size, value_size, max_entries, map_flags, ...,
    // map_name[16] at 28 }
    a.u32(0, BPF_MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries);
    a.0[28..28 + 10].copy_from_slice(b"rouge_xsks");
    // SAFETY: the attribute holds no pointer.
    unsafe { bpf_fd(BPF_MAP_CREATE, &mut a) }
}

/// Puts socket `xsk` into slot `queue` of `map`.
pub fn xskmap_set(map: &OwnedFd, queue: u32, xsk: &OwnedFd) -> io::Result<()> {
    let key = queue;
    let value = xsk.as_raw_fd() as u32;
    let mut a = Attr::new();
    // struct { map_fd u32, pad, key u64, value u64, flags u64 }
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &value as *const u32 as u64)
        .u64(24, 0);
    // SAFETY: `key` and `value` are live u32s the kernel reads during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &mut a as *mut Attr,
            ATTR_LEN as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        BpfInsn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
}

/// `BPF_FUNC_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `BPF_PSEUDO_MAP_FD`: the 64-bit immediate load holds a map's file descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: i32 = 2;
/// Offset of `rx_queue_index` in `struct xdp_md`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// Rouge's XDP program: `return bpf_redirect_map(&map, ctx->rx_queue_index, XDP_PASS);`.
/// A queue without a socket in the map passes its frames to the kernel's stack.
pub fn redirect_program(map_fd: i32) -> [BpfInsn; 6] {
    [
        // r2 = *(u32 *)(r1 + rx_queue_index)
        BpfInsn::new(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (ld_imm64, two slots)
        BpfInsn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        BpfInsn::new(0, 0, 0, 0, 0),
        // r3 = XDP_PASS (the action when the queue has no socket)
        BpfInsn::new(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map
        BpfInsn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // exit (r0 = the helper's result)
        BpfInsn::new(0x95, 0, 0, 0, 0),
    ]
}

/// Loads an XDP program; on failure the verifier's log is returned in the error.
pub fn prog_load_xdp(insns: &[BpfInsn]) -> io::Result<OwnedFd> {
    let license = b"Dual BSD/GPL\0";
    let mut log = vec![0u8; 4096];
    let mut a = Attr::new();
    // struct { prog_type 0, insn_cnt 4, insns 8, license 16, log_level 24, log_size 28,
    // log_buf 32, kern_version 40, prog_flags 44, prog_name[16] 48, prog_ifindex 64,
    // expected_attach_type 68 }
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .u32(68, BPF_XDP);
    a.0[48..48 + 11].copy_from_slice(b"rouge_redir");
    // SAFETY: `insns`, `license` and `log` live across the call; the kernel reads
    // `insn_cnt` instructions and the NUL-terminated license, and writes at most
    // `log_size` bytes of log.
    match unsafe { bpf_fd(BPF_PROG_LOAD, &mut a) } {
        Ok(fd) => Ok(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            if text.trim().is_empty() {
                Err(e)
            } else {
                Err(io::Error::new(
                    e.kind(),
                    format!("{e}; verifier: {}", text.trim()),
                ))
            }
        }
    }
}

/// Attaches XDP program `prog` to `ifindex` with a BPF link (`flags`: 0, SKB or DRV
/// mode). The program stays attached as long as the returned descriptor is open.
pub fn link_create_xdp(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    // struct { prog_fd 0, target_ifindex 4, attach_type 8, flags 12 }
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, flags);
    // SAFETY: the attribute holds no pointer.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut a) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_matches_linux_if_xdp_h() {
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(offset_of!(XdpUmemReg, flags), 24);
        assert_eq!(size_of::<XdpRingOffset>(), 32);
        assert_eq!(size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(offset_of!(XdpMmapOffsets, cr), 96);
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(size_of::<BpfInsn>(), 8);
    }

    #[test]
    fn the_redirect_program_encodes_as_clang_would() {
        let p = redirect_program(7);
        // ldxw r2, [r1+16]: 61 12 10 00 00 00 00 00
        assert_eq!((p[0].code, p[0].regs, p[0].off), (0x61, 0x12, 16));
        // lddw r1, map_fd 7: 18 11 00 00 07 00 00 00
        assert_eq!((p[1].code, p[1].regs, p[1].imm), (0x18, 0x11, 7));
        assert_eq!((p[3].code, p[3].regs, p[3].imm), (0xb7, 0x03, 2));
        assert_eq!((p[4].code, p[4].imm), (0x85, 51));
        assert_eq!(p[5].code, 0x95);
    }
}
