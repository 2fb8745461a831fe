//! Verdicts: how every packet ends, and the named reasons a packet is dropped.

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent on toward its destination (routed, translated).
    Forwarded,
    /// Answered by the appliance itself (ARP reply, ICMP echo reply).
    Answered,
    /// Absorbed on purpose (an ARP reply learned, a segment taken by a local service).
    Consumed,
    /// Parked until a next hop resolves; it ends later as forwarded or dropped.
    Held,
    /// Thrown away, with the reason counted.
    Dropped(DropReason),
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a packet was dropped. Each reason is a counter shown by `rouge show stats`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = [$($name,)*].len();

            /// The counter's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "Frame shorter than an Ethernet header.";
    EthStackedVlan => "eth_stacked_vlan", "More than one 802.1Q tag.";
    EthUnsupportedType => "eth_unsupported_type", "EtherType neither IPv4, IPv6 nor ARP (or IPv6 with no IPv6 self IP configured).";
    EthNotForUs => "eth_not_for_us", "Destination MAC neither ours nor broadcast.";
    UnknownVlan => "unknown_vlan", "VLAN tag not configured on the receiving interface.";
    ArpMalformed => "arp_malformed", "ARP packet truncated, not Ethernet/IPv4, or with a bad operation or sender.";
    ArpNotForUs => "arp_not_for_us", "ARP request for an address the appliance does not own.";
    ArpConflict => "arp_conflict", "Another host claims one of the appliance's addresses.";
    ArpUnresolved => "arp_unresolved", "Next hop did not answer ARP in time.";
    ArpQueueFull => "arp_queue_full", "Too many packets already waiting for this next hop.";
    ArpTableFull => "arp_table_full", "Neighbour table full.";
    Ipv4Truncated => "ipv4_truncated", "IPv4 header or packet truncated.";
    Ipv4BadVersion => "ipv4_bad_version", "IP version field not 4.";
    Ipv4BadHeaderLength => "ipv4_bad_header_length", "IPv4 header length below 20.";
    Ipv4BadTotalLength => "ipv4_bad_total_length", "IPv4 total length inconsistent with the frame.";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum mismatch.";
    Ipv4BadSource => "ipv4_bad_source", "Source address is multicast, broadcast, zero or loopback.";
    Ipv4Broadcast => "ipv4_broadcast", "Destination is a broadcast or multicast address.";
    Ipv4FragmentToLocal => "ipv4_fragment_to_local", "Fragment addressed to the appliance (no reassembly yet).";
    IcmpMalformed => "icmp_malformed", "ICMP message truncated.";
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum mismatch.";
    IcmpUnsupported => "icmp_unsupported", "ICMP type the appliance does not answer.";
    NoListener => "no_listener", "TCP or UDP to an appliance address with no service on that port.";
    NoVirtual => "no_virtual", "Transit traffic matching no virtual server.";
    NoRoute => "no_route", "No route to the destination.";
    TtlExceeded => "ttl_exceeded", "TTL expired in transit.";
    MtuExceeded => "mtu_exceeded", "Packet larger than the egress MTU (fragmentation needed).";
    NoBuffer => "no_buffer", "Packet pool empty when building a reply.";
    Fastl4TableFull => "fastl4_table_full", "Worker's fastl4 connection table full; new flow refused.";
    Fastl4NoMember => "fastl4_no_member", "No member of the fastl4 virtual server available.";
    Fastl4SnatExhausted => "fastl4_snat_exhausted", "No free SNAT port (or the client's own address and port collide with a flow).";
    Fastl4NoFlow => "fastl4_no_flow", "TCP segment to a fastl4 virtual server that is not a SYN and matches no flow.";
    Fastl4FragmentNoFlow => "fastl4_fragment_no_flow", "Non-first fragment to a fastl4 address before its first fragment (or after its flow ended).";
    Fastl4TcpMalformed => "fastl4_tcp_malformed", "TCP header truncated or with a bad data offset, to a fastl4 virtual server or flow.";
    Fastl4UdpMalformed => "fastl4_udp_malformed", "UDP header truncated or with a bad length, to a fastl4 virtual server or flow.";
    Fastl4MemberDown => "fastl4_member_down", "Packet of a flow whose member went down; the flow was reset and removed.";
    Ipv6Truncated => "ipv6_truncated", "IPv6 packet shorter than its fixed header.";
    Ipv6BadVersion => "ipv6_bad_version", "IP version field not 6 in an IPv6 frame.";
    Ipv6BadPayloadLength => "ipv6_bad_payload_length", "IPv6 payload length beyond the frame (or a jumbogram).";
    Ipv6ExtTruncated => "ipv6_ext_truncated", "IPv6 extension header running past the end of the packet.";
    Ipv6ExtChain => "ipv6_ext_chain", "IPv6 extension-header chain too long, looping, or with hop-by-hop options out of place.";
    Ipv6RoutingHeader => "ipv6_routing_header", "IPv6 routing header with segments left (the appliance is no source-route hop).";
    Ipv6BadSource => "ipv6_bad_source", "IPv6 source address multicast, loopback or (outside neighbour discovery) unspecified.";
    Ipv6Multicast => "ipv6_multicast", "IPv6 multicast destination other than neighbour discovery to the appliance.";
    Ipv6FragmentToLocal => "ipv6_fragment_to_local", "IPv6 fragment addressed to the appliance (no reassembly yet).";
    Icmpv6Malformed => "icmpv6_malformed", "ICMPv6 message truncated.";
    Icmpv6BadChecksum => "icmpv6_bad_checksum", "ICMPv6 checksum mismatch.";
    Icmpv6Unsupported => "icmpv6_unsupported", "ICMPv6 type the appliance does not answer.";
    NdMalformed => "nd_malformed", "Neighbour solicitation or advertisement with a hop limit other than 255, a bad option, or a bad source.";
    NdNotForUs => "nd_not_for_us", "Neighbour solicitation for an address the appliance does not own.";
    NdConflict => "nd_conflict", "Another host claims (or probes for) one of the appliance's IPv6 addresses.";
    NdUnresolved => "nd_unresolved", "IPv6 next hop did not answer neighbour solicitations in time.";
    NdQueueFull => "nd_queue_full", "Too many packets already waiting for this IPv6 next hop.";
    NdTableFull => "nd_table_full", "IPv6 neighbour table full.";
    HopLimitExceeded => "hop_limit_exceeded", "IPv6 hop limit expired in transit.";
    Ipv6PacketTooBig => "ipv6_packet_too_big", "IPv6 packet larger than the egress MTU (packet too big sent).";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed_in_order() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
