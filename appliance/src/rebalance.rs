//! The shaping rebalancer: with several workers, a control thread that keeps each
//! class's guarantee and ceiling (and each root's line rate) true for the appliance as a
//! whole.
//!
//! Every [`PERIOD`] it reads what each worker published (per port and class: bytes
//! offered, bytes queued), lets a [`Rebalancer`] per shaped port turn the measured
//! demand into per-worker rates, and publishes them in [`Shared::shaping_rates`]; each
//! worker applies its own between two bursts. The scheme and its error bounds are those
//! of [`rouge_pipelines::shaper::share`]. With one worker there is nothing to balance:
//! the worker enforces the configured rates itself and this thread is not started.

use std::sync::Arc;
use std::time::Duration;

use rouge_pipelines::shaper::share::{Rebalancer, WorkerSample};
use rouge_pipelines::shaper::ShapingPolicy;
use rouge_pipelines::time::MonotonicClock;

use crate::egress::ShapingRates;
use crate::shared::Shared;

/// How often rates are rebalanced.
pub const PERIOD: Duration = rouge_pipelines::shaper::share::PERIOD;

/// The rebalancer of one policy: one [`Rebalancer`] per port.
struct State {
    policy: Arc<ShapingPolicy>,
    ports: Vec<Option<Rebalancer>>,
}

impl State {
    fn new(policy: Arc<ShapingPolicy>, workers: usize) -> State {
        let ports = (0..policy.port_count())
            .map(|p| {
                policy
                    .shaper_config(p)
                    .map(|cfg| Rebalancer::new(&cfg, workers))
            })
            .collect();
        State { policy, ports }
    }
}

/// Starts the rebalancer thread when there is more than one worker.
pub fn spawn(shared: Arc<Shared>) -> Option<std::thread::JoinHandle<()>> {
    if shared.workers.len() < 2 {
        return None;
    }
    std::thread::Builder::new()
        .name("rouge-rebalance".into())
        .spawn(move || run(&shared))
        .map_err(|e| tracing::error!(error = %e, "cannot start the shaping rebalancer"))
        .ok()
}

fn run(shared: &Shared) {
    let clock = MonotonicClock::new();
    let workers = shared.workers.len();
    let mut state: Option<State> = None;
    let mut generation = 0u64;
    while !shared.stopping() {
        std::thread::sleep(PERIOD);
        let Some(policy) = shared.dataplane.load().shaping.clone() else {
            state = None;
            shared.shaping_rates.store(None);
            continue;
        };
        if !state
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.policy, &policy))
        {
            state = Some(State::new(policy.clone(), workers));
        }
        let Some(st) = state.as_mut() else { continue };
        // Every worker must report on this very policy, or the round is skipped.
        let samples: Vec<_> = shared
            .workers
            .iter()
            .map(|w| w.shaping.load_full())
            .collect();
        if samples.iter().any(|s| {
            !s.as_ref()
                .is_some_and(|s| Arc::ptr_eq(&s.policy, &st.policy))
        }) {
            continue;
        }
        let now = clock.now();
        let mut ports = Vec::with_capacity(st.ports.len());
        for (port, rebalancer) in st.ports.iter_mut().enumerate() {
            let Some(rebalancer) = rebalancer.as_mut() else {
                ports.push(None);
                continue;
            };
            let per_worker: Vec<WorkerSample> = samples
                .iter()
                .map(|s| {
                    let mut ws = WorkerSample::default();
                    if let Some(p) = s
                        .as_ref()
                        .and_then(|s| s.ports.iter().find(|p| p.port == port))
                    {
                        ws.fill(p.classes.iter().map(|c| &c.counters));
                    }
                    ws
                })
                .collect();
            ports.push(Some(rebalancer.update(now, &per_worker).to_vec()));
        }
        generation += 1;
        shared.shaping_rates.store(Some(Arc::new(ShapingRates {
            policy: st.policy.clone(),
            generation,
            ports,
        })));
    }
}
