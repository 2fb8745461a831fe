//! The port drivers in the configuration: which fields each driver takes
//! (`queues`, `pci`, `vdev`, `[system] dpdk_args`), how they fit the number of
//! workers, and what DPDK's EAL is given to find its devices.
//!
//! | driver     | fields                       | workers                                  |
//! |------------|------------------------------|------------------------------------------|
//! | `afpacket` | `rx_ring`                    | any: a fanout group spreads the frames   |
//! | `afxdp`    | `queues` (default: workers)  | one queue of every interface per worker  |
//! | `dpdk`     | `pci` or `vdev`, `queues`    | one queue pair of every device per worker|
//!
//! The checks here are pure (no machine is looked at); what a driver needs from the
//! machine (root, hugepages, a bound NIC) is `rouge check`'s report, in
//! [`crate::readiness`].

use super::model::{Config, Driver, InterfaceCfg};
use super::validate::Checker;

/// Workers the configuration runs (`[system] cores`, default one).
pub fn workers(cfg: &Config) -> usize {
    cfg.system.cores.as_ref().map_or(1, |c| c.len().max(1))
}

/// True when this `rouge` was built with DPDK support (cargo feature `dpdk`).
pub const DPDK_BUILT: bool = cfg!(feature = "dpdk");

/// The AF_XDP queues `itf` binds with `workers` workers: `queues`, else one per worker.
pub fn afxdp_queues(itf: &InterfaceCfg, workers: usize) -> u32 {
    itf.queues.unwrap_or(workers as u32)
}

/// The DPDK queue pairs `itf` opens with `workers` workers: `queues`, else one per
/// worker.
pub fn dpdk_queues(itf: &InterfaceCfg, workers: usize) -> u32 {
    itf.queues.unwrap_or(workers as u32)
}

/// A PCI address in the form DPDK names its ethdev (`0000:00:04.0`, lower case), from
/// `DDDD:BB:DD.F` or `BB:DD.F`; `None` when it is not one.
pub fn pci_address(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let full = if t.matches(':').count() == 1 {
        format!("0000:{t}")
    } else {
        t
    };
    let (dom_bus_dev, func) = full.split_once('.')?;
    let parts: Vec<&str> = dom_bus_dev.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let ok = parts.len() == 3
        && hex(parts[0], 4)
        && hex(parts[1], 2)
        && hex(parts[2], 2)
        && u8::from_str_radix(parts[2], 16).is_ok_and(|d| d < 32)
        && func.len() == 1
        && func.chars().all(|c| ('0'..='7').contains(&c));
    ok.then_some(full)
}

/// The ethdev name of a vdev (`net_af_packet0` of `net_af_packet0,iface=lb-c`).
pub fn vdev_name(vdev: &str) -> &str {
    vdev.split(',').next().unwrap_or("").trim()
}

/// The value of `key=` in a vdev's arguments (`iface` of `net_af_packet0,iface=lb-c`).
pub fn vdev_arg<'a>(vdev: &'a str, key: &str) -> Option<&'a str> {
    vdev.split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// The ethdev name DPDK gives a `driver = "dpdk"` interface: its normalised PCI address
/// or its vdev's name.
pub fn dpdk_device(itf: &InterfaceCfg) -> Option<String> {
    match (&itf.pci, &itf.vdev) {
        (Some(p), _) => pci_address(p),
        (None, Some(v)) => Some(vdev_name(v).to_string()),
        (None, None) => None,
    }
}

/// True when the EAL runs without hugepages (`--no-huge` in `[system] dpdk_args`).
pub fn dpdk_no_huge(cfg: &Config) -> bool {
    cfg.system.dpdk_args.iter().any(|a| a == "--no-huge")
}

