//! The shaping policy of one configuration snapshot: the named classes, the root of each
//! egress port, and the rules that assign a flow to a class.
//!
//! Classification runs once per flow (and again after a configuration change), never
//! per packet: the flow keeps the class it was given with the snapshot generation.

use crate::hashing::FastMap;
use std::net::{IpAddr, SocketAddr};

use super::{ClassConfig, ClassId, ShaperConfig};
use crate::addr::Prefix;

/// Deficit round robin quantum per unit of weight: one full-size Ethernet frame.
pub const QUANTUM_BYTES: u32 = 1514;

/// A class with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedClass {
    /// Name used by the configuration and the CLI.
    pub name: String,
    /// Its scheduling parameters.
    pub config: ClassConfig,
}

/// The shaping root of one egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    /// Line rate in bits/s.
    pub rate_bps: u64,
    /// Burst in bytes.
    pub burst_bytes: u64,
}

/// What assigns traffic to classes. The most specific rule wins: member, then virtual
/// server (pools are resolved into their virtual servers when the policy is built),
/// then the longest client prefix, then the default class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassRules {
    /// By pool member address and port.
    pub members: FastMap<SocketAddr, ClassId>,
    /// By virtual server name.
    pub virtuals: FastMap<String, ClassId>,
    /// By client network (any order; sorted longest first when the policy is built).
    pub clients: Vec<(Prefix, ClassId)>,
}

/// The policy: classes (a parent before its children), roots by port index, rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapingPolicy {
    classes: Vec<NamedClass>,
    roots: Vec<Option<Root>>,
    default_class: ClassId,
    rules: ClassRules,
}

impl ShapingPolicy {
    /// A policy; `default_class` must index `classes`, and every [`ShaperConfig`] it
    /// yields must validate (the configuration checks that first).
    pub fn new(
        classes: Vec<NamedClass>,
        roots: Vec<Option<Root>>,
        default_class: ClassId,
        mut rules: ClassRules,
    ) -> ShapingPolicy {
        rules
            .clients
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.bits()));
        ShapingPolicy {
            classes,
            roots,
            default_class,
            rules,
        }
    }

    /// The classes, by [`ClassId`].
    pub fn classes(&self) -> &[NamedClass] {
        &self.classes
    }

    /// The class named `name`.
    pub fn class_by_name(&self, name: &str) -> Option<ClassId> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The class that takes unclassified traffic.
    pub fn default_class(&self) -> ClassId {
        self.default_class
    }

    /// The root of egress port `port`, `None` when traffic leaving there is not shaped.
    pub fn root(&self, port: usize) -> Option<Root> {
        self.roots.get(port).copied().flatten()
    }

    /// Number of ports the policy knows about.
    pub fn port_count(&self) -> usize {
        self.roots.len()
    }

    /// The scheduler configuration of egress port `port`, if it is shaped.
    pub fn shaper_config(&self, port: usize) -> Option<ShaperConfig> {
        let root = self.root(port)?;
        Some(ShaperConfig {
            root_bps: root.rate_bps,
            root_burst_bytes: root.burst_bytes,
            quantum_bytes: QUANTUM_BYTES,
            classes: self.classes.iter().map(|c| c.config.clone()).collect(),
        })
    }

    /// The class of a flow of virtual server `virtual_name` from `client` to `member`.
    pub fn classify(&self, virtual_name: &str, member: SocketAddr, client: IpAddr) -> ClassId {
        if let Some(&c) = self.rules.members.get(&member) {
            return c;
        }
        if let Some(&c) = self.rules.virtuals.get(virtual_name) {
            return c;
        }
        self.rules
            .clients
            .iter()
            .find(|(p, _)| p.contains(client))
            .map_or(self.default_class, |&(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ShapingPolicy {
        let class = |name: &str| NamedClass {
            name: name.into(),
            config: ClassConfig::weighted(1),
        };
        let mut rules = ClassRules::default();
        rules.members.insert("198.18.2.13:5201".parse().unwrap(), 2);
        rules.virtuals.insert("gold".into(), 0);
        rules.clients.push(("198.18.1.0/24".parse().unwrap(), 1));
        rules.clients.push(("198.18.1.128/25".parse().unwrap(), 0));
        let root = Root {
            rate_bps: 200_000_000,
            burst_bytes: 16384,
        };
        ShapingPolicy::new(
            vec![
                class("gold"),
                class("bronze"),
                class("priority"),
                class("default"),
            ],
            vec![Some(root), None],
            3,
            rules,
        )
    }

    #[test]
    fn most_specific_rule_wins() {
        let p = policy();
        let m = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Member beats virtual server beats client network.
        assert_eq!(
            p.classify("gold", m("198.18.2.13:5201"), ip("198.18.1.2")),
            2
        );
        assert_eq!(
            p.classify("gold", m("198.18.2.11:5201"), ip("198.18.1.2")),
            0
        );
        // Longest client prefix, whatever the order given.
        assert_eq!(
            p.classify("other", m("198.18.2.11:80"), ip("198.18.1.2")),
            1
        );
        assert_eq!(
            p.classify("other", m("198.18.2.11:80"), ip("198.18.1.200")),
            0
        );
        assert_eq!(
            p.classify("other", m("198.18.2.11:80"), ip("198.18.3.1")),
            3
        );
    }

    #[test]
    fn roots_by_port_and_scheduler_configs() {
        let p = policy();
        assert_eq!(p.class_by_name("priority"), Some(2));
        assert_eq!(p.default_class(), 3);
        let cfg = p.shaper_config(0).expect("port 0 is shaped");
        assert_eq!((cfg.root_bps, cfg.classes.len()), (200_000_000, 4));
        assert!(cfg.validate().is_ok());
        assert_eq!(p.shaper_config(1), None);
        assert_eq!(p.shaper_config(5), None);
    }
}
