//! Proportional Rate Reduction (RFC 6937): how much may be sent on each ACK during fast
//! recovery, so the window comes down to `ssthresh` smoothly, in step with what the
//! peer reports delivered, instead of stopping dead and then bursting (RFC 6675 alone) or
//! collapsing when many segments are lost at once (PRR's slow-start reduction bound).

/// PRR's per-recovery state, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prr {
    /// The flight size when recovery began (RecoverFS).
    recover_fs: usize,
    /// Bytes delivered to the peer since then (prr_delivered).
    delivered: usize,
    /// Bytes sent since then (prr_out).
    out: usize,
}

impl Prr {
    /// Starts a recovery episode with `flight` bytes outstanding.
    pub fn start(&mut self, flight: usize) {
        *self = Prr {
            recover_fs: flight.max(1),
            delivered: 0,
            out: 0,
        };
    }

    /// Counts bytes (re)transmitted during recovery.
    #[inline]
    pub fn on_sent(&mut self, n: usize) {
        self.out += n;
    }

    /// On an ACK that delivered `delivered` bytes, with `pipe` bytes now in flight: the
    /// congestion window for this ACK (`pipe + sndcnt`, section 3).
    pub fn on_ack(&mut self, delivered: usize, pipe: usize, ssthresh: usize, mss: usize) -> usize {
        self.delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            // Proportional part: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let target =
                (self.delivered as u128 * ssthresh as u128).div_ceil(self.recover_fs as u128);
            (target as usize).saturating_sub(self.out)
        } else {
            // Slow-start reduction bound: catch up towards ssthresh, at most one MSS
            // more than was delivered.
            let limit = self.delivered.saturating_sub(self.out).max(delivered) + mss;
            (ssthresh - pipe).min(limit)
        };
        // The first ACK of recovery always lets the fast retransmission go (as Linux).
        let sndcnt = if self.out == 0 {
            sndcnt.max(mss)
        } else {
            sndcnt
        };
        pipe + sndcnt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_then_slow_start_bound() {
        let mss = 1000;
        let mut p = Prr::default();
        // 20 segments out, ssthresh 10: one segment sent per two delivered.
        p.start(20_000);
        let w = p.on_ack(1000, 18_000, 10_000, mss);
        assert_eq!(w, 19_000, "the first ACK sends the retransmission");
        p.on_sent(1000);
        assert_eq!(p.on_ack(1000, 17_000, 10_000, mss), 17_000);
        assert_eq!(p.on_ack(1000, 16_000, 10_000, mss), 16_000 + 500);
        p.on_sent(1000);
        // Pipe far below ssthresh after a burst loss: grow by at most delivered + MSS.
        assert_eq!(p.on_ack(1000, 4_000, 10_000, mss), 4_000 + 3_000);
    }
}
