//! What the driver tests against the real kernel share (`afpacket.rs`, `afxdp.rs`,
//! `dpdk.rs`): the root check, `ip(8)`, a private network namespace with a veth pair
//! that removes itself, test frames, and burst send/receive helpers over any [`Port`].
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rouge_drivers::{netns, Burst, MacAddr, PacketPool, Port};

/// IEEE local experimental EtherType, so no stack on the path answers our test frames.
pub const ETHERTYPE_TEST: u16 = 0x88b5;

/// True when running as root; otherwise says the tests are skipped.
pub fn root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("SKIPPED: the namespace tests need root (namespaces, raw and XDP sockets)");
    }
    euid == 0
}

/// Runs `ip ARGS`, panicking with its error output when it fails; returns its output.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip(8)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private network namespace (`<prefix>-<pid>-<n>`) with a veth pair `va` / `vb` of
/// `queues` queues each, both up with the given MAC addresses, IPv6 off so the kernel
/// sends nothing on its own. Deleted on drop, also when a test fails.
pub struct TestNs {
    /// The namespace's name.
    pub name: String,
}

impl TestNs {
    /// Creates the namespace and its veth pair.
    pub fn new(prefix: &str, queues: u32, mac_a: MacAddr, mac_b: MacAddr) -> TestNs {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        // From here on the guard removes the namespace, whatever fails next.
        let ns = TestNs { name };
        let n = ns.name.as_str();
        for key in ["all", "default"] {
            let k = format!("net.ipv6.conf.{key}.disable_ipv6=1");
            ip(&["netns", "exec", n, "sysctl", "-qw", &k]);
        }
        let q = queues.to_string();
        let qs = ["numtxqueues", &q, "numrxqueues", &q];
        let mut add = vec!["-n", n, "link", "add", "va"];
        add.extend(qs);
        add.extend(["type", "veth", "peer", "name", "vb"]);
        add.extend(qs);
        ip(&add);
        ip(&["-n", n, "link", "set", "va", "address", &mac_a.to_string()]);
        ip(&["-n", n, "link", "set", "vb", "address", &mac_b.to_string()]);
        for dev in ["lo", "va", "vb"] {
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        ns
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.name, f).expect("enter test namespace")
    }

    /// True when `dev` has an XDP program attached (`ip -d link` shows `prog/xdp`).
    pub fn has_xdp(&self, dev: &str) -> bool {
        let out = ip(&["-n", &self.name, "-d", "link", "show", "dev", dev]);
        out.contains("prog/xdp")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A frame from `src` to `dst` of `len` bytes with the test EtherType; the payload
/// starts with `seq` and is a pattern derived from it.
pub fn test_frame(dst: MacAddr, src: MacAddr, seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq.wrapping_mul(31)) as u8);
    }
    f.truncate(len);
    f
}

/// Transmits `frames` in one burst; returns what `tx_burst` returned.
pub fn send<P: Port>(port: &mut P, pool: &PacketPool, frames: &[Vec<u8>]) -> usize {
    let mut burst = Burst::new();
    for f in frames {
        burst.push(pool.alloc_from(f).expect("pool has room"));
    }
    let n = port.tx_burst(&mut burst);
    assert!(burst.is_empty(), "tx_burst leaves the burst empty");
    n
}

/// Receives until `want` frames arrived or `deadline` passed; returns the frames and
/// the sizes of the non-empty bursts.
pub fn recv<P: Port>(
    port: &mut P,
    pool: &PacketPool,
    want: usize,
    deadline: Duration,
) -> (Vec<Vec<u8>>, Vec<usize>) {
    let end = Instant::now() + deadline;
    let (mut frames, mut bursts) = (Vec::new(), Vec::new());
    while frames.len() < want && Instant::now() < end {
        let mut out = Burst::new();
        let n = port.rx_burst(pool, &mut out);
        assert_eq!(n, out.len());
        if n == 0 {
            port.wait_rx(Duration::from_millis(5));
            continue;
        }
        bursts.push(n);
        frames.extend(out.iter().map(|p| p.data().to_vec()));
    }
    (frames, bursts)
}
