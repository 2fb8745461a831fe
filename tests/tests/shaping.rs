//! Traffic shaping on the test bed with real traffic: `iperf3` flows from several client
//! addresses through the fastl4 virtual servers of `appliance/configs/shaping.toml`
//! (gold weight 3, bronze weight 1, priority strict with a 20 Mbit/s ceiling, both
//! egresses shaped to 200 Mbit/s).
//!
//! Shares are measured on Rouge's own per-class counters over a window in the middle of
//! the run (after the flows have started, before they end) and checked against iperf3's
//! receivers; the priority test asserts on Rouge's per-class queueing delay and prints
//! the end-to-end round trip it does not assert.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

/// The tests saturate the same two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const GOLD: &str = "198.18.1.101";
const BRONZE: &str = "198.18.1.102";
const PRIORITY: &str = "198.18.1.103";
/// Extra client addresses, one per flow group ("several client addresses").
const CLIENTS: [&str; 3] = ["198.18.1.3", "198.18.1.4", "198.18.1.5"];

fn shaping_config() -> std::path::PathBuf {
    repo().join("appliance/configs/shaping.toml")
}

/// A test bed running the example shaping config, with `iperf3 -s` on the gold and
/// bronze members and client addresses added in the client namespace.
fn bed_with_servers(extra: &[&str]) -> Testbed {
    let mut bed = Testbed::up(false);
    for c in CLIENTS {
        let out = bed.exec(
            "client",
            Duration::from_secs(5),
            &["ip", "addr", "add", &format!("{c}/24"), "dev", "c0"],
        );
        assert!(out.status.success(), "add {c}: {out:?}");
    }
    bed.start_rouge(&shaping_config(), extra);
    for m in ["198.18.2.11", "198.18.2.12"] {
        bed.spawn("srv", &["iperf3", "-s", "-B", m, "-p", "5201"]);
    }
    // Wait until both servers answer through their virtual servers (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    for vip in [GOLD, BRONZE] {
        loop {
            let out = bed.exec(
                "client",
                Duration::from_secs(5),
                &[
                    "iperf3", "-c", vip, "-p", "5201", "-t", "1", "-b", "1M", "-u",
                ],
            );
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "iperf3 via {vip} never answered: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    bed
}

/// Starts an iperf3 client in the client namespace (bounded by `timeout`), JSON output.
fn iperf(bed: &Testbed, vip: &str, bind: &str, secs: u32, args: &[&str]) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &bed.ns("client"),
            "timeout",
            &(secs + 20).to_string(),
        ])
        .args([
            "iperf3",
            "-c",
            vip,
            "-p",
            "5201",
            "-B",
            bind,
            "-J",
            "-t",
            &secs.to_string(),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iperf3")
}

/// Waits for an iperf3 client; its JSON report (asserting it succeeded).
fn report(child: Child) -> Value {
    let out = child.wait_with_output().expect("iperf3 ran");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 output ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(
        out.status.success() && v.get("error").is_none(),
        "iperf3 failed: {v}"
    );
    v
}

/// Bytes received by the iperf3 server side of a finished run.
fn received_bits_per_second(v: &Value) -> f64 {
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| v["end"]["sum"]["bits_per_second"].as_f64())
        .unwrap_or(0.0)
}

/// Bytes each class has sent out of `iface` so far.
fn class_bytes(bed: &Testbed, iface: &str) -> std::collections::HashMap<String, u64> {
    let v = bed.rouge_json(&["show", "class"]).expect("show class");
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| {
            let b = c["interfaces"]
                .as_array()
                .expect("interfaces")
                .iter()
                .find(|i| i["interface"] == iface)
                .map_or(0, |i| i["bytes"].as_u64().unwrap_or(0));
            (c["name"].as_str().unwrap_or("").to_string(), b)
        })
        .collect()
}

/// Class rates in bits/s out of `iface` over `window`, starting now.
fn rates_over(
    bed: &Testbed,
    iface: &str,
    window: Duration,
) -> std::collections::HashMap<String, f64> {
    let a = class_bytes(bed, iface);
    let t = Instant::now();
    std::thread::sleep(window);
    let b = class_bytes(bed, iface);
    let secs = t.elapsed().as_secs_f64();
    b.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - a.get(k).copied().unwrap_or(0)) as f64 * 8.0 / secs,
            )
        })
        .collect()
}

