//! The management socket: a Unix stream socket on the host (never on the data path)
//! that serves the console CLI. One JSON request per line (`{"args": ["show",
//! "interfaces"]}`), one JSON answer per line (`{"ok": true, "data": …}` or
//! `{"ok": false, "error": "…"}`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config;
use crate::shared::Shared;
use crate::views;

/// Default path of the management socket.
pub const DEFAULT_SOCKET: &str = "/run/rouge/rouge.sock";

/// Binds the socket at `path` (replacing a stale one) and serves it on a thread until
/// the appliance stops.
pub fn serve(path: &Path, shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use by a running rouge; choose another with --socket",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("rouge-mgmt".into())
        .spawn(move || {
            while !shared.stopping() {
                // The TLS engine's wall clock: certificates are checked and tickets
                // aged against it (several times a second, as this loop turns).
                shared.tls.tick();
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = shared.clone();
                        let _ = std::thread::Builder::new()
                            .name("rouge-mgmt-conn".into())
                            .spawn(move || handle_conn(stream, &s));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "management socket accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
}

fn handle_conn(stream: UnixStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => {
                let args: Vec<String> = req["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match execute(shared, &args) {
                    Ok(data) => json!({"ok": true, "data": data}),
                    Err(e) => json!({"ok": false, "error": e}),
                }
            }
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        if writeln!(writer, "{answer}").is_err() {
            return;
        }
    }
}

/// Runs one management command against the running appliance.
pub fn execute(shared: &Shared, args: &[String]) -> Result<Value, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["show", "interfaces"] => Ok(views::interfaces(shared)),
        ["show", "arp"] => Ok(views::arp(shared)),
        ["show", "routes"] => Ok(views::routes(shared)),
        ["show", "stats"] => Ok(views::stats(shared)),
        ["show", "virtual"] => Ok(views::virtuals(shared)),
        ["show", "virtual", name] => {
            let all = views::virtuals(shared);
            let one: Vec<Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["name"] == *name)
                .cloned()
                .collect();
            if one.is_empty() {
                Err(format!(
                    "no virtual server named `{name}`; `rouge show virtual` lists them"
                ))
            } else {
                Ok(Value::Array(one))
            }
        }
        ["show", "tls"] => Ok(views::tls(shared)),
        ["show", "tls", name] => {
            let one: Vec<Value> = views::tls(shared)
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["name"] == *name)
                .cloned()
                .collect();
            if one.is_empty() {
                Err(format!(
                    "no virtual server named `{name}` with TLS; `rouge show tls` lists them"
                ))
            } else {
                Ok(Value::Array(one))
            }
        }
        ["show", "connections"] => crate::connections::gather(shared, None),
        ["show", "connections", name] => crate::connections::gather(shared, Some(name)),
        ["show", "pool"] => views::pools(shared, None),
        ["show", "pool", name] => views::pools(shared, Some(name)),
        ["show", "class"] => views::classes(shared, None),
        ["show", "class", name] => views::classes(shared, Some(name)),
        ["show", "monitor"] => views::monitors(shared, None),
        ["show", "monitor", name] => views::monitors(shared, Some(name)),
        ["show", "member"] => views::members(shared, None),
        ["show", "member", name] => views::members(shared, Some(name)),
        ["pool", "member", action, pool, member] => member_state(shared, action, pool, member),
        ["show", "config"] => Ok(json!(config::to_toml(&shared.config.load()))),
        ["config", "save", rest @ ..] => {
            let path = rest
                .first()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(&shared.config_path));
            let text = config::to_toml(&shared.config.load());
            write_durably(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(json!({"saved": path.display().to_string()}))
        }
        ["config", "apply", name, text] => apply(shared, name, text),
        ["ping"] => Ok(json!("pong")),
        _ => Err(format!("unknown command `{}`; try `help`", a.join(" "))),
    }
}

