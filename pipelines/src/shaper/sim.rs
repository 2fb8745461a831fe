//! Test helper: a small simulator with an injected clock. Sources offer traffic to one
//! or several shapers (one per worker), each shaper is dequeued as soon as it allows and
//! its worker sleeps until [`Shaper::next_ready`]; an optional control hook runs every
//! period of virtual time (the cross-worker rebalancer). No threads, no sleeping.

use std::time::Duration;

use super::*;
use crate::time::Instant;

/// Far future: a worker with nothing to do sleeps until then.
pub(super) const NEVER: Instant = Instant::from_nanos(u64::MAX);

/// 1 Mbit/s.
pub(super) const MBIT: u64 = 1_000_000;

#[derive(Debug)]
pub(super) struct Item {
    pub(super) len: usize,
    pub(super) src: usize,
}

impl ShapedItem for Item {
    fn wire_len(&self) -> usize {
        self.len
    }
}

/// How a source offers traffic.
#[derive(Debug, Clone, Copy)]
pub(super) enum Offer {
    /// Keeps this many items queued (tries at most that many enqueues per top-up).
    Saturate(usize),
    /// One item per period.
    Every(Duration),
}

#[derive(Debug)]
pub(super) struct Source {
    pub(super) class: ClassId,
    pub(super) flow: u64,
    pub(super) len: usize,
    pub(super) offer: Offer,
    /// Offers only from `start` (inclusive) to `stop` (exclusive).
    pub(super) start: Instant,
    pub(super) stop: Instant,
    pub(super) next: Instant,
    pub(super) outstanding: usize,
    pub(super) offered: u64,
    pub(super) dropped: u64,
}

/// A source offering from time zero for ever.
pub(super) fn source(class: ClassId, flow: u64, len: usize, offer: Offer) -> Source {
    Source {
        class,
        flow,
        len,
        offer,
        start: Instant::ZERO,
        stop: NEVER,
        next: Instant::ZERO,
        outstanding: 0,
        offered: 0,
        dropped: 0,
    }
}

impl Source {
    /// The same source, offering only in `[start, stop)`.
    pub(super) fn during(mut self, start: Instant, stop: Instant) -> Source {
        self.start = start;
        self.stop = stop;
        self.next = start;
        self
    }

    fn active(&self, now: Instant) -> bool {
        now >= self.start && now < self.stop
    }
}

/// One departure.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub(super) at: Instant,
    pub(super) worker: usize,
    pub(super) class: ClassId,
    pub(super) src: usize,
    pub(super) len: usize,
}

/// One worker of the simulation: its shaper and the sources feeding it.
pub(super) struct Worker<'a> {
    pub(super) sh: &'a mut Shaper<Item>,
    pub(super) sources: &'a mut [Source],
}

fn offer_one(sh: &mut Shaper<Item>, sources: &mut [Source], s: usize, now: Instant) {
    let src = &mut sources[s];
    src.offered += 1;
    src.outstanding += 1;
    let item = Item {
        len: src.len,
        src: s,
    };
    let (class, flow) = (src.class, src.flow);
    if let Err((victim, _)) = sh.enqueue(now, class, flow, item) {
        sources[victim.src].outstanding -= 1;
        sources[victim.src].dropped += 1;
    }
}

fn top_up(sh: &mut Shaper<Item>, sources: &mut [Source], now: Instant) {
    for s in 0..sources.len() {
        if !sources[s].active(now) {
            continue;
        }
        match sources[s].offer {
            Offer::Saturate(target) => {
                for _ in 0..target {
                    if sources[s].outstanding >= target {
                        break;
                    }
                    offer_one(sh, sources, s, now);
                }
            }
            Offer::Every(period) => {
                while sources[s].next <= now && sources[s].active(sources[s].next) {
                    sources[s].next += period;
                    offer_one(sh, sources, s, now);
                }
            }
        }
    }
}

