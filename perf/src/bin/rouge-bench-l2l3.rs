//! `rouge-bench-l2l3`: packets per second per core of Rouge's data plane over in-memory
//! `pipe` ports (no kernel, no NIC), wall clock: ICMP echo answered by the appliance, ARP
//! requests answered, UDP forwarded through a forwarding virtual server, or any other path
//! of `rouge_perf::paths` (the same rigs `rouge-bench-paths` runs under callgrind). The
//! figure includes the harness's hosts (frame generation, the far ends' receive) and moves
//! with the machine's load; the instruction count of `perf/run callgrind` does not.

use clap::Parser;
use rouge_perf::paths::{run, Path, MAX_PACKETS};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Push PACKETS packets through one path and report packets per second.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-l2l3", version)]
struct Args {
    /// echo, arp, forward, fastl4-new, fastl4-established, tcp or shaper.
    #[arg(long, default_value = "echo", value_parser = parse_path)]
    path: Path,
    /// Packets to push (at most 100 million; 30,000 for fastl4-new).
    #[arg(long, default_value_t = 2_000_000)]
    packets: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_path(s: &str) -> Result<Path, String> {
    Path::from_name(s).ok_or_else(|| format!("unknown path {s:?}"))
}

fn main() {
    let args = Args::parse();
    let r = match run(args.path, args.packets.min(MAX_PACKETS)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rouge-bench-l2l3: {e}");
            std::process::exit(1);
        }
    };
    let secs = r.nanos as f64 / 1e9;
    let pps = r.packets as f64 / secs.max(1e-9);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"path": r.path.name(), "packets": r.packets, "seconds": secs,
                "pps": pps, "turns": r.turns})
        );
    } else {
        println!(
            "{}: {} packets in {secs:.3} s = {:.2} Mpps on one core (every one answered, forwarded or delivered as the path requires)",
            r.path.name(),
            r.packets,
            pps / 1e6
        );
    }
}
