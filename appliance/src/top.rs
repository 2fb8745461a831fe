//! `rouge top`: a terminal view of the running appliance that refreshes once a second:
//! virtual servers, pool members, shaping classes and workers, with rates worked out
//! between two samples. For the serial console, where no browser exists: plain text
//! and two ANSI escapes (clear, home), nothing else.
//!
//! It reads the same `show … --json` figures through the management socket as every
//! other `rouge` command ([`mgmt::request`]); [`frame`] draws one screen from two
//! samples and is tested without an appliance.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::table;
use crate::mgmt;

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// Throughput (virtual servers, members), rate (classes), busy time (workers); highest first.
    Rate,
    /// Current connections (virtual servers, members), queue (classes); highest first.
    Conns,
    /// Bytes so far; highest first.
    Bytes,
    /// Name (pool and address for members), in order.
    Name,
}

impl SortKey {
    fn word(self) -> &'static str {
        match self {
            SortKey::Rate => "rate",
            SortKey::Conns => "conns",
            SortKey::Bytes => "bytes",
            SortKey::Name => "name",
        }
    }
}

/// Everything one screen needs, as `rouge show … --json` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `show stats`.
    pub stats: Value,
    /// `show virtual`.
    pub virtuals: Value,
    /// `show pool`.
    pub pools: Value,
    /// `show class`.
    pub classes: Value,
}

impl Sample {
    /// Takes a sample from the appliance at `socket`.
    pub fn take(socket: &Path) -> Result<Sample, String> {
        let show = |what: &str| mgmt::request(socket, &["show".to_string(), what.to_string()]);
        Ok(Sample {
            stats: show("stats")?,
            virtuals: show("virtual")?,
            pools: show("pool")?,
            classes: show("class")?,
        })
    }

    fn uptime(&self) -> f64 {
        self.stats["uptime_secs_exact"]
            .as_f64()
            .or_else(|| self.stats["uptime_secs"].as_f64())
            .unwrap_or(0.0)
    }
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `(value - before) / dt`, or `None` without an earlier sample.
fn per_sec(now: &Value, before: Option<&Value>, dt: f64) -> Option<f64> {
    let (n, b) = (now.as_f64()?, before?.as_f64()?);
    (dt > 0.0).then(|| (n - b).max(0.0) / dt)
}

fn find<'a>(list: &'a Value, key: &str, want: &Value) -> Option<&'a Value> {
    rows(list).iter().find(|x| &x[key] == want)
}

fn fixed(v: Option<f64>, digits: usize) -> Value {
    v.map_or(Value::Null, |x| json!(format!("{x:.digits$}")))
}

/// One row of a table with what it sorts by: (cells, name, rate, connections, bytes).
type Row = (Value, String, f64, f64, f64);

/// Orders `rows` by `key` (numeric fields highest first, names in order) and returns
/// their cells.
fn sorted(mut rows: Vec<Row>, key: SortKey) -> Value {
    match key {
        SortKey::Name => rows.sort_by(|a, b| a.1.cmp(&b.1)),
        SortKey::Rate => rows.sort_by(|a, b| b.2.total_cmp(&a.2)),
        SortKey::Conns => rows.sort_by(|a, b| b.3.total_cmp(&a.3)),
        SortKey::Bytes => rows.sort_by(|a, b| b.4.total_cmp(&a.4)),
    }
    Value::Array(rows.into_iter().map(|r| r.0).collect())
}