/// The EAL arguments for this configuration: every DPDK device (`-a PCI` or `--vdev`,
/// `--no-pci` when no NIC is named), the main lcore on `main_core` (unless
/// `dpdk_args` names lcores itself), `--in-memory` (no files shared with other DPDK
/// processes; with `--no-huge`, which it does not combine with, `--no-shconf`),
/// `--no-telemetry`, then `[system] dpdk_args`.
pub fn eal_args(cfg: &Config, main_core: usize) -> Vec<String> {
    let mut args = Vec::new();
    let extra = &cfg.system.dpdk_args;
    let dpdk = cfg.interfaces.iter().filter(|i| i.driver == Driver::Dpdk);
    let mut pci = false;
    for itf in dpdk {
        if let Some(p) = itf.pci.as_deref().and_then(pci_address) {
            args.extend(["-a".to_string(), p]);
            pci = true;
        } else if let Some(v) = &itf.vdev {
            args.extend(["--vdev".to_string(), v.clone()]);
        }
    }
    if !pci {
        args.push("--no-pci".into());
    }
    let names_lcores = extra.iter().any(|a| {
        a == "-l"
            || a == "-c"
            || a == "--lcores"
            || a.starts_with("--lcores=")
            || (a.starts_with("-l") && a.len() > 2)
    });
    if !names_lcores {
        args.extend(["-l".to_string(), main_core.to_string()]);
    }
    let private = if dpdk_no_huge(cfg) {
        "--no-shconf"
    } else {
        "--in-memory"
    };
    if !extra
        .iter()
        .any(|e| e == "--in-memory" || e == "--no-shconf")
    {
        args.push(private.into());
    }
    if !extra.iter().any(|e| e == "--no-telemetry") {
        args.push("--no-telemetry".into());
    }
    args.extend(extra.iter().cloned());
    args
}

