//! TEMPORARY placeholder until the rebalancer lands (replaced by the share branch).
#![allow(missing_docs)]
use super::ShaperConfig;
use crate::time::Instant;

pub fn worker_config(config: &ShaperConfig, workers: usize) -> ShaperConfig {
    let _ = workers;
    config.clone()
}

#[derive(Debug, Clone, Default)]
pub struct WorkerSample {
    pub offered_bytes: Vec<u64>,
    pub queued_bytes: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRates {
    pub root_bps: u64,
    pub classes: Vec<(Option<u64>, u64)>,
}

pub struct Rebalancer {
    out: Vec<WorkerRates>,
}

impl Rebalancer {
    pub fn new(config: &ShaperConfig, workers: usize) -> Rebalancer {
        let _ = (config, workers);
        Rebalancer { out: Vec::new() }
    }
    pub fn update(&mut self, now: Instant, samples: &[WorkerSample]) -> &[WorkerRates] {
        let _ = (now, samples);
        &self.out
    }
}