/// Serve worker `w` at `now`: top up, dequeue while allowed, and return when it next
/// has something to do. Checks that `next_ready` never claims readiness `dequeue` denies.
fn serve(w: usize, worker: &mut Worker<'_>, now: Instant, sent: &mut Vec<Sent>) -> Instant {
    let (sh, sources) = (&mut *worker.sh, &mut *worker.sources);
    top_up(sh, sources, now);
    let mut at_once = 0;
    while let Some((class, item)) = sh.dequeue(now) {
        at_once += 1;
        assert!(
            at_once < 10_000,
            "unbounded burst at {now:?}: is the root applied?"
        );
        assert_eq!(
            class, sources[item.src].class,
            "item left by the wrong class"
        );
        sources[item.src].outstanding -= 1;
        sent.push(Sent {
            at: now,
            worker: w,
            class,
            src: item.src,
            len: item.len,
        });
        top_up(sh, sources, now);
    }
    let ready = sh.next_ready(now);
    if let Some(r) = ready {
        assert!(
            r > now,
            "next_ready {r:?} at {now:?} but dequeue gave nothing"
        );
    }
    // The next periodic offer, or the start of a source that has not begun.
    let offers = sources
        .iter()
        .filter_map(|s| match s.offer {
            Offer::Every(_) if s.active(s.next) => Some(s.next),
            _ if s.start > now => Some(s.start),
            _ => None,
        })
        .min();
    ready.unwrap_or(NEVER).min(offers.unwrap_or(NEVER))
}

/// Runs one shaper until `until`, dequeuing as soon as allowed; returns every departure.
pub(super) fn run(sh: &mut Shaper<Item>, sources: &mut [Source], until: Instant) -> Vec<Sent> {
    run_many(&mut [Worker { sh, sources }], until, None)
}

/// A control hook: called at time zero and then every period, with every worker.
pub(super) type Hook<'h> = (Duration, &'h mut dyn FnMut(Instant, &mut [Worker<'_>]));

/// Runs several workers in virtual time until `until`, each as [`run`] does, calling the
/// hook (if any) every period; a hook may change rates, so every worker is woken after it.
pub(super) fn run_many(
    workers: &mut [Worker<'_>],
    until: Instant,
    mut hook: Option<Hook<'_>>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut wake = vec![Instant::ZERO; workers.len()];
    let mut tick = if hook.is_some() { Instant::ZERO } else { NEVER };
    loop {
        let (w, t) = wake
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, t)| t)
            .unwrap_or((0, NEVER));
        if tick <= t && tick < until {
            if let Some((period, f)) = hook.as_mut() {
                f(tick, workers);
                for x in wake.iter_mut() {
                    *x = tick;
                }
                tick += *period;
            }
            continue;
        }
        if t >= until {
            break;
        }
        wake[w] = serve(w, &mut workers[w], t, &mut sent);
    }
    sent
}

/// Bytes of the departures `keep` selects.
pub(super) fn bytes(sent: &[Sent], keep: impl Fn(&Sent) -> bool) -> u64 {
    sent.iter().filter(|s| keep(s)).map(|s| s.len as u64).sum()
}

/// Largest `bytes sent in [t_i, t_j]` minus `rate × (t_j − t_i)` over all pairs of
/// departures i ≤ j, in bytes (rounded up). A token bucket of burst B allows at most B.
/// `deps` must be in time order.
pub(super) fn max_excess_bytes(deps: &[Sent], rate_bps: u64) -> i128 {
    // Units: bit-nanoseconds. excess(i, j) = (S_j − S_{i−1})·8e9 − r·(t_j − t_i)
    //   = (S_j·8e9 − r·t_j) + max_i (r·t_i − S_{i−1}·8e9).
    let r = rate_bps as i128;
    let mut before: i128 = 0; // S_{i-1}·8e9
    let mut best_start = i128::MIN;
    let mut worst = i128::MIN;
    for d in deps {
        let t = d.at.as_nanos() as i128;
        best_start = best_start.max(r * t - before);
        before += d.len as i128 * 8_000_000_000;
        worst = worst.max(before - r * t + best_start);
    }
    (worst + 7_999_999_999).div_euclid(8_000_000_000)
}

/// A policy with a 3000-byte root burst and a 1514-byte quantum.
pub(super) fn config(root_bps: u64, classes: Vec<ClassConfig>) -> ShaperConfig {
    ShaperConfig {
        root_bps,
        root_burst_bytes: 3000,
        quantum_bytes: 1514,
        classes,
    }
}
