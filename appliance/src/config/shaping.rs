//! The shaping part of the configuration: checks of `[[class]]` tables and of the
//! interfaces' `shaping_rate`, and the [`ShapingPolicy`] built from them.

use std::collections::{HashMap, HashSet};

use rouge_pipelines::addr::Prefix;
use rouge_pipelines::shaper::policy::{ClassRules, NamedClass, Root};
use rouge_pipelines::shaper::{ClassConfig, ShapingPolicy};

use super::model::{ClassCfg, Config, VirtualType, DEFAULT_CLASS};
use super::validate::Checker;

/// Smallest root burst when the interface does not set `shaping_burst`.
pub const DEFAULT_ROOT_BURST: u64 = 16 * 1024;
/// Time of line rate the default root burst covers: a worker held off its core for
/// less than this (a long loop turn, a preemption) catches up afterwards instead of
/// losing the line rate it could not send. 16 KiB (0.66 ms at 200 Mbit/s) was too short
/// on a shared host; `perf/run shaping` reports the steady-state root rate (perf/README.md).
pub const DEFAULT_ROOT_BURST_TIME_NS: u64 = 2_000_000;
/// Largest burst a class or root may have (and the default root burst's cap).
const MAX_BURST: u64 = 64 << 20;

/// The root burst of an interface that does not set `shaping_burst`: 2 ms of its line
/// rate, at least [`DEFAULT_ROOT_BURST`] and at most 64 MiB (the largest `shaping_burst`).
pub fn default_root_burst(rate_bps: u64) -> u64 {
    let bytes = rate_bps as u128 * DEFAULT_ROOT_BURST_TIME_NS as u128 / 8 / 1_000_000_000;
    (bytes.min(MAX_BURST as u128) as u64).max(DEFAULT_ROOT_BURST)
}

/// Smallest burst: one full-size Ethernet frame, or nothing could ever be sent.
const MIN_BURST: u64 = 1514;

/// The classes as the data plane sees them: the configured ones, plus the implicit
/// `default` class at the end when the configuration does not define it.
pub fn effective_classes(cfg: &Config) -> Vec<ClassCfg> {
    let mut classes = cfg.classes.clone();
    if !classes.iter().any(|c| c.name == DEFAULT_CLASS) {
        classes.push(ClassCfg::named(DEFAULT_CLASS));
    }
    classes
}

/// True when any traffic is shaped.
pub fn enabled(cfg: &Config) -> bool {
    cfg.interfaces.iter().any(|i| i.shaping_rate.is_some())
}

/// Packet buffers the shaping queues can hold on one worker at most.
pub fn queue_slots(cfg: &Config) -> usize {
    let roots = cfg
        .interfaces
        .iter()
        .filter(|i| i.shaping_rate.is_some())
        .count();
    roots
        * effective_classes(cfg)
            .iter()
            .map(|c| c.queue_limit)
            .sum::<usize>()
}

