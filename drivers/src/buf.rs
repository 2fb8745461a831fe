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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::ManuallyDrop;
use std::rc::Rc;

/// Size in bytes of every packet buffer: a full Ethernet frame with VLAN tag and headroom.
pub const BUF_SIZE: usize = 2048;
/// Bytes kept free in front of a received frame for headers pushed later.
pub const BUF_HEADROOM: usize = 128;
/// Largest frame a buffer can hold.
pub const MAX_FRAME: usize = BUF_SIZE - BUF_HEADROOM;

type Storage = Box<[u8; BUF_SIZE]>;

struct PoolInner {
    free: RefCell<Vec<Storage>>,
    capacity: usize,
    exhausted: Cell<u64>,
}

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
                buf: ManuallyDrop::new(buf),
                start: BUF_HEADROOM as u16,
                len: 0,
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
        std::mem::swap::<Storage>(&mut pkt.buf, &mut slot.buf);
        pkt.start = slot.start;
        pkt.len = slot.len;
        pkt.meta = slot.meta;
        slot.start = BUF_HEADROOM as u16;
        slot.len = 0;
        slot.meta = PacketMeta::default();
        Some(pkt)
    }
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

/// One frame in a pooled buffer. Dropping it returns the buffer to its pool.
pub struct Packet {
    buf: ManuallyDrop<Storage>,
    start: u16,
    len: u16,
    pool: Rc<PoolInner>,
    /// Metadata set by the driver and the worker.
    pub meta: PacketMeta,
}

impl Packet {
    /// The frame's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let s = self.start as usize;
        &self.buf[s..s + self.len as usize]
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let s = self.start as usize;
        &mut self.buf[s..s + self.len as usize]
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
        BUF_SIZE - self.start as usize - self.len as usize
    }

    /// Sets the frame length, keeping its start; bytes exposed by growing keep whatever
    /// the buffer held. Clamped to the room after the start.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        let room = BUF_SIZE - self.start as usize;
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
        let s = self.start as usize;
        Some(&mut self.buf[s..s + n])
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
        let end = self.start as usize + self.len as usize;
        self.buf[end..end + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u16;
        true
    }

    /// Resets the packet to an empty frame with full headroom, keeping the buffer.
    #[inline]
    pub fn reset(&mut self) {
        self.start = BUF_HEADROOM as u16;
        self.len = 0;
        self.meta = PacketMeta::default();
    }

    /// Moves this packet's frame into `slot` without copying it: the packet's buffer
    /// and the slot's (empty) buffer swap places, and the packet, now holding the
    /// slot's old buffer, goes back to its pool. The frame can then cross to another
    /// thread inside `slot` (see [`HandedFrame`]); whatever `slot` held is discarded.
    #[inline]
    pub fn hand_over(mut self, slot: &mut HandedFrame) {
        std::mem::swap::<Storage>(&mut self.buf, &mut slot.buf);
        slot.start = self.start;
        slot.len = self.len;
        slot.meta = self.meta;
    }

    /// Copies this packet into a new buffer from `pool` (used to duplicate frames).
    pub fn copy_into(&self, pool: &PacketPool) -> Option<Packet> {
        let mut p = pool.alloc_from(self.data())?;
        p.meta = self.meta;
        Some(p)
    }

    /// Copies this packet into a new buffer from its own pool.
    pub fn try_clone(&self) -> Option<Packet> {
        let pool = PacketPool {
            inner: self.pool.clone(),
        };
        self.copy_into(&pool)
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        // SAFETY: `buf` is never used again after this point; `drop` runs once.
        let buf = unsafe { ManuallyDrop::take(&mut self.buf) };
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

    #[test]
    fn clones_come_from_the_same_pool() {
        let pool = PacketPool::new(2);
        let p = pool.alloc_from(&[7; 10]).unwrap();
        let q = p.try_clone().unwrap();
        assert_eq!(q.data(), p.data());
        assert_eq!(pool.available(), 0);
    }
}
