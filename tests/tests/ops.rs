//! The management plane's operator views on the test bed: `/metrics` passes Prometheus's
//! own `promtool check metrics` and agrees with `rouge show --json`, the JSON API serves
//! the same figures, `rouge top` draws them in the terminal, and the dashboard at `/`,
//! opened in headless Chromium, shows after a few refreshes what `rouge show --json`
//! reports.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rouge_tests::*;
use serde_json::Value;

const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
const DRAINED: &str = "198.18.2.14:80";

/// The test bed's configuration (it has `[management] http = "127.0.0.1:9400"`) with
/// shaping on the client side: web members .11 and .13 in class gold, .12 and .14 in
/// bronze.
fn shaped_config(bed: &Testbed) -> PathBuf {
    let text = std::fs::read_to_string(testbed_config()).unwrap();
    assert!(
        text.contains("[management]\nhttp = \"127.0.0.1:9400\""),
        "the test bed config serves metrics"
    );
    let text = text.replacen(
        "name = \"lb-c\"           # toward the clients\n",
        "name = \"lb-c\"\nshaping_rate = \"400Mbit\"\n",
        1,
    );
    assert!(text.contains("shaping_rate"), "lb-c found in the config");
    let text = text.replacen(
        "[arp]",
        "[[class]]\nname = \"gold\"\nweight = 3\nmembers = [\"198.18.2.11:80\", \"198.18.2.13:80\"]\n\n\
         [[class]]\nname = \"bronze\"\nweight = 1\nmembers = [\"198.18.2.12:80\", \"198.18.2.14:80\"]\n\n[arp]",
        1,
    );
    let path = bed.dir.join("ops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Web servers on every member, a 1 MB file each; waits until the monitor sees them up.
fn serve_and_wait(bed: &mut Testbed) {
    for m in MEMBERS {
        let dir = bed.dir.join(m);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blob.bin"), vec![b'r'; 1 << 20]).unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pools = bed.rouge_json(&["show", "pool", "web"]).unwrap();
        let members = pools[0]["members"].as_array().unwrap().clone();
        if members.iter().all(|m| m["monitor"] == "up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never came up: {members:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Drains one member, then downloads through the virtual server (bounded).
fn traffic(bed: &Testbed) {
    let out = bed.rouge_cli(&["pool", "member", "disable", "web", DRAINED]);
    assert!(out.status.success(), "{out:?}");
    for _ in 0..6 {
        let out = bed.exec(
            "client",
            Duration::from_secs(20),
            &[
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "--max-time",
                "15",
                "http://198.18.1.100/blob.bin",
            ],
        );
        assert!(out.status.success(), "download through the VIP: {out:?}");
    }
}

fn http_get(bed: &Testbed, path: &str) -> (String, String) {
    let out = bed.exec(
        "lb",
        Duration::from_secs(15),
        &[
            "curl",
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:9400{path}"),
        ],
    );
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

/// Samples of a text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn sample(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in /metrics"))
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
}

#[test]
fn metrics_pass_promtool_and_agree_with_show_the_api_and_top() {
    let mut bed = Testbed::up(false);
    let config = shaped_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_and_wait(&mut bed);
    traffic(&bed);

    let (text, code) = http_get(&bed, "/metrics");
    assert_eq!(code, "200", "{text}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The figures agree with `rouge show --json` (traffic has stopped; take both again
    // if a late counter moved in between).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = samples(&http_get(&bed, "/metrics").0);
        let virtuals = bed.rouge_json(&["show", "virtual"]).unwrap();
        let pools = bed.rouge_json(&["show", "pool", "web"]).unwrap();
        let classes = bed.rouge_json(&["show", "class"]).unwrap();
        let web = find(&virtuals, "name", "web");
        let gold = find(
            &find(&classes, "name", "gold")["interfaces"],
            "interface",
            "lb-c",
        );
        let mut wanted = vec![
            (
                "rouge_virtual_connections_total{virtual=\"web\",type=\"fastl4\"}".to_string(),
                web["connections"].as_f64().unwrap(),
            ),
            (
                "rouge_virtual_bytes_total{virtual=\"web\",type=\"fastl4\"}".to_string(),
                web["bytes"].as_f64().unwrap(),
            ),
            (
                "rouge_class_bytes_total{class=\"gold\",interface=\"lb-c\"}".to_string(),
                gold["bytes"].as_f64().unwrap(),
            ),
            (
                "rouge_class_queue_delay_seconds_count{class=\"gold\",interface=\"lb-c\"}"
                    .to_string(),
                gold["delay_us"]["samples"].as_f64().unwrap(),
            ),
        ];
        for mem in pools[0]["members"].as_array().unwrap() {
            let a = mem["address"].as_str().unwrap();
            wanted.push((
                format!("rouge_member_connections_total{{pool=\"web\",member=\"{a}\"}}"),
                mem["total_connections"].as_f64().unwrap(),
            ));
            wanted.push((
                format!(
                    "rouge_member_admin_state{{pool=\"web\",member=\"{a}\",state=\"{}\"}}",
                    mem["admin"].as_str().unwrap()
                ),
                1.0,
            ));
            wanted.push((
                format!("rouge_member_monitor_status{{pool=\"web\",member=\"{a}\",status=\"up\"}}"),
                1.0,
            ));
        }
        let wrong: Vec<String> = wanted
            .iter()
            .filter(|(k, v)| sample(&m, k) != *v)
            .map(|(k, v)| format!("{k}: /metrics {} vs show {v}", sample(&m, k)))
            .collect();
        if wrong.is_empty() {
            assert_eq!(web["connections"], 6, "six downloads, six connections");
            assert_eq!(
                sample(&m, &format!("rouge_member_admin_state{{pool=\"web\",member=\"{DRAINED}\",state=\"disabled\"}}")),
                1.0
            );
            assert_eq!(
                sample(&m, &format!("rouge_member_admin_state{{pool=\"web\",member=\"{DRAINED}\",state=\"enabled\"}}")),
                0.0
            );
            assert!(
                sample(
                    &m,
                    "rouge_class_bytes_total{class=\"gold\",interface=\"lb-c\"}"
                ) > 1e6
            );
            assert!(sample(&m, "rouge_worker_busy_seconds_total{worker=\"0\"}") > 0.0);
            // Work time: turns that did something; never more than the time on the CPU
            // (a little slack: the two are read a moment apart).
            let work = sample(&m, "rouge_worker_work_seconds_total{worker=\"0\"}");
            let on_cpu = sample(&m, "rouge_worker_busy_seconds_total{worker=\"0\"}");
            assert!(
                work > 0.0 && work <= on_cpu + 0.5,
                "work {work} s, on CPU {on_cpu} s"
            );
            assert!(
                sample(
                    &m,
                    "rouge_interface_packets_total{interface=\"lb-c\",direction=\"rx\"}"
                ) > 0.0
            );
            assert!(sample(&m, "rouge_tcp_segments_total{direction=\"tx\"}") > 0.0);
            // Frames from the clients were forwarded through fastl4, per interface.
            assert!(
                sample(
                    &m,
                    "rouge_interface_verdict_packets_total{interface=\"lb-c\",verdict=\"forwarded\"}"
                ) > 0.0
            );
            assert!(
                sample(
                    &m,
                    "rouge_interface_verdict_bytes_total{interface=\"lb-s\",verdict=\"forwarded\"}"
                ) > 1e6
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics disagree with show: {wrong:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The JSON API is `rouge show --json`.
    let (body, code) = http_get(&bed, "/api/v1/pool/web");
    assert_eq!(code, "200", "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    let show = bed.rouge_json(&["show", "pool", "web"]).unwrap();
    for (a, s) in api[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .zip(show[0]["members"].as_array().unwrap())
    {
        for f in ["address", "admin", "monitor", "total_connections", "bytes"] {
            assert_eq!(a[f], s[f], "{f} of {}", s["address"]);
        }
    }
    let (body, code) = http_get(&bed, "/api/v1/pool/nosuch");
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("no pool named `nosuch`"), "{body}");
    let (_, code) = http_get(&bed, "/api/v1/config");
    assert_eq!(code, "404", "the API serves the read-only views only");

    // `rouge top`: two screens, rows sorted by total connections; the drained member
    // and the classes are there.
    let out = bed.rouge_cli(&["top", "--iterations", "2", "--sort", "conns"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{out:?}");
    assert_eq!(text.matches("rouge top ").count(), 2, "{text}");
    let web_row = text
        .lines()
        .find(|l| l.starts_with("web ") && l.contains("198.18.1.100:80"))
        .unwrap_or_else(|| panic!("no web row: {text}"));
    assert!(web_row.split_whitespace().any(|c| c == "6"), "{web_row}");
    assert!(
        text.lines()
            .any(|l| l.contains(DRAINED) && l.contains("disabled") && l.contains("up")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("gold ")), "{text}");
    assert!(text.contains("BUSY%"), "{text}");

    interactive_top(&bed);
}

/// `rouge top` on a real terminal (tmux): screens replace each other, `n` + Enter sorts
/// by name at once, `q` + Enter quits.
fn interactive_top(bed: &Testbed) {
    let session = format!("{}top", bed.prefix);
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux (scripts/setup.sh installs it)")
    };
    let command = format!(
        "{} top --socket {}",
        rouge_bin().display(),
        bed.socket.display()
    );
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "140",
        "-y",
        "60",
        &command,
    ]);
    assert!(out.status.success(), "{out:?}");
    let screen = || stdout(&tmux(&["capture-pane", "-p", "-t", &session]));
    let wait_for = |what: &dyn Fn(&str) -> bool, why: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = screen();
            if what(&s) {
                return s;
            }
            if Instant::now() > deadline {
                tmux(&["kill-session", "-t", &session]);
                panic!("{why}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = wait_for(&|s| s.contains("sorted by rate"), "no first screen");
    assert_eq!(
        first.matches("rouge top ").count(),
        1,
        "one screen at a time: {first}"
    );
    assert!(first.contains("keys (then Enter)"), "{first}");
    tmux(&["send-keys", "-t", &session, "n", "Enter"]);
    let by_name = wait_for(&|s| s.contains("sorted by name"), "n did not sort by name");
    let pos = |needle: &str| {
        by_name
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {by_name}"))
    };
    assert!(
        pos("\nchargen ") < pos("\ndns ") && pos("\ndns ") < pos("\nweb "),
        "{by_name}"
    );
    tmux(&["send-keys", "-t", &session, "q", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux(&["has-session", "-t", &session]).status.success() {
        if Instant::now() > deadline {
            tmux(&["kill-session", "-t", &session]);
            panic!("q did not end rouge top");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The text of the element with `id` (tags inside it removed).
fn cell(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} on the page"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find("</td>").unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_string()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn dashboard_in_chromium_shows_what_show_json_reports() {
    let mut bed = Testbed::up(false);
    let config = shaped_config(&bed);
    bed.start_rouge(&config, &[]);
    serve_and_wait(&mut bed);
    traffic(&bed);
    std::thread::sleep(Duration::from_secs(1));

    let profile = bed.dir.join("chromium-profile");
    let out = bed.exec(
        "lb",
        Duration::from_secs(90),
        &[
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=5000",
            "--dump-dom",
            "http://127.0.0.1:9400/",
        ],
    );
    let dom = stdout(&out);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium (Debian package chromium; scripts/setup.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The page refreshed several times and drew its charts.
    let refreshes: u32 = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("data-refreshes on the body");
    assert!(refreshes >= 3, "only {refreshes} refreshes");
    assert!(dom.matches("<polyline").count() >= 4, "charts drawn");
    assert!(
        dom.contains("data-series=\"web\""),
        "a throughput line for web"
    );

    let virtuals = bed.rouge_json(&["show", "virtual"]).unwrap();
    for v in virtuals.as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert_eq!(
            cell(&dom, &format!("v-{name}-bytes")),
            text_of(&v["bytes"]),
            "{name}"
        );
        if !v["connections"].is_null() {
            assert_eq!(
                cell(&dom, &format!("v-{name}-connections")),
                text_of(&v["connections"]),
                "{name}"
            );
        }
    }
    assert_eq!(cell(&dom, "v-web-connections"), "6");
    let pools = bed.rouge_json(&["show", "pool"]).unwrap();
    for p in pools.as_array().unwrap() {
        for m in p["members"].as_array().unwrap() {
            let id = format!(
                "m-{}-{}",
                p["name"].as_str().unwrap(),
                m["address"].as_str().unwrap()
            );
            for f in [
                "admin",
                "monitor",
                "availability",
                "total_connections",
                "bytes",
            ] {
                assert_eq!(cell(&dom, &format!("{id}-{f}")), text_of(&m[f]), "{id} {f}");
            }
        }
    }
    assert_eq!(cell(&dom, &format!("m-web-{DRAINED}-admin")), "disabled");
    let classes = bed.rouge_json(&["show", "class"]).unwrap();
    for c in classes.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert_eq!(
            cell(&dom, &format!("c-{name}-drops")),
            text_of(&c["drops"]),
            "{name}"
        );
        assert_eq!(
            cell(&dom, &format!("c-{name}-queue_packets")),
            text_of(&c["queue_packets"]),
            "{name}"
        );
    }
    let stats = bed.rouge_json(&["show", "stats"]).unwrap();
    for w in stats["workers"].as_array().unwrap() {
        assert_eq!(cell(&dom, &format!("w-{}-id", w["id"])), text_of(&w["id"]));
        let busy = cell(&dom, &format!("w-{}-busy", w["id"]));
        assert!(busy.parse::<f64>().is_ok(), "busy time shown: {busy}");
    }
}
