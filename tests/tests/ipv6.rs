//! The appliance's IPv6 data path on the test bed against the kernel's own tools:
//! `ping -6` to the self IP and through to a server, `ndisc6` and `ip -6 neigh` show
//! Rouge's advertisements (and an MLD query its report), `curl -6` through the fastl4 virtual server `web6` reaches
//! every member, and a long upload over a smaller-MTU server link succeeds through
//! fastl4 because Rouge's packet too big teaches the client the path MTU.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const MEMBERS: [&str; 4] = [
    "2001:2:0:2::11",
    "2001:2:0:2::12",
    "2001:2:0:2::13",
    "2001:2:0:2::14",
];

fn counter(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("no counter {path:?} in {v}"))
}

fn lb_c_mac(bed: &Testbed) -> String {
    let ifs = bed.rouge_json(&["show", "interfaces"]).unwrap();
    ifs.as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lb-c")
        .expect("lb-c in show interfaces")["mac"]
        .as_str()
        .unwrap()
        .to_lowercase()
}

#[test]
fn ping6_ndisc6_and_the_neighbour_table_see_the_appliance() {
    let mut bed = Testbed::up(false);
    bed.start_rouge(&testbed_config(), &[]);
    let mac = lb_c_mac(&bed);
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-6", "-c", "3", "-i", "0.2", "2001:2:0:1::1"],
    );
    assert!(out.status.success(), "ping -6 failed: {}", stdout(&out));
    assert!(stdout(&out).contains("3 received"), "{}", stdout(&out));
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["ip", "-6", "neigh", "show", "2001:2:0:1::1", "dev", "c0"],
    );
    assert!(
        stdout(&out).to_lowercase().contains(&mac),
        "the kernel learned Rouge's MAC {mac}: {}",
        stdout(&out)
    );
    for target in ["2001:2:0:1::1", "2001:2:0:1::100"] {
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &["ndisc6", "-1", target, "c0"],
        );
        let text = stdout(&out).to_lowercase();
        assert!(
            out.status.success() && text.contains(&mac),
            "ndisc6 {target} shows {mac}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Through the appliance to a server: routed, hop limit decremented.
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &["ping", "-6", "-c", "3", "-i", "0.2", "2001:2:0:2::11"],
    );
    let text = stdout(&out);
    assert!(
        out.status.success() && text.contains("3 received"),
        "{text}"
    );
    assert!(text.contains("ttl=63"), "one hop: {text}");
    let arp = bed.rouge_json(&["show", "arp"]).unwrap();
    let rows = arp.as_array().unwrap();
    for (addr, vlan) in [("2001:2:0:1::2", "client"), ("2001:2:0:2::11", "server")] {
        assert!(
            rows.iter()
                .any(|r| r["address"] == addr && r["vlan"] == vlan && r["state"] == "reachable"),
            "show arp lists the IPv6 neighbour {addr}: {arp}"
        );
    }
    let s = bed.rouge_json(&["show", "stats"]).unwrap();
    assert!(counter(&s, &["icmpv6", "echo_replies"]) >= 3, "{s}");
    assert!(counter(&s, &["nd", "adverts_sent"]) >= 2, "{s}");
    assert!(counter(&s, &["nd", "solicits_sent"]) >= 1, "{s}");
    assert_eq!(counter(&s, &["nd", "dad_probes_sent"]), 2, "{s}");
    assert_eq!(counter(&s, &["nd", "mld_reports_sent"]), 2, "{s}");
    assert!(counter(&s, &["forwarded"]) >= 6, "{s}");
    for r in ["nd_malformed", "nd_conflict", "icmpv6_bad_checksum"] {
        assert_eq!(counter(&s, &["drops", r]), 0, "{r}: {s}");
    }
    // A multicast router's MLDv2 general query (crafted on a raw socket, no Debian tool
    // sends one) is answered with the client VLAN's report: the groups of its link-local
    // address, the self IP and the VIP.
    let tool = repo().join("tests/tools/mld_query.py");
    let out = bed.exec(
        "client",
        Duration::from_secs(10),
        &["python3", tool.to_str().unwrap(), "c0", "3"],
    );
    let text = stdout(&out);
    assert!(
        out.status.success() && text.contains(&format!("report from {mac}")),
        "MLD report: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for g in ["ff02::1:ff00:1", "ff02::1:ff00:100"] {
        assert!(text.contains(g), "{g} joined: {text}");
    }
    let s = bed.rouge_json(&["show", "stats"]).unwrap();
    assert_eq!(counter(&s, &["nd", "mld_queries_answered"]), 1, "{s}");
    assert_eq!(counter(&s, &["nd", "mld_reports_sent"]), 3, "{s}");
}

fn web6_members(bed: &Testbed) -> Vec<Value> {
    let v = bed.rouge_json(&["show", "pool", "web6"]).unwrap();
    v[0]["members"].as_array().unwrap().clone()
}

