//! The full TCP proxy (`type = "standard"` virtual servers) on the test bed, against real
//! peers nobody here wrote: nginx members, curl, wrk, netcat, socat and the kernel's TCP
//! on both sides.
//!
//! The configuration is `appliance/configs/testbed.toml` (its `web-proxy`,
//! 198.18.1.100:8080 to pool `web`, SNAT automap, http monitor) plus `sink-proxy`: a copy
//! of web-proxy's block on 198.18.1.100:9000 in front of pool `sink` (the members' port
//! 9000, no monitor), where a socat on .11-.13 hashes what it receives until the client's
//! FIN and answers with the hash, and nothing listens on .14:9000 (it refuses with a RST).
//!
//! - curl and wrk through the VIP: no error, every member used, every member sees
//!   198.18.2.1 as the client; `nc` half-close; 1 GiB down and 1 GiB up, hash-checked;
//! - a member whose host dies (server killed, address gone: no answer at all) is marked
//!   down by the monitor, after which no request fails; a member whose port is closed
//!   costs no request thanks to reselect; a spoofed SYN flood on the VIP while real
//!   clients are served;
//! - `rouge config apply` and the disabling of the member of a running download and
//!   upload lose nothing.
//!
//! Every load is bounded in count and time; only 198.18.0.0/15 inside the test's own
//! namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const VIP: &str = "198.18.1.100";
const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
/// The member of pool `sink` whose port 9000 is closed (the kernel answers SYNs with RST).
const CLOSED_SINK: &str = "198.18.2.14";
const SNAT: &str = "198.18.2.1";
const GIB: u64 = 1 << 30;

fn tool(name: &str) -> String {
    repo()
        .join("tests/tools")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// `appliance/configs/testbed.toml` plus pool `sink` and virtual server `sink-proxy`:
/// web-proxy's own block (whatever profiles and options it carries) with another name,
/// destination and pool.
fn proxy_config(bed: &Testbed) -> PathBuf {
    let text = std::fs::read_to_string(testbed_config()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.replace(' ', "") == "name=\"web-proxy\"")
        .expect("testbed.toml has the standard virtual server web-proxy (issue 14)");
    let start = (0..at)
        .rev()
        .find(|&i| lines[i].trim() == "[[virtual]]")
        .expect("web-proxy is a [[virtual]] table");
    let end = (at + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let block: Vec<String> = lines[start..end]
        .iter()
        .map(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            match key {
                "name" => "name = \"sink-proxy\"".to_string(),
                "destination" => format!("destination = \"{VIP}:9000\""),
                "pool" => "pool = \"sink\"".to_string(),
                _ => l.to_string(),
            }
        })
        .collect();
    assert!(
        block
            .iter()
            .any(|l| l.replace(' ', "") == "type=\"standard\""),
        "web-proxy is a standard virtual server: {block:?}"
    );
    let members: Vec<String> = MEMBERS
        .iter()
        .map(|m| format!("{{ address = \"{m}:9000\" }}"))
        .collect();
    let extra = format!(
        "\n[[pool]]\nname = \"sink\"\nmembers = [{}]\n\n{}\n",
        members.join(", "),
        block.join("\n")
    );
    let path = bed.dir.join("proxy.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// Writes `len` random bytes to `path`; returns their SHA-256 (hex).
fn random_file(path: &Path, len: u64) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {len} /dev/urandom | tee {} | sha256sum",
            path.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let hash = stdout(&out).split_whitespace().next().unwrap().to_string();
    assert_eq!(std::fs::metadata(path).unwrap().len(), len);
    hash
}

/// One nginx per member (a single process, so killing it closes the member's port),
/// serving `www/` (`/`, `/1k`, and whatever the test puts there) and `/id`: the member's
/// address and the client address it sees. Each logs `server client status uri` per request
/// to `access-<member>.log`. And a hashing sink (socat to `sha256sum`) on port 9000 of
/// every member but [`CLOSED_SINK`].
fn serve_members(bed: &mut Testbed) {
    let www = bed.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("1k"), vec![b'k'; 1024]).unwrap();
    // The http monitor's `GET /` wants a 200.
    std::fs::write(www.join("index.html"), "up\n").unwrap();
    for m in MEMBERS {
        let dir = bed.dir.join(format!("nginx-{m}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  log_format who '$server_addr $remote_addr $status $uri';\n\
                 access_log {log} who;\n  keepalive_requests 100000;\n  sendfile on;\n\
                 server {{\n    listen {m}:80 backlog=1024;\n    root {www};\n\
                 location = /id {{ default_type text/plain; return 200 \"$server_addr $remote_addr\\n\"; }}\n  }}\n}}\n",
                d = dir.display(),
                log = bed.dir.join(format!("access-{m}.log")).display(),
                www = www.display(),
            ),
        )
        .unwrap();
        let (c, d) = (
            conf.to_str().unwrap().to_string(),
            dir.to_str().unwrap().to_string(),
        );
        bed.spawn_tagged(
            "srv",
            m,
            &["nginx", "-p", &d, "-c", &c, "-e", &format!("{d}/error.log")],
        );
        if m != CLOSED_SINK {
            let listen = format!("TCP-LISTEN:9000,bind={m},reuseaddr,fork,backlog=256");
            bed.spawn("srv", &["socat", "-t", "30", &listen, "EXEC:sha256sum"]);
        }
    }
}

fn virtual_json(bed: &Testbed, name: &str) -> Value {
    let v = bed.rouge_json(&["show", "virtual", name]).unwrap();
    match v {
        Value::Array(mut a) if !a.is_empty() => a.remove(0),
        v => v,
    }
}

/// A counter of `show virtual NAME --json`, e.g. `["client_side", "total"]`.
fn vs_counter(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("no counter {path:?} in show virtual: {v}"))
}

