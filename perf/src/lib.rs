//! Rouge's benchmark harness.
//!
//! - [`frame`]: prebuilt Ethernet/IPv4 frame templates (UDP, TCP SYN, ICMP echo) that
//!   are patched per packet (flow, sequence number, timestamp, checksums) without
//!   allocating;
//! - [`probe`]: the 16-byte probe every generated frame carries in its payload;
//! - [`gen`]: the generator (flows, frame-size schedule, rate) and the receiver (per-flow
//!   loss, reordering, duplicates, latency histogram);
//! - [`engine`]: the bounded run loop over any pair of [`rouge_drivers::Port`]s, and ARP
//!   resolution of the destination MAC;
//! - [`report`]: the run's figures as a human table and as JSON;
//! - [`mod@bench`]: the generator and receiver alone over a `pipe` (no Rouge in between);
//! - [`paths`]: Rouge's real data plane over `pipe` ports, one path at a time (ARP,
//!   echo, forwarding, fastl4, TCP, shaper), for instructions per packet;
//! - [`ports`], [`netns`]: opening an interface by name in a chosen network namespace.
//!
//! Everything but [`ports`] and [`netns`] works over `pipe` ports, so it is unit-tested
//! without root.

pub mod bench;
pub mod engine;
pub mod frame;
pub mod gen;
pub mod netns;
pub mod paths;
pub mod ports;
pub mod probe;
pub mod report;
