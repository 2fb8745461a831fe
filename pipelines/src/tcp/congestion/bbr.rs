//! BBR version 1 (draft-cardwell-iccrg-bbr-congestion-control-00), as Linux's
//! `net/ipv4/tcp_bbr.c` behaves: a model of the path, not a reaction to loss.
//!
//! BBR estimates the bottleneck bandwidth (a windowed maximum of delivery rate samples
//! over ten round trips, see [`super::super::rate`]) and the round-trip propagation time
//! (the minimum RTT of the last ten seconds), and sends at their product:
//!
//! - the **pacing rate** is `pacing_gain × bandwidth` (less 1 %), so segments leave
//!   spread over time instead of in window-sized bursts;
//! - the **congestion window** is `cwnd_gain × bandwidth × min RTT` (plus room for ACK
//!   aggregation and for pacing bursts), a cap on what is in flight.
//!
//! Modes: STARTUP (gains 2/ln 2, doubling the rate each round until the bandwidth stops
//! growing by 25 % for three rounds), DRAIN (pacing gain ln 2 / 2 until the queue made
//! in startup is gone), PROBE_BW (pacing gains cycling 5/4, 3/4, 1, 1, 1, 1, 1, 1, one
//! phase per min RTT, cwnd gain 2) and PROBE_RTT (every ten seconds without a new
//! minimum, at most four segments in flight for 200 ms and a round trip, to measure the
//! propagation time again). Loss does not reduce the model: during fast recovery BBR
//! holds what is in flight for one round (packet conservation), and on leaving it
//! restores the window it had; a policer (a long-term loss rate of 20 % or more at a
//! steady delivery rate) is detected and its rate used for 48 rounds.
//!
//! Quantities are bytes and bytes per second; the stack's times are nanoseconds. Gains
//! are fixed-point with [`UNIT`] = 256, as Linux's.

use super::minmax::WindowedMax;
use crate::tcp::rate::{RateSample, RateState};

/// Fixed-point one for gains (Linux `BBR_UNIT`).
pub const UNIT: u64 = 256;
/// 2/ln(2): startup's pacing and cwnd gain.
pub const HIGH_GAIN: u64 = UNIT * 2885 / 1000 + 1;
/// ln(2)/2: drain's pacing gain (the inverse of the high gain).
pub const DRAIN_GAIN: u64 = UNIT * 1000 / 2885;
/// PROBE_BW's cwnd gain.
pub const CWND_GAIN: u64 = UNIT * 2;
/// PROBE_BW's pacing gains, one phase per min RTT.
pub const PACING_GAIN: [u64; CYCLE_LEN] = [
    UNIT * 5 / 4,
    UNIT * 3 / 4,
    UNIT,
    UNIT,
    UNIT,
    UNIT,
    UNIT,
    UNIT,
];
/// Phases of the PROBE_BW cycle.
pub const CYCLE_LEN: usize = 8;
/// Length of the bandwidth filter's window in round trips.
pub const BW_WINDOW_ROUNDS: u64 = CYCLE_LEN as u64 + 2;
/// Length of the min RTT filter's window.
pub const MIN_RTT_WINDOW_NS: u64 = 10 * SEC;
/// Time spent at the minimum window in PROBE_RTT.
pub const PROBE_RTT_NS: u64 = 200 * MS;
/// The smallest window, in segments (also PROBE_RTT's).
pub const CWND_MIN_SEGMENTS: u64 = 4;
/// Startup ends after three rounds without 25 % more bandwidth.
const FULL_BW_THRESH: u64 = UNIT * 5 / 4;
const FULL_BW_COUNT: u32 = 3;
/// Long-term ("policer") sampling: intervals of at least 4 rounds with 20 % loss.
const LT_INTVL_MIN_RTTS: u32 = 4;
const LT_LOSS_THRESH: u64 = 50;
const LT_BW_RATIO: u64 = UNIT / 8;
const LT_BW_DIFF: u64 = 4000 / 8;
const LT_BW_MAX_RTTS: u32 = 48;
/// ACK aggregation: extra data acknowledged beyond the model, over 5 rounds, at most
/// 100 ms of bandwidth.
const EXTRA_ACKED_GAIN: u64 = UNIT;
const EXTRA_ACKED_WIN_RTTS: u32 = 5;
const EXTRA_ACKED_MAX_NS: u64 = 100 * MS;
const ACK_EPOCH_RESET_SEGMENTS: u64 = 1 << 20;
/// The initial window in segments (RFC 6928), before any RTT sample.
const INIT_CWND_SEGMENTS: u64 = 10;
/// A pacing burst: about a millisecond of data (`sk_pacing_shift` = 10), at most what
/// one 64 KiB TSO frame holds, as Linux sizes it.
const PACING_SHIFT: u32 = 10;
const BURST_MAX_BYTES: u64 = 65_536 - 1 - 320;
/// Below 1.2 Mbit/s a burst is one segment, above two.
const MIN_TSO_RATE: u64 = 1_200_000 / 8;
const PACING_MARGIN_PERCENT: u64 = 1;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// BBR's state machine modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Ramping up to find the bandwidth.
    #[default]
    Startup,
    /// Draining the queue startup made.
    Drain,
    /// Cycling around the bandwidth estimate.
    ProbeBw,
    /// Measuring the propagation time at a minimal window.
    ProbeRtt,
}