/// Class rates over the first window of `window` (of up to `tries`) in which the
/// classes together fill at least 90 % of the 200 Mbit/s root: the split is only
/// defined while both classes are backlogged, and on a busy machine the load
/// generators may fall short for a while. The last window if none did.
fn saturated_rates(
    bed: &Testbed,
    window: Duration,
    tries: u32,
) -> std::collections::HashMap<String, f64> {
    let mut rates = rates_over(bed, "lb-s", window);
    for _ in 1..tries {
        if rates["gold"] + rates["bronze"] >= 180e6 {
            break;
        }
        println!(
            "root not saturated ({:.1} Mbit/s): the generators fell short, measuring again",
            (rates["gold"] + rates["bronze"]) / 1e6
        );
        rates = rates_over(bed, "lb-s", window);
    }
    rates
}

fn check_shares(rates: &std::collections::HashMap<String, f64>, what: &str) {
    let (g, b) = (rates["gold"], rates["bronze"]);
    let ratio = g / b.max(1.0);
    println!(
        "{what}: gold {:.1} Mbit/s, bronze {:.1} Mbit/s, ratio {ratio:.2} (Rouge's counters, lb-s)",
        g / 1e6,
        b / 1e6
    );
    assert!(
        (2.7..=3.3).contains(&ratio),
        "{what}: gold:bronze = {ratio:.2}, want 3 ± 10 %"
    );
    // The root is never exceeded (frames counted with their Ethernet header; a 2 %
    // allowance for the root's burst over the window and the sampling edges).
    assert!(
        g + b <= 200e6 * 1.02,
        "{what}: {:.1} Mbit/s through a 200 Mbit/s root",
        (g + b) / 1e6
    );
}

#[test]
fn udp_weights_3_to_1_share_a_200_mbit_root() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed_with_servers(&[]);
    let args = ["-u", "-b", "300M", "-l", "1400"];
    let gold = iperf(&bed, GOLD, CLIENTS[0], 9, &args);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 9, &args);
    std::thread::sleep(Duration::from_millis(1500));
    let rates = saturated_rates(&bed, Duration::from_secs(2), 3);
    let (g, b) = (report(gold), report(bronze));
    check_shares(&rates, "UDP");
    // The receivers saw the same split (over the whole run, start-up included).
    let (rg, rb) = (received_bits_per_second(&g), received_bits_per_second(&b));
    println!(
        "UDP receivers: gold {:.1} Mbit/s, bronze {:.1} Mbit/s",
        rg / 1e6,
        rb / 1e6
    );
    assert!(
        (2.7..=3.3).contains(&(rg / rb.max(1.0))),
        "receivers: {rg} vs {rb}"
    );
    // Drops happen in the classes, counted by reason.
    let v = bed
        .rouge_json(&["show", "class", "bronze"])
        .expect("show class bronze");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let c = &v[0];
    assert!(
        c["drops"].as_u64().unwrap_or(0) > 0,
        "bronze was over its share: {c}"
    );
    assert_eq!(c["drops"], c["drops_by_reason"]["queue_full"], "{c}");
    assert!(c["delay_us"]["samples"].as_u64().unwrap_or(0) > 1000, "{c}");
    let err = bed.rouge_json(&["show", "class", "nosuch"]).unwrap_err();
    assert!(err.contains("no class named `nosuch`"), "{err}");
}

#[test]
fn tcp_weights_3_to_1_share_a_200_mbit_root() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed_with_servers(&[]);
    let gold = iperf(&bed, GOLD, CLIENTS[0], 10, &["-P", "4"]);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 10, &["-P", "4"]);
    std::thread::sleep(Duration::from_secs(2));
    let rates = saturated_rates(&bed, Duration::from_secs(2), 3);
    let (g, b) = (report(gold), report(bronze));
    check_shares(&rates, "TCP");
    println!(
        "TCP receivers: gold {:.1} Mbit/s, bronze {:.1} Mbit/s",
        received_bits_per_second(&g) / 1e6,
        received_bits_per_second(&b) / 1e6
    );
}

