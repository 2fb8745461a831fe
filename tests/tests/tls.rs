//! TLS offload on the test bed (`client_tls` and `server_tls` of standard virtual servers),
//! against real clients and servers nobody here wrote: `openssl s_client`, curl, wrk,
//! testssl.sh, and nginx members speaking https.
//!
//! One test bed and one appliance for every check (the file's run time stays small). The
//! configuration is `appliance/configs/testbed.toml` (its `web-tls`, 198.18.1.100:443 with
//! the client TLS profile that serves `s3.rouge.test` with an ECDSA P-256 and an RSA 2048
//! certificate, ALPN `http/1.1`, in front of pool `web`) plus, for re-encryption, two
//! copies of web-tls's block: `web-reencrypt` on :8443 in front of pool `web-https`
//! (198.18.2.11-13:443, nginx with `member.crt` from the test CA) and `web-badmember` on
//! :9443 in front of pool `web-other` (198.18.2.14:443, nginx with `other.crt` from
//! another CA), both with the server TLS profile `to-members` (`ca = ca.crt`, `verify =
//! true`).
//!
//! - curl with `--cacert ca.crt --resolve s3.rouge.test:443:198.18.1.100` is answered
//!   through Rouge by every member (which see the SNAT address), over HTTP/1.1;
//! - `openssl s_client`: TLS 1.3 and TLS 1.2 (AEAD suites only), the ECDSA or the RSA
//!   certificate by `-sigalgs`, the default certificates for no SNI or an unknown name, ALPN `http/1.1` (and a refused `h2`-only offer),
//!   `-sess_out`/`-sess_in` reports `Reused` for TLS 1.3 and TLS 1.2, TLS 1.1 refused;
//! - wrk over https: no error (1 MiB answers, whole and prompt, on new connections and
//!   on one keep-alive connection: a second test);
//! - testssl.sh (fast mode, JSON) reports no weak protocol, suite or known vulnerability;
//! - re-encryption: answered by the https members, which log TLS from 198.18.2.1; the
//!   member from the other CA is refused (counted as a peer-certificate failure) while the
//!   client gets a prompt, clean error and no data;
//! - `rouge show tls --json` counts what the test did (full and resumed handshakes, the
//!   refused ALPN offer, the refused member) and the appliance stays up.
//!
//! Every load is bounded in count and time; only 198.18.0.0/15 inside the test's own
//! namespaces.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const VIP: &str = "198.18.1.100";
const SNI: &str = "s3.rouge.test";
const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
/// The member whose https port presents `other.crt` (another CA).
const OTHER_MEMBER: &str = "198.18.2.14";
const SNAT: &str = "198.18.2.1";

