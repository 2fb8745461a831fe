//! The per-connection state: the RFC 9293 transmission control block, kept small.
//!
//! Buffers are separate heap rings allocated when the connection is set up; everything
//! else is inline and bounded (see the size test in `tests`).

use std::net::SocketAddr;

use super::congestion::Congestion;
use super::prr::Prr;
use super::rack::{Rack, Tlp};
use super::rate::RateState;
use super::ring::{Assembler, RingBuffer};
use super::rtx::RtxQueue;
use super::seq;
use super::timers::{RttEstimator, Timers};
use crate::timer_wheel::TimerId;

/// Connection states (RFC 9293 section 3.3.2). LISTEN lives in the listener;
/// TIME-WAIT connections move to the stack's compact TIME-WAIT table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Our SYN is out, waiting for the peer's.
    SynSent,
    /// The peer's SYN is acknowledged by ours, waiting for its ACK.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We sent FIN, not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged, waiting for the peer's.
    FinWait2,
    /// The peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN at once, ours not yet acknowledged.
    Closing,
    /// The peer closed first, our FIN is not yet acknowledged.
    LastAck,
    /// Both FINs acknowledged; waiting 2 MSL.
    TimeWait,
    /// Nothing left.
    Closed,
}

impl State {
    /// All states, for per-state counts.
    pub const ALL: [State; 10] = [
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
        State::Closed,
    ];

    /// True once the handshake has completed (RFC 9293 "synchronized" states).
    pub fn synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }

    /// True while we may still queue data to send.
    pub fn can_send(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }

    /// True while the peer may still send us data.
    pub fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }
}

/// The two ends of a connection, as seen by this stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// Boolean state packed into one word.
pub(crate) mod flag {
    /// Send an ACK as soon as possible.
    pub const ACK_NOW: u32 = 1 << 0;
    /// The application asked to send FIN after the queued data.
    pub const FIN_QUEUED: u32 = 1 << 1;
    /// The application closed: no more events, free when done.
    pub const APP_CLOSED: u32 = 1 << 2;
    /// Send a tail loss probe now (RFC 8985 section 7.3).
    pub const TLP_PROBE: u32 = 1 << 3;
    /// Send a zero-window probe now.
    pub const PROBE: u32 = 1 << 4;
    /// Send a keepalive probe now.
    pub const KEEPALIVE: u32 = 1 << 5;
    /// A Readable event may be sent.
    pub const READ_ARMED: u32 = 1 << 6;
    /// A Writable event may be sent (a write was cut short).
    pub const WRITE_ARMED: u32 = 1 << 7;
    /// The peer's FIN has been received.
    pub const PEER_FIN: u32 = 1 << 8;
    /// In fast recovery (RFC 6675 with PRR), entered on a loss RACK or duplicate ACKs found.
    pub const RECOVERY: u32 = 1 << 9;
    /// The handle belongs to the application (active open, or accepted).
    pub const APP_OWNED: u32 = 1 << 10;
    /// Queued for output in the stack.
    pub const TX_QUEUED: u32 = 1 << 11;
    /// Our SYN (or SYN-ACK) must be (re)sent.
    pub const SEND_SYN: u32 = 1 << 12;
    /// Created from a SYN cookie: no SYN-ACK retransmission state.
    pub const FROM_COOKIE: u32 = 1 << 13;
    /// Our FIN has been acknowledged.
    pub const FIN_ACKED: u32 = 1 << 14;
    /// Recovering from a retransmission timeout: every segment not SACKed was marked
    /// lost and goes again under slow start, until `recover` is acknowledged.
    pub const LOSS: u32 = 1 << 15;
    /// Our SYN went again at once behind a RST that answered an unacceptable ACK (the
    /// peer's older connection on this 4-tuple): done at most once per connection.
    pub const SYN_AFTER_RST: u32 = 1 << 16;
}

/// What an input or timer asks the stack to do or tell the application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify(pub u16);

