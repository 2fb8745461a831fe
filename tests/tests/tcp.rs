//! Rouge's own TCP stack against the Linux kernel's, through the built-in echo, discard
//! and chargen services on 198.18.1.1: byte-exact echo over 1,000 parallel connections,
//! 1 GiB each way without stalls, and a SYN flood from spoofed test-bed addresses that
//! SYN cookies absorb while real clients still connect.

use std::time::{Duration, Instant};

use rouge_tests::*;

fn tcp_counter(bed: &Testbed, name: &str) -> u64 {
    let s = bed.rouge_json(&["show", "stats"]).unwrap();
    s["tcp"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no tcp.{name} in {s}"))
}

fn tool(name: &str) -> String {
    repo()
        .join("tests/tools")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn echo_is_byte_exact_over_1000_parallel_connections() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let cmd = format!(
        "ulimit -n 8192; python3 {} 198.18.1.1 7 1000 60",
        tool("echo_many.py")
    );
    let out = bed.exec("client", Duration::from_secs(90), &["sh", "-c", &cmd]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], 1000, "{v}");
    assert_eq!(v["bad"], 0, "{v}");
    eprintln!("echo: 1000 parallel connections in {} s", v["seconds"]);
    let vs = bed.rouge_json(&["show", "virtual"]).unwrap();
    let echo = vs
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "echo")
        .unwrap();
    assert_eq!(echo["connections"], 1000, "{vs}");
    // Every connection closes: none left behind in the stack.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcp_counter(&bed, "connections") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tcp_counter(&bed, "connections"), 0);
}

#[test]
fn a_gibibyte_each_way_through_discard_and_chargen() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    const GIB: u64 = 1 << 30;
    let t = Instant::now();
    let out = bed.exec(
        "client",
        Duration::from_secs(120),
        &[
            "sh",
            "-c",
            "head -c 1073741824 /dev/zero | nc -q 2 198.18.1.1 9 && echo sent",
        ],
    );
    let secs = t.elapsed().as_secs_f64();
    assert!(
        stdout(&out).contains("sent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vs = bed.rouge_json(&["show", "virtual"]).unwrap();
    let discard = vs
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "discard")
        .unwrap();
    assert_eq!(
        discard["bytes"].as_u64(),
        Some(GIB),
        "every byte received: {vs}"
    );
    eprintln!(
        "discard: 1 GiB from the kernel in {secs:.2} s ({:.0} Mbit/s)",
        GIB as f64 * 8.0 / secs / 1e6
    );

    // Read 1 GiB of chargen and check the RFC 864 pattern all the way.
    let check = r#"
import socket, sys
s = socket.create_connection(("198.18.1.1", 19), timeout=30)
line = lambda k: bytes(32 + (k + i) % 95 for i in range(72)) + b"\r\n"
pattern = b"".join(line(k) for k in range(95))
want, got, off, buf = 1 << 30, 0, 0, b""
while got < want:
    d = s.recv(1 << 20)
    if not d:
        sys.exit("closed early at %d" % got)
    d = d[: want - got]
    n = len(d)
    p = (pattern * (2 + n // len(pattern)))[off : off + n]
    if d != p:
        sys.exit("pattern mismatch at byte %d" % got)
    got += n
    off = (off + n) % len(pattern)
print(got)
"#;
    let t = Instant::now();
    let out = bed.exec(
        "client",
        Duration::from_secs(120),
        &["python3", "-c", check],
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        stdout(&out).trim(),
        GIB.to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "chargen: 1 GiB to the kernel in {secs:.2} s ({:.0} Mbit/s)",
        GIB as f64 * 8.0 / secs / 1e6
    );
    assert!(bed.rouge_alive());
}

#[test]
fn syn_cookies_absorb_a_syn_flood_and_real_clients_still_connect() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    let mac = ifs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lb-c")
        .unwrap()["mac"]
        .as_str()
        .unwrap()
        .to_string();
    // 6,000 SYNs from spoofed test-bed addresses (bounded: 30 s at most), while real
    // clients connect in the middle of it.
    let ns = bed.ns("client");
    let flood_tool = tool("synflood.py");
    let flood = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "timeout",
                "60",
                "python3",
                &flood_tool,
                "c0",
                &mac,
                "198.18.1.1",
                "7",
                "6000",
                "4000",
            ])
            .output()
            .unwrap()
    });
    // Real clients connect once the SYN queue is full and cookies answer: waiting a fixed
    // time instead lost the race on a slow host, where the flood had not yet filled the
    // queue and the clients got ordinary half-open entries. The queue stays full after
    // the flood (its entries retransmit SYN-ACKs for a minute), so clients cannot miss it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let during = loop {
        let stats = bed.rouge_json(&["show", "stats"]).unwrap();
        if stats["tcp"]["syn_cookies_sent"].as_u64().unwrap_or(0) > 0 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "the flood never filled the SYN queue: {}",
            stats["tcp"]
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let cmd = format!("python3 {} 198.18.1.1 7 20 20", tool("echo_many.py"));
    let out = bed.exec("client", Duration::from_secs(40), &["sh", "-c", &cmd]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], 20, "real clients served during the flood: {v}");
    let flood = flood.join().unwrap();
    assert!(
        flood.status.success(),
        "{}",
        String::from_utf8_lossy(&flood.stderr)
    );
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    let t = &after["tcp"];
    assert!(
        t["syn_cookies_sent"].as_u64().unwrap() > 1000,
        "cookies answered the flood: {t}"
    );
    assert!(
        t["syn_cookies_validated"].as_u64().unwrap() >= 1,
        "a real client came in on a cookie: {t}"
    );
    // The half-open connections stay within the listener's SYN queue (1,024), not 6,000.
    let half_open = after["tcp"]["connections"]
        .as_u64()
        .unwrap()
        .max(during["tcp"]["connections"].as_u64().unwrap());
    assert!(half_open <= 1024 + 20, "SYN queue bounded: {half_open}");
    eprintln!("syn flood: {t}");
}
