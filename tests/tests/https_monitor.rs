//! https health monitors on the test bed, against nginx members serving TLS with the
//! test certificates (`appliance/configs/tls/`): the configuration is
//! `appliance/configs/testbed.toml` (whose `[[tls_profile]]` `members-https` trusts the
//! test CA) plus an https monitor using that profile, and pool `secure`
//! (198.18.2.11-14:443).
//!
//! - .12-.14 present `member.crt` (the test CA, their IPs): marked up;
//! - .11 presents `other.crt` (another CA, the right IP): marked down, the failure
//!   counted as `certificate` in `show monitor` and named in the log;
//! - once .11 presents `member.crt` it comes up.
//!
//! Only 198.18.0.0/15 inside the test's own namespaces; every wait is bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
/// The member that first presents a certificate from another CA.
const WRONG_CA: &str = "198.18.2.11";

fn tls_file(name: &str) -> String {
    repo()
        .join("appliance/configs/tls")
        .join(name)
        .display()
        .to_string()
}

/// The test bed's configuration with the https monitor and pool `secure`.
fn config(bed: &Testbed) -> PathBuf {
    let text = std::fs::read_to_string(testbed_config()).unwrap();
    let members: Vec<String> = MEMBERS
        .iter()
        .map(|m| format!("{{ address = \"{m}:443\" }}"))
        .collect();
    let extra = format!(
        "\n[[monitor]]\nname = \"https-get\"\ntype = \"https\"\nsend = \"GET / HTTP/1.0\\r\\n\\r\\n\"\n\
         receive = \"200\"\ntls_profile = \"members-https\"\ninterval = 1\ntimeout = 3\n\n\
         [[pool]]\nname = \"secure\"\nmonitor = \"https-get\"\nmembers = [{members}]\n",
        members = members.join(", "),
    );
    let path = bed.dir.join("https-monitor.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// One nginx on `m`:443 with `ssl`, presenting `cert` (`member` or `other`).
fn serve(bed: &mut Testbed, m: &str, cert: &str) {
    let dir = bed.dir.join(format!("nginx-{m}"));
    std::fs::create_dir_all(&dir).unwrap();
    let www = bed.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    // The monitor's `GET /` wants a 200.
    std::fs::write(www.join("index.html"), "up\n").unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n\
             server {{\n    listen {m}:443 ssl;\n    root {www};\n\
             ssl_certificate {crt};\n    ssl_certificate_key {key};\n  }}\n}}\n",
            d = dir.display(),
            www = www.display(),
            crt = tls_file(&format!("{cert}.crt")),
            key = tls_file(&format!("{cert}.key")),
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

/// The monitor status of each member of pool `secure`, by address.
fn statuses(bed: &Testbed) -> Vec<(String, String)> {
    let v = bed.rouge_json(&["show", "pool", "secure"]).unwrap();
    v[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_string(),
                m["monitor"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn monitor(bed: &Testbed) -> Value {
    let v = bed.rouge_json(&["show", "monitor", "https-get"]).unwrap();
    v[0].clone()
}

/// Waits (bounded) until every member's status is what `want` says.
fn wait_for(bed: &Testbed, what: &str, want: impl Fn(&str) -> &'static str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = statuses(bed);
        if st
            .iter()
            .all(|(a, s)| s == want(a.trim_end_matches(":443")))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: members {st:?}; monitor {}",
            monitor(bed)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn https_monitors_verify_members_and_count_certificate_failures() {
    let mut bed = Testbed::up(false);
    for m in MEMBERS {
        serve(&mut bed, m, if m == WRONG_CA { "other" } else { "member" });
    }
    let cfg = config(&bed);
    bed.start_rouge(&cfg, &[]);
    wait_for(&bed, "the test CA's members up, the other CA's down", |a| {
        if a == WRONG_CA {
            "down"
        } else {
            "up"
        }
    });
    // The counts are published every 100 ms or so: wait for the first refusal.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = monitor(&bed);
        if m["failures_by_reason"]["certificate"].as_u64() >= Some(1) {
            break m;
        }
        assert!(Instant::now() < deadline, "no certificate failure: {m}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(m["type"], "https", "{m}");
    assert_eq!(m["tls_profile"], "members-https", "{m}");
    assert_eq!(m["members"]["up"], 3, "{m}");
    assert_eq!(m["members"]["down"], 1, "{m}");
    let by = &m["failures_by_reason"];
    for other in ["handshake", "response", "tcp"] {
        assert_eq!(by[other], 0, "{other}: {m}");
    }
    assert!(m["successes"].as_u64().unwrap() >= 3, "{m}");
    // `show pool` says why the member is down.
    let pool = bed.rouge_json(&["show", "pool", "secure"]).unwrap();
    for mm in pool[0]["members"].as_array().unwrap() {
        let want = if mm["address"] == format!("{WRONG_CA}:443") {
            Value::from("certificate")
        } else {
            Value::Null
        };
        assert_eq!(mm["monitor_failure"], want, "{mm}");
    }
    let text = stdout(&bed.rouge_cli(&["show", "monitor"]));
    let pool_text = stdout(&bed.rouge_cli(&["show", "pool", "secure"]));
    println!("{text}{pool_text}");
    assert!(
        text.contains("CERTIFICATE") && text.contains("members-https"),
        "{text}"
    );
    assert!(pool_text.contains("certificate"), "{pool_text}");
    // The log names the member, the reason and the alert Rouge sent.
    let log = bed.rouge_log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{WRONG_CA}:443")) && l.contains("down"))
        .unwrap_or_else(|| panic!("no down transition of {WRONG_CA} in the log:\n{log}"));
    println!("show monitor: {m}\nlog: {line}");
    assert!(line.contains("certificate"), "{line}");
    assert!(line.contains("unknown_ca"), "{line}");
    // The member gets a certificate of the test CA: it comes up.
    bed.kill_tagged(WRONG_CA);
    serve(&mut bed, WRONG_CA, "member");
    wait_for(&bed, "every member up", |_| "up");
}
