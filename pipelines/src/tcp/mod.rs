//! The userspace TCP stack: a sans-I/O engine for one worker.
//!
//! [`TcpStack`] owns a worker's connections (a hash map on the 4-tuple over a slab),
//! listeners with a SYN queue and an accept queue, SYN cookies for when the SYN queue
//! is full, a hashed timer wheel and a bounded TIME-WAIT table. Segments come in through
//! [`TcpStack::handle_segment`], segments go out through [`TcpStack::poll_transmit`],
//! the application talks to it through commands and [`Event`]s, and time only moves
//! when the caller passes `now`. See [`TcpStack`] for the call order.
//!
//! What it does (RFC 9293 as the base):
//!
//! - three-way handshake both ways, simultaneous open and close, half-close, TIME-WAIT
//!   (bounded table, RFC 1337 RST handling, RFC 6191 reuse by a newer SYN);
//! - RFC 5961: RSTs only at exactly `rcv_nxt`, challenge ACKs (rate-limited) for other
//!   in-window RSTs, SYNs on synchronised connections and too-old ACKs;
//! - MSS negotiation and clamping to the profile, window scaling and timestamps with
//!   PAWS (RFC 7323), SACK generation and a sender scoreboard (RFC 2018);
//! - loss recovery: a per-segment retransmission queue (SACKed, lost, retransmitted,
//!   send time); RACK-TLP (RFC 8985): time-based loss detection with a reordering window,
//!   so lost retransmissions and further holes are found as soon as later data arrives,
//!   and tail loss probes so a lost tail or lost ACKs end in fast recovery rather than a
//!   timeout; RFC 6675 recovery with Proportional Rate Reduction (RFC 6937); duplicate
//!   ACKs, NewReno partial ACKs (RFC 6582), limited transmit (RFC 3042) and early
//!   retransmit (RFC 5827) without SACK; D-SACK (RFC 2883) both ways, with spurious
//!   retransmissions counted and the window reduction undone (RFC 3708); RTO per
//!   RFC 6298 with back-off, resending what was not SACKed; NewReno, CUBIC (RFC 9438)
//!   or BBR v1 (with delivery rate estimation and pacing) per profile; window restart
//!   after idle;
//! - delayed ACKs (every second segment, at once for out-of-order data, one ACK per
//!   out-of-order segment), Nagle (switchable), sender and receiver silly window
//!   avoidance, zero-window probes (persist), keepalive, idle timeout;
//! - listeners with a SYN queue and an accept queue; SYN cookies (RFC 4987) when the SYN
//!   queue or the connection table is full, carrying MSS, window scale and SACK; ISNs
//!   per RFC 6528; limits on connections and on buffer memory with drop counters;
//! - buffers allocated when data arrives or is written and given back when drained, so
//!   an idle established connection holds only its control block (about 500 bytes).
//!
//! Not done: urgent data (ignored), ECN, TCP Fast Open, path MTU discovery. IPv6 addresses go through
//! the whole stack (tested up to data on a handshake), the IP layer is the caller's.
//!
//! Files by concern:
//!
//! - [`state`]: the control block and its states; [`input`]: segment arrival;
//!   [`output`]: what to send next; [`timers`]: RTO (RFC 6298), delayed ACK, persist,
//!   keepalive, FIN-WAIT-2;
//! - [`congestion`]: NewReno, CUBIC and BBR; [`rate`]: delivery rate estimation;
//!   [`rtx`]: the retransmission queue (per-segment scoreboard); [`recovery`]: loss detection, recovery states, D-SACK and undo;
//!   [`rack`]: RACK-TLP; [`prr`]: proportional rate reduction;
//!   [`ring`]: the byte rings and the receive reassembly list;
//! - [`options`]: option negotiation; [`isn`]: RFC 6528 ISNs and SYN cookies;
//! - [`listener`]: listeners and the TIME-WAIT table; [`stack`]: the engine (with
//!   `stack/passive.rs` for SYNs, cookies and TIME-WAIT input, `stack/lifecycle.rs` for
//!   events, release and buffers); [`config`], [`counters`].

pub mod config;
pub mod congestion;
pub mod counters;
pub mod input;
pub mod isn;
pub mod listener;
pub mod options;
pub mod output;
pub mod prr;
pub mod rack;
pub mod rate;
pub mod recovery;
pub mod ring;
pub mod rtx;
pub mod seq;
pub mod stack;
pub mod state;
pub mod timers;

#[cfg(test)]
mod tests;

pub use config::{Keepalive, StackConfig, TcpProfile};
pub use congestion::CongestionAlgo;
pub use counters::{TcpCounters, TcpDrop};
pub use stack::{
    ConnHandle, Event, ListenerHandle, Owner, ProfileId, ResetReason, Shaping, TcpError, TcpStack,
    Transmit,
};
pub use state::{Connection, State};
