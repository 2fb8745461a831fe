//! `perf/run callgrind` counts Rouge's own code: the same benchmark binary built with the
//! test-only feature `rouge-pipelines/perf-canary` (a fixed loop of
//! [`PERF_CANARY_ROUNDS`] opaque iterations on the forwarding virtual server path) must
//! show the loop in its `forward` figure, and nowhere else (the `arp` path does not
//! forward).
//!
//! Both variants are built with the same profile (dev: cargo builds the plain one for
//! this test, the test builds the canary), measured the
//! way `perf/run callgrind` measures (callgrind counting only `worker_turn`, N and 2N
//! packets, the difference per packet). Needs valgrind (scripts/setup.sh installs it):
//! without it the test fails rather than passing unchecked.

use std::path::{Path, PathBuf};
use std::process::Command;

use rouge_pipelines::l2l3::PERF_CANARY_ROUNDS;

const N: u64 = 1000;

/// The plain `rouge-bench-paths`, which cargo built for this test with the same profile,
/// copied to `dir` beside the canary.
fn plain(dir: &Path) -> PathBuf {
    let to = dir.join("plain");
    std::fs::copy(env!("CARGO_BIN_EXE_rouge-bench-paths"), &to).expect("copy the binary");
    to
}

/// Builds `rouge-bench-paths` with the canary loop and copies it to `dir`, so no later
/// build can replace it.
fn build_canary(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "-q",
        "-p",
        "rouge-perf",
        "--bin",
        "rouge-bench-paths",
        "--message-format=json",
        "--features",
        "rouge-pipelines/perf-canary",
    ]);
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "rouge-bench-paths")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the executable");
    let to = dir.join("canary");
    std::fs::copy(&exe, &to).expect("copy the binary");
    to
}

/// Instructions inside `worker_turn` and the packets measured, for `packets` packets.
fn count(bin: &Path, path: &str, packets: u64, dir: &Path) -> (u64, u64) {
    let name = bin.file_name().unwrap().to_string_lossy().to_string();
    let out_file = dir.join(format!("cg.{name}.{path}.{packets}"));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .args([
            "--collect-atstart=no",
            "--toggle-collect=*paths::worker_turn*",
        ])
        .arg(bin)
        .args(["--path", path, "--packets", &packets.to_string()])
        .output()
        .expect("valgrind runs");
    assert!(
        out.status.success(),
        "{name} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the bench prints JSON");
    let measured = report["packets"].as_u64().expect("packets");
    let text = std::fs::read_to_string(&out_file).expect("callgrind output");
    let ir = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("an instruction total");
    assert!(ir > 0, "{name} {path}: nothing counted in worker_turn");
    (ir, measured)
}

/// Instructions per packet of `path`, as `perf/run callgrind` computes it.
fn per_packet(bin: &Path, path: &str, dir: &Path) -> f64 {
    let (lo, plo) = count(bin, path, N, dir);
    let (hi, phi) = count(bin, path, 2 * N, dir);
    (hi - lo) as f64 / (phi - plo) as f64
}

/// A scratch directory removed when the test ends, also on failure.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_loop_added_to_the_forwarding_path_moves_the_forward_figure_only() {
    let v = Command::new("valgrind").arg("--version").output();
    assert!(
        v.is_ok_and(|o| o.status.success()),
        "valgrind is missing: scripts/setup.sh installs it (apt-get install valgrind)"
    );
    let scratch =
        Scratch(std::env::temp_dir().join(format!("rouge-canary-{}", std::process::id())));
    let dir = scratch.0.clone();
    std::fs::create_dir_all(&dir).unwrap();
    // The plain binary is the one cargo built for this test (same dev profile), copied
    // first: the canary's build (rouge-pipelines with feature perf-canary) writes the
    // same path.
    let plain = plain(&dir);
    let canary = build_canary(&dir);
    let fwd = (
        per_packet(&plain, "forward", &dir),
        per_packet(&canary, "forward", &dir),
    );
    let arp = (
        per_packet(&plain, "arp", &dir),
        per_packet(&canary, "arp", &dir),
    );
    drop(scratch);
    println!("forward {fwd:?}, arp {arp:?} instructions per packet (plain, canary)");
    let rounds = PERF_CANARY_ROUNDS as f64;
    // An iteration is at least an add, a compare and a branch: 3 instructions.
    let rise = fwd.1 - fwd.0;
    assert!(
        rise >= 3.0 * rounds,
        "forward rose by {rise:.0} instructions per packet, the loop adds at least {}",
        3.0 * rounds
    );
    assert!(
        rise <= 20.0 * rounds,
        "forward rose by {rise:.0}, far more than a {rounds}-iteration loop"
    );
    // One run per count (perf/run takes the smallest of three): a process whose random
    // HashMap seed is unlucky costs a few dozen instructions more per packet, far below
    // this bound and far below the loop.
    let arp_change = (arp.1 - arp.0).abs();
    assert!(
        arp_change <= 0.05 * arp.0,
        "arp moved by {arp_change:.1} instructions per packet ({arp:?}) though it never forwards"
    );
}
