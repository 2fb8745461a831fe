//! The sender's SACK scoreboard (RFC 2018, RFC 6675): which bytes past `snd_una` the
//! peer has reported holding, so recovery retransmits only the holes.

use super::seq;

/// Most SACKed ranges remembered; beyond that the highest are forgotten (they only make
/// recovery more conservative).
pub const SCOREBOARD_RANGES: usize = 8;

/// SACKed ranges past `snd_una`, sorted by start, disjoint and not adjacent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scoreboard {
    ranges: [(u32, u32); SCOREBOARD_RANGES],
    n: u8,
    sacked: u32,
}

impl Scoreboard {
    /// True when nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The ranges, lowest first.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.n as usize]
    }

    /// Bytes SACKed in total.
    pub fn sacked_bytes(&self) -> usize {
        self.sacked as usize
    }

    /// The end of the highest SACKed range.
    pub fn high_sacked(&self) -> Option<u32> {
        self.ranges().last().map(|r| r.1)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.n = 0;
        self.sacked = 0;
    }

    /// Adds the blocks of one ACK, ignoring any outside `(snd_una, snd_max]`, and drops
    /// what `snd_una` has passed. Returns the number of newly SACKed bytes.
    pub fn update(&mut self, snd_una: u32, snd_max: u32, blocks: &[(u32, u32)]) -> usize {
        let before = self.sacked;
        self.trim(snd_una);
        for &(l, r) in blocks {
            if !seq::lt(l, r) || seq::le(r, snd_una) || seq::gt(r, snd_max) {
                continue;
            }
            self.insert(seq::max(l, snd_una), r);
        }
        self.recount();
        self.sacked.saturating_sub(before) as usize
    }

    /// Drops ranges (or parts) below `snd_una`.
    pub fn trim(&mut self, snd_una: u32) {
        let mut w = 0;
        for i in 0..self.n as usize {
            let (l, r) = self.ranges[i];
            if seq::le(r, snd_una) {
                continue;
            }
            self.ranges[w] = (seq::max(l, snd_una), r);
            w += 1;
        }
        self.n = w as u8;
        self.recount();
    }

    fn recount(&mut self) {
        self.sacked = self.ranges().iter().map(|&(l, r)| r.wrapping_sub(l)).sum();
    }

    fn insert(&mut self, mut l: u32, mut r: u32) {
        // Merge with every overlapping or adjacent range, then insert in order.
        let mut i = 0;
        while i < self.n as usize {
            let (a, b) = self.ranges[i];
            if seq::le(a, r) && seq::le(l, b) {
                l = seq::min(l, a);
                r = seq::max(r, b);
                self.ranges.copy_within(i + 1..self.n as usize, i);
                self.n -= 1;
            } else {
                i += 1;
            }
        }
        let pos = self
            .ranges()
            .iter()
            .position(|&(a, _)| seq::gt(a, l))
            .unwrap_or(self.n as usize);
        if self.n as usize == SCOREBOARD_RANGES {
            if pos == SCOREBOARD_RANGES {
                return;
            }
            self.n -= 1;
        }
        self.ranges.copy_within(pos..self.n as usize, pos + 1);
        self.ranges[pos] = (l, r);
        self.n += 1;
    }

    /// If `s` lies in a SACKed range, that range's end.
    pub fn sacked_end(&self, s: u32) -> Option<u32> {
        self.ranges()
            .iter()
            .find(|&&(l, r)| seq::le(l, s) && seq::lt(s, r))
            .map(|r| r.1)
    }

    /// The start of the first SACKed range after `s`.
    pub fn next_sacked(&self, s: u32) -> Option<u32> {
        self.ranges()
            .iter()
            .find(|&&(l, _)| seq::gt(l, s))
            .map(|r| r.0)
    }

    /// The first hole at or after `from` that lies below the highest SACKed byte, as
    /// `[start, end)` (RFC 6675 NextSeg rule 1, with "lost" meaning "below a SACK").
    pub fn next_hole(&self, from: u32) -> Option<(u32, u32)> {
        let high = self.high_sacked()?;
        let mut s = from;
        while seq::lt(s, high) {
            match self.sacked_end(s) {
                Some(e) => s = e,
                None => return Some((s, self.next_sacked(s).unwrap_or(high))),
            }
        }
        None
    }

    /// Bytes of holes in `[from, high_sacked)`: the data deemed lost and not yet resent.
    pub fn hole_bytes_from(&self, from: u32) -> usize {
        let Some(high) = self.high_sacked() else {
            return 0;
        };
        let span = seq::dist(from, high);
        let sacked_above: usize = self
            .ranges()
            .iter()
            .map(|&(l, r)| seq::dist(seq::max(l, from), r))
            .sum();
        span.saturating_sub(sacked_above)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_holes_and_trims() {
        let mut s = Scoreboard::default();
        assert_eq!(s.update(1000, 9000, &[(3000, 4000), (5000, 6000)]), 2000);
        assert_eq!(s.update(1000, 9000, &[(3500, 5000)]), 1000);
        assert_eq!(s.ranges(), &[(3000, 6000)]);
        assert_eq!(
            s.update(1000, 9000, &[(7000, 9500)]),
            0,
            "beyond snd_max ignored"
        );
        s.update(1000, 9000, &[(7000, 8000)]);
        assert_eq!(s.next_hole(1000), Some((1000, 3000)));
        assert_eq!(s.next_hole(3000), Some((6000, 7000)));
        assert_eq!(s.next_hole(8000), None);
        assert_eq!(s.hole_bytes_from(1000), 3000);
        assert_eq!(s.hole_bytes_from(2000), 2000);
        assert_eq!(s.sacked_end(3100), Some(6000));
        assert_eq!(s.next_sacked(6500), Some(7000));
        s.trim(3500);
        assert_eq!(s.ranges(), &[(3500, 6000), (7000, 8000)]);
        assert_eq!(s.sacked_bytes(), 3500);
        s.trim(8000);
        assert!(s.is_empty());
    }

    #[test]
    fn keeps_lowest_ranges_when_full() {
        let mut s = Scoreboard::default();
        for i in 0..10u32 {
            s.update(0, 100_000, &[(1000 + i * 100, 1050 + i * 100)]);
        }
        assert_eq!(s.ranges().len(), SCOREBOARD_RANGES);
        assert_eq!(s.ranges()[0], (1000, 1050));
        assert_eq!(s.high_sacked(), Some(1750));
    }
}