/// Replaces the running configuration with `text` (from file `name`): validated first,
/// then a new snapshot is swapped in; workers pick it up at their next loop turn and
/// existing traffic continues. Ports cannot change while running.
pub fn apply(shared: &Shared, name: &str, text: &str) -> Result<Value, String> {
    let _guard = shared.change.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config::parse(name, text).map_err(|e| e.to_string())?;
    let old_cfg = shared.config.load_full();
    let old_ifs: Vec<&str> = old_cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
    let new_ifs: Vec<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
    // What opened the ports: the drivers and their devices, queues and EAL arguments.
    let port_setup = |c: &config::Config| {
        let ifs: Vec<_> = c
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.driver,
                    i.queues,
                    i.pci.clone(),
                    i.vdev.clone(),
                    i.rx_ring,
                    i.tx_path,
                )
            })
            .collect();
        (ifs, c.system.dpdk_args.clone())
    };
    if old_ifs != new_ifs || port_setup(&old_cfg) != port_setup(&cfg) {
        return Err(format!(
            "{name}: interface: the data ports differ from the running ones ({} vs {}, or their driver, queues, device or dpdk_args); fix: keep the [[interface]] tables as they are, or restart rouge to change ports",
            new_ifs.join(", "),
            old_ifs.join(", ")
        ));
    }
    // What `rouge check` would warn about (expiring or test certificates...), logged
    // and returned to the CLI.
    let warnings: Vec<String> = config::warnings(name, text, &cfg, config::tls::unix_now())
        .iter()
        .map(|w| {
            tracing::warn!("{w}");
            w.to_string()
        })
        .collect();
    let old_dp = shared.dataplane.load_full();
    let generation = old_dp.generation + 1;
    let dp = config::build::dataplane_with(
        &cfg,
        generation,
        shared.workers.len(),
        Some(&old_dp),
        &shared.tls,
    );
    shared.config.store(std::sync::Arc::new(cfg));
    shared.dataplane.store(std::sync::Arc::new(dp));
    shared.wake_workers();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let synced = loop {
        let done = shared.workers.iter().all(|w| {
            !w.running.load(std::sync::atomic::Ordering::Relaxed)
                || w.generation.load(std::sync::atomic::Ordering::Relaxed) >= generation
        });
        if done || std::time::Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    tracing::info!(generation, file = name, "configuration applied");
    Ok(json!({"generation": generation, "workers_updated": synced, "warnings": warnings}))
}

/// Changes a member's admin state in the running configuration and in the live pool
/// (new flows follow at once; existing flows continue: `disabled` drains,
/// `forced-offline` takes no new flows at all).
pub fn member_state(
    shared: &Shared,
    action: &str,
    pool: &str,
    member: &str,
) -> Result<Value, String> {
    use crate::config::model::MemberState;
    use rouge_pipelines::lb::AdminState;
    let (state, admin) = match action {
        "enable" => (MemberState::Enabled, AdminState::Enabled),
        "disable" => (MemberState::Disabled, AdminState::Disabled),
        "force-offline" => (MemberState::ForcedOffline, AdminState::ForcedOffline),
        _ => {
            return Err(format!(
                "`{action}` is not a member action; use enable, disable or force-offline"
            ))
        }
    };
    let addr: std::net::SocketAddr = member
        .parse()
        .map_err(|_| format!("`{member}` is not ADDRESS:PORT (e.g. 198.18.2.11:80)"))?;
    let _guard = shared.change.lock().unwrap_or_else(|e| e.into_inner());
    let mut cfg = (**shared.config.load()).clone();
    let p = cfg
        .pools
        .iter_mut()
        .find(|p| p.name == pool)
        .ok_or_else(|| format!("no pool named `{pool}`; `rouge show pool` lists them"))?;
    let m = p
        .members
        .iter_mut()
        .find(|m| m.address == addr)
        .ok_or_else(|| {
            format!("pool `{pool}` has no member {addr}; `rouge show pool {pool}` lists them")
        })?;
    m.state = state;
    let dp = shared.dataplane.load();
    if let Some((_, b)) = dp.pools.iter().find(|(n, _)| n == pool) {
        if let Some(id) = b.pool.find(addr) {
            b.states.set_admin(id, admin);
        }
    }
    shared.config.store(std::sync::Arc::new(cfg));
    tracing::info!(pool, member = %addr, state = admin.as_str(), "member admin state changed");
    Ok(json!({"pool": pool, "member": addr.to_string(), "state": admin.as_str()}))
}

/// Writes `data` to `path` so that a power loss at any moment leaves either the old or
/// the new file whole (the appliance image keeps its configuration on a small disk that
/// a VM manager may switch off hard): a temporary file beside it, flushed to the disk,
/// renamed over `path`, then the directory flushed.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sends one command to the appliance at `socket` and returns its data.
pub fn request(socket: &Path, args: &[String]) -> Result<Value, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach rouge at {}: {e} (is `rouge run` running? pass its --socket PATH)",
            socket.display()
        )
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    writeln!(stream, "{}", json!({"args": args})).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("no answer from rouge: {e}"))?;
    let v: Value =
        serde_json::from_str(&line).map_err(|e| format!("bad answer from rouge: {e}"))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v["data"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("unknown error").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_durably_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("rouge-write-durably-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rouge.toml");
        write_durably(&path, b"first").unwrap();
        write_durably(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rouge.toml")]);
        // A directory that does not exist: an error, and nothing is left behind.
        assert!(write_durably(&dir.join("missing/rouge.toml"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
