//! The userspace TCP stack: a sans-I/O engine for one worker.
//!
//! [`TcpStack`] owns a worker's connections (a hash map on the 4-tuple over a slab),
//! listeners with a SYN queue and an accept queue, SYN cookies for when the SYN queue
//! is full, a hashed timer wheel and a bounded TIME-WAIT table. Segments come in through
//! [`TcpStack::handle_segment`], segments go out through [`TcpStack::poll_transmit`],
//! the application talks to it through commands and [`Event`]s, and time only moves
//! when the caller passes `now`. See [`TcpStack`] for the call order.
//!
//! Files by concern:
//!
//! - [`state`]: the control block and its states; [`input`]: segment arrival;
//!   [`output`]: what to send next; [`timers`]: RTO (RFC 6298), delayed ACK, persist,
//!   keepalive, FIN-WAIT-2;
//! - [`congestion`]: NewReno and CUBIC; [`sack`]: the sender's SACK scoreboard;
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
pub mod ring;
pub mod sack;
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
    ConnHandle, Event, ListenerHandle, ProfileId, ResetReason, TcpError, TcpStack, Transmit,
};
pub use state::{Connection, State};
