//! `rouge check`'s report on the machine: what each driver of the configuration needs
//! (root, AF_XDP sockets, queues, hugepages, a NIC bound to vfio-pci) and what is
//! missing here.
//!
//! The facts are gathered once ([`Facts::probe`]: `/proc`, `/sys`, one AF_XDP socket)
//! and judged by a pure function ([`assess`]), so every verdict is tested with made-up
//! machines. A fact that depends on the network namespace (an interface that is not
//! visible) is a note, not a failure: `rouge check` may run outside the namespace that
//! `rouge run` will use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rouge_drivers::afxdp::AfXdpPort;

use crate::config::drivers;
use crate::config::model::{Config, Driver};

/// What was found about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The process runs as root (effective uid 0).
    pub root: bool,
    /// `AfXdpPort::check_support`'s answer (probed only with an `afxdp` interface).
    pub afxdp: Option<Result<(), String>>,
    /// Hugepages: total and free pages, page size in KiB.
    pub hugepages: Hugepages,
    /// Receive queues of each kernel interface the configuration names (`None`: not
    /// visible in this network namespace).
    pub queues: BTreeMap<String, Option<u32>>,
    /// The kernel driver bound to each PCI address (`None`: no such device; `Some("")`:
    /// no driver bound).
    pub pci: BTreeMap<String, Option<String>>,
}

/// Hugepages as `/proc/meminfo` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hugepages {
    /// Pages reserved.
    pub total: u64,
    /// Pages free.
    pub free: u64,
    /// Page size in KiB.
    pub size_kib: u64,
}

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A requirement that is met.
    Ok,
    /// Worth knowing; does not stop `rouge run`.
    Note,
    /// A requirement that is not met: `rouge run` will fail (or misbehave) here.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its weight.
    pub level: Level,
    /// What was found, and the fix when something is missing.
    pub text: String,
}

/// The report for one driver of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverReport {
    /// The driver.
    pub driver: Driver,
    /// The interfaces that use it.
    pub interfaces: Vec<String>,
    /// What the driver needs, in one sentence.
    pub needs: &'static str,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// PCI drivers DPDK's poll-mode drivers can use a NIC through.
const DPDK_PCI_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// What each driver needs.
pub fn needs(driver: Driver) -> &'static str {
    match driver {
        Driver::Afpacket => "root (CAP_NET_RAW), the interfaces up; any number of workers (a fanout group spreads the frames)",
        Driver::Afxdp => "root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF), a kernel with AF_XDP sockets, one queue of every interface per worker (zero-copy where the NIC's driver offers it)",
        Driver::Dpdk => "a rouge built with --features dpdk, root, hugepages (unless dpdk_args has --no-huge), each NIC bound to vfio-pci (or a vdev), one queue pair of every device per worker",
    }
}

impl Facts {
    /// Looks at this machine for what `cfg`'s drivers need.
    pub fn probe(cfg: &Config) -> Facts {
        let mut f = Facts {
            root: effective_uid() == Some(0),
            ..Facts::default()
        };
        if cfg.interfaces.iter().any(|i| i.driver == Driver::Afxdp) {
            f.afxdp = Some(AfXdpPort::check_support());
        }
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |name: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        f.hugepages = Hugepages {
            total: field("HugePages_Total:"),
            free: field("HugePages_Free:"),
            size_kib: field("Hugepagesize:"),
        };
        for itf in &cfg.interfaces {
            let kernel_if = match itf.driver {
                Driver::Dpdk => itf
                    .vdev
                    .as_deref()
                    .and_then(|v| drivers::vdev_arg(v, "iface")),
                _ => Some(itf.name.as_str()),
            };
            if let Some(name) = kernel_if {
                f.queues.insert(name.to_string(), rx_queues(name));
            }
            if let Some(addr) = itf.pci.as_deref().and_then(drivers::pci_address) {
                let dev = std::path::Path::new("/sys/bus/pci/devices").join(&addr);
                let bound = dev.exists().then(|| {
                    std::fs::read_link(dev.join("driver"))
                        .ok()
                        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .unwrap_or_default()
                });
                f.pci.insert(addr, bound);
            }
        }
        f
    }
}