impl Notify {
    /// Active open completed.
    pub const CONNECTED: u16 = 1 << 0;
    /// Passive open completed (goes to the accept queue).
    pub const ESTABLISHED: u16 = 1 << 1;
    /// In-order data is waiting.
    pub const READABLE: u16 = 1 << 2;
    /// Send buffer space opened after a short write.
    pub const WRITABLE: u16 = 1 << 3;
    /// The peer sent FIN.
    pub const PEER_CLOSED: u16 = 1 << 4;
    /// Both directions closed cleanly.
    pub const CLOSED: u16 = 1 << 5;
    /// The peer reset the connection.
    pub const RESET: u16 = 1 << 6;
    /// Retransmissions or keepalives gave up.
    pub const TIMED_OUT: u16 = 1 << 7;
    /// The connection attempt was refused (RST in SYN-SENT).
    pub const REFUSED: u16 = 1 << 8;
    /// Output may be pending: queue the connection for `poll_transmit`.
    pub const OUTPUT: u16 = 1 << 9;
    /// Send a RST with `seq = ack of the segment` (unacceptable ACK in a half-open state).
    pub const SEND_RST: u16 = 1 << 10;
    /// Send a RST now from the connection's state and drop it (abort, timeout).
    pub const ABORT_RST: u16 = 1 << 11;
    /// Send a challenge ACK (RFC 5961), subject to the stack's rate limit.
    pub const CHALLENGE: u16 = 1 << 12;

    /// True if any bit of `m` is set.
    #[inline]
    pub fn has(self, m: u16) -> bool {
        self.0 & m != 0
    }

    /// Sets bits.
    #[inline]
    pub fn set(&mut self, m: u16) {
        self.0 |= m;
    }
}

/// The congestion state saved when a recovery (or timeout) began, restored if D-SACKs
/// show that every retransmission of it was unnecessary (RFC 3708, Linux's undo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undo {
    /// Whether an episode can still be undone.
    pub active: bool,
    /// `snd_una` when it began: D-SACKs below it are not about this episode.
    pub marker: u32,
    /// Retransmissions of the episode not yet reported as duplicates.
    pub retrans: u32,
    /// `cwnd` before the reduction.
    pub prior_cwnd: usize,
    /// `ssthresh` before the reduction.
    pub prior_ssthresh: usize,
}

/// One connection's control block.
#[derive(Debug)]
pub struct Connection {
    /// The 4-tuple.
    pub key: ConnKey,
    /// Current state.
    pub state: State,
    /// Index of the profile in the stack.
    pub profile: u16,
    /// Packed booleans (see `flag`).
    pub flags: u32,
    /// The listener that created it (passive opens), for its queues.
    pub listener: u32,
    /// The application its events go to.
    pub owner: crate::tcp::Owner,
    /// Segments received on this connection.
    pub segs_in: u64,
    /// Segments sent on this connection (retransmissions included).
    pub segs_out: u64,
    /// Bytes of retransmission-queue records counted in the stack's buffer memory
    /// (reserved with the send buffer, given back with it).
    pub rtx_accounted: u32,
    /// The egress port and shaping class its segments take (lossless shaping).
    pub shaping: Option<crate::tcp::Shaping>,
    /// `Writable` waits until at most this many bytes wait to be sent for the first time
    /// (0: until a quarter of the send buffer is free), see
    /// [`crate::tcp::TcpStack::arm_writable`].
    pub send_low_water: u32,

    /// Our initial sequence number.
    pub iss: u32,
    /// Oldest unacknowledged sequence number.
    pub snd_una: u32,
    /// Next sequence number to send (rolled back on timeout).
    pub snd_nxt: u32,
    /// Highest sequence number sent plus one.
    pub snd_max: u32,
    /// Peer's window in bytes (scaled).
    pub snd_wnd: u32,
    /// Largest window the peer has offered.
    pub max_snd_wnd: u32,
    /// Segment sequence of the last window update.
    pub snd_wl1: u32,
    /// Segment acknowledgment of the last window update.
    pub snd_wl2: u32,
    /// `snd_max` when recovery (or the timeout recovery) started (RFC 6582 `recover`).
    pub recover: u32,

    /// Peer's initial sequence number.
    pub irs: u32,
    /// Next sequence number expected.
    pub rcv_nxt: u32,
    /// Right edge of the window last advertised.
    pub rcv_adv: u32,
    /// `rcv_nxt` in the last ACK sent.
    pub last_ack_sent: u32,
    /// Sequence number of the peer's FIN, once seen (valid with `has_rcv_fin`).
    pub rcv_fin: u32,
    /// Whether `rcv_fin` is set.
    pub has_rcv_fin: bool,

