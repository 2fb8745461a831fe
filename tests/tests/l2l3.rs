//! The appliance on the test bed against the kernel's own tools: ping and arping get
//! answers from the self IP, a bounded burst of 10,000 pings loses none, malformed
//! frames are counted by reason without harm, transit traffic is forwarded, the CLI
//! reports what was sent, and a broken config is refused with the field and the fix.

use std::time::Duration;

use rouge_tests::*;

fn counter(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("no counter {path:?} in {v}"))
}

fn lb_c(interfaces: &serde_json::Value) -> &serde_json::Value {
    interfaces
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lb-c")
        .expect("lb-c in show interfaces")
}

#[test]
fn ping_and_arping_are_answered_and_counted() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["arping", "-c", "3", "-I", "c0", "198.18.1.1"],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "arping failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    let mac = lb_c(&ifs)["mac"].as_str().unwrap().to_string();
    assert!(
        text.to_lowercase().contains(&mac),
        "arping shows the appliance's MAC {mac}: {text}"
    );
    assert!(text.contains("Received 3 response"), "{text}");

    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-c", "3", "-i", "0.2", "198.18.1.1"],
    );
    assert!(out.status.success(), "ping failed: {}", stdout(&out));
    assert!(stdout(&out).contains("3 received"), "{}", stdout(&out));

    // A bounded burst of 10,000 echo requests (flood mode: the next leaves when the
    // previous is answered), at most 60 s.
    let before = bed.rouge_json(&["show", "stats"]).unwrap();
    let out = bed.exec(
        "client",
        Duration::from_secs(90),
        &["ping", "-f", "-c", "10000", "-w", "60", "-q", "198.18.1.1"],
    );
    let text = stdout(&out);
    assert!(
        text.contains("10000 packets transmitted, 10000 received"),
        "lost pings: {text}"
    );
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    let replies =
        counter(&after, &["icmp", "echo_replies"]) - counter(&before, &["icmp", "echo_replies"]);
    assert_eq!(replies, 10_000, "every echo answered once");

    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    let c = lb_c(&ifs);
    assert!(counter(c, &["rx_packets"]) >= 10_006, "{c}");
    assert!(counter(c, &["tx_packets"]) >= 10_006, "{c}");
    assert!(counter(&after, &["arp", "replies_sent"]) >= 3);
    assert!(
        counter(&after, &["arp", "gratuitous_sent"]) >= 2,
        "announced at start: {after}"
    );
    let table =
        String::from_utf8_lossy(&bed.rouge_cli(&["show", "interfaces"]).stdout).into_owned();
    assert!(
        table.contains("lb-c") && table.contains("198.18.1.1/24"),
        "{table}"
    );
    assert_eq!(bed.stop_rouge(), Some(0), "clean exit on SIGTERM");
    assert!(!bed.socket.exists(), "socket removed on exit");
}

/// `count` echo requests to the self IP, 10 ms apart (far longer gaps than a wake-up
/// takes); asserts every one is answered.
fn spaced_pings(bed: &Testbed, count: u32) {
    let n = count.to_string();
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            "ping",
            "-c",
            &n,
            "-i",
            "0.01",
            "-w",
            "20",
            "-q",
            "198.18.1.1",
        ],
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{n} packets transmitted, {n} received")),
        "lost pings: {text}"
    );
}

#[test]
fn a_worker_with_idle_sleep_answers_every_ping_and_sleeps_between_them() {
    // `--idle sleep`: no spin after the last packet; every quiet moment is a sleep on the
    // ports, and every frame still wakes the worker at once.
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &["--idle", "sleep"]);
    let sleeps = |v: &serde_json::Value| v["workers"][0]["sleeps"].as_u64().unwrap();
    let before = bed.rouge_json(&["show", "stats"]).unwrap();
    // 200 echoes 10 ms apart: far longer gaps than a wake-up takes.
    spaced_pings(&bed, 200);
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    assert!(
        sleeps(&after) - sleeps(&before) >= 200,
        "one sleep at least per gap between echoes: {} then {}",
        sleeps(&before),
        sleeps(&after)
    );
    assert_eq!(bed.stop_rouge(), Some(0), "clean exit on SIGTERM");
}

