//! The retransmission queue: one record per segment sent and not yet cumulatively
//! acknowledged, with its last transmission time and its SACK, loss and retransmission
//! marks (RFC 6675's scoreboard kept per segment, as RACK (RFC 8985) needs).
//!
//! The queue also keeps the totals the RFC 6675 `pipe` is made of: bytes SACKed, bytes
//! marked lost and bytes of retransmissions in flight, so `pipe` costs nothing per ACK.
//! Its storage is reserved when the connection gets its send buffer; records are
//! inserted only to split a segment that is SACKed in part or resent shorter.

use std::collections::VecDeque;

use super::rate::{DeliveredSeg, SampleSource, SegRate};
use super::seq;

/// Marks on a segment record.
pub mod mark {
    /// The peer SACKed it.
    pub const SACKED: u8 = 1 << 0;
    /// Deemed lost (RACK, duplicate ACKs, a partial ACK, or a timeout), not SACKed since.
    pub const LOST: u8 = 1 << 1;
    /// A retransmission of it is in flight (until SACKed, acknowledged or deemed lost).
    pub const RETRANS: u8 = 1 << 2;
    /// It was retransmitted at least once (its RTT samples are ambiguous).
    pub const EVER_RETRANS: u8 = 1 << 3;
    /// It carries our FIN (its last sequence number).
    pub const FIN: u8 = 1 << 4;
}

/// One segment sent: `[start, end)` in sequence space (a FIN counts one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegRec {
    /// First sequence number.
    pub start: u32,
    /// One past the last sequence number.
    pub end: u32,
    /// When it was last (re)transmitted, in nanoseconds of the stack's clock.
    pub sent: u64,
    /// See [`mark`].
    pub marks: u8,
    /// The delivery state at its last transmission (delivery rate estimation).
    pub rate: SegRate,
}

impl SegRec {
    /// Sequence space it covers.
    #[inline]
    pub fn len(&self) -> usize {
        seq::dist(self.start, self.end)
    }

    /// True for an empty record (never stored).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True if mark `m` is set.
    #[inline]
    pub fn has(&self, m: u8) -> bool {
        self.marks & m != 0
    }
}

/// What one ACK newly delivered, cumulatively or by SACK: the input of RACK, PRR and
/// the RTT estimator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Bytes newly delivered (cumulatively acknowledged and not SACKed before, or newly
    /// SACKed): RFC 6937 `DeliveredData`.
    pub bytes: usize,
    /// Of those, bytes newly SACKed.
    pub sacked: usize,
    /// The most recently sent segment delivered: (sent, end, retransmitted).
    pub latest: Option<(u64, u32, bool)>,
    /// Send time of the most recently sent delivered segment never retransmitted: an
    /// unambiguous RTT sample (Karn).
    pub rtt_sent: Option<u64>,
    /// A segment never retransmitted was delivered below one SACKed before: the network
    /// reordered (RFC 8985 section 6.2 step 3).
    pub reordered: bool,
    /// The segment a delivery rate sample is taken from.
    pub src: SampleSource,
    /// The RFC 6675 pipe before the ACK was processed (set by the caller).
    pub prior_flight: usize,
}

impl Delivered {
    fn note(&mut self, r: &SegRec, fack: Option<u32>) {
        let re = r.has(mark::EVER_RETRANS);
        self.src.note(DeliveredSeg {
            sent: r.sent,
            end: r.end,
            rate: r.rate,
            retransmitted: re,
        });
        let newer = match self.latest {
            None => true,
            Some((t, e, _)) => r.sent > t || (r.sent == t && seq::gt(r.end, e)),
        };
        if newer {
            self.latest = Some((r.sent, r.end, re));
        }
        if !re {
            if self.rtt_sent.is_none_or(|t| r.sent > t) {
                self.rtt_sent = Some(r.sent);
            }
            if fack.is_some_and(|f| seq::lt(r.end, f)) {
                self.reordered = true;
            }
        }
    }
}

/// The records of the segments in flight, lowest sequence first.
#[derive(Debug, Default)]
pub struct RtxQueue {
    q: VecDeque<SegRec>,
    sacked: usize,
    lost: usize,
    retrans: usize,
    /// The end of the highest SACKed segment (RACK.fack), while any is SACKed.
    fack: Option<u32>,
}

impl RtxQueue {
    /// Reserves room for `n` records (when the send buffer is allocated).
    pub fn reserve(&mut self, n: usize) {
        if self.q.capacity() < n {
            self.q.reserve_exact(n - self.q.len());
        }
    }

    /// Records held.
    #[inline]
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// True when nothing is in flight.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Bytes of record storage held.
    pub fn storage_bytes(&self) -> usize {
        self.q.capacity() * std::mem::size_of::<SegRec>()
    }

    /// Records the storage holds without growing.
    pub fn capacity(&self) -> usize {
        self.q.capacity()
    }

    /// Gives the storage back when nothing is in flight (an idle connection).
    pub fn shrink(&mut self) {
        if self.q.is_empty() {
            self.q = VecDeque::new();
            self.clear();
        }
    }