/// The proxied virtual servers (port 5202): the same 3:1 split, and no segment dropped
/// by a shaper: the proxy holds data back while its class has no room.
#[test]
fn proxied_tcp_keeps_3_to_1_with_zero_shaper_drops() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed_with_servers(&[]);
    let port = ["-p", "5202", "-P", "4"];
    let gold = iperf(&bed, GOLD, CLIENTS[0], 10, &port);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 10, &port);
    std::thread::sleep(Duration::from_secs(2));
    let rates = saturated_rates(&bed, Duration::from_secs(2), 3);
    let (g, b) = (report(gold), report(bronze));
    check_shares(&rates, "proxied TCP");
    println!(
        "proxied TCP receivers: gold {:.1} Mbit/s, bronze {:.1} Mbit/s",
        received_bits_per_second(&g) / 1e6,
        received_bits_per_second(&b) / 1e6
    );
    for class in ["gold", "bronze"] {
        let v = bed
            .rouge_json(&["show", "class", class])
            .expect("show class");
        assert_eq!(
            v[0]["drops"], 0,
            "{class} dropped proxied segments: {}",
            v[0]
        );
    }
    let stats = bed.rouge_json(&["show", "stats"]).expect("show stats");
    assert!(
        stats["tcp"]["shaping_deferrals"].as_u64().unwrap_or(0) > 0,
        "the proxy held data back: {}",
        stats["tcp"]
    );
    for vs in ["gold-proxy", "bronze-proxy"] {
        let v = bed
            .rouge_json(&["show", "virtual", vs])
            .expect("show virtual");
        assert!(
            v[0]["server_side"]["bytes_out"].as_u64().unwrap_or(0) > 1_000_000,
            "{vs}: {}",
            v[0]
        );
    }
}

/// Bytes per unit of weight a class may send in one round (`QUANTUM_BYTES` of
/// `rouge_pipelines::shaper`: one full-size Ethernet frame).
const QUANTUM_BYTES: u32 = 1514;

/// Microseconds a round of weighted round robin takes when the classes of `weights`
/// each send their quantum (`quantum × weight` bytes) at `root_bps`.
fn wrr_round_us(quantum: u32, weights: &[u32], root_bps: f64) -> f64 {
    let bytes: u32 = weights.iter().map(|w| quantum * w).sum();
    f64::from(bytes) * 8.0 / root_bps * 1e6
}

#[test]
fn priority_probe_keeps_a_low_queueing_delay_while_bulk_saturates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = bed_with_servers(&[]);
    let echo = repo().join("tests/tools/udp_echo.py");
    bed.spawn(
        "srv",
        &[
            "python3",
            echo.to_str().unwrap(),
            "198.18.2.13",
            "5201",
            "60",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let args = ["-u", "-b", "300M", "-l", "1400"];
    let gold = iperf(&bed, GOLD, CLIENTS[0], 5, &args);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 5, &args);
    std::thread::sleep(Duration::from_secs(1));
    let probe = repo().join("tests/tools/udp_probe.py");
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &[
            "python3",
            probe.to_str().unwrap(),
            PRIORITY,
            "5201",
            "500",
            "0.004",
            CLIENTS[2],
        ],
    );
    let p: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe output ({e}): {out:?}"));
    let (_g, _b) = (report(gold), report(bronze));
    let v = bed.rouge_json(&["show", "class"]).expect("show class");
    let class = |name: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name))
            .and_then(|c| c["interfaces"].as_array())
            .and_then(|i| i.iter().find(|i| i["interface"] == "lb-s"))
            .cloned()
            .unwrap_or_else(|| panic!("class {name} on lb-s in {v}"))
    };
    let (prio, bulk) = (class("priority"), class("bronze"));
    println!(
        "priority probe: end-to-end RTT p50 {} us, p99 {} us, max {} us (not asserted); \
         Rouge's queueing delay: priority p50 {} us p99 {} us max {} us, bronze p50 {} us, gold p50 {} us",
        p["p50_us"],
        p["p99_us"],
        p["max_us"],
        prio["delay_us"]["p50"],
        prio["delay_us"]["p99"],
        prio["delay_us"]["max"],
        bulk["delay_us"]["p50"],
        class("gold")["delay_us"]["p50"]
    );
    // Where a lost probe went: the interfaces' drops (a receive ring that overflowed
    // under the bulk flood) and the classes' own.
    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap_or_default();
    let drops: Vec<_> = ifs
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| (i["name"].clone(), i["drops"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        p["received"].as_u64().unwrap_or(0) >= 490,
        "probes lost: {p}; interface drops {drops:?}; priority class {prio}"
    );
    assert!(
        prio["delay_us"]["samples"].as_u64().unwrap_or(0) >= 490,
        "{prio}"
    );
    assert_eq!(prio["drops"], 0, "{prio}");
    let prio_p50 = prio["delay_us"]["p50"].as_f64().unwrap_or(f64::MAX);
    let bulk_p50 = bulk["delay_us"]["p50"].as_f64().unwrap_or(0.0);
    // Bulk traffic waits in a full queue (tens of ms at its share); the priority class
    // is served first. Plain weighted round robin could not do that: a probe finding
    // its class idle waits for the competing classes to send their quanta (1514 bytes ×
    // weight) at the root rate, a round of 242 µs for gold 3 + bronze 1 at 200 Mbit/s,
    // half a round (121 µs) at the median (the scheduler test
    // `strict_priority_stays_under_the_bound_weighted_round_robin_breaks` measures it).
    // Rouge's delay is measured from the frame's receive stamp, so the receive ring and
    // the pipeline count too; its tail also holds every time the worker lost its core
    // (not asserted: shared test machines), its median does not.
    let wrr_round_us = wrr_round_us(QUANTUM_BYTES, &[3, 1], 200e6);
    assert!(
        (wrr_round_us - 242.24).abs() < 0.01,
        "gold 3 + bronze 1 at 200 Mbit/s: {wrr_round_us}"
    );
    assert!(
        prio_p50 < wrr_round_us / 2.0,
        "priority median queueing delay {prio_p50} us is not below the {} us \
         that weighted round robin would give",
        wrr_round_us / 2.0
    );
    assert!(
        bulk_p50 >= 10.0 * prio_p50.max(1.0),
        "bulk {bulk_p50} us vs priority {prio_p50} us"
    );
}