/// Problems of the interfaces' drivers with `workers` workers: (interface index,
/// field, problem, fix). Used by validation (workers from `[system] cores`) and by
/// `rouge run` when `--cores` overrides them.
pub fn worker_problems(cfg: &Config, workers: usize) -> Vec<(usize, &'static str, String, String)> {
    let mut out = Vec::new();
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        match itf.driver {
            Driver::Afpacket => {}
            Driver::Afxdp => {
                let q = afxdp_queues(itf, workers);
                if q as usize != workers {
                    out.push((
                        i,
                        "queues",
                        format!(
                            "queues = {q} but {workers} worker(s) run: each worker drives one queue of every AF_XDP interface"
                        ),
                        format!(
                            "set queues = {workers} (the interface needs that many queues: `ethtool -l {}`), or run {q} worker(s) with [system] cores (a veth has one queue: queues = 1 and one worker)",
                            itf.name
                        ),
                    ));
                }
            }
            Driver::Dpdk => {
                let q = dpdk_queues(itf, workers);
                if q as usize != workers {
                    out.push((
                        i,
                        "queues",
                        format!(
                            "queues = {q} but {workers} worker(s) run: each worker drives one queue pair of every DPDK interface"
                        ),
                        format!(
                            "set queues = {workers} (the device needs that many queue pairs; a vdev says so, e.g. net_af_packet0,iface=lb-c,qpairs={workers}), or run {q} worker(s) with [system] cores"
                        ),
                    ));
                } else if let Some(v) = itf.vdev.as_deref().filter(|_| q > 1) {
                    // net_af_packet opens one queue pair unless told otherwise.
                    let pairs = vdev_arg(v, "qpairs").and_then(|n| n.parse::<u32>().ok());
                    if vdev_name(v).starts_with("net_af_packet") && pairs.unwrap_or(1) < q {
                        out.push((
                            i,
                            "vdev",
                            format!(
                                "`{v}` has {} queue pair(s), but {q} workers each drive one",
                                pairs.unwrap_or(1)
                            ),
                            format!("add ,qpairs={q} to the vdev"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Checks the driver fields of every interface and `[system] dpdk_args`.
pub(super) fn check(c: &mut Checker, cfg: &Config) {
    let mut devices: Vec<(String, usize)> = Vec::new();
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let table = "interface";
        match itf.driver {
            Driver::Afpacket | Driver::Afxdp => {
                for (field, set) in [("pci", itf.pci.is_some()), ("vdev", itf.vdev.is_some())] {
                    if set {
                        c.err(
                            table,
                            Some(i),
                            field,
                            format!("`{field}` names a DPDK device, but the driver is `{}`", itf.driver.name()),
                            "set driver = \"dpdk\", or remove the field and give the kernel's interface name in `name`",
                        );
                    }
                }
                if itf.driver == Driver::Afxdp && !itf.tx_path.is_auto() {
                    c.err(
                        table,
                        Some(i),
                        "tx_path",
                        "`tx_path` chooses how an AF_PACKET port sends; AF_XDP sends from its UMEM"
                            .into(),
                        "remove the line, or set driver = \"afpacket\"",
                    );
                }
                if itf.driver == Driver::Afpacket && itf.queues.is_some() {
                    c.err(
                        table,
                        Some(i),
                        "queues",
                        "`queues` is for afxdp and dpdk; AF_PACKET spreads frames over every worker with a fanout group".into(),
                        "remove the line, or set driver = \"afxdp\"",
                    );
                }
                if let Some(q) = itf.queues {
                    if !(1..=256).contains(&q) {
                        c.err(
                            table,
                            Some(i),
                            "queues",
                            format!("{q} is out of range"),
                            "use 1 to 256, one queue per worker (or remove it: one per worker)",
                        );
                    }
                }
            }
            Driver::Dpdk => {
                if !itf.tx_path.is_auto() {
                    c.err(
                        table,
                        Some(i),
                        "tx_path",
                        "`tx_path` chooses how an AF_PACKET port sends; a DPDK device sends through its PMD".into(),
                        "remove the line, or set driver = \"afpacket\"",
                    );
                }
                if !DPDK_BUILT {
                    c.err(
                        table,
                        Some(i),
                        "driver",
                        "driver `dpdk` needs a rouge built with DPDK support, and this one was built without it".into(),
                        "rebuild with `cargo build --release -p rouge-appliance --features dpdk` (needs libdpdk-dev, libclang-dev and pkg-config), or use driver = \"afxdp\" or \"afpacket\"",
                    );
                }
                check_dpdk_device(c, i, itf, &mut devices);
                if let Some(q) = itf.queues.filter(|q| !(1..=256).contains(q)) {
                    c.err(
                        table,
                        Some(i),
                        "queues",
                        format!("{q} is out of range"),
                        "use 1 to 256, one queue pair per worker (or remove it: one per worker)",
                    );
                }
            }
        }
    }
    let workers = workers(cfg);
    for (i, field, problem, fix) in worker_problems(cfg, workers) {
        // Out-of-range queues were reported above already.
        if field != "queues"
            || cfg.interfaces[i]
                .queues
                .is_none_or(|q| (1..=256).contains(&q))
        {
            c.err("interface", Some(i), field, problem, fix);
        }
    }
    if let Some(a) = cfg
        .system
        .dpdk_args
        .iter()
        .find(|a| a.is_empty() || a.contains('\0'))
    {
        c.err(
            "system",
            None,
            "dpdk_args",
            format!("{a:?} is not an EAL argument"),
            "give one argument per element, e.g. dpdk_args = [\"--no-huge\", \"-m\", \"256\"]",
        );
    }
}

fn check_dpdk_device(
    c: &mut Checker,
    i: usize,
    itf: &InterfaceCfg,
    devices: &mut Vec<(String, usize)>,
) {
    let table = "interface";
    match (&itf.pci, &itf.vdev) {
        (None, None) => c.err(
            table,
            Some(i),
            "driver",
            "a DPDK port needs its device".into(),
            "add pci = \"0000:00:04.0\" (a NIC bound to vfio-pci; `dpdk-devbind.py --status` lists them) or vdev = \"net_af_packet0,iface=lb-c\"",
        ),
        (Some(_), Some(_)) => c.err(
            table,
            Some(i),
            "vdev",
            "both `pci` and `vdev` are given".into(),
            "keep one: pci for a NIC, vdev for a virtual device",
        ),
        (Some(p), None) if pci_address(p).is_none() => c.err(
            table,
            Some(i),
            "pci",
            format!("`{p}` is not a PCI address"),
            "write DOMAIN:BUS:DEVICE.FUNCTION as `lspci -D` shows it, e.g. pci = \"0000:00:04.0\"",
        ),
        (None, Some(v))
            if !vdev_name(v).starts_with("net_")
                || vdev_name(v).len() <= 4
                || v.chars().any(char::is_whitespace) =>
        {
            c.err(
                table,
                Some(i),
                "vdev",
                format!("`{v}` is not a DPDK network vdev"),
                "write DRIVER<N>[,KEY=VALUE…] without spaces, e.g. vdev = \"net_af_packet0,iface=lb-c\" or \"net_af_xdp0,iface=lb-c\"",
            )
        }
        _ => {}
    }
    if let Some(dev) = dpdk_device(itf) {
        if let Some((_, first)) = devices.iter().find(|(d, _)| *d == dev) {
            let field = if itf.pci.is_some() { "pci" } else { "vdev" };
            c.err(
                table,
                Some(i),
                field,
                format!("device `{dev}` is already interface[{first}]"),
                "give each interface its own device (vdevs: number them, net_af_packet0, net_af_packet1, …)",
            );
        } else {
            devices.push((dev, i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_are_normalised_or_refused() {
        assert_eq!(pci_address("0000:00:04.0").as_deref(), Some("0000:00:04.0"));
        assert_eq!(pci_address("00:1F.7").as_deref(), Some("0000:00:1f.7"));
        for bad in [
            "",
            "00:04",
            "0000:00:04.8",
            "0000:00:40.0",
            "lb-c",
            "0:0:4.0",
        ] {
            assert_eq!(pci_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn vdev_names_and_arguments_are_read() {
        let v = "net_af_xdp0,iface=lb-c,start_queue=0";
        assert_eq!(vdev_name(v), "net_af_xdp0");
        assert_eq!(vdev_arg(v, "iface"), Some("lb-c"));
        assert_eq!(vdev_arg(v, "queue_count"), None);
        assert_eq!(vdev_name("net_ring0"), "net_ring0");
    }

    fn cfg_with(ifs: &[(&str, Driver, Option<&str>)], cores: usize, extra: &[&str]) -> Config {
        let mut cfg = Config::default();
        cfg.system.cores = Some((0..cores).collect());
        cfg.system.dpdk_args = extra.iter().map(|s| s.to_string()).collect();
        for (name, driver, dev) in ifs {
            cfg.interfaces.push(InterfaceCfg {
                name: name.to_string(),
                driver: *driver,
                rx_ring: Default::default(),
                tx_path: Default::default(),
                queues: None,
                pci: dev.filter(|d| !d.starts_with("net_")).map(Into::into),
                vdev: dev.filter(|d| d.starts_with("net_")).map(Into::into),
                shaping_rate: None,
                shaping_burst: None,
            });
        }
        cfg
    }

    #[test]
    fn eal_arguments_name_every_device_and_respect_the_operators_own() {
        let cfg = cfg_with(
            &[
                ("lb-c", Driver::Dpdk, Some("net_af_packet0,iface=lb-c")),
                ("lb-s", Driver::Afpacket, None),
                ("nic", Driver::Dpdk, Some("00:04.0")),
            ],
            1,
            &["--no-huge", "-m", "128"],
        );
        assert_eq!(
            eal_args(&cfg, 3).join(" "),
            "--vdev net_af_packet0,iface=lb-c -a 0000:00:04.0 -l 3 --no-shconf --no-telemetry --no-huge -m 128"
        );
        assert!(dpdk_no_huge(&cfg));
        let cfg = cfg_with(
            &[("lb-c", Driver::Dpdk, Some("net_ring0"))],
            1,
            &["--lcores", "0@0", "--in-memory"],
        );
        let args = eal_args(&cfg, 1).join(" ");
        assert_eq!(
            args,
            "--vdev net_ring0 --no-pci --no-telemetry --lcores 0@0 --in-memory"
        );
        assert!(!dpdk_no_huge(&cfg));
        let cfg = cfg_with(&[("nic", Driver::Dpdk, Some("0000:00:04.0"))], 1, &[]);
        assert_eq!(
            eal_args(&cfg, 0).join(" "),
            "-a 0000:00:04.0 -l 0 --in-memory --no-telemetry"
        );
    }

    #[test]
    fn queues_must_match_the_workers() {
        let mut cfg = cfg_with(&[("lb-c", Driver::Afxdp, None)], 2, &[]);
        assert!(
            worker_problems(&cfg, 2).is_empty(),
            "default: one per worker"
        );
        cfg.interfaces[0].queues = Some(1);
        let p = worker_problems(&cfg, 2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1, "queues");
        assert!(p[0].2.contains("queues = 1 but 2 worker(s)"), "{}", p[0].2);
        assert!(p[0].3.contains("a veth has one queue"), "{}", p[0].3);
        assert!(worker_problems(&cfg, 1).is_empty());
        let mut cfg = cfg_with(&[("lb-c", Driver::Dpdk, Some("net_ring0"))], 2, &[]);
        assert!(
            worker_problems(&cfg, 2).is_empty(),
            "default: one per worker"
        );
        cfg.interfaces[0].queues = Some(1);
        let p = worker_problems(&cfg, 2);
        assert_eq!((p.len(), p[0].1), (1, "queues"));
        assert!(p[0].3.contains("qpairs=2"), "{}", p[0].3);
        assert!(worker_problems(&cfg, 1).is_empty());
        // net_af_packet opens one queue pair unless its arguments ask for more.
        let mut cfg = cfg_with(
            &[("lb-c", Driver::Dpdk, Some("net_af_packet0,iface=lb-c"))],
            2,
            &[],
        );
        let p = worker_problems(&cfg, 2);
        assert_eq!((p.len(), p[0].1), (1, "vdev"));
        assert!(p[0].3.contains(",qpairs=2"), "{}", p[0].3);
        cfg.interfaces[0].vdev = Some("net_af_packet0,iface=lb-c,qpairs=2".into());
        assert!(worker_problems(&cfg, 2).is_empty());
    }
}
