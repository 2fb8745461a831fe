//! The shaping policy: a root line rate and a tree of classes.

use thiserror::Error;

/// One shaping class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    /// Index of the parent class, or `None` for a child of the root.
    /// A parent must come before its children.
    pub parent: Option<usize>,
    /// Share of the spare capacity relative to other classes (at least 1).
    pub weight: u32,
    /// Strict priority level (0 is served first); `None` for a weighted class.
    pub priority: Option<u8>,
    /// Rate in bits/s the class gets before any spare capacity is shared.
    pub guaranteed_bps: Option<u64>,
    /// Rate in bits/s the class (and its subtree) never exceeds.
    pub ceiling_bps: Option<u64>,
    /// Burst in bytes of the guarantee and ceiling buckets; also the largest item the
    /// class accepts when it has a ceiling.
    pub burst_bytes: u64,
    /// Queue limit in items (at least 1); the queue slab is allocated at this size.
    pub queue_packets: usize,
    /// Optional queue limit in bytes.
    pub queue_bytes: Option<u64>,
}

impl ClassConfig {
    /// A weighted class under the root with no guarantee, ceiling or priority,
    /// a 16 KiB burst and a 1024-item queue.
    pub fn weighted(weight: u32) -> ClassConfig {
        ClassConfig {
            parent: None,
            weight,
            priority: None,
            guaranteed_bps: None,
            ceiling_bps: None,
            burst_bytes: 16 * 1024,
            queue_packets: 1024,
            queue_bytes: None,
        }
    }
}

/// The policy of one egress interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaperConfig {
    /// Line rate of the root in bits/s.
    pub root_bps: u64,
    /// Burst of the root bucket in bytes (at least one maximum-size item).
    pub root_burst_bytes: u64,
    /// Deficit round robin quantum per unit of weight, in bytes.
    pub quantum_bytes: u32,
    /// The classes; a class is named by its index.
    pub classes: Vec<ClassConfig>,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The root rate, root burst or quantum is zero.
    #[error("root rate, root burst and quantum must be positive")]
    Root,
    /// A class names a parent that does not come before it.
    #[error("class {0}: parent must be an earlier class")]
    Parent(usize),
    /// A class has weight 0, a zero queue limit or a zero burst.
    #[error("class {0}: weight, queue limit and burst must be positive")]
    Zero(usize),
    /// A guarantee or ceiling is zero, or the guarantee exceeds the ceiling.
    #[error("class {0}: rates must be positive and the guarantee at most the ceiling")]
    Rates(usize),
    /// The guarantees add up to more than the root rate.
    #[error("guaranteed rates add up to more than the root rate")]
    Oversubscribed,
}

impl ShaperConfig {
    /// Check the policy; [`crate::shaper::Shaper::new`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.root_bps == 0 || self.root_burst_bytes == 0 || self.quantum_bytes == 0 {
            return Err(ConfigError::Root);
        }
        let mut guaranteed: u128 = 0;
        for (i, c) in self.classes.iter().enumerate() {
            if c.parent.is_some_and(|p| p >= i) {
                return Err(ConfigError::Parent(i));
            }
            if c.weight == 0 || c.queue_packets == 0 || c.burst_bytes == 0 {
                return Err(ConfigError::Zero(i));
            }
            if c.guaranteed_bps == Some(0) || c.ceiling_bps == Some(0) {
                return Err(ConfigError::Rates(i));
            }
            if let (Some(g), Some(m)) = (c.guaranteed_bps, c.ceiling_bps) {
                if g > m {
                    return Err(ConfigError::Rates(i));
                }
            }
            guaranteed += c.guaranteed_bps.unwrap_or(0) as u128;
        }
        if guaranteed > self.root_bps as u128 {
            return Err(ConfigError::Oversubscribed);
        }
        Ok(())
    }
}
