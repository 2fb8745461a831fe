//! Byte buffers of a connection: a fixed ring allocated once at connection setup, and
//! the out-of-order range list ([`Assembler`]) of the receive side.

use super::seq;

/// A fixed-capacity byte ring. The send side keeps unacknowledged and unsent bytes in
/// order; the receive side keeps in-order bytes the application has not read, and
/// out-of-order bytes at their offset past them ("unallocated" space).
#[derive(Debug, Default)]
pub struct RingBuffer {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// A ring of `cap` bytes (allocates once).
    pub fn new(cap: usize) -> Self {
        RingBuffer {
            buf: vec![0; cap].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    #[inline]
    pub fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Gives the storage back (for reuse) and leaves an empty, zero-capacity ring.
    pub fn take_storage(&mut self) -> Box<[u8]> {
        self.head = 0;
        self.len = 0;
        std::mem::take(&mut self.buf)
    }

    /// A ring over storage obtained earlier from [`RingBuffer::take_storage`].
    pub fn from_storage(buf: Box<[u8]>) -> Self {
        RingBuffer {
            buf,
            head: 0,
            len: 0,
        }
    }

    /// Appends as much of `data` as fits; returns the number of bytes taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.len += n;
        n
    }

    /// Writes `data` at `offset` past the held bytes without making it part of them;
    /// returns how many bytes fitted.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.buf.len();
        if cap == 0 || offset >= self.free() {
            return 0;
        }
        let n = data.len().min(self.free() - offset);
        let start = (self.head + self.len + offset) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Makes `n` bytes written with [`RingBuffer::write_at`] part of the held bytes.
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Copies held bytes from `offset` into `dst` without removing them; returns the count.
    pub fn peek(&self, offset: usize, dst: &mut [u8]) -> usize {
        let cap = self.buf.len();
        if offset >= self.len {
            return 0;
        }
        let n = dst.len().min(self.len - offset);
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        dst[..first].copy_from_slice(&self.buf[start..start + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Removes up to `n` bytes from the front; returns the count.
    pub fn discard(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        if n > 0 {
            self.head = (self.head + n) % self.buf.len();
            self.len -= n;
        }
        // `head` is not reset when empty: bytes written ahead (out of order) sit at
        // positions relative to it.
        n
    }

    /// Moves held bytes into `dst`; returns the count.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = self.peek(0, dst);
        self.discard(n)
    }
}

/// Most out-of-order ranges kept; a segment that would need more is dropped.
pub const MAX_RANGES: usize = 6;

/// Out-of-order byte ranges received past `rcv_nxt`, most recently changed first (the
/// order RFC 2018 asks for SACK blocks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Assembler {
    ranges: [(u32, u32); MAX_RANGES],
    n: u8,
}

impl Assembler {
    /// True when no range is held.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The ranges, most recently changed first.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.n as usize]
    }

    /// Records `[start, end)`; returns false (and records nothing) when a new range is
    /// needed and the list is full.
    pub fn add(&mut self, start: u32, end: u32) -> bool {
        let (mut s, mut e) = (start, end);
        let mut i = 0;
        let mut merged = false;
        while i < self.n as usize {
            let (rs, re) = self.ranges[i];
            if seq::le(rs, e) && seq::le(s, re) {
                s = seq::min(s, rs);
                e = seq::max(e, re);
                self.remove(i);
                merged = true;
            } else {
                i += 1;
            }
        }
        if !merged && self.n as usize == MAX_RANGES {
            return false;
        }
        self.ranges.copy_within(0..self.n as usize, 1);
        self.ranges[0] = (s, e);
        self.n += 1;
        true
    }

    fn remove(&mut self, i: usize) {
        self.ranges.copy_within(i + 1..self.n as usize, i);
        self.n -= 1;
    }

    /// Drops what `rcv_nxt` has passed and returns the end of a range that now continues
    /// the in-order data, if any.
    pub fn advance(&mut self, rcv_nxt: u32) -> Option<u32> {
        let mut out = None;
        let mut i = 0;
        while i < self.n as usize {
            let (s, e) = self.ranges[i];
            if seq::le(s, rcv_nxt) {
                if seq::gt(e, rcv_nxt) {
                    out = Some(e);
                }
                self.remove(i);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.n = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_writes_ahead() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.write(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(r.write(b"ghijklmn"), 6);
        assert_eq!(r.free(), 0);
        let mut all = [0u8; 8];
        assert_eq!(r.peek(1, &mut all), 7);
        assert_eq!(&all[..7], b"fghijkl");
        r.discard(8);
        assert!(r.is_empty());
        assert_eq!(r.write_at(3, b"xyz"), 3);
        assert_eq!(r.write_at(7, b"xyz"), 1);
        assert_eq!(r.write(b"abc"), 3);
        r.commit(3);
        assert_eq!(r.read(&mut all), 6);
        assert_eq!(&all[..6], b"abcxyz");
    }

    #[test]
    fn assembler_merges_orders_by_recency_and_advances() {
        let mut a = Assembler::default();
        assert!(a.add(10, 20));
        assert!(a.add(30, 40));
        assert_eq!(a.ranges(), &[(30, 40), (10, 20)]);
        assert!(a.add(20, 30));
        assert_eq!(a.ranges(), &[(10, 40)]);
        for i in 0..5 {
            assert!(a.add(100 + i * 10, 105 + i * 10));
        }
        assert!(!a.add(200, 210), "list full");
        assert_eq!(a.advance(5), None);
        assert_eq!(a.advance(10), Some(40));
        assert_eq!(a.ranges().len(), 5);
        a.clear();
        assert!(a.is_empty());
    }
}
