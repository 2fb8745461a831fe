//! The kernel ABI of AF_PACKET rings (`linux/if_packet.h`), mirrored here so the driver
//! does not depend on which of these a given `libc` release exports, plus the owned
//! socket and mapping types. Field offsets are checked against the kernel headers'
//! layout by the `layout` test below.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

pub const SOL_PACKET: libc::c_int = 263;
pub const PACKET_RX_RING: libc::c_int = 5;
pub const PACKET_STATISTICS: libc::c_int = 6;
pub const PACKET_VERSION: libc::c_int = 10;
pub const PACKET_LOSS: libc::c_int = 14;
pub const PACKET_TX_RING: libc::c_int = 13;
pub const PACKET_FANOUT: libc::c_int = 18;
pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub const PACKET_FANOUT_DATA: libc::c_int = 22;
pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

pub const PACKET_FANOUT_HASH: u32 = 0;
pub const PACKET_FANOUT_CBPF: u32 = 6;
pub const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

pub const TPACKET_V2: libc::c_int = 1;
pub const TPACKET_V3: libc::c_int = 2;

pub const PACKET_OUTGOING: u8 = 4;

pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

pub const TP_STATUS_AVAILABLE: u32 = 0;
pub const TP_STATUS_SEND_REQUEST: u32 = 1;

pub const ETH_P_ALL: u16 = 0x0003;

/// `TPACKET_ALIGNMENT`: headers and frames in a ring are aligned to 16 bytes.
pub const TPACKET_ALIGNMENT: usize = 16;

pub const fn tpacket_align(x: usize) -> usize {
    (x + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1)
}

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tpacket2Hdr {
    pub tp_status: u32,
    pub tp_len: u32,
    pub tp_snaplen: u32,
    pub tp_mac: u16,
    pub tp_net: u16,
    pub tp_sec: u32,
    pub tp_nsec: u32,
    pub tp_vlan_tci: u16,
    pub tp_vlan_tpid: u16,
    pub tp_padding: [u8; 4],
}

/// `struct tpacket3_hdr` (with `struct tpacket_hdr_variant1` flattened in).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tpacket3Hdr {
    pub tp_next_offset: u32,
    pub tp_sec: u32,
    pub tp_nsec: u32,
    pub tp_snaplen: u32,
    pub tp_len: u32,
    pub tp_status: u32,
    pub tp_mac: u16,
    pub tp_net: u16,
    pub tp_rxhash: u32,
    pub tp_vlan_tci: u32,
    pub tp_vlan_tpid: u16,
    pub tp_padding1: u16,
    pub tp_padding: [u8; 8],
}

/// The start of `struct tpacket_block_desc` with `struct tpacket_hdr_v1` (the fields
/// the driver reads).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockDesc {
    pub version: u32,
    pub offset_to_priv: u32,
    pub block_status: u32,
    pub num_pkts: u32,
    pub offset_to_first_pkt: u32,
    pub blk_len: u32,
}

/// `struct tpacket_req3` (the kernel reads the first four fields for TPACKET_V2).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TpacketReq3 {
    pub tp_block_size: u32,
    pub tp_block_nr: u32,
    pub tp_frame_size: u32,
    pub tp_frame_nr: u32,
    pub tp_retire_blk_tov: u32,
    pub tp_sizeof_priv: u32,
    pub tp_feature_req_word: u32,
}

/// `struct tpacket_stats_v3` (`struct tpacket_stats` is its first two fields).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TpacketStats {
    pub tp_packets: u32,
    pub tp_drops: u32,
    pub tp_freeze_q_cnt: u32,
}

/// Offset of `sll_pkttype` in `struct sockaddr_ll`, which the kernel writes right after
/// the aligned frame header.
pub const SLL_PKTTYPE_OFFSET: usize = 10;

/// Bytes in front of the frame data in a TX ring slot: the kernel reads the frame at
/// `tp_hdrlen - sizeof(struct sockaddr_ll)`, that is the aligned header size.
pub const TX_DATA_OFFSET_V2: usize = tpacket_align(std::mem::size_of::<Tpacket2Hdr>());
/// `TPACKET2_HDRLEN`: a V2 slot's header and the `sockaddr_ll` after it; a received
/// frame starts after them (and the kernel's alignment gap).
pub const TPACKET2_HDRLEN: usize = TX_DATA_OFFSET_V2 + 20;
pub const TX_DATA_OFFSET_V3: usize = tpacket_align(std::mem::size_of::<Tpacket3Hdr>());