/// `appliance/configs/tls/NAME`.
fn tls_file(name: &str) -> String {
    repo()
        .join("appliance/configs/tls")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// `text` with every relative path of a `cert`, `key`, `ca` or `client_ca` key made
/// absolute against `appliance/configs/` (the copy of the configuration lives elsewhere).
fn absolute_paths(text: &str) -> String {
    let base = repo().join("appliance/configs");
    let mut out = String::with_capacity(text.len() + 1024);
    let mut rest = text;
    while let Some(i) = rest.find("= \"") {
        let key_start = rest[..i].trim_end();
        let key = key_start
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find('"').unwrap_or(tail.len());
        let value = &tail[..end];
        if ["cert", "key", "ca", "client_ca"].contains(&key) && !value.starts_with('/') {
            out.push_str(base.join(value).to_str().unwrap());
        } else {
            out.push_str(value);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The lines of the `[[virtual]]` table named `name` in `text`.
fn virtual_block(text: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.replace(' ', "") == format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("testbed.toml has the virtual server {name} (issue 15)"));
    let start = (0..at)
        .rev()
        .find(|&i| lines[i].trim() == "[[virtual]]")
        .expect("a [[virtual]] table");
    let end = (at + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len());
    lines[start..end]
        .iter()
        .map(|l| l.to_string())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// web-tls's block with another name, destination and pool, and `server_tls`.
fn reencrypt_block(web_tls: &[String], name: &str, port: u16, pool: &str) -> String {
    let mut out: Vec<String> = web_tls
        .iter()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            key != "server_tls"
        })
        .map(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            match key {
                "name" => format!("name = \"{name}\""),
                "destination" => format!("destination = \"{VIP}:{port}\""),
                "pool" => format!("pool = \"{pool}\""),
                _ => l.clone(),
            }
        })
        .collect();
    out.push("server_tls = \"to-members\"".into());
    out.join("\n")
}

/// testbed.toml (paths made absolute) plus the re-encryption pools, profile and virtual
/// servers described in the module comment.
fn tls_config(bed: &Testbed) -> PathBuf {
    let text = std::fs::read_to_string(testbed_config()).unwrap();
    let web_tls = virtual_block(&text, "web-tls");
    assert!(
        web_tls
            .iter()
            .any(|l| l.replace(' ', "") == "type=\"standard\""),
        "web-tls is a standard virtual server: {web_tls:?}"
    );
    assert!(
        web_tls
            .iter()
            .any(|l| l.trim_start().starts_with("client_tls")),
        "web-tls has a client_tls profile: {web_tls:?}"
    );
    let https: Vec<String> = MEMBERS[..3]
        .iter()
        .map(|m| format!("{{ address = \"{m}:443\" }}"))
        .collect();
    let extra = format!(
        "\n# tests/tests/tls.rs: re-encryption to https members\n\
         [[tls_profile]]\nname = \"to-members\"\nca = \"{ca}\"\nverify = true\n\n\
         [[pool]]\nname = \"web-https\"\nmembers = [{https}]\n\n\
         [[pool]]\nname = \"web-other\"\nmembers = [{{ address = \"{OTHER_MEMBER}:443\" }}]\n\n\
         {reencrypt}\n\n{bad}\n",
        ca = tls_file("ca.crt"),
        https = https.join(", "),
        reencrypt = reencrypt_block(&web_tls, "web-reencrypt", 8443, "web-https"),
        bad = reencrypt_block(&web_tls, "web-badmember", 9443, "web-other"),
    );
    let path = bed.dir.join("tls.toml");
    std::fs::write(&path, absolute_paths(&format!("{text}\n{extra}"))).unwrap();
    path
}

/// One nginx per member (plain :80 for pool web, https :443 for the re-encryption pools:
/// `member.crt`, or `other.crt` on [`OTHER_MEMBER`]), serving `www/` and `/id` (the
/// member's address, the client address it sees and the scheme). Each logs `server client
/// status scheme tls-version uri` per request to `access-<member>.log`.
fn serve_members(bed: &mut Testbed) {
    let www = bed.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("1k"), vec![b'k'; 1024]).unwrap();
    // 1 MiB of pseudo-random bytes (no TLS record compresses or repeats).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(www.join("1m"), big).unwrap();
    std::fs::write(www.join("index.html"), "up\n").unwrap();
    for m in MEMBERS {
        let dir = bed.dir.join(format!("nginx-{m}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = if m == OTHER_MEMBER {
            (tls_file("other.crt"), tls_file("other.key"))
        } else {
            (tls_file("member.crt"), tls_file("member.key"))
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  log_format who '$server_addr $remote_addr $status $scheme $ssl_protocol $uri';\n\
                 access_log {log} who;\n\
                 server {{\n    listen {m}:80;\n    listen {m}:443 ssl;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n    root {www};\n\
                 location = /id {{ default_type text/plain; return 200 \"$server_addr $remote_addr $scheme\\n\"; }}\n  }}\n}}\n",
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
    }
}

/// Text of a command's standard output and error.
fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// curl through `port` of the VIP as `https://s3.rouge.test:PORT/PATH`, trusting only the
/// test CA.
fn curl(bed: &Testbed, port: u16, path: &str, extra: &[&str]) -> Output {
    let resolve = format!("{SNI}:{port}:{VIP}");
    let url = format!("https://{SNI}:{port}{path}");
    let ca = tls_file("ca.crt");
    let mut argv = vec![
        "curl",
        "-sS",
        "-m",
        "8",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
    ];
    argv.extend_from_slice(extra);
    argv.push(&url);
    bed.exec("client", Duration::from_secs(12), &argv)
}

/// `openssl s_client` to the VIP's port 443 with `args`, sending a `GET path` and reading
/// until the server closes; returns everything it printed (handshake summary, session,
/// the answer) and whether it exited 0.
fn s_client(bed: &Testbed, args: &str, path: &str) -> (bool, String) {
    let cmd = format!(
        "printf 'GET {path} HTTP/1.1\\r\\nHost: {SNI}\\r\\nConnection: close\\r\\n\\r\\n' | \
         openssl s_client -connect {VIP}:443 -CAfile {ca} -ign_eof {args}",
        ca = tls_file("ca.crt"),
    );
    let out = bed.exec("client", Duration::from_secs(15), &["sh", "-c", &cmd]);
    (out.status.success(), all_output(&out))
}

/// The value after `key` on the first line of `text` that starts with it (trimmed).
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or("")
}

/// `rouge show tls --json`.
fn show_tls(bed: &Testbed) -> Value {
    bed.rouge_json(&["show", "tls"])
        .unwrap_or_else(|e| panic!("rouge show tls --json: {e}"))
}

/// The TLS figures of virtual server `vs`'s `side` (`client` or `server`) in `show tls`
/// (`[{"name": vs, "client_side": {...}, "server_side": {...}}, ...]`).
fn tls_side(doc: &Value, vs: &str, side: &str) -> Value {
    fn named<'a>(x: &'a Value, vs: &str) -> Option<&'a Value> {
        match x {
            Value::Object(m) if m.get("name").and_then(Value::as_str) == Some(vs) => Some(x),
            Value::Object(m) => m.get(vs).or_else(|| m.values().find_map(|v| named(v, vs))),
            Value::Array(a) => a.iter().find_map(|v| named(v, vs)),
            _ => None,
        }
    }
    let entry = named(doc, vs).unwrap_or_else(|| panic!("show tls has no {vs}: {doc}"));
    let s = &entry[format!("{side}_side")];
    assert!(
        s.is_object(),
        "show tls: {vs} has no {side}_side figures: {entry}"
    );
    s.clone()
}

/// Handshakes of `kind` (`full` or `resumed`) of a side, all versions summed
/// (`handshakes.KIND`, or `KIND` at the side's top).
fn handshakes(side: &Value, kind: &str) -> u64 {
    let h = &side["handshakes"][kind];
    total(if h.is_null() { &side[kind] } else { h })
}

/// A count that is a number, or an array or object of numbers (by version), summed.
fn total(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::Array(a) => a.iter().map(total).sum(),
        Value::Object(m) => m.values().map(total).sum(),
        _ => 0,
    }
}

/// Failures of `reason` (e.g. `peer-certificate`) in a side's counters: `failures` as an
/// object by reason name (with `-` or `_`).
fn failures(side: &Value, reason: &str) -> u64 {
    let f = &side["failures"];
    let alt = reason.replace('-', "_");
    match f {
        Value::Object(m) => m
            .get(reason)
            .or_else(|| m.get(&alt))
            .map(total)
            .unwrap_or(0),
        _ => panic!("show tls: failures by reason name wanted, got {f}"),
    }
}

/// Waits (bounded) until every member of pool `web` and of `web-https` is up and a request
/// through web-tls is answered.
fn wait_ready(bed: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = |pool: &str| {
            bed.rouge_json(&["show", "pool", pool])
                .ok()
                .and_then(|v| v[0]["members"].as_array().cloned())
                .map(|ms| {
                    ms.iter()
                        .all(|m| m["monitor"] == "up" || m["monitor"] == "unchecked")
                })
                == Some(true)
        };
        if up("web") && up("web-https") && curl(bed, 443, "/id", &[]).status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "web-tls not ready: {}",
            bed.rouge_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tls_offload_with_real_clients_testssl_and_reencryption() {
    let mut bed = Testbed::up(false);
    let config = tls_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_members(&mut bed);
    wait_ready(&bed);
    let before = show_tls(&bed);
    let mut full_expected = 0u64;

    // curl: 8 requests, each a new connection with a full handshake verified against the
    // test CA; every member answers, sees the SNAT address, over HTTP/1.1.
    let mut seen = BTreeMap::new();
    for _ in 0..8 {
        let out = curl(&bed, 443, "/id", &["-w", " %{http_version}"]);
        assert!(
            out.status.success(),
            "curl via web-tls: {}",
            all_output(&out)
        );
        let text = stdout(&out);
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f.len(), 4, "answer: {text}");
        assert_eq!((f[1], f[2], f[3]), (SNAT, "http", "1.1"), "answer: {text}");
        *seen.entry(f[0].to_string()).or_insert(0) += 1;
    }
    full_expected += 8;
    assert_eq!(seen.len(), 4, "every member answered: {seen:?}");
    // An unknown CA: curl refuses Rouge's certificate when it trusts only the other CA.
    let out = curl(&bed, 443, "/id", &["--cacert", &tls_file("other-ca.crt")]);
    assert!(
        !out.status.success(),
        "curl trusted a certificate of another CA"
    );

    // openssl s_client: TLS 1.3 and 1.2, the certificate chosen by the signature schemes
    // offered, ALPN, AEAD suites only.
    let cases = [
        ("-tls1_3", "ECDSA+SHA256", "TLSv1.3", "ECDSA", "256"),
        (
            "-tls1_3",
            "rsa_pss_rsae_sha256:RSA+SHA256",
            "TLSv1.3",
            "RSA-PSS",
            "2048",
        ),
        ("-tls1_2", "ECDSA+SHA256", "TLSv1.2", "ECDSA", "256"),
        (
            "-tls1_2",
            "RSA+SHA256:rsa_pss_rsae_sha256",
            "TLSv1.2",
            "RSA",
            "2048",
        ),
    ];
    for (version, sigalgs, want_version, want_sig, bits) in cases {
        let (ok, text) = s_client(
            &bed,
            &format!("-servername {SNI} {version} -sigalgs {sigalgs} -alpn http/1.1"),
            "/1k",
        );
        let what = format!("s_client {version} -sigalgs {sigalgs}");
        assert!(ok, "{what}: {text}");
        assert!(
            text.contains(&format!("New, {want_version}, Cipher is")),
            "{what}: a full {want_version} handshake: {text}"
        );
        assert_eq!(field(&text, "Verify return code:"), "0 (ok)", "{what}");
        let sig = field(&text, "Peer signature type:");
        assert!(
            sig == want_sig || (want_sig == "RSA" && sig.starts_with("RSA")),
            "{what}: signature {sig}"
        );
        assert_eq!(
            field(&text, "Server public key is"),
            format!("{bits} bit"),
            "{what}"
        );
        assert_eq!(field(&text, "ALPN protocol:"), "http/1.1", "{what}");
        let cipher = field(&text, "Cipher    :");
        assert!(
            cipher.contains("GCM") || cipher.contains("CHACHA20"),
            "{what}: an AEAD suite, not {cipher}"
        );
        assert!(text.contains("HTTP/1.1 200"), "{what}: the member's answer");
        full_expected += 1;
    }
    // A name no certificate covers (sni_required is off): the default certificates.
    let (ok, text) = s_client(&bed, "-servername unknown.rouge.test -tls1_3", "/1k");
    assert!(
        ok && text.contains("CN = s3.rouge.test") && text.contains("HTTP/1.1 200"),
        "unknown SNI: {text}"
    );
    full_expected += 1;
    // No SNI: the default certificates still serve; TLS 1.1 is refused.
    let (ok, text) = s_client(&bed, "-noservername -tls1_3", "/1k");
    assert!(ok && text.contains("HTTP/1.1 200"), "no SNI: {text}");
    full_expected += 1;
    // (The client's own security level would refuse TLS 1.1 before sending anything.)
    let (_, text) = s_client(
        &bed,
        &format!("-servername {SNI} -tls1_1 -cipher DEFAULT:@SECLEVEL=0"),
        "/1k",
    );
    // rustls answers a client without TLS 1.2 or 1.3 with handshake_failure (OpenSSL
    // servers with protocol_version): either is a refusal with an alert.
    assert!(
        !text.contains("HTTP/1.1 200")
            && text.contains("New, (NONE)")
            && (text.contains("alert handshake failure")
                || text.contains("alert protocol version")),
        "TLS 1.1 was not refused with an alert: {text}"
    );
    // ALPN: an h2-only offer gets no_application_protocol (counted below).
    let (_, text) = s_client(&bed, &format!("-servername {SNI} -tls1_3 -alpn h2"), "/1k");
    assert!(
        !text.contains("HTTP/1.1 200") && text.contains("no application protocol"),
        "an h2-only ALPN offer was not refused: {text}"
    );

    // Resumption: -sess_out then -sess_in reports Reused, for TLS 1.3 and TLS 1.2.
    for version in ["-tls1_3", "-tls1_2"] {
        let sess = bed.dir.join(format!("session{version}.pem"));
        let (ok, text) = s_client(
            &bed,
            &format!("-servername {SNI} {version} -sess_out {}", sess.display()),
            "/1k",
        );
        assert!(
            ok && text.contains("HTTP/1.1 200"),
            "{version} -sess_out: {text}"
        );
        assert!(sess.exists(), "{version}: s_client wrote no session");
        let (ok, text) = s_client(
            &bed,
            &format!("-servername {SNI} {version} -sess_in {}", sess.display()),
            "/1k",
        );
        assert!(ok, "{version} -sess_in: {text}");
        assert!(
            text.contains("Reused, TLSv1."),
            "{version}: the session was not resumed: {text}"
        );
        assert!(text.contains("HTTP/1.1 200"), "{version} resumed: {text}");
        full_expected += 1;
    }

    // wrk over https: 8 keep-alive connections for 2 s, no error.
    let out = bed.exec(
        "client",
        Duration::from_secs(20),
        &[
            "wrk",
            "-t1",
            "-c8",
            "-d2s",
            "--timeout",
            "5s",
            &format!("https://{VIP}/1k"),
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "wrk: {}", all_output(&out));
    assert!(!text.contains("Socket errors"), "wrk saw errors: {text}");
    assert!(!text.contains("Non-2xx"), "wrk saw failed answers: {text}");
    let requests: u64 = text
        .split(" requests in")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("wrk's request count: {text}"));
    assert!(requests >= 100, "wrk over https: {text}");

    // testssl.sh, fast mode: no weak protocol, suite or known vulnerability.
    testssl(&bed);

    // Re-encryption: answered by the https members (verified against the test CA), which
    // see TLS from the SNAT address.
    let server_before = tls_side(&show_tls(&bed), "web-reencrypt", "server");
    let mut https_seen = BTreeMap::new();
    for _ in 0..6 {
        let out = curl(&bed, 8443, "/id", &[]);
        assert!(
            out.status.success(),
            "curl via web-reencrypt: {}",
            all_output(&out)
        );
        let text = stdout(&out);
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f.get(1..3), Some(&[SNAT, "https"][..]), "answer: {text}");
        *https_seen.entry(f[0].to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        https_seen.len(),
        3,
        "every https member answered: {https_seen:?}"
    );
    for m in &MEMBERS[..3] {
        let log = std::fs::read_to_string(bed.dir.join(format!("access-{m}.log"))).unwrap();
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("{m} {SNAT} 200 https TLSv1."))),
            "member {m} logged no TLS request from {SNAT}: {log}"
        );
    }
    let server_after = tls_side(&show_tls(&bed), "web-reencrypt", "server");
    let grew = handshakes(&server_after, "full") + handshakes(&server_after, "resumed")
        - handshakes(&server_before, "full")
        - handshakes(&server_before, "resumed");
    assert!(
        grew >= 6,
        "server-side handshakes counted: {grew} for 6 requests"
    );

    // The member from another CA: refused and counted; the client gets a prompt, clean
    // error (no answer, no hang).
    let bad_before = tls_side(&show_tls(&bed), "web-badmember", "server");
    let t = Instant::now();
    let out = curl(&bed, 9443, "/id", &[]);
    let took = t.elapsed();
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "the member with the other CA's certificate answered: {}",
        all_output(&out)
    );
    assert!(
        took < Duration::from_secs(6),
        "the client waited {took:?} for its error: {}",
        all_output(&out)
    );
    let log = std::fs::read_to_string(bed.dir.join(format!("access-{OTHER_MEMBER}.log")))
        .unwrap_or_default();
    // (Its plain port 80 serves pool web; nothing may reach its https port.)
    assert!(
        !log.lines().any(|l| l.contains(" https ")),
        "the refused member served a request over https: {log}"
    );
    let bad_after = tls_side(&show_tls(&bed), "web-badmember", "server");
    assert!(
        failures(&bad_after, "peer-certificate") > failures(&bad_before, "peer-certificate"),
        "the refused member is not counted: {bad_after}"
    );

    // show tls counted what the test did on web-tls's client side.
    let after = show_tls(&bed);
    let (c0, c1) = (
        tls_side(&before, "web-tls", "client"),
        tls_side(&after, "web-tls", "client"),
    );
    let full = handshakes(&c1, "full") - handshakes(&c0, "full");
    let resumed = handshakes(&c1, "resumed") - handshakes(&c0, "resumed");
    assert!(
        full >= full_expected,
        "full handshakes counted: {full}, made at least {full_expected}: {c1}"
    );
    assert!(resumed >= 2, "resumed handshakes counted: {resumed}: {c1}");
    assert!(
        failures(&c1, "no-application-protocol") > failures(&c0, "no-application-protocol"),
        "the refused ALPN offer is not counted: {c1}"
    );
    assert!(
        total(&c1["bytes_encrypted"]) > total(&c0["bytes_encrypted"]) + 100 * 1024,
        "bytes encrypted not counted: {c1}"
    );
    assert!(bed.rouge_alive(), "rouge exited: {}", bed.rouge_log());
}

