//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, Linux's
//! `tcp_rate.c`): what BBR measures the path with.
//!
//! Every transmission (new data or a retransmission) records in its segment the
//! connection's delivery state at that moment ([`SegRate`]: bytes delivered so far, when
//! the last delivery happened, the send time of the most recently delivered segment,
//! and whether the sender was application-limited). Every ACK that delivers something,
//! cumulatively or by SACK, picks the most recently sent of the segments it delivered
//! and compares the connection's state now with the state recorded in that segment:
//! bytes delivered in between over the longer of the send phase and the ACK phase is
//! one [`RateSample`]. Taking the longer phase keeps ACK compression and stretched ACKs
//! from inflating the rate; intervals shorter than the minimum RTT are discarded.
//!
//! Bytes, not segments, are counted throughout; times are the stack's nanoseconds. The
//! state kept per segment is packed into 12 bytes (the retransmission queue holds one
//! per segment in flight): the delivered count's low 32 bits (differences wrap, so a
//! sample may span up to 4 GiB), microsecond offsets before the send (up to 17 minutes)
//! and two flags.

use super::seq;

/// The delivery state recorded in a segment when it is (re)transmitted. The default
/// holds no state (no sample is taken from it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegRate {
    /// The low 32 bits of [`RateState::delivered`] at the send.
    pub delivered: u32,
    /// Microseconds from [`RateState::delivered_time`] to the send (low 30 bits), and
    /// the flags [`SegRate::VALID`] and [`SegRate::APP_LIMITED`].
    pub delivered_ago: u32,
    /// Microseconds from [`RateState::first_sent_time`] (the start of the send phase)
    /// to the send.
    pub first_sent_ago_us: u32,
}

impl SegRate {
    /// The record holds a state.
    pub const VALID: u32 = 1 << 31;
    /// The sender was application-limited at the send.
    pub const APP_LIMITED: u32 = 1 << 30;
    const US: u32 = (1 << 30) - 1;

    /// True if it holds a state.
    #[inline]
    pub fn valid(&self) -> bool {
        self.delivered_ago & Self::VALID != 0
    }

    /// True if the sender was application-limited at the send.
    #[inline]
    pub fn app_limited(&self) -> bool {
        self.delivered_ago & Self::APP_LIMITED != 0
    }

    /// Microseconds from the last delivery to the send.
    #[inline]
    pub fn delivered_ago_us(&self) -> u32 {
        self.delivered_ago & Self::US
    }
}

fn us_before(now: u64, t: u64, max: u32) -> u32 {
    (now.saturating_sub(t) / 1000).min(max as u64) as u32
}

/// The connection's delivery state (the `tp->delivered*` fields of Linux).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateState {
    /// Bytes delivered (cumulatively acknowledged or SACKed) so far.
    pub delivered: u64,
    /// When `delivered` last grew (ns).
    pub delivered_time: u64,
    /// Send time of the most recently sent segment delivered so far (ns).
    pub first_sent_time: u64,
    /// Non-zero while application-limited: the `delivered` count after which the bubble
    /// is gone (samples of segments sent meanwhile are marked app-limited).
    pub app_limited: u64,
    /// Bytes marked lost so far (for BBR's long-term sampling).
    pub lost: u64,
}

/// One segment an ACK delivered, as the rate estimator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveredSeg {
    /// Its last transmission time (ns).
    pub sent: u64,
    /// One past its last sequence number.
    pub end: u32,
    /// What was recorded at that transmission.
    pub rate: SegRate,
    /// It was retransmitted.
    pub retransmitted: bool,
}

/// The segment a rate sample is taken from: the most recently sent among those one ACK
/// delivered (send time, then sequence as the tie-break).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleSource {
    /// The chosen segment, if the ACK delivered any that still carries its state.
    pub seg: Option<DeliveredSeg>,
}

impl SampleSource {
    /// Considers one delivered segment (Linux `tcp_rate_skb_delivered`).
    pub fn note(&mut self, s: DeliveredSeg) {
        if !s.rate.valid() {
            return;
        }
        let newer = match self.seg {
            None => true,
            Some(c) => s.sent > c.sent || (s.sent == c.sent && seq::gt(s.end, c.end)),
        };
        if newer {
            self.seg = Some(s);
        }
    }
}

