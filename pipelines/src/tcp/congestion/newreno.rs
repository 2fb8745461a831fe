//! NewReno congestion avoidance (RFC 5681 section 3.1): one segment per window of ACKed
//! bytes. The recovery part of RFC 6582 lives with loss detection in the connection.

/// NewReno's own state: bytes acknowledged since the window last grew.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewReno {
    acked: usize,
}

impl NewReno {
    /// The new window after `acked` bytes in congestion avoidance.
    pub fn on_ack(&mut self, cwnd: usize, mss: usize, acked: usize) -> usize {
        self.acked += acked;
        if self.acked >= cwnd {
            self.acked -= cwnd;
            cwnd + mss
        } else {
            cwnd
        }
    }
}
