//! The appliance on the test bed once per port driver: the same checks against the
//! kernel's own tools with `driver = "afpacket"` (appliance/configs/testbed.toml),
//! `"afxdp"` (testbed-afxdp.toml) and, with cargo feature `dpdk` of this crate,
//! `"dpdk"` over `net_af_packet` vdevs on the veths (testbed-dpdk.toml, run by a
//! `rouge` built with `--features dpdk`):
//!
//! - `rouge check` in the appliance's namespace finds nothing missing;
//! - ping of the self IP 198.18.1.1 from rg-client is answered;
//! - transit traffic is forwarded to a server (ping with TTL 63, an HTTP fetch);
//! - curl through the fastl4 VIP 198.18.1.100:80 reaches every pool member;
//! - the port counters of `show interfaces` name the driver and saw the traffic.
//!
//! One worker for the suite. With two workers (AF_XDP on veths of two queues, DPDK on
//! `net_af_packet` vdevs of two queue pairs) every flow's frames are processed by the
//! worker the steering names, whichever queue they came in on (the hand-off between
//! workers, tested below); two AF_XDP workers on one-queue veths are refused with the
//! reason.

use std::path::Path;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];

fn in_lb(bed: &Testbed, bin: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = vec![bin.to_str().unwrap()];
    cmd.extend_from_slice(args);
    bed.exec("lb", Duration::from_secs(30), &cmd)
}

fn curl(bed: &Testbed, url: &str) -> String {
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["curl", "-s", "--max-time", "5", url],
    );
    stdout(&out)
}