/// The sender's recovery state as BBR sees it (Linux's `icsk_ca_state`, ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum CaState {
    /// No loss being repaired.
    #[default]
    Open,
    /// Fast recovery.
    Recovery,
    /// After a retransmission timeout.
    Loss,
}

/// What the connection tells BBR on each ACK.
#[derive(Debug, Clone, Copy)]
pub struct AckInput {
    /// Now (ns).
    pub now: u64,
    /// Segment size.
    pub mss: u64,
    /// Bytes in flight after the ACK (RFC 6675 pipe).
    pub flight: u64,
    /// Recovery state after the ACK.
    pub ca_state: CaState,
    /// Smoothed RTT (ns, 0 before a sample).
    pub srtt: u64,
    /// When the next paced segment may leave (ns): the earliest departure time.
    pub pace_next: u64,
}

/// BBR's state for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Bbr {
    mode: Mode,
    /// Minimum RTT of the window (ns), `u64::MAX` before any sample.
    min_rtt: u64,
    min_rtt_stamp: u64,
    probe_rtt_done_stamp: u64,
    /// Maximum delivery rate (bytes/s) over the last rounds.
    bw: WindowedMax,
    rtt_cnt: u64,
    next_rtt_delivered: u64,
    cycle_stamp: u64,
    cycle_idx: usize,
    prev_ca_state: CaState,
    packet_conservation: bool,
    round_start: bool,
    idle_restart: bool,
    probe_rtt_round_done: bool,
    lt_is_sampling: bool,
    lt_rtt_cnt: u32,
    lt_use_bw: bool,
    lt_bw: u64,
    lt_last_delivered: u64,
    lt_last_stamp_ms: u64,
    lt_last_lost: u64,
    pacing_gain: u64,
    cwnd_gain: u64,
    full_bw_reached: bool,
    full_bw_cnt: u32,
    full_bw: u64,
    has_seen_rtt: bool,
    prior_cwnd: u64,
    ack_epoch_stamp: u64,
    extra_acked: [u64; 2],
    ack_epoch_acked: u64,
    extra_acked_win_rtts: u32,
    extra_acked_win_idx: usize,
    /// The pacing rate (bytes/s).
    pacing_rate: u64,
    rng: u64,
}

impl Bbr {
    /// A fresh connection with `cwnd` bytes of initial window (Linux `bbr_init`).
    pub fn new(cwnd: u64) -> Bbr {
        let mut b = Bbr {
            mode: Mode::Startup,
            min_rtt: u64::MAX,
            min_rtt_stamp: 0,
            probe_rtt_done_stamp: 0,
            bw: WindowedMax::default(),
            rtt_cnt: 0,
            next_rtt_delivered: 0,
            cycle_stamp: 0,
            cycle_idx: 0,
            prev_ca_state: CaState::Open,
            packet_conservation: false,
            round_start: false,
            idle_restart: false,
            probe_rtt_round_done: false,
            lt_is_sampling: false,
            lt_rtt_cnt: 0,
            lt_use_bw: false,
            lt_bw: 0,
            lt_last_delivered: 0,
            lt_last_stamp_ms: 0,
            lt_last_lost: 0,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            full_bw_reached: false,
            full_bw_cnt: 0,
            full_bw: 0,
            has_seen_rtt: false,
            prior_cwnd: 0,
            ack_epoch_stamp: 0,
            extra_acked: [0; 2],
            ack_epoch_acked: 0,
            extra_acked_win_rtts: 0,
            extra_acked_win_idx: 0,
            pacing_rate: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        };
        b.init_pacing_rate_from_rtt(cwnd, 0);
        b
    }

    /// Seeds the choice of the first PROBE_BW phase (Linux draws it at random).
    pub fn seed(&mut self, s: u64) {
        self.rng = s | 1;
    }

    // ----- getters -----

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The pacing rate in bytes per second.
    pub fn pacing_rate(&self) -> u64 {
        self.pacing_rate
    }

    /// The bandwidth estimate (bytes/s): the long-term rate when a policer was found,
    /// else the windowed maximum.
    pub fn bw(&self) -> u64 {
        if self.lt_use_bw {
            self.lt_bw
        } else {
            self.bw.get()
        }
    }

    /// The windowed maximum delivery rate (bytes/s).
    pub fn max_bw(&self) -> u64 {
        self.bw.get()
    }

    /// The minimum RTT (ns), `None` before any sample.
    pub fn min_rtt(&self) -> Option<u64> {
        (self.min_rtt != u64::MAX).then_some(self.min_rtt)
    }

    /// True once startup found the pipe full.
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    /// The current pacing gain (fixed-point, [`UNIT`] = 1).
    pub fn pacing_gain(&self) -> u64 {
        self.pacing_gain
    }

    /// Round trips counted so far.
    pub fn rounds(&self) -> u64 {
        self.rtt_cnt
    }

