//! Packet buffers and the per-worker pool they live in.
//!
//! A [`PacketPool`] allocates all of its buffers once, when a worker starts. A
//! [`Packet`] is a handle on one of those buffers plus the window of it that holds the
//! frame; dropping the packet returns the buffer to the pool it came from, so nothing
//! is allocated or freed per packet in steady state. Every buffer keeps
//! [`BUF_HEADROOM`] bytes in front of the frame so a header (a VLAN tag, an
//! encapsulation) can be pushed without moving the payload.
//!
//! Pools are per worker and single-threaded (`Rc`), as the data path shares nothing.
//! A frame that must move to another worker (the steering hand-off) travels in a
//! [`HandedFrame`]: [`Packet::hand_over`] and [`PacketPool::adopt`] swap buffers instead
//! of copying bytes, so every pool keeps its number of buffers and no thread ever
//! touches another's pool.
//!
//! # Frames of a driver's memory
//!
//! A packet can also be backed by a frame of memory a driver shares with the kernel or
//! a NIC (an AF_XDP UMEM), so a received frame reaches the pipelines, and leaves on
//! another port of the same memory, without being copied. The driver registers the
//! memory with the worker's pool as a *region* (crate-internal API: only drivers make
//! such packets). The pool keeps the region's free frames; a packet backed by one
//! returns its frame there when dropped, and the driver takes frames from there to
//! give the kernel for receiving. A driver that transmits such a packet in place
//! takes its frame over (`Packet::release_frame`) and gives it back to the pool once
//! the kernel is done with it. A region's frames are handed between workers by copy
//! (a frame belongs to the memory of one worker's ports).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

/// Size in bytes of every packet buffer: a full Ethernet frame with VLAN tag and headroom.
pub const BUF_SIZE: usize = 2048;
/// Bytes kept free in front of a received frame for headers pushed later.
pub const BUF_HEADROOM: usize = 128;
/// Largest frame a buffer can hold.
pub const MAX_FRAME: usize = BUF_SIZE - BUF_HEADROOM;

type Storage = Box<[u8; BUF_SIZE]>;

/// A region of frames a driver registered with a pool (see the module documentation).
struct Region {
    base: NonNull<u8>,
    len: usize,
    frame_size: usize,
    /// Offsets of the region's frames that are free (capacity: every frame, never grown).
    free: Vec<u64>,
    /// Keeps the memory mapped while the pool (and so any packet backed by it) lives.
    _owner: Arc<dyn Any + Send + Sync>,
}

struct PoolInner {
    free: RefCell<Vec<Storage>>,
    capacity: usize,
    exhausted: Cell<u64>,
    regions: RefCell<Vec<Region>>,
}

/// Identifies a region of frames within one pool (crate-internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionId(u16);

/// A fixed set of packet buffers owned by one worker.
#[derive(Clone)]
pub struct PacketPool {
    inner: Rc<PoolInner>,
}