/// What one ACK says about the delivery rate (Linux `struct rate_sample`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over the interval, `None` when no sample could be taken.
    pub delivered: Option<u64>,
    /// The interval (ns): the longer of the send and the ACK phase; `None` when invalid
    /// (no sample, or shorter than the minimum RTT).
    pub interval: Option<u64>,
    /// The delivery state at the send of the chosen segment.
    pub prior_delivered: u64,
    /// The chosen segment was sent while application-limited.
    pub app_limited: bool,
    /// The chosen segment was a retransmission.
    pub retransmitted: bool,
    /// Bytes this ACK newly delivered (acknowledged or SACKed).
    pub acked_sacked: u64,
    /// Bytes newly marked lost while processing this ACK.
    pub losses: u64,
    /// Flight before this ACK was processed (RFC 6675 pipe).
    pub prior_in_flight: u64,
    /// An RTT sample from a segment never retransmitted (ns), if any.
    pub rtt: Option<u64>,
}

impl RateSample {
    /// Delivery rate in bytes per second, when the sample is valid.
    pub fn rate(&self) -> Option<u64> {
        match (self.delivered, self.interval) {
            (Some(d), Some(i)) if i > 0 => Some((d as u128 * 1_000_000_000 / i as u128) as u64),
            _ => None,
        }
    }
}

