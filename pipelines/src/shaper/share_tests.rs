//! Cross-worker shaping with an injected clock: two workers, each with a [`Shaper`]
//! built from [`worker_config`], and a [`Rebalancer`] fed from their counters every
//! [`PERIOD`] of virtual time; the rates it returns are applied at once.

use std::time::Duration;

use super::sim::*;
use super::*;
use crate::time::Instant;

const WORKERS: usize = 2;

/// What a simulation produced.
struct Outcome {
    /// Every departure, in time order.
    sent: Vec<Sent>,
    /// Each rebalancing: when, and the rates handed to the workers.
    rates: Vec<(Instant, Vec<WorkerRates>)>,
    /// The sources of each worker after the run.
    sources: Vec<Vec<Source>>,
}

/// Runs `sources[w]` on worker `w` until `until`; rebalances every [`PERIOD`] unless
/// `rebalance` is false (then each worker keeps its even split for ever).
fn simulate(
    cfg: &ShaperConfig,
    mut sources: Vec<Vec<Source>>,
    until: Instant,
    rebalance: bool,
) -> Outcome {
    assert_eq!(sources.len(), WORKERS);
    let per_worker = worker_config(cfg, WORKERS);
    let mut shapers: Vec<Shaper<Item>> = (0..WORKERS)
        .map(|_| Shaper::new(&per_worker).expect("valid per-worker policy"))
        .collect();
    let mut reb = Rebalancer::new(cfg, WORKERS);
    let mut samples = vec![WorkerSample::default(); WORKERS];
    let mut rates = Vec::new();
    let mut hook = |now: Instant, workers: &mut [Worker<'_>]| {
        for (s, w) in samples.iter_mut().zip(workers.iter()) {
            s.read(w.sh);
        }
        let r = reb.update(now, &samples);
        for (r, w) in r.iter().zip(workers.iter_mut()) {
            assert!(r.apply(now, w.sh), "rates fit the per-worker shaper");
        }
        rates.push((now, r.to_vec()));
    };
    let mut workers: Vec<Worker<'_>> = shapers
        .iter_mut()
        .zip(sources.iter_mut())
        .map(|(sh, s)| Worker { sh, sources: s })
        .collect();
    let hook: Option<Hook<'_>> = if rebalance {
        Some((PERIOD, &mut hook))
    } else {
        None
    };
    let sent = run_many(&mut workers, until, hook);
    drop(workers);
    Outcome {
        sent,
        rates,
        sources,
    }
}

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

/// Rate in bits/s of the departures `keep` selects in `[from, to)`.
fn rate(sent: &[Sent], from: Instant, to: Instant, keep: impl Fn(&Sent) -> bool) -> u64 {
    let b = bytes(sent, |s| s.at >= from && s.at < to && keep(s));
    let ns = (to - from).as_nanos() as u64;
    (b as u128 * 8 * 1_000_000_000 / ns as u128) as u64
}