impl PacketPool {
    /// Allocates a pool of `capacity` buffers. This is the only allocation a pool makes.
    pub fn new(capacity: usize) -> Self {
        let mut free = Vec::with_capacity(capacity);
        for _ in 0..capacity {
            free.push(Box::new([0u8; BUF_SIZE]));
        }
        PacketPool {
            inner: Rc::new(PoolInner {
                free: RefCell::new(free),
                capacity,
                exhausted: Cell::new(0),
                regions: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Takes an empty packet (length 0, full headroom), or `None` when every buffer is in use.
    /// Each `None` is counted in [`PacketPool::exhausted`].
    #[inline]
    pub fn alloc(&self) -> Option<Packet> {
        let storage = self.inner.free.borrow_mut().pop();
        match storage {
            Some(buf) => Some(Packet {
                buf: into_raw(buf),
                cap: BUF_SIZE as u16,
                start: BUF_HEADROOM as u16,
                len: 0,
                frame: None,
                pool: self.inner.clone(),
                meta: PacketMeta::default(),
            }),
            None => {
                self.inner.exhausted.set(self.inner.exhausted.get() + 1);
                None
            }
        }
    }

    /// Takes a packet holding a copy of `frame`, or `None` when the pool is empty or the
    /// frame is longer than [`MAX_FRAME`].
    #[inline]
    pub fn alloc_from(&self, frame: &[u8]) -> Option<Packet> {
        if frame.len() > MAX_FRAME {
            return None;
        }
        let mut pkt = self.alloc()?;
        pkt.set_len(frame.len());
        pkt.data_mut().copy_from_slice(frame);
        Some(pkt)
    }

    /// Number of buffers free right now.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Number of buffers the pool was created with.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many times an allocation found the pool empty.
    pub fn exhausted(&self) -> u64 {
        self.inner.exhausted.get()
    }

    /// True when `self` and `other` are handles on the same pool.
    pub fn same_pool(&self, other: &PacketPool) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// The pool's identity as a number, for a driver that remembers which pool it lends
    /// frames to without keeping a handle on it.
    pub(crate) fn key(&self) -> usize {
        Rc::as_ptr(&self.inner) as *const () as usize
    }
}

/// The crate-internal region API drivers use (see the module documentation).
impl PacketPool {
    /// Registers `len` bytes at `base`, cut into frames of `frame_size` bytes, as a
    /// region of this pool (memory already registered, the same `base`, keeps its id),
    /// adds the frames at the offsets `free` to its free frames, and returns its id.
    ///
    /// # Safety
    ///
    /// `base .. base + len` must stay valid for reads and writes while `owner` lives
    /// (the pool keeps a clone); every offset in `free` must be a frame start below
    /// `len` that nothing else (the kernel, another pool, a packet) uses until the pool
    /// gives it out; `frame_size` must be at most 65,535.
    pub(crate) unsafe fn register_region(
        &self,
        base: NonNull<u8>,
        len: usize,
        frame_size: usize,
        free: &[u64],
        owner: &Arc<dyn Any + Send + Sync>,
    ) -> RegionId {
        let mut regions = self.inner.regions.borrow_mut();
        let i = match regions.iter().position(|r| r.base == base) {
            Some(i) => i,
            None => {
                regions.push(Region {
                    base,
                    len,
                    frame_size,
                    free: Vec::with_capacity(len / frame_size),
                    _owner: owner.clone(),
                });
                regions.len() - 1
            }
        };
        for &f in free {
            give(&mut regions[i], f);
        }
        RegionId(i as u16)
    }

    /// Takes a free frame of region `r` (its offset), or `None` when none is free.
    #[inline]
    pub(crate) fn take_frame(&self, r: RegionId) -> Option<u64> {
        self.inner.regions.borrow_mut()[r.0 as usize].free.pop()
    }

    /// Gives back a frame of region `r` that the driver took ([`PacketPool::take_frame`]
    /// or [`Packet::release_frame`]) and the kernel is done with.
    #[inline]
    pub(crate) fn give_frame(&self, r: RegionId, frame: u64) {
        give(&mut self.inner.regions.borrow_mut()[r.0 as usize], frame);
    }

    /// Frames of region `r` free right now.
    pub(crate) fn frames_free(&self, r: RegionId) -> usize {
        self.inner.regions.borrow()[r.0 as usize].free.len()
    }

    /// Wraps the frame at offset `frame` of region `r`, whose bytes `start .. start +
    /// len` hold a received frame, as a packet (no copy). Dropping the packet gives the
    /// frame back to the region's free list.
    ///
    /// # Safety
    ///
    /// The frame must be the driver's (taken from the pool and handed back by the
    /// kernel), not on the free list and not backing another packet; `start + len` must
    /// be at most the frame size.
    #[inline]
    pub(crate) unsafe fn frame_packet(
        &self,
        r: RegionId,
        frame: u64,
        start: usize,
        len: usize,
    ) -> Packet {
        let regions = self.inner.regions.borrow();
        let region = &regions[r.0 as usize];
        debug_assert!(frame as usize + region.frame_size <= region.len);
        debug_assert!(start + len <= region.frame_size);
        // SAFETY: `frame` is a frame start inside the region (the caller's contract),
        // so the pointer stays within the registered memory.
        let buf = unsafe { NonNull::new_unchecked(region.base.as_ptr().add(frame as usize)) };
        Packet {
            buf,
            cap: region.frame_size as u16,
            start: start as u16,
            len: len as u16,
            frame: Some((r, frame)),
            pool: self.inner.clone(),
            meta: PacketMeta::default(),
        }
    }
}

/// Puts `frame` back on `region`'s free list (which has room for every frame of the
/// region, so it never grows; more frames than the region has, which only a driver
/// bug could give, are not stored).
#[inline]
fn give(region: &mut Region, frame: u64) {
    if region.free.len() < region.free.capacity() {
        region.free.push(frame);
    }
}

impl PacketPool {
    /// Takes the frame out of `slot` as a packet of this pool without copying it: the
    /// slot and a free buffer of the pool swap places, so the slot leaves holding an
    /// empty buffer (ready to carry another frame) and the pool keeps its size.
    /// `None` (and `slot` unchanged) when the pool is empty, counted like any
    /// [`PacketPool::alloc`] that finds it so.
    #[inline]
    pub fn adopt(&self, slot: &mut HandedFrame) -> Option<Packet> {
        let mut pkt = self.alloc()?;
        // SAFETY: a packet from `alloc` is backed by a pool buffer, whose pointer came
        // from `Box::into_raw` of a `Storage`; it is swapped with the slot's buffer and
        // the packet keeps owning whichever buffer it holds.
        unsafe { swap_storage(&mut pkt.buf, &mut slot.buf) };
        pkt.start = slot.start;
        pkt.len = slot.len;
        pkt.meta = slot.meta;
        slot.start = BUF_HEADROOM as u16;
        slot.len = 0;
        slot.meta = PacketMeta::default();
        Some(pkt)
    }
}

fn into_raw(buf: Storage) -> NonNull<u8> {
    // SAFETY: `Box::into_raw` never returns null.
    unsafe { NonNull::new_unchecked(Box::into_raw(buf) as *mut u8) }
}

/// Swaps the pool buffer behind `raw` with `boxed`.
///
/// # Safety
///
/// `raw` must come from [`into_raw`] of a `Storage` that nothing else owns.
unsafe fn swap_storage(raw: &mut NonNull<u8>, boxed: &mut Storage) {
    // SAFETY: the caller's contract: `raw` is a leaked `Storage`, taken back here once.
    let mine = unsafe { Box::from_raw(raw.as_ptr() as *mut [u8; BUF_SIZE]) };
    let theirs = std::mem::replace(boxed, mine);
    *raw = into_raw(theirs);
}

impl fmt::Debug for PacketPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketPool")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

/// Per-packet metadata a driver fills in on receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Index of the port the packet arrived on (set by the worker).
    pub port: u16,
    /// The sender left the L4 checksum for offload (AF_PACKET `TP_STATUS_CSUMNOTREADY`):
    /// the TCP/UDP checksum field is only a partial sum and must not be verified.
    pub l4_csum_partial: bool,
    /// Shaping class chosen by the pipeline (`None`: not shaped, e.g. the appliance's
    /// own ARP, ICMP and TCP traffic).
    pub class: Option<u16>,
    /// Hash of the packet's flow, to keep a flow's packets in order inside its class.
    pub flow_hash: u32,
    /// When the frame was received, in nanoseconds of `CLOCK_MONOTONIC` (see
    /// [`crate::clock`]), set by the driver: AF_PACKET from the ring frame's kernel
    /// stamp (so time spent waiting in the receive ring counts), a pipe port from its
    /// clock. 0 when the driver gives none (the pipeline then uses its turn's `now`).
    pub rx_time: u64,
}

/// One frame in a pooled buffer (or a driver's frame, see the module documentation).
/// Dropping it returns the buffer to its pool.
pub struct Packet {
    /// Start of the buffer: a pool buffer leaked from its `Box` (`frame: None`), or a
    /// frame of a registered region.
    buf: NonNull<u8>,
    /// Size of the buffer.
    cap: u16,
    start: u16,
    len: u16,
    /// The region frame behind `buf`, if any: (region, frame offset).
    frame: Option<(RegionId, u64)>,
    pool: Rc<PoolInner>,
    /// Metadata set by the driver and the worker.
    pub meta: PacketMeta,
}

impl Packet {
    /// The frame's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: `buf` points to `cap` bytes this packet owns (a pool buffer, or a
        // region frame kept mapped by the pool it holds) and `start + len <= cap`.
        unsafe {
            std::slice::from_raw_parts(
                self.buf.as_ptr().add(self.start as usize),
                self.len as usize,
            )
        }
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.buf.as_ptr().add(self.start as usize),
                self.len as usize,
            )
        }
    }

