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
//! - [`mod@bench`]: the per-packet path over `pipe` ports, for instruction counts;
//! - [`ports`], [`netns`]: opening an interface by name in a chosen network namespace.
//!
//! Everything but [`ports`] and [`netns`] works over `pipe` ports, so it is unit-tested
//! without root.

pub mod bench;
pub mod engine;
pub mod frame;
pub mod gen;
pub mod netns;
pub mod ports;
pub mod probe;
pub mod report;