#[test]
fn classes_change_by_config_apply_without_dropping_flows() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed_with_servers(&[]);
    let gold = iperf(&bed, GOLD, CLIENTS[0], 9, &["-P", "2"]);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 9, &["-P", "2"]);
    std::thread::sleep(Duration::from_secs(2));
    let before = rates_over(&bed, "lb-s", Duration::from_secs(2));
    assert!(
        before["gold"] > 2.0 * before["bronze"],
        "gold leads first: {before:?}"
    );
    let gold_packets_before = bed.rouge_json(&["show", "class", "gold"]).expect("gold")[0]
        ["packets"]
        .as_u64()
        .unwrap_or(0);
    // Swap the weights: bronze 3, gold 1.
    let text = std::fs::read_to_string(shaping_config()).expect("read config");
    let swapped = text
        .replace("name = \"gold\"\nweight = 3", "name = \"gold\"\nweight = 1")
        .replace(
            "name = \"bronze\"\nweight = 1",
            "name = \"bronze\"\nweight = 3",
        );
    assert_ne!(
        swapped, text,
        "the example config has the weights this test swaps"
    );
    let file = bed.dir.join("swapped.toml");
    std::fs::write(&file, swapped).expect("write config");
    let out = bed.rouge_cli(&["config", "apply", file.to_str().unwrap()]);
    assert!(out.status.success(), "apply: {out:?}");
    std::thread::sleep(Duration::from_secs(1));
    let after = rates_over(&bed, "lb-s", Duration::from_secs(2));
    println!("before apply: {before:?}\nafter apply:  {after:?}");
    assert!(
        after["bronze"] > 2.0 * after["gold"],
        "bronze leads after the swap: {after:?}"
    );
    // Every flow ran to its end, and the class kept its counters.
    let (_g, _b) = (report(gold), report(bronze));
    let v = bed.rouge_json(&["show", "class", "gold"]).expect("gold");
    assert_eq!(v[0]["weight"], 1, "{v}");
    assert!(
        v[0]["packets"].as_u64().unwrap_or(0) > gold_packets_before,
        "{v}"
    );
}

#[test]
fn two_workers_keep_3_to_1_and_the_root_for_the_appliance() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Two workers on the two cores; each class's flows come from several source ports
    // (iperf3 -P 4), so the kernel's fanout spreads them over both workers, and the
    // rebalancer must give each worker its share of every rate.
    let bed = bed_with_servers(&["--cores", "0,1"]);
    let args = ["-u", "-b", "75M", "-l", "1400", "-P", "4"];
    let gold = iperf(&bed, GOLD, CLIENTS[0], 9, &args);
    let bronze = iperf(&bed, BRONZE, CLIENTS[1], 9, &args);
    std::thread::sleep(Duration::from_millis(1500));
    let rates = saturated_rates(&bed, Duration::from_secs(2), 3);
    let (_g, _b) = (report(gold), report(bronze));
    check_shares(&rates, "UDP, two workers");
    // Both workers carried gold traffic (otherwise this proves nothing about sharing).
    let st = bed.rouge_json(&["show", "stats"]).expect("stats");
    let busy = st["workers"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter(|w| w["rx_packets"].as_u64().unwrap_or(0) > 10_000)
                .count()
        })
        .unwrap_or(0);
    println!("workers with traffic: {busy}");
    assert_eq!(busy, 2, "flows spread over both workers: {}", st["workers"]);
}