/// The effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Receive queues of a kernel interface in this network namespace.
fn rx_queues(name: &str) -> Option<u32> {
    let dir = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("queues");
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count() as u32,
    )
}

/// Judges `facts` against what `cfg`'s drivers need: one report per driver in use.
pub fn assess(cfg: &Config, facts: &Facts) -> Vec<DriverReport> {
    let workers = drivers::workers(cfg);
    let mut out = Vec::new();
    for driver in Driver::ALL {
        let ifs: Vec<_> = cfg
            .interfaces
            .iter()
            .filter(|i| i.driver == driver)
            .collect();
        if ifs.is_empty() {
            continue;
        }
        let mut f = Vec::new();
        let mut push = |level, text: String| f.push(Finding { level, text });
        if facts.root {
            push(Level::Ok, "running as root".into());
        } else {
            push(
                Level::Missing,
                format!("not running as root: the {} driver needs it; fix: run rouge as root (or with the capabilities above)", driver.name()),
            );
        }
        match driver {
            Driver::Afpacket => {
                for itf in &ifs {
                    push_queues(&mut push, facts, &itf.name, None);
                }
            }
            Driver::Afxdp => {
                match &facts.afxdp {
                    Some(Ok(())) => push(
                        Level::Ok,
                        "AF_XDP sockets and XSKMAPs can be created".into(),
                    ),
                    Some(Err(e)) => push(Level::Missing, e.clone()),
                    None => {}
                }
                for itf in &ifs {
                    let q = drivers::afxdp_queues(itf, workers);
                    push_queues(&mut push, facts, &itf.name, Some((q, workers)));
                }
                if workers > 1 {
                    push(
                        Level::Note,
                        format!(
                            "{workers} workers: worker w drives queue w of every AF_XDP interface; the NIC (not Rouge) chooses each frame's queue, so a frame whose flow another worker owns is handed to that worker (counted as handoffs in `rouge show stats`)"
                        ),
                    );
                }
            }
            Driver::Dpdk => {
                if drivers::dpdk_no_huge(cfg) {
                    push(
                        Level::Ok,
                        "--no-huge: DPDK runs on ordinary memory (fine for vdevs and tests; a NIC wants hugepages)".into(),
                    );
                } else {
                    let h = facts.hugepages;
                    let mib = h.free * h.size_kib / 1024;
                    // Each port's mbuf pool is about 10 MiB; the EAL wants some more.
                    let want = 16 + 12 * ifs.len() as u64;
                    if mib >= want {
                        push(
                            Level::Ok,
                            format!("hugepages: {} of {} free ({mib} MiB)", h.free, h.total),
                        );
                    } else {
                        push(
                            Level::Missing,
                            format!(
                                "hugepages: {mib} MiB free ({} of {} pages), DPDK wants about {want} MiB for {} port(s); fix: reserve them (`echo 64 > /proc/sys/vm/nr_hugepages`, or scripts/setup.sh), or add \"--no-huge\" to [system] dpdk_args",
                                h.free,
                                h.total,
                                ifs.len()
                            ),
                        );
                    }
                }
                for itf in &ifs {
                    if let Some(addr) = itf.pci.as_deref().and_then(drivers::pci_address) {
                        push_pci(&mut push, facts, &itf.name, &addr);
                    } else if let Some(v) = &itf.vdev {
                        match drivers::vdev_arg(v, "iface") {
                            Some(k) => push_queues(&mut push, facts, k, None),
                            None => push(
                                Level::Ok,
                                format!("{}: virtual device {}", itf.name, drivers::vdev_name(v)),
                            ),
                        }
                    }
                }
                for (i, field, problem, fix) in drivers::worker_problems(cfg, workers) {
                    if cfg.interfaces[i].driver == Driver::Dpdk {
                        push(
                            Level::Missing,
                            format!("{}: {field}: {problem}; fix: {fix}", cfg.interfaces[i].name),
                        );
                    }
                }
                if workers > 1 {
                    push(
                        Level::Note,
                        format!("{workers} workers: worker w drives queue pair w of every DPDK device; the device (not Rouge) chooses each frame's queue, so a frame whose flow another worker owns is handed to that worker (counted as handoffs in `rouge show stats`)"),
                    );
                }
            }
        }
        out.push(DriverReport {
            driver,
            interfaces: ifs.iter().map(|i| i.name.clone()).collect(),
            needs: needs(driver),
            findings: f,
        });
    }
    out
}