#[test]
fn an_adaptive_worker_learns_from_its_gaps_and_reports_it() {
    // `--idle adaptive`: after the last packet the worker polls for as long as paid over
    // the recent idle gaps, given what a sleep costs its thread (one sleep in eight is
    // measured), then sleeps; the budget and the CPU its sleeps took are in `show stats`.
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &["--idle", "adaptive"]);
    let worker = |v: &serde_json::Value, k: &str| v["workers"][0][k].as_f64().unwrap();
    let before = bed.rouge_json(&["show", "stats"]).unwrap();
    // 200 echoes 10 ms apart: every gap is far longer than any spin budget (200 us at
    // most), so each one ends in a sleep, and polling before it never pays.
    spaced_pings(&bed, 200);
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    let sleeps = worker(&after, "sleeps") - worker(&before, "sleeps");
    assert!(sleeps >= 200.0, "a sleep at least per gap: {sleeps}");
    let spent = worker(&after, "sleep_cpu_secs") - worker(&before, "sleep_cpu_secs");
    assert!(spent > 0.0, "the sleeps' CPU time is measured: {after}");
    // One sleep in eight is timed (a thread-CPU clock read is a system call).
    let timed = worker(&after, "sleeps_timed") - worker(&before, "sleeps_timed");
    assert!(
        timed >= (sleeps / 8.0).floor() - 1.0 && timed <= sleeps / 8.0 + 1.0,
        "one sleep in eight timed: {timed} of {sleeps}"
    );
    let spin = worker(&after, "spin_us");
    assert_eq!(
        spin, 2.0,
        "after 200 gaps of 10 ms the worker sleeps at once (the 2 us floor), \
         instead of polling for what a sleep costs before each"
    );
    assert_eq!(bed.stop_rouge(), Some(0), "clean exit on SIGTERM");
}

#[test]
fn malformed_frames_are_counted_and_dropped_without_harm() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    let mac = lb_c(&ifs)["mac"].as_str().unwrap().to_string();
    let before = bed.rouge_json(&["show", "stats"]).unwrap();
    let script = repo().join("tests/tools/rawsend.py");
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            "python3",
            script.to_str().unwrap(),
            "c0",
            &mac,
            "198.18.1.2",
            "198.18.1.1",
            "5",
        ],
    );
    assert!(
        out.status.success(),
        "rawsend: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(bed.rouge_alive(), "rouge survived: {}", bed.rouge_log());
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    for k in &kinds {
        let d = counter(&after, &["drops", k]) - counter(&before, &["drops", k]);
        assert_eq!(d, 5, "drop counter {k}");
    }
    assert_eq!(
        counter(&after, &["answered"]),
        counter(&before, &["answered"]),
        "nothing malformed answered"
    );
    // Still healthy.
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-c", "2", "-i", "0.2", "198.18.1.1"],
    );
    assert!(stdout(&out).contains("2 received"), "{}", stdout(&out));
}