    /// The largest burst pacing lets go at once (bytes): about a millisecond at the
    /// pacing rate, at least one or two segments, at most 64 KiB (Linux's TSO autosizing,
    /// `bbr_tso_segs_goal`).
    pub fn burst_bytes(&self, mss: u64) -> u64 {
        self.tso_segs_goal(mss) * mss
    }

    fn tso_segs_goal(&self, mss: u64) -> u64 {
        let bytes = (self.pacing_rate >> PACING_SHIFT).min(BURST_MAX_BYTES);
        let min = if self.pacing_rate < MIN_TSO_RATE {
            1
        } else {
            2
        };
        (bytes / mss.max(1)).max(min).min(0x7f)
    }

    // ----- events -----

    /// The main entry, once per ACK (Linux `bbr_main`): updates the model, then the
    /// pacing rate and the window.
    pub fn on_ack(
        &mut self,
        cwnd: &mut u64,
        ssthresh: &mut u64,
        rs: &RateSample,
        st: &mut RateState,
        a: &AckInput,
    ) {
        self.update_model(rs, st, a, cwnd, ssthresh);
        let bw = self.bw();
        self.set_pacing_rate(bw, self.pacing_gain, *cwnd, a.srtt);
        self.set_cwnd(cwnd, rs, st, a, bw);
    }

    /// Fast recovery or a timeout begins: remember the window to restore on leaving it
    /// (Linux `bbr_ssthresh`, which leaves ssthresh alone).
    pub fn save_cwnd(&mut self, cwnd: u64) {
        if self.prev_ca_state < CaState::Recovery && self.mode != Mode::ProbeRtt {
            self.prior_cwnd = cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(cwnd);
        }
    }

    /// A retransmission timeout (Linux `bbr_set_state(TCP_CA_Loss)`): treated as the end
    /// of a round with a loss; startup's bandwidth plateau detection starts over.
    pub fn on_rto(&mut self, st: &RateState) {
        self.prev_ca_state = CaState::Loss;
        self.full_bw = 0;
        self.round_start = true;
        let rs = RateSample {
            losses: 1,
            ..RateSample::default()
        };
        self.lt_bw_sampling(&rs, st);
    }

    /// A reduction proved spurious and was undone (Linux `bbr_undo_cwnd`).
    pub fn on_undo(&mut self) {
        self.full_bw = 0;
        self.full_bw_cnt = 0;
        self.reset_lt_bw_sampling(&RateState::default());
    }

    /// The first transmission with nothing in flight (Linux `CA_EVENT_TX_START`): after
    /// an application-limited idle period, pace at the estimated bandwidth, not above.
    pub fn on_tx_start(&mut self, now: u64, st: &RateState, cwnd: &mut u64, srtt: u64) {
        if st.app_limited == 0 {
            return;
        }
        self.idle_restart = true;
        self.ack_epoch_stamp = now;
        self.ack_epoch_acked = 0;
        match self.mode {
            Mode::ProbeBw => self.set_pacing_rate(self.bw(), UNIT, *cwnd, srtt),
            Mode::ProbeRtt => self.check_probe_rtt_done(now, cwnd, st),
            _ => {}
        }
    }

    // ----- the model -----

    fn update_model(
        &mut self,
        rs: &RateSample,
        st: &mut RateState,
        a: &AckInput,
        cwnd: &mut u64,
        ssthresh: &mut u64,
    ) {
        self.update_bw(rs, st);
        self.update_ack_aggregation(rs, st, *cwnd, a.mss);
        if self.mode == Mode::ProbeBw && self.is_next_cycle_phase(rs, st, a) {
            self.advance_cycle_phase(st);
        }
        self.check_full_bw_reached(rs);
        self.check_drain(a, st, ssthresh);
        self.update_min_rtt(rs, st, a, cwnd);
        self.update_gains();
    }

    fn update_bw(&mut self, rs: &RateSample, st: &RateState) {
        self.round_start = false;
        let (Some(_), Some(_)) = (rs.delivered, rs.interval) else {
            return;
        };
        if rs.prior_delivered >= self.next_rtt_delivered {
            // The segment sampled was sent after the round began: a round trip ended.
            self.next_rtt_delivered = st.delivered;
            self.rtt_cnt += 1;
            self.round_start = true;
            self.packet_conservation = false;
        }
        self.lt_bw_sampling(rs, st);
        let bw = rs.rate().unwrap_or(0);
        // An application-limited sample only counts when it beats the estimate.
        if !rs.app_limited || bw >= self.max_bw() {
            self.bw.update(BW_WINDOW_ROUNDS, self.rtt_cnt, bw);
        }
    }