/// 1 MiB answers through web-tls, each whole (hash-checked) and prompt (within 5 s): 8
/// downloads on new connections and 4 on one keep-alive connection. (It caught a
/// stall: records waiting for send-buffer room after the member's FIN were never sent,
/// and the flow stood still until the 10 s handshake timer.)
#[test]
fn tls_relays_1_mib_answers_whole_and_promptly() {
    let mut bed = Testbed::up(false);
    let config = tls_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_members(&mut bed);
    wait_ready(&bed);
    // 1 MiB answers, each whole and prompt: 8 downloads on new connections and 4 on one
    // keep-alive connection, hash-checked, each within 5 s (a stalled answer fails).
    let www1m = bed.dir.join("www/1m");
    let hash_of = |cmd: &str| {
        let out = bed.exec("client", Duration::from_secs(60), &["sh", "-c", cmd]);
        stdout(&out)
    };
    let one = hash_of(&format!("sha256sum < {}", www1m.display()));
    let four = hash_of(&format!(
        "cat {f} {f} {f} {f} | sha256sum",
        f = www1m.display()
    ));
    let get = format!(
        "curl -sS -m 5 --cacert {ca} --resolve {SNI}:443:{VIP}",
        ca = tls_file("ca.crt")
    );
    let url = format!("https://{SNI}/1m");
    let t = Instant::now();
    let each = hash_of(&format!(
        "for i in 1 2 3 4 5 6 7 8; do {get} {url} | sha256sum; done"
    ));
    assert_eq!(
        each.lines().filter(|l| *l == one.trim()).count(),
        8,
        "8 downloads of 1 MiB through web-tls in {:?}: {each}",
        t.elapsed()
    );
    let kept = hash_of(&format!("{get} -m 20 {url} {url} {url} {url} | sha256sum"));
    assert_eq!(kept, four, "4 downloads of 1 MiB on one connection");

    assert!(bed.rouge_alive(), "rouge exited: {}", bed.rouge_log());
}