#[test]
fn curl6_through_web6_reaches_every_member_and_long_uploads_find_the_path_mtu() {
    let mut bed = Testbed::up(false);
    let tool = repo().join("tests/tools/upload_server.py");
    for m in MEMBERS {
        let name = format!("member-{m}");
        bed.spawn_tagged(
            "srv",
            m,
            &["python3", tool.to_str().unwrap(), m, "80", &name, "120"],
        );
    }
    // The server link is smaller than the client's: uploads through the virtual server
    // need path MTU discovery (the members advertise an MSS for 1500 bytes).
    let out = bed.exec(
        "lb",
        Duration::from_secs(5),
        &["ip", "link", "set", "lb-s", "mtu", "1280"],
    );
    assert!(out.status.success());
    // Two workers: the fanout program spreads IPv6 flows, SNAT ports bring the members'
    // replies back to the worker that owns each flow.
    bed.start_rouge(&testbed_config(), &["--cores", "0,1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ms = web6_members(&bed);
        if ms.iter().all(|m| m["monitor"] == "up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "IPv6 members never came up through the IPv6 monitors: {ms:?}\n{}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut seen = BTreeSet::new();
    // Local ports of both parities, one per flow (the kernel gives connect() ports of
    // one parity, which the XOR formula would put on one worker of two).
    for i in 0..16u16 {
        let port = (45_000 + i).to_string();
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &[
                "curl",
                "-6",
                "-sS",
                "-m",
                "5",
                "--local-port",
                &port,
                "http://[2001:2:0:1::100]/",
            ],
        );
        assert!(
            out.status.success(),
            "curl -6: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.insert(stdout(&out).trim().to_string());
    }
    let want: BTreeSet<String> = MEMBERS.iter().map(|m| format!("member-{m}")).collect();
    assert_eq!(seen, want, "round robin over every member");
    let s = bed.rouge_json(&["show", "stats"]).unwrap();
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(
            w["forwarded"].as_u64().unwrap_or(0) > 0,
            "sixteen IPv6 flows reach both workers: {s}"
        );
    }

    let file = bed.dir.join("upload.bin");
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .unwrap();
    let sha = stdout(&out).split_whitespace().next().unwrap().to_string();
    let arg = format!("@{}", file.display());
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            "curl",
            "-6",
            "-sS",
            "-m",
            "20",
            "--data-binary",
            &arg,
            "http://[2001:2:0:1::100]/upload",
        ],
    );
    assert!(
        out.status.success(),
        "upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).trim(),
        format!("1000000 {sha}"),
        "every byte arrived"
    );
    let out = bed.exec(
        "client",
        Duration::from_secs(5),
        &["ip", "-6", "route", "get", "2001:2:0:1::100"],
    );
    assert!(
        stdout(&out).contains("mtu 1280"),
        "the client learned the path MTU: {}",
        stdout(&out)
    );
    let s = bed.rouge_json(&["show", "stats"]).unwrap();
    assert!(counter(&s, &["drops", "ipv6_packet_too_big"]) >= 1, "{s}");
    assert!(counter(&s, &["icmpv6", "errors_sent"]) >= 1, "{s}");
    let ms = web6_members(&bed);
    for m in &ms {
        assert!(
            m["total_connections"].as_u64().unwrap_or(0) >= 2,
            "every member took connections: {ms:?}"
        );
    }
}

#[test]
fn an_ipv6_standard_virtual_server_fronts_the_ipv4_members() {
    let mut bed = Testbed::up(false);
    let tool = repo().join("tests/tools/upload_server.py");
    let v4 = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
    for m in v4 {
        let name = format!("member-{m}");
        bed.spawn_tagged(
            "srv",
            m,
            &["python3", tool.to_str().unwrap(), m, "80", &name, "120"],
        );
    }
    // The test bed's configuration and a full proxy on the IPv6 VIP in front of the IPv4
    // pool `web`: dual-stack clients, IPv4 storage.
    let text = std::fs::read_to_string(testbed_config()).unwrap()
        + r#"
[[virtual]]
name = "web-proxy6"
type = "standard"
destination = "[2001:2:0:1::100]:8080"
pool = "web"
snat = "automap"
"#;
    let config = bed.dir.join("proxy6.toml");
    std::fs::write(&config, text).unwrap();
    bed.start_rouge(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = bed.rouge_json(&["show", "pool", "web"]).unwrap();
        let ms = v[0]["members"].as_array().unwrap().clone();
        if ms.iter().all(|m| m["monitor"] == "up") {
            break;
        }
        assert!(Instant::now() < deadline, "members never came up: {ms:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut seen = BTreeSet::new();
    for _ in 0..8 {
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &[
                "curl",
                "-6",
                "-sS",
                "-m",
                "5",
                "http://[2001:2:0:1::100]:8080/",
            ],
        );
        assert!(
            out.status.success(),
            "curl -6 through the proxy: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            bed.rouge_log()
        );
        seen.insert(stdout(&out).trim().to_string());
    }
    let want: BTreeSet<String> = v4.iter().map(|m| format!("member-{m}")).collect();
    assert_eq!(seen, want, "every IPv4 member answered the IPv6 clients");
}
