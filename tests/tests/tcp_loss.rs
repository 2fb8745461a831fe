//! Rouge's TCP stack against the Linux kernel's under random loss (issue 13): 0.5 %, 2 %
//! and 5 % of TCP packets dropped each way in the client namespace (nftables `numgen
//! random`), a bulk transfer per rate with every byte checked, and Rouge's own counters
//! showing that losses were repaired by fast recovery (RACK, duplicate ACKs) and tail
//! loss probes rather than by retransmission timeouts. No throughput is asserted.
//!
//! - Rouge sending: `tests/tools/tcp_loss.py download` reads chargen (:19) and checks the
//!   RFC 864 pattern all the way.
//! - Rouge receiving: `tcp_loss.py echo` sends through echo (:7) and checks every byte that
//!   comes back (so Rouge sends the same amount back, under the same loss).
//!
//! `ROUGE_LOSS_MIB` sets the size per transfer (default 256).

use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

/// Loss rates in packets per thousand, each way.
const RATES: [u32; 3] = [5, 20, 50];

fn mib() -> u64 {
    std::env::var("ROUGE_LOSS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn tool(name: &str) -> String {
    repo()
        .join("tests/tools")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// Drops `permille` of the TCP packets entering and leaving the client namespace.
fn set_loss(bed: &Testbed, permille: u32) {
    let _ = bed.exec(
        "client",
        Duration::from_secs(10),
        &["nft", "delete", "table", "inet", "rgloss"],
    );
    let rules = format!(
        "table inet rgloss {{\n\
         chain in {{ type filter hook input priority 0; policy accept; meta l4proto tcp numgen random mod 1000 < {permille} drop; }}\n\
         chain out {{ type filter hook output priority 0; policy accept; meta l4proto tcp numgen random mod 1000 < {permille} drop; }}\n\
         }}\n"
    );
    let path = bed.dir.join("loss.nft");
    std::fs::write(&path, rules).unwrap();
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["nft", "-f", path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "nft failed (is the nftables package installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tcp_counters(bed: &Testbed) -> Value {
    bed.rouge_json(&["show", "stats"]).unwrap()["tcp"].clone()
}

/// `after - before` for one counter.
fn delta(before: &Value, after: &Value, k: &str) -> u64 {
    let a = after[k]
        .as_u64()
        .unwrap_or_else(|| panic!("no tcp.{k} in {after}"));
    a - before[k].as_u64().unwrap_or(0)
}

/// Runs one verified transfer from the client; returns its wall time in seconds.
fn transfer(bed: &Testbed, mode: &str, port: u16, bytes: u64) -> f64 {
    let t = Instant::now();
    let out = bed.exec(
        "client",
        Duration::from_secs(300),
        &[
            "python3",
            &tool("tcp_loss.py"),
            mode,
            "198.18.1.1",
            &port.to_string(),
            &bytes.to_string(),
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{mode}: {e}: {} {}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], true, "{mode} of {bytes} bytes: {v}");
    assert_eq!(v["bytes"].as_u64(), Some(bytes), "{v}");
    t.elapsed().as_secs_f64()
}

/// Checks what Rouge's sender did over one transfer at `permille` loss.
fn check_recovery(what: &str, permille: u32, secs: f64, before: &Value, after: &Value) {
    let d = |k: &str| delta(before, after, k);
    let (episodes, rtos) = (d("fast_recoveries"), d("timeouts"));
    let (fast, tlp, rto) = (
        d("retransmits_fast"),
        d("retransmits_tlp"),
        d("retransmits_rto"),
    );
    eprintln!(
        "{what} at {:.1} %: {:.1} s; {episodes} recoveries, retransmits fast/RACK {fast} TLP {tlp} RTO {rto}, {rtos} RTOs, {} probes, {} spurious, {} undone",
        permille as f64 / 10.0,
        secs,
        d("tlp_probes"),
        d("spurious_retransmits"),
        d("undos")
    );
    assert!(episodes > 0, "{what}: loss but no recovery? {after}");
    // Timeouts only where everything in flight was lost, probes and ACKs included:
    // under one per hundred recoveries even at 5 % each way (measured: none at 0.5 % and
    // 2 %, 0.1-0.3 per hundred at 5 %; the stack before RACK-TLP had 2.5-7).
    assert!(
        rtos * 100 <= episodes,
        "{what} at {permille} per mille: {rtos} RTOs for {episodes} recoveries"
    );
    assert!(
        rto * 10 <= fast,
        "{what}: most retransmissions by fast recovery: fast {fast}, RTO {rto}"
    );
}

#[test]
fn rouge_sends_to_the_kernel_under_random_loss() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let bytes = mib() << 20;
    for permille in RATES {
        set_loss(&bed, permille);
        let before = tcp_counters(&bed);
        let secs = transfer(&bed, "download", 19, bytes);
        std::thread::sleep(Duration::from_millis(100));
        let after = tcp_counters(&bed);
        check_recovery("chargen to the kernel", permille, secs, &before, &after);
    }
    assert!(bed.rouge_alive());
}

/// The test bed's configuration with the built-in services on a BBR profile.
fn bbr_config(bed: &Testbed) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(testbed_config()).unwrap();
    for svc in ["echo", "discard", "chargen"] {
        let from = format!("type = \"{svc}\"\n");
        assert!(text.contains(&from), "testbed.toml has a {svc} service");
        text = text.replacen(
            &from,
            &format!("{from}tcp_profile_client = \"services-bbr\"\n"),
            1,
        );
    }
    text.push_str("\n[[tcp_profile]]\nname = \"services-bbr\"\ncongestion = \"bbr\"\n");
    let path = bed.dir.join("testbed-bbr.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The same with BBR on Rouge's side: every byte checked, losses repaired by fast
/// recovery, and the segments paced (BBR's pacing waits counted).
#[test]
fn rouge_sends_with_bbr_to_the_kernel_under_random_loss() {
    let mut bed = Testbed::up(false);
    let config = bbr_config(&bed);
    bed.start_rouge(&config, &[]);
    let bytes = mib() << 20;
    for permille in RATES {
        set_loss(&bed, permille);
        let before = tcp_counters(&bed);
        let secs = transfer(&bed, "download", 19, bytes);
        std::thread::sleep(Duration::from_millis(100));
        let after = tcp_counters(&bed);
        check_recovery("BBR chargen to the kernel", permille, secs, &before, &after);
        assert!(
            delta(&before, &after, "pacing_waits") > 0,
            "BBR paced: {after}"
        );
    }
    assert!(bed.rouge_alive());
}

#[test]
fn the_kernel_sends_into_rouge_under_random_loss() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let bytes = mib() << 20;
    for permille in RATES {
        set_loss(&bed, permille);
        let before = tcp_counters(&bed);
        let secs = transfer(&bed, "echo", 7, bytes);
        // The workers publish their counters every few milliseconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut after = tcp_counters(&bed);
        while delta(&before, &after, "bytes_in") < bytes && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            after = tcp_counters(&bed);
        }
        assert!(
            delta(&before, &after, "bytes_in") >= bytes,
            "Rouge received every byte: {after}"
        );
        // Rouge sent the echo back under the same loss: its recovery is checked too.
        check_recovery("echo with the kernel", permille, secs, &before, &after);
    }
    assert!(bed.rouge_alive());
}
