//! S3 delivery through Rouge (issue 16) with real S3 clients nobody here wrote: Debian's
//! python3-boto3, awscli and s3cmd, and boto3 >= 1.36 from PyPI (a venv) for
//! `aws-chunked` uploads, against an S3 server (s3s-fs, `scripts/s3pool.sh`) answering on
//! the four members 198.18.2.11-14:9000 of pool `s3`. Rouge runs
//! `appliance/configs/s3.toml`: virtual server `s3` on 198.18.1.100:443 (client TLS with
//! the `s3.rouge.test` certificates, HTTP profile `s3` with OneConnect and `s3_resume`,
//! policy `s3-routing` sending bucket `replica` by rule). The clients use
//! `https://s3.rouge.test` (and `https://<bucket>.s3.rouge.test`) with the test CA; the
//! names resolve to the VIP in the client namespace (`scripts/testbed.sh`).
//!
//! `s3_clients_through_the_tls_vip` (header_timeout 2 s in its copy of the config):
//! - buckets; a 1 GiB multipart upload by boto3 (every part sent with
//!   `Expect: 100-continue`), downloaded whole and by ranges (`206`, `Content-Range`, the
//!   same bytes as the file's), listed, copied (to bucket `replica`, routed by the
//!   policy's rule), deleted: all checked by SHA-256;
//! - `aws-chunked` uploads (boto3 >= 1.36, single and multipart), read back intact;
//! - virtual-hosted and path-style addressing (the Host names the client used are checked);
//! - s3cmd and awscli put, get and list;
//! - OneConnect: 200 GETs over 4 keep-alive client connections open far fewer member
//!   connections than requests (by Rouge's count and by the SYNs the members saw);
//! - a request with 200 header fields gets `431`, a 10 KiB request line `400` (counted as
//!   `request_line_too_long`), half a request head `408` after the header timeout, each
//!   with the connection closed.
//!
//! `s3_survives_a_member_reset_mid_get_and_a_drain_mid_upload`:
//! - a 1 GiB GET (read at a bounded rate) whose member is reset in the middle (an nft
//!   rule: every segment to it answered with RST) reaches the client intact, and
//!   `http.resumes_succeeded` counts the splice;
//! - `aws s3 cp` of the same 1 GiB to a file with a member reset in the middle: awscli's
//!   GETs carry a signed `Range`, so they are not resumed (none is spliced); the reset
//!   transfers are aborted, awscli fetches them again, the file is intact;
//! - a paced upload whose member is disabled (drain) mid-transfer finishes intact, and
//!   new requests no longer open connections to the drained member.
//!
//! Every load is bounded in count and time; only 198.18.0.0/15 inside the test's own
//! namespaces. Objects are at most 1 GiB.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rouge_tests::s3::*;
use rouge_tests::*;
use serde_json::Value;

const GIB: u64 = 1 << 30;

/// `show virtual s3 --json` (the first and only entry).
fn virtual_s3(bed: &Testbed) -> Value {
    match bed.rouge_json(&["show", "virtual", "s3"]).unwrap() {
        Value::Array(mut a) if !a.is_empty() => a.remove(0),
        v => v,
    }
}

