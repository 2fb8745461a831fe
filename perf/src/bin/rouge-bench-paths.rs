//! `rouge-bench-paths`: one path through Rouge's real data plane over `pipe` ports
//! (see `rouge_perf::paths`), run under callgrind by `perf/run callgrind` to count
//! instructions per packet. Prints one JSON line; exits non-zero when the path did not
//! do its work.

use clap::Parser;
use rouge_perf::paths::{run, Path, MAX_PACKETS};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set up PATH, then push PACKETS packets through it.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-paths", version)]
struct Args {
    /// arp, echo, forward, fastl4-new, fastl4-established, tcp or shaper.
    #[arg(long, value_parser = parse_path)]
    path: Path,
    /// Measured packets (for tcp: data segments; at most 100 million, 30,000 for
    /// fastl4-new).
    #[arg(long, default_value_t = 10_000)]
    packets: u64,
}

fn parse_path(s: &str) -> Result<Path, String> {
    Path::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Path::ALL.iter().map(|p| p.name()).collect();
        format!("unknown path {s:?}; one of {}", names.join(", "))
    })
}

fn main() {
    let args = Args::parse();
    match run(args.path, args.packets.min(MAX_PACKETS)) {
        Ok(r) => println!(
            "{}",
            serde_json::to_string(&r).expect("a report serialises")
        ),
        Err(e) => {
            eprintln!("rouge-bench-paths: {e}");
            std::process::exit(1);
        }
    }
}