    /// The record at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&SegRec> {
        self.q.get(i)
    }

    /// The records, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = &SegRec> {
        self.q.iter()
    }

    /// Bytes SACKed.
    #[inline]
    pub fn sacked_bytes(&self) -> usize {
        self.sacked
    }

    /// Bytes marked lost and not SACKed (retransmitted or not).
    #[inline]
    pub fn lost_bytes(&self) -> usize {
        self.lost
    }

    /// Bytes of retransmissions in flight.
    #[inline]
    pub fn retrans_bytes(&self) -> usize {
        self.retrans
    }

    /// The end of the highest SACKed segment.
    pub fn fack(&self) -> Option<u32> {
        self.fack
    }

    /// RFC 6675 `pipe` given the bytes outstanding: what is neither SACKed nor lost,
    /// plus the retransmissions in flight.
    #[inline]
    pub fn pipe(&self, outstanding: usize) -> usize {
        (outstanding + self.retrans).saturating_sub(self.sacked + self.lost)
    }

    /// Records a new segment `[start, end)` sent at `now` (ns) with the delivery state
    /// `rate` of that moment.
    pub fn push(&mut self, start: u32, end: u32, now: u64, fin: bool, rate: SegRate) {
        if start == end {
            return;
        }
        if let Some(last) = self.q.back() {
            if seq::lt(start, last.end) {
                return;
            }
        }
        self.q.push_back(SegRec {
            start,
            end,
            sent: now,
            marks: if fin { mark::FIN } else { 0 },
            rate,
        });
    }

    /// Index of the record holding sequence number `s`.
    pub fn find(&self, s: u32) -> Option<usize> {
        let i = self.q.partition_point(|r| seq::le(r.end, s));
        self.q.get(i).filter(|r| seq::le(r.start, s)).map(|_| i)
    }

    /// Splits record `i` at `at` (strictly inside it); both halves keep its marks (the
    /// FIN stays with the second) and its time.
    pub fn split(&mut self, i: usize, at: u32) {
        let r = self.q[i];
        debug_assert!(seq::lt(r.start, at) && seq::lt(at, r.end));
        let mut first = r;
        first.end = at;
        first.marks &= !mark::FIN;
        self.q[i].start = at;
        self.q.insert(i, first);
    }

    /// Removes what `una` cumulatively acknowledges, noting deliveries in `d`.
    pub fn ack(&mut self, una: u32, d: &mut Delivered) {
        while let Some(r) = self.q.front().copied() {
            if seq::le(r.end, una) {
                self.q.pop_front();
                self.forget(&r, r.len());
                if !r.has(mark::SACKED) {
                    d.bytes += r.len();
                    d.note(&r, self.fack);
                }
            } else {
                if seq::lt(r.start, una) {
                    let cut = seq::dist(r.start, una);
                    self.forget(&r, cut);
                    if !r.has(mark::SACKED) {
                        d.bytes += cut;
                        d.note(&r, self.fack);
                    }
                    self.q[0].start = una;
                }
                break;
            }
        }
        if self.sacked == 0 {
            self.fack = None;
        }
    }

    fn forget(&mut self, r: &SegRec, n: usize) {
        if r.has(mark::SACKED) {
            self.sacked -= n;
        } else {
            if r.has(mark::LOST) {
                self.lost -= n;
            }
            if r.has(mark::RETRANS) {
                self.retrans -= n;
            }
        }
    }

    /// Marks what the SACK `blocks` cover (only inside `(una, snd_max]`), splitting
    /// records a block covers in part. Notes deliveries in `d`.
    pub fn sack(&mut self, una: u32, snd_max: u32, blocks: &[(u32, u32)], d: &mut Delivered) {
        let fack_before = self.fack;
        for &(l, r) in blocks {
            if !seq::lt(l, r) || seq::le(r, una) || seq::gt(r, snd_max) {
                continue;
            }
            let l = seq::max(l, una);
            let mut i = self.q.partition_point(|x| seq::le(x.end, l));
            while i < self.q.len() && seq::lt(self.q[i].start, r) {
                let x = self.q[i];
                if x.has(mark::SACKED) {
                    i += 1;
                    continue;
                }
                if seq::lt(x.start, l) {
                    self.split(i, l);
                    i += 1;
                    continue;
                }
                if seq::gt(x.end, r) {
                    self.split(i, r);
                }
                let x = self.q[i];
                let n = x.len();
                self.forget(&x, n);
                self.q[i].marks = (x.marks | mark::SACKED) & !(mark::LOST | mark::RETRANS);
                self.sacked += n;
                d.bytes += n;
                d.sacked += n;
                d.note(&x, fack_before);
                if self.fack.is_none_or(|f| seq::gt(x.end, f)) {
                    self.fack = Some(x.end);
                }
                i += 1;
            }
        }
    }

    /// Marks record `i` lost (unless SACKed). A retransmission of it in flight is lost
    /// too: returns true if one was.
    pub fn mark_lost(&mut self, i: usize) -> bool {
        let r = self.q[i];
        if r.has(mark::SACKED) {
            return false;
        }
        let n = r.len();
        if !r.has(mark::LOST) {
            self.lost += n;
        }
        let lost_rxt = r.has(mark::RETRANS);
        if lost_rxt {
            self.retrans -= n;
        }
        self.q[i].marks = (r.marks | mark::LOST) & !mark::RETRANS;
        lost_rxt
    }

    /// Forgets every loss mark (an episode undone); retransmissions stay in flight.
    pub fn unmark_lost(&mut self) {
        for r in self.q.iter_mut() {
            r.marks &= !mark::LOST;
        }
        self.lost = 0;
    }

    /// Marks every record not SACKed lost (a retransmission timeout).
    pub fn mark_all_lost(&mut self) {
        for i in 0..self.q.len() {
            self.mark_lost(i);
        }
    }

    /// Notes that record `i` was just retransmitted at `now`, with the delivery state
    /// `rate` of that moment.
    pub fn retransmitted(&mut self, i: usize, now: u64, counts_in_pipe: bool, rate: SegRate) {
        let r = self.q[i];
        let mut m = r.marks | mark::EVER_RETRANS;
        if counts_in_pipe && !r.has(mark::RETRANS) && !r.has(mark::SACKED) {
            m |= mark::RETRANS;
            self.retrans += r.len();
        }
        self.q[i].marks = m;
        self.q[i].sent = now;
        self.q[i].rate = rate;
    }

    /// The first record marked lost whose retransmission is not in flight.
    pub fn next_lost(&self) -> Option<usize> {
        if self.lost <= self.retrans {
            // Every lost byte is being retransmitted (lost ⊇ retransmitted in flight).
            return None;
        }
        self.q
            .iter()
            .position(|r| r.marks & (mark::LOST | mark::RETRANS | mark::SACKED) == mark::LOST)
    }

    /// Forgets every mark and record (the connection ends).
    pub fn clear(&mut self) {
        self.q.clear();
        self.sacked = 0;
        self.lost = 0;
        self.retrans = 0;
        self.fack = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u32) -> RtxQueue {
        let mut q = RtxQueue::default();
        for i in 0..n {
            q.push(
                1000 + i * 100,
                1100 + i * 100,
                i as u64,
                false,
                SegRate::default(),
            );
        }
        q
    }

    #[test]
    fn sack_marks_and_splits() {
        let mut x = q(5); // 1000..1500
        let mut d = Delivered::default();
        x.sack(1000, 1500, &[(1150, 1300)], &mut d);
        assert_eq!(d.bytes, 150);
        assert_eq!(x.sacked_bytes(), 150);
        assert_eq!(x.len(), 6, "the second record was split at 1150");
        assert_eq!(x.fack(), Some(1300));
        assert_eq!(x.pipe(500), 350);
        // A later never-resent segment delivered below fack: reordering.
        let mut d = Delivered::default();
        x.sack(1000, 1500, &[(1000, 1100)], &mut d);
        assert!(d.reordered);
        let mut d = Delivered::default();
        x.ack(1300, &mut d);
        assert_eq!(d.bytes, 50, "only 1100..1150 was not SACKed before");
        assert_eq!((x.sacked_bytes(), x.len()), (0, 2));
        assert_eq!(x.fack(), None);
    }

    #[test]
    fn lost_and_retransmitted_bookkeeping() {
        let mut x = q(4);
        x.mark_lost(0);
        x.mark_lost(2);
        assert_eq!(x.lost_bytes(), 200);
        assert_eq!(x.pipe(400), 200);
        assert_eq!(x.next_lost(), Some(0));
        x.retransmitted(0, 10, true, SegRate::default());
        assert_eq!(x.pipe(400), 300);
        assert_eq!(x.next_lost(), Some(2));
        // The retransmission is lost as well.
        assert!(x.mark_lost(0));
        assert_eq!(x.next_lost(), Some(0));
        assert_eq!(x.retrans_bytes(), 0);
        // SACK of a lost segment clears its loss.
        let mut d = Delivered::default();
        x.sack(1000, 1400, &[(1200, 1300)], &mut d);
        assert_eq!(x.lost_bytes(), 100);
        let mut d = Delivered::default();
        x.ack(1400, &mut d);
        assert_eq!(
            (x.lost_bytes(), x.sacked_bytes(), x.retrans_bytes()),
            (0, 0, 0)
        );
        assert!(x.is_empty());
    }

    #[test]
    fn a_record_stays_small() {
        // One per segment in flight, with the delivery rate state: 32 bytes.
        assert_eq!(std::mem::size_of::<SegRec>(), 32);
    }

    #[test]
    fn partial_ack_trims_the_front() {
        let mut x = q(2);
        let mut d = Delivered::default();
        x.ack(1050, &mut d);
        assert_eq!(d.bytes, 50);
        assert_eq!(x.get(0).unwrap().start, 1050);
        assert_eq!(x.find(1120), Some(1));
        assert_eq!(x.find(1200), None);
    }
}