#[test]
fn transit_traffic_is_forwarded_through_the_forwarding_virtual_servers() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(
        &testbed_config(),
        &["--cores", "0,1", "--pcap", "/tmp/rouge-e2e-pcap-forward"],
    );
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-c", "3", "-i", "0.2", "198.18.2.11"],
    );
    let text = stdout(&out);
    assert!(text.contains("3 received"), "{text}");
    assert!(
        text.contains("ttl=63"),
        "TTL decremented once by the appliance: {text}"
    );
    // TCP through two workers: a real HTTP server in rg-srv, curl in rg-client.
    std::fs::write(bed.dir.join("hello.txt"), "hello through rouge\n").unwrap();
    let dir = bed.dir.to_str().unwrap().to_string();
    bed.spawn(
        "srv",
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "198.18.2.12",
            "--directory",
            &dir,
        ],
    );
    let mut body = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "http://198.18.2.12:8080/hello.txt",
            ],
        );
        body = stdout(&out);
        if body.contains("hello") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(body, "hello through rouge\n");
    let arp = bed.rouge_json(&["show", "arp"]).unwrap();
    let addrs: Vec<&str> = arp
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["address"].as_str())
        .collect();
    assert!(
        addrs.contains(&"198.18.2.11") && addrs.contains(&"198.18.1.2"),
        "{arp}"
    );
    let vs = bed.rouge_json(&["show", "virtual"]).unwrap();
    let to_servers = vs
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "to-servers")
        .unwrap();
    assert!(counter(to_servers, &["packets"]) >= 3, "{vs}");
    let routes = bed.rouge_json(&["show", "routes"]).unwrap();
    assert_eq!(
        routes.as_array().unwrap().len(),
        4,
        "IPv4 and IPv6 networks: {routes}"
    );
    let stats = bed.rouge_json(&["show", "stats"]).unwrap();
    assert_eq!(stats["workers"].as_array().unwrap().len(), 2);
    assert_eq!(counter(&stats, &["tx_queue_overflow"]), 0, "{stats}");
    // Every frame carried the receive ring's stamp, converted to the workers' clock:
    // the receive-to-transmit delay is measured for the forwarded packets (at least the
    // three echo requests and their replies; "forwarded" also counts the appliance's
    // own segments released after ARP, which have no receive stamp) and is neither
    // zero everywhere (stamps after `now`) nor absurd (wrong time base). The workers
    // republish it within 100 ms of their last packet.
    let mut stats = stats;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while counter(&stats, &["transit_us", "samples"]) < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stats = bed.rouge_json(&["show", "stats"]).unwrap();
    }
    let transit = &stats["transit_us"];
    assert!(counter(transit, &["samples"]) >= 6, "{stats}");
    let max_us = transit["max"].as_f64().unwrap_or(-1.0);
    assert!(max_us > 0.0 && max_us < 1e6, "{transit}");
    assert_eq!(bed.stop_rouge(), Some(0));
    for name in ["lb-c-0.pcap", "lb-c-1.pcap", "lb-s-0.pcap", "lb-s-1.pcap"] {
        let meta = std::fs::metadata(format!("/tmp/rouge-e2e-pcap-forward/{name}")).expect(name);
        assert!(meta.len() >= 24, "{name}");
    }
    let total: u64 = ["lb-c-0.pcap", "lb-c-1.pcap"]
        .iter()
        .map(|n| {
            std::fs::metadata(format!("/tmp/rouge-e2e-pcap-forward/{n}"))
                .unwrap()
                .len()
        })
        .sum();
    assert!(total > 24 * 2 + 6 * 60, "frames captured");
    let _ = std::fs::remove_dir_all("/tmp/rouge-e2e-pcap-forward");
}

#[test]
fn check_names_the_field_and_the_fix_and_config_save_round_trips() {
    let bin = rouge_bin();
    let ok = std::process::Command::new(&bin)
        .args(["check", "--config"])
        .arg(testbed_config())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = std::env::temp_dir().join(format!("rouge-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    let text = std::fs::read_to_string(testbed_config())
        .unwrap()
        .replace("vlan = \"client\"", "vlan = \"clinet\"");
    std::fs::write(&broken, &text).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.contains("clinet")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "broken.toml:{line}: self_ip[0].vlan: no VLAN named `clinet`"
        )),
        "{err}"
    );
    assert!(
        err.contains("fix: define it under [[vlan]] or use one of: client, server"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_save_writes_a_loadable_running_config() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &["--idle", "busy"]);
    let saved = bed.dir.join("saved.toml");
    let out = bed.rouge_cli(&["config", "save", saved.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = std::process::Command::new(rouge_bin())
        .args(["check", "--config"])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        text.contains("198.18.2.1/24") && text.contains("to-clients"),
        "{text}"
    );
    // The console takes the same commands from its input, with help.
    let mut console = std::process::Command::new(rouge_bin())
        .arg("console")
        .arg("--socket")
        .arg(&bed.socket)
        .env("HOME", &bed.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = console.stdin.take().unwrap();
        writeln!(
            stdin,
            "help\nshow routes\nshow nonsense\nshow stats --json\nquit"
        )
        .unwrap();
    }
    let out = console.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success());
    assert!(
        text.contains("show interfaces|arp|routes|stats"),
        "help: {text}"
    );
    assert!(
        text.contains("198.18.2.0/24") && text.contains("connected"),
        "routes: {text}"
    );
    assert!(
        text.contains("type `help`"),
        "bad command explained: {text}"
    );
    assert!(text.contains("\"echo_replies\""), "json stats: {text}");
}

