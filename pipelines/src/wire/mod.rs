//! Packet header views and checksums.
//!
//! Each view wraps a byte slice, checks it once in `new_checked`, and then offers
//! accessors that cannot panic. Field offsets live in a private `field` module per
//! header (after smoltcp's `wire`).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