/// `/etc/netns/<namespace>/resolv.conf` for the client namespace while it lives (`ip netns
/// exec` mounts it over `/etc/resolv.conf`): a resolver on the namespace's own loopback,
/// where nothing listens, so a name lookup fails at once. testssl.sh probes its openssl's
/// features by connecting to the name `invalid.`; with the host's resolver, unreachable
/// from the namespace, each probe waits for a DNS timeout and the scan takes many minutes.
struct NoDns(PathBuf);

impl NoDns {
    fn new(bed: &Testbed) -> NoDns {
        let dir = PathBuf::from("/etc/netns").join(bed.ns("client"));
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .expect("write resolv.conf");
        NoDns(dir)
    }
}

impl Drop for NoDns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// testssl.sh in fast mode against web-tls (protocols, standard cipher categories, server
/// defaults with the certificates, vulnerabilities; the test CA added to its trust
/// stores), its findings as JSON:
///
/// - SSLv2 to TLS 1.1 not offered, TLS 1.2 and 1.3 offered;
/// - no NULL, anonymous, export, low, 3DES/IDEA or "average" (CBC, non-AEAD) suites;
/// - both certificates (ECDSA and RSA) found, each chain trusted;
/// - no vulnerability check with a severity above INFO or a finding saying VULNERABLE;
/// - no other finding of severity HIGH or CRITICAL, except the two that only say the
///   certificates are test certificates (ten years of validity, no CRL or OCSP URL).
fn testssl(bed: &Testbed) {
    let _dns = NoDns::new(bed);
    let json = bed.dir.join("testssl.json");
    let t = Instant::now();
    let ca = tls_file("ca.crt");
    let out = bed.exec(
        "client",
        Duration::from_secs(300),
        &[
            "testssl",
            "--fast",
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--nodns",
            "none",
            "-p",
            "-s",
            "-S",
            "-U",
            "--add-ca",
            &ca,
            "--jsonfile",
            json.to_str().unwrap(),
            "--ip",
            VIP,
            &format!("https://{SNI}/"),
        ],
    );
    eprintln!("testssl.sh took {:.0} s", t.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("testssl.sh wrote no JSON ({e}): {}", all_output(&out)));
    let findings: Value = serde_json::from_str(&text).expect("testssl.sh JSON");
    let findings = findings.as_array().expect("testssl.sh JSON: an array");
    let by_id: BTreeMap<&str, &Value> = findings
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?, f)))
        .collect();
    let finding = |id: &str| {
        by_id
            .get(id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| panic!("testssl.sh reported no {id}: {text}"))
    };
    let not_offered = [
        "SSLv2",
        "SSLv3",
        "TLS1",
        "TLS1_1",
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ];
    for id in not_offered {
        assert!(
            finding(id).starts_with("not offered"),
            "testssl.sh: {id} {}",
            finding(id)
        );
    }
    for id in ["TLS1_2", "TLS1_3", "cipherlist_STRONG"] {
        assert!(
            finding(id).starts_with("offered"),
            "testssl.sh: {id} {}",
            finding(id)
        );
    }
    assert_eq!(
        finding("cert_numbers"),
        "2",
        "testssl.sh: the ECDSA and the RSA certificate"
    );
    for cert in ["<cert#1>", "<cert#2>"] {
        let id = format!("cert_chain_of_trust {cert}");
        assert!(
            finding(&id).starts_with("passed"),
            "testssl.sh: {id} {}",
            finding(&id)
        );
    }
    let vulnerabilities = [
        "heartbleed",
        "CCS",
        "ticketbleed",
        "ROBOT",
        "secure_renego",
        "secure_client_renego",
        "CRIME_TLS",
        "POODLE_SSL",
        "fallback_SCSV",
        "SWEET32",
        "FREAK",
        "DROWN",
        "LOGJAM",
        "BEAST",
        "LUCKY13",
        "RC4",
    ];
    let mut bad = Vec::new();
    for f in findings {
        let id = f["id"].as_str().unwrap_or("");
        let sev = f["severity"].as_str().unwrap_or("");
        let fnd = f["finding"].as_str().unwrap_or("");
        let test_cert = id.starts_with("cert_validityPeriod") || id.starts_with("cert_revocation");
        let vuln = vulnerabilities.contains(&id);
        // RC4: the local openssl cannot test it (a WARN), and no RC4 suite is in the
        // cipher categories above.
        let rc4_untestable = id == "RC4" && sev == "WARN";
        if fnd.contains("VULNERABLE")
            || (vuln && !["OK", "INFO"].contains(&sev) && !rc4_untestable)
            || (!test_cert && ["HIGH", "CRITICAL"].contains(&sev))
        {
            bad.push(format!("{id} {sev} {fnd}"));
        }
    }
    assert!(bad.is_empty(), "testssl.sh findings: {bad:#?}");
    for id in vulnerabilities {
        finding(id);
    }
}
