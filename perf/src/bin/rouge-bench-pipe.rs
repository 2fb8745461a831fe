//! `rouge-bench-pipe`: the per-packet path over `pipe` ports, run under callgrind by
//! `perf/run callgrind` to count instructions per packet.

use std::time::Instant;

use clap::Parser;
use rouge_perf::bench::pipe_path;
use rouge_perf::gen::Sizes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generate, transmit, receive and account PACKETS frames over an in-memory pipe.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-pipe", version)]
struct Args {
    /// Frames to move (at most 100 million).
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Frame size with FCS (64 to 1518) or `imix`.
    #[arg(long, default_value = "64")]
    size: Sizes,
    /// Number of flows.
    #[arg(long, default_value_t = 64)]
    flows: u16,
}

fn main() {
    let args = Args::parse();
    let packets = args.packets.min(100_000_000);
    let t = Instant::now();
    let r = pipe_path(packets, args.size, args.flows);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "sent": r.sent,
            "received": r.received,
            "seconds": secs,
            "pps": r.sent as f64 / secs.max(1e-9),
        })
    );
}
