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
    /// Segments retransmitted (any cause, SYN and SYN-ACK included).
    pub retransmits: u64,
    /// Of those, sent in fast recovery (RACK, duplicate ACKs or a partial ACK found them lost).
    pub retransmits_fast: u64,
    /// Of those, tail loss probes that resent the last segment.
    pub retransmits_tlp: u64,
    /// Of those, sent after a retransmission timeout.
    pub retransmits_rto: u64,
    /// Fast recovery episodes entered.
    pub fast_recoveries: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Tail loss probes sent (new data or a retransmission).
    pub tlp_probes: u64,
    /// Tail loss probes that repaired a loss (the probe's ACK came without a D-SACK).
    pub tlp_recoveries: u64,
    /// Retransmissions found lost in turn and sent again.
    pub lost_retransmits: u64,
    /// D-SACK blocks received (RFC 2883).
    pub dsacks_received: u64,
    /// D-SACK blocks sent for duplicate data received.
    pub dsacks_sent: u64,
    /// Retransmissions a D-SACK showed unnecessary.
    pub spurious_retransmits: u64,
    /// Recoveries or timeouts undone because every retransmission was spurious.
    pub undos: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Resets received and accepted.
    pub resets_received: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// SYNs sent again at once behind a RST, because the peer answered the first one
    /// for an older connection on the same 4-tuple (its TIME-WAIT, or a connection of a
    /// previous run it still held).
    pub syn_resent_after_rst: u64,
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
    /// Bytes moved from one connection's receive buffer into another's send buffer by
    /// [`TcpStack::relay`](super::TcpStack::relay).
    pub bytes_relayed: u64,
    /// Times a shaped connection held new data back because its shaping class had no
    /// room (lossless shaping: the data waits, nothing is dropped).
    pub shaping_deferrals: u64,
    /// Times a paced connection (BBR) held data back until its next send time.
    pub pacing_waits: u64,
    /// Times the application corked a connection (held a short segment for the rest of
    /// its message: `TcpStack::cork`).
    pub corks: u64,
    /// Corks that ran out before the application lifted them (the rest of the message
    /// was late; the held bytes went alone).
    pub cork_expired: u64,
    /// Buffer memory held by connections now (a gauge, bounded by the stack's
    /// `max_buffer_bytes`; refusals count as the `memory_limit` drop).
    pub buffer_bytes: u64,
    /// Dropped segments, by [`TcpDrop`] (index in [`TcpDrop::ALL`]).
    pub drops: [u64; 17],
}

impl TcpCounters {
    /// Adds another stack's counters (folding workers).
    pub fn add(&mut self, o: &TcpCounters) {
        let TcpCounters {
            segments_in,
            segments_out,
            bytes_in,
            bytes_out,
            retransmits,
            retransmits_fast,
            retransmits_tlp,
            retransmits_rto,
            fast_recoveries,
            timeouts,
            tlp_probes,
            tlp_recoveries,
            lost_retransmits,
            dsacks_received,
            dsacks_sent,
            spurious_retransmits,
            undos,
            resets_sent,
            resets_received,
            challenge_acks,
            syn_resent_after_rst,
            syn_cookies_sent,
            syn_cookies_validated,
            active_opens,
            passive_opens,
            closed,
            aborted,
            time_wait_recycled,
            window_probes,
            keepalive_probes,
            bytes_relayed,
            shaping_deferrals,
            pacing_waits,
            corks,
            cork_expired,
            buffer_bytes,
            drops,
        } = o;
        self.segments_in += segments_in;
        self.segments_out += segments_out;
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        self.retransmits += retransmits;
        self.retransmits_fast += retransmits_fast;
        self.retransmits_tlp += retransmits_tlp;
        self.retransmits_rto += retransmits_rto;
        self.fast_recoveries += fast_recoveries;
        self.timeouts += timeouts;
        self.tlp_probes += tlp_probes;
        self.tlp_recoveries += tlp_recoveries;
        self.lost_retransmits += lost_retransmits;
        self.dsacks_received += dsacks_received;
        self.dsacks_sent += dsacks_sent;
        self.spurious_retransmits += spurious_retransmits;
        self.undos += undos;
        self.resets_sent += resets_sent;
        self.resets_received += resets_received;
        self.challenge_acks += challenge_acks;
        self.syn_resent_after_rst += syn_resent_after_rst;
        self.syn_cookies_sent += syn_cookies_sent;
        self.syn_cookies_validated += syn_cookies_validated;
        self.active_opens += active_opens;
        self.passive_opens += passive_opens;
        self.closed += closed;
        self.aborted += aborted;
        self.time_wait_recycled += time_wait_recycled;
        self.window_probes += window_probes;
        self.keepalive_probes += keepalive_probes;
        self.bytes_relayed += bytes_relayed;
        self.shaping_deferrals += shaping_deferrals;
        self.pacing_waits += pacing_waits;
        self.corks += corks;
        self.cork_expired += cork_expired;
        self.buffer_bytes += buffer_bytes;
        for (t, x) in self.drops.iter_mut().zip(drops.iter()) {
            *t += x;
        }
    }

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