#[test]
fn weights_3_to_1_hold_across_workers() {
    // Gold (weight 3) is busy only on worker 0, bronze (weight 1) only on worker 1.
    let cfg = config(
        200 * MBIT,
        vec![ClassConfig::weighted(3), ClassConfig::weighted(1)],
    );
    let sources = || {
        vec![
            vec![source(0, 1, 1500, Offer::Saturate(32))],
            vec![source(1, 2, 1000, Offer::Saturate(32))],
        ]
    };
    let end = Instant::from_secs(1);
    let out = simulate(&cfg, sources(), end, true);
    // After 50 ms of convergence: 150 and 50 Mbit/s, i.e. 3:1, with the root full.
    let gold = rate(&out.sent, ms(50), end, |s| s.class == 0);
    let bronze = rate(&out.sent, ms(50), end, |s| s.class == 1);
    let ratio = gold as f64 / bronze as f64;
    println!("3:1 across workers: gold {gold} bronze {bronze} ratio {ratio:.3}");
    assert!(
        (ratio / 3.0 - 1.0).abs() < 0.05,
        "share {ratio:.3}, want 3 ± 5 %"
    );
    assert!(out.sent.iter().all(|s| s.worker == s.class));
    // Work conserving but for the floors kept for the idle workers (≈ 0.6 %).
    assert!(
        gold + bronze >= 200 * MBIT * 98 / 100,
        "root used {}",
        gold + bronze
    );
    // It converges within a few periods: every 10 ms window after 20 ms is 3:1 ± 5 %.
    for w in 2..100 {
        let (a, b) = (ms(10 * w), ms(10 * w + 10));
        let r = rate(&out.sent, a, b, |s| s.class == 0) as f64
            / rate(&out.sent, a, b, |s| s.class == 1) as f64;
        assert!((r / 3.0 - 1.0).abs() < 0.05, "window {w}: {r:.3}");
    }
    // Without rebalancing, each worker's half of the root goes to its only class: 1:1.
    let alone = simulate(&cfg, sources(), Instant::from_millis(200), false);
    let gold = bytes(&alone.sent, |s| s.class == 0) as f64;
    let bronze = bytes(&alone.sent, |s| s.class == 1) as f64;
    assert!(
        (gold / bronze - 1.0).abs() < 0.05,
        "per-worker only: {gold} {bronze}"
    );
}

#[test]
fn ceiling_holds_across_workers() {
    let burst = 4500;
    let mut capped = ClassConfig::weighted(10);
    capped.ceiling_bps = Some(20 * MBIT);
    capped.burst_bytes = burst;
    let cfg = config(100 * MBIT, vec![capped, ClassConfig::weighted(1)]);
    // The capped class is saturated on both workers (with different packet sizes),
    // and so is the other class.
    let sources = vec![
        vec![
            source(0, 1, 1500, Offer::Saturate(32)),
            source(1, 2, 1500, Offer::Saturate(32)),
        ],
        vec![
            source(0, 3, 700, Offer::Saturate(32)),
            source(1, 4, 1500, Offer::Saturate(32)),
        ],
    ];
    let end = Instant::from_secs(1);
    let out = simulate(&cfg, sources, end, true);
    let capped: Vec<Sent> = out.sent.iter().copied().filter(|s| s.class == 0).collect();
    // Over any window, at most the ceiling plus each worker's burst. With rates applied
    // a period late the bound would grow by the rate moved in one period (see the
    // module documentation); here rates apply at once.
    let excess = max_excess_bytes(&capped, 20 * MBIT);
    println!("ceiling across workers: excess {excess} bytes");
    assert!(
        excess <= WORKERS as i128 * burst as i128,
        "ceiling exceeded by {excess} bytes beyond rate"
    );
    // Every 100 ms window (sliding by 5 ms) stays below 20 Mbit/s + 2 bursts.
    let mut worst = 0;
    for k in 0..=180 {
        let (a, b) = (ms(5 * k), ms(5 * k + 100));
        worst = worst.max(bytes(&capped, |s| s.at >= a && s.at < b));
    }
    println!("ceiling across workers: worst 100 ms window {worst} bytes");
    assert!(
        worst <= 20 * MBIT / 80 + WORKERS as u64 * burst,
        "worst {worst}"
    );
    // It is held at the ceiling, not below, and split over both workers.
    let c = rate(&capped, ms(50), end, |_| true);
    let c0 = rate(&capped, ms(50), end, |s| s.worker == 0);
    assert!(c >= 20 * MBIT * 98 / 100, "capped class at {c}");
    assert!(c0 > 8 * MBIT && c0 < 12 * MBIT, "worker 0 part {c0}");
    let other = rate(&out.sent, ms(50), end, |s| s.class == 1);
    assert!(other >= 78 * MBIT, "other class at {other}");
}