/// A counter under `http` of `show virtual s3 --json`.
fn http(v: &Value, name: &str) -> u64 {
    v["http"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter http.{name} in show virtual s3: {v}"))
}

/// The members of pool `s3` (`show pool s3 --json`), by address (`198.18.2.11:9000`).
fn members(bed: &Testbed) -> BTreeMap<String, Value> {
    let v = bed.rouge_json(&["show", "pool", "s3"]).unwrap();
    v[0]["members"]
        .as_array()
        .unwrap_or_else(|| panic!("show pool s3 lists members: {v}"))
        .iter()
        .map(|m| (m["address"].as_str().unwrap_or("").to_string(), m.clone()))
        .collect()
}

/// A number of a member's entry in `show pool s3 --json`.
fn member_u64(m: &Value, key: &str) -> u64 {
    m[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in a member of show pool: {m}"))
}

/// Waits (bounded) until every member of pool `s3` is up and the VIP answers HTTPS
/// (an anonymous request gets the S3 server's `403`).
fn wait_ready(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let ca = ca_bundle();
    loop {
        let ms = members(bed);
        if ms.values().all(|m| m["monitor"] == "up") {
            let out = bed.exec(
                "client",
                Duration::from_secs(10),
                &[
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-m",
                    "5",
                    "--cacert",
                    &ca,
                    &format!("{ENDPOINT}/"),
                ],
            );
            if stdout(&out) == "403" {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "virtual server s3 not ready: {ms:?}\n{}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (bounded) until every member of pool `s3` is up again (after a revive).
fn wait_members_up(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ms = members(bed);
        if ms.values().all(|m| m["monitor"] == "up") {
            return;
        }
        assert!(Instant::now() < deadline, "members not up again: {ms:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts the bed, the S3 pool and Rouge with `appliance/configs/s3.toml` (with
/// `edits`), and waits until the VIP answers.
fn start(edits: &[(&str, &str)]) -> (Testbed, S3Pool) {
    let mut bed = Testbed::up(false);
    let pool = S3Pool::up(&bed);
    let config = s3_config(&bed, edits);
    bed.start_rouge(&config, &[]);
    wait_ready(&bed);
    (bed, pool)
}

/// The answer of a ranged GET checked: `206`, the right `Content-Range` and length, and
/// the same bytes as the file's.
fn check_range(v: &Value, a: u64, b: u64, total: u64) {
    assert_eq!(v["status"], 206, "range {a}-{b}: {v}");
    assert_eq!(
        v["content_range"],
        format!("bytes {a}-{b}/{total}"),
        "range {a}-{b}: {v}"
    );
    assert_eq!(v["bytes"], b - a + 1, "range {a}-{b}: {v}");
    assert_eq!(v["sha256"], v["local_sha256"], "range {a}-{b}: {v}");
}

/// A whole GET checked against the file's SHA-256.
fn check_whole(v: &Value, len: u64, sha: &str) {
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["bytes"], len, "{v}");
    assert_eq!(v["sha256"], sha, "{v}");
}

/// `tests/tools/http_limits.py` in the client namespace against the TLS VIP.
fn limits_probe(bed: &Testbed, cmd: &str, arg: &str) -> Value {
    let ca = ca_bundle();
    let tool = repo().join("tests/tools/http_limits.py");
    let out = bed.exec(
        "client",
        Duration::from_secs(30),
        &[
            SYSTEM_PYTHON,
            tool.to_str().unwrap(),
            "--cafile",
            &ca,
            cmd,
            arg,
        ],
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "http_limits {cmd} {arg}: {e}: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs a command line (argv after [`client_env`]) in the client namespace; panics with
/// its output unless it succeeds.
fn client_ok(bed: &Testbed, secs: u64, argv: &[&str]) -> String {
    let mut full = client_env();
    full.extend(argv.iter().map(|s| s.to_string()));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let out = bed.exec("client", Duration::from_secs(secs), &full);
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn s3_clients_through_the_tls_vip() {
    let (mut bed, pool) = start(&[("header_timeout", "2")]);
    let py = SYSTEM_PYTHON;
    let s3 = |secs, args: &[&str]| s3client(&bed, py, secs, args);

    // Buckets, in both addressing styles.
    for b in ["rouge-data", "replica"] {
        let v = s3(30, &["mb", b]);
        assert_eq!(v["created"], true, "{v}");
    }
    let v = s3(30, &["--addressing", "virtual", "mb", "vhost-test"]);
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["wire"]["hosts"][0], "vhost-test.s3.rouge.test", "{v}");

    // 1 GiB up in 16 parts of 64 MiB, each with Expect: 100-continue (the 100 comes
    // from the member through Rouge, then the body).
    let big = bed.dir.join("big.bin");
    let big_s = big.to_str().unwrap();
    let hash = random_file(&big, GIB);
    let before = virtual_s3(&bed);
    let v = s3(
        240,
        &["put", big_s, "rouge-data", "big.bin", "--part-mib", "64"],
    );
    assert_eq!(v["multipart"], true, "{v}");
    assert!(v["etag"].as_str().unwrap().ends_with("-16"), "{v}");
    assert!(v["wire"]["expect_100"].as_u64().unwrap() >= 16, "{v}");
    eprintln!("1 GiB multipart upload: {} s", v["seconds"]);

    // Down whole, then by ranges.
    let v = s3(240, &["get", "rouge-data", "big.bin"]);
    check_whole(&v, GIB, &hash);
    eprintln!("1 GiB GET: {} s", v["seconds"]);
    // Both sides' segments are counted as they pass, like their bytes: 2 GiB moved
    // each way is at least a segment per 1,460 bytes.
    let after = virtual_s3(&bed);
    for side in ["client_side", "server_side"] {
        let grew =
            |k: &str| after[side][k].as_u64().unwrap_or(0) - before[side][k].as_u64().unwrap_or(0);
        let segments = grew("packets_in") + grew("packets_out");
        assert!(
            segments >= 2 * GIB / 1460,
            "{side}: {segments} segments for 2 GiB: {}",
            after[side]
        );
    }
    let ranges = [
        (0, 0),
        (1000, 2_000_000),
        (GIB / 2 - 12_345, GIB / 2 + (64 << 20)),
        (GIB - 824, GIB - 1),
    ];
    for (a, b) in ranges {
        let r = format!("{a}-{b}");
        let v = s3(
            60,
            &[
                "get",
                "rouge-data",
                "big.bin",
                "--range",
                &r,
                "--local",
                big_s,
            ],
        );
        check_range(&v, a, b, GIB);
    }

    // Copy into bucket replica (routed by the policy's rule), list, read the copy back.
    let routed_before = http(&virtual_s3(&bed), "policy_routed");
    let v = s3(
        120,
        &["cp", "rouge-data", "big.bin", "replica", "big-copy.bin"],
    );
    assert!(v["etag"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    let v = s3(30, &["ls", "replica"]);
    assert_eq!(v["keys"]["big-copy.bin"], GIB, "{v}");
    for (a, b) in [(0, (8 << 20) - 1), (GIB - (8 << 20), GIB - 1)] {
        let r = format!("{a}-{b}");
        let v = s3(
            60,
            &[
                "get",
                "replica",
                "big-copy.bin",
                "--range",
                &r,
                "--local",
                big_s,
            ],
        );
        check_range(&v, a, b, GIB);
    }
    let v = s3(
        60,
        &[
            "--addressing",
            "virtual",
            "get",
            "replica",
            "big-copy.bin",
            "--range",
            "5-100004",
            "--local",
            big_s,
        ],
    );
    check_range(&v, 5, 100_004, GIB);
    assert_eq!(v["wire"]["hosts"][0], "replica.s3.rouge.test", "{v}");
    let routed = http(&virtual_s3(&bed), "policy_routed") - routed_before;
    // cp, ls, two ranged GETs path style, one virtual-hosted: 5 requests for `replica`.
    assert!(routed >= 5, "policy_routed rose by {routed}, want >= 5");

    // Delete: gone from the listing.
    let v = s3(60, &["rm", "replica", "big-copy.bin"]);
    assert_eq!(v["deleted"][0], "big-copy.bin", "{v}");
    let v = s3(30, &["ls", "replica"]);
    assert_eq!(v["keys"], serde_json::json!({}), "{v}");
    let v = s3(60, &["rm", "rouge-data", "big.bin"]);
    assert_eq!(v["deleted"][0], "big.bin", "{v}");
    std::fs::remove_file(&big).unwrap();

    // aws-chunked bodies (boto3 >= 1.36 streams its default CRC checksums as a trailer).
    let venv = venv_python();
    let mid = bed.dir.join("mid.bin");
    let mid_s = mid.to_str().unwrap();
    let mid_hash = random_file(&mid, 24 << 20);
    let v = s3client(
        &bed,
        &venv,
        60,
        &[
            "put",
            mid_s,
            "rouge-data",
            "chunked.bin",
            "--part-mib",
            "64",
        ],
    );
    assert_eq!(v["multipart"], false, "{v}");
    assert!(v["wire"]["aws_chunked"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["wire"]["payload_modes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap_or("").starts_with("STREAMING-")),
        "{v}"
    );
    let v = s3client(
        &bed,
        &venv,
        60,
        &[
            "put",
            mid_s,
            "rouge-data",
            "chunked-mp.bin",
            "--part-mib",
            "8",
        ],
    );
    assert_eq!(v["multipart"], true, "{v}");
    assert!(v["wire"]["aws_chunked"].as_u64().unwrap() >= 3, "{v}");
    for key in ["chunked.bin", "chunked-mp.bin"] {
        let v = s3(60, &["get", "rouge-data", key]);
        check_whole(&v, 24 << 20, &mid_hash);
    }

    // Virtual-hosted and path style on one bucket: what one wrote the other reads.
    let v = s3(
        60,
        &[
            "--addressing",
            "virtual",
            "put",
            mid_s,
            "vhost-test",
            "v.bin",
        ],
    );
    assert_eq!(
        v["wire"]["hosts"],
        serde_json::json!(["vhost-test.s3.rouge.test"]),
        "{v}"
    );
    let v = s3(60, &["--addressing", "path", "get", "vhost-test", "v.bin"]);
    check_whole(&v, 24 << 20, &mid_hash);
    assert_eq!(
        v["wire"]["hosts"],
        serde_json::json!(["s3.rouge.test"]),
        "{v}"
    );
    let v = s3(60, &["--addressing", "virtual", "ls", "vhost-test"]);
    assert_eq!(v["keys"]["v.bin"], 24 << 20, "{v}");

    // s3cmd (virtual-hosted, multipart in 5 MiB parts) and awscli (path style).
    let cfg = bed.dir.join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n\
             host_base = s3.rouge.test\nhost_bucket = %(bucket)s.s3.rouge.test\n\
             use_https = True\nca_certs_file = {}\ncheck_ssl_certificate = True\n\
             check_ssl_hostname = True\nsignature_v2 = False\nbucket_location = us-east-1\n",
            ca_bundle()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let back = bed.dir.join("back.bin");
    let back_s = back.to_str().unwrap();
    client_ok(
        &bed,
        60,
        &[
            "s3cmd",
            "-c",
            cfg_s,
            "--multipart-chunk-size-mb=5",
            "put",
            mid_s,
            "s3://rouge-data/s3cmd.bin",
        ],
    );
    client_ok(
        &bed,
        60,
        &[
            "s3cmd",
            "-c",
            cfg_s,
            "--force",
            "get",
            "s3://rouge-data/s3cmd.bin",
            back_s,
        ],
    );
    assert_eq!(sha256_file(&back), mid_hash, "s3cmd round trip");
    let listing = client_ok(&bed, 30, &["s3cmd", "-c", cfg_s, "ls", "s3://rouge-data/"]);
    assert!(listing.contains("s3://rouge-data/s3cmd.bin"), "{listing}");
    let ca = ca_bundle();
    let aws = [
        "/usr/bin/aws",
        "--endpoint-url",
        ENDPOINT,
        "--ca-bundle",
        ca.as_str(),
    ];
    let mut argv = aws.to_vec();
    argv.extend([
        "s3",
        "cp",
        "--no-progress",
        mid_s,
        "s3://rouge-data/aws.bin",
    ]);
    client_ok(&bed, 60, &argv);
    std::fs::remove_file(&back).unwrap();
    let mut argv = aws.to_vec();
    argv.extend([
        "s3",
        "cp",
        "--no-progress",
        "s3://rouge-data/aws.bin",
        back_s,
    ]);
    client_ok(&bed, 60, &argv);
    assert_eq!(sha256_file(&back), mid_hash, "awscli round trip");
    let mut argv = aws.to_vec();
    argv.extend(["s3", "ls", "s3://rouge-data/"]);
    let listing = client_ok(&bed, 30, &argv);
    assert!(listing.contains("aws.bin"), "{listing}");

    // OneConnect: 200 GETs over 4 keep-alive client connections.
    let small = bed.dir.join("1k.bin");
    random_file(&small, 1024);
    s3(
        30,
        &["put", small.to_str().unwrap(), "rouge-data", "small/1k"],
    );
    let v0 = virtual_s3(&bed);
    let m0 = pool.connections_opened();
    let v = s3(
        120,
        &[
            "many-gets",
            "rouge-data",
            "small/1k",
            "200",
            "--threads",
            "4",
        ],
    );
    assert_eq!(
        (v["ok"].as_u64(), v["failed"].as_u64()),
        (Some(200), Some(0)),
        "{v}"
    );
    let v1 = virtual_s3(&bed);
    let m1 = pool.connections_opened();
    let requests = http(&v1, "requests") - http(&v0, "requests");
    let opened = http(&v1, "server_connections_opened") - http(&v0, "server_connections_opened");
    let reused = http(&v1, "server_connections_reused") - http(&v0, "server_connections_reused");
    let clients = v1["connections"].as_u64().unwrap() - v0["connections"].as_u64().unwrap();
    eprintln!(
        "OneConnect: {requests} requests, {clients} client connections, {opened} member \
         connections opened ({} SYNs at the members, health probes included), {reused} reused",
        m1 - m0
    );
    assert!(requests >= 200, "requests counted: {requests}");
    assert!(clients >= 2, "several client connections: {clients}");
    assert!(
        opened <= 40,
        "200 requests opened {opened} member connections"
    );
    assert!(
        m1 - m0 <= 40,
        "200 requests: members' connections rose by {}",
        m1 - m0
    );
    assert!(
        reused >= 150,
        "200 requests reused member connections {reused} times"
    );

    // Header limits and the header timeout (2 s in this copy of the config).
    let v = limits_probe(&bed, "headers", "200");
    assert_eq!(v["status"], 431, "200 header fields: {v}");
    assert_eq!(v["closed"], true, "closed after 431: {v}");
    // A request line over max_request_line (8 KiB) is refused by Rouge itself with 400
    // (the 431/400 contract), counted as such, and never reaches a member.
    let refused0 = virtual_s3(&bed)["http"]["refused"]["request_line_too_long"].as_u64();
    let v = limits_probe(&bed, "line", "10240");
    assert_eq!(v["status"], 400, "10 KiB request line: {v}");
    assert_eq!(v["closed"], true, "closed after 400: {v}");
    let refused1 = virtual_s3(&bed)["http"]["refused"]["request_line_too_long"].as_u64();
    assert_eq!(
        refused1.zip(refused0).map(|(a, b)| a - b),
        Some(1),
        "http.refused.request_line_too_long counts the long request line"
    );
    let v = limits_probe(&bed, "slow", "12");
    assert_eq!(v["status"], 408, "half a request head: {v}");
    assert_eq!(v["closed"], true, "closed after 408: {v}");
    let secs = v["seconds"].as_f64().unwrap();
    assert!(
        (1.5..10.0).contains(&secs),
        "408 after {secs} s (header_timeout 2): {v}"
    );

    let end = virtual_s3(&bed);
    assert!(http(&end, "requests") > http(&before, "requests"), "{end}");
    assert!(bed.rouge_alive(), "rouge exited: {}", bed.rouge_log());
}

/// The member (`ADDR:9000`) serving the flow of the virtual server that moved the most
/// bytes (`show connections --virtual s3`), when at least `min_bytes` moved; else, with
/// `fallback`, the enabled member with the most current connections (`show pool s3`;
/// idle OneConnect connections count there too), when any has one.
fn busy_member(bed: &Testbed, min_bytes: u64, fallback: bool) -> Option<String> {
    if let Ok(Value::Array(flows)) = bed.rouge_json(&["show", "connections", "--virtual", "s3"]) {
        let best = flows
            .iter()
            .filter(|f| f["server"].as_str().is_some_and(|s| s.ends_with(":9000")))
            .map(|f| {
                let bytes =
                    f["bytes_in"].as_u64().unwrap_or(0) + f["bytes_out"].as_u64().unwrap_or(0);
                (bytes, f["server"].as_str().unwrap_or("").to_string())
            })
            .max();
        if let Some((bytes, server)) = best {
            if bytes >= min_bytes {
                return Some(server);
            }
        }
    }
    if !fallback {
        return None;
    }
    members(bed)
        .into_iter()
        .filter(|(_, m)| m["admin"] == "enabled" && member_u64(m, "current_connections") > 0)
        .max_by_key(|(_, m)| member_u64(m, "current_connections"))
        .map(|(a, _)| a)
}

#[test]
fn s3_survives_a_member_reset_mid_get_and_a_drain_mid_upload() {
    let (mut bed, pool) = start(&[]);
    let py = SYSTEM_PYTHON;
    let s3 = |secs, args: &[&str]| s3client(&bed, py, secs, args);
    s3(30, &["mb", "rouge-data"]);
    let big = bed.dir.join("big.bin");
    let big_s = big.to_str().unwrap();
    let hash = random_file(&big, GIB);
    s3(
        240,
        &["put", big_s, "rouge-data", "big.bin", "--part-mib", "128"],
    );

    // A 1 GiB GET read at 64 MiB/s (about 16 s); its member is reset in the middle.
    let before = virtual_s3(&bed);
    let get = spawn_in(
        &bed.ns("client"),
        150,
        s3client_argv(
            py,
            &[
                "--deadline",
                "140",
                "get",
                "rouge-data",
                "big.bin",
                "--rate-mib",
                "64",
            ],
        ),
    );
    std::thread::sleep(Duration::from_secs(3));
    // Kill the member carrying the GET; if that was not the one (an idle OneConnect
    // connection can look busy), the next busiest, while one member stays alive.
    let mut killed: Vec<String> = Vec::new();
    let started = Instant::now();
    while killed.len() < 3 && started.elapsed() < Duration::from_secs(12) {
        if http(&virtual_s3(&bed), "resumes_attempted") > http(&before, "resumes_attempted") {
            break;
        }
        // The GET's own flow first; the pool's connection counts after 5 s without it.
        let fallback = started.elapsed() > Duration::from_secs(5);
        match busy_member(&bed, 16 << 20, fallback) {
            Some(m) if !killed.contains(&m) => {
                pool.kill_member(m.trim_end_matches(":9000"));
                eprintln!("reset member {m} during the GET");
                killed.push(m);
                std::thread::sleep(Duration::from_secs(2));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let out = get.join().unwrap();
    let v = json_of("the GET across a member reset", &out);
    check_whole(&v, GIB, &hash);
    let after = virtual_s3(&bed);
    eprintln!(
        "GET across the reset of {killed:?}: {} s; resumes attempted {}, succeeded {}, refused {}",
        v["seconds"],
        http(&after, "resumes_attempted") - http(&before, "resumes_attempted"),
        http(&after, "resumes_succeeded") - http(&before, "resumes_succeeded"),
        http(&after, "resumes_refused") - http(&before, "resumes_refused"),
    );
    assert!(!killed.is_empty(), "no member was seen serving the GET");
    assert!(
        http(&after, "resumes_succeeded") > http(&before, "resumes_succeeded"),
        "a resume is counted: {after}"
    );
    for m in &killed {
        pool.revive_member(m.trim_end_matches(":9000"));
    }
    wait_members_up(&bed);

    // awscli downloads in 8 MiB ranged GETs whose Range is signed: those cannot be
    // resumed, so the reset member's transfers are aborted (never spliced) and awscli
    // fetches those ranges again: the file is intact.
    let down = bed.dir.join("down.bin");
    let ca = ca_bundle();
    let mut argv = client_env();
    for a in [
        "/usr/bin/aws",
        "--endpoint-url",
        ENDPOINT,
        "--ca-bundle",
        &ca,
        "s3",
        "cp",
        "--no-progress",
        "s3://rouge-data/big.bin",
        down.to_str().unwrap(),
    ] {
        argv.push(a.to_string());
    }
    let before = virtual_s3(&bed);
    let cp = spawn_in(&bed.ns("client"), 150, argv);
    let started = Instant::now();
    let victim = loop {
        if let Some(m) = busy_member(&bed, 4 << 20, started.elapsed() > Duration::from_secs(4)) {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "awscli's download not seen"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    pool.kill_member(victim.trim_end_matches(":9000"));
    eprintln!("reset member {victim} during awscli's download");
    let out = cp.join().unwrap();
    pool.revive_member(victim.trim_end_matches(":9000"));
    assert!(
        out.status.success(),
        "aws s3 cp across a member reset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256_file(&down), hash, "aws s3 cp across a member reset");
    let after = virtual_s3(&bed);
    assert_eq!(
        http(&after, "resumes_succeeded"),
        http(&before, "resumes_succeeded"),
        "a GET with a signed Range was spliced: {after}"
    );
    std::fs::remove_file(&down).unwrap();
    wait_members_up(&bed);
    std::fs::remove_file(&big).unwrap();

    // A 128 MiB upload paced at 32 MiB/s (one PutObject); its member is drained.
    let up = bed.dir.join("up.bin");
    let up_s = up.to_str().unwrap().to_string();
    let up_hash = random_file(&up, 128 << 20);
    let put = spawn_in(
        &bed.ns("client"),
        120,
        s3client_argv(
            py,
            &[
                "--deadline",
                "110",
                "put",
                &up_s,
                "rouge-data",
                "up.bin",
                "--rate-mib",
                "32",
            ],
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let drained = loop {
        if let Some(m) = busy_member(&bed, 8 << 20, false) {
            break m;
        }
        assert!(Instant::now() < deadline, "the upload's member not found");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = bed.rouge_cli(&["pool", "member", "disable", "s3", &drained]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&bed)[&drained]["admin"], "disabled");
    let drained_total = member_u64(&members(&bed)[&drained], "total_connections");
    eprintln!("drained {drained} during the upload");
    let v = json_of("the upload across a drain", &put.join().unwrap());
    assert_eq!(v["bytes"], 128u64 << 20, "{v}");
    let v = s3(60, &["get", "rouge-data", "up.bin"]);
    check_whole(&v, 128 << 20, &up_hash);
    // New requests avoid the drained member.
    let small = bed.dir.join("1k.bin");
    random_file(&small, 1024);
    s3(
        30,
        &["put", small.to_str().unwrap(), "rouge-data", "small/1k"],
    );
    let v = s3(
        60,
        &[
            "many-gets",
            "rouge-data",
            "small/1k",
            "40",
            "--threads",
            "4",
        ],
    );
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        member_u64(&members(&bed)[&drained], "total_connections"),
        drained_total,
        "the drained member got new connections"
    );
    let out = bed.rouge_cli(&["pool", "member", "enable", "s3", &drained]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bed.rouge_alive(), "rouge exited: {}", bed.rouge_log());
}
