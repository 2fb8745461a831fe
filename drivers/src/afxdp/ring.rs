//! One AF_XDP ring (fill, completion, RX or TX) as seen from user space: a
//! single-producer, single-consumer queue shared with the kernel through a mapping.
//!
//! User space owns one end of each ring: it produces into the fill and TX rings and
//! consumes from the RX and completion rings. Indices are free-running `u32`s; the
//! entry of index `i` is at `i & mask`. The side user space owns is cached and
//! published with a Release store after the entries are written (or read); the other
//! side is re-read with an Acquire load only when the cached view runs short, as the
//! kernel's own `xsk_queue.h` and libxdp do.

use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::sys;

/// A mapped ring of `T` entries (`u64` frame addresses or [`sys::XdpDesc`]).
pub struct Ring<T: Copy> {
    map: sys::Mmap,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    mask: u32,
    size: u32,
    /// User space's own index (producer of fill/TX, consumer of RX/completion).
    local: u32,
    /// Last value read of the kernel's index.
    remote: u32,
    _entry: PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries (a power of two) at page offset `pgoff` of `fd`,
    /// with the offsets the kernel gave for it; `produce` says which end user space owns.
    pub fn map(
        fd: &OwnedFd,
        off: &sys::XdpRingOffset,
        size: u32,
        pgoff: libc::off_t,
        produce: bool,
    ) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = sys::Mmap::ring(fd, len, pgoff)?;
        for o in [off.producer, off.consumer, off.flags] {
            if o as usize + 4 > len || o % 4 != 0 {
                return Err(io::Error::other("ring offsets outside the mapping"));
            }
        }
        let mut r = Ring {
            map,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            flags: off.flags as usize,
            desc: off.desc as usize,
            mask: size - 1,
            size,
            local: 0,
            remote: 0,
            _entry: PhantomData,
        };
        // A fresh ring starts at zero on both sides, but read them to be exact.
        let (p, c) = (
            r.word(r.producer).load(Ordering::Acquire),
            r.word(r.consumer).load(Ordering::Acquire),
        );
        (r.local, r.remote) = if produce { (p, c) } else { (c, p) };
        Ok(r)
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` was checked at map time to be a 4-aligned word inside the
        // mapping, which lives as long as `self`; the word is shared with the kernel, so
        // it is only accessed atomically.
        unsafe { &*(self.map.base().add(off) as *const AtomicU32) }
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask < size`, and the mapping holds `size` entries of `T`
        // from `desc` on (its length was computed from them).
        unsafe { (self.map.base().add(self.desc) as *mut T).add((index & self.mask) as usize) }
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// True when the kernel asks to be woken up (`XDP_RING_NEED_WAKEUP`) to process
    /// this ring.
    pub fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Acquire) & sys::XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer side (fill and TX rings) ----

    /// Free entries a producer can write now (reads the kernel's consumer index when
    /// the cached view shows fewer than `want`).
    pub fn free(&mut self, want: u32) -> u32 {
        let mut free = self.size - self.local.wrapping_sub(self.remote);
        if free < want {
            self.remote = self.word(self.consumer).load(Ordering::Acquire);
            free = self.size - self.local.wrapping_sub(self.remote);
        }
        free
    }

    /// Writes `v` at the producer index and advances it (not visible to the kernel
    /// until [`Ring::submit`]). The caller checked [`Ring::free`] first.
    pub fn push(&mut self, v: T) {
        debug_assert!(self.local.wrapping_sub(self.remote) < self.size);
        // SAFETY: the slot is inside the mapping and, being free, is not read by the
        // kernel until the producer index passes it (Release store in `submit`).
        unsafe { std::ptr::write_volatile(self.slot(self.local), v) };
        self.local = self.local.wrapping_add(1);
    }

    /// Publishes the entries pushed so far.
    pub fn submit(&mut self) {
        self.word(self.producer)
            .store(self.local, Ordering::Release);
    }

    /// Entries produced that the kernel has not consumed yet.
    pub fn unconsumed(&mut self) -> u32 {
        self.remote = self.word(self.consumer).load(Ordering::Acquire);
        self.local.wrapping_sub(self.remote)
    }

    // ---- consumer side (RX and completion rings) ----

    /// Entries ready to read, at most `max` (reads the kernel's producer index when the
    /// cached view shows none).
    pub fn available(&mut self, max: u32) -> u32 {
        let mut n = self.remote.wrapping_sub(self.local);
        if n == 0 {
            self.remote = self.word(self.producer).load(Ordering::Acquire);
            n = self.remote.wrapping_sub(self.local);
        }
        n.min(max)
    }

    /// Reads the next entry and advances the consumer index (returned to the kernel at
    /// [`Ring::release`]). The caller checked [`Ring::available`] first.
    pub fn pop(&mut self) -> T {
        debug_assert!(self.remote.wrapping_sub(self.local) > 0);
        // SAFETY: the slot is inside the mapping and was published by the kernel
        // (producer index read with Acquire past it); it is not rewritten until the
        // consumer index passes it (Release store in `release`).
        let v = unsafe { std::ptr::read_volatile(self.slot(self.local)) };
        self.local = self.local.wrapping_add(1);
        v
    }

    /// Hands the entries read so far back to the kernel.
    pub fn release(&mut self) {
        self.word(self.consumer)
            .store(self.local, Ordering::Release);
    }
}