#[test]
fn guarantee_holds_across_workers() {
    let mut gold = ClassConfig::weighted(1);
    gold.guaranteed_bps = Some(30 * MBIT);
    let cfg = config(100 * MBIT, vec![gold, ClassConfig::weighted(20)]);
    // Gold only on worker 1; bulk saturates both workers.
    let sources = vec![
        vec![source(1, 1, 1500, Offer::Saturate(32))],
        vec![
            source(0, 2, 1500, Offer::Saturate(32)),
            source(1, 3, 1500, Offer::Saturate(32)),
        ],
    ];
    let end = Instant::from_secs(1);
    let out = simulate(&cfg, sources, end, true);
    // Per worker, gold would get 15 Mbit/s (half its guarantee): check every 100 ms.
    let mut lowest = u64::MAX;
    for w in 0..10 {
        let (a, b) = (ms(100 * w).max(ms(50)), ms(100 * w + 100));
        let g = rate(&out.sent, a, b, |s| s.class == 0);
        lowest = lowest.min(g);
        assert!(g >= 30 * MBIT * 97 / 100, "window {w}: gold at {g} bit/s");
    }
    // And gold shares the spare 70 Mbit/s by weight on top: 30 + 70/21 ≈ 33.3.
    let g = rate(&out.sent, ms(50), end, |s| s.class == 0);
    let total = rate(&out.sent, ms(50), end, |_| true);
    println!("guarantee across workers: gold {g}, lowest 100 ms window {lowest}, total {total}");
    assert!(g > 31 * MBIT && g < 36 * MBIT, "gold {g}");
    assert!(total >= 98 * MBIT, "root used {total}");
}

#[test]
fn demand_moving_between_workers_is_followed() {
    let cfg = config(
        100 * MBIT,
        vec![ClassConfig::weighted(1), ClassConfig::weighted(1)],
    );
    let moved = ms(500);
    let end = ms(800);
    // Class 0 is busy on worker 0, then on worker 1 from 500 ms; class 1 on both.
    let sources = vec![
        vec![
            source(0, 1, 1500, Offer::Saturate(32)).during(Instant::ZERO, moved),
            source(1, 2, 1500, Offer::Saturate(32)),
        ],
        vec![
            source(0, 3, 1500, Offer::Saturate(32)).during(moved, end),
            source(1, 4, 1500, Offer::Saturate(32)),
        ],
    ];
    let out = simulate(&cfg, sources, end, true);
    let before = rate(&out.sent, ms(50), moved, |s| s.class == 0);
    assert!(
        before > 49 * MBIT && before < 51 * MBIT,
        "class 0 before the move {before}"
    );
    // After the move: the first 5 ms window from which class 0 stays at 90 % or more.
    let period_ms = PERIOD.as_millis() as u64;
    let windows: Vec<u64> = (0..60)
        .map(|k| {
            let a = moved + Duration::from_millis(k * period_ms);
            rate(&out.sent, a, a + PERIOD, |s| s.class == 0)
        })
        .collect();
    let settled = (0..windows.len())
        .find(|&k| windows[k..].iter().all(|&r| r >= before * 9 / 10))
        .expect("class 0 recovers on worker 1");
    println!("moved demand: class 0 at {before} before; 5 ms windows after: {windows:?}");
    println!("moved demand: back to 90 % after {settled} periods");
    assert!(settled <= 6, "took {settled} periods");
    // Meanwhile class 1 never took more than its half for long, and the root was used.
    let after = rate(&out.sent, moved + PERIOD * 10, end, |s| s.class == 0);
    let total = rate(&out.sent, moved + PERIOD * 10, end, |_| true);
    assert!(after > 49 * MBIT, "class 0 after the move {after}");
    assert!(total > 98 * MBIT, "root used {total}");
    assert!(out.sent.iter().any(|s| s.class == 0 && s.worker == 1));
}

