//! Profiles (per listener or per active open) and stack-wide limits.

use std::time::Duration;

use super::congestion::CongestionAlgo;

/// Keepalive probing of an idle connection (RFC 9293 section 3.8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is given up.
    pub probes: u8,
}

/// The `tcp` profile of a virtual server or monitor: how its connections behave.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProfile {
    /// Largest segment payload we accept (announced in our SYN) and send; clamps the peer's.
    pub mss: u16,
    /// Send buffer per connection in bytes (the most a `write` can queue).
    pub send_buffer: usize,
    /// Receive buffer per connection in bytes (the largest window offered).
    pub recv_buffer: usize,
    /// Nagle's algorithm (RFC 9293 section 3.7.4): hold small segments while data is unacked.
    pub nagle: bool,
    /// Delayed ACK timeout (RFC 9293 section 3.8.6.3); zero acknowledges every segment.
    pub delayed_ack: Duration,
    /// Congestion control algorithm.
    pub congestion: CongestionAlgo,
    /// Initial congestion window in segments (RFC 6928).
    pub initial_cwnd: usize,
    /// Offer and use SACK (RFC 2018).
    pub sack: bool,
    /// Offer and use timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer and use window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Lower bound of the retransmission timeout (RFC 6298 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Retransmission timeout before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Upper bound of the retransmission timeout after back-off.
    pub max_rto: Duration,
    /// SYN or SYN-ACK retransmissions before an open fails.
    pub syn_retries: u8,
    /// Data retransmissions of one segment before the connection is reset.
    pub max_retries: u8,
    /// Keepalive probing, off when `None`.
    pub keepalive: Option<Keepalive>,
    /// Reset a connection after this long without a segment either way (an ADC's
    /// idle timeout); off when `None`.
    pub idle_timeout: Option<Duration>,
    /// How long a closed connection stays in TIME-WAIT (2 MSL).
    pub time_wait: Duration,
    /// How long an orphaned connection may wait in FIN-WAIT-2 for the peer's FIN.
    pub fin_wait2_timeout: Duration,
}

impl Default for TcpProfile {
    fn default() -> Self {
        TcpProfile {
            mss: 1460,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            nagle: true,
            delayed_ack: Duration::from_millis(40),
            congestion: CongestionAlgo::Cubic,
            initial_cwnd: 10,
            sack: true,
            timestamps: true,
            window_scaling: true,
            min_rto: Duration::from_millis(200),
            initial_rto: Duration::from_secs(1),
            max_rto: Duration::from_secs(60),
            syn_retries: 6,
            max_retries: 15,
            keepalive: None,
            idle_timeout: None,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
        }
    }
}

impl TcpProfile {
    /// The window scale we offer: the smallest shift that lets the receive buffer be
    /// advertised (RFC 7323 section 2.3, at most 14).
    pub fn rcv_wscale(&self) -> u8 {
        let mut s = 0;
        while s < 14 && (self.recv_buffer >> s) > 65535 {
            s += 1;
        }
        s
    }
}

/// Per-worker limits and settings of a [`super::TcpStack`].
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    /// Most connections (any state but TIME-WAIT, which has its own table).
    pub max_connections: usize,
    /// Most bytes of send and receive buffers allocated at once.
    pub max_buffer_bytes: usize,
    /// Most TIME-WAIT entries; the oldest is recycled when full.
    pub max_time_wait: usize,
    /// Answer SYNs with cookies when a SYN queue (or the connection table) is full.
    pub syn_cookies: bool,
    /// The secret keying ISNs, timestamps offsets and SYN cookies (from a random source
    /// at start; fixed in tests).
    pub secret: (u64, u64),
    /// Timer wheel granularity.
    pub timer_tick: Duration,
    /// Most challenge ACKs sent per second (RFC 5961 section 7).
    pub challenge_ack_limit: u32,
    /// Most stateless replies (RSTs, cookie SYN-ACKs) queued for output.
    pub max_pending_replies: usize,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            max_connections: 65536,
            max_buffer_bytes: 1 << 30,
            max_time_wait: 65536,
            syn_cookies: true,
            secret: (0x5eed_0001, 0x5eed_0002),
            timer_tick: Duration::from_millis(1),
            challenge_ack_limit: 1000,
            max_pending_replies: 1024,
        }
    }
}
