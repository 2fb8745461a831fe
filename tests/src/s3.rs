//! The S3 test bed on top of a [`Testbed`]: the S3 server of `scripts/s3pool.sh` in the
//! server namespace (one s3s-fs answering on the four members 198.18.2.11-14:9000), its
//! members' deaths (an nftables reset rule), `appliance/configs/s3.toml` copied with
//! changes, and the real S3 clients (boto3, awscli, s3cmd) run in the client namespace
//! against `https://s3.rouge.test` with the test CA.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::{repo, Testbed};

/// The test credentials of the S3 server (`scripts/s3pool.sh`).
pub const ACCESS_KEY: &str = "rouge-test";
/// The secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "rouge-test-secret";
/// The S3 endpoint through Rouge's TLS virtual server (resolved to 198.18.1.100 in the
/// client namespace by `scripts/testbed.sh`).
pub const ENDPOINT: &str = "https://s3.rouge.test";
/// The storage members' addresses (port [`PORT`]).
pub const MEMBERS: [&str; 4] = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"];
/// The members' S3 port.
pub const PORT: u16 = 9000;

/// `appliance/configs/tls/ca.crt`, the CA the clients trust.
pub fn ca_bundle() -> String {
    repo()
        .join("appliance/configs/tls/ca.crt")
        .display()
        .to_string()
}

/// `scripts/s3pool.sh ARGS…`; panics with its output when it fails.
fn s3pool(args: &[&str]) -> Output {
    let out = Command::new("bash")
        .arg(repo().join("scripts/s3pool.sh"))
        .args(args)
        .output()
        .expect("run scripts/s3pool.sh");
    assert!(
        out.status.success(),
        "s3pool.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The S3 server of a test bed; stopped (its data removed) on drop.
pub struct S3Pool {
    prefix: String,
}

impl S3Pool {
    /// `scripts/s3pool.sh up PREFIX` on `bed` (builds the tools first if missing).
    pub fn up(bed: &Testbed) -> S3Pool {
        s3pool(&["install"]);
        s3pool(&["up", &bed.prefix]);
        S3Pool {
            prefix: bed.prefix.clone(),
        }
    }

    /// Member `addr` (e.g. `198.18.2.12`) resets every connection from now on.
    pub fn kill_member(&self, addr: &str) {
        s3pool(&["kill-member", addr, &self.prefix]);
    }

    /// The members' own counters (`scripts/s3pool.sh counters`): by address,
    /// `{"in": bytes, "out": bytes, "syn": connections opened}`.
    pub fn counters(&self) -> Value {
        let out = s3pool(&["counters", &self.prefix]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "s3pool.sh counters: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Connections opened to the members so far, as the members' namespace counts them
    /// (health probes included).
    pub fn connections_opened(&self) -> u64 {
        let v = self.counters();
        MEMBERS
            .iter()
            .map(|m| {
                v[*m]["syn"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no syn count of {m}: {v}"))
            })
            .sum()
    }

    /// Member `addr` answers again.
    pub fn revive_member(&self, addr: &str) {
        s3pool(&["revive-member", addr, &self.prefix]);
    }
}

impl Drop for S3Pool {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/s3pool.sh"))
            .args(["down", &self.prefix])
            .output();
    }
}

/// `appliance/configs/s3.toml` written to the bed's scratch directory (where `tls/`
/// resolves to the test certificates) with each `key = value` line of `edits` replaced:
/// `("header_timeout", "2")` turns `header_timeout = 10` into `header_timeout = 2`.
/// Panics when a key is not in the file.
pub fn s3_config(bed: &Testbed, edits: &[(&str, &str)]) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("appliance/configs/s3.toml"))
        .expect("appliance/configs/s3.toml");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (key, value) in edits {
        let line = lines
            .iter_mut()
            .find(|l| l.split('=').next().map(str::trim) == Some(*key))
            .unwrap_or_else(|| panic!("s3.toml has no `{key} =` line"));
        *line = format!("{key} = {value}");
    }
    let path = bed.dir.join("s3.toml");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write s3.toml");
    path
}

/// The boto3 >= 1.36 of `target/tools/s3venv` (its uploads stream `aws-chunked`).
pub fn venv_python() -> String {
    s3pool(&["install"]);
    repo()
        .join("target/tools/s3venv/bin/python")
        .display()
        .to_string()
}

/// Debian's python3 with its python3-boto3 (not a pyenv shim that may come first on PATH).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The argv prefix that runs a client with the S3 credentials and the test CA.
pub fn client_env() -> Vec<String> {
    vec![
        "env".into(),
        format!("AWS_ACCESS_KEY_ID={ACCESS_KEY}"),
        format!("AWS_SECRET_ACCESS_KEY={SECRET_KEY}"),
        "AWS_DEFAULT_REGION=us-east-1".into(),
        format!("AWS_CA_BUNDLE={}", ca_bundle()),
        format!("S3_ENDPOINT={ENDPOINT}"),
        // No proxy from the environment, no user configuration of the host.
        "AWS_CONFIG_FILE=/dev/null".into(),
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null".into(),
    ]
}

/// The argv of `tests/tools/s3client.py ARGS…` under `python`, with [`client_env`].
pub fn s3client_argv(python: &str, args: &[&str]) -> Vec<String> {
    let mut argv = client_env();
    argv.push(python.into());
    argv.push(repo().join("tests/tools/s3client.py").display().to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

/// The JSON object a client tool printed; panics with its output otherwise, or when it
/// reports an error.
pub fn json_of(what: &str, out: &Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && v.get("error").is_none(),
        "{what} failed: {v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// Runs `tests/tools/s3client.py ARGS…` in the client namespace (bounded by `secs`) and
/// returns its JSON answer.
pub fn s3client(bed: &Testbed, python: &str, secs: u64, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    let deadline = (secs.saturating_sub(5)).max(5).to_string();
    args.splice(0..0, ["--deadline", deadline.as_str()]);
    let argv = s3client_argv(python, &args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = bed.exec("client", Duration::from_secs(secs), &argv);
    json_of(&format!("s3client {args:?}"), &out)
}

/// Runs `argv` in namespace `ns` in a thread, bounded by `secs`; join it for its output.
pub fn spawn_in(ns: &str, secs: u64, argv: Vec<String>) -> std::thread::JoinHandle<Output> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", &secs.to_string()])
            .args(&argv)
            .output()
            .expect("run a command in a namespace")
    })
}

/// Writes `len` random bytes to `path` and returns their SHA-256 (hex).
pub fn random_file(path: &Path, len: u64) -> String {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {len} /dev/urandom > '{}'", path.display()))
        .status()
        .expect("head");
    assert!(status.success(), "writing {}", path.display());
    sha256_file(path)
}

/// SHA-256 (hex) of a file, by coreutils `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}