#[test]
fn root_never_exceeded_across_workers() {
    let mut prio = ClassConfig::weighted(1);
    prio.priority = Some(0);
    prio.ceiling_bps = Some(10 * MBIT);
    let mut gold = ClassConfig::weighted(1);
    gold.guaranteed_bps = Some(20 * MBIT);
    let mut capped = ClassConfig::weighted(4);
    capped.ceiling_bps = Some(15 * MBIT);
    let cfg = config(
        50 * MBIT,
        vec![
            prio,
            gold,
            capped,
            ClassConfig::weighted(2),
            ClassConfig::weighted(1),
        ],
    );
    let sources = vec![
        vec![
            source(0, 1, 64, Offer::Saturate(16)),
            source(1, 2, 1500, Offer::Saturate(16)),
            source(3, 5, 1500, Offer::Saturate(16)),
            source(4, 6, 64, Offer::Every(Duration::from_millis(1))),
        ],
        vec![
            source(1, 3, 300, Offer::Saturate(16)),
            source(2, 4, 900, Offer::Saturate(16)),
            source(3, 7, 1200, Offer::Saturate(16)),
            source(4, 8, 1200, Offer::Saturate(16)),
        ],
    ];
    let end = ms(500);
    let out = simulate(&cfg, sources, end, true);
    // The roots handed out never add up to more than the configured root.
    let worst_sum = out
        .rates
        .iter()
        .map(|(_, r)| r.iter().map(|w| w.root_bps).sum::<u64>())
        .max()
        .unwrap_or(0);
    assert!(worst_sum <= 50 * MBIT, "roots add up to {worst_sum}");
    assert_eq!(out.rates.len(), 100);
    // So on the wire, at most the root rate plus each worker's root burst.
    let excess = max_excess_bytes(&out.sent, 50 * MBIT);
    println!("root across workers: roots sum to at most {worst_sum}, excess {excess} bytes");
    assert!(
        excess <= WORKERS as i128 * 3000,
        "root exceeded by {excess} bytes beyond the bursts"
    );
    let total = rate(&out.sent, ms(50), end, |_| true);
    assert!(total >= 49 * MBIT, "root underused: {total}");
    for c in 0..5 {
        assert!(
            rate(&out.sent, ms(50), end, |s| s.class == c) > 0,
            "class {c} starved"
        );
    }
    // The other rules hold appliance-wide too: the priority and capped classes stay
    // under their ceilings, gold gets its guarantee (it is on both workers).
    let class = |c| -> Vec<Sent> { out.sent.iter().copied().filter(|s| s.class == c).collect() };
    assert!(max_excess_bytes(&class(0), 10 * MBIT) <= 2 * 16 * 1024);
    assert!(max_excess_bytes(&class(2), 15 * MBIT) <= 2 * 16 * 1024);
    let g = rate(&out.sent, ms(50), end, |s| s.class == 1);
    assert!(g >= 20 * MBIT * 97 / 100, "gold {g}");
    // Once the initial bursts are spent (a 16 KiB burst is 52 ms of a 2.5 Mbit/s share),
    // each class gets its appliance-wide allocation: 50 − 10 (priority) − 20 (guarantee)
    // = 20 Mbit/s spare, by weight 1:4:2:1. Class 4 gets 2.5 but uses about 2.3: its
    // worker 0 uses 0.5 Mbit/s of a share of 0.5 × 1.25 + a floor (0.69 Mbit/s).
    let per_class: Vec<u64> = (0..5)
        .map(|c| rate(&out.sent, ms(200), end, |s| s.class == c))
        .collect();
    println!("root across workers: per class from 200 ms {per_class:?}");
    let want = [10 * MBIT, 22_500_000, 10 * MBIT, 5 * MBIT, 2_300_000];
    for c in 0..5 {
        let (got, want) = (per_class[c], want[c]);
        assert!(
            got.abs_diff(want) <= want / 10,
            "class {c}: {got}, want {want}"
        );
    }
    // Class 4 is backlogged on worker 1; its 0.5 Mbit/s on worker 0 keeps up and
    // loses nothing.
    assert_eq!(out.sources[0][3].dropped, 0);
    assert!(out.sources[0][3].offered >= 500);
}