/// Creates an `AF_PACKET`/`SOCK_RAW` socket that receives nothing until it is bound.
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; no memory is passed.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_PACKET, opt, value)` for any plain-data value.
pub fn setsockopt<T: Copy>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    setsockopt_at(fd, SOL_PACKET, opt, value)
}

/// `setsockopt(fd, level, opt, value)`.
pub fn setsockopt_at<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` of `size_of::<T>()` bytes which
    // the kernel only reads during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
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

/// `getsockopt(fd, SOL_PACKET, PACKET_STATISTICS)`; the kernel resets its figures on read.
pub fn packet_statistics(fd: &OwnedFd) -> io::Result<TpacketStats> {
    let mut st = TpacketStats::default();
    let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: `st` is a writable `TpacketStats` of `len` bytes; the kernel writes at most
    // `len` bytes and stores the length it wrote into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            (&mut st as *mut TpacketStats).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(st)
    }
}

/// Binds the socket to `ifindex`, receiving every protocol.
pub fn bind(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: an all-zero `sockaddr_ll` is a valid value of this plain C struct.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid `sockaddr_ll` whose size is passed with it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Index of interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx as i32)
    }
}

/// An `ifreq` naming `name` (the caller checked it fits `IFNAMSIZ - 1` bytes).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero `ifreq` is a valid value of this plain C struct and union.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// `ioctl(fd, request, &ifreq)` for the interface `name`.
fn ifreq_ioctl(fd: &OwnedFd, name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIF* requests read the name from and write one union member into
    // `req`, a valid, writable `ifreq` that lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(req)
    }
}

/// The interface's hardware address (`SIOCGIFHWADDR`).
pub fn hwaddr(fd: &OwnedFd, name: &str) -> io::Result<[u8; 6]> {
    let req = ifreq_ioctl(fd, name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the kernel filled the `ifru_hwaddr` member.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, &b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = b as u8;
    }
    Ok(mac)
}

/// The interface's MTU (`SIOCGIFMTU`).
pub fn mtu(fd: &OwnedFd, name: &str) -> io::Result<usize> {
    let req = ifreq_ioctl(fd, name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel filled the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as usize)
}

/// `ETHTOOL_GDRVINFO`'s answer (`struct ethtool_drvinfo` in `linux/ethtool.h`).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// The name of the kernel driver behind interface `name` (`ETHTOOL_GDRVINFO`), such
/// as `veth` or `virtio_net`.
pub fn driver_name(fd: &OwnedFd, name: &str) -> io::Result<String> {
    // SAFETY: an all-zero `ethtool_drvinfo` is a valid value of this plain C struct.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO reads the command from and writes one
    // `ethtool_drvinfo` into the buffer `ifru_data` points to; `info` and `req` are
    // valid and writable and live across the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            SIOCETHTOOL as _,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// A shared read-write mapping of a socket's rings, unmapped on drop.
pub struct Mmap {
    base: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of the rings of `fd` (RX ring first, then TX ring).
    pub fn rings(fd: &OwnedFd, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) over the
        // socket's rings; it aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
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

    /// Length of the mapping in bytes.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_matches_linux_if_packet_h() {
        assert_eq!(size_of::<Tpacket2Hdr>(), 32);
        assert_eq!(size_of::<EthtoolDrvinfo>(), 196);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_vlan_tci), 24);
        assert_eq!(size_of::<Tpacket3Hdr>(), 48);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_status), 20);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_mac), 24);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_vlan_tci), 32);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_vlan_tpid), 36);
        assert_eq!(offset_of!(BlockDesc, block_status), 8);
        assert_eq!(offset_of!(BlockDesc, offset_to_first_pkt), 16);
        assert_eq!(size_of::<TpacketReq3>(), 28);
        assert_eq!(TX_DATA_OFFSET_V2, 32);
        assert_eq!(TX_DATA_OFFSET_V3, 48);
        assert_eq!(size_of::<libc::sockaddr_ll>(), 20);
        assert_eq!(
            offset_of!(libc::sockaddr_ll, sll_pkttype),
            SLL_PKTTYPE_OFFSET
        );
    }
}