    fn update_ack_aggregation(&mut self, rs: &RateSample, st: &RateState, cwnd: u64, mss: u64) {
        if rs.acked_sacked == 0 || rs.delivered.is_none() || rs.interval.is_none() {
            return;
        }
        if self.round_start {
            self.extra_acked_win_rtts = (self.extra_acked_win_rtts + 1).min(0x1f);
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS {
                self.extra_acked_win_rtts = 0;
                self.extra_acked_win_idx ^= 1;
                self.extra_acked[self.extra_acked_win_idx] = 0;
            }
        }
        // Data the model expected delivered over this epoch.
        let epoch = st.delivered_time.saturating_sub(self.ack_epoch_stamp);
        let mut expected = mul_div(self.bw(), epoch, SEC);
        let reset = ACK_EPOCH_RESET_SEGMENTS * mss;
        if self.ack_epoch_acked <= expected || self.ack_epoch_acked + rs.acked_sacked >= reset {
            self.ack_epoch_acked = 0;
            self.ack_epoch_stamp = st.delivered_time;
            expected = 0;
        }
        self.ack_epoch_acked = (self.ack_epoch_acked + rs.acked_sacked).min(reset);
        let extra = (self.ack_epoch_acked - expected).min(cwnd);
        let slot = &mut self.extra_acked[self.extra_acked_win_idx];
        if extra > *slot {
            *slot = extra;
        }
    }

    fn ack_aggregation_cwnd(&self) -> u64 {
        if !self.full_bw_reached {
            return 0;
        }
        let max_aggr = mul_div(self.bw(), EXTRA_ACKED_MAX_NS, SEC);
        let extra = self.extra_acked[0].max(self.extra_acked[1]);
        (EXTRA_ACKED_GAIN * extra / UNIT).min(max_aggr)
    }

    /// Bytes the path holds at `bw` and the min RTT, times `gain` (Linux `bbr_bdp`).
    fn bdp(&self, bw: u64, gain: u64, mss: u64) -> u64 {
        if self.min_rtt == u64::MAX {
            return INIT_CWND_SEGMENTS * mss;
        }
        let w = bw as u128 * self.min_rtt as u128;
        (w * gain as u128).div_ceil(UNIT as u128 * SEC as u128) as u64
    }

    /// Room for pacing bursts and ACK clocking on top of a window (Linux
    /// `bbr_quantization_budget`): three bursts, an even number of segments, two more
    /// in the probing phase.
    fn quantization_budget(&self, cwnd: u64, mss: u64) -> u64 {
        let mut segs = cwnd.div_ceil(mss) + 3 * self.tso_segs_goal(mss);
        segs = (segs + 1) & !1;
        if self.mode == Mode::ProbeBw && self.cycle_idx == 0 {
            segs += 2;
        }
        segs * mss
    }

    fn inflight(&self, bw: u64, gain: u64, mss: u64) -> u64 {
        self.quantization_budget(self.bdp(bw, gain, mss), mss)
    }

    /// What will be in the network when the next paced segment leaves (Linux
    /// `bbr_packets_in_net_at_edt`): in flight now, less what the bottleneck delivers
    /// until then.
    fn in_net_at_edt(&self, inflight_now: u64, a: &AckInput) -> u64 {
        let wait = a.pace_next.saturating_sub(a.now);
        let delivered = mul_div(self.bw(), wait, SEC);
        let mut at_edt = inflight_now;
        if self.pacing_gain > UNIT {
            at_edt += self.tso_segs_goal(a.mss) * a.mss;
        }
        at_edt.saturating_sub(delivered)
    }

    fn is_next_cycle_phase(&self, rs: &RateSample, st: &RateState, a: &AckInput) -> bool {
        let full_length = st.delivered_time.saturating_sub(self.cycle_stamp) > self.min_rtt;
        if self.pacing_gain == UNIT {
            return full_length;
        }
        let inflight = self.in_net_at_edt(rs.prior_in_flight, a);
        let bw = self.max_bw();
        if self.pacing_gain > UNIT {
            // Probing: until a round passed and the pipe held the extra, or loss said
            // there is no more room.
            return full_length
                && (rs.losses > 0 || inflight >= self.inflight(bw, self.pacing_gain, a.mss));
        }
        // Draining the probe's queue: until a round passed or the queue is gone.
        full_length || inflight <= self.inflight(bw, UNIT, a.mss)
    }

    fn advance_cycle_phase(&mut self, st: &RateState) {
        self.cycle_idx = (self.cycle_idx + 1) % CYCLE_LEN;
        self.cycle_stamp = st.delivered_time;
    }

    fn reset_mode(&mut self, st: &RateState) {
        if !self.full_bw_reached {
            self.mode = Mode::Startup;
        } else {
            self.reset_probe_bw_mode(st);
        }
    }

    fn reset_probe_bw_mode(&mut self, st: &RateState) {
        self.mode = Mode::ProbeBw;
        // Any phase but the 3/4 one, at random.
        self.cycle_idx = CYCLE_LEN - 1 - (self.random() % (CYCLE_LEN as u64 - 1)) as usize;
        self.advance_cycle_phase(st);
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_reached || !self.round_start || rs.app_limited {
            return;
        }
        let thresh = self.full_bw * FULL_BW_THRESH / UNIT;
        if self.max_bw() >= thresh {
            self.full_bw = self.max_bw();
            self.full_bw_cnt = 0;
            return;
        }
        self.full_bw_cnt += 1;
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_COUNT;
    }