    /// Length of the frame in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the packet holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start as usize
    }

    /// Bytes free after the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.cap as usize - self.start as usize - self.len as usize
    }

    /// Sets the frame length, keeping its start; bytes exposed by growing keep whatever
    /// the buffer held. Clamped to the room after the start.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        let room = self.cap as usize - self.start as usize;
        self.len = len.min(room) as u16;
    }

    /// Shortens the frame to `len` bytes (no effect when already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len as usize {
            self.len = len as u16;
        }
    }

    /// Grows the frame by `n` bytes at the front and returns them, or `None` when the
    /// headroom is too small.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start as usize {
            return None;
        }
        self.start -= n as u16;
        self.len += n as u16;
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front of the frame; returns false (and changes nothing)
    /// when the frame is shorter than `n`.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u16;
        self.len -= n as u16;
        true
    }

    /// Appends `bytes` at the end; returns false (and changes nothing) when they do not fit.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.tailroom() {
            return false;
        }
        let old = self.len as usize;
        self.len += bytes.len() as u16;
        self.data_mut()[old..].copy_from_slice(bytes);
        true
    }

    /// Resets the packet to an empty frame with full headroom, keeping the buffer.
    #[inline]
    pub fn reset(&mut self) {
        self.start = BUF_HEADROOM as u16;
        self.len = 0;
        self.meta = PacketMeta::default();
    }

    /// Moves this packet's frame into `slot`: the packet's buffer and the slot's (empty)
    /// buffer swap places, and the packet, now holding the slot's old buffer, goes back
    /// to its pool; no byte is copied. (A packet backed by a driver's frame is copied
    /// into the slot instead, and its frame goes back to its region.) The frame can then
    /// cross to another thread inside `slot` (see [`HandedFrame`]); whatever `slot`
    /// held is discarded.
    #[inline]
    pub fn hand_over(mut self, slot: &mut HandedFrame) {
        slot.meta = self.meta;
        if self.frame.is_some() {
            // A frame of at most MAX_FRAME bytes fits after the slot's headroom.
            let len = self.len().min(MAX_FRAME);
            slot.buf[BUF_HEADROOM..BUF_HEADROOM + len].copy_from_slice(&self.data()[..len]);
            slot.start = BUF_HEADROOM as u16;
            slot.len = len as u16;
            return;
        }
        // SAFETY: without a region frame, `buf` is a pool buffer leaked from its `Box`.
        unsafe { swap_storage(&mut self.buf, &mut slot.buf) };
        slot.start = self.start;
        slot.len = self.len;
    }

    /// Copies this packet into a new buffer from `pool` (used to duplicate frames).
    pub fn copy_into(&self, pool: &PacketPool) -> Option<Packet> {
        let mut p = pool.alloc_from(self.data())?;
        p.meta = self.meta;
        Some(p)
    }

    /// This packet, holding none of a driver's memory: a packet backed by a frame a
    /// driver lent (a receive ring slot or a UMEM frame, which the driver needs back
    /// soon or its ring stalls) is copied into a buffer of its pool. Call before
    /// holding a packet longer than a turn of the worker, as an ARP or shaping queue
    /// does. With no buffer free, the packet keeps its frame.
    pub fn detached(self) -> Packet {
        if self.frame.is_none() {
            return self;
        }
        self.try_clone().unwrap_or(self)
    }

    /// True when the packet is backed by a frame a driver lent (see
    /// [`Packet::detached`]).
    pub fn is_lent(&self) -> bool {
        self.frame.is_some()
    }

    /// Copies this packet into a new buffer from its own pool.
    pub fn try_clone(&self) -> Option<Packet> {
        let pool = PacketPool {
            inner: self.pool.clone(),
        };
        self.copy_into(&pool)
    }

    /// True when the packet is backed by a frame of the region registered at `base`
    /// (a driver's memory) rather than by a pool buffer.
    #[inline]
    pub(crate) fn frame_of(&self, base: NonNull<u8>) -> Option<u64> {
        let (r, frame) = self.frame?;
        (self.pool.regions.borrow()[r.0 as usize].base == base).then_some(frame)
    }

    /// Takes the packet's region frame over (for a driver transmitting it in place):
    /// returns the frame's offset and the bytes' window in it, and the frame does not
    /// go back to the pool when the packet goes; the driver gives it back
    /// ([`PacketPool::give_frame`]) once sent. `Err(self)` for a pool-buffer packet.
    #[inline]
    pub(crate) fn release_frame(self) -> Result<(u64, usize, usize), Packet> {
        let Some((_, frame)) = self.frame else {
            return Err(self);
        };
        let out = (frame, self.start as usize, self.len as usize);
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again; its only field with a destructor,
        // the pool handle, is dropped here once.
        unsafe { std::ptr::drop_in_place(&mut me.pool) };
        Ok(out)
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        if let Some((r, frame)) = self.frame {
            give(&mut self.pool.regions.borrow_mut()[r.0 as usize], frame);
            return;
        }
        // SAFETY: without a region frame, `buf` is a pool buffer leaked by `into_raw`;
        // `drop` runs once, so it is taken back exactly once.
        let buf = unsafe { Box::from_raw(self.buf.as_ptr() as *mut [u8; BUF_SIZE]) };
        // The free list was allocated with room for every buffer of the pool, so this
        // push never reallocates.
        self.pool.free.borrow_mut().push(buf);
    }
}

