//! Arbitrary frames into the L2/L3 pipeline on either port: it must never panic, every
//! frame must end in a verdict, and every buffer must return to the pool. The data plane
//! is dual stack (IPv4 and IPv6 self IPs, forwarding and fastl4 virtual servers of both
//! families), so IPv6, Neighbour Discovery and ICMPv6 are fuzzed too.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rouge_drivers::{MacAddr, PacketPool};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::{testing, Instant};

fuzz_target!(|data: &[u8]| {
    let pool = PacketPool::new(64);
    // fastl4 (TCP and UDP, SNAT automap; IPv4 and IPv6), standard (web-proxy) and
    // forwarding virtual servers: the NAT and proxy paths are fuzzed.
    let mut dp = testing::dual_stack_fastl4_dataplane(1).with_standard(vec![testing::web_proxy(1)]);
    // Small tables: they are allocated whole for every input.
    dp.fastl4_limits.flows_per_worker = 64;
    dp.fastl4_limits.fragments_per_worker = 16;
    let dp = Arc::new(dp);
    let bus = NeighbourBus::new(1).pop().expect("one bus end");
    let counters = PipelineCounters::new_shared();
    let macs = vec![MacAddr::local(100), MacAddr::local(101)];
    let mut l2 = L2L3::new(0, dp, macs, vec![1500, 1500], counters.clone(), bus, pool.clone());
    // The first byte picks the port and the time; the rest is the frame, split at 0xff 0xfe into several.
    let (port, frames) = match data.split_first() {
        Some((b, rest)) => ((b & 1) as u16, rest),
        None => return,
    };
    let mut now = Instant::from_secs(1);
    let mut sent = Vec::new();
    for frame in frames.split(|&b| b == 0xfe) {
        let Some(mut pkt) = pool.alloc_from(frame) else { continue };
        pkt.meta.port = port;
        l2.process(now, pkt, &mut |p, out| sent.push((p, out)));
        now += std::time::Duration::from_millis(300);
        l2.poll(now, &mut |p, out| sent.push((p, out)));
        assert!(sent.len() < 64);
        sent.clear();
    }
    assert!(counters.rx_packets.get() >= counters.forwarded.get());
});