    fn check_drain(&mut self, a: &AckInput, st: &RateState, ssthresh: &mut u64) {
        if self.mode == Mode::Startup && self.full_bw_reached {
            self.mode = Mode::Drain;
            *ssthresh = self.inflight(self.max_bw(), UNIT, a.mss);
        }
        if self.mode == Mode::Drain
            && self.in_net_at_edt(a.flight, a) <= self.inflight(self.max_bw(), UNIT, a.mss)
        {
            // The queue is drained: cruise.
            self.reset_probe_bw_mode(st);
        }
    }

    fn update_min_rtt(
        &mut self,
        rs: &RateSample,
        st: &mut RateState,
        a: &AckInput,
        cwnd: &mut u64,
    ) {
        let now = a.now;
        let expired = now > self.min_rtt_stamp.saturating_add(MIN_RTT_WINDOW_NS);
        if let Some(rtt) = rs.rtt {
            if rtt < self.min_rtt || expired {
                self.min_rtt = rtt;
                self.min_rtt_stamp = now;
            }
        }
        if expired && !self.idle_restart && self.mode != Mode::ProbeRtt {
            // Ten seconds without a lower RTT: measure it again at a minimal window.
            // (Linux saves after the switch: the larger of the saved and the current.)
            self.mode = Mode::ProbeRtt;
            self.save_cwnd(*cwnd);
            self.probe_rtt_done_stamp = 0;
        }
        if self.mode == Mode::ProbeRtt {
            // Nothing sent in PROBE_RTT may raise the bandwidth estimate.
            st.mark_app_limited(a.flight);
            if self.probe_rtt_done_stamp == 0 && a.flight <= CWND_MIN_SEGMENTS * a.mss {
                self.probe_rtt_done_stamp = now + PROBE_RTT_NS;
                self.probe_rtt_round_done = false;
                self.next_rtt_delivered = st.delivered;
            } else if self.probe_rtt_done_stamp != 0 {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done {
                    self.check_probe_rtt_done(now, cwnd, st);
                }
            }
        }
        if rs.delivered.is_some_and(|d| d > 0) {
            self.idle_restart = false;
        }
    }