/// A frame between two workers: one buffer (the same size as a pool's) with the
/// frame's window and metadata, owned by no pool, so it can be sent to another thread.
/// Slots are allocated once, when the appliance starts; [`Packet::hand_over`] fills one
/// and [`PacketPool::adopt`] empties it, each by swapping buffers.
pub struct HandedFrame {
    buf: Storage,
    start: u16,
    len: u16,
    meta: PacketMeta,
}

impl HandedFrame {
    /// An empty slot (allocates its buffer: call at start only).
    pub fn new() -> HandedFrame {
        HandedFrame {
            buf: Box::new([0u8; BUF_SIZE]),
            start: BUF_HEADROOM as u16,
            len: 0,
            meta: PacketMeta::default(),
        }
    }

    /// The frame's bytes (empty when the slot carries none).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let s = self.start as usize;
        &self.buf[s..s + self.len as usize]
    }

    /// The frame's metadata.
    pub fn meta(&self) -> &PacketMeta {
        &self.meta
    }
}

impl Default for HandedFrame {
    fn default() -> Self {
        HandedFrame::new()
    }
}

impl fmt::Debug for HandedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandedFrame")
            .field("len", &self.len)
            .field("meta", &self.meta)
            .finish()
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len)
            .field("headroom", &self.start)
            .field("frame", &self.frame)
            .field("meta", &self.meta)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_their_pool_on_drop() {
        let pool = PacketPool::new(2);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert_eq!(pool.available(), 0);
        assert!(pool.alloc().is_none());
        assert_eq!(pool.exhausted(), 1);
        drop(a);
        assert_eq!(pool.available(), 1);
        drop(b);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn push_and_pull_move_the_frame_window() {
        let pool = PacketPool::new(1);
        let mut p = pool.alloc_from(&[1, 2, 3, 4]).unwrap();
        assert_eq!(p.data(), &[1, 2, 3, 4]);
        p.push_front(2).unwrap().copy_from_slice(&[9, 8]);
        assert_eq!(p.data(), &[9, 8, 1, 2, 3, 4]);
        assert!(p.pull_front(3));
        assert_eq!(p.data(), &[2, 3, 4]);
        assert!(!p.pull_front(4));
        assert!(p.extend_from_slice(&[5]));
        assert_eq!(p.data(), &[2, 3, 4, 5]);
        assert!(p.push_front(BUF_SIZE).is_none());
        assert!(!p.extend_from_slice(&[0; BUF_SIZE]));
    }

    #[test]
    fn oversized_frames_are_refused() {
        let pool = PacketPool::new(1);
        assert!(pool.alloc_from(&[0; MAX_FRAME + 1]).is_none());
        assert!(pool.alloc_from(&[0; MAX_FRAME]).is_some());
    }

    #[test]
    fn frames_cross_pools_by_swapping_buffers_and_pools_keep_their_size() {
        let (a, b) = (PacketPool::new(2), PacketPool::new(1));
        let mut slot = HandedFrame::new();
        let mut p = a.alloc_from(&[1, 2, 3, 4, 5]).unwrap();
        assert!(p.pull_front(1));
        p.meta.port = 3;
        p.meta.rx_time = 77;
        p.hand_over(&mut slot);
        assert_eq!(a.available(), 2, "the sender's pool got a buffer back");
        assert_eq!(slot.data(), &[2, 3, 4, 5]);
        assert_eq!((slot.meta().port, slot.meta().rx_time), (3, 77));
        let q = b.adopt(&mut slot).expect("b has a free buffer");
        assert_eq!(q.data(), &[2, 3, 4, 5], "no byte moved, the window did");
        assert_eq!(q.headroom(), BUF_HEADROOM + 1);
        assert_eq!((q.meta.port, q.meta.rx_time), (3, 77));
        assert!(slot.data().is_empty(), "the slot is empty again");
        assert_eq!(b.available(), 0);
        // A pool with no free buffer refuses and leaves the slot as it was.
        a.alloc_from(&[9]).unwrap().hand_over(&mut slot);
        assert!(b.adopt(&mut slot).is_none());
        assert_eq!(b.exhausted(), 1);
        assert_eq!(slot.data(), &[9]);
        drop(q);
        assert_eq!(
            b.available(),
            1,
            "the adopted packet returns to its new pool"
        );
        assert!(b.adopt(&mut slot).is_some());
    }

    /// Heap memory standing in for a driver's frames in these tests.
    struct TestMemory(Vec<std::cell::UnsafeCell<u8>>);
    // SAFETY: the tests only touch the memory through one pool's packets, on one thread.
    unsafe impl Send for TestMemory {}
    // SAFETY: as above.
    unsafe impl Sync for TestMemory {}

    /// A region of `frames` frames of 2048 bytes in a heap buffer, all free.
    fn region(pool: &PacketPool, frames: usize) -> (RegionId, NonNull<u8>) {
        let mem = TestMemory(
            (0..frames * 2048)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
        );
        let base = NonNull::new(std::cell::UnsafeCell::raw_get(mem.0.as_ptr())).unwrap();
        let free: Vec<u64> = (0..frames as u64).map(|i| i * 2048).collect();
        let owner: Arc<dyn Any + Send + Sync> = Arc::new(mem);
        // SAFETY: the memory lives as long as its owner, which the pool keeps; every
        // offset is a frame start, and nothing else uses the memory.
        let r = unsafe { pool.register_region(base, frames * 2048, 2048, &free, &owner) };
        (r, base)
    }

    #[test]
    fn region_frames_back_packets_without_a_copy_and_return_when_dropped() {
        let pool = PacketPool::new(2);
        let (r, base) = region(&pool, 4);
        assert_eq!(pool.frames_free(r), 4);
        let f = pool.take_frame(r).unwrap();
        // SAFETY: `f` was taken from the pool and backs nothing else; 256 + 60 <= 2048.
        let mut p = unsafe { pool.frame_packet(r, f, 256, 60) };
        assert_eq!(pool.frames_free(r), 3);
        assert_eq!((p.len(), p.headroom(), p.tailroom()), (60, 256, 2048 - 316));
        p.data_mut()[0] = 0xab;
        // SAFETY: reading the region's memory where the packet wrote, for the test.
        let written = unsafe { *base.as_ptr().add(f as usize + 256) };
        assert_eq!(written, 0xab, "no copy: the frame itself");
        assert!(p.push_front(4).is_some());
        assert!(p.extend_from_slice(&[1, 2, 3]));
        assert_eq!(p.len(), 67);
        assert_eq!(p.frame_of(base), Some(f));
        assert_eq!(pool.available(), 2, "no pool buffer used");
        drop(p);
        assert_eq!(pool.frames_free(r), 4, "the frame went back to its region");
        // Registering the same memory again keeps its id and free list.
        let g = pool.take_frame(r).unwrap();
        let other: Arc<dyn Any + Send + Sync> = Arc::new(());
        // SAFETY: the same memory, already registered: only `g`, which the test took
        // and nothing uses, is added.
        let again = unsafe { pool.register_region(base, 4 * 2048, 2048, &[g], &other) };
        assert_eq!(again, r);
        assert_eq!(pool.frames_free(r), 4);
        assert_eq!(pool.take_frame(r), Some(g));
        pool.give_frame(r, g);
        assert_eq!(pool.frames_free(r), 4);
        // The list never grows past the region's frames (a frame given twice by a
        // driver bug is not stored beyond them).
        pool.give_frame(r, g);
        assert_eq!(pool.frames_free(r), 4);
    }

    #[test]
    fn a_released_frame_stays_with_the_driver_and_pool_packets_cannot_be_released() {
        let pool = PacketPool::new(1);
        let (r, base) = region(&pool, 2);
        let f = pool.take_frame(r).unwrap();
        // SAFETY: as above.
        let p = unsafe { pool.frame_packet(r, f, 300, 100) };
        assert_eq!(p.release_frame().unwrap(), (f, 300, 100));
        assert_eq!(pool.frames_free(r), 1, "the driver holds it until sent");
        pool.give_frame(r, f);
        assert_eq!(pool.frames_free(r), 2);
        let q = pool.alloc_from(&[5; 10]).unwrap();
        assert_eq!(q.frame_of(base), None);
        let q = q.release_frame().unwrap_err();
        assert_eq!(q.data(), &[5; 10]);
        drop(q);
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn a_region_frame_is_handed_over_by_copy_and_goes_back_to_its_region() {
        let (a, b) = (PacketPool::new(1), PacketPool::new(1));
        let (r, _) = region(&a, 1);
        let f = a.take_frame(r).unwrap();
        // SAFETY: as above.
        let mut p = unsafe { a.frame_packet(r, f, 256, 5) };
        p.data_mut().copy_from_slice(&[1, 2, 3, 4, 5]);
        p.meta.port = 2;
        let mut slot = HandedFrame::new();
        p.hand_over(&mut slot);
        assert_eq!(a.frames_free(r), 1);
        assert_eq!(a.available(), 1);
        assert_eq!(slot.data(), &[1, 2, 3, 4, 5]);
        let q = b.adopt(&mut slot).unwrap();
        assert_eq!((q.data(), q.meta.port), (&[1u8, 2, 3, 4, 5][..], 2));
    }

    #[test]
    fn clones_come_from_the_same_pool() {
        let pool = PacketPool::new(2);
        let p = pool.alloc_from(&[7; 10]).unwrap();
        let q = p.try_clone().unwrap();
        assert_eq!(q.data(), p.data());
        assert_eq!(pool.available(), 0);
    }
}