/// One `python3 -m http.server` per pool member, each serving `id.txt` with its own
/// address.
fn serve_members(bed: &mut Testbed) {
    for m in MEMBERS {
        let dir = bed.dir.join(m);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id.txt"), format!("{m}\n")).unwrap();
        let d = dir.to_str().unwrap().to_string();
        bed.spawn(
            "srv",
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
}

/// Waits (bounded) until every member of pool `web` is up.
fn wait_members_up(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = bed.rouge_json(&["show", "pool", "web"]).unwrap();
        let members = v[0]["members"].as_array().cloned().unwrap_or_default();
        if !members.is_empty() && members.iter().all(|m| m["monitor"] == "up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never came up: {members:?}\n{}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn xdp_attached(bed: &Testbed, dev: &str) -> bool {
    let out = bed.exec("lb", Duration::from_secs(10), &["ip", "link", "show", dev]);
    // `ip link` prints `xdp` (native) or `xdpgeneric` and the program's id.
    stdout(&out).contains("xdp")
}

/// The suite, for one driver.
fn ping_forward_and_fastl4_through(driver: &str, bin: &Path) {
    let config = testbed_config_for(driver);
    let mut bed = Testbed::up(false);

    let out = in_lb(&bed, bin, &["check", "--config", config.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(
        out.status.success(),
        "rouge check: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("driver {driver} (lb-c, lb-s): needs")),
        "{report}"
    );
    assert!(!report.contains("MISSING"), "{report}");

    serve_members(&mut bed);
    bed.start_rouge_bin(bin, &config, &[]);
    if driver == "afxdp" {
        assert!(
            xdp_attached(&bed, "lb-c") && xdp_attached(&bed, "lb-s"),
            "Rouge's XDP program is attached"
        );
    }

    // The self IP answers.
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-c", "3", "-i", "0.2", "198.18.1.1"],
    );
    assert!(stdout(&out).contains("3 received"), "{}", stdout(&out));

    // Transit traffic is forwarded, TTL decremented once, and TCP crosses too.
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-c", "3", "-i", "0.2", "198.18.2.11"],
    );
    let text = stdout(&out);
    assert!(
        text.contains("3 received") && text.contains("ttl=63"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = String::new();
    while Instant::now() < deadline && body.is_empty() {
        body = curl(&bed, "http://198.18.2.12/id.txt");
        if body.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(body, "198.18.2.12\n", "forwarded to the server");

    // The fastl4 VIP: eight connections, round robin over the four members.
    wait_members_up(&bed);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..8 {
        let body = curl(&bed, "http://198.18.1.100/id.txt");
        assert!(
            MEMBERS.iter().any(|m| body == format!("{m}\n")),
            "through the VIP: {body:?}\n{}",
            bed.rouge_log()
        );
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "every member served: {seen:?}");
    let pool = bed.rouge_json(&["show", "pool", "web"]).unwrap();
    let conns: u64 = pool[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["total_connections"].as_u64().unwrap_or(0))
        .sum();
    assert!(conns >= 8, "{pool}");

    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    for name in ["lb-c", "lb-s"] {
        let i: &Value = ifs
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {ifs}"));
        assert_eq!(i["driver"], driver, "{i}");
        assert!(i["rx_packets"].as_u64().unwrap() >= 10, "{i}");
        assert!(i["tx_packets"].as_u64().unwrap() >= 10, "{i}");
        assert_ne!(i["mac"], "00:00:00:00:00:00", "{i}");
        // Frames leave in bursts: a kick carries several (AF_PACKET and AF_XDP kick with
        // a system call, DPDK without one).
        let (tx, kicks) = (
            i["tx_packets"].as_u64().unwrap(),
            i["tx_kicks"].as_u64().unwrap(),
        );
        if driver == "dpdk" {
            assert_eq!(kicks, 0, "{i}");
        } else {
            assert!(kicks > 0 && kicks <= tx, "{i}");
        }
        // AF_XDP sends the frames it forwards (pings, the curl and nginx segments above)
        // from the UMEM frame they arrived in; the other drivers copy.
        // How frames leave: on these veths AF_PACKET sends by copy (`tx_path = "auto"`).
        let path = match driver {
            "afpacket" => "copy",
            "afxdp" => "umem",
            _ => "pmd",
        };
        assert_eq!(i["tx_path"], path, "{i}");
        // AF_PACKET (V2 ring slots) and AF_XDP (UMEM frames) lend what they receive to
        // the pipelines without a copy; DPDK copies its mbufs.
        let rx_in_place = i["rx_in_place"].as_u64().unwrap();
        let rx = i["rx_packets"].as_u64().unwrap();
        if driver == "dpdk" {
            assert_eq!(rx_in_place, 0, "{i}");
        } else {
            assert!(
                rx_in_place >= 10 && rx_in_place <= rx,
                "received in place: {i}"
            );
        }
        let in_place = i["tx_in_place"].as_u64().unwrap();
        if driver == "afxdp" {
            assert!(in_place >= 10 && in_place <= tx, "forwarded in place: {i}");
        } else {
            assert_eq!(in_place, 0, "{i}");
        }
    }
    assert_eq!(bed.stop_rouge(), Some(0), "clean exit on SIGTERM");
    if driver == "afxdp" {
        assert!(
            !xdp_attached(&bed, "lb-c") && !xdp_attached(&bed, "lb-s"),
            "the XDP program went away with the process"
        );
    }
}

#[test]
fn afpacket_ping_forwarding_and_fastl4_vip() {
    ping_forward_and_fastl4_through("afpacket", &rouge_bin());
}

#[test]
fn afxdp_ping_forwarding_and_fastl4_vip() {
    ping_forward_and_fastl4_through("afxdp", &rouge_bin());
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_ping_forwarding_and_fastl4_vip() {
    ping_forward_and_fastl4_through("dpdk", &rouge_dpdk_bin());
}

/// Two workers on one-queue veths: `rouge check` says why they cannot both get frames,
/// and `rouge run --cores 0,1` refuses to start with the fix.
#[test]
fn afxdp_with_two_workers_on_a_veth_is_explained_and_refused() {
    let bin = rouge_bin();
    let bed = Testbed::up(false);
    let two = bed.dir.join("two-workers.toml");
    let text = std::fs::read_to_string(testbed_config_for("afxdp"))
        .unwrap()
        .replace("# cores = [1]", "cores = [0, 1]")
        .replace("queues = 1 ", "")
        .replace("queues = 1\n", "");
    std::fs::write(&two, text).unwrap();
    let out = in_lb(&bed, &bin, &["check", "--config", two.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("MISSING: lb-c: 1 receive queue(s), but queues = 2 (2 worker(s), one queue each): a veth has one queue, so two workers cannot both get its frames"),
        "{report}"
    );
    assert!(report.contains("handed to that worker"), "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MISSING lines above"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The shipped configuration (queues = 1) with two workers from the command line.
    let out = bed.exec(
        "lb",
        Duration::from_secs(30),
        &[
            bin.to_str().unwrap(),
            "run",
            "--config",
            testbed_config_for("afxdp").to_str().unwrap(),
            "--cores",
            "0,1",
            "--socket",
            bed.dir.join("refused.sock").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("interface[0].queues: queues = 1 but 2 worker(s) run")
            && err.contains("fix: set queues = 2"),
        "{err}"
    );
}

/// The worker the AF_PACKET fanout formula (the steering that hand-offs follow) names
/// for a TCP flow: `(src ^ dst ^ sport ^ dport) % workers` over big-endian words.
fn fanout_owner(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, workers: u32) -> usize {
    ((u32::from_be_bytes(src) ^ u32::from_be_bytes(dst) ^ u32::from(sport) ^ u32::from(dport))
        % workers) as usize
}

/// Two AF_XDP workers on veths of two queues: the peers' kernels choose each frame's
/// queue, and a frame whose flow the other worker owns is handed to it (see
/// [`two_workers_hand_each_flow_to_its_owner`]).
#[test]
fn afxdp_two_workers_hand_each_flow_to_its_owner() {
    let text = std::fs::read_to_string(testbed_config_for("afxdp"))
        .unwrap()
        .replace("# cores = [1]", "cores = [0, 1]")
        .replace("queues = 1 ", "queues = 2 ")
        .replace("queues = 1\n", "queues = 2\n");
    two_workers_hand_each_flow_to_its_owner(&rouge_bin(), &text, 2);
}

/// Two DPDK workers, each on its queue pair of `net_af_packet` vdevs with `qpairs=2`
/// (the kernel's fanout hash chooses each frame's queue): frames are handed to the
/// worker that owns their flow (see [`two_workers_hand_each_flow_to_its_owner`]).
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_two_workers_hand_each_flow_to_its_owner() {
    let text = std::fs::read_to_string(testbed_config_for("dpdk"))
        .unwrap()
        .replace("# cores = [1]", "cores = [0, 1]")
        .replace("iface=lb-c\"", "iface=lb-c,qpairs=2\"")
        .replace("iface=lb-s\"", "iface=lb-s,qpairs=2\"");
    two_workers_hand_each_flow_to_its_owner(&rouge_dpdk_bin(), &text, 1);
}

/// Two workers on ports whose queue the device chooses, with the configuration `text`
/// on a test bed of veths with `queues` queues: every connection through the fastl4
/// VIP (client-side source ports chosen by the test) completes, each flow is created on
/// exactly the worker the steering names, the hand-offs are counted and none is lost.
fn two_workers_hand_each_flow_to_its_owner(bin: &Path, text: &str, queues: u32) {
    let mut bed = Testbed::up_with_queues(false, queues);
    let config = bed.dir.join("two-workers.toml");
    std::fs::write(&config, text).unwrap();
    let out = in_lb(&bed, bin, &["check", "--config", config.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(
        out.status.success() && !report.contains("MISSING"),
        "{report}"
    );

    serve_members(&mut bed);
    bed.start_rouge_bin(bin, &config, &[]);
    wait_members_up(&bed);

    let before = bed.rouge_json(&["show", "stats"]).unwrap();
    let created = |v: &Value, w: usize| v["workers"][w]["fastl4_flows_created"].as_u64().unwrap();
    let (c0, c1) = (created(&before, 0), created(&before, 1));
    let mut want = [0u64; 2];
    for port in 41000..41024u16 {
        want[fanout_owner([198, 18, 1, 2], [198, 18, 1, 100], port, 80, 2)] += 1;
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "--local-port",
                &port.to_string(),
                "http://198.18.1.100/id.txt",
            ],
        );
        let body = stdout(&out);
        assert!(
            MEMBERS.iter().any(|m| body == format!("{m}\n")),
            "source port {port}: {body:?}\n{}",
            bed.rouge_log()
        );
    }
    let after = bed.rouge_json(&["show", "stats"]).unwrap();
    assert_eq!(
        [created(&after, 0) - c0, created(&after, 1) - c1],
        want,
        "flows per worker: {after}"
    );
    assert!(want[0] > 0 && want[1] > 0, "both workers own flows");
    assert!(after["handoffs"].as_u64().unwrap() > 0, "{after}");
    assert_eq!(after["handoff_drops"], 0, "{after}");
    let text = stdout(&bed.rouge_cli(&["show", "stats"]));
    assert!(text.contains("hand-offs to the owning worker: "), "{text}");
    assert_eq!(bed.stop_rouge(), Some(0), "clean exit on SIGTERM");
}