    /// Payload bytes per segment we send (options excluded).
    pub mss: u16,
    /// Shift applied to the peer's window field.
    pub snd_wscale: u8,
    /// Shift applied to our window field.
    pub rcv_wscale: u8,
    /// Window scaling negotiated.
    pub wscale_on: bool,
    /// Timestamps negotiated.
    pub ts_ok: bool,
    /// SACK negotiated.
    pub sack_ok: bool,
    /// Duplicate ACKs in a row.
    pub dupacks: u8,
    /// Consecutive retransmission timeouts (back-off exponent).
    pub backoff: u8,
    /// Unanswered keepalive probes.
    pub probes: u8,
    /// Bytes received in order since the last ACK sent: more than one full-sized
    /// segment's worth is acknowledged at once (RFC 5681 section 4.2's "every second
    /// full-sized segment", counted in bytes as Linux does, so the head and body of a
    /// small response sent as two short segments wait for the delayed ACK or a reply).
    pub unacked_bytes: u32,
    /// Out-of-order arrivals not yet answered: each gets its own duplicate ACK, so the
    /// sender can count them even when a burst is processed before output.
    pub acks_owed: u8,
    /// Latest timestamp to echo (RFC 7323 TS.Recent).
    pub ts_recent: u32,
    /// Our timestamp offset.
    pub ts_offset: u32,

    /// RTT estimate and timeout.
    pub rtt: RttEstimator,
    /// Sequence number being timed (without timestamps), valid while `rtt_timing`.
    pub rtt_seq: u32,
    /// Whether a segment is being timed.
    pub rtt_timing: bool,
    /// When the timed segment was sent (ms).
    pub rtt_sent_ms: u32,
    /// Last time a segment arrived (ms), for keepalive.
    pub last_rx_ms: u32,
    /// Last time data was sent (ms), for the idle restart of the window.
    pub last_tx_ms: u32,

    /// Congestion control.
    pub cc: Congestion,
    /// The segments in flight with their SACK, loss and retransmission marks.
    pub rtx: RtxQueue,
    /// RACK loss detection (RFC 8985).
    pub rack: Rack,
    /// The open tail loss probe episode, if any.
    pub tlp: Tlp,
    /// Proportional rate reduction during fast recovery (RFC 6937).
    pub prr: Prr,
    /// What a spurious recovery would restore (RFC 3708 with D-SACK).
    pub undo: Undo,
    /// Delivery rate estimation (BBR's input).
    pub rate: RateState,
    /// When the next paced segment may leave (ns of the stack's clock), for a
    /// congestion control that paces.
    pub pace_next: u64,
    /// The last `poll_segment` held data back until `pace_next`.
    pub pace_blocked: bool,
    /// Waiting in the stack's pacing queue.
    pub paced_wait: bool,
    /// A D-SACK block to report first in the next ACK (RFC 2883), a duplicate received.
    pub dsack: Option<(u32, u32)>,
    /// Out-of-order data held.
    pub assembler: Assembler,
    /// The connection's timers.
    pub timers: Timers,
    /// The wheel entry standing for the earliest timer, and its deadline (ns).
    pub wheel: Option<(TimerId, u64)>,

    /// Receive buffer size the profile grants (allocated only while holding data).
    pub rcv_buf: u32,
    /// Send buffer size the profile grants (allocated only while holding data).
    pub snd_buf: u32,
    /// Bytes from `snd_una` (after the SYN) onward, sent or not.
    pub tx: RingBuffer,
    /// In-order bytes not yet read, then out-of-order bytes at their offsets.
    pub rx: RingBuffer,
}

