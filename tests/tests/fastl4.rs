//! fastl4 load balancing on the test bed, against real servers nobody here wrote
//! (Python's http.server and a UDP echo): the example configuration's virtual server
//! 198.18.1.100:80 spreads requests over the four members, a member whose server dies
//! is marked down by the http monitor and avoided with no failed request, a member
//! disabled during a 200 MB download lets it finish intact and gets no new flows, and
//! UDP round trips through 198.18.1.100:53.

use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];

/// Starts an HTTP server on each member address, each serving its own `id.txt` and a
/// shared 200 MB `big.bin`; returns the server PIDs' bed and the big file's hash.
fn serve_members(bed: &mut Testbed) -> String {
    let big = bed.dir.join("big.bin");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 209715200 /dev/urandom > {0} && sha256sum {0}",
            big.display()
        ))
        .output()
        .unwrap();
    let hash = stdout(&out).split_whitespace().next().unwrap().to_string();
    for m in MEMBERS {
        let dir = bed.dir.join(m);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id.txt"), format!("{m}\n")).unwrap();
        std::os::unix::fs::symlink(&big, dir.join("big.bin")).unwrap();
        let d = dir.to_str().unwrap().to_string();
        bed.spawn_tagged(
            "srv",
            m,
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                m,
                "--directory",
                &d,
            ],
        );
    }
    hash
}

fn pool(bed: &Testbed) -> Vec<Value> {
    let v = bed.rouge_json(&["show", "pool", "web"]).unwrap();
    v[0]["members"].as_array().unwrap().clone()
}

fn member<'a>(members: &'a [Value], addr: &str) -> &'a Value {
    members
        .iter()
        .find(|m| m["address"] == format!("{addr}:80"))
        .unwrap()
}

fn wait_all_up(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ms = pool(bed);
        if ms.iter().all(|m| m["monitor"] == "up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never came up: {ms:?}\n{}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(bed: &Testbed, n: usize) -> Value {
    let tool = repo().join("tests/tools/http_count.py");
    let out = bed.exec(
        "client",
        Duration::from_secs(200),
        &[
            "python3",
            tool.to_str().unwrap(),
            "http://198.18.1.100/id.txt",
            &n.to_string(),
            "180",
        ],
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn fastl4_balances_routes_around_a_dead_member_and_drains_a_disabled_one() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let hash = serve_members(&mut bed);
    wait_all_up(&bed);
    let st = bed.rouge_json(&["show", "stats"]).unwrap();
    assert!(
        st["monitor"]["probes"].as_u64().unwrap() >= 4,
        "probes counted: {}",
        st["monitor"]
    );
    assert!(
        st["monitor"]["transitions"].as_u64().unwrap() >= 4,
        "every member came up: {}",
        st["monitor"]
    );

    // 1,000 requests, each a new connection: round robin gives each member a quarter
    // (within 10 %), and the appliance's counters agree with what the client saw.
    let before: Vec<u64> = MEMBERS
        .iter()
        .map(|m| {
            member(&pool(&bed), m)["total_connections"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let v = count(&bed, 1000);
    assert_eq!(v["failed"], 0, "{v}");
    let after = pool(&bed);
    for (i, m) in MEMBERS.iter().enumerate() {
        let seen = v["bodies"][*m].as_u64().unwrap_or(0);
        assert!(
            (225..=275).contains(&seen),
            "member {m} served {seen} of 1000: {v}"
        );
        let counted = member(&after, m)["total_connections"].as_u64().unwrap() - before[i];
        assert_eq!(counted, seen, "show pool agrees with the client for {m}");
    }

    // Kill the server of 198.18.2.12: the monitor marks it down within its timeout
    // (3 s; generous slack), and then no request fails or reaches it.
    let killed = Instant::now();
    bed.kill_tagged("198.18.2.12");
    loop {
        if member(&pool(&bed), "198.18.2.12")["monitor"] == "down" {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "not marked down: {:?}",
            pool(&bed)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "member marked down {:?} after its server died",
        killed.elapsed()
    );
    assert!(
        bed.rouge_log().contains("198.18.2.12:80")
            && bed.rouge_log().contains("connection refused"),
        "transition logged with its reason"
    );
    let v = count(&bed, 300);
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["bodies"]["198.18.2.12"].as_u64().unwrap_or(0), 0, "{v}");

    // A 200 MB download; its member is disabled mid-transfer. The download finishes
    // intact, and the member gets no new flows.
    let ns = bed.ns("client");
    let dl = bed.dir.join("dl.bin");
    let dl_s = dl.to_str().unwrap().to_string();
    let download = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "timeout",
                "120",
                "curl",
                "-s",
                "--limit-rate",
                "40M",
                "-o",
                &dl_s,
                "http://198.18.1.100/big.bin",
            ])
            .status()
            .unwrap()
    });
    // The download's member is the one whose bytes grow fast.
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = loop {
        let a = pool(&bed);
        std::thread::sleep(Duration::from_millis(300));
        let b = pool(&bed);
        let grew = b.iter().find(|m| {
            let before = member(&a, m["address"].as_str().unwrap().trim_end_matches(":80"))
                ["bytes"]
                .as_u64()
                .unwrap();
            m["bytes"].as_u64().unwrap() > before + 2_000_000
        });
        if let Some(m) = grew {
            break m["address"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "download flow not seen: {b:?}");
    };
    // A configuration change in the middle of the transfer: the flow keeps going.
    let changed = bed.dir.join("changed.toml");
    let text = std::fs::read_to_string(testbed_config()).unwrap();
    std::fs::write(
        &changed,
        format!("{text}\n[[virtual_address]]\naddress = \"198.18.1.150\"\n"),
    )
    .unwrap();
    let out = bed.rouge_cli(&["config", "apply", changed.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        pool(&bed).iter().filter(|m| m["monitor"] == "up").count() >= 3,
        "monitor status kept across the change"
    );
    let out = bed.rouge_cli(&["pool", "member", "disable", "web", &busy]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ip = busy.trim_end_matches(":80");
    assert_eq!(member(&pool(&bed), ip)["admin"], "disabled");
    let v = count(&bed, 100);
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        v["bodies"][ip].as_u64().unwrap_or(0),
        0,
        "disabled member got new flows: {v}"
    );
    assert!(download.join().unwrap().success(), "download failed");
    let sum = std::process::Command::new("sha256sum")
        .arg(&dl)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&sum).split_whitespace().next(),
        Some(hash.as_str()),
        "download intact"
    );
    let saved = bed.dir.join("saved.toml");
    assert!(bed
        .rouge_cli(&["config", "save", saved.to_str().unwrap()])
        .status
        .success());
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .contains("state = \"disabled\""),
        "admin state is running config"
    );
}

