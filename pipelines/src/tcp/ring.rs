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

    /// The held bytes in order, without copying: the second slice is non-empty only
    /// when they wrap around the end of the storage.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if self.len == 0 {
            return (&[], &[]);
        }
        let first = self.len.min(cap - self.head);
        (
            &self.buf[self.head..self.head + first],
            &self.buf[..self.len - first],
        )
    }

    /// The free space after the held bytes, in order, writable in place (fill a prefix,
    /// then [`RingBuffer::commit`] its length). The second slice is non-empty only when
    /// the space wraps. On a receive ring, out-of-order bytes may already sit there.
    pub fn free_slices_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let cap = self.buf.len();
        if cap == 0 {
            return (&mut [], &mut []);
        }
        let free = self.free();
        let start = (self.head + self.len) % cap;
        let first = free.min(cap - start);
        let (before, after) = self.buf.split_at_mut(start);
        (&mut after[..first], &mut before[..free - first])
    }

    /// Up to `n` contiguous free bytes right after the held ones, writable in place;
    /// shorter when the space wraps or is short. Fill a prefix, then
    /// [`RingBuffer::commit`] its length.
    pub fn reserve(&mut self, n: usize) -> &mut [u8] {
        let (first, _) = self.free_slices_mut();
        let n = n.min(first.len());
        &mut first[..n]
    }

    /// Removes `n` bytes from the front after they were used in place through
    /// [`RingBuffer::as_slices`]; returns the count (at most what is held).
    pub fn consume(&mut self, n: usize) -> usize {
        self.discard(n)
    }
}

/// Moves up to `max` held bytes from the front of `src` to the end of `dst`, with one
/// copy (ring to ring, at most four contiguous pieces); returns the count, bounded by
/// what `src` holds and the room `dst` has.
pub fn move_bytes(src: &mut RingBuffer, dst: &mut RingBuffer, max: usize) -> usize {
    let mut moved = 0;
    {
        let (a, b) = src.as_slices();
        let (x, y) = dst.free_slices_mut();
        let mut want = max.min(a.len() + b.len()).min(x.len() + y.len());
        let (mut from, mut from_next) = (a, b);
        let (mut to, mut to_next) = (x, y);
        while want > 0 {
            if from.is_empty() {
                from = std::mem::take(&mut from_next);
            }
            if to.is_empty() {
                to = std::mem::take(&mut to_next);
            }
            let n = want.min(from.len()).min(to.len());
            to[..n].copy_from_slice(&from[..n]);
            from = &from[n..];
            to = &mut std::mem::take(&mut to)[n..];
            moved += n;
            want -= n;
        }
    }
    dst.commit(moved);
    src.discard(moved);
    moved
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

    /// True when one range holds all of `[start, end)` (a duplicate of data held).
    pub fn covers(&self, start: u32, end: u32) -> bool {
        self.ranges()
            .iter()
            .any(|&(s, e)| seq::le(s, start) && seq::le(end, e))
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

    /// A ring of `cap` bytes whose held bytes are `held`, starting at storage offset
    /// `head` (so they can be made to wrap).
    fn ring_at(cap: usize, head: usize, held: &[u8]) -> RingBuffer {
        let mut r = RingBuffer::new(cap);
        r.write(&vec![0; head]);
        r.discard(head);
        assert_eq!(r.write(held), held.len());
        r
    }

    fn contents(r: &RingBuffer) -> Vec<u8> {
        let (a, b) = r.as_slices();
        [a, b].concat()
    }

    #[test]
    fn slices_show_held_and_free_bytes_in_order_across_the_wrap() {
        let r = ring_at(8, 6, b"abcde");
        let (a, b) = r.as_slices();
        assert_eq!((a, b), (&b"ab"[..], &b"cde"[..]));
        let mut r = ring_at(8, 2, b"abc");
        assert_eq!(r.as_slices(), (&b"abc"[..], &b""[..]));
        {
            let (x, y) = r.free_slices_mut();
            assert_eq!((x.len(), y.len()), (3, 2));
            x[..2].copy_from_slice(b"de");
        }
        r.commit(2);
        assert_eq!(contents(&r), b"abcde");
        let got = r.reserve(10);
        assert_eq!(got.len(), 1, "contiguous up to the end of the storage");
        got[0] = b'f';
        r.commit(1);
        assert_eq!(r.reserve(10).len(), 2, "then from the start");
        assert_eq!(r.consume(4), 4);
        assert_eq!(contents(&r), b"ef");
        assert_eq!(r.consume(9), 2);
        assert_eq!(r.as_slices(), (&b""[..], &b""[..]));
        let mut empty = RingBuffer::default();
        assert_eq!(empty.reserve(4).len(), 0);
        assert_eq!(empty.as_slices(), (&b""[..], &b""[..]));
    }

    #[test]
    fn move_bytes_copies_across_wraps_on_both_sides() {
        // Source wraps after 2 bytes, destination space wraps after 3.
        let mut src = ring_at(8, 6, b"abcdefg");
        let mut dst = ring_at(8, 4, b"x");
        assert_eq!(dst.free(), 7);
        assert_eq!(move_bytes(&mut src, &mut dst, usize::MAX), 7);
        assert_eq!(contents(&dst), b"xabcdefg");
        assert!(src.is_empty());
        // Every head offset of both rings, every length, every limit.
        for sh in 0..6 {
            for dh in 0..6 {
                for held in 0..=6usize {
                    for max in [0, 1, 3, 6, 100] {
                        let data: Vec<u8> = (0..held as u8).map(|i| b'a' + i).collect();
                        let mut src = ring_at(6, sh, &data);
                        let mut dst = ring_at(6, dh, b"zz");
                        let n = move_bytes(&mut src, &mut dst, max);
                        assert_eq!(n, held.min(4).min(max));
                        let mut want = b"zz".to_vec();
                        want.extend_from_slice(&data[..n]);
                        assert_eq!(contents(&dst), want, "sh={sh} dh={dh} held={held}");
                        assert_eq!(contents(&src), &data[n..]);
                    }
                }
            }
        }
    }

    #[test]
    fn move_bytes_stops_at_partial_and_zero_room() {
        let mut src = ring_at(16, 0, b"0123456789");
        let mut dst = ring_at(8, 0, b"abcde");
        assert_eq!(move_bytes(&mut src, &mut dst, 100), 3, "partial room");
        assert_eq!(contents(&dst), b"abcde012");
        assert_eq!(contents(&src), b"3456789");
        assert_eq!(move_bytes(&mut src, &mut dst, 100), 0, "zero room");
        assert_eq!(contents(&src), b"3456789", "nothing lost");
        let mut none = RingBuffer::default();
        assert_eq!(move_bytes(&mut src, &mut none, 100), 0, "no storage");
        let mut empty = RingBuffer::new(4);
        let mut dst = RingBuffer::new(4);
        assert_eq!(move_bytes(&mut empty, &mut dst, 100), 0, "nothing held");
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