fn name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One screen of text from the current sample and, for rates, the one before.
pub fn frame(cur: &Sample, prev: Option<&Sample>, key: SortKey) -> String {
    let dt = prev.map_or(0.0, |p| cur.uptime() - p.uptime());
    let s = &cur.stats;
    let mut out = format!(
        "rouge top   uptime {}s   generation {}   workers {}   sorted by {}\n",
        s["uptime_secs"],
        s["generation"],
        rows(&s["workers"]).len(),
        key.word()
    );
    out.push_str(&format!(
        "packets: received {}  forwarded {}  answered {}  dropped {}   tcp connections {}\n\n",
        s["rx_packets"], s["forwarded"], s["answered"], s["dropped"], s["tcp"]["connections"]
    ));

    // Virtual servers.
    let vs: Vec<Row> = rows(&cur.virtuals)
        .iter()
        .map(|v| {
            let before = prev.and_then(|p| find(&p.virtuals, "name", &v["name"]));
            let bps = per_sec(&v["bytes"], before.map(|b| &b["bytes"]), dt).map(|x| x * 8.0);
            let pps = per_sec(&v["packets"], before.map(|b| &b["packets"]), dt);
            let row = json!({"virtual": v["name"], "type": v["type"], "destination": v["destination"],
                "pool": v["pool"], "mbit/s": fixed(bps.map(|x| x / 1e6), 2), "pkt/s": fixed(pps, 0),
                "conns": v["current_connections"], "total": v["connections"], "bytes": v["bytes"]});
            let conns = v["current_connections"].as_f64().unwrap_or(0.0);
            (row, name(&v["name"]), bps.unwrap_or(0.0), conns, v["bytes"].as_f64().unwrap_or(0.0))
        })
        .collect();
    out.push_str(&table(
        &sorted(vs, key),
        &[
            "virtual",
            "type",
            "destination",
            "pool",
            "mbit/s",
            "pkt/s",
            "conns",
            "total",
            "bytes",
        ],
    ));
    out.push('\n');

    // Pool members.
    let mut ms: Vec<Row> = Vec::new();
    for p in rows(&cur.pools) {
        let before_pool = prev.and_then(|x| find(&x.pools, "name", &p["name"]));
        for m in rows(&p["members"]) {
            let before = before_pool.and_then(|b| find(&b["members"], "address", &m["address"]));
            let bps = per_sec(&m["bytes"], before.map(|b| &b["bytes"]), dt).map(|x| x * 8.0);
            let row = json!({"pool": p["name"], "member": m["address"], "admin": m["admin"],
                "monitor": m["monitor"], "availability": m["availability"],
                "mbit/s": fixed(bps.map(|x| x / 1e6), 2), "conns": m["current_connections"],
                "total": m["total_connections"], "bytes": m["bytes"]});
            let conns = m["current_connections"].as_f64().unwrap_or(0.0);
            ms.push((
                row,
                format!("{} {}", name(&p["name"]), name(&m["address"])),
                bps.unwrap_or(0.0),
                conns,
                m["bytes"].as_f64().unwrap_or(0.0),
            ));
        }
    }
    out.push_str(&table(
        &sorted(ms, key),
        &[
            "pool",
            "member",
            "admin",
            "monitor",
            "availability",
            "mbit/s",
            "conns",
            "total",
            "bytes",
        ],
    ));
    out.push('\n');

    // Shaping classes.
    if rows(&cur.classes).is_empty() {
        out.push_str("(no shaping classes: no [[interface]] has a shaping_rate)\n");
    } else {
        let cs: Vec<Row> = rows(&cur.classes)
            .iter()
            .map(|c| {
                let rate = c["rate_bps"].as_f64().unwrap_or(0.0);
                let row = json!({"class": c["name"], "mbit/s": fixed(Some(rate / 1e6), 2),
                    "queue": c["queue_packets"], "drops": c["drops"],
                    "p50.us": fixed(c["delay_us"]["p50"].as_f64(), 0),
                    "p99.us": fixed(c["delay_us"]["p99"].as_f64(), 0), "bytes": c["bytes"]});
                let queue = c["queue_packets"].as_f64().unwrap_or(0.0);
                (
                    row,
                    name(&c["name"]),
                    rate,
                    queue,
                    c["bytes"].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        out.push_str(&table(
            &sorted(cs, key),
            &[
                "class", "mbit/s", "queue", "drops", "p50.us", "p99.us", "bytes",
            ],
        ));
    }
    out.push('\n');

    // Workers (cores).
    let ws: Vec<Row> = rows(&s["workers"])
        .iter()
        .map(|w| {
            let before = prev.and_then(|p| find(&p.stats["workers"], "id", &w["id"]));
            let busy =
                per_sec(&w["cpu_secs"], before.map(|b| &b["cpu_secs"]), dt).map(|x| x * 100.0);
            let pps = per_sec(&w["rx_packets"], before.map(|b| &b["rx_packets"]), dt);
            let row = json!({"worker": w["id"], "core": w["core"], "busy%": fixed(busy, 1),
                "pkt/s": fixed(pps, 0), "packets": w["rx_packets"], "dropped": w["dropped"]});
            let id = w["id"].as_u64().unwrap_or(0);
            (row, format!("{id:06}"), busy.unwrap_or(0.0), 0.0, 0.0)
        })
        .collect();
    out.push_str(&table(
        &sorted(ws, key),
        &["worker", "core", "busy%", "pkt/s", "packets", "dropped"],
    ));
    out
}

/// Options of `rouge top`.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// Management socket.
    pub socket: std::path::PathBuf,
    /// Row order.
    pub sort: SortKey,
    /// Screens to draw before exiting (`None`: until interrupted).
    pub iterations: Option<u64>,
    /// Time between screens.
    pub interval: Duration,
}

/// What a line typed while `rouge top` runs asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Order the rows by this key.
    Sort(SortKey),
    /// Leave.
    Quit,
    /// Nothing known.
    Nothing,
}

/// The action of a typed line: `r`, `c`, `b`, `n` sort by rate, connections, bytes or
/// name; `q` quits.
pub fn key_action(line: &str) -> KeyAction {
    match line.trim() {
        "r" => KeyAction::Sort(SortKey::Rate),
        "c" => KeyAction::Sort(SortKey::Conns),
        "b" => KeyAction::Sort(SortKey::Bytes),
        "n" => KeyAction::Sort(SortKey::Name),
        "q" => KeyAction::Quit,
        _ => KeyAction::Nothing,
    }
}

/// The line above every interactive screen.
const KEYS: &str = "keys (then Enter): r rate, c conns, b bytes, n name to sort; q quits\n";

/// Lines typed on the terminal, read on a thread of their own (the terminal stays in
/// its ordinary line mode, as on a serial console).
fn typed_lines() -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("rouge-top-keys".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    rx
}

/// Runs `rouge top`: a first sample, then one screen per interval with the rates since
/// the sample before, until `q`, Ctrl-C, or `iterations` screens. On a terminal each
/// screen replaces the last and typed keys change the order at once; otherwise screens
/// follow each other, separated by a blank line (for logs and tests).
pub fn run(opts: &TopOptions) -> Result<(), String> {
    use std::io::{IsTerminal, Write};
    use std::sync::mpsc::RecvTimeoutError;
    let tty = std::io::stdout().is_terminal();
    let interactive = tty && opts.iterations.is_none() && std::io::stdin().is_terminal();
    let mut keys = interactive.then(typed_lines);
    let mut sort = opts.sort;
    let mut drawn = 0u64;
    let draw = |text: &str, drawn: u64| -> bool {
        let mut out = std::io::stdout().lock();
        let written = if tty {
            // Home, clear to the end of the screen, then the frame.
            let hint = if interactive { KEYS } else { "" };
            write!(out, "\x1b[H\x1b[2J{hint}{text}")
        } else {
            if drawn > 0 {
                let _ = writeln!(out);
            }
            write!(out, "{text}")
        };
        written.and_then(|()| out.flush()).is_ok()
    };
    let mut prev = Sample::take(&opts.socket)?;
    let mut last: Option<(Sample, Sample)> = None;
    let mut next = std::time::Instant::now() + opts.interval;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        if let Some(rx) = &keys {
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    match key_action(&line) {
                        KeyAction::Quit => return Ok(()),
                        KeyAction::Sort(k) => {
                            sort = k;
                            if let Some((p, c)) = &last {
                                if !draw(&frame(c, Some(p), sort), drawn) {
                                    return Ok(());
                                }
                            }
                        }
                        KeyAction::Nothing => {}
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => keys = None, // stdin closed
            }
        } else {
            std::thread::sleep(wait);
        }
        next += opts.interval;
        let cur = Sample::take(&opts.socket)?;
        if !draw(&frame(&cur, Some(&prev), sort), drawn) {
            return Ok(()); // The reader went away (a closed pipe): nothing more to do.
        }
        drawn += 1;
        if opts.iterations.is_some_and(|n| drawn >= n) {
            return Ok(());
        }
        last = Some((prev, cur.clone()));
        prev = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uptime: f64, web_bytes: u64, dns_bytes: u64, cpu: f64) -> Sample {
        Sample {
            stats: json!({"uptime_secs": uptime as u64, "uptime_secs_exact": uptime, "generation": 3,
                "rx_packets": 10, "forwarded": 5, "answered": 2, "dropped": 1, "tcp": {"connections": 0},
                "workers": [{"id": 0, "core": 1, "cpu_secs": cpu, "rx_packets": 10, "dropped": 1}]}),
            virtuals: json!([
                {"name": "web", "type": "fastl4", "destination": "198.18.1.100:80", "pool": "web",
                 "packets": 2, "bytes": web_bytes, "connections": 4, "current_connections": 1},
                {"name": "dns", "type": "fastl4", "destination": "198.18.1.100:53", "pool": "dns",
                 "packets": 1, "bytes": dns_bytes, "connections": 9, "current_connections": 7},
            ]),
            pools: json!([{"name": "web", "members": [
                {"address": "198.18.2.11:80", "admin": "enabled", "monitor": "up",
                 "availability": "available", "current_connections": 1, "total_connections": 4,
                 "bytes": web_bytes},
                {"address": "198.18.2.12:80", "admin": "disabled", "monitor": "down",
                 "availability": "disabled", "current_connections": 0, "total_connections": 0,
                 "bytes": 0}]}]),
            classes: json!([]),
        }
    }

    #[test]
    fn typed_keys_choose_the_order_or_quit() {
        assert_eq!(key_action("c\n"), KeyAction::Sort(SortKey::Conns));
        assert_eq!(key_action(" n "), KeyAction::Sort(SortKey::Name));
        assert_eq!(key_action("r"), KeyAction::Sort(SortKey::Rate));
        assert_eq!(key_action("b"), KeyAction::Sort(SortKey::Bytes));
        assert_eq!(key_action("q"), KeyAction::Quit);
        assert_eq!(key_action("x"), KeyAction::Nothing);
        assert_eq!(key_action(""), KeyAction::Nothing);
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in\n{text}"))
    }

    #[test]
    fn rates_come_from_two_samples_and_rows_sort_by_the_key() {
        let a = sample(10.0, 1_000_000, 0, 1.0);
        let b = sample(12.0, 3_500_000, 250_000, 1.5);
        let first = frame(&a, None, SortKey::Rate);
        assert!(first.contains("sorted by rate"), "{first}");
        // Without an earlier sample there is no rate yet.
        let web = first
            .lines()
            .nth(line_of(&first, "198.18.1.100:80"))
            .unwrap();
        assert!(web.contains(" - "), "{web}");

        let t = frame(&b, Some(&a), SortKey::Rate);
        // web: 2.5 MB in 2 s = 10 Mbit/s; dns: 0.25 MB in 2 s = 1 Mbit/s.
        let web = t.lines().nth(line_of(&t, "198.18.1.100:80")).unwrap();
        assert!(web.contains("10.00"), "{web}");
        assert!(line_of(&t, "198.18.1.100:80") < line_of(&t, "198.18.1.100:53"));
        // Worker busy time: 0.5 s on the CPU in 2 s.
        assert!(t.lines().any(|l| l.contains("25.0")), "{t}");
        assert!(t.contains("disabled") && t.contains("down"), "{t}");
        assert!(t.contains("no shaping classes"), "{t}");

        // By connections dns (7) comes first, and by name.
        let c = frame(&b, Some(&a), SortKey::Conns);
        assert!(line_of(&c, "198.18.1.100:53") < line_of(&c, "198.18.1.100:80"));
        let n = frame(&b, Some(&a), SortKey::Name);
        assert!(line_of(&n, "198.18.1.100:53") < line_of(&n, "198.18.1.100:80"));
        let r = frame(&b, Some(&a), SortKey::Bytes);
        assert!(line_of(&r, "198.18.1.100:80") < line_of(&r, "198.18.1.100:53"));
    }
}