/// Checks classes and shaping roots.
pub(super) fn check(c: &mut Checker, cfg: &Config) {
    c.unique("class", "name", cfg.classes.iter().map(|k| k.name.as_str()));
    let mut claimed_virtuals = HashSet::new();
    let mut claimed_pools = HashSet::new();
    let mut claimed_members = HashSet::new();
    let mut claimed_clients = HashSet::new();
    for (i, k) in cfg.classes.iter().enumerate() {
        if let Some(p) = &k.parent {
            if !cfg.classes[..i].iter().any(|x| &x.name == p) {
                let fix = if cfg.classes.iter().any(|x| &x.name == p) {
                    format!("define class `{p}` before its children")
                } else {
                    "name a class defined above this one, or remove parent for a child of the root"
                        .into()
                };
                c.err(
                    "class",
                    Some(i),
                    "parent",
                    format!("no class `{p}` is defined before this one"),
                    fix,
                );
            }
        }
        if !(1..=1000).contains(&k.weight) {
            c.err(
                "class",
                Some(i),
                "weight",
                format!("{} is out of range", k.weight),
                "use 1 to 1000",
            );
        }
        if k.priority.is_some_and(|p| p > 7) {
            c.err(
                "class",
                Some(i),
                "priority",
                format!("{} is out of range", k.priority.unwrap_or(0)),
                "use 0 (served first) to 7",
            );
        }
        if k.priority.is_some() && k.ceiling.is_none() {
            c.err(
                "class",
                Some(i),
                "ceiling",
                "a strict-priority class without a ceiling can starve every other class".into(),
                "add ceiling = \"20Mbit\" (or whatever the class may take at most)",
            );
        }
        for (field, rate) in [("guaranteed", k.guaranteed), ("ceiling", k.ceiling)] {
            if rate.is_some_and(|r| r.bps() == 0) {
                c.err(
                    "class",
                    Some(i),
                    field,
                    "is zero".into(),
                    "use a positive rate such as \"10Mbit\", or remove the line",
                );
            }
        }
        if let (Some(g), Some(m)) = (k.guaranteed, k.ceiling) {
            if g > m {
                c.err(
                    "class",
                    Some(i),
                    "guaranteed",
                    format!("{g} is above the ceiling {m}"),
                    "make the guarantee at most the ceiling",
                );
            }
        }
        if !(MIN_BURST..=MAX_BURST).contains(&k.burst) {
            c.err(
                "class",
                Some(i),
                "burst",
                format!("{} bytes is out of range", k.burst),
                "use 1514 (one full frame) to 67108864 bytes",
            );
        }
        if !(1..=65_536).contains(&k.queue_limit) {
            c.err(
                "class",
                Some(i),
                "queue_limit",
                format!("{} is out of range", k.queue_limit),
                "use 1 to 65536 packets",
            );
        }
        if k.queue_bytes.is_some_and(|b| b < MIN_BURST) {
            c.err(
                "class",
                Some(i),
                "queue_bytes",
                "is smaller than one full frame".into(),
                "use at least 1514 bytes, or remove the line",
            );
        }
        for v in &k.virtuals {
            match cfg.virtuals.iter().find(|x| &x.name == v) {
                None => c.err("class", Some(i), "virtuals", format!("no virtual server named `{v}`"), "name a [[virtual]] of type fastl4 or standard"),
                Some(x) if !matches!(x.kind, VirtualType::Fastl4 | VirtualType::Standard) => c.err("class", Some(i), "virtuals", format!("virtual server `{v}` is neither fastl4 nor standard"), "classes take fastl4 and standard virtual servers; forwarded traffic goes to class `default`"),
                Some(_) if !claimed_virtuals.insert(v.as_str()) => c.err("class", Some(i), "virtuals", format!("virtual server `{v}` is already in another class"), "list each virtual server in one class"),
                Some(_) => {}
            }
        }
        for p in &k.pools {
            if !cfg.pools.iter().any(|x| &x.name == p) {
                c.err(
                    "class",
                    Some(i),
                    "pools",
                    format!("no pool named `{p}`"),
                    "name a [[pool]]",
                );
            } else if !claimed_pools.insert(p.as_str()) {
                c.err(
                    "class",
                    Some(i),
                    "pools",
                    format!("pool `{p}` is already in another class"),
                    "list each pool in one class",
                );
            }
        }
        for m in &k.members {
            if !cfg
                .pools
                .iter()
                .any(|p| p.members.iter().any(|x| x.address == *m))
            {
                c.err(
                    "class",
                    Some(i),
                    "members",
                    format!("no pool has member {m}"),
                    "name a member ADDRESS:PORT of a [[pool]]",
                );
            } else if !claimed_members.insert(*m) {
                c.err(
                    "class",
                    Some(i),
                    "members",
                    format!("member {m} is already in another class"),
                    "list each member in one class",
                );
            }
        }
        for n in &k.clients {
            match n.parse::<Prefix>() {
                Err(e) => c.err(
                    "class",
                    Some(i),
                    "clients",
                    format!("`{n}`: {e}"),
                    "write client networks such as \"198.18.1.0/25\"",
                ),
                Ok(p) if !claimed_clients.insert(p) => c.err(
                    "class",
                    Some(i),
                    "clients",
                    format!("{p} is already in another class"),
                    "list each client network in one class",
                ),
                Ok(_) => {}
            }
        }
    }

    let classes = effective_classes(cfg);
    let guaranteed: u128 = classes
        .iter()
        .filter_map(|k| k.guaranteed)
        .map(|r| r.bps() as u128)
        .sum();
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        if let Some(rate) = iface.shaping_rate {
            if rate.bps() == 0 {
                c.err(
                    "interface",
                    Some(i),
                    "shaping_rate",
                    "is zero".into(),
                    "use the line rate of the link, e.g. \"200Mbit\"",
                );
            } else if guaranteed > rate.bps() as u128 {
                c.err("interface", Some(i), "shaping_rate", format!("{rate} is less than the classes' guaranteed rates together ({guaranteed} bit/s)"), "raise the shaping rate or lower the guarantees");
            }
        }
        if let Some(b) = iface.shaping_burst {
            if !(MIN_BURST..=MAX_BURST).contains(&b) {
                c.err(
                    "interface",
                    Some(i),
                    "shaping_burst",
                    format!("{b} bytes is out of range"),
                    "use 1514 to 67108864 bytes",
                );
            }
            if iface.shaping_rate.is_none() {
                c.err(
                    "interface",
                    Some(i),
                    "shaping_burst",
                    "is set without shaping_rate".into(),
                    "add shaping_rate = \"200Mbit\", or remove the line",
                );
            }
        }
    }
    if !cfg.classes.is_empty() && !enabled(cfg) {
        c.err("class", Some(0), "name", "classes are defined but no interface shapes its egress".into(), "add shaping_rate = \"200Mbit\" (the line rate) to the [[interface]] the traffic leaves by");
    }
    let slots = queue_slots(cfg);
    if slots > cfg.system.pool_size / 2 {
        c.err("system", None, "pool_size", format!("{} buffers cannot back the shaping queues ({slots} packets: queue_limit of every class on every shaped interface)", cfg.system.pool_size), format!("raise pool_size to at least {} or lower the classes' queue_limit", slots * 2));
    }
}