fn pool(bed: &Testbed, name: &str) -> Vec<Value> {
    let v = bed.rouge_json(&["show", "pool", name]).unwrap();
    v[0]["members"].as_array().unwrap().clone()
}

fn member_state(bed: &Testbed, addr: &str) -> Value {
    pool(bed, "web")
        .into_iter()
        .find(|m| m["address"] == format!("{addr}:80"))
        .unwrap()
}

/// Waits (bounded) until every member of pool `web` is up and a request through the VIP
/// is answered.
fn wait_ready(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ms = pool(bed, "web");
        if ms.iter().all(|m| m["monitor"] == "up") {
            let out = bed.exec(
                "client",
                Duration::from_secs(10),
                &["curl", "-sS", "-m", "5", &format!("http://{VIP}:8080/id")],
            );
            if out.status.success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "web-proxy not ready: {ms:?}\n{}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `n` GETs of /id through web-proxy, each on a new connection (tests/tools/http_count.py):
/// `{"bodies": {"<member> <client seen>": count}, "failed": n}`.
fn count(bed: &Testbed, n: usize) -> Value {
    let out = bed.exec(
        "client",
        Duration::from_secs(150),
        &[
            "python3",
            &tool("http_count.py"),
            &format!("http://{VIP}:8080/id"),
            &n.to_string(),
            "120",
        ],
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Requests per member in `count`'s answer, each checked to come from the SNAT address.
fn per_member(v: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (body, n) in v["bodies"].as_object().unwrap() {
        let mut it = body.split_whitespace();
        let (member, client) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        assert_eq!(client, SNAT, "member {member} saw client {client}: {v}");
        *out.entry(member.to_string()).or_insert(0) += n.as_u64().unwrap();
    }
    out
}

/// `connections` connections to sink-proxy, each sending a short message, half-closing
/// and reading the member's SHA-256 of it; `{"ok": n, "failed": n, "errors": [...]}`.
fn sink_round_trips(bed: &Testbed, connections: usize) -> Value {
    let script = r#"
import hashlib, json, socket, sys, time
n, deadline = int(sys.argv[1]), time.monotonic() + 60
ok, failed, errors = 0, 0, []
for i in range(n):
    msg = b"message %d\n" % i
    want = hashlib.sha256(msg).hexdigest().encode()
    try:
        if time.monotonic() > deadline:
            raise TimeoutError("deadline")
        s = socket.create_connection(("198.18.1.100", 9000), timeout=5)
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        s.close()
        if got.split()[:1] == [want]:
            ok += 1
        else:
            failed += 1
            errors.append(repr(got[:80]))
    except Exception as e:
        failed += 1
        errors.append(str(e))
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:5]}))
"#;
    let out = bed.exec(
        "client",
        Duration::from_secs(90),
        &["python3", "-c", script, &connections.to_string()],
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// The proxied flows of `virtual` (`rouge show connections --virtual NAME --json`).
fn connections(bed: &Testbed, virtual_name: &str) -> Vec<Value> {
    let v = bed
        .rouge_json(&["show", "connections", "--virtual", virtual_name])
        .unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("show connections is a JSON array: {v}"))
        .clone()
}

/// Runs `argv` in the client namespace in a thread (bounded by `secs`); joins to its output.
fn in_client(
    bed: &Testbed,
    secs: u64,
    argv: &[&str],
) -> std::thread::JoinHandle<std::process::Output> {
    let ns = bed.ns("client");
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", &secs.to_string()])
            .args(&argv)
            .output()
            .unwrap()
    })
}