impl Connection {
    /// A connection with nothing negotiated yet and no buffers.
    pub fn new(key: ConnKey, profile: u16, iss: u32, cc: Congestion, rtt: RttEstimator) -> Self {
        Connection {
            key,
            state: State::Closed,
            profile,
            flags: flag::READ_ARMED,
            listener: u32::MAX,
            owner: crate::tcp::Owner::NONE,
            segs_in: 0,
            segs_out: 0,
            send_low_water: 0,
            rtx_accounted: 0,
            shaping: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            recover: iss,
            irs: 0,
            rcv_nxt: 0,
            rcv_adv: 0,
            last_ack_sent: 0,
            rcv_fin: 0,
            has_rcv_fin: false,
            mss: 536,
            snd_wscale: 0,
            rcv_wscale: 0,
            wscale_on: false,
            ts_ok: false,
            sack_ok: false,
            dupacks: 0,
            backoff: 0,
            probes: 0,
            unacked_bytes: 0,
            acks_owed: 0,
            ts_recent: 0,
            ts_offset: 0,
            rtt,
            rtt_seq: 0,
            rtt_timing: false,
            rtt_sent_ms: 0,
            last_rx_ms: 0,
            last_tx_ms: 0,
            cc,
            rtx: RtxQueue::default(),
            rack: Rack::default(),
            tlp: Tlp::default(),
            prr: Prr::default(),
            undo: Undo::default(),
            rate: RateState::default(),
            pace_next: 0,
            pace_blocked: false,
            paced_wait: false,
            dsack: None,
            assembler: Assembler::default(),
            timers: Timers::default(),
            wheel: None,
            rcv_buf: 0,
            snd_buf: 0,
            tx: RingBuffer::default(),
            rx: RingBuffer::default(),
        }
    }

    /// True if flag `f` is set.
    #[inline]
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Sets flag `f`.
    #[inline]
    pub fn set(&mut self, f: u32) {
        self.flags |= f;
    }

    /// Clears flag `f`.
    #[inline]
    pub fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// Sequence number of the first data byte in `tx` (after our SYN).
    #[inline]
    pub fn data_start(&self) -> u32 {
        if self.snd_una == self.iss {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    /// Sequence number just past the data queued in `tx`.
    #[inline]
    pub fn data_end(&self) -> u32 {
        self.data_start().wrapping_add(self.tx.len() as u32)
    }

    /// Sequence number our FIN has (or will have), if queued.
    #[inline]
    pub fn fin_seq(&self) -> Option<u32> {
        (self.flags & (flag::FIN_QUEUED | flag::FIN_ACKED) == flag::FIN_QUEUED)
            .then(|| self.data_end())
    }

    /// True once our FIN is acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.has(flag::FIN_ACKED)
    }

    /// Bytes in the send buffer never sent yet.
    #[inline]
    pub fn unsent(&self) -> usize {
        let end = self.data_end();
        if seq::lt(self.snd_max, end) {
            seq::dist(self.snd_max, end)
        } else {
            0
        }
    }

    /// True when an armed `Writable` with a low-water mark is due: at most that many
    /// bytes wait to be sent for the first time.
    #[inline]
    pub fn below_low_water(&self) -> bool {
        self.send_low_water > 0
            && self.has(flag::WRITE_ARMED)
            && self.unsent() <= self.send_low_water as usize
    }

    /// Bytes sent and not acknowledged, SYN and FIN included.
    #[inline]
    pub fn outstanding(&self) -> usize {
        seq::dist(self.snd_una, self.snd_max)
    }

    /// The RFC 6675 `pipe`: bytes believed to be in the network (outstanding, less
    /// what was SACKed or deemed lost, plus retransmissions in flight).
    #[inline]
    pub fn flight(&self) -> usize {
        self.rtx.pipe(self.outstanding())
    }

    /// True in fast recovery or timeout recovery.
    #[inline]
    pub fn recovering(&self) -> bool {
        self.has(flag::RECOVERY | flag::LOSS)
    }

    /// Free receive space: the granted buffer when none is allocated (it comes with data).
    #[inline]
    pub fn rx_free(&self) -> usize {
        if self.rx.capacity() == 0 {
            self.rcv_buf as usize
        } else {
            self.rx.free()
        }
    }

    /// Free send space: the granted buffer when none is allocated.
    #[inline]
    pub fn tx_free(&self) -> usize {
        if self.tx.capacity() == 0 {
            self.snd_buf as usize
        } else {
            self.tx.free()
        }
    }

    /// The window we can advertise now, in bytes, never moving the right edge left.
    pub fn rcv_wnd(&self) -> u32 {
        let free = self.rx_free() as u32;
        let promised = seq::dist(self.rcv_nxt, self.rcv_adv) as u32;
        free.max(promised)
    }
}
