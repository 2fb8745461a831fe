//! `rouge-bench-shaper`: the cost of the egress scheduler per packet, on one core, in
//! memory: real packet buffers from a pool enqueued into a [`Shaper`] and dequeued again,
//! with the root fast enough never to hold anything back (so the figure is the
//! scheduler's bookkeeping, not waiting) and with classes of every kind (weighted,
//! guaranteed, ceiled, strict priority). Printed as a table or JSON; never asserted.

use std::time::Instant as WallClock;

use clap::Parser;
use rouge_drivers::PacketPool;
use rouge_pipelines::shaper::{ClassConfig, Shaper, ShaperConfig};
use rouge_pipelines::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure the shaper in memory.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-shaper", version)]
struct Args {
    /// Packets to push through (at most 100 million).
    #[arg(long, default_value_t = 10_000_000)]
    packets: u64,
    /// Packets enqueued before each dequeue pass (a burst).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn policy() -> ShaperConfig {
    let mut guaranteed = ClassConfig::weighted(1);
    guaranteed.guaranteed_bps = Some(10_000_000_000);
    let mut ceiled = ClassConfig::weighted(3);
    ceiled.ceiling_bps = Some(500_000_000_000);
    let mut priority = ClassConfig::weighted(1);
    priority.priority = Some(0);
    priority.ceiling_bps = Some(500_000_000_000);
    ShaperConfig {
        // 1 Tbit/s: never the limit at these packet rates.
        root_bps: 1_000_000_000_000,
        root_burst_bytes: 1 << 20,
        quantum_bytes: 1514,
        classes: vec![
            ClassConfig::weighted(3),
            ClassConfig::weighted(1),
            guaranteed,
            ceiled,
            priority,
        ],
    }
}

fn main() {
    let args = Args::parse();
    let packets = args.packets.min(100_000_000);
    let burst = args.burst.clamp(1, 1024);
    let pool = PacketPool::new(4096);
    let mut shaper: Shaper<rouge_drivers::Packet> = match Shaper::new(&policy()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rouge-bench-shaper: {e}");
            std::process::exit(1);
        }
    };
    let classes = shaper.class_count();
    let frame = [0u8; 64];
    let mut now_ns = 0u64;
    let mut done = 0u64;
    let mut flow = 0u64;
    let start = WallClock::now();
    while done < packets {
        let now = Instant::from_nanos(now_ns);
        for i in 0..burst {
            let Some(pkt) = pool.alloc_from(&frame) else {
                break;
            };
            flow = flow.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let _ = shaper.enqueue(now, i % classes, flow, pkt);
        }
        while let Some((_, pkt)) = shaper.dequeue(now) {
            drop(pkt);
            done += 1;
        }
        // 64-byte frames at 100 Mpps: 10 ns apart.
        now_ns += 10 * burst as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let ns = secs * 1e9 / done as f64;
    let mpps = done as f64 / secs / 1e6;
    if args.json {
        println!(
            "{{\"packets\": {done}, \"seconds\": {secs:.4}, \"ns_per_packet\": {ns:.2}, \"mpps\": {mpps:.3}, \"classes\": {classes}, \"burst\": {burst}}}"
        );
    } else {
        println!("shaper: {done} packets through {classes} classes in bursts of {burst}: {ns:.1} ns/packet ({mpps:.2} Mpps, enqueue + dequeue, one core)");
    }
}