    fn check_probe_rtt_done(&mut self, now: u64, cwnd: &mut u64, st: &RateState) {
        if self.probe_rtt_done_stamp == 0 || now <= self.probe_rtt_done_stamp {
            return;
        }
        // The new minimum holds for another window.
        self.min_rtt_stamp = now;
        *cwnd = (*cwnd).max(self.prior_cwnd);
        self.reset_mode(st);
    }

    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.mode {
            Mode::Startup => (HIGH_GAIN, HIGH_GAIN),
            Mode::Drain => (DRAIN_GAIN, HIGH_GAIN),
            Mode::ProbeBw => (
                if self.lt_use_bw {
                    UNIT
                } else {
                    PACING_GAIN[self.cycle_idx]
                },
                CWND_GAIN,
            ),
            Mode::ProbeRtt => (UNIT, UNIT),
        };
    }

    // ----- pacing and window -----

    fn rate_bytes_per_sec(bw: u64, gain: u64) -> u64 {
        mul_div(bw, gain * (100 - PACING_MARGIN_PERCENT), UNIT * 100)
    }

    fn init_pacing_rate_from_rtt(&mut self, cwnd: u64, srtt: u64) {
        let rtt = if srtt > 0 {
            self.has_seen_rtt = true;
            srtt
        } else {
            MS
        };
        let bw = mul_div(cwnd, SEC, rtt);
        self.pacing_rate = Self::rate_bytes_per_sec(bw, HIGH_GAIN);
    }

    fn set_pacing_rate(&mut self, bw: u64, gain: u64, cwnd: u64, srtt: u64) {
        let rate = Self::rate_bytes_per_sec(bw, gain);
        if !self.has_seen_rtt && srtt > 0 {
            self.init_pacing_rate_from_rtt(cwnd, srtt);
        }
        // Startup never lowers the rate; once the pipe is known full, it follows.
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// Linux `bbr_set_cwnd_to_recover_or_restore`: packet conservation for the first
    /// round of fast recovery, the saved window back when recovery ends.
    fn recover_or_restore(
        &mut self,
        cwnd: &mut u64,
        rs: &RateSample,
        st: &RateState,
        a: &AckInput,
    ) -> bool {
        let (prev, state) = (self.prev_ca_state, a.ca_state);
        let mut c = *cwnd;
        let acked = rs.acked_sacked;
        if rs.losses > 0 {
            c = c.saturating_sub(rs.losses).max(a.mss);
        }
        if state == CaState::Recovery && prev != CaState::Recovery {
            // Entering fast recovery: send one segment per segment delivered for a round.
            self.packet_conservation = true;
            self.next_rtt_delivered = st.delivered;
            c = a.flight + acked;
        } else if prev >= CaState::Recovery && state < CaState::Recovery {
            // Leaving recovery: the window before it.
            c = c.max(self.prior_cwnd);
            self.packet_conservation = false;
        }
        self.prev_ca_state = state;
        if self.packet_conservation {
            *cwnd = c.max(a.flight + acked);
            return true;
        }
        *cwnd = c;
        false
    }

    fn set_cwnd(&mut self, cwnd: &mut u64, rs: &RateSample, st: &RateState, a: &AckInput, bw: u64) {
        let acked = rs.acked_sacked;
        if acked > 0 && !self.recover_or_restore(cwnd, rs, st, a) {
            let mut target = self.bdp(bw, self.cwnd_gain, a.mss) + self.ack_aggregation_cwnd();
            target = self.quantization_budget(target, a.mss);
            if self.full_bw_reached {
                // Grow towards the target, never past it.
                *cwnd = (*cwnd + acked).min(target);
            } else if *cwnd < target || st.delivered < INIT_CWND_SEGMENTS * a.mss {
                // Startup: slow start, as long as the model wants more.
                *cwnd += acked;
            }
            *cwnd = (*cwnd).max(CWND_MIN_SEGMENTS * a.mss);
        }
        if self.mode == Mode::ProbeRtt {
            *cwnd = (*cwnd).min(CWND_MIN_SEGMENTS * a.mss);
        }
    }

    // ----- long-term sampling: token-bucket policers -----

    fn reset_lt_bw_sampling_interval(&mut self, st: &RateState) {
        self.lt_last_stamp_ms = st.delivered_time / MS;
        self.lt_last_delivered = st.delivered;
        self.lt_last_lost = st.lost;
        self.lt_rtt_cnt = 0;
    }

    fn reset_lt_bw_sampling(&mut self, st: &RateState) {
        self.lt_bw = 0;
        self.lt_use_bw = false;
        self.lt_is_sampling = false;
        self.reset_lt_bw_sampling_interval(st);
    }

    fn lt_bw_interval_done(&mut self, bw: u64, st: &RateState) {
        if self.lt_bw != 0 {
            let diff = bw.abs_diff(self.lt_bw);
            if diff * UNIT <= LT_BW_RATIO * self.lt_bw
                || Self::rate_bytes_per_sec(diff, UNIT) <= LT_BW_DIFF
            {
                // Two consistent intervals: a policer; use its average rate.
                self.lt_bw = (bw + self.lt_bw) / 2;
                self.lt_use_bw = true;
                self.pacing_gain = UNIT;
                self.lt_rtt_cnt = 0;
                return;
            }
        }
        self.lt_bw = bw;
        self.reset_lt_bw_sampling_interval(st);
    }

    /// Linux `bbr_lt_bw_sampling`: intervals of 4 to 16 rounds that start and end with a
    /// loss and lose 20 % or more; two with rates within 1/8 (or 4 kbit/s) of each other
    /// mean a policer, whose rate is used for 48 rounds.
    fn lt_bw_sampling(&mut self, rs: &RateSample, st: &RateState) {
        if self.lt_use_bw {
            if self.mode == Mode::ProbeBw && self.round_start {
                self.lt_rtt_cnt += 1;
                if self.lt_rtt_cnt >= LT_BW_MAX_RTTS {
                    self.reset_lt_bw_sampling(st);
                    self.reset_probe_bw_mode(st);
                }
            }
            return;
        }
        if !self.lt_is_sampling {
            if rs.losses == 0 {
                return;
            }
            self.reset_lt_bw_sampling_interval(st);
            self.lt_is_sampling = true;
        }
        if rs.app_limited {
            self.reset_lt_bw_sampling(st);
            return;
        }
        if self.round_start {
            self.lt_rtt_cnt += 1;
        }
        if self.lt_rtt_cnt < LT_INTVL_MIN_RTTS {
            return;
        }
        if self.lt_rtt_cnt > 4 * LT_INTVL_MIN_RTTS {
            self.reset_lt_bw_sampling(st);
            return;
        }
        if rs.losses == 0 {
            return;
        }
        let lost = st.lost - self.lt_last_lost;
        let delivered = st.delivered - self.lt_last_delivered;
        if delivered == 0 || lost * UNIT < LT_LOSS_THRESH * delivered {
            return;
        }
        let t_ms = (st.delivered_time / MS).saturating_sub(self.lt_last_stamp_ms);
        if t_ms < 1 {
            return;
        }
        let bw = mul_div(delivered, 1000, t_ms);
        self.lt_bw_interval_done(bw, st);
    }
}

