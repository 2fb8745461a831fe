//! Helpers for end-to-end tests: a private copy of the test bed per test (network
//! namespaces with a per-run prefix, removed on drop even when the test fails), the
//! `rouge` binary started inside the appliance namespace, and commands run in the
//! client and server namespaces.
//!
//! These tests need root (network namespaces); CI runs as root. The S3 test bed (an S3
//! server on the members, the real S3 clients) is in [`s3`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod s3;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of the `rouge` binary: `$ROUGE_BIN`, else built once with cargo (release).
pub fn rouge_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ROUGE_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "rouge-appliance",
                "--bin",
                "rouge",
            ])
            .current_dir(repo())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building rouge failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"));
        target.join("release").join("rouge")
    })
    .clone()
}

/// Path of a `rouge` built with DPDK support (`--features dpdk`): `$ROUGE_DPDK_BIN`,
/// else built once with cargo (a debug build, so it never replaces the release binary
/// of [`rouge_bin`]) and copied to `target/debug/rouge-dpdk`.
pub fn rouge_dpdk_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ROUGE_DPDK_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "rouge-appliance",
                "--features",
                "dpdk",
                "--bin",
                "rouge",
            ])
            .current_dir(repo())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building rouge with DPDK failed");
        let debug = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"))
            .join("debug");
        let bin = debug.join("rouge-dpdk");
        std::fs::copy(debug.join("rouge"), &bin).expect("copy rouge to rouge-dpdk");
        bin
    })
    .clone()
}

/// Panics with a clear message unless running as root.
pub fn require_root() {
    // The effective user id from /proc (no libc call needed).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("1");
    assert_eq!(
        uid, "0",
        "end-to-end tests need root for network namespaces (CI runs them as root)"
    );
}

/// A private test bed: namespaces `<prefix>client`, `<prefix>lb`, `<prefix>srv`.
pub struct Testbed {
    /// Namespace prefix, unique to this test.
    pub prefix: String,
    rouge: Option<Child>,
    /// Management socket of the appliance started on this bed.
    pub socket: PathBuf,
    /// Scratch directory of this test.
    pub dir: PathBuf,
    servers: Vec<Child>,
    tagged: Vec<(String, Child)>,
    /// The `rouge` binary this bed's appliance runs (default [`rouge_bin`]).
    bin: Option<PathBuf>,
}

impl Testbed {
    /// Builds a private test bed (`scripts/testbed.sh up PREFIX`).
    pub fn up(kernel: bool) -> Testbed {
        Testbed::up_with_queues(kernel, 1)
    }

    /// Builds a private test bed whose veths have `queues` transmit and receive queues
    /// each (`scripts/testbed.sh up PREFIX --queues N`), for several AF_XDP workers.
    pub fn up_with_queues(kernel: bool, queues: u32) -> Testbed {
        require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "rt{}x{}-",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("rouge-e2e-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // Configurations derived from the test bed's are written here: their relative
        // TLS paths (`tls/…`) resolve against this directory.
        std::os::unix::fs::symlink(repo().join("appliance/configs/tls"), dir.join("tls"))
            .expect("tls link in the scratch dir");
        let bed = Testbed {
            socket: dir.join("rouge.sock"),
            prefix,
            rouge: None,
            dir,
            servers: Vec::new(),
            tagged: Vec::new(),
            bin: None,
        };
        let mut args = vec!["up".to_string(), bed.prefix.clone()];
        if kernel {
            args.push("--kernel".into());
        }
        if queues > 1 {
            args.extend(["--queues".into(), queues.to_string()]);
        }
        let out = Command::new("bash")
            .arg(repo().join("scripts/testbed.sh"))
            .args(&args)
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bed
    }

    /// The namespace of a role: `client`, `lb` or `srv`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}{}", self.prefix, role)
    }

    /// Starts `rouge run` in the appliance namespace with `config` and extra arguments,
    /// and waits until its management socket answers.
    pub fn start_rouge(&mut self, config: &Path, extra: &[&str]) {
        self.start_rouge_bin(&rouge_bin(), config, extra)
    }

    /// Like [`Testbed::start_rouge`] with another `rouge` binary (e.g.
    /// [`rouge_dpdk_bin`]); the bed's CLI commands use it too.
    pub fn start_rouge_bin(&mut self, bin: &Path, config: &Path, extra: &[&str]) {
        self.bin = Some(bin.to_path_buf());
        let log = std::fs::File::create(self.dir.join("rouge.log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb")])
            .arg(bin)
            .args(["run", "--config"])
            .arg(config)
            .arg("--socket")
            .arg(&self.socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rouge");
        self.rouge = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = self.rouge_json(&["show", "stats"]) {
                if v["workers"]
                    .as_array()
                    .map(|w| w.iter().all(|w| w["running"] == true))
                    == Some(true)
                {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.rouge.as_mut().map(|c| c.try_wait()) {
                panic!("rouge exited at start ({status}): {}", self.rouge_log());
            }
            assert!(
                Instant::now() < deadline,
                "rouge did not come up: {}",
                self.rouge_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The appliance's log so far.
    pub fn rouge_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rouge.log")).unwrap_or_default()
    }

    /// True while the appliance process runs.
    pub fn rouge_alive(&mut self) -> bool {
        matches!(self.rouge.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGTERM to the appliance and waits (bounded) for it to exit; returns its status code.
    pub fn stop_rouge(&mut self) -> Option<i32> {
        let mut child = self.rouge.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Runs a `rouge` CLI command against this bed's appliance.
    pub fn rouge_cli(&self, args: &[&str]) -> Output {
        Command::new(self.bin.clone().unwrap_or_else(rouge_bin))
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run rouge cli")
    }

    /// Runs `rouge <args> --json` and parses the answer.
    pub fn rouge_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.rouge_cli(&a);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Runs a command in a namespace (bounded by `timeout` through coreutils `timeout`).
    pub fn exec(&self, role: &str, timeout: Duration, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(role),
                "timeout",
                &format!("{}", timeout.as_secs().max(1)),
            ])
            .args(cmd)
            .output()
            .expect("run command in namespace")
    }

    /// Starts a long-running process in a namespace; it is killed when the bed drops.
    pub fn spawn(&mut self, role: &str, cmd: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        self.servers.push(child);
    }
}

impl Testbed {
    /// Like [`Testbed::spawn`], remembering the process under `tag` so a test can end
    /// it on purpose (a server dying).
    pub fn spawn_tagged(&mut self, role: &str, tag: &str, cmd: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        self.tagged.push((tag.to_string(), child));
    }

    /// Ends the process started under `tag` (by its PID) and waits for it.
    pub fn kill_tagged(&mut self, tag: &str) {
        if let Some(i) = self.tagged.iter().position(|(t, _)| t == tag) {
            let (_, mut c) = self.tagged.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- rouge log ({}) ---\n{}", self.prefix, self.rouge_log());
        }
        self.stop_rouge();
        for (_, mut c) in self.tagged.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for mut c in self.servers.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash")
            .arg(repo().join("scripts/testbed.sh"))
            .args(["down", &self.prefix])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Text of a command's standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The testbed configuration shipped with the appliance.
pub fn testbed_config() -> PathBuf {
    repo().join("appliance/configs/testbed.toml")
}

/// The test bed's configuration with `driver` (`afpacket`: [`testbed_config`]; `afxdp`,
/// `dpdk`: `appliance/configs/testbed-DRIVER.toml`).
pub fn testbed_config_for(driver: &str) -> PathBuf {
    match driver {
        "afpacket" => testbed_config(),
        d => repo().join(format!("appliance/configs/testbed-{d}.toml")),
    }
}