/// The first word of a command's output (a hash from sha256sum).
fn first_word(o: &std::process::Output) -> String {
    stdout(o)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn proxy_serves_curl_wrk_half_close_and_a_gib_each_way() {
    let mut bed = Testbed::up(false);
    let config = proxy_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_members(&mut bed);
    let big = bed.dir.join("www/big.bin");
    let hash = random_file(&big, GIB);
    wait_ready(&bed);
    let before = virtual_json(&bed, "web-proxy");

    // curl: 12 requests, each a new connection: round robin reaches every member, and
    // every member sees the appliance's server-side self IP as the client.
    let mut seen = BTreeMap::new();
    for _ in 0..12 {
        let out = bed.exec(
            "client",
            Duration::from_secs(10),
            &["curl", "-sS", "-m", "5", &format!("http://{VIP}:8080/id")],
        );
        assert!(
            out.status.success(),
            "curl through web-proxy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout(&out);
        let mut it = text.split_whitespace();
        let (member, client) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        assert_eq!(client, SNAT, "the member saw the client as {client}");
        *seen.entry(member.to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "every member answered: {seen:?}");

    // wrk: 16 keep-alive connections for 3 s; no socket error, no non-2xx answer, and the
    // members' own logs show every member serving, every request from 198.18.2.1.
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            "wrk",
            "-t1",
            "-c16",
            "-d3s",
            "--timeout",
            "5s",
            &format!("http://{VIP}:8080/1k"),
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "wrk: {text}");
    assert!(!text.contains("Socket errors"), "wrk saw errors: {text}");
    assert!(!text.contains("Non-2xx"), "wrk saw failed answers: {text}");
    let requests: u64 = text
        .split(" requests in")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("wrk's request count: {text}"));
    assert!(requests >= 100, "wrk through the proxy: {text}");
    let mut logged = 0;
    for m in MEMBERS {
        let log = std::fs::read_to_string(bed.dir.join(format!("access-{m}.log"))).unwrap();
        // Every request a member logged (the monitor's `GET /` included) came from the
        // SNAT address and was answered 200; wrk's (`/1k`) reached every member.
        for l in log.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[..3], [m, SNAT, "200"], "member {m} logged {l}");
        }
        let served = log.lines().filter(|l| l.ends_with(" /1k")).count();
        assert!(served >= 10, "member {m} served {served} of wrk's requests");
        logged += served as u64;
    }
    assert!(
        logged >= requests,
        "members logged {logged} requests for /1k, wrk counted {requests}"
    );
    let after = virtual_json(&bed, "web-proxy");
    for side in ["client_side", "server_side"] {
        let grew = vs_counter(&after, &[side, "total"]) - vs_counter(&before, &[side, "total"]);
        assert!(
            (12 + 16..=12 + 16 + 16).contains(&grew),
            "{side} connections counted: {grew} for 12 curl + 16 wrk connections: {after}"
        );
    }

    // nc half-close: the sink answers only after the client's FIN reached it, on the
    // half-open connection back.
    let small = bed.dir.join("small.bin");
    let small_hash = random_file(&small, 1 << 20);
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            "sh",
            "-c",
            &format!("nc -N -w 20 {VIP} 9000 < {}", small.display()),
        ],
    );
    assert_eq!(
        first_word(&out),
        small_hash,
        "nc half-close through sink-proxy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1 GiB down (nginx -> curl) and 1 GiB up (nc -> sha256sum on a member), hash-checked.
    // The TCP stack's drops and retransmissions of each are printed for diagnosis.
    let tcp = |bed: &Testbed| bed.rouge_json(&["show", "stats"]).unwrap()["tcp"].clone();
    let diff = |a: &Value, b: &Value| {
        format!(
            "beyond-window drops {}, out-of-window drops {}, retransmits {}",
            b["drops"]["beyond-window"].as_u64().unwrap_or(0)
                - a["drops"]["beyond-window"].as_u64().unwrap_or(0),
            b["drops"]["out-of-window"].as_u64().unwrap_or(0)
                - a["drops"]["out-of-window"].as_u64().unwrap_or(0),
            b["retransmits"].as_u64().unwrap_or(0) - a["retransmits"].as_u64().unwrap_or(0)
        )
    };
    let t0 = tcp(&bed);
    let t = Instant::now();
    let out = bed.exec(
        "client",
        Duration::from_secs(240),
        &[
            "sh",
            "-c",
            &format!("curl -sS --max-time 230 http://{VIP}:8080/big.bin | sha256sum"),
        ],
    );
    assert_eq!(
        first_word(&out),
        hash,
        "1 GiB download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t1 = tcp(&bed);
    eprintln!(
        "1 GiB download through the proxy in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        diff(&t0, &t1)
    );
    let t = Instant::now();
    let out = bed.exec(
        "client",
        Duration::from_secs(240),
        &[
            "sh",
            "-c",
            &format!("nc -N -w 60 {VIP} 9000 < {}", big.display()),
        ],
    );
    assert_eq!(
        first_word(&out),
        hash,
        "1 GiB upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "1 GiB upload through the proxy in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        diff(&t1, &tcp(&bed))
    );
    assert!(bed.rouge_alive());
}

#[test]
fn proxy_reselects_past_a_closed_port_routes_around_a_dead_member_and_absorbs_a_syn_flood() {
    let mut bed = Testbed::up(false);
    let config = proxy_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_members(&mut bed);
    wait_ready(&bed);

    // sink pool: .14:9000 refuses (RST). Round robin sends every fourth connection
    // there; reselect takes it to another member before the client sees anything.
    let before = virtual_json(&bed, "sink-proxy");
    let v = sink_round_trips(&bed, 80);
    assert_eq!(v["failed"], 0, "closed member port cost requests: {v}");
    assert_eq!(v["ok"], 80, "{v}");
    let after = virtual_json(&bed, "sink-proxy");
    let reselects = vs_counter(&after, &["reselects"]) - vs_counter(&before, &["reselects"]);
    assert!(
        (10..=80).contains(&reselects),
        "the refusing member was tried and passed over: {reselects} reselects: {after}"
    );

    // A member's host dies: its server is killed and its address is gone, so its SYNs go
    // unanswered. The monitor marks it down within its timeout (3 s; generous slack);
    // from then on no request fails and none reaches it.
    let died = Instant::now();
    bed.kill_tagged("198.18.2.12");
    let out = bed.exec(
        "srv",
        Duration::from_secs(10),
        &["ip", "addr", "del", "198.18.2.12/24", "dev", "s0"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    loop {
        if member_state(&bed, "198.18.2.12")["monitor"] == "down" {
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(15),
            "not marked down: {:?}",
            pool(&bed, "web")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "member marked down {:?} after its host died",
        died.elapsed()
    );
    let v = count(&bed, 200);
    assert_eq!(
        v["failed"], 0,
        "requests failed after the monitor's timeout: {v}"
    );
    let per = per_member(&v);
    assert_eq!(per.get("198.18.2.12"), None, "a dead member was used: {v}");
    assert_eq!(per.len(), 3, "the three live members share the load: {v}");

    // A spoofed SYN flood on the VIP (6,000 SYNs at 4,000/s from 198.18.1.x, bounded to
    // 30 s by the tool) while real clients are served: none of them fails, the flood is
    // answered with SYN cookies, and no server-side connection is opened for it.
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
    let stats_before = bed.rouge_json(&["show", "stats"]).unwrap();
    let vs_before = virtual_json(&bed, "web-proxy");
    let flood = in_client(
        &bed,
        60,
        &[
            "python3",
            &tool("synflood.py"),
            "c0",
            &mac,
            VIP,
            "8080",
            "6000",
            "4000",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let v = count(&bed, 100);
    let flood = flood.join().unwrap();
    assert!(
        flood.status.success(),
        "synflood.py: {}",
        String::from_utf8_lossy(&flood.stderr)
    );
    assert_eq!(v["failed"], 0, "real clients failed during the flood: {v}");
    let stats = bed.rouge_json(&["show", "stats"]).unwrap();
    let cookies = stats["tcp"]["syn_cookies_sent"].as_u64().unwrap()
        - stats_before["tcp"]["syn_cookies_sent"].as_u64().unwrap();
    assert!(
        cookies > 1000,
        "the flood was answered with cookies: {cookies}: {}",
        stats["tcp"]
    );
    let vs_after = virtual_json(&bed, "web-proxy");
    let opened = vs_counter(&vs_after, &["server_side", "total"])
        - vs_counter(&vs_before, &["server_side", "total"]);
    assert!(
        (100..=120).contains(&opened),
        "server-side connections opened during the flood: {opened} for 100 real requests"
    );
    assert!(bed.rouge_alive());
}

#[test]
fn proxy_transfers_survive_config_apply_and_member_disable() {
    let mut bed = Testbed::up(false);
    let config = proxy_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_members(&mut bed);
    let big = bed.dir.join("www/big.bin");
    let hash = random_file(&big, 256 << 20);
    wait_ready(&bed);

    // A download through web-proxy (about 13 s) and an upload through sink-proxy (8 s).
    let download = in_client(
        &bed,
        120,
        &[
            "sh",
            "-c",
            &format!(
                "curl -sS --limit-rate 20M --max-time 110 http://{VIP}:8080/big.bin | sha256sum"
            ),
        ],
    );
    let paced = r#"
import hashlib, os, socket, sys, time
total, rate = 128 << 20, 16 << 20
h = hashlib.sha256()
s = socket.create_connection(("198.18.1.100", 9000), timeout=30)
t0, sent = time.monotonic(), 0
while sent < total and time.monotonic() - t0 < 60:
    chunk = os.urandom(256 << 10)
    s.sendall(chunk)
    h.update(chunk)
    sent += len(chunk)
    ahead = sent / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    got += d
print(h.hexdigest(), sent, got.decode().split()[0] if got else "-")
"#;
    let upload = in_client(&bed, 120, &["python3", "-c", paced]);

    // The download's flow, as the appliance lists it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let flow = loop {
        let flows = connections(&bed, "web-proxy");
        let big_flow = flows.iter().find(|c| {
            c["bytes_in"].as_u64().unwrap_or(0) + c["bytes_out"].as_u64().unwrap_or(0) > 4 << 20
        });
        if let Some(f) = big_flow {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "download flow not listed: {flows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(flow["kind"], "proxy", "{flow}");
    assert_eq!(flow["virtual"], "web-proxy", "{flow}");
    assert!(
        flow["client"].as_str().unwrap().starts_with("198.18.1.2:"),
        "{flow}"
    );
    assert!(
        flow["snat"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{SNAT}:")),
        "{flow}"
    );
    let busy = flow["server"].as_str().unwrap().to_string();
    assert!(busy.ends_with(":80"), "{flow}");

    // A configuration change in the middle of both transfers.
    let changed = bed.dir.join("changed.toml");
    let text = std::fs::read_to_string(&config).unwrap();
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

    // The download's member disabled (drain): new requests avoid it, the download goes on.
    let out = bed.rouge_cli(&["pool", "member", "disable", "web", &busy]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ip = busy.trim_end_matches(":80");
    assert_eq!(member_state(&bed, ip)["admin"], "disabled");
    let v = count(&bed, 60);
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        per_member(&v).get(ip),
        None,
        "the disabled member got new connections: {v}"
    );
    assert!(
        connections(&bed, "web-proxy")
            .iter()
            .any(|c| c["server"] == busy.as_str()),
        "the draining member's flow still runs"
    );

    let down = download.join().unwrap();
    assert_eq!(
        first_word(&down),
        hash,
        "download across config apply and disable: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let up = upload.join().unwrap();
    let words: Vec<String> = stdout(&up).split_whitespace().map(String::from).collect();
    assert_eq!(
        words.len(),
        3,
        "upload: {} {}",
        stdout(&up),
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(words[1], (128u64 << 20).to_string(), "whole upload sent");
    assert_eq!(
        words[2], words[0],
        "upload across config apply: member hashed what was sent"
    );
    assert!(bed.rouge_alive());
}
