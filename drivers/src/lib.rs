//! Rouge's packet I/O layer (the "phy" of the appliance).
//!
//! This crate owns everything that touches a wire:
//!
//! - [`buf`]: packet buffers and the per-worker [`PacketPool`] they are taken from
//!   and return to, allocated once at start so the data path never allocates;
//! - [`clock`]: the time base of packet receive timestamps (`CLOCK_MONOTONIC`);
//! - [`port`]: the [`Port`] trait (burst receive and transmit of up to
//!   [`BURST_SIZE`] packets), per-port counters and named drop reasons;
//! - drivers: [`afpacket`] (Linux TPACKET rings with fanout steering), [`afxdp`]
//!   (AF_XDP sockets with Rouge's own XDP redirect program), the DPDK driver (crate
//!   `rouge-dpdk` beside this one, in `drivers/dpdk/`), [`pipe`]
//!   (an in-memory wire for tests), and wrappers that fit around any port:
//!   [`faulty`] (seeded loss, duplication, reordering, corruption, delay) and
//!   [`pcap`] (writes every frame to a capture file);
//! - [`steer`]: the [`steer::Steering`] a driver describes (which worker a flow reaches)
//!   and the Toeplitz (RSS) hash with the standard and a symmetric key.
//!
//! [`sched`] puts a worker thread under `SCHED_FIFO` when the configuration asks.
//!
//! `unsafe` code lives only in `drivers/` (this crate, `rouge-dpdk` and `rouge-dpdk-sys`),
//! each block with a `// SAFETY:` comment, behind safe APIs.

pub mod afpacket;
pub mod afxdp;
pub mod buf;
pub mod clock;
pub mod faulty;
pub mod netns;
pub mod pcap;
pub mod pipe;
pub mod port;
pub mod sched;
pub mod steer;
pub mod wait;

pub use buf::{HandedFrame, Packet, PacketPool, BUF_HEADROOM, BUF_SIZE};
pub use port::{Burst, MacAddr, Port, PortCounters, PortDrop, BURST_SIZE};
