//! The bound on MLD reports sent in answer to queries (RFC 3810 section 6.2).
//!
//! A listener answers a general query, or a query about one of its groups, with a
//! report within the query's maximum response delay. Rouge answers at once (a delay of
//! 0 is within every range) but at most once per VLAN per response delay, so a querier
//! (or a flood of forged queries) can make it send at most one report per VLAN per
//! delay; queries inside the delay are counted and not answered. The delay is taken as
//! at least [`MIN_INTERVAL_MS`], so a query with a delay of 0 does not lift the bound.

use std::time::Duration;

use crate::time::Instant;

/// Shortest interval between two reports on one VLAN, in milliseconds, whatever the
/// queries' maximum response delay.
pub const MIN_INTERVAL_MS: u64 = 1000;

/// When each VLAN may answer a query again. Sans-I/O: time is passed in.
#[derive(Debug, Clone, Default)]
pub struct MldLimiter {
    /// Per VLAN: the earliest time of the next answer (`None`: never answered).
    next: Vec<Option<Instant>>,
}

impl MldLimiter {
    /// A limiter for `vlans` VLANs (more are added on demand).
    pub fn new(vlans: usize) -> MldLimiter {
        MldLimiter {
            next: vec![None; vlans],
        }
    }

    /// A query with a maximum response delay of `max_delay_ms` arrived on `vlan` at
    /// `now`: true when a report is to be sent (and the VLAN waits the delay before it
    /// answers again), false when one was sent within the delay of an earlier query.
    pub fn on_query(&mut self, now: Instant, vlan: u16, max_delay_ms: u32) -> bool {
        let v = vlan as usize;
        if self.next.len() <= v {
            self.next.resize(v + 1, None);
        }
        if self.next[v].is_some_and(|t| now < t) {
            return false;
        }
        let wait = u64::from(max_delay_ms).max(MIN_INTERVAL_MS);
        self.next[v] = Some(now + Duration::from_millis(wait));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_vlan_per_response_delay() {
        let mut l = MldLimiter::new(2);
        let t0 = Instant::from_secs(100);
        assert!(l.on_query(t0, 0, 10_000));
        // Within the 10 s: not again on VLAN 0, but VLAN 1 answers its own.
        assert!(!l.on_query(t0 + Duration::from_millis(9_999), 0, 10_000));
        assert!(l.on_query(t0, 1, 10_000));
        // Once the delay has passed, again; the next query's delay counts from then.
        let t1 = t0 + Duration::from_millis(10_000);
        assert!(l.on_query(t1, 0, 2_000));
        assert!(!l.on_query(t1 + Duration::from_millis(1_999), 0, 10_000));
        assert!(l.on_query(t1 + Duration::from_millis(2_000), 0, 10_000));
    }

    #[test]
    fn a_zero_delay_still_bounds_reports_and_new_vlans_are_taken() {
        let mut l = MldLimiter::new(0);
        let t0 = Instant::from_secs(5);
        assert!(l.on_query(t0, 3, 0));
        assert!(!l.on_query(t0 + Duration::from_millis(MIN_INTERVAL_MS - 1), 3, 0));
        assert!(l.on_query(t0 + Duration::from_millis(MIN_INTERVAL_MS), 3, 0));
        // A flood of queries within a second gives one report.
        let mut sent = 0;
        for ms in 0..1000 {
            sent += l.on_query(Instant::from_secs(60) + Duration::from_millis(ms), 7, 0) as u32;
        }
        assert_eq!(sent, 1);
    }
}