#[test]
fn config_apply_swaps_the_snapshot_without_dropping_traffic() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let base = std::fs::read_to_string(testbed_config()).unwrap();
    // Before: 198.18.1.150 is nobody.
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["arping", "-c", "1", "-w", "1", "-I", "c0", "198.18.1.150"],
    );
    assert!(
        !stdout(&out).contains("Received 1 response"),
        "{}",
        stdout(&out)
    );
    let before = bed.rouge_json(&["show", "stats"]).unwrap();

    // A steady stream through the forwarding virtual server while the config changes.
    let ns = bed.ns("client");
    let pinger = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "ping",
                "-c",
                "300",
                "-i",
                "0.01",
                "-w",
                "20",
                "-q",
                "198.18.2.11",
            ])
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    let added = bed.dir.join("added.toml");
    std::fs::write(
        &added,
        format!("{base}\n[[virtual_address]]\naddress = \"198.18.1.150\"\n"),
    )
    .unwrap();
    let out = bed.rouge_cli(&["config", "apply", added.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("generation 2"), "{}", stdout(&out));

    // A broken file is refused, naming the field, and changes nothing.
    let broken = bed.dir.join("broken.toml");
    std::fs::write(
        &broken,
        base.replace(
            "destination = \"198.18.2.0/24\"",
            "destination = \"198.18.2.0/99\"",
        ),
    )
    .unwrap();
    let out = bed.rouge_cli(&["config", "apply", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml:") && err.contains("virtual[0].destination"),
        "{err}"
    );
    // Ports cannot change while running.
    let moved = bed.dir.join("moved.toml");
    std::fs::write(
        &moved,
        base.replace("name = \"lb-s\"", "name = \"lb-x\"")
            .replace("interface = \"lb-s\"", "interface = \"lb-x\""),
    )
    .unwrap();
    let out = bed.rouge_cli(&["config", "apply", moved.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restart rouge"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ping = pinger.join().unwrap();
    let text = stdout(&ping);
    // With -w, ping waits for 300 replies and may send a few more requests meanwhile
    // (seen: 304 transmitted, 304 received): what matters is that none was lost.
    let (sent, received) = ping_counts(&text);
    assert!(
        sent >= 300 && received == sent,
        "traffic across the change: {text}"
    );
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["arping", "-c", "2", "-I", "c0", "198.18.1.150"],
    );
    assert!(
        stdout(&out).contains("Received 2 response"),
        "new virtual address answered: {}",
        stdout(&out)
    );
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    assert_eq!(after["generation"], 2);
    assert_eq!(
        counter(&after, &["arp", "gratuitous_sent"]),
        counter(&before, &["arp", "gratuitous_sent"]) + 1,
        "the new address is announced once"
    );
    let vs = bed.rouge_json(&["show", "virtual"]).unwrap();
    let to_servers = vs
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "to-servers")
        .unwrap();
    assert!(
        counter(to_servers, &["packets"]) >= 300,
        "counters carried over: {vs}"
    );
}

/// (transmitted, received) from ping's summary line.
fn ping_counts(text: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no summary in ping's output: {text}"));
    let num = |what: &str| -> u64 {
        let before = line.split(what).next().expect("split yields a first part");
        before
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before `{what}` in: {line}"))
    };
    (num(" packets transmitted"), num(" received"))
}