/// The finding on a kernel interface: visible, and with enough queues (`Some((wanted,
/// workers))` for AF_XDP).
fn push_queues(
    push: &mut impl FnMut(Level, String),
    facts: &Facts,
    name: &str,
    afxdp: Option<(u32, usize)>,
) {
    match (facts.queues.get(name).copied().flatten(), afxdp) {
        (None, _) => push(
            Level::Note,
            format!("{name}: not visible in this network namespace; run `rouge check` where rouge will run (e.g. `ip netns exec rg-lb rouge check …`) to check it"),
        ),
        (Some(have), Some((want, workers))) if have < want => push(
            Level::Missing,
            format!(
                "{name}: {have} receive queue(s), but queues = {want} ({workers} worker(s), one queue each){}; fix: run {have} worker(s) with queues = {have}, or give the NIC more queues (`ethtool -L {name} combined {want}`)",
                if have == 1 {
                    ": a veth has one queue, so two workers cannot both get its frames"
                } else {
                    ""
                }
            ),
        ),
        (Some(have), Some((want, _))) => push(
            Level::Ok,
            format!("{name}: {have} receive queue(s), AF_XDP binds {want}"),
        ),
        (Some(_), None) => push(Level::Ok, format!("{name}: present")),
    }
}

/// The finding on a PCI NIC for DPDK: present and bound to a driver DPDK can use.
fn push_pci(push: &mut impl FnMut(Level, String), facts: &Facts, name: &str, addr: &str) {
    let bind = format!("`modprobe vfio-pci` (in a VM without an IOMMU: `echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode`), then `dpdk-devbind.py --bind=vfio-pci {addr}`");
    match facts.pci.get(addr) {
        None | Some(None) => push(
            Level::Missing,
            format!("{name}: no PCI device {addr} on this machine; fix: give the NIC's address as `lspci -D` or `dpdk-devbind.py --status` shows it"),
        ),
        Some(Some(d)) if DPDK_PCI_DRIVERS.contains(&d.as_str()) => {
            push(Level::Ok, format!("{name}: {addr} is bound to {d}"))
        }
        Some(Some(d)) if d.is_empty() => push(
            Level::Missing,
            format!("{name}: {addr} is bound to no driver; fix: {bind}"),
        ),
        Some(Some(d)) if d.starts_with("mlx") => push(
            Level::Note,
            format!("{name}: {addr} is bound to {d}: Mellanox NICs are driven by DPDK beside the kernel's driver (no rebinding)"),
        ),
        Some(Some(d)) => push(
            Level::Missing,
            format!("{name}: {addr} is bound to the kernel's {d}, not to a driver DPDK can use; fix: {bind}"),
        ),
    }
}