/// The policy of a validated configuration, `None` when no interface is shaped.
pub fn policy(cfg: &Config) -> Option<ShapingPolicy> {
    if !enabled(cfg) {
        return None;
    }
    let classes = effective_classes(cfg);
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.as_str(), i))
        .collect();
    let named = classes
        .iter()
        .map(|k| NamedClass {
            name: k.name.clone(),
            config: ClassConfig {
                parent: k.parent.as_deref().and_then(|p| index.get(p).copied()),
                weight: k.weight,
                priority: k.priority,
                guaranteed_bps: k.guaranteed.map(|r| r.bps()),
                ceiling_bps: k.ceiling.map(|r| r.bps()),
                burst_bytes: k.burst,
                queue_packets: k.queue_limit,
                queue_bytes: k.queue_bytes,
            },
        })
        .collect();
    let roots = cfg
        .interfaces
        .iter()
        .map(|i| {
            i.shaping_rate.map(|r| Root {
                rate_bps: r.bps(),
                burst_bytes: i
                    .shaping_burst
                    .unwrap_or_else(|| default_root_burst(r.bps())),
            })
        })
        .collect();
    let mut rules = ClassRules::default();
    for (ci, k) in classes.iter().enumerate() {
        for m in &k.members {
            rules.members.insert(*m, ci);
        }
        for v in &k.virtuals {
            rules.virtuals.insert(v.clone(), ci);
        }
        for n in &k.clients {
            if let Ok(p) = n.parse::<Prefix>() {
                rules.clients.push((p, ci));
            }
        }
    }
    // A pool's class takes the virtual servers using the pool that no class names.
    for (ci, k) in classes.iter().enumerate() {
        for p in &k.pools {
            for v in cfg.virtuals.iter().filter(|v| v.pool.as_deref() == Some(p)) {
                rules.virtuals.entry(v.name.clone()).or_insert(ci);
            }
        }
    }
    let default_class = index
        .get(DEFAULT_CLASS)
        .copied()
        .unwrap_or(classes.len() - 1);
    Some(ShapingPolicy::new(named, roots, default_class, rules))
}