/// `a * b / c` without overflow (0 when `c` is 0).
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return 0;
    }
    (a as u128 * b as u128 / c as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::tcp::rate::{DeliveredSeg, SampleSource, SegRate};

    const MSS: u64 = 1000;

    /// One sender driven by BBR over a fluid bottleneck (rate, propagation RTT, no
    /// loss unless scripted), segment by segment: the rate sampler and BBR together.
    struct Path {
        bbr: Bbr,
        st: RateState,
        cwnd: u64,
        ssthresh: u64,
        now: u64,
        /// (ACK arrival, send time, end, recorded state).
        flight: VecDeque<(u64, u64, u32, SegRate)>,
        link_free: u64,
        rate: u64,
        rtt: u64,
        pace_next: u64,
        end: u32,
        max_flight: u64,
        gains: Vec<u64>,
        /// (time, mode, rounds) at each change of mode.
        modes: Vec<(u64, Mode, u64)>,
    }

    impl Path {
        fn new(rate: u64, rtt: u64) -> Path {
            Path {
                bbr: Bbr::new(10 * MSS),
                st: RateState::default(),
                cwnd: 10 * MSS,
                ssthresh: u64::MAX,
                now: MS,
                flight: VecDeque::new(),
                link_free: 0,
                rate,
                rtt,
                pace_next: 0,
                end: 0,
                max_flight: 0,
                gains: Vec::new(),
                modes: vec![(0, Mode::Startup, 0)],
            }
        }

        fn inflight(&self) -> u64 {
            self.flight.len() as u64 * MSS
        }

        /// Sends what the window and pacing allow, then moves to the next ACK.
        fn step(&mut self) {
            while self.inflight() < self.cwnd && self.now >= self.pace_next {
                let rec = self.st.on_send(self.now, self.flight.is_empty());
                let depart = self.link_free.max(self.now) + MSS * SEC / self.rate;
                self.link_free = depart;
                self.end += MSS as u32;
                self.flight
                    .push_back((depart + self.rtt, self.now, self.end, rec));
                let pr = self.bbr.pacing_rate().max(1);
                self.pace_next = self.pace_next.max(self.now) + MSS * SEC / pr;
                self.max_flight = self.max_flight.max(self.inflight());
            }
            let ack = self.flight.front().map(|f| f.0).unwrap_or(u64::MAX);
            let can_send = self.inflight() < self.cwnd;
            self.now = if can_send {
                ack.min(self.pace_next.max(self.now))
            } else {
                ack
            };
            if ack > self.now {
                return;
            }
            let prior = self.inflight();
            let (_, sent, end, rec) = self.flight.pop_front().unwrap();
            let mut src = SampleSource::default();
            src.note(DeliveredSeg {
                sent,
                end,
                rate: rec,
                retransmitted: false,
            });
            let min_rtt = self.bbr.min_rtt().unwrap_or(0);
            let mut rs = self.st.on_ack(self.now, MSS, 0, &src, min_rtt);
            rs.prior_in_flight = prior;
            rs.rtt = Some(self.now - sent);
            self.ack(&rs, CaState::Open);
        }

        fn ack(&mut self, rs: &RateSample, ca_state: CaState) {
            let a = AckInput {
                now: self.now,
                mss: MSS,
                flight: self.inflight(),
                ca_state,
                srtt: self.rtt,
                pace_next: self.pace_next,
            };
            self.bbr
                .on_ack(&mut self.cwnd, &mut self.ssthresh, rs, &mut self.st, &a);
            if self.gains.last() != Some(&self.bbr.pacing_gain()) {
                self.gains.push(self.bbr.pacing_gain());
            }
            if self.modes.last().map(|m| m.1) != Some(self.bbr.mode()) {
                self.modes
                    .push((self.now, self.bbr.mode(), self.bbr.rounds()));
            }
        }

        fn run_until(&mut self, t: u64) {
            while self.now < t {
                self.step();
            }
        }
    }

    #[test]
    fn startup_drain_probe_bw_find_the_bottleneck() {
        // 10 MB/s, 20 ms: a BDP of 200 kB (200 segments) from a 10-segment start.
        let (rate, rtt) = (10_000_000, 20 * MS);
        let bdp = rate * rtt / SEC;
        let mut p = Path::new(rate, rtt);
        p.run_until(2 * SEC);
        let modes: Vec<Mode> = p.modes.iter().map(|m| m.1).collect();
        assert_eq!(
            &modes[..3],
            &[Mode::Startup, Mode::Drain, Mode::ProbeBw],
            "{:?}",
            p.modes
        );
        // Startup doubles per round: log2(200 / 10) rounds to fill the pipe, three
        // without growth to notice, and the slow first rounds at the initial rate.
        let startup_rounds = p.modes[1].2;
        assert!(
            (7..=12).contains(&startup_rounds),
            "startup took {startup_rounds} rounds: {:?}",
            p.modes
        );
        let bw = p.bbr.max_bw();
        // (Within 1 % above: the samples' intervals are kept in microseconds.)
        assert!(
            bw <= rate * 101 / 100 && bw >= rate * 95 / 100,
            "bandwidth {bw} for {rate}"
        );
        let min_rtt = p.bbr.min_rtt().unwrap();
        assert!(
            (rtt..rtt + 2 * MS).contains(&min_rtt),
            "min RTT {min_rtt} for {rtt}"
        );
        // PROBE_BW cycles through its gains, and the window stays near 2 BDP.
        for g in [UNIT * 5 / 4, UNIT * 3 / 4, UNIT] {
            assert!(p.gains.contains(&g), "gain {g} in {:?}", p.gains);
        }
        let budget = 3 * p.bbr.burst_bytes(MSS) + 4 * MSS;
        // (Plus rounding to an even count, the probing phase's two segments and room
        // for ACK aggregation.)
        assert!(
            p.cwnd <= 2 * bdp + 2 * budget,
            "cwnd {} for BDP {bdp}",
            p.cwnd
        );
        assert!(p.cwnd >= 2 * bdp, "cwnd {} for BDP {bdp}", p.cwnd);
        // In steady state the pacing rate is the bandwidth times the phase's gain.
        let pr = p.bbr.pacing_rate();
        let want = bw * p.bbr.pacing_gain() / UNIT * 99 / 100;
        assert!(
            pr.abs_diff(want) <= want / 100 + 1,
            "pacing {pr} for {want}"
        );
        // Startup overshoots (2.89 BDP at most, plus three bursts of at most 64 KiB).
        let most = bdp * HIGH_GAIN / UNIT + 3 * 65_536 + 4 * MSS;
        assert!(p.max_flight <= most, "{} for {bdp}", p.max_flight);
        // Drain removed the queue: in PROBE_BW the flight stays near 1.25 BDP at most.
        assert!(
            p.inflight() <= bdp * 5 / 4 + budget,
            "{} for {bdp}",
            p.inflight()
        );
    }

    #[test]
    fn probe_rtt_every_ten_seconds_at_four_segments() {
        let (rate, rtt) = (2_000_000, 10 * MS);
        let mut p = Path::new(rate, rtt);
        p.run_until(10 * SEC + 500 * MS);
        let probe = p
            .modes
            .iter()
            .position(|m| m.1 == Mode::ProbeRtt)
            .expect("PROBE_RTT after 10 s");
        let entered = p.modes[probe].0;
        assert!(
            (10 * SEC..10 * SEC + 100 * MS).contains(&entered),
            "entered at {} ms",
            entered / MS
        );
        let left = p.modes.get(probe + 1).expect("PROBE_RTT ends").0;
        // 200 ms at four segments (once the flight came down to them) and a round.
        assert!(
            left - entered >= PROBE_RTT_NS && left - entered < PROBE_RTT_NS + 100 * MS,
            "PROBE_RTT lasted {} ms",
            (left - entered) / MS
        );
        assert_eq!(p.modes[probe + 1].1, Mode::ProbeBw);
        // While in it the window was four segments.
        let mut q = Path::new(rate, rtt);
        q.run_until(entered + 50 * MS);
        assert_eq!(q.bbr.mode(), Mode::ProbeRtt);
        assert_eq!(q.cwnd, CWND_MIN_SEGMENTS * MSS);
    }

    #[test]
    fn recovery_conserves_packets_for_a_round_then_restores_the_window() {
        let mut p = Path::new(10_000_000, 20 * MS);
        p.run_until(2 * SEC);
        let before = p.cwnd;
        // Fast recovery begins: BBR remembers the window, does not cut it.
        p.bbr.save_cwnd(p.cwnd);
        assert_eq!(p.cwnd, before);
        // An ACK in recovery that delivered one segment and reported three lost.
        let rs = RateSample {
            acked_sacked: MSS,
            losses: 3 * MSS,
            ..RateSample::default()
        };
        let flight = p.inflight();
        p.ack(&rs, CaState::Recovery);
        assert_eq!(
            p.cwnd,
            flight + MSS,
            "packet conservation: flight + delivered"
        );
        // Later ACKs of the first round hold it there.
        let rs = RateSample {
            acked_sacked: MSS,
            ..RateSample::default()
        };
        p.ack(&rs, CaState::Recovery);
        assert_eq!(p.cwnd, flight + MSS);
        // Recovery ends: the window before it comes back.
        p.ack(&rs, CaState::Open);
        assert!(p.cwnd >= before, "{} restored to {before}", p.cwnd);
        // A timeout: the model keeps its bandwidth, the next round starts over.
        let bw = p.bbr.max_bw();
        p.bbr.on_rto(&p.st);
        assert_eq!(p.bbr.max_bw(), bw);
    }

    #[test]
    fn a_policer_is_detected_and_its_rate_used() {
        // Long-term sampling: two intervals of four rounds each with 25 % lost at the
        // same delivery rate make BBR pace at that rate.
        let mut b = Bbr::new(10 * MSS);
        let mut st = RateState::default();
        let (mut cwnd, mut ss) = (100 * MSS, u64::MAX);
        let mut now = SEC;
        let round = 10 * MS;
        for r in 0..12u64 {
            now += round;
            // 100 segments delivered per round (10 MB/s), 33 lost (25 % of sent).
            st.delivered += 100 * MSS;
            st.lost += 33 * MSS;
            st.delivered_time = now;
            let rs = RateSample {
                delivered: Some(100 * MSS),
                interval: Some(round),
                prior_delivered: st.delivered - 100 * MSS,
                acked_sacked: 100 * MSS,
                losses: 33 * MSS,
                rtt: Some(round),
                ..RateSample::default()
            };
            let a = AckInput {
                now,
                mss: MSS,
                flight: 100 * MSS,
                ca_state: CaState::Open,
                srtt: round,
                pace_next: now,
            };
            b.next_rtt_delivered = rs.prior_delivered;
            b.on_ack(&mut cwnd, &mut ss, &rs, &mut st, &a);
            if r < 7 {
                assert!(!b.lt_use_bw, "round {r}");
            }
        }
        assert!(b.lt_use_bw, "policer found");
        assert!(b.bw().abs_diff(10_000_000) <= 100_000, "{}", b.bw());
    }
}