/// The report as `rouge check` prints it; the flag is true when something is missing.
pub fn render(reports: &[DriverReport]) -> (String, bool) {
    let mut out = String::new();
    let mut missing = false;
    for r in reports {
        let _ = writeln!(
            out,
            "driver {} ({}): needs {}",
            r.driver.name(),
            r.interfaces.join(", "),
            r.needs
        );
        for f in &r.findings {
            let tag = match f.level {
                Level::Ok => "ok",
                Level::Note => "note",
                Level::Missing => {
                    missing = true;
                    "MISSING"
                }
            };
            let _ = writeln!(out, "  {tag}: {}", f.text);
        }
    }
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::InterfaceCfg;

    fn itf(name: &str, driver: Driver) -> InterfaceCfg {
        InterfaceCfg {
            name: name.into(),
            driver,
            rx_ring: Default::default(),
            tx_path: Default::default(),
            queues: None,
            pci: None,
            vdev: None,
            shaping_rate: None,
            shaping_burst: None,
        }
    }

    fn root_machine() -> Facts {
        Facts {
            root: true,
            afxdp: Some(Ok(())),
            hugepages: Hugepages {
                total: 256,
                free: 256,
                size_kib: 2048,
            },
            queues: [("lb-c".to_string(), Some(1)), ("lb-s".to_string(), Some(1))].into(),
            pci: BTreeMap::new(),
        }
    }

    fn levels(r: &DriverReport) -> Vec<Level> {
        r.findings.iter().map(|f| f.level).collect()
    }

    #[test]
    fn afxdp_on_veths_with_one_worker_is_ready_and_two_workers_are_refused() {
        let mut cfg = Config {
            interfaces: vec![itf("lb-c", Driver::Afxdp), itf("lb-s", Driver::Afxdp)],
            ..Config::default()
        };
        let r = assess(&cfg, &root_machine());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].interfaces, ["lb-c", "lb-s"]);
        assert!(levels(&r[0]).iter().all(|l| *l == Level::Ok), "{r:?}");
        let (text, missing) = render(&r);
        assert!(!missing);
        assert!(
            text.starts_with("driver afxdp (lb-c, lb-s): needs root"),
            "{text}"
        );

        cfg.system.cores = Some(vec![0, 1]);
        let r = assess(&cfg, &root_machine());
        let (text, missing) = render(&r);
        assert!(missing, "{text}");
        assert!(
            text.contains("MISSING: lb-c: 1 receive queue(s), but queues = 2 (2 worker(s), one queue each): a veth has one queue, so two workers cannot both get its frames"),
            "{text}"
        );
        assert!(
            text.contains("note: 2 workers:") && text.contains("handed to that worker"),
            "{text}"
        );
    }

    #[test]
    fn what_is_missing_is_named_with_its_fix() {
        let cfg = Config {
            interfaces: vec![itf("lb-c", Driver::Afxdp), itf("lb-x", Driver::Afpacket)],
            ..Config::default()
        };
        let facts = Facts {
            root: false,
            afxdp: Some(Err("AF_XDP sockets are unavailable: (are you root?)".into())),
            ..root_machine()
        };
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(missing);
        assert!(
            text.contains("MISSING: not running as root: the afxdp driver"),
            "{text}"
        );
        assert!(
            text.contains("MISSING: AF_XDP sockets are unavailable"),
            "{text}"
        );
        assert!(
            text.contains("driver afpacket (lb-x)") && text.contains("note: lb-x: not visible"),
            "{text}"
        );
    }

    #[test]
    fn dpdk_needs_hugepages_or_no_huge_and_a_bound_nic() {
        let mut cfg = Config::default();
        let mut nic = itf("wan", Driver::Dpdk);
        nic.pci = Some("0000:00:04.0".into());
        let mut vdev = itf("lb-c", Driver::Dpdk);
        vdev.vdev = Some("net_af_packet0,iface=lb-c".into());
        cfg.interfaces = vec![nic, vdev];
        let mut facts = root_machine();
        facts.hugepages.free = 4;
        facts
            .pci
            .insert("0000:00:04.0".into(), Some("virtio-pci".into()));
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(missing);
        assert!(text.contains("MISSING: hugepages: 8 MiB free"), "{text}");
        assert!(
            text.contains("wan: 0000:00:04.0 is bound to the kernel's virtio-pci")
                && text.contains("dpdk-devbind.py --bind=vfio-pci 0000:00:04.0"),
            "{text}"
        );
        assert!(text.contains("ok: lb-c: present"), "{text}");

        facts.hugepages.free = 256;
        facts
            .pci
            .insert("0000:00:04.0".into(), Some("vfio-pci".into()));
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(!missing, "{text}");
        assert!(
            text.contains("ok: wan: 0000:00:04.0 is bound to vfio-pci"),
            "{text}"
        );

        facts.hugepages.free = 0;
        cfg.system.dpdk_args = vec!["--no-huge".into()];
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(!missing && text.contains("ok: --no-huge"), "{text}");
        cfg.system.cores = Some(vec![0, 1]);
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(
            missing
                && text.contains(
                    "lb-c: vdev: `net_af_packet0,iface=lb-c` has 1 queue pair(s), but 2 workers"
                ),
            "{text}"
        );
        cfg.interfaces[1].vdev = Some("net_af_packet0,iface=lb-c,qpairs=2".into());
        let (text, missing) = render(&assess(&cfg, &facts));
        assert!(!missing && text.contains("handed to that worker"), "{text}");
    }
}