#[test]
fn udp_round_trips_through_the_virtual_server() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let tool = repo().join("tests/tools/udp_echo.py");
    for m in MEMBERS {
        bed.spawn_tagged(
            "srv",
            m,
            &["python3", tool.to_str().unwrap(), m, "5353", "60"],
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let script = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
ok, seen = 0, set()
for i in range(20):
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.settimeout(2.0)
    msg = b"query %d" % i
    for attempt in range(5):
        s2.sendto(msg, ("198.18.1.100", 53))
        try:
            data, peer = s2.recvfrom(2048)
        except socket.timeout:
            continue
        if peer == ("198.18.1.100", 53) and data.endswith(b" " + msg):
            ok += 1
            seen.add(data.split()[0])
        break
print(ok, len(seen))
"#;
    let out = bed.exec(
        "client",
        Duration::from_secs(120),
        &["python3", "-c", script],
    );
    let text = stdout(&out);
    let nums: Vec<u32> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(
        nums.first(),
        Some(&20),
        "20 round trips answered from the VIP: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        nums.get(1),
        Some(&4),
        "spread over the four members: {text}"
    );
    let v = bed.rouge_json(&["show", "virtual", "dns"]).unwrap();
    assert!(v[0]["packets"].as_u64().unwrap() >= 40, "{v}");
    // The kernel of the appliance's namespace never routed those frames to nowhere: the
    // test bed drops its copy at ingress, after Rouge's packet sockets (without the drop
    // every frame to the VIP ends in ip_error, counted as InAddrErrors).
    let snmp = bed.exec("lb", Duration::from_secs(5), &["cat", "/proc/net/snmp"]);
    let text = stdout(&snmp);
    let mut ip = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap_or(""), ip.next().unwrap_or(""));
    let addr_errors = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InAddrErrors")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    assert_eq!(
        addr_errors,
        Some(0),
        "the kernel of the lb namespace routed Rouge's frames: {text}"
    );
}
