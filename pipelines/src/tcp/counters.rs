//! The stack's counters: plain integers owned by one worker, folded by the control thread.

/// Why an incoming segment (or a connection attempt) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpDrop {
    /// Header too short, bad data offset or malformed options.
    Malformed,
    /// Checksum mismatch.
    BadChecksum,
    /// No connection or listener (answered with a RST).
    NoSocket,
    /// Sequence number outside the receive window (answered with an ACK).
    OutOfWindow,
    /// Timestamp older than the last one seen (PAWS, RFC 7323 section 5).
    Paws,
    /// Acknowledges data never sent or far too old (RFC 5961 section 5).
    BadAck,
    /// A RST that was not exactly at `rcv_nxt` (RFC 5961 section 3).
    InvalidRst,
    /// A SYN on a synchronised connection (RFC 5961 section 4).
    UnexpectedSyn,
    /// SYN queue full and SYN cookies off.
    SynQueueFull,
    /// Handshake completed but the accept queue is full.
    AcceptQueueFull,
    /// The connection limit was reached.
    ConnectionLimit,
    /// The buffer memory limit was reached.
    MemoryLimit,
    /// An ACK that did not carry a valid SYN cookie.
    BadCookie,
    /// Out-of-order data that needed more reassembly ranges than are kept.
    ReassemblyFull,
    /// Data past the receive window or the buffer.
    BeyondWindow,
    /// A segment with neither ACK nor RST nor SYN where one is required.
    NoAck,
    /// The stateless reply queue was full.
    ReplyQueueFull,
}

impl TcpDrop {
    /// Every reason, in counter order.
    pub const ALL: [TcpDrop; 17] = [
        TcpDrop::Malformed,
        TcpDrop::BadChecksum,
        TcpDrop::NoSocket,
        TcpDrop::OutOfWindow,
        TcpDrop::Paws,
        TcpDrop::BadAck,
        TcpDrop::InvalidRst,
        TcpDrop::UnexpectedSyn,
        TcpDrop::SynQueueFull,
        TcpDrop::AcceptQueueFull,
        TcpDrop::ConnectionLimit,
        TcpDrop::MemoryLimit,
        TcpDrop::BadCookie,
        TcpDrop::ReassemblyFull,
        TcpDrop::BeyondWindow,
        TcpDrop::NoAck,
        TcpDrop::ReplyQueueFull,
    ];

    /// The name shown in statistics.
    pub fn name(self) -> &'static str {
        match self {
            TcpDrop::Malformed => "malformed",
            TcpDrop::BadChecksum => "bad-checksum",
            TcpDrop::NoSocket => "no-socket",
            TcpDrop::OutOfWindow => "out-of-window",
            TcpDrop::Paws => "paws",
            TcpDrop::BadAck => "bad-ack",
            TcpDrop::InvalidRst => "invalid-rst",
            TcpDrop::UnexpectedSyn => "unexpected-syn",
            TcpDrop::SynQueueFull => "syn-queue-full",
            TcpDrop::AcceptQueueFull => "accept-queue-full",
            TcpDrop::ConnectionLimit => "connection-limit",
            TcpDrop::MemoryLimit => "memory-limit",
            TcpDrop::BadCookie => "bad-cookie",
            TcpDrop::ReassemblyFull => "reassembly-full",
            TcpDrop::BeyondWindow => "beyond-window",
            TcpDrop::NoAck => "no-ack",
            TcpDrop::ReplyQueueFull => "reply-queue-full",
        }
    }
}

/// Counters of one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments received (valid or not).
    pub segments_in: u64,
    /// Segments sent.
    pub segments_out: u64,
    /// Payload bytes accepted in order.
    pub bytes_in: u64,
    /// Payload bytes sent, retransmissions included.
    pub bytes_out: u64,
    /// Segments retransmitted (any cause).
    pub retransmits: u64,
    /// Fast retransmit / recovery episodes entered.
    pub fast_recoveries: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Resets received and accepted.
    pub resets_received: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// SYN-ACKs sent with a cookie.
    pub syn_cookies_sent: u64,
    /// Connections created from a valid cookie.
    pub syn_cookies_validated: u64,
    /// Active opens started.
    pub active_opens: u64,
    /// Passive opens (connections entering the accept queue).
    pub passive_opens: u64,
    /// Connections closed cleanly.
    pub closed: u64,
    /// Connections ended by a reset or a timeout.
    pub aborted: u64,
    /// TIME-WAIT entries recycled early because the table was full.
    pub time_wait_recycled: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Dropped segments, by [`TcpDrop`] (index in [`TcpDrop::ALL`]).
    pub drops: [u64; 17],
}

impl TcpCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, why: TcpDrop) {
        self.drops[why as usize] += 1;
    }

    /// Drops so far for `why`.
    pub fn dropped(&self, why: TcpDrop) -> u64 {
        self.drops[why as usize]
    }
}