impl RateState {
    /// The state to record in a segment sent at `now`; `nothing_out` when no segment was
    /// in flight before it (the send phase restarts, Linux `tcp_rate_skb_sent`).
    pub fn on_send(&mut self, now: u64, nothing_out: bool) -> SegRate {
        if nothing_out {
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        let limited = if self.app_limited != 0 {
            SegRate::APP_LIMITED
        } else {
            0
        };
        SegRate {
            delivered: self.delivered as u32,
            delivered_ago: us_before(now, self.delivered_time, SegRate::US)
                | SegRate::VALID
                | limited,
            first_sent_ago_us: us_before(now, self.first_sent_time, u32::MAX),
        }
    }

    /// The sender ran out of data with room in the window and nothing to repair: the
    /// delivery rate now says more about the application than the path (Linux
    /// `tcp_rate_check_app_limited`). `flight` is the RFC 6675 pipe.
    pub fn mark_app_limited(&mut self, flight: u64) {
        self.app_limited = (self.delivered + flight).max(1);
    }

    /// After an ACK: `delivered` bytes newly delivered, `lost` newly marked lost, `src`
    /// the segment to sample from, `min_rtt` (ns, 0 when unknown). Builds the sample
    /// (Linux `tcp_rate_gen`).
    pub fn on_ack(
        &mut self,
        now: u64,
        delivered: u64,
        lost: u64,
        src: &SampleSource,
        min_rtt: u64,
    ) -> RateSample {
        if let Some(s) = src.seg {
            // The send time of the most recently delivered segment starts the next
            // send phase.
            self.first_sent_time = s.sent;
        }
        self.delivered += delivered;
        self.lost += lost;
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        if delivered > 0 {
            self.delivered_time = now;
        }
        let mut rs = RateSample {
            acked_sacked: delivered,
            losses: lost,
            ..RateSample::default()
        };
        let Some(s) = src.seg else {
            return rs;
        };
        let since = (self.delivered as u32).wrapping_sub(s.rate.delivered) as u64;
        rs.prior_delivered = self.delivered - since.min(self.delivered);
        rs.app_limited = s.rate.app_limited();
        rs.retransmitted = s.retransmitted;
        rs.delivered = Some(since);
        let send_phase = s.rate.first_sent_ago_us as u64 * 1000;
        let delivered_time = s
            .sent
            .saturating_sub(s.rate.delivered_ago_us() as u64 * 1000);
        let ack_phase = now.saturating_sub(delivered_time);
        let interval = send_phase.max(ack_phase);
        // Shorter than a round trip: the ACKs were compressed or the peer is lying.
        rs.interval = (interval >= min_rtt && interval > 0).then_some(interval);
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn seg(r: &mut RateState, now: u64, end: u32, nothing_out: bool) -> DeliveredSeg {
        DeliveredSeg {
            sent: now,
            end,
            rate: r.on_send(now, nothing_out),
            retransmitted: false,
        }
    }

    #[test]
    fn a_flight_acked_one_rtt_later_gives_its_rate() {
        // Ten 1000-byte segments sent 1 ms apart from t = 100 ms, each acknowledged
        // 10 ms after it left: 1000 bytes per ms once the pipe is full.
        let mut r = RateState::default();
        let segs: Vec<DeliveredSeg> = (0..10u64)
            .map(|i| seg(&mut r, 100 * MS + i * MS, 1000 * (i as u32 + 1), i == 0))
            .collect();
        let mut rates = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let mut src = SampleSource::default();
            src.note(*s);
            let rs = r.on_ack(110 * MS + i as u64 * MS, 1000, 0, &src, 10 * MS);
            rates.push(rs);
        }
        // The first ACK: 1000 bytes over the 10 ms since the flight started.
        assert_eq!(rates[0].delivered, Some(1000));
        assert_eq!(rates[0].interval, Some(10 * MS));
        assert_eq!(rates[0].rate(), Some(100_000));
        // The sixth: segment 5 was sent at 105 ms, when nothing was delivered yet; by
        // its ACK at 115 ms six segments were, over 15 ms of ACK phase.
        assert_eq!(rates[5].delivered, Some(6000));
        assert_eq!(rates[5].interval, Some(15 * MS));
        // A second flight sent now, with deliveries flowing, samples 1000 B/ms.
        let s = seg(&mut r, 120 * MS, 11_000, false);
        let mut src = SampleSource::default();
        src.note(s);
        let rs = r.on_ack(130 * MS, 1000, 0, &src, 10 * MS);
        // Sent at 120 ms when 10 segments were delivered (the last one sent at 109 ms,
        // acknowledged at 119 ms); acknowledged at 130 ms: 1000 bytes over
        // max(120 - 109, 130 - 119) = 11 ms.
        assert_eq!(rs.delivered, Some(1000));
        assert_eq!(rs.interval, Some(11 * MS));
    }

    #[test]
    fn the_most_recently_sent_segment_of_an_ack_is_the_source() {
        let mut r = RateState::default();
        let a = seg(&mut r, MS, 1000, true);
        let b = seg(&mut r, 2 * MS, 2000, false);
        let mut c = seg(&mut r, 3 * MS, 3000, false);
        // A retransmission of `a` at 5 ms is the newest send.
        let mut a2 = seg(&mut r, 5 * MS, 1000, false);
        a2.retransmitted = true;
        let mut src = SampleSource::default();
        for s in [b, a2, c, a] {
            src.note(s);
        }
        assert_eq!(src.seg, Some(a2));
        // A segment without a recorded state is no source.
        c.rate = SegRate::default();
        let mut src = SampleSource::default();
        src.note(c);
        assert_eq!(src.seg, None);
        let rs = r.on_ack(6 * MS, 1000, 0, &src, 0);
        assert_eq!(
            (rs.delivered, rs.interval, rs.acked_sacked),
            (None, None, 1000)
        );
    }

    #[test]
    fn compressed_acks_cannot_inflate_the_rate() {
        // Ten segments sent over 10 ms, their ACKs held back and released together
        // 20 ms after the first send: the send phase (9 ms) is shorter than the ACK
        // phase (20 ms), which is taken; an interval below min RTT is refused.
        let mut r = RateState::default();
        let segs: Vec<DeliveredSeg> = (1..=10u64)
            .map(|i| seg(&mut r, i * MS, 1000 * i as u32, i == 1))
            .collect();
        let mut src = SampleSource::default();
        for s in &segs {
            src.note(*s);
        }
        let rs = r.on_ack(21 * MS, 10_000, 0, &src, 5 * MS);
        assert_eq!(rs.delivered, Some(10_000));
        assert_eq!(rs.interval, Some(20 * MS));
        let s = seg(&mut r, 21 * MS, 11_000, false);
        let mut src = SampleSource::default();
        src.note(s);
        // Sent at 21 ms, "acknowledged" 1 ms later: its send phase (from the send of
        // the last segment delivered, 10 ms) is 11 ms, below a 15 ms minimum RTT.
        let rs = r.on_ack(22 * MS, 1000, 0, &src, 15 * MS);
        assert_eq!(rs.delivered, Some(1000));
        assert_eq!(rs.interval, None);
        assert_eq!(rs.rate(), None);
    }

    #[test]
    fn app_limited_marks_samples_until_the_bubble_is_delivered() {
        let mut r = RateState::default();
        let a = seg(&mut r, 0, 1000, true);
        // Nothing more to send: the 1000 bytes in flight are the bubble.
        r.mark_app_limited(1000);
        assert_eq!(r.app_limited, 1000);
        let b = seg(&mut r, MS, 2000, false);
        assert!(!a.rate.app_limited() && b.rate.app_limited());
        let mut src = SampleSource::default();
        src.note(a);
        let rs = r.on_ack(10 * MS, 1000, 0, &src, 0);
        assert!(!rs.app_limited);
        assert_eq!(r.app_limited, 1000, "still inside the bubble");
        let mut src = SampleSource::default();
        src.note(b);
        let rs = r.on_ack(11 * MS, 1000, 300, &src, 0);
        assert!(rs.app_limited);
        assert_eq!(rs.losses, 300);
        assert_eq!(r.app_limited, 0, "the bubble is gone");
        assert_eq!(r.lost, 300);
    }
}
